import contextlib
import csv
import html
import io
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from resnet_explorer import ModelSpec, export
from resnet_explorer.cli import main
from resnet_explorer.models.graph import build_graph
from resnet_explorer.reports.bundle import report_zip, write_report
from resnet_explorer.reports.compare import comparison_figures, run_labels, summary_rows
from resnet_explorer.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="static export needs Chromium (CI installs it, so CI never skips)")
FIGURES = ("training_curves", "residual_norms", "grad_flow", "grad_flow_profile", "responses")
RESNET20_PARAMS = 269_722  # He et al. 2015 Table 6: 0.27M; plain20 has the same layers
# A script tag that loads code from the network: http://, https:// or protocol-relative //.
REMOTE_SCRIPT = re.compile(r"""<script[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
NETWORK = re.compile(r"(?:https?|ftp|wss?):|//", re.IGNORECASE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A resnet20 and a plain20 run, four steps each, probed and logged every step."""
    from resnet_explorer.data import load_data
    from resnet_explorer.runs import RunWriter
    from resnet_explorer.training import TrainConfig, train

    root = tmp_path_factory.mktemp("report") / "runs"
    data = load_data("shapes", seed=0, train_size=64, test_size=32)
    paths = {}
    for name in ("resnet20", "plain20"):
        spec = ModelSpec.from_name(name, num_classes=10)
        config = TrainConfig(steps=4, batch_size=16, probe_every=1, log_every=1, device="cpu")
        writer = RunWriter(root, spec, config)
        train(spec, config, data=data, listeners=[writer])
        paths[name] = writer.path
    return paths


@pytest.fixture(scope="module")
def full_report(runs, tmp_path_factory) -> tuple[int, Path, list[str]]:
    """`report RUN1 RUN2 --format html,png,svg` through cli.main: (exit code, out folder, printed lines)."""
    out = tmp_path_factory.mktemp("full") / "report"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["report", str(runs["resnet20"]), str(runs["plain20"]), "--out", str(out),
                     "--format", "html,png,svg"])
    return code, out, stdout.getvalue().splitlines()


def test_summary_rows(runs):
    loaded = [load_run(runs[name], with_model=False) for name in ("resnet20", "plain20")]
    rows = summary_rows(loaded)
    assert [r["model"] for r in rows] == ["resnet20", "plain20"]
    assert [r["residual"] for r in rows] == [True, False]
    macs = build_graph(ModelSpec.from_name("resnet20"), 32).total_macs
    for row, run in zip(rows, loaded):
        assert row["params"] == RESNET20_PARAMS and row["depth"] == 20 and row["macs"] == macs
        assert (row["dataset"], row["steps"], row["batch_size"], row["status"]) == ("shapes", 4, 16, "done")
        assert row["id"] == run.id and row["seconds"] == run.info["seconds"] > 0
        with open(run.path / "metrics.csv") as f:
            metrics = list(csv.DictReader(f))
        with open(run.path / "eval.csv") as f:
            last_eval = list(csv.DictReader(f))[-1]
        assert len(metrics) == 4  # 20% of 4 rows rounds down to 0: the last row alone
        assert row["train_loss"] == pytest.approx(float(metrics[-1]["loss"]))
        assert row["train_error_%"] == pytest.approx(100 * (1 - float(metrics[-1]["accuracy"])))
        assert row["test_error_%"] == pytest.approx(100 * (1 - float(last_eval["accuracy"])))


def test_summary_train_numbers_are_the_mean_of_the_last_fifth(runs):
    run = load_run(runs["resnet20"], with_model=False)
    losses = [2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3, 1.2, 0.9, 0.5]
    accuracy = [0.1 * i for i in range(11)]
    run.tables["metrics"] = pd.DataFrame({"step": range(1, 12), "loss": losses, "accuracy": accuracy})
    row = summary_rows([run])[0]
    assert row["train_loss"] == pytest.approx((0.9 + 0.5) / 2)  # int(11 * 0.2) = 2 rows
    assert row["train_error_%"] == pytest.approx(100 * (1 - (0.9 + 1.0) / 2))
    run.tables["metrics"] = run.tables["metrics"].iloc[:0]
    run.tables["eval"] = run.tables["eval"].iloc[:0]
    row = summary_rows([run])[0]
    assert row["train_loss"] is None and row["train_error_%"] is None and row["test_error_%"] is None


def test_labels_are_unique_and_keep_the_model_name(runs):
    resnet, plain = (load_run(runs[name], with_model=False) for name in ("resnet20", "plain20"))
    assert run_labels([resnet, plain]) == [resnet.label, plain.label]
    labels = run_labels([resnet, plain, resnet])
    assert len(set(labels)) == 3
    assert labels[0].startswith("resnet20") and "plain" in labels[1] and resnet.id in labels[2]


def test_comparison_figure_keys(runs):
    resnet, plain = (load_run(runs[name], with_model=False) for name in ("resnet20", "plain20"))
    assert tuple(comparison_figures([resnet, plain])) == FIGURES
    assert tuple(comparison_figures([plain])) == FIGURES  # a plain net has no ratio
    alone = comparison_figures([resnet])
    assert list(alone) == ["training_curves", "residual_norms", "ratio_heatmap", *FIGURES[2:]]
    assert {trace.name for trace in alone["training_curves"].data} >= {resnet.label}
    with pytest.raises(ValueError):
        comparison_figures([])


