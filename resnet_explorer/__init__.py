"""ResNet Explorer: build, inspect and compare residual networks and their plain twins."""

from .devices import DeviceUnavailableError, available_devices, resolve_device
from .models import (
    LargeModelError,
    ModelSpec,
    ResNet,
    build_model,
    count_parameters,
    get_variant,
    list_variants,
)

__version__ = "0.2.0"

__all__ = [
    "DeviceUnavailableError", "available_devices", "resolve_device",
    "LargeModelError", "ModelSpec", "ResNet", "build_model", "count_parameters", "get_variant",
    "list_variants", "__version__",
]
