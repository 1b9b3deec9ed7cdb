"""Runs on disk: the store (`store`: one folder per run, written atomically; `reader`: reading it back;
`labels`: how a run is named; `twins`: plain/residual twins paired by spec), imported and published
weights (`checkpoints`, `published`) and whether a run's writer is alive (`liveness`). The public names
of the store, its reader, labels and twins are re-exported here."""

from .labels import data_label, run_label, unique_labels
from .reader import Run, RunSample, list_runs, load_run
from .store import (
    DEFAULT_ROOT,
    IMPORTED,
    STAGING_SUFFIX,
    TABLES,
    RunWriter,
    inside_run,
    is_imported,
    new_run_id,
    remove_stale_staging,
    run_dir,
    staging_dir,
    start_run,
)
from .twins import TWIN_CONFIG_FIELDS, are_twins, find_twin, twin_key

__all__ = [
    "DEFAULT_ROOT", "IMPORTED", "STAGING_SUFFIX", "TABLES", "TWIN_CONFIG_FIELDS", "Run", "RunSample", "RunWriter",
    "are_twins", "data_label", "find_twin", "inside_run", "is_imported", "list_runs", "load_run", "new_run_id",
    "remove_stale_staging", "run_dir", "run_label", "staging_dir", "start_run", "twin_key", "unique_labels",
]
