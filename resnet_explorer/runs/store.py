"""The run store: one folder per run, written atomically, readable while the run goes on.

    runs/<run-id>/run.json           spec, data, optimiser, seed, device, versions, status
                  metrics.csv        step, epoch, loss, accuracy, lr, seconds
                  eval.csv           step, epoch, loss, accuracy, images (held-out images used)
                  residual_norms.csv step, unit, stage, residual_norm, shortcut_norm, ratio
                  grad_flow.csv      step, layer, grad_norm, grad_abs_mean, weight_norm, update_ratio
                  responses.csv      step, layer, std (training mode, the probed batch)
                  responses_eval.csv step, layer, std (eval mode, held-out images, end of run)
                  model.pt           state_dict (loaded with weights_only=True)

A run.json with "kind": "imported" (`checkpoints.import_weights`: pretrained weights, no training) has
no "config" and no tables; `load_run` reads it with `Run.config` None and empty tables. It has no
dataset either: `attribute` takes it with an uploaded image only, `report` and Compare list it with
blank training columns and leave it out of the training figures, and the lenses (lesion, paths,
landscape) refuse it in one line.

Every file is replaced by write-to-temp + rename, so a reader (or a crash) never sees half a
file. CSVs are rewritten whole at most every `flush_seconds` and at each evaluation and the end.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import pickle
import platform
import re
import secrets
import shutil
import socket
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import __version__
from ..data import ImageData
from ..export import rows_to_csv, write_atomic
from ..limits import MAX_IMAGE_SIZE, MAX_RUN_JSON_BYTES
from ..models import ModelSpec, ResNet, build_model, count_parameters
from ..pickle_guard import Malformed, check_torch_file
from ..training.config import TrainConfig
from ..training.trainer import Event, Listener, ListenerError, TrainResult, train
from .liveness import process_identity, writer_alive

DEFAULT_ROOT = Path("runs")
TABLES: dict[str, tuple[str, ...]] = {
    "metrics": ("step", "epoch", "loss", "accuracy", "lr", "seconds"),
    "eval": ("step", "epoch", "loss", "accuracy", "images"),
    "residual_norms": ("step", "unit", "stage", "residual_norm", "shortcut_norm", "ratio"),
    "grad_flow": ("step", "layer", "grad_norm", "grad_abs_mean", "weight_norm", "update_ratio"),
    "responses": ("step", "layer", "std"),
    "responses_eval": ("step", "layer", "std"),
}
RESULT_FIELDS: dict[str, str] = {"metrics": "metrics", "eval": "evals", "residual_norms": "residual_norms",
                                 "grad_flow": "grad_flow", "responses": "responses",
                                 "responses_eval": "responses_eval"}  # table -> `TrainResult` field
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # never starts with ".": hidden folders are not runs
STAGING_SUFFIX = ".importing"  # `staging_dir`: an import writes here, then renames the folder to its run id
STALE_STAGING_SECONDS = 600.0  # a staging folder without a live writer's record, untouched this long, is left over


def run_dir(root: str | Path, run_id: str) -> Path:
    """The folder of `run_id` under `root`; refuses ids that could leave `root`.

    Raises:
        ValueError: the id has path separators, "..", or characters outside [A-Za-z0-9._-].
    """
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise ValueError(f"invalid run id {run_id!r}: letters, digits, '.', '_' and '-' only")
    root = Path(root).resolve()
    path = (root / run_id).resolve()
    if path.parent != root:
        raise ValueError(f"run id {run_id!r} leaves the runs folder")
    return path


def staging_dir(root: str | Path, run_id: str) -> Path:
    """The hidden folder an import of `run_id` is written in before it is renamed into place. Its name
    starts with "." (`run_dir` never gives one), so `list_runs` and `load_run` never take it for a run,
    and it holds writer.json (`process_identity`) so `remove_stale_staging` can tell a live import."""
    return run_dir(root, run_id).with_name(f".{run_id}{STAGING_SUFFIX}")


def remove_stale_staging(root: str | Path, now: float | None = None) -> list[str]:
    """Remove the staging folders under `root` whose import was killed (its writer is gone); their names.

    A folder whose writer.json is missing or unreadable counts as left over once untouched for
    `STALE_STAGING_SECONDS` (an import writes writer.json first, within a millisecond of creating it).
    """
    root = Path(root)
    removed: list[str] = []
    if not root.is_dir():
        return removed
    now = time.time() if now is None else now
    for child in root.iterdir():
        if not (child.name.startswith(".") and child.name.endswith(STAGING_SUFFIX)) or child.is_symlink():
            continue
        try:
            writer = json.loads((child / "writer.json").read_text(encoding="utf-8"))
            alive = isinstance(writer, dict) and writer_alive(writer, now)
        except (OSError, ValueError, RecursionError):
            try:
                alive = now - child.stat().st_mtime < STALE_STAGING_SECONDS
            except OSError:
                continue
        if not alive:
            shutil.rmtree(child, ignore_errors=True)
            if not child.exists():
                removed.append(child.name)
    return sorted(removed)


def inside_run(run_path: str | Path, *parts: str) -> Path:
    """`run_path / parts`, refused when it resolves outside the run folder (a symlink pointing out of it).

    A run folder from someone else is data: following a link it holds would read or write files it
    names anywhere on this machine (an analysis saving into a linked explain/, a report copying a
    linked table).

    Raises:
        ValueError: one line naming the run and the part that leads out of it.
    """
    base = Path(run_path)
    path = base.joinpath(*parts)
    try:
        inside = path.resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise ValueError(f"run {base.name}: {'/'.join(parts)} cannot be resolved ({_first_line(err)})") from None
    if not inside:
        raise ValueError(f"run {base.name}: {'/'.join(parts)} is a link that leads out of the run folder; "
                         "a run folder's files must be inside it")
    return path


def new_run_id(spec: ModelSpec) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "-", spec.name)[:60]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"


def versions() -> dict[str, str]:
    return {"resnet_explorer": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=1, default=str))


def save_state_dict(model: torch.nn.Module, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    write_atomic(path, buffer.getvalue())


class RunWriter:
    """A trainer listener that keeps a run folder up to date.

    The folder is created on the trainer's "start" event, after the config, device, data and
    model have all been checked: a run that cannot start leaves no folder behind. run.json
    records the writing process (pid, host, start time), so a reader can tell a live run from
    one whose process died (`liveness.writer_alive`).

    A write that fails (disk full, folder removed) ends the run "failed" with a message naming
    the file; the files written before it stay intact (every write is atomic).

    Args:
        root: the runs folder.
        spec: the model's spec (with the data's classes).
        config: the training config.
        run_id: a fresh id when None.
        flush_seconds: least time between CSV rewrites while training.
        save_model: write model.pt (at each evaluation and at the end).
    """

    def __init__(self, root: str | Path, spec: ModelSpec, config: TrainConfig, run_id: str | None = None,
                 flush_seconds: float = 2.0, save_model: bool = True) -> None:
        self.id = run_id or new_run_id(spec)
        self.path = run_dir(root, self.id)
        if self.path.exists():
            raise ValueError(f"run folder {self.path} already exists")
        self.flush_seconds = flush_seconds
        self.save_model = save_model
        self.result: TrainResult | None = None  # the trainer's result holds the rows; this writes them out
        self.info: dict[str, Any] = {
            "id": self.id, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "created_ts": time.time(),
            "updated": time.time(),
            "status": "running", "message": "", "spec_name": spec.name, "label": spec.label,
            "spec": spec.to_dict(), "config": config.to_dict(), "seed": config.seed, "versions": versions(),
            **process_identity(), "steps": 0, "total_steps": None,
        }
        self.model: torch.nn.Module | None = None
        self.error: str | None = None  # set when a write failed; nothing more is written but run.json
        self._last_flush = 0.0

    def __call__(self, event: Event) -> None:
        if self.error is not None:
            if event.kind == "done":
                self._write_info_quietly()
            return
        if event.kind == "start":
            start = event.data
            data, self.model, self.result = start.data, start.model, start.result
            self.info.update({
                "spec": start.spec.to_dict(), "spec_name": start.spec.name, "label": start.spec.label,
                "total_steps": start.total_steps, "device": start.device, "bf16": start.bf16,
                "channels_last": start.channels_last,
                "data": {"name": data.name, "source": data.source, "classes": list(data.classes),
                         "num_train": len(data.train_images), "num_test": len(data.test_images),
                         "image_size": data.image_size, "mean": list(data.mean), "std": list(data.std)},
            })
            if start.distributed is not None:  # several processes (config.world_size): how they shared the work
                self.info["distributed"] = start.distributed
            self._guarded(0, self._create)
        elif event.kind == "step":
            self.info["steps"] = event.step
            if time.time() - self._last_flush >= self.flush_seconds:
                self._guarded(event.step, self.flush)
        elif event.kind == "eval":
            self._guarded(event.step, lambda: self.flush(save_model=True))
        elif event.kind == "done":
            self.info.update({"status": event.data.status, "message": event.data.message,
                              "steps": event.step, "seconds": round(event.data.seconds, 3)})
            if self.result is not None and self.result.metrics:
                self.info["final_train"] = {k: self.result.metrics[-1][k] for k in ("loss", "accuracy")}
            if self.result is not None and self.result.evals:
                self.info["final_eval"] = {k: self.result.evals[-1][k] for k in ("loss", "accuracy")}
            try:
                self.flush(save_model=True)
            except OSError as err:  # the run is over: record what happened, raise nothing
                self._record_failure(event.step, err)
                self._write_info_quietly()

    def _create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=False)
        self.flush()

    def _guarded(self, step: int, write: Callable[[], None]) -> None:
        """Run `write`; a failed write ends the run (`ListenerError`) with a message naming the file."""
        try:
            write()
        except OSError as err:
            self._record_failure(step, err)
            self._write_info_quietly()
            raise ListenerError(self.error) from None

    def _record_failure(self, step: int, err: OSError) -> None:
        target = Path(err.filename).name if err.filename else "the run folder"
        if target.startswith(".") and target.endswith(".tmp"):  # write_atomic's temp file: name the real one
            target = target[1:].rsplit(".", 2)[0]
        what = "disk full" if err.errno == errno.ENOSPC else (err.strerror or type(err).__name__).lower()
        self.error = (f"{what}: could not write {target} at step {step} in {self.path}; "
                      "the files written before it are intact")
        self.info.update({"status": "failed", "message": self.error, "steps": step})

    def _write_info_quietly(self) -> None:
        """run.json is small: try to record the failure in it; stay silent if even that fails."""
        if self.error is not None:
            self.info.update({"status": "failed", "message": self.error})
        self.info["updated"] = time.time()
        with contextlib.suppress(OSError):
            if self.path.is_dir():
                _write_json(self.path / "run.json", self.info)

    def flush(self, save_model: bool = False) -> None:
        for name, columns in TABLES.items():
            rows = getattr(self.result, RESULT_FIELDS[name]) if self.result is not None else []
            text = rows_to_csv([{c: r.get(c) for c in columns} for r in rows]) if rows else ",".join(columns) + "\n"
            write_atomic(self.path / f"{name}.csv", text)
        if save_model and self.save_model and self.model is not None:
            save_state_dict(self.model, self.path / "model.pt")
        self.info["updated"] = time.time()
        _write_json(self.path / "run.json", self.info)
        self._last_flush = time.time()


def start_run(spec: ModelSpec, config: TrainConfig, root: str | Path, *, listeners: Sequence[Listener] = (),
              stop: threading.Event | None = None, data: ImageData | None = None, save_model: bool = True,
              flush_seconds: float = 2.0, run_id: str | None = None) -> tuple[TrainResult, RunWriter]:
    """Train `spec` into a new run folder under `root`: the one way the CLI, the app's worker and
    the presets start a run.

    The trainer loads the data (unless `data` is given, e.g. shared by several runs), sets the
    spec's classes and input channels from it, and checks the config, device and model; the
    folder is created on its "start" event, so a run that cannot start leaves none.

    Args:
        spec: the model; its classes and input channels are taken from the data.
        config: the training run.
        root: the runs folder.
        listeners: called after the writer with every `Event` (progress bars, the app's stream).
        stop: set it to stop the run within a step or an evaluation batch.
        data: preloaded data (default: loaded from `config`).
        save_model: write model.pt at each evaluation and at the end.
        flush_seconds: least time between CSV rewrites while training.
        run_id: the folder's name (default: a fresh `new_run_id`), for a caller that announces it.

    Returns:
        (the trainer's result, the writer: `writer.path` is the folder, `writer.id` its id).

    Raises:
        ValueError: bad config, data, device or model, before any folder exists.
    """
    writer = RunWriter(root, spec, config, run_id=run_id, save_model=save_model, flush_seconds=flush_seconds)
    result = train(spec, config, data=data, listeners=[writer, *listeners], stop=stop)
    return result, writer


IMPORTED = "imported"  # run.json's kind for pretrained weights (`import_weights`): no config, no training tables


def is_imported(info: dict[str, Any]) -> bool:
    """Whether a run.json (or a `list_runs` row, which keeps its kind) is an imported run's: the one rule."""
    return info.get("kind") == IMPORTED


@dataclass(frozen=True)
class RunSample:
    """Images of one split of a run's dataset (`Run.sample`).

    Attributes:
        images: (N, C, H, W) float, normalised with the run's statistics.
        raw: the same images as stored (uint8).
        labels: (N,) classes.
        indices: their positions in the split.
        masks: (N, H, W) bool object masks, or None (only the shapes set has them).
        available: images in the split (N is less where fewer were there than asked for).
        mean, std: the normalisation statistics.
    """

    images: torch.Tensor
    raw: torch.Tensor
    labels: torch.Tensor
    indices: list[int]
    masks: torch.Tensor | None
    available: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class Run:
    """A run read back from its folder (`load_run`).

    `info` is run.json as read, except that a run whose run.json says "running" while the process
    that wrote it is gone reads as "interrupted", with a message saying so (the file is left as it is).
    `config` is None for an imported run (`kind` "imported"): it was never trained here.
    """

    path: Path
    info: dict[str, Any]
    spec: ModelSpec
    config: TrainConfig | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    model: ResNet | None = None

    @property
    def id(self) -> str:
        value = self.info.get("id")
        return value if isinstance(value, str) and value else self.path.name

    @property
    def kind(self) -> str:
        """"trained" (by `RunWriter`, the default) or "imported" (pretrained weights, `import_weights`)."""
        value = self.info.get("kind")
        return value if isinstance(value, str) and value else "trained"

    @property
    def imported(self) -> bool:
        """Whether the run holds imported weights (`kind` "imported", no config): no dataset, no training tables."""
        return is_imported(self.info) or self.config is None

    def sample(self, split: str, count: int | None = None, *, indices: Sequence[int] | None = None) -> RunSample:
        """The run's own images of `split` ("train" or "test"): the first `count` taken round-robin over the
        classes (`spread_over_classes`), the positions `indices`, or the whole split when both are None;
        re-made or re-read from its config with downloads off (`load_run_data`), normalised with its
        statistics.

        Raises:
            ValueError: an imported run (no dataset), a split other than "train" or "test", or an index
                outside the split.
        """
        from ..data import normalize, spread_over_classes
        from ..training.trainer import load_run_data

        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test, got {split!r}")
        if self.imported:
            raise ValueError(f"run {self.id} was imported from a checkpoint and has no dataset to take images from")
        data = load_run_data(self.config)
        labels = data.train_labels if split == "train" else data.test_labels
        if indices is not None:
            chosen = list(indices)
            bad = [i for i in chosen if not 0 <= i < len(labels)]
            if bad:
                raise ValueError(f"image indices {bad} are outside the {'training' if split == 'train' else 'held-out'} "
                                 f"split (0..{len(labels) - 1})")
        else:
            chosen = list(range(len(labels))) if count is None else spread_over_classes(labels, count)
        idx = torch.tensor(chosen, dtype=torch.long)
        raw = (data.train_images if split == "train" else data.test_images)[idx]
        masks = data.train_masks if split == "train" else data.test_masks
        return RunSample(images=normalize(raw, data.mean, data.std), raw=raw, labels=labels[idx], indices=chosen,
                         masks=masks[idx] if masks is not None else None, available=len(labels),
                         mean=data.mean, std=data.std)

    @property
    def status(self) -> str:
        """One of "running", "done", "stopped", "diverged", "failed", "interrupted" (writer gone), "unknown"."""
        value = self.info.get("status")
        return value if isinstance(value, str) and value else "unknown"

    @property
    def message(self) -> str:
        value = self.info.get("message")
        return value if isinstance(value, str) else ""

    @property
    def label(self) -> str:
        """The run as every page, figure and table names it: "resnet20 · shapes-easy 16px · ab12" (`run_label`)."""
        return run_label(self.info, self.id, self.spec.name)

    @property
    def full_label(self) -> str:
        """`label` with the whole id, for where two labels collide (`unique_labels`)."""
        return run_label(self.info, self.id, self.spec.name, full_id=True)

    @property
    def metrics(self) -> pd.DataFrame:
        return self.tables["metrics"]

    @property
    def evals(self) -> pd.DataFrame:
        return self.tables["eval"]

    @property
    def classes(self) -> list[str]:
        """The class names in the order of the model's outputs; "0".."n-1" when run.json names none.

        Raises:
            ValueError: run.json's data section or its "classes" is not what the writer stores.
        """
        n = self.spec.num_classes
        data = self.info.get("data")
        if data is None or (isinstance(data, dict) and data.get("classes") is None):
            return [str(i) for i in range(n)]
        if not isinstance(data, dict):
            raise ValueError(f'run {self.id}: run.json\'s "data" section is {_describe(data)}, not an object')
        classes = data["classes"]
        if not (isinstance(classes, list) and len(classes) == n and all(isinstance(c, str) for c in classes)):
            raise ValueError(f"run {self.id}: run.json's data.classes should be {n} class names (the model has "
                             f"{n} outputs), got {_describe(classes)}")
        return list(classes)

    @property
    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...], int]:
        """(mean, std, image_size) of the run's training images: how to feed its model a new image.

        Raises:
            ValueError: run.json has no data section (the run never started training) or a malformed one.
        """
        data = self.info.get("data")
        if data is None:
            raise ValueError(f'run {self.id}: run.json has no "data" section (it is written when training starts), '
                             "so its images cannot be normalised")
        if not isinstance(data, dict):
            raise ValueError(f'run {self.id}: run.json\'s "data" section is {_describe(data)}, not an object, '
                             "so its images cannot be normalised")
        channels = self.spec.in_channels
        values = {}
        for key in ("mean", "std"):
            numbers = data.get(key)
            if not (isinstance(numbers, list) and len(numbers) == channels and all(_is_number(v) for v in numbers)
                    and (key == "mean" or all(v > 0 for v in numbers))):
                wanted = f"{channels} {'positive ' if key == 'std' else ''}numbers (one per input channel)"
                raise ValueError(f"run {self.id}: run.json's data.{key} should be {wanted}, got "
                                 f"{_describe(numbers)}, so its images cannot be normalised")
            values[key] = tuple(float(v) for v in numbers)
        size = data.get("image_size")
        if not _is_int(size) or not 1 <= size <= MAX_IMAGE_SIZE:
            raise ValueError(f"run {self.id}: run.json's data.image_size should be a whole number from 1 to "
                             f"{MAX_IMAGE_SIZE}, got {_describe(size)}, so its images cannot be normalised")
        return values["mean"], values["std"], size

    @property
    def resize(self) -> int | None:
        """The shorter side a new image is scaled to before its centre `image_size` crop (ImageNet's 256
        for imported nets); None: no separate resize (the whole centre square, as the run's own data).

        Raises:
            ValueError: run.json's data.resize is present but not a whole number from image_size to
                `MAX_IMAGE_SIZE`.
        """
        data = self.info.get("data")
        value = data.get("resize") if isinstance(data, dict) else None
        if value is None:
            return None
        size = self.normalisation[2]
        if not _is_int(value) or not size <= value <= MAX_IMAGE_SIZE:
            raise ValueError(f"run {self.id}: run.json's data.resize should be a whole number from {size} to "
                             f"{MAX_IMAGE_SIZE}, got {_describe(value)}, so its images cannot be prepared")
        return value


