"""Inspect: residual norms, gradient flow and layer responses of a run, its twin overlaid."""

from pathlib import Path

import streamlit as st

from resnet_explorer.plots import (
    available_steps,
    plot_grad_flow_heatmap,
    plot_grad_flow_profile,
    plot_residual_heatmap,
    plot_residual_norms,
    plot_responses,
    plot_training_curves,
)
from resnet_explorer.reports.compare import RESPONSES_EVAL
from resnet_explorer.reports.findings import gradient_finding, progress_of, ratio_finding, responses_finding
from resnet_explorer.runs import TABLES, list_runs, load_run
from resnet_explorer.ui import jobs
from resnet_explorer.ui.nav import through_app
from resnet_explorer.ui.run_picker import best_finished, is_imported, pick_runs
from resnet_explorer.ui.widgets import figure_downloads

TABLE_FILES = ("run.json", *(f"{name}.csv" for name in TABLES))

through_app()  # a page opened by its URL on a fresh server: through app.py's navigation
st.set_page_config(page_title="Inspect - ResNet Explorer", layout="wide")


@st.cache_data(max_entries=16, show_spinner=False)
def cached_tables(path: str, files: tuple):
    """A run's tables, re-read whenever any of its files changes (a live run, or one edited or damaged)."""
    run = load_run(path, with_model=False)
    return run.label, run.spec.residual, run.status, run.tables, run.spec.depth, run.spec.num_classes


st.title("Inspect")
st.caption("Look inside a run: how big each unit's change F(x) is next to its input x, how gradients "
           "reach the early layers, and how strongly each 3x3 layer responds.")

job = jobs.current_job()
current = job.snapshot()["run_id"] if job else None


def tables_of(row: dict):
    path = Path(row["path"])
    files = []
    for name in sorted(TABLE_FILES):  # temp files come and go while a run writes: only the run's own files
        try:
            stat = (path / name).stat()
        except OSError:
            continue
        files.append((name, stat.st_mtime_ns, stat.st_size))
    return cached_tables(str(path), tuple(files))


all_runs = list_runs(jobs.runs_root())
finished = None if current else best_finished(all_runs)  # not a run stopped after a few steps
picked = pick_runs("inspect", all_runs, tables_of, default=current or finished,
                   twin_label="Overlay a second run (its twin is picked when there is one)")
main_id = picked[0].id
if is_imported(picked[0].row):
    st.info(f"Run {main_id} was imported from a checkpoint (pretrained weights, not trained here): it has no "
            "training tables to inspect. The **Pretrained** page looks inside it without training (residual ratios, "
            "responses and single-unit lesions over your photos); Attribute explains its predictions on them.")
    st.stop()
if any(is_imported(p.row) for p in picked[1:]):
    st.caption(f"Run {picked[1].id} was imported from a checkpoint and has no training tables: left out of the "
               "figures.")
    picked = picked[:1]
if finished and main_id == finished and len(all_runs) > 1:
    st.caption(f"Opened on **{picked[0].row['model']}** ({main_id}): the finished run with the most steps, "
               "newest first. Choose any other above.")
loaded = [p.run for p in picked]
labels = [label for label, *_ in loaded]
if len(set(labels)) < len(labels):
    labels = [f"{label} [{i + 1}]" for i, label in enumerate(labels)]
tables = {label: t for label, (_, _, _, t, _, _) in zip(labels, loaded)}
residual = {label: bool(r) for label, (_, r, _, _, _, _) in zip(labels, loaded)}
depth = {label: d for label, (_, _, _, _, d, _) in zip(labels, loaded)}
progress = {label: progress_of(label, c, t.get("metrics"), t.get("eval"))
            for label, (_, _, _, t, _, c) in zip(labels, loaded)}
status = picked[0].row["status"]  # from list_runs, re-checked each rerun: cached tables keep an old status
if status == "running":
    st.info("This run is still training: the figures show what has been written so far (refresh to update).")
elif status == "interrupted":
    message = picked[0].row["message"]
    st.warning(f"{message[:1].upper()}{message[1:]}. The figures show what it wrote before it stopped.")


for p in progress.values():  # a net that never left chance supports no claim about its internals
    if p.at_chance:
        st.warning(p.text())


def series(name: str) -> dict:
    return {label: t[name] for label, t in tables.items()}


