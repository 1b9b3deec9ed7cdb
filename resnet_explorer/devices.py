"""Device choice: "auto" picks cuda, then mps, then cpu; an absent device is a clear error."""

from __future__ import annotations

import torch

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine or in this PyTorch build."""


def available_devices() -> list[str]:
    """Devices usable here, best first (always ends with "cpu")."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn "auto", "cpu", "cuda", "cuda:N" or "mps" into a usable `torch.device`.

    Raises:
        DeviceUnavailableError: the device is absent, with what is available instead.
        ValueError: the name is not a device.
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}: choose one of {', '.join(DEVICE_CHOICES)}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    here = ", ".join(available_devices())
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"CUDA was requested but is not available (PyTorch {torch.__version__}); available: {here}"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"{name} was requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    if dev.type == "mps" and "mps" not in available_devices():
        raise DeviceUnavailableError(f"MPS (Apple GPU) was requested but is not available; available: {here}")
    return dev


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err` is an allocation that failed: CUDA's `torch.OutOfMemoryError`, the CPU allocator's
    RuntimeError ("can't allocate memory"), MPS's ("MPS backend out of memory") or Python's MemoryError."""
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)

