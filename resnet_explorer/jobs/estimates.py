"""How long a preset takes here: the shipped example runs' recorded times, scaled by this machine's speed.

The example runs (examples/degradation) record the seconds each took (run.json's "seconds") on the
machine that made them. `preset_estimate` times a few training steps of their cheapest net here, now
(`step_seconds`: a busy machine is measured busy), and scales the recorded times of one seed by the
ratio of the two speeds; it is an estimate of the training time (starting the worker and loading the
data come on top), and says so in its text. When the timing cannot be made, the recorded times stand
alone and the text says whose machine they are from.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..devices import resolve_device
from ..models import ModelSpec, build_model
from ..runs import Run

TIMED_STEPS = 20  # steps timed after one warm-up step: about a second on a quiet 2-core CPU
TIMING_BUDGET = 2.0  # seconds of timing at most: a busy machine gets fewer steps timed (at least one)
MAX_AGE_SECONDS = 600.0  # how long `cached_preset_estimate` keeps a timing before timing again


@dataclass(frozen=True)
class Estimate:
    """Seconds a preset's runs take for one seed, and what the figure rests on.

    Attributes:
        seconds: the estimated training time of one seed's runs, one after another.
        recorded: the same runs' mean recorded time on the machine that made the examples.
        speed: how many times slower than that machine this one trained just now (None: not measured).
    """

    seconds: float
    recorded: float
    speed: float | None = None

    def text(self) -> str:
        """ "an estimate from a few training steps timed here just now: about 2.5 minutes", or, not measured,
        "an estimate from the example runs' recorded times: about 2 minutes on the machine that made them"."""
        if self.speed is not None:
            return f"an estimate from a few training steps timed here just now: {minutes_text(self.seconds)}"
        return (f"an estimate from the example runs' recorded times: {minutes_text(self.seconds)} on the machine "
                "that made them")


def minutes_text(seconds: float) -> str:
    """ "under a minute", "about 1.5 minutes", "about 6 minutes": to the half minute, rounded up."""
    if seconds < 60:
        return "under a minute"
    halves = math.ceil(seconds / 30) / 2
    return f"about {halves:g} minute{'' if halves == 1 else 's'}"


def recorded_seconds(runs: Sequence[Run]) -> dict[str, tuple[float, int]]:
    """Per model (spec name, in order of first appearance): the mean recorded seconds of one run over its seeds,
    and its steps. Runs without a recorded time or a step count (damaged, imported, unfinished) are left out."""
    times: dict[str, list[float]] = {}
    steps: dict[str, int] = {}
    for run in runs:
        seconds, done = run.info.get("seconds"), run.info.get("steps")
        if run.config is None or run.status != "done" or isinstance(seconds, bool) or isinstance(done, bool):
            continue
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            continue
        if not isinstance(done, int) or done <= 0:
            continue
        times.setdefault(run.spec.name, []).append(float(seconds))
        steps[run.spec.name] = done
    return {name: (statistics.fmean(values), steps[name]) for name, values in times.items()}


def step_seconds(spec: ModelSpec, batch_size: int, image_size: int, device: str = "cpu",
                 steps: int = TIMED_STEPS, budget: float = TIMING_BUDGET) -> float:
    """Seconds one SGD training step (forward, loss, backward, update) of `spec` takes here on a random batch:
    the mean of up to `steps` steps after one warm-up step, timed for at most `budget` seconds (at least one
    step). The mean, not the median: on a loaded CPU a step now and then takes several times the others, and a
    run's time is the sum of its steps."""
    dev = resolve_device(device)
    model = build_model(spec, device=str(dev), confirm_large=True).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, spec.in_channels, image_size, image_size, generator=generator).to(dev)
    y = torch.randint(0, spec.num_classes, (batch_size,), generator=generator).to(dev)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    step()  # warm-up: allocations, kernels chosen
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < max(1, steps) and (not times or time.perf_counter() < deadline):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.fmean(times)


def preset_estimate(runs: Sequence[Run], measure: Callable[[Run], float] | None = None) -> Estimate | None:
    """How long the preset of `runs` (the example runs, every model and seed) takes for one seed, here.

    Args:
        runs: the example runs; their recorded seconds per model are averaged over seeds and summed.
        measure: seconds per training step here of a run's net (default: `step_seconds` on the CPU with the run's
            batch and image size); it times the cheapest net only. None of it, or its failing, leaves the
            recorded times alone.

    Returns:
        The estimate; None when no run has a recorded time.
    """
    recorded = recorded_seconds(runs)
    if not recorded:
        return None
    total = sum(seconds for seconds, _ in recorded.values())
    cheapest = min(recorded, key=lambda name: recorded[name][0] / recorded[name][1])
    run = next(r for r in runs if r.spec.name == cheapest)
    seconds, steps = recorded[cheapest]
    if measure is None:
        def measure(run: Run) -> float:
            return step_seconds(run.spec, run.config.batch_size * run.config.world_size, run.config.image_size)
    try:
        here = float(measure(run))
    except (RuntimeError, ValueError, OSError):  # no such device, out of memory: the recorded times stand
        return Estimate(total, total)
    if not math.isfinite(here) or here <= 0:
        return Estimate(total, total)
    speed = here / (seconds / steps)
    return Estimate(total * speed, total, speed)


_cache: dict[tuple, tuple[float, Estimate | None]] = {}
_cache_lock = threading.Lock()


def cached_preset_estimate(runs: Sequence[Run], device: str = "cpu", max_age: float = MAX_AGE_SECONDS,
                           clock: Callable[[], float] = time.monotonic) -> Estimate | None:
    """`preset_estimate` of `runs` on `device`, timed at most once per `max_age` seconds in this process."""
    key = (device, tuple(sorted(r.id for r in runs)))
    now = clock()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < max_age:
            return hit[1]

    def measure(run: Run) -> float:
        return step_seconds(run.spec, run.config.batch_size * run.config.world_size, run.config.image_size, device)

    estimate = preset_estimate(runs, measure)
    with _cache_lock:
        _cache[key] = (now, estimate)
    return estimate
