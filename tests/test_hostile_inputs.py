"""Hostile inputs: every case a user, a link or a damaged file can send, and what it must leave behind.

Each table row is one case; a new hostile input is one more row. CLI rows run in-process
(`cli.main`), so an uncaught exception fails the test, and assert the exit code, a one-line
message, and that no run folder was left behind. The memory cases run in a subprocess under an
address-space limit and a time bound: they must be refused arithmetically, in seconds.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from resnet_explorer import cli
from resnet_explorer.cli import main
from resnet_explorer.runs import RunWriter, list_runs, load_run

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "resnet8", "--steps", "2", "--batch-size", "16", "--train-size", "64", "--test-size", "32",
        "--image-size", "16", "--probe-every", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One finished two-step run, shared by the attribute and report cases."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, "--out", str(root)]) == 0
    return Path(list_runs(root)[0]["path"])


def _one_line_error(capsys, code: int, expected: int, fragment: str) -> str:
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1] if err else ""
    assert code == expected, err
    assert "Traceback" not in err
    assert last.startswith("error: ") and fragment in last, err
    return last


# ---- command line: (case, argv with {out}/{run}/{file} placeholders, exit code, message fragment) ----
CLI_CASES = [
    # 1. sizes past the ceilings are refused arithmetically (the memory-limited runs are below)
    ("huge name depth", ["info", "resnet6000000002"], 2, "ceiling of 10,000 residual units"),
    ("huge composed units", ["info", "--stem", "cifar", "--layers", "1000000000,1,1"], 2, "ceiling of 10,000"),
    ("huge width", ["info", "wide_resnet101_2", "--width-multiplier", "16", "--yes"], 2, "ceiling of 2,000,000,000"),
    ("huge train depth", ["train", "--model", "plain6000000002", "--out", "{out}"], 2, "ceiling"),
    ("huge degradation depth", ["degradation", "--depths", "20,6000000002", "--out", "{out}"], 2, "ceiling"),
    # 2. failed starts: checked before any folder exists
    ("no cuda", ["train", *TINY[:-2], "--device", "cuda", "--out", "{out}"], 2, "CUDA"),
    ("batch over the set", ["train", *TINY[:4], "--batch-size", "100000", "--out", "{out}"], 2, "batch_size"),
    ("batch past the training set", ["train", *TINY[:4], "--batch-size", "128", "--train-size", "64",
                                     "--out", "{out}"], 2, "larger than the training set"),
    ("seed 2^70", ["train", *TINY, "--seed", str(2**70), "--out", "{out}"], 2, "seed must be from 0 to 4,294,967,295"),
    ("negative seed", ["train", *TINY, "--seed", "-1", "--out", "{out}"], 2, "seed must be from 0"),
    # 3. output folders that cannot be written: before the work starts
    ("train out is a file", ["train", *TINY, "--out", "{file}"], 2, "is a file"),
    ("info export is a file", ["info", "resnet20", "--export", "{file}", "--format", "csv"], 2, "is a file"),
    ("attribute out is a file", ["attribute", "{run}", "--out", "{file}", "--methods", "saliency"], 2, "is a file"),
    ("report out is a file", ["report", "{run}", "--out", "{file}", "--format", "html"], 2, "is a file"),
    ("out under a file", ["train", *TINY, "--out", "{file}/runs"], 2, "cannot write to"),
    # 4. training-set size
    ("train size 10^9", ["train", *TINY[:-6], "--train-size", "1000000000", "--out", "{out}"], 2,
     "train_size must be from 1 to 100,000"),
    ("test size 10^9", ["train", *TINY[:-4], "--test-size", "1000000000", "--out", "{out}"], 2, "test_size"),
    ("image size 10^5", ["train", *TINY[:-6], "--image-size", "100000", "--out", "{out}"], 2, "image_size"),
    ("data bytes", ["train", "--model", "resnet8", "--steps", "1", "--train-size", "100000", "--image-size", "224",
                    "--out", "{out}"], 2, "GB in memory"),
    # 6. bad values
    ("weight decay nan", ["train", *TINY, "--weight-decay", "nan", "--out", "{out}"], 2, "weight_decay"),
    ("weight decay inf", ["train", *TINY, "--weight-decay", "inf", "--out", "{out}"], 2, "weight_decay"),
    ("epochs 0", ["train", "--model", "resnet8", "--epochs", "0", "--out", "{out}"], 2, "epochs must be"),
    ("epochs nan", ["train", "--model", "resnet8", "--epochs", "nan", "--out", "{out}"], 2, "epochs must be"),
    ("steps and epochs", ["train", *TINY, "--epochs", "1", "--out", "{out}"], 2, "not both"),
    ("samples 0", ["attribute", "{run}", "--samples", "0", "--out", "{out}"], 2, "from 1 to"),
    ("samples 10^9", ["attribute", "{run}", "--samples", "1000000000", "--out", "{out}"], 2, "from 1 to"),
    ("ig steps 0", ["attribute", "{run}", "--steps", "0", "--out", "{out}"], 2, "--steps must be from 1 to 512"),
    ("summary depth -1", ["info", "resnet20", "--summary-depth", "-1"], 2, "--summary-depth"),
    ("input size 0", ["info", "resnet20", "--input-size", "0"], 2, "--input-size"),
    ("plain zero-init", ["train", *TINY, "--plain", "--zero-init", "--out", "{out}"], 2, "--zero-init needs shortcuts"),
    ("imagenet depths", ["degradation", "--depths", "18,34", "--out", "{out}"], 2, "6n+2"),
    ("one depth twice", ["degradation", "--depths", "8,8", "--out", "{out}"], 2, "two different depths"),
    ("seeds 2^70", ["degradation", "--depths", "8,14", "--seeds", f"0,{2**70}", "--steps", "1", "--out", "{out}"],
     2, "seed must be"),
    ("num classes 10^12", ["info", "resnet20", "--num-classes", str(10**12)], 2, "from 1 to 100,000"),
    # 10. messages that mislead
    ("report a plain folder", ["report", "{out}", "--out", "{out}/r"], 2, "is not a run folder (no run.json"),
    ("report a missing folder", ["report", "{out}/nothing/here", "--out", "{out}/r"], 2, "no run folder"),
]


@pytest.mark.parametrize("case, argv, code, fragment", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_with_one_line(case, argv, code, fragment, tmp_path, capsys, request):
    out, file = tmp_path / "out", tmp_path / "a-file"
    out.mkdir()
    file.write_text("not a folder")
    needs_run = any("{run}" in a for a in argv)
    run = request.getfixturevalue("tiny_run") if needs_run else None
    capsys.readouterr()
    args = [a.format(out=out, file=file, run=run) for a in argv]
    _one_line_error(capsys, main(args), code, fragment)
    assert file.read_text() == "not a folder"  # untouched
    assert not any(out.iterdir())  # nothing half-made: no run folder for a run that could not start


def test_read_only_output_folder(tmp_path, capsys):
    if os.geteuid() != 0:
        base = tmp_path / "locked"
        base.mkdir()
        base.chmod(0o500)
    else:  # root writes through permissions: use a read-only file system instead
        base = Path("/sys")
        try:
            (base / "resnet-explorer-probe").mkdir()
        except OSError:
            pass
        else:
            (base / "resnet-explorer-probe").rmdir()
            pytest.skip("no read-only folder to try: running as root with a writable /sys")
    try:
        _one_line_error(capsys, main(["train", *TINY, "--out", str(base / "runs")]), 2, "cannot write to")
    finally:
        if base != Path("/sys"):
            base.chmod(0o700)


# ---- 1 and 4: memory-hungry requests, under an address-space limit and a time bound -----------
MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (__LIMIT__, __LIMIT__))
    from resnet_explorer.cli import main
    from resnet_explorer.models import ModelSpec, count_parameters, large_model_message
    from resnet_explorer.ui.widgets import spec_from_query
    from resnet_explorer.training import TrainConfig
    from resnet_explorer.data import load_data
    results = {}
    def case(name, fn):
        started = time.perf_counter()
        try:
            value = fn()
        except (ValueError, TypeError) as err:
            value = "ValueError: " + str(err)
        results[name] = [str(value)[:300], time.perf_counter() - started]
    case("cli info", lambda: main(["info", "resnet6000000002"]))
    case("cli train", lambda: main(["train", "--train-size", "1000000000", "--model", "resnet8", "--out", __OUT__]))
    case("link model", lambda: spec_from_query({"model": "resnet6000000002"}))
    case("link spec", lambda: spec_from_query({"spec": json.dumps({"layers": [1000000000, 1, 1]})}))
    case("link long", lambda: spec_from_query({"spec": "[" * 10_000_000}))
    case("deep count", lambda: count_parameters(ModelSpec(layers=(3333, 3333, 3333))))
    case("deep message", lambda: large_model_message(ModelSpec(layers=(3333, 3333, 3333), width_multiplier=16.0)))
    case("data", lambda: load_data("shapes", train_size=100_000, test_size=100_000, image_size=512))
    print(json.dumps(results))
""")