st.subheader("Training curves")
fig = plot_training_curves(series("metrics"), series("eval"), residual=residual, depth=depth)
st.plotly_chart(fig, key="inspect_curves", theme=None)
figure_downloads(fig, f"{main_id}_curves", "dl_inspect_curves", tables[labels[0]]["metrics"].to_dict("records"))

norms = series("residual_norms")
steps = available_steps(tables[labels[0]]["residual_norms"])
if not steps:
    st.info("This run has no probe data (probes were off, or it has not reached its first probe).")
    st.stop()
step = st.select_slider("Probe step", steps, value=steps[-1], key=f"inspect_step_{main_id}",
                        help="The residual-norm, gradient and response figures show this step")

st.subheader("Residual norms across depth")
fig = plot_residual_norms(norms, step, residual=residual, depth=depth)
st.plotly_chart(fig, key="inspect_norms", theme=None)
figure_downloads(fig, f"{main_id}_residual_norms", "dl_inspect_norms",
                 tables[labels[0]]["residual_norms"].to_dict("records"))
residual_label = next((label for label in labels if residual[label]), None)
if residual_label is not None:  # a plain net has no shortcut, so no ratio
    norms_at = tables[residual_label]["residual_norms"]
    finding = ratio_finding(residual_label, norms_at[norms_at["step"] <= step], progress[residual_label])
    if finding:
        st.markdown(finding)
    fig = plot_residual_heatmap(tables[residual_label]["residual_norms"], "ratio",
                                title=f"{residual_label}: ||F(x)|| / ||x|| per unit over training")
    st.plotly_chart(fig, key="inspect_norm_heat", theme=None)
    figure_downloads(fig, f"{main_id}_ratio_heatmap", "dl_inspect_norm_heat")

st.subheader("Gradient flow")
value = st.radio("Statistic", ["grad_norm", "grad_abs_mean", "update_ratio", "weight_norm"], horizontal=True,
                 key="inspect_grad_value",
                 format_func={"grad_norm": "gradient L2 norm", "grad_abs_mean": "mean |gradient|",
                              "update_ratio": "update / weight", "weight_norm": "weight L2 norm"}.get)
grads = series("grad_flow")
fig = plot_grad_flow_heatmap(grads, value)
st.plotly_chart(fig, key="inspect_grad_heat", theme=None)
figure_downloads(fig, f"{main_id}_grad_flow", "dl_inspect_grad_heat", tables[labels[0]]["grad_flow"].to_dict("records"))
fig = plot_grad_flow_profile(grads, step, value, residual=residual, depth=depth)
st.plotly_chart(fig, key="inspect_grad_profile", theme=None)
finding = gradient_finding({k: v[v["step"] <= step] for k, v in grads.items() if not v.empty}, residual, progress)
if finding:
    st.markdown(finding)
figure_downloads(fig, f"{main_id}_grad_profile", "dl_inspect_grad_profile")

st.subheader("Layer responses (He et al. 2015, Fig. 7)")
has_eval = all(len(t.get("responses_eval", [])) for t in tables.values())
mode = st.radio("Measured", ["training", "eval"], horizontal=True, key="inspect_response_mode",
                index=1 if has_eval else 0, disabled=not has_eval,
                format_func={"training": "in training mode, on the probed batch (every probe step)",
                             "eval": "in eval mode, on held-out images (end of run, as in the paper)"}.get,
                help="In training mode each BN output is normalised by its own batch, so its std is almost exactly "
                     "sqrt(mean gamma^2 + var beta): 1.0 at initialisation. Eval mode uses the running statistics, "
                     "as at test time. Runs made before this option, or stopped early, have only the first.")
table_name = "responses_eval" if mode == "eval" and has_eval else "responses"
responses = {k: (v if table_name == "responses_eval" else v[v["step"] <= step]) for k, v in series(table_name).items()}
finding = responses_finding(responses, residual, depth, progress,
                            RESPONSES_EVAL if table_name == "responses_eval" else f"in training mode at step {step:,}")
fig = plot_responses(responses, None if table_name == "responses_eval" else step, residual=residual, depth=depth,
                     finding=finding)
st.plotly_chart(fig, key="inspect_responses", theme=None)
if finding:
    st.markdown(finding)
figure_downloads(fig, f"{main_id}_responses", "dl_inspect_responses", tables[labels[0]][table_name].to_dict("records"))