_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # state-dict entries that are not parameters
_TEXT_COLUMNS = frozenset({"layer", "unit"})
RENAMED_COLUMNS = {"block": "unit"}  # residual_norms.csv called a unit a "block" before version 0.2  # every other CSV column holds numbers
_BYTES_PER_UNIT = 16_384  # model.pt's zip entries take ~300 bytes per tensor beyond its data; a unit has < 30


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _section(info: dict[str, Any], key: str) -> dict[str, Any]:
    value = info.get(key)
    return value if isinstance(value, dict) else {}


LABEL_SEPARATOR = " · "
SHORT_ID = 4  # characters of the id a label shows: the id's random suffix (`new_run_id`)
_MAX_DATA_NAME = 40


def data_label(info: dict[str, Any]) -> str:
    """The data a run names in its label, from run.json: "shapes-easy 16px", "folder:pets 64px", "imagenet 224px".

    The data section (written when training starts) comes first, then the config's dataset and
    image size; an imported run without either is "imported", any other run "unknown data". A field
    of the wrong type is left out, never an error.
    """
    data, config = _section(info, "data"), _section(info, "config")
    name = next((v for v in (data.get("name"), config.get("dataset")) if isinstance(v, str) and v.strip()), None)
    size = next((v for v in (data.get("image_size"), config.get("image_size")) if _is_int(v) and v > 0), None)
    if name is None:
        return IMPORTED if is_imported(info) else "unknown data"
    name = " ".join(name.split())
    if name.startswith("folder:"):  # the folder's own name, not its whole path
        name = "folder:" + (re.split(r"[\\/]", name[len("folder:"):].rstrip("/\\"))[-1] or "?")
    if len(name) > _MAX_DATA_NAME:
        name = name[:_MAX_DATA_NAME - 3] + "..."
    return f"{name} {size}px" if size is not None else name


