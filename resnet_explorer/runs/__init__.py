"""Runs on disk: the store (`store`: one folder per run, its reader and twins), imported and published
weights (`checkpoints`, `published`) and whether a run's writer is alive (`liveness`). The store's public
names are re-exported here."""

from .store import (
    DEFAULT_ROOT,
    IMPORTED,
    STAGING_SUFFIX,
    TABLES,
    TWIN_CONFIG_FIELDS,
    Run,
    RunSample,
    RunWriter,
    are_twins,
    data_label,
    find_twin,
    inside_run,
    is_imported,
    list_runs,
    load_run,
    new_run_id,
    remove_stale_staging,
    run_dir,
    run_label,
    staging_dir,
    start_run,
    twin_key,
    unique_labels,
)

__all__ = [
    "DEFAULT_ROOT", "IMPORTED", "STAGING_SUFFIX", "TABLES", "TWIN_CONFIG_FIELDS", "Run", "RunSample", "RunWriter",
    "are_twins", "data_label", "find_twin", "inside_run", "is_imported", "list_runs", "load_run", "new_run_id",
    "remove_stale_staging", "run_dir", "run_label", "staging_dir", "start_run", "twin_key", "unique_labels",
]
