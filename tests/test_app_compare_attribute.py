"""Home tour, Compare and Attribute pages through AppTest, on tiny runs in a temporary folder."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer import ModelSpec
from resnet_explorer.data import load_data
from resnet_explorer.data.shapes import SHAPES_CLASSES
from resnet_explorer.runs import RunWriter, list_runs
from resnet_explorer.training import TrainConfig, train
from resnet_explorer.training.presets import degradation_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = load_data("shapes", seed=0, train_size=64, test_size=32)
    for name in ("resnet20", "plain20"):
        spec = ModelSpec.from_name(name, num_classes=10)
        config = TrainConfig(steps=4, batch_size=16, probe_every=1, log_every=1, device="cpu")
        train(spec, config, data=data, listeners=[RunWriter(root, spec, config)])
    return root


@pytest.fixture
def runs(run_root, monkeypatch):
    """The tiny runs; an attribution runs the analysis process's own work on a thread here
    (`in_process_analysis`)."""
    from resnet_explorer.ui import analysis_jobs
    from tests.test_jobs import in_process_analysis

    monkeypatch.setattr(analysis_jobs, "start_process", in_process_analysis)
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(run_root))
    import streamlit as st

    st.cache_data.clear()
    return run_root


def page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=180)
    return at


def attributed(at: AppTest, timeout: float = 180) -> AppTest:
    """Press Attribute, then rerun until this session's attribution (a job in the device's line, run by the
    analysis process) has ended and the page has drawn what it saved."""
    at.button(key="FormSubmitter:attr_form-Attribute").click().run()
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            job = at.session_state["rx_attr_result"]["job"]
        except KeyError:  # nothing started (bad input): the page has said why
            return at
        if not job.running:
            return at.run()
        time.sleep(0.2)
        at.run()
    pytest.fail("the attribution did not end")


def test_home_tour_from_the_shipped_examples():
    at = page("app.py").run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # degradation curves, residual norms, gradient flow
    assert any("degradation" in c.value for c in at.caption)


def test_compare_selected_runs(runs):
    ids = [r["id"] for r in list_runs(runs)]
    at = page("pages/5_Compare.py")
    at.query_params["runs"] = ",".join(ids)
    at.run()
    assert not at.exception and not at.error
    assert at.multiselect(key="compare_runs").value == ids
    assert len(at.get("plotly_chart")) >= 5
    table = at.dataframe[0].value
    assert sorted(table["model"]) == ["plain20", "resnet20"] and list(table["params"]) == [269_722, 269_722]
    # what matters first, so a 1400 px wide page shows it without scrolling the table sideways
    assert list(table.columns)[:6] == ["run", "model", "train_loss", "train_error_%", "test_error_%", "seconds"]
    assert at.query_params["runs"] == [",".join(ids)] or at.query_params["runs"] == ",".join(ids)


def test_compare_ignores_unknown_linked_runs(runs):
    at = page("pages/5_Compare.py")
    at.query_params["runs"] = "nope,../../etc"
    at.run()
    assert not at.exception
    assert at.multiselect(key="compare_runs").value == []
    assert [w.value for w in at.warning] == ["Not found, left out: runs nope, ../../etc from the link."]


def test_compare_preset_trains_every_run(runs, monkeypatch, tmp_path):
    from resnet_explorer.ui import jobs
    from tests.test_jobs import in_process_training

    # the worker's own training on a thread here (the worker process itself: test_jobs, and the Train page)
    monkeypatch.setattr(jobs, "start_process", in_process_training)
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    at = page("pages/5_Compare.py").run()
    at.multiselect(key="compare_depths").set_value([8, 14])
    at.number_input(key="compare_steps").set_value(3)
    at.button[0].click()
    at.run()
    assert not at.exception and not at.error
    if at.session_state["rx_job"].running:  # while the preset trains its progress shows, not a call to choose runs
        assert not any("Choose runs" in i.value for i in at.info)
    deadline = time.time() + 180
    while time.time() < deadline:
        at.run()
        if len(list_runs(tmp_path)) == 4 and all(r["status"] == "done" for r in list_runs(tmp_path)):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"preset did not finish: {list_runs(tmp_path)}")
    at.session_state["rx_job"].thread.join(timeout=60)
    at.run()
    assert not at.exception
    assert sorted(r["model"] for r in list_runs(tmp_path)) == ["plain14", "plain8", "resnet14", "resnet8"]
    # the finished preset is chosen for comparison (run_picker.preselect) and compared
    assert sorted(at.multiselect(key="compare_runs").value) == sorted(r["id"] for r in list_runs(tmp_path))
    assert not at.error and len(at.get("plotly_chart")) >= 5


def test_attribute_page(runs):
    at = page("pages/4_Attribute.py").run()
    assert not at.exception and not at.error
    # four steps leave both nets at chance: the page says their maps show an untrained net
    stuck = [w.value for w in at.warning if "has not left chance" in w.value]
    assert len(stuck) == 2 and all("not what it learnt" in w for w in stuck)
    at.slider(key="attr_count").set_value(2)
    at.selectbox(key="attr_steps").set_value(16)  # fixed IG steps: adaptive ones doubled up to 512 here
    attributed(at)
    assert not at.exception and not at.error
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # one grid per method (both runs side by side in it) and the scores
    assert [t.label for t in at.tabs] == ["Saliency", "Integrated Gradients", "Grad-CAM"]
    assert len(at.dataframe) >= 2
    # the score table names its run and the classes (the shapes' names, not their indices)
    scores = at.dataframe[-1].value
    labels = {r["label"] for r in list_runs(runs)}
    assert list(scores.columns)[:6] == ["run", "image", "method", "true", "target", "predicted"]
    assert set(scores["run"]) == labels and len(labels) == 2
    assert set(scores["method"]) == {"Saliency", "Integrated Gradients", "Grad-CAM"}
    assert set(scores["true"]) | set(scores["predicted"]) | set(scores["target"]) <= set(SHAPES_CLASSES)


def test_attribute_shows_only_the_controls_of_the_chosen_images(runs):
    at = page("pages/4_Attribute.py").run()
    held_out = {"attr_count", "attr_start"}
    keys = lambda: {w.key for w in [*at.slider, *at.number_input, *at.radio, *at.get("file_uploader")]}  # noqa: E731
    assert held_out <= keys() and not {"attr_upload", "attr_fit"} & keys()
    assert at.number_input(key="attr_start").help == "The held-out split has 32 images, numbered 0 to 31"
    at.radio(key="attr_source").set_value("Upload images").run()
    assert not at.exception and {"attr_upload", "attr_fit"} <= keys() and not held_out & keys()


def test_attribute_page_baseline_and_steps(runs):
    """The chosen baseline and IG steps reach the study; the page warns exactly when a baseline scores higher."""
    at = page("pages/4_Attribute.py").run()
    at.slider(key="attr_count").set_value(3)
    at.multiselect(key="attr_methods").set_value(["integrated_gradients"])
    at.selectbox(key="attr_baseline").set_value("blur")
    at.selectbox(key="attr_steps").set_value(16)
    at.toggle(key="attr_sanity").set_value(False)
    attributed(at)
    assert not at.exception and not at.error
    scores = at.dataframe[-1].value
    assert set(scores["baseline"]) == {"blur"} and set(scores["steps"]) == {16}
    negative = int((scores["score_change"] < 0).sum())
    warned = [w.value for w in at.warning if "baseline" in w.value]
    assert bool(warned) == (negative > 0)
    if warned:
        assert f"in {negative} case(s)" in warned[0]


def test_attribute_bad_upload_keeps_session(runs):
    at = page("pages/4_Attribute.py").run()
    at.radio(key="attr_source").set_value("Upload images").run()  # the upload controls appear
    attributed(at)  # no file chosen
    assert not at.exception
    assert len(at.error) == 1 and "upload" in at.error[0].value.lower()
    assert "rx_attr_result" not in at.session_state  # nothing started
    at.multiselect(key="attr_methods").set_value([])  # no method: one line too, and the page lives on
    at.get("file_uploader")[0].upload("gray.png", _png("L"), "image/png")
    attributed(at)
    assert not at.exception and [e.value for e in at.error] == ["choose at least one method"]


def _png(mode: str, size=(40, 30)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, content, ok",
    [
        ("corrupt.png", b"\x89PNG\r\n\x1a\nnot really", False),
        ("empty.png", b"", False),
        ("gray.png", _png("L"), True),
        ("palette.png", _png("P"), True),
        ("alpha.png", _png("RGBA"), True),
    ],
)
def test_attribute_uploads(runs, name, content, ok):
    at = page("pages/4_Attribute.py").run()
    at.radio(key="attr_source").set_value("Upload images").run()  # the upload controls appear
    at.get("file_uploader")[0].upload(name, content, "image/png")
    at.multiselect(key="attr_methods").set_value(["saliency"])
    at.toggle(key="attr_sanity").set_value(False)
    attributed(at)
    assert not at.exception
    if ok:
        assert not at.error and len(at.get("plotly_chart")) == 2  # one method's grid (both runs) and the scores
        assert any("no object mask" in i.value for i in at.info)  # why the mask-share panel is empty
    else:
        assert at.error and "image" in at.error[0].value.lower()
        assert not at.get("plotly_chart")  # nothing left over from an earlier image


def _thirds(size=(300, 200)) -> bytes:
    """Left third red, middle blue, right third green."""
    import io

    from PIL import Image

    img = Image.new("RGB", size, (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, size[0] // 3, size[1]))
    img.paste((0, 255, 0), (2 * size[0] // 3, 0, size[0], size[1]))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_load_image_fits_a_wide_upload_by_crop_pad_or_stretch():
    from resnet_explorer.analysis import load_image

    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    load = {fit: load_image(_thirds(), image_size=30, mean=mean, std=std, fit=fit)[1] for fit in ("crop", "pad", "stretch")}
    red, blue, green = [255, 0, 0], [0, 0, 255], [0, 255, 0]
    # crop (the default, Resize(30) + CenterCrop(30)): the centre 200 x 200 of 300 x 200, so a quarter
    # red, half blue, a quarter green, and every row is image
    crop = load["crop"]
    assert torch_equal(load_image(_thirds(), image_size=30, mean=mean, std=std)[1], crop)
    assert crop[:, 15, :6].T.tolist() == [red] * 6 and crop[:, 15, 9:21].T.tolist() == [blue] * 12
    assert crop[:, 15, 24:].T.tolist() == [green] * 6 and crop[:, :, 15].T.tolist() == [blue] * 30
    # pad: all three thirds, 30 x 20 in the middle; 5 rows above and below in the mean colour
    pad = load["pad"]
    assert pad[:, 0, :].T.tolist() == [[128, 128, 128]] * 30 and pad[:, 29, :].T.tolist() == [[128, 128, 128]] * 30
    assert pad[:, 15, :9].T.tolist() == [red] * 9 and pad[:, 15, 21:].T.tolist() == [green] * 9
    assert pad[:, 5:25, 15].T.tolist() == [blue] * 20
    # stretch: all three thirds over the whole square (the old behaviour)
    stretch = load["stretch"]
    assert stretch[:, 0, :9].T.tolist() == [red] * 9 and stretch[:, 29, 21:].T.tolist() == [green] * 9
    with pytest.raises(ValueError, match="fit"):
        load_image(_thirds(), image_size=30, mean=mean, std=std, fit="squash")


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_attribute_upload_shows_what_the_model_saw_and_errors_clear_results(runs):
    at = page("pages/4_Attribute.py").run()
    at.radio(key="attr_source").set_value("Upload images").run()  # the upload controls appear
    at.get("file_uploader")[0].upload("wide.png", _thirds(), "image/png")
    at.multiselect(key="attr_methods").set_value(["saliency"])
    at.toggle(key="attr_sanity").set_value(False)
    attributed(at)
    assert not at.exception and not at.error
    assert any("300 x 200 px, scaled and centre-cropped to 32 x 32 px" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2
    at.get("file_uploader")[0].upload("broken.png", b"\x89PNG\r\n\x1a\nnot really", "image/png")
    attributed(at)
    assert len(at.error) == 1 and "broken.png" in at.error[0].value and not at.get("plotly_chart") and not any("centre-cropped" in c.value for c in at.caption)


def test_tour_reproduce_starts_the_preset(tmp_path, monkeypatch):
    from resnet_explorer.ui import jobs
    from tests.test_jobs import FakeStarter

    monkeypatch.setattr(jobs, "start_process", FakeStarter())  # what is started is the question, not how it trains
    jobs.QUEUE.reset()
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    at = page("app.py").run()
    at.button(key="tour_reproduce").click().run()
    assert not at.exception and not at.error
    job = at.session_state["rx_job"]
    try:
        assert [s.name for s in job.specs] == ["plain20", "plain56", "resnet20", "resnet56"]
        assert {config for _, config in job.plans} == {degradation_config(device="auto")}  # the preset, one seed
        assert at.title[0].value == "Compare"  # it switched to the page that shows the progress
    finally:
        job.stop()
        job.thread.join(timeout=120)
    assert not job.running


def test_an_attribution_waits_in_the_devices_line_while_a_training_job_holds_it(runs):
    """A second session's attribution is "queued" behind the training that holds the CPU, then runs."""
    import threading

    from resnet_explorer.ui.jobs import QUEUE, InlineJob

    QUEUE.reset()
    training = InlineJob("cpu")  # stands for another session's training job, holding the CPU's one slot
    QUEUE.enqueue(training)
    assert QUEUE.wait_turn(training)
    try:
        at = page("pages/4_Attribute.py").run()
        at.slider(key="attr_count").set_value(1)
        at.multiselect(key="attr_methods").set_value(["saliency"])
        at.toggle(key="attr_sanity").set_value(False)
        seen = []

        def training_ends() -> None:
            deadline = time.monotonic() + 60
            while QUEUE.waiting("cpu") == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            seen.append((QUEUE.waiting("cpu"), QUEUE.training("cpu")))  # the attribution in line, the training on
            time.sleep(1.5)  # the page shows its place in line meanwhile
            QUEUE.release(training)

        ender = threading.Thread(target=training_ends)
        ender.start()
        at.button(key="FormSubmitter:attr_form-Attribute").click().run()
        while not seen:  # the page shows where the attribution waits, with Stop
            at.run()
            time.sleep(0.2)
        job = at.session_state["rx_attr_result"]["job"]
        assert job.snapshot()["status"] == "queued" and job.lens == "attribute"
        assert any("queued, 1st in line" in p.proto.text for p in at.get("progress")), "the page says where it waits"
        assert at.button(key="attr_stop")  # and offers Stop
        assert not at.get("plotly_chart")  # nothing drawn while it waits
        ender.join()
        deadline = time.monotonic() + 120
        while job.running and time.monotonic() < deadline:
            time.sleep(0.3)
        at.run()
        assert seen == [(1, 1)]
        assert not at.exception and not at.error and len(at.get("plotly_chart")) == 2  # the grid and the scores
        assert QUEUE.training("cpu") == 0 and QUEUE.waiting("cpu") == 0  # the attribution gave its slot back
    finally:
        QUEUE.reset()


