"""Imported runs (pretrained weights, no config, no training tables) through every command and page.

A runs root holds one tiny trained run and one imported seeded resnet18 (ImageNet layout, 224 px). Each
command and page either works on the imported run or says in one line why not: never a traceback.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.cli import main
from resnet_explorer.data import load_data
from resnet_explorer.reports.compare import comparison_figures, group_rows, run_labels, summary_rows
from resnet_explorer.runs import RunWriter, find_twin, list_runs, load_run, twin_key
from resnet_explorer.runs import checkpoints as ck
from resnet_explorer.training import TrainConfig, train
from resnet_explorer.ui.run_picker import best_finished, describe
from tests.test_app_compare_attribute import attributed

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A runs root: a tiny trained resnet8 (older) and an imported seeded resnet18 (newer)."""
    root = tmp_path_factory.mktemp("runs")
    data = load_data("shapes", seed=0, train_size=64, test_size=32)
    spec = ModelSpec.from_name("resnet8", num_classes=10)
    config = TrainConfig(steps=3, batch_size=16, probe_every=1, log_every=1, device="cpu")
    train(spec, config, data=data, listeners=[RunWriter(root, spec, config)])
    torch.manual_seed(13)
    file = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(build_model("resnet18", device="cpu").state_dict(), file)
    ck.import_weights(file, "resnet18", root)
    return root


@pytest.fixture(scope="module")
def ids(root) -> dict[str, str]:
    rows = list_runs(root)
    return {r["kind"]: r["id"] for r in rows}


@pytest.fixture
def runs(root, monkeypatch):
    """The root; an attribution runs the analysis process's own work on a thread here (`in_process_analysis`)."""
    from resnet_explorer.ui import analysis_jobs
    from tests.test_jobs import in_process_analysis

    monkeypatch.setattr(analysis_jobs, "start_process", in_process_analysis)
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(root))
    import streamlit as st

    st.cache_data.clear()
    return root


