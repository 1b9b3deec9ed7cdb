"""Import pretrained ImageNet ResNets: a torchvision or timm checkpoint file becomes an "imported" run folder.

    read_checkpoint(path)          the file's state dict, read with weights_only=True (never executed)
    checkpoint_layout(state)       "torchvision" or "timm"
    to_zoo_state(state, spec)      the state dict with this project's keys, checked against `spec`
    import_weights(path, name, root, classes=None)   a new run folder of kind "imported"

Layouts. This project's ImageNet nets keep torchvision's module names (conv1, bn1, layer1..layer4 with
conv1/bn1/conv2/bn2[/conv3/bn3] and downsample.0 (conv) / downsample.1 (BN), fc), so a torchvision
file loads as it is. timm's `ResNet` (timm/models/resnet.py) uses the same names for the nets the zoo
can build — its classifier is `fc` and its stem `conv1` — so a plain timm ResNet reads as "torchvision"
too. What marks a file as timm's:

- `conv1.0.weight`, `conv1.1.weight`, ... `conv1.6.weight`: the deep 3x3 stem of resnet*c/d/s (refused:
  the zoo builds only the 7x7 stem);
- `layerN.0.downsample.1.weight` a conv and `downsample.2` a BN: the average-pool shortcut of resnet*d
  (refused: the zoo's projection is a strided 1x1 conv);
- `.se.` / `.attn.` keys: squeeze-excitation and attention units of seresnet*, ecaresnet* (refused);
- `head.fc.weight`: the classifier under timm's `head` (mapped to `fc`).

Wrappers accepted either way: a bare state dict, or a dict holding one under "state_dict", "model" or
"state_dict_ema" (timm's training checkpoints; the first found wins), keys prefixed "module." (saved from
DistributedDataParallel) or "_orig_mod." (torch.compile); missing `num_batches_tracked` entries (older
files) are set to 0, which changes nothing in evaluation.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
import warnings
import zipfile
from pathlib import Path

import torch

from ..data.imagenet import IMAGENET_CROP, IMAGENET_MEAN, IMAGENET_RESIZE, IMAGENET_STD, imagenet_classes
from ..limits import MAX_CHECKPOINT_BYTES
from ..models import ModelSpec, build_model
from ..pickle_guard import Malformed, check_torch_file
from .published import published_file
from .store import first_line, shape_text

STATE_ENTRIES: tuple[str, ...] = ("state_dict", "model", "state_dict_ema")  # where a checkpoint keeps its weights
STRIPPED_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
MAX_CLASSES_FILE_BYTES = 10_000_000  # a --classes text file (100,000 names of 100 characters)
_BN_COUNTER = "num_batches_tracked"
_MOST = 3  # keys named in a refusal


def _first(items: list[str]) -> str:
    more = f" and {len(items) - _MOST:,} more" if len(items) > _MOST else ""
    return ", ".join(items[:_MOST]) + more


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint file, loaded with `weights_only=True` (nothing in it is executed),
    or a .safetensors file (timm's Hugging Face weights; tensors only, read with the safetensors library).

    Accepts a bare state dict or a dict holding one under "state_dict", "model" or "state_dict_ema";
    zip-format files are memory-mapped (their tensors' data is read when used), PyTorch's legacy format
    is read whole. The file's size is checked against `MAX_CHECKPOINT_BYTES` before anything is read.

    Raises:
        ValueError: one line naming the file: missing, too large, damaged, holding objects other than
            tensors (refused unread), or holding no state dict.
    """
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ValueError(f"{path}: cannot be read: {err.strerror or first_line(err)}") from None
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if size > MAX_CHECKPOINT_BYTES:
        raise ValueError(f"{name} is {size / 1e9:,.2f} GB, more than the {MAX_CHECKPOINT_BYTES / 1e9:,.0f} GB a "
                         "checkpoint may take: not reading it")
    if size == 0:
        raise ValueError(f"{name} is empty, not a checkpoint")
    if _is_safetensors(path, size):
        return _read_safetensors(path, name)
    try:
        check_torch_file(path, name)  # bounded work before unpickling: a hash bomb is refused here, unread
    except Malformed as err:
        raise ValueError(f"{name} is not a PyTorch checkpoint or is damaged: {err}") from None
    try:
        zipped = zipfile.is_zipfile(path)
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal below says what matters
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except OSError as err:
        raise ValueError(f"{name} cannot be read: {err.strerror or first_line(err)}") from None
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, ... from a damaged or foreign file
        # PyTorch's message goes on to suggest weights_only=False: never repeat that advice
        text = str(err)
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:
            raise ValueError(f"{name} holds objects other than tensors ({found.group(1)}), so it was refused; "
                             "nothing in it was executed. Save the model's state_dict alone "
                             "(torch.save(model.state_dict(), FILE))") from None
        unpickler = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        if unpickler:
            detail = unpickler.group(1).strip().rstrip(".")
            raise ValueError(f"{name} is not a PyTorch checkpoint (or is damaged): {detail}; it was refused "
                             "unread, nothing in it was executed") from None
        detail = type(err).__name__ if "weights_only" in text else first_line(err)
        raise ValueError(f"{name} is not a PyTorch checkpoint or is damaged: {detail}") from None
    return _state_of(loaded, name)


