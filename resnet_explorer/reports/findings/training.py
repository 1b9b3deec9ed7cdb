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

from ...models.layer_names import depth_key
from .evidence import SEED_MARGIN, Difference, Progress, spread

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


LOSS_THRESHOLD = 0.10  # two final training losses differ when the gap is at least 10% of the larger ...
LOSS_FLOOR = 0.05  # ... and at least 0.05 (nats): 0.039 vs 0.033 is "about the same"


def loss_gap_counts(worse: float, better: float) -> bool:
    """Whether `worse` is above `better` by enough to say so (`LOSS_THRESHOLD`, `LOSS_FLOOR`)."""
    return Difference("final training loss", ("", ""), (worse, better), LOSS_THRESHOLD,
                      floor=LOSS_FLOOR).direction == 1


@dataclass(frozen=True)
class Check:
    """A claim "`worse` ends with a higher training loss than `better`", counted over seeds.

    `worse_losses` and `better_losses` are the final training losses of the seeds both have,
    in the same seed order; `classes` sets chance's loss (ln C). A seed holds the claim when its gap
    passes `loss_gap_counts`; the claim holds (`verdict` "holds") when every seed does and, over
    several seeds, the mean gap is at least `MARGIN` seed-to-seed spreads. When neither net left chance
    on any seed, the runs say nothing about the claim ("at chance").
    """

    worse: str
    better: str
    seeds: tuple[int, ...]
    worse_losses: tuple[float, ...]
    better_losses: tuple[float, ...]
    claim: str = ""
    classes: int = 10

    @property
    def held(self) -> int:
        return sum(loss_gap_counts(w, b) for w, b in zip(self.worse_losses, self.better_losses))

    @property
    def reversed_(self) -> int:
        """Seeds on which the claim is reversed, by a gap that counts."""
        return sum(loss_gap_counts(b, w) for w, b in zip(self.worse_losses, self.better_losses))

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

    def _progress(self, label: str, losses: tuple[float, ...]) -> list[Progress]:
        return [Progress(label, self.classes, loss=v) for v in losses]

    @property
    def better_at_chance(self) -> bool:
        return self.of > 0 and all(p.loss_at_chance for p in self._progress(self.better, self.better_losses))

    @property
    def worse_at_chance(self) -> bool:
        return self.of > 0 and all(p.loss_at_chance for p in self._progress(self.worse, self.worse_losses))

    @property
    def verdict(self) -> str:
        """ "holds", "reversed", "about the same", "mixed" (some seeds each way, or a gap within the spread),
        "at chance" (neither net left chance on any seed) or "no seeds"."""
        if not self.of:
            return "no seeds"
        if self.better_at_chance and self.worse_at_chance:
            return "at chance"
        steady = self.of == 1 or abs(self.margin) >= MARGIN
        if self.held == self.of and steady:
            return "holds"
        if self.reversed_ == self.of and steady:
            return "reversed"
        if self.held == 0 and self.reversed_ == 0:
            return "about the same"
        return "mixed"

    @property
    def robust(self) -> bool:
        """Held on every seed, with the mean gap at least `MARGIN` spreads."""
        return self.verdict == "holds"

    def _numbers(self, first: str) -> str:
        """The final losses, in the order the sentence names the nets (`first` first)."""
        w, b = mean_sd(list(self.worse_losses)), mean_sd(list(self.better_losses))
        pair = f"{w} vs {b}" if first == self.worse else f"{b} vs {w}"
        detail = f"final train loss {pair}"
        if self.of > 1 and math.isfinite(self.margin):
            detail += f"; gap {abs(self.margin):.1f}x the seed-to-seed spread"
        return detail

    def text(self) -> str:
        """The sentence for the verdict, its numbers in the order of the nets it names."""
        claim = self.claim or f"{self.worse} trains worse than {self.better}"
        first = self.better if claim.startswith(self.better) else self.worse  # whom the claim names first
        seeds = "seed" if self.of == 1 else "seeds"
        verdict = self.verdict
        if verdict == "no seeds":
            return f"{self.worse} and {self.better} share no seed: nothing to compare"
        if verdict == "at chance":
            chance = Progress(self.better, self.classes).chance_loss
            other = self.better if first == self.worse else self.worse
            return (f"No verdict on \"{claim}\": neither {first} nor {other} left chance in {self.of} {seeds} "
                    f"({self._numbers(first)}; chance is ln {self.classes} = {chance:.2f}), so these runs say "
                    "nothing about it; train longer, or on easier data")
        if verdict == "holds":
            return f"{claim} in {self.held} of {self.of} {seeds} ({self._numbers(first)})"
        if verdict == "about the same":
            return (f"{self.worse} and {self.better} end about the same, so \"{claim}\" is not shown "
                    f"({self._numbers(self.worse)}; a gap counts from {LOSS_THRESHOLD:.0%} of the larger "
                    f"loss and {LOSS_FLOOR:g})")
        if verdict == "reversed":
            return (f"The opposite of \"{claim}\": {self.better} ends worse than {self.worse} in "
                    f"{self.reversed_} of {self.of} {seeds} ({self._numbers(self.worse)})")
        return (f"\"{claim}\" only in {self.held} of {self.of} {seeds}, so it is not shown "
                f"({self._numbers(first)}; it needs every seed and a gap of {MARGIN:g} seed-to-seed spreads)")


