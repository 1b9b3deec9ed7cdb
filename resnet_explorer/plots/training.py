"""Training figures: loss and error curves, residual norms, gradient flow and layer responses.

Each function takes the tables a run writes (one pandas DataFrame per run, keyed by run label in
display order) and returns a plotly Figure. Figures that style runs take `residual` (label -> the
run's `spec.residual`): plain nets (no shortcuts) are drawn dashed, residual ones solid; with `depth`
(label -> `spec.depth`) a net and its plain twin share a colour (`style.run_styles`). Nothing is read
from a label's text. Empty tables, NaN values and runs missing from a table mapping are skipped; with
nothing left to draw a figure says "no data yet".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..models.layer_names import depth_key, stage_of, unit_of
from .style import (
    HEATMAP_SCALE,
    NO_DATA,
    ROW_HEIGHT,
    TITLE_MARGIN,
    Residual,
    apply_layout,
    is_residual,
    log_axis,
    log_ticks,
    no_data_figure,
    rgba,
    run_styles,
    wrap_subtitle,
)

__all__ = [
    "SMOOTH_MIN_POINTS", "VALUE_LABELS", "available_steps", "plot_grad_flow_heatmap", "plot_grad_flow_profile",
    "plot_live_loss", "plot_residual_heatmap", "plot_residual_norms", "plot_responses", "plot_training_curves",
]

SMOOTH_MIN_POINTS = 20  # fewer logged points than this are drawn raw
VALUE_LABELS = {
    "grad_norm": "gradient norm ||dL/dW||",
    "grad_abs_mean": "mean |dL/dW|",
    "weight_norm": "weight norm ||W||",
    "update_ratio": "update ratio ||dW||/||W||",
    "residual_norm": "||F(x)||",
    "shortcut_norm": "||x||",
    "ratio": "||F(x)|| / ||x||",
    "std": "std of BN output",
}
_LOG_VALUES = {"ratio", "residual_norm", "shortcut_norm", "grad_norm", "grad_abs_mean", "weight_norm", "update_ratio"}


# --- tables ------------------------------------------------------------------------------------

def available_steps(df: pd.DataFrame | None) -> list[int]:
    """Sorted unique steps of a table ([] when it is empty or has no 'step' column)."""
    if df is None or df.empty or "step" not in df.columns:
        return []
    steps = pd.to_numeric(df["step"], errors="coerce").dropna().unique()
    return sorted(int(s) for s in steps)


def _frame(df: pd.DataFrame | None, columns: Iterable[str], table: str) -> pd.DataFrame | None:
    """The table with its value columns numeric, or None when it has no rows.

    Raises:
        ValueError: a non-empty table lacks one of `columns`.
    """
    if df is None or len(df) == 0:
        return None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{table} table lacks column(s) {missing}; it has {list(df.columns)}")
    df = df.copy()
    for column in columns:
        if column not in ("unit", "layer"):
            df[column] = pd.to_numeric(df[column], errors="coerce")
    df = df.dropna(subset=["step"])
    return df if len(df) else None


def _at_step(df: pd.DataFrame, step: int | None) -> tuple[pd.DataFrame, int]:
    """Rows logged at `step` (None: the latest; a step this run lacks: its nearest, earlier on ties)."""
    steps = np.sort(df["step"].unique())
    chosen = steps[-1] if step is None else steps[int(np.argmin(np.abs(steps - step)))]
    return df[df["step"] == chosen], int(chosen)


def _step_text(chosen: dict[str, int], step: int | None) -> str:
    values = set(chosen.values())
    if len(values) == 1:
        return f"at step {values.pop():,}"
    each = ", ".join(f"{label} {s:,}" for label, s in chosen.items())
    return f"at the {'latest' if step is None else 'nearest logged'} step of each run ({each})"


def _positive(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows whose `column` a log axis can show: finite and > 0."""
    values = df[column]
    return df[np.isfinite(values) & (values > 0)]


def _depth_order(names: Iterable[str]) -> dict[str, int]:
    """Position of each name in the depth order of all names together, so twins line up layer by layer."""
    return {name: i for i, name in enumerate(sorted(set(names), key=depth_key))}


