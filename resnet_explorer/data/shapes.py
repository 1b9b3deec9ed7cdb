"""The embedded synthetic shapes dataset: ten classes of shapes and textured patches, no download.

In the spirit of dSprites (Matthey et al. 2017, "dSprites: Disentanglement testing Sprites
dataset"): shapes under known factors of variation (position, scale, rotation). Departures: colour
images, cluttered and noisy backgrounds, and texture classes, so that a small ResNet learns it in a
few hundred steps without reaching 100% (measured with resnet20, SGD lr 0.1, momentum 0.9,
batch 128, no augmentation: 59-64% test accuracy after 300 steps, 83-95% after 400-600).

Every image is drawn by formula on a coordinate grid, for a whole batch of samples at once:

* background: a random colour, a linear gradient per channel in a random direction;
* clutter: up to four small rectangles or thin lines in other colours, drawn under the object;
* the object: one of `SHAPES_CLASSES` with random colour, position, scale and a small rotation.
  The three textured classes (stripes both ways, checkerboard) have the square's silhouette, so
  only their texture tells them apart from it and from each other;
* Gaussian pixel noise with a per-image standard deviation.

Rotation stays within +-0.3 rad (about 17 degrees): at 45 degrees a plus would become an
x-cross and a square a diamond. The object colour keeps an RGB distance of at least 0.4 from the
background colour so that every shape stays visible. Each image comes with a boolean mask of the
object's pixels (the whole patch for the textured classes).
"""

from __future__ import annotations

import math
import threading

import torch

from .base import ImageData, channel_stats, check_data_bytes, check_size, stream_seed

__all__ = ["SHAPES_CLASSES", "MIN_IMAGE_SIZE", "SHAPES_LEVELS", "make_shapes", "load_shapes"]

SHAPES_CLASSES: tuple[str, ...] = (
    "disk", "square", "triangle", "ring", "plus", "x-cross", "diamond", "h-stripes", "v-stripes", "checkerboard",
)
# Below 16 pixels the thin classes (ring, plus, x-cross, stripes) fall under one pixel wide.
MIN_IMAGE_SIZE = 16

# Units: the image spans [-1, 1] on both axes; object sizes are in "local" units scaled by r.
# Difficulty is tuned to the degradation preset (`python -m resnet_explorer degradation`: 250 steps
# of batch 64): plain20 and resnet20 learn it (~80-88% test accuracy) while plain56 is still near
# chance. Smaller objects, more noise and four distractors made even resnet20 sit at chance for
# the first ~100 steps of batch 128, which hid the comparison inside that budget.
_RADIUS = (0.34, 0.58)       # object scale r; its farthest point is at most 1.3 r from the centre
_MARGIN = 0.95               # keep every object inside [-0.95, 0.95]: masks never touch the border
_MAX_ANGLE = 0.3             # radians
_SQUARE_HALF = 0.85          # half side of the square and of the textured patches, local units
_PERIOD = (0.7, 1.0)         # stripe / checker period, local units (>= ~2 px per stripe at 32 px)
_MIN_CONTRAST = 0.5          # RGB distance object vs background
_MIN_CLUTTER_CONTRAST = 0.4  # RGB distance clutter vs object
_GRADIENT = 0.15             # background gradient amplitude per channel, +- at the image edge
_NOISE = (0.02, 0.08)        # per-image Gaussian noise std, [0, 1] units
_CLUTTER_SLOTS = 3
_CLUTTER_P = 0.5             # chance each slot holds a distractor
# The "easy" level (dataset name "shapes-easy"): bigger objects in strong contrast, no clutter and
# little noise, so that even at 16x16 pixels and without augmentation a 20-layer plain net leaves
# the loss plateau at chance within ~50 steps on every seed. The degradation preset uses it: on the
# standard level the shallow plain net's escape from that plateau was a matter of luck (float
# summation order, thread count), which decided the preset's result (bench/degradation_search.py).
_EASY = {"radius": (0.5, 0.7), "min_contrast": 0.8, "noise": (0.0, 0.02), "clutter_p": 0.0}
SHAPES_LEVELS: tuple[str, ...] = ("standard", "easy")
_CHUNK = 2048                # samples rendered at once: ~100 MB of float temporaries at 32x32
_TEXTURED = (7, 8, 9)


