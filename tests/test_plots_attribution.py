"""Attribution figures and the offline PNG, built from tiny hand-made arrays; expected values by hand."""

import io
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from resnet_explorer.data import denormalize
from resnet_explorer.plots import (
    normalize_heatmap,
    plot_attribution_grid,
    plot_attribution_scores,
    render_attribution_png,
)
from resnet_explorer.plots.attribution import CELL
from resnet_explorer.plots.png import PNG_CELL, PNG_LEGEND_W, PNG_LINE, PNG_PAD

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _shows_no_data(fig: go.Figure) -> bool:
    return any("no data yet" in (a.text or "") for a in fig.layout.annotations)


def _traces(fig: go.Figure, kind: type) -> list:
    return [t for t in fig.data if isinstance(t, kind)]


def _inputs(n: int = 3, size: int = 8) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform(0, 1, (n, 3, size, size)).astype(np.float32)


# --- normalize_heatmap -------------------------------------------------------------------------

def test_normalize_heatmap_one_hot_pixel_does_not_wash_out_the_rest():
    rng = np.random.default_rng(0)
    m = rng.uniform(0.5, 1.0, (20, 20))
    m[0, 0] = 1e6
    out = normalize_heatmap(m)
    assert out[0, 0] == 1.0
    rest = np.delete(out.ravel(), 0)
    assert rest.min() >= 0.5  # divided by the 99th percentile (<= 1), not by 1e6
    assert np.median(rest) > 0.7


def test_normalize_heatmap_divides_by_the_99th_percentile_and_clips():
    m = np.arange(100, dtype=float).reshape(10, 10)
    p99 = 0.99 * 99  # numpy's linear percentile of 0..99: 98.01
    out = normalize_heatmap(m)
    assert out.dtype == np.float32
    assert out[4, 9] == pytest.approx(49 / p99, rel=1e-6)
    assert out[9, 8] == pytest.approx(98 / p99, rel=1e-6)
    assert out[9, 9] == 1.0  # 99 > p99: clipped
    assert out[0, 0] == 0.0


def test_normalize_heatmap_each_image_on_its_own_and_edge_cases():
    base = np.arange(16, dtype=float).reshape(4, 4)
    stack = np.stack([base, 1000 * base])
    out = normalize_heatmap(torch.tensor(stack))
    assert out.shape == (2, 4, 4)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)
    sparse = np.zeros((20, 20))
    sparse[3, 4] = 5.0  # 99th percentile is 0: the maximum scales instead
    assert normalize_heatmap(sparse)[3, 4] == 1.0
    assert not normalize_heatmap(np.zeros((4, 4))).any()
    signed = np.array([[-5.0, np.nan], [np.inf, 2.0]])
    np.testing.assert_array_equal(normalize_heatmap(signed), [[0, 0], [0, 1]])


# --- plot_attribution_grid ---------------------------------------------------------------------

