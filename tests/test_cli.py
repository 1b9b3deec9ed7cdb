import subprocess
import sys

import pytest

from resnet_explorer.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnet_explorer", *args], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_help_runs_as_module():
    out = run("--help")
    assert out.returncode == 0 and "info" in out.stdout and "list" in out.stdout


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
        (["info", "--stem", "cifar", "--layers", "2,2"], "3 block counts"),
        (["info", "resnet20", "--export", "/tmp/x", "--format", "gif"], "unknown export format"),
        (["info"], "give a model name"),
        (["info", "resnet10004"], "pass --yes"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, fragment):
    out = run(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert fragment in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_absent_device_exits_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    out = run("info", "resnet20", "--device", "cuda")
    assert out.returncode == 2 and "CUDA" in out.stderr and "Traceback" not in out.stderr


def test_argparse_errors_exit_2():
    out = run("info", "resnet20", "--shortcut", "Z")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_export_writes_files(tmp_path, capsys):
    assert main(["info", "resnet20", "--export", str(tmp_path), "--format", "html,csv"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["resnet20_blocks.csv", "resnet20_graph.html", "resnet20_stages.csv"]
    assert (tmp_path / "resnet20_stages.csv").read_text().startswith("stage,units,out_shape,params")
