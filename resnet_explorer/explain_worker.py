"""Run explain analyses in a child process, reporting progress to the parent as JSON lines.

The app analyses here for the reason it trains in `worker`: an analysis and the UI's Python work
in one process contend for the GIL. Each task is one lens on one run (a run, then its twin): the
run is loaded with its weights on the device, `explain.analyse` measures it and `explain.save`
writes the result into the run's folder (``explain/<lens>/``), where the page reads it back; the
result itself never crosses the pipe.

The child is `python -m resnet_explorer.explain_worker`. Its first stdin line is
{"device": ..., "tasks": [{"path": ..., "lens": ..., "options": {...}}, ...]}; a later "stop"
line, or stdin closing (the parent is gone), stops the task in progress within one batch and
skips the rest. Messages travel as JSON lines on its stdout:
    ("started", i, label)             task i's run was loaded; label as `Run.label`
    ("progress", i, done, total)      task i advanced (at most every `PROGRESS_SECONDS`, and at its end)
    ("done", i, [paths written])      task i's result was saved
    ("stopped", i, message)           task i was stopped on request (nothing saved)
    ("failed", i, message)            task i could not run: bad options, a lens that does not apply,
                                      a damaged run or an unwritable folder (one line)
    ("finished",)                     every task was handled
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .data.base import one_line
from .stops import STOPPED_BEFORE_START

PROGRESS_SECONDS = 0.25  # least time between two progress messages of a task


def run_tasks(tasks: Sequence[Mapping[str, Any]], device: str, channel: Any, stop: threading.Event) -> None:
    """Analyse and save every task (path, lens, options) in order; `channel.put(message)` reports.

    A task that fails is reported and the next one still runs; once `stop` is set, the task in
    progress ends "stopped" and the rest are reported "stopped" without starting.
    """
    from . import explain
    from .analysis.common import AnalysisStopped
    from .runs import load_run

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
            options = explain.check_options(task["lens"], task.get("options"))
            explain.lens_folder(task["path"], task["lens"])  # a link out of the run: refused before the work
            run = load_run(task["path"], device=device)
            channel.put(("started", i, run.label))
            result = explain.analyse(task["lens"], run, options, progress=progress, stop=stop)
            written = explain.save(task["path"], task["lens"], result, options)
            channel.put(("done", i, [str(p) for p in written]))
        except AnalysisStopped as err:
            channel.put(("stopped", i, one_line(err) or "stopped on request"))
        except (ValueError, OSError) as err:  # bad input, a lens that does not apply, a damaged or unwritable run
            channel.put(("failed", i, one_line(err) or type(err).__name__))
        except Exception as err:  # anything else still ends this task only, in one line
            channel.put(("failed", i, f"{type(err).__name__}: {one_line(err)}"))
    channel.put(("finished",))


class _Channel:
    """`put(message)` as one JSON line on a stream the parent reads; once the parent is gone (a broken
    pipe), messages are dropped and `gone` is set, which stops the analysis."""

    def __init__(self, stream, gone: threading.Event) -> None:
        self.stream, self.lock, self.gone = stream, threading.Lock(), gone

    def put(self, message: tuple) -> None:
        with self.lock:
            if self.stream is None:
                return
            try:
                self.stream.write(json.dumps(message) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # nobody reads any more
                self.stream = None
                self.gone.set()


def main() -> None:
    """`python -m resnet_explorer.explain_worker`: read the header line, run its tasks, watch stdin for "stop"."""
    stop = threading.Event()
    channel = _Channel(os.fdopen(os.dup(sys.stdout.fileno()), "w"), stop)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints cannot corrupt the channel
    try:
        header = json.loads(sys.stdin.readline())

        def watch() -> None:
            for line in sys.stdin:
                if line.strip() == "stop":
                    stop.set()
            stop.set()

        threading.Thread(target=watch, daemon=True).start()
        run_tasks(header["tasks"], header.get("device", "cpu"), channel, stop)
    except BaseException as err:  # a bad header, KeyboardInterrupt: the parent must still hear the end
        channel.put(("failed", -1, one_line(err) or type(err).__name__))
        channel.put(("finished",))


def start_process(tasks: Sequence[Mapping[str, Any]], device: str) -> subprocess.Popen:
    """Start `python -m resnet_explorer.explain_worker` for `tasks` ({"path", "lens", "options"} each);
    read its stdout lines (JSON messages), write "stop\\n" to its stdin to stop it."""
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-m", "resnet_explorer.explain_worker"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    header = {"device": device, "tasks": [
        {"path": str(Path(t["path"]).resolve()), "lens": t["lens"], "options": dict(t.get("options") or {})}
        for t in tasks]}
    process.stdin.write(json.dumps(header) + "\n")
    process.stdin.flush()
    return process


if __name__ == "__main__":
    main()
