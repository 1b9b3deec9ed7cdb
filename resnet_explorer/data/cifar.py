"""CIFAR-10 and CIFAR-100 from a local folder in the original python-pickle layout.

Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images";
files and layout as published at https://www.cs.toronto.edu/~kriz/cifar.html::

    cifar-10-batches-py/   data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/      train, test, meta        (we use the 100 fine labels)

Each batch is a pickled dict with b"data" (N x 3072 uint8, channel-major rows of 32x32) and
b"labels" (CIFAR-10) or b"fine_labels" (CIFAR-100). Nothing is downloaded unless
``download=True``; the archive's md5 is checked and its members are vetted before extraction.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch
import torch.nn.functional as F

from ..limits import MAX_CIFAR_FILE_BYTES
from ..pickle_guard import Refused, check_pickle
from .base import ImageData, channel_stats, check_data_bytes, check_size, one_line

__all__ = ["CIFAR_SPECS", "DEFAULT_ROOT", "CifarSpec", "load_cifar", "download_cifar"]

log = logging.getLogger(__name__)

# Relative to the working directory, so `python -m resnet_explorer ... --download` run from the
# repository keeps its data under ./data, next to the code, and never in a hidden cache.
DEFAULT_ROOT = Path("data")


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives and how its files are keyed."""

    folder: str
    url: str
    md5: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: bytes
    names_key: bytes


CIFAR_SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        folder="cifar-10-batches-py",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_file="test_batch", meta_file="batches.meta",
        label_key=b"labels", names_key=b"label_names",
    ),
    "cifar100": CifarSpec(
        folder="cifar-100-python",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_files=("train",), test_file="test", meta_file="meta",
        label_key=b"fine_labels", names_key=b"fine_label_names",
    ),
}

# The globals a CIFAR pickle may name: numpy's array reconstructors (numpy 1 and 2 module paths)
# and the codec py2-era pickles use for bytes. Anything else could run code on load.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}




