"""Do `train`'s and the Train page's defaults leave chance, on every seed and thread count?

    python bench/train_defaults.py [--seeds 0,1,2,3,4] [--threads 1,2] [--models plain20,resnet20,resnet56]
                                   [--json OUT]

Builds each run's config exactly as `python -m resnet_explorer train --model M --seed S` does
(the CLI's parser and defaults; the Train page starts from the same `training.presets.QUICK`,
which tests/test_app_train_inspect.py checks), trains it through the same `train`, and prints for
every net, seed and torch thread count the final training loss (mean of the last 20% of logged
rows), the held-out accuracy of the final evaluation, and whether the run left chance by the rule
every page uses (`findings.Progress`: loss below 90% of ln 10, accuracy above 10% + 9%).
Each cell written to --json records the config it trained (`TrainConfig.to_dict()`), which
tests/test_defaults_measured.py compares with today's defaults: change the defaults, rerun this.
One-thread cells run two at a time (one core each); two-thread cells one at a time.
Exit 0 only when every cell left chance.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODELS = ("plain20", "resnet20", "resnet56")


def _init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def cli_config(model: str, seed: int):
    """The config `train --model MODEL --seed SEED` builds (its defaults otherwise), on the CPU."""
    from resnet_explorer.cli import build_parser
    from resnet_explorer.cli.train import _train_config

    args = build_parser().parse_args(["train", "--model", model, "--seed", str(seed), "--device", "cpu"])
    return _train_config(args)


def cell(task: tuple[str, int, int]) -> dict:
    model, seed, threads = task
    import pandas as pd
    import torch

    from resnet_explorer.models import ModelSpec
    from resnet_explorer.reports.findings import progress_of
    from resnet_explorer.training import train

    assert torch.get_num_threads() == threads
    config = cli_config(model, seed)
    started = time.perf_counter()
    result = train(model, config)
    metrics = pd.DataFrame(result.metrics)
    evals = pd.DataFrame(result.evals) if result.evals else None
    progress = progress_of(model, ModelSpec.from_name(model).num_classes, metrics, evals)
    return {"model": model, "seed": seed, "threads": threads, "status": result.status, "loss": progress.loss,
            "accuracy": progress.accuracy, "at_chance": progress.at_chance,
            "seconds": time.perf_counter() - started, "config": config.to_dict()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", help="also write every cell here")
    parser.add_argument("--table", metavar="JSON", help="print the table of cells an earlier run wrote, train nothing")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    models = args.models.split(",")
    cells: list[dict] = json.loads(Path(args.table).read_text()) if args.table else []
    started = time.perf_counter()
    for threads in thread_counts if not args.table else ():
        tasks = [(m, s, threads) for s in seeds for m in models]
        with mp.get_context("spawn").Pool(max(1, 2 // threads), initializer=_init, initargs=(threads,)) as pool:
            for c in pool.imap_unordered(cell, tasks):
                cells.append(c)
                print(f"  {c['model']:9s} seed {c['seed']} threads {c['threads']}: loss {c['loss']:.3f}, held-out "
                      f"accuracy {c['accuracy']:.3f}{' AT CHANCE' if c['at_chance'] else ''} ({c['status']}, "
                      f"{c['seconds']:.0f} s)", flush=True)
    from resnet_explorer.training.presets import describe

    took = f"read from {args.table}" if args.table else f"in {time.perf_counter() - started:.0f} s"
    print(f"\n`train` defaults: {describe(cli_config(models[0], 0))}; {len(cells)} runs {took}")
    print("\nfinal training loss / held-out accuracy %\n")
    print("| torch threads | model | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("| ---: | --- | " + " | ".join("---:" for _ in seeds) + " |")
    by = {(c["model"], c["seed"], c["threads"]): c for c in cells}
    for threads in thread_counts:
        for model in models:
            row = []
            for s in seeds:
                c = by.get((model, s, threads))
                row.append("n/a" if c is None else f"{c['loss']:.3f} / {100 * c['accuracy']:.0f}"
                           + (" (chance)" if c["at_chance"] else ""))
            print(f"| {threads} | {model} | " + " | ".join(row) + " |")
    stuck = [c for c in cells if c["at_chance"] or c["status"] != "done"]
    worst = max(cells, key=lambda c: c["loss"])
    print(f"\nhighest final loss: {worst['model']} seed {worst['seed']}, {worst['threads']} thread(s): "
          f"{worst['loss']:.3f} (at chance from {0.9 * 2.302585:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(cells, indent=1))
    print("every cell left chance" if not stuck else f"{len(stuck)} cell(s) did NOT leave chance")
    return 0 if not stuck else 1


if __name__ == "__main__":
    sys.exit(main())