def run_label(info: dict[str, Any], run_id: str, model: str | None = None, *, full_id: bool = False) -> str:
    """The one way a run is named for people: model, data and id, e.g. "resnet20 · shapes-easy 16px · ab12".

    Args:
        info: run.json as read (any field may be missing or damaged: it is left out, never an error).
        run_id: the run's id; the label shows its last `SHORT_ID` characters, or all of it with `full_id`.
        model: the model's name (default: run.json's spec_name, "?" without one).
    """
    if model is None:
        name = info.get("spec_name")
        model = name if isinstance(name, str) and name else "?"
    short = run_id if full_id or len(run_id) <= SHORT_ID else run_id[-SHORT_ID:]
    return LABEL_SEPARATOR.join((model, data_label(info), short))


def unique_labels(labels: Sequence[tuple[str, str]]) -> list[str]:
    """Labels that tell runs apart, in order, from (label, full label) pairs (`Run.label`, `Run.full_label`):
    the full label (the whole id) where two labels collide, then " [2]", " [3]" where even those do (the same
    run given twice)."""
    counts = Counter(short for short, _ in labels)
    chosen = [full if counts[short] > 1 else short for short, full in labels]
    counts = Counter(chosen)
    seen: Counter[str] = Counter()
    unique = []
    for label in chosen:
        seen[label] += 1
        unique.append(f"{label} [{seen[label]}]" if counts[label] > 1 else label)
    return unique


