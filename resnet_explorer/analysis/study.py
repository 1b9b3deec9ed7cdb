"""Attribution studies of a saved run: pick inputs, run several methods, score them.

Shared by the CLI's `attribute` command and the app's Attribute page. Images are attributed
`ATTRIBUTE_BATCH` at a time, so the working memory does not grow with the number of images;
only the returned maps and scores do.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ..data.folder import IMAGE_EXTENSIONS
from ..limits import ATTRIBUTE_BATCH, MAX_ATTRIBUTE_SAMPLES, MAX_USER_IMAGES, check_int
from ..runs import Run
from . import METHODS, AttributionResult, ImageError, attribute, load_image, mask_share, predict_top, sanity_check
from .attribution import BASELINES, IG_MAX_STEPS, IG_START_STEPS, IG_TOLERANCE, black_baseline
from .common import AnalysisStopped

TOP_K = 5  # predictions listed beside every attribution


@dataclass
class StudyInputs:
    """What the methods look at. `images` are normalised as the run's data was."""

    images: torch.Tensor  # (N, C, H, W) float32
    previews: torch.Tensor  # (N, C, H, W) uint8, for display
    names: list[str]  # e.g. "test #3" or the uploaded file's name
    labels: torch.Tensor | None = None  # (N,) true classes, when known
    masks: torch.Tensor | None = None  # (N, H, W) bool object masks (embedded dataset)
    note: str = ""  # one line, e.g. that the held-out split had fewer images than asked for
    mean: tuple[float, ...] | None = None  # the normalisation of `images` (for a black baseline)
    std: tuple[float, ...] | None = None


@dataclass
class Study:
    """What `run_study` found: the predictions, each method's maps, and their scores.

    Attributes:
        inputs: the images attributed.
        predicted: (N,) int64 predicted classes.
        confidence: (N,) float32 softmax probability of each prediction.
        top_classes, top_probs: (N, k) the `TOP_K` most probable classes and their probabilities
            (k = min(`TOP_K`, classes)); column 0 is `predicted` and `confidence`.
        results: method name -> its `AttributionResult` over all N images, in the order run.
        scores: one row per method per image: "method", "image", "target", "predicted",
            "confidence", "true", "mask_share", "mask_area", "sanity_spearman", "delta",
            "score_change" (f(x) - f(baseline) of the target score; negative: the baseline scores
            higher), "gap" (|delta| / |score_change|), "steps" (integrated gradients), "baseline",
            "runs_on"; a score that does not apply (no mask, no sanity check, no delta) or is
            NaN is None.
    """

    inputs: StudyInputs
    predicted: torch.Tensor
    confidence: torch.Tensor
    top_classes: torch.Tensor  # (N, k) the TOP_K most probable classes (fewer if the net has fewer), best first
    top_probs: torch.Tensor  # (N, k) their softmax probabilities
    results: dict[str, AttributionResult] = field(default_factory=dict)
    scores: list[dict] = field(default_factory=list)