def test_memory_hungry_requests_are_refused_in_seconds_under_a_memory_limit(tmp_path):
    limit = 3 * 2**30  # 3 GB of address space: torch's import fits, none of the requests would
    script = MEMORY_SCRIPT.replace("__LIMIT__", str(limit)).replace("__OUT__", repr(str(tmp_path)))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["cli info"][0] == "2" and results["cli train"][0] == "2"
    for name in ("link model", "link spec"):
        assert "ceiling of 10,000" in results[name][0], results[name]
    assert "characters long" in results["link long"][0]
    assert int(results["deep count"][0]) > 100_000_000
    assert "is large: 9,999 residual units" in results["deep message"][0] or "ceiling" in results["deep message"][0]
    assert "GB in memory" in results["data"][0]
    # refused arithmetically, in well under a second on a quiet machine; the bound only has to tell that from
    # allocating (minutes, or the memory limit's MemoryError) on a loaded one, where 5 s flaked
    assert max(seconds for _, seconds in results.values()) < 20.0, results
    assert time.perf_counter() - started < 60
    assert "ceiling of 10,000 residual units" in proc.stderr and "Traceback" not in proc.stderr


def test_arithmetic_count_matches_the_built_module_at_depth():
    from resnet_explorer.models import ModelSpec, build_model, count_parameters, stage_units

    for spec in (ModelSpec(layers=(40, 1, 7)), ModelSpec(block="bottleneck", layers=(3, 1, 2), shortcut="C"),
                 ModelSpec.from_name("resnext50_32x4d"), ModelSpec(layers=(5, 5, 5), residual=False)):
        model = build_model(spec, device="meta", confirm_large=True)
        assert count_parameters(spec) == sum(p.numel() for p in model.parameters()), spec.label
    assert [repeats for _, _, repeats in stage_units(ModelSpec(layers=(40, 1, 7)))] == [39, 0, 6]


