"""`path_gradients` (Veit et al. 2016, Fig. 6) against one ordinary forward + backward pass.

    python bench/paths_bench.py [--model resnet56] [--images 64] [--size 16] [--draws 10] [--rounds 3] [--threads N]

Random weights (the cost does not depend on them), eval mode, seeded inputs. The baseline is one
forward pass plus ``loss.backward()`` (weight gradients included, as a training step computes
them). The measurement is one forward pass and len(ks) x draws gated backward passes to the first
unit's input; a path of length k only runs the backward of its k residual branches, so a pass
costs about half a full one on average. Medians over ``--rounds`` after one warm-up each.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from resnet_explorer import build_model  # noqa: E402
from resnet_explorer.analysis.paths import path_gradients  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads; on a busy shared machine 1 is the steadiest")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_model(args.model, num_classes=10, device="cpu").eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.images, 3, args.size, args.size, generator=g)
    y = torch.randint(0, 10, (args.images,), generator=g)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def paths():
        return path_gradients(model, x, y, draws=args.draws, batch_size=args.images)

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    step()
    result = paths()
    base = statistics.median(timed(step) for _ in range(args.rounds))
    ours = statistics.median(timed(paths) for _ in range(max(1, args.rounds)))
    model.zero_grad(set_to_none=True)
    n = result.num_units
    print(f"{args.model}: {n} units, {n + 1} lengths x {args.draws} draws = {(n + 1) * args.draws} measurements, "
          f"{result.backward_passes} backward passes (k = 0 and k = n measured once), "
          f"{args.images} images of {args.size} px, {torch.get_num_threads()} thread(s)")
    print(f"one forward + backward: {base * 1000:8.1f} ms")
    print(f"path_gradients:         {ours * 1000:8.1f} ms  ({ours / result.backward_passes * 1000:.1f} ms per pass)")
    print(f"ratio: {ours / base:.1f}x one forward + backward")
    print(f"effective range ({result.fraction:.0%}): {result.effective}, peak k = {result.peak_k}")


if __name__ == "__main__":
    main()
