"""What a net's block graph says about where its parameters and compute sit, and how it differs from its twin.

Every sentence is computed from `graph.BlockGraph`s (per-node parameters and MACs, from the module
itself), so it changes with the net:

- compute is "spread evenly" over the stages only when the largest stage's share of the MACs is
  under `EVEN_FACTOR` (1.25) times the smallest's (resnet56: 33.8/32.9/32.9%, even; resnet50:
  16/25/36/20%, not). The same factor decides whether each unit costs about the same in every
  stage, and "resolution halves as width doubles" is said only where every stage after the first
  does exactly that;
- "most parameters" means more than half of them;
- a net and its twin "stack the same convolutions" only when no unit has a projection shortcut and
  the parameter counts are equal (option-A zero-pad shortcuts hold no weights: resnet56 and plain56);
  otherwise the projection convolutions and the parameters and MACs they add are named.
"""

from __future__ import annotations

from ...models.graph import BlockGraph, Node
from .evidence import Difference

__all__ = ["EVEN_FACTOR", "compute_sentence", "params_sentence", "stage_bars_caption", "twin_difference",
           "twin_help"]

EVEN_FACTOR = 1.25  # stages' shares of the MACs (or per-unit costs) within this factor of each other: "even"


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def _share(value: float) -> str:
    pct = 100 * value
    return f"{pct:.0f}%" if pct >= 9.5 else f"{pct:.1g}%" if pct >= 0.95 else f"{pct:.2g}%"


def _stages(graph: BlockGraph) -> list[dict]:
    """Per stage 1..S: its name, units, MACs and parameters (shares of the net's totals), width and resolution."""
    total_m, total_p = max(graph.total_macs, 1), max(graph.total_params, 1)
    out = []
    for stage in range(1, graph.num_stages + 1):
        units = graph.units(stage)
        if not units:
            continue
        macs, params = sum(u.macs for u in units), sum(u.params for u in units)
        shape = units[-1].out_shape
        out.append({"name": f"layer{stage}", "units": len(units), "macs": macs, "mac_share": macs / total_m,
                    "params": params, "param_share": params / total_p, "width": shape[0],
                    "resolution": shape[1] if len(shape) > 1 else 1})
    return out


def _halves_as_doubles(stages: list[dict]) -> bool:
    return len(stages) > 1 and all(b["width"] == 2 * a["width"] and 2 * b["resolution"] == a["resolution"]
                                   for a, b in zip(stages, stages[1:]))


def _spread(values: list[float]) -> Difference:
    return Difference("share", ("largest", "smallest"), (max(values), min(values)), EVEN_FACTOR, "ratio")


def compute_sentence(graph: BlockGraph) -> str:
    """Where the MACs sit over the stages, worded from their shares."""
    stages = _stages(graph)
    if not stages:
        return ""
    shares = "/".join(_share(s["mac_share"]).rstrip("%") for s in stages) + "%"
    if len(stages) == 1:
        return f"Compute: {stages[0]['name']}, the only stage, holds {_share(stages[0]['mac_share'])} of the MACs."
    spread = _spread([s["mac_share"] for s in stages])
    top = max(stages, key=lambda s: s["mac_share"])
    low = min(stages, key=lambda s: s["mac_share"])
    per_unit = _spread([s["mac_share"] / s["units"] for s in stages if s["units"]])
    reason = ", as resolution halves where width doubles" if _halves_as_doubles(stages) else ""
    if spread.direction == 0:
        text = (f"Compute (MACs) is spread about evenly over the {len(stages)} stages ({shares}: the largest share "
                f"is under {EVEN_FACTOR:g}x the smallest)")
        if per_unit.direction == 0 and reason:
            text += f"; each unit costs about the same{reason}"
        return text + "."
    text = (f"Compute (MACs) is not spread evenly over the stages ({shares}): {top['name']} holds "
            f"{_share(top['mac_share'])}, {low['name']} {_share(low['mac_share'])}, "
            f"{top['mac_share'] / low['mac_share']:.2g}x")
    if per_unit.direction == 0:
        counts = "/".join(str(s["units"]) for s in stages)
        text += (f". Per unit the stages cost about the same (within {EVEN_FACTOR:g}x{reason}), so the shares "
                 f"follow the unit counts {counts}")
    return text + "."


