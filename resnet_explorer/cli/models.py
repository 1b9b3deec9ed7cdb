"""`list` and `info`: the zoo and one net, and the model a command line asks for."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..formats import FIGURE_FORMATS, INFO_FORMATS, check_formats
from .exits import EXIT_OK, CliError
from .text import table


def spec_from_args(args: argparse.Namespace):
    from ..models import ModelSpec

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


def confirm_large(message: str, yes: bool) -> None:
    if yes:
        return
    if sys.stdin.isatty():
        answer = input(f"{message}. Build it? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
        raise CliError("not built")
    raise CliError(f"{message} (pass --yes)")


def cmd_list(args: argparse.Namespace) -> int:
    from ..models import VARIANTS, count_parameters

    rows = []
    for v in VARIANTS.values():
        spec = v.spec
        rows.append({
            "name": v.name, "family": spec.stem, "unit": spec.block + (" pre-act" if spec.pre_activation else ""),
            "depth": spec.depth, "params": count_parameters(spec),
            "paper": v.paper_params, "paper_error_%": "" if v.paper_error is None else v.paper_error,
        })
    print(table(rows))
    print("\nAny depth of the CIFAR pattern works too: [cifar_][preact_](resnet|plain)<D>[_basic|_bottleneck],"
          " basic D = 6n+2, bottleneck D = 9n+2 (e.g. resnet74, plain38, preact_resnet245).")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..export import ExportError, check_output_dir, rows_to_csv, write_atomic, write_figure
    from ..limits import MAX_INPUT_SIZE, check_int
    from ..models import build_model, large_model_message
    from ..models.graph import build_graph, layer_rows
    from ..plots import plot_block_graph

    spec = spec_from_args(args)
    device = resolve_device(args.device)
    if args.summary_depth < 0:
        raise CliError(f"--summary-depth must be 0 (no table) or more, got {args.summary_depth}")
    if args.input_size is not None:
        check_int("--input-size", args.input_size, 8, MAX_INPUT_SIZE)
    message = large_model_message(spec)  # arithmetic, before anything is built; refuses past the ceiling
    if message:
        confirm_large(message, args.yes)
    formats = check_formats(args.format, INFO_FORMATS, "export")
    out = check_output_dir(args.export) if args.export else None  # before the work, not after it
    graph = build_graph(spec, args.input_size)
    twin_spec = spec.plain() if spec.residual else spec.with_residual()
    twin = build_graph(twin_spec, graph.input_size)
    print(f"{spec.label}: {spec.depth} weighted layers, {spec.num_units} residual units, "
          f"{graph.total_params:,} parameters, {graph.total_macs:,} MACs at {graph.input_size}x{graph.input_size}")
    print(f"{twin_spec.label} (twin): {twin.total_params:,} parameters, {twin.total_macs:,} MACs\n")
    print(table(graph.stage_rows()))
    if args.blocks:
        print()
        print(table(graph.unit_rows()))

    model = build_model(spec, device=device, confirm_large=True)
    built = sum(p.numel() for p in model.parameters())
    if built != graph.total_params:  # the graph and the module must agree
        raise RuntimeError(f"parameter counts disagree: graph {graph.total_params}, module {built}")
    print(f"\nbuilt on {device}: {built:,} parameters")
    if args.summary_depth:
        print()
        print(table(layer_rows(model, graph.input_size, device, depth=args.summary_depth)))

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
