import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_explorer import ModelSpec
from resnet_explorer.data import load_data
from resnet_explorer.export import write_atomic
from resnet_explorer.runs import TABLES, RunWriter, list_runs, load_run, run_dir
from resnet_explorer.training import TrainConfig, train

TINY = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)
ROOT = Path(__file__).resolve().parents[1]


def test_round_trip(tmp_path):
    data = load_data("shapes", seed=0, train_size=64, test_size=32)
    config = TrainConfig(steps=6, batch_size=16, probe_every=2, log_every=2, device="cpu")
    writer = RunWriter(tmp_path, TINY, config)
    result = train(TINY, config, data=data, listeners=[writer])
    run = load_run(writer.path)
    assert run.status == "done" and run.info["steps"] == 6 and run.spec == TINY.replace(num_classes=10)
    assert run.config == config
    assert run.metrics["loss"].tolist() == pytest.approx([m["loss"] for m in result.metrics])
    assert run.tables["residual_norms"]["ratio"].tolist() == pytest.approx(
        [r["ratio"] for r in result.residual_norms])
    assert list(run.tables["grad_flow"].columns) == list(TABLES["grad_flow"])
    assert len(run.tables["grad_flow"]) == len(result.grad_flow)
    assert run.info["data"]["name"] == "shapes" and len(run.info["data"]["mean"]) == 3
    assert run.info["versions"]["torch"] == torch.__version__
    x = torch.randn(2, 3, 32, 32)
    result.model.eval()
    with torch.no_grad():
        assert torch.equal(run.model(x), result.model(x))  # identical logits after save/load
    assert list_runs(tmp_path)[0]["id"] == writer.id


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "", "/etc", "x" * 200, ".hidden", "a\\b"])
def test_run_ids_cannot_escape(tmp_path, bad):
    with pytest.raises(ValueError):
        run_dir(tmp_path, bad)


def test_write_atomic_keeps_old_file_on_crash(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    write_atomic(path, "old\n")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_killed_run_stays_loadable(tmp_path):
    script = (
        "from resnet_explorer.cli import main; import sys; "
        f"sys.exit(main(['train', '--model', 'resnet8', '--image-size', '16', '--steps', '100000', '--batch-size', '16', "
        f"'--train-size', '256', '--test-size', '32', '--log-every', '1', '--probe-every', '1', "
        f"'--eval-every', '3', '--out', {str(tmp_path)!r}]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            runs = list_runs(tmp_path)
            if runs and (runs[0]["steps"] or 0) >= 8:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run did not start")
        proc.send_signal(signal.SIGKILL)  # no cleanup at all
        proc.wait(timeout=30)
    finally:
        proc.kill()
    path = Path(list_runs(tmp_path)[0]["path"])
    run = load_run(path)
    assert run.status == "interrupted" and "is gone" in run.info["message"]  # it never finished, and says so
    assert len(run.metrics) >= 8 and run.model is not None
    assert not [p for p in path.iterdir() if p.name.endswith(".tmp")]


def test_not_a_run_folder(tmp_path):
    with pytest.raises(ValueError, match="not a run folder"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(ValueError, match="unreadable"):
        load_run(tmp_path)


def test_corrupt_weights_are_a_clear_error(tmp_path):
    data = load_data("shapes", seed=0, train_size=32, test_size=16)
    config = TrainConfig(steps=2, batch_size=16, probe_every=0, device="cpu")
    writer = RunWriter(tmp_path, TINY, config)
    train(TINY, config, data=data, listeners=[writer])
    (writer.path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="model.pt"):
        load_run(writer.path)
    info = json.loads((writer.path / "run.json").read_text())
    assert info["status"] == "done"


def test_find_twin(tmp_path):
    from resnet_explorer.runs import find_twin

    def write(run_id: str, name: str, created_ts: float) -> None:
        spec, config = ModelSpec.from_name(name), TrainConfig(steps=10)
        (tmp_path / run_id).mkdir()
        write_atomic(tmp_path / run_id / "run.json", json.dumps({
            "id": run_id, "status": "done", "spec_name": spec.name, "spec": spec.to_dict(),
            "config": config.to_dict(), "created_ts": created_ts}))

    write("a", "plain20", 1.0)
    write("b", "resnet20", 2.0)
    write("c", "plain20", 3.0)
    write("d", "wide_resnet50_2", 4.0)
    write("e", "plain_wide_resnet50_2", 5.0)
    runs = list_runs(tmp_path)
    assert [r["id"] for r in runs] == ["e", "d", "c", "b", "a"]
    assert runs[0]["spec"] == ModelSpec.from_name("plain_wide_resnet50_2").to_dict()
    assert runs[0]["config"] == TrainConfig(steps=10).to_dict()
    assert find_twin(runs, "b") == "c"  # the newest (list_runs order)
    assert find_twin(runs, "c") == "b" and find_twin(runs, "a") == "b"
    assert find_twin(runs, "d") == "e" and find_twin(runs, "e") == "d"  # paired by spec, not by name
    assert find_twin(runs, "zzz") is None


def test_runs_of_earlier_versions_name_units_block(tmp_path):
    """residual_norms.csv said "block" for a unit before 0.2; such runs still load, as "unit"."""
    import shutil

    source = next(p for p in (ROOT / "examples" / "degradation").iterdir() if p.is_dir())
    old = tmp_path / source.name
    shutil.copytree(source, old)
    csv = old / "residual_norms.csv"
    lines = csv.read_text().splitlines(keepends=True)
    assert lines[0].startswith("step,unit,")
    csv.write_text(lines[0].replace("step,unit,", "step,block,", 1) + "".join(lines[1:]))
    run = load_run(old, with_model=False)
    assert list(run.tables["residual_norms"].columns[:2]) == ["step", "unit"]
    assert run.tables["residual_norms"]["unit"].iloc[0].startswith("layer1.")