def _mark_stages(fig: go.Figure, order: dict[str, int], rows: Iterable[int]) -> None:
    """Dotted vertical line where each stage (layerN) starts; x ticks name the first unit or layer there."""
    starts: dict[str, tuple[int, str]] = {}
    for name, pos in order.items():
        stage = stage_of(name)
        if stage is not None and stage not in starts:
            starts[stage] = pos, name
    for row in rows:
        for pos, _ in starts.values():
            fig.add_vline(x=pos - 0.5, line=dict(color="#999", width=1, dash="dot"), row=row, col=1)
        if starts:
            fig.update_xaxes(tickmode="array", tickvals=[p for p, _ in starts.values()],
                             ticktext=[n for _, n in starts.values()], row=row, col=1)


def _log10(values: np.ndarray) -> np.ndarray:
    """log10 where positive and finite, NaN elsewhere (a gap in a heat-map)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(values) & (values > 0), np.log10(values), np.nan)


def _z_range(arrays: Iterable[np.ndarray]) -> tuple[float, float] | None:
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [a for a in finite if a.size]
    if not finite:
        return None
    zmin, zmax = float(min(a.min() for a in finite)), float(max(a.max() for a in finite))
    if zmax - zmin < 1e-9:  # one value: give the colour scale some width
        zmin, zmax = zmin - 0.5, zmax + 0.5
    return zmin, zmax


def _grid(df: pd.DataFrame, row: str, value: str) -> pd.DataFrame:
    """rows (depth order) x steps table of `value`; duplicate (row, step) entries averaged."""
    grid = df.groupby([row, "step"])[value].mean().unstack("step")
    return grid.reindex(sorted(grid.index, key=depth_key))


TICK_CHAR_PX = 8  # width of a tick-label character at the figures' 13 px font, rounded up
CHART_PX = 900  # a figure's width on a 1400 px wide page beside the sidebar


def _row_label_px(row_names: list[list[str]]) -> int:
    """Width in px of the longest row label shown (`_category_ticks` may show stage names instead)."""
    shown = [t for names in row_names for t in _category_ticks(names).get("ticktext", names)]
    return TICK_CHAR_PX * max((len(str(t)) for t in shown), default=0)


def _category_ticks(names: list[str], limit: int = 40) -> dict:
    """y-tick settings: plotly's own when the names fit, else one tick per stage at its first row."""
    if len(names) <= limit:
        return {}
    firsts = {}
    for name in names:
        stage = stage_of(name)
        if stage is not None:
            firsts.setdefault(stage, name)
    return dict(tickmode="array", tickvals=list(firsts.values()), ticktext=list(firsts))


# --- training curves ---------------------------------------------------------------------------