# ---- 2: a run that cannot start leaves no folder; a killed one reads "interrupted" --------------
def test_failed_start_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", *TINY[:-2], "--device", "cuda:7", "--out", str(out)]) == 2
    assert list_runs(out) == [] and (not out.exists() or not any(out.iterdir()))


# ---- 3: disk full mid-run ------------------------------------------------------------------------
def test_disk_full_while_saving_the_model_fails_the_run_and_keeps_the_files(tmp_path, capsys, monkeypatch):
    import resnet_explorer.runs.store as runs

    def full(model, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runs, "save_state_dict", full)
    code = main(["train", *TINY, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "disk full: could not write model.pt at step 2" in err
    run = load_run(Path(list_runs(tmp_path)[0]["path"]), with_model=False)
    assert run.status == "failed" and run.info["message"].startswith("disk full")
    assert list(run.metrics["step"]) == [1, 2] and not (run.path / "model.pt").exists()
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_disk_full_on_a_csv_names_it(tmp_path):
    from resnet_explorer.models import ModelSpec
    from resnet_explorer.training import TrainConfig, train

    config = TrainConfig(steps=6, batch_size=16, train_size=64, test_size=32, image_size=16, probe_every=0,
                         log_every=1, device="cpu")
    writer = RunWriter(tmp_path, ModelSpec(layers=(1, 1, 1)), config, flush_seconds=0.0)
    import resnet_explorer.runs.store as runs

    real, calls = runs.write_atomic, []

    def flaky(path, data):
        calls.append(path)
        if len(calls) > 20 and Path(path).name == "metrics.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(path).parent / ".metrics.csv.x1.tmp"))
        return real(path, data)

    runs.write_atomic = flaky
    try:
        result = train(ModelSpec(layers=(1, 1, 1)), config, listeners=[writer])
    finally:
        runs.write_atomic = real
    assert result.status == "failed" and "disk full: could not write metrics.csv" in result.message
    info = json.loads((writer.path / "run.json").read_text())
    assert info["status"] == "failed" and "metrics.csv" in info["message"]


# ---- 8: Ctrl-C -----------------------------------------------------------------------------------
def test_second_ctrl_c_raises_at_once_first_sets_stop():
    stop = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    restore = cli.stop_on_signals(stop, stream=open(os.devnull, "w"))
    try:
        handler = signal.getsignal(signal.SIGINT)
        handler(signal.SIGINT, None)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            handler(signal.SIGINT, None)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # SIGTERM only ever asks to stop
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_interrupt_during_evaluation_ends_the_run_stopped_and_kept(tmp_path):
    from resnet_explorer.models import ModelSpec
    from resnet_explorer.training import TrainConfig, train

    config = TrainConfig(steps=4, batch_size=16, train_size=64, test_size=256, image_size=16, probe_every=0,
                         log_every=1, eval_every=2, device="cpu")
    writer = RunWriter(tmp_path, ModelSpec(layers=(1, 1, 1)), config)
    stop = threading.Event()
    batches = []

    def on_event(event):  # first "Ctrl-C" in the first evaluation, a second one in the next batch
        if event.kind == "phase" and event.data.phase == "evaluating":
            batches.append(event.data.batch)
            if len(batches) == 1:
                stop.set()

    result = train(ModelSpec(layers=(1, 1, 1)), config, listeners=[writer, on_event], stop=stop)
    assert result.status == "stopped" and result.steps == 2 and batches == [1] and result.evals == []
    assert json.loads((writer.path / "run.json").read_text())["status"] == "stopped"

    def interrupt(event):
        if event.kind == "phase" and event.data.phase == "evaluating":
            raise KeyboardInterrupt

    writer = RunWriter(tmp_path, ModelSpec(layers=(1, 1, 1)), config)
    result = train(ModelSpec(layers=(1, 1, 1)), config, listeners=[writer, interrupt])
    assert result.status == "stopped" and result.message == "interrupted at step 2"
    assert json.loads((writer.path / "run.json").read_text())["status"] == "stopped"


def test_ctrl_c_from_a_shell_exits_130_and_keeps_the_run(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "resnet_explorer", "train", *TINY[:2], "--steps", "100000",
                             *TINY[4:], "--log-every", "1", "--out", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list_runs(tmp_path):  # the folder appears when training starts
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopping after this step" in err
    run = load_run(Path(list_runs(tmp_path)[0]["path"]), with_model=False)
    assert run.status == "stopped" and out.strip() == str(run.path)


# ---- 9 and 10: damaged files and folders of images -----------------------------------------------
def test_attribute_on_a_run_without_data_section(tiny_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, copy)
    info = json.loads((copy / "run.json").read_text())
    del info["data"]
    (copy / "run.json").write_text(json.dumps(info))
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    last = _one_line_error(capsys, main(["attribute", str(copy), "--out", str(tmp_path / "a")]), 2, "run.json")
    assert "data" in last
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_huge_image_in_a_training_folder_is_refused_from_its_header(tmp_path):
    from PIL import Image

    from resnet_explorer.data import load_data

    for cls in ("a", "b"):
        for i in range(3):
            (tmp_path / cls).mkdir(exist_ok=True)
            Image.new("RGB", (8, 8)).save(tmp_path / cls / f"{i}.png")
    Image.new("1", (5000, 4500)).save(tmp_path / "a" / "huge.png")  # 22.5 MP, a few KB on disk
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"huge.png.*5000 x 4500 pixels is past the ceiling of 20,000,000"):
        load_data(f"folder:{tmp_path}", image_size=16, seed=1, train_size=None)
    assert time.perf_counter() - started < 2.0


def test_config_ceilings_name_the_field():
    from resnet_explorer.training import TrainConfig

    for field, value in (("train_size", 10**7), ("batch_size", 10**6), ("steps", 10**9), ("seed", 2**70),
                         ("image_size", 4096), ("epochs", 1e9)):
        budget = {} if field in ("steps", "epochs") else {"steps": 1}
        with pytest.raises(ValueError, match=field):
            TrainConfig(**{field: value, **budget})


# ---- links into the app: (case, query parameters, error fragment) ---------------------------------
LINK_CASES = [
    ("huge depth", {"model": "resnet6000000002"}, "ceiling of 10,000 residual units"),
    ("huge spec", {"spec": json.dumps({"layers": [1000000000, 1, 1]})}, "ceiling of 10,000"),
    ("long spec", {"spec": "[" * 100_000}, "characters long"),
    ("spec not an object", {"spec": "[1, 2]"}, "JSON object"),
    ("classes 10^12", {"spec": json.dumps({"num_classes": 10**12})}, "num_classes must be a whole number from 1"),
    ("width 10^6", {"spec": json.dumps({"width_multiplier": 1e6})}, "width_multiplier must be from 0.125 to 16"),
    ("past max params", {"spec": json.dumps({"stem": "imagenet", "block": "bottleneck", "layers": [3, 4, 23, 3],
                                             "width_multiplier": 16.0})}, "ceiling of 2,000,000,000"),
    ("bogus device", {"model": "resnet20", "device": "bogus"}, "device 'bogus' is not one of"),
]


@pytest.mark.parametrize("case, params, fragment", LINK_CASES, ids=[c[0] for c in LINK_CASES])
def test_a_hostile_link_gets_a_message_and_a_live_page(case, params, fragment):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "1_Architecture.py"), default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    started = time.perf_counter()
    at.run()
    assert not at.exception
    assert any(fragment in e.value for e in at.error), [e.value for e in at.error]
    assert time.perf_counter() - started < 30
    at.text_input(key="arch_typed").set_value("resnet20").run()  # the session goes on
    assert not at.exception and at.session_state["rx_spec"].name == "resnet20"


def test_inspect_notices_a_file_damaged_after_it_was_shown(tiny_run, tmp_path, monkeypatch):
    import shutil

    from streamlit.testing.v1 import AppTest

    shutil.copytree(tiny_run, tmp_path / tiny_run.name)
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "pages" / "3_Inspect.py"), default_timeout=60)
    at.run()
    assert not at.exception and not at.error
    (tmp_path / tiny_run.name / "metrics.csv").write_text("a,b\n1,2\n")  # run.json unchanged
    at.run()
    assert not at.exception
    assert any("metrics.csv lacks the columns step" in e.value for e in at.error), [e.value for e in at.error]


