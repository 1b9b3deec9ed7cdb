"""`ModelSpec`: one frozen description of any ResNet variant, and the naming rule.

Naming rule (documented in the README as well)::

    resnet18 resnet34 resnet50 resnet101 resnet152     ImageNet stem, torchvision layouts
    wide_resnet50_2 wide_resnet101_2                   ImageNet, Zagoruyko & Komodakis 2016
    resnext50_32x4d resnext101_32x8d resnext101_64x4d  ImageNet, Xie et al. 2017
    [cifar_][preact_](resnet|plain)<D>[_basic|_bottleneck]

The pattern names the CIFAR family of He et al. 2015 / 2016 (3x3 stem, stages 16-32-64):
basic units need D = 6n+2 (two 3x3 convs per unit, n units per stage), bottleneck units
D = 9n+2 (three convs per unit). ``resnet<D>`` with D in {18, 34, 50, 101, 152} is the ImageNet
net; prefix ``cifar_`` to get the CIFAR net of that depth (cifar_resnet50 = 6*8+2). ``preact_``
gives full pre-activation (He et al. 2016) and defaults to bottleneck units, as ResNet-164 and
ResNet-1001 in that paper; ``preact_resnet110_basic`` is its pre-activation ResNet-110.
``plain`` in place of ``resnet`` is the twin without shortcuts (He et al. 2015, "plain nets");
``plain_<name>`` does the same for the wide and grouped names.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..limits import (
    MAX_CLASSES,
    MAX_GROUPS,
    MAX_IN_CHANNELS,
    MAX_UNITS,
    MAX_WIDTH_MULTIPLIER,
    MAX_WIDTH_PER_GROUP,
    MIN_WIDTH_MULTIPLIER,
)

Stem = Literal["imagenet", "cifar"]
BlockType = Literal["basic", "bottleneck"]
ShortcutOption = Literal["A", "B", "C"]

NAMING_RULE = __doc__

STEMS: tuple[str, ...] = ("imagenet", "cifar")
BLOCKS: tuple[str, ...] = ("basic", "bottleneck")
SHORTCUTS: tuple[str, ...] = ("A", "B", "C")

# Stage planes before the block expansion. ImageNet: He et al. 2015 Table 1. CIFAR: He et al.
# 2015 Sec. 4.2 (16-32-64); the bottleneck nets of He et al. 2016 keep these planes and expand
# them by 4 (outputs 64-128-256).
STAGE_PLANES: dict[str, tuple[int, ...]] = {"imagenet": (64, 128, 256, 512), "cifar": (16, 32, 64)}
STEM_CHANNELS: dict[str, int] = {"imagenet": 64, "cifar": 16}
EXPANSION: dict[str, int] = {"basic": 1, "bottleneck": 4}
CONVS_PER_BLOCK: dict[str, int] = {"basic": 2, "bottleneck": 3}
DEFAULT_CLASSES: dict[str, int] = {"imagenet": 1000, "cifar": 10}
DEFAULT_INPUT_SIZE: dict[str, int] = {"imagenet": 224, "cifar": 32}

IMAGENET_LAYERS: dict[int, tuple[BlockType, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
# torchvision names with non-default width: name -> (depth, groups, width_per_group)
IMAGENET_WIDE: dict[str, tuple[int, int, int]] = {
    "wide_resnet50_2": (50, 1, 128),
    "wide_resnet101_2": (101, 1, 128),
    "resnext50_32x4d": (50, 32, 4),
    "resnext101_32x8d": (101, 32, 8),
    "resnext101_64x4d": (101, 64, 4),
}

_PATTERN = re.compile(
    r"^(?P<cifar>cifar_)?(?P<preact>preact_)?(?P<kind>resnet|plain)(?P<depth>\d+)"
    r"(?:_(?P<block>basic|bottleneck))?$"
)


def _short(values: tuple, limit: int = 60) -> str:
    """A sequence as text, cut to `limit` characters (a link may carry a very long one)."""
    text = ", ".join(map(str, values))
    return f"({text})" if len(text) <= limit else f"({text[:limit]}...)"


def _short_name(name: str, limit: int = 40) -> str:
    return repr(name) if len(name) <= limit else repr(name[:limit]) + f"... ({len(name):,} characters)"


def _depth_rule(block: str) -> tuple[int, str]:
    """Convs per unit and the rule text for a CIFAR depth."""
    per_block = CONVS_PER_BLOCK[block] * 3  # three stages
    return per_block, f"{per_block}n+2"


def nearest_legal_depths(depth: int, block: str) -> tuple[int, ...]:
    """The legal CIFAR depths of ``block`` just below and above ``depth``."""
    step, _ = _depth_rule(block)
    n = (depth - 2) // step
    candidates = [step * k + 2 for k in (n, n + 1) if k >= 1]
    return tuple(d for d in candidates if d != depth)


def cifar_units_per_stage(depth: int, block: str, name: str = "") -> int:
    """Units per stage for a CIFAR net of ``depth``; ValueError naming the rule if illegal."""
    step, rule = _depth_rule(block)
    if depth < step + 2 or (depth - 2) % step:
        near = " and ".join(str(d) for d in nearest_legal_depths(depth, block))
        who = f"{name}: " if name else ""
        raise ValueError(
            f"{who}depth {depth} breaks the CIFAR {block}-block rule depth = {rule} "
            f"(n >= 1 units per stage); nearest legal depths: {near}"
        )
    return (depth - 2) // step


@dataclass(frozen=True)
class ModelSpec:
    """A ResNet variant, validated on construction.

    Args:
        stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool, stages 64-128-256-512) or "cifar"
            (3x3 conv, stages 16-32-64; He et al. 2015 Sec. 4.2).
        block: the kind of residual unit, "basic" (two 3x3 convs) or "bottleneck" (1x1-3x3-1x1,
            expansion 4). The field keeps torchvision's name (its `ResNet(block=BasicBlock, ...)`);
            everywhere else this project calls one residual unit a "unit".
        layers: residual units per stage: 4 numbers for imagenet, 3 for cifar.
        pre_activation: full pre-activation units, BN-ReLU-conv with nothing after the addition
            (He et al. 2016), instead of the original post-activation units.
        residual: False gives the plain net: the same layers without shortcuts.
        shortcut: "A" zero-padding identity where the shape changes (parameter-free), "B"
            projection where the shape changes, "C" projection on every unit (He et al. 2015, 4.1).
        width_multiplier: scales every stage's planes (and the stem), as Wide ResNets on CIFAR.
        groups: grouped 3x3 conv in bottleneck units (ResNeXt cardinality).
        width_per_group: bottleneck width is int(planes * width_per_group / 64) * groups, as
            torchvision (128 gives wide_resnet50_2, 4 with 32 groups resnext50_32x4d).
        num_classes: classifier outputs; defaults to 1000 (imagenet) or 10 (cifar).
        in_channels: input image channels.
        zero_init_residual: zero the last BN (post-act) or last conv (pre-act) of every residual
            branch, so each unit starts as the identity (Goyal et al. 2017).

    Raises:
        ValueError: naming the rule that was broken.
    """

    stem: Stem = "cifar"
    block: BlockType = "basic"
    layers: tuple[int, ...] = (3, 3, 3)
    pre_activation: bool = False
    residual: bool = True
    shortcut: ShortcutOption = "A"
    width_multiplier: float = 1.0
    groups: int = 1
    width_per_group: int = 64
    num_classes: int | None = field(default=None)
    in_channels: int = 3
    zero_init_residual: bool = False

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of A, B, C (He et al. 2015), got {self.shortcut!r}")
        layers = self.layers
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise ValueError(f"layers must be a sequence of unit counts, got {layers!r}")
        layers = tuple(layers)
        stages = len(STAGE_PLANES[self.stem])
        if len(layers) != stages:
            raise ValueError(
                f"the {self.stem} family has {stages} stages: layers needs {stages} unit counts, "
                f"got {len(layers):,} {_short(layers)}"
            )
        for n in layers:
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"every stage needs at least one block (a positive integer), got {_short(layers)}")
        if sum(layers) > MAX_UNITS:
            raise ValueError(f"{sum(layers):,} residual units is past the ceiling of {MAX_UNITS:,} "
                             f"(resnet1202 has 600), got layers {_short(layers)}")
        object.__setattr__(self, "layers", layers)
        for flag in ("pre_activation", "residual", "zero_init_residual"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        if not isinstance(self.width_multiplier, (int, float)) or isinstance(self.width_multiplier, bool):
            raise ValueError(f"width_multiplier must be a number, got {self.width_multiplier!r}")
        if not (math.isfinite(self.width_multiplier)
                and MIN_WIDTH_MULTIPLIER <= self.width_multiplier <= MAX_WIDTH_MULTIPLIER):
            raise ValueError(f"width_multiplier must be from {MIN_WIDTH_MULTIPLIER:g} to {MAX_WIDTH_MULTIPLIER:g}, "
                             f"got {self.width_multiplier:g}")
        object.__setattr__(self, "width_multiplier", float(self.width_multiplier))
        if self.num_classes is None:
            object.__setattr__(self, "num_classes", DEFAULT_CLASSES[self.stem])
        for name, high in (("groups", MAX_GROUPS), ("width_per_group", MAX_WIDTH_PER_GROUP),
                           ("in_channels", MAX_IN_CHANNELS), ("num_classes", MAX_CLASSES)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise ValueError(f"{name} must be a whole number from 1 to {high:,}, got {value!r}")
        if self.block == "basic" and (self.groups != 1 or self.width_per_group != 64):
            raise ValueError(
                "basic blocks support only groups=1 and width_per_group=64 (as torchvision); "
                "use width_multiplier for a wide basic-block net, or bottleneck blocks for ResNeXt"
            )
        if self.stem_channels < 1 or min(self.stage_planes) < 1:
            raise ValueError(f"width_multiplier {self.width_multiplier} leaves a layer with no channels")
        if self.block == "bottleneck" and min(self.bottleneck_widths) < 1:
            raise ValueError(
                f"width_per_group {self.width_per_group} leaves a bottleneck with no channels "
                "(width = int(planes * width_per_group / 64) * groups)"
            )
        if self.zero_init_residual and not self.residual:
            raise ValueError(
                "zero_init_residual needs shortcuts: a plain net with zeroed branches outputs a constant"
            )

    # ---- derived numbers -------------------------------------------------------------------
    @property
    def expansion(self) -> int:
        return EXPANSION[self.block]

    @property
    def stem_channels(self) -> int:
        return int(round(STEM_CHANNELS[self.stem] * self.width_multiplier))

    @property
    def stage_planes(self) -> tuple[int, ...]:
        return tuple(int(round(p * self.width_multiplier)) for p in STAGE_PLANES[self.stem])

    @property
    def stage_out_channels(self) -> tuple[int, ...]:
        return tuple(p * self.expansion for p in self.stage_planes)

    @property
    def bottleneck_widths(self) -> tuple[int, ...]:
        """Inner width of the bottleneck 3x3 conv per stage (torchvision's formula)."""
        return tuple(int(p * (self.width_per_group / 64.0)) * self.groups for p in self.stage_planes)

    @property
    def num_units(self) -> int:
        return sum(self.layers)

    @property
    def depth(self) -> int:
        """Weighted layers on the main path: stem conv + unit convs + fc (He et al. 2015's count)."""
        return 1 + CONVS_PER_BLOCK[self.block] * self.num_units + 1

    @property
    def default_input_size(self) -> int:
        return DEFAULT_INPUT_SIZE[self.stem]

    # ---- twins and names -------------------------------------------------------------------
    def plain(self) -> ModelSpec:
        """The twin without shortcuts: same layers (zero-init off, it needs shortcuts)."""
        return dataclasses.replace(self, residual=False, zero_init_residual=False)

    def with_residual(self) -> ModelSpec:
        """The twin with shortcuts."""
        return dataclasses.replace(self, residual=True)

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)

    @property
    def name(self) -> str:
        """The name ``from_name`` parses back (core architecture only), or a descriptive label."""
        kind = "resnet" if self.residual else "plain"
        if self.stem == "imagenet":
            base = self._imagenet_name()
            if base is not None:
                if base.startswith("resnet"):
                    return base.replace("resnet", kind, 1)
                return base if self.residual else f"plain_{base}"
            counts = "-".join(map(str, self.layers))
            pre = "preact_" if self.pre_activation else ""
            return f"imagenet_{pre}{kind}_{self.block}_{counts}"
        n = self.layers[0]
        pre = "preact_" if self.pre_activation else ""
        if len(set(self.layers)) != 1:
            counts = "-".join(map(str, self.layers))
            return f"cifar_{pre}{kind}_{self.block}_{counts}"
        depth = 3 * CONVS_PER_BLOCK[self.block] * n + 2
        default_block = "bottleneck" if self.pre_activation else "basic"
        suffix = "" if self.block == default_block else f"_{self.block}"
        prefix = "cifar_" if (not pre and not suffix and depth in IMAGENET_LAYERS) else ""
        return f"{prefix}{pre}{kind}{depth}{suffix}"

    def _imagenet_name(self) -> str | None:
        if self.pre_activation or self.width_multiplier != 1.0:
            return None
        for depth, (block, layers) in IMAGENET_LAYERS.items():
            if (block, layers) != (self.block, self.layers):
                continue
            if (self.groups, self.width_per_group) == (1, 64):
                return f"resnet{depth}"
            for wide, (d, groups, wpg) in IMAGENET_WIDE.items():
                if d == depth and (groups, wpg) == (self.groups, self.width_per_group):
                    return wide
        return None

    @property
    def label(self) -> str:
        """``name`` plus every option that differs from the name's default."""
        try:
            default = ModelSpec.from_name(self.name)
        except ValueError:
            default = None
        parts = []
        if default is None or default.shortcut != self.shortcut:
            parts.append(f"shortcut {self.shortcut}")
        if self.width_multiplier != 1.0:
            parts.append(f"width x{self.width_multiplier:g}")
        if default is None or (default.groups, default.width_per_group) != (self.groups, self.width_per_group):
            if self.block == "bottleneck":
                parts.append(f"{self.groups}x{self.width_per_group}d")
        if self.num_classes != DEFAULT_CLASSES[self.stem]:
            parts.append(f"{self.num_classes} classes")
        if self.in_channels != 3:
            parts.append(f"{self.in_channels} input channels")
        if self.zero_init_residual:
            parts.append("zero-init")
        return self.name + (f" ({', '.join(parts)})" if parts else "")

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> ModelSpec:
        """Parse a variant name (see the module docstring); ``overrides`` replace fields.

        Raises:
            ValueError: the name is unknown or its depth breaks the family's rule.
        """
        if not isinstance(name, str):
            raise ValueError(f"a model name must be a string, got {name!r}")
        key = name.strip().lower()
        residual = True
        if key.startswith("plain_") and key[len("plain_"):] in IMAGENET_WIDE:
            key, residual = key[len("plain_"):], False
        if key in IMAGENET_WIDE:
            depth, groups, wpg = IMAGENET_WIDE[key]
            block, layers = IMAGENET_LAYERS[depth]
            spec = cls(stem="imagenet", block=block, layers=layers, residual=residual,
                       shortcut="B", groups=groups, width_per_group=wpg)
            return dataclasses.replace(spec, **overrides) if overrides else spec
        match = _PATTERN.match(key)
        if match is None:
            raise ValueError(
                f"unknown model name {_short_name(name)}: use a registered name (resnet18, resnet56, "
                "wide_resnet50_2, preact_resnet164, ...) or [cifar_][preact_](resnet|plain)<depth>"
                "[_basic|_bottleneck]"
            )
        if len(match["depth"]) > 6:  # past any depth MAX_UNITS allows; int() of it would cost time
            raise ValueError(f"{_short_name(name)}: depth {match['depth'][:12]}"
                             f"{'...' if len(match['depth']) > 12 else ''} is past the ceiling of "
                             f"{MAX_UNITS:,} residual units (largest CIFAR depths: {6 * (MAX_UNITS // 3) + 2:,} "
                             f"basic, {9 * (MAX_UNITS // 3) + 2:,} bottleneck)")
        depth = int(match["depth"])
        residual = match["kind"] == "resnet"
        preact = match["preact"] is not None
        imagenet_ok = not (match["cifar"] or preact or match["block"])
        if imagenet_ok and depth in IMAGENET_LAYERS:
            block, layers = IMAGENET_LAYERS[depth]
            spec = cls(stem="imagenet", block=block, layers=layers, residual=residual, shortcut="B")
        else:
            block = match["block"] or ("bottleneck" if preact else "basic")
            try:
                n = cifar_units_per_stage(depth, block, name)
            except ValueError as err:
                hint = ""
                if imagenet_ok:
                    hint = "; ImageNet depths: " + ", ".join(map(str, IMAGENET_LAYERS))
                elif preact and not match["block"]:
                    hint = "; preact_ names default to bottleneck blocks, add _basic for 6n+2"
                raise ValueError(f"{err}{hint}") from None
            # He et al. 2015 use option A on CIFAR; the bottleneck nets of He et al. 2016
            # project where the width changes (option B).
            shortcut = "A" if block == "basic" else "B"
            spec = cls(stem="cifar", block=block, layers=(n, n, n), pre_activation=preact,
                       residual=residual, shortcut=shortcut)
        return dataclasses.replace(spec, **overrides) if overrides else spec

    # ---- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        if not isinstance(data, dict):
            raise ValueError(f"a ModelSpec is a JSON object of fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelSpec fields: {', '.join(sorted(unknown))}")
        data = dict(data)
        if "layers" in data and isinstance(data["layers"], list):
            data["layers"] = tuple(data["layers"])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        return cls.from_dict(json.loads(text))