def held_out_size(run: Run) -> int | None:
    """How many held-out images the run was evaluated on, as run.json's data section records them; None when it
    does not say (never started, imported, damaged)."""
    data = run.info.get("data")
    n = data.get("num_test") if isinstance(data, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def dataset_inputs(run: Run, samples: int = 8, indices: Sequence[int] | None = None) -> StudyInputs:
    """Images of the run's held-out split (the same split, regenerated or re-read from its config).

    Args:
        run: a run whose config names the dataset; its image size and subsets are reused.
        samples: how many images, 1 to `MAX_ATTRIBUTE_SAMPLES`, spread over the classes: each
            class's first held-out image in class order, then each class's second, and so on,
            so 8 images of a 4-class split are 2 per class. At most the split's size is taken;
            `StudyInputs.note` then says how many there were.
        indices: these held-out images instead, in this order (``samples`` is then unused).

    Returns:
        `StudyInputs` with labels, and masks where the dataset has them.

    Raises:
        ValueError: ``samples`` outside 1..`MAX_ATTRIBUTE_SAMPLES` (checked before any data is
            read), an index outside the split, or an imported run (it has no dataset).
    """
    check_int("samples", samples, 1, MAX_ATTRIBUTE_SAMPLES)
    if run.imported:
        raise ValueError(f"run {run.id} was imported from a checkpoint and has no dataset, so no held-out images: "
                         "upload an image instead")
    sample = run.sample("test", None if indices is not None else samples, indices=indices)
    note = ""
    if indices is None and samples > sample.available:
        note = f"the held-out split has {sample.available:,} images; all of them are used ({samples:,} asked for)"
    return StudyInputs(
        images=sample.images, previews=sample.raw, names=[f"test #{i}" for i in sample.indices], labels=sample.labels,
        masks=sample.masks, note=note, mean=sample.mean, std=sample.std,
    )


_FIT_WORDS = {"crop": "scaled and centre-cropped", "pad": "scaled and padded", "stretch": "stretched"}


def _describe_fit(width: int, height: int, size: int, fit: str, resize: int | None) -> str:
    if resize:
        return f"{width} x {height} px, shorter side scaled to {resize} px, centre {size} x {size} px kept"
    how = ", scaled" if width == height else f", {_FIT_WORDS[fit]}"
    return f"{width} x {height} px{how} to {size} x {size} px"


def _one_image(run: Run, source: bytes | str | Path, fit: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(normalised (1, C, S, S), preview (C, S, S) uint8, what was done) for one image of `run`."""
    mean, std, size = run.normalisation
    resize = run.resize if fit == "crop" else None  # ImageNet's resize 256, crop 224 for an imported net
    image, preview = load_image(source, image_size=size, mean=mean, std=std, fit=fit, resize=resize)
    file = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else Path(source).expanduser()
    with Image.open(file) as img:  # the header again, for the original size (load_image has checked it)
        width, height = img.size
    return image, preview, _describe_fit(width, height, size, fit, resize)


def upload_inputs(run: Run, source: bytes | str | Path, name: str = "upload", fit: str = "crop") -> StudyInputs:
    """One uploaded image, converted and normalised as the run's data (raises `ImageError`).

    ``fit`` ("crop", "pad" or "stretch") is `load_image`'s; with "crop", a run whose data names a
    `resize` (imported ImageNet nets: 256) is scaled to it before the centre crop. `StudyInputs.note`
    says what was done, e.g. "300 x 200 px, scaled and centre-cropped to 32 x 32 px". An upload has
    no label and no mask.
    """
    image, preview, note = _one_image(run, source, fit)
    mean, std, _ = run.normalisation
    return StudyInputs(images=image, previews=preview.unsqueeze(0), names=[name], note=note, mean=mean, std=std)


def image_files(folder: str | Path, limit: int = MAX_USER_IMAGES) -> tuple[list[Path], int]:
    """The image files directly in ``folder`` (hidden files skipped), sorted by name, at most ``limit``.

    Returns:
        (the first ``limit`` files, how many there were in all).

    Raises:
        ValueError: not a folder, ``limit`` outside 1..`MAX_USER_IMAGES`, or no image files in it.
    """
    check_int("limit", limit, 1, MAX_USER_IMAGES)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files[:limit], len(files)


def images_inputs(run: Run, sources: Sequence[tuple[str, bytes | str | Path]], fit: str = "crop",
                  total: int | None = None) -> StudyInputs:
    """Several user images (uploads or files), each prepared as `upload_inputs` does, in one batch.

    An image that cannot be read is left out and named in `StudyInputs.note`, so one bad photo in a
    folder does not lose the others.

    Args:
        run: whose normalisation, image size and resize apply.
        sources: (name, bytes or path) per image, at most `MAX_USER_IMAGES`.
        fit: `load_image`'s fit.
        total: how many images the user had, when ``sources`` is the first part of them (for the note).

    Raises:
        ValueError: more than `MAX_USER_IMAGES` sources (before any is read), or none readable
            (`ImageError`, naming the first problem).
    """
    check_int("images", len(sources), 1, MAX_USER_IMAGES)
    batch: torch.Tensor | None = None  # filled in place: a list then torch.cat would hold every image twice
    previews, names, notes, bad = [], [], [], []
    for name, source in sources:
        try:
            image, preview, note = _one_image(run, source, fit)
        except ImageError as err:
            bad.append(str(err))
            continue
        if batch is None:
            batch = image.new_empty((len(sources) - len(bad), *image.shape[1:]))
        batch[len(names)] = image[0]
        previews.append(preview)
        names.append(name)
        notes.append(note)
    if not names:
        raise ImageError(f"none of the {len(sources)} images could be read; the first: {bad[0]}")
    mean, std, size = run.normalisation
    parts = []
    if len(names) == 1:
        parts.append(notes[0])
    else:
        resize = run.resize if fit == "crop" else None
        how = (f"shorter side scaled to {resize} px, centre {size} x {size} px kept" if resize
               else f"{_FIT_WORDS[fit]} to {size} x {size} px")
        parts.append(f"{len(names)} images, {how}")
    if total is not None and total > len(sources):
        parts.append(f"the first {len(sources):,} of {total:,} (sorted by name)")
    if bad:
        parts.append(f"{len(bad)} left out: {bad[0]}" + (f" and {len(bad) - 1} more" if len(bad) > 1 else ""))
    return StudyInputs(images=batch[:len(names)], previews=torch.stack(previews), names=names, note="; ".join(parts),
                       mean=mean, std=std)


def run_study(
    model: torch.nn.Module,
    inputs: StudyInputs,
    methods: Sequence[str],
    *,
    target: int | None = None,
    layer: str | None = None,
    sanity: bool = True,
    steps: int | None = None,
    baseline: str = "zeros",
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> Study:
    """Attribute `inputs` with every method; score each map against the mask and the sanity check.

    Predictions, maps and sanity checks are computed `ATTRIBUTE_BATCH` images at a time and
    concatenated, and integrated gradients evaluates at most 8 * `ATTRIBUTE_BATCH` scaled images
    per forward pass, so the batch the model sees is bounded whatever the number of images. The
    maps equal those of one call on all images. The sanity check re-seeds for each chunk, so
    SmoothGrad's check of an image draws the noise of its position within its chunk.

    Args:
        model: a ResNet on any device.
        inputs: the images, on the CPU; each chunk is moved to the model's device in turn.
        methods: keys of `METHODS`.
        target: the class to explain for every image; None explains each image's prediction.
        layer: Grad-CAM's layer (see `layer_choices`).
        sanity: also run Adebayo et al. 2018's model-randomisation check (doubles the cost).
        steps: integrated gradients' steps for every image; None: adaptive, from `IG_START_STEPS`
            doubling until the completeness gap is under `IG_TOLERANCE` of f(x) - f(baseline), at
            most `IG_MAX_STEPS` (the sanity check's maps use `IG_START_STEPS`).
        baseline: for integrated gradients, DeepLIFT and occlusion: a key of `BASELINES` ("zeros":
            the dataset mean, "black", "blur").
        progress: called with (done, total) after each chunk of each method (total: methods x chunks).
        stop: when set, the study ends before the next chunk with `AnalysisStopped`; neither changes a map.

    Returns:
        A `Study`: one `AttributionResult` per method over all images, and one score row per
        method per image.

    Raises:
        ValueError: an unknown method or baseline, no images, or a black baseline for inputs
            that do not say their normalisation.
        AnalysisStopped: ``stop`` was set.
    """
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(METHODS)}")
    images = inputs.images
    if len(images) == 0:
        raise ValueError("no images to attribute: give at least one")
    chunks = [slice(start, start + ATTRIBUTE_BATCH) for start in range(0, len(images), ATTRIBUTE_BATCH)]
    guesses = [predict_top(model, images[c], TOP_K) for c in chunks]
    top_classes = torch.cat([classes for classes, _ in guesses])
    top_probs = torch.cat([p for _, p in guesses])
    predicted, confidence = top_classes[:, 0], top_probs[:, 0]
    targets = predicted if target is None else torch.full_like(predicted, int(target))
    study = Study(inputs, predicted, confidence, top_classes, top_probs)
    if baseline == "black":
        if inputs.mean is None or inputs.std is None:
            raise ValueError("a black baseline needs the images' normalisation (mean and std), which these inputs lack")
        base: str | torch.Tensor = black_baseline(inputs.mean, inputs.std)
    else:
        base = baseline
    # `attribute` passes each method only its own options, and the layer only where it needs one.
    options = {"steps": steps or IG_START_STEPS, "internal_batch_size": 8 * ATTRIBUTE_BATCH, "baseline": base}
    adapt = {} if steps else {"tolerance": IG_TOLERANCE, "max_steps": IG_MAX_STEPS}
    total, done = len(methods) * len(chunks), 0
    for method in methods:
        kwargs = dict(options, layer=layer) if METHODS[method].needs_layer else options
        parts, shares, areas, corrs = [], [], [], []
        for c in chunks:
            if stop is not None and stop.is_set():
                raise AnalysisStopped(f"attribution stopped after {done:,} of {total:,} batches of images")
            part = attribute(model, images[c], method, targets=targets[c], **kwargs, **adapt)
            parts.append(part)
            if inputs.masks is not None:
                share, area = mask_share(part.heatmap("positive"), inputs.masks[c])
                shares.append(share)
                areas.append(area)
            if sanity:
                corrs.append(sanity_check(model, images[c], method, targets=targets[c], **kwargs))
            done += 1
            if progress is not None:
                progress(done, total)
        result = _concat(parts)
        study.results[method] = result
        share = torch.cat(shares) if shares else None
        area = torch.cat(areas) if areas else None
        corr = torch.cat(corrs) if corrs else None
        change, gap = result.score_change, result.gap
        for i in range(len(images)):
            study.scores.append({
                "method": method, "image": inputs.names[i], "target": int(result.targets[i]),
                "predicted": int(study.predicted[i]), "confidence": float(study.confidence[i]),
                "true": int(inputs.labels[i]) if inputs.labels is not None else None,
                "mask_share": _float_or_none(share, i), "mask_area": _float_or_none(area, i),
                "sanity_spearman": _float_or_none(corr, i), "delta": _float_or_none(result.delta, i),
                "score_change": _float_or_none(change, i), "gap": _float_or_none(gap, i),
                "steps": int(result.steps[i]) if result.steps is not None else None,
                "baseline": baseline if result.delta is not None or method == "occlusion" else None,
                "runs_on": result.device,
            })
    return study


def _concat(parts: list[AttributionResult]) -> AttributionResult:
    """One result from the results of consecutive chunks of the same images, method and options."""
    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    first = parts[0]
    return AttributionResult(
        method=first.method, maps=cat("maps"), targets=cat("targets"), delta=cat("delta"),
        baselines=cat("baselines"), layer=first.layer, device=first.device, note=first.note, steps=cat("steps"),
    )


def _float_or_none(values: torch.Tensor | None, i: int) -> float | None:
    """``values[i]`` as a float; None where there are no values or it is NaN (an empty table cell)."""
    if values is None:
        return None
    v = float(values[i])
    return None if math.isnan(v) else v


def score_table(study: Study, classes: Sequence[str], run_label: str) -> list[dict]:
    """`study.scores` for people: one row per image per method, the run first, classes by name.

    Columns: "run", "image", "method" (its label, e.g. "Integrated Gradients"), "true", "target" (the
    class explained) and "predicted" as class names (an index past `classes` as its number; "true"
    None for an upload), then the scores as `Study.scores` names them.
    """
    def name(index: int | None) -> str | None:
        if index is None:
            return None
        return classes[index] if 0 <= index < len(classes) else str(index)

    named = ("method", "image", "true", "target", "predicted")
    return [{"run": run_label, "image": row["image"],
             "method": METHODS[row["method"]].label if row["method"] in METHODS else row["method"],
             "true": name(row["true"]), "target": name(row["target"]), "predicted": name(row["predicted"]),
             **{k: v for k, v in row.items() if k not in named}}
            for row in study.scores]


def top_predictions(study: Study, classes: Sequence[str]) -> list[dict]:
    """One row per image per rank: "image", "rank" (1 = the prediction), "class", "index", "probability"."""
    rows = []
    for i, name in enumerate(study.inputs.names):
        for rank, (c, p) in enumerate(zip(study.top_classes[i].tolist(), study.top_probs[i].tolist()), start=1):
            rows.append({"image": name, "rank": rank, "class": classes[c] if c < len(classes) else str(c),
                         "index": c, "probability": p})
    return rows


def top_line(study: Study, i: int, classes: Sequence[str], k: int = TOP_K) -> str:
    """Image ``i``'s top predictions in one line, e.g. "tabby 62% · tiger cat 21% · Egyptian cat 9%"."""
    pairs = zip(study.top_classes[i, :k].tolist(), study.top_probs[i, :k].tolist())
    return " · ".join(f"{classes[c] if c < len(classes) else c} {percent(p)}" for c, p in pairs)


def percent(p: float) -> str:
    """A probability for people: "62%", "4.3%", "<0.1%" (never a bare "0%" for a class that was ranked)."""
    if p >= 0.095:
        return f"{p:.0%}"
    return f"{p:.1%}" if p >= 0.001 else "<0.1%"


def summary(study: Study, run_label: str) -> list[dict]:
    """Mean scores per method over the images (for `plot_attribution_scores`).

    Args:
        study: a `run_study` result.
        run_label: the "run" of every row.

    Returns:
        One dict per method: "run", "method", and the means of "mask_share", "mask_area" and
        "sanity_spearman" over the images that have them (NaN where none has).
    """
    def mean(rows: list[dict], key: str) -> float:
        vals = [r[key] for r in rows if r[key] is not None]
        return sum(vals) / len(vals) if vals else math.nan

    out = []
    for method in study.results:
        mine = [r for r in study.scores if r["method"] == method]
        out.append({"run": run_label, "method": method, "mask_share": mean(mine, "mask_share"),
                    "mask_area": mean(mine, "mask_area"), "sanity_spearman": mean(mine, "sanity_spearman")})
    return out
