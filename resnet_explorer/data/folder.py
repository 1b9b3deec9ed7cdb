"""Images from a folder: one sub-folder per class, optionally under ``train/`` and ``test/``.

The layout of torchvision's ``ImageFolder``::

    PATH/cat/001.png  PATH/dog/xyz.jpg ...               split 80/20 per class by the seed
    PATH/train/cat/... PATH/test/cat/...                  the given split

Every image is opened with Pillow, converted to RGB and stretched (bilinear) to a square; there is
no crop, so the whole picture stays in view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..limits import MAX_IMAGE_PIXELS
from .base import ImageData, channel_stats, check_data_bytes, check_size, one_line, stream_seed

__all__ = ["IMAGE_EXTENSIONS", "TEST_FRACTION", "load_folder", "read_image", "to_rgb"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TEST_FRACTION = 0.2


def to_rgb(img: Image.Image) -> Image.Image:
    """A decoded image of any Pillow mode in RGB, by this project's rules (folders and uploads alike).

    Transparent pixels are composited over black: Pillow's ``convert("RGB")`` keeps whatever
    colour a fully transparent pixel stores, which is often arbitrary. 16-bit greyscale is scaled
    to 8 bits (divided by 257, when any value exceeds 255) rather than clipped to white.
    """
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):  # older Pillow opens 16-bit PNGs as "I"
        grey = np.asarray(img, dtype=np.float64)
        grey = grey / 257.0 if grey.max(initial=0) > 255 else grey
        img = Image.fromarray(grey.clip(0, 255).round().astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return img.convert("RGB")


def read_image(path: Path, size: int) -> torch.Tensor:
    """One image file as a (3, size, size) uint8 tensor, converted by `to_rgb` and stretched to square.

    Raises:
        ValueError: the file cannot be read as an image, naming it.
    """
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:  # from the header, before anything is decoded
                raise ValueError(f"{img.width} x {img.height} pixels is past the ceiling of "
                                 f"{MAX_IMAGE_PIXELS:,} pixels per image")
            img.load()  # Image.open is lazy; decode now so a corrupt file fails here
            img = to_rgb(img).resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, ...) for bad files
        raise ValueError(f"cannot read image {path}: {one_line(exc)}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()  # (3, size, size)


def _class_files(split_dir: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files, for every non-hidden sub-folder of ``split_dir``."""
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{split_dir} has no class sub-folders; put each class's images in its own folder, "
                         f"e.g. {split_dir / 'cat'}/")
    files = {}
    for folder in classes:
        images = sorted(p for p in folder.iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise ValueError(f"class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)}); add some or "
                             f"remove the folder")
        files[folder.name] = images
    return files


def _split(files: dict[str, list[Path]], seed: int) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """Per class: shuffle by the seed, send round(20%) (at least one, never all) to test."""
    g = torch.Generator().manual_seed(stream_seed(seed, 2))
    train, test = [], []
    for label, (name, paths) in enumerate(files.items()):
        if len(paths) < 2:
            raise ValueError(f"class {name!r} has {len(paths)} image; an 80/20 split needs at least 2 per class, "
                             f"or give train/ and test/ folders")
        order = torch.randperm(len(paths), generator=g).tolist()
        n_test = min(max(1, round(TEST_FRACTION * len(paths))), len(paths) - 1)
        test += [(paths[i], label) for i in sorted(order[:n_test])]
        train += [(paths[i], label) for i in sorted(order[n_test:])]
    return train, test


def _subset(items: list[tuple[Path, int]], size: int | None, seed: int, stream: int, split: str):
    """A seeded random subset of ``size`` items in their original order, so every class can stay."""
    if size is None:
        return items
    if size > len(items):
        raise ValueError(f"{split}_size={size} exceeds the {len(items)} {split} images in the folder")
    g = torch.Generator().manual_seed(stream_seed(seed, stream))
    keep = sorted(torch.randperm(len(items), generator=g)[:size].tolist())
    return [items[i] for i in keep]


def _read_all(items: list[tuple[Path, int]], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.empty((len(items), 3, size, size), dtype=torch.uint8)
    for i, (path, _) in enumerate(items):
        images[i] = read_image(path, size)
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return images, labels


def load_folder(
    path: str | Path, *, seed: int = 0, train_size: int | None = None, test_size: int | None = None,
    image_size: int = 32,
) -> ImageData:
    """An image folder as `ImageData`, named ``folder:<path>``.

    Args:
        path: the folder (``~`` expanded, relative paths from the working directory).
        seed: fixes the 80/20 split (when there are no ``train/`` and ``test/`` folders) and the
            subsets below.
        train_size: a seeded random subset of the train images, in folder order; default all.
        test_size: the same for the test images.
        image_size: side in pixels.

    Raises:
        ValueError: a missing folder, no class sub-folders, an empty class, an unreadable image.
    """
    check_size("train_size", train_size)
    check_size("test_size", test_size)
    check_size("image_size", image_size)
    if not str(path).strip():
        raise ValueError("folder: needs a path, e.g. folder:~/pictures/pets")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist or is not a folder")
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train != has_test:
        present, absent = ("train", "test") if has_train else ("test", "train")
        raise ValueError(f"{root} has {present}/ but no {absent}/; add {absent}/ with the same class folders, "
                         f"or put the class folders directly in {root}")
    if has_train:
        train_files, test_files = _class_files(root / "train"), _class_files(root / "test")
        unknown = sorted(set(test_files) - set(train_files))
        if unknown:
            raise ValueError(f"{root / 'test'} has classes missing from {root / 'train'}: {', '.join(unknown)}")
        classes = tuple(train_files)
        index = {name: k for k, name in enumerate(classes)}
        train = [(p, index[name]) for name, paths in train_files.items() for p in paths]
        test = [(p, index[name]) for name, paths in test_files.items() for p in paths]
        how = "train/ and test/ folders"
    else:
        files = _class_files(root)
        classes = tuple(files)
        train, test = _split(files, seed)
        how = f"80/20 split by seed {seed}"
    train = _subset(train, train_size, seed, 3, "train")
    test = _subset(test, test_size, seed, 4, "test")
    check_data_bytes(f"folder:{path}", len(train), len(test), 3, image_size)
    train_images, train_labels = _read_all(train, image_size)
    test_images, test_labels = _read_all(test, image_size)
    mean, std = channel_stats(train_images)
    return ImageData(
        name=f"folder:{path}", classes=classes,
        train_images=train_images, train_labels=train_labels,
        test_images=test_images, test_labels=test_labels,
        mean=mean, std=std, source=f"image folder {root.resolve()}, {how}",
    )
