"""Damaged, copied-in and interrupted run folders: every read gives a one-line message naming the file, never a
traceback, and leaves the folder's files as they were. A new damaged-file case is one line of `CASES`."""

import io
import json
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import resnet_explorer.runs.reader  # noqa: F401  (monkeypatched below)
from resnet_explorer import ModelSpec, runs
from resnet_explorer.data import load_data
from resnet_explorer.runs import RunWriter, list_runs, load_run
from resnet_explorer.runs.liveness import process_identity
from resnet_explorer.training import TrainConfig, train

TINY = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A finished 4-step run: evaluations (and model.pt) at steps 2 and 4, probes at 2 and 4."""
    data = load_data("shapes", seed=0, train_size=32, test_size=16)
    config = TrainConfig(steps=4, batch_size=16, probe_every=2, log_every=1, eval_every=2, device="cpu")
    writer = RunWriter(tmp_path_factory.mktemp("base"), TINY, config, run_id="base")
    train(TINY, config, data=data, listeners=[writer])
    return writer.path


@pytest.fixture
def run_copy(base_run, tmp_path) -> Path:
    path = tmp_path / "copy"
    shutil.copytree(base_run, path)
    return path


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# ---- ways to damage a run folder ---------------------------------------------------------------

def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        target = path / name
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    return damage


def edit_json(change: Callable[[dict], object]) -> Callable[[Path], None]:
    """Rewrite run.json after `change(info)` edits it in place."""
    def damage(path: Path) -> None:
        info = json.loads((path / "run.json").read_text())
        change(info)
        (path / "run.json").write_text(json.dumps(info))
    return damage


def edit_csv(name: str, change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        lines = (path / name).read_text().splitlines()
        (path / name).write_text("\n".join(change(lines)) + "\n")
    return damage


def edit_state(change: Callable[[dict], object]) -> Callable[[Path], None]:
    """Re-save model.pt as `change(state)`."""
    def damage(path: Path) -> None:
        state = torch.load(path / "model.pt", weights_only=True)
        buffer = io.BytesIO()
        torch.save(change(state), buffer)
        (path / "model.pt").write_bytes(buffer.getvalue())
    return damage


def rename_key(state: dict, old: str, new: str) -> dict:
    return {new if k == old else k: v for k, v in state.items()}


class Opaque:
    """A class of this module: weights_only refuses it."""


class Payload:
    """Would touch a file if unpickled: model.pt holding one must be refused unread."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


def make_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def drop_column(lines: list[str], column: str) -> list[str]:
    index = lines[0].split(",").index(column)
    return [",".join(v for i, v in enumerate(line.split(",")) if i != index) for line in lines]


def spec_change(**fields) -> Callable[[dict], None]:
    return lambda info: info["spec"].update(fields)


