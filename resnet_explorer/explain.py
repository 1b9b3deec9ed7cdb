"""Three lenses on why residual nets train, as analyses of a saved run: one shape for CLI, app and report.

- "lesion": delete units (and swap them) at test time, Veit, Wilber & Belongie 2016, Figs. 3-5
  (`analysis.lesion`);
- "paths": the gradient each path length carries, the same paper's Fig. 6 (`analysis.paths`);
- "landscape": the loss around the trained weights along filter-normalised random directions,
  Li et al. 2018, Figs. 1 and 5 (`analysis.landscape`).

`analyse(lens, run, options)` runs one lens on one run and returns its result object;
`tables` turns a result into CSV-ready tables, `figures` draws one or more runs' results (a net
and its twin side by side), and `save` / `load` keep a result in the run's folder under
``explain/<lens>/`` (tables as CSV, the rest as JSON), where `report` and the app find it again.
Nothing here imports Streamlit.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import torch

from .analysis.landscape import LandscapeResult, run_landscape
from .analysis.lesion import LesionResult, LesionStudy, lesion_study
from .analysis.paths import PathResult, path_gradients
from .export import write_atomic
from .limits import (
    MAX_LANDSCAPE_GRID,
    MAX_LANDSCAPE_IMAGES,
    MAX_LANDSCAPE_SPAN,
    MAX_LESION_DRAWS,
    MAX_LESION_IMAGES,
    MAX_PATH_DRAWS,
    MAX_PATH_IMAGES,
    MAX_SEED,
    check_int,
)
from .plots.landscape import plot_landscape_1d, plot_landscape_contours, plot_landscape_surfaces
from .plots.lesion import plot_k_lesions, plot_reorderings, plot_single_lesions
from .plots.paths import plot_path_gradients
from .runs import Run, inside_run

__all__ = ["LENSES", "DEFAULTS", "Result", "analyse", "check_options", "figures", "tables", "save", "load",
           "saved_lenses", "lens_folder"]

LENSES: Mapping[str, str] = {"lesion": "Lesions", "paths": "Paths", "landscape": "Loss landscape"}
DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "lesion": {"images": 1000, "draws": 5, "seed": 0},
    "paths": {"images": 64, "draws": 10, "seed": 0},
    "landscape": {"dims": 1, "grid": 21, "span": 1.0, "images": 512, "seed": 0},
}
Result = LesionStudy | PathResult | LandscapeResult
Progress = Callable[[int, int], None]
FOLDER = "explain"
_LESION_KINDS = ("single", "k_lesions", "reorder")


def check_options(lens: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The lens's options with defaults filled in, each checked against its ceiling (one-line ValueError)."""
    if lens not in LENSES:
        raise ValueError(f"unknown lens {lens!r}; choose one of {', '.join(LENSES)}")
    unknown = sorted(set(options or {}) - set(DEFAULTS[lens]))
    if unknown:
        raise ValueError(f"unknown {lens} option(s) {', '.join(unknown)}; options: {', '.join(DEFAULTS[lens])}")
    opts = {**DEFAULTS[lens], **(options or {})}
    check_int("seed", opts["seed"], 0, MAX_SEED)
    if lens == "lesion":
        check_int("images", opts["images"], 1, MAX_LESION_IMAGES)
        check_int("draws", opts["draws"], 1, MAX_LESION_DRAWS)
    elif lens == "paths":
        check_int("images", opts["images"], 1, MAX_PATH_IMAGES)
        check_int("draws", opts["draws"], 1, MAX_PATH_DRAWS)
    else:
        check_int("dims", opts["dims"], 1, 2)
        check_int("grid", opts["grid"], 3, MAX_LANDSCAPE_GRID)
        if opts["grid"] % 2 == 0:
            raise ValueError(f"grid must be odd, so that the trained weights are a grid point; got {opts['grid']}")
        check_int("images", opts["images"], 1, MAX_LANDSCAPE_IMAGES)
        span = opts["span"]
        if isinstance(span, bool) or not isinstance(span, (int, float)) or not 0 < span <= MAX_LANDSCAPE_SPAN:
            raise ValueError(f"span must be a number above 0 and at most {MAX_LANDSCAPE_SPAN:g}, got {span!r}")
        opts["span"] = float(span)
    return opts