def _uniform(shape: tuple[int, ...], low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g) * (high - low) + low


def _contrasting(reference: torch.Tensor, min_distance: float, g: torch.Generator) -> torch.Tensor:
    """Random colours at least ``min_distance`` (RGB, L2) from ``reference`` (n, 3).

    Four rounds of rejection with a fixed number of draws keep the stream deterministic; the few
    colours still too close fall back to the reference shifted by 0.5 per channel (distance 0.87).
    """
    colour = torch.rand(reference.shape, generator=g)
    for _ in range(4):
        retry = torch.rand(reference.shape, generator=g)
        close = (colour - reference).norm(dim=1) < min_distance
        colour = torch.where(close[:, None], retry, colour)
    close = (colour - reference).norm(dim=1) < min_distance
    fallback = torch.where(reference > 0.5, reference - 0.5, reference + 0.5)
    return torch.where(close[:, None], fallback, colour)


def _draw_params(labels: torch.Tensor, g: torch.Generator, level: str = "standard") -> dict[str, torch.Tensor]:
    """Per-sample scene parameters, all drawn up front in a fixed order (n = len(labels))."""
    knobs = {"radius": _RADIUS, "min_contrast": _MIN_CONTRAST, "noise": _NOISE, "clutter_p": _CLUTTER_P}
    if level == "easy":
        knobs.update(_EASY)
    n = labels.shape[0]
    p: dict[str, torch.Tensor] = {}
    p["radius"] = _uniform((n,), *knobs["radius"], g)
    reach = _MARGIN - 1.3 * p["radius"]
    p["centre"] = (torch.rand((n, 2), generator=g) * 2 - 1) * reach[:, None]  # (n, 2) as (x, y)
    p["angle"] = _uniform((n,), -_MAX_ANGLE, _MAX_ANGLE, g)
    p["background"] = torch.rand((n, 3), generator=g)
    p["gradient"] = _uniform((n, 3), -_GRADIENT, _GRADIENT, g)
    p["gradient_dir"] = _uniform((n,), 0.0, 2 * math.pi, g)
    p["colour"] = _contrasting(p["background"], knobs["min_contrast"], g)
    # The second texture colour: every channel 0.5 away from the first, so stripes always show.
    p["colour2"] = torch.where(p["colour"] > 0.5, p["colour"] - 0.5, p["colour"] + 0.5)
    p["period"] = _uniform((n,), *_PERIOD, g)
    p["phase"] = torch.rand((n, 2), generator=g) * p["period"][:, None]
    p["noise"] = _uniform((n,), *knobs["noise"], g)
    k = _CLUTTER_SLOTS
    p["clutter_on"] = torch.rand((n, k), generator=g) < knobs["clutter_p"]
    p["clutter_centre"] = torch.rand((n, k, 2), generator=g) * 2 - 1
    p["clutter_angle"] = _uniform((n, k), 0.0, math.pi, g)
    is_line = torch.rand((n, k), generator=g) < 0.5
    rect = _uniform((n, k, 2), 0.06, 0.2, g)
    line = torch.stack([_uniform((n, k), 0.25, 0.6, g), _uniform((n, k), 0.04, 0.07, g)], dim=-1)
    p["clutter_half"] = torch.where(is_line[..., None], line, rect)  # (n, k, 2) half length, half width
    p["clutter_colour"] = torch.stack(
        [_contrasting(p["colour"], _MIN_CLUTTER_CONTRAST, g) for _ in range(k)], dim=1)  # (n, k, 3)
    return p


