"""The look every figure shares: page layout, colours, run line styles, log axes and the no-data figure.

Run styles follow one rule in every figure: a plain net (no shortcuts) is dashed, a residual net
solid; runs of the same depth (a net and its plain twin) share a hue, and repeats of the same depth
and kind get lighter shades of it. Which runs are residual is always given (from each run's spec),
never read from a label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "FAMILY_COLOURS", "HEATMAP_SCALE", "NO_DATA", "OTHER_COLOUR", "ROW_HEIGHT", "Residual", "SKIP_STYLE",
    "STAGE_COLOURS", "TITLE_MARGIN", "apply_layout", "hex_rgb", "is_residual", "lighten", "log_axis", "log_ticks",
    "log_tick_values", "no_data_figure", "rgba", "run_styles", "tick_text", "wrap_subtitle",
]

NO_DATA = "no data yet"
ROW_HEIGHT = 380  # px per row of panels; the title margin comes on top
TITLE_MARGIN = 130
FAMILY_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
HEATMAP_SCALE = "Viridis"  # dark = small, so vanishing gradients read as a dark band
# Block graph (architecture figures): shortcut kinds, stages and the modules outside the stages.
SKIP_STYLE: dict[str, tuple[str, str]] = {
    "identity": ("#2ca02c", "identity shortcut (x)"),
    "projection": ("#ff7f0e", "projection shortcut (1x1 conv)"),
    "zero_pad": ("#9467bd", "zero-pad shortcut (option A)"),
}
STAGE_COLOURS = ("#636efa", "#00a6a6", "#ef553b", "#ab63fa", "#f5a623", "#19d3f3")
OTHER_COLOUR = "#7f7f7f"

Residual = Mapping[str, bool] | bool  # run label -> its spec's `residual`, or one bool for every run


# --- colours -----------------------------------------------------------------------------------

def hex_rgb(colour: str) -> tuple[int, int, int]:
    """'#1f77b4' -> (31, 119, 180)."""
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def lighten(colour: str, amount: float) -> str:
    """A '#rrggbb' colour moved `amount` (0..1) of the way to white."""
    r, g, b = (round(c + (255 - c) * amount) for c in hex_rgb(colour))
    return f"#{r:02x}{g:02x}{b:02x}"


def rgba(colour: str, alpha: float) -> str:
    """'#rrggbb' -> 'rgba(r,g,b,alpha)' (a translucent fill)."""
    r, g, b = hex_rgb(colour)
    return f"rgba({r},{g},{b},{alpha})"


# --- runs --------------------------------------------------------------------------------------

def is_residual(residual: Residual, label: str) -> bool:
    """Whether the run `label` is residual: `residual` maps every run's label to its spec's `residual`,
    or is one bool for all runs.

    Raises:
        ValueError: the mapping has no entry for `label`.
    """
    if isinstance(residual, bool):
        return residual
    try:
        return bool(residual[label])
    except KeyError:
        raise ValueError(f"residual has no entry for run {label!r}: pass each run's spec.residual") from None


def run_styles(labels: Iterable[str], residual: Residual,
               depth: Mapping[str, int] | None = None) -> dict[str, dict]:
    """Line style per run: plain dashed, residual solid; runs of the same depth share a hue.

    Args:
        labels: the runs' display labels, in drawing order.
        residual: run label -> whether it is residual (its spec's `residual`), or one bool for all.
        depth: run label -> its depth (its spec's `depth`), so a net and its plain twin share a hue; a run
            without one gets a hue of its own. Repeated runs of the same depth and kind get lighter shades.

    Raises:
        ValueError: `residual` lacks a label.
    """
    depth = depth or {}
    families: dict[object, int] = {}
    seen: dict[tuple[object, bool], int] = {}
    styles = {}
    for label in labels:
        family = ("depth", depth[label]) if label in depth else ("run", label)
        hue = families.setdefault(family, len(families))
        plain = not is_residual(residual, label)
        repeat = seen.get((family, plain), 0)
        seen[(family, plain)] = repeat + 1
        colour = lighten(FAMILY_COLOURS[hue % len(FAMILY_COLOURS)], min(0.6, 0.25 * repeat))
        styles[label] = dict(color=colour, dash="dash" if plain else "solid", width=2)
    return styles


# --- layout ------------------------------------------------------------------------------------

def no_data_figure(title: str, message: str = NO_DATA) -> go.Figure:
    """An empty figure with `title` that says `message` in its middle."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=18, color="#666"))
    fig.update_layout(title=dict(text=title), height=320, plot_bgcolor="white",
                      xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(t=80))
    return fig


def apply_layout(fig: go.Figure, title: str, rows: int, height: int | None = None) -> None:
    """The shared layout: a title with <br><sup> subtitle lines, `rows` rows of panels, light grids."""
    top = max(TITLE_MARGIN, 58 + 24 * title.count("<br>"))  # room for every subtitle line
    height = height or top + ROW_HEIGHT * rows
    fig.update_layout(
        # "bottom" pins the first line's baseline 34 px from the top; plotly's "top" mis-measures
        # multi-line titles and clips them, and its default centring pushes <sup> lines into the plot.
        title=dict(text=title, font=dict(size=18), yref="container", y=1 - 34 / height, yanchor="bottom"),
        height=height,
        margin=dict(l=70, r=30, t=top, b=60), font=dict(size=13), plot_bgcolor="white",
        hoverlabel=dict(align="left"), legend=dict(title=dict(text="run")),
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False, showline=True, linecolor="#888")
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False, showline=True, linecolor="#888")


def wrap_subtitle(text: str, width: int = 130) -> str:
    """Break a subtitle into <br>-separated lines of at most ~`width` characters (plotly does not wrap)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


# --- log scales --------------------------------------------------------------------------------

def log_axis(fig: go.Figure, axis: str) -> dict:
    """Log y-axis settings with ticks placed and labelled here, never plotly's bare minor digits
    ("4, 3, 2, 1, 9, 8"): decades and 2 and 5 times them ("0.1, 0.2, 0.5, 1"), whole decades only
    when the traces on `axis` span more than 3 of them, and a few evenly spaced round values
    ("0.3, 0.4, 0.5") when they span too little for three 1-2-5 ticks.
    """
    values = [v for t in fig.data if (t.yaxis or "y") == axis and t.y is not None for v in t.y
              if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    if not values:
        return dict(type="log")
    tickvals = log_tick_values(min(values), max(values))
    return dict(type="log", tickmode="array", tickvals=tickvals, ticktext=[tick_text(v) for v in tickvals])


def log_tick_values(low: float, high: float) -> list[float]:
    """Tick values (data units) for a log axis over `low`..`high` (both > 0); see `log_axis`."""
    if high <= low * (1 + 1e-9):  # one value: one tick on it
        return [low]
    lo, hi = math.log10(low), math.log10(high)
    span = hi - lo
    pad = max(0.05 * span, 1e-9)  # plotly's autorange pads the axis a little: ticks just outside still show
    mantissas = (1,) if span > 3 else (1, 2, 5)
    vals = [m * 10.0 ** k for k in range(math.floor(lo - pad), math.ceil(hi + pad) + 1) for m in mantissas]
    vals = [v for v in vals if lo - pad <= math.log10(v) <= hi + pad]
    if len(vals) > 10:  # 2 to 3 decades of 1-2-5: whole decades read better
        vals = [v for v in vals if round(math.log10(v), 9).is_integer()]
        vals = vals[::math.ceil(len(vals) / 10)]  # very wide: every second (third, ...) decade
    if len(vals) >= 3:
        return vals
    # under a decade: round, evenly spaced values (0.3, 0.4, 0.5), about five of them
    raw = (high - low) / 4 if high > low else abs(high) / 4 or 1.0
    scale = 10.0 ** math.floor(math.log10(raw))
    step = next(m * scale for m in (1, 2, 2.5, 5, 10) if m * scale >= raw)
    first = math.ceil(low / step) * step
    vals = [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]
    vals = [v for v in vals if v > 0]
    return [float(f"{v:.12g}") for v in vals] or [low]


def tick_text(value: float) -> str:
    """A tick label in real values: 0.02, 5, 20000, 1e-5 (exponents below 1e-4 and from 1e6)."""
    text = f"{value:.6g}" if 1e-4 <= abs(value) < 1e6 else f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def log_ticks(zmin: float, zmax: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks for log10 values from `zmin` to `zmax`: at 1-2-5 steps (whole decades when the
    range is wide), labelled in real values."""
    for mantissas in ((1, 2, 5), (1,)):
        vals = [k + math.log10(m) for k in range(math.floor(zmin), math.ceil(zmax) + 1) for m in mantissas]
        vals = [v for v in vals if zmin - 1e-9 <= v <= zmax + 1e-9]
        if len(vals) <= 8:
            break
    vals = vals[::max(1, math.ceil(len(vals) / 8))]
    if len(vals) < 3:  # less than one 1-2-5 step wide: evenly spaced ticks instead
        vals = list(np.linspace(zmin, zmax, 5))
    return vals, [f"{10 ** v:.3g}" for v in vals]
