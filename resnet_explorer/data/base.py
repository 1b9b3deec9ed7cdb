"""`ImageData`: one frozen, validated container for every dataset, and the shared helpers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain, zip_longest

import torch

from ..limits import MAX_DATA_BYTES, MAX_IMAGE_SIZE, MAX_TEST_IMAGES, MAX_TRAIN_IMAGES

__all__ = ["ImageData", "channel_stats", "check_data_bytes", "check_size", "one_line", "spread_over_classes",
           "stream_seed"]

_SIZE_LIMITS = {"train_size": MAX_TRAIN_IMAGES, "test_size": MAX_TEST_IMAGES, "image_size": MAX_IMAGE_SIZE}

_MASK64 = (1 << 64) - 1


def one_line(text: object) -> str:
    """Collapse a message onto one line: errors here are shown in one CLI line or one UI box."""
    return " ".join(str(text).split())


def check_size(name: str, value: int | None) -> None:
    """Reject a size that is not a positive int or is past its ceiling (None means "all" and passes)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    high = _SIZE_LIMITS.get(name)
    if high is not None and value > high:
        raise ValueError(f"{name} {value:,} is past the ceiling of {high:,}")


def check_data_bytes(name: str, n_train: int, n_test: int, channels: int, image_size: int) -> None:
    """Refuse, before allocating, splits whose uint8 images would pass `limits.MAX_DATA_BYTES`."""
    for split, n, high in (("training", n_train, MAX_TRAIN_IMAGES), ("held-out", n_test, MAX_TEST_IMAGES)):
        if n > high:
            raise ValueError(f"{name}: {n:,} {split} images is past the ceiling of {high:,}; "
                             f"ask for fewer (--train-size / --test-size)")
    total = (n_train + n_test) * channels * image_size * image_size
    if total > MAX_DATA_BYTES:
        raise ValueError(f"{name}: {n_train + n_test:,} images of {image_size}x{image_size} would take "
                         f"{total / 1e9:.1f} GB in memory (at most {MAX_DATA_BYTES / 1e9:.0f} GB); "
                         "use fewer or smaller images")


def stream_seed(seed: int, stream: int) -> int:
    """A 63-bit seed for stream ``stream`` of ``seed``, by the splitmix64 finaliser.

    Seeding stream k with ``seed + k`` would make seed 1's train split equal seed 0's test split;
    mixing both through splitmix64 (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
    generators") gives unrelated streams for every (seed, stream) pair.
    """
    z = ((seed & _MASK64) + (stream + 1) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1  # torch.Generator.manual_seed wants < 2**63 to stay portable


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 images, in [0, 1] units.

    Sums of x and x^2 are taken in int64, so they are exact (50,000 CIFAR images sum to ~3e12,
    far below 2**63) and need no float copy of the dataset. A constant channel gets std 1 so that
    `normalize` stays finite.

    Args:
        images: (N, C, H, W) uint8.

    Returns:
        (mean, std), each a tuple of C floats.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"channel_stats needs a non-empty (N, C, H, W) uint8 tensor, got {images.dtype} "
                         f"{tuple(images.shape)}")
    n = images.shape[0] * images.shape[2] * images.shape[3]
    s1 = torch.zeros(images.shape[1], dtype=torch.int64)
    s2 = torch.zeros(images.shape[1], dtype=torch.int64)
    for chunk in images.split(4096):  # bounds the int64 temporary to ~100 MB at 32x32
        c = chunk.to("cpu", torch.int64)
        s1 += c.sum(dim=(0, 2, 3))
        s2 += (c * c).sum(dim=(0, 2, 3))
    mean, std = [], []
    for a, b in zip(s1.tolist(), s2.tolist()):
        m = a / n
        var = max(b / n - m * m, 0.0)
        mean.append(m / 255.0)
        std.append(math.sqrt(var) / 255.0 if var > 0 else 1.0)
    return tuple(mean), tuple(std)


# eq=False: the generated __eq__ would compare tensors with `==` and fail on bool(); identity is
# the right equality for a read-only dataset shared through st.cache_resource.
@dataclass(frozen=True, eq=False)
class ImageData:
    """Train and test splits of one image-classification dataset, kept as uint8 on the CPU.

    Tensors are shared, not copied: treat them as read-only (normalise or augment into new ones).

    Attributes:
        name: "shapes", "shapes-easy", "cifar10", "cifar100" or "folder:<path>".
        classes: class names; label k is ``classes[k]``.
        train_images: (N, C, H, W) uint8, H == W.
        train_labels: (N,) int64 in [0, num_classes).
        test_images: (M, C, H, W) uint8.
        test_labels: (M,) int64.
        mean: per-channel mean of the train split, in [0, 1] units.
        std: per-channel population std of the train split, in [0, 1] units.
        train_masks: (N, H, W) bool, the object's pixels, or None (only the shapes set has them).
        test_masks: (M, H, W) bool or None.
        source: one line saying where the data came from.
    """

    name: str
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_masks: torch.Tensor | None = None
    test_masks: torch.Tensor | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"{self.name}: classes must be non-empty and unique, got {self.classes!r}")
        shape = None
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            masks = getattr(self, f"{split}_masks")
            if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(f"{self.name}: {split}_images must be an (N, C, H, W) uint8 tensor")
            if images.shape[2] != images.shape[3]:
                raise ValueError(f"{self.name}: images must be square, got {split} H x W = "
                                 f"{images.shape[2]} x {images.shape[3]}")
            if shape is not None and images.shape[1:] != shape:
                raise ValueError(f"{self.name}: train and test images differ in (C, H, W): "
                                 f"{tuple(shape)} vs {tuple(images.shape[1:])}")
            shape = images.shape[1:]
            if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise ValueError(f"{self.name}: {split}_labels must be an int64 tensor of shape ({images.shape[0]},)")
            if labels.numel() and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise ValueError(f"{self.name}: {split}_labels must lie in [0, {len(self.classes)})")
            if masks is not None and (not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool
                                      or masks.shape != images.shape[:1] + images.shape[2:]):
                raise ValueError(f"{self.name}: {split}_masks must be None or a bool tensor of shape (N, H, W)")
        channels = shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"{self.name}: mean and std need one value per channel ({channels})")
        if any(not s > 0 for s in self.std):
            raise ValueError(f"{self.name}: std must be positive in every channel, got {self.std}")
        if "\n" in self.source:
            raise ValueError(f"{self.name}: source must be one line")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Channels per image (C)."""
        return self.train_images.shape[1]

    @property
    def image_size(self) -> int:
        """Side of the square images (H == W)."""
        return self.train_images.shape[2]


def spread_over_classes(labels: torch.Tensor, samples: int) -> list[int]:
    """The first ``samples`` positions of ``labels`` taken round-robin over the classes.

    Class 0's first position, class 1's first, ..., then each class's second, and so on; classes
    in ascending order, positions in their order within ``labels``. A class that runs out is
    skipped.

    Args:
        labels: (N,) integer class of each image.
        samples: how many positions; all N when it is larger.

    Returns:
        min(samples, N) distinct positions in 0..N-1.
    """
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels.tolist()):
        by_class.setdefault(int(label), []).append(i)
    rounds = zip_longest(*(by_class[k] for k in sorted(by_class)))
    return [i for i in chain.from_iterable(rounds) if i is not None][:samples]