def _local(x: torch.Tensor, y: torch.Tensor, centre: torch.Tensor, angle: torch.Tensor):
    """Coordinates in a frame centred on ``centre`` (n, 2) and rotated by ``angle`` (n,)."""
    dx = x - centre[:, 0, None, None]  # (n, S, S)
    dy = y - centre[:, 1, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    return cos * dx + sin * dy, -sin * dx + cos * dy


def _shape_mask(label: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The silhouette of class ``label`` in local units (v points down the image)."""
    au, av = u.abs(), v.abs()
    if label == 0:  # disk
        return u * u + v * v <= 1.0
    if label in (1, *_TEXTURED):  # square and the textured patches
        return torch.maximum(au, av) <= _SQUARE_HALF
    if label == 2:  # triangle, apex up: apex (0, -0.9), base v = 0.8 from u = -1 to 1
        return (v <= 0.8) & (au <= (v + 0.9) / 1.7)
    if label == 3:  # ring
        d2 = u * u + v * v
        return (d2 <= 1.0) & (d2 >= 0.55**2)
    if label == 4:  # plus
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    if label == 5:  # x-cross: the plus in a frame turned by 45 degrees
        a, b = ((u + v) / math.sqrt(2)).abs(), ((u - v) / math.sqrt(2)).abs()
        return ((a <= 0.28) & (b <= 1.0)) | ((b <= 0.28) & (a <= 1.0))
    if label == 6:  # diamond
        return au + av <= 1.0
    raise ValueError(f"unknown shapes label {label}; expected 0..{len(SHAPES_CLASSES) - 1}")


def _texture(label: int, u: torch.Tensor, v: torch.Tensor, period: torch.Tensor, phase: torch.Tensor):
    """True where a textured patch shows its first colour; stripes follow the object's rotation."""
    period = period[:, None, None]
    su = torch.floor((u + phase[:, 0, None, None]) * 2 / period)  # half-period cells
    sv = torch.floor((v + phase[:, 1, None, None]) * 2 / period)
    if label == 7:  # horizontal stripes: bands across v
        return sv.remainder(2) == 0
    if label == 8:
        return su.remainder(2) == 0
    return (su + sv).remainder(2) == 0


def _render(labels: torch.Tensor, p: dict[str, torch.Tensor], size: int, g: torch.Generator):
    """Images (n, 3, S, S) float in [0, 1] and masks (n, S, S) bool for one chunk."""
    n = labels.shape[0]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0  # pixel centres
    x, y = coords.view(1, 1, size), coords.view(1, size, 1)

    direction = p["gradient_dir"]
    ramp = direction.cos()[:, None, None] * x + direction.sin()[:, None, None] * y  # (n, S, S)
    image = p["background"][:, :, None, None] + p["gradient"][:, :, None, None] * ramp[:, None]

    for k in range(_CLUTTER_SLOTS):  # a loop over distractor slots, vectorised over samples
        cu, cv = _local(x, y, p["clutter_centre"][:, k], p["clutter_angle"][:, k])
        half = p["clutter_half"][:, k]
        hit = (cu.abs() <= half[:, 0, None, None]) & (cv.abs() <= half[:, 1, None, None])
        hit &= p["clutter_on"][:, k, None, None]
        image = torch.where(hit[:, None], p["clutter_colour"][:, k, :, None, None], image)

    u, v = _local(x, y, p["centre"], p["angle"])
    r = p["radius"][:, None, None]
    u, v = u / r, v / r
    mask = torch.zeros((n, size, size), dtype=torch.bool)
    first = torch.ones((n, size, size), dtype=torch.bool)  # which texture colour shows
    for label in range(len(SHAPES_CLASSES)):  # ten class formulas, each over its own samples
        idx = (labels == label).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        mask[idx] = _shape_mask(label, u[idx], v[idx])
        if label in _TEXTURED:
            first[idx] = _texture(label, u[idx], v[idx], p["period"][idx], p["phase"][idx])
    colour = torch.where(first[:, None], p["colour"][:, :, None, None], p["colour2"][:, :, None, None])
    image = torch.where(mask[:, None], colour, image)

    noise = torch.randn((n, 3, size, size), generator=g)
    image = image + p["noise"][:, None, None, None] * noise
    return image, mask


def make_shapes(
    n: int, *, seed: int = 0, stream: int = 0, image_size: int = 32, level: str = "standard"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``n`` shapes images from stream ``stream`` of ``seed``.

    Uses a local `torch.Generator` only, so the global RNG state is neither read nor changed.
    Labels are balanced: each class appears ``n // 10`` or ``n // 10 + 1`` times, in random order.

    Args:
        n: number of images.
        seed: any int.
        stream: 0 for train, 1 for test; different streams give unrelated images.
        image_size: side S in pixels, at least `MIN_IMAGE_SIZE`.
        level: "standard", or "easy" (bigger objects, strong contrast, no clutter, little noise).

    Returns:
        images (n, 3, S, S) uint8, labels (n,) int64, masks (n, S, S) bool.
    """
    check_size("n", n)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"shapes needs image_size >= {MIN_IMAGE_SIZE} (thinner shapes vanish), got {image_size!r}")
    if level not in SHAPES_LEVELS:
        raise ValueError(f"shapes level must be one of {', '.join(SHAPES_LEVELS)}, got {level!r}")
    key = (n, seed, stream, image_size, level)
    with _drawn_lock:
        kept = _drawn.get(key)
    if kept is None:
        kept = _draw(*key)
        if n * image_size * image_size * 4 <= CACHE_BYTES:  # images (3 bytes a pixel) and masks (1)
            with _drawn_lock:
                _drawn[key] = kept
                while len(_drawn) > CACHE_ENTRIES:
                    _drawn.pop(next(iter(_drawn)))
    return tuple(t.clone() for t in kept)  # the caller's own tensors: it may change them in place


# The draws last asked for, by (n, seed, stream, image_size, level): an analysis of a run re-makes its data from
# the config (`Run.sample`: all 10,000 + 2,000 images, ~1 s, to take a few), and a page asks again on every
# rerun. Bounded: at most CACHE_ENTRIES draws, each of at most CACHE_BYTES (the defaults' 10,000 at 32 px are
# 41 MB), oldest out first.
CACHE_ENTRIES = 4
CACHE_BYTES = 48 * 2**20
_drawn: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
_drawn_lock = threading.Lock()


def _draw(n: int, seed: int, stream: int, image_size: int, level: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(stream_seed(seed, stream))
    labels = (torch.arange(n) % len(SHAPES_CLASSES))[torch.randperm(n, generator=g)]
    params = _draw_params(labels, g, level)
    images = torch.empty((n, 3, image_size, image_size), dtype=torch.uint8)
    masks = torch.empty((n, image_size, image_size), dtype=torch.bool)
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        chunk, masks[part] = _render(labels[part], {k: t[part] for k, t in params.items()}, image_size, g)
        images[part] = chunk.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    return images, labels, masks


def load_shapes(
    *, seed: int = 0, train_size: int | None = None, test_size: int | None = None, image_size: int = 32,
    level: str = "standard",
) -> ImageData:
    """The shapes dataset as `ImageData`: train from stream 0 of ``seed``, test from stream 1.

    Args:
        seed: any int.
        train_size: train images, default 10,000.
        test_size: test images, default 2,000.
        image_size: side in pixels, at least `MIN_IMAGE_SIZE`.
        level: "standard" (dataset name "shapes") or "easy" ("shapes-easy").
    """
    train_size = 10_000 if train_size is None else train_size
    test_size = 2_000 if test_size is None else test_size
    check_data_bytes("shapes", train_size, test_size, 3, image_size)
    train_images, train_labels, train_masks = make_shapes(train_size, seed=seed, stream=0, image_size=image_size,
                                                          level=level)
    test_images, test_labels, test_masks = make_shapes(test_size, seed=seed, stream=1, image_size=image_size,
                                                       level=level)
    mean, std = channel_stats(train_images)
    return ImageData(
        name="shapes" if level == "standard" else f"shapes-{level}", classes=SHAPES_CLASSES,
        train_images=train_images, train_labels=train_labels,
        test_images=test_images, test_labels=test_labels,
        mean=mean, std=std, train_masks=train_masks, test_masks=test_masks,
        source=f"embedded synthetic shapes{'' if level == 'standard' else f' ({level})'}, seed {seed}",
    )
