"""Compare: plain vs residual (or any runs) side by side; a preset experiment in one click; report bundle."""

from pathlib import Path

import streamlit as st

from resnet_explorer.export import ExportError
from resnet_explorer.plots import plot_live_loss
from resnet_explorer.reports.bundle import report_zip
from resnet_explorer.reports.compare import comparison_figures, comparison_findings, group_rows, summary_rows
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.training.presets import (
    DEGRADATION,
    DEGRADATION_DEPTHS,
    DEGRADATION_SEEDS,
    degradation_config,
    degradation_specs,
    describe,
)
from resnet_explorer.ui import jobs, state
from resnet_explorer.ui.nav import through_app
from resnet_explorer.ui.run_picker import (
    compare_after_training,
    is_imported,
    no_runs,
    pick_many,
    preselect,
    warn_mixed_data,
)
from resnet_explorer.ui.widgets import figure_downloads, static_export_problem, table

through_app()  # a page opened by its URL on a fresh server: through app.py's navigation
st.set_page_config(page_title="Compare - ResNet Explorer", layout="wide")

st.title("Compare")
st.caption("Plain and residual twins, or any runs, on the same axes: He et al. 2015's Fig. 6 (training curves) "
           "and Fig. 7 (responses), residual norms and gradient flow. The URL keeps the selection: share it.")

with st.expander("Run a preset experiment: plain and residual twins at several depths", expanded=not list_runs(
        jobs.runs_root())):
    with st.form("compare_preset"):
        c1, c2, c3 = st.columns([2, 1, 1])
        depths = c1.multiselect("CIFAR depths (6n+2)", [8, 14, 20, 32, 44, 56, 110], default=list(DEGRADATION_DEPTHS),
                                key="compare_depths")
        steps = c2.number_input("Steps per run", min_value=1, max_value=100_000, value=DEGRADATION["steps"],
                                key="compare_steps")
        seeds = c3.multiselect("Seeds (each trains every net)", list(range(10)), default=[0],
                               key="compare_seeds",
                               help=f"Several seeds show the spread: curves as mean and band, the table as mean ± sd, "
                                    f"the verdict counted over seeds (the shipped examples use "
                                    f"{', '.join(map(str, DEGRADATION_SEEDS))}).")
        st.caption(f"Every run gets the same data, data order and budget ({describe(degradation_config())}) on "
                   f"{state.get_device()}. The runs go one after another: on a small CPU, parallel runs share the "
                   "same cores and finish no sooner.")
        launch = st.form_submit_button("Train the preset", type="primary", icon=":material/play_arrow:")
    if launch:
        try:
            if not seeds:
                raise ValueError("choose at least one seed")
            jobs.start_job(degradation_specs(sorted(depths)),
                           degradation_config(steps=int(steps), device=state.get_device()), seeds=sorted(seeds))
        except ValueError as err:
            st.error(str(err))

job = jobs.current_job()
if job is not None and len(job.specs) == 1:  # a Train job: open on its run and that run's twin (once per job)
    compare_after_training(job, jobs.runs_root())
if job is not None and len(job.specs) > 1:

    @st.fragment(run_every=jobs.LIVE_SECONDS if job.running else None)
    def progress(job: jobs.TrainingJob) -> None:
        snaps = job.snapshots()
        for snap in snaps:
            total = max(1, snap["total"])
            st.progress(min(1.0, snap["step"] / total), text=f"{snap['label']}: {jobs.status_line(snap)}")
        live = {s["label"]: s["metrics"] for s in snaps if s["metrics"]}
        if live and job.running:
            residual = {s["label"]: spec.residual for s, spec in zip(snaps, job.specs)}
            key = tuple(len(v) for v in live.values())  # rebuilt only when rows arrived, at most once a second
            fig = jobs.live_figure("compare").get(key, lambda: plot_live_loss(
                live, residual, {s["label"]: spec.depth for s, spec in zip(snaps, job.specs)}))
            st.plotly_chart(fig, key="compare_live", theme=None)
        finished = [s["run_id"] for s in snaps if s["run_id"]]
        if jobs.job_panel(job, "compare", "The preset", snaps[0]["status"] == "queued"):
            if finished:  # show the preset's runs (none when it was stopped in the queue)
                preselect("compare", finished)
            st.rerun()

    progress(job)

runs = list_runs(jobs.runs_root())
no_runs(runs, "No runs yet: train the preset above, or runs on the Train page.", link=False)


@st.cache_data(max_entries=256, show_spinner="Reading runs...")  # one entry per run: a preset has up to 140
def cached_run(path: str, stamp: float):
    return load_run(path, with_model=False)


def read_run(row: dict):
    return cached_run(row["path"], (Path(row["path"]) / "run.json").stat().st_mtime)


picked = pick_many("compare", runs, read_run, label="Runs to compare")  # the URL's ?runs= on the first visit
if not picked:
    if job is None or len(job.specs) < 2 or not job.running:  # while the preset trains, its progress says it all
        st.info("Choose runs to compare (two or more), or train the preset above.")
    st.stop()
warn_mixed_data([p.row for p in picked])  # preset runs beside Train runs, say
paths = tuple(p.row["path"] for p in picked)
try:
    loaded = [p.run for p in picked]
    rows = summary_rows(loaded)
    groups = group_rows(loaded)
    said = comparison_findings(loaded)
    figures = comparison_figures(loaded)
except (ValueError, OSError) as err:
    st.error(str(err))
    st.stop()

st.subheader("Runs")
imported = [p.id for p in picked if is_imported(p.row)]
if imported:
    st.caption(f"Imported from a checkpoint (pretrained weights, not trained here): {', '.join(imported)}. "
               "Their training columns are blank and the training figures leave them out.")
for finding in said:  # the same sentences as the report's and the training-curves figure's
    (st.success if finding.holds else st.warning)(finding.text)
if any(g["seeds"] > 1 for g in groups):
    st.caption("Per model, over seeds: mean ± sd (sample standard deviation). Train loss/error: mean of the last 20% "
               "of logged steps; test error: the final evaluation on the whole held-out split.")
    table([{"model": g["model"], "seeds": ", ".join(map(str, g["seed_list"])),
            "train loss": g["train_loss_text"], "train error %": g["train_error_text"],
            "test error %": g["test_error_text"], "seconds per run": round(g["seconds"], 1),
            "params": g["params"]} for g in groups])
    st.caption("Every run:")
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
