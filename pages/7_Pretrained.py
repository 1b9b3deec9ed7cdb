"""Pretrained: import a torchvision or timm ImageNet ResNet, then look inside it with your own photos."""

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from resnet_explorer.analysis import ImageError
from resnet_explorer.analysis.study import image_files
from resnet_explorer.limits import MAX_CHECKPOINT_BYTES, MAX_USER_IMAGES
from resnet_explorer.models import ModelSpec
from resnet_explorer.plots.profile import plot_unit_profile
from resnet_explorer.reports import explain
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.runs.checkpoints import import_weights, importable_names
from resnet_explorer.runs.published import cached_checkpoints, guess_model, published, what_it_is
from resnet_explorer.ui import analysis_jobs, jobs
from resnet_explorer.ui.nav import through_app
from resnet_explorer.ui.run_picker import is_imported, shown_names
from resnet_explorer.ui.widgets import figure_downloads, page_device, table

through_app()  # a page opened by its URL on a fresh server: through app.py's navigation
st.set_page_config(page_title="Pretrained - ResNet Explorer", layout="wide")

MAX_UPLOAD_MB = 1024  # a checkpoint upload (torchvision's largest ResNet file, wide_resnet101_2 V2, is 485 MB)
MAX_PHOTOS = 64  # photos uploaded for one profile (a folder, as the CLI's `profile --photos`, takes 512)
PROFILE = "profile"  # the registered task this page runs (`reports.explain`), in the device's line like any job
SOURCES = ("Checkpoints cached here", "A file on this computer", "Upload a checkpoint")
IMPORTED = "pre_imported"  # session key: the id of the run imported last
UPLOADS = "pre_uploads"  # session key: the folder the uploaded photos were written to, until the profile read them

st.title("Pretrained")
st.caption("Bring a pretrained ImageNet ResNet (a torchvision or timm checkpoint you already have) and look inside it "
           "with your own photos, without training. Checkpoints are read with weights_only=True: nothing in them "
           "is executed, and nothing is downloaded.")

def fetch_text(model: str, folders: list[Path]) -> str:
    """Where to get torchvision's checkpoint of `model` and where to put it, for a machine without internet."""
    try:
        entry = published(model)
        lead = f"torchvision's {entry.label}"
    except ValueError:  # a net torchvision publishes no weights for: name resnet50's as the example
        entry = published("resnet50")
        lead = f"torchvision publishes no weights for {model}; its {entry.label}, for example"
    return (f"No checkpoints in torch's hub cache ({folders[0]}) or the Hugging Face cache ({folders[1]}). To get "
            f"{lead}: on a machine with internet, download {entry.url} (the file `{entry.file}`), copy it into "
            f"`{folders[0]}` on this machine (torch.hub.get_dir()/checkpoints; create the folder if it is missing) "
            f"and reload this page. With internet here, `python -m resnet_explorer import-weights --model {entry.model} "
            "--download` does both. timm's `create_model(..., pretrained=True)` leaves its weights in the second "
            "folder. Or pick another source above.")


# --- 1. import -----------------------------------------------------------------------------------------------
st.subheader("1. Import a checkpoint")
names = importable_names()
source = st.radio("Checkpoint from", SOURCES, horizontal=True, key="pre_source")
chosen: str | None = None
empty_cache = None  # the hub caches are empty: where to say which file to fetch
chosen_name: str | None = None  # what the net is guessed from, when the path's file name does not say
upload = None
if source == SOURCES[0]:
    rows, total, folders = cached_checkpoints()
    if not rows:
        empty_cache = st.empty()  # filled below, once "Which net it is" says which file to fetch
    else:
        def hub_label(i: int) -> str:
            row = rows[i]
            return f"{row['file']} · {row['megabytes']:.0f} MB · {row['cache']} · {what_it_is(row, names)}"

        pick = st.selectbox(f"Checkpoints cached in {folders[0]} and {folders[1]}"
                            + (f" (the first {len(rows):,} of {total:,})" if total > len(rows) else ""),
                            range(len(rows)), format_func=hub_label, key="pre_hub")
        chosen = rows[pick]["path"]
        chosen_name = rows[pick]["file"]  # "timm/resnet50.a1_in1k" for a Hugging Face file named model.safetensors
elif source == SOURCES[1]:
    chosen = st.text_input("Path to the checkpoint file", key="pre_path",
                           placeholder="/home/me/models/resnet50-0676ba61.pth").strip() or None
