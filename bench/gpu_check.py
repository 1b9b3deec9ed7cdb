"""The trainer (probes every 10 steps) against a bare PyTorch loop, images per second, in one process.

    python bench/gpu_check.py [--device cuda] [--model resnet56] [--batches 512,2048] [--steps 60] [--warmup 20]

Issue 13, part 3: on a GPU, bf16 autocast and channels_last, resnet56 at 32 px; goal: the trainer at
>= 0.90 of the bare loop (an H100 ran the bare loop at about 17k img/s at batch 512 and 43k at 2048).
Both sides train the same net on the same device from the same seed, with SGD + momentum + weight
decay, no augmentation and no data loader (the images sit on the device, as the trainer keeps them).
The bare loop is timed over `--steps` steps after `--warmup` steps, with a synchronize at both ends.
The trainer is timed over the same steps in one run, between its logged rows of steps `--warmup`
and `--warmup + --steps`, less any evaluation between them: probes, logging and stop checks are
included. `--warmup` is 1 or a multiple of 10, the steps the trainer logs.

Runs on the CPU too (`--device cpu --model resnet8 --batches 32 --steps 5 --warmup 1`), which is
how its CPU path is tested; its figures there mean nothing for the GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from resnet_explorer import ModelSpec, build_model  # noqa: E402
from resnet_explorer.data import load_data, normalize  # noqa: E402
from resnet_explorer.training import TrainConfig, train  # noqa: E402

LOG_EVERY = 10  # the trainer logs step 1, every 10th step and the last


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, warmup: int,
              device: torch.device, bf16: bool, channels_last: bool) -> float:
    """Images per second of a plain training loop over (x, y) already on `device`."""
    torch.manual_seed(0)
    model = build_model(spec, device=str(device))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    n = len(x)
    started = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            started = time.perf_counter()
        i = (step * batch) % max(1, n - batch + 1)
        xb, yb = x[i:i + batch], y[i:i + batch]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = loss_fn(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return steps * batch / (time.perf_counter() - started)


def trainer_rate(spec: ModelSpec, data, batch: int, steps: int, warmup: int, device: str, bf16: bool,
                 channels_last: bool) -> float:
    """Images per second of the trainer's steady steps (probes every 10 steps), from one run.

    A listener notes the clock and the evaluation time so far at the logged rows of steps `warmup`
    and `warmup + steps` (logging reads the loss, which waits for the device), so the span between
    them is `steps` steps with their probes, logging and stop checks, less any evaluation.
    """
    marks: dict[int, tuple[float, float]] = {}
    held: list = []

    def listen(event) -> None:
        if event.kind == "start":
            held.append(event.data.result)
        elif event.kind == "step" and event.step in (warmup, warmup + steps):
            marks[event.step] = (time.perf_counter(), held[0].eval_seconds)

    config = TrainConfig(dataset=data.name, steps=warmup + steps, batch_size=batch,
                         image_size=data.train_images.shape[-1], augment=False, device=device,
                         precision="bf16" if bf16 else "fp32", channels_last=channels_last, probe_every=10,
                         log_every=LOG_EVERY, lr=0.05, seed=0)
    result = train(spec, config, data=data, listeners=[listen])
    if result.status != "done":
        raise RuntimeError(f"trainer run ended {result.status}: {result.message}")
    (t0, e0), (t1, e1) = marks[warmup], marks[warmup + steps]
    return steps * batch / ((t1 - t0) - (e1 - e0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--batches", default="512,2048")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast (the default on CUDA is bf16)")
    args = parser.parse_args()
    if args.warmup != 1 and args.warmup % LOG_EVERY:
        parser.error(f"--warmup must be 1 or a multiple of {LOG_EVERY}: the trainer is timed between logged steps")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    device = torch.device(args.device)
    bf16 = device.type == "cuda" and not args.fp32
    channels_last = device.type == "cuda"
    batches = [int(b) for b in args.batches.split(",")]
    spec = ModelSpec.from_name(args.model, num_classes=10)
    images = max(batches) * 4
    data = load_data("shapes", seed=0, train_size=images, test_size=256, image_size=args.image_size)
    x = normalize(data.train_images, data.mean, data.std).to(device)
    y = data.train_labels.to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.model} at {args.image_size} px on {name}, {'bf16' if bf16 else 'fp32'}"
          f"{', channels_last' if channels_last else ''}; {args.steps} timed steps after {args.warmup}")
    for batch in batches:
        bare = bare_loop(spec, x, y, batch, args.steps, args.warmup, device, bf16, channels_last)
        ours = trainer_rate(spec, data, batch, args.steps, args.warmup, args.device, bf16, channels_last)
        print(f"batch {batch:5d}: bare loop {bare:9,.0f} img/s | trainer, probes every 10 steps {ours:9,.0f} img/s"
              f" | ratio {ours / bare:.2f} (goal >= 0.90)")


if __name__ == "__main__":
    main()
