"""The app's training job (off the script thread), its server-wide queue and its live-view
throttle, without a browser."""

import json
import os
import queue
import threading
import time
from pathlib import Path

import pytest

from resnet_explorer import ModelSpec
from resnet_explorer.jobs.worker import start_process
from resnet_explorer.training import TrainConfig
from resnet_explorer.ui.jobs import (
    QUEUE,
    LiveFigure,
    TrainingJob,
    TrainingQueue,
    device_key,
    ordinal,
    phase_text,
    queue_text,
)

TINY = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)
QUICK = TrainConfig(steps=2, batch_size=16, train_size=64, test_size=32, image_size=16, probe_every=0, device="cpu")


@pytest.fixture(autouse=True)
def _fresh_queue():
    QUEUE.reset()
    yield
    QUEUE.reset()


class FakeWorker:
    """Stands in for the worker process: each plan "trains" until the test calls `finish()` or
    the job writes "stop"; `emit` sends any message."""

    def __init__(self, plans, root):
        self.plans, self.root = plans, Path(root)
        self.seed = plans[0][1].seed
        self.returncode = None
        self.killed = False
        self._lines = queue.Queue()
        self.stdout = iter(self._lines.get, None)
        self.stdin = self

    def emit(self, *message):
        self._lines.put(json.dumps(message) + "\n")

    def finish(self, status="done"):
        if self.returncode is not None:
            return
        for i in range(len(self.plans)):
            self.emit("run", i, f"fake-{self.seed}-{i}", str(self.root / f"fake-{self.seed}-{i}"))
            self.emit("event", i, "start", 0, {"total_steps": 2, "steps_per_epoch": 4, "device": "cpu"})
            self.emit("event", i, "done", 2 if status == "done" else 0, {"status": status, "message": "",
                                                                         "seconds": 0.0})
        self.emit("finished")
        self.returncode = 0
        self._lines.put(None)

    def write(self, text):
        if text.strip() == "stop":
            self.finish("stopped")

    def flush(self):
        pass

    def poll(self):
        return self.returncode

    def wait(self):
        return self.returncode

    def kill(self):
        self.killed, self.returncode = True, -9
        self._lines.put(None)


class FakeStarter:
    """A `starter` that records every worker it starts and the most alive at once."""

    def __init__(self, fail: Exception | None = None):
        self.workers: list[FakeWorker] = []
        self.max_alive = 0
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, plans, root):
        if self.fail is not None:
            raise self.fail
        with self.lock:
            worker = FakeWorker(plans, root)
            self.workers.append(worker)
            self.max_alive = max(self.max_alive, sum(w.returncode is None for w in self.workers))
        return worker

    @property
    def seeds(self):
        return [w.seed for w in self.workers]


class ThreadChild:
    """Stands in for a child process with the child's own work (`work(channel, stop)`) on a thread of this
    process: the same JSON lines on `stdout`, "stop" on `stdin` sets the stop event, and a work that
    raises is reported as `child.serve` reports it. For tests about a page or a job rather than the child
    process itself: no fresh interpreter to import torch (seconds each on two busy cores)."""

    def __init__(self, work):
        self.returncode = None
        self.killed = False
        self.stop = threading.Event()
        self._lines = queue.Queue()
        self.stdout = iter(self._lines.get, None)
        self.stdin = self
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work):
        try:
            work(self, self.stop)
        except BaseException as err:  # as `child.serve`: the parent must still hear the end
            self.put(("failed", -1, str(err) or type(err).__name__))
            self.put(("finished",))
        finally:
            if self.returncode is None:
                self.returncode = 0
            self._lines.put(None)

    def put(self, message):  # the child's `Channel.put`
        self._lines.put(json.dumps(message) + "\n")

    def write(self, text):
        if text.strip() == "stop":
            self.stop.set()

    def flush(self):
        pass

    def poll(self):
        return None if self.thread.is_alive() else self.returncode

    def wait(self, timeout=None):
        self.thread.join(timeout)
        return self.returncode

    def kill(self):
        self.killed = True
        self.stop.set()
        self.thread.join()
        self.returncode = -9


def in_process_training(plans, root):
    """A `starter` for `TrainingJob` that trains the plans as `jobs.worker` does, on a thread here."""
    from resnet_explorer.jobs.worker import train_plans

    plans = [(ModelSpec.from_dict(spec.to_dict()), TrainConfig.from_dict(config.to_dict())) for spec, config in plans]
    return ThreadChild(lambda channel, stop: train_plans(plans, str(Path(root).resolve()), channel, stop))