def test_stop_on_a_running_attribution_says_so_and_draws_nothing(runs, monkeypatch):
    from resnet_explorer.analysis import study as study_module

    real = study_module.run_study
    started = []

    def slow(*args, stop=None, **kwargs):  # waits for Stop, then runs: the study checks it before its first batch
        started.append(True)
        stop.wait(60)
        return real(*args, stop=stop, **kwargs)

    monkeypatch.setattr("resnet_explorer.reports.attribute.run_study", slow)
    at = page("pages/4_Attribute.py").run()
    at.slider(key="attr_count").set_value(1)
    at.multiselect(key="attr_methods").set_value(["saliency"])
    at.button(key="FormSubmitter:attr_form-Attribute").click().run()
    job = at.session_state["rx_attr_result"]["job"]
    deadline = time.monotonic() + 60
    while not started and time.monotonic() < deadline:
        time.sleep(0.05)
    at.run()
    at.button(key="attr_stop").click().run()
    while job.running and time.monotonic() < deadline:
        time.sleep(0.1)
    at.run()
    assert not at.exception and not at.error and not at.get("plotly_chart")
    assert any("The attribution stopped on request" in i.value and "after 0 of 1 batches" in i.value for i in at.info)


def test_a_saved_attribution_loads_back_equal_to_run_study(run_root, tmp_path):
    """The task's result, saved and read back, is the very `run_study` the page called itself before: every map,
    delta, step count, prediction and score row bit for bit (fixed seeds)."""
    import torch

    from resnet_explorer.analysis.study import dataset_inputs, run_study
    from resnet_explorer.reports import attribute, tasks
    from resnet_explorer.runs import load_run

    run = load_run(list_runs(run_root)[0]["path"])
    options = tasks.check_options("attribute", {
        "methods": "saliency,integrated_gradients,smoothgrad,gradcam,occlusion,deeplift", "baseline": "blur",
        "count": 3, "start": 2, "layer": "layer2", "sanity": True, "steps": 8, "out": str(tmp_path / "out")})
    torch.manual_seed(5)
    direct = run_study(run.model, dataset_inputs(run, indices=range(2, 5)), options["methods"].split(","),
                       layer="layer2", sanity=True, baseline="blur", steps=8)  # 8 IG steps: the wiring, not convergence
    torch.manual_seed(5)
    entry = tasks.get("attribute")
    seen = []
    written = entry.save(run.path, entry.run(run, options, lambda done, total: seen.append((done, total)), None),
                         options)
    assert {p.name for p in written} == {"attribution.npz", "result.json", "scores.csv"}
    assert seen[-1] == (6, 6)  # each method's one batch of images
    back, back_options = attribute.load(tmp_path / "out")
    assert back_options == options
    assert back.scores == direct.scores and list(back.results) == list(direct.results)
    for name in ("predicted", "confidence", "top_classes", "top_probs"):
        assert torch.equal(getattr(back, name), getattr(direct, name)), name
    for name in ("images", "previews", "labels", "masks"):
        assert torch.equal(getattr(back.inputs, name), getattr(direct.inputs, name)), name
    assert (back.inputs.names, back.inputs.note, back.inputs.mean, back.inputs.std) == (
        direct.inputs.names, direct.inputs.note, direct.inputs.mean, direct.inputs.std)
    for method, result in direct.results.items():
        again = back.results[method]
        assert torch.equal(again.heatmap("absolute"), result.heatmap("absolute")), method
        for name in ("maps", "targets", "delta", "baselines", "steps"):
            mine, theirs = getattr(again, name), getattr(result, name)
            assert (mine is None and theirs is None) or torch.equal(mine, theirs), (method, name)
        assert (again.layer, again.device, again.note) == (result.layer, result.device, result.note)
    assert attribute.load(tmp_path / "nothing") is None
    (tmp_path / "out" / "attribution.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="damaged"):
        attribute.load(tmp_path / "out")


@pytest.mark.parametrize("options, fragment", [
    ({"methods": ""}, "methods must be a comma list"),
    ({"methods": "saliency,xray"}, "methods must be a comma list"),
    ({"baseline": "red"}, "baseline must be one of zeros, black, blur"),
    ({"steps": 10_000}, "steps must be from 0 to 512"),
    ({"fit": "squash"}, "fit must be one of crop, pad, stretch"),
    ({"count": 0}, "count"),
    ({"sanity": "yes"}, "sanity must be true or false"),
    ({"colour": 1}, "unknown attribute option"),
])
def test_attribute_options_are_bounded(options, fragment):
    from resnet_explorer.reports import tasks

    with pytest.raises(ValueError, match=fragment) as info:
        tasks.check_options("attribute", options)
    assert "\n" not in str(info.value)
