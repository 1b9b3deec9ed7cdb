"""`single_lesions` against one forward pass over the same images (and, with --naive, against
deleting each unit in turn and running the whole net each time).

    python bench/lesion_bench.py [--model resnet56] [--images 1000] [--size 16] [--rounds 3] [--threads N] [--naive]

Random weights (the cost does not depend on them), seeded normal images, eval mode, the batch
size `single_lesions` picks. One warm-up call each, then the calls alternate for ``--rounds``
rounds; medians are printed with their ratio. Goal (issue 12): resnet56, 1,000 images of 16 px,
single-unit lesions in <= 30 s on a 2-core machine. Caching every unit's input makes them cost
about L/2 + 1 forward passes for L units (resnet56: 27 units, about 14.5 passes) instead of L + 1.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from resnet_explorer import build_model  # noqa: E402
from resnet_explorer.analysis.lesion import _batch, deletable_units, lesioned, single_lesions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, 2 on a 2-core machine)")
    parser.add_argument("--naive", action="store_true", help="also time the uncached way (L + 1 full passes)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_model(args.model, num_classes=10, device="cpu").eval()
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(args.images, 3, args.size, args.size, generator=gen)
    labels = torch.randint(0, 10, (args.images,), generator=gen)
    batch = _batch(model, images, None)
    names = [u.name for u in deletable_units(model) if u.deletable]

    def forward() -> None:
        with torch.no_grad():
            for i in range(0, len(images), batch):
                model(images[i:i + batch])

    def lesions() -> None:
        single_lesions(model, images, labels, batch_size=batch)

    def naive() -> None:
        forward()
        for name in names:
            with lesioned(model, [name]):
                forward()

    cases = {"one forward pass": forward, "single_lesions": lesions}
    if args.naive:
        cases["naive (no cache)"] = naive
    times: dict[str, list[float]] = {name: [] for name in cases}
    for f in cases.values():
        f()  # warm-up
    for _ in range(args.rounds):
        for name, f in cases.items():
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)

    print(f"{args.model}, {args.images} images of {args.size} px, batch {batch}, {len(names)} deletable units, "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds (on a shared machine the best round is the "
          "steadiest figure)")
    base, best_base = statistics.median(times["one forward pass"]), min(times["one forward pass"])
    for name, ts in times.items():
        med, best = statistics.median(ts), min(ts)
        print(f"  {name:18s} median {med:7.2f} s ({med / base:5.1f} x), best {best:7.2f} s ({best / best_base:5.1f} x "
              f"one forward pass); rounds: {', '.join(f'{t:.2f}' for t in ts)}")
    expected = 1 + sum(len(names) - i for i in range(len(names))) / len(names)  # passes-equivalent, equal units
    print(f"  cached estimate (equal cost per unit): {expected:.1f} x; goal: single_lesions <= 30 s")


if __name__ == "__main__":
    main()
