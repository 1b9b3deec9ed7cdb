"""Training off the script thread: one background job per browser session.

The job trains in a child process (`worker`) and a monitor thread here folds its messages into
lock-protected fields that the page's fragment reads; neither calls `st.*`. A rerun, a widget
change or a page switch leaves it running; `stop()` ends it within one training step or one
evaluation batch, with status "stopped".

Thread policy: training uses every core torch is given (its default), in its own process, as the
CLI does; the pages keep the UI responsive by drawing little and seldom (progress text every
`LIVE_SECONDS`; a light chart rebuilt only when new rows arrived and at most every
`LIVE_CHART_SECONDS`, see `LiveFigure`), not by starving the trainer. Capping torch at one thread
made the app train slower than the CLI (and, on the old preset, changed its result); training on a
thread of the server process, with Streamlit's default file watcher and post-script GC, took 8.2x
the CLI's time (bench/app_vs_cli.py; the two causes were not measured apart).
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from ..models import ModelSpec
from ..training import TrainConfig
from ..worker import start_process

JOB = "rx_job"
LIVE_SECONDS = 1.0  # how often a page's live fragment polls a running job (progress text)
LIVE_CHART_SECONDS = 3.0  # least time between two redraws of a live chart


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

    def __init__(self, min_seconds: float = LIVE_CHART_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
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
    """Planned runs trained one after another in a child process, observable through `snapshots()`.

    Each planned run is a (spec, config) pair; a preset's runs share the data, order and budget
    and differ in the model and, for several seeds, the seed. They run in sequence: on a small
    CPU, parallel runs only share the same cores and finish no sooner. The child process
    (`worker.train_plans`) writes the run folders; a monitor thread here turns its messages into
    the state the pages read. Training in a process of its own keeps the UI's Python work (reruns,
    figure building) from contending with the trainer for the GIL.
    """

    def __init__(self, plans: Sequence[tuple[ModelSpec, TrainConfig]], root: Path) -> None:
        if not plans:
            raise ValueError("nothing to train")
        self.plans = list(plans)
        self.specs = [spec for spec, _ in self.plans]
        self.root = root
        self._lock = threading.Lock()
        seeds = {config.seed for _, config in self.plans}
        self._runs: list[dict[str, Any]] = [
            {"status": "waiting", "message": "", "phase": "waiting", "step": 0, "total": 0, "metrics": [],
             "evals": [], "run_id": None, "run_path": None, "seed": config.seed,
             "label": spec.label + (f" · seed {config.seed}" if len(seeds) > 1 else "")}
            for spec, config in self.plans
        ]
        self._runs[0].update(status="starting", phase="starting a training process")
        self._current = 0
        self._stopping = False
        self.process = None
        self.thread = threading.Thread(target=self._monitor, name=f"train-{self.specs[0].name}", daemon=True)

    def start(self) -> TrainingJob:
        self.process = start_process(self.plans, self.root)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask every run to stop; the current one says "stopping…" at once."""
        self._stopping = True
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.stdin.write("stop\n")
                self.process.stdin.flush()
            except OSError:  # it has just ended
                pass
        with self._lock:
            state = self._runs[self._current]
            if state["status"] in ("starting", "running"):
                state["phase"] = "stopping…"

    @property
    def stopping(self) -> bool:
        return self._stopping

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

    def _apply(self, message: tuple) -> bool:
        """Fold one worker message into the state; False once the worker has finished."""
        kind = message[0]
        if kind == "finished":
            return False
        i = message[1] if message[1] >= 0 else self._current
        with self._lock:
            self._current = i
            state = self._runs[i]
            if kind == "run":
                state.update(status="starting", phase="building the model", run_id=message[2], run_path=message[3])
            elif kind == "failed":
                state.update(status="failed", phase="failed", message=message[2])
            else:
                _, _, event, step, data = message
                self._on_event(state, event, step, data)
        return True

    def _on_event(self, state: dict[str, Any], kind: str, step: int, data: dict[str, Any]) -> None:
        if kind == "start":
            state.update(status="running", total=data["total_steps"],
                         phase="stopping…" if self._stopping else "training")
        elif kind == "step":
            state["metrics"].append(data)
            state["step"] = step
        elif kind == "eval":
            state["evals"].append(data)
        elif kind == "phase" and not self._stopping:
            state["phase"] = f"evaluating {data['batch']}/{data['batches']}" if data["phase"] == "evaluating" \
                else data["phase"]
        elif kind == "done":
            state.update(status=data["status"], message=data["message"], step=step, phase=data["status"])

    def _monitor(self) -> None:
        finished = False
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not self._apply(tuple(message)):
                finished = True
                break
        code = self.process.wait()
        if not finished:
            self._apply(("failed", -1, f"the training process ended unexpectedly (exit code {code})"))


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
