"""Attribution studies of a saved run: pick inputs, run several methods, score them.

Shared by the CLI's `attribute` command and the app's Attribute page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import load_data, normalize
from ..runs import Run
from . import METHODS, AttributionResult, attribute, load_image, mask_share, predict, sanity_check


@dataclass
class StudyInputs:
    """What the methods look at. `images` are normalised as the run's data was."""

    images: torch.Tensor  # (N, C, H, W) float32
    previews: torch.Tensor  # (N, C, H, W) uint8, for display
    names: list[str]  # e.g. "test #3" or the uploaded file's name
    labels: torch.Tensor | None = None  # (N,) true classes, when known
    masks: torch.Tensor | None = None  # (N, H, W) bool object masks (embedded dataset)


@dataclass
class Study:
    inputs: StudyInputs
    predicted: torch.Tensor  # (N,)
    confidence: torch.Tensor  # (N,)
    results: dict[str, AttributionResult] = field(default_factory=dict)
    scores: list[dict] = field(default_factory=list)  # one row per method per image


def run_normalisation(run: Run) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    data = run.info.get("data") or {}
    if not data.get("mean"):
        raise ValueError(f"run {run.id} has no recorded normalisation (did it start training?)")
    return tuple(data["mean"]), tuple(data["std"]), int(data.get("image_size", 32))


def dataset_inputs(run: Run, samples: int = 8, indices: Sequence[int] | None = None) -> StudyInputs:
    """Images of the run's held-out split (the same split, regenerated or re-read from its config)."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    c = run.config
    data = load_data(c.dataset, root=c.data_root, seed=c.seed, train_size=c.train_size, test_size=c.test_size)
    n = len(data.test_images)
    chosen = list(indices) if indices is not None else list(range(min(samples, n)))
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise ValueError(f"image indices {bad} are outside the held-out split (0..{n - 1})")
    idx = torch.tensor(chosen, dtype=torch.long)
    previews = data.test_images[idx]
    return StudyInputs(
        images=normalize(previews, data.mean, data.std), previews=previews,
        names=[f"test #{i}" for i in chosen], labels=data.test_labels[idx],
        masks=data.test_masks[idx] if data.test_masks is not None else None,
    )


def upload_inputs(run: Run, source: bytes | str | Path, name: str = "upload") -> StudyInputs:
    """One uploaded image, converted and normalised as the run's data (raises `ImageError`)."""
    mean, std, size = run_normalisation(run)
    image, preview = load_image(source, image_size=size, mean=mean, std=std)
    return StudyInputs(images=image, previews=preview.unsqueeze(0), names=[name])


def run_study(
    model: torch.nn.Module,
    inputs: StudyInputs,
    methods: Sequence[str],
    *,
    target: int | None = None,
    layer: str | None = None,
    sanity: bool = True,
    steps: int = 50,
) -> Study:
    """Attribute `inputs` with every method; score each map against the mask and the sanity check.

    Args:
        target: the class to explain for every image; None explains each image's prediction.
        layer: Grad-CAM's layer (see `layer_choices`).
        sanity: also run Adebayo et al. 2018's model-randomisation check (doubles the cost).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(METHODS)}")
    device = next(model.parameters()).device
    images = inputs.images.to(device)
    predicted, confidence = predict(model, images)
    targets = predicted if target is None else torch.full_like(predicted, int(target))
    study = Study(inputs, predicted.cpu(), confidence.cpu())
    for method in methods:
        kwargs = {"layer": layer} if method == "gradcam" else {}
        if method == "integrated_gradients":
            kwargs["steps"] = steps
        result = attribute(model, images, method, targets=targets, **kwargs)
        study.results[method] = result
        share = area = None
        if inputs.masks is not None:
            share, area = mask_share(result.heatmap("positive"), inputs.masks)
        corr = sanity_check(model, images, method, targets=targets, **kwargs) if sanity else None
        for i in range(len(images)):
            study.scores.append({
                "method": method, "image": inputs.names[i], "target": int(result.targets[i]),
                "predicted": int(study.predicted[i]), "confidence": float(study.confidence[i]),
                "true": int(inputs.labels[i]) if inputs.labels is not None else None,
                "mask_share": _f(share, i), "mask_area": _f(area, i), "sanity_spearman": _f(corr, i),
                "delta": _f(result.delta, i), "runs_on": result.device,
            })
    return study


def _f(values: torch.Tensor | None, i: int) -> float | None:
    if values is None:
        return None
    v = float(values[i])
    return None if math.isnan(v) else v


def summary(study: Study, run_label: str) -> list[dict]:
    """Mean scores per method (for `plot_attribution_scores`)."""
    def mean(rows: list[dict], key: str) -> float:
        vals = [r[key] for r in rows if r[key] is not None]
        return sum(vals) / len(vals) if vals else math.nan

    out = []
    for method in study.results:
        mine = [r for r in study.scores if r["method"] == method]
        out.append({"run": run_label, "method": method, "mask_share": mean(mine, "mask_share"),
                    "mask_area": mean(mine, "mask_area"), "sanity_corr": mean(mine, "sanity_spearman")})
    return out
