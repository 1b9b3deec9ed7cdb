"""Renamed flags: the new spelling and the old one, accepted until the next release with a note."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .exits import CliError

RUNS_NOTE = "--out for the runs folder is now --runs; --out will mean an output folder in the next release"
PHOTOS_NOTE = "{old} is now --photos (your photos); {old} will be gone from `{command}` in the next release"


class _Spelling(argparse.Action):
    """Store a value, and record which spelling of the flag gave it (see `renamed`)."""

    def __init__(self, option_strings, dest, new: str | None = None, note: str | None = None, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.note = new or option_strings[0], note

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        used = (self.dest, self.option_strings[0], self.new, self.note)
        namespace._spellings = (*getattr(namespace, "_spellings", ()), used)


def renamed(p: argparse.ArgumentParser, new: str, old: str, note: str, **kwargs: Any) -> None:
    """Add flag `new` (argparse's `kwargs`) and `old`, its spelling until the next release, into one dest.

    `old` behaves exactly as `new` apart from `note`, printed on stderr as one line; both at once
    are refused (`check_spellings`, before the command runs).
    """
    action = p.add_argument(new, action=_Spelling, **kwargs)
    p.add_argument(old, dest=action.dest, action=_Spelling, new=new, note=note, type=kwargs.get("type"),
                   metavar=kwargs.get("metavar"), default=argparse.SUPPRESS,
                   help=f"the old spelling of {new}, accepted until the next release")


def check_spellings(args: argparse.Namespace) -> None:
    """Refuse a renamed flag given in both spellings; print the note of each old spelling used."""
    used = getattr(args, "_spellings", ())
    for dest, flag, new, note in used:
        if note and any(d == dest and n is None for d, _, _, n in used):
            raise CliError(f"give {new} or {flag} (its old spelling), not both")
    if os.environ.get("RANK", "0") in ("", "0"):  # under torchrun, rank 0 alone says it
        for note in dict.fromkeys(n for *_, n in used if n):
            print(f"note: {note}", file=sys.stderr)
