"""Unit-profile figure: residual ratio, response std and single-unit lesions per unit of one net.

Units run input to output along the shared x axis, labelled by name (every n-th past
`MAX_TICK_LABELS`). Downsampling units (stride 2) sit in shaded bands; units that change the shape
are drawn as diamonds; grey lines separate the stages. The title states what the data shows
(`UnitProfile.headline` and `findings`).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.profile import UnitProfile
from .style import FAMILY_COLOURS, TITLE_MARGIN, apply_layout, log_axis, no_data_figure, rgba, wrap_subtitle

__all__ = ["MAX_TICK_LABELS", "plot_unit_profile"]

MAX_TICK_LABELS = 40  # unit names on the x axis; past this, every n-th
LOG_RESPONSE_SPAN = 30.0  # response stds spanning more than this factor get a log axis
PANEL_HEIGHT = 260  # px per row of this figure (three short rows read better than ROW_HEIGHT each)
DOWNSAMPLE_FILL = "rgba(255,160,0,0.13)"
STAGE_LINE = "#999"
COLOURS = {"ratio": FAMILY_COLOURS[0], "response": FAMILY_COLOURS[2], "flip": FAMILY_COLOURS[1],
           "drop": FAMILY_COLOURS[4]}
GROUPS = {"ratio": "residual ratio", "response": "response std", "lesion": "single-unit lesions"}


def _finite(values) -> list[float | None]:
    return [float(v) if v is not None and math.isfinite(v) else None for v in values]


def _positive(values) -> list[float | None]:
    """Values for a log axis: zero, negative and NaN become gaps."""
    return [v if v is not None and v > 0 else None for v in _finite(values)]


def _markers(rows) -> dict:
    shape = rows["changes_shape"].astype(bool)
    return dict(size=[10 if c else 6 for c in shape], symbol=["diamond" if c else "circle" for c in shape],
                line=dict(width=1, color="#333"))


def plot_unit_profile(profile: UnitProfile, *, title: str | None = None) -> go.Figure:
    """Per unit: ||F(x)||/||x|| (log axis, p10-p90 band over the images), response std and, where
    lesions were measured, the share of images whose top-1 class changes when the unit is deleted.

    Args:
        profile: from `analysis.profile.profile_units`.
        title: the figure's first title line; None states the profile's headline.

    Returns:
        A figure with one row of panels per measurement, one legend group per row.
    """
    rows = profile.rows
    if rows is None or not len(rows):
        return no_data_figure(title or "Unit profile")
    has_ratio = bool(rows["ratio_mean"].notna().any())
    has_lesions = profile.lesions and bool(rows["flip_rate"].notna().any())
    panels = (["ratio"] if has_ratio else []) + ["response"] + (["lesion"] if has_lesions else [])
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.06)
    x = list(rows["position"])
    names = list(rows["unit"])
    dash = "solid" if profile.residual else "dash"
    hover_unit = np.stack([rows["unit"], rows["shortcut"], rows["stride"]], axis=-1)
    for r, panel in enumerate(panels, start=1):
        group = GROUPS[panel]
        if panel == "ratio":
            colour = COLOURS["ratio"]
            fig.add_trace(go.Scatter(
                x=x + x[::-1], y=_positive(rows["ratio_p90"]) + _positive(rows["ratio_p10"])[::-1], fill="toself",
                fillcolor=rgba(colour, 0.18), line=dict(width=0), mode="lines", hoverinfo="skip",
                legendgroup=group, name="ratio, 10th-90th percentile over images"), row=r, col=1)
            fig.add_trace(go.Scatter(
                x=x, y=_positive(rows["ratio_mean"]), mode="lines+markers", line=dict(color=colour, dash=dash, width=2),
                marker=dict(color=colour, **_markers(rows)), legendgroup=group, name="||F(x)|| / ||x||, mean",
                customdata=np.column_stack([hover_unit, rows["ratio_p10"], rows["ratio_p90"], rows["f_norm"],
                                            rows["x_norm"]]),
                hovertemplate="%{customdata[0]} (%{customdata[1]} shortcut, stride %{customdata[2]}): ratio %{y:.3g}"
                              "<br>p10-p90 %{customdata[3]:.3g}-%{customdata[4]:.3g}; mean ||F|| %{customdata[5]:.3g},"
                              " ||x|| %{customdata[6]:.3g}<extra></extra>"), row=r, col=1)
            fig.update_yaxes(title_text="||F(x)|| / ||x||", row=r, col=1)
        elif panel == "response":
            colour = COLOURS["response"]
            fig.add_trace(go.Scatter(
                x=x + x[::-1], y=_finite(rows["response_std_p90"]) + _finite(rows["response_std_p10"])[::-1],
                fill="toself", fillcolor=rgba(colour, 0.18), line=dict(width=0), mode="lines", hoverinfo="skip",
                legendgroup=group, name="response std, 10th-90th percentile"), row=r, col=1)
            fig.add_trace(go.Scatter(
                x=x, y=_finite(rows["response_std"]), mode="lines+markers", line=dict(color=colour, dash=dash, width=2),
                marker=dict(color=colour, **_markers(rows)), legendgroup=group, name="response std (unit output)",
                customdata=hover_unit,
                hovertemplate="%{customdata[0]}: output std %{y:.3g} (mean over images)<extra></extra>"), row=r, col=1)
            fig.update_yaxes(title_text="response std", rangemode="tozero", row=r, col=1)
        else:
            fig.add_trace(go.Scatter(
                x=x, y=_finite(rows["flip_rate"]), mode="lines+markers", connectgaps=False,
                line=dict(color=COLOURS["flip"], dash=dash, width=2), marker=dict(color=COLOURS["flip"], **_markers(rows)),
                legendgroup=group, name="deleted: top-1 class changed",
                customdata=np.column_stack([hover_unit, rows["prob_drop"], rows["kl"]]),
                hovertemplate="%{customdata[0]} deleted: top-1 changed for %{y:.1%} of images<br>"
                              "p(top-1) down %{customdata[3]:.3f}, KL %{customdata[4]:.3g} nats<extra></extra>"),
                row=r, col=1)
            fig.add_trace(go.Scatter(
                x=x, y=_finite(rows["prob_drop"]), mode="lines+markers", connectgaps=False,
                line=dict(color=COLOURS["drop"], dash="dot", width=1.5), marker=dict(color=COLOURS["drop"], size=5),
                legendgroup=group, name="deleted: drop in p(intact top-1)", hoverinfo="skip"), row=r, col=1)
            blocked = rows[~rows["deletable"].astype(bool)]
            if len(blocked):
                fig.add_trace(go.Scatter(
                    x=list(blocked["position"]), y=[0.0] * len(blocked), mode="markers", legendgroup=group,
                    name="cannot be deleted", marker=dict(symbol="x", size=10, color="#555"),
                    customdata=np.stack([blocked["unit"], blocked["how"]], axis=-1),
                    hovertemplate="%{customdata[0]} %{customdata[1]}<extra></extra>"), row=r, col=1)
            fig.update_yaxes(title_text="share / probability", tickformat=".0%", rangemode="tozero", row=r, col=1)
    for p in rows.loc[rows["downsampling"].astype(bool), "position"]:
        fig.add_vrect(x0=p - 0.45, x1=p + 0.45, fillcolor=DOWNSAMPLE_FILL, line_width=0, layer="below",
                      row="all", col=1)
    starts = rows.groupby("stage")["position"].min().sort_index()
    for stage, p in starts.items():
        if p > 0:
            fig.add_vline(x=p - 0.5, line=dict(color=STAGE_LINE, width=1), row="all", col=1)
        fig.add_annotation(x=p - 0.4, y=1.0, xref="x", yref="paper", yanchor="bottom", xanchor="left",
                           showarrow=False, text=f"stage {stage}", font=dict(size=11, color="#666"))
    if has_ratio:
        fig.update_yaxes(log_axis(fig, "y"), row=1, col=1)
    stds = rows["response_std"][rows["response_std"] > 0]
    if len(stds) and stds.max() > LOG_RESPONSE_SPAN * stds.min():  # growth over depth reads better in decades
        r = panels.index("response") + 1
        fig.update_yaxes(log_axis(fig, f"y{r if r > 1 else ''}"), rangemode="normal", row=r, col=1)
    lines = [wrap_subtitle(s) for s in profile.findings()]
    zero = rows[rows["ratio_mean"].notna() & (rows["ratio_mean"] <= 0)]
    if len(zero):
        lines.append(wrap_subtitle(f"Ratio 0 (off the log axis) at {', '.join(zero['unit'])}."))
    lines.append(wrap_subtitle(
        f"{profile.model}, eval mode, {profile.images:,} images. Shaded: downsampling units (stride 2); diamonds: "
        "units that change the shape; grey lines: stage boundaries." + ("" if profile.residual else
                                                                       " Dashed: plain net (no shortcuts).")))
    text = f"{title or profile.headline()}<br><sup>{'<br>'.join(lines)}</sup>"
    top = max(TITLE_MARGIN, 58 + 24 * text.count("<br>"))  # as apply_layout sizes the title margin
    apply_layout(fig, text, rows=len(panels), height=top + PANEL_HEIGHT * len(panels))
    fig.update_layout(legend=dict(title=dict(text=""), groupclick="toggleitem"))
    step = max(1, math.ceil(len(x) / MAX_TICK_LABELS))
    ticks = x[::step]
    fig.update_xaxes(tickmode="array", tickvals=ticks, ticktext=names[::step], tickangle=-45 if len(ticks) > 12 else 0,
                     range=[min(x) - 0.6, max(x) + 0.6])
    fig.update_xaxes(title_text="unit (input -> output)", row=len(panels), col=1)
    fig.update_xaxes(showticklabels=True, row=len(panels), col=1)
    return fig
