"""Heat-map pixel maths: attribution maps and their inputs as displayable arrays (numpy only).

Every map is scaled per image by its own 99th percentile and clipped to [0, 1] (`normalize_heatmap`),
so one hot pixel does not wash out the rest and methods of very different scales share one colour
scale. The colour map is inferno (dark = none, bright = most), drawn `OVERLAY_ALPHA` opaque over the
input in grayscale; an object mask is outlined in `MASK_COLOUR`. The plotly grid
(`attribution.plot_attribution_grid`) and the PIL renderer (`png.render_attribution_png`) both draw
from these arrays, so they show the same picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "INFERNO", "MASK_COLOUR", "MASK_RGB", "OVERLAY_ALPHA", "PERCENTILE", "ArrayLike", "display_images",
    "display_maps", "display_masks", "grayscale", "inferno", "luma", "normalize_heatmap", "outline", "overlay",
    "pool_maps", "resize_nearest", "to_numpy",
]

PERCENTILE = 99.0  # each map is divided by this percentile of itself, then clipped to [0, 1]
# Matplotlib's inferno sampled at 10 even steps (the same list as plotly's "Inferno"): perceptually
# uniform and dark at zero, so "brighter = more attribution" holds in colour and in grayscale.
INFERNO = ("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d",
           "#fcffa4")
OVERLAY_ALPHA = 0.6  # heat-map opacity over the grayscale input, in the figure and in the PNG
MASK_COLOUR = "#00e5ff"  # cyan: absent from inferno, so the outline reads over any heat

ArrayLike = np.ndarray | torch.Tensor | Sequence


def _rgb01(colour: str) -> np.ndarray:
    """'#rrggbb' -> float32 (3,) in [0, 1]."""
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32) / 255.0


_INFERNO_RGB = np.stack([_rgb01(c) for c in INFERNO])  # (K, 3)
MASK_RGB = _rgb01(MASK_COLOUR)  # (3,) in [0, 1]


def to_numpy(x: ArrayLike) -> np.ndarray:
    """A tensor (any device) or array-like as a float32 numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def display_images(images: ArrayLike | None) -> np.ndarray | None:
    """(N, 3, H, W) or (N, 1, H, W) -> (N, H, W, 3) float32 in [0, 1]; None when there are no images.

    NaN counts as 0, values outside [0, 1] are clipped, grayscale is repeated to RGB.

    Raises:
        ValueError: any other shape.
    """
    if images is None:
        return None
    x = to_numpy(images)
    if x.size == 0:
        return None
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 3, H, W) or (N, 1, H, W), got shape {tuple(x.shape)}")
    x = np.nan_to_num(x, nan=0.0)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return np.clip(x, 0.0, 1.0).transpose(0, 2, 3, 1)


def display_maps(heatmap: ArrayLike, n: int, name: str) -> np.ndarray:
    """(N, h, w) or (N, 1, h, w) -> normalised (N, h, w); h, w may differ from the image (e.g. Grad-CAM).

    Raises:
        ValueError: a shape other than (N, h, w) with N = `n` (the error names the method `name`).
    """
    m = to_numpy(heatmap)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3 or m.shape[0] != n:
        raise ValueError(f"heat-map {name!r} must be (N, H, W) with N = {n} images, got shape {tuple(m.shape)}")
    return normalize_heatmap(m)


def display_masks(masks: ArrayLike | None, n: int, height: int, width: int) -> np.ndarray | None:
    """(N, H, W) masks as bool (values > 0.5); None without masks.

    Raises:
        ValueError: a shape other than (n, height, width).
    """
    if masks is None:
        return None
    m = to_numpy(masks)
    if m.shape != (n, height, width):
        raise ValueError(f"masks must be (N, H, W) = {(n, height, width)} like the images, got {tuple(m.shape)}")
    return m > 0.5


def normalize_heatmap(m: ArrayLike) -> np.ndarray:
    """Scale a map to [0, 1] by its 99th percentile, clipped, so one hot pixel cannot wash out the rest.

    Negative and non-finite values count as 0 (pass |m| for signed methods). A map whose 99th
    percentile is 0 (fewer than 1% non-zero pixels) is scaled by its maximum instead; an all-zero
    map stays zero.

    Args:
        m: (H, W) one map, or (N, H, W) maps, each normalised on its own.

    Returns:
        float32 array of the same shape, values in [0, 1].
    """
    m = np.nan_to_num(to_numpy(m).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if m.ndim not in (2, 3):
        raise ValueError(f"normalize_heatmap takes (H, W) or (N, H, W), got shape {m.shape}")
    single = m.ndim == 2
    m = np.maximum(m[None] if single else m, 0.0)
    flat = m.reshape(len(m), -1)
    scale = np.percentile(flat, PERCENTILE, axis=1) if flat.shape[1] else np.zeros(len(m))
    scale = np.where(scale > 0, scale, flat.max(axis=1, initial=0.0))
    out = np.divide(m, scale[:, None, None], out=np.zeros_like(m), where=scale[:, None, None] > 0)
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    return out[0] if single else out


def luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) -> (...) luma (ITU-R 601): under the heat-map, its colour is the only colour left."""
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def grayscale(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3) luma repeated."""
    return np.repeat(luma(rgb)[..., None], 3, axis=-1)


def inferno(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> (..., 3) RGB in [0, 1], linear between the INFERNO anchors."""
    pos = np.clip(values, 0.0, 1.0) * (len(_INFERNO_RGB) - 1)
    lo = np.minimum(np.floor(pos).astype(int), len(_INFERNO_RGB) - 2)
    frac = (pos - lo)[..., None]
    return _INFERNO_RGB[lo] * (1 - frac) + _INFERNO_RGB[lo + 1] * frac


def resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, ...) -> (height, width, ...) by nearest neighbour (keeps pixels crisp, any factor)."""
    rows = np.arange(height) * a.shape[0] // height
    cols = np.arange(width) * a.shape[1] // width
    return a[rows][:, cols]


def overlay(rgb: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """(H, W, 3) input and (H, W) normalised map -> the grayscale input under the inferno map."""
    return (1 - OVERLAY_ALPHA) * grayscale(rgb) + OVERLAY_ALPHA * inferno(heat)


def outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> the mask's pixels with a 4-neighbour outside the mask (the image border counts)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def pool_maps(m: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """(N, h, w) maps mean-pooled by the smallest whole factor that brings both sides to <= `limit`, and
    the factor: a display cell of `limit` px cannot show more, and 224x224 maps of 8 images x 6 methods
    would otherwise put ~10 MB of floats into a figure."""
    factor = math.ceil(max(m.shape[1:]) / limit)
    if factor <= 1:
        return m, 1
    n, h, w = m.shape
    h, w = h - h % factor, w - w % factor  # drop the last partial block (at most factor - 1 pixels)
    return m[:, :h, :w].reshape(n, h // factor, factor, w // factor, factor).mean(axis=(2, 4)), factor
