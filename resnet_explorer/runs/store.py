"""The run store: one folder per run, written atomically, readable while the run goes on.

    runs/<run-id>/run.json           spec, data, optimiser, seed, device, versions, status
                  metrics.csv        step, epoch, loss, accuracy, lr, seconds
                  eval.csv           step, epoch, loss, accuracy, images (held-out images used)
                  residual_norms.csv step, unit, stage, residual_norm, shortcut_norm, ratio
                  grad_flow.csv      step, layer, grad_norm, grad_abs_mean, weight_norm, update_ratio
                  responses.csv      step, layer, std (training mode, the probed batch)
                  responses_eval.csv step, layer, std (eval mode, held-out images, end of run)
                  model.pt           state_dict (loaded with weights_only=True)

Every file is replaced by write-to-temp + rename, so a reader (or a crash) never sees half a
file. CSVs are rewritten whole at most every `flush_seconds` and at each evaluation and the end.
Reading a folder back is `reader`'s job; `labels` names a run, `twins` pairs it with its twin.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import platform
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..data import ImageData
from ..export import rows_to_csv, write_atomic
from ..models import ModelSpec
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
        raise ValueError(f"run {base.name}: {'/'.join(parts)} cannot be resolved ({first_line(err)})") from None
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


# run.json's values, read without trusting them (`reader`, `labels`)
def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def section(info: dict[str, Any], key: str) -> dict[str, Any]:
    value = info.get(key)
    return value if isinstance(value, dict) else {}


def shape_text(tensor: torch.Tensor) -> str:
    """A tensor's shape as a mismatch message names it: "64x3x7x7", or "a scalar"."""
    return "x".join(str(n) for n in tensor.shape) or "a scalar"


def first_line(err: BaseException) -> str:
    """The first sentence of an error's message (PyTorch's run to paragraphs), or its type's name."""
    text = str(err).strip().splitlines()[0].strip() if str(err).strip() else ""
    text = text.split(". ")[0].rstrip(".")
    return text or type(err).__name__
