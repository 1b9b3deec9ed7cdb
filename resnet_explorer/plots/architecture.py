"""The block graph and per-stage figures (Architecture page); colours from `style`."""

from __future__ import annotations

from collections.abc import Iterable

import plotly.graph_objects as go

from ..graph import BlockGraph, Node
from .style import OTHER_COLOUR, SKIP_STYLE, STAGE_COLOURS

__all__ = ["AUTO_EXPAND_UNITS", "default_expanded", "si_count", "plot_block_graph", "plot_stage_bars"]

AUTO_EXPAND_UNITS = 36


def si_count(n: float) -> str:
    """A count with an SI suffix, 3 significant digits: 12345678 -> '12.3M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def default_expanded(graph: BlockGraph, limit: int = AUTO_EXPAND_UNITS) -> set[int]:
    """Every stage when the net has at most `limit` units, else none (collapsed)."""
    return set(range(1, graph.num_stages + 1)) if len(graph.units()) <= limit else set()


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _hover(node: Node) -> str:
    lines = [f"<b>{node.id}</b> ({node.module})", f"{_shape(node.in_shape)} -> {_shape(node.out_shape)}"]
    if node.kind == "unit":
        lines.append(f"stride {node.stride}, shortcut: {node.shortcut.replace('_', '-')}")
    lines += [f"params {node.params:,}", f"MACs {node.macs:,}"]
    if node.shortcut_params:
        lines.append(f"(shortcut params {node.shortcut_params:,})")
    return "<br>".join(lines)


def _arc(x0: float, x1: float, height: float, steps: int = 16) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i in range(steps + 1):
        t = i / steps
        xs.append(x0 + (x1 - x0) * t)
        ys.append(height * 4 * t * (1 - t))
    return xs, ys


def plot_block_graph(graph: BlockGraph, expanded: Iterable[int] | None = None, height: int = 420) -> go.Figure:
    """The block graph: main path left to right, each shortcut an arc over its unit.

    Args:
        graph: from `build_graph`.
        expanded: stage numbers (1-based) drawn unit by unit; the others collapse to one box
            "layerK x N units". None picks `default_expanded`.
        height: figure height in pixels.
    """
    expanded = default_expanded(graph) if expanded is None else set(expanded)
    xs: dict[str, float] = {}
    points: list[tuple[float, str, str, str, str]] = []  # x, label, hover, colour, symbol
    arcs: dict[str, tuple[list, list, list]] = {k: ([], [], []) for k in SKIP_STYLE}
    stage_spans: list[tuple[int, float, float]] = []
    labels: list[tuple[float, float, str, str]] = []  # count labels on collapsed arcs
    x = 0.0

    def add_arc(kind: str, x0: float, x1: float, hover: str, height_: float = 0.6) -> None:
        ax, ay = _arc(x0, x1, height_)
        arcs[kind][0].extend(ax + [None])
        arcs[kind][1].extend(ay + [None])
        arcs[kind][2].extend([hover] * len(ax) + [None])

    for node in graph.nodes:
        if node.kind != "unit":
            xs[node.id] = x
            points.append((x, node.label if node.kind != "pool" else "pool", _hover(node), OTHER_COLOUR, "square"))
            x += 1
            continue
        stage = node.stage
        colour = STAGE_COLOURS[(stage - 1) % len(STAGE_COLOURS)]
        units = graph.units(stage)
        if stage in expanded:
            xs[node.id] = x
            label = f"{stage}.{node.id.split('.')[1]}"
            points.append((x, label, _hover(node), colour, "square"))
            if node.shortcut in SKIP_STYLE:
                add_arc(node.shortcut, x - 1, x, f"{node.id}: {SKIP_STYLE[node.shortcut][1]}")
            if node is units[0]:
                stage_spans.append((stage, x - 0.45, x))
            if node is units[-1]:
                stage_spans[-1] = (stage, stage_spans[-1][1], x + 0.45)
            x += 1
        elif node is units[0]:
            params = sum(u.params for u in units)
            macs = sum(u.macs for u in units)
            skips = graph.skip_counts(stage)
            hover = "<br>".join([
                f"<b>layer{stage}</b>: {len(units)} units of {node.module}",
                f"{_shape(units[0].in_shape)} -> {_shape(units[-1].out_shape)}",
                f"params {params:,}", f"MACs {macs:,}",
                "skips: " + (", ".join(f"{v} {k.replace('_', '-')}" for k, v in skips.items() if v) or "none"),
            ])
            x += 0.3  # a collapsed stage is wider, so its label fits
            xs[node.id] = x
            points.append((x, f"layer{stage}<br>x {len(units)}", hover, colour, "square"))
            drawn = 0
            for kind, count in skips.items():
                if count:
                    top = 0.45 + 0.22 * drawn
                    add_arc(kind, x - 0.38, x + 0.38, f"layer{stage}: {count} x {SKIP_STYLE[kind][1]}", top)
                    labels.append((x, top, f"{count}x", SKIP_STYLE[kind][0]))
                    drawn += 1
            stage_spans.append((stage, x - 0.7, x + 0.7))
            x += 1.3

    fig = go.Figure()
    for stage, x0, x1 in stage_spans:
        colour = STAGE_COLOURS[(stage - 1) % len(STAGE_COLOURS)]
        units = graph.units(stage)
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=-0.35, y1=1.15, line_width=0, fillcolor=colour,
                      opacity=0.08, layer="below")
        fig.add_annotation(x=(x0 + x1) / 2, y=1.12, showarrow=False, font_size=12, yanchor="bottom",
                           text=f"<b>layer{stage}</b><br>{len(units)} units<br>{_shape(units[-1].out_shape)}")
    for lx, ly, text, colour in labels:
        fig.add_annotation(x=lx, y=ly + 0.02, text=text, showarrow=False, font=dict(size=11, color=colour),
                           yanchor="bottom")
    px = [p[0] for p in points]
    fig.add_trace(go.Scatter(x=px, y=[0] * len(px), mode="lines", line=dict(color="#444", width=2),
                             hoverinfo="skip", name="main path (residual branch F)"))
    for kind, (ax, ay, ah) in arcs.items():
        if ax:
            colour, label = SKIP_STYLE[kind]
            fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", line=dict(color=colour, width=2), name=label,
                                     text=ah, hoverinfo="text"))
    many = len(points) > 40
    fig.add_trace(go.Scatter(
        x=px, y=[0] * len(px), mode="markers" if many else "markers+text", name="units",
        marker=dict(size=[26 if "<br>x" in p[1] else 16 for p in points], color=[p[3] for p in points],
                    symbol="square", line=dict(color="white", width=1)),
        text=[p[1] for p in points], textposition="bottom center", hovertext=[p[2] for p in points],
        hoverinfo="text", showlegend=False,
    ))
    spec = graph.spec
    kind = "residual net" if spec.residual else "plain net (no shortcuts)"
    fig.update_layout(
        title=dict(text=(
            f"{spec.label}: {spec.depth} layers, {graph.total_params:,} parameters, "
            f"{si_count(graph.total_macs)} MACs at {graph.input_size}x{graph.input_size}"
            f"<br><sup>Block graph of the {kind}: boxes are residual units, arcs the shortcuts that carry x past F(x)."
            "<br>The plain twin has the same boxes and no arcs. Hover a box for shapes and counts.</sup>"
        )),
        height=height, margin=dict(l=20, r=20, t=105, b=20), plot_bgcolor="white",
        xaxis=dict(visible=False, range=[-0.8, max(px) + 0.8]), yaxis=dict(visible=False, range=[-0.7, 1.75]),
        legend=dict(orientation="h", yanchor="top", y=-0.02, xanchor="left", x=0),
        hoverlabel=dict(align="left"),
    )
    return fig


def plot_stage_bars(rows_a: list[dict], rows_b: list[dict] | None = None, names: tuple[str, str] = ("", "")) -> go.Figure:
    """Parameters per stage, optionally beside a second net's (e.g. the plain twin)."""
    fig = go.Figure()
    for rows, name in ((rows_a, names[0]), (rows_b, names[1])):
        if rows:
            fig.add_trace(go.Bar(x=[r["stage"] for r in rows], y=[r["params"] for r in rows], name=name,
                                 hovertemplate="%{x}: %{y:,} params<extra>" + name + "</extra>"))
    fig.update_layout(
        title="Parameters per stage<br><sup>Most parameters sit in the last, widest stage; "
              "compute (MACs) is spread evenly because resolution halves as width doubles.</sup>",
        yaxis_title="parameters", barmode="group", height=320, margin=dict(t=70, b=40),
    )
    return fig
