"""ResNet module names in depth order, and the residual unit and stage a name belongs to.

The names are those of `ResNet.named_modules()` (and torchvision's): stem modules ("conv1",
"bn1", "relu", "maxpool"), then stages "layer1" ... "layer4" of units "layerS.U" holding
"conv1", "bn1", ..., "downsample.0", then the head ("bn_final", "relu_final", "avgpool", "fc").
The probes log these names; the figures and findings order them from the input to the output.
"""

from __future__ import annotations

import math
import re

__all__ = ["HEAD_MODULES", "depth_key", "stage_of", "unit_of"]

HEAD_MODULES: tuple[str, ...] = ("bn_final", "relu_final", "avgpool", "fc")  # after the last stage, in forward order
_KIND_RANK = {"conv": 0, "bn": 1, "relu": 2, "maxpool": 3, "pool": 3}
_TOKEN = re.compile(r"^(.*?)(\d+)$")
_UNIT = re.compile(r"^(layer\d+\.\d+)(?:\.|$)")
_STAGE = re.compile(r"^(layer\d+)(?:\.|$)")


def _token_key(token: str) -> tuple[float, int, str]:
    """'conv2' -> (2, 0, 'conv'), 'bn2' -> (2, 1, 'bn'), '13' -> (13, -1, ''), 'downsample' -> (inf, 4, ...)."""
    match = _TOKEN.match(token)
    if match is None:
        return math.inf, _KIND_RANK.get(token, 4), token
    prefix, number = match.groups()
    return float(number), _KIND_RANK.get(prefix, 4) if prefix else -1, prefix


def depth_key(name: str) -> tuple:
    """Sort key that orders module or unit names from the input to the output.

    Stem modules ("conv1", "bn1", "relu", "maxpool") come first, then "layer1" ... "layer4" with
    numeric unit indices (layer1.2 < layer1.10 < layer2.0), then "bn_final", "relu_final",
    "avgpool", "fc". Inside a unit, attributes sort by their number, then conv < bn < relu
    (conv1 < bn1 < relu1 < conv2), and unnumbered ones such as "downsample" last. Pre-activation
    units run bn1 before conv1; this key still puts conv1 first (it reads names, not the graph).
    """
    tokens = str(name).split(".")
    if tokens[0] in HEAD_MODULES:
        group, rank = 2, HEAD_MODULES.index(tokens[0])
    elif _STAGE.match(str(name)):
        group, rank = 1, 0
    else:
        group, rank = 0, 0
    return (group, rank, *(_token_key(t) for t in tokens))


def unit_of(name: str) -> str | None:
    """The residual unit of a name: 'layer2.13.conv1' -> 'layer2.13'; None outside the stages ('conv1', 'fc')."""
    match = _UNIT.match(name)
    return match.group(1) if match else None


def stage_of(name: str) -> str | None:
    """The stage of a name: 'layer2.13.conv1' -> 'layer2'; None outside the stages ('conv1', 'fc')."""
    match = _STAGE.match(name)
    return match.group(1) if match else None
