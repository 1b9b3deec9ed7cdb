"""A stop is worded once (`resnet_explorer.jobs.stops`), and the status lines composed from it never repeat themselves:
a job stopped in line, a run or task the stop reached before it began, a run stopped mid-way."""

import queue
import re
import threading

import pytest

from resnet_explorer.jobs.explain_worker import run_tasks
from resnet_explorer.jobs.stops import STOPPED_BEFORE_START, STOPPED_IN_LINE, ended
from resnet_explorer.jobs.worker import train_plans
from resnet_explorer.ui.analysis_jobs import AnalysisJob, progress_text, stopped_text
from resnet_explorer.ui.jobs import QUEUE, TrainingJob, TrainingQueue, phase_text, status_line
from tests.test_jobs import QUICK, TINY, FakeStarter, wait_for


@pytest.fixture(autouse=True)
def _fresh_queue():
    QUEUE.reset()
    yield
    QUEUE.reset()


def says_once(text: str) -> str:
    """`text`, checked to say "stopped" (and "started") at most once and to glue no two phrases."""
    assert text.lower().count("stopped") <= 1, text
    assert text.lower().count("started") <= 1, text
    assert "not started" not in text, text
    return text


def test_ended_never_says_its_status_twice():
    assert ended("stopped", "stopped on request after step 40") == "stopped on request after step 40"
    assert ended("stopped", "loss landscape stopped on request") == "loss landscape stopped on request"
    assert ended("failed", "disk full") == "failed: disk full"
    assert ended("done") == "done" and ended("stopped", "  ") == "stopped"


def test_a_training_job_stopped_in_line(tmp_path):
    line, fake = TrainingQueue(limit=1), FakeStarter()
    first = TrainingJob([(TINY, QUICK)], tmp_path / "a", queue=line, starter=fake).start()
    waiting = TrainingJob([(TINY, QUICK), (TINY.plain(), QUICK)], tmp_path / "b", queue=line, starter=fake).start()
    wait_for(lambda: len(fake.workers) == 1)
    waiting.stop()
    for snap in waiting.snapshots():
        assert snap["message"] == STOPPED_IN_LINE
        assert says_once(phase_text(snap)) == STOPPED_IN_LINE == says_once(status_line(snap))
    fake.workers[0].finish()
    first.thread.join(timeout=5)


def test_a_training_run_the_stop_reached_before_it_began(tmp_path):
    """The worker's skipped plans, and the app's lines for them: the first run stopped mid-way, the next never began."""
    messages, stop = queue.Queue(), threading.Event()
    stop.set()
    train_plans([(TINY, QUICK)], tmp_path, messages, stop)
    kind, _, event, _, data = messages.get_nowait()
    assert (kind, event, data["status"], data["message"]) == ("event", "done", "stopped", STOPPED_BEFORE_START)

    fake = FakeStarter()
    job = TrainingJob([(TINY, QUICK), (TINY.plain(), QUICK)], tmp_path, queue=TrainingQueue(limit=1),
                      starter=fake).start()
    wait_for(lambda: len(fake.workers) == 1)
    worker = fake.workers[0]
    worker.emit("run", 0, "r-0001", str(tmp_path / "r-0001"))
    worker.emit("event", 0, "start", 0, {"total_steps": 250, "steps_per_epoch": 10, "device": "cpu"})
    worker.emit("event", 0, "done", 40, {"status": "stopped", "message": "stopped on request after step 40",
                                         "seconds": 1.0})
    worker.emit("event", 1, "done", 0, {"status": "stopped", "message": STOPPED_BEFORE_START, "seconds": 0.0})
    worker.emit("finished")
    worker.returncode = 0
    worker._lines.put(None)
    job.thread.join(timeout=5)
    mid_run, never = job.snapshots()
    assert says_once(status_line(mid_run)) == "step 40 / 250 (stopped)"  # stopped mid-run
    assert says_once(status_line(never)) == STOPPED_BEFORE_START  # the stop came before it began


def test_a_failed_run_says_why_once():
    snap = {"status": "diverged", "run_id": "r", "step": 40, "total": 250, "phase": "diverged",
            "message": "loss is nan at step 40"}
    assert status_line(snap) == "step 40 / 250 (diverged): loss is nan at step 40"
    unstarted = {"status": "failed", "run_id": None, "step": 0, "total": 0, "phase": "failed",
                 "message": "could not start the training process: no more processes"}
    assert status_line(unstarted) == "failed before it started: could not start the training process: no more processes"


def test_an_analysis_stopped_in_line_before_it_began_and_mid_way(tmp_path):
    line = TrainingQueue(limit=1)
    blocker = TrainingJob([(TINY, QUICK)], tmp_path, queue=line, starter=FakeStarter()).start()
    wait_for(lambda: line.training("cpu") == 1)
    waiting = AnalysisJob([(tmp_path / "a", "lesion", {}), (tmp_path / "b", "lesion", {})], "cpu",
                          labels=["resnet8 · shapes 32px · aaaa", "plain8 · shapes 32px · bbbb"], queue=line,
                          starter=lambda tasks, device: pytest.fail("it never starts")).start()
    waiting.stop()
    snap = waiting.snapshot()
    assert says_once(progress_text(snap)) == f"resnet8 · shapes 32px · aaaa (1 of 2): {STOPPED_IN_LINE}"
    assert says_once(stopped_text(snap, "Lesions")) == f"Lesions {STOPPED_IN_LINE}: nothing was run."
    blocker.stop()

    messages, stop = [], threading.Event()  # the worker's tasks after a stop: reported, never begun
    stop.set()

    class Channel:
        put = messages.append

    run_tasks([{"path": str(tmp_path / "a"), "lens": "lesion"}], "cpu", Channel(), stop)
    assert messages[0] == ("stopped", 0, STOPPED_BEFORE_START)
    never = {"status": "stopped", "label": "plain8 · shapes 32px · bbbb", "task": 1, "tasks": 2,
             "message": STOPPED_BEFORE_START}
    assert says_once(progress_text(never)) == f"plain8 · shapes 32px · bbbb (2 of 2): {STOPPED_BEFORE_START}"

    mid_way = {**never, "task": 0, "label": "resnet8 · shapes 32px · aaaa",
               "message": "path measurement stopped after 10 of 40 backward passes"}
    assert says_once(progress_text(mid_way)) == ("resnet8 · shapes 32px · aaaa (1 of 2): path measurement stopped "
                                                 "after 10 of 40 backward passes")
    assert says_once(stopped_text(mid_way, "Paths")) == ("Paths stopped on request at resnet8 · shapes 32px · aaaa "
                                                         "after 10 of 40 backward passes: nothing was saved for it.")
    plain = {**mid_way, "message": "loss landscape stopped on request"}
    assert not re.search(r"\(.*stopped", stopped_text(plain, "Loss landscape"))
