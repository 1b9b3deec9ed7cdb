"""torchvision's published ImageNet ResNet weights, torch's hub cache, and an opt-in download.

Nothing here touches the network unless `download` is called (the CLI's `import-weights --download`).

The table lists torchvision's weights for the nets the zoo builds (torchvision/models/resnet.py,
`*_Weights`): the file name under https://download.pytorch.org/models/, the short side its evaluation
transform resizes to before the 224 px centre crop (256 for IMAGENET1K_V1, 232 for the V2 recipe and
for resnext101_64x4d), and the ImageNet-1k top-1 accuracy torchvision reports. The eight hex digits
after the last "-" of each file name are the start of the file's SHA-256, which torch's
`download_url_to_file(hash_prefix=...)` checks, as torchvision does.

timm's newer weights come from the Hugging Face hub as .safetensors and are cached under
`hf_hub_dir()` (`~/.cache/huggingface/hub` by default); `cached_checkpoints` lists both caches.

torch's hub cache is `torch.hub.get_dir()/checkpoints`: `$TORCH_HOME/hub/checkpoints`, by default
`~/.cache/torch/hub/checkpoints` (or under `$XDG_CACHE_HOME`). torchvision and timm's torch-hub
downloads land there, so a user who ever loaded `resnet50(weights=...)` already has the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

BASE_URL = "https://download.pytorch.org/models/"
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".pth.tar", ".ckpt", ".bin", ".safetensors")
MAX_HUB_FILES = 1_000  # files listed from the hub cache (sorted by name)


@dataclass(frozen=True)
class Published:
    """One set of torchvision weights."""

    model: str  # the zoo's (and torchvision's) name
    tag: str  # torchvision's enum member, e.g. "IMAGENET1K_V2"
    file: str  # the file name under BASE_URL (and in the hub cache)
    resize: int  # short side before the 224 px centre crop
    top1: float  # ImageNet-1k top-1 accuracy (%) torchvision reports
    megabytes: float  # file size torchvision reports

    @property
    def url(self) -> str:
        return BASE_URL + self.file

    @property
    def hash_prefix(self) -> str:
        """The start of the file's SHA-256: the hex digits after the last "-" of its name."""
        return self.file.rsplit("-", 1)[1].split(".")[0]

    @property
    def label(self) -> str:
        return f"{self.model} {self.tag} (torchvision, ImageNet top-1 {self.top1:.1f}%, {self.megabytes:.0f} MB)"