def in_process_analysis(tasks, device):
    """A `starter` for `AnalysisJob` that runs the tasks as `jobs.explain_worker` does, on a thread here."""
    from resnet_explorer.jobs.explain_worker import run_tasks

    tasks = [{"path": str(Path(t["path"]).resolve()), "lens": t["lens"], "options": dict(t.get("options") or {})}
             for t in tasks]
    return ThreadChild(lambda channel, stop: run_tasks(tasks, device, channel, stop))


def wait_for(condition, timeout=5.0):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            pytest.fail("timed out")
        time.sleep(0.01)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_live_figure_rebuilds_only_on_new_rows_and_at_most_once_a_second():
    clock, builds = Clock(), []
    live = LiveFigure(min_seconds=1.0, clock=clock)

    def build():
        builds.append(clock.now)
        return f"figure {len(builds)}"

    assert live.get((3,), build) == "figure 1"  # the first call builds
    clock.now += 5
    assert live.get((3,), build) == "figure 1"  # no new rows: no rebuild, however long it waited
    clock.now += 0.2
    assert live.get((4,), build) == "figure 2"  # new rows, and more than a second since the last build
    clock.now += 0.5
    assert live.get((5,), build) == "figure 2"  # new rows, but only 0.5 s later: the cached one
    clock.now += 0.6
    assert live.get((5,), build) == "figure 3"  # 1.1 s later: the rows that arrived are drawn
    assert live.builds == 3 and builds == [100.0, 105.2, 106.3]


def test_job_stop_says_stopping_at_once_and_ends_within_a_step(tmp_path):
    config = TrainConfig(steps=10_000, batch_size=16, train_size=64, test_size=32, probe_every=0, log_every=1,
                         device="cpu")
    job = TrainingJob([(TINY, config)], tmp_path).start()
    deadline = time.time() + 60
    while job.snapshot()["step"] < 3 and time.time() < deadline:
        time.sleep(0.05)
    snap = job.snapshot()
    assert snap["status"] == "running" and phase_text(snap).startswith("step ") and "(training)" in phase_text(snap)
    job.stop()
    assert job.snapshot()["phase"] == "stopping…"  # at once, before the thread has noticed
    job.thread.join(timeout=10)
    assert not job.running
    final = job.snapshot()
    assert final["status"] == "stopped" and final["phase"] == "stopped" and final["step"] < 10_000


def test_job_trains_every_spec_for_every_seed_with_seed_labels_and_reports_evaluation_and_bad_data_fails_its_run(
        tmp_path):
    """Four runs and, last, one on data that cannot be read, in one worker process: the four train, the
    fifth fails with one line and the job ends."""
    config = TrainConfig(steps=4, batch_size=16, train_size=64, test_size=160, image_size=16, probe_every=0,
                         eval_every=2, device="cpu")
    specs = [TINY, TINY.plain()]
    bad = TrainConfig(steps=2, batch_size=16, dataset="folder:/nonexistent", device="cpu")
    job = TrainingJob([*[(spec, config.replace(seed=seed)) for seed in (0, 1) for spec in specs], (TINY, bad)],
                      tmp_path)
    seen = []
    original = job._on_event

    def spy(state, kind, step, data):
        original(state, kind, step, data)
        seen.append(state["phase"])

    job._on_event = spy
    job.start().thread.join(timeout=120)
    assert not job.running
    snaps = job.snapshots()
    assert [s["status"] for s in snaps] == ["done"] * 4 + ["failed"]
    assert [s["seed"] for s in snaps[:4]] == [0, 0, 1, 1]
    assert snaps[2]["label"].endswith("· seed 1")
    assert len({s["run_id"] for s in snaps[:4]}) == 4
    assert "evaluating 3/3" in seen and seen[-1] == "done"  # 160 images in batches of 4 x 16
    # trained in a process of its own, so the UI's Python work cannot slow it (GIL)
    pids = {json.loads((tmp_path / s["run_id"] / "run.json").read_text())["pid"] for s in snaps[:4]}
    assert pids == {job.process.pid} and os.getpid() not in pids
    # the bad data: that run failed in one line, and no folder was made for it
    snap = job.snapshot()
    assert snap is not None and snap["status"] == "failed" and snap["run_id"] is None
    assert "nonexistent" in snap["message"] and "\n" not in snap["message"]
    assert len(list(tmp_path.iterdir())) == 4


