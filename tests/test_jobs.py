"""The app's training job (off the script thread) and its live-view throttle, without a browser."""

import json
import os
import time

from resnet_explorer import ModelSpec
from resnet_explorer.training import TrainConfig
from resnet_explorer.ui.jobs import LiveFigure, TrainingJob, phase_text

TINY = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)


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


def test_job_trains_every_spec_for_every_seed_with_seed_labels(tmp_path):
    config = TrainConfig(steps=2, batch_size=16, train_size=32, test_size=16, probe_every=0, device="cpu")
    specs = [TINY, TINY.plain()]
    job = TrainingJob([(spec, config.replace(seed=seed)) for seed in (0, 1) for spec in specs], tmp_path).start()
    job.thread.join(timeout=120)
    snaps = job.snapshots()
    assert [s["status"] for s in snaps] == ["done"] * 4
    assert [s["seed"] for s in snaps] == [0, 0, 1, 1]
    assert snaps[2]["label"].endswith("· seed 1")
    assert len({s["run_id"] for s in snaps}) == 4
    # trained in a process of its own, so the UI's Python work cannot slow it (GIL)
    pids = {json.loads((tmp_path / s["run_id"] / "run.json").read_text())["pid"] for s in snaps}
    assert pids == {job.process.pid} and os.getpid() not in pids


def test_a_dead_training_process_is_reported_not_hung(tmp_path):
    config = TrainConfig(steps=100_000, batch_size=16, train_size=64, test_size=32, probe_every=0, device="cpu")
    job = TrainingJob([(TINY, config)], tmp_path).start()
    deadline = time.time() + 60
    while job.snapshot()["step"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    job.process.kill()
    job.thread.join(timeout=30)
    assert not job.running
    snap = job.snapshot()
    assert snap["status"] == "failed" and "ended unexpectedly" in snap["message"]


def test_bad_data_fails_that_run_with_one_line_and_the_job_ends(tmp_path):
    config = TrainConfig(steps=2, batch_size=16, dataset="folder:/nonexistent", device="cpu")
    job = TrainingJob([(TINY, config)], tmp_path).start()
    job.thread.join(timeout=60)
    snap = job.snapshot()
    assert snap["status"] == "failed" and "nonexistent" in snap["message"] and "\n" not in snap["message"]


def test_job_reports_evaluation_progress(tmp_path):
    config = TrainConfig(steps=4, batch_size=16, train_size=64, test_size=160, probe_every=0, eval_every=2,
                         device="cpu")
    job = TrainingJob([(TINY, config)], tmp_path)
    seen = []
    original = job._on_event

    def spy(state, kind, step, data):
        original(state, kind, step, data)
        seen.append(state["phase"])

    job._on_event = spy
    job.start().thread.join(timeout=60)
    assert "evaluating 3/3" in seen and seen[-1] == "done"  # 160 images in batches of 4 x 16
