"""Training figures built from tiny hand-made tables; expected values are computed by hand."""

import math
import random
from functools import partial

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from resnet_explorer.models.layer_names import depth_key
from resnet_explorer.plots import (
    available_steps,
    plot_grad_flow_heatmap,
    plot_grad_flow_profile,
    plot_residual_heatmap,
    plot_residual_norms,
    plot_responses,
    plot_training_curves,
)

DEPTH_ORDER = [
    "conv1", "bn1", "relu", "maxpool",
    "layer1.0.conv1", "layer1.0.bn1", "layer1.0.conv2", "layer1.0.bn2",
    "layer1.2", "layer1.10",
    "layer2.0.conv1", "layer2.0.downsample.0", "layer2.0.downsample.1",
    "layer2.13", "layer4.1.conv3",
    "bn_final", "avgpool", "fc",
]


def _panel(fig: go.Figure, axis: str) -> list:
    """Traces drawn on one y axis ('y' top/left panel, 'y2' the second)."""
    return [t for t in fig.data if (t.yaxis or "y") == axis]


def _shows_no_data(fig: go.Figure) -> bool:
    return any("no data yet" in (a.text or "") for a in fig.layout.annotations)


# --- depth_key / available_steps -----------------------------------------------------------------

def test_depth_key_orders_stem_first_units_numerically_and_head_last():
    assert sorted(reversed(DEPTH_ORDER), key=depth_key) == DEPTH_ORDER
    shuffled = DEPTH_ORDER[:]
    random.Random(0).shuffle(shuffled)
    assert sorted(shuffled, key=depth_key) == DEPTH_ORDER
    assert depth_key("layer1.2") < depth_key("layer1.10") < depth_key("layer2.0")


def test_available_steps_sorted_unique_and_empty():
    df = pd.DataFrame({"step": [30, 10, 30, np.nan, 20]})
    assert available_steps(df) == [10, 20, 30]
    assert available_steps(pd.DataFrame()) == []
    assert available_steps(pd.DataFrame({"step": []})) == []


# --- training curves ---------------------------------------------------------------------------

def _metrics(steps, loss, acc):
    return pd.DataFrame({"step": steps, "epoch": [s / 10 for s in steps], "loss": loss, "accuracy": acc,
                         "lr": 0.1, "seconds": 1.0})


def test_training_curves_traces_values_and_styles():
    metrics = {
        "resnet20": _metrics([0, 10, 20], [2.0, 1.0, 0.5], [0.1, 0.5, 0.9]),
        "plain20": _metrics([0, 10, 20], [2.2, 1.5, 1.2], [0.1, 0.3, 0.6]),
    }
    evals = {"resnet20": pd.DataFrame({"step": [10, 20], "epoch": [1, 2], "loss": [1.1, 0.7], "accuracy": [0.4, 0.8]}),
             "resnet110": pd.DataFrame({"step": [20], "epoch": [2], "loss": [0.9], "accuracy": [0.7]})}
    fig = plot_training_curves(metrics, evals, residual={"resnet20": True, "plain20": False, "resnet110": True},
                               depth={"resnet20": 20, "plain20": 20, "resnet110": 110})
    assert "Fig. 6" in fig.layout.title.text
    loss = {t.name: t for t in _panel(fig, "y")}
    error = {t.name: t for t in _panel(fig, "y2")}
    assert set(loss) == {"resnet20", "plain20"}  # held-out: error only, as the paper's Fig. 6
    assert set(error) == {"resnet20", "plain20", "resnet20 (held-out)", "resnet110 (held-out)"}
    assert list(loss["resnet20"].y) == [2.0, 1.0, 0.5]
    assert list(loss["resnet20"].x) == [0, 10, 20]
    assert error["plain20"].y == pytest.approx([90.0, 70.0, 40.0])
    assert error["resnet20 (held-out)"].y == pytest.approx([60.0, 20.0])
    assert "markers" in error["resnet20 (held-out)"].mode
    assert loss["plain20"].line.dash == "dash" and loss["resnet20"].line.dash == "solid"
    assert loss["plain20"].line.color == loss["resnet20"].line.color  # same depth, same colour family
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text and fig.layout.yaxis2.title.text