def compare_losses(worse: str, better: str, losses: Mapping[str, Mapping[int, float]], claim: str = "",
                   classes: int = 10) -> Check:
    """A `Check` from final losses by model name, then by seed; seeds missing on either side are left out."""
    seeds = tuple(sorted(set(losses.get(worse, {})) & set(losses.get(better, {}))))
    return Check(worse, better, seeds, tuple(losses[worse][s] for s in seeds),
                 tuple(losses[better][s] for s in seeds), claim, classes)


def degradation_checks(losses: Mapping[str, Mapping[int, float]], shallow: int, deep: int,
                       classes: int = 10) -> list[Check]:
    """He et al. 2015 Fig. 6's two claims for CIFAR plain/residual nets at two depths.

    Args:
        losses: final training loss by model name ("plain20", "resnet56", ...), then by seed.
        classes: the nets' classes (chance's loss is ln C).
    """
    return [
        compare_losses(f"plain{deep}", f"plain{shallow}", losses, classes=classes),
        compare_losses(f"plain{deep}", f"resnet{deep}", losses, claim=f"resnet{deep} trains better than plain{deep}",
                       classes=classes),
    ]


def progress_of(label: str, classes: int, metrics: pd.DataFrame | None, evals: pd.DataFrame | None) -> Progress:
    """How far a run got from chance: its final training loss (`tail_mean`) and its last held-out
    accuracy (the training accuracy when it has no evaluation)."""
    loss = tail_mean(metrics, "loss")
    accuracy, kind = None, "held-out"
    if evals is not None and not evals.empty and "accuracy" in evals.columns:
        values = pd.to_numeric(evals["accuracy"], errors="coerce").dropna()
        accuracy = float(values.iloc[-1]) if len(values) else None
    if accuracy is None:
        accuracy, kind = tail_mean(metrics, "accuracy"), "training"
    return Progress(label, classes, loss=loss, accuracy=accuracy, accuracy_kind=kind)


# --- captions ----------------------------------------------------------------------------------

def _latest(df: pd.DataFrame | None) -> pd.DataFrame | None:
    if df is None or df.empty or "step" not in df.columns:
        return None
    steps = pd.to_numeric(df["step"], errors="coerce")
    return df[steps == steps.max()]


REFINE_FACTOR = 1.25  # a unit's F(x) is smaller (larger) than x when ||F(x)|| / ||x|| < 1/1.25 = 0.8 (> 1.25)
GRADIENT_FACTOR = 1.5  # residual and plain first-to-last gradient ratios differ when one is 1.5x the other
RESPONSE_THRESHOLD = 0.05  # mean response stds differ when the gap is at least 5% of the larger


def _unusable(labels, progress: Mapping[str, Progress] | None) -> list[Progress]:
    """The runs among `labels` that have not left chance (their internals support no claim)."""
    progress = progress or {}
    return [progress[k] for k in labels if k in progress and progress[k].at_chance]


def ratio_finding(label: str, norms: pd.DataFrame | None, progress: Progress | None = None) -> str | None:
    """How the units of a residual run compare F(x) with x, at its latest probe.

    A unit adds a smaller (larger) change than its input when ||F(x)|| / ||x|| is below 1/`REFINE_FACTOR`
    (above `REFINE_FACTOR`); in between, about its own size. "Most units refine" is said only when more
    than half are smaller. A run at chance gets no claim (`progress`).
    """
    if progress is not None and progress.at_chance:
        return progress.text()
    at = _latest(norms)
    if at is None or "ratio" not in at.columns:
        return None
    ratios = pd.to_numeric(at.groupby("unit")["ratio"].mean(), errors="coerce").dropna()
    ratios = ratios[ratios > 0]
    if ratios.empty:
        return None
    words = [Difference("||F(x)|| / ||x||", (str(u), "1"), (float(r), 1.0), REFINE_FACTOR, scale="ratio").direction
             for u, r in ratios.items()]
    small, same, large = words.count(-1), words.count(0), words.count(1)
    n, median = len(ratios), float(ratios.median())
    step = int(pd.to_numeric(at["step"]).max())
    low, high = 1 / REFINE_FACTOR, REFINE_FACTOR
    counts = [f"{c} {w}" for c, w in ((small, f"add an F(x) smaller than their input x (ratio below {low:.2f})"),
                                        (same, f"an F(x) about as large as x ({low:.2f} to {high:.2f})"),
                                        (large, f"an F(x) larger than x (above {high:.2f})")) if c]
    text = (f"At step {step:,}, of the {n} units of {label}, " + ", ".join(counts)
            + f"; the median ||F(x)|| / ||x|| is {median:.2f}.")
    if small * 2 > n:
        return text + " Most units refine their input rather than replace it, as He et al. 2016 describe."
    if large * 2 > n:
        return text + (" Most units change their input by more than its own size; He et al. 2016 describe "
                       "residual units as small refinements, which this run does not show.")
    return text + (" Most units do not add a clearly smaller change than their input; He et al. 2016 describe "
                   "residual units as small refinements, which this run does not show.")


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


