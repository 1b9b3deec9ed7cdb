"""Loss landscapes around trained weights, "lite" (Li, Xu, Taylor, Studer & Goldstein 2018,
"Visualizing the Loss Landscape of Neural Nets", https://arxiv.org/abs/1712.09913, Figs. 1 and 5).

The loss and accuracy of a fixed training subset are measured at theta + a * d1 (1-D) or
theta + a * d1 + b * d2 (2-D) for a, b on an evenly spaced grid in [-span, span], where theta are
the trained weights and d1, d2 random Gaussian directions with *filter normalisation* (the paper's
Sec. 4): every filter of a direction is rescaled to the norm of the same filter of the weights, so
that nets whose layers have different scales (and a ReLU net's scale invariance) do not distort
the picture.

As in the paper:
- the directions are zero on BatchNorm parameters and biases (every parameter with ndim <= 1);
- BatchNorm runs in eval mode with the run's running statistics, which are not recomputed at any
  grid point (the paper recomputes nothing either).

Departures and choices:
- The paper evaluates the whole training set; here a subset of at most `MAX_LANDSCAPE_IMAGES`
  images (`run_landscape` takes the first ones spread over the classes), so a 2-D plot of a small
  net takes minutes on a laptop CPU, not GPU-hours.
- Each direction's parameters are drawn from their own generator, seeded by a CRC-32 of
  (seed, direction, parameter name, shape), not from one stream: a net and its plain twin (same
  names and shapes) get identical directions on every parameter they share, the projection
  shortcuts a residual net has in addition do not shift the other draws, and a landscape is
  reproducible across processes (Python's `hash` is salted per process; CRC-32 is not).
- The weights are never written: every grid point is evaluated with
  `torch.func.functional_call(model, point_params, x)`, which swaps the perturbed tensors in for
  the call only. Grid points are evaluated one after another with the images in batches of
  `batch_size`; evaluating 2 or 4 points at once with `torch.func.vmap` (which turns every conv
  into a grouped conv) was 1.2-6x slower per point on a 2-core CPU (bench/landscape_bench.py,
  resnet20, 512 images of 16 px), and the loop costs one forward pass per point.
- The paper's convexity measure is the ratio of the Hessian's extreme eigenvalues; `summarize`
  reports a cheaper one: the share of interior grid points where a second difference along a grid
  line is negative (the surface curves down there).
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call

from ..limits import (
    MAX_BATCH_SIZE,
    MAX_LANDSCAPE_GRID,
    MAX_LANDSCAPE_IMAGES,
    MAX_LANDSCAPE_SPAN,
    MAX_SEED,
    check_int,
)
from ..runs import Run
from .common import AnalysisStopped, eval_mode

__all__ = [
    "LANDSCAPE_BATCH", "MAX_LANDSCAPE_GRID", "MAX_LANDSCAPE_IMAGES", "MAX_LANDSCAPE_SPAN", "AnalysisStopped",
    "LandscapeResult", "filter_normalized_direction", "landscape", "run_landscape", "summarize",
]

LANDSCAPE_BATCH = 512  # images per forward pass by default: memory stays bounded whatever the image count
_FILTER_EPS = 1e-10  # keeps a zero filter of the direction from dividing by zero
_CURVE_TOL = 1e-6  # a second difference counts as negative below -_CURVE_TOL * (largest |loss| + 1)


@dataclass
class LandscapeResult:
    """What `landscape` measured.

    Attributes:
        rows: one row per grid point, alpha-major for 2-D (alpha varies slowest): "alpha", "beta"
            (0.0 for a 1-D landscape: its points lie on the beta = 0 line of the 2-D one with the
            same seed), "loss" (mean cross-entropy) and "accuracy" (0..1) on the subset.
        dims: 1 or 2.
        grid: points per axis (odd, so that (0, 0), the trained weights, is a point).
        span: the grid covers [-span, span] on each axis.
        seed: the directions' seed.
        images: how many images every point was evaluated on.
        note: one line on how the subset was chosen, for captions ("" when the caller chose it).
    """

    rows: pd.DataFrame
    dims: int
    grid: int
    span: float
    seed: int
    images: int
    note: str = ""

    def surface(self, value: str = "loss") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(alphas, betas, z) with z[j, i] the value at (alphas[i], betas[j]), the layout plotly's
        contour and surface take; for a 1-D result betas is [0.0] and z has one row."""
        alphas = np.unique(self.rows["alpha"].to_numpy(float))
        betas = np.unique(self.rows["beta"].to_numpy(float))
        table = self.rows.pivot_table(index="beta", columns="alpha", values=value, aggfunc="first")
        return alphas, betas, table.reindex(index=betas, columns=alphas).to_numpy(float)

    def along_alpha(self) -> LandscapeResult:
        """This landscape along beta = 0 as a 1-D one (itself when it is 1-D): the 1-D landscape of the same seed."""
        if self.dims == 1:
            return self
        rows = self.rows[self.rows["beta"] == 0.0].sort_values("alpha").reset_index(drop=True)
        return replace(self, rows=rows, dims=1)

    def line(self, value: str = "loss") -> tuple[np.ndarray, np.ndarray]:
        """(alphas, values) along beta = 0: the whole 1-D landscape, or the middle row of a 2-D one."""
        row = self.rows[self.rows["beta"] == 0.0].sort_values("alpha")
        return row["alpha"].to_numpy(float), row[value].to_numpy(float)


