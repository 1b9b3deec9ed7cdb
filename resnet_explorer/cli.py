"""Command line: the app's jobs without a browser.

    python -m resnet_explorer list
    python -m resnet_explorer info resnet56 [--plain] [--export DIR --format html,png,csv]
    python -m resnet_explorer train --model resnet56 --steps 250
    torchrun --standalone --nproc_per_node 2 -m resnet_explorer train --model resnet56 --steps 250
    python -m resnet_explorer degradation
    python -m resnet_explorer attribute RUN --methods saliency,gradcam [--photos PATH] --out DIR
    python -m resnet_explorer import-weights resnet50.pth --model resnet50 [--classes names.txt]
    python -m resnet_explorer import-weights --list | --model resnet50 --download [IMAGENET1K_V1]

Words: --runs is always the runs folder (written by train, degradation and import-weights; where run
ids are looked up), --out an output folder for files that are not runs, --photos your own image file or
folder, --samples and --images counts of images. Old spellings still accepted for one release, with a
note: --out for the runs folder (train, degradation, import-weights), attribute --image, profile --images.

Exit codes: 0 done; 1 failed; 2 bad arguments or config (one line on stderr, no traceback);
3 diverged; 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .formats import FIGURE_FORMATS, INFO_FORMATS, REPORT_FORMATS, check_formats
from .jobs.stops import ended
from .limits import MAX_USER_IMAGES

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
STATUS_EXIT = {"done": EXIT_OK, "stopped": EXIT_INTERRUPTED, "diverged": EXIT_DIVERGED, "failed": EXIT_FAILED}


GRID_ROWS = 32  # images drawn in an attribution PNG grid (all of them go to the npz and the scores)
TOP_LINES = 8  # images whose top predictions `attribute` prints (predictions.csv holds every image's)


DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)"
OUT_OF_MEMORY = "out of memory; ask for a smaller model, batch or dataset, or fewer images"


class CliError(Exception):
    """A user mistake: printed as one line, exit code 2."""


RUNS_NOTE = "--out for the runs folder is now --runs; --out will mean an output folder in the next release"
PHOTOS_NOTE = "{old} is now --photos (your photos); {old} will be gone from `{command}` in the next release"


class _Spelling(argparse.Action):
    """Store a value, and record which spelling of the flag gave it (see `_renamed`)."""

    def __init__(self, option_strings, dest, new: str | None = None, note: str | None = None, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.note = new or option_strings[0], note

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        used = (self.dest, self.option_strings[0], self.new, self.note)
        namespace._spellings = (*getattr(namespace, "_spellings", ()), used)


def _renamed(p: argparse.ArgumentParser, new: str, old: str, note: str, **kwargs: Any) -> None:
    """Add flag `new` (argparse's `kwargs`) and `old`, its spelling until the next release, into one dest.

    `old` behaves exactly as `new` apart from `note`, printed on stderr as one line; both at once
    are refused (`_check_spellings`, before the command runs).
    """
    action = p.add_argument(new, action=_Spelling, **kwargs)
    p.add_argument(old, dest=action.dest, action=_Spelling, new=new, note=note, type=kwargs.get("type"),
                   metavar=kwargs.get("metavar"), default=argparse.SUPPRESS,
                   help=f"the old spelling of {new}, accepted until the next release")


def _check_spellings(args: argparse.Namespace) -> None:
    """Refuse a renamed flag given in both spellings; print the note of each old spelling used."""
    used = getattr(args, "_spellings", ())
    for dest, flag, new, note in used:
        if note and any(d == dest and n is None for d, _, _, n in used):
            raise CliError(f"give {new} or {flag} (its old spelling), not both")
    if os.environ.get("RANK", "0") in ("", "0"):  # under torchrun, rank 0 alone says it
        for note in dict.fromkeys(n for *_, n in used if n):
            print(f"note: {note}", file=sys.stderr)


# Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts ANSI sequences, CR
# and LF break the line), the line and paragraph separators, and the bidirectional overrides and
# isolates that can make a name read in another order than its bytes.
_TERMINAL_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: object) -> str:
    """`text` as one printable line: each character a terminal would act on written as \\xNN or \\uNNNN.

    For everything printed that came from outside the program: file and folder names, a run.json's
    fields, an error's message that quotes them.
    """
    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _TERMINAL_UNSAFE.sub(escape, str(text))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(empty)"
    columns = list(columns or rows[0])

    def fmt(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else terminal_safe(v)

    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) if v[:1].isdigit() else v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers wants comma-separated unit counts, got {text!r}") from None


def _spec_from_args(args: argparse.Namespace):
    from .models import ModelSpec

    overrides: dict[str, Any] = {}
    for field, value in (
        ("shortcut", args.shortcut), ("width_multiplier", args.width_multiplier), ("groups", args.groups),
        ("width_per_group", args.width_per_group), ("num_classes", args.num_classes),
        ("in_channels", args.in_channels),
    ):
        if value is not None:
            overrides[field] = value
    if args.preact:
        overrides["pre_activation"] = True
    if args.zero_init:
        if args.plain:
            raise CliError("--zero-init needs shortcuts (a plain net with zeroed branches outputs a constant): "
                           "drop --plain or --zero-init")
        overrides["zero_init_residual"] = True
    if args.model:
        if args.stem or args.block or args.layers:
            raise CliError("give either a model name or --stem/--block/--layers, not both")
        spec = ModelSpec.from_name(args.model)
        spec = spec.replace(**overrides) if overrides else spec
    else:
        if not (args.stem and args.layers):
            raise CliError("give a model name (see `list`) or compose one with --stem, --block and --layers")
        spec = ModelSpec(stem=args.stem, block=args.block or "basic", layers=args.layers, **overrides)
    return spec.plain() if args.plain else spec


def _confirm_large(message: str, yes: bool) -> None:
    if yes:
        return
    if sys.stdin.isatty():
        answer = input(f"{message}. Build it? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
        raise CliError("not built")
    raise CliError(f"{message} (pass --yes)")


def cmd_list(args: argparse.Namespace) -> int:
    from .models import VARIANTS, count_parameters

    rows = []
    for v in VARIANTS.values():
        spec = v.spec
        rows.append({
            "name": v.name, "family": spec.stem, "unit": spec.block + (" pre-act" if spec.pre_activation else ""),
            "depth": spec.depth, "params": count_parameters(spec),
            "paper": v.paper_params, "paper_error_%": "" if v.paper_error is None else v.paper_error,
        })
    print(_table(rows))
    print("\nAny depth of the CIFAR pattern works too: [cifar_][preact_](resnet|plain)<D>[_basic|_bottleneck],"
          " basic D = 6n+2, bottleneck D = 9n+2 (e.g. resnet74, plain38, preact_resnet245).")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .devices import resolve_device
    from .export import ExportError, check_output_dir, rows_to_csv, write_atomic, write_figure
    from .limits import MAX_INPUT_SIZE, check_int
    from .models import build_model, large_model_message
    from .models.graph import build_graph, layer_rows
    from .plots import plot_block_graph

    spec = _spec_from_args(args)
    device = resolve_device(args.device)
    if args.summary_depth < 0:
        raise CliError(f"--summary-depth must be 0 (no table) or more, got {args.summary_depth}")
    if args.input_size is not None:
        check_int("--input-size", args.input_size, 8, MAX_INPUT_SIZE)
    message = large_model_message(spec)  # arithmetic, before anything is built; refuses past the ceiling
    if message:
        _confirm_large(message, args.yes)
    formats = check_formats(args.format, INFO_FORMATS, "export")
    out = check_output_dir(args.export) if args.export else None  # before the work, not after it
    graph = build_graph(spec, args.input_size)
    twin_spec = spec.plain() if spec.residual else spec.with_residual()
    twin = build_graph(twin_spec, graph.input_size)
    print(f"{spec.label}: {spec.depth} weighted layers, {spec.num_units} residual units, "
          f"{graph.total_params:,} parameters, {graph.total_macs:,} MACs at {graph.input_size}x{graph.input_size}")
    print(f"{twin_spec.label} (twin): {twin.total_params:,} parameters, {twin.total_macs:,} MACs\n")
    print(_table(graph.stage_rows()))
    if args.blocks:
        print()
        print(_table(graph.unit_rows()))

    model = build_model(spec, device=device, confirm_large=True)
    built = sum(p.numel() for p in model.parameters())
    if built != graph.total_params:  # the graph and the module must agree
        raise RuntimeError(f"parameter counts disagree: graph {graph.total_params}, module {built}")
    print(f"\nbuilt on {device}: {built:,} parameters")
    if args.summary_depth:
        print()
        print(_table(layer_rows(model, graph.input_size, device, depth=args.summary_depth)))

    if out is not None:
        figure_formats = [f for f in formats if f in FIGURE_FORMATS]
        try:
            paths = write_figure(plot_block_graph(graph), out / f"{spec.name}_graph", figure_formats)
        except ExportError as err:
            raise CliError(str(err)) from None
        if "csv" in formats:
            paths.append(write_atomic(out / f"{spec.name}_stages.csv", rows_to_csv(graph.stage_rows())))
            paths.append(write_atomic(out / f"{spec.name}_blocks.csv", rows_to_csv(graph.unit_rows())))
        for p in paths:
            print(p)
    return EXIT_OK


class Progress:
    """A one-line progress bar on stderr (redrawn on a terminal, every 10% otherwise)."""

    def __init__(self, label: str, stream=None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total, self.eval_acc, self.last_decile = 0, None, -1

    def __call__(self, event) -> None:
        if event.kind == "start":
            self.total = event.data.total_steps
            print(f"{self.label}: {self.total} steps on {event.data.device}", file=self.stream)
        elif event.kind == "eval":
            self.eval_acc = event.data["accuracy"]
        elif event.kind == "phase" and event.data.phase == "evaluating" and self.tty:
            d = event.data
            print(f"\r[evaluating {d.batch}/{d.batches}] step {event.step}/{self.total}" + " " * 20, end="",
                  file=self.stream, flush=True)
        elif event.kind == "step":
            d = event.data
            frac = event.step / max(1, self.total)
            bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
            line = (f"[{bar}] {event.step}/{self.total} loss {d['loss']:.3f} acc {d['accuracy']:.3f}"
                    + (f" | test acc {self.eval_acc:.3f}" if self.eval_acc is not None else "")
                    + f" | {d['seconds']:.0f} s")
            if self.tty:
                print("\r" + line, end="", file=self.stream, flush=True)
            elif int(frac * 10) > self.last_decile:
                self.last_decile = int(frac * 10)
                print(line, file=self.stream, flush=True)
        elif event.kind == "done":
            if self.tty:
                print(file=self.stream)
            acc = f", test accuracy {self.eval_acc:.3f}" if self.eval_acc is not None else ""
            print(f"{ended(event.data.status, event.data.message)}{acc} ({event.data.seconds:.1f} s)",
                  file=self.stream)


def _train_config(args: argparse.Namespace, world_size: int = 1):
    from .training import TrainConfig

    if args.steps is not None:
        budget = {"steps": args.steps}
    else:  # epochs when asked for, else the defaults' steps
        budget = {"epochs": args.epochs} if args.epochs is not None else {"steps": args.default_steps}
    return TrainConfig(
        dataset=args.dataset, data_root=args.data_root, download=args.download, train_size=args.train_size,
        test_size=args.test_size, image_size=args.image_size, batch_size=args.batch_size, optimizer=args.optimizer,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, decay_all=args.decay_all,
        schedule=args.schedule, warmup=args.warmup, label_smoothing=args.label_smoothing, augment=args.augment,
        seed=args.seed, device=args.device, probe_every=args.probe_every, log_every=args.log_every,
        eval_every=args.eval_every, eval_size=args.eval_size, world_size=world_size, **budget,
    )


def _stop_on_signals(stop: threading.Event, stream=None, second_interrupts: bool = True) -> Callable[[], None]:
    """Ctrl-C (or SIGTERM) sets `stop`: the run ends within a step or an evaluation batch and is kept.

    A second Ctrl-C raises KeyboardInterrupt at once (the trainer ends the run "stopped"), unless
    `second_interrupts` is False: a process training with others must not leave them waiting in a
    collective, so there every signal only asks for the (collective) stop.
    Returns a function that restores the previous handlers; a no-op off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    stream = stream or sys.stderr

    def on_signal(signum, frame) -> None:
        if stop.is_set():
            if signum == signal.SIGINT and second_interrupts:
                raise KeyboardInterrupt
            return
        stop.set()
        then = "(Ctrl-C again to stop at once)" if second_interrupts else "(every process stops after the same step)"
        print(f"\nstopping after this step or evaluation batch {then}", file=stream, flush=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()] and None


def _run_training(spec, config, root: str, yes: bool, stream=None, save_model: bool = True, world=None):
    """Train one spec into a new run folder under `root`; Ctrl-C stops it cleanly.

    Everything is checked before the folder exists: the runs folder's writability here, then the
    config, device, data and model in `train` (the folder is created on its "start" event).
    With several processes (`world`, in its process group) rank 0 alone checks and writes the folder.
    """
    from .export import check_output_dir
    from .models import large_model_message
    from .runs import start_run
    from .training.distributed import world_from_env

    if world is None and world_from_env().distributed:  # every process would train its own copy
        raise CliError("only `train` runs on several processes: start this command without torchrun")
    message = large_model_message(spec)
    if message:
        _confirm_large(message, yes)
    if world is None or world.main:
        check_output_dir(root)
    stop = threading.Event()
    restore = _stop_on_signals(stop, stream, second_interrupts=world is None or not world.distributed)
    try:
        result, writer = start_run(spec, config, root, listeners=[Progress(spec.label, stream)], stop=stop,
                                   save_model=save_model)
    finally:
        restore()
    return result, writer.path


def cmd_train(args: argparse.Namespace) -> int:
    from .training.distributed import world_from_env

    world = world_from_env()  # torchrun's environment; one process when it sets none
    try:
        if args.epochs is not None and args.steps is not None:
            raise CliError("give --epochs or --steps, not both")
        spec = _spec_from_args(args)
        config = _train_config(args, world.size)
    except (CliError, ValueError):
        if world.main:
            raise
        return EXIT_USAGE  # the same arguments fail alike on every rank: rank 0 says why
    if world.distributed:
        return _train_distributed(args, spec, config, world)
    result, path = _run_training(spec, config, args.runs, args.yes, save_model=not args.no_weights)
    _say_if_at_chance(spec, result)
    if path.is_dir():
        print(path)
    return STATUS_EXIT[result.status]


def _say_if_at_chance(spec, result) -> None:
    """One line on stderr when the run ended without leaving chance (the rule every page uses)."""
    import pandas as pd

    from .reports.findings import progress_of

    evals = pd.DataFrame(result.evals) if result.evals else None
    progress = progress_of(spec.name, spec.num_classes, pd.DataFrame(result.metrics), evals)
    if result.status in ("done", "stopped") and progress.at_chance:
        print(f"note: {progress.text()}", file=sys.stderr)


def _train_distributed(args: argparse.Namespace, spec, config, world) -> int:
    """`train` in one of several processes started by torchrun: join the group, train with
    DistributedDataParallel; rank 0 prints, writes the run folder and prints its path.

    Every rank ends with the run's exit code (the status is decided collectively). Errors are one
    line each; a rank other than 0 names itself.
    """
    from .models import large_model_message
    from .training.distributed import DistributedError, process_group

    try:
        message = large_model_message(spec)
        if message and not args.yes:  # no rank may wait on a question
            raise CliError(f"{message} (pass --yes: with several processes nothing is asked)")
        with process_group(config.device) as world:
            stream = sys.stderr if world.main else io.StringIO()
            if world.main:
                print(f"{world.size} processes ({world.backend}) x batch {config.batch_size} = global batch "
                      f"{world.size * config.batch_size}", file=stream, flush=True)
            result, path = _run_training(spec, config, args.runs, True, stream=stream,
                                         save_model=not args.no_weights, world=world)
    except DistributedError as err:
        print(f"error: {err}" if world.main else f"error: rank {world.rank}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except (CliError, ValueError) as err:
        if world.main:
            raise
        raise CliError(f"rank {world.rank}: {err}") from None
    if world.main and path.is_dir():
        print(path)
    return STATUS_EXIT[result.status]


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"{option} wants comma-separated whole numbers, got {text!r}") from None
    if not values:
        raise CliError(f"{option} wants at least one number")
    return list(dict.fromkeys(values))


def cmd_degradation(args: argparse.Namespace) -> int:
    """He et al. 2015 Fig. 6 in miniature: plain and residual twins at two depths, equal budgets, per seed."""
    from .reports.compare import comparison_findings, group_rows
    from .runs import load_run
    from .training.presets import degradation_specs, describe

    depths = _ints(args.depths, "--depths")
    seeds = _ints(args.seeds, "--seeds") if args.seeds else [args.seed]
    specs = degradation_specs(depths)
    args.epochs = None
    base = _train_config(args)
    configs = [base.replace(seed=seed) for seed in seeds]  # every seed checked before the first run
    paths = []
    for seed, config in zip(seeds, configs):
        for spec in specs:
            result, path = _run_training(spec, config, args.runs, True, save_model=not args.no_weights)
            if result.status != "done":
                print(f"error: {spec.name} seed {seed} {ended(result.status, result.message)} ({path})",
                      file=sys.stderr)
                return STATUS_EXIT[result.status]
            paths.append(path)
    runs = [load_run(p, with_model=False) for p in paths]
    rows = [
        {"model": r["model"], "params": r["params"], "seeds": r["seeds"], "train_loss": r["train_loss_text"],
         "train_error_%": r["train_error_text"], "test_error_%": r["test_error_text"],
         "seconds": round(r["seconds"], 1)}
        for r in group_rows(runs)
    ]
    print()
    print(f"{describe(base)}, seeds {', '.join(map(str, seeds))}; train loss/error: mean of the last 20% of logged "
          "steps" + (", mean ± sd over seeds" if len(seeds) > 1 else ""))
    print(_table(rows))
    print()
    for finding in comparison_findings(runs):  # plain nets, depths and twins read from the runs' specs
        print(f"{'yes' if finding.holds else 'NO '}  {finding.text}")
    return EXIT_OK


def _resolve_run_path(run: str, runs_root: str) -> Path:
    from .runs import run_dir

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

    from .analysis.attribution import IG_TOLERANCE
    from .analysis.study import (
        dataset_inputs,
        image_files,
        images_inputs,
        percent,
        run_study,
        top_line,
        top_predictions,
        upload_inputs,
    )
    from .data import denormalize
    from .devices import resolve_device
    from .export import check_output_dir, rows_to_csv, write_atomic
    from .plots import render_attribution_png
    from .runs import load_run

    if args.photos and args.samples is not None:
        raise CliError("give --samples or --photos, not both")
    if args.steps is not None and args.steps < 1:
        raise CliError(f"--steps must be 1 or more (Integrated Gradients steps), got {args.steps}")
    import warnings

    # captum announces its DeepLift hooks on every call; the CLI's user cannot act on it
    warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
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


class Counter:
    """Progress of an analysis on stderr: (done, total) calls, redrawn on a terminal, every 10% otherwise."""

    def __init__(self, label: str, stream=None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_decile, self.started = -1, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        frac = done / max(1, total)
        bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
        line = f"{self.label}: [{bar}] {done:,}/{total:,} | {time.perf_counter() - self.started:.0f} s"
        if self.tty:
            print("\r" + line, end="\n" if done >= total else "", file=self.stream, flush=True)
        elif int(frac * 10) > self.last_decile:
            self.last_decile = int(frac * 10)
            print(line, file=self.stream, flush=True)


def _explain_options(args: argparse.Namespace) -> dict[str, Any]:
    from .reports.explain import LENSES

    return {o.name: getattr(args, o.name) for o in LENSES[args.lens].options if getattr(args, o.name, None) is not None}


def cmd_explain(args: argparse.Namespace) -> int:
    """`lesion`, `paths` and `landscape`: one lens on a run (and its twin), CSV and figures into --out."""
    from .analysis.common import AnalysisStopped
    from .devices import resolve_device
    from .export import ExportError, check_output_dir, write_atomic, write_figure
    from .reports.explain import LENSES, analyse, check_options, check_run, figures, lens_folder, refusal, save, tables
    from .runs import find_twin, list_runs, load_run

    lens = args.lens
    options = check_options(lens, _explain_options(args))  # every bound, before any work
    formats = check_formats(args.format.split(","))
    device = resolve_device(args.device)
    path = Path(_resolve_run_path(args.run, args.runs))
    bare = load_run(path, with_model=False)
    check_run(lens, bare)  # an imported run: refused before its weights are read or --out is made
    out = check_output_dir(args.out)
    paths = [path]
    if args.twin:
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
    reason = refusal(lens, run_id=runs[0].id, imported=runs[0].imported, spec=runs[0].spec)
    if reason:
        raise CliError(reason)
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    results: dict[str, Any] = {}
    written: list[Path] = []
    try:
        for run in runs:
            reason = refusal(lens, run_id=run.id, imported=run.imported, spec=run.spec)
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
            written += write_figure(fig, out / stem, [f for f in formats if f in FIGURE_FORMATS])
    except ExportError as err:
        raise CliError(str(err)) from None
    print(f"{LENSES[lens].title}: {', '.join(results)}", file=sys.stderr)
    for p in written:
        print(p)
    print(out)
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    """Look inside a net without training: per-unit residual ratios, response std and single-unit lesions
    over the user's images (or a trained run's held-out images), in eval mode."""
    from .analysis.common import AnalysisStopped
    from .analysis.profile import profile_units
    from .analysis.study import dataset_inputs, image_files, images_inputs
    from .devices import resolve_device
    from .export import ExportError, check_output_dir, write_atomic, write_figure
    from .plots.profile import plot_unit_profile
    from .runs import load_run

    formats = check_formats(args.format.split(","))
    if args.photos and args.samples is not None:
        raise CliError("give --photos or --samples, not both")
    samples = 64 if args.samples is None else args.samples
    if not 1 <= samples <= MAX_USER_IMAGES:
        raise CliError(f"--samples must be 1 to {MAX_USER_IMAGES}, got {samples}")
    device = resolve_device(args.device)
    path = Path(_resolve_run_path(args.run, args.runs))
    bare = load_run(path, with_model=False)
    if not args.photos and bare.imported:
        raise CliError(f"run {bare.id} was imported from a checkpoint and has no dataset: give --photos FOLDER "
                       "(your own photos)")
    files, total = image_files(args.photos, MAX_USER_IMAGES) if args.photos else ([], 0)
    out = check_output_dir(args.out)
    run = load_run(path, device=str(device))
    if run.model is None:
        raise CliError(f"run {run.id} has no saved weights (model.pt) to look inside")
    if args.photos:
        inputs = images_inputs(run, [(f.name, f) for f in files], total=total)
    else:
        inputs = dataset_inputs(run, samples)
    if inputs.note:
        print(f"note: {inputs.note}", file=sys.stderr)
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    try:
        profile = profile_units(run.model, inputs.images, lesions=not args.no_lesions,
                                progress=Counter(f"profile {run.label}"), stop=stop)
    except AnalysisStopped:
        print(f"stopped: the profile of {run.label} did not finish; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        restore()
    stem = f"{run.spec.name}_{run.id[-4:]}_profile"
    written = [write_atomic(out / f"{stem}.csv", profile.rows.to_csv(index=False))]
    try:
        written += write_figure(plot_unit_profile(profile), out / stem,
                                [f for f in formats if f in FIGURE_FORMATS])
    except ExportError as err:
        raise CliError(str(err)) from None
    print(profile.summary(), file=sys.stderr)
    for p in written:
        print(p)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Comparison figures, tables and an offline index.html for one or more runs."""
    from .export import ExportError, check_output_dir
    from .reports.bundle import check_formats, write_report_files

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


def cmd_import_weights(args: argparse.Namespace) -> int:
    """A torchvision or timm checkpoint as a new run folder of kind "imported"; prints the folder last.

    With --list, the checkpoints in torch's hub cache instead; with --download, torchvision's published
    file for --model (fetched into the hub cache, its SHA-256 prefix checked) unless it is there already.
    """
    from .export import check_output_dir
    from .runs import load_run
    from .runs.checkpoints import import_spec, import_weights, importable_names
    from .runs.published import cached_checkpoints, download, hub_dir, published, what_it_is

    if args.list:
        rows, total, folders = cached_checkpoints()
        print(f"torch's hub cache {folders[0]} and the Hugging Face cache {folders[1]}: {total:,} checkpoint "
              f"file{'s' if total != 1 else ''}", file=sys.stderr)
        names = importable_names()
        for row in rows:
            print(f"{terminal_safe(row['path'])}\t{row['megabytes']:.0f} MB\t{row['cache']}: {terminal_safe(row['file'])}, "
                  f"{terminal_safe(what_it_is(row, names))}")
        return EXIT_OK
    if not args.model:
        raise CliError("give --model NAME (the zoo's name of the net), or --list to see the checkpoints cached here")
    import_spec(args.model)  # a bad name is refused before any file is read or folder made
    if args.download and args.file:
        raise CliError("give a checkpoint FILE or --download, not both")
    if args.classes is not None and not Path(args.classes).is_file():
        raise CliError(f"no class names file {args.classes}")
    check_output_dir(args.runs)
    if args.download:
        entry = published(args.model, None if args.download is True else args.download)
        print(f"{entry.label}: {entry.url} -> {hub_dir()}", file=sys.stderr)
        file = download(entry, progress=sys.stderr.isatty())
    elif not args.file:
        raise CliError("give the checkpoint FILE, or --download to fetch torchvision's published weights")
    elif not Path(args.file).is_file():
        raise CliError(f"no checkpoint file {args.file}")
    else:
        file = Path(args.file)
    before = {p.name for p in Path(args.runs).iterdir()} if Path(args.runs).is_dir() else set()
    path = import_weights(file, args.model, args.runs, classes=args.classes, resize=args.resize, reuse=True)
    run = load_run(path, with_model=False)
    if path.name in before:
        print(f"note: {file} was imported before, as this run (same file, net, classes and resize): reused",
              file=sys.stderr)
    source = run.info["source"]
    print(f"{run.spec.label}: {run.spec.num_classes:,} classes, {source['layout']} layout, "
          f"sha256 {source['sha256'][:12]}" + (f", {source['published']}" if source.get("published") else "")
          + f"; photos are scaled to {run.resize} px and centre-cropped to {run.normalisation[2]}", file=sys.stderr)
    print(path)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_explorer",
        description="Build, inspect and compare residual networks and their plain twins.",
    )
    parser.add_argument("--version", action="version", version=f"resnet_explorer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="registered variants with parameters and the papers' numbers")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="block graph counts, per-stage table and the plain/residual twin")
    p.add_argument("model", nargs="?", help="a variant name, e.g. resnet56, plain20, resnet50, preact_resnet164")
    _model_args(p)
    p.add_argument("--num-classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--input-size", type=int, help="square input side (default 224 imagenet, 32 cifar)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--blocks", action="store_true", help="also print the per-unit table")
    p.add_argument("--summary-depth", type=int, default=0, help="print torchinfo's layer table to this depth")
    p.add_argument("--yes", action="store_true", help="build a very large model without asking")
    p.add_argument("--export", metavar="DIR", help="write the graph and tables here")
    p.add_argument("--format", default="html,png,csv", help=f"comma list of {', '.join(INFO_FORMATS)}")
    p.set_defaults(func=cmd_info)

    from .analysis import METHODS
    from .analysis.attribution import BASELINES, IG_MAX_STEPS, IG_START_STEPS, IG_TOLERANCE
    from .limits import MAX_ATTRIBUTE_SAMPLES
    from .training.presets import DEGRADATION_DEPTHS, DEGRADATION_SEEDS, degradation_config, quick_config

    p = sub.add_parser("train", help="train a model briefly with probes; prints the run folder last")
    p.add_argument("--model", dest="model", help="a variant name, e.g. resnet56, plain20 (see `list`)")
    _model_args(p)
    _train_args(p, quick_config())
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("degradation", help="He et al. 2015 Fig. 6 in miniature: plain vs residual at two depths",
                       description="Train plain and residual CIFAR nets at two depths with equal budgets, for one "
                                   "or more seeds, and count over seeds whether the deeper plain net trains worse "
                                   "and its residual twin better. Defaults: the preset (training.presets).")
    p.add_argument("--depths", default=",".join(map(str, DEGRADATION_DEPTHS)),
                   help="CIFAR depths (6n+2), default %(default)s")
    p.add_argument("--seeds", help=f"comma list of seeds, each training every net (e.g. "
                                   f"{','.join(map(str, DEGRADATION_SEEDS))}); default: --seed")
    _train_args(p, degradation_config())
    p.set_defaults(func=cmd_degradation)

    p = sub.add_parser("attribute", help="captum attributions of a trained run: npz, PNG grids, scores")
    p.add_argument("run", help="a run folder, or a run id under --runs")
    p.add_argument("--methods", default="saliency,integrated_gradients,gradcam,occlusion",
                   help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--layer", help="Grad-CAM layer: a stage (layer3) or a unit (layer3.8); default the last unit")
    p.add_argument("--samples", type=int, help="held-out images to explain, spread over the classes (default 8, "
                   f"at most {MAX_ATTRIBUTE_SAMPLES:,}; the PNG grids show the first {GRID_ROWS})")
    _renamed(p, "--photos", "--image", PHOTOS_NOTE.format(old="--image", command="attribute"), metavar="PATH",
             help="explain this image file, or the images in this folder, instead (PNG/JPEG, any "
                  f"mode; a folder's first {MAX_USER_IMAGES} by name)")
    p.add_argument("--target", help="class name or number to explain (default: each image's prediction)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"Integrated Gradients steps for every image (default: adaptive, {IG_START_STEPS} doubling "
                        f"until the completeness gap is under {IG_TOLERANCE:.0%}%, at most {IG_MAX_STEPS})")  # %% for argparse
    p.add_argument("--baseline", choices=list(BASELINES), default="zeros",
                   help="baseline of Integrated Gradients, DeepLIFT and Occlusion: zeros (the dataset mean), "
                        "black, or blur (a blurred copy of the image); default zeros")
    p.add_argument("--no-sanity", action="store_true", help="skip the model-randomisation sanity check")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--runs", default="runs", help="the runs folder for run ids (default ./runs)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_attribute)

    from .reports.explain import LENSES

    for entry in LENSES.values():  # every flag from the lens's options: its type, bound, default and help
        p = sub.add_parser(entry.name, help=entry.summary + "; CSV and figures into --out, the folder printed last")
        p.add_argument("run", help="a run folder, or a run id under --runs")
        p.add_argument("--twin", action="store_true",
                       help="also analyse the run's twin (found beside it) and draw both together")
        for option in entry.options:
            p.add_argument(f"--{option.name}", type=option.kind, default=option.default, choices=option.choices,
                           help=option.cli_help())
        p.add_argument("--device", default="auto", help=DEVICE_HELP)
        p.add_argument("--runs", default="runs", help="the runs folder for run ids (default ./runs)")
        p.add_argument("--format", default="html,png", help=f"figure formats: comma list of {', '.join(FIGURE_FORMATS)}")
        p.add_argument("--out", required=True, help="output folder")
        p.set_defaults(func=cmd_explain, lens=entry.name)

    p = sub.add_parser("report", help="figures, tables and an offline index.html comparing runs")
    p.add_argument("run", nargs="+", metavar="RUN", help="run folders, or run ids under --runs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", default="html,png,svg", help=f"comma list of {', '.join(REPORT_FORMATS)} (default all)")
    p.add_argument("--runs", default="runs", help="the runs folder for run ids (default ./runs)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("profile", help="look inside a net without training: residual ratios, responses, lesions",
                       description="Per residual unit, in eval mode over your images (a folder) or a trained run's "
                                   "held-out images: the residual ratio ||F(x)|| / ||x||, the response std, and "
                                   "what deleting the unit alone changes (the share of images whose top class "
                                   "flips, the drop in its probability). Writes a CSV and the figure into --out.")
    p.add_argument("run", help="run id or folder (an imported pretrained net or a trained run)")
    _renamed(p, "--photos", "--images", PHOTOS_NOTE.format(old="--images", command="profile"), metavar="FOLDER",
             help=f"your photos (the first {MAX_USER_IMAGES} by name); needed for an imported net")
    p.add_argument("--samples", type=int, help="held-out images of a trained run, spread over the classes "
                                               "(default 64)")
    p.add_argument("--no-lesions", action="store_true", help="skip the single-unit lesions (one forward pass "
                                                             "instead of about units/2 + 1)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--out", default="profile", help="output folder (default ./profile)")
    p.add_argument("--format", default="html,png", help=f"comma list of {', '.join(FIGURE_FORMATS)} (default html,png)")
    p.add_argument("--runs", default="runs", help="the runs folder for run ids (default ./runs)")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("import-weights", help="a pretrained torchvision or timm ImageNet ResNet as a run folder",
                       description="Read a torchvision or timm ResNet checkpoint (weights_only: nothing in it is "
                                   "executed), check it against the zoo's net, and write a run folder of kind "
                                   "\"imported\" with ImageNet preprocessing (resize 256, or 232 for torchvision's "
                                   "V2 weights, then crop 224, ImageNet mean and std). Nothing is downloaded unless "
                                   "--download is given. Prints the run folder last.")
    p.add_argument("file", nargs="?", help="the checkpoint: a state dict, or a dict with state_dict / model / "
                                           "state_dict_ema")
    p.add_argument("--model",
                   help="the zoo's name of the net: resnet18 ... resnet152, wide_resnet50_2, resnext50_32x4d, ...")
    p.add_argument("--list", action="store_true", help="list the checkpoints in torch's hub cache and the Hugging Face cache (timm) and stop")
    p.add_argument("--download", nargs="?", const=True, metavar="TAG",
                   help="fetch torchvision's published weights for --model into torch's hub cache (needs the "
                        "internet; the SHA-256 prefix in the file name is checked): its default, or TAG such as "
                        "IMAGENET1K_V1")
    p.add_argument("--resize", type=int, help="short side before the 224 crop (default: torchvision's for a file "
                                              "it publishes, else 256)")
    p.add_argument("--classes", help="text file of class names, one per line, one per output (default: the "
                                     "ImageNet names for 1,000 outputs, else 0..n-1)")
    _renamed(p, "--runs", "--out", RUNS_NOTE, default="runs", help="the runs folder to write the run into "
                                                                   "(default ./runs)")
    p.set_defaults(func=cmd_import_weights)
    return parser


def _model_args(p: argparse.ArgumentParser) -> None:
    """Compose / modify a model: shared by `info` (name positional) and `train` (--model)."""
    p.set_defaults(num_classes=None, in_channels=None)
    p.add_argument("--stem", choices=("imagenet", "cifar"), help="compose: the stem family")
    p.add_argument("--block", choices=("basic", "bottleneck"), help="compose: the unit type")
    p.add_argument("--layers", type=_layers, help="compose: units per stage, e.g. 2,2,2,2 or 9,9,9")
    p.add_argument("--preact", action="store_true", help="full pre-activation units (He et al. 2016)")
    p.add_argument("--plain", action="store_true", help="the twin without shortcuts")
    p.add_argument("--shortcut", choices=("A", "B", "C"), help="A zero-pad, B projection where shapes change, C always")
    p.add_argument("--width-multiplier", type=float)
    p.add_argument("--groups", type=int)
    p.add_argument("--width-per-group", type=int)
    p.add_argument("--zero-init", action="store_true", help="zero the last BN of every residual branch")


def _train_args(p: argparse.ArgumentParser, d) -> None:
    """Training options with the defaults of the TrainConfig `d` (the preset's for `degradation`)."""
    p.add_argument("--dataset", default=d.dataset,
                   help="shapes (embedded), shapes-easy (bigger, cleaner shapes), cifar10, cifar100 or folder:PATH "
                        "(default %(default)s)")
    p.add_argument("--data-root", help="folder with CIFAR in the python-pickle layout (default ./data)")
    p.add_argument("--download", action="store_true", help="download CIFAR if it is missing (checksum verified)")
    p.add_argument("--train-size", type=int, default=d.train_size, help="use this many training images")
    p.add_argument("--test-size", type=int, default=d.test_size, help="use this many held-out images")
    p.add_argument("--image-size", type=int, default=d.image_size, help="image side in pixels (default %(default)s)")
    p.add_argument("--epochs", type=float, help="budget in epochs, instead of steps")
    p.add_argument("--steps", type=int, help=f"budget in optimizer steps (default {d.steps})")
    p.set_defaults(default_steps=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default %(default)s")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--decay-all", action="store_true", default=d.decay_all,
                   help="decay BN and bias parameters too, as He et al. 2015 (default: weights only)")
    p.add_argument("--schedule", choices=("onecycle", "cosine", "step", "constant"), default=d.schedule)
    p.add_argument("--warmup", type=float, default=d.warmup, help="one-cycle warm-up share (default %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--no-augment", dest="augment", action="store_false", default=d.augment,
                   help="no random crop / flip")
    p.add_argument("--augment", dest="augment", action="store_true", help="random crop and flip (He et al. 2015)")
    p.add_argument("--device", default=d.device, help=DEVICE_HELP.replace("auto)", "%(default)s)"))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--probe-every", type=int, default=d.probe_every, help="probe every K steps (0: off)")
    p.add_argument("--log-every", type=int, default=d.log_every, help="log averaged loss/accuracy every K steps")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="evaluate every K steps (0: automatic, within 10%% of the run's compute; the end always)")
    p.add_argument("--eval-size", type=int, default=d.eval_size, help="held-out images per intermediate evaluation")
    _renamed(p, "--runs", "--out", RUNS_NOTE, default="runs", help="the runs folder to write runs into (default ./runs)")
    p.add_argument("--yes", action="store_true", help="train a very large model without asking")
    p.add_argument("--no-weights", action="store_true", help="do not save model.pt (curves and probes only)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        _check_spellings(args)
        return args.func(args)
    except (CliError, ValueError) as err:
        print(f"error: {terminal_safe(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError as err:  # an analysis names what it was asked for; an allocation anywhere else does not
        print(f"error: {terminal_safe(err) if str(err) else OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_FAILED
    except RuntimeError as err:  # torch's CPU allocator raises RuntimeError, not MemoryError
        from .devices import is_out_of_memory

        if not is_out_of_memory(err):
            raise
        print(f"error: {OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:  # a file or folder that failed mid-way (disk full, removed): one line
        if isinstance(err, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        where = f" ({err.filename})" if err.filename else ""
        print(f"error: {terminal_safe(err.strerror or err)}{terminal_safe(where)}", file=sys.stderr)
        return EXIT_FAILED