def test_training_curves_seeds_draw_mean_and_band():
    seeds = [_metrics([10, 20, 30], [2.0, 1.0, 0.5], [0.1, 0.5, 0.9]),
             _metrics([10, 20, 30], [2.2, 1.4, 0.9], [0.1, 0.3, 0.7]),
             _metrics([10, 20], [2.4, 1.2], [0.2, 0.4])]  # a seed with fewer rows: only shared steps
    evals = [pd.DataFrame({"step": [30], "epoch": [3], "loss": [1.0], "accuracy": [0.5]}),
             pd.DataFrame({"step": [30], "epoch": [3], "loss": [2.0], "accuracy": [0.7]})]
    fig = plot_training_curves({"net": seeds}, {"net": evals}, residual={"net": False}, finding="Here: it held.")
    loss = {t.name: t for t in _panel(fig, "y")}
    mean = loss["net (mean of 3 seeds)"]
    assert list(mean.x) == [10, 20] and mean.y == pytest.approx([2.2, 1.2])
    assert mean.line.dash == "dash"  # residual=False, whatever the label says
    band = loss["net (seed range)"]
    assert band.fill == "toself" and list(band.x) == [10, 20, 20, 10]
    assert band.y == pytest.approx([2.4, 1.4, 1.0, 2.0])  # highest forward, lowest back
    error = {t.name: t for t in _panel(fig, "y2")}
    assert error["net (held-out, mean)"].y == pytest.approx([40.0])  # errors 50% and 30%
    assert "Here: it held." in fig.layout.title.text and "He et al. 2015:" not in fig.layout.title.text
    assert "lowest to highest seed" in fig.layout.title.text


def test_training_curves_without_finding_state_the_paper_claim_as_the_papers():
    runs = {name: _metrics([1, 2], [2.0, 1.0], [0.1, 0.2]) for name in ("plain20", "plain56", "resnet56")}
    fig = plot_training_curves(runs, residual={"plain20": False, "plain56": False, "resnet56": True},
                               depth={"plain20": 20, "plain56": 56, "resnet56": 56})
    assert "He et al. 2015: a deeper plain net" in fig.layout.title.text
    assert "plain vs residual" in fig.layout.title.text


def test_training_curves_title_says_what_is_shown():
    one = plot_training_curves({"a": _metrics([1, 2], [2.0, 1.0], [0.1, 0.2])}, residual=True)
    assert one.layout.title.text.startswith("Training curves of a<br>")
    assert "plain vs residual" not in one.layout.title.text and "deeper" not in one.layout.title.text
    twins = {name: _metrics([1, 2], [2.0, 1.0], [0.1, 0.2]) for name in ("plain20", "resnet20")}
    same_depth = plot_training_curves(twins, residual={"plain20": False, "resnet20": True},
                                      depth={"plain20": 20, "resnet20": 20})
    assert "plain vs residual" in same_depth.layout.title.text and "deeper" not in same_depth.layout.title.text
    no_depth = plot_training_curves(twins, residual={"plain20": False, "resnet20": True})
    assert "deeper" not in no_depth.layout.title.text
    residual_only = plot_training_curves(twins, residual=True, depth={"plain20": 20, "resnet20": 56})
    title = residual_only.layout.title.text
    assert title.startswith("Training curves of 2 residual runs") and "deeper" not in title


def test_training_curves_smoothing_keeps_raw_values_faint():
    steps = list(range(0, 1000, 10))
    loss = [1.0 + (i % 2) for i in range(len(steps))]  # zig-zag the running mean flattens
    fig = plot_training_curves({"resnet20": _metrics(steps, loss, [0.5] * len(steps))}, residual=True)
    traces = _panel(fig, "y")
    raw = [t for t in traces if t.name == "resnet20 (raw)"]
    smooth = [t for t in traces if t.name == "resnet20"]
    assert len(raw) == len(smooth) == 1
    assert list(raw[0].y) == loss and raw[0].opacity < 1 and raw[0].showlegend is False
    assert max(smooth[0].y) - min(smooth[0].y) < 0.5  # the raw swing is 1.0
    assert "smoothed" in fig.layout.title.text


# --- residual norms ----------------------------------------------------------------------------

