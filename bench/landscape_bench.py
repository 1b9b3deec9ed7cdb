"""How long `landscape` takes, and its cost against one forward pass over the same images.

    python bench/landscape_bench.py [--images 512] [--image-size 16] [--cases 2d,1d,2d56] [--full] [--threads N]

Cases (goals from issue 12):
    2d     resnet20, 2-D 21 x 21 grid          goal <= 3 min
    1d     resnet20, 1-D 51 points             goal <= 30 s
    2d56   resnet56, 2-D 21 x 21 grid          goal <= 8 min
    vmap   one grid point looped vs 2/4 points at once with torch.func.vmap (the choice the code made)

Models are freshly initialised (timing does not depend on the weights), in eval mode, on the CPU;
the images are the embedded shapes training split at 16 px, normalised. "forward" is one eval
forward pass over the subset (median of 5, averaged over a measurement before and one after
the case). Without --full, the 2-D cases time the first
`--points` grid points and extrapolate to the full grid, labelled "extrapolated"; the 1-D case
always runs in full. A grid point costs one forward pass plus building the perturbed weights, so
the ratio per point should sit near 1. On a busy shared machine, `--threads 1` gives steadier
numbers: two torch threads fighting other processes for two cores can run 5-10x slower.
"""

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.func import functional_call, vmap  # noqa: E402

from resnet_explorer import build_model  # noqa: E402
from resnet_explorer.analysis.landscape import filter_normalized_direction, landscape  # noqa: E402
from resnet_explorer.data import (  # noqa: E402
    load_data,
    normalize,
    spread_over_classes,  # noqa: E402
)

GOALS = {"2d": ("resnet20", 2, 21, 180.0), "1d": ("resnet20", 1, 51, 30.0), "2d56": ("resnet56", 2, 21, 480.0)}


def forward_seconds(model: torch.nn.Module, x: torch.Tensor, rounds: int = 5) -> float:
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(rounds):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_case(name: str, x: torch.Tensor, y: torch.Tensor, full: bool, points: int) -> None:
    arch, dims, grid, goal = GOALS[name]
    torch.manual_seed(0)
    model = build_model(arch, device="cpu").eval()
    fwd_before = forward_seconds(model, x)
    total = grid ** dims
    stop = threading.Event()
    done = [0]

    def progress(d: int, t: int) -> None:
        done[0] = d
        if not full and dims == 2 and d >= points:
            stop.set()

    start = time.perf_counter()
    try:
        landscape(model, x, y, dims=dims, grid=grid, progress=progress, stop=stop)
    except RuntimeError:  # AnalysisStopped after `points` points
        pass
    seconds = time.perf_counter() - start
    fwd = (fwd_before + forward_seconds(model, x)) / 2  # before and after: load on a shared machine drifts
    measured = done[0]
    estimate = seconds * total / measured
    label = "measured" if measured == total else f"EXTRAPOLATED from {measured} of {total} points"
    verdict = "meets" if estimate <= goal else "MISSES"
    print(f"{name:5s} {arch} {dims}-D grid {grid}: {estimate:7.1f} s ({label}); forward over the subset "
          f"{fwd:.3f} s; {estimate / total:.3f} s per point = {estimate / total / fwd:.2f} forward passes; "
          f"{verdict} the goal of {goal:.0f} s", flush=True)


def time_vmap(x: torch.Tensor) -> None:
    """Per-point seconds: the loop the code uses vs k points per call under torch.func.vmap."""
    torch.manual_seed(0)
    model = build_model("resnet20", device="cpu").eval()
    params = {n: p.detach() for n, p in model.named_parameters() if p.ndim > 1}
    d = filter_normalized_direction(model, 0, 0)
    with torch.no_grad():
        def loop(alphas: torch.Tensor) -> None:
            for a in alphas.tolist():
                functional_call(model, {n: p + a * d[n] for n, p in params.items()}, (x,))

        def batched(alphas: torch.Tensor) -> None:
            stacked = {n: p + alphas.view(-1, *[1] * p.ndim) * d[n] for n, p in params.items()}
            vmap(lambda q: functional_call(model, q, (x,)))(stacked)

        for k in (2, 4):
            alphas = torch.linspace(-1, 1, k)
            for fn in (loop, batched):
                fn(alphas)  # warm-up
            times = {"loop": [], "vmap": []}
            for _ in range(3):  # alternate, so load on a shared machine hits both alike
                for key, fn in (("loop", loop), ("vmap", batched)):
                    t = time.perf_counter()
                    fn(alphas)
                    times[key].append((time.perf_counter() - t) / k)
            loop_s, vmap_s = statistics.median(times["loop"]), statistics.median(times["vmap"])
            print(f"vmap  {k} points per call: {vmap_s:.3f} s per point vs loop {loop_s:.3f} s per point "
                  f"(vmap / loop = {vmap_s / loop_s:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--cases", default="vmap,1d,2d,2d56")
    parser.add_argument("--full", action="store_true", help="run the 2-D grids in full instead of extrapolating")
    parser.add_argument("--points", type=int, default=21, help="2-D points timed before extrapolating")
    parser.add_argument("--threads", type=int, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data("shapes", seed=0, train_size=max(args.images, 10), test_size=10, image_size=args.image_size)
    idx = torch.tensor(spread_over_classes(data.train_labels, args.images))
    x = normalize(data.train_images[idx], data.mean, data.std)
    y = data.train_labels[idx]
    print(f"{len(x)} training images of {args.image_size} px, {torch.get_num_threads()} torch threads")
    for case in args.cases.split(","):
        if case == "vmap":
            time_vmap(x)
        else:
            time_case(case, x, y, args.full, args.points)


if __name__ == "__main__":
    main()
