"""Training on several processes: torchrun launches (2 CPU processes, gloo) and the pieces they rest on.

The launches are real: `python -m torch.distributed.run --standalone --nproc_per_node 2`, each with a
subprocess timeout so that a hung collective fails the test instead of CI. Each costs ~8-15 s on two
busy cores, almost all of it starting three Python processes that import torch: so there are three, and
one launch checks everything a finished run should show.
"""

import contextlib
import glob
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_explorer.cli import main
from resnet_explorer.runs import load_run, twin_key
from resnet_explorer.training import TrainConfig, train
from resnet_explorer.training.distributed import World, local_device, shard, world_from_env

LAUNCH_TIMEOUT = 180  # seconds; a launch takes ~8-15 s here
REPO = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TINY = ["--model", "resnet8", "--train-size", "64", "--test-size", "32", "--image-size", "16", "--device", "cpu"]

# Launched by torchrun: the CLI itself (`python -m resnet_explorer`, through runpy), whose training
# (`start_run`'s `train`) is wrapped so that every rank also saves what it ended with, for the test
# to compare the ranks with each other (the CLI writes rank 0's run alone).
CLI_KEEPING_RANKS = """
import runpy, sys
import torch
import torch.distributed as dist
import resnet_explorer.runs.store as store

out, train = sys.argv.pop(1), store.train

def train_and_keep(*args, **kwargs):
    result = train(*args, **kwargs)
    torch.save({"state": result.model.state_dict(), "metrics": result.metrics, "evals": result.evals,
                "status": result.status}, f"{out}/rank{dist.get_rank()}.pt")
    return result

store.train = train_and_keep
runpy.run_module("resnet_explorer", run_name="__main__", alter_sys=True)
"""


def _env() -> dict[str, str]:
    # one thread per process (torchrun's default too): two processes share the two cores
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(TORCHRUN + args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT, stdin=subprocess.DEVNULL)


# --- the pieces, in this process ---------------------------------------------------------------