UNITS = ["layer1.0", "layer1.1", "layer1.10", "layer2.0"]  # depth order; layer1.10 sorts after layer1.1


def _norms(plain: bool, scale: float = 1.0, steps=(100, 200)) -> pd.DataFrame:
    rows = []
    for step in steps:
        for i, unit in enumerate(reversed(UNITS)):  # written in reverse to check the sort
            f = scale * (i + 1) * step / 100
            x = np.nan if plain else 10.0 * (i + 1)
            rows.append({"step": step, "unit": unit, "stage": int(unit[5]), "residual_norm": f,
                         "shortcut_norm": x, "ratio": f / x})
    return pd.DataFrame(rows)


def test_residual_norms_values_at_latest_and_chosen_step():
    fig = plot_residual_norms({"resnet8": _norms(False), "plain8": _norms(True, scale=3.0)},
                              residual={"resnet8": True, "plain8": False})
    top = {t.name: t for t in _panel(fig, "y")}
    bottom = _panel(fig, "y2")
    assert set(top) == {"resnet8", "resnet8: ||x||", "plain8"}
    assert [t.name for t in bottom] == ["resnet8"]  # plain nets have no ratio
    # depth order is UNITS; the frame was written in reverse, so unit k has i = 3 - k.
    expected_f = [(4 - k) * 200 / 100 for k in range(4)]
    expected_x = [10.0 * (4 - k) for k in range(4)]
    assert list(top["resnet8"].customdata) == UNITS
    assert top["resnet8"].y == pytest.approx(expected_f)
    assert top["resnet8: ||x||"].y == pytest.approx(expected_x)
    assert bottom[0].y == pytest.approx([f / x for f, x in zip(expected_f, expected_x)])
    assert top["plain8"].y == pytest.approx([3 * f for f in expected_f])
    assert top["plain8"].line.dash == "dash" and top["resnet8"].line.dash == "solid"
    assert fig.layout.yaxis2.type == "log"
    early = plot_residual_norms({"resnet8": _norms(False)}, step=100, residual=True)
    assert _panel(early, "y2")[0].y == pytest.approx([(4 - k) / (10.0 * (4 - k)) for k in range(4)])
    assert "step 100" in early.layout.title.text
    # A plain run (residual=False) shows no ||x|| and no ratio, even if its table carried them.
    plain = plot_residual_norms({"plain8": _norms(False)}, residual={"plain8": False})
    assert [t.name for t in plain.data] == ["plain8"]


def test_residual_norms_twins_line_up_and_nearest_step_is_used():
    short = _norms(False, steps=(150,))
    short = short[short["unit"] != "layer1.1"]  # one unit missing: the others keep their x
    fig = plot_residual_norms({"resnet8": _norms(False), "resnet8 (run 2)": short}, step=160, residual=True)
    top = {t.name: t for t in _panel(fig, "y")}
    assert list(top["resnet8"].x) == [0, 1, 2, 3]
    assert list(top["resnet8 (run 2)"].x) == [0, 2, 3]
    assert top["resnet8 (run 2)"].y == pytest.approx([4 * 1.5, 2 * 1.5, 1 * 1.5])  # step 150, nearest to 160
    assert top["resnet8"].y == pytest.approx([8.0, 6.0, 4.0, 2.0])  # step 200, nearest to 160 (100 is farther)


def test_residual_heatmap_log_values_depth_order_and_colourbar():
    fig = plot_residual_heatmap(_norms(False), value="ratio", title="resnet8")
    (trace,) = fig.data
    assert isinstance(trace, go.Heatmap)
    assert list(trace.y) == UNITS and list(trace.x) == [100, 200]
    ratios = [[(4 - k) * s / 100 / (10.0 * (4 - k)) for s in (100, 200)] for k in range(4)]
    assert np.allclose(np.asarray(trace.z, dtype=float), np.log10(ratios))
    assert np.allclose(np.asarray(trace.customdata, dtype=float), ratios)
    assert "log" in trace.colorbar.title.text
    assert float(trace.colorbar.ticktext[0]) == pytest.approx(10 ** trace.colorbar.tickvals[0], rel=1e-2)
    assert fig.layout.yaxis.autorange == "reversed"  # input side at the top
    assert fig.layout.title.text.startswith("resnet8")


