"""What the runs shown actually say: verdicts counted over seeds, and captions worded from data.

Every sentence a figure or page states as a finding comes from here and is computed from the
runs it describes; where the data do not show what a paper reports, the text says so and gives
the paper's claim as the paper's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..layer_names import depth_key
from .evidence import SEED_MARGIN, spread

TAIL_FRACTION = 0.2  # final training loss/error: mean over the last 20% of logged rows
MARGIN = SEED_MARGIN  # a robust verdict: the mean gap is at least this many seed-to-seed spreads


def tail_mean(df: pd.DataFrame | None, column: str, fraction: float = TAIL_FRACTION) -> float | None:
    """Mean of `column` over the last `fraction` of rows (at least one); None without finite data."""
    if df is None or df.empty or column not in df.columns:
        return None
    values = pd.to_numeric(df[column], errors="coerce")
    tail = values.iloc[-max(1, int(len(values) * fraction)):]
    value = float(tail.mean(skipna=False))
    return value if math.isfinite(value) else None


def mean_sd(values: list[float], digits: int = 3) -> str:
    """ "0.412 ± 0.051" (just the value for one seed)."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {spread(values):.{digits}f}"


@dataclass(frozen=True)
class Check:
    """A claim "`worse` ends with a higher training loss than `better`", counted over seeds.

    `worse_losses` and `better_losses` are the final training losses of the seeds both have,
    in the same seed order.
    """

    worse: str
    better: str
    seeds: tuple[int, ...]
    worse_losses: tuple[float, ...]
    better_losses: tuple[float, ...]
    claim: str = ""

    @property
    def held(self) -> int:
        return sum(w > b for w, b in zip(self.worse_losses, self.better_losses))

    @property
    def of(self) -> int:
        return len(self.seeds)

    @property
    def gap(self) -> float:
        return statistics.fmean(self.worse_losses) - statistics.fmean(self.better_losses)

    @property
    def spread(self) -> float:
        return max(spread(list(self.worse_losses)), spread(list(self.better_losses)))

    @property
    def margin(self) -> float:
        """Gap over spread (infinite for one seed or identical seeds)."""
        return self.gap / self.spread if self.spread > 0 else (math.inf if self.gap > 0 else -math.inf)

    @property
    def robust(self) -> bool:
        """Held on every seed, with the mean gap at least `MARGIN` spreads."""
        return self.of > 0 and self.held == self.of and self.margin >= MARGIN

    def text(self) -> str:
        claim = self.claim or f"{self.worse} trains worse than {self.better}"
        seeds = "seed" if self.of == 1 else "seeds"
        detail = (f"final train loss {mean_sd(list(self.worse_losses))} vs {mean_sd(list(self.better_losses))}")
        if self.of > 1 and math.isfinite(self.margin):
            detail += f"; gap {self.margin:.1f}x the seed-to-seed spread"
        return f"{claim} in {self.held} of {self.of} {seeds} ({detail})"


def compare_losses(worse: str, better: str, losses: Mapping[str, Mapping[int, float]], claim: str = "") -> Check:
    """A `Check` from final losses by model name, then by seed; seeds missing on either side are left out."""
    seeds = tuple(sorted(set(losses.get(worse, {})) & set(losses.get(better, {}))))
    return Check(worse, better, seeds, tuple(losses[worse][s] for s in seeds),
                 tuple(losses[better][s] for s in seeds), claim)


def degradation_checks(losses: Mapping[str, Mapping[int, float]], shallow: int, deep: int) -> list[Check]:
    """He et al. 2015 Fig. 6's two claims for CIFAR plain/residual nets at two depths.

    Args:
        losses: final training loss by model name ("plain20", "resnet56", ...), then by seed.
    """
    return [
        compare_losses(f"plain{deep}", f"plain{shallow}", losses),
        compare_losses(f"plain{deep}", f"resnet{deep}", losses, claim=f"resnet{deep} trains better than plain{deep}"),
    ]


# --- captions ----------------------------------------------------------------------------------

def _latest(df: pd.DataFrame | None) -> pd.DataFrame | None:
    if df is None or df.empty or "step" not in df.columns:
        return None
    steps = pd.to_numeric(df["step"], errors="coerce")
    return df[steps == steps.max()]


