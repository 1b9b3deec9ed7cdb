"""Train planned runs in a child process, reporting light events to the parent through a queue.

The app trains here rather than on a thread of its own server process: a training loop and the
UI's Python work (reruns, figure building, serialisation) in one process contend for the GIL,
and every torch call the trainer makes may then wait for it. With the Compare page open and live
on a 2-core CPU (bench/app_vs_cli.py), the thread-based preset took 8.2x the CLI's time (together
with two Streamlit defaults since turned off in .streamlit/config.toml); in its own process, with
those defaults off, 0.96-1.06x.

The child is `python -m resnet_explorer.jobs.worker`, spoken to as every child is (`child`: the header,
Stop, a parent that is gone: then the run in progress ends "stopped"); its messages:
    ("run", i, run_id, run_path)      run i started: its folder was created
    ("event", i, kind, step, data)    a trainer event; data holds plain values only
    ("failed", i, message)            run i could not start (bad data, spec, ...)
    ("finished",)                     every plan was handled
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data import ImageData
from ..data.base import one_line
from ..models import ModelSpec
from ..runs import new_run_id, run_dir, start_run
from ..training import Event, TrainConfig
from ..training.trainer import load_config_data
from .child import Channel, serve, start
from .stops import STOPPED_BEFORE_START


def light(event: Event) -> dict[str, Any] | None:
    """What of an event the parent needs, as JSON-ready plain values (None: nothing)."""
    data = event.data
    if event.kind in ("step", "eval"):
        return dict(data)
    if event.kind == "start":
        return {"total_steps": data.total_steps, "steps_per_epoch": data.steps_per_epoch, "device": data.device}
    if event.kind in ("phase", "done"):
        return dataclasses.asdict(data)
    return None  # probes and eval-mode responses stay in the run folder


def train_plans(plans: Sequence[tuple[ModelSpec, TrainConfig]], root: str | Path, queue: Any, stop: Any) -> None:
    """Train every (spec, config) in order into `root`; `stop` (an Event) ends the current run
    within a step and skips the rest. Data are loaded once per distinct data config."""
    datasets: dict[tuple, ImageData] = {}
    for i, (spec, config) in enumerate(plans):
        if stop.is_set():
            queue.put(("event", i, "done", 0, {"status": "stopped", "message": STOPPED_BEFORE_START, "seconds": 0.0}))
            continue
        try:
            key = config.data_key
            if key not in datasets:
                datasets.clear()  # one dataset in memory at a time
                datasets[key] = load_config_data(config)
            run_id = new_run_id(spec)
            path = run_dir(root, run_id)

            def forward(event: Event, i: int = i, run_id: str = run_id, path: Path = path) -> None:
                if event.kind == "start":  # the writer (called first) has just created the folder
                    queue.put(("run", i, run_id, str(path)))
                data = light(event)
                if data is not None:
                    queue.put(("event", i, event.kind, event.step, data))

            start_run(spec, config, root, listeners=[forward], stop=stop, data=datasets[key], flush_seconds=1.0,
                      run_id=run_id)
        except Exception as err:  # reported to the page; the next plan still runs
            queue.put(("failed", i, one_line(err) or type(err).__name__))
    queue.put(("finished",))


def _work(header: dict[str, Any], channel: Channel, stop: threading.Event) -> None:
    plans = [(ModelSpec.from_dict(p["spec"]), TrainConfig.from_dict(p["config"])) for p in header["plans"]]
    train_plans(plans, header["root"], channel, stop)


def main() -> None:
    """`python -m resnet_explorer.jobs.worker`: the header is {"root": ..., "plans": [{"spec": ..., "config": ...}]};
    the rest of the protocol (stop, a parent that is gone) is `child.serve`'s."""
    serve(_work)


def start_process(plans: Sequence[tuple[ModelSpec, TrainConfig]], root: str | Path) -> subprocess.Popen:
    """Start `python -m resnet_explorer.jobs.worker` for `plans` (`child.start`)."""
    return start("resnet_explorer.jobs.worker", {"root": str(Path(root).resolve()), "plans": [
        {"spec": spec.to_dict(), "config": config.to_dict()} for spec, config in plans]})


if __name__ == "__main__":
    main()
