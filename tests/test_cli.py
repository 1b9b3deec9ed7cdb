import json
import re
import subprocess
import sys

import pytest

from resnet_explorer.cli import main


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


def test_train_prints_the_run_folder_last(tmp_path):
    out = run("train", "--model", "resnet20", *TINY_TRAIN, "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    folder = out.stdout.strip().splitlines()[-1]
    assert folder.startswith(str(tmp_path))
    names = {p.name for p in __import__("pathlib").Path(folder).iterdir()}
    assert {"run.json", "metrics.csv", "eval.csv", "residual_norms.csv", "grad_flow.csv", "responses.csv",
            "model.pt"} <= names
    assert "done: trained 4 steps" in out.stderr and "[" in out.stderr  # progress and summary
    assert "note: resnet20 has not left chance" in out.stderr  # 4 steps: the run says it learnt nothing yet


def test_train_plain_twin(tmp_path, capsys):
    assert main(["train", "--model", "resnet20", "--plain", *TINY_TRAIN, "--out", str(tmp_path)]) == 0
    assert "plain20" in capsys.readouterr().out


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
    assert main(["train", *args, "--out", str(tmp_path)]) == 2
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
            "--batch-size", "16", "--probe-every", "0", "--no-weights", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
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
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "seeds 0, 1" in out and "mean ± sd over seeds" in out
    assert re.search(r"neither plain14 nor plain8 left chance in 2 seeds \(final train loss [\d.]+ ± [\d.]+ vs", out)
    seeds = sorted(json.loads((f / "run.json").read_text())["seed"] for f in tmp_path.iterdir())
    assert seeds == [0, 0, 0, 0, 1, 1, 1, 1]


def test_degradation_defaults_are_the_preset():
    from resnet_explorer.cli import _train_config, build_parser
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


def test_closed_pipe_is_not_a_traceback():
    # the per-unit table of resnet1202 (~100 KB) overflows the pipe buffer, so the write hits the closed pipe
    proc = subprocess.Popen([sys.executable, "-m", "resnet_explorer", "info", "resnet1202", "--blocks"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err
