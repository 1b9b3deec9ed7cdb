"""Commands that analyse runs: `attribute`, every registered lens (`lesion`, `paths`, `landscape`, `profile`),
`report`."""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ..formats import FIGURE_FORMATS, check_formats
from ..limits import MAX_USER_IMAGES
from .exits import EXIT_INTERRUPTED, EXIT_OK, CliError
from .text import Counter, terminal_safe
from .train import stop_on_signals

GRID_ROWS = 32  # images drawn in an attribution PNG grid (all of them go to the npz and the scores)
TOP_LINES = 8  # images whose top predictions `attribute` prints (predictions.csv holds every image's)


def _resolve_run_path(run: str, runs_root: str) -> Path:
    from ..runs import run_dir

    path = Path(run)
    if (path / "run.json").is_file():
        return path
    if path.is_dir():
        raise CliError(f"{path} is not a run folder (no run.json in it)")
    if path.exists():
        raise CliError(f"{path} is a file; give a run folder or a run id")
    if os.sep in run or (os.altsep and os.altsep in run):
        raise CliError(f"no run folder {path}")
    candidate = run_dir(runs_root, run)  # validates the id
    if (candidate / "run.json").is_file():
        return candidate
    raise CliError(f"no run {run!r}: give a run folder or an id under {runs_root}/")


