"""The ResNet module, the stage plan it is built from, and `build_model`.

He et al. 2015, "Deep Residual Learning for Image Recognition" (https://arxiv.org/abs/1512.03385);
He et al. 2016, "Identity Mappings in Deep Residual Networks" (https://arxiv.org/abs/1603.05027).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..devices import resolve_device
from ..limits import MAX_PARAMS
from .blocks import ShortcutKind, unit_class
from .spec import ModelSpec

# Past these, `build_model` wants confirmation: building allocates and initialises every weight.
LARGE_PARAMS = 200_000_000
LARGE_UNITS = 1_000


@dataclass(frozen=True)
class UnitPlan:
    """One residual unit as the builder, the graph and the estimates see it."""

    stage: int  # 1-based, as layer1..layer4
    index: int  # position in its stage
    in_channels: int
    planes: int
    out_channels: int
    stride: int
    shortcut: ShortcutKind

    @property
    def name(self) -> str:
        return f"layer{self.stage}.{self.index}"


def _unit(spec: ModelSpec, stage: int, index: int, in_channels: int) -> UnitPlan:
    """Unit `index` of `stage` (1-based), fed `in_channels`."""
    planes = spec.stage_planes[stage - 1]
    out_channels = planes * spec.expansion
    stride = 2 if (stage > 1 and index == 0) else 1
    changes = stride != 1 or in_channels != out_channels
    if not spec.residual:
        shortcut: ShortcutKind = "none"
    elif spec.shortcut == "C":
        shortcut = "projection"
    elif changes:
        shortcut = "zero_pad" if spec.shortcut == "A" else "projection"
    else:
        shortcut = "identity"
    return UnitPlan(stage, index, in_channels, planes, out_channels, stride, shortcut)


def stage_plan(spec: ModelSpec) -> list[list[UnitPlan]]:
    """Per stage, every unit's channels, stride and shortcut kind.

    The first unit of every stage after the first halves the resolution (stride 2). Where the
    shape changes, option A zero-pads, B projects; C projects everywhere; a plain net has none.
    """
    stages: list[list[UnitPlan]] = []
    in_channels = spec.stem_channels
    for s, count in enumerate(spec.layers, start=1):
        units = []
        for i in range(count):
            units.append(_unit(spec, s, i, in_channels))
            in_channels = units[-1].out_channels
        stages.append(units)
    return stages


def stage_units(spec: ModelSpec) -> list[tuple[UnitPlan, UnitPlan | None, int]]:
    """Per stage in closed form: (first unit, a later unit or None, how many later units).

    Every unit after a stage's first sees the same channels and stride, so counts need two
    plans per stage, whatever the depth: nothing per unit is allocated.
    """
    stages = []
    in_channels = spec.stem_channels
    for s, count in enumerate(spec.layers, start=1):
        first = _unit(spec, s, 0, in_channels)
        later = _unit(spec, s, 1, first.out_channels) if count > 1 else None
        stages.append((first, later, count - 1))
        in_channels = first.out_channels
    return stages


def _conv(k: int, cin: int, cout: int, groups: int = 1) -> int:
    return k * k * (cin // groups) * cout


def block_parameters(spec: ModelSpec, plan: UnitPlan) -> int:
    """Parameters of one unit, computed from the plan (checked against the module in tests)."""
    bn = 2  # weight and bias per channel
    pre = spec.pre_activation
    if spec.block == "basic":
        n = _conv(3, plan.in_channels, plan.planes) + _conv(3, plan.planes, plan.planes)
        n += bn * ((plan.in_channels + plan.planes) if pre else 2 * plan.planes)
    else:
        w = int(plan.planes * (spec.width_per_group / 64.0)) * spec.groups
        n = _conv(1, plan.in_channels, w) + _conv(3, w, w, spec.groups) + _conv(1, w, plan.out_channels)
        n += bn * ((plan.in_channels + 2 * w) if pre else (2 * w + plan.out_channels))
    if plan.shortcut == "projection":
        n += _conv(1, plan.in_channels, plan.out_channels) + (0 if pre else bn * plan.out_channels)
    return n


def stem_parameters(spec: ModelSpec) -> int:
    k = 7 if spec.stem == "imagenet" else 3
    return _conv(k, spec.in_channels, spec.stem_channels) + (0 if spec.pre_activation else 2 * spec.stem_channels)


def head_parameters(spec: ModelSpec) -> int:
    final = spec.stage_out_channels[-1]
    return (2 * final if spec.pre_activation else 0) + final * spec.num_classes + spec.num_classes


def count_parameters(spec: ModelSpec) -> int:
    """Total parameters of `spec`, in closed form without building it (exact; tests compare with the module)."""
    total = stem_parameters(spec) + head_parameters(spec)
    for first, later, repeats in stage_units(spec):
        total += block_parameters(spec, first) + (repeats * block_parameters(spec, later) if later else 0)
    return total


class LargeModelError(ValueError):
    """A model past `LARGE_PARAMS` or `LARGE_UNITS` was asked for without confirmation."""


class ModelTooLargeError(ValueError):
    """A model past the ceiling `limits.MAX_PARAMS`: refused even with confirmation."""


def _size_text(spec: ModelSpec, params: int) -> str:
    gb = params * 4 / 1e9
    return (f"{spec.num_units:,} residual units, {params:,} parameters "
            f"(about {gb:.1f} GB of float32 weights, {3 * gb:.1f} GB with gradients and SGD momentum)")


def check_model_size(spec: ModelSpec) -> int:
    """The parameter count of `spec` (closed form); `ModelTooLargeError` past `MAX_PARAMS`."""
    params = count_parameters(spec)
    if params > MAX_PARAMS:
        raise ModelTooLargeError(f"{spec.label} is past the ceiling of {MAX_PARAMS:,} parameters: "
                                 f"{_size_text(spec, params)}")
    return params


def large_model_message(spec: ModelSpec) -> str | None:
    """A one-line estimate when `spec` needs confirmation before it is built, else None.

    Raises:
        ModelTooLargeError: past `limits.MAX_PARAMS`, which no confirmation unlocks.
    """
    params = check_model_size(spec)
    if params <= LARGE_PARAMS and spec.num_units <= LARGE_UNITS:
        return None
    return f"{spec.name} is large: {_size_text(spec, params)}"


class ResNet(nn.Module):
    """A ResNet (or its plain twin) built from a `ModelSpec`.

    ImageNet stem: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool. CIFAR stem: 3x3 conv, BN, ReLU.
    Pre-activation nets drop the stem's BN-ReLU (the first unit normalises its input) and add
    `bn_final`/`relu_final` before pooling (He et al. 2016).
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        imagenet = spec.stem == "imagenet"
        self.conv1 = nn.Conv2d(
            spec.in_channels, spec.stem_channels, 7 if imagenet else 3,
            stride=2 if imagenet else 1, padding=3 if imagenet else 1, bias=False,
        )
        if not spec.pre_activation:
            self.bn1 = nn.BatchNorm2d(spec.stem_channels)
            self.relu = nn.ReLU()
        if imagenet:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        unit = unit_class(spec.block, spec.pre_activation)
        self.plan = stage_plan(spec)
        for s, blocks in enumerate(self.plan, start=1):
            stage = nn.Sequential(*[
                unit(b.in_channels, b.planes, b.stride, b.shortcut, spec.groups, spec.width_per_group)
                for b in blocks
            ])
            self.add_module(f"layer{s}", stage)
        self.num_features = spec.stage_out_channels[-1]
        if spec.pre_activation:
            self.bn_final = nn.BatchNorm2d(self.num_features)
            self.relu_final = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.num_features, spec.num_classes)
        self.reset_parameters()

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{s}") for s in range(1, len(self.plan) + 1)]

    def units(self) -> list[tuple[str, nn.Module]]:
        """(qualified name, unit) for every residual unit, input to output."""
        return [(f"layer{s}.{i}", b) for s, stage in enumerate(self.stages, start=1) for i, b in enumerate(stage)]

    def reset_parameters(self) -> None:
        """torchvision's initialisation: He-normal (fan_out) convs, BN to (1, 0), then zero-init."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.fc.reset_parameters()
        if self.spec.zero_init_residual:
            # Each unit then starts as the identity (Goyal et al. 2017, Sec. 5.1).
            for _, block in self.units():
                block.zero_init_last()

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if not self.spec.pre_activation:
            x = self.bn1(x)
            x = self.relu(x)
        if self.spec.stem == "imagenet":
            x = self.maxpool(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Input (N, C, H, W) to the last stage's output (N, C', H/s, W/s), before pooling."""
        x = self.forward_stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.forward_final(x)

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-activation nets' last BN-ReLU; the identity for post-activation nets."""
        if self.spec.pre_activation:
            x = self.bn_final(x)
            x = self.relu_final(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(x)  # (N, C', 1, 1)
        x = torch.flatten(x, 1)
        return self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_model(
    name_or_spec: str | ModelSpec,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    device: str | torch.device = "auto",
    confirm_large: bool = False,
) -> ResNet:
    """Build a variant by name or spec on a device.

    Args:
        name_or_spec: a name (see `ModelSpec.from_name`) or a `ModelSpec`.
        num_classes: overrides the spec's classes.
        in_channels: overrides the spec's input channels.
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:N", "mps" or "meta".
        confirm_large: build even past `LARGE_PARAMS` / `LARGE_UNITS`.

    Raises:
        ValueError: a bad name, spec or device (`DeviceUnavailableError`), a large model
            without confirmation (`LargeModelError`), or one past `limits.MAX_PARAMS` even on
            the meta device (`ModelTooLargeError`); all checked before anything is built.
    """
    spec = ModelSpec.from_name(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"expected a model name or ModelSpec, got {type(name_or_spec).__name__}")
    changes = {k: v for k, v in (("num_classes", num_classes), ("in_channels", in_channels)) if v is not None}
    if changes:
        spec = spec.replace(**changes)
    dev = torch.device("meta") if str(device) == "meta" else resolve_device(device)
    message = large_model_message(spec)  # arithmetic: nothing is allocated before it
    if message and not confirm_large and dev.type != "meta":
        raise LargeModelError(f"{message}; pass confirm_large=True to build it")
    with dev:
        if dev.type == "meta":
            with _NoInit():
                model = ResNet(spec)
        else:
            model = ResNet(spec)
    return model


class _NoInit(TorchFunctionMode):
    """Skips the initialisers while a model is built on the meta device, where a tensor has a shape and no
    values: there PyTorch runs each random fill through its Python reference code (resnet1202: 1.25 s to build,
    0.70 s without; the first build in a process paid 1.3 s more to load that code). Torch function modes are
    per thread, so a model built at the same time on another thread (another page session) is initialised."""

    SKIPPED = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.fill_, torch.Tensor.zero_,
                         nn.init.uniform_, nn.init.normal_, nn.init.constant_, nn.init.kaiming_uniform_,
                         nn.init.trunc_normal_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.SKIPPED:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)