def test_a_dead_training_process_is_reported_not_hung_and_the_next_in_line_starts(tmp_path):
    config = TrainConfig(steps=100_000, batch_size=16, train_size=64, test_size=32, probe_every=0, device="cpu")
    job = TrainingJob([(TINY, config)], tmp_path).start()
    seen_alive, fake = [], FakeStarter()

    def starter(plans, root):
        seen_alive.append(job.process.poll() is None)
        return fake(plans, root)

    queued = TrainingJob([(TINY, QUICK)], tmp_path, starter=starter).start()
    deadline = time.time() + 60
    while job.snapshot()["step"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert queued.snapshot()["position"] == 1 and queued.process is None
    job.process.kill()
    job.thread.join(timeout=30)
    assert not job.running
    snap = job.snapshot()
    assert snap["status"] == "failed" and "ended unexpectedly" in snap["message"]
    wait_for(lambda: len(fake.workers) == 1)
    assert seen_alive == [False]  # started only once the dead worker was gone
    fake.workers[0].finish()
    queued.thread.join(timeout=5)
    assert queued.snapshot()["status"] == "done"


def test_three_jobs_on_one_cpu_train_one_at_a_time_in_order_with_live_places_in_line(tmp_path):
    line, starter = TrainingQueue(limit=1), FakeStarter()
    # "auto" is the CPU here: the same line as "cpu"
    a, b, c = (TrainingJob([(TINY, QUICK.replace(seed=seed, device=device))], tmp_path, queue=line, starter=starter)
               for seed, device in ((1, "cpu"), (2, "auto"), (3, "cpu")))
    assert device_key("auto") == "cpu" and a.device == b.device == "cpu"
    for job in (a, b, c):
        job.start()
    wait_for(lambda: starter.seeds == [1])
    assert [j.snapshot()["status"] for j in (b, c)] == ["queued", "queued"]
    assert [j.snapshot()["position"] for j in (a, b, c)] == [None, 1, 2]
    assert phase_text(c.snapshot()) == ("queued, 2nd in line — one job at a time on cpu (training or analysis), "
                                        "another job is running")
    assert b.running and c.running and b.queued and not a.queued
    time.sleep(0.1)
    assert starter.seeds == [1]  # the others wait while it trains

    starter.workers[0].finish()
    wait_for(lambda: starter.seeds == [1, 2])
    assert c.snapshot()["position"] == 1  # live: it moved up
    assert "1st in line" in phase_text(c.snapshot())
    starter.workers[1].finish()
    wait_for(lambda: starter.seeds == [1, 2, 3])
    starter.workers[2].finish()
    for job in (a, b, c):
        job.thread.join(timeout=5)
        assert not job.running and job.snapshot()["status"] == "done"
    assert starter.max_alive == 1
    assert line.training("cpu") == 0 and line.waiting("cpu") == 0


def test_stop_on_a_queued_job_ends_it_at_once_without_a_worker_or_run_folder(tmp_path):
    line, fake = TrainingQueue(limit=1), FakeStarter()
    real_starts = []

    def real(plans, root):  # the real worker, had it started
        real_starts.append(root)
        return start_process(plans, root)

    first = TrainingJob([(TINY, QUICK)], tmp_path / "first", queue=line, starter=fake).start()
    queued = TrainingJob([(TINY, QUICK), (TINY.plain(), QUICK)], tmp_path / "queued", queue=line,
                         starter=real).start()
    wait_for(lambda: len(fake.workers) == 1)
    assert queued.snapshot()["position"] == 1
    queued.stop()
    assert not queued.running and not queued.queued  # at once
    assert [s["status"] for s in queued.snapshots()] == ["stopped", "stopped"]
    assert "queued" in queued.snapshot()["message"] and queued.snapshot()["position"] is None
    assert phase_text(queued.snapshot()) == "stopped while queued, before it started"
    after = TrainingJob([(TINY, QUICK.replace(seed=7))], tmp_path / "after", queue=line, starter=fake).start()
    assert after.snapshot()["position"] == 1  # the stopped job no longer holds a place
    fake.workers[0].finish()
    wait_for(lambda: fake.seeds == [0, 7])  # the next in line starts, not the stopped one
    fake.workers[1].finish()
    for job in (first, after):
        job.thread.join(timeout=5)
        assert job.snapshot()["status"] == "done"
    assert real_starts == [] and queued.process is None and not (tmp_path / "queued").exists()


def test_the_slot_is_given_back_when_a_worker_cannot_start(tmp_path):
    line, ok = TrainingQueue(limit=1), FakeStarter()
    broken = TrainingJob([(TINY, QUICK), (TINY.plain(), QUICK)], tmp_path, queue=line,
                         starter=FakeStarter(fail=OSError("no more processes"))).start()
    nxt = TrainingJob([(TINY, QUICK.replace(seed=5))], tmp_path, queue=line, starter=ok).start()
    broken.thread.join(timeout=5)
    assert [s["status"] for s in broken.snapshots()] == ["failed", "failed"]
    assert broken.snapshot()["message"] == "could not start the training process: no more processes"
    wait_for(lambda: ok.seeds == [5])
    ok.workers[0].finish()
    nxt.thread.join(timeout=5)
    assert nxt.snapshot()["status"] == "done" and line.training("cpu") == 0


def test_a_failing_monitor_ends_its_worker_and_gives_the_slot_back(tmp_path):
    line, starter = TrainingQueue(limit=1), FakeStarter()
    first = TrainingJob([(TINY, QUICK)], tmp_path, queue=line, starter=starter).start()
    nxt = TrainingJob([(TINY, QUICK.replace(seed=5))], tmp_path, queue=line, starter=starter).start()
    wait_for(lambda: len(starter.workers) == 1)
    starter.workers[0].emit("event", 0, "start", 0, {})  # no total_steps: the monitor raises
    first.thread.join(timeout=5)
    snap = first.snapshot()
    assert snap["status"] == "failed" and "lost track" in snap["message"] and starter.workers[0].killed
    wait_for(lambda: starter.seeds == [0, 5])
    starter.workers[1].finish()
    nxt.thread.join(timeout=5)
    assert nxt.snapshot()["status"] == "done" and starter.max_alive == 1


def test_a_limit_of_two_trains_two_at_once_and_queues_the_third(tmp_path):
    line, starter = TrainingQueue(limit=2), FakeStarter()
    jobs = [TrainingJob([(TINY, QUICK.replace(seed=s))], tmp_path, queue=line, starter=starter).start()
            for s in range(3)]
    wait_for(lambda: len(starter.workers) == 2)
    assert phase_text(jobs[2].snapshot()) == \
        "queued, 1st in line — 2 jobs at a time on cpu (training or analysis), 2 other jobs are running"
    starter.workers[1].finish()
    wait_for(lambda: starter.seeds == [0, 1, 2])
    for worker in (starter.workers[0], starter.workers[2]):
        worker.finish()
    for job in jobs:
        job.thread.join(timeout=5)
    assert starter.max_alive == 2 and [j.snapshot()["status"] for j in jobs] == ["done"] * 3


def test_reset_ends_waiting_jobs_and_takes_a_new_limit(tmp_path):
    starter = FakeStarter()
    QUEUE.reset(limit=1)
    first = TrainingJob([(TINY, QUICK)], tmp_path, starter=starter).start()  # the module's queue
    waiting = TrainingJob([(TINY, QUICK)], tmp_path, starter=starter).start()
    wait_for(lambda: len(starter.workers) == 1)
    assert waiting.queued
    QUEUE.reset(limit=3)
    waiting.thread.join(timeout=5)
    assert waiting.snapshot()["status"] == "stopped" and len(starter.workers) == 1 and QUEUE.limit == 3
    starter.workers[0].finish()
    first.thread.join(timeout=5)
    with pytest.raises(ValueError):
        QUEUE.reset(limit=0)


def test_queue_words():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
    assert queue_text(2, 1, 1, "cpu") == \
        "queued, 2nd in line — one job at a time on cpu (training or analysis), another job is running"
    assert device_key("cpu") == "cpu" and device_key("CUDA:1") == "cuda:1"


@pytest.mark.parametrize("child", ["training", "analysis"])
def test_a_server_that_dies_mid_job_leaves_the_run_stopped_not_failed(child, tmp_path):
    """The server side of a running job goes away (its pipes close, as when the server is killed): the
    child's next message finds nobody reading, and the work ends "stopped" within a step, not
    "failed: BrokenPipeError"; an analysis saves nothing half-made."""
    from resnet_explorer.jobs import explain_worker
    from resnet_explorer.runs import list_runs, load_run, start_run

    if child == "training":
        long = TrainConfig(steps=100_000, batch_size=16, train_size=64, test_size=32, image_size=16, probe_every=0,
                           log_every=1, device="cpu")
        process = start_process([(TINY, long)], tmp_path)
        wanted = "event"  # the run is training
    else:
        _, writer = start_run(TINY, QUICK, tmp_path)
        process = explain_worker.start_process(
            [{"path": writer.path, "lens": "landscape", "options": {"dims": 2, "grid": 101, "images": 64}}], "cpu")
        wanted = "progress"  # the analysis is under way
    try:
        for line in process.stdout:
            if json.loads(line)[0] == wanted:
                break
        process.stdout.close()  # the server is gone: nobody reads, nobody writes
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    path = Path(list_runs(tmp_path)[0]["path"])
    if child == "training":
        run = load_run(path, with_model=False)
        assert run.status in ("stopped", "interrupted"), (run.status, run.message)
        assert "BrokenPipe" not in run.message and "failed" not in run.message
    else:
        assert not (path / "explain" / "landscape").exists()
