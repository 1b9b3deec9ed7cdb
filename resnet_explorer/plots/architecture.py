"""The block graph and per-stage figures (Architecture page); colours from `style`."""

from __future__ import annotations

from collections.abc import Iterable

import plotly.graph_objects as go

from ..models.graph import BlockGraph, Node
from .style import OTHER_COLOUR, SKIP_STYLE, STAGE_COLOURS, wrap_subtitle

__all__ = ["AUTO_EXPAND_UNITS", "MAX_DRAWN_UNITS", "default_expanded", "si_count", "plot_block_graph",
           "plot_stage_bars"]

AUTO_EXPAND_UNITS = 36
MAX_DRAWN_UNITS = 12  # the Architecture page's default: units drawn per expanded stage, the rest elided
CHART_PX, CHAR_PX = 880, 6.5  # the chart's width on a 1400 px page beside the sidebar; a label character at 12 px
GAP_WIDTH = 1.6  # x units taken by the "... N hidden ..." gap of an elided stage


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


def _shown_units(count: int, max_units: int | None) -> tuple[range, range]:
    """Indices drawn of a stage with `count` units: (first ones, last ones); all in the first when they fit."""
    if max_units is None or count <= max(max_units, 2):
        return range(count), range(count, count)
    head = (max_units + 1) // 2
    return range(head), range(count - (max_units - head), count)


