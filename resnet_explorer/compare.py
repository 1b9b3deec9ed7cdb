"""Side-by-side comparison of finished (or running) runs: a summary table and the shared figures.

The figures overlay every run, so plain nets and their residual twins read as in He et al. 2015
(Fig. 6 training curves, Fig. 7 layer responses); one run alone gets the same figures, plus its
||F(x)|| / ||x|| heat-map when it is residual.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from .graph import build_graph
from .models import count_parameters
from .plots import (
    plot_grad_flow_heatmap,
    plot_grad_flow_profile,
    plot_residual_heatmap,
    plot_residual_norms,
    plot_responses,
    plot_training_curves,
)
from .runs import Run

DEFAULT_IMAGE_SIZE = 32  # runs made before the data was recorded
TAIL_FRACTION = 0.2  # final train loss/error: mean over the last 20% of logged rows, as the CLI's degradation table


def _number(value: Any) -> float | None:
    """A float for a table cell; None for missing, NaN or infinite values (JSON has no NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _tail_mean(df: pd.DataFrame, column: str, fraction: float = TAIL_FRACTION) -> float | None:
    """Mean of `column` over the last `fraction` of rows (at least one); NaN in the tail gives None."""
    if df is None or df.empty or column not in df.columns:
        return None
    values = pd.to_numeric(df[column], errors="coerce")
    tail = values.iloc[-max(1, int(len(values) * fraction)):]
    return _number(tail.mean(skipna=False))


def _error(accuracy: float | None) -> float | None:
    return None if accuracy is None else 100 * (1 - accuracy)


def summary_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per run: model, size, budget and final numbers.

    Keys: run (label), id, model, residual, depth, params, macs (multiply-adds per image at the
    run's image size), dataset, steps, batch_size, train_loss and train_error_% (mean of the last
    20% of logged metric rows), test_error_% (the last evaluation), seconds (wall time), status.
    Values a run does not have yet (no evaluation, still running) are None.
    """
    rows = []
    for run, label in zip(runs, run_labels(runs)):
        data = run.info.get("data") or {}
        image_size = int(data.get("image_size") or DEFAULT_IMAGE_SIZE)
        metrics, evals = run.tables.get("metrics"), run.tables.get("eval")
        last_eval = None
        if evals is not None and not evals.empty and "accuracy" in evals.columns:
            last_eval = _number(evals["accuracy"].iloc[-1])
        rows.append({
            "run": label, "id": run.id, "model": run.spec.name, "residual": bool(run.spec.residual),
            "depth": run.spec.depth, "params": count_parameters(run.spec),
            "macs": build_graph(run.spec, image_size).total_macs,
            "dataset": data.get("name", run.config.dataset), "steps": run.info.get("steps"),
            "batch_size": run.config.batch_size,
            "train_loss": _tail_mean(metrics, "loss"), "train_error_%": _error(_tail_mean(metrics, "accuracy")),
            "test_error_%": _error(last_eval), "seconds": _number(run.info.get("seconds")), "status": run.status,
        })
    return rows


def run_labels(runs: list[Run]) -> list[str]:
    """Unique display labels in run order: `run.label`, with a longer id suffix where two collide.

    Labels keep the model name first, so the plots still tell plain (dashed) from residual runs.
    """
    labels = [run.label for run in runs]
    counts = Counter(labels)
    labels = [f"{run.spec.name} ({run.id})" if counts[label] > 1 else label for run, label in zip(runs, labels)]
    counts = Counter(labels)
    seen: Counter[str] = Counter()
    unique = []
    for label in labels:  # the same run given twice
        seen[label] += 1
        unique.append(f"{label} [{seen[label]}]" if counts[label] > 1 else label)
    return unique


def comparison_figures(runs: list[Run]) -> dict[str, go.Figure]:
    """The figures of a comparison, in display order, keyed by a file-name-safe name.

    Keys: "training_curves" (He et al. 2015, Fig. 6), "residual_norms" (latest step),
    "ratio_heatmap" (only for a single residual run), "grad_flow" (heat-maps side by side, one
    colour scale), "grad_flow_profile" (latest step), "responses" (He et al. 2015, Fig. 7).

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("compare needs at least one run")
    labels = run_labels(runs)

    def tables(name: str) -> dict[str, pd.DataFrame]:
        return {label: run.tables.get(name) for label, run in zip(labels, runs)}

    figures = {
        "training_curves": plot_training_curves(tables("metrics"), tables("eval")),
        "residual_norms": plot_residual_norms(tables("residual_norms")),
    }
    if len(runs) == 1 and runs[0].spec.residual:  # a plain net has no shortcut, so no ratio
        figures["ratio_heatmap"] = plot_residual_heatmap(
            runs[0].tables.get("residual_norms"), "ratio", title=f"{labels[0]}: ||F(x)|| / ||x|| per unit over training")
    figures["grad_flow"] = plot_grad_flow_heatmap(tables("grad_flow"), "grad_norm")
    figures["grad_flow_profile"] = plot_grad_flow_profile(tables("grad_flow"), None, "grad_norm")
    figures["responses"] = plot_responses(tables("responses"))
    return figures