def gradient_finding(grad: Mapping[str, pd.DataFrame | None], residual: Mapping[str, bool],
                     progress: Mapping[str, Progress] | None = None) -> str | None:
    """How large the first conv's gradient is next to the last conv's, per run, at its latest probe, and
    whether the residual nets' ratio differs from the plain nets' by at least `GRADIENT_FACTOR`.

    Runs at chance (`progress`) are named and left out of the comparison.
    """
    parts, ratios = [], {}
    for label, df in grad.items():
        found = _first_last_grad(df)
        if found is None or not found[1] > 0 or not found[0] > 0:
            continue
        first, last, step = found
        ratios[label] = first / last
        parts.append(f"{label}'s first conv gets a gradient {first / last:.2g}x its last conv's (step {step:,})")
    if not parts:
        return None
    text = "; ".join(parts) + "."
    stuck = _unusable(ratios, progress)
    if stuck:
        text += " " + " ".join(p.text() for p in stuck)
    usable = {k: v for k, v in ratios.items() if k not in {p.label for p in stuck}}
    res = [usable[k] for k in usable if residual.get(k)]
    plain = [usable[k] for k in usable if k in residual and not residual[k]]
    if not (res and plain):
        return text
    res_label, plain_label = ("the residual nets", "the plain nets") if len(res) + len(plain) > 2 else (
        next(k for k in usable if residual.get(k)), next(k for k in usable if k in residual and not residual[k]))
    lower, upper = (min(res), max(plain))
    d = Difference("first-to-last gradient ratio", (res_label, plain_label), (lower, upper), GRADIENT_FACTOR,
                   scale="ratio")
    if d.direction == 1 and min(res) > max(plain):
        text += (f" The early layers of {res_label} get relatively larger gradients than those of {plain_label} "
                 f"(by at least {GRADIENT_FACTOR:g}x): the shortcuts carry the gradient back.")
    elif max(res) < min(plain) and Difference("", ("", ""), (min(plain), max(res)), GRADIENT_FACTOR,
                                              scale="ratio").direction == 1:
        text += (f" Here the early layers of {plain_label} get relatively larger gradients than those of "
                 f"{res_label}; He et al. attribute residual nets' easier optimisation to shortcuts carrying the "
                 "signal, which this measure does not show.")
    else:
        text += (f" So {res_label} and {plain_label} get about the same share of the gradient at their early "
                 f"layers (a difference counts from {GRADIENT_FACTOR:g}x); this measure does not show the shortcuts "
                 "carrying more gradient back.")
    return text


def _mean_std(df: pd.DataFrame | None) -> float | None:
    at = _latest(df) if df is not None and "step" in getattr(df, "columns", ()) else df
    if at is None or at.empty or "std" not in at.columns:
        return None
    values = pd.to_numeric(at["std"], errors="coerce").to_numpy()
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def responses_finding(responses: Mapping[str, pd.DataFrame | None], residual: Mapping[str, bool],
                      depth: Mapping[str, int], progress: Mapping[str, Progress] | None = None,
                      measured: str = "") -> str | None:
    """Mean response std of residual vs plain twins at the same depth, worded by what the data show.

    He et al. 2015 (Fig. 7) report smaller responses for residual nets; "smaller" is claimed here only
    when the residual net's mean std is at least `RESPONSE_THRESHOLD` below its plain twin's, and only
    when both nets left chance (`progress`). `measured` names the measurement ("in eval mode on 256
    held-out images"): the same quantity must be measured the same way wherever it is compared.
    """
    means = {label: m for label, df in responses.items() if (m := _mean_std(df)) is not None}
    sentences = []
    for res_label in [k for k in means if residual.get(k)]:
        twin = next((k for k in means if k in residual and not residual[k] and depth.get(k) == depth.get(res_label)),
                    None)
        if twin is None:
            continue
        r, p = means[res_label], means[twin]
        stuck = _unusable((res_label, twin), progress)
        head = f"{res_label}'s responses average {r:.3g}, {twin}'s {p:.3g}{' ' + measured if measured else ''}"
        if stuck:
            sentences.append(f"{head}: no verdict, as " + " and ".join(s.label for s in stuck)
                             + f" {'has' if len(stuck) == 1 else 'have'} not left chance (an untrained net's "
                             "responses say nothing about Fig. 7).")
            continue
        d = Difference("mean response std", (res_label, twin), (r, p), RESPONSE_THRESHOLD)
        word = d.word(larger="larger, unlike He et al. 2015's finding of smaller residual responses",
                      smaller="smaller, as He et al. 2015 report",
                      same=f"about the same ({d.why_same()}; He et al. 2015 report smaller responses for residual "
                           "nets, which these runs do not show)")
        sentences.append(f"{head}: {word}.")
    return " ".join(sentences) or None
