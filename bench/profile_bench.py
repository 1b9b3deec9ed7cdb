"""`profile_units` against one forward pass over the same images, with and without lesions.

    python bench/profile_bench.py [--model resnet50] [--images 8] [--size 224] [--rounds 1] [--threads N]

Random weights (freshly initialised: the cost does not depend on them, the profile's numbers do,
so they are not a finding about any trained net), seeded normal images, the batch size
`profile_units` picks. One warm-up call each, then ``--rounds`` rounds; medians are printed with
their ratio to one plain forward pass over the images. Single-unit lesions restart from the
cached input of the deleted unit, so L lesions cost about L/2 + 1 forward passes (resnet50: 16
units, about 9).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from resnet_explorer import build_model  # noqa: E402
from resnet_explorer.analysis.profile import _batch, profile_units  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, 2 on a 2-core machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_model(args.model, device="cpu", confirm_large=True).eval()
    images = torch.randn(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    batch = _batch(model, images, None)

    def forward() -> None:
        with torch.no_grad():
            for i in range(0, len(images), batch):
                model(images[i:i + batch])

    calls = {"forward": forward,
             "profile, no lesions": lambda: profile_units(model, images, lesions=False),
             "profile with lesions": lambda: profile_units(model, images)}
    times: dict[str, list[float]] = {k: [] for k in calls}
    for call in calls.values():
        call()  # warm-up
    for _ in range(args.rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["forward"])
    print(f"{args.model}, {args.images} images of {args.size} px, batch {batch}, {torch.get_num_threads()} threads, "
          f"random weights")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:22s} {t:7.2f} s  ({t / base:5.1f} x one forward pass)")


if __name__ == "__main__":
    main()