def cmd_attribute(args: argparse.Namespace) -> int:
    import numpy as np

    from ..analysis.attribution import IG_MAX_STEPS, IG_TOLERANCE
    from ..analysis.study import (
        dataset_inputs,
        image_files,
        images_inputs,
        percent,
        run_study,
        top_line,
        top_predictions,
        upload_inputs,
    )
    from ..data import denormalize
    from ..devices import resolve_device
    from ..export import check_output_dir, rows_to_csv, write_atomic
    from ..plots import render_attribution_png
    from ..runs import load_run

    if args.photos and args.samples is not None:
        raise CliError("give --samples or --photos, not both")
    if args.steps is not None and not 1 <= args.steps <= IG_MAX_STEPS:  # the task's 0 ("adaptive") is no flag here
        raise CliError(f"--steps must be from 1 to {IG_MAX_STEPS} (Integrated Gradients steps; leave it out for "
                       f"adaptive steps), got {args.steps}")
    import warnings

    from ..reports import tasks

    # captum announces its DeepLift hooks on every call; the CLI's user cannot act on it
    warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
    try:  # the bounds the app's attribution task checks (`reports.attribute`), before any work
        checked = tasks.check_options("attribute", {
            "methods": args.methods, "baseline": args.baseline, "steps": args.steps or 0, "layer": args.layer or "",
            "sanity": not args.no_sanity})
    except ValueError as err:
        raise CliError(str(err)) from None
    methods = checked["methods"].split(",")
    device = resolve_device(args.device)
    path = _resolve_run_path(args.run, args.runs)
    if not args.photos:
        bare = load_run(path, with_model=False)  # before the weights are read: an imported net can be large
        if bare.imported:
            raise CliError(f"run {bare.id} was imported from a checkpoint and has no dataset: give --photos PATH")
    out = check_output_dir(args.out)  # before the work, not after it
    run = load_run(path, device=str(device))
    if run.model is None:
        raise CliError(f"run {run.id} has no saved model yet")
    mean, std, _ = run.normalisation  # a run that never started (no data section) stops here, with a message
    classes = run.classes
    target = None
    if args.target is not None:
        target = classes.index(args.target) if args.target in classes else _class_index(args.target, len(classes))
    if args.photos and Path(args.photos).expanduser().is_dir():
        files, total = image_files(args.photos, MAX_USER_IMAGES)
        inputs = images_inputs(run, [(f.name, f) for f in files], total=total)
    elif args.photos:
        inputs = upload_inputs(run, Path(args.photos), Path(args.photos).name)
    else:
        inputs = dataset_inputs(run, 8 if args.samples is None else args.samples)
    study = run_study(run.model, inputs, methods, target=target, layer=args.layer, sanity=not args.no_sanity,
                      steps=args.steps, baseline=args.baseline)

    arrays = {"inputs": inputs.images.numpy(), "targets": next(iter(study.results.values())).targets.numpy(),
              "predicted": study.predicted.numpy()}
    for method, result in study.results.items():
        arrays[method] = result.maps.numpy()
        if result.delta is not None:
            arrays[f"{method}_delta"] = result.delta.numpy()
        if result.steps is not None:
            arrays[f"{method}_steps"] = result.steps.numpy()
        if method == "integrated_gradients" and result.baselines is not None:
            arrays["baselines"] = result.baselines.numpy()
    if inputs.masks is not None:
        arrays["masks"] = inputs.masks.numpy()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    paths = [write_atomic(out / "attributions.npz", buffer.getvalue())]
    shown = denormalize(inputs.images[:GRID_ROWS], mean, std)
    titles = [f"{name}: pred {classes[int(p)]} {percent(float(c))}"
              + (f" (true {classes[int(t)]})" if inputs.labels is not None else "")
              for name, p, c, t in zip(inputs.names[:GRID_ROWS], study.predicted, study.confidence,
                                       inputs.labels if inputs.labels is not None else study.predicted)]
    for method, result in study.results.items():
        masks = inputs.masks[:GRID_ROWS] if inputs.masks is not None else None
        png = render_attribution_png(shown, result.heatmap("absolute")[:GRID_ROWS], row_titles=titles, masks=masks,
                                     title=f"{run.spec.name}: {method}" + (f" at {result.layer}" if result.layer else ""))
        paths.append(write_atomic(out / f"{method}.png", png))
    paths.append(write_atomic(out / "scores.csv", rows_to_csv(study.scores)))
    paths.append(write_atomic(out / "predictions.csv", rows_to_csv(top_predictions(study, classes))))
    for i, name in enumerate(inputs.names[:TOP_LINES]):
        print(terminal_safe(f"{name}: {top_line(study, i, classes)}"), file=sys.stderr)
    if len(inputs.names) > TOP_LINES:
        print(f"(predictions.csv holds the top {study.top_classes.shape[1]} of all {len(inputs.names)} images)",
              file=sys.stderr)
    if inputs.note:
        print(f"note: {inputs.note}", file=sys.stderr)
    if len(inputs.names) > GRID_ROWS:
        print(f"note: the PNG grids show the first {GRID_ROWS} of {len(inputs.names)} images; "
              "attributions.npz and scores.csv hold all of them", file=sys.stderr)
    for method, result in study.results.items():
        if result.note:
            print(f"note: {method}: {result.note}", file=sys.stderr)
        change = result.score_change
        if change is not None and bool((change < 0).any()):
            print(f"note: {method}: for {int((change < 0).sum())} of {len(change)} images the {args.baseline} baseline "
                  "scores higher than the image (f(x) - f(baseline) < 0), so their maps sum to a negative number; "
                  "try --baseline black or blur", file=sys.stderr)
        if result.steps is not None and result.gap is not None and bool((result.gap > IG_TOLERANCE).any()):
            left = result.gap > IG_TOLERANCE
            print(f"note: {method}: {int(left.sum())} of {len(left)} maps kept a completeness gap above "
                  f"{IG_TOLERANCE:.0%} (largest {float(result.gap.max()):.1%}) at {int(result.steps.max())} steps",
                  file=sys.stderr)
    for p in paths:
        print(p)
    return EXIT_OK


def _class_index(text: str, n: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"--target {text!r} is neither a class name nor a class number") from None
    if not 0 <= value < n:
        raise CliError(f"--target {value} is outside 0..{n - 1}")
    return value


def _explain_options(args: argparse.Namespace) -> dict[str, Any]:
    from ..reports.explain import LENSES

    options = LENSES[args.lens].options
    given = {o.name: getattr(args, o.name) for o in options if getattr(args, o.name, None) is not None}
    for o in options:
        if o.unless and o.name in given and given.get(o.unless):
            raise CliError(f"give --{o.name} or --{o.unless}, not both (--{o.name} is used only without --{o.unless})")
    return given


