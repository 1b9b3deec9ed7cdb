"""`attribute(..., "integrated_gradients")` against calling captum's IntegratedGradients directly.

    python bench/attribution_bench.py [--model resnet20] [--images 8] [--steps 50] [--rounds 5] [--threads N]

Same model (eval mode), seeded inputs, zero baselines, targets and steps in both; one warm-up
call each, then the calls alternate for ``--rounds`` rounds and the medians are printed with their
ratio. Target: ours / direct <= 1.2. "ours, targets=None" adds the forward pass that finds the
predicted classes, as the app calls it.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from captum.attr import IntegratedGradients  # noqa: E402

from resnet_explorer import build_model  # noqa: E402
from resnet_explorer.analysis import attribute  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads; on a busy shared machine 1 is the steadiest")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_model(args.model, device="cpu").eval()
    inputs = torch.randn(args.images, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        targets = model(inputs).argmax(dim=1)
    baselines = torch.zeros_like(inputs)

    def ours() -> torch.Tensor:
        return attribute(model, inputs, "integrated_gradients", targets=targets, steps=args.steps).maps

    def ours_predicted() -> torch.Tensor:
        return attribute(model, inputs, "integrated_gradients", steps=args.steps).maps

    def direct() -> torch.Tensor:
        maps, _ = IntegratedGradients(model).attribute(
            inputs, baselines=baselines, target=targets, n_steps=args.steps, return_convergence_delta=True
        )
        return maps

    runs = {"direct": direct, "ours": ours, "ours, targets=None": ours_predicted}
    assert torch.allclose(ours(), direct(), atol=1e-5), "ours and direct disagree"
    for fn in runs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    print(f"{args.model}, IG {args.steps} steps, {args.images} images, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:20s} median {medians[name]:.3f} s  min {min(t):.3f} s  (all: {', '.join(f'{v:.3f}' for v in t)})")
    # The minimum is the least disturbed run: on a shared machine it is the steadier ratio.
    print(f"  ratio ours / direct: median {medians['ours'] / medians['direct']:.3f}, "
          f"min {min(times['ours']) / min(times['direct']):.3f} (target <= 1.2); targets=None / direct: "
          f"median {medians['ours, targets=None'] / medians['direct']:.3f}")


if __name__ == "__main__":
    main()
