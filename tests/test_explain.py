"""The explain layer (lesions, paths, landscape of a saved run): options, saving in the run folder, CLI, report."""

from __future__ import annotations

import json

import pytest

from resnet_explorer.cli import main
from resnet_explorer.data import load_data
from resnet_explorer.models import ModelSpec
from resnet_explorer.reports import explain
from resnet_explorer.runs import RunWriter, load_run
from resnet_explorer.training import TrainConfig, train

TINY = {"lesion": {"images": 16, "draws": 1}, "paths": {"images": 8, "draws": 1},
        "landscape": {"grid": 3, "images": 16}, "profile": {"samples": 8}}


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """resnet8 and its plain twin, 4 steps each, in one runs folder: (residual path, plain path)."""
    root = tmp_path_factory.mktemp("runs")
    data = load_data("shapes", seed=0, train_size=64, test_size=32, image_size=16)
    paths = []
    for spec in (ModelSpec.from_name("resnet8", num_classes=10), ModelSpec.from_name("plain8", num_classes=10)):
        config = TrainConfig(steps=4, batch_size=16, train_size=64, test_size=32, image_size=16, probe_every=0,
                             log_every=2, device="cpu")
        writer = RunWriter(root, spec, config)
        train(spec, config, data=data, listeners=[writer])
        paths.append(writer.path)
    return tuple(paths)