# ---- round 3: checkpoints, run folders and file names from elsewhere -------------------------------
def hash_bomb(levels: int = 64) -> bytes:
    """A dict keyed by a `levels`-deep tuple DAG (each level holds the one below twice, through the memo):
    ~460 bytes of the opcodes `weights_only` unpickling accepts, whose last key takes 2^levels steps to
    hash. The levels stay on the stack, so the dict takes them all as keys and values: ():t1, t2:t3, ...,
    t_levels:1 (`levels` even)."""
    out = bytearray(b"\x80\x02}()q\x00")  # PROTO 2, EMPTY_DICT, MARK, EMPTY_TUPLE, BINPUT 0
    for k in range(levels):  # BINGET k twice, TUPLE2, BINPUT k+1
        out += b"h" + bytes([k]) + b"h" + bytes([k]) + b"\x86q" + bytes([k + 1])
    return bytes(out + b"K\x01u.")  # BININT1 1, SETITEMS, STOP


def _bomb_in_a_zip(path: Path, levels: int = 64) -> Path:
    """A torch.save zip archive whose data.pkl is the bomb (the other members as torch wrote them)."""
    import io
    import zipfile

    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, hash_bomb(levels) if info.filename.endswith("data.pkl") else zin.read(info))
    return path


def test_the_bomb_is_what_it_claims_and_only_its_expansion_is_refused(tmp_path):
    import pickle

    import torch

    from resnet_explorer.limits import MAX_PICKLE_NODES
    from resnet_explorer.pickle_guard import Refused, check_pickle

    small = torch.load(_bomb_in_a_zip(tmp_path / "small.pth", levels=6), weights_only=True)  # small: hashed
    assert small == pickle.loads(hash_bomb(levels=6)) and len(small) == 4
    key = next(k for k, v in small.items() if v == 1)
    for _ in range(6):
        assert key[0] is key[1]  # one object referenced twice: the memo, not copies
        key = key[0]
    assert key == ()
    assert check_pickle(hash_bomb(levels=8), "small") > 0  # 2^9 nodes: a harmless pickle is read
    assert 2 ** 24 > MAX_PICKLE_NODES
    with pytest.raises(Refused, match="refused unread.*nothing in it was executed"):
        check_pickle(hash_bomb(levels=24), "bomb")


