"""The Pretrained page: import a checkpoint from torch's hub cache, a path or an upload, then profile the net
on photos; bad input gets one st.error line and the session lives on."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from resnet_explorer import build_model
from resnet_explorer.runs import list_runs

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/7_Pretrained.py"


def photo(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    img = Image.new("RGB", size, (20, 20, 120))
    img.paste(colour, (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(11)
    file = tmp_path_factory.mktemp("ckpt") / "resnet18_mine.pth"
    torch.save(build_model("resnet18", device="cpu").state_dict(), file)
    return file


@pytest.fixture
def env(tmp_path, monkeypatch, checkpoint):
    """An empty runs folder and a hub cache holding the checkpoint; a profile runs the analysis process's own
    work on a thread here (`in_process_analysis`), except where a test puts the real process back."""
    from resnet_explorer.ui import analysis_jobs
    from tests.test_jobs import in_process_analysis

    monkeypatch.setattr(analysis_jobs, "start_process", in_process_analysis)
    runs = tmp_path / "runs"
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(runs))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / checkpoint.name).write_bytes(checkpoint.read_bytes())
    return runs


def profiled(at: AppTest, timeout: float = 120) -> AppTest:
    """Press Profile, then rerun until this session's profile (a job in the device's line, in its own process)
    has ended and the page has drawn what it saved."""
    import time

    at.button(key="FormSubmitter:pre_form-Profile").click().run()
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            job = at.session_state["rx_analysis_job"]
        except KeyError:  # nothing started (bad input): the page has said why
            return at
        if not job.running:
            return at.run()
        time.sleep(0.3)
        at.run()
    pytest.fail("the profile did not end")


class Page:
    """The page opened through app.py's navigation (so its links to other pages resolve)."""

    def __init__(self) -> None:
        self.at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)

    def run(self) -> AppTest:
        return self.at.switch_page(PAGE).run()  # before the first run: the page alone, not Home first


def page() -> Page:
    return Page()


def import_from_hub(runs: Path) -> AppTest:
    at = page().run()
    assert not at.exception
    hub = at.selectbox(key="pre_hub")
    assert "resnet18_mine.pth" in hub.format_func(hub.value) and "probably resnet18" in hub.format_func(hub.value)
    assert at.selectbox(key="pre_model_resnet18").value == "resnet18"  # guessed from the file name
    at.button(key="pre_import").click().run()
    assert not at.exception and not at.error
    assert at.success and "Imported resnet18 as run" in at.success[0].value and "224 px" in at.success[0].value
    return at


def test_import_from_the_hub_cache_makes_an_imported_run(env):
    import_from_hub(env)
    rows = list_runs(env)
    assert len(rows) == 1 and rows[0]["kind"] == "imported"
    info = json.loads((Path(rows[0]["path"]) / "run.json").read_text())
    assert info["source"]["file"] == "resnet18_mine.pth" and info["data"]["resize"] == 256


def test_an_empty_hub_cache_says_where_it_looked_and_how_to_fill_it(env, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))
    at = page().run()
    assert not at.exception
    assert any("No checkpoints in torch's hub cache" in i.value and "--download" in i.value for i in at.info)
    assert at.button(key="pre_import").disabled
    folder = str(tmp_path / "elsewhere" / "hub" / "checkpoints")  # torch.hub.get_dir()/checkpoints
    hint = next(i.value for i in at.info if "No checkpoints" in i.value)
    assert "download https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in hint  # the default net's file
    assert "`resnet50-11ad3fa6.pth`" in hint and f"copy it into `{folder}`" in hint
    at.selectbox(key="pre_model_None").set_value("resnet18").run()  # the file follows the net picked
    hint = next(i.value for i in at.info if "No checkpoints" in i.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in hint and "resnet50-" not in hint


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),  # the path does not exist
    (b"not a checkpoint at all", "resnet18_bad.pth"),  # a damaged file: the message names it
])
def test_a_bad_path_is_one_line_and_the_page_lives_on(env, tmp_path, content, message):
    path = tmp_path / "resnet18_bad.pth"
    if content is not None:
        path.write_bytes(content)
    at = page().run()
    at.radio(key="pre_source").set_value("A file on this computer").run()
    at.text_input(key="pre_path").input(str(path)).run()
    at.button(key="pre_import").click().run()
    assert not at.exception
    assert at.error and len(at.error[0].value.splitlines()) == 1 and message in at.error[0].value.lower() + \
        at.error[0].value
    assert list_runs(env) == []  # nothing half-made


def test_a_checkpoint_of_another_net_is_refused_naming_what_does_not_fit(env, checkpoint):
    at = page().run()
    at.radio(key="pre_source").set_value("A file on this computer").run()
    at.text_input(key="pre_path").input(str(checkpoint)).run()
    at.selectbox(key="pre_model_resnet18").set_value("resnet50").run()
    at.button(key="pre_import").click().run()
    assert not at.exception and at.error and "does not fit resnet50: missing" in at.error[0].value
    assert list_runs(env) == []