def _describe(value: object) -> str:
    """A short account of a JSON value for a message: its repr, cut to 60 characters."""
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_line(err: BaseException) -> str:
    """The first sentence of an error's message (PyTorch's run to paragraphs), or its type's name."""
    text = str(err).strip().splitlines()[0].strip() if str(err).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    return text or type(err).__name__


def _read_info(path: Path) -> dict[str, Any]:
    """run.json of the run folder `path`, as a dict.

    Raises:
        ValueError: the file cannot be read, is not JSON, or holds something other than an object.
    """
    try:
        file = inside_run(path, "run.json")
        size = file.stat().st_size
        if size > MAX_RUN_JSON_BYTES:
            raise ValueError(f"run {path.name}: run.json is {size:,} bytes, more than a run.json may take "
                             f"({MAX_RUN_JSON_BYTES:,})")
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"run {path.name}: run.json is unreadable: it is not UTF-8 text") from None
    except OSError as err:
        raise ValueError(f"run {path.name}: run.json cannot be read: {err.strerror or _first_line(err)}") from None
    try:
        info = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"run {path.name}: run.json is unreadable: it is not valid JSON ({_first_line(err)})") from None
    if not isinstance(info, dict):
        raise ValueError(f"run {path.name}: run.json is unreadable: it holds {type(info).__name__} "
                         f"{_describe(info)}, not an object")
    return info


