"""Explain analyses off the script thread: one background job per browser session.

An `AnalysisJob` runs a list of tasks, each one registered task (`reports.tasks`: a lens, or attribution) on
one run (the run, then its twin), in a child process (`explain_worker`) that saves each result to disk; a monitor thread
here folds the child's messages into lock-protected fields that the page's fragment reads through
`snapshot()`. Neither calls `st.*`. A rerun, a widget change or a page switch leaves it running;
`stop()` ends it within one batch, with status "stopped".

Queue: an analysis holds a slot in the same server-wide line as training, `jobs.QUEUE`, so one job
(training or analysis) runs per device at a time (`limits.JOBS_PER_DEVICE`); a job started while its
device is busy waits, first come first served, and its snapshot says where it stands ("queued, 2nd in
line — one job at a time on cpu, training or analysis; another job is running"). Stop on a waiting job
takes it out of line at once: it never starts a process and ends "stopped". However a job ends, its
slot is given back in a `finally` and the next in line starts.

The job lives in ``st.session_state["rx_analysis_job"]`` (`ANALYSIS_JOB`, see `ui.state`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from ..jobs.explain_worker import start_process
from ..jobs.stops import NEVER_STARTED, ended
from . import jobs
from .state import ANALYSIS_JOB

Task = tuple[str, str, Mapping[str, Any]]  # (run path, lens, options)


def progress_text(snap: Mapping[str, Any]) -> str:
    """One line for a job's progress bar: its place in line, or the run, lens and step it is at."""
    status = snap["status"]
    if status == "queued":
        return snap["phase"]
    where = f"{snap['label']} ({snap['task'] + 1} of {snap['tasks']})" if snap["tasks"] > 1 else snap["label"]
    if status in ("starting", "running"):
        count = f": {snap['done']:,} / {snap['total']:,}" if snap["total"] else ""
        return f"{where}, {snap['phase']}{count}"
    return f"{where}: {ended(status, snap['message'])}"


def stopped_text(snap: Mapping[str, Any], lens: str) -> str:
    """What a stopped analysis did, in one sentence that says "stopped" once: "Lesions stopped while queued,
    before it started: nothing was run." or "Paths stopped on request at resnet20 · shapes 32px · ab12 after
    10 of 40 backward passes: nothing was saved for it." (`lens`: the lens's title)."""
    message = (snap.get("message") or "").strip()
    if message in NEVER_STARTED:
        return f"{lens} {message}: nothing was run."
    after = f" after {message.split(' after ', 1)[1]}" if " after " in message else ""
    return f"{lens} stopped on request at {snap['label']}{after}: nothing was saved for it."


