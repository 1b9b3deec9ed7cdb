"""The lenses on why residual nets train, and the unit profile, as analyses of a saved run: one shape for CLI,
app and report.

- "lesion": delete units (and swap them) at test time, Veit, Wilber & Belongie 2016, Figs. 3-5
  (`analysis.lesion`);
- "paths": the gradient each path length carries, the same paper's Fig. 6 (`analysis.paths`);
- "landscape": the loss around the trained weights along filter-normalised random directions,
  Li et al. 2018, Figs. 1 and 5 (`analysis.landscape`);
- "profile": per unit, in eval mode over the user's photos or the run's held-out images, the residual
  ratio, the response std and single-unit lesions, with no training (`analysis.profile`); the one
  entry that also takes an imported net (with photos), and that measures one run, not its twin.

Each lens is one `Lens` entry in the `LENSES` registry: its options as data (`options.Option`:
the CLI's flags, the Explain page's form, the checks and the defaults are made from them), which
runs it accepts, the analysis it runs, its tables, figures and captions. Adding a lens is one
analysis function, one plot function and one `register(Lens(...))`; nothing else names it.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from ..analysis.landscape import LandscapeResult, run_landscape
from ..analysis.lesion import LesionResult, LesionStudy, lesion_study
from ..analysis.paths import PathResult, path_gradients
from ..analysis.profile import UnitProfile, profile_units
from ..analysis.study import dataset_inputs, image_files, images_inputs
from ..export import write_atomic
from ..jobs.options import Option
from ..jobs.options import check_options as _check_options
from ..limits import (
    MAX_LANDSCAPE_GRID,
    MAX_LANDSCAPE_IMAGES,
    MAX_LANDSCAPE_SPAN,
    MAX_LESION_DRAWS,
    MAX_LESION_IMAGES,
    MAX_PATH_CHARS,
    MAX_PATH_DRAWS,
    MAX_PATH_IMAGES,
    MAX_SEED,
    MAX_USER_IMAGES,
)
from ..plots.landscape import plot_landscape_1d, plot_landscape_contours, plot_landscape_surfaces
from ..plots.lesion import plot_k_lesions, plot_reorderings, plot_single_lesions
from ..plots.paths import plot_path_gradients
from ..plots.profile import plot_unit_profile
from ..runs import Run, inside_run
from . import tasks

__all__ = ["FOLDER", "LENSES", "Lens", "Result", "analyse", "check_options", "check_run", "figures", "lens_folder",
           "load", "refusal", "register", "save", "saved_lenses", "tables"]

Result = LesionStudy | PathResult | LandscapeResult | UnitProfile
Progress = Callable[[int, int], None]
Figures = Callable[..., dict[str, go.Figure]]
FOLDER = "explain"


@dataclass(frozen=True)
class Lens:
    """One lens: everything the CLI, the app, the child process and the report need to know of it.

    Attributes:
        name: its key, the CLI subcommand and the folder under ``explain/``.
        title: its name on screen ("Loss landscape").
        summary: what it measures, one line (the CLI's help; the paper it follows).
        look_for: the Explain page's "what to look for" paragraph (markdown).
        options: its options, in the order of the page's form and the saved result.json.
        run: (run with its model, checked options, progress, stop) -> its result.
        tables: result -> CSV-ready tables by file stem ("paths_summary").
        figures: (results by run label, residual=, depth=, classes=) -> figures by file stem.
        figure_tables: figure stem -> the table whose rows its download holds.
        caption: (figure stem, run label, result, options) -> what that run's part of the figure measured.
        parts: result -> its dataclass parts by name, saved as ``<part>.<table>.csv`` and result.json.
        part_type: the dataclass each part is read back as.
        rebuild: (parts read back, result.json) -> the result; None: the single part is the result.
        extra: result -> what result.json keeps beside the parts.
        notes: result -> lines worth saying beside the figures (a part that was skipped, and why).
        verdict: result -> what it shows, in a few sentences the CLI prints after the analysis ("": the figures'
            titles say it; on the pages, the figure's title is the only place it is said).
        shows: (figure stem, result) -> whether that run's result is drawn in that figure.
        left_out: said of a run whose result some figure does not draw (what to run to draw it there).
        needs_residual: why a plain net cannot be measured ("" when it can).
        imported: the option that names the user's images, with which an imported run (weights without a
            dataset) can be measured ("": imported runs are refused).
        twin: the CLI's --twin and the Explain page also measure the run's twin and draw both together.
    """

    name: str
    title: str
    summary: str
    look_for: str
    options: tuple[Option, ...]
    run: Callable[..., Any]
    tables: Callable[[Any], dict[str, pd.DataFrame]]
    figures: Figures
    figure_tables: Mapping[str, str]
    caption: Callable[[str, str, Any, Mapping[str, Any]], str]
    part_type: type
    parts: Callable[[Any], dict[str, Any]] | None = None
    rebuild: Callable[[dict[str, Any], Mapping[str, Any]], Any] | None = None
    extra: Callable[[Any], dict[str, Any]] = field(default=lambda result: {})
    notes: Callable[[Any], list[str]] = field(default=lambda result: [])
    verdict: Callable[[Any], str] = field(default=lambda result: "")
    shows: Callable[[str, Any], bool] = field(default=lambda stem, result: True)
    left_out: str = ""
    needs_residual: str = ""
    imported: str = ""
    twin: bool = True

    @property
    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def split(self, result: Any) -> dict[str, Any]:
        """The result's parts by name (a part may be None: not measured)."""
        return self.parts(result) if self.parts is not None else {self.name: result}


LENSES: dict[str, Lens] = {}


def register(lens: Lens) -> Lens:
    """Add a lens to the registry (the CLI, the Explain page and the report find it there), and to the analysis
    child's tasks (`reports.tasks`): measured by `analyse`, saved by `save` into `lens_folder`."""
    LENSES[lens.name] = lens
    name = lens.name
    tasks.register(tasks.Task(
        name=name, title=lens.title, options=lens.options,
        run=lambda run, options, progress, stop: analyse(name, run, options, progress=progress, stop=stop),
        save=lambda run_path, result, options: save(run_path, name, result, options),
        folder=lambda run_path, options: lens_folder(run_path, name)))
    return lens


def _lens(name: str) -> Lens:
    if name not in LENSES:
        raise ValueError(f"unknown lens {name!r}; choose one of {', '.join(LENSES)}")
    return LENSES[name]


def check_options(lens: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The lens's options with defaults filled in, each checked against its ceiling (one-line ValueError)."""
    return _check_options(_lens(lens).options, options, lens)


def refusal(lens: str, *, run_id: str, imported: bool, spec: Any, options: Mapping[str, Any] | None = None
            ) -> str | None:
    """Why `lens` cannot measure a run, in one line, or None: an imported run has no dataset (a lens that takes
    one needs its `Lens.imported` option, the user's images, given), and a lens with `needs_residual` cannot
    measure a plain net. The one rule every caller asks."""
    entry = _lens(lens)
    if imported and not entry.imported:
        return (f"run {run_id} was imported from a checkpoint and has no dataset to measure on; "
                f"{entry.title.lower()} is not supported for imported runs yet")
    if imported and not (options or {}).get(entry.imported):
        option = next(o for o in entry.options if o.name == entry.imported)
        return (f"run {run_id} was imported from a checkpoint and has no dataset: give your own images "
                f"(--{option.name}, on a page \"{option.label}\")")
    if entry.needs_residual and not spec.residual:
        return f"{spec.name} is a plain net (no shortcuts): {entry.needs_residual}; pick a residual net"
    return None


def check_run(lens: str, run: Run, options: Mapping[str, Any] | None = None) -> None:
    """Raise `refusal`'s one-line ValueError when `lens` cannot measure `run` (with these options)."""
    reason = refusal(lens, run_id=run.id, imported=run.imported, spec=run.spec, options=options)
    if reason:
        raise ValueError(reason)


def analyse(lens: str, run: Run, options: Mapping[str, Any] | None = None, *, progress: Progress | None = None,
            stop: threading.Event | None = None) -> Result:
    """Run one lens on a run loaded with its model.

    Args:
        lens: a key of `LENSES`.
        run: from `load_run(..., with_model=True)`.
        options: the lens's options (`Lens.options` lists them); missing ones take the defaults.
        progress: called with (done, total) as the work advances.
        stop: set it to end the analysis early (`AnalysisStopped` is raised).

    Raises:
        ValueError: an unknown lens or option, a value past its ceiling, a run without weights, or
            a lens that does not apply (`refusal`), in one line.
        AnalysisStopped: ``stop`` was set.
    """
    opts = check_options(lens, options)
    check_run(lens, run, opts)
    if run.model is None:
        raise ValueError(f"run {run.id} has no saved weights (model.pt) to analyse")
    return LENSES[lens].run(run, opts, progress, stop)


def tables(lens: str, result: Result) -> dict[str, pd.DataFrame]:
    """CSV-ready tables of one result, by file stem (e.g. "lesion_single", "paths_summary")."""
    return _lens(lens).tables(result)


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
    return _lens(lens).figures(results, residual=residual, depth=depth, classes=classes)


# --- the three lenses -------------------------------------------------------------------------------

def _seed(label: str = "Seed", what: str = "seeds the random draws") -> Option:
    return Option("seed", int, 0, 0, MAX_SEED, what, label)


def _draws_text(count: Any) -> str:
    return f"{count} random draw{'' if count == 1 else 's'}"


_LESION_KINDS = ("single", "k_lesions", "reorder")
_LESION_FIGURES = (("single", "lesion_single", plot_single_lesions), ("k_lesions", "lesion_k", plot_k_lesions),
                   ("reorder", "lesion_reorder", plot_reorderings))


def _lesion_run(run: Run, opts: Mapping[str, Any], progress: Progress | None,
                stop: threading.Event | None) -> LesionStudy:
    return lesion_study(run, images=opts["images"], draws=opts["draws"], seed=opts["seed"], progress=progress,
                        stop=stop)


def _lesion_figures(results: Mapping[str, LesionStudy], *, residual: Mapping[str, bool], **_: Any
                    ) -> dict[str, go.Figure]:
    out = {}
    for kind, stem, plot in _LESION_FIGURES:
        parts = {label: getattr(study, kind) for label, study in results.items()}
        if any(p is not None for p in parts.values()):
            out[stem] = plot(parts, residual=residual)
    return out


def _lesion_caption(stem: str, label: str, result: LesionStudy, options: Mapping[str, Any]) -> str:
    part = getattr(result, next(kind for kind, s, _ in _LESION_FIGURES if s == stem))
    if part is None:
        return f"{label}: not measured."
    deletable = int(part.rows["deletable"].sum()) if stem == "lesion_single" else part.max_k
    kept = part.num_units - deletable
    single = (f"each of its {part.num_units} units deleted in turn" if not kept else
              f"each of its {deletable} deletable units deleted in turn ({kept} of {part.num_units} change the "
              "shape and cannot be)")
    what = {"lesion_single": single,
            "lesion_k": f"k = 1 to {part.max_k} units deleted at once, {_draws_text(options.get('draws', '?'))} per k",
            "lesion_reorder": f"1 to {part.max_k} swaps of units within a stage, "
                              f"{_draws_text(options.get('draws', '?'))} per count"}[stem]
    return (f"{label}: {what}; {part.num_images:,} held-out images, on which the intact net's error is "
            f"{part.baseline_error:.1%}.")


register(Lens(
    name="lesion", title="Lesions",
    summary="delete each unit, then k random units, and swap units at test time; held-out error "
            "(Veit et al. 2016, Figs. 3-5)",
    look_for="**What to look for.** Veit, Wilber & Belongie (2016) found that deleting one unit from a trained "
             "residual net at test time barely changed its error, except at the few units where the shape changes, "
             "while deleting one layer of a plain net (VGG) left it at chance; that the error grew smoothly as more "
             "units were deleted; and that swapping units hurt only a little. They read this as a residual net "
             "behaving like an ensemble of many paths rather than one deep chain. The figures below show what this "
             "run (and its twin) did.",
    options=(Option("images", int, 1000, 1, MAX_LESION_IMAGES, "held-out images; each lesioned or reordered net is "
                    "evaluated on them", "Held-out images", step=16),
             Option("draws", int, 5, 1, MAX_LESION_DRAWS, "random unit sets deleted (or swapped) for each k",
                    "Random draws per k"),
             _seed()),
    run=_lesion_run,
    tables=lambda study: {f"lesion_{kind}": part.rows for kind in _LESION_KINDS
                          if (part := getattr(study, kind)) is not None},
    figures=_lesion_figures,
    figure_tables={"lesion_single": "lesion_single", "lesion_k": "lesion_k_lesions",
                   "lesion_reorder": "lesion_reorder"},
    caption=_lesion_caption,
    part_type=LesionResult,
    parts=lambda study: {kind: getattr(study, kind) for kind in _LESION_KINDS},
    rebuild=lambda parts, info: LesionStudy(label=info["label"], notes=list(info["notes"]),
                                            **{k: parts.get(k) for k in _LESION_KINDS}),
    extra=lambda study: {"label": study.label, "notes": list(study.notes)},
    notes=lambda study: list(study.notes),
))


def _paths_run(run: Run, opts: Mapping[str, Any], progress: Progress | None,
               stop: threading.Event | None) -> PathResult:
    """`path_gradients` on the run's first `images` training images, spread over the classes."""
    sample = run.sample("train", opts["images"])
    return path_gradients(run.model, sample.images, sample.labels, draws=opts["draws"], seed=opts["seed"],
                          batch_size=min(opts["images"], 64), progress=progress, stop=stop)


def _paths_figures(results: Mapping[str, PathResult], *, residual: Mapping[str, bool],
                   depth: Mapping[str, int] | None = None, **_: Any) -> dict[str, go.Figure]:
    shown = {label: r for label, r in results.items() if residual.get(label, True)}
    return {"paths": plot_path_gradients(shown, residual=residual, depth=depth)} if shown else {}


register(Lens(
    name="paths", title="Paths",
    summary="gradient carried by each path length (Veit et al. 2016, Fig. 6)",
    look_for="**What to look for.** A residual net with n units has 2^n paths, whose lengths follow a binomial "
             "distribution around n/2. Veit, Wilber & Belongie (2016, Fig. 6) found that almost all of the gradient "
             "in training came from short paths: in their 110-layer net, paths through 5 to 17 residual branches. "
             "Here each path length k is measured by letting the gradient through k randomly chosen branches only. "
             "A plain net has a single path, so this lens applies to residual runs.",
    options=(Option("images", int, 64, 1, MAX_PATH_IMAGES, "training images, spread over the classes; the gradient "
                    "is measured on them", "Training images", step=16),
             Option("draws", int, 10, 1, MAX_PATH_DRAWS, "random sets of k residual branches let through for each "
                    "length k", "Random draws per path length"),
             _seed()),
    run=_paths_run,
    tables=lambda result: {"paths": result.rows, "paths_summary": result.summary},
    figures=_paths_figures,
    figure_tables={"paths": "paths_summary"},
    caption=lambda stem, label, result, options: (
        f"{label}: {result.images:,} training images, {_draws_text(result.draws)} per path length, "
        f"{result.backward_passes:,} backward passes over {result.num_units} units."),
    part_type=PathResult,
    needs_residual="it has a single path, so there is no path-length distribution to measure",
))


def _landscape_run(run: Run, opts: Mapping[str, Any], progress: Progress | None,
                   stop: threading.Event | None) -> LandscapeResult:
    return run_landscape(run, dims=opts["dims"], grid=opts["grid"], span=opts["span"], images=opts["images"],
                         seed=opts["seed"], progress=progress, stop=stop)


def _landscape_figures(results: Mapping[str, LandscapeResult], *, residual: Mapping[str, bool],
                       depth: Mapping[str, int] | None = None, classes: Mapping[str, int] | None = None
                       ) -> dict[str, go.Figure]:
    out = {"landscape_1d": plot_landscape_1d(results, residual=residual, depth=depth, classes=classes)}
    two_d = {label: r for label, r in results.items() if r.dims == 2}
    if two_d:
        out["landscape_contours"] = plot_landscape_contours(two_d, residual=residual, classes=classes)
        out["landscape_surfaces"] = plot_landscape_surfaces(two_d, residual=residual, classes=classes)
    return out


def _landscape_caption(stem: str, label: str, result: LandscapeResult, options: Mapping[str, Any]) -> str:
    points = f"{result.grid} x {result.grid}" if result.dims == 2 else f"{result.grid}"
    return (f"{label}: loss and accuracy at {points} points over [-{result.span:g}, {result.span:g}], direction "
            f"seed {result.seed}; {result.images:,} training images.")


register(Lens(
    name="landscape", title="Loss landscape",
    summary="loss around the trained weights along filter-normalised random directions (Li et al. 2018)",
    look_for="**What to look for.** Li et al. (2018, Fig. 5) found that, along filter-normalised random "
             "directions, the loss around a deep plain net's trained weights became chaotic and non-convex as "
             "depth grew, while with shortcuts it stayed smooth and nearly convex around the minimum. With 2 "
             "directions, the net and its twin are drawn side by side on the same colour scale.",
    options=(Option("dims", int, 1, 1, 2, "1: a line through the trained weights; 2: a plane (contours and a 3-D "
                    "surface)", "Directions", choices=(1, 2)),
             Option("grid", int, 21, 3, MAX_LANDSCAPE_GRID, "points per direction, odd; 2 directions evaluate "
                    "grid x grid", "Points per direction (odd)", step=2, odd=True,
                    odd_why="so that the trained weights are a grid point"),
             Option("span", float, 1.0, 0.0, MAX_LANDSCAPE_SPAN, "the grid covers [-span, span] along each "
                    "direction (Li et al. plot [-1, 1])", "Span", step=0.25, above_low=True, fmt="%.2f"),
             Option("images", int, 512, 1, MAX_LANDSCAPE_IMAGES, "training images, evaluated at every grid point",
                    "Training images", step=64),
             _seed("Seed (directions)", "seeds the random directions")),
    run=_landscape_run,
    tables=lambda result: {"landscape": result.rows},
    figures=_landscape_figures,
    figure_tables={"landscape_1d": "landscape", "landscape_contours": "landscape", "landscape_surfaces": "landscape"},
    caption=_landscape_caption,
    part_type=LandscapeResult,
    notes=lambda result: [result.note] if result.note else [],
    shows=lambda stem, result: stem == "landscape_1d" or result.dims == 2,
    left_out="only a 1-D landscape is saved for it, so the 2-D figures leave it out: run 2 directions to draw it there",
))


def _profile_run(run: Run, opts: Mapping[str, Any], progress: Progress | None,
                 stop: threading.Event | None) -> UnitProfile:
    """`profile_units` over the photos in ``opts["photos"]`` or, without photos, ``opts["samples"]`` held-out images
    of the run's data, spread over the classes."""
    if opts["photos"]:
        files, total = image_files(opts["photos"], MAX_USER_IMAGES)
        inputs = images_inputs(run, [(f.name, f) for f in files], total=total)
    else:  # an imported run without photos was refused before (`refusal`)
        inputs = dataset_inputs(run, opts["samples"])
    profile = profile_units(run.model, inputs.images, lesions=opts["lesions"], progress=progress, stop=stop)
    profile.note = inputs.note
    return profile


def _profile_figures(results: Mapping[str, UnitProfile], **_: Any) -> dict[str, go.Figure]:
    """One figure per run (a profile is a run's own, never drawn over another's): "profile" for one run; for
    several (a report), "profile_<model>", numbered where models repeat."""
    if len(results) == 1:
        return {"profile": plot_unit_profile(next(iter(results.values())))}
    out: dict[str, go.Figure] = {}
    for result in results.values():
        stem, n = f"profile_{result.model}", 2
        while stem in out:
            stem, n = f"profile_{result.model}_{n}", n + 1
        out[stem] = plot_unit_profile(result)
    return out


def _profile_caption(stem: str, label: str, result: UnitProfile, options: Mapping[str, Any]) -> str:
    lesions = "each unit also deleted alone" if result.lesions else "no lesions"
    return f"{label}: {result.images:,} images in eval mode, {lesions}."


register(Lens(
    name="profile", title="Unit profile",
    summary="look inside a net without training: residual ratios, responses and single-unit lesions per unit, "
            "in eval mode over your photos (or a trained run's held-out images)",
    look_for="**What to look for.** Per residual unit, in eval mode: the **residual ratio** ||F(x)||/||x|| (how much "
             "the unit's branch changes what its shortcut carries), the **response std** of its output, and what "
             "**deleting that unit alone** does (the share of images whose top class changes). Veit et al. (2016) "
             "and Greff et al. (2017) read a ratio that falls through a stage as later units refining what earlier "
             "ones built. The figure's title says what this net shows, each comparison only past its stated factor.",
    options=(Option("photos", str, "", 0, MAX_PATH_CHARS, "a folder of your own images (the first "
                    f"{MAX_USER_IMAGES:,}, by name); none: the run's held-out images", "Folder of images",
                    old_flag="--images"),
             Option("samples", int, 64, 1, MAX_USER_IMAGES, "held-out images of a trained run's data, spread over "
                    "the classes, when no photos are given", "Held-out images", step=16, unless="photos"),
             Option("lesions", bool, True, 0, 1, "also delete each unit alone (about units/2 + 1 forward passes "
                    "instead of one)", "Single-unit lesions")),
    run=_profile_run,
    tables=lambda result: {"profile": result.rows},
    figures=_profile_figures,
    figure_tables={"profile": "profile"},
    caption=_profile_caption,
    part_type=UnitProfile,
    notes=lambda result: [result.note] if result.note else [],
    verdict=lambda result: result.summary(),
    imported="photos",
    twin=False,
))


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
    entry = _lens(lens)
    folder = lens_folder(run_path, lens)
    folder.mkdir(parents=True, exist_ok=True)
    parts = entry.split(result)
    info: dict[str, Any] = {"lens": lens, "options": dict(options), "parts": {}, **entry.extra(result)}
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
    entry = _lens(lens)
    folder = lens_folder(run_path, lens)
    if not inside_run(run_path, FOLDER, lens, "result.json").is_file():
        return None
    try:
        info = json.loads((folder / "result.json").read_text())
        parts = {}
        for name, part in info["parts"].items():  # names from result.json: each file must stay in the run
            frames = {t: pd.read_csv(inside_run(run_path, FOLDER, lens, f"{name}.{t}.csv")) for t in part["tables"]}
            parts[name] = _join(entry.part_type, frames, part["meta"])
        result = entry.rebuild(parts, info) if entry.rebuild is not None else parts[lens]
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
