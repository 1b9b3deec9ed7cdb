"""The degradation preset's wall time from the CLI, and each net's speed beside a bare PyTorch loop.

    python bench/degradation_speed.py [--seeds 0] [--bare-steps 100]

1. `python -m resnet_explorer degradation --seeds S --no-weights` in a temporary folder, timed as
   a whole (process start to exit: data, four nets per seed, probes every 10 steps, evaluation,
   writing the runs). Targets on a 2-core CPU: one seed <= 3 min (moonshot 60 s), three <= 6 min.
2. For each net, images/s of the preset's runs (steps x batch / the run's own seconds) beside a
   bare loop: the same model, data, batch and optimizer, no probes, no evaluation, no events.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare(model_name: str, steps: int) -> float:
    """Images/s of a plain PyTorch loop on the preset's data and batch (after 10 warm-up steps)."""
    import torch
    from torch import nn

    from resnet_explorer import build_model
    from resnet_explorer.data import normalize
    from resnet_explorer.training.presets import degradation_config
    from resnet_explorer.training.trainer import build_optimizer, load_config_data

    config = degradation_config(device="cpu")
    data = load_config_data(config)
    torch.manual_seed(0)
    net = build_model(model_name, num_classes=10, device="cpu")
    opt = build_optimizer(net, config)
    loss_fn = nn.CrossEntropyLoss()
    b = config.batch_size
    perm = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(0))
    net.train()
    for i in range(steps + 10):
        if i == 10:
            start = time.perf_counter()
        idx = perm[(i * b) % (len(perm) - b):][:b]
        loss = loss_fn(net(normalize(data.train_images[idx], data.mean, data.std)), data.train_labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * b / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--bare-steps", type=int, default=100)
    args = parser.parse_args()
    import torch

    out = Path(tempfile.mkdtemp(prefix="degradation_speed_"))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "resnet_explorer", "degradation", "--seeds", args.seeds, "--no-weights",
                    "--runs", str(out)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    total = time.perf_counter() - started
    n_seeds = len(args.seeds.split(","))
    target = 180 if n_seeds == 1 else 360 if n_seeds <= 3 else float("inf")
    print(f"CLI preset, {n_seeds} seed(s), {torch.get_num_threads()} torch threads: {total:.0f} s "
          f"(target <= {target:.0f} s: {'ok' if total <= target else 'OVER'})")
    speeds: dict[str, list[float]] = {}
    for f in out.glob("*/run.json"):
        info = json.loads(f.read_text())
        images = info["steps"] * info["config"]["batch_size"]
        speeds.setdefault(info["spec_name"], []).append(images / info["seconds"])
    print("\n| net | preset run img/s | bare loop img/s | ratio |\n| --- | ---: | ---: | ---: |")
    for name in ("plain20", "plain56", "resnet20", "resnet56"):
        ours = sum(speeds[name]) / len(speeds[name])
        loop = bare(name, args.bare_steps)
        print(f"| {name} | {ours:.0f} | {loop:.0f} | {ours / loop:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
