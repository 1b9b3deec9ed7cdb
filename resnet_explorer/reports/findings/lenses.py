"""What the Explain page's lenses and the Pretrained page's unit profile actually show, worded from their numbers.

Every sentence here is built from the measurements it describes, under the rules of `evidence`:
a net at chance supports no claim, and a difference under its threshold is "about the same".
The thresholds, each the smallest difference worth a word:

- loss landscape: two surfaces bend down (negative second differences along grid lines) at
  different shares of points only when the shares are `BEND_SHARE` (10 percentage points) apart
  AND at least `BEND_POINTS` (5) more second differences bend: one grid point of 121 is neither.
  One surface rises more toward the edge only when the edge rises (edge loss / loss at the trained
  weights) differ by a factor `RISE_FACTOR` (1.5).
- lesions: the half-way mark is a threshold (the intact net's error plus half its distance to
  chance), stated as one, with the measured mean error beside it; an intact net at chance (the
  `Progress` rule) gets no claim.
- paths: one path's gradient shrinks (or grows) by a fixed factor per unit passed only when a
  least-squares line through log(gradient) over k fits with R^2 >= `GEOMETRIC_R2` (0.95) and the
  curve is monotone (no step against the trend larger than `MONOTONE_SLACK`, 5%); otherwise the
  curve's shape is described (falls then rises, minimum at k = ...), a fall or rise counting when
  it spans a factor `SHAPE_FACTOR` (1.25).
- unit profile: shape-changing and identity units' mean residual ratios differ only past a factor
  `RATIO_FACTOR` (1.5; the 0.02-0.07 gaps of the nets trained for the README are under it), and a
  ratio falls or rises within a stage only past a factor `TREND_FACTOR` (1.25). Deleting a unit
  that changes the shape hurts more than deleting one that keeps it only when the shares of images
  whose top class changes are `FLIP_POINTS` (5 points) and `FLIP_IMAGES` (2) images apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .evidence import Difference, Progress

__all__ = [
    "BEND_POINTS", "BEND_SHARE", "FLIP_IMAGES", "FLIP_POINTS", "GEOMETRIC_R2", "MONOTONE_SLACK", "RATIO_FACTOR",
    "RISE_FACTOR", "SHAPE_FACTOR", "TREND_FACTOR", "PathShape", "bend_difference", "bend_direction", "halfway_sentence",
    "landscape_clause", "landscape_comparison", "path_shape", "profile_lesion_findings", "profile_ratio_findings",
    "single_lesion_sentence",
]

BEND_SHARE = 0.10  # shares of bending points: at least 10 percentage points apart ...
BEND_POINTS = 5  # ... and at least 5 more bending second differences
RISE_FACTOR = 1.5  # edge rises a factor 1.5 apart: one surface is the steeper
GEOMETRIC_R2 = 0.95  # log-linear fit of a path's gradient over k: a fixed per-unit factor from this R^2
MONOTONE_SLACK = 0.05  # ... with no step against the trend of more than 5%
SHAPE_FACTOR = 1.25  # a fall or rise of the path curve counts from a factor 1.25
RATIO_FACTOR = 1.5  # shape-changing vs identity units' mean residual ratio
TREND_FACTOR = 1.25  # first vs last identity unit of a stage
FLIP_POINTS = 0.05  # shares of images whose top class changes: 5 points apart ...
FLIP_IMAGES = 2  # ... and at least 2 images


def _pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%" if value < 0.995 else f"{100 * value:.0f}%"


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- loss landscape --------------------------------------------------------------------------------

def _progress(label: str, stats: dict, classes: int | None) -> Progress | None:
    if not classes:
        return None
    return Progress(label, classes, loss=stats.get("centre_loss"), accuracy=stats.get("centre_accuracy"),
                    accuracy_kind="training")


def landscape_clause(label: str, stats: dict, span: float) -> str:
    """One run's landscape in a clause: loss at the weights and at the edge, and how often it bends down.

    `stats` is `analysis.landscape.summarize`'s dict ("bends" and "curvatures" count the bending and
    all finite second differences)."""
    rise = f" (x{stats['edge_rise']:.3g})" if _finite(stats.get("edge_rise")) else ""
    bends = ""
    if _finite(stats.get("nonconvex")):
        counted = f" ({stats['bends']} of {stats['curvatures']})" if stats.get("curvatures") else ""
        bends = f"; concave in {100 * stats['nonconvex']:.0f}%{counted} of second differences"
    return (f"{label}: loss {stats['centre_loss']:.3g} at the trained weights, {stats['edge_loss']:.3g} on average "
            f"at \u00b1{span:g}{rise}{bends}")


def bend_difference(labels: tuple[str, str], a: dict, b: dict) -> Difference:
    """Shares of bending second differences of two landscapes, `BEND_SHARE` apart to count; the count rule
    (`BEND_POINTS`) is applied by `bend_direction`."""
    return Difference("share of bending points", labels, (a.get("nonconvex", math.nan), b.get("nonconvex", math.nan)),
                      BEND_SHARE, "absolute")


def bend_direction(a: dict, b: dict) -> int:
    """+1: the first surface bends down at more points, -1: fewer, 0: about the same (under either rule)."""
    share = bend_difference(("a", "b"), a, b).direction
    counts = Difference("bending points", ("a", "b"), (a.get("bends", math.nan), b.get("bends", math.nan)),
                        BEND_POINTS, "absolute").direction
    return share if share == counts else 0


def landscape_comparison(labels: tuple[str, str], stats: tuple[dict, dict],
                         classes: tuple[int | None, int | None] = (None, None)) -> str:
    """A sentence comparing two landscapes (a net and its twin), each verdict thresholded; "" when
    there is nothing to compare. A net at chance at its trained weights gets no claim."""
    (la, lb), (a, b) = labels, stats
    stuck = [p for p in (_progress(la, a, classes[0]), _progress(lb, b, classes[1])) if p is not None and p.at_chance]
    if stuck:
        names = " and ".join(p.label for p in stuck)
        evidence = "; ".join(f"{p.label}: {p.evidence()}" for p in stuck)
        return (f"No comparison: {names} {'is' if len(stuck) == 1 else 'are'} at chance at the trained weights "
                f"({evidence}), so {'its' if len(stuck) == 1 else 'their'} surface is that of a net that has "
                "learnt nothing.")
    parts = []
    rise = Difference("edge rise", labels, (a.get("edge_rise", math.nan), b.get("edge_rise", math.nan)),
                      RISE_FACTOR, "ratio")
    if rise.comparable:
        if rise.direction:
            steep, flat = (la, lb) if rise.direction > 0 else (lb, la)
            parts.append(f"{steep}'s loss rises more toward the edge, relative to its loss at the trained weights, "
                         f"than {flat}'s (x{max(rise.values):.3g} vs x{min(rise.values):.3g}, over the "
                         f"factor {RISE_FACTOR:g} that counts)")
        else:
            parts.append(f"toward the edge both losses rise about as much, relative to their loss at the trained "
                         f"weights (x{rise.values[0]:.3g} vs x{rise.values[1]:.3g}: {rise.why_same()})")
    share = bend_difference(labels, a, b)
    if share.comparable:
        direction = bend_direction(a, b)
        numbers = (f"{100 * share.values[0]:.0f}% vs {100 * share.values[1]:.0f}% of second differences, "
                   f"{a.get('bends', '?')} vs {b.get('bends', '?')} points")
        if direction:
            more, fewer = (la, lb) if direction > 0 else (lb, la)
            parts.append(f"{more}'s surface bends down at more points than {fewer}'s ({numbers}): less convex")
        else:
            parts.append(f"both bend down at about the same share of points ({numbers}: under "
                         f"{100 * BEND_SHARE:.0f} percentage points or {BEND_POINTS} points apart)")
    if not parts:
        return ""
    return "Here " + "; ".join(parts) + "."


# --- lesions --------------------------------------------------------------------------------------

def _at_chance(label: str, baseline_error: float, classes: int) -> Progress | None:
    progress = Progress(label, classes, accuracy=1 - baseline_error, accuracy_kind="held-out")
    return progress if progress.at_chance else None


def halfway_sentence(label: str, baseline_error: float, classes: int, ks: Sequence[int], means: Sequence[float],
                     max_k: int, what: str = "k") -> str:
    """When the mean error first passes the half-way mark from the intact net's error to chance's.

    The mark is a threshold, stated as one; the measured mean error at that k is given beside it.
    Args:
        ks, means: the mean error per k (k = 0, the intact net, is skipped).
        max_k: the largest k possible.
        what: the name of k in the sentence.
    """
    stuck = _at_chance(label, baseline_error, classes)
    if stuck is not None:
        return (f"{label}: the intact net is at chance ({stuck.evidence()}), so there is nothing for deleting or "
                "swapping units to take away: no claim.")
    chance = 1 - 1 / classes
    target = baseline_error + 0.5 * (chance - baseline_error)
    mark = (f"{_pct(target)}, half-way from the intact net's {_pct(baseline_error)} to chance's {_pct(chance)}")
    measured = [(int(k), float(m)) for k, m in zip(ks, means) if k > 0 and _finite(m)]
    if not measured:
        return f"{label}: intact {_pct(baseline_error)}; nothing measured past {what} = 0."
    hit = next(((k, m) for k, m in measured if m >= target), None)
    if hit is None:
        top_k, top = max(measured, key=lambda km: km[1])
        return (f"{label}: the mean error stays below {mark}, up to {what} = {measured[-1][0]} of {max_k} "
                f"(largest measured {_pct(top)}, at {what} = {top_k}).")
    return f"{label}: the mean error first passes {mark}, at {what} = {hit[0]} of {max_k} (measured {_pct(hit[1])})."


def single_lesion_sentence(label: str, rows: pd.DataFrame, baseline_error: float, classes: int,
                           images: int) -> str:
    """One sentence on deleting each unit alone: the median and the largest jump; that deleting a
    downsampling unit hurts more than any other only past `FLIP_POINTS` and `FLIP_IMAGES`."""
    done = rows[rows["deletable"].astype(bool) & rows["error"].notna()]
    blocked = int((~rows["deletable"].astype(bool)).sum())
    tail = (f"; {blocked} unit{'s' if blocked > 1 else ''} change{'' if blocked > 1 else 's'} the shape and "
            "cannot be deleted") if blocked else ""
    if done.empty:
        return f"{label}: no unit can be deleted (intact error {_pct(baseline_error)}){tail}."
    stuck = _at_chance(label, baseline_error, classes)
    if stuck is not None:
        return f"{label}: the intact net is at chance ({stuck.evidence()}), so deleting units says nothing{tail}."
    median = float(done["error"].median())
    worst = done.loc[done["error"].idxmax()]
    where = "a downsampling unit" if bool(worst["downsampling"]) else "not a downsampling unit"
    text = (f"{label}: intact {_pct(baseline_error)}; deleting one of its {len(done)} deletable units gives a "
            f"median of {_pct(median)}, the largest jump (+{100 * (worst['error'] - baseline_error):.1f} points) "
            f"at {worst['unit']}, {where}")
    keep = done[~done["downsampling"].astype(bool)]
    if bool(worst["downsampling"]) and len(keep):
        rest = float(keep["error"].max())
        gap = _flip_difference(("downsampling", "rest"), float(worst["error"]), rest, images)
        if gap.direction > 0:
            text += f"; deleting any unit that keeps the resolution gives {_pct(rest)} or less"
        else:
            text += (f"; deleting a unit that keeps the resolution gives up to {_pct(rest)}, about the same "
                     f"({_flip_why(gap)})")
    return text + tail + "."


def _flip_difference(labels: tuple[str, str], a: float, b: float, images: int) -> Difference:
    """Two shares of images, `FLIP_POINTS` and `FLIP_IMAGES` images apart to count."""
    threshold = max(FLIP_POINTS, FLIP_IMAGES / images) if images > 0 else FLIP_POINTS
    return Difference("share of images", labels, (a, b), threshold, "absolute")


def _flip_why(gap: Difference) -> str:
    return f"the two differ by less than {100 * gap.threshold:.0f} percentage points"


# --- paths ----------------------------------------------------------------------------------------

class PathShape:
    """The shape of one path's gradient over the path length k, from the measured lengths.

    Attributes:
        kind: "geometric" (a fixed factor per unit: R^2 >= GEOMETRIC_R2 and monotone), "flat" (max/min
            under SHAPE_FACTOR), "falls then rises", "rises then falls", "falls", "rises" or "irregular";
            "none" when fewer than 3 lengths have a positive gradient.
        factor: exp of the least-squares slope of log(gradient) over k (NaN without a fit).
        r2: that fit's R^2.
    """

    def __init__(self, ks: Sequence[float], grads: Sequence[float]) -> None:
        ks_arr, g = np.asarray(ks, float), np.asarray(grads, float)
        keep = np.isfinite(g) & (g > 0) & np.isfinite(ks_arr)
        order = np.argsort(ks_arr[keep])
        self.ks, self.grads = ks_arr[keep][order], g[keep][order]
        self.factor, self.r2, self.kind = math.nan, math.nan, "none"
        if len(self.ks) < 3:
            return
        logs = np.log(self.grads)
        slope, intercept = np.polyfit(self.ks, logs, 1)
        resid = logs - (slope * self.ks + intercept)
        total = float(((logs - logs.mean()) ** 2).sum())
        self.r2 = 1 - float((resid ** 2).sum()) / total if total > 0 else 1.0
        self.factor = float(math.exp(slope))
        steps = np.diff(logs)
        against = steps * math.copysign(1.0, slope)
        monotone = bool((against >= math.log(1 - MONOTONE_SLACK)).all())
        span = Difference("gradient", ("max", "min"), (float(self.grads.max()), float(self.grads.min())),
                          SHAPE_FACTOR, "ratio")
        if span.direction == 0:
            self.kind = "flat"
        elif self.r2 >= GEOMETRIC_R2 and monotone:
            self.kind = "geometric"
        else:
            self.kind = self._bend()

    def _changes(self, i: int, j: int) -> int:
        """+1 if the gradient rises from length i to j by the factor that counts, -1 if it falls, 0 if not."""
        return Difference("gradient", ("j", "i"), (float(self.grads[j]), float(self.grads[i])), SHAPE_FACTOR,
                          "ratio").direction

    def _bend(self) -> str:
        low, high = int(np.argmin(self.grads)), int(np.argmax(self.grads))
        last = len(self.grads) - 1
        if 0 < low < last and self._changes(0, low) < 0 and self._changes(low, last) > 0:
            return "falls then rises"
        if 0 < high < last and self._changes(0, high) > 0 and self._changes(high, last) < 0:
            return "rises then falls"
        end = self._changes(0, last)
        return {-1: "falls", 1: "rises"}.get(end, "irregular") if end and (low in (0, last)) and \
            (high in (0, last)) else "irregular"

    def k_at(self, index: int) -> int:
        return int(self.ks[index])

    def text(self) -> str:
        """A clause on the curve's shape ("" without enough lengths)."""
        if self.kind == "none":
            return ""
        g, ks = self.grads, self.ks
        lo, hi = int(np.argmin(g)), int(np.argmax(g))
        ends = f"{_num(g[0], 3)} at k = {int(ks[0])}, {_num(g[-1], 3)} at k = {int(ks[-1])}"
        fit = f"log-linear fit R^2 = {self.r2:.2f}"
        if self.kind == "geometric":
            return f"one path's gradient x{self.factor:.3g} per unit passed ({fit}; {ends})"
        if self.kind == "flat":
            return (f"one path's gradient is about the same at every length ({_num(g.min(), 3)} to "
                    f"{_num(g.max(), 3)}, within a factor {SHAPE_FACTOR:g})")
        head = f"one path's gradient is not geometric in k ({fit}"
        if self.kind == "falls then rises":
            return (f"{head}): it falls from {_num(g[0], 3)} at k = {int(ks[0])} to a minimum of {_num(g[lo], 3)} at "
                    f"k = {int(ks[lo])}, then rises to {_num(g[-1], 3)} at k = {int(ks[-1])}")
        if self.kind == "rises then falls":
            return (f"{head}): it rises from {_num(g[0], 3)} at k = {int(ks[0])} to a maximum of {_num(g[hi], 3)} at "
                    f"k = {int(ks[hi])}, then falls to {_num(g[-1], 3)} at k = {int(ks[-1])}")
        if self.kind in ("falls", "rises"):
            return f"{head}): it {self.kind} overall, {ends}"
        return (f"{head}): smallest {_num(g[lo], 3)} at k = {int(ks[lo])}, largest {_num(g[hi], 3)} at "
                f"k = {int(ks[hi])}")


