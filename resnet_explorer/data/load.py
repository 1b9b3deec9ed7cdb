"""`load_data`: one entry point from a dataset name to `ImageData`."""

from __future__ import annotations

from pathlib import Path

from .base import ImageData, check_size
from .cifar import CIFAR_SPECS, load_cifar
from .folder import load_folder
from .shapes import load_shapes

__all__ = ["DATASETS", "load_data"]

# The accepted values of `load_data`'s ``dataset``; "folder:PATH" stands for any path.
DATASETS: tuple[str, ...] = ("shapes", "shapes-easy", "cifar10", "cifar100", "folder:PATH")


def load_data(
    dataset: str = "shapes", *, root: str | Path | None = None, seed: int = 0,
    train_size: int | None = None, test_size: int | None = None, download: bool = False,
    image_size: int = 32,
) -> ImageData:
    """Load a dataset by name; nothing is downloaded unless ``download=True``.

    Args:
        dataset: "shapes" (embedded, synthetic), "shapes-easy" (the same classes drawn bigger, in
            strong contrast, without clutter: the degradation preset's data), "cifar10",
            "cifar100" or "folder:PATH".
        root: CIFAR only: the folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``
            (or that folder itself); default ``./data`` relative to the working directory.
        seed: shapes: the images; folder: the 80/20 split and subsets. CIFAR ignores it.
        train_size: train images; shapes default 10,000, others all. CIFAR keeps the first N,
            a folder a seeded random subset.
        test_size: test images; shapes default 2,000, others all.
        download: CIFAR only: fetch the archive when the folder is missing.
        image_size: side of the square images in pixels (shapes: at least 16).

    Raises:
        ValueError: a one-line message naming what is wrong and how to fix it.
    """
    if not isinstance(dataset, str):
        raise ValueError(f"dataset must be a string such as 'shapes', got {type(dataset).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    check_size("train_size", train_size)
    check_size("test_size", test_size)
    check_size("image_size", image_size)
    name = dataset.strip()
    if name.lower().startswith("folder:"):
        return load_folder(name[len("folder:"):], seed=seed, train_size=train_size, test_size=test_size,
                           image_size=image_size)
    name = name.lower()
    if name in ("shapes", "shapes-easy"):
        return load_shapes(seed=seed, train_size=train_size, test_size=test_size, image_size=image_size,
                           level="standard" if name == "shapes" else "easy")
    if name in CIFAR_SPECS:
        return load_cifar(name, root=root, train_size=train_size, test_size=test_size, download=download,
                          image_size=image_size)
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)} (PATH: a folder of "
                     f"class sub-folders)")
