"""The block graph: one data structure for the architecture, and the counts that go with it.

Nodes are the stem, every residual unit, the pooling stage and the classifier head, each with
its output shape, parameters and multiply-accumulates (MACs). Edges are the main path and, per
unit, its skip: identity, projection or zero-pad (a plain net has none).

Shapes and MACs come from one forward pass of the model on PyTorch's "meta" device, so they are
the module's own (no formula to drift) and cost no memory: resnet1202 takes well under a second.
MACs count convolutions and the classifier only, the convention of the papers and torchvision's
model table (BN, ReLU, additions and pooling are left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from .resnet import ResNet, build_model
from .spec import ModelSpec

NodeKind = Literal["stem", "unit", "pool", "head"]
EdgeKind = Literal["main", "identity", "projection", "zero_pad"]
SKIP_KINDS: tuple[str, ...] = ("identity", "projection", "zero_pad")


@dataclass(frozen=True)
class Node:
    """One box of the block graph. Shapes are per sample: (C, H, W) or (features,)."""

    id: str
    kind: NodeKind
    stage: int  # 0 stem, 1..S the stages (layer1..), S+1 pooling and head
    label: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    macs: int
    stride: int = 1
    shortcut: str = "none"
    shortcut_params: int = 0
    module: str = ""  # class name of the unit


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind


@dataclass(frozen=True)
class BlockGraph:
    """A network as boxes and arrows: `nodes` in forward order (stem, every residual unit, pooling,
    head) with per-sample shapes, parameters and MACs at `input_size`, and `edges` for the main
    path and each unit's skip. Built by `build_graph`; totals equal the module's own counts."""

    spec: ModelSpec
    input_size: int
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def num_stages(self) -> int:
        return len(self.spec.layers)

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def units(self, stage: int | None = None) -> list[Node]:
        return [n for n in self.nodes if n.kind == "unit" and (stage is None or n.stage == stage)]

    def skips(self) -> list[Edge]:
        return [e for e in self.edges if e.kind != "main"]

    def skip_counts(self, stage: int | None = None) -> dict[str, int]:
        counts = dict.fromkeys(SKIP_KINDS, 0)
        for n in self.units(stage):
            if n.shortcut in counts:
                counts[n.shortcut] += 1
        return counts

    def unit_rows(self) -> list[dict[str, Any]]:
        """One row per node, for the per-block table and CSV export."""
        return [
            {
                "node": n.id, "kind": n.kind, "stage": _stage_name(n.stage, self.num_stages),
                "module": n.module, "in_shape": _fmt_shape(n.in_shape), "out_shape": _fmt_shape(n.out_shape),
                "stride": n.stride, "shortcut": n.shortcut, "params": n.params,
                "shortcut_params": n.shortcut_params, "macs": n.macs,
            }
            for n in self.nodes
        ]

    def stage_rows(self) -> list[dict[str, Any]]:
        """One row per stage (stem, layer1.., head), with shares of the totals."""
        rows = []
        total_p, total_m = max(self.total_params, 1), max(self.total_macs, 1)
        for stage in range(self.num_stages + 2):
            members = [n for n in self.nodes if n.stage == stage]
            params = sum(n.params for n in members)
            macs = sum(n.macs for n in members)
            skips = self.skip_counts(stage) if 1 <= stage <= self.num_stages else {}
            rows.append({
                "stage": _stage_name(stage, self.num_stages),
                "units": len([n for n in members if n.kind == "unit"]),
                "out_shape": _fmt_shape(members[-1].out_shape),
                "params": params,
                "params_%": round(100 * params / total_p, 2),
                "macs": macs,
                "macs_%": round(100 * macs / total_m, 2),
                "skips": ", ".join(f"{v} {k}" for k, v in skips.items() if v) or "-",
            })
        return rows


def _stage_name(stage: int, num_stages: int) -> str:
    if stage == 0:
        return "stem"
    if stage > num_stages:
        return "head"
    return f"layer{stage}"


def _fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _owner(name: str, num_stages: int) -> str:
    """The node id that owns the module called `name`."""
    parts = name.split(".")
    if parts[0].startswith("layer") and len(parts) >= 2:
        return f"{parts[0]}.{parts[1]}"
    if parts[0] in ("conv1", "bn1", "relu", "maxpool"):
        return "stem"
    if parts[0] == "fc":
        return "fc"
    return "pool"


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    per_sample = output[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def build_graph(spec: ModelSpec, input_size: int | None = None) -> BlockGraph:
    """Trace `spec` once on the meta device into a `BlockGraph`.

    Args:
        spec: the variant.
        input_size: square input side in pixels; defaults to 224 (imagenet) or 32 (cifar).

    Raises:
        ValueError: the input is too small for the network's downsampling.
    """
    size = spec.default_input_size if input_size is None else int(input_size)
    if size < 1:
        raise ValueError(f"input size must be a positive number of pixels, got {size}")
    model: ResNet = build_model(spec, device="meta")
    model.eval()
    num_stages = len(spec.layers)
    macs: dict[str, int] = {}
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    current = ["stem"]  # the node whose modules are running now

    def count(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        macs[current[0]] = macs.get(current[0], 0) + _macs(module, output)

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    # Units after the first of a stage repeat its configuration and shape: trace one, reuse it
    # (a meta-device forward of all 600 units of resnet1202 takes seconds).
    seen: dict[tuple, tuple[tuple[int, ...], int]] = {}
    x = torch.empty(1, spec.in_channels, size, size, device="meta")
    try:
        with torch.no_grad():
            h = model.forward_stem(x)
            stem_shape = tuple(h.shape[1:])
            for blocks, stage in zip(model.plan, model.stages):
                for b, unit in zip(blocks, stage):
                    in_shape = tuple(h.shape[1:])
                    key = (b.in_channels, b.out_channels, b.stride, b.shortcut, in_shape)
                    if key in seen:
                        out_shape, macs[b.name] = seen[key]
                    else:
                        current[0] = b.name
                        h = unit(h)
                        out_shape = tuple(h.shape[1:])
                        seen[key] = (out_shape, macs.get(b.name, 0))
                    shapes[b.name] = (in_shape, out_shape)
            current[0] = "pool"
            h = model.forward_final(h)
            feat_shape = tuple(h.shape[1:])
            current[0] = "fc"
            model.forward_head(h)
    except RuntimeError as err:
        raise ValueError(f"input {size}x{size} is too small for {spec.name}: {str(err).splitlines()[0]}") from None
    finally:
        for handle in handles:
            handle.remove()
    shortcut_params = {
        name: sum(p.numel() for p in unit.downsample.parameters())
        for name, unit in model.units() if unit.downsample is not None
    }

    params: dict[str, int] = {}
    for name, p in model.named_parameters():
        owner = _owner(name, num_stages)
        params[owner] = params.get(owner, 0) + p.numel()

    in_shape = (spec.in_channels, size, size)
    nodes = [Node("stem", "stem", 0, "stem", in_shape, stem_shape, params.get("stem", 0), macs.get("stem", 0),
                  stride=4 if spec.stem == "imagenet" else 1, module="conv-bn-relu" + ("-maxpool" if spec.stem == "imagenet" else ""))]
    edges = []
    prev = "stem"
    for blocks in model.plan:
        for b in blocks:
            units_in, units_out = shapes[b.name]
            unit = model.get_submodule(b.name)
            nodes.append(Node(
                b.name, "unit", b.stage, b.name, units_in, units_out, params.get(b.name, 0),
                macs.get(b.name, 0), stride=b.stride, shortcut=b.shortcut,
                shortcut_params=shortcut_params.get(b.name, 0), module=type(unit).__name__,
            ))
            edges.append(Edge(prev, b.name, "main"))
            if b.shortcut != "none":
                edges.append(Edge(prev, b.name, b.shortcut))
            prev = b.name
    pooled = (feat_shape[0],)
    pool_label = "BN-ReLU, global avg-pool" if spec.pre_activation else "global avg-pool"
    nodes.append(Node("pool", "pool", num_stages + 1, pool_label, feat_shape, pooled, params.get("pool", 0),
                      macs.get("pool", 0), module="AdaptiveAvgPool2d"))
    nodes.append(Node("fc", "head", num_stages + 1, "fc", pooled, (spec.num_classes,), params.get("fc", 0),
                      macs.get("fc", 0), module="Linear"))
    edges.append(Edge(prev, "pool", "main"))
    edges.append(Edge("pool", "fc", "main"))
    return BlockGraph(spec, size, tuple(nodes), tuple(edges))


def layer_rows(model: nn.Module, input_size: int, device: torch.device | str, depth: int = 3) -> list[dict[str, Any]]:
    """torchinfo's per-layer table as rows (name, type, depth, output shape, params, MACs).

    Called in eval mode (train mode would update BN statistics, torchinfo#21) with an explicit
    device (torchinfo 1.8 moves MPS models to CPU otherwise, torchinfo#231).
    """
    import torchinfo

    spec: ModelSpec = model.spec
    was_training = model.training
    names = {id(m): n for n, m in model.named_modules()}
    try:
        stats = torchinfo.summary(
            model, input_size=(1, spec.in_channels, input_size, input_size), device=torch.device(device),
            mode="eval", depth=depth, verbose=0, col_names=("output_size", "num_params", "mult_adds"),
        )
    finally:
        model.train(was_training)
    # torchinfo's multiply-adds of a container are not the sum of its layers; sum the leaves.
    leaf_macs = {id(i.module): i.macs for i in stats.summary_list if i.is_leaf_layer}
    rows = []
    for info in stats.summary_list:
        if info.depth == 0:
            continue
        macs = info.macs if info.is_leaf_layer else sum(leaf_macs.get(id(m), 0) for m in info.module.modules())
        rows.append({
            "layer": names.get(id(info.module), info.var_name),
            "type": info.class_name,
            "depth": info.depth,
            "output_shape": _fmt_shape(info.output_size[1:]) if info.output_size else "",
            # torchinfo reports a parent's params as its whole subtree; keep leaf params exact.
            "params": info.num_params if info.is_leaf_layer else sum(p.numel() for p in info.module.parameters()),
            "mult_adds": macs,
        })
    return rows
