"""Loss landscapes (Li et al. 2018): filter-normalised directions, the grid, weights left alone, figures."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.analysis.landscape import (
    MAX_LANDSCAPE_GRID,
    MAX_LANDSCAPE_IMAGES,
    MAX_LANDSCAPE_SPAN,
    AnalysisStopped,
    LandscapeResult,
    filter_normalized_direction,
    landscape,
    run_landscape,
    summarize,
)
from resnet_explorer.data import spread_over_classes
from resnet_explorer.plots.landscape import plot_landscape_1d, plot_landscape_contours, plot_landscape_surfaces
from resnet_explorer.runs import Run
from resnet_explorer.training import TrainConfig
from resnet_explorer.training.trainer import evaluate, load_config_data

SPEC = ModelSpec.from_name("resnet8").replace(num_classes=4)


def _net(spec: ModelSpec = SPEC, seed: int = 0) -> nn.Module:
    """A tiny net with non-trivial BN running statistics, left in train mode."""
    torch.manual_seed(seed)
    model = build_model(spec, device="cpu")
    with torch.no_grad():
        model.train()
        for _ in range(3):
            model(torch.randn(16, 3, 8, 8) * 2 + 0.5)
    return model


def _data(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


# --- directions --------------------------------------------------------------------------------

def test_filter_normalised_direction_matches_filter_norms_and_zeroes_bn_and_biases():
    model = _net()
    d = filter_normalized_direction(model, seed=3, index=0)
    params = dict(model.named_parameters())
    assert d.keys() == params.keys()
    for name, p in params.items():
        assert d[name].shape == p.shape and d[name].dtype == p.dtype
        if p.ndim <= 1:  # BN scales and shifts, the fc bias
            assert torch.count_nonzero(d[name]) == 0, name
        else:
            want = p.detach().flatten(1).norm(dim=1)
            got = d[name].flatten(1).norm(dim=1)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
            assert not torch.allclose(d[name], p.detach())  # random, not the weight itself
    assert any(p.ndim <= 1 for p in params.values()) and "fc.weight" in d


def test_directions_are_seeded_and_the_two_indices_differ():
    model = _net()
    a, b = filter_normalized_direction(model, 5, 0), filter_normalized_direction(model, 5, 0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other_index = filter_normalized_direction(model, 5, 1)
    other_seed = filter_normalized_direction(model, 6, 0)
    assert not torch.equal(a["conv1.weight"], other_index["conv1.weight"])
    assert not torch.equal(a["conv1.weight"], other_seed["conv1.weight"])


def test_twins_get_identical_directions_for_shared_parameters():
    residual = _net(SPEC, seed=0)
    plain = _net(SPEC.plain(), seed=1)  # other weights: the draws match, the scales are each net's own
    plain.load_state_dict(residual.state_dict())
    dr, dp = filter_normalized_direction(residual, 2, 1), filter_normalized_direction(plain, 2, 1)
    assert dr.keys() == dp.keys()
    assert all(torch.equal(dr[k], dp[k]) for k in dr)
    # a residual net with projection shortcuts has extra parameters; they do not shift the shared draws
    projected = _net(SPEC.replace(shortcut="B"), seed=0)
    dq = filter_normalized_direction(projected, 2, 1)
    extra = dq.keys() - dr.keys()
    assert extra and all("downsample" in k or "shortcut" in k for k in extra)
    own = dict(projected.named_parameters())
    for k in dr:
        if own[k].ndim > 1:  # the unit draw is identical; each is scaled to its own filters
            unit_q = dq[k].flatten(1) / own[k].detach().flatten(1).norm(dim=1, keepdim=True)
            unit_r = dr[k].flatten(1) / dict(residual.named_parameters())[k].detach().flatten(1).norm(
                dim=1, keepdim=True)
            torch.testing.assert_close(unit_q, unit_r, rtol=1e-4, atol=1e-6)


# --- the grid ----------------------------------------------------------------------------------

def test_centre_of_the_landscape_is_the_plain_eval_loss_and_accuracy():
    model = _net()
    x, y = _data()
    result = landscape(model, x, y, dims=2, grid=3, span=0.5, seed=0, batch_size=3)  # batches of 3, 3, 2
    assert len(result.rows) == 9 and result.dims == 2 and result.images == 8
    assert sorted(result.rows["alpha"].unique()) == [-0.5, 0.0, 0.5]
    model.eval()
    with torch.no_grad():
        out = model(x)
    centre = result.rows[(result.rows.alpha == 0) & (result.rows.beta == 0)].iloc[0]
    assert centre.loss == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-5)
    assert centre.accuracy == pytest.approx((out.argmax(1) == y).float().mean().item())
    assert (result.rows.drop(index=centre.name)["loss"] != centre.loss).all()  # the other points moved


def test_one_dimensional_landscape_is_the_beta_zero_line_of_the_two_dimensional_one():
    model = _net()
    x, y = _data()
    line = landscape(model, x, y, dims=1, grid=3, seed=4)
    plane = landscape(model, x, y, dims=2, grid=3, seed=4)
    assert (line.rows["beta"] == 0).all() and len(line.rows) == 3
    pd.testing.assert_frame_equal(line.rows, plane.along_alpha().rows, rtol=1e-6)


def test_weights_and_mode_unchanged_after_the_analysis_and_after_an_error_midway():
    model = _net()
    x, y = _data()
    before = _state(model)
    landscape(model, x, y, dims=1, grid=3)
    assert _same_state(model, before) and model.training

    def fail(done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        landscape(model, x, y, dims=2, grid=3, progress=fail)
    assert _same_state(model, before) and model.training
    model.eval()
    landscape(model, x, y, dims=1, grid=3)
    assert not model.training


def test_progress_counts_points_and_stop_is_prompt():
    model = _net()
    x, y = _data()
    calls = []
    landscape(model, x, y, dims=2, grid=3, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 9) for i in range(10)]
    stop = threading.Event()
    seen = []

    def stop_after_two(done: int, total: int) -> None:
        seen.append(done)
        if done == 2:
            stop.set()

    with pytest.raises(AnalysisStopped):
        landscape(model, x, y, dims=2, grid=3, progress=stop_after_two, stop=stop)
    assert seen == [0, 1, 2]
    assert model.training


@pytest.mark.parametrize("kwargs, match", [
    (dict(grid=4), "odd"), (dict(grid=1), "grid"), (dict(grid=MAX_LANDSCAPE_GRID + 2), "grid"),
    (dict(grid=3.0), "grid"), (dict(span=0.0), "span"), (dict(span=-1.0), "span"), (dict(span=math.inf), "span"),
    (dict(span=math.nan), "span"), (dict(span=MAX_LANDSCAPE_SPAN * 2), "span"), (dict(dims=3), "dims"),
    (dict(dims=True), "dims"), (dict(batch_size=0), "batch_size"), (dict(seed=-1), "seed"),
])
def test_bad_arguments_are_refused(kwargs, match):
    x, y = _data(2)
    with pytest.raises(ValueError, match=match):
        landscape(_net(), x, y, **{"grid": 3, **kwargs})


def test_bad_images_and_labels_are_refused():
    model = _net()
    x, y = _data(2)
    with pytest.raises(ValueError, match="float"):
        landscape(model, (x * 10).to(torch.uint8), y, grid=3)
    with pytest.raises(ValueError, match="images"):
        landscape(model, torch.zeros(MAX_LANDSCAPE_IMAGES + 1, 3, 1, 1), torch.zeros(MAX_LANDSCAPE_IMAGES + 1,
                                                                                      dtype=torch.long), grid=3)
    with pytest.raises(ValueError, match="labels"):
        landscape(model, x, y[:1], grid=3)
    with pytest.raises(ValueError, match="classes"):
        landscape(model, x, torch.tensor([0, 9]), grid=3)
    for images in (0, MAX_LANDSCAPE_IMAGES + 1):  # checked before the run is looked at
        with pytest.raises(ValueError, match="images"):
            run_landscape(None, images=images)


def test_run_landscape_uses_the_runs_training_images_spread_over_classes():
    config = TrainConfig(steps=1, train_size=40, test_size=10, image_size=16)
    model = _net(SPEC.replace(num_classes=10))
    run = Run(path=Path("fake"), info={"id": "fake"}, spec=model.spec, config=config, model=model)
    result = run_landscape(run, dims=1, grid=3, images=12)
    data = load_config_data(config)
    idx = torch.tensor(spread_over_classes(data.train_labels, 12))
    loss, accuracy = evaluate(model, data.train_images[idx], data.train_labels[idx], data.mean, data.std)
    centre = result.rows[result.rows.alpha == 0].iloc[0]
    assert result.images == 12 and "12 training images" in result.note
    assert centre.loss == pytest.approx(loss, rel=1e-5) and centre.accuracy == pytest.approx(accuracy)
    with pytest.raises(ValueError, match="without its model"):
        run_landscape(SimpleNamespace(model=None, config=config, id="fake"), grid=3)


# --- summaries and figures ---------------------------------------------------------------------

def _synthetic(f, grid: int = 5, dims: int = 2) -> LandscapeResult:
    values = np.linspace(-1, 1, grid)
    rows = [{"alpha": a, "beta": b, "loss": f(a, b), "accuracy": 1.0 - min(1.0, abs(a) + abs(b)) / 2}
            for a in values for b in (values if dims == 2 else [0.0])]
    return LandscapeResult(rows=pd.DataFrame(rows), dims=dims, grid=grid, span=1.0, seed=0, images=8)


def test_summary_of_known_surfaces():
    bowl = summarize(_synthetic(lambda a, b: 1 + a * a + 2 * b * b))
    assert bowl["centre_loss"] == 1 and bowl["max_loss"] == 4 and bowl["nonconvex"] == 0
    edge = [1 + a * a + 2 * b * b for a in np.linspace(-1, 1, 5) for b in np.linspace(-1, 1, 5)
            if abs(a) == 1 or abs(b) == 1]
    assert bowl["edge_loss"] == pytest.approx(np.mean(edge)) and bowl["edge_rise"] == pytest.approx(np.mean(edge))
    cap = summarize(_synthetic(lambda a, b: 5 - a * a - b * b))
    assert cap["nonconvex"] == 1
    wave = summarize(_synthetic(lambda a, b: 2 + math.cos(6 * a), grid=9, dims=1))
    assert 0 < wave["nonconvex"] < 1 and wave["min_accuracy"] == 0.5


def test_figures_share_the_colour_range_and_style_twins():
    results = {"resnet8": _synthetic(lambda a, b: 0.1 + a * a + b * b),
               "plain8": _synthetic(lambda a, b: 0.5 + 20 * (a * a + b * b))}
    residual = {"resnet8": True, "plain8": False}
    contours = plot_landscape_contours(results, residual=residual)
    surfaces = plot_landscape_surfaces(results, residual=residual)
    c = [t for t in contours.data if t.type == "contour"]
    s = [t for t in surfaces.data if t.type == "surface"]
    assert len(c) == len(s) == 2
    low, high = math.log10(0.1), math.log10(40.5)
    for t in c:
        assert (t.zmin, t.zmax) == pytest.approx((low, high))
        assert (t.contours.start, t.contours.end) == pytest.approx((low, high))
    for t in s:
        assert (t.cmin, t.cmax) == pytest.approx((low, high))
    assert [t.line.dash for t in c] == ["solid", "dash"]
    assert "plain8" in contours.layout.title.text and "rises more" in contours.layout.title.text
    line = plot_landscape_1d(results, residual=residual, depth={"resnet8": 8, "plain8": 8})
    dashes = {t.legendgroup: t.line.dash for t in line.data}
    assert dashes == {"resnet8": "solid", "plain8": "dash"}
    assert list(line.data[0].x) == [-1, -0.5, 0, 0.5, 1]  # a 2-D result drawn along beta = 0
    with pytest.raises(ValueError, match="1-D"):
        plot_landscape_contours({"a": results["resnet8"].along_alpha()}, residual=True)
    assert plot_landscape_surfaces({}, residual=True).layout.annotations[0].text == "no data yet"
    for scene in (surfaces.layout.scene, surfaces.layout.scene2):  # the cube and its tick labels fit the scene's box:
        eye = scene.camera.eye  # farther out than plotly's default eye (1.25, 1.25, 1.25), which cut "100" to ".00"
        assert math.dist((eye.x, eye.y, eye.z), (0, 0, 0)) > 1.15 * math.dist((1.25,) * 3, (0, 0, 0))