def _smooth(values: pd.Series) -> pd.Series | None:
    """Centred running mean over ~4% of the points; None when there are too few points to bother."""
    if len(values) < SMOOTH_MIN_POINTS:
        return None
    window = max(3, len(values) // 25)
    return values.rolling(window, center=True, min_periods=1).mean()


def _line(fig: go.Figure, x, y, label: str, style: dict, col: int, hover: str, customdata=None, **kwargs) -> None:
    group = label.removesuffix(" (raw)")
    fig.add_trace(go.Scatter(x=list(x), y=list(y), name=label, legendgroup=group, line=style, mode="lines",
                             customdata=None if customdata is None else list(customdata),
                             hovertemplate=hover + f"<extra>{label}</extra>", **kwargs), row=1, col=col)


def _band(frames: list[pd.DataFrame], column: str) -> pd.DataFrame:
    """Mean, min and max of `column` over runs at the steps every run logged (seeds of one config)."""
    joined = None
    for i, df in enumerate(frames):
        part = df.drop_duplicates("step", keep="last").set_index("step")[column].rename(i)
        joined = part.to_frame() if joined is None else joined.join(part, how="inner")
    joined = joined.sort_index()
    epoch = frames[0].drop_duplicates("step", keep="last").set_index("step")["epoch"] \
        if "epoch" in frames[0].columns else pd.Series(np.nan, index=joined.index)
    return pd.DataFrame({"step": joined.index, "mean": joined.mean(axis=1), "low": joined.min(axis=1),
                         "high": joined.max(axis=1), "epoch": epoch.reindex(joined.index).to_numpy()})


def _curve_frames(value: pd.DataFrame | list[pd.DataFrame] | None, table: str) -> list[pd.DataFrame]:
    values = value if isinstance(value, list) else [value]
    frames = [_frame(df, ("step", "loss", "accuracy"), table) for df in values]
    return [df.sort_values("step") for df in frames if df is not None]


def plot_training_curves(metrics: dict[str, pd.DataFrame | list[pd.DataFrame]],
                         evals: dict[str, pd.DataFrame | list[pd.DataFrame]] | None = None, *,
                         residual: Residual, depth: Mapping[str, int] | None = None,
                         finding: str | None = None) -> go.Figure:
    """Training loss (left) and error (right) against step, plain vs residual (He et al. 2015, Fig. 6).

    Title and subtitle follow what is shown: one run is "Training curves of <label>"; plain and
    residual runs together are the paper's Fig. 6; the paper's degradation claim is stated only when
    plain and residual nets of different depths are shown (their `depth` given).

    The right panel shows error = 100 x (1 - accuracy) %, as in the paper: thin lines training,
    bold markers the held-out split (error only: early held-out losses in eval mode can be huge).
    A run with many logged points is smoothed by a centred running mean (the raw values stay, faint). A label given a list of tables (one per seed) is
    drawn as the mean over seeds with a shaded band from the lowest to the highest seed. The loss
    axis is log-scaled; zero or NaN losses are dropped.

    Args:
        metrics: run label -> metrics table (step, epoch, loss, accuracy, lr, seconds), or a list
            of them (seeds).
        evals: run label -> eval table(s) (step, epoch, loss, accuracy); runs may be missing.
        residual: run label -> whether it is residual (its spec's `residual`; plain runs are dashed),
            or one bool for every run.
        depth: run label -> its spec's depth: runs of one depth share a colour.
        finding: what these runs show, computed from them (`findings`); the subtitle then states
            it instead of the paper's claim.
    """
    evals = evals or {}
    labels = list(dict.fromkeys([*metrics, *evals]))
    kinds = {residual if isinstance(residual, bool) else residual.get(label) for label in labels} - {None}
    if len(labels) == 1:
        title = f"Training curves of {labels[0]}"
    elif len(kinds) == 2:
        title = "Training curves, plain vs residual (He et al. 2015, Fig. 6)"
    elif labels and kinds:
        title = f"Training curves of {len(labels)} {'residual' if True in kinds else 'plain'} runs"
    else:
        title = "Training curves"
    depths = {(depth or {}).get(label) for label in labels}
    degradation = len(kinds) == 2 and None not in depths and len(depths) > 1
    train = {label: _curve_frames(metrics.get(label), "metrics") for label in labels}
    held = {label: _curve_frames(evals.get(label), "eval") for label in labels}
    if not any(train[label] or held[label] for label in labels):
        return no_data_figure(title)
    styles = run_styles(labels, residual, depth)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09,
                        subplot_titles=("training loss (log scale)", "error = 100 x (1 - accuracy)"))
    smoothed_any = banded_any = False
    for label in labels:
        style = styles[label]
        frames = [df.assign(error=100 * (1 - df["accuracy"])) for df in train[label]]
        if len(frames) > 1:
            banded_any = True
            for col, column, hover in ((1, "loss", "mean loss %{y:.4g}"), (2, "error", "mean training error %{y:.2f}%")):
                band = _band(frames, column)
                if column == "loss":
                    band = band[(band["low"] > 0) & np.isfinite(band["high"])]
                fig.add_trace(go.Scatter(
                    x=[*band["step"], *band["step"][::-1]], y=[*band["high"], *band["low"][::-1]], fill="toself",
                    fillcolor=rgba(style["color"], 0.15), line=dict(width=0), hoverinfo="skip", showlegend=False,
                    legendgroup=label, name=f"{label} (seed range)"), row=1, col=col)
                _line(fig, band["step"], band["mean"], f"{label} (mean of {len(frames)} seeds)", style, col,
                      "step %{x:,}<br>epoch %{customdata:.2f}<br>" + hover, band["epoch"], showlegend=col == 1)
        elif frames:
            df = frames[0]
            epoch = df["epoch"] if "epoch" in df.columns else df["step"] * np.nan
            df = df.assign(epoch=epoch)
            for col, column, hover in ((1, "loss", "loss %{y:.4g}"), (2, "error", "training error %{y:.2f}%")):
                rows = _positive(df, column) if column == "loss" else df.dropna(subset=[column])
                smooth = _smooth(rows[column])
                hover = "step %{x:,}<br>epoch %{customdata:.2f}<br>" + hover
                if smooth is not None:
                    smoothed_any = True
                    _line(fig, rows["step"], rows[column], f"{label} (raw)", dict(style, width=1), col, hover,
                          rows["epoch"], opacity=0.25, showlegend=False)
                _line(fig, rows["step"], rows[column] if smooth is None else smooth, label, style, col,
                      hover + (" (smoothed)" if smooth is not None else ""), rows["epoch"], showlegend=col == 1)
        held_frames = [df.drop_duplicates("step", keep="last").assign(error=100 * (1 - df.drop_duplicates(
            "step", keep="last")["accuracy"])) for df in held[label]]
        if held_frames:
            name = f"{label} (held-out{', mean' if len(held_frames) > 1 else ''})"
            # error only, as the paper's Fig. 6: an early eval-mode loss (BN running statistics
            # still settling) can be 1000x the training loss and would flatten the loss panel
            band = _band(held_frames, "error").dropna(subset=["mean"])
            fig.add_trace(go.Scatter(
                x=list(band["step"]), y=list(band["mean"]), name=name, legendgroup=name,
                mode="lines+markers", line=dict(style, width=3), marker=dict(size=8, color=style["color"]),
                customdata=list(band["epoch"]),
                hovertemplate="step %{x:,}<br>epoch %{customdata:.2f}<br>held-out error %{y:.2f}%"
                              + f"<extra>{name}</extra>",
            ), row=1, col=2)
    note = "Thin lines: training"
    if smoothed_any:
        note += ", smoothed by a running mean (raw values faint)"
    if banded_any:
        note += "; shaded: lowest to highest seed"
    note += "; bold markers: held-out error." if evals else "."
    if finding:
        claim = finding
    elif degradation:
        claim = ("He et al. 2015: a deeper plain net (dashed) trains worse, with higher training error than "
                 "a shallower one; its residual twin (solid) does not.")
    elif len(kinds) == 2:
        claim = "Dashed: plain net (no shortcuts); solid: residual net."
    else:
        claim = ""
    subtitle = f"{wrap_subtitle(claim)}<br>{note}" if claim else note
    apply_layout(fig, f"{title}<br><sup>{subtitle}</sup>", rows=1)
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=1, **log_axis(fig, "y"))
    fig.update_yaxes(title_text="error (%)", ticksuffix="%", row=1, col=2)
    return fig