CASES = [  # (case, damage, file named, message part)
    ("metrics wrong columns", write("metrics.csv", "a,b\n1,2\n"), "metrics.csv",
     "lacks the columns step, epoch, loss, accuracy, lr, seconds (its columns: a, b)"),
    ("metrics one column gone", edit_csv("metrics.csv", lambda lines: drop_column(lines, "lr")), "metrics.csv",
     "lacks the column lr"),
    ("metrics text in loss", edit_csv("metrics.csv", lambda lines: [lines[0], "1,0.5,abc,0.1,0.1,0.4"] + lines[2:]),
     "metrics.csv", "column loss holds a value that is not a number ('abc' in data row 1)"),
    ("eval text in step", edit_csv("eval.csv", lambda lines: lines + ["x,1,1,1,16"]), "eval.csv",
     "column step holds a value that is not a number ('x' in data row 3)"),
    ("grad_flow ragged rows", edit_csv("grad_flow.csv", lambda lines: lines + ["1,2,3,4,5,6,7,8,9"]),
     "grad_flow.csv", "is not a readable CSV"),
    ("residual_norms binary", write("residual_norms.csv", b"\xff\xfe\x00\x81garbage\n\x00\x00"),
     "residual_norms.csv", "is not a readable CSV"),
    ("responses blank lines only", write("responses.csv", "\n\n\n"), "responses.csv", "is not a readable CSV"),
    ("run.json not JSON", write("run.json", "{broken"), "run.json", "run.json is unreadable: it is not valid JSON"),
    ("run.json not UTF-8", write("run.json", b"\xff\xfe{}"), "run.json", "run.json is unreadable: it is not UTF-8"),
    ("run.json a list", write("run.json", "[1, 2]"), "run.json", "it holds list [1, 2], not an object"),
    ("run.json no spec", edit_json(lambda info: info.pop("spec")), "run.json", 'run.json has no "spec"'),
    ("run.json no config", edit_json(lambda info: info.pop("config")), "run.json", 'run.json has no "config"'),
    ("run.json spec a string", edit_json(lambda info: info.update(spec="resnet20")), "run.json",
     "run.json's \"spec\" is 'resnet20', not an object"),
    ("spec unknown field", edit_json(spec_change(colour="red")), "run.json",
     "run.json's spec is invalid: unknown ModelSpec fields: colour"),
    ("spec bad block", edit_json(spec_change(block="wobbly")), "run.json", "run.json's spec is invalid"),
    ("config bad value", edit_json(lambda info: info["config"].update(batch_size=-3)), "run.json",
     "run.json's config is invalid"),
    ("spec declares a bigger net", edit_json(spec_change(layers=[50, 50, 50], width_multiplier=4.0)), "model.pt",
     "model.pt holds 19,218 parameters but run.json's spec (resnet302 (width x4)) declares 77,139,786: not building it"),
    ("spec declares other classes", edit_json(spec_change(num_classes=100)), "model.pt", "not building it"),
    ("model.pt too large", write("model.pt", b"\0" * 3_000_000), "model.pt",
     "model.pt is 3.0 MB, more than run.json's spec (resnet8 (width x0.5), 19,218 parameters) can need"),
    ("model.pt not a checkpoint", write("model.pt", b"not a checkpoint"), "model.pt",
     "model.pt is not a torch.save zip archive"),
    ("model.pt empty", write("model.pt", b""), "model.pt", "model.pt is not a torch.save zip archive"),
    ("model.pt truncated", lambda path: (path / "model.pt").write_bytes((path / "model.pt").read_bytes()[:5000]),
     "model.pt", "model.pt is not a torch.save zip archive"),
    ("model.pt zip without data.pkl", write("model.pt", make_zip()), "model.pt", "model.pt is damaged: "),
    ("model.pt holds an object", edit_state(lambda state: {**state, "extra": Opaque()}), "model.pt",
     "model.pt holds objects other than tensors (tests.test_runs_damaged.Opaque), so it was refused"),
    ("model.pt holds a list", edit_state(lambda state: list(state.values())), "model.pt",
     "model.pt holds a list, not a state dict"),
    ("model.pt holds a number", edit_state(lambda state: {**state, "step": 3}), "model.pt",
     "its entry 'step' holds a int, not a tensor"),
    ("model.pt renamed key", edit_state(lambda state: rename_key(state, "layer3.0.conv1.weight", "foo.weight")),
     "model.pt", "does not fit run.json's spec (resnet8 (width x0.5)): missing layer3.0.conv1.weight; "
                 "unexpected foo.weight"),
    ("model.pt transposed head", edit_state(lambda state: {**state, "fc.weight": state["fc.weight"].T.contiguous()}),
     "model.pt", "does not fit run.json's spec (resnet8 (width x0.5)): fc.weight is 32x10 in the file, 10x32 in the "
                 "model"),
    ("model.pt extra buffers", edit_state(lambda state: {**state, **{f"x{i}.running_mean": torch.zeros(1)
                                                                     for i in range(5)}}),
     "model.pt", "does not fit run.json's spec (resnet8 (width x0.5)): unexpected x0.running_mean, x1.running_mean, "
                 "x2.running_mean and 2 more"),
]


