"""Explain: lesions, paths, the loss landscape and the unit profile of a trained run, its twin side by side where
the lens draws one (resnet_explorer.reports.explain: one tab per registered lens)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from resnet_explorer.models import ModelSpec
from resnet_explorer.reports import explain
from resnet_explorer.reports.findings import progress_of
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.ui import analysis_jobs, jobs
from resnet_explorer.ui.nav import through_app
from resnet_explorer.ui.run_picker import is_imported, no_runs, pick_runs, row_label
from resnet_explorer.ui.widgets import figure_downloads, page_device

through_app()  # a page opened by its URL on a fresh server: through app.py's navigation
st.set_page_config(page_title="Explain - ResNet Explorer", layout="wide")

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
           "**Unit profile** looks inside the run alone, in eval mode, over its held-out images or a folder of "
           "yours. Each result is saved in the run's folder (explain/<lens>/) and shown again on later visits.")

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


def field(col, lens: str, option) -> Any:
    """One option's widget, made from its schema (`options.Option`): a select box for choices, a toggle for a
    switch, a text field for a path, else a number."""
    key = f"explain_{lens}_{option.name}"
    tip = option.help[:1].upper() + option.help[1:]
    if option.kind is bool:
        return col.toggle(option.label, value=option.default, key=key, help=tip)
    if option.kind is str:
        return col.text_input(option.label, value=option.default, max_chars=int(option.high), key=key, help=tip,
                              placeholder="none")
    if option.choices:
        return col.selectbox(option.label, list(option.choices), index=list(option.choices).index(option.default),
                             key=key, help=option.help[:1].upper() + option.help[1:])
    if option.kind is int:
        return col.number_input(option.label, min_value=int(option.low), max_value=int(option.high),
                                value=int(option.default), step=int(option.step or 1), key=key,
                                help=option.help[:1].upper() + option.help[1:])
    low = option.low + (option.step or 0.05) / 5 if option.above_low else option.low
    return col.number_input(option.label, min_value=float(low), max_value=float(option.high),
                            value=float(option.default), step=float(option.step or 0.05), key=key,
                            help=option.help[:1].upper() + option.help[1:], format=option.fmt)


def options_form(lens: str) -> dict[str, Any] | None:
    """The lens's options in a form made from its schema; the options when Run was pressed, else None.

    Only Run starts a job: with Streamlit's default, Enter in a number field submitted the form, so a job
    could start from a value typed but not yet shown as committed. Every field keeps its value in session
    state under its key, so the values shown are the values a job starts with."""
    entry = explain.LENSES[lens]
    with st.form(f"explain_{lens}_form", enter_to_submit=False):
        columns = st.columns(len(entry.options))
        options = {o.name: o.kind(field(col, lens, o)) for col, o in zip(columns, entry.options)}
        run = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:", key=f"explain_{lens}_run")
    return options if run else None


def measured(lens: str) -> list[RunInfo]:
    """The picked runs a lens measures: the run and its twin, or the run alone for a lens without a twin."""
    return picked if explain.LENSES[lens].twin else picked[:1]


def plain_note(lens: str, info: RunInfo) -> str | None:
    """Why `info`'s run is left out of `lens` (a plain net where the lens needs shortcuts), or None."""
    reason = explain.refusal(lens, run_id=info.id, imported=False, spec=info.spec)
    return f"{explain.LENSES[lens].title}: {info.label} left out: {reason}." if reason else None


def start(lens: str, options: dict[str, Any]) -> None:
    """Start the lens on the picked runs (a run the lens cannot measure is left out); errors as st.error."""
    try:
        options = explain.check_options(lens, options)
        chosen = [info for info in measured(lens) if plain_note(lens, info) is None]
        if not chosen:
            st.info(plain_note(lens, picked[0]))
            return
        analysis_jobs.start_job([(info.path, lens, options) for info in chosen], device,
                                labels=[info.label for info in chosen])
    except ValueError as err:
        st.error(str(err))


def job_end(job: analysis_jobs.AnalysisJob) -> None:
    snap = job.snapshot()
    if snap["status"] == "failed":
        st.error(f"{explain.LENSES[job.lens].title} failed: {snap['message']}")
    elif snap["status"] == "stopped":
        st.info(analysis_jobs.stopped_text(snap, explain.LENSES[job.lens].title))


def options_text(options: dict[str, Any]) -> str:
    """"images 1000, draws 5, seed 0"; a switch as on/off, an empty path as none."""
    def shown(value: Any) -> str:
        return ("on" if value else "off") if isinstance(value, bool) else (value if value != "" else "none")
    return ", ".join(f"{name} {shown(value)}" for name, value in options.items())


def rows_for(lens: str, stem: str, results: dict) -> list[dict]:
    """The figure's data as CSV rows, a "run" column first."""
    table = explain.LENSES[lens].figure_tables[stem]
    rows = []
    for label, result in results.items():
        frame = explain.tables(lens, result).get(table)
        if frame is not None:
            rows += [{"run": label, **r} for r in frame.to_dict("records")]
    return rows


def show_results(lens: str, measuring: bool) -> None:
    """The saved results of the picked runs: figures, downloads, captions and notes (`measuring`: a job of
    this lens is queued or running)."""
    entry = explain.LENSES[lens]
    results, options, missing = {}, {}, []
    for info in measured(lens):
        note = plain_note(lens, info)
        if note:
            st.info(note)
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
        st.caption(f"No saved {entry.title.lower()} result for {', '.join(missing)} yet: press Run.")
    if not results:
        return
    residual = {info.label: bool(info.spec.residual) for info in picked}
    depth = {info.label: info.spec.depth for info in picked}
    classes = {info.label: info.spec.num_classes for info in picked}
    try:
        figs = explain.figures(lens, results, residual=residual, depth=depth, classes=classes)
    except (ValueError, KeyError, TypeError) as err:  # saved tables that do not fit together
        st.error(f"The saved {entry.title.lower()} results cannot be drawn: {err}. Run it again.")
        return
    for stem, fig in figs.items():
        st.plotly_chart(fig, key=f"explain_fig_{stem}", theme=None)
        shown = {label: r for label, r in results.items() if entry.shows(stem, r)}
        st.caption(" ".join(entry.caption(stem, label, r, options[label]) for label, r in shown.items()))
        figure_downloads(fig, f"{picked[0].id}_{stem}", f"dl_explain_{stem}", rows_for(lens, stem, results))
    left = [label for label, r in results.items() if not all(entry.shows(stem, r) for stem in figs)]
    if left and len(left) < len(results):
        st.caption(f"{', '.join(left)}: {entry.left_out}.")
    for label, result in results.items():
        for note in entry.notes(result):
            st.info(f"{label}: {note}")
    if len({tuple(sorted(o.items())) for o in options.values()}) > 1:
        st.warning("The runs were measured with different options: "
                   + "; ".join(f"{label}: {options_text(o)}" for label, o in options.items()))
    else:
        st.caption(f"Options: {options_text(next(iter(options.values())))}.")


job = analysis_jobs.current_job()
tabs = st.tabs([entry.title for entry in explain.LENSES.values()])
for tab, lens in zip(tabs, explain.LENSES):
    with tab:
        st.markdown(explain.LENSES[lens].look_for)
        options = options_form(lens)
        if options is not None:
            start(lens, options)
            job = analysis_jobs.current_job()
        if job is not None and job.lens == lens:
            if job.running:
                analysis_jobs.live_panel(job, "explain")
            else:
                job_end(job)
        show_results(lens, job is not None and job.lens == lens and job.running)