class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    """Unpickle one CIFAR file with only numpy globals allowed; any failure names the file."""
    try:
        if path.stat().st_size > MAX_CIFAR_FILE_BYTES:
            raise ValueError(f"{path.stat().st_size:,} bytes, more than any CIFAR file")
        data = path.read_bytes()
        check_pickle(data, f"CIFAR file {path}")  # bounded work first: a hash bomb is refused unread
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Refused:
        raise
    except FileNotFoundError:
        raise ValueError(f"missing CIFAR file {path}; the folder is incomplete, delete it and load again with "
                         f"download=True (CLI: --download; Train page: 'Download if missing')") from None
    except Exception as exc:  # corrupt pickles raise many types (EOFError, KeyError, ...): all mean "bad file"
        raise ValueError(f"malformed CIFAR file {path}: not a readable pickle ({one_line(exc)})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"malformed CIFAR file {path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (N, 3, 32, 32) uint8 images and (N,) int64 labels."""
    batch = _read_pickle(path)
    for key in (b"data", label_key):
        if key not in batch:
            raise ValueError(f"malformed CIFAR file {path}: no key {key!r} (has {list(batch)[:8]!r})")
    try:
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[label_key])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed CIFAR file {path}: {one_line(exc)}") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"malformed CIFAR file {path}: b'data' must be N x 3072, got shape {data.shape}")
    if data.dtype != np.uint8:
        if not np.issubdtype(data.dtype, np.integer) or data.size and (data.min() < 0 or data.max() > 255):
            raise ValueError(f"malformed CIFAR file {path}: b'data' must hold bytes 0..255, got {data.dtype}")
        data = data.astype(np.uint8)
    if labels.shape != (data.shape[0],) or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"malformed CIFAR file {path}: {label_key!r} must be {data.shape[0]} integers, got "
                         f"shape {labels.shape}")
    # Rows are the red, green, then blue 32x32 planes (the CIFAR page's "row-major order").
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_names(path: Path, key: bytes) -> tuple[str, ...]:
    meta = _read_pickle(path)
    names = meta.get(key)
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f"malformed CIFAR file {path}: {key!r} must be a non-empty list of class names")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)


def _load_split(base: Path, files: tuple[str, ...], spec: CifarSpec, limit: int | None, split: str):
    """Concatenate batch files, stopping once ``limit`` images (the first ones) are read."""
    images, labels, have = [], [], 0
    for name in files:
        x, y = _read_batch(base / name, spec.label_key)
        images.append(x)
        labels.append(y)
        have += len(y)
        if limit is not None and have >= limit:
            break
    if limit is not None and limit > have:
        raise ValueError(f"{split}_size={limit} exceeds the {have} {split} images in {base}")
    x, y = np.concatenate(images), np.concatenate(labels)
    if limit is not None:  # copy: a view of the first rows would keep every batch read alive
        x, y = x[:limit].copy(), y[:limit].copy()
    return torch.from_numpy(x), torch.from_numpy(y)


def _find(root: Path, spec: CifarSpec) -> Path | None:
    """The CIFAR folder: ``root`` itself or ``root / spec.folder``, whichever holds the meta file."""
    for base in (root, root / spec.folder):
        if (base / spec.meta_file).is_file():
            return base
    return None


def _safe_members(archive: tarfile.TarFile, path: Path) -> list[tarfile.TarInfo]:
    """Reject absolute names, ``..`` and anything but plain files and folders (tar path traversal)."""
    members = archive.getmembers()
    for m in members:
        posix, windows = PurePosixPath(m.name), PureWindowsPath(m.name)
        if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in windows.parts:
            raise ValueError(f"unsafe member {m.name!r} in {path}; refusing to extract")
        if not (m.isfile() or m.isdir()):
            raise ValueError(f"unsafe member {m.name!r} in {path} (a link or device); refusing to extract")
    return members


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_cifar(dataset: str, root: Path) -> Path:
    """Fetch the archive of ``dataset`` into ``root``, check its md5 and extract it there.

    Returns:
        The extracted folder, ``root / CIFAR_SPECS[dataset].folder``.

    Raises:
        ValueError: network error, md5 mismatch or an unsafe archive member.
    """
    spec = CIFAR_SPECS[dataset]
    archive = root / spec.url.rsplit("/", 1)[1]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create {root} for the {dataset} download: {one_line(exc)}") from None
    if not (archive.is_file() and _md5(archive) == spec.md5):
        log.info("downloading %s to %s", spec.url, archive)
        part = archive.with_name(archive.name + ".part")
        try:
            with urllib.request.urlopen(spec.url, timeout=60) as response, open(part, "wb") as f:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
        except (urllib.error.URLError, OSError) as exc:  # URLError, HTTPError, timeouts, disk full
            part.unlink(missing_ok=True)
            raise ValueError(f"could not download {spec.url}: {one_line(exc)}; check the network or place "
                             f"{spec.folder}/ under {root} by hand") from None
        part.replace(archive)
        if _md5(archive) != spec.md5:
            raise ValueError(f"md5 of {archive} is {_md5(archive)}, expected {spec.md5}; delete it and retry")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _safe_members(tar, archive)
            # Python >= 3.12 (and 3.11.4+) also offers the "data" filter: a second line of defence.
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(root, members=members, **extra)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"could not extract {archive}: {one_line(exc)}; delete it and retry") from None
    return root / spec.folder


def load_cifar(
    dataset: str, *, root: str | Path | None = None, train_size: int | None = None,
    test_size: int | None = None, download: bool = False, image_size: int = 32,
) -> ImageData:
    """CIFAR-10 or CIFAR-100 (fine labels) as `ImageData`.

    Args:
        dataset: "cifar10" or "cifar100".
        root: a folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``, or that folder
            itself; default `DEFAULT_ROOT` (``./data``, relative to the working directory).
        train_size: keep the first N training images (deterministic); default all 50,000.
        test_size: keep the first M test images; default all 10,000.
        download: fetch the archive from the CIFAR page when the folder is missing.
        image_size: side in pixels; anything but 32 is a bilinear, antialiased resize.

    Raises:
        ValueError: a missing folder without ``download``, a malformed file, a network error.
    """
    if dataset not in CIFAR_SPECS:
        raise ValueError(f"unknown CIFAR dataset {dataset!r}; choose one of {', '.join(CIFAR_SPECS)}")
    check_size("train_size", train_size)
    check_size("test_size", test_size)
    check_size("image_size", image_size)
    spec = CIFAR_SPECS[dataset]
    root = DEFAULT_ROOT if root is None else Path(root).expanduser()
    base = _find(root, spec)
    if base is None:
        if not download:
            raise ValueError(f"{dataset} not found: looked for {spec.meta_file} in {root} and {root / spec.folder}; "
                             f"download it (download=True; CLI: --download; Train page: 'Download if missing'), or extract "
                             f"{spec.url.rsplit('/', 1)[-1]} into {root} (it holds the folder {spec.folder})")
        base = download_cifar(dataset, root)
        if _find(base, spec) is None:
            raise ValueError(f"the {dataset} archive did not contain {spec.folder}/{spec.meta_file}")

    classes = _read_names(base / spec.meta_file, spec.names_key)
    check_data_bytes(dataset, min(train_size or 50_000, 50_000), min(test_size or 10_000, 10_000), 3,
                     max(32, image_size))  # the 32 px originals are read before any resize
    train_images, train_labels = _load_split(base, spec.train_files, spec, train_size, "train")
    test_images, test_labels = _load_split(base, (spec.test_file,), spec, test_size, "test")
    for split, labels in (("train", train_labels), ("test", test_labels)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"malformed {dataset} in {base}: {split} labels outside 0..{len(classes) - 1}")
    if image_size != 32:
        train_images, test_images = _resize(train_images, image_size), _resize(test_images, image_size)
    mean, std = channel_stats(train_images)
    return ImageData(
        name=dataset, classes=classes,
        train_images=train_images, train_labels=train_labels,
        test_images=test_images, test_labels=test_labels,
        mean=mean, std=std, source=f"{dataset} from {base}",
    )


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 images, in chunks to bound the float copy."""
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], 4096):
        chunk = images[start:start + 4096].float()
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + 4096] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out