def test_world_from_env():
    assert world_from_env({}) == World() and not World().distributed
    assert world_from_env({"WORLD_SIZE": "1", "RANK": "0"}) == World()
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "29500"}
    world = world_from_env(env)
    assert (world.rank, world.local_rank, world.size, world.distributed, world.main) == (3, 1, 4, True, False)
    for bad, words in (({**env, "RANK": "4"}, "RANK=4"), ({**env, "WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
                       ({**env, "MASTER_ADDR": ""}, "MASTER_ADDR is not set"),
                       ({**env, "WORLD_SIZE": "100000"}, "WORLD_SIZE=100000")):
        with pytest.raises(ValueError, match=words):
            world_from_env(bad)


def test_device_per_process():
    two = World(rank=1, local_rank=1, size=2)
    assert local_device("cpu", two) == torch.device("cpu")
    assert local_device("cpu", World()) == torch.device("cpu")
    with pytest.raises(ValueError, match="mps cannot train with 2 processes"):
        local_device("mps", two)
    with pytest.raises(ValueError, match="pass --device cuda, not cuda:1"):
        local_device("cuda:1", two)


def test_shards_make_up_the_one_process_batch():
    perm = torch.randperm(96, generator=torch.Generator().manual_seed(0))
    for world_size, batch in ((2, 8), (3, 4), (4, 6)):
        for step in range(96 // (world_size * batch)):
            parts = [shard(perm, step, batch, World(rank=r, size=world_size)) for r in range(world_size)]
            one = shard(perm, step, world_size * batch, World())
            assert all(len(p) == batch for p in parts)
            assert torch.equal(torch.cat(parts), one)  # rank r takes slice r of the global batch, in order


def test_world_size_is_recorded_and_old_configs_read_as_one():
    config = TrainConfig(steps=2, batch_size=8, world_size=2)
    assert config.to_dict()["world_size"] == 2 and TrainConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in config.to_dict().items() if k != "world_size"}  # a run.json written before the field
    assert TrainConfig.from_dict(old).world_size == 1
    assert twin_key(*_spec_config(config))[1] != twin_key(*_spec_config(config.replace(world_size=1)))[1]
    with pytest.raises(ValueError, match="world_size"):
        TrainConfig(steps=2, world_size=0)


def _spec_config(config):
    from resnet_explorer.models import ModelSpec

    return ModelSpec.from_name("resnet8"), config


def test_train_refuses_a_world_size_without_the_processes():
    config = TrainConfig(steps=1, batch_size=8, train_size=64, test_size=16, image_size=16, device="cpu",
                         probe_every=0, world_size=2)
    with pytest.raises(ValueError, match="says 2 process"):
        train("resnet8", config)


def _torchrun_env(monkeypatch, rank: int, port: int = 29500) -> None:
    """The environment torchrun gives rank `rank` of 2, without torchrun (nothing is joined unless asked)."""
    for name, value in {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("rank", [0, 1])
def test_refusals_under_torchrun_are_one_line(monkeypatch, capsys, tmp_path, rank):
    _torchrun_env(monkeypatch, rank)
    args = ["train", "--model", "resnet8", "--steps", "1", "--batch-size", "8", "--train-size", "64",
            "--test-size", "16", "--image-size", "16", "--runs", str(tmp_path / "runs")]
    assert main([*args, "--device", "mps"]) == 2  # refused before any process group is joined
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {'' if rank == 0 else 'rank 1: '}mps cannot train with 2 processes (torch.distributed "
                   "has no mps backend): use one process, or --device cpu"]
    # the same bad argument fails alike on every rank: rank 0 says why, the others exit quietly
    assert main([*args, "--device", "cpu", "--lr", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == (["error: lr must be a positive number, got -1.0"] if rank == 0 else [])
    assert not (tmp_path / "runs").exists()


def test_other_training_commands_refuse_torchrun(monkeypatch, capsys, tmp_path):
    _torchrun_env(monkeypatch, 0)
    assert main(["degradation", "--depths", "8,14", "--steps", "1", "--device", "cpu", "--runs", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("error: only `train` runs on several processes: start this command "
                                               "without torchrun")


def test_a_group_that_cannot_be_joined_is_one_line(monkeypatch, capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _torchrun_env(monkeypatch, 0, port=taken.getsockname()[1])  # rank 0 cannot serve the group there
        code = main(["train", "--model", "resnet8", "--steps", "1", "--batch-size", "8", "--train-size", "64",
                     "--test-size", "16", "--image-size", "16", "--device", "cpu", "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: could not join the 2 processes (gloo): ")
    assert not torch.distributed.is_initialized()
    assert not (tmp_path / "runs").exists()


# --- torchrun launches -------------------------------------------------------------------------

def test_torchrun_cli_writes_one_complete_run_that_matches_one_process_with_the_same_global_batch(tmp_path):
    """`train` under torchrun writes one complete run, and two processes with batch 16 match one with
    batch 32 (no augmentation, the same seed); one launch checks both.

    Both see the same 32 images per step from the same initial weights; DDP averages the two
    ranks' gradients, which is the 32-image gradient except for BatchNorm: each rank normalises by
    its own 16 images' statistics (no SyncBatchNorm). So the losses agree closely, not bit for bit:
    measured here, the first step (step 1 is logged alone; the same weights, before any update) to
    2e-4 and every logged value (an average over 2 steps) to within 0.022. The tolerances, 0.01 and
    0.1, fail when the sharding is broken (both ranks on the first half of the batch: 0.096 at the
    first step, 0.19 at the worst).
    """
    (tmp_path / "cli.py").write_text(CLI_KEEPING_RANKS)
    out = _launch([str(tmp_path / "cli.py"), str(tmp_path), "train", *TINY, "--dataset", "shapes", "--train-size", "256",
                   "--test-size", "64", "--steps", "12", "--batch-size", "16", "--no-augment", "--lr", "0.05",
                   "--schedule", "constant", "--seed", "0", "--probe-every", "3", "--log-every", "2",
                   "--out", "runs"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    folders = list((tmp_path / "runs").iterdir())
    assert len(folders) == 1  # rank 0 alone writes
    assert out.stdout.strip() == str(folders[0])  # the path, printed once
    assert "2 processes (gloo) x batch 16 = global batch 32" in out.stderr
    assert out.stderr.count("done: trained 12 steps") == 1  # rank 0 alone prints
    run = load_run(folders[0])
    assert run.status == "done" and run.info["steps"] == 12 and (folders[0] / "model.pt").is_file()
    assert run.config.world_size == 2 and run.config.batch_size == 16
    assert run.info["distributed"]["global_batch"] == 32 and "rank 0" in run.info["distributed"]["probes"]
    assert list(run.metrics["step"]) == [1, 2, 4, 6, 8, 10, 12]
    assert sorted(set(run.tables["grad_flow"]["step"])) == [1, 4, 7, 10]  # probes recorded (on rank 0)
    assert run.evals["images"].iloc[-1] == 64  # the last evaluation covers the whole split, split over ranks
    # the 256 training images make 8 global batches of 32: epochs count global batches
    assert run.metrics["epoch"].iloc[-1] == pytest.approx(12 / 8)
    from resnet_explorer.reports.compare import summary_rows
    from resnet_explorer.training.presets import describe

    assert summary_rows([run])[0]["batch_size"] == 32  # Compare and report show the global batch
    assert "steps of batch 32 (2 processes x 16)" in describe(run.config)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["status"] == ranks[1]["status"] == "done"
    # every rank ends with the same model: parameters by DDP, BatchNorm statistics broadcast from rank 0
    for name, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][name]), name
    # the logged values are all-reduced: the same on every rank (wall-clock seconds aside)
    assert [{**row, "seconds": 0} for row in ranks[0]["metrics"]] == [{**row, "seconds": 0} for row in ranks[1]["metrics"]]
    assert [row["loss"] for row in ranks[0]["metrics"]] == pytest.approx(list(run.metrics["loss"]))  # the run's own

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the same config in one process, with the same global batch
        one = train("resnet8", run.config.replace(world_size=1, batch_size=32))
    finally:
        torch.set_num_threads(threads)
    two = [row["loss"] for row in ranks[0]["metrics"]]
    ones = [row["loss"] for row in one.metrics]
    assert len(two) == len(ones) == 7
    assert abs(two[0] - ones[0]) < 0.01
    assert max(abs(a - b) for a, b in zip(two, ones)) < 0.1


def _workers(pid: int) -> list[int]:
    """The processes torchrun started (its children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@pytest.mark.parametrize("target", ["torchrun", "one worker"])
def test_ctrl_c_stops_every_rank_and_keeps_the_run(tmp_path, target):
    """"torchrun": SIGINT to torchrun's process group, as a terminal's Ctrl-C. torchrun starts its workers
    in sessions of their own and forwards the signal to each. "one worker": only one rank is asked (as
    on one of several machines); the stop is all-reduced, so both stop after the same step (a stop
    that was not collective leaves the other rank waiting in a collective: the launch times out).
    Either way rank 0 saves the run, "stopped"."""
    if target == "one worker" and not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
        pytest.skip("needs /proc/PID/task/PID/children to find torchrun's workers")
    proc = subprocess.Popen(TORCHRUN + ["-m", "resnet_explorer", "train", *TINY, "--steps", "100000",
                                        "--batch-size", "8", "--probe-every", "0", "--log-every", "5",
                                        "--out", "runs"],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while not glob.glob(str(tmp_path / "runs" / "*" / "metrics.csv")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # a few steps in (a tiny resnet8 step takes ~40 ms here)
        if target == "torchrun":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            workers = _workers(proc.pid)
            assert len(workers) == 2
            os.kill(workers[-1], signal.SIGINT)
        _, err = proc.communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        if proc.poll() is None:
            for pid in [*_workers(proc.pid), proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            proc.wait()
    folders = list((tmp_path / "runs").iterdir())
    assert len(folders) == 1, err[-3000:]
    run = load_run(folders[0])
    assert run.status == "stopped", err[-3000:]
    assert 0 < run.info["steps"] < 100000 and (folders[0] / "model.pt").is_file()
    assert err.count("stopped on request after step") == 1 and "stopped: stopped" not in err