def plot_block_graph(graph: BlockGraph, expanded: Iterable[int] | None = None, height: int = 420,
                     max_units: int | None = None) -> go.Figure:
    """The block graph: main path left to right, each shortcut an arc over its unit.

    Args:
        graph: from `build_graph`.
        expanded: stage numbers (1-based) drawn unit by unit; the others collapse to one box
            "layerK x N units". None picks `default_expanded`.
        height: figure height in pixels.
        max_units: at most this many units drawn per expanded stage: the first and last few, with a
            "... N ..." gap between them (its hover names the hidden units), so a 200-unit stage stays legible. None draws every unit.
    """
    expanded = default_expanded(graph) if expanded is None else set(expanded)
    xs: dict[str, float] = {}
    points: list[tuple[float, str, str, str, str]] = []  # x, label, hover, colour, symbol
    arcs: dict[str, tuple[list, list, list]] = {k: ([], [], []) for k in SKIP_STYLE}
    stage_spans: list[tuple[int, float, float]] = []
    labels: list[tuple[float, float, str, str]] = []  # count labels on collapsed arcs
    gaps: list[tuple[float, str, str]] = []  # x, text, hover of the elided runs of units
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
            index = units.index(node)
            head, tail = _shown_units(len(units), max_units)
            if index not in head and index not in tail:
                continue
            if len(tail) and index == tail[0]:  # the first unit after the hidden ones
                hidden = tail[0] - len(head)
                x += GAP_WIDTH / 2 - 0.5
                gaps.append((x, f"… {hidden} …",
                             f"layer{stage}: units {len(head)} to {tail[0] - 1} not drawn ({hidden} units)"))
                x += GAP_WIDTH / 2 + 0.5
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
            x += 0.5  # a collapsed stage is wider, so its label fits
            xs[node.id] = x
            points.append((x, f"layer{stage}<br>x {len(units)}", hover, colour, "square"))
            drawn = 0
            for kind, count in skips.items():
                if count:
                    top = 0.45 + 0.22 * drawn
                    add_arc(kind, x - 0.38, x + 0.38, f"layer{stage}: {count} x {SKIP_STYLE[kind][1]}", top)
                    labels.append((x, top, f"{count}x", SKIP_STYLE[kind][0]))
                    drawn += 1
            stage_spans.append((stage, x - 0.9, x + 0.9))
            x += 1.5

    fig = go.Figure()
    for stage, x0, x1 in stage_spans:
        colour = STAGE_COLOURS[(stage - 1) % len(STAGE_COLOURS)]
        units = graph.units(stage)
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=-0.35, y1=1.15, line_width=0, fillcolor=colour,
                      opacity=0.08, layer="below")
        fig.add_annotation(x=(x0 + x1) / 2, y=1.12, showarrow=False, font_size=12, yanchor="bottom",
                           text=f"<b>layer{stage}</b><br>{len(units)} units<br>{_shape(units[-1].out_shape)}")
    for gx, text, hover in gaps:
        fig.add_annotation(x=gx, y=0, text=text, showarrow=False, font=dict(size=11, color="#444"),
                           bgcolor="white", hovertext=hover, name="hidden units")
    for lx, ly, text, colour in labels:
        fig.add_annotation(x=lx, y=ly + 0.02, text=text, showarrow=False, font=dict(size=11, color=colour),
                           yanchor="bottom")
    px = [p[0] for p in points]
    fig.add_trace(go.Scatter(x=px, y=[0] * len(px), mode="lines", line=dict(color="#444", width=2),
                             hoverinfo="skip",
                             name="main path (residual branch F)" if graph.spec.residual else "main path (F)"))
    for kind, (ax, ay, ah) in arcs.items():
        if ax:
            colour, label = SKIP_STYLE[kind]
            fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", line=dict(color=colour, width=2), name=label,
                                     text=ah, hoverinfo="text"))
    many = len(points) > 40
    # at a ~1000 px wide chart, keep a unit's label only where it clears the last one kept ("1.194 1.195" would run
    # together); collapsed stages and the stem, pool and fc always keep theirs
    px_per_x = CHART_PX / (max(px) + 1.6)
    texts, last_right = [], -1e9
    for x_, label, *_ in points:
        half = (CHAR_PX * max(map(len, label.split("<br>"))) + 6) / 2
        keep = "." not in label or x_ * px_per_x - half >= last_right
        texts.append(label if keep else "")
        if keep:
            last_right = x_ * px_per_x + half
    fig.add_trace(go.Scatter(
        x=px, y=[0] * len(px), mode="markers" if many else "markers+text", name="units",
        marker=dict(size=[26 if "<br>x" in p[1] else 16 for p in points], color=[p[3] for p in points],
                    symbol="square", line=dict(color="white", width=1)),
        text=texts, textposition="bottom center", hovertext=[p[2] for p in points],
        hoverinfo="text", showlegend=False,
    ))
    spec = graph.spec
    if spec.residual:
        subtitle = ("Block graph of the residual net: boxes are residual units, arcs the shortcuts that carry x "
                    "past F(x).<br>The plain twin has the same boxes and no arcs.")
    else:
        subtitle = ("Block graph of the plain net (no shortcuts): boxes are its units, each passing only F(x) on.<br>"
                    "The residual twin has the same boxes plus an arc (shortcut) over each.")
    fig.update_layout(
        title=dict(text=(
            f"{spec.label}: {spec.depth} layers, {graph.total_params:,} parameters, "
            f"{si_count(graph.total_macs)} MACs at {graph.input_size}x{graph.input_size}"
            f"<br><sup>{subtitle} Hover a box for shapes and counts.</sup>"
        )),
        height=height, margin=dict(l=20, r=20, t=105, b=20), plot_bgcolor="white",
        xaxis=dict(visible=False, range=[-0.8, max(px) + 0.8]), yaxis=dict(visible=False, range=[-0.7, 1.75]),
        legend=dict(orientation="h", yanchor="top", y=-0.02, xanchor="left", x=0),
        hoverlabel=dict(align="left"),
    )
    return fig


def plot_stage_bars(rows_a: list[dict], rows_b: list[dict] | None = None, names: tuple[str, str] = ("", ""),
                    caption: str | None = None) -> go.Figure:
    """Parameters per stage, optionally beside a second net's (e.g. the plain twin).

    Args:
        caption: the subtitle, worded from the net's graph (`findings.architecture.stage_bars_caption`);
            None leaves the figure without one.
    """
    fig = go.Figure()
    for rows, name in ((rows_a, names[0]), (rows_b, names[1])):
        if rows:
            fig.add_trace(go.Bar(x=[r["stage"] for r in rows], y=[r["params"] for r in rows], name=name,
                                 hovertemplate="%{x}: %{y:,} params<extra>" + name + "</extra>"))
    title = "Parameters per stage"
    if caption:
        title += f"<br><sup>{wrap_subtitle(caption, 110)}</sup>"
    lines = 1 + (wrap_subtitle(caption, 110).count("<br>") + 1 if caption else 0)
    fig.update_layout(title=title, yaxis_title="parameters", barmode="group", height=300 + 20 * lines,
                      margin=dict(t=40 + 20 * lines, b=40))
    return fig