def cmd_explain(args: argparse.Namespace) -> int:
    """Every lens (`lesion`, `paths`, `landscape`, `profile`): one lens on a run (and its twin, where the lens
    draws one), CSV and figures into --out, the result kept in the run folder."""
    from ..analysis.common import AnalysisStopped
    from ..devices import resolve_device
    from ..export import ExportError, check_output_dir, write_atomic, write_figure
    from ..reports.explain import LENSES, analyse, check_options, check_run, figures, lens_folder, refusal, save, tables
    from ..runs import find_twin, list_runs, load_run

    lens = args.lens
    options = check_options(lens, _explain_options(args))  # every bound, before any work
    formats = check_formats(args.format.split(","))
    device = resolve_device(args.device)
    path = Path(_resolve_run_path(args.run, args.runs))
    bare = load_run(path, with_model=False)
    check_run(lens, bare, options)  # e.g. an imported run: refused before its weights are read or --out is made
    out = check_output_dir(args.out)
    paths = [path]
    if getattr(args, "twin", False):
        rows = list_runs(path.parent)
        twin = find_twin(rows, bare.id)
        if twin is None:
            raise CliError(f"no twin of {path.name} in {path.parent} (the same net with shortcuts added or removed, "
                           "trained with the same settings); train it or drop --twin")
        paths.append(Path(next(r["path"] for r in rows if r["id"] == twin)))
    for p in paths:
        lens_folder(p, lens)  # a link out of the run folder is refused before any work, and nothing goes through it
    runs = [load_run(p, device=str(device)) for p in paths]
    for run in runs:
        if run.model is None:
            raise CliError(f"run {run.id} has no saved weights (model.pt) to analyse")
    reason = refusal(lens, run_id=runs[0].id, imported=runs[0].imported, spec=runs[0].spec, options=options)
    if reason:
        raise CliError(reason)
    stop = threading.Event()
    restore = stop_on_signals(stop)
    results: dict[str, Any] = {}
    written: list[Path] = []
    try:
        for run in runs:
            reason = refusal(lens, run_id=run.id, imported=run.imported, spec=run.spec, options=options)
            if reason:  # the twin: the run itself was checked above
                print(f"note: {run.label} left out: {reason}", file=sys.stderr)
                continue
            try:
                result = analyse(lens, run, options, progress=Counter(f"{lens} {run.label}"), stop=stop)
            except AnalysisStopped:
                print(f"stopped: {lens} of {run.label} did not finish; nothing was written for it", file=sys.stderr)
                return EXIT_INTERRUPTED
            results[run.label] = result
            for note in LENSES[lens].notes(result):
                print(f"note: {run.label}: {note}", file=sys.stderr)
            verdict = LENSES[lens].verdict(result)
            if verdict:
                print(verdict, file=sys.stderr)
            try:
                save(run.path, lens, result, options)  # for `report` and the app's Explain page
            except OSError as err:
                print(f"note: could not keep the result in {run.path} ({err.strerror or err}); "
                      f"{args.out} has it", file=sys.stderr)
            prefix = f"{run.spec.name}_{run.id[-4:]}"
            for stem, table in tables(lens, result).items():
                written.append(write_atomic(out / f"{prefix}_{stem}.csv", table.to_csv(index=False)))
    finally:
        restore()
    residual = {run.label: run.spec.residual for run in runs}
    try:
        for stem, fig in figures(lens, results, residual=residual, depth={run.label: run.spec.depth for run in runs},
                                 classes={run.label: run.spec.num_classes for run in runs}).items():
            if not LENSES[lens].twin:  # a figure of one run is named by it, as its tables are
                stem = f"{runs[0].spec.name}_{runs[0].id[-4:]}_{stem}"
            written += write_figure(fig, out / stem, [f for f in formats if f in FIGURE_FORMATS])
    except ExportError as err:
        raise CliError(str(err)) from None
    print(f"{LENSES[lens].title}: {', '.join(results)}", file=sys.stderr)
    for p in written:
        print(p)
    print(out)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Comparison figures, tables and an offline index.html for one or more runs."""
    from ..export import ExportError, check_output_dir
    from ..reports.bundle import check_formats, write_report_files

    paths = [_resolve_run_path(run, args.runs) for run in args.run]
    formats = check_formats(args.format.split(","))  # refused before the output folder is made
    check_output_dir(args.out)
    try:
        written = write_report_files(paths, args.out, formats)
    except ExportError as err:
        raise CliError(str(err)) from None
    for path in written:
        print(path)
    return EXIT_OK
