"""The file formats each output takes, named once: the CLI's --format values, their help and their check.

Light on purpose (no plotly, no torch): the CLI builds its help from these before importing anything heavy.
"""

from __future__ import annotations

from collections.abc import Sequence

STATIC_FORMATS = ("png", "svg")  # rendered by kaleido
FIGURE_FORMATS = ("html", *STATIC_FORMATS, "json")  # what `export.write_figure` writes: lenses, profile
INFO_FORMATS = (*FIGURE_FORMATS, "csv")  # `info --export`: the block graph and its stage/unit tables
REPORT_FORMATS = ("html", *STATIC_FORMATS)  # `report`: figures its index.html shows


def check_formats(formats: Sequence[str] | str, allowed: Sequence[str] = FIGURE_FORMATS,
                  what: str = "figure") -> list[str]:
    """`formats` (a list or a comma list) validated against `allowed`, in the order given, without repeats.

    Raises:
        ValueError: none given, or one outside `allowed` (the message lists them).
    """
    if isinstance(formats, str):
        formats = formats.split(",")
    chosen = list(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    bad = [f for f in chosen if f not in allowed]
    if bad or not chosen:
        problem = f"unknown {what} format(s) {', '.join(bad)}" if bad else f"no {what} format given"
        raise ValueError(f"{problem}: use one or more of {', '.join(allowed)}")
    return chosen
