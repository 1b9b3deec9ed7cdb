"""Reading a run folder back (`load_run`, `list_runs`): run.json, the tables and model.pt, each checked,
every fault one line naming the run and the file; reading changes nothing in the folder.

A run.json with "kind": "imported" (`checkpoints.import_weights`: pretrained weights, no training) has
no "config" and no tables; `load_run` reads it with `Run.config` None and empty tables. It has no
dataset either: `attribute` takes it with an uploaded image only, `report` and Compare list it with
blank training columns and leave it out of the training figures, and the lenses (lesion, paths,
landscape) refuse it in one line.
"""

from __future__ import annotations

import json
import pickle
import re
import socket
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..limits import MAX_IMAGE_SIZE, MAX_RUN_JSON_BYTES
from ..models import ModelSpec, ResNet, build_model, count_parameters
from ..pickle_guard import Malformed, check_torch_file
from ..training.config import TrainConfig
from .labels import data_label, run_label
from .liveness import writer_alive
from .store import (
    DEFAULT_ROOT,
    STAGING_SUFFIX,
    TABLES,
    first_line,
    inside_run,
    is_imported,
    is_int,
    is_number,
    section,
    shape_text,
)


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
            if not (isinstance(numbers, list) and len(numbers) == channels and all(is_number(v) for v in numbers)
                    and (key == "mean" or all(v > 0 for v in numbers))):
                wanted = f"{channels} {'positive ' if key == 'std' else ''}numbers (one per input channel)"
                raise ValueError(f"run {self.id}: run.json's data.{key} should be {wanted}, got "
                                 f"{_describe(numbers)}, so its images cannot be normalised")
            values[key] = tuple(float(v) for v in numbers)
        size = data.get("image_size")
        if not is_int(size) or not 1 <= size <= MAX_IMAGE_SIZE:
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
        if not is_int(value) or not size <= value <= MAX_IMAGE_SIZE:
            raise ValueError(f"run {self.id}: run.json's data.resize should be a whole number from {size} to "
                             f"{MAX_IMAGE_SIZE}, got {_describe(value)}, so its images cannot be prepared")
        return value


_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # state-dict entries that are not parameters
_TEXT_COLUMNS = frozenset({"layer", "unit"})
RENAMED_COLUMNS = {"block": "unit"}  # residual_norms.csv called a unit a "block" before version 0.2  # every other CSV column holds numbers
_BYTES_PER_UNIT = 16_384  # model.pt's zip entries take ~300 bytes per tensor beyond its data; a unit has < 30


def _describe(value: object) -> str:
    """A short account of a JSON value for a message: its repr, cut to 60 characters."""
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        raise ValueError(f"run {path.name}: run.json cannot be read: {err.strerror or first_line(err)}") from None
    try:
        info = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"run {path.name}: run.json is unreadable: it is not valid JSON ({first_line(err)})") from None
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
        raise ValueError(f"{where} cannot be read: {err.strerror or first_line(err)}") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{where} is not a readable CSV: {first_line(err)}") from None
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
    when = f"after step {steps:,}" if is_int(steps) else "at an unknown step"
    if is_int(total) and total > 0:
        when += f" of {total:,}"
    pid, host = info.get("pid"), info.get("host")
    host = host if isinstance(host, str) and host else None
    who = f" (pid {pid}{f' on {host}' if host else ''})" if is_int(pid) else ""
    if host is not None and host != socket.gethostname():
        updated = info.get("updated")
        quiet = time.time() - updated if is_number(updated) else None
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
        raise ValueError(f"run {run}: model.pt cannot be read: {err.strerror or first_line(err)}") from None
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
        detail = type(err).__name__ if "weights_only" in text else first_line(err)
        raise ValueError(f"run {run}: model.pt is damaged: {detail}") from None
    if not isinstance(state, dict):
        raise ValueError(f"run {run}: model.pt holds a {type(state).__name__}, not a state dict (names to tensors)")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            what = _describe(key) if isinstance(key, str) else f"keyed by a {type(key).__name__}"  # never repr it
            raise ValueError(f"run {run}: model.pt is not a state dict: its entry {what} holds a "
                             f"{type(value).__name__}, not a tensor")
    return state


def _state_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], most: int = 3) -> str:
    """The first `most` missing keys, unexpected keys and shape mismatches of `found`; "" when it fits."""

    def first(items: list[str]) -> str:
        more = f" and {len(items) - most:,} more" if len(items) > most else ""
        return ", ".join(items[:most]) + more

    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} is {shape_text(found[k])} in the file, {shape_text(v)} in the model"
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
        raise ValueError(f"run {run}: model.pt does not load into {spec.label}: {first_line(err)}") from None
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
        raise ValueError(f"run {run}: run.json's spec is invalid: {first_line(err)}") from None
    try:
        config = None if imported and "config" not in info else TrainConfig.from_dict(info["config"])
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as err:
        raise ValueError(f"run {run}: run.json's config is invalid: {first_line(err)}") from None
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
        image_size = section(info, "data").get("image_size", section(info, "config").get("image_size"))
        runs.append({
            "id": run_id, "model": info.get("spec_name", "?"), "status": status,
            "label": run_label(info, run_id), "full_label": run_label(info, run_id, full_id=True),
            "data_label": data_label(info),
            "kind": info["kind"] if isinstance(info.get("kind"), str) and info["kind"] else "trained",
            "message": message if isinstance(message, str) else "",
            "steps": info.get("steps"), "total_steps": info.get("total_steps"),
            "dataset": section(info, "data").get("name", section(info, "config").get("dataset")),
            "image_size": image_size if is_int(image_size) else None,
            "train_loss": section(info, "final_train").get("loss"),
            "test_accuracy": section(info, "final_eval").get("accuracy"),
            "created": info.get("created"), "created_ts": float(created_ts) if is_number(created_ts) else 0.0,
            "path": str(child),
            "spec": info["spec"] if isinstance(info.get("spec"), dict) else None,
            "config": info["config"] if isinstance(info.get("config"), dict) else None,
        })
    return sorted(runs, key=lambda r: (r["created_ts"], r["id"]), reverse=True)
