"""Tensor-level normalisation, its inverse for display, and the standard CIFAR augmentation, on any device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["normalize", "denormalize", "augment_batch"]


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images to float32 ``(x / 255 - mean) / std``, per channel, on the images' device.

    Args:
        images: (N, C, H, W) or (C, H, W) uint8.
        mean: C values in [0, 1] units (e.g. `ImageData.mean`).
        std: C positive values in [0, 1] units.

    Returns:
        float32 tensor of the same shape and device.
    """
    if images.dtype != torch.uint8 or images.dim() not in (3, 4):
        raise ValueError(f"normalize needs (N, C, H, W) or (C, H, W) uint8 images, got {images.dtype} "
                         f"{tuple(images.shape)}")
    channels = images.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"normalize needs one mean and one std per channel ({channels}), got {len(mean)} and "
                         f"{len(std)}")
    if any(not s > 0 for s in std):
        raise ValueError(f"normalize needs every std > 0, got {tuple(std)}")
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    return images.to(torch.float32).div_(255.0).sub_(m).div_(s)


def denormalize(images: torch.Tensor | np.ndarray | Sequence, mean: float | Sequence[float],
                std: float | Sequence[float]) -> torch.Tensor:
    """Undo `normalize`'s `(x / 255 - mean) / std`: back to [0, 1] floats for display, clipped.

    Args:
        images: (N, C, H, W) or (C, H, W) normalised images (tensor or array).
        mean: C values in [0, 1] units, or one value for every channel.
        std: C positive values in [0, 1] units, or one value.

    Returns:
        float32 tensor on the input's device, (N, 3, H, W) or (3, H, W) when C is 1 (grayscale is
        repeated so every display path sees RGB), else the input's shape.

    Raises:
        ValueError: wrong rank, or mean/std lengths that match neither C nor 1, or std <= 0.
    """
    x = images.detach().float() if isinstance(images, torch.Tensor) else torch.as_tensor(
        np.asarray(images, dtype=np.float32))
    if x.ndim not in (3, 4):
        raise ValueError(f"denormalize takes (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    channels = x.shape[-3]
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1)
    if len(m) not in (1, channels) or len(s) not in (1, channels):
        raise ValueError(f"denormalize needs one mean and one std per channel ({channels}) or one for all, "
                         f"got {len(m)} and {len(s)}")
    if bool((s <= 0).any()):
        raise ValueError(f"denormalize needs every std > 0, got {s.tolist()}")
    out = (x * s.view(-1, 1, 1) + m.view(-1, 1, 1)).clamp(0.0, 1.0)
    if channels == 1:
        out = out.repeat_interleave(3, dim=-3)
    return out


def augment_batch(
    x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """Random crop after zero padding, then random horizontal flip, per sample.

    He et al. 2015 ("Deep Residual Learning for Image Recognition", Sec. 4.2): "4 pixels are padded
    on each side, and a 32x32 crop is randomly sampled from the padded image or its horizontal
    flip." Applied after `normalize`, the zero padding is the dataset mean, not black.

    One gather does the whole batch (no Python loop over samples). Draws, in this order from
    ``generator``: the row offsets (N,), the column offsets (N,), then the flips (N,) if ``flip``.

    Args:
        x: (N, C, H, W) float tensor on any device.
        generator: a `torch.Generator` on ``x``'s device (``torch.Generator(device=x.device)``),
            or None for the global RNG of that device.
        padding: pixels of zeros on each side; 0 disables the crop.
        flip: flip each sample left-right with probability 1/2.

    Returns:
        A new (N, C, H, W) tensor of ``x``'s dtype and device.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch needs an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(f"the generator is on {generator.device} but x is on {x.device}; create it with "
                         f"torch.Generator(device=x.device)")
    n, _, h, w = x.shape
    device = x.device
    if padding == 0 and not flip:
        return x.clone()
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x  # (N, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    rows = dy[:, None] + torch.arange(h, device=device)  # (N, H)
    cols = torch.arange(w, device=device).expand(n, w)
    if flip:
        flipped = torch.rand(n, generator=generator, device=device) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    cols = dx[:, None] + cols  # (N, W)
    batch = torch.arange(n, device=device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C): advanced dims come first
    return out.permute(0, 3, 1, 2).contiguous()
