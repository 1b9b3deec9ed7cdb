"""Does the degradation preset's conclusion survive seeds and thread counts?

    python bench/degradation_robustness.py [--seeds 0,1,2,3,4] [--threads 1,2] [--set lr=0.05 ...]
                                           [--models plain20,resnet56] [--json OUT]

Trains the preset's four nets (plain20, plain56, resnet20, resnet56; `training.presets`) for
every seed and torch thread count, through the same `train` the CLI and the app use, and prints
for each thread count the verdicts counted over seeds:

- plain56 ends with a higher training loss than plain20 (the degradation problem);
- resnet56 ends with a lower training loss than plain56 (shortcuts fix it);

with the mean gap measured in seed-to-seed spreads (sample standard deviation; the target is a
gap of at least 3 spreads). One-thread cells run two at a time (one core each); two-thread cells
one at a time. Final training loss: the mean of the last 20% of logged rows, as everywhere.
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
MODELS = ("plain20", "plain56", "resnet20", "resnet56")


def _init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def cell(task: tuple[str, int, int, dict]) -> dict:
    model, seed, threads, changes = task
    import pandas as pd
    import torch

    from resnet_explorer.reports.findings import tail_mean
    from resnet_explorer.training import train
    from resnet_explorer.training.presets import degradation_config

    assert torch.get_num_threads() == threads
    config = degradation_config(seed=seed, device="cpu", probe_every=0, **changes)
    started = time.perf_counter()
    result = train(model, config)
    return {"model": model, "seed": seed, "threads": threads, "status": result.status,
            "loss": tail_mean(pd.DataFrame(result.metrics), "loss"), "seconds": time.perf_counter() - started,
            "test_accuracy": result.evals[-1]["accuracy"] if result.evals else None}


def verdicts(cells: list[dict], threads: int):
    from resnet_explorer.reports.findings import degradation_checks

    losses: dict[str, dict[int, float]] = {}
    for c in cells:
        if c["threads"] == threads and c["loss"] is not None:
            losses.setdefault(c["model"], {})[c["seed"]] = c["loss"]
    return degradation_checks(losses, 20, 56), losses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a preset field (a TrainConfig field, e.g. lr=0.05, steps=300, warmup=0.4)")
    parser.add_argument("--models", default=",".join(MODELS), help="a subset of the four nets (for a search)")
    parser.add_argument("--json", help="also write every cell here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    changes = {}
    for item in args.set:
        field, _, value = item.partition("=")
        changes[field] = json.loads(value) if value[:1] in "-0123456789tfn[" else value
    models = args.models.split(",")
    cells: list[dict] = []
    started = time.perf_counter()
    for threads in thread_counts:
        tasks = [(m, s, threads, changes) for s in seeds for m in models]
        procs = max(1, 2 // threads)
        with mp.get_context("spawn").Pool(procs, initializer=_init, initargs=(threads,)) as pool:
            for c in pool.imap_unordered(cell, tasks):
                cells.append(c)
                print(f"  {c['model']:9s} seed {c['seed']} threads {c['threads']}: final train loss "
                      f"{c['loss'] if c['loss'] is None else round(c['loss'], 4)} ({c['status']}, "
                      f"{c['seconds']:.0f} s)", flush=True)
    from resnet_explorer.training.presets import degradation_config, describe

    print(f"\n{describe(degradation_config(**changes))} {changes or ''}; {len(cells)} runs in "
          f"{time.perf_counter() - started:.0f} s")
    print("\n| torch threads | model | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("| ---: | --- | " + " | ".join("---:" for _ in seeds) + " |")
    for threads in thread_counts:
        _, losses = verdicts(cells, threads)
        for model in models:
            row = [f"{losses.get(model, {}).get(s, float('nan')):.3f}" for s in seeds]
            print(f"| {threads} | {model} | " + " | ".join(row) + " |")
    print()
    ok = set(models) == set(MODELS)
    for threads in thread_counts:
        for check in verdicts(cells, threads)[0]:
            if not check.of:
                continue
            ok &= check.robust
            print(f"{'yes' if check.robust else 'NO '}  {threads} thread(s): {check.text()}")
    if args.json:
        Path(args.json).write_text(json.dumps(cells, indent=1))
    print("\nevery cell holds with a gap >= 3 spreads" if ok else "\nNOT robust: see the NO lines")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