def test_residual_heatmap_plain_ratio_is_no_data():
    fig = plot_residual_heatmap(_norms(True), value="ratio")
    assert len(fig.data) == 0 and _shows_no_data(fig)
    assert len(plot_residual_heatmap(_norms(True), value="residual_norm").data) == 1


# --- gradient flow -----------------------------------------------------------------------------

LAYERS = ["conv1", "bn1", "layer1.0.conv1", "layer1.0.bn1", "layer1.0.conv2",
          "layer1.1.conv1", "layer1.1.bn1", "layer1.1.conv2", "layer2.0.conv1", "layer2.0.downsample.0",
          "layer2.0.downsample.1", "fc"]


def _grad(values: dict[str, float], steps=(0, 10)) -> pd.DataFrame:
    rows = [{"step": s, "layer": name, "grad_norm": v * (1 + s), "grad_abs_mean": v, "weight_norm": 1.0,
             "update_ratio": 0.01} for s in steps for name, v in reversed(values.items())]
    return pd.DataFrame(rows)


def test_grad_heatmaps_share_one_colour_scale():
    fig = plot_grad_flow_heatmap({"resnet8": _grad(dict.fromkeys(LAYERS, 0.1)),
                                  "plain8": _grad(dict.fromkeys(LAYERS, 100.0))})
    a, b = fig.data
    assert (a.name, b.name) == ("resnet8", "plain8")
    assert a.zmin == b.zmin == pytest.approx(math.log10(0.1))
    assert a.zmax == b.zmax == pytest.approx(math.log10(100.0 * 11))
    assert list(a.y) == LAYERS  # depth order, one row per layer (no aggregation under max_rows)
    assert [a.showscale, b.showscale] == [False, True]
    assert "gradient flow across depth" in fig.layout.title.text.lower()


def test_grad_heatmap_gives_its_row_labels_room():
    fig = plot_grad_flow_heatmap({"resnet8": _grad(dict.fromkeys(LAYERS, 0.1)),
                                  "plain8": _grad(dict.fromkeys(LAYERS, 1.0))})
    longest = max(map(len, LAYERS))  # "layer2.0.downsample.0"
    assert fig.layout.margin.l >= 7 * longest + 40  # the labels, then the axis title beside them
    assert fig.layout.yaxis.automargin and fig.layout.yaxis2.automargin
    width = 900  # the figure on a 1400 px page beside the sidebar, less its margins and colour bar
    gap_px = (fig.layout.xaxis2.domain[0] - fig.layout.xaxis.domain[1]) * (width - fig.layout.margin.l - 30 - 110)
    assert gap_px >= 7 * longest + 10  # the second panel's labels clear the first panel
    short = plot_grad_flow_heatmap({"resnet8": _grad({"conv1": 1.0, "fc": 2.0})})
    assert short.layout.margin.l < fig.layout.margin.l  # sized from the labels, not fixed


def test_residual_heatmap_gives_its_row_labels_room():
    fig = plot_residual_heatmap(_norms(False), value="ratio", title="resnet8")
    names = list(fig.data[0].y)
    assert fig.layout.margin.l >= 7 * max(map(len, names)) + 40 and fig.layout.yaxis.automargin


def test_grad_heatmap_aggregates_per_unit_then_per_stage():
    values = {name: 1.0 for name in LAYERS}
    values.update({"layer1.0.conv1": 3.0, "layer1.0.bn1": 4.0, "layer1.0.conv2": 12.0})
    grad = _grad(values, steps=(0,))
    fig = plot_grad_flow_heatmap({"resnet8": grad}, max_rows=8)
    (trace,) = fig.data
    assert list(trace.y) == ["conv1", "bn1", "layer1.0", "layer1.1", "layer2.0", "fc"]
    assert trace.customdata[2][0] == pytest.approx(13.0)  # sqrt(3^2 + 4^2 + 12^2)
    assert trace.customdata[3][0] == pytest.approx(math.sqrt(3.0))
    assert trace.z[2][0] == pytest.approx(math.log10(13.0))
    assert "per residual unit" in fig.layout.annotations[0].text
    means = plot_grad_flow_heatmap({"resnet8": grad}, value="grad_abs_mean", max_rows=8).data[0]
    assert means.customdata[2][0] == pytest.approx((3.0 + 4.0 + 12.0) / 3)
    stages = plot_grad_flow_heatmap({"resnet8": grad}, max_rows=5)
    assert list(stages.data[0].y) == ["conv1", "bn1", "layer1", "layer2", "fc"]
    assert stages.data[0].customdata[2][0] == pytest.approx(math.sqrt(9 + 16 + 144 + 3))
    assert "per stage" in stages.layout.annotations[0].text


