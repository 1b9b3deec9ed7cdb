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
EXIT_USAGE = 2


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
    return parser


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
