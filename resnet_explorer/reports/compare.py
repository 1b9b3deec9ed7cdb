"""Side-by-side comparison of finished (or running) runs: a summary table and the shared figures.

The figures overlay every run, so plain nets and their residual twins read as in He et al. 2015
(Fig. 6 training curves, Fig. 7 layer responses); one run alone gets the same figures, plus its
||F(x)|| / ||x|| heat-map when it is residual.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from ..models import ModelSpec, count_parameters
from ..models.graph import build_graph
from ..plots import (
    plot_grad_flow_heatmap,
    plot_grad_flow_profile,
    plot_residual_heatmap,
    plot_residual_norms,
    plot_responses,
    plot_training_curves,
)
from ..runs import Run, are_twins, unique_labels
from .findings import (
    Check,
    Progress,
    at_chance_note,
    compare_losses,
    degradation_checks,
    mean_sd,
    progress_of,
    responses_finding,
    spread,
    tail_mean,
)


def _number(value: Any) -> float | None:
    """A float for a table cell; None for missing, NaN or infinite values (JSON has no NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _error(accuracy: float | None) -> float | None:
    return None if accuracy is None else 100 * (1 - accuracy)


def summary_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per run: model, size, budget and final numbers.

    Keys: run (label), id, model, residual, depth, params, macs (multiply-adds per image at the
    run's image size), dataset, steps, batch_size (the global batch: per process x processes), train_loss and train_error_% (mean of the last
    20% of logged metric rows), test_error_% (the last evaluation), seconds (wall time), status.
    Values a run does not have yet (no evaluation, still running) are None, and so are the training
    facts of an imported run (no config, no tables): its dataset and image size come from run.json's data.
    """
    rows = []
    for run, label in zip(runs, run_labels(runs)):
        config = run.config
        image_size = config.image_size if config is not None else _data_image_size(run)  # images drawn/resized to it
        metrics, evals = run.tables.get("metrics"), run.tables.get("eval")
        last_eval = None
        if evals is not None and not evals.empty and "accuracy" in evals.columns:
            last_eval = _number(evals["accuracy"].iloc[-1])
        rows.append({  # the numbers that matter first, so a narrow table still shows them
            "run": label, "model": run.spec.name,
            "train_loss": tail_mean(metrics, "loss"), "train_error_%": _error(tail_mean(metrics, "accuracy")),
            "test_error_%": _error(last_eval), "seconds": _number(run.info.get("seconds")),
            "id": run.id, "residual": bool(run.spec.residual),
            "depth": run.spec.depth, "params": count_parameters(run.spec),
            "macs": build_graph(run.spec, image_size).total_macs if image_size else None,
            "dataset": config.dataset if config is not None else _data_name(run),
            "steps": run.info.get("steps") if config is not None else None,
            "batch_size": config.batch_size * config.world_size if config is not None else None,  # global
            "status": run.status,
        })
    return rows


def _data_image_size(run: Run) -> int | None:
    """The image size in run.json's data section (an imported run's), None when it has none."""
    data = run.info.get("data")
    size = data.get("image_size") if isinstance(data, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def _data_name(run: Run) -> str | None:
    data = run.info.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _seed(run: Run) -> int:
    return run.config.seed if run.config is not None else 0


def group_key(run: Run) -> tuple:
    """Runs that differ only in their seed share this key: the same spec, data and budget.
    An imported run (no config) is a group of its own."""
    if run.imported or run.config is None:
        return run.spec, ("imported", run.id)
    config = dataclasses.replace(run.config, seed=0, device="any")
    return run.spec, config


def group_runs(runs: list[Run]) -> list[list[Run]]:
    """Runs grouped by `group_key`, groups in order of first appearance, seeds ascending inside."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    return [sorted(g, key=_seed) for g in groups.values()]