def path_shape(ks: Sequence[float], grads: Sequence[float]) -> PathShape:
    return PathShape(ks, grads)


# --- unit profile ---------------------------------------------------------------------------------

def profile_ratio_findings(ratios: pd.DataFrame) -> list[str]:
    """Sentences comparing shape-changing with identity units and the first with the last identity unit
    of each stage, each through `Difference` (ratio scale: `RATIO_FACTOR`, `TREND_FACTOR`)."""
    out = []
    changing = ratios[ratios["changes_shape"].astype(bool)]
    same = ratios[~ratios["changes_shape"].astype(bool)]
    if len(changing) and len(same):
        a, b = float(changing["ratio_mean"].mean()), float(same["ratio_mean"].mean())
        gap = Difference("mean residual ratio", ("shape-changing", "identity"), (a, b), RATIO_FACTOR, "ratio")
        digits = 3 if _num(a) == _num(b) else 2
        relation = {1: "larger than", -1: "smaller than", 0: "about the same as"}[gap.direction]
        why = f" ({gap.why_same()})" if gap.direction == 0 else ""
        out.append(f"Units that change the shape average {_num(a, digits)} ({_count(len(changing), 'unit')}), "
                   f"{relation} the {_num(b, digits)} of the {_count(len(same), 'identity-shortcut unit')}{why}.")
    falls, rises, flat, stages = [], [], [], 0
    for _, group in same.groupby("stage"):
        if len(group) < 2:
            continue
        stages += 1
        first, last = group.iloc[0], group.iloc[-1]
        trend = Difference("residual ratio", ("last", "first"), (float(last["ratio_mean"]),
                                                                  float(first["ratio_mean"])), TREND_FACTOR, "ratio")
        digits = 3 if _num(first["ratio_mean"]) == _num(last["ratio_mean"]) else 2
        step = (f"{first['unit']} {_num(first['ratio_mean'], digits)} -> "
                f"{last['unit']} {_num(last['ratio_mean'], digits)}")
        {-1: falls, 1: rises, 0: flat}[trend.direction].append(step)
    if stages:
        of = f"{stages} stage{'s' * (stages != 1)}"
        if falls:
            out.append(f"Within a stage the ratio falls from the first to the last identity unit, by more than a "
                       f"factor {TREND_FACTOR:g}, in {len(falls)} of {of} ({'; '.join(falls[:4])}).")
        else:
            out.append(f"Within no stage does the ratio fall from the first to the last identity unit by more "
                       f"than a factor {TREND_FACTOR:g} ({of} with two or more).")
        if rises:
            out.append(f"It rises by more than that in {len(rises)} of {of} ({'; '.join(rises[:4])}).")
    return out


