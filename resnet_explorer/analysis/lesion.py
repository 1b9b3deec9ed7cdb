"""Lesion study: delete or reorder residual units of a trained net and measure held-out error.

Veit, Wilber and Belongie 2016, "Residual Networks Behave Like Ensembles of Relatively Shallow
Networks" (https://arxiv.org/abs/1605.06431), Figs. 3-5: deleting one unit of a ResNet barely
changes its error (except at the downsampling units), while deleting one layer of a plain net
wrecks it; error grows smoothly with the number of units deleted or pairs swapped.

How a unit is deleted:

- a residual unit loses its branch F: a forward hook on `residual_tap` returns zeros, the
  shortcut stays, so the unit computes relu(shortcut(x)) (post-activation) or shortcut(x)
  (pre-activation). As in the paper, a downsampling unit keeps its projection or zero-padding
  shortcut and only loses F.
- a plain unit (no shortcut) is replaced by the identity (a forward hook returns its input), which
  needs equal input and output shapes; a unit that changes the shape (stride 2 or more channels)
  cannot be deleted and is reported so, as the paper deleted only such layers of VGG.

Reordering swaps pairs of units of the same stage whose input and output shapes match (never a
stage's downsampling unit) by reassigning the stage's `nn.Sequential` entries; every analysis
restores them, removes its hooks and restores each module's train/eval mode in `finally`. All
evaluation is in eval mode, so BatchNorm is a fixed affine map and a batch's composition changes
nothing.

Speed: nothing before the first deleted (or moved) unit changes, so each image batch runs through
the intact net once, keeping every unit's input, and each configuration restarts from the input
of its first changed unit. Single-unit lesions of an L-unit net then cost about L/2 + 1 full
forward passes instead of L + 1.

Departure from the paper: Veit et al. report CIFAR-10 test error of nets trained for that; here
the error is measured on the run's held-out split (its first N images, spread over the classes).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..limits import MAX_LESION_CONFIGS, MAX_LESION_DRAWS, MAX_LESION_IMAGES, MAX_SEED, check_int
from ..models.resnet import ResNet
from .common import AnalysisStopped, auto_batch, out_of_memory_as_one_line

__all__ = [
    "AUTO_BATCH", "DEFAULT_LESION_DRAWS", "DEFAULT_LESION_IMAGES", "LESION_CACHE_BYTES", "MAX_LESION_CONFIGS",
    "MAX_LESION_DRAWS", "MAX_LESION_IMAGES", "AnalysisStopped", "LesionConfig", "cached_passes", "LesionResult", "LesionStudy", "UnitInfo", "by_k", "deletable_units",
    "k_lesions", "lesion_study", "lesioned", "reordered", "reorderings", "single_lesions",
]

DEFAULT_LESION_IMAGES = 1_000
DEFAULT_LESION_DRAWS = 5
LESION_CACHE_BYTES = 256 * 2**20  # unit inputs kept per batch; the automatic batch size keeps under it
AUTO_BATCH = 256  # largest automatic batch

LesionKind = Literal["single", "k_lesions", "reorder"]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class UnitInfo:
    """One unit as the lesion study sees it."""

    name: str  # "layer2.0"
    position: int  # 0-based, input to output over all stages
    stage: int  # 1-based, as layer1..layer4
    index_in_stage: int
    in_channels: int
    out_channels: int
    stride: int
    residual: bool  # has a shortcut
    deletable: bool
    swappable: bool  # input and output shapes match: may trade places with another such unit of its stage
    reason: str  # how it is deleted, or why it cannot be

    @property
    def downsampling(self) -> bool:
        """Halves the resolution (stride 2)."""
        return self.stride != 1

    @property
    def changes_shape(self) -> bool:
        return self.stride != 1 or self.in_channels != self.out_channels


def deletable_units(model: nn.Module) -> list[UnitInfo]:
    """Every unit of `model`, input to output, with whether and how it can be deleted.

    A residual unit always can (its branch is zeroed, its shortcut kept). A plain unit can only
    where the identity can take its place: stride 1 and as many output as input channels.

    Raises:
        ValueError: `model` is not a `ResNet`.
    """
    _check_model(model)
    infos = []
    position = 0
    for s, stage in enumerate(model.stages, start=1):
        for i, unit in enumerate(stage):
            same = unit.stride == 1 and unit.in_channels == unit.out_channels
            if unit.has_shortcut:
                deletable = True
                reason = f"branch F zeroed, {unit.shortcut_kind.replace('_', '-')} shortcut kept"
            elif same:
                deletable = True
                reason = "replaced by the identity (same input and output shape)"
            else:
                deletable = False
                change = [f"stride {unit.stride}"] if unit.stride != 1 else []
                if unit.in_channels != unit.out_channels:
                    change.append(f"{unit.in_channels} -> {unit.out_channels} channels")
                reason = f"cannot be deleted: it changes the shape ({', '.join(change)}) and has no shortcut"
            infos.append(UnitInfo(f"layer{s}.{i}", position, s, i, unit.in_channels, unit.out_channels, unit.stride,
                                  unit.has_shortcut, deletable, same, reason))
            position += 1
    return infos


@dataclass
class LesionResult:
    """One analysis of one net.

    Attributes:
        kind: "single" (each deletable unit deleted in turn), "k_lesions" (k random units deleted
            at once) or "reorder" (k random pairs of units swapped).
        rows: one row per measurement, ready for CSV. "single": unit, position, stage,
            index_in_stage, downsampling, changes_shape, deletable, how, error, loss,
            delta_error, delta_loss (error and loss NaN where the unit cannot be deleted).
            "k_lesions": k, draw, units (names deleted, space-separated), error, loss,
            delta_error, delta_loss. "reorder": k, draw, swaps ("layer1.2<->layer1.5 ..."),
            error, loss, delta_error, delta_loss. error is the fraction misclassified, loss
            the mean cross-entropy, deltas are against the intact net.
        baseline_error: error of the intact net on the same images.
        baseline_loss: its mean cross-entropy.
        num_images: images evaluated.
        num_classes: the net's outputs (chance error is 1 - 1 / num_classes).
        num_units: units in the net.
        max_k: the largest k possible (deletable units, or disjoint swappable pairs); 0 for "single".
        residual: the net has shortcuts.
        model: the spec's name, e.g. "resnet56".
        depth: the spec's depth (a net and its plain twin share it).
    """

    kind: LesionKind
    rows: pd.DataFrame
    baseline_error: float
    baseline_loss: float
    num_images: int
    num_classes: int
    num_units: int
    max_k: int
    residual: bool
    model: str
    depth: int

    @property
    def chance_error(self) -> float:
        return 1 - 1 / self.num_classes


@dataclass
class LesionStudy:
    """What `lesion_study` found: the analyses asked for (None where not asked for or impossible)."""

    label: str
    single: LesionResult | None = None
    k_lesions: LesionResult | None = None
    reorder: LesionResult | None = None
    notes: list[str] = field(default_factory=list)  # e.g. why an analysis was skipped


def by_k(result: LesionResult) -> pd.DataFrame:
    """Per k of a "k_lesions" or "reorder" result: mean, std, min and max error over the draws.

    Returns:
        Columns k, draws, mean, std, min, max, sorted by k; a first row k = 0 holds the intact
        net's error (std 0).
    """
    if result.kind == "single":
        raise ValueError("by_k needs a k_lesions or reorder result, not single-unit lesions")
    rows = [{"k": 0, "draws": 1, "mean": result.baseline_error, "std": 0.0,
             "min": result.baseline_error, "max": result.baseline_error}]
    if len(result.rows):
        g = result.rows.groupby("k")["error"]
        table = pd.DataFrame({"draws": g.size(), "mean": g.mean(), "std": g.std(ddof=0), "min": g.min(),
                              "max": g.max()}).reset_index()
        rows.extend(table.to_dict("records"))
    return pd.DataFrame(rows, columns=["k", "draws", "mean", "std", "min", "max"])


# --- deleting and reordering units in place ---------------------------------------------------

def _zero_branch(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(output)


def _identity(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return args[0]


def _delete_hooks(units: Sequence[nn.Module], positions: Iterable[int]) -> list:
    """Hooks deleting the units at `positions` (all deletable); the caller removes them."""
    handles = []
    try:
        for p in positions:
            unit = units[p]
            if unit.has_shortcut:
                handles.append(unit.residual_tap.register_forward_hook(_zero_branch))
            else:
                handles.append(unit.register_forward_hook(_identity))
    except BaseException:
        for h in handles:
            h.remove()
        raise
    return handles


def _swap(stages: Sequence[nn.Sequential], layout: Sequence[tuple[int, int]], swaps: Iterable[tuple[int, int]]) -> None:
    for a, b in swaps:
        (sa, ia), (sb, ib) = layout[a], layout[b]
        first, second = stages[sa][ia], stages[sb][ib]
        stages[sa][ia], stages[sb][ib] = second, first


def _restore_order(stages: Sequence[nn.Sequential], units: Sequence[nn.Module]) -> None:
    """Put every unit back at its position (`units`: the intact order); untouched entries stay."""
    p = 0
    for stage in stages:
        for i, module in enumerate(list(stage)):
            if module is not units[p]:
                stage[i] = units[p]
            p += 1


@contextmanager
def lesioned(model: nn.Module, names: Iterable[str]) -> Iterator[nn.Module]:
    """`model` with the named units deleted while inside the block (hooks, removed on exit).

    Raises:
        ValueError: an unknown name, or a unit that cannot be deleted (see `deletable_units`).
    """
    infos = {u.name: u for u in deletable_units(model)}
    positions = []
    for name in names:
        if name not in infos:
            raise ValueError(f"{name!r} is not a unit of this net (units are {_name_range(infos)})")
        if not infos[name].deletable:
            raise ValueError(f"{name} {infos[name].reason}")
        positions.append(infos[name].position)
    handles = _delete_hooks([u for _, u in model.units()], positions)
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


@contextmanager
def reordered(model: nn.Module, swaps: Iterable[tuple[str, str]]) -> Iterator[nn.Module]:
    """`model` with pairs of units of the same stage swapped, in order, while inside the block.

    Raises:
        ValueError: an unknown name, units of different stages, or a unit whose input and output
            shapes differ (a stage's downsampling unit).
    """
    infos = {u.name: u for u in deletable_units(model)}
    pairs = []
    for a, b in swaps:
        for name in (a, b):
            if name not in infos:
                raise ValueError(f"{name!r} is not a unit of this net (units are {_name_range(infos)})")
            if not infos[name].swappable:
                raise ValueError(f"{name} changes the shape, so it cannot trade places with another unit")
        if infos[a].stage != infos[b].stage:
            raise ValueError(f"{a} and {b} are in different stages; only units of one stage can be swapped")
        pairs.append((infos[a].position, infos[b].position))
    units = [u for _, u in model.units()]
    try:
        _swap(model.stages, _layout(model), pairs)
        yield model
    finally:
        _restore_order(model.stages, units)


# --- the evaluation engine --------------------------------------------------------------------

@dataclass(frozen=True)
class LesionConfig:
    """A changed net: units deleted (positions) and pairs swapped (positions), relative to the intact one."""

    deleted: tuple[int, ...] = ()
    swaps: tuple[tuple[int, int], ...] = ()

    @property
    def start(self) -> int:
        """The first position that differs from the intact net."""
        return min([*self.deleted, *(p for pair in self.swaps for p in pair)])


def cached_passes(model: ResNet, images: torch.Tensor, configs: Sequence[LesionConfig], *, batch_size: int,
                  intact: Callable[[int, torch.Tensor], None], changed: Callable[[int, int, torch.Tensor], None],
                  stop: threading.Event | None, progress: Progress | None = None, done: int = 0,
                  total: int | None = None, observe: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
                  stopped: Callable[[], Exception] | None = None) -> int:
    """The engine every lesion and the unit profile share: each batch once through the intact net, keeping
    every unit's input, then every changed net (`LesionConfig`) from the input of its first changed unit.

    In eval mode and without gradients; the model's modes, unit order and hooks are as before however it ends.

    Args:
        intact: called with (first image of the batch, the intact net's logits).
        changed: called with (config index from 0, first image of the batch, that net's logits).
        observe: called with (unit position, its input, its output) in the intact pass.
        progress: gets (done, total) after every (batch, net) pair; `done` and `total` let several
            calls share one count.
        stopped: makes the exception raised when `stop` is set (default `AnalysisStopped`).

    Returns:
        The passes done (`done` plus this call's).
    """
    units = [u for _, u in model.units()]
    layout = _layout(model)
    stages = model.stages
    param = next(model.parameters())
    n = len(images)
    batches = math.ceil(n / batch_size)
    total = total if total is not None else done + batches * (1 + len(configs))

    def check() -> None:
        if stop is not None and stop.is_set():
            raise stopped() if stopped is not None else AnalysisStopped("lesion study stopped on request")

    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            for first in range(0, n, batch_size):
                check()
                x = images[first:first + batch_size].to(device=param.device, dtype=param.dtype)
                cache = []  # cache[p]: the input of unit p, (B, C_p, H_p, W_p)
                h = model.forward_stem(x)
                for p, unit in enumerate(units):
                    cache.append(h)
                    out = unit(h)
                    if observe is not None:
                        observe(p, h, out)
                    h = out
                intact(first, model.forward_head(model.forward_final(h)))
                done += 1
                if progress is not None:
                    progress(done, total)
                for j, config in enumerate(configs):
                    check()
                    start = config.start
                    handles = _delete_hooks(units, config.deleted)
                    try:
                        order = units
                        if config.swaps:
                            _swap(stages, layout, config.swaps)
                            order = [u for stage in stages for u in stage]
                        h = cache[start]
                        for unit in order[start:]:
                            h = unit(h)
                        logits = model.forward_head(model.forward_final(h))
                    finally:
                        for handle in handles:
                            handle.remove()
                        if config.swaps:
                            _restore_order(stages, units)
                    changed(j, first, logits)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                del cache
    finally:
        _restore_order(stages, units)
        for module, mode in modes:
            module.training = mode
    return done


def _evaluate(model: ResNet, images: torch.Tensor, labels: torch.Tensor, configs: Sequence[LesionConfig], *,
              batch_size: int, progress: Progress | None, stop: threading.Event | None,
              done: int = 0, total: int | None = None) -> tuple[list[float], list[float]]:
    """Error and mean loss of the intact net (first) and of every config, over all images (`cached_passes`)."""
    n = len(images)
    wrong = torch.zeros(1 + len(configs), dtype=torch.float64)
    loss = torch.zeros(1 + len(configs), dtype=torch.float64)
    device = next(model.parameters()).device

    def score(j: int, first: int, logits: torch.Tensor) -> None:
        y = labels[first:first + batch_size].to(device)
        wrong[j] += (logits.argmax(dim=1) != y).sum().item()
        loss[j] += F.cross_entropy(logits.float(), y, reduction="sum").item()

    cached_passes(model, images, configs, batch_size=batch_size, intact=lambda first, logits: score(0, first, logits),
                  changed=lambda j, first, logits: score(j + 1, first, logits), stop=stop, progress=progress,
                  done=done, total=total)
    return (wrong / n).tolist(), (loss / n).tolist()


def _layout(model: ResNet) -> list[tuple[int, int]]:
    """(stage index from 0, index in stage) of every unit position."""
    return [(s, i) for s, stage in enumerate(model.stages) for i in range(len(stage))]


def _name_range(infos: dict) -> str:
    names = list(infos)
    return f"{names[0]} .. {names[-1]}" if names else "none"


# --- checks -----------------------------------------------------------------------------------

def _check_model(model: object) -> None:
    if not isinstance(model, ResNet):
        raise ValueError(f"the lesion study needs a ResNet from build_model, got {type(model).__name__}")


def _check_inputs(model: ResNet, images: object, labels: object) -> None:
    _check_model(model)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError("images must be a normalised float tensor of shape (N, C, H, W)")
    check_int("images", len(images), 1, MAX_LESION_IMAGES)
    if images.shape[1] != model.spec.in_channels:
        raise ValueError(f"images have {images.shape[1]} channels; {model.spec.name} takes {model.spec.in_channels}")
    if (not isinstance(labels, torch.Tensor) or labels.shape != (len(images),)
            or labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8)):
        raise ValueError(f"labels must be an integer tensor of shape ({len(images)},), one class per image")
    classes = model.spec.num_classes
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"labels must be classes 0..{classes - 1} of the net's {classes} outputs")


def _batch(model: ResNet, images: torch.Tensor, batch_size: int | None) -> int:
    """`batch_size` checked, or the automatic one: unit inputs under LESION_CACHE_BYTES, all of it
    under the memory budget (`auto_batch`)."""
    return auto_batch(model, images, batch_size, cap=AUTO_BATCH, cache_bytes=LESION_CACHE_BYTES)


def _check_configs(count: int) -> None:
    if count > MAX_LESION_CONFIGS:
        raise ValueError(f"that asks for {count:,} changed nets; at most {MAX_LESION_CONFIGS:,} per call "
                         "(give fewer draws or fewer values of k)")


def _check_ks(ks: Iterable[int] | None, max_k: int, what: str) -> list[int]:
    if ks is None:
        return list(range(1, max_k + 1))
    values = sorted({check_int("k", k, 1, max_k) for k in ks})
    if not values:
        raise ValueError(f"give at least one k (1 to {max_k} {what})")
    return values


def _prepare(model: ResNet, images: torch.Tensor, labels: torch.Tensor, draws: int | None = None,
             seed: int | None = None) -> None:
    _check_inputs(model, images, labels)
    if draws is not None:
        check_int("draws", draws, 1, MAX_LESION_DRAWS)
    if seed is not None:
        check_int("seed", seed, 0, MAX_SEED)


# --- the three analyses: plans (what to evaluate) and results ---------------------------------

def _single_plan(infos: list[UnitInfo]) -> list[LesionConfig]:
    return [LesionConfig(deleted=(u.position,)) for u in infos if u.deletable]


def _k_plan(infos: list[UnitInfo], ks: list[int], draws: int, seed: int) -> list[tuple[int, int, LesionConfig]]:
    """(k, draw, config): k of the deletable units, drawn without replacement; each k has its own
    stream (seed, k), so a k's draws do not depend on which other ks were asked for."""
    positions = [u.position for u in infos if u.deletable]
    plan = []
    for k in ks:
        rng = np.random.default_rng([seed, k, 0])
        for d in range(draws):
            chosen = sorted(positions[i] for i in rng.choice(len(positions), size=k, replace=False))
            plan.append((k, d, LesionConfig(deleted=tuple(chosen))))
    return plan


def _max_pairs(infos: list[UnitInfo]) -> int:
    per_stage: dict[int, int] = {}
    for u in infos:
        per_stage[u.stage] = per_stage.get(u.stage, 0) + u.swappable
    return sum(n // 2 for n in per_stage.values())


def _reorder_plan(infos: list[UnitInfo], ks: list[int], draws: int, seed: int) -> list[tuple[int, int, LesionConfig]]:
    """(k, draw, config): k disjoint pairs of swappable units, each pair within one stage, every
    such pair equally likely at each pick (a stage is chosen in proportion to its pairs left)."""
    plan = []
    for k in ks:
        rng = np.random.default_rng([seed, k, 1])
        for d in range(draws):
            free: dict[int, list[int]] = {}
            for u in infos:
                if u.swappable:
                    free.setdefault(u.stage, []).append(u.position)
            pairs = []
            for _ in range(k):
                stages = [s for s in free if len(free[s]) >= 2]
                weights = np.array([len(free[s]) * (len(free[s]) - 1) / 2 for s in stages])
                stage = stages[rng.choice(len(stages), p=weights / weights.sum())]
                a, b = sorted(int(i) for i in rng.choice(len(free[stage]), size=2, replace=False))
                pair = (free[stage][a], free[stage][b])
                del free[stage][b], free[stage][a]
                pairs.append(pair)
            plan.append((k, d, LesionConfig(swaps=tuple(sorted(pairs)))))
    return plan


def _result(model: ResNet, kind: LesionKind, rows: list[dict], base: tuple[float, float], n: int,
            max_k: int, columns: list[str]) -> LesionResult:
    spec = model.spec
    return LesionResult(kind=kind, rows=pd.DataFrame(rows, columns=columns), baseline_error=base[0],
                        baseline_loss=base[1], num_images=n, num_classes=spec.num_classes,
                        num_units=spec.num_units, max_k=max_k, residual=spec.residual, model=spec.name,
                        depth=spec.depth)


_SINGLE_COLUMNS = ["unit", "position", "stage", "index_in_stage", "downsampling", "changes_shape", "deletable", "how",
                   "error", "loss", "delta_error", "delta_loss"]
_K_COLUMNS = ["k", "draw", "units", "error", "loss", "delta_error", "delta_loss"]
_REORDER_COLUMNS = ["k", "draw", "swaps", "error", "loss", "delta_error", "delta_loss"]


def _single_result(model: ResNet, infos: list[UnitInfo], base: tuple[float, float],
                   measured: Iterator[tuple[float, float]], n: int) -> LesionResult:
    rows = []
    for u in infos:
        error, loss = next(measured) if u.deletable else (math.nan, math.nan)
        rows.append({"unit": u.name, "position": u.position, "stage": u.stage, "index_in_stage": u.index_in_stage,
                     "downsampling": u.downsampling, "changes_shape": u.changes_shape, "deletable": u.deletable,
                     "how": u.reason, "error": error, "loss": loss, "delta_error": error - base[0],
                     "delta_loss": loss - base[1]})
    return _result(model, "single", rows, base, n, 0, _SINGLE_COLUMNS)


def _k_result(model: ResNet, infos: list[UnitInfo], plan: list, base: tuple[float, float],
              measured: Iterator[tuple[float, float]], n: int) -> LesionResult:
    names = [u.name for u in infos]
    rows = []
    for k, d, config in plan:
        error, loss = next(measured)
        rows.append({"k": k, "draw": d, "units": " ".join(names[p] for p in config.deleted), "error": error,
                     "loss": loss, "delta_error": error - base[0], "delta_loss": loss - base[1]})
    return _result(model, "k_lesions", rows, base, n, sum(u.deletable for u in infos), _K_COLUMNS)


def _reorder_result(model: ResNet, infos: list[UnitInfo], plan: list, base: tuple[float, float],
                    measured: Iterator[tuple[float, float]], n: int) -> LesionResult:
    names = [u.name for u in infos]
    rows = []
    for k, d, config in plan:
        error, loss = next(measured)
        swaps = " ".join(f"{names[a]}<->{names[b]}" for a, b in config.swaps)
        rows.append({"k": k, "draw": d, "swaps": swaps, "error": error, "loss": loss,
                     "delta_error": error - base[0], "delta_loss": loss - base[1]})
    return _result(model, "reorder", rows, base, n, _max_pairs(infos), _REORDER_COLUMNS)


def _measure(model: ResNet, images: torch.Tensor, labels: torch.Tensor, configs: list[LesionConfig],
             batch_size: int | None, progress: Progress | None, stop: threading.Event | None,
             ) -> tuple[tuple[float, float], Iterator[tuple[float, float]]]:
    _check_configs(len(configs))
    bs = _batch(model, images, batch_size)
    asked = (f"evaluating {len(configs):,} nets on {len(images)} image{'s' if len(images) != 1 else ''} in batches "
             f"of {bs}; give fewer images or a smaller batch size")
    with out_of_memory_as_one_line(asked):
        errors, losses = _evaluate(model, images, labels, configs, batch_size=bs, progress=progress, stop=stop)
    return (errors[0], losses[0]), iter(zip(errors[1:], losses[1:], strict=True))


def single_lesions(model: ResNet, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int | None = None,
                   progress: Progress | None = None, stop: threading.Event | None = None) -> LesionResult:
    """Held-out error with each deletable unit deleted in turn (Veit et al. 2016, Figs. 3 and 4).

    Args:
        model: a `ResNet` (or its plain twin) on any device; its weights, unit order, hooks and
            modes are as before when this returns or raises.
        images: (N, C, H, W) float, normalised as the net's training data; 1 to `MAX_LESION_IMAGES`.
        labels: (N,) integer classes.
        batch_size: images per forward pass; None picks one that keeps the cached unit inputs
            under `LESION_CACHE_BYTES`.
        progress: called with (done, total) forward passes (one per batch per net).
        stop: when set, stops before the next forward pass and raises `AnalysisStopped`.

    Returns:
        A "single" `LesionResult`, one row per unit (error NaN where it cannot be deleted).

    Raises:
        ValueError: bad images, labels or batch size.
        AnalysisStopped: `stop` was set.
    """
    _prepare(model, images, labels)
    infos = deletable_units(model)
    base, measured = _measure(model, images, labels, _single_plan(infos), batch_size, progress, stop)
    return _single_result(model, infos, base, measured, len(images))


def k_lesions(model: ResNet, images: torch.Tensor, labels: torch.Tensor, *, draws: int = DEFAULT_LESION_DRAWS,
              seed: int = 0, ks: Iterable[int] | None = None, batch_size: int | None = None,
              progress: Progress | None = None, stop: threading.Event | None = None) -> LesionResult:
    """Held-out error with k random deletable units deleted at once (Veit et al. 2016, Fig. 5a).

    Args:
        draws: random sets of units per k, 1 to `MAX_LESION_DRAWS`.
        seed: seeds each k's draws (a k draws the same sets whichever other ks are asked for).
        ks: the values of k, each 1 to the number of deletable units; None: all of them.
        (the rest as `single_lesions`)

    Returns:
        A "k_lesions" `LesionResult`, one row per (k, draw); see `by_k` for mean and spread.

    Raises:
        ValueError: bad inputs, draws, seed or k, a net with no deletable unit, or more than
            `MAX_LESION_CONFIGS` nets to evaluate.
        AnalysisStopped: `stop` was set.
    """
    _prepare(model, images, labels, draws, seed)
    infos = deletable_units(model)
    max_k = sum(u.deletable for u in infos)
    if max_k == 0:
        raise ValueError(f"no unit of {model.spec.name} can be deleted: every unit changes the shape")
    ks = _check_ks(ks, max_k, "deletable units")
    _check_configs(len(ks) * draws)
    plan = _k_plan(infos, ks, draws, seed)
    base, measured = _measure(model, images, labels, [c for _, _, c in plan], batch_size, progress, stop)
    return _k_result(model, infos, plan, base, measured, len(images))


def reorderings(model: ResNet, images: torch.Tensor, labels: torch.Tensor, *, draws: int = DEFAULT_LESION_DRAWS,
                seed: int = 0, ks: Iterable[int] | None = None, batch_size: int | None = None,
                progress: Progress | None = None, stop: threading.Event | None = None) -> LesionResult:
    """Held-out error with k random disjoint pairs of units swapped (Veit et al. 2016, Fig. 5b).

    Only units whose input and output shapes match trade places, and only within their stage.
    k runs from 1 to the most disjoint pairs there are (per stage, half its swappable units).

    Args: as `k_lesions`.

    Returns:
        A "reorder" `LesionResult`, one row per (k, draw).

    Raises:
        ValueError: bad inputs, draws, seed or k, or a net with no stage of two swappable units.
        AnalysisStopped: `stop` was set.
    """
    _prepare(model, images, labels, draws, seed)
    infos = deletable_units(model)
    max_k = _max_pairs(infos)
    if max_k == 0:
        raise ValueError(f"{model.spec.name} has no stage with two units of matching shapes, so none can be swapped")
    ks = _check_ks(ks, max_k, "pairs")
    _check_configs(len(ks) * draws)
    plan = _reorder_plan(infos, ks, draws, seed)
    base, measured = _measure(model, images, labels, [c for _, _, c in plan], batch_size, progress, stop)
    return _reorder_result(model, infos, plan, base, measured, len(images))


def lesion_study(source: object, *, images: int | None = DEFAULT_LESION_IMAGES,
                 inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
                 analyses: Sequence[LesionKind] = ("single", "k_lesions", "reorder"),
                 draws: int = DEFAULT_LESION_DRAWS, seed: int = 0, ks: Iterable[int] | None = None,
                 reorder_ks: Iterable[int] | None = None, batch_size: int | None = None,
                 progress: Progress | None = None, stop: threading.Event | None = None) -> LesionStudy:
    """The analyses of Veit et al. 2016, Figs. 3-5, of a run or a net, in one pass over the images.

    Every image batch runs through the intact net once; all analyses' changed nets restart from
    its cached unit inputs, and `progress` counts their forward passes together.

    Args:
        source: a `Run` with saved weights (its held-out split is used) or a `ResNet` (give `inputs`).
        images: for a run, how many held-out images, 1 to `MAX_LESION_IMAGES`, spread over the
            classes (`spread_over_classes`); None: the whole split (at most `MAX_LESION_IMAGES`).
        inputs: for a net, (images, labels) as `single_lesions` takes them.
        analyses: any of "single", "k_lesions", "reorder".
        draws, seed, ks: as `k_lesions`; `reorder_ks` are `reorderings`' ks.
        batch_size, progress, stop: as `single_lesions`.

    Returns:
        A `LesionStudy`. An analysis the net does not allow (nothing deletable, nothing to swap) is
        None, with a note saying why.

    Raises:
        ValueError: a run without saved weights, bad counts, or an unknown analysis.
        AnalysisStopped: `stop` was set.
    """
    unknown = [a for a in analyses if a not in ("single", "k_lesions", "reorder")]
    if unknown or not analyses:
        raise ValueError(f"unknown analysis {unknown or '(none given)'}: choose from single, k_lesions, reorder")
    check_int("draws", draws, 1, MAX_LESION_DRAWS)
    check_int("seed", seed, 0, MAX_SEED)
    notes: list[str] = []
    if isinstance(source, ResNet):
        if inputs is None:
            raise ValueError("give inputs=(images, labels) to study a net without a run")
        model, (x, y) = source, inputs
        label = source.spec.name
    else:
        model, x, y, label, note = _run_inputs(source, images)
        if note:
            notes.append(note)
    _check_inputs(model, x, y)
    infos = deletable_units(model)
    plans: dict[str, list] = {}
    k_values: dict[str, list[int]] = {}
    if "k_lesions" in analyses:
        max_k = sum(u.deletable for u in infos)
        if max_k:
            k_values["k_lesions"] = _check_ks(ks, max_k, "deletable units")
        else:
            notes.append(f"no unit of {model.spec.name} can be deleted, so none is deleted k at a time")
    if "reorder" in analyses:
        max_k = _max_pairs(infos)
        if max_k:
            k_values["reorder"] = _check_ks(reorder_ks, max_k, "pairs")
        else:
            notes.append(f"{model.spec.name} has no stage with two units of matching shapes, so none is reordered")
    # Counted before anything is drawn: the bound holds for the plans as well as the passes.
    _check_configs(sum(u.deletable for u in infos) * ("single" in analyses)
                   + sum(len(v) * draws for v in k_values.values()))
    if "single" in analyses:
        plans["single"] = _single_plan(infos)
    if "k_lesions" in k_values:
        plans["k_lesions"] = _k_plan(infos, k_values["k_lesions"], draws, seed)
    if "reorder" in k_values:
        plans["reorder"] = _reorder_plan(infos, k_values["reorder"], draws, seed)
    configs = [c if isinstance(c, LesionConfig) else c[2] for plan in plans.values() for c in plan]
    base, measured = _measure(model, x, y, configs, batch_size, progress, stop)
    study = LesionStudy(label=label, notes=notes)
    n = len(x)
    if "single" in plans:
        study.single = _single_result(model, infos, base, measured, n)
    if "k_lesions" in plans:
        study.k_lesions = _k_result(model, infos, plans["k_lesions"], base, measured, n)
    if "reorder" in plans:
        study.reorder = _reorder_result(model, infos, plans["reorder"], base, measured, n)
    return study


def _run_inputs(run: object, images: int | None) -> tuple[ResNet, torch.Tensor, torch.Tensor, str, str]:
    """A run's model and normalised held-out images (the first `images`, spread over the classes)."""
    from ..runs import Run

    if not isinstance(run, Run):
        raise ValueError(f"lesion_study needs a Run or a ResNet, got {type(run).__name__}")
    if images is not None:
        check_int("images", images, 1, MAX_LESION_IMAGES)
    if run.model is None:
        raise ValueError(f"run {run.id} has no saved weights (model.pt), so there is nothing to lesion")
    if images is None:
        sample = run.sample("test")
        if sample.available > MAX_LESION_IMAGES:
            raise ValueError(f"the held-out split has {sample.available:,} images, more than the "
                             f"{MAX_LESION_IMAGES:,} a lesion study takes: give images=N")
    else:
        sample = run.sample("test", images)
    note = ""
    if images is not None and images > sample.available:
        note = f"the held-out split has {sample.available:,} images; all of them are used ({images:,} asked for)"
    return run.model, sample.images, sample.labels, run.label, note