def _read_table(path: Path, columns: tuple[str, ...], run: str | None = None) -> pd.DataFrame:
    """A run's CSV with its columns checked; empty when the file is missing or empty (not written yet).

    Columns beyond `columns` are kept; "layer" and "unit" hold names, every other expected column numbers.

    Raises:
        ValueError: naming the run and the file: not a readable CSV, expected columns missing (named), or a
            value that is not a number in a column of numbers (named).
    """
    where = f"run {run or path.parent.name}: {path.name}"
    try:
        if not path.exists() or path.stat().st_size == 0:
            return pd.DataFrame(columns=list(columns))
        table = pd.read_csv(path)
    except OSError as err:
        raise ValueError(f"{where} cannot be read: {err.strerror or _first_line(err)}") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{where} is not a readable CSV: {_first_line(err)}") from None
    for old, new in RENAMED_COLUMNS.items():  # runs written by earlier versions
        if old in table.columns and new in columns and new not in table.columns:
            table = table.rename(columns={old: new})
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = ", ".join(str(c) for c in table.columns) or "none"
        found = found if len(found) <= 80 else found[:77] + "..."
        raise ValueError(f"{where} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"(its columns: {found})")
    for column in columns:
        if column in _TEXT_COLUMNS or pd.api.types.is_numeric_dtype(table[column]):
            continue
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = numbers.isna() & table[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise ValueError(f"{where}: column {column} holds a value that is not a number "
                             f"({_describe(table[column].iloc[row])} in data row {row + 1})")
        table[column] = numbers
    return table


def _saved_model_step(path: Path, evals: pd.DataFrame | None = None) -> str:
    """Which step the run's model.pt is from: it is written at each evaluation, so eval.csv's last row."""
    if not (path / "model.pt").is_file():
        return "no model was saved"
    if evals is None:
        try:
            evals = _read_table(path / "eval.csv", TABLES["eval"], path.name)
        except ValueError:
            evals = None
    last = evals["step"].iloc[-1] if evals is not None and len(evals) else None
    if last is not None and pd.notna(last):
        return f"the saved model is from step {int(last):,}"
    return "a model was saved, from an unknown step"


def _interruption(path: Path, info: dict[str, Any], evals: pd.DataFrame | None = None) -> str | None:
    """Why a run whose run.json says "running" is not running any more; None when its writer may still be."""
    if info.get("status") != "running" or writer_alive(info):
        return None
    steps, total = info.get("steps"), info.get("total_steps")
    when = f"after step {steps:,}" if _is_int(steps) else "at an unknown step"
    if _is_int(total) and total > 0:
        when += f" of {total:,}"
    pid, host = info.get("pid"), info.get("host")
    host = host if isinstance(host, str) and host else None
    who = f" (pid {pid}{f' on {host}' if host else ''})" if _is_int(pid) else ""
    if host is not None and host != socket.gethostname():
        updated = info.get("updated")
        quiet = time.time() - updated if _is_number(updated) else None
        since = f" for {quiet / 3600:,.1f} h" if quiet is not None else ""
        process = f"its process{who} has not updated it{since}"
    else:
        process = f"its process{who} is gone"
    return f"interrupted {when}: {process}; {_saved_model_step(path, evals)}"


def _weights_limit(spec: ModelSpec, params: int) -> int:
    """The most bytes model.pt of `spec` can take: float32 parameters and buffers (BN's running statistics,
    fewer than its parameters), half as much again, a zip entry per tensor (`_BYTES_PER_UNIT`) and 1 MB."""
    return int(4 * 2 * params * 1.5) + _BYTES_PER_UNIT * (spec.num_units + 8) + 1_000_000


def _read_state(weights: Path, run: str) -> dict[str, torch.Tensor]:
    """model.pt's state dict, memory-mapped: tensors' shapes are read, their data not yet.

    Raises:
        ValueError: naming the run and model.pt: damaged, not torch.save's zip format, holding objects
            other than tensors (refused unread by `weights_only`), or not a dict of named tensors.
    """
    legacy = f"run {run}: model.pt is not a torch.save zip archive (damaged, truncated, or in PyTorch's legacy format)"
    try:
        if not zipfile.is_zipfile(weights):
            raise ValueError(legacy)
    except OSError as err:
        raise ValueError(f"run {run}: model.pt cannot be read: {err.strerror or _first_line(err)}") from None
    try:
        check_torch_file(weights, f"run {run}: model.pt")  # bounded work first: a hash bomb is refused unread
    except Malformed as err:
        raise ValueError(f"run {run}: model.pt is damaged: {err}") from None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, OSError, ... from a damaged file
        text = str(err)
        if isinstance(err, pickle.UnpicklingError) and ("Weights only" in text or "WeightsUnpickler" in text):
            # PyTorch's message goes on to suggest weights_only=False: never repeat that advice
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise ValueError(f"run {run}: model.pt holds objects other than tensors{what}, so it was refused; "
                             "nothing in it was executed") from None
        if "mmap can only be used" in text:
            raise ValueError(legacy) from None
        detail = type(err).__name__ if "weights_only" in text else _first_line(err)
        raise ValueError(f"run {run}: model.pt is damaged: {detail}") from None
    if not isinstance(state, dict):
        raise ValueError(f"run {run}: model.pt holds a {type(state).__name__}, not a state dict (names to tensors)")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            what = _describe(key) if isinstance(key, str) else f"keyed by a {type(key).__name__}"  # never repr it
            raise ValueError(f"run {run}: model.pt is not a state dict: its entry {what} holds a "
                             f"{type(value).__name__}, not a tensor")
    return state


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(n) for n in tensor.shape) or "a scalar"


def _state_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], most: int = 3) -> str:
    """The first `most` missing keys, unexpected keys and shape mismatches of `found`; "" when it fits."""

    def first(items: list[str]) -> str:
        more = f" and {len(items) - most:,} more" if len(items) > most else ""
        return ", ".join(items[:most]) + more

    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} is {_shape(found[k])} in the file, {_shape(v)} in the model"
              for k, v in expected.items() if k in found and found[k].shape != v.shape]
    parts = [f"missing {first(missing)}" if missing else "", f"unexpected {first(unexpected)}" if unexpected else "",
             first(shapes) if shapes else ""]
    return "; ".join(p for p in parts if p)