def test_shared_storage_and_legacy_checkpoints_still_load(tmp_path):
    import torch

    from resnet_explorer import build_model
    from resnet_explorer.pickle_guard import check_torch_file

    state = build_model("resnet18").state_dict()
    state["tied"] = state["fc.weight"].view(-1)  # one storage behind two tensors, as tied weights are saved
    for legacy in (False, True):
        path = tmp_path / f"legacy_{legacy}.pth"
        torch.save({"state_dict": state, "epoch": 3}, path, _use_new_zipfile_serialization=not legacy)
        check_torch_file(path, path.name)
        loaded = torch.load(path, weights_only=True)["state_dict"]
        assert loaded["tied"].data_ptr() == loaded["fc.weight"].data_ptr()


def test_hash_bombs_are_refused_in_seconds_wherever_they_come_in(tiny_run, tmp_path):
    """A bare pickle and a torch.save zip to import-weights, a run's model.pt, a CIFAR batch: each refused
    in one line within seconds. In a subprocess with a timeout: a bomb let through would hold the GIL
    hashing for 2^64 steps, and only a subprocess can be stopped then."""
    import shutil

    (tmp_path / "bare.pth").write_bytes(hash_bomb())
    _bomb_in_a_zip(tmp_path / "zip.pth")
    run = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, run)
    _bomb_in_a_zip(run / "model.pt")
    (tmp_path / "cifar").mkdir()
    (tmp_path / "cifar" / "data_batch_1").write_bytes(hash_bomb())
    script = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        from resnet_explorer.cli import main
        from resnet_explorer.data.cifar import _read_pickle
        from resnet_explorer.runs import load_run
        d = Path({str(tmp_path)!r})
        out = {{}}
        for name in ("bare.pth", "zip.pth"):
            started = time.perf_counter()
            code = main(["import-weights", str(d / name), "--model", "resnet18", "--out", str(d / "runs")])
            out[name] = [code, time.perf_counter() - started]
        for name, read in (("model.pt", lambda: load_run({str(run)!r})),
                           ("cifar", lambda: _read_pickle(d / "cifar" / "data_batch_1"))):
            started = time.perf_counter()
            try:
                read()
                out[name] = ["read", 0.0]
            except ValueError as err:
                out[name] = [str(err), time.perf_counter() - started]
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all("refused unread" in e for e in errors) and "Traceback" not in proc.stderr
    assert "bare.pth" in errors[0] and "zip.pth" in errors[1]
    for name in ("bare.pth", "zip.pth"):  # a 64-level bomb let through never ends (2^64 steps): any bound
        assert got[name][0] == 2 and got[name][1] < 20, got  # tells refused from hung; 5 s flaked under load
    assert "refused unread" in got["model.pt"][0] and "\n" not in got["model.pt"][0], got
    assert "refused unread" in got["cifar"][0], got
    assert max(got["model.pt"][1], got["cifar"][1]) < 20, got
    assert not (tmp_path / "runs").exists() or list_runs(tmp_path / "runs") == []