def group_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per group of seeds (`group_runs`): final numbers as mean and spread over seeds.

    Keys: model, residual, depth, params, seeds (how many), seed_list, train_losses (per seed),
    train_loss / train_loss_sd, train_error_% / test_error_% (means), the same as "mean ± sd"
    text (train_loss_text, train_error_text, test_error_text), seconds (mean per run), runs (ids).
    """
    rows = []
    for group in group_runs(runs):
        singles = summary_rows(group)
        losses = [r["train_loss"] for r in singles if r["train_loss"] is not None]
        train_err = [r["train_error_%"] for r in singles if r["train_error_%"] is not None]
        test_err = [r["test_error_%"] for r in singles if r["test_error_%"] is not None]
        seconds = [r["seconds"] for r in singles if r["seconds"] is not None]
        first = singles[0]
        rows.append({
            "model": first["model"], "residual": first["residual"], "depth": first["depth"],
            "params": first["params"], "seeds": len(group), "seed_list": [r.config.seed for r in group if r.config is not None],
            "train_losses": [r["train_loss"] for r in singles],
            "train_loss": statistics.fmean(losses) if losses else None,
            "train_loss_sd": spread(losses) if losses else None,
            "train_loss_text": mean_sd(losses, 3), "train_error_text": mean_sd(train_err, 1),
            "test_error_text": mean_sd(test_err, 1),
            "train_error_%": statistics.fmean(train_err) if train_err else None,
            "test_error_%": statistics.fmean(test_err) if test_err else None,
            "seconds": statistics.fmean(seconds) if seconds else 0.0, "runs": [r.id for r in group],
        })
    return rows


def run_labels(runs: list[Run]) -> list[str]:
    """Unique display labels in run order: `run.label`, with the whole id where two collide (`runs.unique_labels`).

    Labels are for reading only: the figures learn which runs are plain from each run's spec.
    """
    return unique_labels([(run.label, run.full_label) for run in runs])


def _spec_losses(groups: list[list[Run]]) -> dict[ModelSpec, dict[int, float]]:
    """Final training loss by spec, then by seed."""
    losses: dict[ModelSpec, dict[int, float]] = {}
    for group in groups:
        for run in group:
            loss = tail_mean(run.tables.get("metrics"), "loss")
            if loss is not None and run.config is not None:
                losses.setdefault(run.spec, {})[run.config.seed] = loss
    return losses


def _fig6_plain(spec: ModelSpec) -> bool:
    """A plain CIFAR net of He et al. 2015 Fig. 6: no shortcuts, post-activation basic units, n per stage."""
    return (not spec.residual and spec.stem == "cifar" and spec.block == "basic" and not spec.pre_activation
            and len(set(spec.layers)) == 1)


def degradation_finding(runs: list[Run]) -> list[Check]:
    """He et al. 2015 Fig. 6's two claims, counted over seeds, when the runs hold plain CIFAR nets at
    two depths (alike but for their depth) and the deeper one's residual twin (else []).

    Everything is read from the runs' specs: which nets are plain, their depths, and the twin (the
    deeper plain spec with shortcuts added, `ModelSpec.with_residual`).
    """
    groups = group_runs(runs)
    specs = list(dict.fromkeys(g[0].spec for g in groups))
    plain = sorted((s for s in specs if _fig6_plain(s)), key=lambda s: s.depth)
    if len(plain) < 2:
        return []
    shallow, deep = plain[0], plain[-1]
    twin = deep.with_residual()
    if shallow.depth == deep.depth or shallow.replace(layers=deep.layers) != deep or twin not in specs:
        return []
    losses = _spec_losses(groups)
    named = {f"plain{shallow.depth}": losses.get(shallow, {}), f"plain{deep.depth}": losses.get(deep, {}),
             f"resnet{deep.depth}": losses.get(twin, {})}  # the names the paper's claims are written with
    return degradation_checks(named, shallow.depth, deep.depth, classes=deep.num_classes)


def _seedless(run: Run) -> tuple[ModelSpec, Any]:
    return run.spec, run.config.replace(seed=0, device="any") if run.config is not None else None


def twin_checks(runs: list[Run]) -> list[Check]:
    """"<residual> trains better than <plain>" for every plain/residual twin pair of the same depth among
    the runs (specs that differ only in their shortcuts, the same data and budget), counted over the seeds
    both have. These are not the degradation problem, which compares a deeper plain net with a shallower one.
    """
    groups = group_runs([r for r in runs if r.config is not None])
    losses = _spec_losses(groups)
    checks = []
    for res in (g for g in groups if g[0].spec.residual):
        plain = next((g for g in groups if not g[0].spec.residual and are_twins(_seedless(res[0]), _seedless(g[0]))),
                     None)
        if plain is None:
            continue
        r, p = res[0].spec, plain[0].spec
        checks.append(compare_losses(p.name, r.name, {p.name: losses.get(p, {}), r.name: losses.get(r, {})},
                                     claim=f"{r.name} trains better than {p.name}", classes=r.num_classes))
    return checks


def run_progress(runs: list[Run], labels: list[str] | None = None) -> dict[str, Progress]:
    """Each trained run's distance from chance, keyed by `labels` (default: the display labels, `run_labels`)."""
    labels = run_labels(runs) if labels is None else labels
    return {label: progress_of(label, run.spec.num_classes, run.tables.get("metrics"), run.tables.get("eval"))
            for run, label in zip(runs, labels) if run.config is not None}


@dataclass(frozen=True)
class Finding:
    """A sentence about the runs shown, and whether it states a result ("holds") or says why none is
    stated ("note"): pages show the first as a success and the second as a caution."""

    text: str
    holds: bool = False
    short: str = ""  # for a figure's subtitle, where the whole text would not fit ("" : the text)

    @property
    def brief(self) -> str:
        return self.short or self.text


