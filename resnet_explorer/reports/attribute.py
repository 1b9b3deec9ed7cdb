"""Attribution as a task of the analysis child process: the Attribute page's request, measured and saved to disk.

One task attributes one run (a page comparing a run with its twin starts one task per run): its options
(`OPTIONS`) say which images (held-out ones by index, or the images in a folder: the page writes the
user's uploads into one) and how (methods, baseline, Integrated Gradients steps, Grad-CAM layer, the class
explained, the sanity check); `analysis.study.run_study` measures them, the very call the page made
itself before, so the maps and scores are the same bit for bit. The `Study` is saved into a folder
(``out``, by default ``<run>/explain/attribute/``): its tensors in ``attribution.npz`` (numpy, read back
without pickle), its names, notes and score rows in ``result.json`` (and the rows again as
``scores.csv``), and `load` gives back the `Study` the page draws. It never crosses the pipe.

Nothing here imports Streamlit.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis import METHODS, AttributionResult
from ..analysis.attribution import BASELINES, IG_MAX_STEPS, IG_START_STEPS, IG_TOLERANCE
from ..analysis.images import FITS
from ..analysis.study import Study, StudyInputs, dataset_inputs, image_files, images_inputs, run_study
from ..export import rows_to_csv, write_atomic
from ..jobs.options import Option
from ..limits import MAX_ATTRIBUTE_SAMPLES, MAX_CLASSES, MAX_PATH_CHARS, MAX_TEST_IMAGES, MAX_USER_IMAGES
from ..runs import Run, inside_run
from . import tasks

__all__ = ["ATTRIBUTE", "OPTIONS", "folder", "load", "save", "study"]

ATTRIBUTE = "attribute"  # the task's name
ARRAYS, INFO, SCORES = "attribution.npz", "result.json", "scores.csv"
_INPUT_ARRAYS = ("images", "previews", "labels", "masks")
_STUDY_ARRAYS = ("predicted", "confidence", "top_classes", "top_probs")
_RESULT_ARRAYS = ("maps", "targets", "delta", "baselines", "steps")

OPTIONS: tuple[Option, ...] = (
    Option("methods", str, "saliency,integrated_gradients,gradcam", 0, len(",".join(METHODS)),
           "comma list of the attribution methods", "Methods", choices=tuple(METHODS), many=True),
    Option("baseline", str, "zeros", 0, max(map(len, BASELINES)), "what 'no information' looks like for Integrated "
           "Gradients, DeepLIFT and Occlusion", "Baseline (Integrated Gradients, DeepLIFT, Occlusion)",
           choices=tuple(BASELINES)),
    Option("steps", int, 0, 0, IG_MAX_STEPS, f"Integrated Gradients steps for every image; 0: adaptive "
           f"({IG_START_STEPS} doubling until the completeness gap is under {IG_TOLERANCE:.0%}, at most "
           f"{IG_MAX_STEPS})", "Integrated Gradients steps"),
    Option("layer", str, "", 0, MAX_PATH_CHARS, "Grad-CAM layer, a stage (layer3) or a unit (layer3.2); none: the "
           "last unit", "Grad-CAM layer"),
    Option("target", int, -1, -1, MAX_CLASSES - 1, "the class explained for every image; -1: each image's "
           "prediction", "Explain the class"),
    Option("sanity", bool, True, 0, 1, "also compare with a re-initialised model (Adebayo et al. 2018; doubles "
           "the time)", "Sanity check"),
    Option("start", int, 0, 0, MAX_TEST_IMAGES - 1, "the first held-out image, by its number in the split",
           "Starting at held-out image #"),
    Option("count", int, 4, 1, MAX_ATTRIBUTE_SAMPLES, "how many images: held-out ones from start on, or the first "
           f"of the folder's by name (at most {MAX_USER_IMAGES:,})", "How many images"),
    Option("photos", str, "", 0, MAX_PATH_CHARS, "a folder of your own images instead of held-out ones",
           "Folder of images"),
    Option("fit", str, "crop", 0, max(map(len, FITS)), "how an image that is not square becomes the model's "
           "square input", "An upload that is not square is", choices=FITS),
    Option("out", str, "", 0, MAX_PATH_CHARS, "the folder the result is saved in; none: the run's "
           "explain/attribute/", "Result folder"),
)


def folder(run_path: str | Path, options: Mapping[str, Any]) -> Path:
    """Where the result of `options` is saved: ``out``, or ``<run>/explain/attribute`` (ValueError when a link
    there leads out of the run)."""
    return Path(options["out"]).expanduser() if options.get("out") else inside_run(run_path, "explain", ATTRIBUTE)


def study(run: Run, options: Mapping[str, Any], progress: Any = None, stop: threading.Event | None = None) -> Study:
    """`run_study` of `run` (loaded with its model) as the checked `options` ask (`tasks.check_options`)."""
    if run.model is None:
        raise ValueError(f"run {run.id} has no saved weights (model.pt) to attribute")
    target = options["target"] if options["target"] >= 0 else None
    if target is not None and target >= run.spec.num_classes:
        raise ValueError(f"target {target} is outside the classes of run {run.id} (0 to {run.spec.num_classes - 1})")
    count = options["count"]
    if options["photos"]:
        files, total = image_files(options["photos"], min(count, MAX_USER_IMAGES))
        inputs = images_inputs(run, [(f.name, f) for f in files], fit=options["fit"], total=total)
    else:
        inputs = dataset_inputs(run, indices=range(options["start"], options["start"] + count))
    return run_study(run.model, inputs, options["methods"].split(","), target=target, layer=options["layer"] or None,
                     sanity=options["sanity"], steps=options["steps"] or None, baseline=options["baseline"],
                     progress=progress, stop=stop)


def save(run_path: str | Path, result: Study, options: Mapping[str, Any]) -> list[Path]:
    """Write `result` into `folder(run_path, options)`, each file atomically; the paths written."""
    where = folder(run_path, options)
    arrays: dict[str, np.ndarray] = {}
    for name in _INPUT_ARRAYS:
        if getattr(result.inputs, name) is not None:
            arrays[f"inputs.{name}"] = getattr(result.inputs, name).numpy()
    for name in _STUDY_ARRAYS:
        arrays[name] = getattr(result, name).numpy()
    methods = {}
    for method, res in result.results.items():
        for name in _RESULT_ARRAYS:
            if getattr(res, name) is not None:
                arrays[f"{method}.{name}"] = getattr(res, name).numpy()
        methods[method] = {"layer": res.layer, "device": res.device, "note": res.note}
    inputs = result.inputs
    info = {"task": ATTRIBUTE, "options": dict(options), "methods": methods, "scores": result.scores,
            "inputs": {"names": list(inputs.names), "note": inputs.note,
                       "mean": list(inputs.mean) if inputs.mean is not None else None,
                       "std": list(inputs.std) if inputs.std is not None else None}}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return [write_atomic(where / ARRAYS, buffer.getvalue()),
            write_atomic(where / SCORES, rows_to_csv(result.scores)),
            write_atomic(where / INFO, json.dumps(info, indent=1))]


def load(where: str | Path) -> tuple[Study, dict[str, Any]] | None:
    """(the `Study`, its options) saved in `where` by `save`, or None when nothing is.

    Raises:
        ValueError: the saved files are damaged (one line naming the folder).
    """
    where = Path(where)
    if not (where / INFO).is_file():
        return None
    try:
        info = json.loads((where / INFO).read_text())
        with np.load(where / ARRAYS, allow_pickle=False) as saved:
            arrays = {key: torch.from_numpy(saved[key]) for key in saved.files}
        given = info["inputs"]
        inputs = StudyInputs(**{name: arrays.get(f"inputs.{name}") for name in _INPUT_ARRAYS},
                             names=list(given["names"]), note=given["note"],
                             mean=tuple(given["mean"]) if given["mean"] is not None else None,
                             std=tuple(given["std"]) if given["std"] is not None else None)
        back = Study(inputs, *(arrays[name] for name in _STUDY_ARRAYS), scores=list(info["scores"]))
        for method, meta in info["methods"].items():
            back.results[method] = AttributionResult(
                method=method, **{name: arrays.get(f"{method}.{name}") for name in _RESULT_ARRAYS},
                layer=meta["layer"], device=meta["device"], note=meta["note"])
        return back, dict(info["options"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"saved attribution in {where} is damaged ({type(err).__name__}: "
                         f"{' '.join(str(err).split())}); run it again") from None


tasks.register(tasks.Task(name=ATTRIBUTE, title="Attribution", options=OPTIONS, run=study, save=save, folder=folder))
