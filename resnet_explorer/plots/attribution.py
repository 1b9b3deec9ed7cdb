"""Attribution figures: heat-maps over the inputs, their scores, and an offline PNG of the same grid.

Every map is scaled per image by its own 99th percentile and clipped to [0, 1] (`normalize_heatmap`),
so one hot pixel does not wash out the rest and methods of very different scales share one colour
bar. The colour map is inferno (dark = none, bright = most), drawn semi-transparently over the input
in grayscale. `render_attribution_png` draws the same picture with PIL and numpy only, for the CLI.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots

from .training import NO_DATA, apply_layout, is_plain_label, lighten, no_data_figure, run_styles

PERCENTILE = 99.0  # each map is divided by this percentile of itself, then clipped to [0, 1]
# Matplotlib's inferno sampled at 10 even steps (the same list as plotly's "Inferno"): perceptually
# uniform and dark at zero, so "brighter = more attribution" holds in colour and in grayscale.
INFERNO = ("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d",
           "#fcffa4")
OVERLAY_ALPHA = 0.6  # heat-map opacity over the grayscale input, in the figure and in the PNG
MASK_COLOUR = "#00e5ff"  # cyan: absent from inferno, so the outline reads over any heat
CELL = 170  # px per grid cell in the figure
GAP_X = 16  # px between columns
GAP_Y = 14  # px between one row's notes and the next row's title
ROW_TITLE_H = 22  # px above a row for its title
NOTE_LINE_H = 15  # px per line of cell notes
NOTE_CHARS = 26  # characters per note line (about CELL px at 12 px type)
TITLE_H = 100  # px for the figure title and its two subtitle lines
COLUMN_TITLE_LINE_H = 18  # px per line of a column title (bold 14 px)
COLUMN_CHARS = 20  # characters per column-title line (about CELL px)
MIN_WIDTH = 680  # px; narrower figures clip the subtitle (cells keep their size, the right margin grows)
COLOURBAR_W = 110
# PNG layout (render_attribution_png), all in px: width = 3 * PNG_PAD + 2 * cell + PNG_LEGEND_W;
# height = PNG_PAD + PNG_LINE * (title lines + 1 header line) + per row (PNG_LINE if row titles) + cell + PNG_PAD.
PNG_CELL = 128  # the longer side of each cell; 32x32 inputs are upscaled 4x, nearest neighbour
PNG_PAD = 8
PNG_LINE = 18
PNG_LEGEND_W = 48
PNG_FONT_SIZE = 13
SCORES_WIDTH = 1050  # px; a container width overrides it in the app

ArrayLike = np.ndarray | torch.Tensor | Sequence


# --- arrays ------------------------------------------------------------------------------------

def _numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def _images(images: ArrayLike | None) -> np.ndarray | None:
    """(N, 3, H, W) or (N, 1, H, W) -> (N, H, W, 3) float32 in [0, 1]; None when there are no images."""
    if images is None:
        return None
    x = _numpy(images)
    if x.size == 0:
        return None
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 3, H, W) or (N, 1, H, W), got shape {tuple(x.shape)}")
    x = np.nan_to_num(x, nan=0.0)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return np.clip(x, 0.0, 1.0).transpose(0, 2, 3, 1)


def _maps(heatmap: ArrayLike, n: int, name: str) -> np.ndarray:
    """(N, h, w) or (N, 1, h, w) -> normalised (N, h, w); h, w may differ from the image (e.g. Grad-CAM)."""
    m = _numpy(heatmap)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3 or m.shape[0] != n:
        raise ValueError(f"heat-map {name!r} must be (N, H, W) with N = {n} images, got shape {tuple(m.shape)}")
    return normalize_heatmap(m)


def _masks(masks: ArrayLike | None, n: int, height: int, width: int) -> np.ndarray | None:
    if masks is None:
        return None
    m = _numpy(masks)
    if m.shape != (n, height, width):
        raise ValueError(f"masks must be (N, H, W) = {(n, height, width)} like the images, got {tuple(m.shape)}")
    return m > 0.5


def normalize_heatmap(m: ArrayLike) -> np.ndarray:
    """Scale a map to [0, 1] by its 99th percentile, clipped, so one hot pixel cannot wash out the rest.

    Negative and non-finite values count as 0 (pass |m| for signed methods). A map whose 99th
    percentile is 0 (fewer than 1% non-zero pixels) is scaled by its maximum instead; an all-zero
    map stays zero.

    Args:
        m: (H, W) one map, or (N, H, W) maps, each normalised on its own.

    Returns:
        float32 array of the same shape, values in [0, 1].
    """
    m = np.nan_to_num(_numpy(m).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if m.ndim not in (2, 3):
        raise ValueError(f"normalize_heatmap takes (H, W) or (N, H, W), got shape {m.shape}")
    single = m.ndim == 2
    m = np.maximum(m[None] if single else m, 0.0)
    flat = m.reshape(len(m), -1)
    scale = np.percentile(flat, PERCENTILE, axis=1) if flat.shape[1] else np.zeros(len(m))
    scale = np.where(scale > 0, scale, flat.max(axis=1, initial=0.0))
    out = np.divide(m, scale[:, None, None], out=np.zeros_like(m), where=scale[:, None, None] > 0)
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    return out[0] if single else out


def denormalize(images: ArrayLike, mean: float | Sequence[float], std: float | Sequence[float]) -> torch.Tensor:
    """Undo `(x / 255 - mean) / std`: back to [0, 1] floats for display, clipped.

    Args:
        images: (N, C, H, W) or (C, H, W) normalised images (tensor or array).
        mean: C values in [0, 1] units, or one value for every channel.
        std: C positive values in [0, 1] units, or one value.

    Returns:
        float32 tensor on the input's device, (N, 3, H, W) or (3, H, W) when C is 1 (grayscale is
        repeated so every display path sees RGB), else the input's shape.

    Raises:
        ValueError: wrong rank, or mean/std lengths that match neither C nor 1, or std <= 0.
    """
    x = images.detach().float() if isinstance(images, torch.Tensor) else torch.as_tensor(
        np.asarray(images, dtype=np.float32))
    if x.ndim not in (3, 4):
        raise ValueError(f"denormalize takes (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    channels = x.shape[-3]
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1)
    if len(m) not in (1, channels) or len(s) not in (1, channels):
        raise ValueError(f"denormalize needs one mean and one std per channel ({channels}) or one for all, "
                         f"got {len(m)} and {len(s)}")
    if bool((s <= 0).any()):
        raise ValueError(f"denormalize needs every std > 0, got {s.tolist()}")
    out = (x * s.view(-1, 1, 1) + m.view(-1, 1, 1)).clamp(0.0, 1.0)
    if channels == 1:
        out = out.repeat_interleave(3, dim=-3)
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) -> (...) luma (ITU-R 601): under the heat-map, its colour is the only colour left."""
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _grayscale(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3) luma repeated."""
    return np.repeat(_luma(rgb)[..., None], 3, axis=-1)


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


_INFERNO_RGB = np.array([_hex_rgb(c) for c in INFERNO], dtype=np.float32) / 255.0  # (K, 3)


def _inferno(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> (..., 3) RGB in [0, 1], linear between the INFERNO anchors."""
    pos = np.clip(values, 0.0, 1.0) * (len(_INFERNO_RGB) - 1)
    lo = np.minimum(np.floor(pos).astype(int), len(_INFERNO_RGB) - 2)
    frac = (pos - lo)[..., None]
    return _INFERNO_RGB[lo] * (1 - frac) + _INFERNO_RGB[lo + 1] * frac