def test_grad_profile_weights_only_values_and_styles():
    values = {name: float(i + 1) for i, name in enumerate(LAYERS)}
    fig = plot_grad_flow_profile({"resnet8": _grad(values), "plain8": _grad(values)}, step=0,
                                 residual={"resnet8": True, "plain8": False})
    resnet, plain = fig.data
    weights = [n for n in LAYERS if "bn" not in n and n != "layer2.0.downsample.1"]
    assert (resnet.name, plain.name) == ("resnet8", "plain8")
    assert list(resnet.customdata) == weights
    assert list(resnet.y) == [values[n] for n in weights]
    assert plain.line.dash == "dash" and resnet.line.dash == "solid"
    assert fig.layout.yaxis.type == "log"
    everything = plot_grad_flow_profile({"resnet8": _grad(values)}, weights_only=False,
                                        residual=True)  # latest step: 10
    assert list(everything.data[0].customdata) == LAYERS
    assert list(everything.data[0].y) == [values[n] * 11 for n in LAYERS]


# --- responses ---------------------------------------------------------------------------------

def test_responses_depth_order_and_sorted_panels():
    names = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1"]
    stds = [1.0, 0.3, 0.9, 0.5]
    df = pd.DataFrame({"step": 5, "layer": names[::-1], "std": stds[::-1]})
    fig = plot_responses({"resnet8": df, "plain8": df.assign(std=df["std"] * 2)},
                         residual={"resnet8": True, "plain8": False})
    assert "Fig. 7" in fig.layout.title.text
    top = {t.name: t for t in _panel(fig, "y")}
    bottom = {t.name: t for t in _panel(fig, "y2")}
    assert set(top) == set(bottom) == {"resnet8", "plain8"}
    assert list(top["resnet8"].customdata) == names and list(top["resnet8"].y) == stds
    assert list(bottom["resnet8"].y) == [1.0, 0.9, 0.5, 0.3]
    assert list(bottom["resnet8"].customdata) == ["conv1", "layer1.0.conv2", "layer2.0.conv1", "layer1.0.conv1"]
    assert list(bottom["plain8"].y) == [2.0, 1.8, 1.0, 0.6]
    assert top["plain8"].line.dash == "dash"


# --- robustness --------------------------------------------------------------------------------

EMPTY_CALLS = {
    "training_curves": lambda df: plot_training_curves({"resnet20": df}, {"resnet20": df}, residual=True),
    "residual_norms": lambda df: plot_residual_norms({"resnet20": df}, residual=True),
    "residual_heatmap": lambda df: plot_residual_heatmap(df),
    "grad_heatmap": lambda df: plot_grad_flow_heatmap({"resnet20": df, "plain20": df}),
    "grad_profile": lambda df: plot_grad_flow_profile({"resnet20": df}, residual=True),
    "responses": lambda df: plot_responses({"resnet20": df}, residual=True),
}


@pytest.mark.parametrize("name", EMPTY_CALLS)
@pytest.mark.parametrize("df", [pd.DataFrame(), pd.DataFrame(columns=["step", "layer", "unit"])],
                         ids=["no-columns", "no-rows"])
def test_empty_tables_give_no_data_figure(name, df):
    fig = EMPTY_CALLS[name](df)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 0 and _shows_no_data(fig)


@pytest.mark.parametrize("function", [partial(plot_residual_norms, residual=True), plot_grad_flow_heatmap,
                                      partial(plot_grad_flow_profile, residual=True),
                                      partial(plot_responses, residual=True)])
def test_empty_mapping_gives_no_data_figure(function):
    assert _shows_no_data(function({}))
    assert _shows_no_data(plot_training_curves({}, None, residual=True))


