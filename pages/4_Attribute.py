"""Attribute: what a trained network looks at, with captum; plain and residual side by side."""

from pathlib import Path

import streamlit as st

from resnet_explorer.analysis import METHODS, ImageError, layer_choices, method_support
from resnet_explorer.analysis.study import dataset_inputs, run_study, summary, upload_inputs
from resnet_explorer.data import denormalize
from resnet_explorer.devices import resolve_device
from resnet_explorer.plots import plot_attribution_grid, plot_attribution_scores
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.ui import jobs, state
from resnet_explorer.ui.run_picker import no_runs, pick_runs
from resnet_explorer.ui.widgets import figure_downloads, table

st.set_page_config(page_title="Attribute - ResNet Explorer", layout="wide")


def session_run(path: str, device: str):
    """A run with its model, kept per session (a model is mutable state: never shared across users)."""
    cache = st.session_state.setdefault(state.ATTR_MODELS, {})
    stamp = (Path(path) / "model.pt").stat().st_mtime
    key = (path, device)
    if key not in cache or cache[key][0] != stamp:
        if len(cache) >= 2:
            cache.pop(next(iter(cache)))
        cache[key] = (stamp, load_run(path, device=device))
    return cache[key][1]


st.title("Attribute")
st.caption("Which pixels drive the prediction? Saliency, Integrated Gradients, SmoothGrad, Grad-CAM, Occlusion "
           "and DeepLift (captum) for a trained run, scored against the object mask and a sanity check.")

runs = [r for r in list_runs(jobs.runs_root()) if (Path(r["path"]) / "model.pt").is_file()]
no_runs(runs, "No trained run yet: train one on the Train page (or `python -m resnet_explorer train`).")

try:
    device = str(resolve_device(state.get_device()))
except ValueError as err:
    st.error(f"{err} (choose another device on the Architecture page)")
    st.stop()


def run_with_classes(row: dict):
    run = session_run(row["path"], device)
    return run, run.classes  # ValueError when run.json names no classes


picked = pick_runs("attr", runs, run_with_classes,
                   twin_label="Side by side with (its twin is picked when there is one)")
classes = picked[0].run[1]
chosen = [p.run[0] for p in picked]
main = chosen[0]

with st.expander("Which methods apply here"):
    table(method_support(main.model, device))

with st.form("attr_form"):
    source = st.radio("Images", ["Held-out images of the run's dataset", "Upload an image"], horizontal=True,
                      key="attr_source")
    c1, c2, c3 = st.columns(3)
    count = c1.slider("How many held-out images", 1, 8, 4, key="attr_count")
    start = c2.number_input("Starting at held-out image #", min_value=0, value=0, step=1, key="attr_start")
    upload = c3.file_uploader("Image (PNG, JPEG, ...)", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"],
                              key="attr_upload")
    d1, d2, d3 = st.columns(3)
    methods = d1.multiselect("Methods", list(METHODS), default=["saliency", "integrated_gradients", "gradcam"],
                             format_func=lambda m: METHODS[m].label, key="attr_methods")
    layers = layer_choices(main.model)
    layer = d2.selectbox("Grad-CAM layer", layers, index=len(layers) - 1, key="attr_layer",
                         help="A stage output (layer3) or one residual unit (layer3.2)")
    target_name = d3.selectbox("Explain the class", ["(each image's prediction)"] + list(classes), key="attr_target")
    sanity = st.toggle("Sanity check: compare with a re-initialised model (Adebayo et al. 2018; doubles the time)",
                       value=True, key="attr_sanity")
    go = st.form_submit_button("Explain", type="primary", icon=":material/visibility:")

if go:
    try:
        if not methods:
            raise ValueError("choose at least one method")
        target = None if target_name.startswith("(") else classes.index(target_name)
        for run in chosen:
            _ = run.normalisation  # ValueError when run.json cannot say how its images were normalised
        studies = []
        with st.spinner("Attributing..."):
            for run in chosen:
                if source.startswith("Upload"):
                    if upload is None:
                        raise ImageError("choose an image file to upload first")
                    inputs = upload_inputs(run, upload.getvalue(), upload.name)
                else:
                    inputs = dataset_inputs(run, indices=range(int(start), int(start) + count))
                run_layer = layer if layer in layer_choices(run.model) else None
                studies.append((run, run_study(run.model, inputs, methods, target=target, layer=run_layer,
                                               sanity=sanity)))
        st.session_state[state.ATTR_RESULT] = studies
    except ValueError as err:  # ImageError is a ValueError: bad uploads land here
        st.error(str(err))

studies = st.session_state.get(state.ATTR_RESULT)
if not studies:
    st.info("Choose images and methods, then press Explain.")
    st.stop()

columns = st.columns(len(studies))
score_rows = []
for col, (run, study) in zip(columns, studies):
    inputs = study.inputs
    mean, std, _ = run.normalisation  # checked when the study was made
    titles = [
        f"{name}: {classes[int(p)]} {float(c):.2f}" + (f" (true {classes[int(t)]})" if inputs.labels is not None else "")
        for name, p, c, t in zip(inputs.names, study.predicted, study.confidence,
                                 inputs.labels if inputs.labels is not None else study.predicted)
    ]
    notes = {}
    for method in study.results:
        rows = [r for r in study.scores if r["method"] == method]
        notes[method] = [
            " | ".join(x for x in (
                f"mask {r['mask_share']:.2f} vs {r['mask_area']:.2f}" if r["mask_share"] is not None else "",
                f"delta {r['delta']:.1e}" if r["delta"] is not None else "",
                f"sanity {r['sanity_spearman']:.2f}" if r["sanity_spearman"] is not None else "",
            ) if x)
            for r in rows
        ]
    fig = plot_attribution_grid(
        denormalize(inputs.images, mean, std), {m: r.heatmap("absolute") for m, r in study.results.items()},
        row_titles=titles, masks=inputs.masks, method_labels={m: METHODS[m].label for m in study.results},
        cell_notes=notes, title=f"{run.label}",
    )
    with col:
        st.plotly_chart(fig, key=f"attr_grid_{run.id}", theme=None, width="content")  # fixed-size cells
        figure_downloads(fig, f"{run.id}_attributions", f"dl_attr_{run.id}", study.scores)
        for method, result in study.results.items():
            if result.note:
                st.caption(f"{METHODS[method].label}: {result.note}")
    score_rows += summary(study, run.label)

st.subheader("Scores")
st.markdown("**Mask share**: the share of positive attribution inside the object's mask, against the mask's share "
            "of the image (what a random map scores). **Sanity**: rank correlation between the maps of the trained "
            "model and of a re-initialised one; a faithful method scores low (Adebayo et al. 2018).")
fig = plot_attribution_scores(score_rows, title="Attribution scores, per method and run",
                              residual={run.label: run.spec.residual for run, _ in studies},
                              depth={run.label: run.spec.depth for run, _ in studies})
st.plotly_chart(fig, key="attr_scores", theme=None)
figure_downloads(fig, "attribution_scores", "dl_attr_scores", score_rows)
table([r for _, study in studies for r in study.scores])