LIVE_MARKERS = 30  # the live chart marks its points while a run has fewer logged rows than this


def plot_live_loss(metrics: dict[str, list[dict]], residual: Residual,
                   depth: Mapping[str, int] | None = None) -> go.Figure:
    """A light live view of training runs: training loss against step, one panel, raw lines.

    Built for redrawing while runs train (no subplots, no smoothing, no held-out markers); the
    finished runs get `plot_training_curves`.

    Args:
        metrics: run label -> the metrics rows logged so far (dicts with "step" and "loss").
        residual: run label -> whether it is residual (its spec's `residual`; plain runs are dashed),
            or one bool for every run.
        depth: run label -> its spec's depth: runs of one depth share a colour.
    """
    styles = run_styles(metrics, residual, depth)
    fig = go.Figure()
    for label, rows in metrics.items():
        points = [(r["step"], r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float))
                  and math.isfinite(r["loss"]) and r["loss"] > 0]
        # markers while there are few points, so the first one (logged after step 1) is visible alone
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], name=label,
                                 mode="lines+markers" if len(points) < LIVE_MARKERS else "lines",
                                 line=styles[label], hovertemplate="step %{x:,}<br>loss %{y:.4g}<extra>" + label
                                 + "</extra>"))
    fig.update_layout(title=dict(text="Training loss so far (live; full curves when the runs end)", font=dict(size=16)),
                      height=360, margin=dict(l=70, r=30, t=60, b=50), plot_bgcolor="white",
                      xaxis=dict(title="training step", showgrid=True, gridcolor="#eee"),
                      yaxis=dict(title="cross-entropy loss (log scale)", showgrid=True, gridcolor="#eee",
                                 **log_axis(fig, "y")),
                      legend=dict(title=dict(text="run")))
    return fig


# --- residual norms ----------------------------------------------------------------------------