PUBLISHED: tuple[Published, ...] = (
    Published("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 256, 69.758, 44.661),
    Published("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", 256, 73.314, 83.275),
    Published("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth", 256, 76.130, 97.781),
    Published("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 232, 80.858, 97.79),
    Published("resnet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth", 256, 77.374, 170.511),
    Published("resnet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 232, 81.886, 170.53),
    Published("resnet152", "IMAGENET1K_V1", "resnet152-394f9c45.pth", 256, 78.312, 230.434),
    Published("resnet152", "IMAGENET1K_V2", "resnet152-f82ba261.pth", 232, 82.284, 230.474),
    Published("resnext50_32x4d", "IMAGENET1K_V1", "resnext50_32x4d-7cdf4587.pth", 256, 77.618, 95.789),
    Published("resnext50_32x4d", "IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth", 232, 81.198, 95.833),
    Published("resnext101_32x8d", "IMAGENET1K_V1", "resnext101_32x8d-8ba56ff5.pth", 256, 79.312, 339.586),
    Published("resnext101_32x8d", "IMAGENET1K_V2", "resnext101_32x8d-110c445d.pth", 232, 82.834, 339.673),
    Published("resnext101_64x4d", "IMAGENET1K_V1", "resnext101_64x4d-173b62eb.pth", 232, 83.246, 319.318),
    Published("wide_resnet50_2", "IMAGENET1K_V1", "wide_resnet50_2-95faca4d.pth", 256, 78.468, 131.82),
    Published("wide_resnet50_2", "IMAGENET1K_V2", "wide_resnet50_2-9ba9bcbe.pth", 232, 81.602, 263.124),
    Published("wide_resnet101_2", "IMAGENET1K_V1", "wide_resnet101_2-32ee1156.pth", 256, 78.848, 242.896),
    Published("wide_resnet101_2", "IMAGENET1K_V2", "wide_resnet101_2-d733dc28.pth", 232, 82.510, 484.747),
)
_BY_FILE = {p.file: p for p in PUBLISHED}


def published(model: str, tag: str | None = None) -> Published:
    """torchvision's weights for ``model``: ``tag``, or its default (the newest recipe).

    Raises:
        ValueError: no published weights for that net or tag (one line naming what there is).
    """
    mine = [p for p in PUBLISHED if p.model == model]
    if not mine:
        names = ", ".join(dict.fromkeys(p.model for p in PUBLISHED))
        raise ValueError(f"torchvision publishes no ImageNet weights for {model!r}; it does for {names}")
    if tag is None:
        return mine[-1]
    for p in mine:
        if p.tag == tag.upper():
            return p
    raise ValueError(f"torchvision's {model} weights are {', '.join(p.tag for p in mine)}, not {tag!r}")


def published_file(name: str) -> Published | None:
    """The published weights a file is, from its name (torchvision keeps the name in the hub cache)."""
    return _BY_FILE.get(Path(name).name)


def guess_model(name: str, models: list[str] | tuple[str, ...]) -> str | None:
    """The zoo net a checkpoint's file name points to: a published file's net, else the longest of
    ``models`` that the name starts with, followed by "-", "_", "." or the end ("resnet50_a1_0-14fe96d1.pth"
    -> "resnet50")."""
    entry = published_file(name)
    if entry is not None:
        return entry.model
    stem = Path(name).name.lower()
    fits = [m for m in models if re.match(re.escape(m.lower()) + r"($|[-_.])", stem)]
    return max(fits, key=len) if fits else None


def what_it_is(row: dict, models: list[str] | tuple[str, ...]) -> str:
    """A cached checkpoint in words, from its name: torchvision's published file it is named as, else the
    zoo net its name suggests (the hash is checked on import, not here)."""
    known = row["published"]
    if known is not None:
        return f"named as {known.label}"
    guess = guess_model(row["file"], models)
    return f"probably {guess}" if guess else "not a net this tool recognises"


def hub_dir() -> Path:
    """torch's hub cache of checkpoints: `torch.hub.get_dir()/checkpoints` (it need not exist)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_checkpoints(folder: str | Path | None = None, limit: int = MAX_HUB_FILES) -> tuple[list[dict], int]:
    """The checkpoint files in the hub cache (or ``folder``), sorted by name, at most ``limit``.

    Returns:
        (rows with "file", "path", "megabytes" and "published" (a `Published` or None), how many there
        were in all); ([], 0) when the folder does not exist.
    """
    folder = Path(folder) if folder is not None else hub_dir()
    if not folder.is_dir():
        return [], 0
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(CHECKPOINT_SUFFIXES))
    rows = [{"file": p.name, "path": str(p), "megabytes": p.stat().st_size / 1e6, "published": published_file(p.name)}
            for p in files[:limit]]
    return rows, len(files)


def hf_hub_dir() -> Path:
    """The Hugging Face hub cache, where timm's `create_model(..., pretrained=True)` leaves its weights:
    $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface")
    return Path(home).expanduser() / "hub"


def hf_checkpoints(folder: str | Path | None = None, limit: int = MAX_HUB_FILES) -> tuple[list[dict], int]:
    """The checkpoint files of the models in the Hugging Face hub cache (models--ORG--NAME/snapshots/*/),
    sorted by model, at most ``limit``; rows as `hub_checkpoints`', with "file" the model's name
    ("timm/resnet50.a1_in1k") and "published" None."""
    folder = Path(folder) if folder is not None else hf_hub_dir()
    if not folder.is_dir():
        return [], 0
    found = []
    for model in sorted(folder.glob("models--*")):
        name = "/".join(model.name.split("--")[1:])
        for file in sorted(model.glob("snapshots/*/*")):
            if file.is_file() and file.name.lower().endswith(CHECKPOINT_SUFFIXES):
                found.append((name, file))
    rows = [{"file": name, "path": str(file), "megabytes": file.stat().st_size / 1e6, "published": None}
            for name, file in found[:limit]]
    return rows, len(found)


def cached_checkpoints(limit: int = MAX_HUB_FILES) -> tuple[list[dict], int, list[Path]]:
    """Both caches together (torch's first), at most ``limit`` rows; each row's "cache" says which.

    Returns:
        (rows, how many files there were in all, the folders looked in).
    """
    torch_rows, torch_total = hub_checkpoints(limit=limit)
    hf_rows, hf_total = hf_checkpoints(limit=limit)
    rows = [{**r, "cache": "torch hub"} for r in torch_rows] + [{**r, "cache": "Hugging Face"} for r in hf_rows]
    return rows[:limit], torch_total + hf_total, [hub_dir(), hf_hub_dir()]


def download(entry: Published, folder: str | Path | None = None, progress: bool = True) -> Path:
    """The file of ``entry`` in the hub cache (or ``folder``), downloaded only if it is not there yet.

    The download goes to a temporary file, its SHA-256 is checked against the file name's prefix (torch's
    `download_url_to_file`), and only then does it take its name, so a failed or corrupt download leaves
    nothing behind.

    Raises:
        ValueError: one line when the download fails (no network, HTTP error) or the hash does not match.
    """
    from torch.hub import download_url_to_file

    folder = Path(folder) if folder is not None else hub_dir()
    target = folder / entry.file
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    try:
        download_url_to_file(entry.url, str(target), hash_prefix=entry.hash_prefix, progress=progress)
    except RuntimeError as err:  # torch raises RuntimeError for a hash mismatch
        target.unlink(missing_ok=True)
        raise ValueError(f"{entry.url} did not match its published hash: {' '.join(str(err).split())}") from None
    except OSError as err:  # URLError, HTTPError, a full disk: all OSErrors
        target.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise ValueError(f"could not download {entry.url}: {' '.join(str(reason).split())}") from None
    return target