def _log_axes(fig: go.Figure) -> set[str]:
    layout = fig.layout.to_plotly_json()
    return {key.replace("axis", "") for key, axis in layout.items()
            if key.startswith("yaxis") and axis.get("type") == "log"}


def test_log_axes_never_get_non_positive_or_nan_values():
    bad = [0.0, -1.0, np.nan]
    norms = _norms(False, steps=(1,))
    norms.loc[:2, ["residual_norm", "shortcut_norm", "ratio"]] = np.array([bad] * 3).T
    grad = _grad(dict.fromkeys(LAYERS, 1.0), steps=(0,))
    grad.loc[:2, "grad_norm"] = bad
    metrics = _metrics([0, 1, 2, 3], [0.0, np.nan, 1.0, -2.0], [0.5, np.nan, 0.7, 0.8])
    figs = [plot_residual_norms({"resnet8": norms}, residual=True),
            plot_grad_flow_profile({"resnet8": grad}, residual=True),
            plot_training_curves({"resnet8": metrics}, residual=True)]
    checked = 0
    for fig in figs:
        log_axes = _log_axes(fig)
        assert log_axes
        for trace in fig.data:
            if (trace.yaxis or "y") in log_axes:
                y = np.asarray(trace.y, dtype=float)
                assert np.all(np.isfinite(y)) and np.all(y > 0), (trace.name, y)
                checked += 1
    assert checked >= 5
    assert list(figs[2].data[0].y) == [1.0]  # only the one positive loss survives
    heat = plot_grad_flow_heatmap({"resnet8": grad}).data[0]
    z = np.asarray(heat.z, dtype=float)
    assert not np.isinf(z).any() and np.isnan(z).sum() == 3  # 0, -1 and NaN are blank cells


def test_single_step_and_missing_column():
    fig = plot_residual_heatmap(_norms(False, steps=(7,)), value="residual_norm")
    assert np.asarray(fig.data[0].z).shape == (4, 1)
    assert np.isfinite(fig.data[0].zmin) and fig.data[0].zmin < fig.data[0].zmax
    with pytest.raises(ValueError, match="grad_norm"):
        plot_grad_flow_profile({"resnet8": pd.DataFrame({"step": [0], "layer": ["fc"]})}, residual=True)


# --- run styles: from the runs' specs, never from their labels ---------------------------------

def test_styles_come_from_residual_and_depth_not_from_labels():
    metrics = {label: _metrics([0, 10], [2.0, 1.0], [0.1, 0.5]) for label in ("plain20", "resnet20", "run a")}
    fig = plot_training_curves(metrics, residual={"plain20": True, "resnet20": False, "run a": False},
                               depth={"plain20": 56, "resnet20": 20, "run a": 56})
    loss = {t.name: t for t in _panel(fig, "y")}
    assert loss["plain20"].line.dash == "solid" and loss["resnet20"].line.dash == "dash"
    assert loss["plain20"].line.color == loss["run a"].line.color != loss["resnet20"].line.color
    norms = plot_residual_norms({"plain8": _norms(False)}, residual={"plain8": True})
    assert [t.name for t in norms.data] == ["plain8", "plain8: ||x||", "plain8"]  # ||F(x)||, ||x||, ratio
    without_depth = plot_training_curves(metrics, residual=True)  # each run its own hue, all solid
    lines = [t.line for t in _panel(without_depth, "y")]
    assert len({line.color for line in lines}) == 3 and {line.dash for line in lines} == {"solid"}


def test_repeats_of_one_depth_and_kind_get_lighter_shades():
    labels = ("resnet20 (a)", "resnet20 (b)", "plain20")
    fig = plot_grad_flow_profile({label: _grad({"conv1": 1.0, "fc": 2.0}) for label in labels},
                                 residual={"resnet20 (a)": True, "resnet20 (b)": True, "plain20": False},
                                 depth=dict.fromkeys(labels, 20))
    first, second, plain = (t.line.color for t in fig.data)
    assert first == plain != second  # the plain twin shares the hue; the second residual run is lighter
    assert sum(int(second[i:i + 2], 16) for i in (1, 3, 5)) > sum(int(first[i:i + 2], 16) for i in (1, 3, 5))