else:
    upload = st.file_uploader(f"Checkpoint (.pth, .pt, .bin, .ckpt, .safetensors; up to {MAX_UPLOAD_MB:,} MB)",
                              type=["pth", "pt", "bin", "ckpt", "tar", "safetensors"], max_upload_size=MAX_UPLOAD_MB,
                              key="pre_upload")
    chosen = upload.name if upload is not None else None

guessed = guess_model(chosen_name or Path(chosen).name, names) if chosen else None
c1, c2 = st.columns(2)
model_name = c1.selectbox("Which net it is", names, key=f"pre_model_{guessed}",
                          index=names.index(guessed) if guessed in names else names.index("resnet50"),
                          help="The zoo's name; guessed from the file name where it can be. The import checks every "
                               "key and shape against this net and names the first that do not fit.")
if empty_cache is not None:
    empty_cache.info(fetch_text(model_name, folders), icon=":material/info:")
classes_file = c2.file_uploader("Class names (optional: a .txt, one per line, one per output)", type=["txt"],
                                max_upload_size=10, key="pre_classes",
                                help="Default: the 1,000 ImageNet names for a 1,000-output classifier, else 0..n-1.")
if st.button("Import", type="primary", icon=":material/download:", disabled=chosen is None, key="pre_import"):
    try:
        classes = None
        if classes_file is not None:
            classes = [line.strip() for line in classes_file.getvalue().decode("utf-8", "replace").splitlines()
                       if line.strip()]
        with st.spinner(f"Reading and checking {Path(chosen).name}..."), tempfile.TemporaryDirectory() as tmp:
            path = Path(chosen).expanduser()
            if upload is not None:
                if upload.size > MAX_CHECKPOINT_BYTES:
                    raise ValueError(f"{upload.name} is {upload.size:,} bytes, over the limit of "
                                     f"{MAX_CHECKPOINT_BYTES:,}")
                path = Path(tmp) / Path(upload.name).name  # keep its name: it says which published file it is
                path.write_bytes(upload.getvalue())
            root = Path(jobs.runs_root())
            before = {p.name for p in root.iterdir()} if root.is_dir() else set()
            folder = import_weights(path, model_name, root, classes=classes, reuse=True)
        run = load_run(folder, with_model=False)
        st.session_state[IMPORTED] = run.id
        source_info = run.info.get("source", {})
        done = "Already imported" if folder.name in before else "Imported"
        st.success(f"{done} {run.spec.label} as run **{run.id}**: {run.spec.num_classes:,} classes, "
                   f"{source_info.get('layout')} layout"
                   + (f", {source_info['published']}" if source_info.get("published") else "")
                   + f". Photos are scaled to {run.resize} px on the short side and centre-cropped to "
                   f"{run.normalisation[2]} px.", icon=":material/check_circle:")
        st.page_link("pages/4_Attribute.py", label="Attribute its predictions on your photos",
                     icon=":material/visibility:")
    except (ValueError, OSError) as err:
        st.error(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)

# --- 2. profile ----------------------------------------------------------------------------------------------
st.subheader("2. Look inside without training")
st.markdown("Per residual unit, in eval mode over your photos: the **residual ratio** ‖F(x)‖/‖x‖ (how much the "
            "unit's branch changes what its shortcut carries), the **response std** of its output, and what "
            "**deleting that unit alone** does (the share of photos whose top class changes). In the resnet20 and "
            "resnet56 trained for the README (3 seeds, 1 and 2 threads), the ratio fell from the first to the last "
            "identity unit of every stage, which Veit et al. (2016) and Greff et al. (2017) read as later units "
            "refining what earlier ones built; their shape-changing units' ratios were only 0.02-0.07 above the "
            "identity units', too small a gap to call. The figure's title says what your net shows, each "
            "comparison only past its stated factor.")
runs = [r for r in list_runs(jobs.runs_root()) if (Path(r["path"]) / "model.pt").is_file()]
if not runs:
    st.info("No run with weights yet: import a checkpoint above, or train one on the Train page.",
            icon=":material/info:")
    st.stop()
ids = [r["id"] for r in runs]
default = st.session_state.get(IMPORTED)
if default not in ids:
    default = next((r["id"] for r in runs if is_imported(r)), ids[0])
run_id = st.selectbox("Net", ids, index=ids.index(default), key=f"pre_run_{default}",
                      format_func=shown_names(runs).__getitem__)