def test_an_uploaded_checkpoint_keeps_its_name(env, checkpoint):
    at = page().run()
    at.radio(key="pre_source").set_value("Upload a checkpoint").run()
    at.get("file_uploader")[0].upload("resnet18_mine.pth", checkpoint.read_bytes(), "application/octet-stream")
    at.run()
    at.button(key="pre_import").click().run()
    assert not at.exception and not at.error and at.success
    info = json.loads((Path(list_runs(env)[0]["path"]) / "run.json").read_text())
    assert info["source"]["file"] == "resnet18_mine.pth"


def test_profile_an_imported_net_on_uploaded_photos(env, monkeypatch):
    """Through the real analysis process: the uploads are written to a folder it reads, removed once read."""
    import tempfile
    import time

    from resnet_explorer.jobs import explain_worker
    from resnet_explorer.ui import analysis_jobs

    monkeypatch.setattr(analysis_jobs, "start_process", explain_worker.start_process)

    started = time.time() - 1
    at = import_from_hub(env)
    where = at.radio(key="pre_where")
    assert "Held-out images" not in where.options  # an imported net has no dataset
    at.button(key="FormSubmitter:pre_form-Profile").click().run()  # no photos yet
    assert not at.exception and at.error and "choose some photos" in at.error[0].value
    at.get("file_uploader")[-1].set_value([(f"p{i}.png", photo(colour=(40 * i, 200, 30)), "image/png")
                                           for i in range(3)])
    at.toggle(key="pre_lesions").set_value(False)
    profiled(at)
    assert not at.exception and not at.error
    assert any("3 images, shorter side scaled to 256 px" in c.value for c in at.caption)
    assert not any(p.name.startswith("resnet_explorer_photos_") for p in Path(tempfile.gettempdir()).iterdir()
                   if p.stat().st_mtime > started), "the uploads' copy outlived the profile"
    assert len(at.get("plotly_chart")) == 1
    units = at.dataframe[-1].value
    assert list(units["unit"]) == [f"layer{s}.{i}" for s in range(1, 5) for i in range(2)]  # resnet18's 8 units
    assert (units["ratio_mean"] > 0).all()


def test_an_uploaded_hash_bomb_is_refused_at_once(env, tmp_path):
    import time

    from tests.test_hostile_inputs import _bomb_in_a_zip

    bomb = _bomb_in_a_zip(tmp_path / "resnet18_bomb.pth", levels=30)  # 2^30 to hash: seconds, if let through
    at = page().run()
    at.radio(key="pre_source").set_value("Upload a checkpoint").run()
    at.get("file_uploader")[0].upload(bomb.name, bomb.read_bytes(), "application/octet-stream")
    at.run()
    started = time.perf_counter()
    at.button(key="pre_import").click().run()
    assert time.perf_counter() - started < 5
    assert not at.exception and at.error and "refused unread" in at.error[0].value
    assert list_runs(env) == []


def test_out_of_memory_while_profiling_is_one_line_and_the_page_lives_on(env, monkeypatch, tmp_path):
    """In the analysis process, an allocation that fails is the profile's one failed line; on the page it is one
    st.error, and the next profile runs."""
    from resnet_explorer.jobs.explain_worker import run_tasks
    from resnet_explorer.models.resnet import ResNet
    from resnet_explorer.ui import analysis_jobs

    at = import_from_hub(env)
    path = list_runs(env)[0]["path"]
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "p.png").write_bytes(photo())
    real = ResNet.forward_stem

    def fail(self, x):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 205520896 bytes.")

    monkeypatch.setattr(ResNet, "forward_stem", fail)
    said = []
    run_tasks([{"path": path, "lens": "profile", "options": {"photos": str(folder), "lesions": False}}], "cpu",
              type("Channel", (), {"put": staticmethod(said.append)}), __import__("threading").Event())
    monkeypatch.setattr(ResNet, "forward_stem", real)
    failed = [m for m in said if m[0] == "failed"]
    assert len(failed) == 1 and failed[0][2].startswith("out of memory profiling 1 image of 224x224 px in batches of 1")

    class OutOfMemory:  # the analysis process, replaying what it said
        def __init__(self, tasks, device):
            import io
            import json as js
            self.stdout = io.StringIO("".join(js.dumps(m) + "\n" for m in said))
            self.stdin = io.StringIO()

        def poll(self):
            return 0

        def wait(self):
            return 0

    real_start = analysis_jobs.start_process
    monkeypatch.setattr(analysis_jobs, "start_process", OutOfMemory)
    at.get("file_uploader")[-1].set_value([("p.png", photo(), "image/png")])
    at.toggle(key="pre_lesions").set_value(False)
    profiled(at)
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value.startswith("Profile failed: ") and "out of memory profiling 1 image" in at.error[0].value
    monkeypatch.setattr(analysis_jobs, "start_process", real_start)
    profiled(at)
    assert not at.exception and not at.error and len(at.get("plotly_chart")) == 1


