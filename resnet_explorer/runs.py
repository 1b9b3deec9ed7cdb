"""The run store: one folder per run, written atomically, readable while the run goes on.

    runs/<run-id>/run.json           spec, data, optimiser, seed, device, versions, status
                  metrics.csv        step, epoch, loss, accuracy, lr, seconds
                  eval.csv           step, epoch, loss, accuracy, images (held-out images used)
                  residual_norms.csv step, block, stage, residual_norm, shortcut_norm, ratio
                  grad_flow.csv      step, layer, grad_norm, grad_abs_mean, weight_norm, update_ratio
                  responses.csv      step, layer, std (training mode, the probed batch)
                  responses_eval.csv step, layer, std (eval mode, held-out images, end of run)
                  model.pt           state_dict (loaded with weights_only=True)

Every file is replaced by write-to-temp + rename, so a reader (or a crash) never sees half a
file. CSVs are rewritten whole at most every `flush_seconds` and at each evaluation and the end.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import __version__
from .export import rows_to_csv, write_atomic
from .models import ModelSpec, ResNet, build_model
from .training.config import TrainConfig
from .training.trainer import Event

DEFAULT_ROOT = Path("runs")
TABLES: dict[str, tuple[str, ...]] = {
    "metrics": ("step", "epoch", "loss", "accuracy", "lr", "seconds"),
    "eval": ("step", "epoch", "loss", "accuracy", "images"),
    "residual_norms": ("step", "block", "stage", "residual_norm", "shortcut_norm", "ratio"),
    "grad_flow": ("step", "layer", "grad_norm", "grad_abs_mean", "weight_norm", "update_ratio"),
    "responses": ("step", "layer", "std"),
    "responses_eval": ("step", "layer", "std"),
}
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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
        self.path.mkdir(parents=True, exist_ok=False)
        self.flush_seconds = flush_seconds
        self.save_model = save_model
        self.rows: dict[str, list[dict]] = {name: [] for name in TABLES}
        self.info: dict[str, Any] = {
            "id": self.id, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "created_ts": time.time(),
            "updated": time.time(),
            "status": "running", "message": "", "spec_name": spec.name, "label": spec.label,
            "spec": spec.to_dict(), "config": config.to_dict(), "seed": config.seed, "versions": versions(),
            "pid": os.getpid(), "steps": 0, "total_steps": None,
        }
        self.model: torch.nn.Module | None = None
        self._last_flush = 0.0
        self.flush()

    def __call__(self, event: Event) -> None:
        if event.kind == "start":
            data = event.data["data"]
            self.model = event.data["model"]
            self.info.update({
                "total_steps": event.data["total_steps"], "device": event.data["device"],
                "bf16": event.data["bf16"], "channels_last": event.data["channels_last"],
                "data": {"name": data.name, "source": data.source, "classes": list(data.classes),
                         "num_train": len(data.train_images), "num_test": len(data.test_images),
                         "image_size": data.image_size, "mean": list(data.mean), "std": list(data.std)},
            })
            self.flush()
        elif event.kind == "step":
            self.rows["metrics"].append(event.data)
            self.info["steps"] = event.step
            if time.time() - self._last_flush >= self.flush_seconds:
                self.flush()
        elif event.kind == "probe":
            record = event.data["record"]
            self.rows["residual_norms"] += record.residual_norms
            self.rows["grad_flow"] += record.grad_flow
            self.rows["responses"] += record.responses
        elif event.kind == "responses_eval":
            self.rows["responses_eval"] += event.data["rows"]
        elif event.kind == "eval":
            self.rows["eval"].append(event.data)
            self.flush(save_model=True)
        elif event.kind == "done":
            self.info.update({"status": event.data["status"], "message": event.data["message"],
                              "steps": event.step, "seconds": round(event.data["seconds"], 3)})
            if self.rows["metrics"]:
                self.info["final_train"] = {k: self.rows["metrics"][-1][k] for k in ("loss", "accuracy")}
            if self.rows["eval"]:
                self.info["final_eval"] = {k: self.rows["eval"][-1][k] for k in ("loss", "accuracy")}
            self.flush(save_model=True)

    def flush(self, save_model: bool = False) -> None:
        for name, columns in TABLES.items():
            rows = self.rows[name]
            text = rows_to_csv([{c: r.get(c) for c in columns} for r in rows]) if rows else ",".join(columns) + "\n"
            write_atomic(self.path / f"{name}.csv", text)
        if save_model and self.save_model and self.model is not None:
            save_state_dict(self.model, self.path / "model.pt")
        self.info["updated"] = time.time()
        _write_json(self.path / "run.json", self.info)
        self._last_flush = time.time()


@dataclass
class Run:
    """A run read back from its folder."""

    path: Path
    info: dict[str, Any]
    spec: ModelSpec
    config: TrainConfig
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    model: ResNet | None = None

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def label(self) -> str:
        return f"{self.spec.name} ({self.id[-4:]})"

    @property
    def metrics(self) -> pd.DataFrame:
        return self.tables["metrics"]

    @property
    def evals(self) -> pd.DataFrame:
        return self.tables["eval"]


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(columns))
    return pd.read_csv(path)


def load_run(path: str | Path, *, device: str = "cpu", with_model: bool = True) -> Run:
    """Read a run folder; rebuild its model with the saved weights when there are some.

    Raises:
        ValueError: not a run folder, or its files are unreadable.
    """
    path = Path(path)
    info_path = path / "run.json"
    if not info_path.is_file():
        raise ValueError(f"{path} is not a run folder (no run.json)")
    try:
        info = json.loads(info_path.read_text())
        spec = ModelSpec.from_dict(info["spec"])
        config = TrainConfig.from_dict(info["config"])
        tables = {name: _read_table(path / f"{name}.csv", cols) for name, cols in TABLES.items()}
    except (ValueError, KeyError, TypeError, pd.errors.ParserError) as err:
        raise ValueError(f"run {path.name} is unreadable: {err}") from None
    model = None
    weights = path / "model.pt"
    if with_model and weights.is_file():
        model = build_model(spec, device=device, confirm_large=True)
        try:
            state = torch.load(weights, map_location=device, weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as err:  # a damaged file raises UnpicklingError, RuntimeError, EOFError, ...
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"run {path.name}: model.pt does not load: {first}") from None
        model.eval()
    return Run(path, info, spec, config, tables, model)


def list_runs(root: str | Path = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """Summaries of the runs under `root`, newest first (unreadable folders are skipped)."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for child in root.iterdir():
        info_path = child / "run.json"
        if not info_path.is_file():
            continue
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            continue
        runs.append({
            "id": info.get("id", child.name), "model": info.get("spec_name", "?"), "status": info.get("status"),
            "steps": info.get("steps"), "total_steps": info.get("total_steps"),
            "dataset": (info.get("data") or {}).get("name", info.get("config", {}).get("dataset")),
            "train_loss": (info.get("final_train") or {}).get("loss"),
            "test_accuracy": (info.get("final_eval") or {}).get("accuracy"),
            "created": info.get("created"), "created_ts": info.get("created_ts", 0.0), "path": str(child),
        })
    return sorted(runs, key=lambda r: (r["created_ts"], r["id"]), reverse=True)


def twin_name(model: str) -> str:
    """The plain/residual twin's name: resnet56 <-> plain56, preact_resnet164 <-> preact_plain164."""
    if "resnet" in model:
        return model.replace("resnet", "plain", 1)
    return model.replace("plain", "resnet", 1)


def find_twin(runs: list[dict[str, Any]], run_id: str) -> str | None:
    """The newest other run (from `list_runs`) of `run_id`'s twin model, or None."""
    model = next((r["model"] for r in runs if r["id"] == run_id), None)
    if model is None:
        return None
    return next((r["id"] for r in runs if r["id"] != run_id and r["model"] == twin_name(model)), None)