def _resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, ...) -> (height, width, ...) by nearest neighbour (keeps pixels crisp, any factor)."""
    rows = np.arange(height) * a.shape[0] // height
    cols = np.arange(width) * a.shape[1] // width
    return a[rows][:, cols]


def _overlay(rgb: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """(H, W, 3) input and (H, W) normalised map -> the grayscale input under the inferno map."""
    return (1 - OVERLAY_ALPHA) * _grayscale(rgb) + OVERLAY_ALPHA * _inferno(heat)


def _outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> the mask's pixels with a 4-neighbour outside the mask (the image border counts)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _outline_segments(mask: np.ndarray) -> tuple[list, list]:
    """Pixel-edge outline of a (H, W) mask as one line trace's x, y (None between runs), pixel centres at ints."""
    xs: list = []
    ys: list = []
    padded = np.pad(mask, 1, constant_values=False)
    vertical = padded[1:-1, :-1] != padded[1:-1, 1:]  # (H, W+1): edge left of column j
    horizontal = padded[:-1, 1:-1] != padded[1:, 1:-1]  # (H+1, W): edge above row i

    def runs(line: np.ndarray) -> list[tuple[int, int]]:
        edges = np.diff(np.concatenate([[0], line.astype(np.int8), [0]]))
        return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))

    for j in range(vertical.shape[1]):
        for start, stop in runs(vertical[:, j]):
            xs += [j - 0.5, j - 0.5, None]
            ys += [start - 0.5, stop - 0.5, None]
    for i in range(horizontal.shape[0]):
        for start, stop in runs(horizontal[i]):
            xs += [start - 0.5, stop - 0.5, None]
            ys += [i - 0.5, i - 0.5, None]
    return xs, ys