@needs_chromium
def test_report_command_writes_every_file(full_report, runs):
    code, out, printed = full_report
    assert code == 0
    assert printed[-1] == str(out / "index.html")
    assert all(Path(line).is_file() for line in printed)
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == sorted(f"{name}.{fmt}" for name in FIGURES for fmt in ("html", "png", "svg"))
    for path in runs.values():
        copied = out / "runs" / path.name
        assert sorted(p.name for p in copied.iterdir()) == sorted(
            ["run.json", "metrics.csv", "eval.csv", "residual_norms.csv", "grad_flow.csv", "responses.csv",
                 "responses_eval.csv"])
        assert (copied / "metrics.csv").read_bytes() == (path / "metrics.csv").read_bytes()


@needs_chromium
def test_static_figures_are_valid(full_report):
    _, out, _ = full_report
    for name in FIGURES:
        png = (out / "figures" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
        root = ET.parse(out / "figures" / f"{name}.svg").getroot()
        assert root.tag.endswith("svg"), name


@needs_chromium
def test_figure_html_is_self_contained(full_report):
    _, out, _ = full_report
    for name in FIGURES:
        text = (out / "figures" / f"{name}.html").read_text()
        assert "Plotly.newPlot" in text and len(text) > 1_000_000, name  # plotly.js embedded
        assert not REMOTE_SCRIPT.search(text), name


@needs_chromium
def test_index_links_every_figure_and_is_offline(full_report, runs):
    _, out, printed = full_report
    index = (out / "index.html").read_text()
    assert not NETWORK.search(index) and "<script" not in index
    links = set(re.findall(r"""(?:src|href)="([^"]+)\"""", index))
    for path in (out / "figures").iterdir():
        assert f"figures/{path.name}" in links
    assert all((out / link).is_file() for link in links)
    assert {"figures/training_curves.png", "summary.csv"} <= links
    assert '<img src="figures/responses.png"' in index and "<iframe" not in index
    for path in runs.values():
        assert f"runs/{path.name}/run.json" in links
    # the findings, the Compare page's sentences: four steps leave both nets at chance, and it says so
    from resnet_explorer.reports.compare import comparison_findings

    findings = comparison_findings([load_run(p, with_model=False) for p in (runs["resnet20"], runs["plain20"])])
    assert "<h2>What these runs show</h2>" in index and len(findings) == 2
    assert all(html.escape(f.text) in index for f in findings)
    assert "have not left chance" in index and "No verdict" in index


@needs_chromium
def test_summary_files(full_report, runs):
    _, out, _ = full_report
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["params"]) for r in rows] == [("resnet20", "269722"), ("plain20", "269722")]
    assert [r["id"] for r in rows] == [runs["resnet20"].name, runs["plain20"].name]
    data = json.loads((out / "summary.json").read_text())
    assert [r["params"] for r in data] == [RESNET20_PARAMS, RESNET20_PARAMS]


def test_html_only_report_by_run_ids(runs, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["report", runs["resnet20"].name, runs["plain20"].name, "--runs", str(runs["resnet20"].parent),
                     "--out", str(out), "--format", "html"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.splitlines()[-1] == str(out / "index.html")
    index = (out / "index.html").read_text()
    for name in FIGURES:
        assert f'<iframe src="figures/{name}.html"' in index
    assert not NETWORK.search(index) and not list((out / "figures").glob("*.png"))


def test_bad_format_exits_2_with_one_line(runs, tmp_path, capsys):
    code = main(["report", str(runs["resnet20"]), "--out", str(tmp_path / "r"), "--format", "html,gif"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert "html, png, svg" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("run, fragment", [("no-such-run", "no run 'no-such-run'"), ("../escape", "no run folder ../escape")])
def test_unknown_run_exits_2_with_one_line(runs, tmp_path, capsys, run, fragment):
    args = ["report", str(runs["resnet20"]), run, "--runs", str(runs["resnet20"].parent), "--out", str(tmp_path / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_missing_chromium_is_one_line(runs, tmp_path, monkeypatch, capsys):
    def no_browser(fig, fmt="png", scale=2.0):
        raise export.ExportError("PNG export needs kaleido and a Chrome/Chromium browser: not found")

    monkeypatch.setattr(export, "figure_to_image", no_browser)
    assert main(["report", str(runs["plain20"]), "--out", str(tmp_path / "r"), "--format", "png"]) == 2
    err = capsys.readouterr().err
    assert "Chrome/Chromium" in err and len(err.strip().splitlines()) == 1


def test_write_report_validates(runs, tmp_path):
    with pytest.raises(ValueError, match="html, png, svg"):
        write_report([runs["plain20"]], tmp_path / "r", ["pdf"])
    with pytest.raises(ValueError, match="nowhere"):
        write_report([runs["plain20"], tmp_path / "nowhere"], tmp_path / "r", ["html"])
    with pytest.raises(ValueError, match="at least one run"):
        write_report([], tmp_path / "r", ["html"])


def test_user_strings_are_escaped(runs, tmp_path):
    run = tmp_path / "runs" / runs["plain20"].name
    shutil.copytree(runs["plain20"], run)
    info = json.loads((run / "run.json").read_text())
    info["status"] = "<script>alert(1)</script>"
    info["config"]["dataset"] = 'sh"apes<b>'  # shown in the table's dataset column
    (run / "run.json").write_text(json.dumps(info))
    index = write_report([run], tmp_path / "r", ["html"]).read_text()
    assert "<script>alert" not in index and "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "sh&quot;apes&lt;b&gt;" in index


def test_report_zip(runs):
    data = report_zip([runs["resnet20"], runs["plain20"]], ["html"])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names[0] == "index.html"
        assert {"summary.csv", "summary.json", "figures/grad_flow.html",
                f"runs/{runs['plain20'].name}/run.json"} <= set(names)
        assert "figures/grad_flow.html" in archive.read("index.html").decode()
