"""Residual units: BasicBlock and Bottleneck, post- and pre-activation, with or without shortcut.

Attribute names follow torchvision (`conv1`, `bn1`, ..., `downsample.0/1`) because they are the
`state_dict` keys. Departures from torchvision, all for hooks and captum (captum#578, #1082,
#156): one ReLU module per use (`relu1`, `relu2`, ...), no in-place op, `out = out + identity`.
Two parameter-free taps mark where the branches meet:

- `residual_tap` sees F(x), the residual branch's output;
- `shortcut_tap` sees the shortcut's output (x, its projection or its zero-padded copy);
  it is None in a plain unit, which has no shortcut.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ShortcutKind = Literal["none", "identity", "zero_pad", "projection"]
SHORTCUT_KINDS: tuple[str, ...] = ("none", "identity", "zero_pad", "projection")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015: subsample by striding, then pad new channels with zeros.

    Parameter-free, so a net with option A has exactly the parameters of its plain twin.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"zero-padding cannot shrink channels ({in_channels} -> {out_channels})")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        # The new channels go half before, half after the old ones, as in the common
        # CIFAR reference code; their order does not change what the net can learn.
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class _Unit(nn.Module):
    """Shared shortcut wiring; subclasses build the residual branch."""

    expansion: int = 1
    pre_activation: bool = False

    def __init__(self, in_channels: int, planes: int, stride: int, shortcut: ShortcutKind) -> None:
        super().__init__()
        if shortcut not in SHORTCUT_KINDS:
            raise ValueError(f"shortcut must be one of {SHORTCUT_KINDS}, got {shortcut!r}")
        out_channels = planes * self.expansion
        if shortcut == "identity" and (stride != 1 or in_channels != out_channels):
            raise ValueError(
                f"an identity shortcut needs equal shapes (stride {stride}, {in_channels} -> {out_channels} channels)"
            )
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.shortcut_kind: ShortcutKind = shortcut
        self.downsample: nn.Module | None = None
        if shortcut == "zero_pad":
            self.downsample = ZeroPadShortcut(in_channels, out_channels, stride)
        elif shortcut == "projection":
            layers: list[nn.Module] = [conv1x1(in_channels, out_channels, stride)]
            # Pre-activation units project the already normalised input and add no BN
            # (He et al. 2016, Sec. 3.2 and their Torch code).
            if not self.pre_activation:
                layers.append(nn.BatchNorm2d(out_channels))
            self.downsample = nn.Sequential(*layers)
        self.residual_tap = nn.Identity()
        self.shortcut_tap: nn.Module | None = None if shortcut == "none" else nn.Identity()

    @property
    def has_shortcut(self) -> bool:
        return self.shortcut_tap is not None

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.shortcut_tap(identity)

    def add_shortcut(self, branch: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """F(x) (through `residual_tap`) plus the shortcut of `x`; F(x) alone in a plain net.

        Pre-activation units feed a projection the normalised input (He et al. 2016), so they
        pass that as `x` when the shortcut projects.
        """
        branch = self.residual_tap(branch)
        return branch + self._shortcut(x) if self.has_shortcut else branch

    def zero_init_last(self) -> None:
        raise NotImplementedError


class BasicBlock(_Unit):
    """Two 3x3 convs, post-activation (He et al. 2015, Fig. 2)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: ShortcutKind = "identity",
                 groups: int = 1, base_width: int = 64) -> None:
        super().__init__(in_channels, planes, stride, shortcut)
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu1(out)
        out = self.conv2(out)
        out = self.bn2(out)
        return self.relu2(self.add_shortcut(out, x))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(_Unit):
    """1x1-3x3-1x1, post-activation; stride on the 3x3 conv ("ResNet V1.5", as torchvision)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: ShortcutKind = "identity",
                 groups: int = 1, base_width: int = 64) -> None:
        super().__init__(in_channels, planes, stride, shortcut)
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu1(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu2(out)
        out = self.conv3(out)
        out = self.bn3(out)
        return self.relu3(self.add_shortcut(out, x))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)


class PreActBasicBlock(_Unit):
    """BN-ReLU-conv twice, nothing after the addition (He et al. 2016, Fig. 1b)."""

    expansion = 1
    pre_activation = True

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: ShortcutKind = "identity",
                 groups: int = 1, base_width: int = 64) -> None:
        super().__init__(in_channels, planes, stride, shortcut)
        if groups != 1 or base_width != 64:
            raise ValueError("PreActBasicBlock supports only groups=1 and base_width=64")
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.bn1(x)
        pre = self.relu1(pre)
        out = self.conv1(pre)
        out = self.bn2(out)
        out = self.relu2(out)
        out = self.conv2(out)
        return self.add_shortcut(out, self.shortcut_input(x, pre))

    def shortcut_input(self, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """A projection sees the normalised input `pre`; identity and zero-pad keep x untouched."""
        return pre if self.shortcut_kind == "projection" else x

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(PreActBasicBlock):
    """BN-ReLU-conv 1x1, 3x3, 1x1, nothing after the addition (He et al. 2016, ResNet-164/1001)."""

    expansion = 4
    pre_activation = True

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: ShortcutKind = "identity",
                 groups: int = 1, base_width: int = 64) -> None:
        _Unit.__init__(self, in_channels, planes, stride, shortcut)
        width = int(planes * (base_width / 64.0)) * groups
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU()
        self.conv3 = conv1x1(width, planes * self.expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.bn1(x)
        pre = self.relu1(pre)
        out = self.conv1(pre)
        out = self.bn2(out)
        out = self.relu2(out)
        out = self.conv2(out)
        out = self.bn3(out)
        out = self.relu3(out)
        out = self.conv3(out)
        return self.add_shortcut(out, self.shortcut_input(x, pre))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)


def unit_class(block: str, pre_activation: bool) -> type[_Unit]:
    return {
        ("basic", False): BasicBlock,
        ("bottleneck", False): Bottleneck,
        ("basic", True): PreActBasicBlock,
        ("bottleneck", True): PreActBottleneck,
    }[(block, pre_activation)]
