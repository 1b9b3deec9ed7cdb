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

Queue policy: every session of the server process shares one `TrainingQueue`, `QUEUE`. At most
`limits.JOBS_PER_DEVICE` jobs train at once on a device ("auto" counts as the device it resolves
to, so "auto" and "cpu" share one line on a machine without a GPU); a job started while its device
is busy waits in line, first come first served, and its snapshot says where it stands ("queued,
2nd in line — one job at a time on cpu (training or analysis), another job is running"). Runs side by side on
one device would only share its cores and memory, and finish no sooner. A waiting job's monitor
thread sleeps on the queue's condition and starts its worker once it is first in line and a slot
is free. Stop on a waiting job takes it out of line at once: it never starts a worker, makes no
run folder and ends "stopped". However a job ends (done, stopped, failed, its worker crashing or
its monitor failing, which also ends the worker), its slot is given back in a `finally` and the
next in line starts.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from ..data.base import one_line
from ..devices import resolve_device
from ..jobs.stops import NEVER_STARTED, STOPPED_BEFORE_START, STOPPED_IN_LINE
from ..jobs.worker import start_process
from ..limits import JOBS_PER_DEVICE
from ..models import ModelSpec
from ..training import TrainConfig

JOB = "rx_job"
LIVE_SECONDS = 1.0  # how often a page's live fragment polls a running job (progress text)
LIVE_CHART_SECONDS = 3.0  # least time between two redraws of a live chart


def runs_root() -> Path:
    """Where the app keeps runs: $RESNET_EXPLORER_RUNS or ./runs."""
    return Path(os.environ.get("RESNET_EXPLORER_RUNS", "runs"))


def phase_text(snap: dict[str, Any]) -> str:
    """ "step 120 / 250 (evaluating 3/8)" for a run's snapshot; a queued run's place in line; for a run that
    never began, how its stop landed (`stops.STOPPED_IN_LINE`, `stops.STOPPED_BEFORE_START`)."""
    status = snap["status"]
    if status == "queued":
        return snap["phase"]
    if not snap.get("run_id"):  # no run folder: it left the line, or the stop or a failure came first
        if status == "stopped":
            message = snap.get("message") or ""
            return message if message in NEVER_STARTED else STOPPED_BEFORE_START
        if status == "failed":
            return "failed before it started"
    total = snap["total"] or "?"
    return f"step {snap['step']} / {total} ({snap['phase']})"


def status_line(snap: dict[str, Any]) -> str:
    """`phase_text` and, for a run that failed or diverged, why: the one line of a run's progress bar, never
    saying a thing twice ("step 40 / 250 (diverged): loss is nan at step 40"; a stopped run's own message,
    "stopped on request after step 40", adds nothing to "step 40 / 250 (stopped)")."""
    text = phase_text(snap)
    message = (snap.get("message") or "").strip()
    if snap["status"] in ("failed", "diverged") and message and message not in text:
        text += f": {message}"
    return text


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def device_key(device: str) -> str:
    """The device a config trains on, as the queue names it: "cpu", "mps" or "cuda:N".

    "auto" is the device it resolves to here, "cuda" is "cuda:0" (a fresh worker's current
    device). A name that does not resolve stays as given: its worker will report why.
    """
    try:
        dev = resolve_device(device)
    except ValueError:
        return str(device).strip().lower()
    return f"cuda:{dev.index or 0}" if dev.type == "cuda" else dev.type


def queue_text(position: int, running: int, limit: int, device: str) -> str:
    """ "queued, 2nd in line — one job at a time on cpu (training or analysis), another job is running".

    Training runs and Explain analyses share the line (`resnet_explorer.ui.analysis_jobs`).
    """
    at_once = "one job at a time" if limit == 1 else f"{limit} jobs at a time"
    busy = {0: "none is running now", 1: "another job is running"}.get(running, f"{running} other jobs are running")
    return f"queued, {ordinal(position)} in line — {at_once} on {device} (training or analysis), {busy}"


class TrainingQueue:
    """At most `limit` jobs hold a slot on each device at once; the others wait in line, first come
    first served.

    `enqueue(job)` puts a job at the back of its device's line (`job.device`); its monitor thread
    then blocks in `wait_turn(job)` until the job is first in line and a slot is free (True) or it
    has left the line (`cancel`, `reset`: False). `release(job)` gives the slot back and wakes the
    line. Waiting is on a condition variable: nothing polls.
    """

    def __init__(self, limit: int = JOBS_PER_DEVICE) -> None:
        self._cond = threading.Condition()
        self.limit = limit
        self._waiting: dict[str, list[TrainingJob]] = {}  # device -> jobs in line, first first
        self._holding: dict[str, list[TrainingJob]] = {}  # device -> jobs holding a slot
        self.reset(limit)

    def reset(self, limit: int = JOBS_PER_DEVICE) -> None:
        """Forget every job and allow `limit` at once per device (for tests): waiting jobs end
        "stopped" without starting; running ones go on but no longer hold a slot."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number >= 1, got {limit!r}")
        with self._cond:
            self.limit = limit
            self._waiting, self._holding = {}, {}
            self._cond.notify_all()

    def enqueue(self, job: TrainingJob) -> None:
        """Put `job` at the back of its device's line."""
        with self._cond:
            self._waiting.setdefault(job.device, []).append(job)

    def wait_turn(self, job: TrainingJob, timeout: float | None = None) -> bool:
        """Block until `job` holds a slot (True) or has left the line (False); with a `timeout`, also
        False once it has passed (`place` then tells a job still in line from one that left it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                line = self._waiting.get(job.device, [])
                if job not in line:
                    return False
                holding = self._holding.setdefault(job.device, [])
                if line[0] is job and len(holding) < self.limit:
                    line.pop(0)
                    holding.append(job)
                    self._cond.notify_all()  # with a limit above one, the next may start too
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)

    def cancel(self, job: TrainingJob) -> bool:
        """Take a waiting job out of line; False if it was not waiting."""
        with self._cond:
            line = self._waiting.get(job.device, [])
            if job not in line:
                return False
            line.remove(job)
            self._cond.notify_all()
            return True

    def release(self, job: TrainingJob) -> None:
        """Give back `job`'s slot (if it holds one) and wake the line."""
        with self._cond:
            holding = self._holding.get(job.device, [])
            if job in holding:
                holding.remove(job)
            self._cond.notify_all()

    def place(self, job: TrainingJob) -> tuple[int, int] | None:
        """(position in line from 1, jobs training on its device) while `job` waits, else None."""
        with self._cond:
            line = self._waiting.get(job.device, [])
            if job not in line:
                return None
            return line.index(job) + 1, len(self._holding.get(job.device, []))

    def training(self, device: str) -> int:
        """How many jobs hold a slot on `device` (a `device_key`)."""
        with self._cond:
            return len(self._holding.get(device, []))

    def waiting(self, device: str) -> int:
        """How many jobs wait in `device`'s line."""
        with self._cond:
            return len(self._waiting.get(device, []))


QUEUE = TrainingQueue()  # shared by every session of this server process
_job_ids = itertools.count(1)


class InlineJob:
    """A holder of a slot in its device's line that is no child job (the tests stand one in for another session's
    training job); every job the pages start runs in a child process."""

    def __init__(self, device: str) -> None:
        self.id = next(_job_ids)
        self.device = device_key(device)


def job_panel(job: ChildJob, key: str, what: str, queued: bool) -> bool:
    """What every page's panel of a running job shows besides its own progress: while `queued`, where it
    waits; while running, Stop ("Stopping…" once pressed). Returns True once per job and session, the
    first time the panel finds the job ended: the page then does its end work and reruns, once, to
    leave live mode.

    Args:
        job: a `TrainingJob` or an `AnalysisJob`.
        key: the page's prefix for widget and session keys ("train", "compare", "explain").
        what: the job as the queued line names it ("It", "The preset").
        queued: whether the job still waits in line.
    """
    if queued:
        st.caption(f"{what} starts by itself when the jobs ahead of it end; Stop takes it out of the line.")
    if job.running:
        stopping = job.stopping
        st.button("Stopping…" if stopping else "Stop", key=f"{key}_stop", on_click=job.stop, icon=":material/stop:",
                  disabled=stopping)
        return False
    if st.session_state.get(f"{key}_seen_end") == job.id:
        return False
    st.session_state[f"{key}_seen_end"] = job.id
    return True


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


class ChildJob:
    """What a training job and an analysis job share: a place in `queue`'s line for `device`, then a
    child process started by `starter`, followed by a monitor thread through its JSON lines on stdout.

    A subclass sets up its own state and calls `_setup`, and supplies the hooks: `_launch()` starts
    the child, `_apply(message)` folds one message in (False once the child has finished),
    `_end_unstarted(status, message)` ends what never started, `_mark_starting()`, `_mark_stopping()`,
    `_lost(message)` (the monitor failed), `_ended_unexpectedly(code)` and `_finish()`. `NOUN` names
    the child in messages ("training", "analysis").
    """

    NOUN = "job"
    STOPPED_IN_LINE = STOPPED_IN_LINE  # how a stop that landed before the child began is worded (`stops`)
    STOPPED_BEFORE_START = STOPPED_BEFORE_START

    def _setup(self, queue: TrainingQueue | None, starter: Callable[..., Any], device: str, thread_name: str) -> None:
        self.id = next(_job_ids)
        self.queue = queue if queue is not None else QUEUE
        self.starter = starter
        self.device = device_key(device)
        self._lock = threading.Lock()
        self._stopping = False
        self.process = None
        self.thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self):
        """Join the back of the device's line; the child starts when the job's turn comes."""
        self.queue.enqueue(self)
        try:
            self.thread.start()
        except BaseException:
            self.queue.cancel(self)
            raise
        return self

    def stop(self) -> None:
        """A queued job leaves the line and ends "stopped" at once, without starting; a running one
        says "stopping…" at once and ends within a step or a batch."""
        self._stopping = True
        if self.queue.cancel(self):
            self._end_unstarted("stopped", self.STOPPED_IN_LINE)
            if self.thread.ident is not None:
                self.thread.join(timeout=1.0)  # it only has to wake up and see it left the line
            return
        self._send_stop()
        self._mark_stopping()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running(self) -> bool:
        """Queued or working: its monitor thread has not ended."""
        return self.thread.is_alive()

    @property
    def queued(self) -> bool:
        """Waiting in line for a slot on its device."""
        return self.queue.place(self) is not None

    def _send_stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            try:
                process.stdin.write("stop\n")
                process.stdin.flush()
            except (OSError, ValueError):  # it has just ended
                pass

    def _run(self) -> None:
        """The monitor thread: wait for a slot, start the child, follow it to the end; give the slot
        back however that comes."""
        if not self.queue.wait_turn(self):
            self._end_unstarted("stopped", self.STOPPED_IN_LINE)
            return
        try:
            if self._stopping:
                self._end_unstarted("stopped", self.STOPPED_BEFORE_START)
                return
            self._mark_starting()
            try:
                self.process = self._launch()
            except Exception as err:
                self._end_unstarted("failed", f"could not start the {self.NOUN} process: "
                                              f"{one_line(err) or type(err).__name__}")
                return
            if self._stopping:  # stop() came while the child was starting
                self._send_stop()
            self._monitor()
        except Exception as err:
            self._lost(f"the app lost track of the {self.NOUN} process: {one_line(err) or type(err).__name__}")
        finally:
            process = self.process
            if process is not None and process.poll() is None:  # the monitor failed: end the child too
                process.kill()
                process.wait()
            self.queue.release(self)

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
            self._ended_unexpectedly(code)
        self._finish()

    def _finish(self) -> None:
        """Called once the child has ended (after `_monitor`); nothing by default."""


