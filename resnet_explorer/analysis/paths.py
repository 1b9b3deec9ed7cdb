"""Gradient per path length: residual networks as ensembles of short paths (Veit, Wilber and Belongie 2016).

Unrolled, a net of n residual units is 2^n paths from input to output: each unit is passed
either through its residual branch F or through its shortcut, and a path of length k goes
through k branches. `path_length_shares(n)` is how those paths spread over k (binomial, most of
them near n/2; the paper's Fig. 6a). `path_gradients` is the paper's measurement (Sec. 5,
Fig. 6b, c): one forward pass of a batch, then many backward passes that let the gradient through
the residual branch of k randomly drawn units and only through the shortcut of the other n - k,
so each pass measures the gradient of one path of length k at the input of the first unit. In the
paper the magnitude falls about exponentially with k (a measured curve need not: the figure's
caption states a per-unit factor only where a log-linear fit holds, `findings.lenses.PathShape`);
times the share of paths of each length it gives the total gradient per length, which in the
paper's 54-unit net comes almost all from paths of length 5 to 17: the paper reads a deep ResNet as
an ensemble of much shallower nets.

How this implementation reads the paper, and where it departs:

- The forward pass runs in eval mode, so BatchNorm is a fixed affine map with its running
  statistics and images do not interact; the paper measured on a trained net in the same state
  its test error is reported in. Every module's mode is restored afterwards.
- The loss is the summed cross-entropy, so the gradient at image i's input is that of image i's own
  loss. A measurement is the L2 norm of that per-image gradient (over channels and pixels),
  averaged over the images; it does not depend on the batch size. The paper reports "the norm of
  the gradient" without saying how the batch enters, so absolute values differ from its axis; the
  slope over k, the shares and the effective range do not depend on the choice.
- Gates are identity maps in the forward pass whose backward multiplies the gradient by a 0/1
  flag read when the backward pass runs, so one forward pass serves every draw (the graph is
  kept with ``retain_graph``). A closed gate returns no gradient, so autograd skips the unused
  branch: a path of length k costs about k branches' backward.
- In a post-activation unit the ReLU after the addition sits on every path, with its mask fixed
  by the forward pass; a projection or zero-padded shortcut is part of the shortcut path. Given
  the forward pass backprop is linear, so the gradients of all 2^n paths sum to the full gradient
  (the tests check this on both unit kinds).
- The paper multiplies by the number of paths of each length; the total here is weighted by their
  share (the number divided by 2^n), which only rescales it.
- Draws are independent uniform sets of k units (with repeats across draws where few sets exist);
  the paper took 1,000 measurements per length over random training batches.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..limits import MAX_PATH_DRAWS, MAX_PATH_IMAGES, MAX_PATH_PASSES, check_int
from .common import AnalysisStopped, eval_mode

__all__ = [
    "DEFAULT_BATCH", "DEFAULT_DRAWS", "DEFAULT_FRACTION", "MAX_PATH_DRAWS", "MAX_PATH_IMAGES", "MAX_PATH_PASSES",
    "AnalysisStopped", "PathGates", "PathResult", "effective_range", "path_gates", "path_gradients", "path_length_shares",
]

# Bounds on what one measurement may ask for live in limits.py (MAX_PATH_*).
DEFAULT_DRAWS = 10
DEFAULT_BATCH = 64  # images per forward pass: its graph is held through every backward pass
DEFAULT_FRACTION = 0.9  # share of the total gradient the effective range holds


# --- path-length distribution -----------------------------------------------------------------

def path_length_shares(n: int) -> np.ndarray:
    """Share of the 2^n paths of a net of `n` residual units that pass through k residual branches.

    C(n, k) / 2^n for k = 0..n, computed in log space (``math.lgamma``), so it stays finite for
    n = 10,000, where 2^n overflows a float; shares far in the tails underflow to 0.

    Returns:
        (n + 1,) float64 summing to 1.

    Raises:
        ValueError: n is not a whole number in [0, MAX_UNITS].
    """
    from ..limits import MAX_UNITS

    check_int("units", n, 0, MAX_UNITS)
    k = np.arange(n + 1)
    log_comb = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
    # Normalising by the sum (rather than by 2^n) cancels lgamma's rounding: the shares sum to 1.
    weights = np.exp(log_comb - log_comb.max())
    return weights / weights.sum()


def effective_range(ks: Iterable[int], totals: Iterable[float],
                    fraction: float = DEFAULT_FRACTION) -> tuple[int, int] | None:
    """The narrowest run of consecutive lengths whose total gradient holds `fraction` of the sum.

    Args:
        ks: measured path lengths, ascending.
        totals: total gradient per length (magnitude x share), >= 0, same order.
        fraction: in (0, 1].

    Returns:
        (first k, last k), both inclusive; among equally narrow runs the one holding most. None when
        no total is positive and finite.
    """
    _check_fraction(fraction)
    ks = [int(k) for k in ks]
    values = np.nan_to_num(np.asarray(list(totals), dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    values = np.clip(values, 0.0, None)
    if len(ks) != len(values):
        raise ValueError(f"ks and totals differ in length ({len(ks)} vs {len(values)})")
    whole = float(values.sum())
    if not whole > 0:
        return None
    target = fraction * whole * (1 - 1e-12)  # rounding must not push the whole range out
    best: tuple[int, float, int, int] | None = None  # (span, -held, first, last)
    left, held = 0, 0.0
    for right, value in enumerate(values):
        held += value
        while left < right and held - values[left] >= target:
            held -= values[left]
            left += 1
        if held >= target:
            key = (ks[right] - ks[left], -held, ks[left], ks[right])
            best = key if best is None or key < best else best
    assert best is not None  # the whole range holds everything
    return best[2], best[3]


# --- the measurement ------------------------------------------------------------------------------

@dataclass
class PathResult:
    """Gradient magnitude per path length, measured as Veit et al. 2016 (Fig. 6).

    Attributes:
        rows: one row per (k, draw): k (path length), draw (0-based), grad_norm (L2 norm of the
            gradient at the first unit's input through that one path, per image, averaged over images).
        summary: one row per measured k: k, share (of the 2^n paths with length k), mean_grad and
            std_grad (over draws, population std), total (mean_grad x share).
        num_units: n, the residual units of the net.
        draws: random unit sets per length.
        images: images measured.
        batch_size: images per forward pass.
        seed: seed of the draws.
        fraction: share of the total the `effective` range holds.
        effective: narrowest (first k, last k) holding `fraction` of the total over the measured
            lengths; None when every total is zero.
        peak_k: the length with the largest total.
        model: the spec's name, or the class name.
        pre_activation: whether the units are pre-activation (no ReLU after the addition).
        backward_passes: backward passes run (sets drawn twice in a batch are measured once).
        seconds: wall time of the measurement.
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    num_units: int
    draws: int
    images: int
    batch_size: int
    seed: int
    fraction: float
    effective: tuple[int, int] | None
    peak_k: int | None
    model: str
    pre_activation: bool
    backward_passes: int
    seconds: float

    def effective_range(self, fraction: float | None = None) -> tuple[int, int] | None:
        """The narrowest run of lengths holding `fraction` (default: this result's) of the total."""
        fraction = self.fraction if fraction is None else fraction
        return effective_range(self.summary["k"], self.summary["total"], fraction)


class PathGates:
    """Gates on every unit's two branches, and the first unit's input, while `path_gates` is open.

    Attributes:
        residual: (n,) bool, one switch per unit, read by the gates when each backward pass runs:
            True lets the gradient through the unit's residual branch only, False through its
            shortcut only. Set it between backward passes; one forward pass serves them all.
        first_input: the first unit's input in the latest forward pass, a leaf that requires grad
            (so ``torch.autograd.grad(loss, gates.first_input)`` is the gradient there); None before one.
    """

    def __init__(self, n: int) -> None:
        self.residual = np.zeros(n, dtype=bool)
        self.first_input: torch.Tensor | None = None


class _Gate(torch.autograd.Function):
    """Identity forward; backward passes the gradient only if the unit's switch selects this branch."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gates: PathGates, index: int, residual: bool) -> torch.Tensor:
        ctx.gates, ctx.index, ctx.residual = gates, index, residual
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        passes = bool(ctx.gates.residual[ctx.index]) == ctx.residual
        # None, not zeros: autograd then skips the closed branch's backward altogether.
        return (grad if passes else None), None, None, None


@contextmanager
def path_gates(model: nn.Module) -> Iterator[PathGates]:
    """Hooks that make each backward pass follow one path: see `PathGates`; removed on exit, also on error.

    Forward passes inside compute what they would without the hooks (the gates are identities and
    the first unit's input is only detached from the stem).

    Raises:
        ValueError: a plain net (no shortcuts), or a model without ``units()``.
    """
    units = _units(model)
    gates = PathGates(len(units))

    def capture(_module: nn.Module, args: tuple) -> tuple:
        gates.first_input = args[0].detach().requires_grad_()
        return (gates.first_input, *args[1:])

    def gate(index: int, residual: bool) -> Callable:
        return lambda _module, _args, output: _Gate.apply(output, gates, index, residual)

    handles = []
    try:
        handles.append(units[0].register_forward_pre_hook(capture))
        for i, unit in enumerate(units):
            handles.append(unit.residual_tap.register_forward_hook(gate(i, True)))
            handles.append(unit.shortcut_tap.register_forward_hook(gate(i, False)))
        yield gates
    finally:
        for handle in handles:
            handle.remove()
        gates.first_input = None



def _check_fraction(fraction: object) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    return float(fraction)


def _units(model: nn.Module) -> list[nn.Module]:
    units_fn = getattr(model, "units", None)
    if not callable(units_fn):
        raise ValueError("path gradients need a ResNet from build_model (a model with units())")
    units = [unit for _, unit in units_fn()]
    if not units:
        raise ValueError("the model has no residual units, so it has no paths to measure")
    if not all(getattr(unit, "shortcut_tap", None) is not None for unit in units):
        raise ValueError("a plain net (no shortcuts) has a single path, so there are no path lengths to measure; "
                         "pick a residual net")
    return units


def _check_ks(ks: Iterable[int] | None, n: int) -> list[int]:
    if ks is None:
        return list(range(n + 1))
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise ValueError(f"ks must be a list of path lengths from 0 to {n}, got {ks!r}")
    chosen = sorted({check_int("path length k", k, 0, n) for k in ks})
    if not chosen:
        raise ValueError(f"ks must name at least one path length from 0 to {n}")
    return chosen


def _check_data(model: nn.Module, images: object, labels: object) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float (N, C, H, W) tensor, got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    check_int("images", images.shape[0], 1, MAX_PATH_IMAGES)
    n = images.shape[0]
    if (not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.is_floating_point()
            or labels.is_complex() or labels.dtype == torch.bool):
        raise ValueError(f"labels must be an integer tensor of shape ({n},), got "
                         f"{getattr(labels, 'dtype', type(labels).__name__)} {tuple(getattr(labels, 'shape', ()))}")
    classes = getattr(getattr(model, "spec", None), "num_classes", None)
    if classes is not None and bool(((labels < 0) | (labels >= classes)).any()):
        raise ValueError(f"labels must lie in [0, {classes})")


def _draw(n: int, k: int, draw: int, seed: int) -> np.ndarray:
    """Draw `draw` of the units on a path of length k: the same for every batch and every ks."""
    rng = np.random.default_rng([seed, k, draw])
    return np.sort(rng.choice(n, size=k, replace=False))


def path_gradients(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    ks: Iterable[int] | None = None,
    batch_size: int = DEFAULT_BATCH,
    fraction: float = DEFAULT_FRACTION,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> PathResult:
    """Gradient magnitude of paths of each length at the first unit's input (Veit et al. 2016, Fig. 6).

    Each batch of `batch_size` images is one forward pass in eval mode; then, for every k in `ks`
    and each of `draws` random sets of k units, one backward pass of the summed cross-entropy goes
    through the residual branch of those units and only the shortcut of the others. Every batch
    uses the same sets, so a row averages its path's per-image gradient norm over all images.

    Args:
        model: a residual net from `build_model`, on any device; its weights, gradients (``.grad``)
            and modes are left as they were, and every hook is removed, also on error.
        images: (N, C, H, W) normalised float, 1 <= N <= MAX_PATH_IMAGES.
        labels: (N,) integer classes.
        draws: random sets of k units per length, 1..MAX_PATH_DRAWS.
        seed: seed of the draws.
        ks: path lengths to measure, each in 0..n; None: all of 0..n.
        batch_size: images per forward pass (its graph is held through all its backward passes).
        fraction: share of the total gradient the reported effective range holds, in (0, 1].
        progress: called with (backward passes done, total) after each one.
        stop: when set, the measurement stops before the next backward pass.

    Returns:
        A `PathResult` (CPU tables).

    Raises:
        ValueError: a plain net (no shortcuts), bad images, labels, ks or counts, or more than
            MAX_PATH_PASSES backward passes in all; one line each.
        AnalysisStopped: `stop` was set.
    """
    units = _units(model)
    n = len(units)
    _check_data(model, images, labels)
    check_int("draws", draws, 1, MAX_PATH_DRAWS)
    check_int("seed", seed, 0, 2**32 - 1)
    check_int("batch size", batch_size, 1, MAX_PATH_IMAGES)
    fraction = _check_fraction(fraction)
    ks = _check_ks(ks, n)
    count = images.shape[0]
    batches = math.ceil(count / batch_size)
    total = batches * len(ks) * draws
    if total > MAX_PATH_PASSES:
        raise ValueError(f"{batches} batch(es) x {len(ks)} lengths x {draws} draws is {total:,} backward passes; "
                         f"the limit is {MAX_PATH_PASSES:,}: use fewer lengths, draws or images")

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    sums = np.zeros((len(ks), draws), dtype=np.float64)  # per-image norms summed over images
    start = time.perf_counter()
    done = passes = 0
    with eval_mode(model), path_gates(model) as gates, torch.enable_grad():
        for first in range(0, count, batch_size):
            x = images[first:first + batch_size].detach().to(device, dtype)
            y = labels[first:first + batch_size].to(device, torch.int64)
            loss = F.cross_entropy(model(x), y, reduction="sum")
            for row, k in enumerate(ks):
                measured: dict[bytes, float] = {}  # one pass per distinct set (k = 0 and n have one)
                for draw in range(draws):
                    if stop is not None and stop.is_set():
                        raise AnalysisStopped(f"path measurement stopped after {done:,} of {total:,} backward passes")
                    chosen = _draw(n, k, draw, seed)
                    key = hashlib.blake2b(chosen.tobytes(), digest_size=16).digest()
                    if key not in measured:
                        gates.residual[:] = False
                        gates.residual[chosen] = True
                        (grad,) = torch.autograd.grad(loss, gates.first_input, retain_graph=True, allow_unused=True)
                        norms = 0.0 if grad is None else grad.detach().flatten(1).double().norm(dim=1).sum()  # (B,)
                        measured[key] = float(norms)
                        passes += 1
                    sums[row, draw] += measured[key]
                    done += 1
                    if progress is not None:
                        progress(done, total)
            del loss  # frees this batch's graph before the next forward pass

    grad_norm = sums / count
    rows = pd.DataFrame({
        "k": np.repeat(ks, draws).astype(np.int64),
        "draw": np.tile(np.arange(draws), len(ks)).astype(np.int64),
        "grad_norm": grad_norm.ravel(),
    })
    shares = path_length_shares(n)[ks]
    mean = grad_norm.mean(axis=1)
    summary = pd.DataFrame({"k": np.asarray(ks, dtype=np.int64), "share": shares, "mean_grad": mean,
                            "std_grad": grad_norm.std(axis=1), "total": mean * shares})
    totals = summary["total"].to_numpy()
    finite = np.isfinite(totals) & (totals > 0)
    spec = getattr(model, "spec", None)
    return PathResult(
        rows=rows, summary=summary, num_units=n, draws=draws, images=count, batch_size=batch_size, seed=seed,
        fraction=fraction, effective=effective_range(ks, totals, fraction),
        peak_k=int(ks[int(np.argmax(np.where(finite, totals, -1.0)))]) if finite.any() else None,
        model=getattr(spec, "name", type(model).__name__),
        pre_activation=bool(getattr(units[0], "pre_activation", False)),
        backward_passes=passes, seconds=time.perf_counter() - start,
    )
