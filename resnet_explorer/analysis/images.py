"""One user image (an upload or a file) as a normalised batch of one, ready for `attribute`."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import normalize
from ..data.folder import read_image, to_rgb
from .attribution import check_positive_int

__all__ = ["FITS", "ImageError", "load_image"]

FITS = ("crop", "pad", "stretch")  # how a non-square image becomes the model's square input


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


def _rgb(file: io.BytesIO | Path) -> Image.Image:
    """The decoded image in RGB, converted with the image-folder rules (as `read_image`, without its resize)."""
    with Image.open(file) as img:
        img.load()
        return to_rgb(img)


def _fit_square(img: Image.Image, size: int, fit: str, fill: tuple[int, int, int], resize: int | None = None
                ) -> np.ndarray:
    """(size, size, 3) uint8: "crop" as torchvision's Resize(resize or size) + CenterCrop(size), or "pad"."""
    w, h = img.size
    if fit == "crop":  # the centre square of side min(w, h) * size / resize, scaled to `size`: Resize + CenterCrop
        side = min(w, h) * size / (resize or size)  # in one; resampling only that box bounds memory for any aspect
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
        return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, box=box), dtype=np.uint8)
    new_w, new_h = (size, max(1, round(size * h / w))) if w >= h else (max(1, round(size * w / h)), size)
    canvas = Image.new("RGB", (size, size), fill)  # "pad": the whole image, centred, the rest in `fill`
    canvas.paste(img.resize((new_w, new_h), Image.Resampling.BILINEAR), ((size - new_w) // 2, (size - new_h) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def load_image(
    source: bytes | str | Path,
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    max_pixels: int = 20_000_000,
    fit: str = "crop",
    resize: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read, convert, resize and normalise one image for a model trained on square images.

    Any Pillow mode becomes RGB with the image-folder rules (`resnet_explorer.data.folder.read_image`):
    alpha composited on black, 16-bit greyscale scaled to 8 bits, palettes expanded. Then, by ``fit``:
    "crop" (default) scales the shorter side to ``image_size`` and keeps the centre square, as
    torchvision's ``Resize(image_size)`` + ``CenterCrop(image_size)``; "pad" scales the longer side
    to ``image_size`` and pads the rest with the ``mean`` colour (zero after normalisation); "stretch"
    squashes the whole image to a square (bilinear), as the image-folder datasets do. A square
    image comes out the same with every fit.

    Args:
        source: the file's bytes (an upload) or a path.
        image_size: side in pixels, the model's input size.
        mean: three values in [0, 1] units (`ImageData.mean`).
        std: three positive values in [0, 1] units (`ImageData.std`).
        max_pixels: largest width x height accepted, checked from the header before decoding.
            Pillow's own limit (`PIL.Image.MAX_IMAGE_PIXELS`) applies as well.
        fit: "crop", "pad" or "stretch" (see above).
        resize: with "crop", first scale the shorter side to ``resize`` (at least ``image_size``),
            then keep the centre ``image_size`` square: ImageNet's evaluation transform is
            resize 256, crop 224 (torchvision's ``Resize(256)`` + ``CenterCrop(224)``). None:
            ``image_size``, the whole centre square. Unused by "pad" and "stretch".

    Returns:
        (normalised (1, 3, image_size, image_size) float32, preview (3, image_size, image_size) uint8).

    Raises:
        ImageError: empty, corrupt or not an image, or over ``max_pixels``; one line.
        ValueError: bad sizes, an unknown ``fit``, or mean / std without three values.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    check_positive_int("image_size", image_size)
    check_positive_int("max_pixels", max_pixels)
    if resize is not None:
        check_positive_int("resize", resize)
        if resize < image_size:
            raise ValueError(f"resize ({resize}) must be at least image_size ({image_size}): the crop is taken from it")
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
        if fit == "stretch":
            preview = read_image(file, image_size)  # (3, S, S) uint8; Pillow opens a path or a file object
        else:
            fill = tuple(int(round(255 * min(max(float(m), 0.0), 1.0))) for m in mean)
            array = _fit_square(_rgb(file), image_size, fit, fill, resize)
            preview = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    except Exception:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...) for bad files
        raise ImageError(f"{name} is not a readable image") from None
    return normalize(preview.unsqueeze(0), mean, std), preview
