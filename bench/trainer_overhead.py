"""Trainer (probes every 10 steps) against a bare PyTorch loop: speed and peak memory.

    python bench/trainer_overhead.py [--model resnet20] [--batch-size 64] [--steps 70] [--rounds 3]

Same model, init, data, batch, normalisation and augmentation in both; each measurement runs in
its own process (peak RSS is per process), bare and trainer alternate, and the ratio of the
medians is printed. Target: trainer speed >= 0.90 of the bare loop (issue 3).
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WARMUP = 10


def worker(kind: str, model: str, batch: int, steps: int) -> dict:
    import torch
    from torch import nn

    from resnet_explorer import build_model
    from resnet_explorer.data import augment_batch, load_data, normalize
    from resnet_explorer.training import TrainConfig, train
    from resnet_explorer.training.trainer import build_optimizer

    data = load_data("shapes", seed=0)
    config = TrainConfig(steps=steps, batch_size=batch, probe_every=10, log_every=10, schedule="constant",
                         device="cpu", eval_every=10_000)
    if kind == "trainer":
        marks = {}

        def clock(event):
            if event.kind == "step" and event.step in (WARMUP, steps):
                marks[event.step] = time.perf_counter()

        train(model, config, data=data, listeners=[clock])
        seconds = marks[steps] - marks[WARMUP]
    else:
        torch.manual_seed(config.seed)
        net = build_model(model, num_classes=10, device="cpu")
        opt = build_optimizer(net, config)
        loss_fn = nn.CrossEntropyLoss()
        mean, std = data.mean, data.std
        gen = torch.Generator().manual_seed(1)
        perm = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(0))
        net.train()
        for i in range(steps):
            if i == WARMUP:
                start = time.perf_counter()
            idx = perm[i * batch:(i + 1) * batch]
            x = augment_batch(normalize(data.train_images[idx], mean, std), gen)
            loss = loss_fn(net(x), data.train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
        seconds = time.perf_counter() - start
    images = (steps - WARMUP) * batch
    return {"kind": kind, "img_per_s": images / seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=70)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=("bare", "trainer"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.batch_size, args.steps)))
        return
    results = {"bare": [], "trainer": []}
    for _ in range(args.rounds):
        for kind in ("bare", "trainer"):
            out = subprocess.run([sys.executable, __file__, "--worker", kind, "--model", args.model,
                                  "--batch-size", str(args.batch_size), "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True)
            results[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    speed = {k: statistics.median(r["img_per_s"] for r in v) for k, v in results.items()}
    rss = {k: statistics.median(r["peak_rss_mb"] for r in v) for k, v in results.items()}
    print(f"{args.model}, batch {args.batch_size}, CPU, probes every 10 steps, {args.rounds} rounds:")
    for k in ("bare", "trainer"):
        runs = ", ".join(f"{r['img_per_s']:.0f}" for r in results[k])
        print(f"  {k:8s} median {speed[k]:.0f} img/s ({runs}); peak RSS {rss[k]:.0f} MB")
    print(f"  speed ratio trainer/bare: {speed['trainer'] / speed['bare']:.3f} (target >= 0.90)")
    print(f"  peak memory ratio trainer/bare: {rss['trainer'] / rss['bare']:.3f}")


if __name__ == "__main__":
    main()
