"""Train: a brief run of the chosen model on this machine, with live curves."""

import streamlit as st

from resnet_explorer.data import DATASETS
from resnet_explorer.limits import MAX_BATCH_SIZE, MAX_IMAGE_SIZE, MAX_SEED, MAX_STEPS, MAX_TRAIN_IMAGES
from resnet_explorer.models import ModelSpec, large_model_message, list_variants
from resnet_explorer.plots import plot_live_loss, plot_training_curves
from resnet_explorer.reports.findings import progress_of, tail_mean
from resnet_explorer.training.presets import QUICK, quick_config
from resnet_explorer.ui import jobs, state
from resnet_explorer.ui.nav import through_app
from resnet_explorer.ui.run_picker import compare_after_training
from resnet_explorer.ui.widgets import figure_downloads

through_app()  # a page opened by its URL on a fresh server: through app.py's navigation
st.set_page_config(page_title="Train - ResNet Explorer", layout="wide")

st.title("Train")
st.caption("Train the chosen model for a few minutes on the embedded shapes dataset (or CIFAR / your "
           "own images) while probes record residual norms, gradient flow and responses for the Inspect page. "
           "The defaults are the ones plain20, resnet20 and resnet56 leave chance with on every seed tried (0-4, "
           "1 and 2 threads): a net that never left chance shows nothing about residual learning.")

chosen = state.get_spec()
left, right = st.columns([2, 1])
with left:
    source = st.radio("Model", ["From the Architecture page", "Pick a named variant"], horizontal=True,
                      key="train_model_source")
    if source == "Pick a named variant":
        names = list_variants()
        name = st.selectbox("Variant", names, key="train_variant",
                            index=names.index(chosen.name) if chosen.name in names else 0)
        spec = ModelSpec.from_name(name)
    else:
        spec = chosen
    twin = st.toggle("Train its plain twin instead" if spec.residual else "Train its residual twin instead",
                     key="train_twin")
    if twin:
        spec = spec.plain() if spec.residual else spec.with_residual()
    st.markdown(f"**{spec.label}** on **{state.get_device()}** (change either on the Architecture page)")
with right:  # outside the form, so the budget field below switches to whole steps or fractional epochs
    budget_kind = st.radio("Budget in", ["steps", "epochs"], horizontal=True, key="train_budget_kind",
                           help="Optimizer steps (whole numbers), or passes over the training images")
try:
    large, refused = large_model_message(spec), None  # arithmetic; past the ceiling nothing unlocks it
except ValueError as err:
    large, refused = None, str(err)
    st.error(refused)

with st.form("train_form"):
    c1, c2, c3, c4 = st.columns(4)
    datasets = [name.split(":")[0] for name in DATASETS]  # "folder:PATH" is chosen as "folder"
    dataset = c1.selectbox("Dataset", datasets, key="train_dataset", index=datasets.index(QUICK["dataset"]),
                           help="shapes-easy (bigger, cleaner shapes) and shapes are embedded, no download; on "
                                "shapes, plain nets can sit at chance for hundreds of steps. CIFAR reads ./data or "
                                "the folder below")
    data_root = c2.text_input("Data folder", key="train_data_root",
                              help="CIFAR: the folder holding (or to hold) the dataset; folder: one subfolder of "
                                   "images per class")
    if budget_kind == "steps":
        budget = c3.number_input("Steps", min_value=1, max_value=MAX_STEPS, value=QUICK["steps"], step=10,
                                 key="train_budget")
    else:
        budget = c3.number_input("Epochs", min_value=0.01, max_value=float(MAX_STEPS), value=1.0, step=0.5,
                                 key="train_budget_epochs")
    batch = c4.number_input("Batch size", min_value=1, max_value=MAX_BATCH_SIZE, value=QUICK["batch_size"], step=16,
                            key="train_batch")
    d1, d2, d3, d4 = st.columns(4)
    lr = d1.number_input("Learning rate", min_value=1e-5, max_value=10.0, value=0.1, step=0.01, format="%.4f",
                         key="train_lr")
    optimizer = d2.selectbox("Optimizer", ["sgd", "adamw"], key="train_optimizer")
    schedule = d3.selectbox("Schedule", ["onecycle", "cosine", "step", "constant"], key="train_schedule")
    e1, e2, e3, e4 = st.columns(4)
    wd = d4.number_input("Weight decay", min_value=0.0, max_value=1.0, value=5e-4, step=1e-4, format="%.5f",
                         key="train_wd")
    seed = e1.number_input("Seed", min_value=0, max_value=MAX_SEED, value=0, step=1, key="train_seed")
    probe_every = e2.number_input("Probe every k steps (0: off)", min_value=0, max_value=10_000, value=10,
                                  key="train_probe_every")
    train_size = e3.number_input("Training images (0: all)", min_value=0, max_value=MAX_TRAIN_IMAGES, value=0,
                                 step=1000, key="train_size")
    image_size = e4.number_input("Image size (px)", min_value=8, max_value=MAX_IMAGE_SIZE, value=QUICK["image_size"],
                                 step=8, key="train_image_size",
                                 help="Side of the square images; 16 px runs about 2.4x faster than 32 px on a CPU")
    augment = st.checkbox("Augment (random crop and flip, He et al. 2015)", value=QUICK["augment"], key="train_augment",
                          help="Off by default: a 4-pixel shift is a quarter of a 16-pixel image")
    download = st.checkbox(
        "Download if missing (CIFAR: about 170 MB from www.cs.toronto.edu, md5-checked, into the data folder or "
        "./data)", key="train_download",
        help="Without it, CIFAR is read from the data folder: extract cifar-10-python.tar.gz (or cifar-100-python.tar.gz) "
             "there. Nothing is downloaded unless this is ticked.")
    confirm = st.checkbox("Build it even if it is very large", key="train_confirm_large") if large else True
    started = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")