def plot_residual_norms(norms: dict[str, pd.DataFrame], step: int | None = None, *, residual: Residual,
                        depth: Mapping[str, int] | None = None) -> go.Figure:
    """||F(x)||, ||x|| and their ratio per residual unit at one step, overlaid runs (log y).

    x is the unit's position in the depth order of all runs' units, so twins line up unit by unit;
    hover shows the unit name. Plain runs have no shortcut and show ||F(x)|| only.

    Args:
        norms: run label -> residual_norms table (step, unit, stage, residual_norm, shortcut_norm, ratio).
        step: training step; None takes each run's latest; a run without it uses its nearest logged step.
        residual: run label -> whether it is residual (its spec's `residual`), or one bool for every run;
            plain runs are dashed and show ||F(x)|| only, even if their table has other columns.
        depth: run label -> its spec's depth: runs of one depth share a colour.
    """
    title = "Residual branch ||F(x)|| vs shortcut ||x|| across depth"
    columns = ("step", "unit", "residual_norm", "shortcut_norm", "ratio")
    runs: dict[str, pd.DataFrame] = {}
    chosen: dict[str, int] = {}
    for label, df in norms.items():
        df = _frame(df, columns, "residual_norms")
        if df is None:
            continue
        at, chosen[label] = _at_step(df, step)
        runs[label] = at.groupby("unit", as_index=False)[list(columns[2:])].mean()
    if not runs:
        return no_data_figure(title)
    order = _depth_order(name for df in runs.values() for name in df["unit"])
    styles = run_styles(norms, residual, depth)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("per-sample L2 norms (log scale)", "ratio ||F(x)|| / ||x|| (log scale)"))
    drawn = False
    for label, df in runs.items():
        style = styles[label]
        df = df.assign(pos=df["unit"].map(order)).sort_values("pos")
        panels = [(1, "residual_norm", label, style, "||F(x)||")]
        if is_residual(residual, label):
            panels += [(1, "shortcut_norm", f"{label}: ||x||", dict(style, dash="dot", width=1.5), "||x||"),
                       (2, "ratio", label, style, "||F(x)||/||x||")]
        for row, column, name, line, what in panels:
            rows = _positive(df, column)
            if rows.empty:
                continue
            drawn = True
            fig.add_trace(go.Scatter(
                x=list(rows["pos"]), y=list(rows[column]), name=name, legendgroup=label, line=line,
                mode="lines+markers", marker=dict(size=6, symbol="circle-open" if column == "shortcut_norm" else "circle"),
                customdata=list(rows["unit"]), showlegend=row == 1,
                hovertemplate=f"%{{customdata}}<br>{what} = %{{y:.3g}}<br>step {chosen[label]:,}<extra>{label}</extra>",
            ), row=row, col=1)
    if not drawn:
        return no_data_figure(title, f"{NO_DATA}: every norm is NaN or zero")
    _mark_stages(fig, order, rows=(1, 2))
    apply_layout(fig, f"{title}, {_step_text(chosen, step)}<br><sup>A small ratio means each unit adds a small change to "
                 "its input, the identity-mapping view of He et al. 2016.<br>Solid: ||F(x)|| of residual nets; dotted: "
                 "their ||x||; dashed: plain nets, which have F(x) only (no shortcut, no ratio).</sup>", rows=2)
    fig.update_yaxes(title_text="norm", row=1, col=1, **log_axis(fig, "y"))
    fig.update_yaxes(title_text="||F(x)|| / ||x||", row=2, col=1, **log_axis(fig, "y2"))
    fig.update_xaxes(title_text="residual unit (input -> output; hover for the name)", row=2, col=1)
    return fig


def plot_residual_heatmap(norms: pd.DataFrame, value: str = "ratio", title: str = "") -> go.Figure:
    """Heat-map of one residual-norm column: units (y, input at the top) x training step (x).

    Ratios and norms are coloured on a log scale (log10 values, colour-bar ticks in real values);
    NaN and non-positive entries are left blank.

    Args:
        norms: one run's residual_norms table.
        value: "ratio", "residual_norm" or "shortcut_norm" (any numeric column works; those three,
            and columns ending in "_norm", are log-scaled).
        title: figure title; empty gives a default naming the value.
    """
    what = VALUE_LABELS.get(value, value)
    title = title or f"{what} per residual unit during training"
    df = _frame(norms, ("step", "unit", value), "residual_norms")
    if df is None:
        return no_data_figure(title)
    log = value in _LOG_VALUES or value.endswith("_norm")
    grid = _grid(df, "unit", value)
    real = grid.to_numpy(dtype=float)
    z = _log10(real) if log else real
    zrange = _z_range([z])
    if zrange is None:
        why = " (plain nets have no shortcut, so no ||x|| or ratio)" if value in ("ratio", "shortcut_norm") else ""
        return no_data_figure(title, f"{NO_DATA}: no {'positive' if log else 'finite'} values of {value}{why}")
    names = list(grid.index)
    colorbar = dict(title=dict(text=what + ("<br>(log scale)" if log else ""), side="right"))
    if log:
        tickvals, ticktext = log_ticks(*zrange)
        colorbar.update(tickvals=tickvals, ticktext=ticktext)
    fig = go.Figure(go.Heatmap(
        x=list(grid.columns), y=names, z=z, customdata=real, zmin=zrange[0], zmax=zrange[1],
        colorscale=HEATMAP_SCALE, colorbar=colorbar, hoverongaps=False,
        hovertemplate=f"%{{y}}<br>step %{{x:,}}<br>{what} = %{{customdata:.3g}}<extra></extra>",
    ))
    note = ("Dark rows: units whose branch barely changes its input." if value == "ratio"
            else "Watch how the norms grow or shrink with depth and over training.")
    apply_layout(fig, f"{title}<br><sup>Rows are residual units, input side at the top; colour is "
                 f"{'log-scaled' if log else 'linear'}; blank cells have no value.<br>{note}</sup>", rows=1,
            height=max(TITLE_MARGIN + ROW_HEIGHT, min(900, TITLE_MARGIN + 60 + 14 * len(names))))
    fig.update_layout(plot_bgcolor="#f4f4f4", margin_l=_row_label_px([names]) + 50)  # labels, then the axis title
    fig.update_xaxes(title_text="training step", showgrid=False, tickformat="d")  # whole steps
    fig.update_yaxes(title_text="residual unit", title_standoff=8, automargin=True, autorange="reversed",
                     showgrid=False, **_category_ticks(names))
    return fig