class AnalysisJob(jobs.ChildJob):
    """Tasks (run path, lens, options) analysed one after another in a child process.

    `snapshot()` says how it goes: status "queued", "starting", "running", then "done", "stopped"
    or "failed" (any task failed; the others still ran), done / total of the task in progress,
    and a one-line message. `starter(tasks, device)` starts the child (tests pass a fake).
    """

    def __init__(self, tasks: Sequence[Task], device: str, labels: Sequence[str] | None = None,
                 queue: jobs.TrainingQueue | None = None,
                 starter: Callable[[Sequence[Mapping[str, Any]], str], Any] | None = None) -> None:
        if not tasks:
            raise ValueError("nothing to analyse")
        self.tasks = [{"path": str(path), "lens": lens, "options": dict(options or {})}
                      for path, lens, options in tasks]
        self.lens = self.tasks[0]["lens"]
        self.run_device = device  # what the child loads the runs on; `device` is the queue's name for it
        self._setup(queue, starter if starter is not None else start_process, device, f"explain-{self.lens}")
        names = list(labels) if labels is not None else [Path(t["path"]).name for t in self.tasks]
        self._states = [{"status": "waiting", "done": 0, "total": 0, "message": "", "label": name}
                        for name in names]
        self._status, self._phase, self._current = "queued", "queued", 0

    NOUN = "analysis"

    def _launch(self):
        return self.starter(self.tasks, self.run_device)

    def _mark_starting(self) -> None:
        with self._lock:
            self._status, self._phase = "starting", "starting an analysis process"

    def _mark_stopping(self) -> None:
        with self._lock:
            if self._status in ("starting", "running"):
                self._phase = "stopping…"

    def _lost(self, message: str) -> None:
        with self._lock:
            self._states[self._current].update(status="failed", message=message)
        self._end("failed", "")

    def _ended_unexpectedly(self, code: int) -> None:
        with self._lock:
            self._states[self._current].update(
                status="failed", message=f"the analysis process ended unexpectedly (exit code {code})")

    def _end_unstarted(self, status: str, message: str) -> None:
        if status == "failed":  # the child could not start: the first task says why
            with self._lock:
                self._states[0].update(status="failed", message=message)
            message = ""
        self._end(status, message)

    def snapshot(self) -> dict[str, Any]:
        """status, done, total, message, phase, label (of the run in progress), task (its index), tasks, lens,
        position (in line, while queued)."""
        with self._lock:
            current = copy.deepcopy(self._states[self._current])
            snap = {"status": self._status, "phase": self._phase, "done": current["done"], "total": current["total"],
                    "label": current["label"], "task": self._current, "tasks": len(self._states), "lens": self.lens,
                    "message": self._message(), "position": None}
        if snap["status"] == "queued":
            place = self.queue.place(self)
            if place is None:  # its turn has just come
                snap["phase"] = "starting an analysis process"
            else:
                snap["position"] = place[0]
                snap["phase"] = jobs.queue_text(place[0], place[1], self.queue.limit, self.device)
        return snap

    def task_states(self) -> list[dict[str, Any]]:
        """Every task's state (copies): status waiting/running/done/stopped/failed, done, total, message, label."""
        with self._lock:
            return copy.deepcopy(self._states)

    def _message(self) -> str:
        """The job's one line: failures first (each named by its run), else a stop's reason."""
        failed = [f"{s['label']}: {s['message']}" for s in self._states if s["status"] == "failed" and s["message"]]
        if failed:
            return "; ".join(failed)
        if self._status == "stopped":
            return next((s["message"] for s in self._states if s["status"] == "stopped" and s["message"]), "")
        return ""

    def _end(self, status: str, message: str) -> None:
        """End the job and every task that has not ended."""
        with self._lock:
            for state in self._states:
                if state["status"] in ("waiting", "running"):
                    state.update(status=status, message=message)
            self._status = self._phase = status

    def _apply(self, message: Sequence[Any]) -> bool:
        """Fold one child message into the state; False once the child has finished."""
        kind = message[0]
        if kind == "finished":
            return False
        with self._lock:
            i = message[1] if message[1] >= 0 else self._current
            self._current = i
            state = self._states[i]
            if kind == "started":
                state.update(status="running", label=message[2])
                self._status = "running"
                self._phase = "stopping…" if self._stopping else "analysing"
            elif kind == "progress":
                state.update(status="running", done=message[2], total=message[3])
                self._status = "running"
            elif kind == "done":
                state.update(status="done", done=max(state["done"], state["total"]))
            elif kind in ("stopped", "failed"):
                state.update(status=kind, message=message[2])
        return True

    def _finish(self) -> None:
        """The job's end status from its tasks' ends."""
        with self._lock:
            ends = [s["status"] for s in self._states]
            status = "failed" if "failed" in ends else "stopped" if "stopped" in ends else "done"
            self._status = self._phase = status


@st.fragment(run_every=jobs.LIVE_SECONDS)
def live_panel(job: AnalysisJob, key: str) -> None:
    """A queued or running analysis: its progress bar, where it waits and Stop (`jobs.job_panel`); reruns the page
    once when it ends, so the page leaves live mode and draws what was saved (`key`: the page's prefix)."""
    snap = job.snapshot()
    fraction = min(1.0, snap["done"] / snap["total"]) if snap["total"] else 0.0
    st.progress(fraction, text=progress_text(snap))
    if jobs.job_panel(job, key, "It", snap["status"] == "queued"):
        st.rerun()


def current_job() -> AnalysisJob | None:
    """This session's analysis job (running or ended), or None."""
    job = st.session_state.get(ANALYSIS_JOB)
    return job if isinstance(job, AnalysisJob) else None


def start_job(tasks: Sequence[Task], device: str, labels: Sequence[str] | None = None) -> AnalysisJob:
    """Start `tasks` for this session, in order; refuses while its previous analysis is queued or running."""
    job = current_job()
    if job is not None and job.running:
        raise ValueError("an analysis is already queued or running in this session: stop it first")
    job = AnalysisJob(tasks, device, labels).start()
    st.session_state[ANALYSIS_JOB] = job
    return job
