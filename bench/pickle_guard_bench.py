"""What scanning a checkpoint's pickle before loading it costs: `check_torch_file` against `torch.load`.

    python bench/pickle_guard_bench.py [--models resnet18,resnet50,resnet1202] [--rounds 3]

Each net's freshly initialised state dict is saved with torch.save (zip format) into a temporary
folder; then, ``--rounds`` times each, the opcode scan alone and `torch.load(weights_only=True)`
alone. Medians are printed with their ratio (scan / load), measured in this one run. The last line
times the refusal of the 64-level hash bomb the tests build (its load would not end).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from resnet_explorer import build_model  # noqa: E402
from resnet_explorer.pickle_guard import Refused, check_torch_file  # noqa: E402
from tests.test_hostile_inputs import _bomb_in_a_zip  # noqa: E402  (the bomb the tests refuse)


def _median_seconds(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet18,resnet50,resnet1202")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'model':<12}{'tensors':>9}{'MB':>8}{'scan ms':>10}{'load ms':>10}{'scan/load':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            state = build_model(name, device="cpu", confirm_large=True).state_dict()
            path = Path(tmp) / f"{name}.pth"
            torch.save(state, path)
            check_torch_file(path, path.name)  # warm-up: the file in the page cache for both
            torch.load(path, weights_only=True)
            scan = _median_seconds(lambda p=path: check_torch_file(p, p.name), args.rounds)
            load = _median_seconds(lambda p=path: torch.load(p, weights_only=True), args.rounds)
            print(f"{name:<12}{len(state):>9,}{path.stat().st_size / 1e6:>8.1f}{scan * 1e3:>10.1f}{load * 1e3:>10.1f}"
                  f"{scan / load:>11.2f}")
        bomb = Path(tmp) / "bomb.pth"
        _bomb_in_a_zip(bomb)
        started = time.perf_counter()
        try:
            check_torch_file(bomb, bomb.name)
            print("hash bomb: NOT refused")
        except Refused:
            print(f"hash bomb ({bomb.stat().st_size:,} bytes, 2^64 to hash): refused in "
                  f"{(time.perf_counter() - started) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
