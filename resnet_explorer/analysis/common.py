"""What every analysis of a trained net shares."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import torch
from torch import nn

from ..devices import is_out_of_memory
from ..limits import MAX_BATCH_SIZE, check_int

try:
    import resource  # Unix only
except ImportError:  # Windows: no address-space limit to read
    resource = None

__all__ = ["ANALYSIS_MEMORY_BYTES", "AnalysisStopped", "auto_batch", "eval_mode", "memory_budget",
           "out_of_memory_as_one_line", "per_image_bytes"]

ANALYSIS_MEMORY_BYTES = 2 * 2**30  # the most one automatic batch's activations may take, whatever is free
WORKING_COPIES = 4  # activations alive at once inside a unit in eval mode: input, two intermediates, shortcut


class AnalysisStopped(RuntimeError):
    """The caller's stop event was set: the analysis ended early and returned nothing."""


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside, then every module's own mode back (a frozen BN may differ from its net)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def per_image_bytes(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    """(the unit inputs an analysis caches, the working activations of one forward pass) for one image.

    From the shapes alone, nothing allocated: the ImageNet stem's stride-2 convolution keeps its
    output at half the side (its max-pool halves it again), a unit at stride s divides the side by s
    after its input. The working memory is the largest of the stem's and every unit's
    `WORKING_COPIES` activations at its widest.
    """
    size = images.element_size()
    h, w = images.shape[-2], images.shape[-1]
    stem_channels = model.spec.stem_channels
    if model.spec.stem == "imagenet":
        h2, w2 = math.ceil(h / 2), math.ceil(w / 2)
        working = 2 * stem_channels * h2 * w2 * size  # the convolution's output and its batch norm's
        h, w = math.ceil(h2 / 2), math.ceil(w2 / 2)
    else:
        working = 2 * stem_channels * h * w * size
    cached = 0
    for _, unit in model.units():
        cached += unit.in_channels * h * w * size
        working = max(working, WORKING_COPIES * max(unit.in_channels, unit.out_channels) * h * w * size)
        h, w = math.ceil(h / unit.stride), math.ceil(w / unit.stride)
    return cached, working


def memory_budget(device: torch.device) -> int:
    """Bytes an automatic batch may take on `device`: `ANALYSIS_MEMORY_BYTES`, or less where less is
    free (a quarter of the memory available on the CPU, or of what an address-space limit such as
    `ulimit -v` leaves; half of the GPU's free memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return min(ANALYSIS_MEMORY_BYTES, free // 2)
    if device.type == "mps":
        return ANALYSIS_MEMORY_BYTES
    free = psutil.virtual_memory().available
    limit, _ = resource.getrlimit(resource.RLIMIT_AS) if resource is not None else (None, None)
    if limit is not None and limit != resource.RLIM_INFINITY:
        free = min(free, max(0, limit - psutil.Process().memory_info().vms))
    return min(ANALYSIS_MEMORY_BYTES, free // 4)


def auto_batch(model: nn.Module, images: torch.Tensor, batch_size: int | None, *, cap: int, cache_bytes: int) -> int:
    """`batch_size` checked, or the largest up to `cap` and the number of images whose cached unit inputs
    fit `cache_bytes` and whose cache and working activations together fit `memory_budget`."""
    if batch_size is not None:
        return check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    cached, working = per_image_bytes(model, images)
    device = next(model.parameters()).device
    fits = min(cache_bytes // max(1, cached), memory_budget(device) // max(1, cached + working))
    return max(1, min(cap, len(images), fits))


@contextmanager
def out_of_memory_as_one_line(what: str) -> Iterator[None]:
    """An allocation that fails inside becomes `MemoryError(f"out of memory {what}")`: one line that
    says what was asked for, instead of the allocator's traceback."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        raise MemoryError(f"out of memory {what}") from None

