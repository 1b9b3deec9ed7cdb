import json
import re
import subprocess
import sys

import pytest

from resnet_explorer.cli import PHOTOS_NOTE, RUNS_NOTE, build_parser, main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnet_explorer", *args], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "info" in out and "list" in out and "attribute" in out


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "resnet1202" in out and "19,421,274" in out and "preact_resnet1001" in out


def test_info_prints_counts_and_twin(capsys):
    assert main(["info", "resnet56", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "853,018 parameters" in out and "plain56 (twin)" in out and "built on cpu" in out


def test_info_composed(capsys):
    assert main(["info", "--stem", "cifar", "--block", "bottleneck", "--layers", "2,2,2", "--preact"]) == 0
    assert "preact_resnet20" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["info", "resnet21"], "6n+2"),
        (["info", "preact_resnet100"], "9n+2"),
        (["info", "resnet20", "--num-classes", "0"], "num_classes"),
        (["info", "resnet20", "--width-multiplier", "-1"], "width_multiplier"),
        (["info", "--stem", "cifar", "--layers", "2,2"], "3 unit counts"),
        (["info", "resnet20", "--export", "/tmp/x", "--format", "gif"], "unknown export format"),
        (["info"], "give a model name"),
        (["info", "resnet10004"], "pass --yes"),
        # the attribution task's own checks (`reports.attribute`), before a run is looked for
        (["attribute", "no-such-run", "--methods", "saliency,xray", "--out", "/tmp/x"], "methods must be a comma list"),
        (["attribute", "no-such-run", "--steps", "10000", "--out", "/tmp/x"], "--steps must be from 1 to 512"),
        (["attribute", "no-such-run", "--steps", "0", "--out", "/tmp/x"], "--steps must be from 1 to 512"),
        (["profile", "no-such-run", "--photos", "/tmp/x", "--samples", "8"], "give --samples or --photos, not both"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, fragment, capsys):
    assert main(args) == 2  # in-process: an uncaught exception would fail the test
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_bad_input_from_a_shell_is_one_line_without_traceback():
    out = run("info", "resnet21")
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_absent_device_exits_2(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    assert main(["info", "resnet20", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "CUDA" in err and len(err.strip().splitlines()) == 1


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "resnet20", "--shortcut", "Z"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_export_writes_files(tmp_path, capsys):
    assert main(["info", "resnet20", "--export", str(tmp_path), "--format", "html,csv"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["resnet20_blocks.csv", "resnet20_graph.html", "resnet20_stages.csv"]
    assert (tmp_path / "resnet20_stages.csv").read_text().startswith("stage,units,out_shape,params")


TINY_TRAIN = ["--steps", "4", "--batch-size", "16", "--train-size", "64", "--test-size", "32", "--log-every", "2",
              "--probe-every", "2"]


def test_train_prints_the_run_folder_last(tmp_path, capsys):
    # in-process (a shell's `python -m resnet_explorer` is test_bad_input_from_a_shell's, and torchrun's)
    assert main(["train", "--model", "resnet8", *TINY_TRAIN, "--image-size", "16", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == out.out.strip()  # the folder is all stdout holds
    folder = out.out.strip().splitlines()[-1]
    assert folder.startswith(str(tmp_path))
    names = {p.name for p in __import__("pathlib").Path(folder).iterdir()}
    assert {"run.json", "metrics.csv", "eval.csv", "residual_norms.csv", "grad_flow.csv", "responses.csv",
            "model.pt"} <= names
    assert "done: trained 4 steps" in out.err and "[" in out.err  # progress and summary
    assert "note: resnet8 has not left chance" in out.err  # 4 steps: the run says it learnt nothing yet
    assert "--runs" not in out.err  # the new spelling: no note about the old one


def test_train_plain_twin(tmp_path, capsys):
    # --out, the old spelling of --runs: the run goes to the runs folder as before, with a note
    assert main(["train", "--model", "resnet20", "--plain", *TINY_TRAIN, "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    folder = __import__("pathlib").Path(out.strip().splitlines()[-1])
    assert "plain20" in folder.name and folder.parent == tmp_path and (folder / "run.json").is_file()
    assert err.count(f"note: {RUNS_NOTE}\n") == 1


def test_attribute_baseline_and_adaptive_steps(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    assert main(["train", "--model", "resnet8", *TINY_TRAIN, "--probe-every", "0", "--out", str(tmp_path)]) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    out = tmp_path / "attr"
    assert main(["attribute", folder, "--samples", "3", "--methods", "integrated_gradients,saliency", "--no-sanity",
                 "--baseline", "blur", "--out", str(out)]) == 0
    scores = pd.read_csv(out / "scores.csv")
    ig = scores[scores["method"] == "integrated_gradients"]
    assert set(ig["baseline"]) == {"blur"} and ig["steps"].between(32, 512).all()
    assert ((ig["gap"] <= 0.01) | (ig["steps"] == 512)).all()
    with np.load(out / "attributions.npz") as arrays:
        assert arrays["integrated_gradients_steps"].tolist() == ig["steps"].tolist()
    err = capsys.readouterr().err
    assert ("baseline scores higher" in err) == bool((ig["score_change"] < 0).any())


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--model", "resnet20", "--steps", "0"], "steps"),
        (["--model", "resnet20", "--steps", "5", "--epochs", "1"], "not both"),
        (["--model", "resnet20", "--steps", "2", "--dataset", "imagenet22k"], "dataset"),
        (["--model", "resnet20", "--steps", "2", "--dataset", "cifar10", "--data-root", "/nonexistent"], "cifar"),
        (["--model", "resnet20", "--steps", "2", "--dataset", "folder:/nonexistent"], "nonexistent"),
        (["--model", "resnet21", "--steps", "2"], "6n+2"),
        (["--model", "resnet20", "--steps", "2", "--lr", "-1"], "lr"),
    ],
)
def test_train_bad_input_exits_2(tmp_path, args, fragment, capsys):
    assert main(["train", *args, "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert fragment.lower() in err.lower() and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing half-made


def test_train_divergence_exits_3(tmp_path, capsys):
    # lr 10, as a user typed it: the loss explodes (finite or not) and the run must not end "done"
    code = main(["train", "--model", "resnet20", "--steps", "60", "--batch-size", "16", "--train-size", "64",
                 "--test-size", "16", "--lr", "10", "--schedule", "constant", "--log-every", "1",
                 "--probe-every", "0", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "diverged" in err and "step" in err and "Traceback" not in err
    info = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    assert info["status"] == "diverged"


def test_degradation_preset_prints_table_and_verdicts(tmp_path, capsys):
    args = ["degradation", "--depths", "8,14", "--steps", "3", "--train-size", "64", "--test-size", "32",
            "--batch-size", "16", "--probe-every", "0", "--no-weights", "--runs", str(tmp_path)]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "--runs" not in err
    for model in ("plain8", "plain14", "resnet8", "resnet14"):
        assert model in out
    # 3 steps: every net is still at chance, so the verdicts say so instead of claiming a result
    assert re.search(r"plain8 [^,]+, plain14 [^,]+, resnet8 [^,]+ and resnet14 [^,(]+ have not left chance", out), out
    assert 'No verdict on "plain14 trains worse than plain8"' in out
    assert 'No verdict on "resnet14 trains better than plain14"' in out
    assert "yes " not in out
    folders = list(tmp_path.iterdir())
    assert len(folders) == 4 and not any((f / "model.pt").exists() for f in folders)  # --no-weights


def test_degradation_counts_verdicts_over_seeds(tmp_path, capsys):
    args = ["degradation", "--depths", "8,14", "--seeds", "0,1", "--steps", "2", "--train-size", "32",
            "--test-size", "16", "--batch-size", "16", "--probe-every", "0", "--no-weights", "--out", str(tmp_path)]
    assert main(args) == 0  # --out, the old spelling of --runs
    out, err = capsys.readouterr()
    assert err.count(f"note: {RUNS_NOTE}\n") == 1
    assert "seeds 0, 1" in out and "mean ± sd over seeds" in out
    assert re.search(r"neither plain14 nor plain8 left chance in 2 seeds \(final train loss [\d.]+ ± [\d.]+ vs", out)
    seeds = sorted(json.loads((f / "run.json").read_text())["seed"] for f in tmp_path.iterdir())
    assert seeds == [0, 0, 0, 0, 1, 1, 1, 1]


def test_degradation_defaults_are_the_preset():
    from resnet_explorer.cli import build_parser
    from resnet_explorer.cli.train import _train_config
    from resnet_explorer.training.presets import degradation_config, quick_config

    args = build_parser().parse_args(["degradation"])
    preset = degradation_config()
    assert _train_config(args) == preset
    # train's defaults: the recipe the Train page starts from too (test_app_train_inspect checks the page)
    args = build_parser().parse_args(["train", "--model", "resnet20"])
    assert _train_config(args) == quick_config()
    assert (quick_config().dataset, quick_config().image_size, quick_config().steps) == ("shapes-easy", 16, 250)
    args = build_parser().parse_args(["train", "--model", "resnet20", "--epochs", "2"])
    assert (_train_config(args).epochs, _train_config(args).steps) == (2.0, None)


def test_degradation_bad_seeds_exit_2(capsys):
    assert main(["degradation", "--seeds", "0,x"]) == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and len(err.strip().splitlines()) == 1


def test_closed_pipe_is_not_a_traceback(capsys):
    """The reader goes away after one line (like `| head -1`) while the CLI still has output to write.

    The pipe is shrunk to one page, so that a short table overflows it: the write that follows
    the reader's going away surely finds the pipe closed, without a huge net to describe."""
    import fcntl
    import os

    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        pytest.skip("needs F_SETPIPE_SZ (Linux) to shrink the pipe")
    args = ["info", "resnet56", "--blocks"]
    assert main(args) == 0
    output = capsys.readouterr().out
    read_end, write_end = os.pipe()
    capacity = fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    assert len(output.encode()) > capacity + len(output.splitlines()[0]) + 1  # more than the pipe and one line hold
    proc = subprocess.Popen([sys.executable, "-m", "resnet_explorer", *args], stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    with open(read_end, "rb", buffering=0) as out:  # unbuffered: it takes the first line and nothing more
        out.readline()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err


def _commands() -> dict:
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_command_has_help_and_defaults_to_the_auto_device(capsys):
    with_device = set()
    for name, parser in _commands().items():
        text = parser.format_help()  # raised for `attribute` once: a bare % in a help text
        if "--device" in text:
            with_device.add(name)
            assert parser.get_default("device") == "auto", name
            assert "(default auto)" in " ".join(text.split()), name
    assert {"info", "train", "degradation", "attribute", "lesion", "paths", "landscape", "profile"} <= with_device


# A renamed flag: (the arguments before it, its old spelling, the new one, a value)
RENAMED = [
    (["train", "--model", "resnet8"], "--out", "--runs", "elsewhere"),
    (["degradation"], "--out", "--runs", "elsewhere"),
    (["import-weights", "r18.pth", "--model", "resnet18"], "--out", "--runs", "elsewhere"),
    (["attribute", "RUN", "--out", "attr"], "--image", "--photos", "photo.png"),
    (["profile", "RUN"], "--images", "--photos", "photos"),
]
RENAMED_IDS = [f"{argv[0]} {old}" for argv, old, _, _ in RENAMED]


@pytest.mark.parametrize("argv, old, new, value", RENAMED, ids=RENAMED_IDS)
def test_an_old_spelling_parses_as_the_new_one(argv, old, new, value):
    def parsed(*extra: str) -> dict:
        args = vars(build_parser().parse_args([*argv, *extra]))
        return {k: v for k, v in args.items() if k != "_spellings"}

    dest = new.lstrip("-")
    assert parsed(old, value) == parsed(new, value) and parsed(new, value)[dest] == value
    assert parsed()[dest] == ("runs" if dest == "runs" else None)  # neither spelling: the default, as before


@pytest.mark.parametrize("argv, old, new, value", RENAMED, ids=RENAMED_IDS)
def test_both_spellings_at_once_are_one_line_exit_2(argv, old, new, value, tmp_path, capsys, monkeypatch):
    import resnet_explorer.cli as cli

    monkeypatch.chdir(tmp_path)
    for name in [n for n in vars(cli) if n.startswith("cmd_")]:  # refused before any command runs
        monkeypatch.setattr(cli, name, lambda args: pytest.fail("the command ran"))
    assert main([*argv, new, value, old, value]) == 2
    err = capsys.readouterr().err
    assert err == f"error: give {new} or {old} (its old spelling), not both\n"
    assert not list(tmp_path.iterdir())  # refused before anything is made


def test_import_weights_runs_and_its_old_spelling_out(tmp_path, capsys):
    import torch

    from resnet_explorer import build_model

    file, root = tmp_path / "r18.pth", tmp_path / "runs"
    torch.save(build_model("resnet18").state_dict(), file)
    assert main(["import-weights", str(file), "--model", "resnet18", "--out", str(root)]) == 0
    out, err = capsys.readouterr()
    first = out.strip().splitlines()[-1]
    assert first.startswith(str(root)) and err.count(f"note: {RUNS_NOTE}\n") == 1
    assert main(["import-weights", str(file), "--model", "resnet18", "--runs", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == first and "reused" in err  # the same runs folder, the same run
    assert "--runs" not in err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "--model", "resnet8", *TINY_TRAIN, "--probe-every", "0", "--runs", str(root)]) == 0
    return next(root.iterdir())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.mark.parametrize("command, old, target", [
    (["attribute", "--methods", "saliency", "--no-sanity"], "--image", "a.png"),
    (["attribute", "--methods", "saliency", "--no-sanity"], "--image", "."),
    (["profile", "--no-lesions", "--format", "html"], "--images", "."),
], ids=["attribute file", "attribute folder", "profile folder"])
def test_photos_and_its_old_spellings_write_the_same_files(command, old, target, tiny_run, photos, tmp_path,
                                                           capsys):
    written = {}
    for flag in ("--photos", old):
        out = tmp_path / flag.lstrip("-")
        argv = [command[0], str(tiny_run), *command[1:], flag, str(photos / target), "--out", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
        err = capsys.readouterr().err
        note = f"note: {PHOTOS_NOTE.format(old=old, command=command[0])}\n"
        assert err.count(note) == (flag == old) and ("--photos" in err) == (flag == old), err
        written[flag] = {p.name: _contents(p) for p in out.iterdir() if p.suffix in (".csv", ".npz")}
    assert written["--photos"] and written["--photos"].keys() == written[old].keys()
    for name, contents in written["--photos"].items():
        assert contents == written[old][name], name
    if command[0] == "attribute":  # the photos were read, not the run's held-out images
        top = written[old]["predictions.csv"]  # the top 5 of each image
        assert top.count("a.png") == 5 and top.count("b.png") == (5 if target == "." else 0)


def _contents(path):
    """A CSV's text, or an npz's arrays as lists (the zip's own timestamps differ between writes)."""
    import numpy as np

    if path.suffix == ".csv":
        return path.read_text()
    with np.load(path) as arrays:
        return {k: arrays[k].tolist() for k in arrays.files}
