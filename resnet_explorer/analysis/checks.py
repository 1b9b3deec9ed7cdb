"""Scores for attribution maps: how much lands on the object, and whether the map needs the model.

`mask_share` compares a map with a ground-truth object mask (the shapes dataset has them);
`sanity_check` is the model-randomisation test of Adebayo et al. 2018, "Sanity Checks for Saliency
Maps" (https://arxiv.org/abs/1810.03292).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from ..data.base import stream_seed
from .attribution import attribute, check_inputs, predict

__all__ = ["mask_share", "sanity_check"]


def mask_share(heatmap: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of each map's positive mass inside its mask, and what a uniformly random map scores.

    Args:
        heatmap: (N, H, W) float, e.g. `AttributionResult.heatmap("positive")`; negative values
            are ignored.
        masks: (N, H, W) bool, True on the object (e.g. `ImageData.test_masks`).

    Returns:
        (share (N,), area (N,)), float32 on the heatmap's device. share is NaN where a map has
        no positive mass; area is the mask's fraction of the image, the expected share of a
        uniformly random map, so share > area means the map favours the object.
    """
    if not isinstance(heatmap, torch.Tensor) or heatmap.dim() != 3 or not heatmap.is_floating_point():
        raise ValueError(f"heatmap must be a float (N, H, W) tensor, got "
                         f"{getattr(heatmap, 'dtype', type(heatmap).__name__)} {tuple(getattr(heatmap, 'shape', ()))}")
    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool or masks.shape != heatmap.shape:
        raise ValueError(f"masks must be a bool tensor of the heatmap's shape {tuple(heatmap.shape)}, got "
                         f"{getattr(masks, 'dtype', type(masks).__name__)} {tuple(getattr(masks, 'shape', ()))}")
    positive = heatmap.detach().clamp(min=0).double()
    masks = masks.to(heatmap.device)
    total = positive.sum(dim=(1, 2))
    inside = (positive * masks).sum(dim=(1, 2))
    share = torch.where(total > 0, inside / total, torch.full_like(total, float("nan")))
    area = masks.double().mean(dim=(1, 2))
    return share.float(), area.float()


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks along the last dimension of a (N, P) tensor, ties given their average rank (as scipy)."""
    ranks = torch.empty_like(x, dtype=torch.float64)
    for i, row in enumerate(x):
        _, inverse, counts = torch.unique(row, sorted=True, return_inverse=True, return_counts=True)
        end = counts.cumsum(0).double()  # one past each tie group's last 0-based position
        ranks[i] = ((end - counts.double() + end - 1) / 2)[inverse]
    return ranks


def _spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image of two (N, ...) maps; NaN where either map is constant."""
    ra = _ranks(a.detach().flatten(1).cpu().double())
    rb = _ranks(b.detach().flatten(1).cpu().double())
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    denom = (ra.square().sum(dim=1) * rb.square().sum(dim=1)).sqrt()
    rho = (ra * rb).sum(dim=1) / denom  # 0 / 0 = NaN for a constant map
    return rho.float()


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed every RNG that `torch.manual_seed` touches, and put all of them back on exit."""
    with ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[], device_type="cpu"))
        for kind in ("cuda", "mps"):
            count = torch.get_device_module(kind).device_count()
            if count:
                stack.enter_context(torch.random.fork_rng(devices=range(count), device_type=kind))
        torch.manual_seed(seed)
        yield


def _randomise(model: nn.Module) -> None:
    """Fresh weights, and BN statistics to (0, 1): the trained statistics belong to the trained weights."""
    if hasattr(model, "reset_parameters"):
        model.reset_parameters()
    else:
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()


def sanity_check(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str,
    *,
    targets: int | torch.Tensor | None = None,
    seed: int = 0,
    **attribute_kwargs,
) -> torch.Tensor:
    """Model-randomisation test (Adebayo et al. 2018): does the map change when the weights do?

    Maps of ``model`` are compared with maps of a copy whose weights are re-initialised under
    ``seed`` (`ResNet.reset_parameters`, plus BN running statistics reset to (0, 1), which the
    paper's re-initialisation of all weights implies), for the same inputs and targets. Both runs
    draw the same random numbers (SmoothGrad's noise), so only the weights differ. The paper
    randomises layer by layer as well ("cascading"); this is its full randomisation.

    Neither ``model`` (weights, buffers, modes) nor torch's global RNG state is changed.

    Args:
        model: a trained ResNet on any device.
        inputs: (N, C, H, W) normalised float.
        method: a key of `METHODS`.
        targets: as in `attribute`; None: the trained model's predicted classes, used for both.
        seed: seeds the re-initialisation and the attribution's random numbers.
        **attribute_kwargs: passed to `attribute` (layer and the method's options: steps,
            n_samples, ...; another method's options are ignored).

    Returns:
        (N,) float32 Spearman rank correlation of the absolute heatmaps, trained vs randomised
        (`run_study`'s "sanity_spearman" score).
        Near 1: the map hardly depends on the weights, so it cannot explain the model; NaN
        where a map is constant (e.g. a Grad-CAM map that is all zero).
    """
    check_inputs(model, inputs)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if targets is None:
        targets = predict(model, inputs)[0]
    with _seeded(stream_seed(seed, 1)):
        trained = attribute(model, inputs, method, targets=targets, **attribute_kwargs)
    randomised = copy.deepcopy(model)
    with _seeded(stream_seed(seed, 0)):
        _randomise(randomised)
    with _seeded(stream_seed(seed, 1)):
        random = attribute(randomised, inputs, method, targets=targets, **attribute_kwargs)
    return _spearman(trained.heatmap("absolute"), random.heatmap("absolute"))
