"""Attribution figures: heat-maps over the inputs (one row per image, one column per method) and their scores.

The pixel maths (per-image 99th-percentile scaling, inferno over the grayscale input, mask outlines)
lives in `heatmap`; `png.render_attribution_png` draws the same grid offline for the CLI.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .heatmap import (
    INFERNO,
    MASK_COLOUR,
    OVERLAY_ALPHA,
    ArrayLike,
    display_images,
    display_maps,
    display_masks,
    luma,
    pool_maps,
)
from .png import png_data_uri
from .style import NO_DATA, Residual, apply_layout, is_residual, lighten, no_data_figure, run_styles

__all__ = ["CELL", "HEADER_FONT", "HEADER_PX_PER_CHAR", "SCORES_WIDTH", "plot_attribution_grid",
           "plot_attribution_scores"]

CELL = 170  # px per grid cell in the figure
GAP_X = 16  # px between columns
GAP_Y = 14  # px between one row's notes and the next row's title
ROW_TITLE_H = 22  # px above a row for its title
NOTE_LINE_H = 15  # px per line of cell notes
NOTE_PX_PER_CHAR = 6.5  # px per character of 12 px note text (generous: digits and capitals)
TITLE_H = 100  # px for the figure title and its two subtitle lines
HEADER_FONT = 14  # px, bold column titles
HEADER_PX_PER_CHAR = 8.5  # px per character of a bold HEADER_FONT title (generous, so titles never touch)
COLUMN_TITLE_LINE_H = 18  # px per line of a column title
MIN_WIDTH = 680  # px; narrower figures clip the subtitle (cells keep their size, the right margin grows)
COLOURBAR_W = 130  # px right of the cells: bar, tick labels "1 (p99)" and the two-line title beside them
SCORES_WIDTH = 1050  # px; a container width overrides it in the app


# --- helpers -----------------------------------------------------------------------------------

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


def _wrap_note(text: str, chars: int) -> list[str]:
    """'mask 0.62 vs 0.18 | IG delta 3e-4' -> one line per ' | ' part, long parts wrapped to `chars`."""
    lines = []
    for part in str(text).split(" | "):
        lines += textwrap.wrap(part, chars) or [""]
    return lines


def _header_lines(text: str, chars: int) -> list[str]:
    """A column title in at most two lines of `chars` characters; a longer title ends in '…'."""
    lines = textwrap.wrap(text, chars, break_long_words=True) or [""]
    if len(lines) > 2:
        lines = [lines[0], lines[1][:chars - 1] + "…"]
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
    rgb = display_images(images)
    if rgb is None or not heatmaps:
        return no_data_figure(title)
    n, height, width, _ = rgb.shape
    maps = {name: display_maps(m, n, name) for name, m in heatmaps.items()}
    mask = display_masks(masks, n, height, width)
    method_labels = method_labels or {}
    cell_notes = cell_notes or {}
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"row_titles needs one string per image ({n}), got {len(row_titles)}")
    cols = 1 + len(maps)
    cell_w, cell_h = (round(CELL * side / max(height, width)) for side in (width, height))  # longer side CELL
    note_chars = max(8, int((cell_w + GAP_X - 4) / NOTE_PX_PER_CHAR))
    header_chars = max(4, int((cell_w + GAP_X - 4) / HEADER_PX_PER_CHAR))

    notes = {name: [_wrap_note(cell_notes[name][i], note_chars) if i < len(cell_notes[name]) and cell_notes[name][i] else []
                    for i in range(n)] for name in maps if cell_notes.get(name) is not None}
    note_lines = max((len(lines) for per in notes.values() for lines in per), default=0)
    notes_h = note_lines * NOTE_LINE_H + 6 if note_lines else 0
    row_title_h = ROW_TITLE_H if row_titles is not None else 0
    gap_y = notes_h + GAP_Y + row_title_h
    plot_w = cols * cell_w + (cols - 1) * GAP_X
    plot_h = n * cell_h + (n - 1) * gap_y
    full_titles = ["input", *(str(method_labels.get(name, name)) for name in maps)]
    column_titles = [_header_lines(text, header_chars) for text in full_titles]
    top = TITLE_H + COLUMN_TITLE_LINE_H * max(len(lines) for lines in column_titles) + 6 + row_title_h
    bottom = notes_h + 16
    fig_w = max(MIN_WIDTH, 20 + plot_w + COLOURBAR_W)
    fig = make_subplots(rows=n, cols=cols, horizontal_spacing=GAP_X / plot_w if cols > 1 else 0,
                        vertical_spacing=gap_y / plot_h if n > 1 else 0)

    gray = luma(rgb)  # (N, H, W)
    outlines = [_outline_segments(mask[i]) for i in range(n)] if mask is not None else None
    colourscale = [[k / (len(INFERNO) - 1), c] for k, c in enumerate(INFERNO)]
    for i in range(n):
        fig.add_trace(go.Image(source=png_data_uri(rgb[i]), name=f"input {i + 1}", hoverinfo="x+y"), row=i + 1, col=1)
        gray_uri = png_data_uri(gray[i])
        for c, (name, m) in enumerate(maps.items(), start=2):
            label = method_labels.get(name, name)
            h, w = m.shape[1:]
            z, factor = pool_maps(m[i:i + 1], CELL)
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

    for c, (lines, full) in enumerate(zip(column_titles, full_titles, strict=True)):
        fig.add_annotation(text="<br>".join(f"<b>{line}</b>" for line in lines), x=cell_centre(c), y=1,
                           xref="paper", yref="paper", xanchor="center", yanchor="bottom", yshift=row_title_h + 2,
                           showarrow=False, font=dict(size=HEADER_FONT), hovertext=full, name=f"header {c}")
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

    # no "compare" sentence: the columns are methods of one net, or one method over several nets, and the plot
    # cannot tell (it once said "plain and residual nets" over a single run's maps)
    last = "<br>Cyan outline: the object mask." if mask is not None else ""
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>Brighter = more attribution; each map is scaled to its own 99th "
                        f"percentile.{last}</sup>",
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


def plot_attribution_scores(rows: Sequence[Mapping], title: str = "", *, residual: Residual,
                            depth: Mapping[str, int] | None = None) -> go.Figure:
    """Mask share and sanity-check correlation per method, grouped by run.

    Left: share of attribution inside the object mask (higher = the map points at the object); the
    dashed line (or a black tick per bar when images differ) is the mask's area, what a map spread
    at random scores. Right: rank correlation between the maps of the trained model and of a model
    with randomised weights, the model-randomisation test of Adebayo et al. 2018 ("Sanity Checks
    for Saliency Maps"); lower is better, a value near 1 means the map ignores what the net learnt.
    Plain runs are hatched and lighter.

    Args:
        rows: dicts with "run", "method", "mask_share", "mask_area", "sanity_spearman" (means over
            images; NaN or missing values leave a gap).
        title: figure title; empty gives a default.
        residual: run (the rows' "run") -> whether it is residual (its spec's `residual`), or one bool
            for every run.
        depth: run -> its spec's depth: runs of one depth share a colour.

    Raises:
        ValueError: `residual` lacks a run of the rows.
    """
    title = title or "Attribution scores: on the object, and sensitive to the weights?"
    rows = [r for r in rows or [] if "run" in r and "method" in r]
    runs = list(dict.fromkeys(str(r["run"]) for r in rows))
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    table = {(str(r["run"]), str(r["method"])): r for r in rows}  # a repeated (run, method) keeps the last
    values = {key: [_value(table[(run, m)], key) if (run, m) in table else None for run in runs for m in methods]
              for key in ("mask_share", "mask_area", "sanity_spearman")}
    if all(v is None for key in ("mask_share", "sanity_spearman") for v in values[key]):
        return no_data_figure(title, NO_DATA if not rows else f"{NO_DATA}: every score is NaN")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "share of attribution in the object mask (higher = better)",
        "rank corr. with randomised weights (lower = better)"))
    fig.update_annotations(font_size=14)
    styles = run_styles(runs, residual, depth)
    few = len(runs) * len(methods) <= 16
    for run in runs:
        colour = styles[run]["color"]
        plain = not is_residual(residual, run)
        marker = dict(color=lighten(colour, 0.55) if plain else colour, line=dict(color=colour, width=1.5),
                      pattern=dict(shape="/" if plain else "", fgcolor=colour, solidity=0.3))
        for col, key, what in ((1, "mask_share", "mask share"), (2, "sanity_spearman", "rank correlation")):
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

    corr = [v for v in values["sanity_spearman"] if v is not None]
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