def _direction_seed(seed: int, index: int, name: str, shape: torch.Size) -> int:
    key = f"{seed}|{index}|{name}|{tuple(shape)}".encode()
    return zlib.crc32(key)


def filter_normalized_direction(model: nn.Module, seed: int = 0, index: int = 0) -> dict[str, torch.Tensor]:
    """A random direction in weight space with filter normalisation (Li et al. 2018, Sec. 4).

    Every parameter with ndim > 1 (conv and linear weights) gets a Gaussian tensor whose filters
    (slices along dim 0: a conv's output channels, a linear layer's rows) are each rescaled to the
    Frobenius norm of the same filter of the weight; a zero filter of the weight stays zero.
    Parameters with ndim <= 1 (BatchNorm scales and shifts, biases) get zeros, as in the paper.

    Args:
        model: the net; its parameters are read, never written.
        seed: 0..`MAX_SEED`.
        index: which direction (0 for d1, 1 for d2; any whole number >= 0 works).

    Returns:
        Parameter name -> direction tensor (same shape, dtype and device as the parameter), for
        every parameter of the model. Each is drawn from a generator seeded with a CRC-32 of
        (seed, index, name, shape), so twins sharing a name and shape share the draw.
    """
    check_int("seed", seed, 0, MAX_SEED)
    check_int("direction index", index, 0, MAX_SEED)
    out = {}
    for name, param in model.named_parameters():
        weight = param.detach()
        if weight.ndim <= 1:
            out[name] = torch.zeros_like(weight)
            continue
        gen = torch.Generator().manual_seed(_direction_seed(seed, index, name, weight.shape))
        d = torch.randn(weight.shape, generator=gen, dtype=torch.float32)
        w = weight.to(device="cpu", dtype=torch.float32)
        scale = w.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + _FILTER_EPS)  # (out_channels,)
        d = d * scale.view(-1, *[1] * (d.ndim - 1))
        out[name] = d.to(device=weight.device, dtype=weight.dtype)
    return out


def _grid_values(grid: int, span: float) -> list[float]:
    """`grid` evenly spaced values in [-span, span], the middle one exactly 0.0."""
    c = grid // 2
    return [span * (i - c) / c for i in range(grid)] if c else [0.0]


def _check_grid(dims: int, grid: int, span: float, batch_size: int) -> None:
    if type(dims) is not int or dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    check_int("grid", grid, 3, MAX_LANDSCAPE_GRID)
    if grid % 2 == 0:
        raise ValueError(f"grid must be odd so that the trained weights (0, 0) are a grid point, got {grid}")
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not math.isfinite(span) \
            or not 0 < span <= MAX_LANDSCAPE_SPAN:
        raise ValueError(f"span must be a number above 0 and at most {MAX_LANDSCAPE_SPAN:g}, got {span!r}")
    check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)


