"""Attribute: what a trained network looks at, with captum; plain and residual side by side."""

import shutil
import tempfile
from pathlib import Path

import streamlit as st
import torch

from resnet_explorer.analysis import METHODS, ImageError, layer_choices, method_support
from resnet_explorer.analysis.attribution import BASELINES, IG_MAX_STEPS, IG_START_STEPS, IG_TOLERANCE
from resnet_explorer.analysis.images import FITS
from resnet_explorer.analysis.study import held_out_size, percent, score_table, summary
from resnet_explorer.data import denormalize
from resnet_explorer.limits import MAX_USER_IMAGES
from resnet_explorer.plots import plot_attribution_grid, plot_attribution_scores
from resnet_explorer.reports import attribute
from resnet_explorer.reports import tasks as task_registry
from resnet_explorer.reports.findings import progress_of
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.ui import analysis_jobs, jobs, state
from resnet_explorer.ui.nav import through_app
from resnet_explorer.ui.run_picker import is_imported, no_runs, pick_runs, row_label
from resnet_explorer.ui.widgets import figure_downloads, page_device, table

through_app()  # a page opened by its URL on a fresh server: through app.py's navigation
st.set_page_config(page_title="Attribute - ResNet Explorer", layout="wide")


def session_run(path: str):
    """A run with its model on the CPU, kept per session (a model is mutable state: never shared across users). The
    page reads its layers and classes from it; the attribution itself runs in the analysis process."""
    cache = st.session_state.setdefault(state.ATTR_MODELS, {})
    stamp = (Path(path) / "model.pt").stat().st_mtime
    if path not in cache or cache[path][0] != stamp:
        if len(cache) >= 2:
            cache.pop(next(iter(cache)))
        cache[path] = (stamp, load_run(path, device="cpu"))
    return cache[path][1]


FIT_LABELS = {"crop": "scaled and centre-cropped", "pad": "scaled and padded", "stretch": "stretched"}
MAX_UPLOADS = 8  # images one Attribute press attributes (each method, each run; the CLI takes a folder of 512)
ATTRIBUTE = attribute.ATTRIBUTE  # the registered task this page runs, one per run, in the device's line like any job
UPLOAD = "Upload images"
HELD_OUT = "Held-out images of the run's dataset"

st.title("Attribute")
st.caption("Which pixels drive the prediction? Saliency, Integrated Gradients, SmoothGrad, Grad-CAM, Occlusion "
           "and DeepLift (captum) for a trained run, scored against the object mask and a sanity check.")

runs = [r for r in list_runs(jobs.runs_root()) if (Path(r["path"]) / "model.pt").is_file()]
no_runs(runs, "No trained run yet: train one on the Train page (or `python -m resnet_explorer train`).")

device = page_device()


def run_with_classes(row: dict):
    run = session_run(row["path"])
    return run, run.classes  # ValueError when run.json names no classes


picked = pick_runs("attr", runs, run_with_classes,
                   twin_label="Side by side with (its twin is picked when there is one)")
classes = picked[0].run[1]
chosen = [p.run[0] for p in picked]
main = chosen[0]

for run in chosen:  # a net at chance learnt nothing: its maps show an untrained net's sensitivities
    if not run.imported:
        progress = progress_of(run.label, run.spec.num_classes, run.tables.get("metrics"), run.tables.get("eval"))
        if progress.at_chance:
            st.warning(f"{progress.text()} Its attributions show what an untrained net responds to, not what it "
                       "learnt.")

with st.expander("Which methods apply here"):
    table(method_support(main.model, device))

imported = [row_label(p.row) for p in picked if is_imported(p.row)]
if imported:  # no dataset, so no held-out images: uploads only
    source = UPLOAD
    st.caption(f"Run{'s' if len(imported) > 1 else ''} {', '.join(imported)} "
               f"{'were' if len(imported) > 1 else 'was'} imported from a checkpoint and "
               f"{'have' if len(imported) > 1 else 'has'} no dataset, so no held-out images: "
               f"**{UPLOAD}** of your own below.")
else:  # outside the form, so the form shows only the controls of the chosen source
    source = st.radio("Images", [HELD_OUT, UPLOAD], horizontal=True, key="attr_source")
uploading = source == UPLOAD

