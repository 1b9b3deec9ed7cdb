"""ImageNet-1k preprocessing and class names, for pretrained (imported) nets.

The names are torchvision's (`imagenet_classes.txt`, BSD-3-Clause; see the file's header), in the
index order of torchvision's and timm's ImageNet weights. Preprocessing is theirs too: resize the
short side to 256, centre-crop 224, normalise with the mean and std below.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IMAGENET_RESIZE = 256  # short side before the centre crop
IMAGENET_CROP = 224
IMAGENET_NUM_CLASSES = 1000
CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    lines = CLASSES_FILE.read_text(encoding="utf-8").splitlines()
    names = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if len(names) != IMAGENET_NUM_CLASSES:
        raise RuntimeError(f"{CLASSES_FILE} holds {len(names):,} names, not {IMAGENET_NUM_CLASSES:,}")
    return names


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, index i naming output i of torchvision's and timm's weights."""
    return list(_names())
