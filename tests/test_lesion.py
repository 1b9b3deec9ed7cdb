"""Lesion study (Veit et al. 2016): deletions and swaps against hand-computed forwards, restoration, bounds, figures."""

import threading

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.analysis.lesion import (
    MAX_LESION_DRAWS,
    MAX_LESION_IMAGES,
    AnalysisStopped,
    LesionResult,
    by_k,
    deletable_units,
    k_lesions,
    lesion_study,
    lesioned,
    reordered,
    reorderings,
    single_lesions,
)
from resnet_explorer.plots.lesion import DOWNSAMPLE_FILL, plot_k_lesions, plot_reorderings, plot_single_lesions

CLASSES = 4


def net(name: str = "resnet8", **changes) -> torch.nn.Module:
    spec = ModelSpec.from_name(name).replace(num_classes=CLASSES, **changes)
    model = build_model(spec, device="cpu")
    with torch.no_grad():  # BN statistics that are not the identity, so eval mode is not train mode
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def data(n: int = 12, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def score(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    return float((logits.argmax(1) != y).float().mean()), float(F.cross_entropy(logits, y))


def snapshot(model: torch.nn.Module) -> tuple:
    return ({k: v.clone() for k, v in model.state_dict().items()}, [n for n, _ in model.named_modules()],
            [id(m) for m in model.modules()], [m.training for m in model.modules()])


def assert_intact(model: torch.nn.Module, before: tuple) -> None:
    state, names, ids, modes = before
    after = model.state_dict()
    assert list(after) == list(state)
    assert all(torch.equal(after[k], state[k]) for k in state)
    assert [n for n, _ in model.named_modules()] == names
    assert [id(m) for m in model.modules()] == ids
    assert [m.training for m in model.modules()] == modes
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_zeroed_branch_changes_nothing_when_deleted():
    model = net()
    x, y = data()
    unit = model.layer2[0]
    with torch.no_grad():
        unit.bn2.weight.zero_()
        unit.bn2.bias.zero_()
        intact = model(x)
        with lesioned(model, ["layer2.0"]):
            assert torch.equal(model(x), intact)
    result = single_lesions(model, x, y, batch_size=5)
    rows = result.rows.set_index("unit")
    assert rows.loc["layer2.0", "error"] == result.baseline_error
    assert rows.loc["layer2.0", "loss"] == result.baseline_loss
    assert rows.loc["layer2.0", "delta_loss"] == 0
    assert (rows.drop(index="layer2.0")["delta_loss"] != 0).all()  # the other deletions do change the net


@pytest.mark.parametrize("pre_activation", [False, True])
def test_deleting_a_branch_equals_the_hand_computed_forward(pre_activation):
    model = net("resnet8", pre_activation=pre_activation)
    x, y = data()
    unit = model.layer2[0]
    with torch.no_grad():
        h = model.layer1(model.forward_stem(x))
        h = unit.downsample(h) if unit.downsample is not None else h  # F deleted, the shortcut kept
        if not pre_activation:
            h = torch.relu(h)
        hand = model.forward_head(model.forward_final(model.layer3(h)))
        with lesioned(model, ["layer2.0"]):
            hooked = model(x)
    torch.testing.assert_close(hooked, hand)
    rows = single_lesions(model, x, y, batch_size=7).rows.set_index("unit")
    error, loss = score(hand, y)
    assert rows.loc["layer2.0", "error"] == pytest.approx(error)
    assert rows.loc["layer2.0", "loss"] == pytest.approx(loss, rel=1e-5)
    assert bool(rows.loc["layer2.0", "downsampling"]) and not bool(rows.loc["layer1.0", "downsampling"])


def test_baseline_equals_the_plain_forward():
    model = net("resnet14")
    x, y = data()
    with torch.no_grad():
        error, loss = score(model(x), y)
    result = single_lesions(model, x, y, batch_size=5)
    assert result.baseline_error == pytest.approx(error)
    assert result.baseline_loss == pytest.approx(loss, rel=1e-5)
    assert len(result.rows) == 6 and result.rows["deletable"].all()


def test_plain_net_deletes_only_where_the_identity_fits():
    model = net("plain8")
    x, y = data()
    infos = {u.name: u for u in deletable_units(model)}
    assert infos["layer1.0"].deletable
    assert not infos["layer2.0"].deletable and not infos["layer3.0"].deletable
    assert "cannot be deleted" in infos["layer2.0"].reason and "stride 2" in infos["layer2.0"].reason
    with pytest.raises(ValueError, match="cannot be deleted"):
        with lesioned(model, ["layer2.0"]):
            pass
    with torch.no_grad():
        hand = model.forward_head(model.forward_final(model.layer3(model.layer2(model.forward_stem(x)))))
        with lesioned(model, ["layer1.0"]):
            torch.testing.assert_close(model(x), hand)
    result = single_lesions(model, x, y)
    rows = result.rows.set_index("unit")
    assert rows.loc["layer1.0", "loss"] == pytest.approx(score(hand, y)[1], rel=1e-5)
    assert rows.loc[["layer2.0", "layer3.0"], "error"].isna().all()
    assert not rows.loc["layer2.0", "deletable"]
    # A plain bottleneck net with one unit per stage: every unit changes the shape.
    bottleneck = build_model(ModelSpec(layers=(1, 1, 1, 1), block="bottleneck", stem="imagenet", residual=False,
                                       num_classes=CLASSES, width_multiplier=0.125), device="cpu")
    assert not any(u.deletable for u in deletable_units(bottleneck))
    with pytest.raises(ValueError, match="no unit"):
        k_lesions(bottleneck, x, y)
    study = lesion_study(bottleneck, inputs=(x, y), draws=1)
    assert study.k_lesions is None and study.reorder is None and len(study.notes) == 2
    assert study.single.rows["error"].isna().all()


def test_k_lesions_rows_and_known_answers():
    model = net("resnet14")
    x, y = data()
    result = k_lesions(model, x, y, draws=3, seed=5, ks=[1, 2, 4], batch_size=5)
    assert len(result.rows) == 3 * 3 and result.max_k == 6
    assert (result.rows.groupby("k").size() == 3).all()
    for _, row in result.rows.iterrows():
        names = row["units"].split()
        assert len(names) == len(set(names)) == row["k"]
        with torch.no_grad(), lesioned(model, names):
            error, loss = score(model(x), y)
        assert row["error"] == pytest.approx(error) and row["loss"] == pytest.approx(loss, rel=1e-5)
    again = k_lesions(model, x, y, draws=3, seed=5, ks=[2])
    assert list(again.rows["units"]) == list(result.rows[result.rows["k"] == 2]["units"])
    summary = by_k(result)
    assert list(summary["k"]) == [0, 1, 2, 4] and summary["mean"].iloc[0] == result.baseline_error


def test_reorder_then_restore_and_known_answers():
    model = net("resnet14")
    x, y = data()
    before = snapshot(model)
    first, second = model.layer1[0], model.layer1[1]
    with torch.no_grad():
        intact = model(x)
        with reordered(model, [("layer1.0", "layer1.1")]):
            assert model.layer1[0] is second and model.layer1[1] is first
            swapped = model(x)
        hand_h = first(second(model.forward_stem(x)))
        hand = model.forward_head(model.forward_final(model.layer3(model.layer2(hand_h))))
    torch.testing.assert_close(swapped, hand)
    assert not torch.allclose(swapped, intact)
    assert_intact(model, before)
    with torch.no_grad():
        assert torch.equal(model(x), intact)
    with pytest.raises(ValueError, match="changes the shape"):
        with reordered(model, [("layer2.0", "layer2.1")]):
            pass
    with pytest.raises(ValueError, match="different stages"):
        with reordered(model, [("layer1.0", "layer2.1")]):
            pass
    result = reorderings(model, x, y, draws=2, seed=1, batch_size=5)
    assert result.max_k == 1 + 0 + 0 and len(result.rows) == 2  # stage 1: 2 swappable units, later stages 1 each
    for _, row in result.rows.iterrows():
        pairs = [tuple(p.split("<->")) for p in row["swaps"].split()]
        with torch.no_grad(), reordered(model, pairs):
            error, loss = score(model(x), y)
        assert row["loss"] == pytest.approx(loss, rel=1e-5) and row["error"] == pytest.approx(error)
    assert_intact(model, before)


def test_reorderings_draw_disjoint_pairs_within_stages():
    model = net("resnet20")
    x, y = data(6)
    result = reorderings(model, x, y, draws=4, seed=0, ks=[1, 3])
    assert result.max_k == 1 + 1 + 1  # 3, 2, 2 swappable units per stage
    assert len(result.rows) == 2 * 4
    for _, row in result.rows.iterrows():
        pairs = [p.split("<->") for p in row["swaps"].split()]
        units = [u for p in pairs for u in p]
        assert len(pairs) == row["k"] and len(set(units)) == len(units)
        assert all(a.split(".")[0] == b.split(".")[0] for a, b in pairs)
        assert not any(u in ("layer2.0", "layer3.0") for u in units)


@pytest.mark.parametrize("analysis", ["single", "k_lesions", "reorder"])
def test_state_restored_after_analysis_and_after_an_error_midway(analysis):
    model = net("resnet14")
    model.train()
    model.layer2.eval()  # a mixed state must come back as it was, module by module
    x, y = data(10)
    before = snapshot(model)
    run = {"single": lambda **kw: single_lesions(model, x, y, batch_size=4, **kw),
           "k_lesions": lambda **kw: k_lesions(model, x, y, draws=2, ks=[1, 3], batch_size=4, **kw),
           "reorder": lambda **kw: reorderings(model, x, y, draws=3, batch_size=4, **kw)}[analysis]
    calls = []
    run(progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == list(range(1, len(calls) + 1))
    assert_intact(model, before)

    def fail(done, total):
        if done == 4:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(progress=fail)
    assert_intact(model, before)
    # An error inside a changed net's forward pass, with its hooks and swaps in place.
    count = {"n": 0}

    def explode(module, args):
        count["n"] += 1
        if count["n"] == 5:
            raise RuntimeError("inside")

    handle = model.fc.register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="inside"):
            run()
    finally:
        handle.remove()
    assert_intact(model, before)


def test_stop_event_stops_early():
    model = net()
    x, y = data()
    stop = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done == 2:
            stop.set()

    with pytest.raises(AnalysisStopped):
        k_lesions(model, x, y, draws=5, batch_size=4, progress=progress, stop=stop)
    assert calls == [1, 2]
    before = snapshot(model)
    with pytest.raises(AnalysisStopped):
        single_lesions(model, x, y, stop=stop, progress=calls.append)
    assert calls == [1, 2]
    assert_intact(model, before)


def test_bounds_refuse_bad_requests():
    model = net()
    x, y = data()
    for draws in (0, MAX_LESION_DRAWS + 1, 1.5, True):
        with pytest.raises(ValueError, match="draws"):
            k_lesions(model, x, y, draws=draws)
    with pytest.raises(ValueError, match="k must be"):
        k_lesions(model, x, y, ks=[0])
    with pytest.raises(ValueError, match="k must be"):
        reorderings(net("resnet14"), x, y, ks=[2])
    with pytest.raises(ValueError, match="seed"):
        reorderings(net("resnet14"), x, y, seed=-1)
    with pytest.raises(ValueError, match="swapped"):
        reorderings(model, x, y)  # one unit per stage: nothing to swap
    with pytest.raises(ValueError, match="images must be from"):
        single_lesions(model, torch.zeros(MAX_LESION_IMAGES + 1, 3, 2, 2), torch.zeros(MAX_LESION_IMAGES + 1,
                                                                                      dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        single_lesions(model, x, y + CLASSES)
    with pytest.raises(ValueError, match="normalised float"):
        single_lesions(model, (x * 100).to(torch.uint8), y)
    with pytest.raises(ValueError, match="batch_size"):
        single_lesions(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="ResNet"):
        single_lesions(torch.nn.Linear(2, 2), x, y)
    with pytest.raises(ValueError, match="draws"):
        lesion_study(model, inputs=(x, y), draws=0)
    with pytest.raises(ValueError, match="unknown analysis"):
        lesion_study(model, inputs=(x, y), analyses=["nope"])


def test_lesion_study_of_a_run_shares_one_count(tmp_path):
    from resnet_explorer.data import load_data
    from resnet_explorer.runs import RunWriter, load_run
    from resnet_explorer.training import TrainConfig, train

    spec = ModelSpec.from_name("resnet14", num_classes=10)
    config = TrainConfig(steps=2, batch_size=16, train_size=64, test_size=40, image_size=16, probe_every=0,
                         log_every=1, device="cpu")
    data_ = load_data(config.dataset, seed=config.seed, train_size=64, test_size=40, image_size=16)
    writer = RunWriter(tmp_path, spec, config)
    train(spec, config, data=data_, listeners=[writer])
    run = load_run(writer.path)
    with pytest.raises(ValueError, match="images"):
        lesion_study(run, images=0)
    calls = []
    study = lesion_study(run, images=20, draws=2, ks=[1, 6], batch_size=8,
                         progress=lambda d, t: calls.append((d, t)))
    batches = 3  # 20 images, 8 at a time
    configs = 6 + 2 * 2 + 1 * 2  # single, k in {1, 6}, one pair
    assert calls[-1] == (batches * (1 + configs), batches * (1 + configs))
    assert study.single.num_images == 20 and study.label == run.label
    assert study.single.baseline_error == study.k_lesions.baseline_error == study.reorder.baseline_error
    alone = single_lesions(run.model, *_run_images(run, 20), batch_size=8)
    pd.testing.assert_frame_equal(alone.rows, study.single.rows)
    assert study.k_lesions.rows["units"].iloc[-1].count("layer") == 6
    whole = lesion_study(run, images=None, analyses=["single"])
    assert whole.single.num_images == 40 and whole.k_lesions is None
    more = lesion_study(run, images=50, analyses=["single"])
    assert more.single.num_images == 40 and "40 images" in more.notes[0]


def _run_images(run, n):
    from resnet_explorer.data import normalize, spread_over_classes
    from resnet_explorer.training.trainer import load_config_data

    d = load_config_data(run.config)
    idx = torch.tensor(spread_over_classes(d.test_labels, n))
    return normalize(d.test_images[idx], d.mean, d.std), d.test_labels[idx]


def fake(kind: str, residual: bool, errors: list[float], downsampling: list[bool] | None = None,
         deletable: list[bool] | None = None) -> LesionResult:
    """A result with chosen errors, to check that titles follow the data."""
    n = len(errors)
    if kind == "single":
        ds = downsampling or [False] * n
        ok = deletable or [True] * n
        rows = pd.DataFrame({
            "unit": [f"layer1.{i}" for i in range(n)], "position": range(n), "stage": 1, "index_in_stage": range(n),
            "downsampling": ds, "changes_shape": ds, "deletable": ok, "how": "x",
            "error": [e if d else float("nan") for e, d in zip(errors, ok)], "loss": 1.0,
            "delta_error": [e - 0.1 for e in errors], "delta_loss": 0.0})
    else:
        rows = pd.DataFrame({"k": [i + 1 for i in range(n) for _ in range(2)], "draw": [0, 1] * n, "units": "",
                             "swaps": "", "error": [e + d for e in errors for d in (-0.02, 0.02)], "loss": 1.0,
                             "delta_error": 0.0, "delta_loss": 0.0})
    return LesionResult(kind, rows, 0.1, 1.0, 100, 10, n, n, residual, "resnetX" if residual else "plainX", 10)


def test_single_lesion_figure_marks_downsampling_and_undeletable_units():
    model, twin = net("resnet14"), net("plain14")
    x, y = data(8)
    results = {"resnet14": single_lesions(model, x, y), "plain14": single_lesions(twin, x, y)}
    fig = plot_single_lesions(results)
    bands = [s for s in fig.layout.shapes if s.fillcolor == DOWNSAMPLE_FILL]
    assert sorted((s.x0 + s.x1) / 2 for s in bands) == [3, 5]  # layer2.0 and layer3.0, 1-based positions
    assert sum(a.text == "downsampling" for a in fig.layout.annotations) == 2
    blocked = [t for t in fig.data if t.name == "plain14: cannot be deleted"]
    assert len(blocked) == 1 and list(blocked[0].x) == [3, 5]
    lines = {t.name: t.line.dash for t in fig.data if t.name in results}
    assert lines == {"resnet14": "solid", "plain14": "dash"}
    marks = next(t for t in fig.data if t.name == "resnet14").marker.symbol
    assert list(marks) == ["circle", "circle", "diamond", "circle", "diamond", "circle"]
    plain_line = next(t for t in fig.data if t.name == "plain14").y
    assert plain_line[2] is None and plain_line[4] is None and None not in (plain_line[0], plain_line[1])
    assert any("chance" in a.text and "75.0%" in a.text for a in fig.layout.annotations)
    assert "resnet14" in title(fig) and "plain14" in title(fig)
    assert "cannot be deleted" in title(fig) and list(fig.layout.xaxis.ticktext)[2] == "layer2.0"


def title(fig) -> str:
    return fig.layout.title.text.replace("<br>", " ")


def test_single_lesion_title_follows_the_data():
    at_down = title(plot_single_lesions({"r": fake("single", True, [0.1, 0.8, 0.12], [False, True, False])}))
    assert "at layer1.1, a downsampling unit" in at_down
    assert "any unit that keeps the resolution gives 12.0% or less" in at_down
    elsewhere = title(plot_single_lesions({"r": fake("single", True, [0.1, 0.3, 0.6], [False, True, False])}))
    assert "at layer1.2, not a downsampling unit" in elsewhere and "keeps the resolution" not in elsewhere
    assert "Median error after one deletion 30.0%" in elsewhere


def test_k_figures_band_and_title():
    res = fake("k_lesions", True, [0.12, 0.2, 0.4, 0.6])
    plain = fake("k_lesions", False, [0.85, 0.9, 0.9, 0.9])
    fig = plot_k_lesions({"r": res, "p": plain})
    text = title(fig)
    halfway = "the mean error first passes 50.0%, half-way from the intact net's 10.0% to chance's 90.0%"
    assert f"r: {halfway}, at k = 4 of 4 (measured 60.0%)" in text  # the threshold, then the measurement
    assert f"p: {halfway}, at k = 1 of 4 (measured 85.0%)" in text
    means = {t.name: t for t in fig.data}
    assert list(means["r: mean"].x) == [0, 1, 2, 3, 4] and means["r: mean"].y[0] == 0.1
    band = means["r: min-max over draws"]
    assert band.fill == "toself" and max(band.y) == pytest.approx(0.62)
    assert means["p: mean"].line.dash == "dash" and means["r: mean"].line.dash == "solid"
    swaps = plot_reorderings({"r": fake("reorder", True, [0.11, 0.13])})
    assert "stays below 50.0%, half-way from" in title(swaps) and "(largest measured 13.0%, at k = 2)" in title(swaps)
    assert "Swapping" in title(swaps)
    assert swaps.layout.xaxis.dtick == 1
    near = fake("k_lesions", False, [0.9, 0.9])
    near.baseline_error = 0.88
    assert "the intact net is at chance (held-out accuracy 12%" in title(plot_k_lesions({"p": near}))
    assert "passes" not in title(plot_k_lesions({"p": near}))
    with pytest.raises(ValueError, match="reorder"):
        plot_reorderings({"r": res})
    assert "no data" in plot_k_lesions({}).layout.annotations[0].text


def test_intact_labels_of_nets_with_the_same_error_are_stacked_not_overlaid():
    res, plain = fake("single", True, [0.1, 0.3, 0.6], [False, True, False]), \
        fake("single", False, [0.1, 0.8, 0.9], [False, True, False])
    fig = plot_single_lesions({"r": res, "p": plain})
    shifts = [a.yshift or 0 for a in fig.layout.annotations if "intact:" in (a.text or "")]
    assert sorted(shifts) == [0, 16]  # the same intact error: the second label 16 px above the first