with st.form("attr_form"):
    count, start, uploads, fit = 0, 0, None, "crop"
    if uploading:
        uploads = st.file_uploader(f"Images (PNG, JPEG, ...; up to {MAX_UPLOADS})",
                                   type=["png", "jpg", "jpeg", "bmp", "gif", "webp"], accept_multiple_files=True,
                                   max_upload_size=50, key="attr_upload")
        fit = st.radio("An upload that is not square is", list(FITS), horizontal=True, key="attr_fit",
                       format_func=lambda f: FIT_LABELS[f],
                       help="The model takes square images: crop keeps the centre (torchvision's Resize + "
                            "CenterCrop), pad keeps everything (the border in the dataset's mean colour), "
                            "stretch squashes it.")
    else:
        c1, c2 = st.columns(2)
        count = c1.slider("How many held-out images", 1, 8, 4, key="attr_count")
        sizes = [n for n in (held_out_size(run) for run in chosen) if n]
        start = c2.number_input("Starting at held-out image #", min_value=0, value=0, step=1, key="attr_start",
                                help=f"The held-out split has {min(sizes):,} images, numbered 0 to {min(sizes) - 1:,}"
                                if sizes else None)
    methods = st.multiselect("Methods", list(METHODS), default=["saliency", "integrated_gradients", "gradcam"],
                             format_func=lambda m: METHODS[m].label, key="attr_methods")
    d1, d4 = st.columns(2)
    baseline = d1.selectbox(
        "Baseline (Integrated Gradients, DeepLIFT, Occlusion)", list(BASELINES), key="attr_baseline",
        format_func=lambda b: BASELINES[b],
        help="What 'no information' looks like. The dataset mean is the all-zero normalised input; a black or "
             "blurred image (Sturmfels et al. 2020) can explain other evidence. A map sums to f(x) - f(baseline), "
             "so where the baseline scores higher than the image, the map is net-negative.")
    step_choice = d4.selectbox(
        "Integrated Gradients steps", ["adaptive", 16, 32, 64, 128, 256], key="attr_steps",
        format_func=lambda v: f"adaptive (gap < {IG_TOLERANCE:.0%}, {IG_START_STEPS}-{IG_MAX_STEPS})" if v == "adaptive"
        else f"{v} for every image",
        help=f"Adaptive: {IG_START_STEPS} steps, doubled for each image whose completeness gap is still above "
             f"{IG_TOLERANCE:.0%}, at most {IG_MAX_STEPS}. Completeness: an IG map sums to f(x) - f(baseline) when "
             "the path integral is exact. The gap left and the steps each image got are shown under it.")
    d2, d3 = st.columns(2)
    layers = layer_choices(main.model)
    layer = d2.selectbox("Grad-CAM layer", layers, index=len(layers) - 1, key="attr_layer",
                         help="A stage output (layer3) or one residual unit (layer3.2)")
    target_name = d3.selectbox("Explain the class", ["(each image's prediction)"] + list(classes), key="attr_target")
    sanity = st.toggle("Sanity check: compare with a re-initialised model (Adebayo et al. 2018; doubles the time)",
                       value=True, key="attr_sanity")
    go = st.form_submit_button("Attribute", type="primary", icon=":material/visibility:")

job_record = st.session_state.get(state.ATTR_RESULT)  # this session's last request: its job, then what it found


def forget(record: dict | None) -> None:
    """Remove a request's folders (its photos, its saved results) once they are read or no longer wanted."""
    for folder in (record or {}).get("folders", ()):
        shutil.rmtree(folder, ignore_errors=True)


def upload_folder(uploads) -> str:
    """The uploads written into a fresh folder for the analysis process, each under its own name (a repeated
    name numbered), which the task reads by name."""
    folder = tempfile.mkdtemp(prefix="resnet_explorer_attr_photos_")
    taken: set[str] = set()
    for upload in uploads[:MAX_USER_IMAGES]:
        name = Path(upload.name).name.lstrip(".") or "image.png"
        stem, suffix, n = Path(name).stem, Path(name).suffix, 2
        while name.lower() in taken:
            name, n = f"{stem} ({n}){suffix}", n + 1
        taken.add(name.lower())
        (Path(folder) / name).write_bytes(upload.getvalue())
    return folder


