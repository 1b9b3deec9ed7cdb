"""`import-weights`: a pretrained checkpoint as a run folder of kind "imported"."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .exits import EXIT_OK, CliError
from .text import terminal_safe


def cmd_import_weights(args: argparse.Namespace) -> int:
    """A torchvision or timm checkpoint as a new run folder of kind "imported"; prints the folder last.

    With --list, the checkpoints in torch's hub cache instead; with --download, torchvision's published
    file for --model (fetched into the hub cache, its SHA-256 prefix checked) unless it is there already.
    """
    from ..export import check_output_dir
    from ..runs import load_run
    from ..runs.checkpoints import import_spec, import_weights, importable_names
    from ..runs.published import cached_checkpoints, download, hub_dir, published, what_it_is

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