def ratio_finding(label: str, norms: pd.DataFrame | None) -> str | None:
    """How many units of a residual run add an F(x) smaller than x, at its latest probe."""
    at = _latest(norms)
    if at is None or "ratio" not in at.columns:
        return None
    ratios = pd.to_numeric(at.groupby("unit")["ratio"].mean(), errors="coerce").dropna()
    if ratios.empty:
        return None
    small = int((ratios < 1).sum())
    median = float(ratios.median())
    step = int(pd.to_numeric(at["step"]).max())
    text = (f"At step {step:,}, {small} of {len(ratios)} units of {label} add an F(x) smaller than their input x "
            f"(median ||F(x)|| / ||x|| = {median:.2f}).")
    if small * 2 > len(ratios):
        return text + " Most units refine their input rather than replace it, as He et al. 2016 describe."
    return text + (" Here most units change their input by more than its own size; He et al. 2016 describe "
                   "residual units as small refinements, which this short run does not show.")


def _first_last_grad(df: pd.DataFrame | None) -> tuple[float, float, int] | None:
    """Gradient norm of the first and the last conv layer at the latest probe."""
    at = _latest(df)
    if at is None or "grad_norm" not in at.columns:
        return None
    convs = at[at["layer"].astype(str).str.contains("conv")]
    if len(convs) < 2:
        return None
    ordered = sorted(convs["layer"].unique(), key=depth_key)
    g = convs.groupby("layer")["grad_norm"].mean()
    first, last = float(g[ordered[0]]), float(g[ordered[-1]])
    return first, last, int(pd.to_numeric(at["step"]).max())


def gradient_finding(grad: Mapping[str, pd.DataFrame | None], residual: Mapping[str, bool]) -> str | None:
    """How large the first conv's gradient is next to the last conv's, per run, at its latest probe."""
    parts, ratios = [], {}
    for label, df in grad.items():
        found = _first_last_grad(df)
        if found is None or not found[1] > 0:
            continue
        first, last, step = found
        ratios[label] = first / last
        parts.append(f"{label}'s first conv gets a gradient {first / last:.2g}x its last conv's (step {step:,})")
    if not parts:
        return None
    text = "; ".join(parts) + "."
    res = [ratios[k] for k in ratios if residual.get(k)]
    plain = [ratios[k] for k in ratios if k in residual and not residual[k]]
    if res and plain:
        if min(res) > max(plain):
            text += " Through the shortcuts, gradients reach the early layers of the residual nets better."
        else:
            text += (" Here the residual nets' early layers do not get relatively larger gradients than the plain "
                     "nets'; He et al. attribute residual nets' easier optimisation to shortcuts carrying the signal.")
    return text


def responses_finding(responses: Mapping[str, pd.DataFrame | None], residual: Mapping[str, bool],
                      depth: Mapping[str, int]) -> str | None:
    """Mean response std of residual vs plain twins at the same depth, worded by what the data show.

    He et al. 2015 (Fig. 7) report smaller responses for residual nets; "smaller" is claimed here only
    when the residual net's mean std is at least 5% below its plain twin's.
    """
    means: dict[str, float] = {}
    for label, df in responses.items():
        at = _latest(df)
        if at is None or "std" not in at.columns:
            continue
        values = pd.to_numeric(at["std"], errors="coerce").to_numpy()
        values = values[np.isfinite(values)]
        if values.size:
            means[label] = float(values.mean())
    sentences = []
    for res_label in [k for k in means if residual.get(k)]:
        twin = next((k for k in means if k in residual and not residual[k] and depth.get(k) == depth.get(res_label)),
                    None)
        if twin is None:
            continue
        r, p = means[res_label], means[twin]
        if r <= 0.95 * p:
            word = "smaller, as He et al. 2015 report"
        elif r >= 1.05 * p:
            word = "larger, unlike He et al. 2015's finding of smaller residual responses"
        else:
            word = "about the same (He et al. 2015 report smaller responses for residual nets; this run does not show it)"
        sentences.append(f"{res_label}'s responses average {r:.3g}, {twin}'s {p:.3g}: {word}.")
    return " ".join(sentences) or None
