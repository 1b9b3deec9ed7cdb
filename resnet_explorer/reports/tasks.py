"""Every task the analysis child process runs by name: one registry, which `jobs.explain_worker` consults.

A task is one analysis of one run loaded with its model: its options as data (`jobs.options.Option`),
how it measures (run, checked options, progress, stop) -> result, and where and how it saves that result
(the result never crosses the pipe: the page reads it back from disk). Each explain lens
(`reports.explain`) registers itself here as it is registered there; attribution (`reports.attribute`)
is the one task that is not a lens (no figures of its own in a report, no twin drawn over it).

Nothing here imports Streamlit or torch; the modules holding the entries are imported on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..jobs.options import Option
from ..jobs.options import check_options as _check_options

__all__ = ["TASKS", "Task", "check_options", "get", "register"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Task:
    """One task of the analysis child.

    Attributes:
        name: its key (the task's "lens" in the child's header).
        title: its name on screen ("Loss landscape", "Attribution").
        options: its options.
        run: (run with its model, checked options, progress, stop) -> its result; one-line ValueError when it
            cannot measure that run.
        save: (run path, result, checked options) -> the paths written.
        folder: (run path, checked options) -> the folder it will write; checked before the work, so a link out
            of the run is refused before anything is measured.
    """

    name: str
    title: str
    options: tuple[Option, ...]
    run: Callable[[Any, Mapping[str, Any], Progress | None, threading.Event | None], Any]
    save: Callable[[str | Path, Any, Mapping[str, Any]], list[Path]]
    folder: Callable[[str | Path, Mapping[str, Any]], Path]


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task to the registry."""
    TASKS[task.name] = task
    return task


def get(name: str) -> Task:
    """The task registered as `name` (every module holding tasks is imported first); one-line ValueError else."""
    from . import attribute, explain  # noqa: F401  (each registers its tasks as it is imported)

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def check_options(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The task's options with defaults filled in, each checked against its ceiling (one-line ValueError)."""
    return _check_options(get(name).options, options, name)