# --- gradient flow -----------------------------------------------------------------------------

def _unit_or_name(name: str) -> str:
    """The residual unit a layer belongs to; layers outside the stages stay themselves."""
    return unit_of(name) or name


def _stage_or_name(name: str) -> str:
    """The stage a layer belongs to; layers outside the stages stay themselves."""
    return stage_of(name) or name


_AGGREGATIONS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("layer", str), ("residual unit", _unit_or_name), ("stage", _stage_or_name),
)


def _aggregate(df: pd.DataFrame, value: str, group: Callable[[str], str]) -> pd.DataFrame:
    """Merge layers into groups (units or stages), per step.

    Norms combine as the norm of the concatenated tensors, sqrt(sum of squares); update_ratio as
    ||dW|| / ||W|| of the group (recovered through weight_norm); anything else as the mean.
    """
    df = df.assign(layer=df["layer"].map(group))
    keys = [df["layer"], df["step"]]
    if value.endswith("_norm"):
        out = np.sqrt((df[value] ** 2).groupby(keys).sum(min_count=1))
    elif value == "update_ratio" and "weight_norm" in df.columns:
        weight = pd.to_numeric(df["weight_norm"], errors="coerce")
        valid = np.isfinite(df[value]) & np.isfinite(weight)
        update_sq = ((df[value] * weight) ** 2).where(valid).groupby(keys).sum(min_count=1)
        weight_sq = (weight ** 2).where(valid).groupby(keys).sum(min_count=1)
        out = np.sqrt(update_sq / weight_sq)
    else:
        out = df[value].groupby(keys).mean()
    return out.rename(value).reset_index()