if go:
    forget(st.session_state.pop(state.ATTR_RESULT, None))  # the previous image's results would read as this one's
    job_record = None
    folders: list[str] = []
    try:
        if not methods:
            raise ValueError("choose at least one method")
        target = -1 if target_name.startswith("(") else classes.index(target_name)
        for run in chosen:
            _ = run.normalisation  # ValueError when run.json cannot say how its images were normalised
        photos = ""
        if uploading:
            if not uploads:
                raise ImageError("choose an image file to upload first")
            photos = upload_folder(uploads)
            folders.append(photos)
        results = tempfile.mkdtemp(prefix="resnet_explorer_attr_")
        folders.append(results)
        outs = [str(Path(results) / str(i)) for i in range(len(chosen))]
        tasks = [(run.path, ATTRIBUTE, task_registry.check_options(ATTRIBUTE, {
            "methods": ",".join(methods), "baseline": baseline, "target": target, "sanity": sanity,
            "steps": 0 if step_choice == "adaptive" else int(step_choice),
            "layer": layer if layer in layer_choices(run.model) else "",  # a twin of another shape: its last unit
            "photos": photos, "fit": fit, "count": MAX_UPLOADS if uploading else count, "start": int(start),
            "out": out})) for run, out in zip(chosen, outs)]
        job = analysis_jobs.start_job(tasks, device, labels=[run.label for run in chosen])
        job_record = {"job": job, "runs": [p.row["path"] for p in picked], "outs": outs, "folders": folders}
        st.session_state[state.ATTR_RESULT] = job_record
    except (ValueError, TypeError, KeyError) as err:  # ImageError is a ValueError: bad uploads land here
        forget({"folders": folders})
        st.error(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)

if job_record is not None and "said" not in job_record:  # a request whose job has not been read back yet
    job = job_record["job"]
    if job.running:
        analysis_jobs.live_panel(job, "attr")
        st.stop()
    snap = job.snapshot()
    said: tuple[str, str] = ("", "")
    if snap["status"] == "done":
        try:
            saved = [attribute.load(out) for out in job_record["outs"]]
            if any(s is None for s in saved):
                raise ValueError("the attribution saved nothing to read back: press Attribute again")
            job_record["studies"] = [(session_run(path), study) for path, (study, _) in zip(job_record["runs"], saved)]
        except ValueError as err:  # damaged files: said in one line, the page lives on
            said = ("error", str(err))
    elif snap["status"] == "failed":
        said = ("error", f"Attribution failed: {snap['message']}")
    else:
        said = ("info", analysis_jobs.stopped_text(snap, "The attribution"))
    job_record["said"] = said
    forget(job_record)  # read into this session: the folders go

if job_record is not None and job_record["said"][0]:  # until the next press, each rerun says how it ended
    kind, text = job_record["said"]
    (st.error if kind == "error" else st.info)(text)

studies = (job_record or {}).get("studies")
if not studies:
    st.info("Choose images and methods, then press Attribute.")
    st.stop()


def cell_note(run, row: dict) -> str:
    """Prediction and scores of one image under one method and run, ' | ' between lines."""
    return " | ".join(x for x in (
        f"{run.classes[int(row['predicted'])]} {float(row['confidence']):.2f}",
        f"mask {row['mask_share']:.2f} vs {row['mask_area']:.2f}" if row["mask_share"] is not None else "",
        (f"gap {row['gap']:.1%}" + (f" ({row['steps']} steps)" if row["steps"] is not None else "")
         if row["gap"] is not None else ""),
        f"sanity {row['sanity_spearman']:.2f}" if row["sanity_spearman"] is not None else "",
    ) if x)


def row_titles(run, inputs) -> list[str]:
    if inputs.labels is None:
        return list(inputs.names)
    return [f"{name} (true {run.classes[int(t)]})" for name, t in zip(inputs.names, inputs.labels)]


def top_rows(run, study, i: int) -> list[dict]:
    """Image ``i``'s top predictions under ``run``: class and probability, most probable first."""
    return [{"class": run.classes[c] if c < len(run.classes) else str(c), "probability": p}
            for c, p in zip(study.top_classes[i].tolist(), study.top_probs[i].tolist())]


PROBABILITY = st.column_config.ProgressColumn("probability", format="percent", min_value=0.0, max_value=1.0)

first = studies[0][1]
uploaded = first.inputs.labels is None  # held-out images always have labels
if uploaded:
    st.subheader("What the model saw")
    notes = dict.fromkeys(f"{run.label}: {study.inputs.note}" for run, study in studies)
    st.caption(" · ".join(notes) + ". Each net attributes exactly these images (the first column of every grid "
               f"below); beside each, the {first.top_classes.shape[1]} classes it finds most probable.")
    for i, name in enumerate(first.inputs.names):
        cells = st.columns([1] + [2] * min(len(studies), 3))
        cells[0].image(first.inputs.previews[i].permute(1, 2, 0).numpy(), width=140, caption=name)
        for cell, (run, study) in zip(cells[1:], studies):
            if i < len(study.inputs.names) and study.inputs.names[i] == name:
                cell.caption(run.label)
                own = study.inputs.previews[i]
                if own.shape != first.inputs.previews[i].shape or not torch.equal(own, first.inputs.previews[i]):
                    cell.image(own.permute(1, 2, 0).numpy(), width=70)  # this net takes another size or fit
                cell.dataframe(top_rows(run, study, i), hide_index=True, width="stretch",
                               column_config={"probability": PROBABILITY})