def comparison_findings(runs: list[Run]) -> list[Finding]:
    """What the runs shown support, in the words every page and the report use: the runs still at chance,
    He et al. 2015's degradation claims (plain nets at two depths and the deeper one's twin), and each
    same-depth twin pair's verdict, said not to be the degradation problem."""
    progress = list(run_progress(runs).values())
    stuck = at_chance_note(progress)
    findings = []
    if stuck:
        names = [p.label for p in progress if p.at_chance]
        findings.append(Finding(stuck, short=f"Not yet left chance, so no claim about {'its' if len(names) == 1 else 'their'} "
                                             f"internals: {', '.join(names)}."))
    degradation = degradation_finding(runs)
    for check in degradation:
        findings.append(Finding(check.text() + ".", check.verdict == "holds"))
    said = [{c.worse, c.better} for c in degradation]
    for check in twin_checks(runs):
        if {check.worse, check.better} in said:
            continue
        findings.append(Finding(f"{check.text()}. Both have the same depth: this compares shortcuts, "
                                "not depth, so it is not the degradation problem.", check.verdict == "holds"))
    return findings



RESPONSES_EVAL = "in eval mode on held-out images (the paper's measurement)"
RESPONSES_TRAINING = "in training mode on the last probed batch (these runs have no eval-mode responses)"


def response_tables(runs: dict[str, Run]) -> tuple[dict[str, pd.DataFrame | None], str]:
    """The layer responses every page compares, and how they were measured: eval mode on held-out images at
    the end of the run (He et al. 2015's Fig. 7) when every run has them, else training mode at the
    latest probe for all (one measurement for all runs, never a mix)."""
    evals = {label: run.tables.get("responses_eval") for label, run in runs.items()}
    if evals and all(df is not None and not df.empty for df in evals.values()):
        return evals, RESPONSES_EVAL
    return {label: run.tables.get("responses") for label, run in runs.items()}, RESPONSES_TRAINING


def comparison_figures(runs: list[Run]) -> dict[str, go.Figure]:
    """The figures of a comparison, in display order, keyed by a file-name-safe name.

    Keys: "training_curves" (He et al. 2015, Fig. 6; runs that differ only in their seed are drawn
    as their mean with a band), "residual_norms" (latest step), "ratio_heatmap" (only for a single
    residual run), "grad_flow" (heat-maps side by side, one colour scale), "grad_flow_profile"
    (latest step), "responses" (He et al. 2015, Fig. 7). The probe figures show one run per group
    of seeds (its lowest seed). Subtitles that state a finding compute it from these runs. Imported
    runs (no training tables) are left out of every figure; with only imported runs there are none ({}).

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("compare needs at least one run")
    labels = dict(zip((r.id for r in runs), run_labels(runs)))
    runs = [r for r in runs if r.config is not None]
    if not runs:
        return {}
    groups = group_runs(runs)
    curves, curve_evals, curve_residual, curve_depth = {}, {}, {}, {}
    shown: list[tuple[str, Run]] = []  # one run per group for the probe figures
    for group in groups:
        first = group[0]
        if len(group) > 1:
            label = f"{first.spec.name} ({len(group)} seeds)"
            curves[label] = [r.tables.get("metrics") for r in group]
            curve_evals[label] = [r.tables.get("eval") for r in group]
            shown_label = f"{first.spec.name} (seed {first.config.seed})"
        else:
            label = shown_label = labels[first.id]
            curves[label], curve_evals[label] = first.tables.get("metrics"), first.tables.get("eval")
        curve_residual[label] = bool(first.spec.residual)
        curve_depth[label] = first.spec.depth
        shown.append((shown_label, first))
    residual = {label: bool(run.spec.residual) for label, run in shown}
    depth = {label: run.spec.depth for label, run in shown}

    def tables(name: str) -> dict[str, pd.DataFrame]:
        return {label: run.tables.get(name) for label, run in shown}

    progress = {label: progress_of(label, run.spec.num_classes, run.tables.get("metrics"), run.tables.get("eval"))
                for label, run in shown}
    said = comparison_findings(runs)
    finding = ("Here: " + " ".join(f.brief for f in said)) if said else None
    figures = {
        "training_curves": plot_training_curves(curves, curve_evals, residual=curve_residual, depth=curve_depth,
                                                finding=finding),
        "residual_norms": plot_residual_norms(tables("residual_norms"), residual=residual, depth=depth),
    }
    if len(shown) == 1 and shown[0][1].spec.residual:  # a plain net has no shortcut, so no ratio
        label, run = shown[0]
        figures["ratio_heatmap"] = plot_residual_heatmap(
            run.tables.get("residual_norms"), "ratio", title=f"{label}: ||F(x)|| / ||x|| per unit over training")
    figures["grad_flow"] = plot_grad_flow_heatmap(tables("grad_flow"), "grad_norm")
    figures["grad_flow_profile"] = plot_grad_flow_profile(tables("grad_flow"), None, "grad_norm", residual=residual,
                                                          depth=depth)
    responses, measured = response_tables(dict(shown))
    figures["responses"] = plot_responses(responses, None, residual=residual, depth=depth,
                                          finding=responses_finding(responses, residual, depth, progress, measured))
    return figures