def test_profile_a_folder_that_is_not_there_is_one_line(env):
    at = import_from_hub(env)
    at.radio(key="pre_where").set_value("A folder on this computer")
    at.text_input(key="pre_folder").input("/no/such/folder")
    at.button(key="FormSubmitter:pre_form-Profile").click().run()
    assert not at.exception and at.error and "/no/such/folder is not a folder" in at.error[0].value


def test_importing_the_same_file_twice_reuses_the_run(env):
    at = import_from_hub(env)
    at.button(key="pre_import").click().run()
    assert not at.exception and at.success and at.success[0].value.startswith("Already imported resnet18 as run")
    assert len(list_runs(env)) == 1


def test_profile_a_trained_run_on_its_held_out_images(env):
    from resnet_explorer.data import load_data
    from resnet_explorer.models import ModelSpec
    from resnet_explorer.runs import RunWriter
    from resnet_explorer.training import TrainConfig, train

    spec = ModelSpec.from_name("resnet8", num_classes=10)
    config = TrainConfig(steps=3, batch_size=16, train_size=64, test_size=32, image_size=16, probe_every=0,
                         log_every=1, device="cpu")
    train(spec, config, data=load_data("shapes", seed=0, train_size=64, test_size=32, image_size=16),
          listeners=[RunWriter(env, spec, config)])
    at = page().run()
    assert at.selectbox(key=next(s.key for s in at.selectbox if s.key.startswith("pre_run_"))).value
    at.radio(key="pre_where").set_value("Held-out images")
    at.number_input(key="pre_held_out").set_value(8)
    profiled(at)
    assert not at.exception and not at.error
    units = at.dataframe[-1].value
    assert list(units["unit"]) == ["layer1.0", "layer2.0", "layer3.0"]  # resnet8: one unit per stage
    assert units["flip_rate"].notna().all()  # lesions on by default


def test_a_timm_safetensors_file_in_the_hugging_face_cache_imports(env, tmp_path, checkpoint):
    from safetensors.torch import save_file

    snapshot = tmp_path / "hf" / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in torch.load(checkpoint, weights_only=True).items()}
    save_file(state, str(snapshot / "model.safetensors"))
    at = page().run()
    hub = at.selectbox(key="pre_hub")
    labels = list(hub.options)  # as shown
    timm = next(i for i, label in enumerate(labels) if label.startswith("timm/resnet18.a1_in1k"))
    assert "Hugging Face" in labels[timm] and "probably resnet18" in labels[timm]
    hub.set_value(timm).run()
    assert at.selectbox(key="pre_model_resnet18").value == "resnet18"  # guessed from the model's name
    at.button(key="pre_import").click().run()
    assert not at.exception and not at.error and at.success
    info = json.loads((Path(list_runs(env)[0]["path"]) / "run.json").read_text())
    assert info["source"]["file"] == "model.safetensors" and info["source"]["layout"] == "torchvision"


def test_a_profile_waits_in_the_devices_line_while_a_training_job_holds_it(env):
    """A second session's profile is "queued" behind the training that holds the CPU, then runs."""
    import threading
    import time

    from resnet_explorer.ui.jobs import QUEUE, InlineJob

    QUEUE.reset()
    training = InlineJob("cpu")  # stands for another session's training job, holding the CPU's one slot
    QUEUE.enqueue(training)
    assert QUEUE.wait_turn(training)
    try:
        at = import_from_hub(env)  # importing reads a file: it takes no slot
        at.get("file_uploader")[-1].set_value([("p.png", photo(), "image/png")])
        at.toggle(key="pre_lesions").set_value(False)
        seen = []

        def training_ends() -> None:
            deadline = time.monotonic() + 60
            while QUEUE.waiting("cpu") == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            seen.append((QUEUE.waiting("cpu"), QUEUE.training("cpu")))  # the profile in line, the training on
            time.sleep(1.5)  # the page shows its place in line meanwhile
            QUEUE.release(training)

        ender = threading.Thread(target=training_ends)
        ender.start()
        at.button(key="FormSubmitter:pre_form-Profile").click().run()
        while not seen:  # the page shows where the profile waits, with Stop
            at.run()
            time.sleep(0.2)
        assert at.session_state["rx_analysis_job"].snapshot()["status"] == "queued"
        assert any("queued, 1st in line" in p.proto.text for p in at.get("progress")), "the page says where it waits"
        assert at.button(key="pre_stop")  # and offers Stop
        ender.join()
        profiled_after = at.session_state["rx_analysis_job"]
        deadline = time.monotonic() + 120
        while profiled_after.running and time.monotonic() < deadline:
            time.sleep(0.3)
        at.run()
        assert seen == [(1, 1)]
        assert not at.exception and not at.error and len(at.get("plotly_chart")) == 1
        assert QUEUE.training("cpu") == 0 and QUEUE.waiting("cpu") == 0  # the profile gave its slot back
    finally:
        QUEUE.reset()
