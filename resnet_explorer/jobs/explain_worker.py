"""Run explain analyses in a child process, reporting progress to the parent as JSON lines.

The app analyses here for the reason it trains in `worker`: an analysis and the UI's Python work
in one process contend for the GIL. Each task is one registered task (`reports.tasks`: every explain
lens, and attribution) on one run (a run, then its twin): the run is loaded with its weights on the
device, the task measures it and saves the result to disk (a lens into the run's ``explain/<lens>/``),
where the page reads it back; the result itself never crosses the pipe.

The child is `python -m resnet_explorer.jobs.explain_worker`, spoken to as every child is (`child`). Its
header is {"device": ..., "tasks": [{"path": ..., "lens": ..., "options": {...}}, ...]}; Stop, or a
parent that is gone, stops the task in progress within one batch and skips the rest. Its messages:
    ("started", i, label)             task i's run was loaded; label as `Run.label`
    ("progress", i, done, total)      task i advanced (at most every `PROGRESS_SECONDS`, and at its end)
    ("done", i, [paths written])      task i's result was saved
    ("stopped", i, message)           task i was stopped on request (nothing saved)
    ("failed", i, message)            task i could not run: bad options, a lens that does not apply,
                                      a damaged run or an unwritable folder (one line)
    ("finished",)                     every task was handled
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.base import one_line
from .child import serve, start
from .stops import STOPPED_BEFORE_START

PROGRESS_SECONDS = 0.25  # least time between two progress messages of a task


def run_tasks(tasks: Sequence[Mapping[str, Any]], device: str, channel: Any, stop: threading.Event) -> None:
    """Analyse and save every task (path, lens, options) in order; `channel.put(message)` reports.

    A task that fails is reported and the next one still runs; once `stop` is set, the task in
    progress ends "stopped" and the rest are reported "stopped" without starting.
    """
    from ..analysis.common import AnalysisStopped
    from ..reports import tasks as registry
    from ..runs import load_run

    for i, task in enumerate(tasks):
        if stop.is_set():
            channel.put(("stopped", i, STOPPED_BEFORE_START))
            continue
        last = [0.0]

        def progress(done: int, total: int, i: int = i, last: list = last) -> None:
            now = time.monotonic()
            if done >= total or now - last[0] >= PROGRESS_SECONDS:
                last[0] = now
                channel.put(("progress", i, int(done), int(total)))

        try:
            entry = registry.get(task["lens"])
            options = registry.check_options(task["lens"], task.get("options"))
            entry.folder(task["path"], options)  # a link out of the run: refused before the work
            run = load_run(task["path"], device=device)
            channel.put(("started", i, run.label))
            result = entry.run(run, options, progress, stop)
            written = entry.save(task["path"], result, options)
            channel.put(("done", i, [str(p) for p in written]))
        except AnalysisStopped as err:
            channel.put(("stopped", i, one_line(err) or "stopped on request"))
        except (ValueError, OSError, MemoryError) as err:  # bad input, a lens that does not apply, a damaged or
            # unwritable run, an allocation the machine could not make (`analysis.common`'s one line)
            channel.put(("failed", i, one_line(err) or type(err).__name__))
        except Exception as err:  # anything else still ends this task only, in one line
            channel.put(("failed", i, f"{type(err).__name__}: {one_line(err)}"))
    channel.put(("finished",))


def main() -> None:
    """`python -m resnet_explorer.jobs.explain_worker`: the header is {"device": ..., "tasks": [...]}; the rest of
    the protocol (stop, a parent that is gone) is `child.serve`'s."""
    serve(lambda header, channel, stop: run_tasks(header["tasks"], header.get("device", "cpu"), channel, stop))


def start_process(tasks: Sequence[Mapping[str, Any]], device: str) -> subprocess.Popen:
    """Start `python -m resnet_explorer.jobs.explain_worker` for `tasks` ({"path", "lens", "options"} each)."""
    return start("resnet_explorer.jobs.explain_worker", {"device": device, "tasks": [
        {"path": str(Path(t["path"]).resolve()), "lens": t["lens"], "options": dict(t.get("options") or {})}
        for t in tasks]})


if __name__ == "__main__":
    main()