def png(size=(40, 30)) -> bytes:
    img = Image.new("RGB", size, (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_the_fixture_holds_both_kinds(root, ids):
    assert set(ids) == {"trained", "imported"}
    run = load_run(root / ids["imported"], with_model=False)
    assert run.config is None and run.imported and not load_run(root / ids["trained"], with_model=False).imported


def test_attribute_cli_needs_an_image_for_an_imported_run(root, ids, tmp_path, capsys):
    out = tmp_path / "attr"
    assert main(["attribute", ids["imported"], "--runs", str(root), "--out", str(out)]) == 2
    line = err_line(capsys)
    assert f"run {ids['imported']} was imported from a checkpoint and has no dataset: give --photos PATH" in line
    assert not out.exists()  # refused before the output folder is made
    assert main(["attribute", ids["imported"], "--runs", str(root), "--samples", "2", "--out", str(out)]) == 2
    assert "give --photos PATH" in err_line(capsys)
    image = tmp_path / "photo.png"
    image.write_bytes(png())
    assert main(["attribute", ids["imported"], "--runs", str(root), "--image", str(image), "--methods", "saliency",
                 "--no-sanity", "--out", str(out)]) == 0
    capsys.readouterr()
    assert (out / "saliency.png").is_file() and (out / "attributions.npz").is_file()
    import numpy as np

    assert np.load(out / "attributions.npz")["inputs"].shape == (1, 3, 224, 224)  # ImageNet's crop from run.json


@pytest.mark.parametrize("lens", ["lesion", "paths", "landscape"])
def test_lenses_refuse_an_imported_run_in_one_line(root, ids, lens, tmp_path, capsys):
    out = tmp_path / lens
    assert main([lens, ids["imported"], "--runs", str(root), "--out", str(out)]) == 2
    line = err_line(capsys)
    assert "was imported from a checkpoint and has no dataset to measure on" in line
    assert "not supported for imported runs yet" in line
    assert not out.exists()


def test_analyse_refuses_an_imported_run(root, ids):
    from resnet_explorer.reports.explain import analyse

    run = load_run(root / ids["imported"])
    with pytest.raises(ValueError, match="no dataset to measure on"):
        analyse("lesion", run, {"images": 4, "draws": 1})


def test_report_and_compare_with_an_imported_run(root, ids, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", ids["trained"], ids["imported"], "--runs", str(root), "--out", str(out),
                 "--format", "html"]) == 0
    capsys.readouterr()
    rows = {r["id"]: r for r in json.loads((out / "summary.json").read_text())}
    imported, trained = rows[ids["imported"]], rows[ids["trained"]]
    assert imported["model"] == "resnet18" and imported["dataset"] == "imagenet" and imported["macs"] > 1e9
    assert all(imported[k] is None for k in ("train_loss", "train_error_%", "test_error_%", "batch_size", "steps"))
    assert trained["train_loss"] is not None and trained["batch_size"] == 16
    assert (out / "figures" / "training_curves.html").is_file() and (out / "index.html").is_file()

    loaded = [load_run(root / ids["trained"], with_model=False), load_run(root / ids["imported"], with_model=False)]
    assert len(run_labels(loaded)) == 2 and len(summary_rows(loaded)) == 2
    assert [g["seed_list"] for g in group_rows(loaded)] == [[0], []]
    assert comparison_figures(loaded[1:]) == {}  # no training figures for an imported run alone
    both, alone = comparison_figures(loaded), comparison_figures(loaded[:1])
    assert both.keys() == alone.keys()
    assert [t.name for t in both["training_curves"].data] == [t.name for t in alone["training_curves"].data]
    assert twin_key(loaded[1].spec, None)[1] is None


def test_run_rows_and_pickers_describe_an_imported_run(root, ids):
    rows = list_runs(root)
    imported = next(r for r in rows if r["id"] == ids["imported"])
    assert describe(imported) == f"resnet18 · imagenet 224px · {ids['imported'][-4:]} (imported)"
    trained = next(r for r in rows if r["id"] == ids["trained"])
    assert describe(trained) == f"resnet8 · shapes 32px · {ids['trained'][-4:]} (done, 3/3 steps)"
    assert best_finished(rows) == ids["trained"]  # the imported run is newer and done, but was not trained here
    assert find_twin(rows, ids["imported"]) is None and find_twin(rows, ids["trained"]) is None


def page(path: str) -> AppTest:
    return AppTest.from_file(str(ROOT / path), default_timeout=120)


@pytest.mark.parametrize("path", ["app.py", *PAGES])
def test_every_page_opens_beside_an_imported_run(runs, path):
    at = page(path).run()
    assert not at.exception


def test_inspect_says_an_imported_run_has_no_tables(runs, ids):
    at = page("pages/3_Inspect.py").run()
    assert at.selectbox(key="inspect_run").value == ids["trained"]
    at.selectbox(key="inspect_run").set_value(ids["imported"]).run()
    assert not at.exception and not at.error
    assert any("imported from a checkpoint" in i.value and "no training tables" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_compare_lists_an_imported_run_with_blank_training_columns(runs, ids):
    at = page("pages/5_Compare.py")
    at.query_params["runs"] = f"{ids['trained']},{ids['imported']}"
    at.run()
    assert not at.exception and not at.error
    assert any("Imported from a checkpoint" in c.value and ids["imported"] in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert sorted(table["model"]) == ["resnet18", "resnet8"]
    assert table.set_index("model").loc["resnet18", ["train_loss", "batch_size"]].isna().all()
    assert len(at.get("plotly_chart")) >= 5


def test_attribute_on_an_imported_run_takes_uploads_only(runs, ids):
    at = page("pages/4_Attribute.py").run()
    assert at.selectbox(key="attr_run").value == ids["imported"]  # the newest run
    assert any("no held-out images" in c.value and "Upload images" in c.value for c in at.caption)
    # no choice of held-out images to fall into: the uploader is all there is
    assert not any(r.key == "attr_source" for r in at.radio) and not any(s.key == "attr_count" for s in at.slider)
    at.multiselect(key="attr_methods").set_value(["saliency"])
    at.toggle(key="attr_sanity").set_value(False)
    at.get("file_uploader")[0].upload("photo.png", png(), "image/png")
    attributed(at)
    assert not at.exception and not at.error
    assert at.session_state["rx_attr_result"]["job"].tasks[0]["lens"] == "attribute"  # run by the analysis process
    assert len(at.get("plotly_chart")) == 2  # the saliency grid and the scores
    assert any("224 x 224" in c.value for c in at.caption)  # what the model saw: ImageNet's crop


def test_attribute_page_lists_the_top_five_beside_each_uploaded_photo(runs, ids):
    at = page("pages/4_Attribute.py").run()
    uploader = at.get("file_uploader")[0]
    uploader.set_value([(f"photo{i}.png", png((40 + 10 * i, 30)), "image/png") for i in range(9)])
    at.multiselect(key="attr_methods").set_value(["saliency"])
    at.toggle(key="attr_sanity").set_value(False)
    attributed(at)
    assert not at.exception and not at.error
    caption = next(c.value for c in at.caption if "224 x 224" in c.value)
    assert "8 images, shorter side scaled to 256 px" in caption and "the first 8 of 9" in caption
    tops = [d.value for d in at.dataframe if list(d.value.columns) == ["class", "probability"]]
    assert len(tops) == 8  # one table of the top 5 beside each photo the net saw
    run = load_run(runs / ids["imported"])
    from resnet_explorer.analysis import predict_top
    from resnet_explorer.analysis.study import upload_inputs

    classes, probs = predict_top(run.model, upload_inputs(run, png((40, 30))).images, 5)
    assert list(tops[0]["class"]) == [run.classes[c] for c in classes[0].tolist()]
    assert tops[0]["probability"].tolist() == pytest.approx(probs[0].tolist(), abs=1e-6)


def test_explain_on_an_imported_run_starts_nothing(runs, ids):
    from resnet_explorer.ui import analysis_jobs

    before = analysis_jobs.current_job()
    at = page("pages/6_Explain.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="explain_run").value == ids["imported"]
    assert any("no dataset to measure on" in i.value for i in at.info)
    assert not at.button  # no Run buttons: nothing can be started
    assert analysis_jobs.current_job() is before