def _load_weights(path: Path, spec: ModelSpec, device: str) -> ResNet:
    """Build `spec` and load model.pt into it, checking the file against the spec before building.

    The file's size and its parameters' count (read from the tensors' shapes, data unread) must fit
    the spec, so a run declaring a huge net next to small weights (or small next to huge) costs nothing.
    """
    run, weights = path.name, path / "model.pt"
    declared = count_parameters(spec)
    limit = _weights_limit(spec, declared)
    size = weights.stat().st_size
    if size > limit:
        raise ValueError(f"run {run}: model.pt is {size / 1e6:,.1f} MB, more than run.json's spec ({spec.label}, "
                         f"{declared:,} parameters) can need ({limit / 1e6:,.1f} MB): not loading it")
    state = _read_state(weights, run)
    found = sum(t.numel() for k, t in state.items() if k.rsplit(".", 1)[-1] not in _BN_BUFFERS)
    if found != declared:
        raise ValueError(f"run {run}: model.pt holds {found:,} parameters but run.json's spec ({spec.label}) "
                         f"declares {declared:,}: not building it")
    model = build_model(spec, device=device, confirm_large=True)
    mismatch = _state_mismatch(model.state_dict(), state)
    if mismatch:
        raise ValueError(f"run {run}: model.pt does not fit run.json's spec ({spec.label}): {mismatch}")
    try:
        model.load_state_dict(state, strict=True)
    except Exception as err:  # e.g. a dtype that does not convert
        raise ValueError(f"run {run}: model.pt does not load into {spec.label}: {_first_line(err)}") from None
    return model.eval()