def params_sentence(graph: BlockGraph) -> str:
    """Where the parameters sit over the stages: the stage with the largest share, "most" only past half."""
    stages = _stages(graph)
    if not stages:
        return ""
    top = max(stages, key=lambda s: s["param_share"])
    shares = "/".join(_share(s["param_share"]).rstrip("%") for s in stages) + "%"
    widest = max(s["width"] for s in stages)
    what = []
    if top is stages[-1] and len(stages) > 1:
        what.append("the last")
    if top["width"] == widest and sum(s["width"] == widest for s in stages) == 1 and len(stages) > 1:
        what.append("widest")
    where = f"{top['name']}" + (f", {' and '.join(what)} stage" if what else "")
    if top["param_share"] > 0.5:
        return f"Most parameters ({_share(top['param_share'])}) sit in {where} (stages {shares})."
    return f"The largest share of the parameters, {_share(top['param_share'])}, sits in {where} (stages {shares})."


def stage_bars_caption(graph: BlockGraph) -> str:
    """The per-stage figure's subtitle: parameters and compute, both from the graph."""
    return " ".join(s for s in (params_sentence(graph), compute_sentence(graph)) if s)


def _projection(node: Node) -> str:
    stride = f", stride {node.stride}" if node.stride > 1 else ""
    return f"{node.id} ({node.in_shape[0]}->{node.out_shape[0]}{stride})"


def _pair(a: BlockGraph, b: BlockGraph) -> tuple[BlockGraph, BlockGraph]:
    """(the one with more projection shortcuts, the other); the residual one first on a tie."""
    def key(g: BlockGraph) -> tuple[int, bool]:
        return g.skip_counts()["projection"], bool(g.spec.residual)

    return (a, b) if key(a) >= key(b) else (b, a)


def twin_difference(a: BlockGraph, b: BlockGraph) -> str:
    """How two nets' convolutions and parameters differ (a net and its twin, in either order)."""
    more, other = _pair(a, b)
    m, o = more.spec.name, other.spec.name
    proj = [u for u in more.units() if u.shortcut == "projection"]
    zero = [g for g in (a, b) if g.skip_counts()["zero_pad"]]
    dp = more.total_params - other.total_params
    dm = more.total_macs - other.total_macs
    if not proj and dp == 0:
        text = (f"**{a.spec.name}** and **{b.spec.name}** stack the same convolutions: {a.total_params:,} "
                f"parameters each")
        if zero:
            g = zero[0]
            n = g.skip_counts()["zero_pad"]
            text += (f" ({g.spec.name}'s {n} shape-changing shortcut{'s' * (n != 1)} zero-pad{'s' * (n == 1)} the "
                     "input (option A) and hold no weights)")
        return text + "."
    if not proj:
        big, small = (more, other) if dp > 0 else (other, more)
        return (f"**{big.spec.name}** has {abs(dp):,} more parameters than **{small.spec.name}** "
                f"({big.total_params:,} vs {small.total_params:,}), and neither has a projection shortcut.")
    n = len(proj)
    bn = any(u.shortcut_params > u.in_shape[0] * u.out_shape[0] for u in proj)
    shortcut_params = sum(u.shortcut_params for u in proj)
    text = (f"**{m}** has every convolution of **{o}** plus {n} 1x1 projection convolution{'s' * (n != 1)} on "
            f"its shortcuts{' (each with its BatchNorm)' if bn else ''}: {', '.join(_projection(u) for u in proj)}. "
            f"They add {dp:,} parameters ({more.total_params:,} vs {other.total_params:,}) and {_si(dm)} MACs "
            f"at {more.input_size}x{more.input_size}")
    if shortcut_params != dp:
        text += f" (the shortcuts hold {shortcut_params:,} of them)"
    return text + "."


def twin_help(graph: BlockGraph, twin: BlockGraph) -> str:
    """A metric's help: what the twin is and why the parameter counts differ, from both graphs."""
    more, _ = _pair(graph, twin)
    proj = more.skip_counts()["projection"]
    dp = twin.total_params - graph.total_params
    head = f"{twin.spec.label}: {graph.spec.name} with its shortcuts {'added' if twin.spec.residual else 'removed'}."
    if dp == 0:
        return head + " The same parameter count (no shortcut holds weights)."
    return (head + f" {abs(dp):,} parameters {'more' if dp > 0 else 'fewer'}: the {proj} projection "
            f"shortcut{'s' * (proj != 1)} of {more.spec.name}.")