class TrainingJob(ChildJob):
    """Planned runs trained one after another in a child process, observable through `snapshots()`.

    Each planned run is a (spec, config) pair; a preset's runs share the data, order and budget
    and differ in the model and, for several seeds, the seed. They run in sequence: on a small
    CPU, parallel runs only share the same cores and finish no sooner. The child process
    (`worker.train_plans`) writes the run folders; a monitor thread here waits for the job's turn
    in `queue` (the first plan's device names the line), starts the child with `starter` and turns
    its messages into the state the pages read. Training in a process of its own keeps the UI's
    Python work (reruns, figure building) from contending with the trainer for the GIL.
    """

    def __init__(self, plans: Sequence[tuple[ModelSpec, TrainConfig]], root: Path,
                 queue: TrainingQueue | None = None,
                 starter: Callable[[Sequence[tuple[ModelSpec, TrainConfig]], Path], Any] | None = None) -> None:
        if not plans:
            raise ValueError("nothing to train")
        self.plans = list(plans)
        self.specs = [spec for spec, _ in self.plans]
        self.root = root
        self._setup(queue, starter if starter is not None else start_process, self.plans[0][1].device,
                    f"train-{self.specs[0].name}")
        seeds = {config.seed for _, config in self.plans}
        self._runs: list[dict[str, Any]] = [
            {"status": "waiting", "message": "", "phase": "waiting", "step": 0, "total": 0, "metrics": [],
             "evals": [], "run_id": None, "run_path": None, "seed": config.seed, "position": None,
             "label": spec.label + (f" · seed {config.seed}" if len(seeds) > 1 else "")}
            for spec, config in self.plans
        ]
        self._runs[0].update(status="queued", phase="queued")
        self._current = 0

    NOUN = "training"

    def _launch(self):
        return self.starter(self.plans, self.root)

    def _mark_starting(self) -> None:
        with self._lock:
            self._runs[0].update(status="starting", phase="starting a training process")

    def _mark_stopping(self) -> None:
        with self._lock:
            state = self._runs[self._current]
            if state["status"] in ("starting", "running"):
                state["phase"] = "stopping…"

    def _lost(self, message: str) -> None:
        with self._lock:
            self._runs[self._current].update(status="failed", phase="failed", message=message)

    def _ended_unexpectedly(self, code: int) -> None:
        self._apply(("failed", -1, f"the training process ended unexpectedly (exit code {code})"))

    def snapshots(self) -> list[dict[str, Any]]:
        """Every run's state (copies), in order."""
        with self._lock:
            runs = copy.deepcopy(self._runs)
        return [self._placed(state) for state in runs]

    def snapshot(self) -> dict[str, Any]:
        """The run going on now (or the last one)."""
        with self._lock:
            state = copy.deepcopy(self._runs[self._current])
        return self._placed(state)

    def _placed(self, state: dict[str, Any]) -> dict[str, Any]:
        """A queued run's copy with its live place in line as "position" and "phase"."""
        if state["status"] == "queued":
            place = self.queue.place(self)
            if place is None:  # its turn has just come
                state["phase"] = "starting a training process"
            else:
                state["position"] = place[0]
                state["phase"] = queue_text(place[0], place[1], self.queue.limit, self.device)
        return state

    def _end_unstarted(self, status: str, message: str) -> None:
        """End every run that has not begun (none was trained, no run folder was made)."""
        with self._lock:
            for state in self._runs:
                if state["status"] in ("queued", "waiting", "starting") and state["run_id"] is None:
                    state.update(status=status, phase=status, message=message, position=None)

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


def current_job() -> TrainingJob | None:
    job = st.session_state.get(JOB)
    return job if isinstance(job, TrainingJob) else None


def start_job(specs: ModelSpec | Sequence[ModelSpec], config: TrainConfig, seeds: Sequence[int] | None = None
              ) -> TrainingJob:
    """Start runs for this session: every spec for every seed (seed by seed), one after another.

    Refuses while this session's previous job is queued or training. The job waits in the
    server-wide line while its device is busy (see `TrainingQueue`).
    """
    job = current_job()
    if job is not None and job.running:
        raise ValueError("a run is already queued or training in this session: stop it first")
    specs = [specs] if isinstance(specs, ModelSpec) else list(specs)
    seeds = [config.seed] if not seeds else list(dict.fromkeys(int(s) for s in seeds))
    plans = [(spec, config.replace(seed=seed)) for seed in seeds for spec in specs]
    job = TrainingJob(plans, runs_root()).start()
    st.session_state[JOB] = job
    return job
