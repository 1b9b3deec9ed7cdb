"""Unit profile: what each residual unit of a trained (or imported) net does to a set of images,
measured in eval mode without training.

Per unit, input to output, per image and then summarised over the images:

- residual ratio ||F(x)|| / ||x||: F(x) is the residual branch's output (what `residual_tap`
  sees) and x what the unit adds it to, the shortcut's output (what `shortcut_tap` sees): the
  unit's input for an identity shortcut, the projected (or zero-padded) input where the unit
  changes the shape. Norms are per-image L2 norms over (C, H, W), as the training probes take
  them (`training/probes.py`): `f_norm` and `x_norm` are their means over the images, so
  `ratio_of_means` = f_norm / x_norm is the probes' "ratio", while `ratio_mean`, `ratio_p10` and
  `ratio_p90` summarise the per-image ratios. A plain unit has no shortcut, hence no ratio (NaN);
  its F norm and input norm are recorded all the same. Veit et al. 2016 (Sec. 5) and Greff,
  Srivastava and Schmidhuber 2017 ("Highway and Residual Networks learn Unrolled Iterative
  Estimation", https://arxiv.org/abs/1612.07771) read a small ratio as a unit refining its input
  and a large one, typical where the resolution changes, as a unit computing a new representation.
- response std: the standard deviation of the unit's output over (C, H, W) per image, averaged
  over the images. The training probes' responses are per 3x3 conv (He et al. 2015, Fig. 7);
  this is the unit-level counterpart, measured after the addition (and the final ReLU of a
  post-activation unit).
- single-unit lesions: each deletable unit deleted in turn with `lesion.lesioned` (Veit et al.
  2016: a residual unit loses its branch and keeps its shortcut; a plain unit is replaced by the
  identity where the shapes allow; see `lesion.deletable_units`). With no labels, the intact net's
  own top-1 class stands in for the label, so `flip_rate` is the share of images whose top-1 class
  changes (what `lesion.single_lesions` reports as error with those labels); `prob_drop` is the
  mean drop in the probability of that class and `kl` the mean KL(intact || lesioned) in nats.
  Units that cannot be deleted keep NaN there, with `deletable` False and the reason in `how`.

Everything runs in eval mode (BatchNorm a fixed affine map) under `torch.no_grad`. Each image
batch runs through the intact net once, keeping every unit's input; each lesioned net restarts from
the input of its deleted unit (nothing before it changes), so L single-unit lesions cost about
L/2 + 1 forward passes per batch. Weights are never written; hooks are removed and every module's
mode restored in `finally`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..limits import MAX_USER_IMAGES, check_int
from ..models.resnet import ResNet
from ..reports.findings.lenses import profile_lesion_findings, profile_ratio_findings
from .common import AnalysisStopped, auto_batch, out_of_memory_as_one_line
from .lesion import LesionConfig, cached_passes, deletable_units

__all__ = [
    "AUTO_PROFILE_BATCH", "MAX_PROFILE_IMAGES", "PROFILE_CACHE_BYTES", "AnalysisStopped", "UnitProfile",
    "profile_units",
]

MAX_PROFILE_IMAGES = MAX_USER_IMAGES  # images profiled in one call; the caller loads and normalises them
PROFILE_CACHE_BYTES = 256 * 2**20  # unit inputs kept per batch; the automatic batch size keeps under it
AUTO_PROFILE_BATCH = 64  # largest automatic batch

Progress = Callable[[int, int], None]

COLUMNS = [
    "unit", "position", "stage", "index", "in_channels", "out_channels", "stride", "shortcut", "downsampling",
    "changes_shape", "ratio_mean", "ratio_std", "ratio_p10", "ratio_p90", "ratio_of_means", "f_norm", "x_norm",
    "in_norm", "response_std", "response_std_p10", "response_std_p90", "deletable", "how", "flip_rate",
    "prob_drop", "kl",
]


@dataclass
class UnitProfile:
    """What `profile_units` measured.

    Attributes:
        rows: one row per unit, input to output (columns `COLUMNS`): unit ("layer2.0"), position
            (0-based over all stages), stage (1-based), index (in its stage), in_channels,
            out_channels, stride, shortcut ("identity", "projection", "zero_pad" or "none"),
            downsampling (stride > 1), changes_shape (stride or channels change); ratio_mean,
            ratio_std, ratio_p10, ratio_p90 (per-image ||F|| / ||x|| over the images; NaN for a
            plain unit), ratio_of_means (f_norm / x_norm, the training probes' ratio), f_norm,
            x_norm (mean per-image norms of F(x) and of the shortcut's output; x_norm NaN for a
            plain unit), in_norm (of the unit's input); response_std, response_std_p10,
            response_std_p90 (per-image std of the unit's output); deletable, how (how the unit
            is deleted, or why it cannot be); flip_rate, prob_drop, kl (NaN where not measured).
        images: images profiled.
        model: the spec's name, e.g. "resnet50".
        residual: the net has shortcuts.
        num_classes: the net's outputs.
        lesions: whether lesions were measured.
        top1_prob: the intact net's mean probability of its own top-1 class.
        note: one line on the images (e.g. photos that could not be read, or fewer held-out images than
            asked for); set by whoever chose them.
    """

    rows: pd.DataFrame
    images: int
    model: str
    residual: bool
    num_classes: int
    lesions: bool
    top1_prob: float
    note: str = ""

    def headline(self) -> str:
        """One short line on the profile's shape, worked out from the rows (a figure's title)."""
        ratios = self._ratios()
        if ratios.empty:
            stds = self.rows["response_std"]
            return (f"{self.model}: no shortcuts, so no residual ratio; response std "
                    f"{_num(stds.min())} to {_num(stds.max())}")
        lo, hi = ratios.loc[ratios["ratio_mean"].idxmin()], ratios.loc[ratios["ratio_mean"].idxmax()]
        text = (f"{self.model}: ||F(x)||/||x|| smallest at {lo['unit']} ({_num(lo['ratio_mean'])}), "
                f"largest at {hi['unit']} ({_num(hi['ratio_mean'])})")
        if bool(hi["changes_shape"]):
            text += ", a unit that changes the shape"
        return text

    def summary(self) -> str:
        """The profile's findings in a few sentences, every claim worked out from the rows."""
        head = self.headline() + f" (eval mode, {self.images:,} image{'s' * (self.images != 1)})."
        return " ".join([head, *self.findings()])

    def findings(self) -> list[str]:
        """The sentences of `summary` after its headline."""
        sentences = []
        ratios = self._ratios()
        if not ratios.empty:
            sentences.extend(profile_ratio_findings(ratios))
        elif len(self.rows):
            f, x = self.rows["f_norm"], self.rows["in_norm"]
            share = (f / x.where(x > 0)).dropna()
            if len(share):
                sentences.append(f"No unit has a shortcut; each unit's ||F|| is {_num(share.min())} to "
                                 f"{_num(share.max())} times the norm of its input.")
        sentences.extend(self._lesion_findings())
        return sentences

    def _ratios(self) -> pd.DataFrame:
        return self.rows[self.rows["ratio_mean"].notna()]

    def _lesion_findings(self) -> list[str]:
        if not self.lesions:
            return []
        return profile_lesion_findings(self.rows, self.top1_prob, self.images)


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


# --- measuring --------------------------------------------------------------------------------

def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norm over (C, H, W), as the training probes' `_sample_norm` before its mean. (B,)"""
    return t.detach().float().flatten(1).norm(dim=1)


@contextmanager
def _recording(units: list[nn.Module], f: list[list], x: list[list]) -> Iterator[None]:
    """Hooks appending each unit's per-image ||F|| (and shortcut-output norm) to f[p] (x[p])."""
    handles = []

    def store(target: list):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            target.append(_per_sample_norm(output).cpu())

        return hook

    try:
        for p, unit in enumerate(units):
            handles.append(unit.residual_tap.register_forward_hook(store(f[p])))
            if unit.shortcut_tap is not None:
                handles.append(unit.shortcut_tap.register_forward_hook(store(x[p])))
        yield
    finally:
        for h in handles:
            h.remove()


def _check_inputs(model: object, images: object) -> None:
    if not isinstance(model, ResNet):
        raise ValueError(f"the unit profile needs a ResNet from build_model, got {type(model).__name__}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError("images must be a normalised float tensor of shape (N, C, H, W)")
    # Checked from the shape alone, before anything is allocated for the request.
    check_int("images", len(images), 1, MAX_PROFILE_IMAGES)
    if images.shape[1] != model.spec.in_channels:
        raise ValueError(f"images have {images.shape[1]} channels; {model.spec.name} takes {model.spec.in_channels}")


def _batch(model: ResNet, images: torch.Tensor, batch_size: int | None) -> int:
    """`batch_size` checked, or the automatic one: unit inputs under PROFILE_CACHE_BYTES, all of it
    under the memory budget (`auto_batch`)."""
    return auto_batch(model, images, batch_size, cap=AUTO_PROFILE_BATCH, cache_bytes=PROFILE_CACHE_BYTES)


def profile_units(model: ResNet, images: torch.Tensor, *, lesions: bool = True, batch_size: int | None = None,
                  progress: Progress | None = None, stop: threading.Event | None = None) -> UnitProfile:
    """Residual ratio, response std and single-unit lesions of every unit, in eval mode, over `images`.

    Args:
        model: a `ResNet` (or its plain twin) on any device; its weights, hooks and every module's
            train/eval mode are as before when this returns or raises.
        images: (N, C, H, W) float, normalised as the net expects; 1 to `MAX_PROFILE_IMAGES`.
        lesions: also delete each deletable unit in turn (flip_rate, prob_drop, kl).
        batch_size: images per forward pass; None picks one that keeps the cached unit inputs under
            `PROFILE_CACHE_BYTES` and all the activations within the free memory (`auto_batch`).
        progress: called with (done, total) forward passes (one per batch per net).
        stop: when set, stops before the next forward pass and raises `AnalysisStopped`.

    Returns:
        A `UnitProfile`, one row per unit.

    Raises:
        ValueError: not a ResNet, bad images or batch size.
        MemoryError: an allocation failed; one line naming the images and the batch size.
        AnalysisStopped: `stop` was set.
    """
    _check_inputs(model, images)
    bs = _batch(model, images, batch_size)
    infos = deletable_units(model)
    units = [u for _, u in model.units()]
    targets = [u for u in infos if u.deletable] if lesions else []
    n = len(images)
    param = next(model.parameters())
    f: list[list] = [[] for _ in units]
    x: list[list] = [[] for _ in units]
    inputs: list[list] = [[] for _ in units]
    stds: list[list] = [[] for _ in units]
    batch_f: list[list] = [[] for _ in units]  # the taps' norms of the pass in progress: kept for the intact
    batch_x: list[list] = [[] for _ in units]  # net's, dropped for a lesioned one's
    flips = np.zeros(len(units))
    drops = np.zeros(len(units))
    kls = np.zeros(len(units))
    top1 = [0.0]
    intact_pass: dict[str, torch.Tensor] = {}

    def observe(p: int, h: torch.Tensor, out: torch.Tensor) -> None:
        inputs[p].append(_per_sample_norm(h).cpu())
        stds[p].append(out.detach().float().flatten(1).std(dim=1).cpu())

    def keep(into: list[list], batch: list[list]) -> None:
        for p, values in enumerate(batch):
            into[p] += values
            values.clear()

    def intact(first: int, logits: torch.Tensor) -> None:
        keep(f, batch_f)
        keep(x, batch_x)
        log_p = logits.float().log_softmax(dim=1)  # (B, classes)
        top = log_p.argmax(dim=1, keepdim=True)
        p_top = log_p.gather(1, top).exp()
        top1[0] += p_top.sum().item()
        intact_pass.update(log_p=log_p, top=top, p_top=p_top)

    def changed(j: int, first: int, logits: torch.Tensor) -> None:
        for values in (*batch_f, *batch_x):
            values.clear()
        position = targets[j].position
        log_p, top, p_top = intact_pass["log_p"], intact_pass["top"], intact_pass["p_top"]
        log_q = logits.float().log_softmax(dim=1)
        flips[position] += (log_q.argmax(dim=1, keepdim=True) != top).sum().item()
        drops[position] += (p_top - log_q.gather(1, top).exp()).sum().item()
        kls[position] += (log_p.exp() * (log_p - log_q)).sum().item()

    asked = (f"profiling {n} image{'s' if n != 1 else ''} of {images.shape[-2]}x{images.shape[-1]} px in batches of "
             f"{bs} on {param.device.type}; give fewer or smaller images, or a smaller batch size")
    with out_of_memory_as_one_line(asked), _recording(units, batch_f, batch_x):
        cached_passes(model, images, [LesionConfig(deleted=(u.position,)) for u in targets], batch_size=bs,
                      intact=intact, changed=changed, observe=observe, stop=stop, progress=progress,
                      stopped=lambda: AnalysisStopped("unit profile stopped on request"))
    top1_sum = top1[0]
    measured = {u.position for u in targets}
    rows = []
    for info, unit in zip(infos, units, strict=True):
        p = info.position
        fn = torch.cat(f[p]).numpy().astype(np.float64)
        inn = torch.cat(inputs[p]).numpy().astype(np.float64)
        sd = torch.cat(stds[p]).numpy().astype(np.float64)
        if x[p]:
            xn = torch.cat(x[p]).numpy().astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(xn > 0, fn / np.where(xn > 0, xn, 1.0), np.nan)
            finite = ratio[np.isfinite(ratio)]
        else:
            xn, finite = None, np.array([])
        has = finite.size > 0
        lesion = p in measured
        rows.append({
            "unit": info.name, "position": p, "stage": info.stage, "index": info.index_in_stage,
            "in_channels": info.in_channels, "out_channels": info.out_channels, "stride": info.stride,
            "shortcut": unit.shortcut_kind, "downsampling": info.downsampling, "changes_shape": info.changes_shape,
            "ratio_mean": float(finite.mean()) if has else math.nan,
            "ratio_std": float(finite.std()) if has else math.nan,
            "ratio_p10": float(np.percentile(finite, 10)) if has else math.nan,
            "ratio_p90": float(np.percentile(finite, 90)) if has else math.nan,
            "ratio_of_means": float(fn.mean() / xn.mean()) if xn is not None and xn.mean() > 0 else math.nan,
            "f_norm": float(fn.mean()), "x_norm": float(xn.mean()) if xn is not None else math.nan,
            "in_norm": float(inn.mean()), "response_std": float(sd.mean()),
            "response_std_p10": float(np.percentile(sd, 10)), "response_std_p90": float(np.percentile(sd, 90)),
            "deletable": info.deletable, "how": info.reason,
            "flip_rate": flips[p] / n if lesion else math.nan, "prob_drop": drops[p] / n if lesion else math.nan,
            "kl": kls[p] / n if lesion else math.nan,
        })
    spec = model.spec
    return UnitProfile(rows=pd.DataFrame(rows, columns=COLUMNS), images=n, model=spec.name, residual=spec.residual,
                       num_classes=spec.num_classes, lesions=lesions, top1_prob=top1_sum / n)