def _is_safetensors(path: Path, size: int) -> bool:
    """A .safetensors file (timm's weights on the Hugging Face hub): the name says so, or its first 8 bytes
    are a little-endian header length that fits the file, followed by the JSON header's "{"."""
    if path.name.lower().endswith(".safetensors"):
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8


def _read_safetensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file: a JSON header and raw tensor bytes, nothing executable to refuse."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} is not a readable safetensors file (or is damaged): {first_line(err)}") from None
    return _state_of(state, name)


def _state_of(loaded: object, name: str) -> dict[str, torch.Tensor]:
    """The state dict in what torch.load returned: itself, or under one of `STATE_ENTRIES`."""
    if not isinstance(loaded, dict):
        raise ValueError(f"{name} holds a {type(loaded).__name__}, not a state dict (names to tensors)")
    state = loaded
    if not any(isinstance(v, torch.Tensor) for v in loaded.values()):
        entry = next((k for k in STATE_ENTRIES if isinstance(loaded.get(k), dict)), None)
        if entry is None:
            keys = ", ".join(repr(k) for k in list(loaded)[:5]) or "nothing"
            raise ValueError(f"{name} holds no state dict: a dict of {keys}, without tensors or a "
                             f"{' / '.join(STATE_ENTRIES)} entry")
        state = loaded[entry]
    if not state:
        raise ValueError(f"{name} holds an empty state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            what = repr(key[:60]) if isinstance(key, str) else f"keyed by a {type(key).__name__}"  # never str() it
            raise ValueError(f"{name} is not a state dict: its entry {what} holds a "
                             f"{type(value).__name__}, not a tensor")
    return dict(state)


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in STRIPPED_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _timm_only(state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """timm's features the zoo cannot build, each with the keys that show it (empty when none)."""
    found: dict[str, list[str]] = {}
    deep = [k for k in state if re.match(r"conv1\.\d+\.", k)]
    if deep:
        found["a deep 3x3 stem (timm's resnet*c / resnet*d / resnet*s; the zoo builds the 7x7 stem)"] = deep
    avg = [k for k in state if re.match(r"layer\d+\.\d+\.downsample\.2\.", k)]
    if avg:
        found["an average-pool shortcut (timm's resnet*d; the zoo's projection is a strided 1x1 conv)"] = avg
    extra = [k for k in state if re.search(r"\.(se|attn)\.", k)]
    if extra:
        found["squeeze-excitation or attention units (timm's seresnet*, ecaresnet*)"] = extra
    return found


def checkpoint_layout(state: dict[str, torch.Tensor]) -> str:
    """"timm" when the state dict has keys only timm's ResNets use (deep stem, average-pool shortcut,
    SE or attention units, `head.fc`); "torchvision" otherwise — the two share the rest of their names."""
    state = _strip_prefixes(state)
    if _timm_only(state) or any(k.startswith("head.fc.") for k in state):
        return "timm"
    return "torchvision"


def to_zoo_state(state: dict[str, torch.Tensor], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """`state` with this project's keys, checked against `spec` (built on the meta device: no memory).

    Maps timm's `head.fc.*` to `fc.*`, strips "module."/"_orig_mod." prefixes and sets missing
    `num_batches_tracked` to 0; the tensors themselves are not copied.

    Raises:
        ValueError: naming what does not fit: timm features the zoo cannot build (with their first keys),
            or the first missing and unexpected keys and mismatched shapes.
    """
    state = _strip_prefixes(state)
    unbuildable = _timm_only(state)
    if unbuildable:
        what, keys = next(iter(unbuildable.items()))
        raise ValueError(f"the checkpoint has {what}: {_first(keys)}; the zoo cannot build it")
    state = {("fc." + k[len("head.fc."):] if k.startswith("head.fc.") else k): v for k, v in state.items()}
    expected = build_model(spec, device="meta", confirm_large=True).state_dict()
    for key, value in expected.items():
        if key.endswith(_BN_COUNTER) and key not in state and key.rsplit(".", 1)[0] + ".running_mean" in state:
            state[key] = torch.zeros(value.shape, dtype=value.dtype)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} is {shape_text(state[k])} in the file, {shape_text(v)} in {spec.name}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    parts = [f"missing {_first(missing)}" if missing else "", f"unexpected {_first(unexpected)}" if unexpected else "",
             _first(shapes) if shapes else ""]
    mismatch = "; ".join(p for p in parts if p)
    if mismatch:
        raise ValueError(f"the checkpoint does not fit {spec.label}: {mismatch}")
    return {k: state[k] for k in expected}


def importable_names() -> list[str]:
    """The zoo's ImageNet-stem residual nets, the ones a torchvision or timm checkpoint can fill."""
    from ..models import list_variants

    return [name for name in list_variants()
            if (spec := ModelSpec.from_name(name)).stem == "imagenet" and spec.residual and not spec.pre_activation]


def import_spec(model_name: str, state: dict[str, torch.Tensor] | None = None) -> ModelSpec:
    """The spec of zoo name `model_name` (an ImageNet-stem net), with the classifier's outputs of `state`.

    Raises:
        ValueError: an unknown name, or a CIFAR net (import takes ImageNet nets: 224 px, ImageNet statistics).
    """
    spec = ModelSpec.from_name(model_name)
    if spec.stem != "imagenet":
        raise ValueError(f"{model_name} is a CIFAR net; import-weights takes ImageNet nets (resnet18, resnet50, "
                         "wide_resnet50_2, resnext50_32x4d, ...)")
    if state is not None:
        fc = _strip_prefixes(state)
        weight = fc.get("fc.weight", fc.get("head.fc.weight"))
        if isinstance(weight, torch.Tensor) and weight.dim() == 2 and 1 <= weight.shape[0] != spec.num_classes:
            spec = spec.replace(num_classes=int(weight.shape[0]))  # e.g. a net fine-tuned on 10 classes
    return spec


def read_classes(path: str | Path, count: int) -> list[str]:
    """Class names from a text file, one per line (blank lines skipped); there must be `count` of them.

    Raises:
        ValueError: the file cannot be read, is too large, or holds another number of names.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CLASSES_FILE_BYTES:
            raise ValueError(f"{path.name} is {size:,} bytes, more than a class list may take "
                             f"({MAX_CLASSES_FILE_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not UTF-8 text") from None
    except OSError as err:
        raise ValueError(f"class names file {path}: cannot be read: {err.strerror or first_line(err)}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != count:
        raise ValueError(f"{path.name} names {len(names):,} classes (one per line), but the model has {count:,} "
                         "outputs")
    return names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _imported_before(root: Path, digest: str, spec: ModelSpec, names: list[str], resize: int) -> Path | None:
    """An intact imported run under `root` of the same file (sha256), spec, class names and resize, if any.

    A candidate is read back whole (`load_run`: run.json, model.pt's tensors against the spec) before
    it is reused, so an earlier import whose model.pt was truncated or altered is passed over.
    """
    from .reader import load_run
    from .store import is_imported

    if not root.is_dir():
        return None
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):  # hidden: an import's staging folder, never a run
            continue
        try:
            info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(info, dict):
            continue
        data, source = info.get("data"), info.get("source")
        if (is_imported(info) and isinstance(source, dict)
                and isinstance(data, dict) and source.get("sha256") == digest and info.get("spec") == spec.to_dict()
                and data.get("classes") == names and data.get("resize") == resize and (folder / "model.pt").is_file()):
            try:
                load_run(folder)
            except ValueError:
                continue  # damaged since: import again rather than hand back a run that will not load
            return folder
    return None


def import_weights(path: str | Path, model_name: str, root: str | Path,
                   classes: str | Path | list[str] | None = None, resize: int | None = None,
                   reuse: bool = False) -> Path:
    """Import a torchvision or timm checkpoint as a new run folder of kind "imported" under `root`.

    The folder holds model.pt (float32, this project's keys) and run.json: kind "imported", status
    "done", the spec, an ImageNet data section (mean, std, image_size 224, resize 256, the class names)
    and the source file's name, layout, size and sha256. It has no training tables. The folder appears
    whole or not at all (written beside, then renamed).

    Args:
        path: the checkpoint file.
        model_name: a zoo name of an ImageNet net (resnet18 ... resnet152, wide_resnet50_2, resnext50_32x4d, ...);
            its classifier's outputs are taken from the file.
        root: the runs folder.
        classes: a text file of names (one per line) or a list of names, one per output; default the ImageNet
            names for 1,000 outputs, else "0".."n-1".
        resize: the short side a photo is scaled to before the 224 px centre crop; default: what
            torchvision's evaluation transform uses for these weights when the file is one it publishes
            (232 for its V2 recipe, see `published.PUBLISHED`), else 256.
        reuse: when `root` already holds an imported run of the same file (same sha256), net, class
            names and resize, return that folder instead of writing another copy.

    Returns:
        the run folder.

    Raises:
        ValueError: one line: the file is missing, damaged, refused, or does not fit `model_name`; wrong classes.
    """
    from .liveness import process_identity
    from .store import IMPORTED, new_run_id, remove_stale_staging, run_dir, save_state_dict, staging_dir, versions

    path = Path(path)
    known = published_file(path.name)  # by its name, confirmed by its hash below
    digest = _sha256(path) if path.is_file() else ""
    if known is not None and not digest.startswith(known.hash_prefix):
        known = None  # named like torchvision's file, but another file: nothing is claimed for it
    if resize is None:
        resize = known.resize if known is not None else IMAGENET_RESIZE
    if isinstance(resize, bool) or not isinstance(resize, int) or not IMAGENET_CROP <= resize <= 4 * IMAGENET_CROP:
        raise ValueError(f"resize must be a whole number of pixels from {IMAGENET_CROP} to {4 * IMAGENET_CROP}, "
                         f"got {resize!r}")
    raw = read_checkpoint(path)
    spec = import_spec(model_name, raw)
    layout = checkpoint_layout(raw)
    state = to_zoo_state(raw, spec)
    n = spec.num_classes
    if classes is None:
        names = imagenet_classes() if n == 1000 else [str(i) for i in range(n)]
    elif isinstance(classes, (list, tuple)):
        names = [str(c) for c in classes]
        if len(names) != n:
            raise ValueError(f"{len(names):,} class names given, but the model has {n:,} outputs")
    else:
        names = read_classes(classes, n)
    if reuse:
        same = _imported_before(Path(root), digest, spec, names, resize)
        if same is not None:
            return same
    model = build_model(spec, device="cpu", confirm_large=True)
    try:
        model.load_state_dict(state, strict=True)
    except Exception as err:  # e.g. a dtype that does not convert
        raise ValueError(f"{path.name} does not load into {spec.label}: {first_line(err)}") from None
    if not all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point()):
        raise ValueError(f"{path.name} holds weights that are not finite numbers (NaN or infinity)")

    run_id = new_run_id(spec)
    final = run_dir(root, run_id)
    Path(root).mkdir(parents=True, exist_ok=True)
    remove_stale_staging(root)  # folders of imports killed before their rename
    staging = staging_dir(root, run_id)
    now = time.time()
    info = {
        "id": run_id, "kind": IMPORTED, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "created_ts": now,
        "updated": now, "status": "done", "message": f"imported from {path.name} ({layout} layout)",
        "spec_name": spec.name, "label": spec.label, "spec": spec.to_dict(), "versions": versions(),
        "steps": 0, "total_steps": 0, "device": "cpu",
        "data": {"name": "imagenet", "source": f"ImageNet-1k preprocessing: resize {resize}, centre crop {IMAGENET_CROP}",
                 "classes": names, "num_train": 0, "num_test": 0, "image_size": IMAGENET_CROP,
                 "resize": resize, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "source": {"file": path.name, "sha256": digest, "bytes": path.stat().st_size, "layout": layout,
                   "published": f"torchvision {known.tag}, ImageNet top-1 {known.top1}%" if known else None},
    }
    try:
        staging.mkdir()
        (staging / "writer.json").write_text(json.dumps(process_identity()), encoding="utf-8")
        save_state_dict(model, staging / "model.pt")
        buffer = io.StringIO()
        json.dump(info, buffer, indent=1)
        (staging / "run.json").write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(staging, final)  # writer.json goes along: a kill before this leaves a folder it names
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (final / "writer.json").unlink(missing_ok=True)  # the run is whole; a kill just before this leaves a stray file
    return final