def test_an_import_killed_before_its_rename_is_never_a_run_and_is_cleaned(tmp_path):
    import torch

    from resnet_explorer import build_model
    from resnet_explorer.runs import STAGING_SUFFIX
    from resnet_explorer.runs.checkpoints import import_weights

    file, root = tmp_path / "r18.pth", tmp_path / "runs"
    torch.save(build_model("resnet18").state_dict(), file)
    script = textwrap.dedent(f"""
        import os, signal
        from resnet_explorer.runs.checkpoints import import_weights
        real = os.replace
        def replace(src, dst):  # SIGKILL just before the staging folder takes its name
            if str(src).endswith({STAGING_SUFFIX!r}):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)
        os.replace = replace
        import_weights({str(file)!r}, "resnet18", {str(root)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    staged = [p for p in root.iterdir() if p.name.endswith(STAGING_SUFFIX)]
    assert len(staged) == 1 and (staged[0] / "run.json").is_file()  # complete but for its rename
    assert list_runs(root) == []  # never listed, let alone as "done"
    with pytest.raises(ValueError, match="not a run"):
        load_run(staged[0])
    run = load_run(import_weights(file, "resnet18", root), with_model=False)  # the next import cleans it
    assert not staged[0].exists() and [r["id"] for r in list_runs(root)] == [run.id]


def test_a_staging_folder_of_a_live_import_is_left_alone(tmp_path):
    from resnet_explorer.runs import STAGING_SUFFIX, remove_stale_staging
    from resnet_explorer.runs.liveness import process_identity

    live, dead = tmp_path / f".a{STAGING_SUFFIX}", tmp_path / f".b{STAGING_SUFFIX}"
    for folder, writer in ((live, process_identity()), (dead, {**process_identity(), "pid_started": 1.0})):
        folder.mkdir()
        (folder / "writer.json").write_text(json.dumps(writer))
    assert remove_stale_staging(tmp_path) == [dead.name]
    assert live.is_dir() and not dead.exists()


def test_a_run_json_cannot_make_an_analysis_download_or_write_outside_the_run(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "runs" / tiny_run.name
    shutil.copytree(tiny_run, run)
    outside = tmp_path / "outside"
    info = json.loads((run / "run.json").read_text())
    info["config"].update(dataset="cifar10", download=True, data_root=str(outside))
    (run / "run.json").write_text(json.dumps(info))
    code = main(["lesion", str(run), "--images", "8", "--draws", "1", "--out", str(tmp_path / "lens")])
    _one_line_error(capsys, code, 2, "cifar10 not found")
    assert not outside.exists()  # no download, no folder made


def test_links_out_of_a_run_folder_are_refused(tiny_run, tmp_path, capsys):
    import shutil

    from resnet_explorer.runs import inside_run

    run = tmp_path / "runs" / tiny_run.name
    shutil.copytree(tiny_run, run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "explain").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="leads out of the run folder"):
        inside_run(run, "explain", "lesion")
    code = main(["lesion", str(run), "--images", "8", "--draws", "1", "--out", str(tmp_path / "lens")])
    _one_line_error(capsys, code, 2, "leads out of the run folder")
    assert not any(elsewhere.iterdir())
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (run / "explain").unlink()
    assert main(["lesion", str(run), "--images", "8", "--draws", "1", "--format", "json",
                 "--out", str(tmp_path / "lens")]) == 0
    (run / "explain" / "lesion" / "extra.csv").symlink_to(secret)  # a report would copy it
    capsys.readouterr()
    code = main(["report", str(run), "--out", str(tmp_path / "report"), "--format", "html"])
    _one_line_error(capsys, code, 2, "leads out of the run folder")
    assert not [f for f in (tmp_path / "report").rglob("*") if f.is_file() and f.read_bytes() == b"not yours"]
    (run / "metrics.csv").unlink()
    (run / "metrics.csv").symlink_to(secret)
    with pytest.raises(ValueError, match="leads out of the run folder"):
        load_run(run, with_model=False)


def test_a_damaged_earlier_import_is_not_reused(tmp_path, capsys):
    import torch

    from resnet_explorer import build_model

    file, root = tmp_path / "r18.pth", tmp_path / "runs"
    torch.save(build_model("resnet18").state_dict(), file)
    assert main(["import-weights", str(file), "--model", "resnet18", "--out", str(root)]) == 0
    first = Path(capsys.readouterr().out.strip().splitlines()[-1])
    model = first / "model.pt"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # truncated
    assert main(["import-weights", str(file), "--model", "resnet18", "--out", str(root)]) == 0
    out, err = capsys.readouterr()
    second = Path(out.strip().splitlines()[-1])
    assert second != first and "reused" not in err
    assert load_run(second).model is not None


def test_names_from_elsewhere_cannot_drive_the_terminal(tmp_path, monkeypatch, capsys):
    from resnet_explorer.cli import terminal_safe

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    evil = "a\x1b[2J\x1b]0;owned\x07\rb\nc\u202egnp.pth"
    (hub / evil).write_bytes(b"x")
    assert main(["import-weights", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "a\\x1b[2J\\x1b]0;owned\\x07\\x0db\\x0ac\\u202egnp.pth" in out
    code = main(["import-weights", str(tmp_path / "no\x1b[31mfile\n.pth"), "--model", "resnet18",
                 "--out", str(tmp_path / "runs")])
    last = _one_line_error(capsys, code, 2, "no checkpoint file")
    assert "\x1b" not in last and "\\x1b[31mfile\\x0a.pth" in last
    assert terminal_safe("résumé 1×2 → ok\t") == "résumé 1×2 → ok\\x09"  # printable text is kept


def test_lenses_take_every_figure_format_the_help_offers(tiny_run, tmp_path, capsys):
    code = main(["landscape", str(tiny_run), "--dims", "1", "--grid", "3", "--images", "8", "--format", "json",
                 "--out", str(tmp_path / "lens")])
    assert code == 0, capsys.readouterr().err
    assert list((tmp_path / "lens").glob("*.json"))
    _one_line_error(capsys, main(["landscape", str(tiny_run), "--format", "gif", "--out", str(tmp_path / "l2")]),
                    2, "unknown figure format(s) gif: use one or more of html, png, svg, json")


def test_profile_batch_fits_the_free_memory_and_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    import collections

    import psutil
    import torch

    from resnet_explorer import build_model
    from resnet_explorer.analysis import common
    from resnet_explorer.analysis.profile import _batch, profile_units

    model = build_model("resnet18")
    images = torch.zeros(512, 3, 224, 224)
    cached, working = common.per_image_bytes(model, images)
    assert working >= 2 * 64 * 112 * 112 * 4  # the stem's 112 px output counts, not only the unit inputs
    memory = collections.namedtuple("memory", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(400 * 2**20))
    small = _batch(model, images, None)
    assert 1 <= small < 64 and small * (cached + working) <= 100 * 2**20  # a quarter of what is free
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(64 * 2**30))
    assert _batch(model, images, None) == 64

    def fail(*args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 205520896 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(model, "forward_stem", fail)
    with pytest.raises(MemoryError, match=r"^out of memory profiling 512 images of 224x224 px in batches of 64"):
        profile_units(model, images)
    with pytest.raises(RuntimeError, match="not memory"):  # other errors are not renamed
        monkeypatch.setattr(model, "forward_stem", lambda x: (_ for _ in ()).throw(RuntimeError("not memory")))
        profile_units(model, images[:2])
    monkeypatch.setattr(cli, "cmd_list", lambda args: (_ for _ in ()).throw(MemoryError("out of memory profiling x")))
    code = main(["list"])
    assert code == 1 and capsys.readouterr().err.strip() == "error: out of memory profiling x"
    monkeypatch.setattr(cli, "cmd_list", lambda args: fail())  # an allocation outside any analysis
    code = main(["list"])
    assert code == 1 and capsys.readouterr().err.strip() == f"error: {cli.OUT_OF_MEMORY}"