@pytest.mark.parametrize("case, damage, file, expected", CASES, ids=[c[0] for c in CASES])
def test_damaged_run_is_a_message(run_copy, monkeypatch, case, damage, file, expected):
    damage(run_copy)
    before = snapshot(run_copy)

    def no_building(*args, **kwargs):
        raise AssertionError("built a model for a run whose model.pt does not fit")

    if file == "model.pt" and "does not fit" not in expected:  # checked before anything is built
        monkeypatch.setattr(runs.reader, "build_model", no_building)
    with pytest.raises(ValueError) as caught:
        load_run(run_copy)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("run copy: "), message
    assert file in message and expected in message, message
    assert "weights_only" not in message and "Traceback" not in message
    assert caught.value.__cause__ is None and (caught.value.__context__ is None or caught.value.__suppress_context__)
    list_runs(run_copy.parent)  # the listing reads run.json only and does not fail either
    assert snapshot(run_copy) == before


def test_object_in_model_pt_is_not_executed(run_copy, tmp_path):
    marker = tmp_path / "executed"
    edit_state(lambda state: {**state, "extra": Payload(str(marker))})(run_copy)
    with pytest.raises(ValueError, match="nothing in it was executed"):
        load_run(run_copy)
    assert not marker.exists()


def test_undamaged_copy_loads(run_copy):
    run = load_run(run_copy)
    assert run.status == "done" and run.model is not None and run.classes[0] == "disk"
    mean, std, size = run.normalisation
    assert len(mean) == len(std) == 3 and size == 32


def test_missing_and_empty_tables_are_empty(run_copy):
    (run_copy / "responses_eval.csv").unlink()  # runs made before the file existed
    (run_copy / "grad_flow.csv").write_text("")
    run = load_run(run_copy, with_model=False)
    assert run.tables["responses_eval"].empty and run.tables["grad_flow"].empty
    assert list(run.tables["grad_flow"].columns) == list(runs.TABLES["grad_flow"])


def test_extra_columns_and_empty_values_are_fine(run_copy):
    edit_csv("metrics.csv", lambda lines: [lines[0] + ",note"] + [line + ",hi" for line in lines[1:]])(run_copy)
    edit_csv("residual_norms.csv", lambda lines: [lines[0], "1,layer1.0,1,2.0,,"] + lines[1:])(run_copy)
    run = load_run(run_copy, with_model=False)
    assert run.metrics["note"].iloc[0] == "hi"
    assert run.tables["residual_norms"]["ratio"].isna().iloc[0]


# ---- the data section's accessors -------------------------------------------------------------

def test_no_data_section(run_copy):
    edit_json(lambda info: info.pop("data"))(run_copy)
    run = load_run(run_copy, with_model=False)
    assert run.classes == [str(i) for i in range(10)]
    with pytest.raises(ValueError) as caught:
        _ = run.normalisation
    assert str(caught.value) == ('run base: run.json has no "data" section (it is written when training starts), '
                                 "so its images cannot be normalised")


@pytest.mark.parametrize("data, accessor, expected", [
    ({"mean": [0.5, 0.5], "std": [1, 1, 1], "image_size": 32}, "normalisation", "data.mean should be 3 numbers"),
    ({"mean": [0, 0, 0], "std": [1, 0, 1], "image_size": 32}, "normalisation", "data.std should be 3 positive"),
    ({"mean": [0, 0, 0], "std": [1, 1, 1], "image_size": "32"}, "normalisation", "data.image_size should be"),
    ({"mean": [0, 0, 0], "std": [1, 1, 1]}, "normalisation", "data.image_size should be"),
    ([1, 2], "normalisation", '"data" section is [1, 2], not an object'),
    ({"classes": ["a", "b"]}, "classes", "data.classes should be 10 class names (the model has 10 outputs)"),
    ({"classes": "abc"}, "classes", "data.classes should be 10 class names"),
])
def test_malformed_data_section(run_copy, data, accessor, expected):
    edit_json(lambda info: info.update(data=data))(run_copy)
    run = load_run(run_copy, with_model=False)
    with pytest.raises(ValueError, match="run base: run.json's ") as caught:
        getattr(run, accessor)
    assert expected in str(caught.value)