else:
    with st.expander(f"Top {first.top_classes.shape[1]} predictions for every image", expanded=False):
        table([{"run": run.label, "image": name, "true": run.classes[int(study.inputs.labels[i])],
                **{f"#{k + 1}": f"{r['class']} {percent(r['probability'])}" for k, r in enumerate(top_rows(run, study, i))}}
               for run, study in studies for i, name in enumerate(study.inputs.names)])

# One figure per method (a tab each): rows are images; the runs' maps side by side when they saw the same images.
same_images = all(s.inputs.previews.shape == first.inputs.previews.shape and torch.equal(s.inputs.previews,
                                                                                     first.inputs.previews)
                  for _, s in studies)
methods_run = list(dict.fromkeys(m for _, s in studies for m in s.results))
st.subheader("Attribution maps")
tabs = st.tabs([METHODS[m].label for m in methods_run])
for tab, method in zip(tabs, methods_run):
    with tab:
        have = [(run, s) for run, s in studies if method in s.results]
        groups = [have] if same_images else [[pair] for pair in have]
        for k, group in enumerate(groups):
            run0, study0 = group[0]
            mean, std, _ = run0.normalisation  # checked when the study was made
            rows = [r for _, s in group for r in s.scores if r["method"] == method]
            fig = plot_attribution_grid(
                denormalize(study0.inputs.images, mean, std),
                {run.id: s.results[method].heatmap("absolute") for run, s in group},
                row_titles=row_titles(run0, study0.inputs), masks=study0.inputs.masks,
                method_labels={run.id: run.label for run, _ in group},
                cell_notes={run.id: [cell_note(run, r) for r in s.scores if r["method"] == method]
                            for run, s in group},
                title=METHODS[method].label + ("" if len(groups) == 1 else f": {run0.label}"),
            )
            st.plotly_chart(fig, key=f"attr_grid_{method}_{k}", theme=None, width="content")  # fixed-size cells
            figure_downloads(fig, f"{method}_attributions" + ("" if len(groups) == 1 else f"_{run0.id}"),
                             f"dl_attr_{method}_{k}", rows)
        for run, s in have:
            if s.results[method].note:
                st.caption(f"{run.label}: {s.results[method].note}")

higher = [(run, row) for run, study in studies for row in study.scores
          if row["score_change"] is not None and row["score_change"] < 0]
if higher:
    named = sorted({BASELINES[row["baseline"]] for _, row in higher})
    cases = "; ".join(f"{run.label}, {METHODS[row['method']].label}, {row['image']}" for run, row in higher[:6])
    more = f" and {len(higher) - 6} more" if len(higher) > 6 else ""
    st.warning(f"The baseline ({', '.join(named)}) scores higher than the image for the explained class in "
               f"{len(higher)} case(s): {cases}{more}. Those maps sum to a negative number (f(x) - f(baseline) < 0), "
               "so their evidence reads against the class; try another baseline.", icon=":material/warning:")
capped = [row for _, study in studies for row in study.scores
          if row["steps"] is not None and row["gap"] is not None and row["gap"] > IG_TOLERANCE]
if capped:
    st.caption(f"Integrated Gradients: {len(capped)} map(s) kept a completeness gap above {IG_TOLERANCE:.0%} "
               f"(largest {max(r['gap'] for r in capped):.1%}) at {max(r['steps'] for r in capped)} steps.")

score_rows = [row for run, study in studies for row in summary(study, run.label)]
st.subheader("Scores")
st.markdown("**Mask share**: the share of positive attribution inside the object's mask, against the mask's share "
            "of the image (what a random map scores). **Sanity**: rank correlation between the maps of the trained "
            "model and of a re-initialised one; a faithful method scores low (Adebayo et al. 2018).")
fig = plot_attribution_scores(score_rows, title="Attribution scores, per method and run",
                              residual={run.label: run.spec.residual for run, _ in studies},
                              depth={run.label: run.spec.depth for run, _ in studies})
no_mask = [run.label for run, study in studies if study.inputs.masks is None]
if no_mask:
    why = ("an uploaded image has no object mask" if uploaded
           else "this dataset has no object masks (only the embedded synthetic sets do)")
    st.info(f"**Mask share** is left empty for {', '.join(no_mask)}: {why}. The sanity check still applies.",
            icon=":material/info:")
st.plotly_chart(fig, key="attr_scores", theme=None)
figure_downloads(fig, "attribution_scores", "dl_attr_scores", score_rows)
table([r for run, study in studies for r in score_table(study, run.classes, run.label)])
