"""Gradient per path length (Veit, Wilber and Belongie 2016, Fig. 6): three panels from `path_gradients`.

(a) how the 2^n paths spread over their length k (binomial), (b) the gradient magnitude of one path
of each length at the first unit's input (log scale), (c) the total gradient per length, magnitude
times share, with the narrowest range of lengths holding most of it shaded. Several runs overlay;
the title's numbers come from the first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.paths import PathResult, path_length_shares
from ..reports.findings.lenses import path_shape
from .style import Residual, apply_layout, log_axis, no_data_figure, rgba, run_styles, wrap_subtitle

__all__ = ["plot_path_gradients"]

TITLE = "Gradient per path length (Veit et al. 2016, Fig. 6)"


def _lengths(low: int, high: int) -> str:
    return f"length {low}" if low == high else f"lengths {low}-{high}"


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.1 else f"{share * 100:.2g}%"


def _subtitle(label: str, result: PathResult) -> str:
    s = result.summary
    n = result.num_units
    text = f"{label} ({n} units, 2^{n} paths, {result.draws} draws per length, {result.images} images)"
    parts = []
    if result.effective is not None:
        low, high = result.effective
        held = float(path_length_shares(n)[low:high + 1].sum())
        parts.append(f"{result.fraction:.0%} of the total from {_lengths(low, high)} (peak {result.peak_k}), "
                     f"{_percent(held)} of all paths")
    shape = path_shape(s["k"].to_numpy(), s["mean_grad"].to_numpy()).text()
    if shape:
        parts.append(shape)
    return f"{text}: {'; '.join(parts) or 'no gradient measured'}."


def plot_path_gradients(results: PathResult | Mapping[str, PathResult], *, residual: Residual = True,
                        depth: Mapping[str, int] | None = None) -> go.Figure:
    """The three panels of Veit et al. 2016, Fig. 6, for one run or several overlaid.

    Args:
        results: a `PathResult`, or run label -> `PathResult` in drawing order; the title's numbers
            (effective range, peak, the shape of one path's gradient over k) come from the first.
        residual: run label -> its spec's `residual`, or one bool; path results exist only for residual
            nets, so this only keeps the shared line styles.
        depth: run label -> its spec's depth, so runs of one depth share a colour.
    """
    if isinstance(results, PathResult):
        results = {results.model: results}
    runs = {label: r for label, r in results.items() if r is not None and not r.summary.empty}
    if not runs:
        return no_data_figure(TITLE)
    styles = run_styles(runs, residual, depth)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.1, subplot_titles=(
        "(a) share of paths", "(b) gradient of one path", "(c) total = gradient x share"))
    for label, result in runs.items():
        s = result.summary
        style = styles[label]
        ks = list(s["k"])
        shares = path_length_shares(result.num_units)  # every length, measured or not
        fig.add_trace(go.Scatter(
            x=list(range(result.num_units + 1)), y=list(shares), name=label, legendgroup=label, line=style, mode="lines+markers",
            marker=dict(size=5), hovertemplate="k = %{x}<br>share of paths %{y:.3g}<extra>" + label + "</extra>",
        ), row=1, col=1)
        grads = s["mean_grad"].where(s["mean_grad"] > 0)
        fig.add_trace(go.Scatter(
            x=ks, y=[None if not math.isfinite(v) else float(v) for v in grads], name=label, legendgroup=label,
            line=style, mode="lines+markers", marker=dict(size=5), showlegend=False,
            customdata=list(s["std_grad"]),
            hovertemplate="k = %{x}<br>mean ||grad|| %{y:.3g}<br>std over draws %{customdata:.2g}<extra>"
                          + label + "</extra>",
        ), row=1, col=2)
        fig.add_trace(go.Scatter(
            x=ks, y=list(s["total"]), name=label, legendgroup=label, line=style, mode="lines+markers",
            marker=dict(size=5), showlegend=False,
            hovertemplate="k = %{x}<br>magnitude x share %{y:.3g}<extra>" + label + "</extra>",
        ), row=1, col=3)
        if result.effective is not None:
            low, high = result.effective
            fig.add_vrect(x0=low - 0.5, x1=high + 0.5, row=1, col=3, line_width=0, layer="below",
                          fillcolor=rgba(style["color"], 0.15))
    first_label, first = next(iter(runs.items()))
    title = TITLE
    if first.effective is not None:
        title = (f"{first.fraction:.0%} of the gradient flows through paths of {_lengths(*first.effective)} "
                 f"out of 0-{first.num_units} (Veit et al. 2016, Fig. 6)")
    notes = " ".join(_subtitle(label, r) for label, r in runs.items())
    notes += " Shaded: the narrowest range of lengths holding that share of the total. k: residual branches a path passes."
    apply_layout(fig, f"{title}<br><sup>{wrap_subtitle(notes)}</sup>", rows=1)
    fig.update_yaxes(title_text="share of the 2^n paths", row=1, col=1)
    fig.update_yaxes(title_text="||grad|| at unit 1 (log)", row=1, col=2, **log_axis(fig, "y2"))
    fig.update_yaxes(title_text="total gradient", row=1, col=3, tickformat=".2~g")  # not SI "300µ"
    fig.update_xaxes(title_text="path length k")  # short: three panels side by side; the subtitle says what k is
    return fig
