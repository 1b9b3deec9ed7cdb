"""Block graph + counts for the deepest named nets, against the 2 s target on a 2-core CPU.

    python bench/graph_bench.py

Prints each timing (best and median of 5, after one warm-up) and its ratio to the target.
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_explorer import ModelSpec, count_parameters  # noqa: E402
from resnet_explorer.models.graph import build_graph  # noqa: E402
from resnet_explorer.plots import plot_block_graph  # noqa: E402

TARGET_S = 2.0


def timed(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


for name in ("resnet1202", "preact_resnet1001", "resnet152"):
    spec = ModelSpec.from_name(name)

    def job(spec=spec):
        graph = build_graph(spec)
        assert graph.total_params == count_parameters(spec)
        graph.stage_rows()
        graph.unit_rows()
        return graph

    best, median = timed(job)
    fig_best, _ = timed(lambda: plot_block_graph(job()))
    print(f"{name:18s} graph+counts best {best:.2f} s, median {median:.2f} s "
          f"(target {TARGET_S:.0f} s: ratio {median / TARGET_S:.2f}); with figure {fig_best:.2f} s")