row = next(r for r in runs if r["id"] == run_id)
imported = is_imported(row)
with st.form("pre_form"):
    choices = ["Your photos (upload)", "A folder on this computer"] + ([] if imported else ["Held-out images"])
    where = st.radio("Images", choices, horizontal=True, key="pre_where")
    f1, f2 = st.columns(2)
    photos = f1.file_uploader(f"Photos (PNG, JPEG, ...; up to {MAX_PHOTOS})", accept_multiple_files=True,
                              type=["png", "jpg", "jpeg", "bmp", "gif", "webp"], max_upload_size=50,
                              key="pre_photos")
    folder = f2.text_input(f"Folder of images (the first {MAX_USER_IMAGES} by name)", key="pre_folder",
                           placeholder="/home/me/photos")
    f3, f4 = st.columns(2)
    held_out = f3.number_input("Held-out images (a trained run)", 1, MAX_PHOTOS, 32, key="pre_held_out",
                               disabled=imported)
    lesions = f4.toggle("Single-unit lesions (about units/2 + 1 forward passes instead of one)", value=True,
                        key="pre_lesions")
    go = st.form_submit_button("Profile", type="primary", icon=":material/troubleshoot:")

def upload_folder(photos) -> str:
    """The uploaded photos written into a fresh folder for the profile's process, in upload order (numbered
    names: the folder is read by name); this session's previous one is removed."""
    old = st.session_state.pop(UPLOADS, None)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    folder = tempfile.mkdtemp(prefix="resnet_explorer_photos_")
    st.session_state[UPLOADS] = folder
    for i, photo in enumerate(photos):
        name = Path(photo.name).name.lstrip(".") or "photo"
        (Path(folder) / f"{i + 1:03d}_{name}").write_bytes(photo.getvalue())
    return folder


job = analysis_jobs.current_job()
if go:
    try:
        if where.startswith("Your photos"):
            if not photos:
                raise ImageError("choose some photos to upload first")
            if len(photos) > MAX_PHOTOS:
                st.caption(f"The first {MAX_PHOTOS} of your {len(photos)} photos are profiled.")
            options = {"photos": upload_folder(photos[:MAX_PHOTOS])}
        elif where.startswith("A folder"):
            if not folder.strip():
                raise ValueError("type the path of a folder of images first")
            options = {"photos": folder.strip()}
        else:
            options = {"samples": int(held_out)}
        options = explain.check_options(PROFILE, {**options, "lesions": lesions})
        reason = explain.refusal(PROFILE, run_id=run_id, imported=imported, spec=ModelSpec.from_dict(row["spec"]),
                                 options=options)
        if reason:
            raise ValueError(reason)
        if options["photos"]:
            image_files(options["photos"])  # a folder that is not there, or holds no image: said at once
        job = analysis_jobs.start_job([(row["path"], PROFILE, options)], page_device(),
                                      labels=[shown_names(runs)[run_id]])
    except (ValueError, TypeError, KeyError) as err:  # ImageError is a ValueError
        st.error(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)

if job is not None and job.lens == PROFILE:
    if job.running:
        analysis_jobs.live_panel(job, "pre")
        st.stop()
    snap = job.snapshot()
    if snap["status"] == "failed":
        st.error(f"Profile failed: {snap['message']}")
    elif snap["status"] == "stopped":
        st.info(analysis_jobs.stopped_text(snap, "The profile"))
    if st.session_state.get(UPLOADS):  # the photos were read: their copy goes
        shutil.rmtree(st.session_state.pop(UPLOADS), ignore_errors=True)

try:
    saved = explain.load(row["path"], PROFILE)
except ValueError as err:  # damaged files: say so, keep the page
    st.error(str(err))
    st.stop()
if saved is None:
    st.info("Choose images, then press Profile.", icon=":material/info:")
    st.stop()
profile, used = saved
if profile.note:
    st.caption(profile.note)
fig = plot_unit_profile(profile)
st.plotly_chart(fig, key="pre_profile_fig", theme=None)
st.caption(explain.LENSES[PROFILE].caption(PROFILE, shown_names(runs)[run_id], profile, used))
records = profile.rows.to_dict("records")
figure_downloads(fig, f"{profile.model}_{run_id[-4:]}_profile", "dl_pre_profile", records)
with st.expander("Every unit's numbers"):
    table(records)