# ---- interrupted runs -------------------------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_running(path: Path, **identity) -> None:
    edit_json(lambda info: info.update(status="running", message="", steps=3, total_steps=4, **identity))(path)


def interrupted(path: Path) -> tuple[str, str]:
    """Status and message from load_run, checked against list_runs and against the files (left unchanged)."""
    before = snapshot(path)
    run = load_run(path)
    [summary] = list_runs(path.parent)
    assert (summary["status"], summary["message"]) == (run.status, run.message)
    assert snapshot(path) == before
    return run.status, run.message


def test_dead_writer_is_interrupted(run_copy):
    pid = dead_pid()
    make_running(run_copy, pid=pid, host=socket.gethostname(), pid_started=time.time() - 1)
    assert interrupted(run_copy) == (
        "interrupted", f"interrupted after step 3 of 4: its process (pid {pid} on {socket.gethostname()}) is gone; "
                       "the saved model is from step 4")
    assert json.loads((run_copy / "run.json").read_text())["status"] == "running"


def test_reused_pid_is_interrupted(run_copy):
    me = process_identity()
    make_running(run_copy, **{**me, "pid_started": me["pid_started"] - 1000})
    status, message = interrupted(run_copy)
    assert status == "interrupted" and f"(pid {me['pid']} on {me['host']}) is gone" in message


def test_live_writer_is_running(run_copy):
    make_running(run_copy, **process_identity())
    assert interrupted(run_copy) == ("running", "")


def test_interrupted_without_model(run_copy):
    (run_copy / "model.pt").unlink()
    make_running(run_copy, pid=dead_pid())
    status, message = interrupted(run_copy)
    assert status == "interrupted" and message.endswith("is gone; no model was saved")


def test_silent_remote_writer_is_interrupted(run_copy):
    make_running(run_copy, pid=4242, host="elsewhere.invalid", pid_started=1.0, updated=time.time() - 7200)
    status, message = interrupted(run_copy)
    assert status == "interrupted"
    assert "its process (pid 4242 on elsewhere.invalid) has not updated it for 2.0 h" in message


# ---- the pages: a damaged run is an st.error, and the page goes on with another ----------------

@pytest.fixture
def page_runs(base_run, tmp_path, monkeypatch) -> Path:
    """Runs "good" (oldest), "nodata" (no data section), "badcsv" and "badmodel" (newest, the default)."""
    for i, (name, damage) in enumerate([
        ("good", None), ("nodata", edit_json(lambda info: info.pop("data"))),
        ("badcsv", write("metrics.csv", "a,b\n1,2\n")), ("badmodel", write("model.pt", b"junk")),
    ]):
        shutil.copytree(base_run, tmp_path / name)
        edit_json(lambda info, name=name, i=i: info.update(id=name, created_ts=1e9 + i))(tmp_path / name)
        if damage:
            damage(tmp_path / name)
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    import streamlit as st

    st.cache_data.clear()
    return tmp_path


def app_page(name: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / name), default_timeout=60)


def test_inspect_page_names_the_damage(page_runs):
    at = app_page("3_Inspect.py").run()
    at.selectbox(key="inspect_run").set_value("badcsv").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["run badcsv: metrics.csv lacks the columns step, epoch, loss, accuracy, "
                                           "lr, seconds (its columns: a, b). Choose another run."]
    at.selectbox(key="inspect_run").set_value("good").run()
    assert not at.exception and not at.error and at.get("plotly_chart")


def test_attribute_page_names_the_damage(page_runs):
    at = app_page("4_Attribute.py").run()  # the newest run, "badmodel", is the default
    assert not at.exception
    assert [e.value for e in at.error] == ["run badmodel: model.pt is not a torch.save zip archive (damaged, "
                                           "truncated, or in PyTorch's legacy format). Choose another run."]
    at.selectbox(key="attr_run").set_value("nodata").run()
    assert not at.exception and not at.error
    at.selectbox(key="attr_other_nodata").set_value(None).run()
    next(b for b in at.button if b.label == "Attribute").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ['run nodata: run.json has no "data" section (it is written when training '
                                           'starts), so its images cannot be normalised']
