"""Explain: lesions, paths and the loss landscape of a trained run, its twin side by side (resnet_explorer.explain)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from resnet_explorer import explain
from resnet_explorer.findings import progress_of
from resnet_explorer.limits import (
    MAX_LANDSCAPE_GRID,
    MAX_LANDSCAPE_IMAGES,
    MAX_LANDSCAPE_SPAN,
    MAX_LESION_DRAWS,
    MAX_LESION_IMAGES,
    MAX_PATH_DRAWS,
    MAX_PATH_IMAGES,
    MAX_SEED,
)
from resnet_explorer.models import ModelSpec
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.ui import analysis_jobs, jobs
from resnet_explorer.ui.nav import through_app
from resnet_explorer.ui.run_picker import is_imported, no_runs, pick_runs, row_label
from resnet_explorer.ui.widgets import figure_downloads, page_device

through_app()  # a page opened by its URL on a fresh server: through app.py's navigation
st.set_page_config(page_title="Explain - ResNet Explorer", layout="wide")

LOOK_FOR = {
    "lesion": "**What to look for.** Veit, Wilber & Belongie (2016) found that deleting one unit from a trained "
              "residual net at test time barely changed its error, except at the few units where the shape changes, "
              "while deleting one layer of a plain net (VGG) left it at chance; that the error grew smoothly as more "
              "units were deleted; and that swapping units hurt only a little. They read this as a residual net "
              "behaving like an ensemble of many paths rather than one deep chain. The figures below show what this "
              "run (and its twin) did.",
    "paths": "**What to look for.** A residual net with n units has 2^n paths, whose lengths follow a binomial "
             "distribution around n/2. Veit, Wilber & Belongie (2016, Fig. 6) found that almost all of the gradient "
             "in training came from short paths: in their 110-layer net, paths through 5 to 17 residual branches. "
             "Here each path length k is measured by letting the gradient through k randomly chosen branches only. "
             "A plain net has a single path, so this lens applies to residual runs.",
    "landscape": "**What to look for.** Li et al. (2018, Fig. 5) found that, along filter-normalised random "
                 "directions, the loss around a deep plain net's trained weights became chaotic and non-convex as "
                 "depth grew, while with shortcuts it stayed smooth and nearly convex around the minimum. With 2 "
                 "directions, the net and its twin are drawn side by side on the same colour scale.",
}
TABLE_OF = {"lesion_single": "lesion_single", "lesion_k": "lesion_k_lesions", "lesion_reorder": "lesion_reorder",
            "paths": "paths_summary", "landscape_1d": "landscape", "landscape_contours": "landscape",
            "landscape_surfaces": "landscape"}


@dataclass(frozen=True)
class RunInfo:
    """What the page needs of a picked run: its folder, label and spec (from `list_runs`, no tables read)."""

    path: str
    id: str
    label: str
    spec: ModelSpec


def run_info(row: dict) -> RunInfo:
    try:
        spec = ModelSpec.from_dict(row.get("spec"))
    except (TypeError, KeyError) as err:
        raise ValueError(f"run {row['id']}: run.json has no valid spec ({err})") from None
    return RunInfo(str(row["path"]), row["id"], row_label(row), spec)


st.title("Explain")
st.caption("Three lenses on why residual nets train, each a measurement of a trained run and its twin: **Lesions** "
           "deletes units (or swaps them) at test time and **Paths** measures how much gradient flows through paths "
           "of each length (Veit, Wilber & Belongie 2016, *Residual networks behave like ensembles of relatively "
           "shallow networks*); **Loss landscape** evaluates the loss around the trained weights along "
           "filter-normalised random directions (Li et al. 2018, *Visualizing the loss landscape of neural nets*). "
           "Each result is saved in the run's folder (explain/<lens>/) and shown again on later visits.")

runs = [r for r in list_runs(jobs.runs_root()) if (Path(r["path"]) / "model.pt").is_file()]
no_runs(runs, "No trained run yet: train one on the Train page (or `python -m resnet_explorer train`).")
device = page_device()

chosen_rows = pick_runs("explain", runs, run_info, twin_label="Side by side with (its twin is picked when there is one)")
if is_imported(chosen_rows[0].row):
    st.info(f"Run {chosen_rows[0].id} was imported from a checkpoint and has no dataset to measure on: lesions, "
            "paths and the loss landscape need the training data. The **Pretrained** page measures single-unit "
            "lesions and residual ratios over your photos instead; Attribute explains its predictions on them.")
    st.stop()
if any(is_imported(p.row) for p in chosen_rows[1:]):
    st.caption(f"Run {chosen_rows[1].id} was imported from a checkpoint and has no dataset to measure on: left out.")
    chosen_rows = chosen_rows[:1]
picked = [p.run for p in chosen_rows]
if len({info.label for info in picked}) < len(picked):
    picked = [RunInfo(i.path, i.id, f"{i.label} [{k + 1}]", i.spec) for k, i in enumerate(picked)]


@st.cache_data(max_entries=64, show_spinner=False)
def run_progress(path: str, stamp: float, label: str):
    """How far a run got from chance (its metrics and evaluations), re-read when its run.json changes."""
    run = load_run(path, with_model=False)
    return progress_of(label, run.spec.num_classes, run.tables.get("metrics"), run.tables.get("eval"))


for info in picked:  # a net at chance learnt nothing: no lens says anything about trained nets through it
    try:
        progress = run_progress(info.path, (Path(info.path) / "run.json").stat().st_mtime, info.label)
    except (OSError, ValueError):
        continue  # the picker has said what is wrong with a damaged run
    if progress.at_chance:
        st.warning(f"{progress.text()} Its lesions, paths and landscape are those of an untrained net.")


def number(col, label: str, key: str, low, high, value, step, help_text: str | None = None, fmt: str | None = None):
    return col.number_input(label, min_value=low, max_value=high, value=value, step=step, key=key, help=help_text,
                            format=fmt)


def options_form(lens: str) -> dict[str, Any] | None:
    """The lens's options in a form; the options when Run was pressed, else None.

    Only Run starts a job: with Streamlit's default, Enter in a number field submitted the form, so a job
    could start from a value typed but not yet shown as committed. Every field keeps its value in session
    state under its key, so the values shown are the values a job starts with."""
    d = explain.DEFAULTS[lens]
    with st.form(f"explain_{lens}_form", enter_to_submit=False):
        if lens == "landscape":
            c1, c2, c3, c4, c5 = st.columns(5)
            dims = c1.selectbox("Directions", [1, 2], index=[1, 2].index(d["dims"]), key="explain_landscape_dims",
                                help="1: a line through the trained weights; 2: a plane (contours and a 3-D surface)")
            grid = number(c2, "Points per direction (odd)", "explain_landscape_grid", 3, MAX_LANDSCAPE_GRID, d["grid"],
                          2, "Odd, so that the trained weights are a grid point; 2 directions evaluate grid x grid")
            span = number(c3, "Span", "explain_landscape_span", 0.05, MAX_LANDSCAPE_SPAN, float(d["span"]), 0.25,
                          "The grid covers [-span, span] along each direction (Li et al. plot [-1, 1])", "%.2f")
            images = number(c4, "Training images", "explain_landscape_images", 1, MAX_LANDSCAPE_IMAGES, d["images"],
                            64, "Evaluated at every grid point")
            seed = number(c5, "Seed (directions)", "explain_landscape_seed", 0, MAX_SEED, d["seed"], 1)
            options = {"dims": int(dims), "grid": int(grid), "span": float(span), "images": int(images),
                       "seed": int(seed)}
        else:
            high_images, high_draws = ((MAX_LESION_IMAGES, MAX_LESION_DRAWS) if lens == "lesion"
                                       else (MAX_PATH_IMAGES, MAX_PATH_DRAWS))
            c1, c2, c3 = st.columns(3)
            images = number(c1, "Held-out images" if lens == "lesion" else "Training images",
                            f"explain_{lens}_images", 1, high_images, d["images"], 16,
                            "Each lesioned or reordered net is evaluated on them" if lens == "lesion"
                            else "Spread over the classes; the gradient is measured on them")
            draws = number(c2, "Random draws per k" if lens == "lesion" else "Random draws per path length",
                           f"explain_{lens}_draws", 1, high_draws, d["draws"], 1,
                           "Random unit sets deleted (or swapped) for each k" if lens == "lesion"
                           else "Random sets of k residual branches let through for each length k")
            seed = number(c3, "Seed", f"explain_{lens}_seed", 0, MAX_SEED, d["seed"], 1)
            options = {"images": int(images), "draws": int(draws), "seed": int(seed)}
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:", key=f"explain_{lens}_run")
    return options if run else None


def start(lens: str, options: dict[str, Any]) -> None:
    """Start the lens on the picked runs (a plain run is left out of paths); errors as st.error."""
    try:
        options = explain.check_options(lens, options)
        chosen = [info for info in picked if lens != "paths" or info.spec.residual]
        if not chosen:
            st.info("Paths: the picked run has no shortcuts, so it has a single path and nothing to measure; "
                    "pick a residual run.")
            return
        analysis_jobs.start_job([(info.path, lens, options) for info in chosen], device,
                                labels=[info.label for info in chosen])
    except ValueError as err:
        st.error(str(err))


@st.fragment(run_every=jobs.LIVE_SECONDS)
def live(job: analysis_jobs.AnalysisJob) -> None:
    """Progress and Stop while the job is queued or running; its end once it has ended."""
    snap = job.snapshot()
    fraction = min(1.0, snap["done"] / snap["total"]) if snap["total"] else 0.0
    st.progress(fraction, text=analysis_jobs.progress_text(snap))
    if snap["status"] == "queued":
        st.caption("It starts by itself when the jobs ahead of it end; Stop takes it out of the line.")
    if job.running:
        st.button("Stopping…" if job.stopping else "Stop", key="explain_stop", on_click=job.stop,
                  icon=":material/stop:", disabled=job.stopping)
    elif st.session_state.get("explain_seen_end") != job.id:
        st.session_state["explain_seen_end"] = job.id
        st.rerun()  # once, so the page leaves live mode and draws the saved results


def job_end(job: analysis_jobs.AnalysisJob) -> None:
    snap = job.snapshot()
    if snap["status"] == "failed":
        st.error(f"{explain.LENSES[job.lens]} failed: {snap['message']}")
    elif snap["status"] == "stopped":
        st.info(analysis_jobs.stopped_text(snap, explain.LENSES[job.lens]))


def draws_text(count) -> str:
    return f"{count} random draw{'' if count == 1 else 's'}"


def caption(stem: str, label: str, result, options: dict[str, Any]) -> str:
    """What one run's result in this figure measured, from the saved result and its options."""
    if stem.startswith("lesion"):
        part = {"lesion_single": result.single, "lesion_k": result.k_lesions, "lesion_reorder": result.reorder}[stem]
        if part is None:
            return f"{label}: not measured."
        deletable = int(part.rows["deletable"].sum()) if stem == "lesion_single" else part.max_k
        kept = part.num_units - deletable
        single = (f"each of its {part.num_units} units deleted in turn" if not kept else
                  f"each of its {deletable} deletable units deleted in turn ({kept} of {part.num_units} change the "
                  "shape and cannot be)")
        what = {"lesion_single": single,
                "lesion_k": f"k = 1 to {part.max_k} units deleted at once, {draws_text(options.get('draws', '?'))} per k",
                "lesion_reorder": f"1 to {part.max_k} swaps of units within a stage, "
                                  f"{draws_text(options.get('draws', '?'))} per count"}[stem]
        return (f"{label}: {what}; {part.num_images:,} held-out images, on which the intact net's error is "
                f"{part.baseline_error:.1%}.")
    if stem == "paths":
        return (f"{label}: {result.images:,} training images, {draws_text(result.draws)} per path length, "
                f"{result.backward_passes:,} backward passes over {result.num_units} units.")
    points = f"{result.grid} x {result.grid}" if result.dims == 2 else f"{result.grid}"
    return (f"{label}: loss and accuracy at {points} points over [-{result.span:g}, {result.span:g}], direction "
            f"seed {result.seed}; {result.note or f'{result.images:,} training images'}.")


