"""A task's options as data: each one's name, type, default, bounds, words and widget, written once.

A task (each lens, the unit profile) declares a tuple of `Option`s; the CLI's flags, the page's form, the check of
a request and its defaults are all made from it, so a bound or a default is never written twice.
Light on purpose (no torch, no Streamlit): the CLI builds its parser from these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..limits import check_int

__all__ = ["Option", "check_options", "defaults"]


@dataclass(frozen=True)
class Option:
    """One option of a task.

    Attributes:
        name: the key in the options dict, and the CLI flag (``--name``; a bool is ``--name/--no-name``).
        kind: int, float, bool (a switch) or str (a path; "" for none).
        default: its value when not given.
        low, high: the bounds, inclusive (``above_low``: low itself excluded, for a float); for a str,
            ``high`` is its longest length; a bool has none (0, 1).
        help: what it means, one phrase: the CLI's help and the page's tooltip.
        label: the page's field label.
        step: the page's step (None: 1 for an int).
        choices: the only values allowed (the page shows a select box); with ``many``, of each item.
        many: a str that is a comma list of ``choices``, at least one, each once (e.g. "saliency,gradcam").
        odd: an int that must be odd; `odd_why` says why.
        fmt: the page's number format (e.g. "%.2f").
        old_flag: the flag's spelling before it was renamed, still accepted by the CLI for one release.
        unless: another option that, when given, leaves this one unused (profile's held-out ``samples`` unless
            ``photos``): the CLI refuses the two together in one line.
    """

    name: str
    kind: type
    default: Any
    low: float
    high: float
    help: str
    label: str
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    odd: bool = False
    odd_why: str = ""
    above_low: bool = False
    fmt: str | None = None
    old_flag: str = ""
    many: bool = False
    unless: str = ""

    def check(self, value: Any) -> Any:
        """`value` checked against the bounds (one-line ValueError naming the option), as its kind."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.kind is str:
            if not isinstance(value, str) or len(value) > self.high:
                raise ValueError(f"{self.name} must be text of at most {int(self.high):,} characters")
            return self._chosen(value.strip())
        if self.kind is int:
            value = check_int(self.name, value, int(self.low), int(self.high))
            if self.odd and value % 2 == 0:
                raise ValueError(f"{self.name} must be odd, {self.odd_why}; got {value}")
            return self._chosen(value)
        low_words = f"above {self.low:g}" if self.above_low else f"at least {self.low:g}"
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
                or not (self.low < value if self.above_low else self.low <= value) or value > self.high):
            raise ValueError(f"{self.name} must be a number {low_words} and at most {self.high:g}, got {value!r}")
        return float(value)

    def _chosen(self, value: Any) -> Any:
        """`value` (an item list with ``many``, as "a,b") when ``choices`` allow it; else a one-line ValueError."""
        if self.choices is None:
            return value
        if self.many:
            items = [v.strip() for v in value.split(",") if v.strip()]
            wrong = [v for v in items if v not in self.choices]
            if wrong or not items or len(set(items)) < len(items):
                raise ValueError(f"{self.name} must be a comma list of {', '.join(map(str, self.choices))}, each "
                                 f"at most once and at least one; got {value!r}")
            return ",".join(items)
        if value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value

    def cli_help(self) -> str:
        """The CLI flag's help: the meaning, the bound, the default."""
        if self.kind is bool:
            return f"{self.help} (default {'on' if self.default else 'off'})"
        if self.kind is str:
            return f"{self.help} (default {self.default or 'none'})"
        bound = (f"one of {', '.join(map(str, self.choices))}" if self.choices
                 else f"at most {self.high:,}" if self.kind is int else f"at most {self.high:g}")
        default = f"{self.default:,}" if self.kind is int else str(self.default)  # the Option's, not argparse's
        return f"{self.help}, {bound} (default {default})"


def defaults(options: Sequence[Option]) -> dict[str, Any]:
    """Every option's default, by name."""
    return {o.name: o.default for o in options}


def check_options(options: Sequence[Option], given: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """`given` with the defaults filled in, each value checked; one-line ValueError for an unknown name
    (``what`` names the task in it) or a value out of bounds."""
    names = [o.name for o in options]
    unknown = sorted(set(given or {}) - set(names))
    if unknown:
        raise ValueError(f"unknown {what} option(s) {', '.join(unknown)}; options: {', '.join(names)}")
    merged = {**defaults(options), **(given or {})}
    return {o.name: o.check(merged[o.name]) for o in options}