@pytest.mark.parametrize("call", [
    lambda: plot_training_curves({"a": _metrics([0, 1], [1.0, 0.5], [0.1, 0.2])}, residual={"b": True}),
    lambda: plot_residual_norms({"a": _norms(False)}, residual={}),
    lambda: plot_grad_flow_profile({"a": _grad({"conv1": 1.0})}, residual={"b": False}),
    lambda: plot_responses({"a": pd.DataFrame({"step": [1], "layer": ["conv1"], "std": [1.0]})}, residual={}),
])
def test_a_run_missing_from_residual_is_an_error(call):
    with pytest.raises(ValueError, match="residual has no entry for run 'a'"):
        call()


# --- log axes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("low, high, expected", [
    (0.3, 0.9, ["0.4", "0.6", "0.8"]),  # under a decade: round, evenly spaced values
    (1.2, 1.9, ["1.2", "1.4", "1.6", "1.8"]),
    (0.05, 0.9, ["0.05", "0.1", "0.2", "0.5", "1"]),  # 1-2 decades: decades, 2 and 5
    (0.02, 3.0, ["0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"]),
    (1e-5, 2.0, ["1e-5", "0.0001", "0.001", "0.01", "0.1", "1"]),  # over 3 decades: decades only
    (2.5, 2.5, ["2.5"]),
])
def test_log_axis_labels_decades_and_2_5_never_bare_digits(low, high, expected):
    import re

    from resnet_explorer.plots.style import log_axis

    fig = go.Figure(go.Scatter(x=[0, 1], y=[low, high]))
    axis = log_axis(fig, "y")
    assert axis["type"] == "log" and axis["tickmode"] == "array"
    assert list(axis["ticktext"]) == expected
    assert [float(t) for t in axis["ticktext"]] == pytest.approx(list(axis["tickvals"]))
    for value, text in zip(axis["tickvals"], axis["ticktext"]):
        assert low * 0.8 <= value <= high * 1.25
        mantissa = float(re.sub("e.*", "", f"{value:e}"))
        if len(expected) > 1 and high / low >= 10:
            assert round(mantissa, 9) in (1, 2, 5), text
    assert "minor" not in axis


def test_log_axis_on_a_very_wide_span_keeps_ten_ticks_or_fewer():
    from resnet_explorer.plots.style import log_axis

    axis = log_axis(go.Figure(go.Scatter(y=[3e-8, 2e7])), "y")
    assert 5 <= len(axis["tickvals"]) <= 10
    assert all(round(math.log10(v), 9).is_integer() for v in axis["tickvals"])  # whole decades


def test_figures_log_axes_carry_their_own_ticks():
    fig = plot_training_curves({"a": _metrics([1, 2, 3], [2.0, 0.5, 0.01], [0.1, 0.2, 0.3])}, residual=True)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.tickmode == "array"
    assert list(fig.layout.yaxis.ticktext) == ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"]


def test_curves_mention_held_out_markers_only_when_they_are_drawn():
    metrics = pd.DataFrame({"step": [10, 20], "epoch": [0.1, 0.2], "loss": [2.0, 1.0], "accuracy": [0.1, 0.5]})
    evals = pd.DataFrame({"step": [20], "epoch": [0.2], "loss": [1.5], "accuracy": [0.4], "images": [100]})
    without = plot_training_curves({"a": metrics}, None, residual={"a": True})
    drawn = plot_training_curves({"a": metrics}, {"a": evals}, residual={"a": True})
    assert "held-out" not in without.layout.title.text and "held-out" in drawn.layout.title.text
    assert not any("held-out" in (t.name or "") for t in without.data)


def test_live_loss_shows_a_lone_first_point():
    from resnet_explorer.plots import plot_live_loss
    from resnet_explorer.plots.training import LIVE_MARKERS

    one = plot_live_loss({"resnet20": [{"step": 1, "loss": 2.3}]}, residual=True)
    assert list(one.data[0].y) == [2.3] and "markers" in one.data[0].mode  # a lone line point draws nothing
    many = [{"step": s, "loss": 2.3 / s} for s in range(1, LIVE_MARKERS + 1)]
    assert plot_live_loss({"resnet20": many}, residual=True).data[0].mode == "lines"
