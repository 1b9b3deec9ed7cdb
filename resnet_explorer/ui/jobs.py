"""Training off the script thread: one background job per browser session.

The job's thread never calls `st.*`; it only updates lock-protected fields that the page's
fragment reads (the pattern in shared/NOTES.md). A rerun, a widget change or a page switch
leaves it running; `stop()` ends it after the current step with status "stopped".
"""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from ..data import load_data
from ..models import ModelSpec
from ..runs import RunWriter
from ..training import Event, TrainConfig, train

JOB = "rx_job"


def runs_root() -> Path:
    """Where the app keeps runs: $RESNET_EXPLORER_RUNS or ./runs."""
    return Path(os.environ.get("RESNET_EXPLORER_RUNS", "runs"))


def limit_torch_threads() -> None:
    """Leave a core for the UI: training on all cores makes the app sluggish while it trains."""
    cores = os.cpu_count() or 2
    wanted = max(1, cores - 1)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)


class TrainingJob:
    """Training runs on a daemon thread, one after another, observable through `snapshot()`.

    Several specs (a preset experiment: plain and residual twins at two depths) share the data,
    seed, order and budget; they run in sequence because on a 2-core CPU parallel runs only
    share the same cores and finish no sooner.
    """

    def __init__(self, specs: ModelSpec | list[ModelSpec], config: TrainConfig, root: Path) -> None:
        self.specs = [specs] if isinstance(specs, ModelSpec) else list(specs)
        self.config, self.root = config, root
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._runs: list[dict[str, Any]] = [
            {"status": "waiting", "message": "", "step": 0, "total": 0, "metrics": [], "evals": [],
             "run_id": None, "run_path": None, "label": spec.label}
            for spec in self.specs
        ]
        self._runs[0].update(status="starting", message="loading data")
        self._current = 0
        self.thread = threading.Thread(target=self._run, name=f"train-{self.specs[0].name}", daemon=True)

    def start(self) -> TrainingJob:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

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
            if event.kind == "start":
                state.update(status="running", message="training", total=event.data["total_steps"])
            elif event.kind == "step":
                state["metrics"].append(dict(event.data))
                state["step"] = event.step
            elif event.kind == "eval":
                state["evals"].append(dict(event.data))
            elif event.kind == "done":
                state.update(status=event.data["status"], message=event.data["message"], step=event.step)

    def _run(self) -> None:
        c = self.config
        try:
            data = load_data(c.dataset, root=c.data_root, seed=c.seed, train_size=c.train_size,
                             test_size=c.test_size, download=c.download)
        except Exception as err:  # shown on the page; the session lives on
            self._update(status="failed", message=str(err).splitlines()[0] if str(err) else type(err).__name__)
            return
        for i, base in enumerate(self.specs):
            with self._lock:
                self._current = i
            if self.stop_event.is_set():
                self._update(status="stopped", message="not started: stopped on request")
                continue
            try:
                spec = base.replace(num_classes=data.num_classes, in_channels=data.in_channels)
                writer = RunWriter(self.root, spec, c, flush_seconds=1.0)
                self._update(run_id=writer.id, run_path=str(writer.path), message="building the model")
                train(spec, c, data=data, listeners=[writer, self._on_event], stop=self.stop_event)
            except Exception as err:
                self._update(status="failed", message=str(err).splitlines()[0] if str(err) else type(err).__name__)


def current_job() -> TrainingJob | None:
    job = st.session_state.get(JOB)
    return job if isinstance(job, TrainingJob) else None


def start_job(specs: ModelSpec | list[ModelSpec], config: TrainConfig) -> TrainingJob:
    """Start runs for this session; refuses while this session's previous job is going."""
    job = current_job()
    if job is not None and job.running:
        raise ValueError("a run is already training in this session: stop it first")
    job = TrainingJob(specs, config, runs_root()).start()
    st.session_state[JOB] = job
    return job