def rows_for(stem: str, results: dict) -> list[dict]:
    """The figure's data as CSV rows, a "run" column first."""
    lens = "lesion" if stem.startswith("lesion") else "paths" if stem == "paths" else "landscape"
    rows = []
    for label, result in results.items():
        frame = explain.tables(lens, result).get(TABLE_OF[stem])
        if frame is not None:
            rows += [{"run": label, **r} for r in frame.to_dict("records")]
    return rows


def show_results(lens: str, measuring: bool) -> None:
    """The saved results of the picked runs: figures, downloads, captions and notes (`measuring`: a job of
    this lens is queued or running)."""
    results, options, missing = {}, {}, []
    for info in picked:
        if lens == "paths" and not info.spec.residual:
            st.info(f"Paths: {info.label} is a plain net (no shortcuts), so it has a single path and no "
                    "path-length distribution; only residual runs are measured.")
            continue
        try:
            saved = explain.load(info.path, lens)
        except ValueError as err:  # damaged files: say so, keep the page
            st.error(str(err))
            continue
        if saved is None:
            missing.append(info.label)
        else:
            results[info.label], options[info.label] = saved
    if missing and not measuring:
        st.caption(f"No saved {explain.LENSES[lens].lower()} result for {', '.join(missing)} yet: press Run.")
    if not results:
        return
    residual = {info.label: bool(info.spec.residual) for info in picked}
    depth = {info.label: info.spec.depth for info in picked}
    classes = {info.label: info.spec.num_classes for info in picked}
    try:
        figs = explain.figures(lens, results, residual=residual, depth=depth, classes=classes)
    except (ValueError, KeyError, TypeError) as err:  # saved tables that do not fit together
        st.error(f"The saved {explain.LENSES[lens].lower()} results cannot be drawn: {err}. Run it again.")
        return
    for stem, fig in figs.items():
        st.plotly_chart(fig, key=f"explain_fig_{stem}", theme=None)
        shown = {label: r for label, r in results.items() if lens != "paths" or residual.get(label, True)}
        if stem.startswith("landscape") and stem != "landscape_1d":
            shown = {label: r for label, r in shown.items() if r.dims == 2}
        st.caption(" ".join(caption(stem, label, r, options[label]) for label, r in shown.items()))
        figure_downloads(fig, f"{picked[0].id}_{stem}", f"dl_explain_{stem}", rows_for(stem, results))
    flat = [label for label, r in results.items() if lens == "landscape" and r.dims == 1]
    if flat and len(flat) < len(results):
        st.caption(f"Only a 1-D landscape is saved for {', '.join(flat)}, so the 2-D figures leave it out: "
                   "run 2 directions to draw it there.")
    if lens == "lesion":
        for label, result in results.items():
            for note in result.notes:
                st.info(f"{label}: {note}")
    if len({tuple(sorted(o.items())) for o in options.values()}) > 1:
        st.warning("The runs were measured with different options: "
                   + "; ".join(f"{label}: {', '.join(f'{k} {v}' for k, v in o.items())}" for label, o in options.items()))
    else:
        st.caption("Options: " + ", ".join(f"{k} {v}" for k, v in next(iter(options.values())).items()) + ".")


job = analysis_jobs.current_job()
tabs = st.tabs(list(explain.LENSES.values()))
for tab, lens in zip(tabs, explain.LENSES):
    with tab:
        st.markdown(LOOK_FOR[lens])
        options = options_form(lens)
        if options is not None:
            start(lens, options)
            job = analysis_jobs.current_job()
        if job is not None and job.lens == lens:
            if job.running:
                live(job)
            else:
                job_end(job)
        show_results(lens, job is not None and job.lens == lens and job.running)
