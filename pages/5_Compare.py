"""Compare: plain vs residual (or any runs) side by side; a preset experiment in one click; report bundle."""

from pathlib import Path

import streamlit as st

from resnet_explorer.compare import comparison_figures, summary_rows
from resnet_explorer.export import ExportError
from resnet_explorer.plots import plot_training_curves
from resnet_explorer.report import report_zip
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.training.presets import (
    DEGRADATION_DEPTHS,
    DEGRADATION_STEPS,
    degradation_config,
    degradation_specs,
)
from resnet_explorer.ui import jobs, state
from resnet_explorer.ui.widgets import figure_downloads, static_export_problem, table

st.set_page_config(page_title="Compare - ResNet Explorer", layout="wide")
jobs.limit_torch_threads()

st.title("Compare")
st.caption("Plain and residual twins, or any runs, on the same axes: He et al. 2015's Fig. 6 (training curves) "
           "and Fig. 7 (responses), residual norms and gradient flow. The URL keeps the selection: share it.")

with st.expander("Run a preset experiment: plain and residual twins at several depths", expanded=not list_runs(
        jobs.runs_root())):
    with st.form("compare_preset"):
        c1, c2 = st.columns(2)
        depths = c1.multiselect("CIFAR depths (6n+2)", [8, 14, 20, 32, 44, 56, 110], default=list(DEGRADATION_DEPTHS),
                                key="compare_depths")
        steps = c2.number_input("Steps per run", min_value=1, max_value=100_000, value=DEGRADATION_STEPS,
                                key="compare_steps")
        st.caption("Every run gets the same data, seed, data order and budget (batch 64, SGD, one-cycle to lr 0.1) "
                   f"on {state.get_device()}. The runs go one after another: on a small CPU, parallel runs share "
                   "the same cores and finish no sooner.")
        launch = st.form_submit_button("Train the preset", type="primary", icon=":material/play_arrow:")
    if launch:
        try:
            jobs.start_job(degradation_specs(sorted(depths)), degradation_config(steps=int(steps),
                                                                                device=state.get_device()))
        except ValueError as err:
            st.error(str(err))

job = jobs.current_job()
if job is not None and len(job.specs) > 1:

    @st.fragment(run_every=0.5 if job.running else None)
    def progress(job: jobs.TrainingJob) -> None:
        snaps = job.snapshots()
        for snap in snaps:
            total = max(1, snap["total"])
            st.progress(min(1.0, snap["step"] / total),
                        text=f"{snap['label']}: {snap['step']}/{snap['total'] or '?'} ({snap['status']}) {snap['message']}")
        live = {s["label"]: s["metrics"] for s in snaps if s["metrics"]}
        if live and job.running:
            import pandas as pd

            fig = plot_training_curves({k: pd.DataFrame(v) for k, v in live.items()})
            st.plotly_chart(fig, key="compare_live", theme=None)
        if job.running:
            st.button("Stop", key="compare_stop", on_click=job.stop, icon=":material/stop:")
        finished = [s["run_id"] for s in snaps if s["run_id"]]
        if not job.running and st.session_state.get("compare_seen_end") != finished:
            st.session_state["compare_seen_end"] = finished
            st.session_state["compare_runs"] = finished  # show the preset's runs
            st.rerun()

    progress(job)

runs = list_runs(jobs.runs_root())
if not runs:
    st.info("No runs yet: train the preset above, or runs on the Train page.")
    st.stop()
by_id = {r["id"]: r for r in runs}
if "compare_runs" not in st.session_state:  # first visit: the link's runs, else none
    linked = [i for i in st.query_params.get("runs", "").split(",") if i in by_id]
    st.session_state["compare_runs"] = linked
else:
    st.session_state["compare_runs"] = [i for i in st.session_state["compare_runs"] if i in by_id]
chosen = st.multiselect(
    "Runs to compare", list(by_id), key="compare_runs",
    format_func=lambda i: f"{by_id[i]['model']} - {by_id[i]['status']} - {by_id[i]['steps']} steps - {i}",
)
if chosen:
    st.query_params["runs"] = ",".join(chosen)
else:
    st.query_params.pop("runs", None)
    st.info("Choose runs to compare (two or more), or train the preset above.")
    st.stop()


@st.cache_data(max_entries=8, show_spinner="Reading runs...")
def cached_runs(paths: tuple[str, ...], stamps: tuple[float, ...]):
    return [load_run(p, with_model=False) for p in paths]


paths = tuple(by_id[i]["path"] for i in chosen)
try:
    loaded = cached_runs(paths, tuple((Path(p) / "run.json").stat().st_mtime for p in paths))
    rows = summary_rows(loaded)
    figures = comparison_figures(loaded)
except (ValueError, OSError) as err:
    st.error(str(err))
    st.stop()

st.subheader("Runs")
table(rows)
for name, fig in figures.items():
    st.plotly_chart(fig, key=f"compare_{name}", theme=None)
    figure_downloads(fig, f"compare_{name}", f"dl_compare_{name}", rows if name == "training_curves" else None)

st.subheader("Report bundle")
problem = static_export_problem()
formats = ["html", "png", "svg"] if problem is None else ["html"]
if problem:
    st.caption(f"{problem}; the bundle will hold HTML figures only.")


def bundle() -> bytes:
    try:
        return report_zip(list(paths), formats)
    except ExportError:
        return report_zip(list(paths), ["html"])


st.download_button("Download the report (zip: every figure as " + ", ".join(f.upper() for f in formats)
                   + ", configs, metrics, index.html)", bundle, "resnet_explorer_report.zip", "application/zip",
                   key="dl_compare_report", icon=":material/folder_zip:", on_click="ignore")