def plot_grad_flow_heatmap(grad: dict[str, pd.DataFrame], value: str = "grad_norm", max_rows: int = 200) -> go.Figure:
    """Gradient flow across depth: one heat-map per run (layer x step), one shared log colour scale.

    When a run has more layers than `max_rows`, every run is merged per residual unit (and per stage
    if that is still too many), so the shared colour scale compares like with like; subplot titles
    say so. Norms merge as sqrt(sum of squares), means as the mean.

    Args:
        grad: run label -> grad_flow table (step, layer, grad_norm, grad_abs_mean, weight_norm, update_ratio).
        value: the column to colour by.
        max_rows: most rows per heat-map before layers are merged.
    """
    what = VALUE_LABELS.get(value, value)
    title = f"Gradient flow across depth: {what}"
    runs = {label: df for label, df in ((label, _frame(df, ("step", "layer", value), "grad_flow"))
                                        for label, df in grad.items()) if df is not None}
    if not runs:
        return no_data_figure(title)
    counts = {label: df["layer"].nunique() for label, df in runs.items()}
    level = 0
    for df in runs.values():
        while level < len(_AGGREGATIONS) - 1 and df["layer"].map(_AGGREGATIONS[level][1]).nunique() > max_rows:
            level += 1
    level_name, group = _AGGREGATIONS[level]
    grids = {}
    for label, df in runs.items():
        merged = _aggregate(df, value, group) if level else df
        grid = _grid(merged, "layer", value)
        grids[label] = (grid, _log10(grid.to_numpy(dtype=float)))
    zrange = _z_range(z for _, z in grids.values())
    if zrange is None:
        return no_data_figure(title, f"{NO_DATA}: no positive values of {value}")
    tickvals, ticktext = log_ticks(*zrange)
    subtitles = [label if not level else f"{label}<br><sup>per {level_name}: {counts[label]} layers -> "
                 f"{len(grids[label][0])} rows</sup>" for label in grids]
    # room for the longest row label ("layer1.0.downsample.0") left of each panel: not clipped, not under the
    # axis title, not over the panel beside it
    label_px = _row_label_px([list(grid.index) for grid, _ in grids.values()])
    plot_px = CHART_PX - (label_px + 50) - 30 - 110  # less the margins and the colour bar
    fig = make_subplots(rows=1, cols=len(grids), subplot_titles=subtitles,
                        horizontal_spacing=min(0.4, (label_px + 20) / plot_px))
    for i, (label, (grid, z)) in enumerate(grids.items(), start=1):
        names = list(grid.index)
        fig.add_trace(go.Heatmap(
            x=list(grid.columns), y=names, z=z, customdata=grid.to_numpy(dtype=float), name=label,
            zmin=zrange[0], zmax=zrange[1], colorscale=HEATMAP_SCALE, showscale=i == len(grids),
            colorbar=dict(title=dict(text=f"{what}<br>(log scale)", side="right"), tickvals=tickvals,
                          ticktext=ticktext),
            hoverongaps=False,
            hovertemplate=f"%{{y}}<br>step %{{x:,}}<br>{what} = %{{customdata:.3g}}<extra>{label}</extra>",
        ), row=1, col=i)
        fig.update_yaxes(autorange="reversed", showgrid=False, row=1, col=i, **_category_ticks(names))
    apply_layout(fig, f"{title}<br><sup>Rows run from the input (top) to the output; one colour scale for all runs, dark = "
                 "small. Vanishing gradients show as a dark band near the input,<br>expected in deep plain nets; "
                 "He et al. 2015 report that BN keeps them mostly healthy, so compare the twins side by side.</sup>",
            rows=1, height=TITLE_MARGIN + 440)
    fig.update_layout(plot_bgcolor="#f4f4f4", margin_t=TITLE_MARGIN + (20 if level else 0),
                      margin_l=label_px + 50)  # labels, then the axis title beside them
    fig.update_xaxes(title_text="training step", showgrid=False, tickformat="d")  # whole steps
    fig.update_yaxes(automargin=True, ticklabelstandoff=4)
    fig.update_yaxes(title_text=level_name, title_standoff=8, row=1, col=1)
    return fig


def _has_weights(name: str) -> bool:
    """Conv and linear layers: not BN, not the BN of a projection shortcut (downsample.1)."""
    return "bn" not in name and not name.endswith("downsample.1")


def plot_grad_flow_profile(grad: dict[str, pd.DataFrame], step: int | None = None, value: str = "grad_norm",
                           weights_only: bool = True, *, residual: Residual,
                           depth: Mapping[str, int] | None = None) -> go.Figure:
    """One line per run: `value` per layer at one step, input to output (log y).

    x is the layer's position in the depth order of all runs' layers, so twins line up; hover
    shows the name. Zero and NaN values are dropped (a log axis cannot show them).

    Args:
        grad: run label -> grad_flow table.
        step: training step; None takes each run's latest; a run without it uses its nearest logged step.
        value: the column to draw.
        weights_only: keep conv and linear layers only, so the line does not zig-zag between BN and conv.
        residual: run label -> whether it is residual (its spec's `residual`; plain runs are dashed),
            or one bool for every run.
        depth: run label -> its spec's depth: runs of one depth share a colour.
    """
    what = VALUE_LABELS.get(value, value)
    title = f"Gradient flow across depth: {what} per layer"
    runs: dict[str, pd.DataFrame] = {}
    chosen: dict[str, int] = {}
    for label, df in grad.items():
        df = _frame(df, ("step", "layer", value), "grad_flow")
        if df is None:
            continue
        at, chosen[label] = _at_step(df, step)
        at = at.groupby("layer", as_index=False)[value].mean()
        if weights_only:
            at = at[at["layer"].map(_has_weights)]
        runs[label] = _positive(at, value)
    if not any(len(df) for df in runs.values()):
        return no_data_figure(title, NO_DATA if not runs else f"{NO_DATA}: no positive values of {value}")
    order = _depth_order(name for df in runs.values() for name in df["layer"])
    styles = run_styles(grad, residual, depth)
    fig = make_subplots(rows=1, cols=1)
    for label, df in runs.items():
        if df.empty:
            continue
        df = df.assign(pos=df["layer"].map(order)).sort_values("pos")
        fig.add_trace(go.Scatter(
            x=list(df["pos"]), y=list(df[value]), name=label, line=styles[label], mode="lines+markers",
            marker=dict(size=5), customdata=list(df["layer"]),
            hovertemplate=f"%{{customdata}}<br>{what} = %{{y:.3g}}<br>step {chosen[label]:,}<extra>{label}</extra>",
        ))
    _mark_stages(fig, order, rows=(1,))
    layers = "conv and linear layers" if weights_only else "all layers"
    apply_layout(fig, f"{title}, {_step_text(chosen, step)}<br><sup>{layers.capitalize()} from input (left) to output. "
                 "A line falling toward the input means gradients vanish on the way back;<br>compare a deep plain net "
                 "(dashed) with its residual twin (solid), whose shortcuts carry the gradient straight through.</sup>",
            rows=1)
    fig.update_yaxes(title_text=what, **log_axis(fig, "y"))
    fig.update_xaxes(title_text=f"{layers[:-1]} (input -> output; hover for the name)")
    return fig