def profile_lesion_findings(rows: pd.DataFrame, top1_prob: float, images: int) -> list[str]:
    """Sentences on single-unit lesions of a profile (top-1 flips against the intact net's own top-1)."""
    done = rows[rows["deletable"].astype(bool) & rows["flip_rate"].notna()]
    blocked = rows[~rows["deletable"].astype(bool)]
    out = []
    if len(done):
        worst = done.loc[done["flip_rate"].idxmax()]
        where = ", a downsampling unit" if bool(worst["downsampling"]) else ""
        drop = float(worst["prob_drop"])
        change = f"down {drop:.2f}" if drop >= 0 else f"up {-drop:.2f}"
        out.append(f"Deleting one unit changes the top-1 class of a median {_share(done['flip_rate'].median())} "
                   f"of the images; most at {worst['unit']}{where} ({_share(worst['flip_rate'])}, mean "
                   f"probability of the intact top-1 class {change} from {top1_prob:.2f}).")
        keep = done[~done["changes_shape"].astype(bool)]
        if bool(worst["changes_shape"]) and len(keep):
            rest = float(keep["flip_rate"].max())
            gap = _flip_difference(("shape-changing", "shape-keeping"), float(worst["flip_rate"]), rest, images)
            if gap.direction > 0:
                out.append(f"Deleting any unit that keeps the shape changes at most {_share(rest)}.")
            else:
                out.append(f"Deleting a unit that keeps the shape changes up to {_share(rest)}: about the same "
                           f"({_flip_why(gap)}).")
    if len(blocked):
        names = ", ".join(blocked["unit"][:6]) + (" ..." if len(blocked) > 6 else "")
        out.append(f"{len(blocked)} unit{'s' * (len(blocked) != 1)} cannot be deleted (shape change, no "
                   f"shortcut): {names}.")
    return out


def _share(value: float) -> str:
    pct = 100 * value
    return f"{pct:.0f}%" if pct >= 9.5 or round(pct, 1) == round(pct) else f"{pct:.1f}%"
