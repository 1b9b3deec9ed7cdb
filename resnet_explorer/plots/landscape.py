"""Loss-landscape figures (Li, Xu, Taylor, Studer & Goldstein 2018, Figs. 1 and 5).

Each function takes `LandscapeResult`s keyed by run label, in display order (typically a residual
net and its plain twin, measured with the same seed and so along the same directions), and returns
a plotly Figure. `residual` (label -> the run's `spec.residual`) is given, never read from a label:
plain nets are dashed (lines and contour lines), residual ones solid.

2-D figures colour, and the surfaces raise, log10 of the loss, on ONE range shared by every panel
(zmin/zmax over all runs), so equal colours are equal losses across the twins; the colour bar and
the surface's height axis are labelled in real loss values. Log, not a clipped linear scale: far
from the trained weights the loss of a plain net climbs by orders of magnitude, and clipping would
flatten exactly the part that differs. Losses are clamped at `LOSS_FLOOR` before the log.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.landscape import LandscapeResult, summarize
from ..reports.findings.lenses import landscape_clause, landscape_comparison
from .style import (
    HEATMAP_SCALE,
    ROW_HEIGHT,
    TITLE_MARGIN,
    Residual,
    apply_layout,
    is_residual,
    log_axis,
    log_ticks,
    no_data_figure,
    run_styles,
    wrap_subtitle,
)

__all__ = ["LOSS_FLOOR", "plot_landscape_1d", "plot_landscape_contours", "plot_landscape_surfaces"]

LOSS_FLOOR = 1e-6  # losses below this are coloured as this (log10 of 0 has no colour)
CONTOUR_LEVELS = 20  # contour lines over the shared log-loss range
PANEL_PX = 470  # px per 2-D panel side
# The 3-D scenes' camera, farther out than plotly's default (1.25, 1.25, 1.25): with that one the cube's corners
# and its tick labels ("100" on the height axis, shown as ".00") ran past the scene's box and were cut off.
SURFACE_EYE = dict(x=1.6, y=1.6, z=1.35)


def _kind(residual: Residual, label: str) -> str:
    return "residual" if is_residual(residual, label) else "plain"


def _compare(results: Mapping[str, LandscapeResult], residual: Residual, stats: dict[str, dict],
             classes: Mapping[str, int] | None) -> str:
    """A sentence comparing one plain and one residual net, from the numbers (`findings.lenses`); "" otherwise."""
    plain = [label for label in results if not is_residual(residual, label)]
    res = [label for label in results if is_residual(residual, label)]
    if len(plain) != 1 or len(res) != 1:
        return ""
    labels = (plain[0], res[0])
    classes = classes or {}
    return landscape_comparison(labels, (stats[labels[0]], stats[labels[1]]),
                                (classes.get(labels[0]), classes.get(labels[1])))


def _title(what: str, results: Mapping[str, LandscapeResult], residual: Residual,
           classes: Mapping[str, int] | None = None) -> str:
    stats = {label: summarize(result) for label, result in results.items()}
    first = next(iter(results.values()))
    lines = [wrap_subtitle(landscape_clause(label, stats[label], r.span) + ".") for label, r in results.items()]
    compare = _compare(results, residual, stats, classes)
    if compare:
        lines.append(wrap_subtitle(compare))
    lines.append(f"{first.images:,} training images, seed {first.seed}, filter-normalised random directions; "
                 "BN in eval mode with the trained running statistics.")
    return f"{what}<br><sup>{'<br>'.join(lines)}</sup>"


def plot_landscape_1d(results: Mapping[str, LandscapeResult], *, residual: Residual,
                      depth: Mapping[str, int] | None = None, classes: Mapping[str, int] | None = None) -> go.Figure:
    """Loss (log y) and accuracy along one filter-normalised direction, all runs overlaid (Li et al. Fig. 1).

    A 2-D result is drawn along its beta = 0 line, which is the 1-D landscape of the same seed.

    Args:
        results: run label -> its landscape.
        residual: run label -> whether it is residual (its spec's `residual`), or one bool for all.
        depth: run label -> its spec's depth, so a net and its plain twin share a colour.
        classes: run label -> its classes, so a net at chance at its trained weights gets no comparison.
    """
    what = "Loss along a random filter-normalised direction (Li et al. 2018, Fig. 1)"
    if not results:
        return no_data_figure(what)
    results = {label: r.along_alpha() for label, r in results.items()}
    styles = run_styles(list(results), residual, depth)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, row_heights=[0.62, 0.38],
                        subplot_titles=("training loss (log scale)", "training accuracy"))
    for label, result in results.items():
        alphas, loss = result.line("loss")
        _, acc = result.line("accuracy")
        name = f"{label} ({_kind(residual, label)})"
        fig.add_trace(go.Scatter(x=alphas, y=np.maximum(loss, LOSS_FLOOR), mode="lines+markers", name=name,
                                 legendgroup=label, line=styles[label], marker=dict(size=4),
                                 hovertemplate="alpha %{x:.3g}<br>loss %{y:.4g}<extra>" + label + "</extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=alphas, y=100 * acc, mode="lines", name=name, legendgroup=label,
                                 showlegend=False, line=styles[label],
                                 hovertemplate="alpha %{x:.3g}<br>accuracy %{y:.1f}%<extra>" + label + "</extra>"),
                      row=2, col=1)
    apply_layout(fig, _title(what, results, residual, classes), rows=2, height=TITLE_MARGIN + int(1.6 * ROW_HEIGHT))
    fig.update_yaxes(log_axis(fig, "y"), row=1, col=1)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 101], row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_xaxes(title_text="alpha (step along the direction; 0 = trained weights)", row=2, col=1)
    return fig


def _surfaces(results: Mapping[str, LandscapeResult]) -> tuple[dict, tuple[float, float]]:
    """label -> (alphas, betas, log10 loss, loss); and the shared (zmin, zmax) of log10 loss.

    Raises:
        ValueError: a result is 1-D.
    """
    flat = [label for label, r in results.items() if r.dims != 2]
    if flat:
        raise ValueError(f"2-D figures need 2-D landscapes; {', '.join(flat)} is 1-D (use plot_landscape_1d)")
    out = {}
    for label, result in results.items():
        alphas, betas, loss = result.surface("loss")
        out[label] = (alphas, betas, np.log10(np.maximum(loss, LOSS_FLOOR)), loss)
    finite = np.concatenate([z[np.isfinite(z)] for _, _, z, _ in out.values()])
    if finite.size == 0:
        return out, (0.0, 1.0)
    zmin, zmax = float(finite.min()), float(finite.max())
    return out, (zmin, zmax if zmax > zmin else zmin + 1e-3)


def plot_landscape_contours(results: Mapping[str, LandscapeResult], *, residual: Residual,
                            classes: Mapping[str, int] | None = None) -> go.Figure:
    """Contour maps of log loss over the (alpha, beta) plane, one panel per run, one shared colour
    range and the same contour levels (Li et al. 2018, Fig. 5, top). Plain nets' contour lines are
    dashed; x marks the trained weights.

    Raises:
        ValueError: a result is 1-D.
    """
    what = "Loss landscape: contours of the loss over two random directions (Li et al. 2018, Fig. 5)"
    if not results:
        return no_data_figure(what)
    surfaces, (zmin, zmax) = _surfaces(results)
    tickvals, ticktext = log_ticks(zmin, zmax)
    titles = [f"{label} ({_kind(residual, label)})" for label in results]
    fig = make_subplots(rows=1, cols=len(results), subplot_titles=titles, horizontal_spacing=0.08)
    for i, (label, (alphas, betas, z, loss)) in enumerate(surfaces.items(), start=1):
        plain = not is_residual(residual, label)
        fig.add_trace(go.Contour(
            x=alphas, y=betas, z=z, customdata=loss, name=label, zmin=zmin, zmax=zmax, colorscale=HEATMAP_SCALE,
            autocontour=False, contours=dict(start=zmin, end=zmax, size=(zmax - zmin) / CONTOUR_LEVELS),
            line=dict(dash="dash" if plain else "solid", width=1, color="rgba(255,255,255,0.6)"),
            showscale=i == len(results),
            colorbar=dict(title=dict(text="loss<br>(log scale)", side="right"), tickvals=tickvals,
                          ticktext=ticktext),
            hovertemplate="alpha %{x:.3g}<br>beta %{y:.3g}<br>loss %{customdata:.4g}<extra>" + label + "</extra>",
        ), row=1, col=i)
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker=dict(symbol="x", size=10, color="white",
                                 line=dict(width=1, color="black")), showlegend=False,
                                 hovertemplate="trained weights<extra>" + label + "</extra>"), row=1, col=i)
        fig.update_xaxes(title_text="alpha (direction 1)", row=1, col=i, constrain="domain")
        fig.update_yaxes(title_text="beta (direction 2)" if i == 1 else None, row=1, col=i,
                         scaleanchor=f"x{i if i > 1 else ''}", constrain="domain")
    apply_layout(fig, _title(what, results, residual, classes), rows=1, height=TITLE_MARGIN + PANEL_PX)
    fig.update_layout(showlegend=False)
    return fig


def plot_landscape_surfaces(results: Mapping[str, LandscapeResult], *, residual: Residual,
                            classes: Mapping[str, int] | None = None) -> go.Figure:
    """3-D surfaces of log loss over the (alpha, beta) plane, one scene per run, the same colour range
    and height axis in every scene (Li et al. 2018, Fig. 5, bottom).

    Raises:
        ValueError: a result is 1-D.
    """
    what = "Loss landscape: the loss surface over two random directions (Li et al. 2018, Fig. 5)"
    if not results:
        return no_data_figure(what)
    surfaces, (zmin, zmax) = _surfaces(results)
    tickvals, ticktext = log_ticks(zmin, zmax)
    titles = [f"{label} ({_kind(residual, label)})" for label in results]
    fig = make_subplots(rows=1, cols=len(results), subplot_titles=titles, horizontal_spacing=0.04,
                        specs=[[{"type": "scene"}] * len(results)])
    for i, (label, (alphas, betas, z, loss)) in enumerate(surfaces.items(), start=1):
        fig.add_trace(go.Surface(
            x=alphas, y=betas, z=z, customdata=loss, name=label, cmin=zmin, cmax=zmax, colorscale=HEATMAP_SCALE,
            showscale=i == len(results),
            colorbar=dict(title=dict(text="loss<br>(log scale)", side="right"), tickvals=tickvals,
                          ticktext=ticktext),
            hovertemplate="alpha %{x:.3g}<br>beta %{y:.3g}<br>loss %{customdata:.4g}<extra>" + label + "</extra>",
        ), row=1, col=i)
        fig.update_scenes(dict(
            xaxis_title="alpha", yaxis_title="beta",
            zaxis=dict(title="loss (log)", range=[zmin, zmax], tickvals=tickvals, ticktext=ticktext),
            aspectmode="cube", camera=dict(eye=SURFACE_EYE),
        ), row=1, col=i)
    apply_layout(fig, _title(what, results, residual, classes), rows=1, height=TITLE_MARGIN + PANEL_PX)
    fig.update_layout(showlegend=False)
    return fig
