"""One user image (an upload or a file) as a normalised batch of one, ready for `attribute`."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from ..data import normalize
from ..data.folder import read_image
from .attribution import check_positive_int

__all__ = ["ImageError", "load_image"]


class ImageError(ValueError):
    """An image that cannot be used: unreadable, empty, or too large; the message is one line."""


def _check_header(data: io.BytesIO | Path, name: str, max_pixels: int) -> None:
    """Reject a non-image or an image over ``max_pixels`` from its header, before decoding."""
    try:
        with warnings.catch_warnings():
            # Pillow warns past Image.MAX_IMAGE_PIXELS and raises past twice that; both mean too large.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(data) as img:  # reads the header only
                width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name} is too large for Pillow's decompression-bomb limit "
                         f"({Image.MAX_IMAGE_PIXELS:,} pixels): {' '.join(str(exc).split())}") from None
    except Exception:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, ... for bad files
        raise ImageError(f"{name} is not a readable image") from None
    if width * height > max_pixels:
        raise ImageError(f"{name} is {width} x {height} = {width * height:,} pixels, over the limit of "
                         f"{max_pixels:,}; shrink it first")
    if width * height == 0:
        raise ImageError(f"{name} is not a readable image (it is {width} x {height} pixels)")


def load_image(
    source: bytes | str | Path,
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    max_pixels: int = 20_000_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read, convert, resize and normalise one image as the datasets' images are.

    Any Pillow mode becomes RGB with the image-folder rules (`resnet_explorer.data.folder.read_image`):
    alpha composited on black, 16-bit greyscale scaled to 8 bits, palettes expanded; then a
    bilinear stretch to ``image_size`` x ``image_size`` (no crop).

    Args:
        source: the file's bytes (an upload) or a path.
        image_size: side in pixels, the model's input size.
        mean: three values in [0, 1] units (`ImageData.mean`).
        std: three positive values in [0, 1] units (`ImageData.std`).
        max_pixels: largest width x height accepted, checked from the header before decoding.
            Pillow's own limit (`PIL.Image.MAX_IMAGE_PIXELS`) applies as well.

    Returns:
        (normalised (1, 3, image_size, image_size) float32, preview (3, image_size, image_size) uint8).

    Raises:
        ImageError: empty, corrupt or not an image, or over ``max_pixels``; one line.
        ValueError: bad sizes, or mean / std without three values.
    """
    check_positive_int("image_size", image_size)
    check_positive_int("max_pixels", max_pixels)
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"load_image makes RGB images: mean and std need 3 values, got {len(mean)} and {len(std)}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, file = "the uploaded file", io.BytesIO(bytes(source))
        empty = not file.getbuffer().nbytes
    elif isinstance(source, (str, Path)):
        file = Path(source).expanduser()
        name = str(file)
        if not file.is_file():
            raise ImageError(f"{name} is not a readable image (no such file)")
        empty = file.stat().st_size == 0
    else:
        raise ValueError(f"source must be bytes or a path, got {type(source).__name__}")
    if empty:
        raise ImageError(f"{name} is not a readable image (it is empty)")
    _check_header(file, name, max_pixels)
    if isinstance(file, io.BytesIO):
        file.seek(0)
    try:
        preview = read_image(file, image_size)  # (3, S, S) uint8; Pillow opens a path or a file object
    except ValueError:
        raise ImageError(f"{name} is not a readable image") from None
    return normalize(preview.unsqueeze(0), mean, std), preview