def _check_images(images: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError("images must be a float tensor (N, C, H, W), normalised as the model's training data")
    check_int("images", len(images), 1, MAX_LANDSCAPE_IMAGES)
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor of shape ({len(images)},), one class per image")


@torch.no_grad()
def landscape(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    dims: int = 1,
    grid: int = 21,
    span: float = 1.0,
    seed: int = 0,
    batch_size: int = LANDSCAPE_BATCH,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> LandscapeResult:
    """Loss and accuracy of `images` at theta + a * d1 (+ b * d2) over a grid (Li et al. 2018).

    The model runs in eval mode (BatchNorm uses the run's running statistics at every point) and
    its weights are never written: each point's weights go in through `functional_call`. Mode is
    restored on return and on any error.

    Args:
        model: a classifier on any device.
        images: (N, C, H, W) float, normalised as the model's training data; 1..`MAX_LANDSCAPE_IMAGES`.
        labels: (N,) int64 classes.
        dims: 1 (a line through theta along d1) or 2 (a plane spanned by d1 and d2).
        grid: odd number of points per axis, 3..`MAX_LANDSCAPE_GRID`; grid**dims evaluations.
        span: the grid covers [-span, span], 0 < span <= `MAX_LANDSCAPE_SPAN` (the paper: 1).
        seed: the directions' seed (`filter_normalized_direction` indices 0 and 1).
        batch_size: images per forward pass.
        progress: called as progress(done, total) before the first point and after every point.
        stop: when set, the analysis stops before the next image batch and raises `AnalysisStopped`.

    Returns:
        A `LandscapeResult` with one row per grid point.

    Raises:
        ValueError: a bad dims, grid, span, batch size or image/label tensor (before any forward pass),
            or a label outside the model's classes.
        AnalysisStopped: `stop` was set.
    """
    _check_grid(dims, grid, span, batch_size)
    _check_images(images, labels)
    check_int("seed", seed, 0, MAX_SEED)
    span = float(span)
    params = {n: p.detach() for n, p in model.named_parameters() if p.ndim > 1}  # the rest stay as they are
    if not params:
        raise ValueError("the model has no conv or linear weights to perturb")
    device = next(iter(params.values())).device
    images, labels = images.to(device), labels.to(device)
    d1 = {n: d for n, d in filter_normalized_direction(model, seed, 0).items() if n in params}
    d2 = {n: d for n, d in filter_normalized_direction(model, seed, 1).items() if n in params} if dims == 2 else {}
    values = _grid_values(grid, span)
    points = [(a, b) for a in values for b in (values if dims == 2 else [0.0])]
    total = len(points)
    rows = []
    with eval_mode(model):  # every module's own mode comes back, also after an error
        if progress is not None:
            progress(0, total)
        for done, (a, b) in enumerate(points, start=1):
            point = {n: p + a * d1[n] + b * d2[n] if d2 else p + a * d1[n] for n, p in params.items()}
            loss, accuracy = _evaluate(model, point, images, labels, batch_size, stop)
            rows.append({"alpha": a, "beta": b, "loss": loss, "accuracy": accuracy})
            if progress is not None:
                progress(done, total)
    return LandscapeResult(rows=pd.DataFrame(rows, columns=["alpha", "beta", "loss", "accuracy"]), dims=dims,
                           grid=grid, span=span, seed=seed, images=len(images))


def _evaluate(model: nn.Module, point: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
              batch_size: int, stop: threading.Event | None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the model with `point`'s weights swapped in."""
    total_loss = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    for start in range(0, len(images), batch_size):
        if stop is not None and stop.is_set():
            raise AnalysisStopped("loss landscape stopped on request")
        y = labels[start:start + batch_size]
        out = functional_call(model, point, (images[start:start + batch_size],)).float()  # (B, classes)
        if int(y.min()) < 0 or int(y.max()) >= out.shape[1]:
            raise ValueError(f"labels must be classes 0..{out.shape[1] - 1} of the model, got {int(y.min())}.."
                             f"{int(y.max())}")
        total_loss += nn.functional.cross_entropy(out, y, reduction="sum").double()
        correct += (out.argmax(1) == y).sum()
    n = len(images)
    return total_loss.item() / n, correct.item() / n


def run_landscape(
    run: Run,
    *,
    dims: int = 1,
    grid: int = 21,
    span: float = 1.0,
    images: int = 512,
    seed: int = 0,
    batch_size: int = LANDSCAPE_BATCH,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> LandscapeResult:
    """`landscape` of a saved run on its own training images.

    The subset is the first `images` images of the run's training split (regenerated or re-read
    from its config) taken round-robin over the classes (`spread_over_classes`), so a landscape of
    a net and one of its plain twin trained on the same data see the same images.

    Raises:
        ValueError: the run was loaded without its model, or a bad argument (`landscape`); `images`
            is checked before any data is read.
    """
    check_int("images", images, 1, MAX_LANDSCAPE_IMAGES)
    _check_grid(dims, grid, span, batch_size)
    check_int("seed", seed, 0, MAX_SEED)
    if run.model is None:
        raise ValueError(f"run {run.id} was loaded without its model (model.pt); load it with with_model=True")
    sample = run.sample("train", images)
    chosen = sample.indices
    note = f"{len(chosen):,} training images spread over the classes"
    if len(chosen) < images:
        note += f" (the split has {len(chosen):,}; {images:,} asked for)"
    result = landscape(run.model, sample.images, sample.labels, dims=dims, grid=grid, span=span, seed=seed,
                       batch_size=batch_size, progress=progress, stop=stop)
    result.note = note
    return result


def summarize(result: LandscapeResult) -> dict[str, float]:
    """Numbers a caption can state about a landscape.

    Returns:
        "centre_loss": loss at the trained weights (0, 0); "min_loss", "max_loss" over the grid;
        "edge_loss": mean loss over the grid's boundary (the two ends of a 1-D line);
        "edge_rise": edge_loss / centre_loss; "centre_accuracy", "min_accuracy";
        "nonconvex": share (0..1) of second differences along grid lines, taken at interior points
        (along alpha, and along beta for 2-D), that are negative: 0 for a bowl, about 0.5 for noise.
        A cheap stand-in for the paper's Hessian eigenvalue ratio. NaN losses count as neither.
        "bends": how many of those second differences are negative; "curvatures": how many were
        counted (finite), so a caption can say how many points a difference of shares is.
    """
    _, _, z = result.surface("loss")  # (betas, alphas)
    centre = result.rows[(result.rows["alpha"] == 0.0) & (result.rows["beta"] == 0.0)]
    centre_loss = float(centre["loss"].iloc[0]) if len(centre) else math.nan
    edge = np.concatenate([z[0], z[-1], z[1:-1, 0], z[1:-1, -1]]) if z.shape[0] > 1 else z[0, [0, -1]]
    diffs = [z[:, :-2] - 2 * z[:, 1:-1] + z[:, 2:]]
    if z.shape[0] > 2:
        diffs.append(z[:-2, :] - 2 * z[1:-1, :] + z[2:, :])
    d2 = np.concatenate([d.ravel() for d in diffs])
    d2 = d2[np.isfinite(d2)]
    finite = z[np.isfinite(z)]
    tol = _CURVE_TOL * (float(np.abs(finite).max()) + 1.0) if finite.size else 0.0
    acc = result.rows["accuracy"].to_numpy(float)
    edge_loss = float(np.nanmean(edge)) if np.isfinite(edge).any() else math.nan
    return {
        "centre_loss": centre_loss,
        "min_loss": float(np.nanmin(z)) if finite.size else math.nan,
        "max_loss": float(np.nanmax(z)) if finite.size else math.nan,
        "edge_loss": edge_loss,
        "edge_rise": edge_loss / centre_loss if centre_loss > 0 else math.nan,
        "centre_accuracy": float(centre["accuracy"].iloc[0]) if len(centre) else math.nan,
        "min_accuracy": float(np.nanmin(acc)) if len(acc) else math.nan,
        "nonconvex": float((d2 < -tol).mean()) if d2.size else math.nan,
        "bends": int((d2 < -tol).sum()),
        "curvatures": int(d2.size),
    }