def load_run(path: str | Path, *, device: str = "cpu", with_model: bool = True) -> Run:
    """Read a run folder; rebuild its model with the saved weights when there are some.

    Reading changes nothing in the folder. A run whose run.json says "running" but whose writer is gone
    comes back with status "interrupted" and a message saying after which step and which model was saved.

    Raises:
        ValueError: one line naming the run and the file at fault: not a run folder, run.json unreadable or
            without a valid "spec"/"config", a CSV unreadable or with missing or non-numeric columns, or a
            model.pt that is damaged, refused, too large or does not fit the spec.
    """
    path = Path(path)
    if path.name.startswith(".") and path.name.endswith(STAGING_SUFFIX):
        raise ValueError(f"{path} is an import that never finished (its staging folder), not a run")
    if not (path / "run.json").is_file():
        raise ValueError(f"{path} is not a run folder (no run.json)")
    run = path.name
    info = _read_info(path)
    imported = is_imported(info)  # pretrained weights: no config, no tables
    for key in ("spec",) if imported and "config" not in info else ("spec", "config"):
        if key not in info:
            raise ValueError(f'run {run}: run.json has no "{key}"')
        if not isinstance(info[key], dict):
            raise ValueError(f'run {run}: run.json\'s "{key}" is {_describe(info[key])}, not an object')
    try:
        spec = ModelSpec.from_dict(info["spec"])
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as err:
        raise ValueError(f"run {run}: run.json's spec is invalid: {_first_line(err)}") from None
    try:
        config = None if imported and "config" not in info else TrainConfig.from_dict(info["config"])
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as err:
        raise ValueError(f"run {run}: run.json's config is invalid: {_first_line(err)}") from None
    tables = {name: _read_table(inside_run(path, f"{name}.csv"), cols, run) for name, cols in TABLES.items()}
    interrupted = _interruption(path, info, tables["eval"])
    if interrupted:
        info = {**info, "status": "interrupted", "message": interrupted}
    weights = inside_run(path, "model.pt")
    model = _load_weights(path, spec, device) if with_model and weights.is_file() else None
    return Run(path, info, spec, config, tables, model)