def _paths_of_run(run: Run, *, images: int, draws: int, seed: int, progress: Progress | None,
                  stop: threading.Event | None) -> PathResult:
    """`path_gradients` on the run's first `images` training images, spread over the classes."""
    from .analysis.study import spread_over_classes
    from .data import normalize
    from .training.trainer import load_run_data

    if not run.spec.residual:
        raise ValueError(f"{run.spec.name} is a plain net (no shortcuts): it has a single path, so there is no "
                         "path-length distribution to measure; pick a residual net")
    data = load_run_data(run.config)
    idx = torch.tensor(spread_over_classes(data.train_labels, images), dtype=torch.long)
    x = normalize(data.train_images[idx], data.mean, data.std)
    return path_gradients(run.model, x, data.train_labels[idx], draws=draws, seed=seed,
                          batch_size=min(images, 64), progress=progress, stop=stop)


def check_run(lens: str, run: Run) -> None:
    """Raise a one-line ValueError when `lens` cannot measure `run`: an imported run has no dataset."""
    if run.config is None:
        raise ValueError(f"run {run.id} was imported from a checkpoint and has no dataset to measure on; "
                         f"{LENSES.get(lens, lens).lower()} is not supported for imported runs yet")


def analyse(lens: str, run: Run, options: Mapping[str, Any] | None = None, *, progress: Progress | None = None,
            stop: threading.Event | None = None) -> Result:
    """Run one lens on a run loaded with its model.

    Args:
        lens: a key of `LENSES`.
        run: from `load_run(..., with_model=True)`.
        options: the lens's options (`DEFAULTS` lists them); missing ones take the defaults.
        progress: called with (done, total) as the work advances.
        stop: set it to end the analysis early (`AnalysisStopped` is raised).

    Raises:
        ValueError: an unknown lens or option, a value past its ceiling, a run without weights, or
            a lens that does not apply (paths of a plain net, any lens of an imported run), in one line.
        AnalysisStopped: ``stop`` was set.
    """
    opts = check_options(lens, options)
    check_run(lens, run)
    if run.model is None:
        raise ValueError(f"run {run.id} has no saved weights (model.pt) to analyse")
    if lens == "lesion":
        return lesion_study(run, images=opts["images"], draws=opts["draws"], seed=opts["seed"], progress=progress,
                            stop=stop)
    if lens == "paths":
        return _paths_of_run(run, images=opts["images"], draws=opts["draws"], seed=opts["seed"],
                             progress=progress, stop=stop)
    return run_landscape(run, dims=opts["dims"], grid=opts["grid"], span=opts["span"], images=opts["images"],
                         seed=opts["seed"], progress=progress, stop=stop)


# --- tables and figures ----------------------------------------------------------------------------

def tables(lens: str, result: Result) -> dict[str, pd.DataFrame]:
    """CSV-ready tables of one result, by file stem (e.g. "lesion_single", "paths_summary")."""
    if lens == "lesion":
        return {f"lesion_{kind}": part.rows for kind in _LESION_KINDS
                if (part := getattr(result, kind)) is not None}
    if lens == "paths":
        return {"paths": result.rows, "paths_summary": result.summary}
    return {"landscape": result.rows}


def figures(lens: str, results: Mapping[str, Result], *, residual: Mapping[str, bool],
            depth: Mapping[str, int] | None = None, classes: Mapping[str, int] | None = None) -> dict[str, go.Figure]:
    """The lens's figures of one or more runs' results (run label -> result), by file stem.

    Args:
        lens: a key of `LENSES`.
        results: run label -> its result; a net and its twin are drawn together.
        residual: run label -> whether the run's net has shortcuts (plain nets are dashed).
        depth: run label -> its depth (twins share a colour); read from the results where they carry it.
        classes: run label -> its classes, so a landscape at chance gets no comparison (lesion results carry theirs).
    """
    if not results:
        return {}
    if lens == "lesion":
        out = {}
        for kind, stem, plot in (("single", "lesion_single", plot_single_lesions),
                                 ("k_lesions", "lesion_k", plot_k_lesions),
                                 ("reorder", "lesion_reorder", plot_reorderings)):
            parts = {label: getattr(study, kind) for label, study in results.items()}
            if any(p is not None for p in parts.values()):
                out[stem] = plot(parts, residual=residual)
        return out
    if lens == "paths":
        shown = {label: r for label, r in results.items() if residual.get(label, True)}
        return {"paths": plot_path_gradients(shown, residual=residual, depth=depth)} if shown else {}
    out = {"landscape_1d": plot_landscape_1d(results, residual=residual, depth=depth, classes=classes)}
    two_d = {label: r for label, r in results.items() if r.dims == 2}
    if two_d:
        out["landscape_contours"] = plot_landscape_contours(two_d, residual=residual, classes=classes)
        out["landscape_surfaces"] = plot_landscape_surfaces(two_d, residual=residual, classes=classes)
    return out


