"""Training off the script thread: one background job per browser session.

The job's thread never calls `st.*`; it only updates lock-protected fields that the page's
fragment reads. A rerun, a widget change or a page switch leaves it running; `stop()` ends it
within one training step or one evaluation batch, with status "stopped".

Thread policy: training uses every core torch is given (its default); the pages keep the UI
responsive by drawing little and seldom (`LiveFigure`: at most one rebuild a second, and only
when new rows arrived), not by starving the trainer. Capping torch at one thread made the app
train several times slower than the CLI (and, on the old preset, changed its result).
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from ..data import ImageData
from ..models import ModelSpec
from ..runs import RunWriter
from ..training import Event, TrainConfig, train
from ..training.trainer import load_config_data

JOB = "rx_job"
LIVE_SECONDS = 1.0  # how often a page's live fragment polls a running job


def runs_root() -> Path:
    """Where the app keeps runs: $RESNET_EXPLORER_RUNS or ./runs."""
    return Path(os.environ.get("RESNET_EXPLORER_RUNS", "runs"))


def phase_text(snap: dict[str, Any]) -> str:
    """ "step 120 / 250 (evaluating 3/8)" for a run's snapshot."""
    total = snap["total"] or "?"
    return f"step {snap['step']} / {total} ({snap['phase']})"


class LiveFigure:
    """Rebuild a live figure only when its data changed, and at most once per `min_seconds`.

    `get(key, build)` returns the figure for `key` (any hashable summary of the data, e.g. the
    row counts): the cached one while `key` is unchanged or the last build is younger than
    `min_seconds`, else `build()`. The first call always builds.
    """

    def __init__(self, min_seconds: float = LIVE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_seconds, self.clock = min_seconds, clock
        self.key: Hashable = None
        self.figure: Any = None
        self.built_at = -float("inf")
        self.builds = 0

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        now = self.clock()
        if self.figure is None or (key != self.key and now - self.built_at >= self.min_seconds):
            self.figure, self.key, self.built_at = build(), key, now
            self.builds += 1
        return self.figure


def live_figure(name: str) -> LiveFigure:
    """This session's `LiveFigure` called `name`."""
    key = f"rx_live_{name}"
    if not isinstance(st.session_state.get(key), LiveFigure):
        st.session_state[key] = LiveFigure()
    return st.session_state[key]


class TrainingJob:
    """Training runs on a daemon thread, one after another, observable through `snapshots()`.

    Each planned run is a (spec, config) pair; a preset's runs share the data, order and budget
    and differ in the model and, for several seeds, the seed. They run in sequence: on a small
    CPU, parallel runs only share the same cores and finish no sooner.
    """

    def __init__(self, plans: Sequence[tuple[ModelSpec, TrainConfig]], root: Path) -> None:
        if not plans:
            raise ValueError("nothing to train")
        self.plans = list(plans)
        self.specs = [spec for spec, _ in self.plans]
        self.root = root
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        seeds = {config.seed for _, config in self.plans}
        self._runs: list[dict[str, Any]] = [
            {"status": "waiting", "message": "", "phase": "waiting", "step": 0, "total": 0, "metrics": [],
             "evals": [], "run_id": None, "run_path": None, "seed": config.seed,
             "label": spec.label + (f" · seed {config.seed}" if len(seeds) > 1 else "")}
            for spec, config in self.plans
        ]
        self._runs[0].update(status="starting", phase="loading data")
        self._current = 0
        self.thread = threading.Thread(target=self._run, name=f"train-{self.specs[0].name}", daemon=True)

    def start(self) -> TrainingJob:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask every run to stop; the current one says "stopping…" at once."""
        self.stop_event.set()
        with self._lock:
            state = self._runs[self._current]
            if state["status"] in ("starting", "running"):
                state["phase"] = "stopping…"

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def snapshots(self) -> list[dict[str, Any]]:
        """Every run's state (copies), in order."""
        with self._lock:
            return copy.deepcopy(self._runs)

    def snapshot(self) -> dict[str, Any]:
        """The run going on now (or the last one)."""
        with self._lock:
            return copy.deepcopy(self._runs[self._current])

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._runs[self._current].update(changes)

    def _on_event(self, event: Event) -> None:
        with self._lock:
            state = self._runs[self._current]
            stopping = self.stop_event.is_set()
            if event.kind == "start":
                state.update(status="running", total=event.data["total_steps"],
                             phase="stopping…" if stopping else "training")
            elif event.kind == "step":
                state["metrics"].append(dict(event.data))
                state["step"] = event.step
            elif event.kind == "eval":
                state["evals"].append(dict(event.data))
            elif event.kind == "phase" and not stopping:
                d = event.data
                state["phase"] = f"evaluating {d['batch']}/{d['batches']}" if d["phase"] == "evaluating" else d["phase"]
            elif event.kind == "done":
                state.update(status=event.data["status"], message=event.data["message"], step=event.step,
                             phase=event.data["status"])

    def _run(self) -> None:
        datasets: dict[tuple, ImageData] = {}
        for i, (base, config) in enumerate(self.plans):
            with self._lock:
                self._current = i
            if self.stop_event.is_set():
                self._update(status="stopped", phase="stopped", message="not started: stopped on request")
                continue
            try:
                self._update(status="starting", phase="loading data")
                key = (config.dataset, config.data_root, config.seed, config.train_size, config.test_size,
                       config.image_size, config.download)
                if key not in datasets:
                    datasets.clear()  # one dataset in memory at a time
                    datasets[key] = load_config_data(config)
                data = datasets[key]
                spec = base.replace(num_classes=data.num_classes, in_channels=data.in_channels)
                writer = RunWriter(self.root, spec, config, flush_seconds=1.0)
                self._update(run_id=writer.id, run_path=str(writer.path), phase="building the model")
                train(spec, config, data=data, listeners=[writer, self._on_event], stop=self.stop_event)
            except Exception as err:  # shown on the page; the session lives on
                message = str(err).splitlines()[0] if str(err) else type(err).__name__
                self._update(status="failed", phase="failed", message=message)


def current_job() -> TrainingJob | None:
    job = st.session_state.get(JOB)
    return job if isinstance(job, TrainingJob) else None


def start_job(specs: ModelSpec | Sequence[ModelSpec], config: TrainConfig, seeds: Sequence[int] | None = None
              ) -> TrainingJob:
    """Start runs for this session: every spec for every seed (seed by seed), one after another.

    Refuses while this session's previous job is going.
    """
    job = current_job()
    if job is not None and job.running:
        raise ValueError("a run is already training in this session: stop it first")
    specs = [specs] if isinstance(specs, ModelSpec) else list(specs)
    seeds = [config.seed] if not seeds else list(dict.fromkeys(int(s) for s in seeds))
    plans = [(spec, config.replace(seed=seed)) for seed in seeds for spec in specs]
    job = TrainingJob(plans, runs_root()).start()
    st.session_state[JOB] = job
    return job
