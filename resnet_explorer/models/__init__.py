"""The model zoo: specs, residual units, the ResNet module and the registry."""

from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut
from .registry import VARIANTS, Variant, get_variant, list_variants
from .resnet import (
    LARGE_PARAMS,
    LARGE_UNITS,
    LargeModelError,
    ModelTooLargeError,
    ResNet,
    UnitPlan,
    build_model,
    check_model_size,
    count_parameters,
    large_model_message,
    stage_plan,
    stage_units,
)
from .spec import ModelSpec, nearest_legal_depths

__all__ = [
    "BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "ZeroPadShortcut",
    "VARIANTS", "Variant", "get_variant", "list_variants",
    "LARGE_UNITS", "LARGE_PARAMS", "UnitPlan", "LargeModelError", "ModelTooLargeError", "ResNet",
    "build_model", "check_model_size", "count_parameters", "large_model_message", "stage_plan", "stage_units",
    "ModelSpec", "nearest_legal_depths",
]