# --- saving in the run folder ----------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and value != value:  # NaN: JSON has none
        return None
    return value


def _split(obj: Any) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """A result dataclass as (its DataFrame fields, its other fields as JSON values)."""
    frames, meta = {}, {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, pd.DataFrame):
            frames[f.name] = value
        else:
            meta[f.name] = _jsonable(value)
    return frames, meta


def _join(cls: type, frames: Mapping[str, pd.DataFrame], meta: Mapping[str, Any]) -> Any:
    """The inverse of `_split`; lists come back as tuples where the field held a tuple (e.g. a range)."""
    values = dict(meta)
    for name in ("effective",):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    return cls(**values, **frames)


def lens_folder(run_path: str | Path, lens: str) -> Path:
    """``<run>/explain/<lens>``; ValueError when a link there leads out of the run folder (`runs.inside_run`)."""
    return inside_run(run_path, FOLDER, lens)


def save(run_path: str | Path, lens: str, result: Result, options: Mapping[str, Any]) -> list[Path]:
    """Write a result into ``<run>/explain/<lens>/`` (CSV tables and result.json), each file atomically.

    Returns the paths written. Raises OSError when the run folder cannot be written (the caller
    decides whether that matters: the CLI also writes to its own output folder), and ValueError when
    a link in it leads out of the run folder: nothing is written through it.
    """
    folder = lens_folder(run_path, lens)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {kind: getattr(result, kind) for kind in _LESION_KINDS} if lens == "lesion" else {lens: result}
    info: dict[str, Any] = {"lens": lens, "options": dict(options), "parts": {}}
    if lens == "lesion":
        info["label"], info["notes"] = result.label, list(result.notes)
    written = []
    for name, part in parts.items():
        if part is None:
            continue
        frames, meta = _split(part)
        info["parts"][name] = {"meta": meta, "tables": sorted(frames)}
        for table, frame in frames.items():
            file = inside_run(run_path, FOLDER, lens, f"{name}.{table}.csv")
            written.append(write_atomic(file, frame.to_csv(index=False)))
    written.append(write_atomic(inside_run(run_path, FOLDER, lens, "result.json"), json.dumps(info, indent=1)))
    return written


def load(run_path: str | Path, lens: str) -> tuple[Result, dict[str, Any]] | None:
    """(result, options) saved by `save`, or None when there is none.

    Raises:
        ValueError: the saved files are damaged (one line naming the folder).
    """
    folder = lens_folder(run_path, lens)
    if not inside_run(run_path, FOLDER, lens, "result.json").is_file():
        return None
    try:
        info = json.loads((folder / "result.json").read_text())
        parts = {}
        for name, part in info["parts"].items():  # names from result.json: each file must stay in the run
            frames = {t: pd.read_csv(inside_run(run_path, FOLDER, lens, f"{name}.{t}.csv")) for t in part["tables"]}
            cls = {"lesion": LesionResult, "paths": PathResult, "landscape": LandscapeResult}[lens]
            parts[name] = _join(cls, frames, part["meta"])
        if lens == "lesion":
            result: Result = LesionStudy(label=info["label"], notes=list(info["notes"]),
                                         **{k: parts.get(k) for k in _LESION_KINDS})
        else:
            result = parts[lens]
        return result, dict(info["options"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"saved {lens} analysis in {folder} is damaged ({type(err).__name__}: "
                         f"{' '.join(str(err).split())}); run it again") from None


def saved_lenses(run_path: str | Path) -> list[str]:
    """The lenses with a saved result in this run's folder, in `LENSES` order (one behind a link that leads
    out of the run folder is not the run's, and is left out)."""
    saved = []
    for lens in LENSES:
        try:
            if inside_run(run_path, FOLDER, lens, "result.json").is_file():
                saved.append(lens)
        except ValueError:
            continue
    return saved