job = jobs.current_job()
if started and refused is None:
    try:
        if not confirm:
            raise ValueError(f"{large}: tick the box to confirm")
        name = dataset if dataset != "folder" else f"folder:{data_root.strip()}"
        budget_arg = {"steps": int(budget)} if budget_kind == "steps" else {"epochs": float(budget), "steps": None}
        config = quick_config(
            dataset=name, image_size=int(image_size), augment=bool(augment),
            data_root=(data_root.strip() or None) if dataset != "folder" else None,
            batch_size=int(batch), lr=float(lr), optimizer=optimizer, schedule=schedule, weight_decay=float(wd),
            seed=int(seed), device=state.get_device(), probe_every=int(probe_every),
            train_size=int(train_size) or None, log_every=5, download=bool(download) and dataset.startswith("cifar"),
            **budget_arg,
        )
        job = jobs.start_job(spec, config)
    except ValueError as err:
        st.error(str(err))

if job is None:
    st.info("No run yet in this session. Choose the settings above and press Start training.")
    st.stop()


def final_numbers(snap: dict, spec: ModelSpec) -> None:
    """The run's final loss and errors, and whether it left chance (the rule every page uses)."""
    import pandas as pd

    evals = pd.DataFrame(snap["evals"]) if snap["evals"] else None
    progress = progress_of(snap["label"], spec.num_classes, pd.DataFrame(snap["metrics"]), evals)
    train_acc = tail_mean(pd.DataFrame(snap["metrics"]), "accuracy")
    c1, c2, c3 = st.columns(3)
    c1.metric("Final train loss", "n/a" if progress.loss is None else f"{progress.loss:.3f}",
              help=f"Mean of the last 20% of logged steps; chance (guessing) is ln {spec.num_classes} = "
                   f"{progress.chance_loss:.2f}")
    c2.metric("Train error", "n/a" if train_acc is None else f"{100 * (1 - train_acc):.1f}%")
    held = progress.accuracy if progress.accuracy_kind == "held-out" else None
    c3.metric("Held-out error", "n/a" if held is None else f"{100 * (1 - held):.1f}%",
              help="The final evaluation on the whole held-out split")
    if progress.at_chance:
        st.warning(f"{progress.text()} Train longer, on shapes-easy, or at the defaults before comparing it.")
    else:
        twin = "plain" if spec.residual else "residual"
        st.caption(f"{progress.text()} To compare it with its {twin} twin, toggle \"Train its {twin} twin instead\" "
                   "above and train with the same settings: Compare then shows both.")


@st.fragment(run_every=jobs.LIVE_SECONDS if job.running else None)
def live(job: jobs.TrainingJob) -> None:
    snap = job.snapshot()
    status = snap["status"]
    total = max(1, snap["total"])
    st.progress(min(1.0, snap["step"] / total), text=f"{snap['label']}: {jobs.phase_text(snap)}")
    ended = jobs.job_panel(job, "train", "It", status == "queued")
    if snap["metrics"]:
        import pandas as pd

        label = snap["label"]

        # while training: a light figure, rebuilt only when rows arrived and at most every few seconds;
        # when the run has ended: the full curves
        if job.running:
            key = (snap["run_id"], len(snap["metrics"]))
            fig = jobs.live_figure("train").get(key, lambda: plot_live_loss({label: snap["metrics"]},
                                                                             {label: job.specs[0].residual}))
        else:
            evals = {label: pd.DataFrame(snap["evals"])} if snap["evals"] else None
            fig = plot_training_curves({label: pd.DataFrame(snap["metrics"])}, evals,
                                       residual={label: job.specs[0].residual})
        st.plotly_chart(fig, key="train_curves", theme=None)
        if not job.running:
            figure_downloads(fig, f"{snap['run_id']}_curves", "dl_train_curves", snap["metrics"])
    if status == "failed":
        st.error(snap["message"])
    elif status == "diverged":
        st.error(f"Diverged: {snap['message']}")
    elif status == "stopped" and snap["run_id"] is None:
        st.info("No run was made.")
    elif status in ("done", "stopped"):
        st.success(f"Run {snap['run_id']} {status}. Look inside it on the Inspect page.")
        final_numbers(snap, job.specs[0])
        st.page_link("pages/3_Inspect.py", label="Inspect this run", icon=":material/monitoring:")
    if ended:
        compare_after_training(job, jobs.runs_root())  # Compare opens on this run and its twin
        st.rerun()  # once, so the page leaves live mode


live(job)