# --- layer responses ---------------------------------------------------------------------------

def plot_responses(responses: dict[str, pd.DataFrame], step: int | None = None, *, residual: Residual,
                   depth: Mapping[str, int] | None = None, finding: str | None = None) -> go.Figure:
    """Std of each 3x3 layer's BN output, in depth order and sorted (He et al. 2015, Fig. 7).

    The y axes are linear, as in the paper; NaN stds are dropped.

    Args:
        responses: run label -> responses table (step, layer, std).
        step: training step; None takes each run's latest; a run without it uses its nearest logged step.
        residual: run label -> whether it is residual (its spec's `residual`; plain runs are dashed),
            or one bool for every run.
        depth: run label -> its spec's depth: runs of one depth share a colour.
        finding: what these runs show (`findings.responses_finding`); the subtitle gives the paper's
            claim as the paper's, and this after it.
    """
    title = "Layer responses (He et al. 2015, Fig. 7)"
    runs: dict[str, pd.DataFrame] = {}
    chosen: dict[str, int] = {}
    for label, df in responses.items():
        df = _frame(df, ("step", "layer", "std"), "responses")
        if df is None:
            continue
        at, chosen[label] = _at_step(df, step)
        at = at.groupby("layer", as_index=False)["std"].mean()
        runs[label] = at[np.isfinite(at["std"])]
    if not any(len(df) for df in runs.values()):
        return no_data_figure(title)
    order = _depth_order(name for df in runs.values() for name in df["layer"])
    styles = run_styles(responses, residual, depth)
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.13,
                        subplot_titles=("in depth order", "sorted by magnitude (descending)"))
    for label, df in runs.items():
        if df.empty:
            continue
        df = df.assign(pos=df["layer"].map(order)).sort_values("pos")
        ranked = df.sort_values("std", ascending=False, kind="stable")
        for row, rows, x in ((1, df, df["pos"]), (2, ranked, range(1, len(ranked) + 1))):
            fig.add_trace(go.Scatter(
                x=list(x), y=list(rows["std"]), name=label, legendgroup=label, line=styles[label],
                mode="lines+markers", marker=dict(size=5), customdata=list(rows["layer"]), showlegend=row == 1,
                hovertemplate=f"%{{customdata}}<br>std = %{{y:.3g}}<br>step {chosen[label]:,}<extra>{label}</extra>",
            ), row=row, col=1)
    _mark_stages(fig, order, rows=(1,))
    claim = ("Std of each 3x3 layer's output after BN, before the addition and ReLU. He et al. 2015 found residual "
             "functions' responses (solid) generally smaller than plain nets' (dashed)."
             + (f" Here: {finding}" if finding else ""))
    apply_layout(fig, f"{title}, {_step_text(chosen, step)}<br><sup>{wrap_subtitle(claim)}</sup>", rows=2)
    fig.update_yaxes(title_text="std of response", rangemode="tozero")
    fig.update_xaxes(title_text="3x3 layer (input -> output; hover for the name)", row=1, col=1)
    fig.update_xaxes(title_text="rank of the layer's std (1 = largest)", row=2, col=1)
    return fig
