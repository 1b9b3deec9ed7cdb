"""Lesion-study figures (Veit, Wilber and Belongie 2016, Figs. 3-5): held-out error after deleting
one unit, after deleting k random units, and after swapping k random pairs of units.

Each function takes `LesionResult`s keyed by run label in drawing order (a net and its plain twin
overlay) and returns a plotly Figure. Plain nets are dashed, residual ones solid; whether a run is
residual comes from `residual` (label -> its spec's `residual`) or, when that is None, from the
result itself (which copied its spec's). Titles say what the data shows, worked out from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from ..analysis.lesion import LesionResult, by_k
from ..reports.findings.lenses import halfway_sentence, single_lesion_sentence
from .style import Residual, apply_layout, no_data_figure, rgba, run_styles, wrap_subtitle

__all__ = ["plot_k_lesions", "plot_reorderings", "plot_single_lesions"]

DOWNSAMPLE_FILL = "rgba(255,160,0,0.13)"
CHANCE_COLOUR = "#888"
MAX_TICK_LABELS = 40  # unit names on the x-axis; past this, every n-th
INTACT_NEAR = 0.06  # intact errors closer than this (6 points) get their labels stacked, 16 px apart


def _styles(results: Mapping[str, LesionResult], residual: Residual | None,
            depth: Mapping[str, int] | None) -> dict[str, dict]:
    residual = residual if residual is not None else {k: r.residual for k, r in results.items()}
    depth = depth if depth is not None else {k: r.depth for k, r in results.items()}
    return run_styles(list(results), residual, depth)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%" if value < 0.995 else f"{100 * value:.0f}%"


def _chance_lines(fig: go.Figure, results: Mapping[str, LesionResult]) -> None:
    for classes in sorted({r.num_classes for r in results.values()}):
        chance = 1 - 1 / classes
        fig.add_hline(y=chance, line=dict(color=CHANCE_COLOUR, dash="dot", width=1.5),
                      annotation_text=f"chance, {classes} classes ({_pct(chance)})",
                      annotation_position="bottom right", annotation_font_color=CHANCE_COLOUR)


# --- single-unit lesions ----------------------------------------------------------------------

def _single_summary(label: str, r: LesionResult) -> tuple[float, str]:
    """(median error after one deletion, one sentence about the run from `findings.lenses`)."""
    rows = r.rows[r.rows["deletable"].astype(bool) & r.rows["error"].notna()]
    median = float(rows["error"].median()) if len(rows) else math.nan
    return median, single_lesion_sentence(label, r.rows, r.baseline_error, r.num_classes, r.num_images)


def plot_single_lesions(results: Mapping[str, LesionResult | None], *, residual: Residual | None = None,
                        depth: Mapping[str, int] | None = None) -> go.Figure:
    """Held-out error after deleting each unit alone, one point per unit (Veit et al. 2016, Figs. 3-4).

    Downsampling units (stride 2) sit in shaded bands and are drawn as diamonds; units that cannot be
    deleted (a plain net's shape-changing units) are marked "x" at the top with their reason on hover.
    Each run's intact error is a thin dotted line in its colour; the grey dotted line is chance.

    Args:
        results: run label -> its "single" `LesionResult` (None entries are skipped).
        residual: run label -> its spec's `residual` (or one bool); None reads it from each result.
        depth: run label -> its spec's depth, so twins share a colour; None reads it from each result.
    """
    title = "Deleting one unit at a time"
    results = {k: r for k, r in results.items() if r is not None and len(r.rows)}
    if not results:
        return no_data_figure(title)
    for r in results.values():
        if r.kind != "single":
            raise ValueError(f"plot_single_lesions needs single-unit results, got {r.kind!r}")
    styles = _styles(results, residual, depth)
    fig = go.Figure()
    names: dict[int, str] = {}
    downsampling: set[int] = set()
    intact_at: list[float] = []  # the intact errors labelled so far: close ones are stacked, not overlaid
    for label, r in results.items():
        style = styles[label]
        rows = r.rows.assign(x=r.rows["position"] + 1)
        names.update(zip(rows["x"], rows["unit"], strict=True))
        downsampling.update(rows.loc[rows["downsampling"].astype(bool), "x"])
        ok = rows  # units that cannot be deleted have NaN errors: gaps in the line
        fig.add_trace(go.Scatter(
            x=list(ok["x"]), y=[None if math.isnan(e) else e for e in ok["error"]], connectgaps=False, name=label, legendgroup=label, mode="lines+markers", line=style,
            marker=dict(size=[12 if d else 7 for d in ok["downsampling"]],
                        symbol=["diamond" if d else "circle" for d in ok["downsampling"]],
                        line=dict(width=1, color="#333")),
            customdata=np.stack([ok["unit"], ok["how"], 100 * ok["delta_error"]], axis=-1),
            hovertemplate="%{customdata[0]} deleted: error %{y:.1%} (%{customdata[2]:+.1f} points)<br>"
                          f"%{{customdata[1]}}<extra>{label}</extra>",
        ))
        x_all = [rows["x"].min() - 0.5, rows["x"].max() + 0.5]
        fig.add_trace(go.Scatter(
            x=x_all, y=[r.baseline_error] * 2, mode="lines", legendgroup=label, showlegend=False,
            line=dict(color=style["color"], width=1, dash="dot"), hoverinfo="skip",
        ))
        near = sum(abs(r.baseline_error - y) < INTACT_NEAR for y in intact_at)  # labels that would overlap
        intact_at.append(r.baseline_error)
        fig.add_annotation(x=x_all[0], y=r.baseline_error, xanchor="left", yanchor="bottom", showarrow=False,
                           yshift=16 * near, text=f"{label} intact: {_pct(r.baseline_error)}",
                           font=dict(size=11, color=style["color"]))
        blocked = rows[~rows["deletable"].astype(bool)]
        if len(blocked):
            fig.add_trace(go.Scatter(
                x=list(blocked["x"]), y=[1.04] * len(blocked), mode="markers+text", legendgroup=label,
                name=f"{label}: cannot be deleted", text=["not deletable"] * len(blocked), textposition="bottom center",
                textfont=dict(size=10, color=style["color"]),
                marker=dict(symbol="x", size=10, color=style["color"]), customdata=np.stack(
                    [blocked["unit"], blocked["how"]], axis=-1),
                hovertemplate=f"%{{customdata[0]}} %{{customdata[1]}}<extra>{label}</extra>",
            ))
    for x in sorted(downsampling):
        fig.add_vrect(x0=x - 0.45, x1=x + 0.45, fillcolor=DOWNSAMPLE_FILL, line_width=0, layer="below",
                      annotation_text="downsampling", annotation_position="top",
                      annotation_font=dict(size=10, color="#b36b00"))
    _chance_lines(fig, results)
    summaries = {label: _single_summary(label, r) for label, r in results.items()}
    medians = {label: m for label, (m, _) in summaries.items() if not math.isnan(m)}
    if len(medians) >= 2:
        head = "median error after one deletion: " + " vs ".join(f"{k} {_pct(m)}" for k, m in medians.items())
    elif medians:
        (label, m), = medians.items()
        head = f"median error after one deletion {_pct(m)} (intact {_pct(results[label].baseline_error)})"
    else:
        head = "no unit could be deleted"
    lines = [wrap_subtitle(text) for _, text in summaries.values()]
    lines.append("Diamonds in shaded bands: downsampling units (stride 2); dotted lines: each net's intact error "
                 "and chance. Solid: residual; dashed: plain.")
    lines.insert(0, wrap_subtitle(head[:1].upper() + head[1:]))  # run labels name their data: too long for a title
    apply_layout(fig, f"{title}<br><sup>{'<br>'.join(lines)}</sup>", rows=1)
    ticks = sorted(names)
    step = max(1, math.ceil(len(ticks) / MAX_TICK_LABELS))
    fig.update_xaxes(title_text="unit deleted (input -> output)", tickmode="array", tickvals=ticks[::step],
                     ticktext=[names[t] for t in ticks[::step]], tickangle=-45 if len(ticks) > 12 else 0)
    fig.update_yaxes(title_text="held-out error", tickformat=".0%", range=[0, 1.1])
    return fig


# --- error vs k ---------------------------------------------------------------------------------

def _plot_vs_k(results: Mapping[str, LesionResult | None], kind: str, title: str, x_title: str,
               residual: Residual | None, depth: Mapping[str, int] | None) -> go.Figure:
    results = {k: r for k, r in results.items() if r is not None and len(r.rows)}
    if not results:
        return no_data_figure(title)
    for r in results.values():
        if r.kind != kind:
            raise ValueError(f"this figure needs {kind} results, got {r.kind!r}")
    styles = _styles(results, residual, depth)
    fig = go.Figure()
    sentences = []
    for label, r in results.items():
        style = styles[label]
        table = by_k(r)
        ks = list(table["k"])
        fig.add_trace(go.Scatter(
            x=ks + ks[::-1], y=list(table["max"]) + list(table["min"])[::-1], fill="toself",
            fillcolor=rgba(style["color"], 0.15), line=dict(width=0), mode="lines", hoverinfo="skip", legendgroup=label,
            name=f"{label}: min-max over draws", showlegend=True,
        ))
        fig.add_trace(go.Scatter(
            x=ks, y=list(table["mean"]), name=f"{label}: mean", legendgroup=label, mode="lines+markers", line=style,
            customdata=np.stack([table["std"], table["min"], table["max"], table["draws"]], axis=-1),
            hovertemplate="k = %{x}: mean error %{y:.1%} (std %{customdata[0]:.1%}, min %{customdata[1]:.1%}, "
                          f"max %{{customdata[2]:.1%}}, %{{customdata[3]}} draws)<extra>{label}</extra>",
        ))
        sentences.append(halfway_sentence(label, r.baseline_error, r.num_classes, list(table["k"]),
                                          list(table["mean"]), r.max_k))
    _chance_lines(fig, results)
    draws = sorted({int(d) for r in results.values() for d in r.rows.groupby("k").size()})
    draw_text = f"{draws[0]}" if len(draws) == 1 else f"{draws[0]}-{draws[-1]}"
    lines = [wrap_subtitle(s) for s in sentences]
    lines.append(f"Line: mean over {draw_text} random draws per k; band: their min to max; k = 0 is the intact net. "
                 "Solid: residual; dashed: plain.")
    apply_layout(fig, f"{title}<br><sup>{'<br>'.join(lines)}</sup>", rows=1)
    top = max(int(by_k(r)["k"].max()) for r in results.values())
    fig.update_xaxes(title_text=x_title, rangemode="tozero", tickformat="d", dtick=1 if top <= 20 else None)
    fig.update_yaxes(title_text="held-out error", tickformat=".0%", range=[0, 1.05])
    return fig


def plot_k_lesions(results: Mapping[str, LesionResult | None], *, residual: Residual | None = None,
                   depth: Mapping[str, int] | None = None) -> go.Figure:
    """Held-out error against the number k of random units deleted at once (Veit et al. 2016, Fig. 5a).

    Args: as `plot_single_lesions`, with "k_lesions" results.
    """
    return _plot_vs_k(results, "k_lesions", "Deleting k random units at once", "units deleted (k)", residual, depth)


def plot_reorderings(results: Mapping[str, LesionResult | None], *, residual: Residual | None = None,
                     depth: Mapping[str, int] | None = None) -> go.Figure:
    """Held-out error against the number k of random pairs of units swapped (Veit et al. 2016, Fig. 5b).

    Args: as `plot_single_lesions`, with "reorder" results.
    """
    return _plot_vs_k(results, "reorder", "Swapping k random pairs of units within their stages",
                      "pairs of units swapped (k)", residual, depth)