def _png_uri(pixels: np.ndarray) -> str:
    """(H, W, 3) or (H, W) floats in [0, 1] -> a PNG data URI (far smaller than pixel lists in the JSON)."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(pixels * 255).astype(np.uint8), "RGB" if pixels.ndim == 3 else "L").save(
        buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pool(m: np.ndarray, limit: int = CELL) -> tuple[np.ndarray, int]:
    """(N, h, w) maps mean-pooled by the smallest whole factor that brings both sides to <= `limit`, and
    the factor: a cell cannot show more, and 224x224 maps of 8 images x 6 methods would otherwise put
    ~10 MB of floats into the figure."""
    factor = math.ceil(max(m.shape[1:]) / limit)
    if factor <= 1:
        return m, 1
    n, h, w = m.shape
    h, w = h - h % factor, w - w % factor  # drop the last partial block (at most factor - 1 pixels)
    return m[:, :h, :w].reshape(n, h // factor, factor, w // factor, factor).mean(axis=(2, 4)), factor


def _wrap_note(text: str) -> list[str]:
    """'mask 0.62 vs 0.18 | IG delta 3e-4' -> one line per ' | ' part, long parts wrapped to NOTE_CHARS."""
    lines = []
    for part in str(text).split(" | "):
        lines += textwrap.wrap(part, NOTE_CHARS) or [""]
    return lines


# --- the grid figure ---------------------------------------------------------------------------

def plot_attribution_grid(images: ArrayLike | None, heatmaps: Mapping[str, ArrayLike] | None, *,
                          row_titles: Sequence[str] | None = None, masks: ArrayLike | None = None,
                          method_labels: Mapping[str, str] | None = None,
                          cell_notes: Mapping[str, Sequence[str]] | None = None, title: str = "") -> go.Figure:
    """Inputs and their attribution maps: one row per image, one column per method.

    The first column is the input (with the object mask's outline when `masks` is given); each
    further column is the input in grayscale under that method's map (inferno, 60% opaque), every
    map scaled to its own 99th percentile (`normalize_heatmap`), one shared colour bar. Cells are
    CELL px on their longer side; the figure grows with the number of images and methods.

    Args:
        images: (N, 3, H, W) or (N, 1, H, W) floats in [0, 1] (already denormalised).
        heatmaps: method name -> (N, h, w) non-negative maps, in column order. h, w may differ from
            H, W (a coarse Grad-CAM map is stretched over the image, blocky).
        row_titles: N strings, e.g. "pred disk 0.93 (true disk)", written above each row.
        masks: (N, H, W) bool object masks; their outline is drawn in cyan on every cell.
        method_labels: method name -> column title (default: the name).
        cell_notes: method name -> N short strings written under that method's cells; " | " starts
            a new line.
        title: figure title; empty gives a default.

    Raises:
        ValueError: shapes that do not match (N must agree everywhere; masks must be (N, H, W)).
    """
    title = title or "Attribution maps: where each net looks"
    rgb = _images(images)
    if rgb is None or not heatmaps:
        return no_data_figure(title)
    n, height, width, _ = rgb.shape
    maps = {name: _maps(m, n, name) for name, m in heatmaps.items()}
    mask = _masks(masks, n, height, width)
    method_labels = method_labels or {}
    cell_notes = cell_notes or {}
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"row_titles needs one string per image ({n}), got {len(row_titles)}")
    cols = 1 + len(maps)

    notes = {name: [_wrap_note(cell_notes[name][i]) if i < len(cell_notes[name]) and cell_notes[name][i] else []
                    for i in range(n)] for name in maps if cell_notes.get(name) is not None}
    note_lines = max((len(lines) for per in notes.values() for lines in per), default=0)
    notes_h = note_lines * NOTE_LINE_H + 6 if note_lines else 0
    row_title_h = ROW_TITLE_H if row_titles is not None else 0
    gap_y = notes_h + GAP_Y + row_title_h
    cell_w, cell_h = (round(CELL * side / max(height, width)) for side in (width, height))  # longer side CELL
    plot_w = cols * cell_w + (cols - 1) * GAP_X
    plot_h = n * cell_h + (n - 1) * gap_y
    column_titles = [textwrap.wrap(text, COLUMN_CHARS) or [""]
                     for text in ("input", *(str(method_labels.get(name, name)) for name in maps))]
    top = TITLE_H + COLUMN_TITLE_LINE_H * max(len(lines) for lines in column_titles) + 6 + row_title_h
    bottom = notes_h + 16
    fig_w = max(MIN_WIDTH, 20 + plot_w + COLOURBAR_W)
    fig = make_subplots(rows=n, cols=cols, horizontal_spacing=GAP_X / plot_w if cols > 1 else 0,
                        vertical_spacing=gap_y / plot_h if n > 1 else 0)

    gray = _luma(rgb)  # (N, H, W)
    outlines = [_outline_segments(mask[i]) for i in range(n)] if mask is not None else None
    colourscale = [[k / (len(INFERNO) - 1), c] for k, c in enumerate(INFERNO)]
    for i in range(n):
        fig.add_trace(go.Image(source=_png_uri(rgb[i]), name=f"input {i + 1}", hoverinfo="x+y"), row=i + 1, col=1)
        gray_uri = _png_uri(gray[i])
        for c, (name, m) in enumerate(maps.items(), start=2):
            label = method_labels.get(name, name)
            h, w = m.shape[1:]
            z, factor = _pool(m[i:i + 1])
            dx, dy = factor * width / w, factor * height / h  # a coarse map is stretched over the image
            fig.add_trace(go.Image(source=gray_uri, name=f"input {i + 1} (grayscale)", hoverinfo="skip"),
                          row=i + 1, col=c)
            fig.add_trace(go.Heatmap(
                z=z[0], x0=dx / 2 - 0.5, dx=dx, y0=dy / 2 - 0.5, dy=dy, coloraxis="coloraxis",
                opacity=OVERLAY_ALPHA, name=label,
                hovertemplate=f"{label}, image {i + 1}<br>x %{{x:.0f}}, y %{{y:.0f}}<br>"
                              "attribution %{z:.2f}<extra></extra>",
            ), row=i + 1, col=c)
        if outlines is not None:
            for c in range(1, cols + 1):
                fig.add_trace(go.Scatter(
                    x=outlines[i][0], y=outlines[i][1], mode="lines", name="object mask", legendgroup="mask",
                    line=dict(color=MASK_COLOUR, width=2 if c == 1 else 1.5), hoverinfo="skip",
                    showlegend=False,
                ), row=i + 1, col=c)

    # Cell (row, col) spans these paper coordinates; annotations hang off its edges.
    def cell_left(col: int) -> float:
        return col * (cell_w + GAP_X) / plot_w

    def cell_top(row: int) -> float:
        return 1 - row * (cell_h + gap_y) / plot_h

    def cell_bottom(row: int) -> float:
        return cell_top(row) - cell_h / plot_h

    def cell_centre(col: int) -> float:
        return cell_left(col) + cell_w / 2 / plot_w

    for c, lines in enumerate(column_titles):
        fig.add_annotation(text="<br>".join(f"<b>{line}</b>" for line in lines), x=cell_centre(c), y=1,
                           xref="paper", yref="paper", xanchor="center", yanchor="bottom", yshift=row_title_h + 2,
                           showarrow=False, font=dict(size=14))
    for i in range(n):
        if row_titles is not None:
            fig.add_annotation(text=str(row_titles[i]), x=0, y=cell_top(i), xref="paper", yref="paper",
                               xanchor="left", yanchor="bottom", yshift=2, showarrow=False,
                               font=dict(size=13, color="#222"))
        for c, name in enumerate(maps, start=1):
            lines = notes.get(name, [[]] * n)[i]
            if lines:
                fig.add_annotation(text="<br>".join(lines), x=cell_centre(c), y=cell_bottom(i), xref="paper",
                                   yref="paper", xanchor="center", yanchor="top", yshift=-3, showarrow=False,
                                   font=dict(size=12, color="#333"), align="center")

    masked = "; cyan outline: the object mask" if mask is not None else ""
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>Brighter = more attribution; each map is scaled to its own 99th "
                        f"percentile.<br>Compare where plain and residual nets look{masked}.</sup>",
                   font=dict(size=18), yref="container", y=1 - 34 / (top + plot_h + bottom), yanchor="bottom",
                   x=0, xref="paper"),
        width=fig_w, height=top + plot_h + bottom, font=dict(size=13), plot_bgcolor="white", showlegend=False,
        margin=dict(l=20, r=fig_w - 20 - plot_w, t=top, b=bottom, autoexpand=False),
        coloraxis=dict(colorscale=colourscale, cmin=0, cmax=1, colorbar=dict(
            title=dict(text="attribution<br>(normalised per image)", side="right", font=dict(size=12)), thickness=14,
            lenmode="pixels", len=min(plot_h, 320), y=1, yanchor="top", x=1, xref="paper", xanchor="left",
            xpad=12, tickvals=[0, 0.5, 1], ticktext=["0", "0.5", "1 (p99)"],
        )),
    )
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, showline=True,
                     linecolor="#bbb", mirror=True, range=[-0.5, width - 0.5], constrain="domain")
    fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, showline=True,
                     linecolor="#bbb", mirror=True, range=[height - 0.5, -0.5], constrain="domain")
    for k in range(1, n * cols + 1):  # square pixels in every cell (cells are square when H == W)
        suffix = "" if k == 1 else str(k)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    return fig


# --- scores ------------------------------------------------------------------------------------

def _value(row: Mapping, key: str) -> float | None:
    """A finite float from the row, else None (a gap in the bars)."""
    try:
        value = float(row.get(key, math.nan))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def plot_attribution_scores(rows: Sequence[Mapping], title: str = "") -> go.Figure:
    """Mask share and sanity-check correlation per method, grouped by run.

    Left: share of attribution inside the object mask (higher = the map points at the object); the
    dashed line (or a black tick per bar when images differ) is the mask's area, what a map spread
    at random scores. Right: rank correlation between the maps of the trained model and of a model
    with randomised weights, the model-randomisation test of Adebayo et al. 2018 ("Sanity Checks
    for Saliency Maps"); lower is better, a value near 1 means the map ignores what the net learnt.
    Plain runs are hatched and lighter.

    Args:
        rows: dicts with "run", "method", "mask_share", "mask_area", "sanity_corr" (means over
            images; NaN or missing values leave a gap).
        title: figure title; empty gives a default.
    """
    title = title or "Attribution scores: on the object, and sensitive to the weights?"
    rows = [r for r in rows or [] if "run" in r and "method" in r]
    runs = list(dict.fromkeys(str(r["run"]) for r in rows))
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    table = {(str(r["run"]), str(r["method"])): r for r in rows}  # a repeated (run, method) keeps the last
    values = {key: [_value(table[(run, m)], key) if (run, m) in table else None for run in runs for m in methods]
              for key in ("mask_share", "mask_area", "sanity_corr")}
    if all(v is None for key in ("mask_share", "sanity_corr") for v in values[key]):
        return no_data_figure(title, NO_DATA if not rows else f"{NO_DATA}: every score is NaN")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "share of attribution in the object mask (higher = better)",
        "rank corr. with randomised weights (lower = better)"))
    fig.update_annotations(font_size=14)
    styles = run_styles(runs)
    few = len(runs) * len(methods) <= 16
    for run in runs:
        colour = styles[run]["color"]
        plain = is_plain_label(run)
        marker = dict(color=lighten(colour, 0.55) if plain else colour, line=dict(color=colour, width=1.5),
                      pattern=dict(shape="/" if plain else "", fgcolor=colour, solidity=0.3))
        for col, key, what in ((1, "mask_share", "mask share"), (2, "sanity_corr", "rank correlation")):
            y = [_value(table[(run, m)], key) if (run, m) in table else None for m in methods]
            fig.add_trace(go.Bar(
                x=methods, y=y, name=run, legendgroup=run, offsetgroup=run, marker=marker, showlegend=col == 1,
                text=[f"{v:.2f}" if v is not None else "" for v in y] if few else None, textposition="outside",
                textfont=dict(size=11), cliponaxis=False,
                hovertemplate=f"%{{x}}<br>{what} %{{y:.3f}}<extra>{run}</extra>",
            ), row=1, col=col)

    areas = [v for v in values["mask_area"] if v is not None]
    if areas and max(areas) - min(areas) < 1e-6:
        line = dict(color="#222", width=2, dash="dash")
        fig.add_hline(y=areas[0], line=line, row=1, col=1)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=f"mask area {areas[0]:.2f}<br>"
                                 "(= random map)", hoverinfo="skip"), row=1, col=1)  # the line's legend entry
    elif areas:
        for k, run in enumerate(runs):
            y = [_value(table[(run, m)], "mask_area") if (run, m) in table else None for m in methods]
            fig.add_trace(go.Scatter(
                x=methods, y=y, mode="markers", name="mask area (= random map)", legendgroup="mask area",
                offsetgroup=run, showlegend=k == 0,
                marker=dict(symbol="line-ew", size=22, line=dict(color="#222", width=3)),
                hovertemplate=f"%{{x}}<br>mask area %{{y:.3f}}<extra>{run}</extra>",
            ), row=1, col=1)

    corr = [v for v in values["sanity_corr"] if v is not None]
    apply_layout(fig, f"{title}<br><sup>Left: a useful map puts more attribution inside the object than the black line "
                 "(the mask's area, what a random map scores).<br>Right: model-randomisation test of Adebayo et al. "
                 "2018; a map that stays the same when the weights are randomised does not explain the net.</sup>",
            rows=1)
    fig.update_layout(barmode="group", scattermode="group", bargap=0.25, width=SCORES_WIDTH)
    fig.update_yaxes(range=[0, 1.08], title_text="share of attribution in the mask", row=1, col=1)
    fig.update_yaxes(range=[-1.05 if corr and min(corr) < 0 else 0, 1.08], title_text="Spearman rank correlation",
                     row=1, col=2)
    fig.update_xaxes(title_text="method")
    return fig


# --- offline PNG -------------------------------------------------------------------------------

def _font(size: int = PNG_FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: scalable
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> float:
    return draw.textlength(text, font=font)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """The text, cut with '...' to fit `width` px."""
    if _text_width(draw, text, font) <= width:
        return text
    while text and _text_width(draw, text + "...", font) > width:
        text = text[:-1]
    return text + "..."


def _wrap_px(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> list[str]:
    """Greedy word wrap to `width` px (a word longer than a line is cut)."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and _text_width(draw, candidate, font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(_fit(draw, line, font, width))
    return lines


def render_attribution_png(images: ArrayLike, heatmap: ArrayLike, *, row_titles: Sequence[str] | None = None,
                           masks: ArrayLike | None = None, title: str = "") -> bytes:
    """One method's attribution grid as PNG bytes, drawn with PIL alone (no browser): for the CLI.

    One row per image: the input | the grayscale input under the heat-map (same normalisation,
    inferno colours and opacity as `plot_attribution_grid`), each cell upscaled by nearest neighbour
    so its longer side is PNG_CELL px; a colour bar on the right; white background; text in PIL's
    default font. Layout in px, with cell = PNG_CELL for square images:
    width = 3 * PNG_PAD + 2 * cell + PNG_LEGEND_W, height = PNG_PAD + PNG_LINE * (title lines + 1)
    + N * (cell + PNG_PAD + (PNG_LINE if row_titles else 0)); the title wraps to the width.

    Args:
        images: (N, 3, H, W) or (N, 1, H, W) floats in [0, 1].
        heatmap: (N, h, w) non-negative map of one method (h, w may be coarser than H, W).
        row_titles: N strings written above each row.
        masks: (N, H, W) bool; outlined in cyan on both cells.
        title: text at the top; empty draws none.

    Returns:
        PNG file bytes.
    """
    rgb = _images(images)
    if rgb is None:
        raise ValueError("render_attribution_png needs at least one image")
    n, height, width, _ = rgb.shape
    maps = _maps(heatmap, n, "heatmap")
    mask = _masks(masks, n, height, width)
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"row_titles needs one string per image ({n}), got {len(row_titles)}")
    scale = PNG_CELL / max(height, width)
    cell_h, cell_w = max(1, round(height * scale)), max(1, round(width * scale))
    canvas_w = 3 * PNG_PAD + 2 * cell_w + PNG_LEGEND_W
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = _wrap_px(measure, title, font, canvas_w - 2 * PNG_PAD) if title else []
    row_h = cell_h + PNG_PAD + (PNG_LINE if row_titles is not None else 0)
    canvas_h = PNG_PAD + PNG_LINE * (len(title_lines) + 1) + n * row_h
    canvas = Image.new("RGB", (canvas_w, canvas_h), "white")
    draw = ImageDraw.Draw(canvas)
    y = PNG_PAD
    for line in title_lines:
        draw.text((PNG_PAD, y), line, fill="black", font=font)
        y += PNG_LINE
    x_input, x_heat = PNG_PAD, 2 * PNG_PAD + cell_w
    for x, text in ((x_input, "input"), (x_heat, "attribution")):
        draw.text((x + (cell_w - _text_width(draw, text, font)) / 2, y), text, fill="#333333", font=font)
    y += PNG_LINE
    cyan = np.array(_hex_rgb(MASK_COLOUR), dtype=np.float32) / 255.0
    bar_top = y + (PNG_LINE if row_titles is not None else 0)
    for i in range(n):
        if row_titles is not None:
            draw.text((PNG_PAD, y), _fit(draw, str(row_titles[i]), font, canvas_w - 2 * PNG_PAD), fill="black",
                      font=font)
            y += PNG_LINE
        picture = _resize_nearest(rgb[i], cell_h, cell_w)
        overlay = _overlay(picture, _resize_nearest(maps[i], cell_h, cell_w))
        if mask is not None:
            edge = _outline(_resize_nearest(mask[i], cell_h, cell_w))
            picture, overlay = picture.copy(), overlay.copy()
            picture[edge] = cyan
            overlay[edge] = cyan
        for x, cell in ((x_input, picture), (x_heat, overlay)):
            canvas.paste(Image.fromarray(np.round(np.clip(cell, 0, 1) * 255).astype(np.uint8), "RGB"), (x, y))
        y += cell_h + PNG_PAD
    # Colour bar beside the first row: 1 (the map's 99th percentile) at the top, 0 at the bottom.
    bar_x = x_heat + cell_w + PNG_PAD
    ramp = _inferno(np.linspace(1.0, 0.0, cell_h))[:, None, :].repeat(10, axis=1)
    canvas.paste(Image.fromarray(np.round(ramp * 255).astype(np.uint8), "RGB"), (bar_x, bar_top))
    draw.rectangle((bar_x - 1, bar_top - 1, bar_x + 10, bar_top + cell_h), outline="#888888")
    small = _font(PNG_FONT_SIZE - 2)
    draw.text((bar_x + 14, bar_top - 2), "1", fill="#333333", font=small)
    draw.text((bar_x + 14, bar_top + cell_h - PNG_LINE + 4), "0", fill="#333333", font=small)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
