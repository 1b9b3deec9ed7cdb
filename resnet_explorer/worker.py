"""Train planned runs in a child process, reporting light events to the parent through a queue.

The app trains here rather than on a thread of its own server process: a training loop and the
UI's Python work (reruns, figure building, serialisation) in one process contend for the GIL,
and every torch call the trainer makes then waits for it. Measured on a 2-core CPU with the
Compare page open and live, a thread-based preset trained about 9x slower than the CLI; in its
own process the trainer runs as fast as the CLI (bench/app_vs_cli.py).

Messages put on the queue, as tuples:
    ("run", i, run_id, run_path)      run i's folder was created
    ("event", i, kind, step, data)    a trainer event; data holds plain values only
    ("failed", i, message)            run i could not start (bad data, spec, ...)
    ("finished",)                     every plan was handled
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data import ImageData
from .data.base import one_line
from .models import ModelSpec
from .runs import RunWriter
from .training import Event, TrainConfig, train
from .training.trainer import load_config_data

_LIGHT = {"start": ("total_steps", "steps_per_epoch", "device"), "done": ("status", "message", "seconds")}


def light(event: Event) -> dict[str, Any] | None:
    """What of an event the parent needs, as picklable plain values (None: nothing)."""
    if event.kind in ("step", "eval", "phase"):
        return dict(event.data)
    if event.kind in _LIGHT:
        return {k: event.data[k] for k in _LIGHT[event.kind]}
    return None  # probes and eval-mode responses stay in the run folder


def train_plans(plans: Sequence[tuple[ModelSpec, TrainConfig]], root: str | Path, queue: Any, stop: Any) -> None:
    """Train every (spec, config) in order into `root`; `stop` (an Event) ends the current run
    within a step and skips the rest. Data are loaded once per distinct data config."""
    datasets: dict[tuple, ImageData] = {}
    for i, (base, config) in enumerate(plans):
        if stop.is_set():
            queue.put(("event", i, "done", 0, {"status": "stopped", "message": "not started: stopped on request",
                                               "seconds": 0.0}))
            continue
        try:
            key = (config.dataset, config.data_root, config.seed, config.train_size, config.test_size,
                   config.image_size, config.download)
            if key not in datasets:
                datasets.clear()  # one dataset in memory at a time
                datasets[key] = load_config_data(config)
            data = datasets[key]
            spec = base.replace(num_classes=data.num_classes, in_channels=data.in_channels)
            writer = RunWriter(root, spec, config, flush_seconds=1.0)
            queue.put(("run", i, writer.id, str(writer.path)))

            def forward(event: Event, i: int = i) -> None:
                data = light(event)
                if data is not None:
                    queue.put(("event", i, event.kind, event.step, data))

            train(spec, config, data=data, listeners=[writer, forward], stop=stop)
        except Exception as err:  # reported to the page; the next plan still runs
            queue.put(("failed", i, one_line(err) or type(err).__name__))
    queue.put(("finished",))


def _child(plans, root, queue, stop) -> None:
    try:
        train_plans(plans, root, queue, stop)
    except BaseException as err:  # e.g. KeyboardInterrupt: the parent must still hear the end
        queue.put(("failed", -1, one_line(err) or type(err).__name__))
        queue.put(("finished",))


def start_process(plans: Sequence[tuple[ModelSpec, TrainConfig]], root: str | Path):
    """Start `train_plans` in a fresh ("spawn") child process.

    Returns:
        (process, queue, stop): poll `queue` for messages; set `stop` to stop.
    """
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    process = ctx.Process(target=_child, args=(list(plans), str(root), queue, stop), daemon=True,
                          name="resnet-explorer-training")
    process.start()
    return process, queue, stop