def list_runs(root: str | Path = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """Summaries of the runs under `root`, newest first; folders whose run.json is unreadable are skipped.

    Keys: id, kind ("trained" or "imported"), model, label and full_label (`run_label`), data_label, status ("interrupted"
    for a "running" run whose writer is gone), message, steps, total_steps, dataset, image_size, train_loss,
    test_accuracy, created, created_ts, path, and spec and config
    (run.json's dicts, as `ModelSpec.to_dict` and `TrainConfig.to_dict` wrote them; None when missing
    or not an object).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for child in root.iterdir():
        if child.name.startswith(".") or not (child / "run.json").is_file():  # hidden: an import's staging folder
            continue
        try:
            info = _read_info(child)
        except ValueError:
            continue
        status, message = info.get("status"), info.get("message")
        interrupted = _interruption(child, info)
        if interrupted:
            status, message = "interrupted", interrupted
        created_ts = info.get("created_ts")
        run_id = str(info.get("id") or child.name)
        image_size = _section(info, "data").get("image_size", _section(info, "config").get("image_size"))
        runs.append({
            "id": run_id, "model": info.get("spec_name", "?"), "status": status,
            "label": run_label(info, run_id), "full_label": run_label(info, run_id, full_id=True),
            "data_label": data_label(info),
            "kind": info["kind"] if isinstance(info.get("kind"), str) and info["kind"] else "trained",
            "message": message if isinstance(message, str) else "",
            "steps": info.get("steps"), "total_steps": info.get("total_steps"),
            "dataset": _section(info, "data").get("name", _section(info, "config").get("dataset")),
            "image_size": image_size if _is_int(image_size) else None,
            "train_loss": _section(info, "final_train").get("loss"),
            "test_accuracy": _section(info, "final_eval").get("accuracy"),
            "created": info.get("created"), "created_ts": float(created_ts) if _is_number(created_ts) else 0.0,
            "path": str(child),
            "spec": info["spec"] if isinstance(info.get("spec"), dict) else None,
            "config": info["config"] if isinstance(info.get("config"), dict) else None,
        })
    return sorted(runs, key=lambda r: (r["created_ts"], r["id"]), reverse=True)


# What twins share besides the spec: the data (dataset, image_size, train_size, test_size), the seed
# and the budget (steps or epochs, batch_size per process and world_size: the global batch).
TWIN_CONFIG_FIELDS: tuple[str, ...] = ("dataset", "image_size", "train_size", "test_size", "seed", "steps", "epochs",
                                       "batch_size", "world_size")


def twin_key(spec: ModelSpec, config: TrainConfig | None) -> tuple[ModelSpec, tuple | None]:
    """What a run shares with its plain/residual twin: the spec without shortcuts (`ModelSpec.plain`,
    which also drops zero-init: plain nets cannot have it) and the config's TWIN_CONFIG_FIELDS
    (None for an imported run, which has no config)."""
    return spec.plain(), None if config is None else tuple(getattr(config, name) for name in TWIN_CONFIG_FIELDS)


def are_twins(a: tuple[ModelSpec, TrainConfig | None], b: tuple[ModelSpec, TrainConfig | None]) -> bool:
    """Whether two (spec, config) runs are twins: one residual, one plain, otherwise the same `twin_key`.
    An imported run (config None) was not trained here, so it is nobody's twin."""
    if a[1] is None or b[1] is None:
        return False
    return a[0].residual != b[0].residual and twin_key(*a) == twin_key(*b)


def _row_run(row: dict[str, Any]) -> tuple[ModelSpec, TrainConfig] | None:
    """The (spec, config) of a `list_runs` row; None when either is missing or invalid (an old or damaged run)."""
    try:
        return ModelSpec.from_dict(row.get("spec")), TrainConfig.from_dict(row.get("config"))
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None


def find_twin(runs: list[dict[str, Any]], run_id: str) -> str | None:
    """The newest other run of `runs` (rows of `list_runs`, newest first) that is `run_id`'s twin, or None.

    Twins are paired by spec, never by name: their specs differ only in `residual` (zero-init aside,
    `twin_key`), and they used the same data, seed and budget (`TWIN_CONFIG_FIELDS`). A run is never
    its own twin, nor is another run of the same spec. Rows without a valid spec and config pair with
    nothing.
    """
    row = next((r for r in runs if r.get("id") == run_id), None)
    mine = _row_run(row) if row is not None else None
    if mine is None:
        return None
    for other in runs:
        if other.get("id") == run_id:
            continue
        theirs = _row_run(other)
        if theirs is not None and are_twins(mine, theirs):
            return other["id"]
    return None
