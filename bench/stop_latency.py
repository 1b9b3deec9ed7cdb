"""How long Stop takes: resnet56 at batch 64 on the CPU, stopped mid-training and mid-evaluation.

    python bench/stop_latency.py [--image-size 32] [--tries 3]

Runs the trainer on a background thread, sets the stop flag from another thread at a random
moment 2-5 s into the run (as the Stop button does), or inside an evaluation (as its second batch
starts), and measures the time from the flag to `train` returning. Target: <= 2 s (one training step or one evaluation batch). Also prints the
share of the run's time spent evaluating, for the preset's budget (target <= 10%).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stop_once(data, config, when: str) -> tuple[float, str, int]:
    from resnet_explorer.training import train

    stop = threading.Event()
    stopped_at: list[float] = []

    def press() -> None:  # what the Stop button does, from another thread
        stopped_at.append(time.perf_counter())
        stop.set()

    def listener(event):
        if when == "at a random moment" and event.kind == "start":
            threading.Timer(2.0 + random.random() * 3, press).start()
        if when == "evaluating" and event.kind == "phase" and event.data.batch == 2 and not stop.is_set():
            press()

    box = {}
    thread = threading.Thread(target=lambda: box.update(r=train("resnet56", config, data=data, listeners=[listener],
                                                                  stop=stop)))
    thread.start()
    thread.join()
    result = box["r"]
    return time.perf_counter() - stopped_at[0], result.status, result.steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    import torch

    from resnet_explorer.training import TrainConfig, train
    from resnet_explorer.training.presets import degradation_config
    from resnet_explorer.training.trainer import load_config_data

    config = TrainConfig(steps=1000, batch_size=64, device="cpu", image_size=args.image_size, eval_every=30,
                         probe_every=10)
    data = load_config_data(config)
    print(f"resnet56, batch 64, {args.image_size} px, {torch.get_num_threads()} torch threads")
    worst = 0.0
    for when in ("at a random moment", "evaluating"):
        latencies = []
        for _ in range(args.tries):
            seconds, status, steps = stop_once(data, config, when)
            assert status == "stopped", status
            latencies.append(seconds)
        worst = max(worst, *latencies)
        print(f"  stopped {'while ' if when == 'evaluating' else ''}{when}: median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
              f"({args.tries} tries)")
    print(f"worst stop latency {worst:.2f} s (target <= 2 s): {'ok' if worst <= 2 else 'OVER'}")

    preset = degradation_config(device="cpu")
    result = train("resnet56", preset, data=load_config_data(preset))
    share = result.eval_seconds / result.seconds
    print(f"preset resnet56: evaluation took {result.eval_seconds:.1f} s of {result.seconds:.1f} s = {100 * share:.1f}% "
          f"({len(result.evals)} evaluations; target <= 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
