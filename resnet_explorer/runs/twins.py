"""Plain/residual twins: runs paired by spec and training settings, never by name."""

from __future__ import annotations

from typing import Any

from ..models import ModelSpec
from ..training.config import TrainConfig

# What twins share besides the spec: the data (dataset, image_size, train_size, test_size), the seed
# and the budget (steps or epochs, batch_size per process and world_size: the global batch).
TWIN_CONFIG_FIELDS: tuple[str, ...] = ("dataset", "image_size", "train_size", "test_size", "seed", "steps", "epochs",
                                       "batch_size", "world_size")


def twin_key(spec: ModelSpec, config: TrainConfig | None) -> tuple[ModelSpec, tuple | None]:
    """What a run shares with its plain/residual twin: the spec without shortcuts (`ModelSpec.plain`,
    which also drops zero-init: plain nets cannot have it) and the config's TWIN_CONFIG_FIELDS
    (None for an imported run, which has no config)."""
    return spec.plain(), None if config is None else tuple(getattr(config, name) for name in TWIN_CONFIG_FIELDS)


def are_twins(a: tuple[ModelSpec, TrainConfig | None], b: tuple[ModelSpec, TrainConfig | None]) -> bool:
    """Whether two (spec, config) runs are twins: one residual, one plain, otherwise the same `twin_key`.
    An imported run (config None) was not trained here, so it is nobody's twin."""
    if a[1] is None or b[1] is None:
        return False
    return a[0].residual != b[0].residual and twin_key(*a) == twin_key(*b)


def _row_run(row: dict[str, Any]) -> tuple[ModelSpec, TrainConfig] | None:
    """The (spec, config) of a `list_runs` row; None when either is missing or invalid (an old or damaged run)."""
    try:
        return ModelSpec.from_dict(row.get("spec")), TrainConfig.from_dict(row.get("config"))
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None


def find_twin(runs: list[dict[str, Any]], run_id: str) -> str | None:
    """The newest other run of `runs` (rows of `list_runs`, newest first) that is `run_id`'s twin, or None.

    Twins are paired by spec, never by name: their specs differ only in `residual` (zero-init aside,
    `twin_key`), and they used the same data, seed and budget (`TWIN_CONFIG_FIELDS`). A run is never
    its own twin, nor is another run of the same spec. Rows without a valid spec and config pair with
    nothing.
    """
    row = next((r for r in runs if r.get("id") == run_id), None)
    mine = _row_run(row) if row is not None else None
    if mine is None:
        return None
    for other in runs:
        if other.get("id") == run_id:
            continue
        theirs = _row_run(other)
        if theirs is not None and are_twins(mine, theirs):
            return other["id"]
    return None