def test_grid_structure_titles_and_one_colourbar():
    images = _inputs(3)
    heat = {"saliency": np.random.default_rng(2).uniform(0, 1, (3, 8, 8)), "ig": np.ones((3, 8, 8))}
    fig = plot_attribution_grid(images, heat, row_titles=["pred disk 0.93 (true disk)", "b", "c"],
                                method_labels={"ig": "integrated gradients"},
                                cell_notes={"saliency": ["mask 0.62 vs 0.18 | IG delta 3e-4", "x", "y"]},
                                title="Where they look")
    assert len(_traces(fig, go.Image)) == 3 * (1 + 2)
    heatmaps = _traces(fig, go.Heatmap)
    assert len(heatmaps) == 3 * 2
    assert all(t.coloraxis == "coloraxis" for t in heatmaps)  # one shared colour bar
    assert not any(getattr(t, "showscale", False) for t in fig.data)
    assert "normalised per image" in fig.layout.coloraxis.colorbar.title.text
    assert "Where they look" in fig.layout.title.text and "Brighter = more attribution" in fig.layout.title.text
    texts = " ".join(a.text for a in fig.layout.annotations)
    for expected in ("input", "saliency", "integrated gradients", "pred disk 0.93 (true disk)",
                     "mask 0.62 vs 0.18<br>IG delta 3e-4"):
        assert expected in texts
    # the map drawn is the normalised map of its image, in reading order (image 1: saliency, ig, ...)
    np.testing.assert_allclose(np.asarray(heatmaps[0].z), normalize_heatmap(heat["saliency"][0]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(heatmaps[3].z), normalize_heatmap(heat["ig"][1]), rtol=1e-6)


def test_grid_cells_are_square_and_sized_per_cell():
    fig = plot_attribution_grid(_inputs(2), {"a": np.ones((2, 8, 8)), "b": np.ones((2, 8, 8))})
    plot_w = fig.layout.width - fig.layout.margin.l - fig.layout.margin.r
    plot_h = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    for k in ("", "2", "6"):
        x0, x1 = fig.layout[f"xaxis{k}"].domain
        y0, y1 = fig.layout[f"yaxis{k}"].domain
        assert (x1 - x0) * plot_w == pytest.approx(CELL, abs=0.5)
        assert (y1 - y0) * plot_h == pytest.approx(CELL, abs=0.5)
    taller = plot_attribution_grid(_inputs(10), {"a": np.ones((10, 8, 8))})
    assert len(_traces(taller, go.Heatmap)) == 10
    assert taller.layout.height > fig.layout.height + 7 * CELL


def test_grid_accepts_torch_and_stretches_a_coarse_map():
    images = torch.rand(2, 3, 32, 32)
    fig = plot_attribution_grid(images, {"grad-cam": torch.rand(2, 1, 8, 8)})
    heat = _traces(fig, go.Heatmap)[0]
    assert np.asarray(heat.z).shape == (8, 8)
    assert heat.dx == 4 and heat.x0 == 1.5  # 8 cells of 4 px cover pixels -0.5 .. 31.5
    big = np.zeros((1, 340, 340))
    big[0, :2, :2] = 1.0  # one 2x2 block: mean-pooled by 2 (a cell shows <= CELL values) into one full cell
    fig = plot_attribution_grid(torch.rand(1, 3, 340, 340), {"a": big})
    heat = _traces(fig, go.Heatmap)[0]
    z = np.asarray(heat.z)
    assert z.shape == (170, 170) and z[0, 0] == 1 and z.sum() == 1
    assert heat.dx == 2 and heat.x0 == 0.5


def test_grid_wide_images_get_wide_cells():
    fig = plot_attribution_grid(torch.rand(1, 3, 16, 32), {"a": torch.rand(1, 16, 32)})
    plot_w = fig.layout.width - fig.layout.margin.l - fig.layout.margin.r
    plot_h = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    x0, x1 = fig.layout.xaxis.domain
    assert (x1 - x0) * plot_w == pytest.approx(CELL, abs=0.5) and plot_h == CELL / 2


def test_grid_mask_outline_follows_the_mask_edge():
    images = _inputs(2, size=4)
    masks = np.zeros((2, 4, 4), bool)
    masks[:, 1:3, 1:3] = True  # a 2x2 square: its outline runs along x, y = 0.5 and 2.5
    fig = plot_attribution_grid(images, {"a": np.ones((2, 4, 4))}, masks=masks)
    outlines = [t for t in _traces(fig, go.Scatter) if t.name == "object mask"]
    assert len(outlines) == 2 * 2  # every cell of every row
    xs = [x for x in outlines[0].x if x is not None]
    ys = [y for y in outlines[0].y if y is not None]
    assert set(xs) == {0.5, 2.5} and set(ys) == {0.5, 2.5}
    length = sum(math.dist((x0, y0), (x1, y1)) for x0, y0, x1, y1 in zip(
        outlines[0].x[0::3], outlines[0].y[0::3], outlines[0].x[1::3], outlines[0].y[1::3], strict=True))
    assert length == 8  # the square's perimeter in pixels
    assert "object mask" in fig.layout.title.text
    plain = plot_attribution_grid(images, {"a": np.ones((2, 4, 4))})
    assert not [t for t in _traces(plain, go.Scatter) if t.name == "object mask"]


def test_grid_without_data_says_so_and_rejects_mismatched_shapes():
    assert _shows_no_data(plot_attribution_grid(None, {"a": np.ones((1, 4, 4))}))
    assert _shows_no_data(plot_attribution_grid(np.zeros((0, 3, 4, 4)), {"a": np.zeros((0, 4, 4))}))
    assert _shows_no_data(plot_attribution_grid(_inputs(1), {}))
    with pytest.raises(ValueError, match="N = 2"):
        plot_attribution_grid(_inputs(2), {"a": np.ones((3, 8, 8))})
    with pytest.raises(ValueError, match="masks"):
        plot_attribution_grid(_inputs(2), {"a": np.ones((2, 8, 8))}, masks=np.ones((2, 4, 4), bool))


# --- plot_attribution_scores -------------------------------------------------------------------

SCORES = [
    {"run": "resnet20", "method": "saliency", "mask_share": 0.6, "mask_area": 0.2, "sanity_spearman": 0.1},
    {"run": "resnet20", "method": "ig", "mask_share": 0.7, "mask_area": 0.2, "sanity_spearman": -0.2},
    {"run": "plain20", "method": "saliency", "mask_share": 0.4, "mask_area": 0.2, "sanity_spearman": 0.5},
    {"run": "plain20", "method": "ig", "mask_share": math.nan, "mask_area": 0.2, "sanity_spearman": 0.8},
]


RESIDUAL = {"resnet20": True, "plain20": False}


def test_scores_one_bar_per_run_per_panel_with_values():
    fig = plot_attribution_scores(SCORES, residual=RESIDUAL)
    left = [t for t in _traces(fig, go.Bar) if (t.xaxis or "x") == "x"]
    right = [t for t in _traces(fig, go.Bar) if t.xaxis == "x2"]
    assert [t.name for t in left] == ["resnet20", "plain20"] == [t.name for t in right]
    assert list(left[0].x) == ["saliency", "ig"]
    assert list(left[0].y) == [0.6, 0.7] and list(right[0].y) == [0.1, -0.2]
    assert list(left[1].y) == [0.4, None]  # NaN leaves a gap
    assert left[0].marker.pattern.shape == "" and left[1].marker.pattern.shape == "/"  # plain is hatched
    assert tuple(fig.layout.yaxis2.range)[0] == pytest.approx(-1.05)  # a negative correlation: room below 0
    assert "Adebayo" in fig.layout.title.text
    area = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    assert len(area) == 1 and area[0].y0 == area[0].y1 == 0.2


def test_scores_hatch_the_runs_residual_says_are_plain_whatever_their_labels():
    fig = plot_attribution_scores(SCORES, residual={"resnet20": False, "plain20": True})
    left = [t for t in _traces(fig, go.Bar) if (t.xaxis or "x") == "x"]
    assert [t.marker.pattern.shape for t in left] == ["/", ""]
    with pytest.raises(ValueError, match="residual has no entry for run 'plain20'"):
        plot_attribution_scores(SCORES, residual={"resnet20": True})


def test_scores_varying_mask_area_gets_a_tick_per_bar_and_positive_range():
    rows = [dict(r, mask_area=0.1 + 0.1 * k, sanity_spearman=abs(r["sanity_spearman"])) for k, r in enumerate(SCORES)]
    fig = plot_attribution_scores(rows, residual=RESIDUAL)
    ticks = [t for t in _traces(fig, go.Scatter) if t.name.startswith("mask area")]
    assert [t.offsetgroup for t in ticks] == ["resnet20", "plain20"]
    np.testing.assert_allclose(list(ticks[1].y), [0.3, 0.4])
    assert tuple(fig.layout.yaxis2.range)[0] == 0
    assert not [s for s in fig.layout.shapes if s.line.dash == "dash"]


def test_scores_without_data_says_so():
    assert _shows_no_data(plot_attribution_scores([], residual={}))
    nan = [{"run": "a", "method": "m", "mask_share": math.nan, "mask_area": 0.1, "sanity_spearman": math.nan}]
    assert _shows_no_data(plot_attribution_scores(nan, residual={"a": True}))


# --- render_attribution_png --------------------------------------------------------------------

def _decode(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_png_size_matches_the_promised_grid():
    n = 3
    images = np.full((n, 3, 32, 32), 0.4, np.float32)
    width = 3 * PNG_PAD + 2 * PNG_CELL + PNG_LEGEND_W
    bare = _decode(render_attribution_png(images, np.ones((n, 32, 32))))
    assert bare.shape == (PNG_PAD + PNG_LINE + n * (PNG_CELL + PNG_PAD), width, 3)
    titled = _decode(render_attribution_png(images, np.ones((n, 32, 32)), title="saliency",
                                            row_titles=["a", "b", "c"]))
    assert titled.shape == (PNG_PAD + 2 * PNG_LINE + n * (PNG_LINE + PNG_CELL + PNG_PAD), width, 3)


def test_png_overlay_is_bright_where_the_map_is_hot_and_the_input_is_upscaled():
    images = np.full((1, 3, 32, 32), 0.4, np.float32)
    images[0, :, 0, 0] = (1.0, 0.0, 0.0)  # one red pixel: a 4x4 block after nearest-neighbour upscaling
    heat = np.zeros((1, 32, 32))
    heat[0, :, :16] = 1.0  # left half hot
    pixels = _decode(render_attribution_png(images, heat))
    top = PNG_PAD + PNG_LINE
    left_input, left_heat = PNG_PAD, 2 * PNG_PAD + PNG_CELL
    np.testing.assert_array_equal(pixels[top:top + 4, left_input:left_input + 4], np.full((4, 4, 3), [255, 0, 0]))
    assert tuple(pixels[top + 4, left_input + 4]) == (102, 102, 102)  # 0.4 gray, unchanged
    # overlay = 0.4 * gray + 0.6 * inferno: inferno(1) = #fcffa4, inferno(0) = #000004
    hot = pixels[top + 64, left_heat + 32]
    cold = pixels[top + 64, left_heat + 96]
    np.testing.assert_allclose(hot, 0.4 * 102 + 0.6 * np.array([252, 255, 164]), atol=1.01)
    np.testing.assert_allclose(cold, 0.4 * 102 + 0.6 * np.array([0, 0, 4]), atol=1.01)
    assert hot.sum() - cold.sum() > 300


def test_png_draws_the_mask_outline_in_cyan():
    images = np.full((1, 3, 8, 8), 0.4, np.float32)
    masks = np.zeros((1, 8, 8), bool)
    masks[0, 2:6, 2:6] = True
    cyan = np.array([0x00, 0xE5, 0xFF])
    with_mask = _decode(render_attribution_png(images, np.ones((1, 8, 8)), masks=masks))
    without = _decode(render_attribution_png(images, np.ones((1, 8, 8))))
    top = PNG_PAD + PNG_LINE
    for left in (PNG_PAD, 2 * PNG_PAD + PNG_CELL):  # the input cell, then the overlay
        cell = with_mask[top:top + PNG_CELL, left:left + PNG_CELL]
        is_cyan = (cell == cyan).all(axis=-1)  # the mask covers px 32..95 of the 128 px cell (8x8 scaled 16x)
        assert is_cyan[32, 32:96].all() and is_cyan[95, 32:96].all() and is_cyan[32:96, 32].all()
        assert not is_cyan[33:95, 33:95].any()  # an outline, not a fill
        assert not is_cyan[:32].any() and not is_cyan[96:].any()
    assert not (without == cyan).all(axis=-1).any()


# --- denormalize -------------------------------------------------------------------------------

def test_denormalize_inverts_normalisation_within_one_level():
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, (2, 3, 6, 6)).astype(np.float32)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    m, s = np.array(mean)[:, None, None], np.array(std)[:, None, None]
    normalised = torch.tensor((raw / 255 - m) / s, dtype=torch.float32)
    back = denormalize(normalised, mean, std)
    assert isinstance(back, torch.Tensor) and back.shape == (2, 3, 6, 6)
    assert (back - torch.tensor(raw / 255)).abs().max() <= 1 / 255
    single = denormalize(normalised[0].numpy(), mean, std)  # (C, H, W), numpy in
    assert single.shape == (3, 6, 6)
    assert torch.allclose(single, back[0])


def test_denormalize_clips_repeats_grayscale_and_checks_lengths():
    out = denormalize(torch.tensor([[[[-10.0, 10.0]]]]), 0.5, 0.25)  # (1, 1, 1, 2): far outside [0, 1]
    assert out.shape == (1, 3, 1, 2)
    assert torch.equal(out[0, :, 0, 0], torch.zeros(3)) and torch.equal(out[0, :, 0, 1], torch.ones(3))
    assert torch.allclose(denormalize(torch.zeros(1, 2, 2), (0.3,), (0.2,)), torch.full((3, 2, 2), 0.3))
    with pytest.raises(ValueError, match="per channel"):
        denormalize(torch.zeros(1, 3, 2, 2), (0.5, 0.5), (0.2, 0.2))
    with pytest.raises(ValueError, match="std > 0"):
        denormalize(torch.zeros(3, 2, 2), 0.5, 0.0)


def test_grid_six_method_headers_never_overlap_and_keep_their_full_name_in_hover():
    import re

    from resnet_explorer.plots.attribution import HEADER_FONT

    labels = {"saliency": "Saliency", "integrated_gradients": "Integrated Gradients", "smoothgrad": "SmoothGrad",
              "gradcam": "Grad-CAM", "occlusion": "Occlusion", "deeplift": "DeepLift"}
    heat = {m: np.ones((8, 32, 32)) for m in labels}
    notes = {m: ["plus 0.93 | mask 0.62 vs 0.18 | delta 3.1e-04 | sanity 0.12"] * 8 for m in labels}
    fig = plot_attribution_grid(_inputs(8, 32), heat, method_labels=labels, cell_notes=notes,
                                row_titles=[f"test #{i} (true plus)" for i in range(8)])
    plot_w = fig.layout.width - fig.layout.margin.l - fig.layout.margin.r
    headers = sorted((a for a in fig.layout.annotations if (a.name or "").startswith("header")), key=lambda a: a.x)
    assert [a.hovertext for a in headers] == ["input", *labels.values()]
    assert headers[0].font.size == HEADER_FONT == 14

    def width_px(text: str) -> float:  # ~7 px per character at 12 px, scaled to the header's font size
        return max(len(re.sub("<[^>]+>", "", line)) for line in text.split("<br>")) * 7 * HEADER_FONT / 12

    for left, right in zip(headers, headers[1:]):
        gap = (right.x - left.x) * plot_w  # centre to centre, in px of the figure as drawn
        assert gap >= (width_px(left.text) + width_px(right.text)) / 2 + 4, (left.text, right.text)
    # notes under neighbouring cells do not run into each other either (12 px type, ~6.5 px per character)
    note = next(a for a in fig.layout.annotations if "mask" in (a.text or ""))
    assert max(len(line) for line in note.text.split("<br>")) * 6.5 <= CELL + 16


def test_grid_title_claims_no_comparison_it_cannot_see():
    """One net's maps (or one method's over two nets): the title says what the colours and outline mean, and names
    no plain-vs-residual comparison that the grid alone cannot know it shows."""
    masks = np.zeros((2, 8, 8), dtype=bool)
    for heat in ({"a": np.ones((2, 8, 8))}, {"a": np.ones((2, 8, 8)), "b": np.ones((2, 8, 8))}):
        title = plot_attribution_grid(_inputs(2), heat, masks=masks).layout.title.text
        assert "plain and residual" not in title and "Compare" not in title
        assert "Cyan outline: the object mask." in title
