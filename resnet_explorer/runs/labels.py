"""How a run is named for people: its model, data and id ("resnet20 · shapes-easy 16px · ab12"), read from
run.json, any field of which may be missing or damaged; never a source of decisions."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .store import IMPORTED, is_imported, is_int, section

LABEL_SEPARATOR = " · "
SHORT_ID = 4  # characters of the id a label shows: the id's random suffix (`new_run_id`)
_MAX_DATA_NAME = 40


def data_label(info: dict[str, Any]) -> str:
    """The data a run names in its label, from run.json: "shapes-easy 16px", "folder:pets 64px", "imagenet 224px".

    The data section (written when training starts) comes first, then the config's dataset and
    image size; an imported run without either is "imported", any other run "unknown data". A field
    of the wrong type is left out, never an error.
    """
    data, config = section(info, "data"), section(info, "config")
    name = next((v for v in (data.get("name"), config.get("dataset")) if isinstance(v, str) and v.strip()), None)
    size = next((v for v in (data.get("image_size"), config.get("image_size")) if is_int(v) and v > 0), None)
    if name is None:
        return IMPORTED if is_imported(info) else "unknown data"
    name = " ".join(name.split())
    if name.startswith("folder:"):  # the folder's own name, not its whole path
        name = "folder:" + (re.split(r"[\\/]", name[len("folder:"):].rstrip("/\\"))[-1] or "?")
    if len(name) > _MAX_DATA_NAME:
        name = name[:_MAX_DATA_NAME - 3] + "..."
    return f"{name} {size}px" if size is not None else name


def run_label(info: dict[str, Any], run_id: str, model: str | None = None, *, full_id: bool = False) -> str:
    """The one way a run is named for people: model, data and id, e.g. "resnet20 · shapes-easy 16px · ab12".

    Args:
        info: run.json as read (any field may be missing or damaged: it is left out, never an error).
        run_id: the run's id; the label shows its last `SHORT_ID` characters, or all of it with `full_id`.
        model: the model's name (default: run.json's spec_name, "?" without one).
    """
    if model is None:
        name = info.get("spec_name")
        model = name if isinstance(name, str) and name else "?"
    short = run_id if full_id or len(run_id) <= SHORT_ID else run_id[-SHORT_ID:]
    return LABEL_SEPARATOR.join((model, data_label(info), short))


def unique_labels(labels: Sequence[tuple[str, str]]) -> list[str]:
    """Labels that tell runs apart, in order, from (label, full label) pairs (`Run.label`, `Run.full_label`):
    the full label (the whole id) where two labels collide, then " [2]", " [3]" where even those do (the same
    run given twice)."""
    counts = Counter(short for short, _ in labels)
    chosen = [full if counts[short] > 1 else short for short, full in labels]
    counts = Counter(chosen)
    seen: Counter[str] = Counter()
    unique = []
    for label in chosen:
        seen[label] += 1
        unique.append(f"{label} [{seen[label]}]" if counts[label] > 1 else label)
    return unique