@pytest.mark.parametrize("lens, options, fragment", [
    ("landscape", {"grid": 4}, "odd"),
    ("landscape", {"grid": 1}, "grid must be from 3"),
    ("landscape", {"span": 0}, "span"),
    ("landscape", {"span": float("nan")}, "span"),
    ("landscape", {"dims": 3}, "dims"),
    ("lesion", {"images": 0}, "images"),
    ("lesion", {"draws": 10**6}, "draws"),
    ("paths", {"images": 10**9}, "images"),
    ("paths", {"steps": 3}, "unknown paths option"),
    ("profile", {"lesions": "yes"}, "lesions must be true or false"),
    ("profile", {"lesions": 1}, "lesions must be true or false"),
    ("profile", {"photos": "x" * 5000}, "photos must be text of at most 4,096 characters"),
    ("profile", {"photos": 7}, "photos must be text"),
    ("profile", {"samples": 0}, "samples"),
    ("x-ray", {}, "unknown lens"),
])
def test_options_are_bounded(lens, options, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        explain.check_options(lens, options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("lens", list(explain.LENSES))
def test_save_and_load_give_back_the_same_tables_and_figures(twins, tmp_path, lens):
    run = load_run(twins[0])
    result = explain.analyse(lens, run, TINY[lens])
    options = explain.check_options(lens, TINY[lens])
    folder = tmp_path / "copy"
    folder.mkdir()
    explain.save(folder, lens, result, options)
    assert explain.saved_lenses(folder) == [lens]
    back, back_options = explain.load(folder, lens)
    assert back_options == options
    for stem, table in explain.tables(lens, result).items():
        again = explain.tables(lens, back)[stem]
        assert list(again.columns) == list(table.columns) and len(again) == len(table)
        numeric = table.select_dtypes("number").columns
        assert (again[numeric].to_numpy() == pytest.approx(table[numeric].to_numpy(), nan_ok=True))
    drawn = explain.figures(lens, {run.label: result}, residual={run.label: True})
    redrawn = explain.figures(lens, {run.label: back}, residual={run.label: True})
    assert list(drawn) == list(redrawn) and drawn
    assert [f.layout.title.text for f in drawn.values()] == [f.layout.title.text for f in redrawn.values()]


def test_a_damaged_saved_result_is_one_line(twins, tmp_path):
    run = load_run(twins[0])
    explain.save(tmp_path, "landscape", explain.analyse("landscape", run, TINY["landscape"]), TINY["landscape"])
    (explain.lens_folder(tmp_path, "landscape") / "result.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged") as info:
        explain.load(tmp_path, "landscape")
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)
    assert explain.load(tmp_path, "lesion") is None  # nothing saved: nothing to load


def test_paths_of_a_plain_net_is_refused(twins):
    with pytest.raises(ValueError, match="plain net"):
        explain.analyse("paths", load_run(twins[1]), TINY["paths"])


def test_cli_lesion_with_twin_writes_tables_figures_and_the_run_folder(twins, tmp_path, capsys):
    out = tmp_path / "lesion"
    code = main(["lesion", str(twins[0]), "--twin", "--images", "16", "--draws", "1", "--format", "html",
                 "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    lines = printed.out.strip().splitlines()
    assert lines[-1] == str(out)  # the folder last
    names = {p.name for p in out.iterdir()}
    assert {"lesion_single.html", "lesion_k.html"} <= names
    assert any(n.startswith("resnet8_") and n.endswith("lesion_single.csv") for n in names)
    assert any(n.startswith("plain8_") and n.endswith("lesion_single.csv") for n in names)
    assert "lesion resnet8" in printed.err and "lesion plain8" in printed.err  # progress on stderr
    for path in twins:  # kept in each run folder, for `report` and the app
        assert explain.saved_lenses(path) == ["lesion"] or "lesion" in explain.saved_lenses(path)
        info = json.loads((explain.lens_folder(path, "lesion") / "result.json").read_text())
        assert info["options"]["images"] == 16

    code = main(["report", str(twins[0]), str(twins[1]), "--format", "html", "--out", str(tmp_path / "report")])
    assert code == 0
    assert (tmp_path / "report" / "figures" / "lesion_single.html").is_file()
    assert "lesion_single" in (tmp_path / "report" / "index.html").read_text()


@pytest.mark.parametrize("args, fragment", [
    (["paths", "{plain}"], "plain net"),
    (["landscape", "{residual}", "--grid", "4"], "odd"),
    (["landscape", "{residual}", "--span", "-1"], "span"),
    (["lesion", "{residual}", "--draws", "0"], "draws"),
    (["lesion", "{residual}", "--format", "gif"], "gif"),
    (["lesion", "{residual}", "--device", "cuda:7"], "CUDA"),
])
def test_cli_bad_input_exits_2_with_one_line(twins, tmp_path, capsys, args, fragment):
    argv = [a.format(residual=twins[0], plain=twins[1]) for a in args] + ["--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and fragment in err and "\n" not in err
    assert not (tmp_path / "o").exists() or fragment == "plain net"


def test_cli_stop_exits_130_and_writes_nothing(twins, tmp_path, capsys, monkeypatch):
    from resnet_explorer.analysis.common import AnalysisStopped

    def stopped(*args, **kwargs):
        raise AnalysisStopped("stop was set")

    monkeypatch.setattr(explain, "analyse", stopped)
    out = tmp_path / "o"
    assert main(["landscape", str(twins[0]), "--grid", "3", "--out", str(out)]) == 130
    assert "stopped" in capsys.readouterr().err
    assert not any(out.iterdir())


def test_a_lens_registered_alone_reaches_the_cli_the_page_and_the_report(twins, tmp_path, monkeypatch, capsys):
    """One analysis function, one plot function, one registry entry: nothing else names the lens."""
    import dataclasses
    import shutil
    from pathlib import Path

    import pandas as pd
    import plotly.graph_objects as go
    from streamlit.testing.v1 import AppTest

    from resnet_explorer.jobs.options import Option
    from resnet_explorer.reports.bundle import write_report_files

    @dataclasses.dataclass
    class ToyResult:
        rows: pd.DataFrame
        scale: float

    def measure(run, opts, progress, stop):  # the analysis: one number per unit
        return ToyResult(pd.DataFrame({"unit": [name for name, _ in run.model.units()],
                                       "value": [opts["scale"] * k for k, _ in enumerate(run.model.units())]}),
                         opts["scale"])

    def plot(results, **_):
        return {"toy": go.Figure([go.Bar(x=r.rows["unit"], y=r.rows["value"], name=label)
                                  for label, r in results.items()], layout={"title": "Toy lens"})}

    toy = explain.Lens(
        name="toy", title="Toy lens", summary="a number per unit, for the registry's test", look_for="Toy: look here.",
        options=(Option("scale", float, 2.0, 0.0, 10.0, "what each unit's index is multiplied by", "Scale",
                        above_low=True),),
        run=measure, tables=lambda r: {"toy": r.rows}, figures=plot, figure_tables={"toy": "toy"},
        caption=lambda stem, label, r, options: f"{label}: toy values at scale {r.scale:g}.", part_type=ToyResult)
    monkeypatch.setitem(explain.LENSES, "toy", toy)

    with pytest.raises(SystemExit):  # the CLI: a subcommand with the option's flag, bound and default
        main(["--help"])
    assert "toy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["toy", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps its lines
    assert "--scale SCALE what each unit's index is multiplied by, at most 10 (default 2.0)" in help_text
    root = tmp_path / "runs"
    run_path = root / Path(twins[0]).name
    shutil.copytree(twins[0], run_path)
    shutil.rmtree(run_path / explain.FOLDER, ignore_errors=True)  # what other tests saved in the shared run
    assert main(["toy", str(run_path), "--scale", "3", "--format", "json", "--out", str(tmp_path / "toy")]) == 0
    assert main(["toy", str(run_path), "--scale", "0", "--out", str(tmp_path / "t2")]) == 2  # the bound, checked
    assert "scale must be a number above 0" in capsys.readouterr().err
    assert explain.saved_lenses(run_path) == ["toy"] and explain.load(run_path, "toy")[1] == {"scale": 3.0}

    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))  # the page: a tab, a form from the schema, the figure
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "6_Explain.py"), default_timeout=60).run()
    assert not at.exception and "Toy lens" in [t.label for t in at.tabs]
    assert at.number_input(key="explain_toy_scale").value == 2.0
    assert any("toy values at scale 3" in c.value for c in at.caption)
    assert any('"Toy lens"' in c.proto.spec for c in at.get("plotly_chart"))

    written = write_report_files([run_path], tmp_path / "report", ["html"])  # the report: its figure
    assert (tmp_path / "report" / "figures" / "toy.html") in written


def test_profiles_of_several_runs_are_one_figure_each_named_by_its_net(twins):
    """A profile is a run's own: one run gives "profile" (the CLI names it by the run), a report of several
    gives one figure per run, named by its net and numbered where nets repeat."""
    runs = [load_run(path) for path in twins]
    results = {run.label: explain.analyse("profile", run, {"samples": 8, "lesions": False}) for run in runs}
    residual = {run.label: run.spec.residual for run in runs}
    one = explain.figures("profile", dict(list(results.items())[:1]), residual=residual)
    assert list(one) == ["profile"]
    both = explain.figures("profile", results, residual=residual)
    assert list(both) == ["profile_resnet8", "profile_plain8"]
    assert [f.layout.title.text.split(":")[0] for f in both.values()] == ["resnet8", "plain8"]
    again = explain.figures("profile", {"a": results[runs[0].label], "b": results[runs[0].label]}, residual={})
    assert list(again) == ["profile_resnet8", "profile_resnet8_2"]
