"""When a number says something, and when it says nothing.

Every finding sentence of the app, the CLI and the report rests on two rules written here once:

- **A run at chance supports no claim about its internals.** A net whose final training loss is
  still within `CHANCE_LOSS_MARGIN` of ln C (C classes: the loss of guessing uniformly), or whose
  accuracy is within `CHANCE_ACCURACY_MARGIN` of 1/C, has not learnt anything yet: its residual
  norms, gradients and responses are those of an untrained net. `Progress` names such a run.
- **A difference below its threshold, or below the seed spread, is "about the same".**
  `Difference` holds two measurements of one quantity with the smallest difference worth a word
  (relative, absolute or as a ratio) and, when seeds exist, their seed-to-seed spreads: a gap
  under `SEED_MARGIN` spreads is "about the same" too.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

CHANCE_LOSS_MARGIN = 0.10  # at chance: final training loss at least (1 - 0.10) x ln C
CHANCE_ACCURACY_MARGIN = 0.10  # ... or accuracy at most 1/C + 0.10 x (1 - 1/C)
SEED_MARGIN = 3.0  # over seeds, a gap counts when it is at least this many seed-to-seed spreads

Scale = Literal["relative", "absolute", "ratio"]


def spread(values: list[float]) -> float:
    """Seed-to-seed spread: the sample standard deviation (0 for a single value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _finite(value: float | None) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pct(value: float, digits: int = 0) -> str:
    return f"{100 * value:.{digits}f}%"


@dataclass(frozen=True)
class Progress:
    """How far one run got from guessing: its final training loss and accuracy against chance's.

    Args:
        label: the run as the page names it.
        classes: how many classes its head predicts (chance: loss ln C, accuracy 1/C).
        loss: final training loss (the mean of the last logged rows), None when unknown.
        accuracy: final accuracy in [0, 1], None when unknown.
        accuracy_kind: "held-out" or "training": which accuracy `accuracy` is.
    """

    label: str
    classes: int
    loss: float | None = None
    accuracy: float | None = None
    accuracy_kind: str = "held-out"

    @property
    def chance_loss(self) -> float:
        return math.log(self.classes) if self.classes > 1 else 0.0

    @property
    def chance_accuracy(self) -> float:
        return 1 / self.classes if self.classes > 0 else 1.0

    @property
    def loss_at_chance(self) -> bool:
        return _finite(self.loss) and self.loss >= (1 - CHANCE_LOSS_MARGIN) * self.chance_loss

    @property
    def accuracy_at_chance(self) -> bool:
        c = self.chance_accuracy
        return _finite(self.accuracy) and self.accuracy <= c + CHANCE_ACCURACY_MARGIN * (1 - c)

    @property
    def known(self) -> bool:
        return self.classes > 1 and (_finite(self.loss) or _finite(self.accuracy))

    @property
    def at_chance(self) -> bool:
        """True when either measurement is still at chance (a net that guesses on held-out images has
        not learnt what generalises, whatever its training loss)."""
        return self.known and (self.loss_at_chance or self.accuracy_at_chance)

    def evidence(self, chance: bool = True) -> str:
        """The numbers behind the verdict, each beside chance's: "final training loss 2.26 (chance: ln 10 =
        2.30), held-out accuracy 14% (chance 10%)"; without `chance`, the measurements alone."""
        parts = []
        if _finite(self.loss):
            parts.append(f"final training loss {self.loss:.2f}"
                         + (f" (chance: ln {self.classes} = {self.chance_loss:.2f})" if chance else ""))
        if _finite(self.accuracy):
            parts.append(f"{self.accuracy_kind} accuracy {pct(self.accuracy)}"
                         + (f" (chance {pct(self.chance_accuracy)})" if chance else ""))
        return ", ".join(parts)

    def text(self) -> str:
        """One sentence: whether the run left chance, and why that is said."""
        if not self.known:
            return f"{self.label} has no final loss or accuracy yet."
        if self.at_chance:
            return (f"{self.label} has not left chance: {self.evidence()}. It has learnt nothing yet, so its "
                    "residual norms, gradients and responses say nothing about trained nets.")
        return f"{self.label} has left chance: {self.evidence()}."


def at_chance_note(progress: list[Progress]) -> str | None:
    """A sentence naming the runs still at chance (None when every run with numbers has left it)."""
    stuck = [p for p in progress if p.at_chance]
    if len(stuck) < 2:
        return stuck[0].text() if stuck else None
    names = ", ".join(p.label for p in stuck[:-1]) + f" and {stuck[-1].label}"
    chance = {(p.classes, p.chance_loss, p.chance_accuracy) for p in stuck}
    if len(chance) == 1:
        classes, loss, accuracy = chance.pop()
        details = (f"chance is a loss of ln {classes} = {loss:.2f} and an accuracy of {pct(accuracy)}; "
                   + "; ".join(f"{p.label}: {p.evidence(chance=False)}" for p in stuck))
    else:
        details = "; ".join(f"{p.label}: {p.evidence()}" for p in stuck)
    return (f"{names} have not left chance ({details}). They have learnt nothing yet, so their residual norms, "
            "gradients and responses say nothing about trained nets.")


@dataclass(frozen=True)
class Difference:
    """Two measurements of one quantity, and whether they differ by enough to say so.

    Args:
        quantity: what was measured, as a sentence names it ("mean response std").
        labels: who the two values belong to, in the order of `values`.
        values: the two measurements (means over seeds when there are several).
        threshold: the smallest difference worth a word, on `scale`:
            "relative": |a - b| / max(|a|, |b|); "absolute": |a - b|; "ratio": max(a, b) / min(a, b)
            (both positive).
        floor: for "relative" only, an absolute difference below which nothing is said either.
        spreads: the two seed-to-seed spreads (sample sd; 0 for one seed).
        seeds: how many seeds the means are over (the seed test applies from 2).
    """

    quantity: str
    labels: tuple[str, str]
    values: tuple[float, float]
    threshold: float
    scale: Scale = "relative"
    floor: float = 0.0
    spreads: tuple[float, float] = (0.0, 0.0)
    seeds: int = 1

    @property
    def comparable(self) -> bool:
        a, b = self.values
        if not (_finite(a) and _finite(b)):
            return False
        return a > 0 and b > 0 if self.scale == "ratio" else True

    @property
    def size(self) -> float:
        """The difference on `scale`, signed: positive when the first value is the larger."""
        a, b = self.values
        if not self.comparable:
            return math.nan
        if self.scale == "ratio":
            return a / b if a >= b else -(b / a)
        if self.scale == "absolute":
            return a - b
        top = max(abs(a), abs(b))
        return (a - b) / top if top > 0 else 0.0

    @property
    def below_threshold(self) -> bool:
        a, b = self.values
        if self.scale == "ratio":
            return abs(self.size) < self.threshold
        if self.scale == "relative" and abs(a - b) < self.floor:
            return True
        return abs(self.size) < self.threshold

    @property
    def within_spread(self) -> bool:
        a, b = self.values
        return self.seeds > 1 and abs(a - b) < SEED_MARGIN * max(self.spreads)

    @property
    def direction(self) -> int:
        """+1: the first value is larger, -1: smaller, 0: about the same (or not comparable)."""
        if not self.comparable or self.below_threshold or self.within_spread:
            return 0
        return 1 if self.values[0] > self.values[1] else -1

    def why_same(self) -> str:
        """Why no direction is claimed ("" when one is)."""
        if not self.comparable:
            return "the two cannot be compared"
        if self.within_spread and not self.below_threshold:
            return f"the gap is under {SEED_MARGIN:g} seed-to-seed spreads"
        if self.direction != 0:
            return ""
        if self.scale == "ratio":
            return f"they differ by less than a factor {self.threshold:g}"
        if self.scale == "absolute":
            return f"they differ by less than {self.threshold:g}"
        return f"they differ by less than {self.threshold:.0%}"

    def word(self, larger: str = "larger", smaller: str = "smaller", same: str = "about the same") -> str:
        return {1: larger, -1: smaller, 0: same}[self.direction]
