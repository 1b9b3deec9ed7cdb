"""Command line: the app's jobs without a browser.

    python -m resnet_explorer list
    python -m resnet_explorer info resnet56 [--plain] [--export DIR --format html,png,csv]

Exit codes: 0 done; 2 bad arguments or config (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
# The degradation preset's budget: four runs in about three minutes on a 2-core CPU.
DEGRADATION_STEPS = 250
DEGRADATION_BATCH = 64
STATUS_EXIT = {"done": EXIT_OK, "stopped": EXIT_INTERRUPTED, "diverged": EXIT_DIVERGED, "failed": EXIT_FAILED}


class CliError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(empty)"
    columns = list(columns or rows[0])

    def fmt(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

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
        raise argparse.ArgumentTypeError(f"--layers wants comma-separated block counts, got {text!r}") from None


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
            "name": v.name, "family": spec.stem, "block": spec.block + (" pre-act" if spec.pre_activation else ""),
            "depth": spec.depth, "params": count_parameters(spec),
            "paper": v.paper_params, "paper_error_%": "" if v.paper_error is None else v.paper_error,
        })
    print(_table(rows))
    print("\nAny depth of the CIFAR pattern works too: [cifar_][preact_](resnet|plain)<D>[_basic|_bottleneck],"
          " basic D = 6n+2, bottleneck D = 9n+2 (e.g. resnet74, plain38, preact_resnet245).")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .devices import resolve_device
    from .export import ExportError, rows_to_csv, write_atomic, write_figure
    from .graph import build_graph, layer_rows
    from .models import build_model, large_model_message
    from .plots import plot_block_graph

    spec = _spec_from_args(args)
    device = resolve_device(args.device)
    message = large_model_message(spec)  # estimated from the plan, before anything is built
    if message:
        _confirm_large(message, args.yes)
    graph = build_graph(spec, args.input_size)
    twin_spec = spec.plain() if spec.residual else spec.with_residual()
    twin = build_graph(twin_spec, graph.input_size)
    print(f"{spec.label}: {spec.depth} weighted layers, {spec.num_blocks} residual units, "
          f"{graph.total_params:,} parameters, {graph.total_macs:,} MACs at {graph.input_size}x{graph.input_size}")
    print(f"{twin_spec.label} (twin): {twin.total_params:,} parameters, {twin.total_macs:,} MACs\n")
    print(_table(graph.stage_rows()))
    if args.blocks:
        print()
        print(_table(graph.block_rows()))

    model = build_model(spec, device=device, confirm_large=True)
    built = sum(p.numel() for p in model.parameters())
    if built != graph.total_params:  # the graph and the module must agree
        raise RuntimeError(f"parameter counts disagree: graph {graph.total_params}, module {built}")
    print(f"\nbuilt on {device}: {built:,} parameters")
    if args.summary_depth:
        print()
        print(_table(layer_rows(model, graph.input_size, device, depth=args.summary_depth)))

    if args.export:
        out = Path(args.export)
        formats = [f.strip() for f in args.format.split(",") if f.strip()]
        bad = set(formats) - {"html", "png", "svg", "csv", "json"}
        if bad:
            raise CliError(f"unknown export format(s) {', '.join(sorted(bad))}: use html, png, svg, csv, json")
        figure_formats = [f for f in formats if f in ("html", "png", "svg", "json")]
        try:
            paths = write_figure(plot_block_graph(graph), out / f"{spec.name}_graph", figure_formats)
        except ExportError as err:
            raise CliError(str(err)) from None
        if "csv" in formats:
            paths.append(write_atomic(out / f"{spec.name}_stages.csv", rows_to_csv(graph.stage_rows())))
            paths.append(write_atomic(out / f"{spec.name}_blocks.csv", rows_to_csv(graph.block_rows())))
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
            self.total = event.data["total_steps"]
            print(f"{self.label}: {self.total} steps on {event.data['device']}", file=self.stream)
        elif event.kind == "eval":
            self.eval_acc = event.data["accuracy"]
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
            print(f"{event.data['status']}: {event.data['message']}{acc} ({event.data['seconds']:.1f} s)",
                  file=self.stream)


def _train_config(args: argparse.Namespace):
    from .training import TrainConfig

    budget = {"steps": args.steps} if args.steps is not None else {"epochs": args.epochs or 1.0}
    return TrainConfig(
        dataset=args.dataset, data_root=args.data_root, download=args.download, train_size=args.train_size,
        test_size=args.test_size, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
        label_smoothing=args.label_smoothing, augment=not args.no_augment, seed=args.seed, device=args.device,
        probe_every=args.probe_every, log_every=args.log_every, eval_every=args.eval_every, **budget,
    )


def _run_training(spec, config, root: str, yes: bool, stream=None):
    """Train one spec into a new run folder under `root`; Ctrl-C stops it cleanly."""
    import signal
    import threading

    from .data import load_data
    from .models import large_model_message
    from .runs import RunWriter
    from .training import train

    message = large_model_message(spec)
    if message:
        _confirm_large(message, yes)
    data = load_data(config.dataset, root=config.data_root, seed=config.seed, train_size=config.train_size,
                     test_size=config.test_size, download=config.download)
    spec = spec.replace(num_classes=data.num_classes, in_channels=data.in_channels)
    writer = RunWriter(root, spec, config)
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        result = train(spec, config, data=data, listeners=[writer, Progress(spec.label, stream)], stop=stop)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    return result, writer.path


def cmd_train(args: argparse.Namespace) -> int:
    if args.epochs is not None and args.steps is not None:
        raise CliError("give --epochs or --steps, not both")
    spec = _spec_from_args(args)
    config = _train_config(args)
    result, path = _run_training(spec, config, args.out, args.yes)
    print(path)
    return STATUS_EXIT[result.status]


def _tail_mean(rows: list[dict], key: str, fraction: float = 0.2) -> float:
    """Mean of `key` over the last `fraction` of logged rows: the end of training, less noisy."""
    tail = rows[-max(1, int(len(rows) * fraction)):]
    return sum(r[key] for r in tail) / len(tail)


def cmd_degradation(args: argparse.Namespace) -> int:
    """He et al. 2015 Fig. 6 in miniature: plain and residual twins at two depths, equal budgets."""
    from .models import ModelSpec, count_parameters

    depths = [int(d) for d in args.depths.split(",") if d.strip()]
    if len(depths) < 2:
        raise CliError("--depths wants at least two CIFAR depths, e.g. 20,56")
    specs = [ModelSpec.from_name(f"{kind}{d}") for kind in ("plain", "resnet") for d in depths]
    args.epochs = None
    args.model, args.stem, args.block, args.layers = None, None, None, None
    config = _train_config(args)
    rows = []
    for spec in specs:
        result, path = _run_training(spec, config, args.out, True)
        if result.status != "done":
            raise CliError(f"{spec.name} {result.status}: {result.message}")
        rows.append({
            "model": spec.name, "params": count_parameters(spec.replace(num_classes=10)),
            "train_loss": round(_tail_mean(result.metrics, "loss"), 4),
            "train_error_%": round(100 * (1 - _tail_mean(result.metrics, "accuracy")), 2),
            "test_error_%": round(100 * (1 - result.evals[-1]["accuracy"]), 2),
            "seconds": round(result.seconds, 1), "run": path.name,
        })
    print()
    print(f"{config.steps} steps of batch {config.batch_size} on {config.dataset}, seed {config.seed}; "
          "train loss/error: mean of the last 20% of logged steps")
    print(_table(rows))
    loss = {r["model"]: r["train_loss"] for r in rows}
    shallow, deep = min(depths), max(depths)
    checks = [
        (f"plain{deep} trains worse than plain{shallow}", loss[f"plain{deep}"] > loss[f"plain{shallow}"],
         f"{loss[f'plain{deep}']:.4f} vs {loss[f'plain{shallow}']:.4f}"),
        (f"resnet{deep} trains better than plain{deep}", loss[f"resnet{deep}"] < loss[f"plain{deep}"],
         f"{loss[f'resnet{deep}']:.4f} vs {loss[f'plain{deep}']:.4f}"),
    ]
    print()
    for text, ok, detail in checks:
        print(f"{'yes' if ok else 'NO '}  {text} (train loss {detail})")
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
    p.add_argument("--stem", choices=("imagenet", "cifar"), help="compose: the stem family")
    p.add_argument("--block", choices=("basic", "bottleneck"), help="compose: the unit type")
    p.add_argument("--layers", type=_layers, help="compose: units per stage, e.g. 2,2,2,2 or 9,9,9")
    p.add_argument("--preact", action="store_true", help="full pre-activation units (He et al. 2016)")
    p.add_argument("--plain", action="store_true", help="the twin without shortcuts")
    p.add_argument("--shortcut", choices=("A", "B", "C"), help="A zero-pad, B projection where shapes change, C always")
    p.add_argument("--width-multiplier", type=float)
    p.add_argument("--groups", type=int)
    p.add_argument("--width-per-group", type=int)
    p.add_argument("--num-classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--zero-init", action="store_true", help="zero the last BN of every residual branch")
    p.add_argument("--input-size", type=int, help="square input side (default 224 imagenet, 32 cifar)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--blocks", action="store_true", help="also print the per-unit table")
    p.add_argument("--summary-depth", type=int, default=0, help="print torchinfo's layer table to this depth")
    p.add_argument("--yes", action="store_true", help="build a very large model without asking")
    p.add_argument("--export", metavar="DIR", help="write the graph and tables here")
    p.add_argument("--format", default="html,png,csv", help="comma list of html, png, svg, json, csv")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a model briefly with probes; prints the run folder last")
    _model_args(p)
    _train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("degradation", help="He et al. 2015 Fig. 6 in miniature: plain vs residual at two depths")
    p.add_argument("--depths", default="20,56", help="CIFAR depths (6n+2), default 20,56")
    _train_args(p)
    p.set_defaults(func=cmd_degradation, steps=DEGRADATION_STEPS, batch_size=DEGRADATION_BATCH)
    return parser


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", dest="model", help="a variant name, e.g. resnet56, plain20 (see `list`)")
    p.add_argument("--stem", choices=("imagenet", "cifar"), help="compose: the stem family")
    p.add_argument("--block", choices=("basic", "bottleneck"), help="compose: the unit type")
    p.add_argument("--layers", type=_layers, help="compose: units per stage, e.g. 3,3,3")
    p.add_argument("--preact", action="store_true", help="full pre-activation units (He et al. 2016)")
    p.add_argument("--plain", action="store_true", help="the twin without shortcuts")
    p.add_argument("--shortcut", choices=("A", "B", "C"))
    p.add_argument("--width-multiplier", type=float)
    p.add_argument("--groups", type=int)
    p.add_argument("--width-per-group", type=int)
    p.add_argument("--zero-init", action="store_true", help="zero the last BN of every residual branch")
    p.set_defaults(num_classes=None, in_channels=None)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="shapes", help="shapes (embedded, default), cifar10, cifar100 or folder:PATH")
    p.add_argument("--data-root", help="folder with CIFAR in the python-pickle layout (default ./data)")
    p.add_argument("--download", action="store_true", help="download CIFAR if it is missing (checksum verified)")
    p.add_argument("--train-size", type=int, help="use this many training images")
    p.add_argument("--test-size", type=int, help="use this many held-out images")
    p.add_argument("--epochs", type=float, help="budget in epochs (default 1)")
    p.add_argument("--steps", type=int, help="budget in optimizer steps")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=("onecycle", "cosine", "step", "constant"), default="onecycle")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--probe-every", type=int, default=10, help="probe every K steps (0: off)")
    p.add_argument("--log-every", type=int, default=10, help="log averaged loss/accuracy every K steps")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every K steps (0: each epoch and at the end)")
    p.add_argument("--out", default="runs", help="the runs folder (default ./runs)")
    p.add_argument("--yes", action="store_true", help="train a very large model without asking")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        return args.func(args)
    except (CliError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
