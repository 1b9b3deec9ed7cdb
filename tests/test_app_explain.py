"""The Explain page through AppTest (tiny runs, tiny analyses: the child's own work on a thread of this
process, and once in the real child process), and its job in the shared training queue with a fake child."""

import json
import queue
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer import ModelSpec
from resnet_explorer.data import load_data
from resnet_explorer.reports import explain
from resnet_explorer.runs import RunWriter, list_runs
from resnet_explorer.training import TrainConfig, train
from resnet_explorer.ui import jobs
from resnet_explorer.ui.analysis_jobs import AnalysisJob, progress_text

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/6_Explain.py"
TINY = {"images": 16, "draws": 1, "seed": 0}


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = load_data("shapes", seed=0, train_size=64, test_size=32, image_size=16)
    for name in ("resnet8", "plain8"):
        spec = ModelSpec.from_name(name, num_classes=10)
        config = TrainConfig(steps=4, batch_size=16, train_size=64, test_size=32, image_size=16, probe_every=0,
                             log_every=1, device="cpu")
        train(spec, config, data=data, listeners=[RunWriter(root, spec, config)])
    return root


@pytest.fixture
def runs(run_root, monkeypatch):
    """The two runs, with no saved analysis, in an empty queue; analyses run as the child runs them, on a
    thread of this process (the real child: test_lesions_of_the_run_and_its_twin, and test_jobs)."""
    from resnet_explorer.ui import analysis_jobs
    from tests.test_jobs import in_process_analysis

    monkeypatch.setattr(analysis_jobs, "start_process", in_process_analysis)
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(run_root))
    for row in list_runs(run_root):
        shutil.rmtree(Path(row["path"]) / explain.FOLDER, ignore_errors=True)
    jobs.QUEUE.reset()
    yield {row["model"]: row for row in list_runs(run_root)}
    jobs.QUEUE.reset()


def page() -> AppTest:
    return AppTest.from_file(str(ROOT / PAGE), default_timeout=60).run()


def wait_job(at: AppTest, timeout: float = 30) -> dict:
    """Rerun until this session's analysis job has ended; its last snapshot."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = at.session_state["rx_analysis_job"]
        if not job.running:
            at.run()
            return job.snapshot()
        time.sleep(0.3)
        at.run()
    pytest.fail(f"the analysis did not end: {at.session_state['rx_analysis_job'].snapshot()}")


def run_lens(at: AppTest, lens: str, timeout: float = 30, **options) -> dict:
    for name, value in options.items():
        widget = at.selectbox(key=f"explain_{lens}_{name}") if name == "dims" else \
            at.number_input(key=f"explain_{lens}_{name}")
        widget.set_value(value)
    at.button(key=f"explain_{lens}_run").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return wait_job(at, timeout)


def chart_specs(at: AppTest) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


def test_no_runs_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("No trained run yet" in i.value for i in at.info)
    assert not at.tabs


def test_lesions_of_the_run_and_its_twin(runs, monkeypatch):
    from resnet_explorer.jobs import explain_worker
    from resnet_explorer.ui import analysis_jobs

    monkeypatch.setattr(analysis_jobs, "start_process", explain_worker.start_process)  # the real child, once
    at = page()
    assert not at.exception and not at.error
    assert [t.label for t in at.tabs] == [e.title for e in explain.LENSES.values()]
    assert at.selectbox(key="explain_run").value == runs["plain8"]["id"]  # the newest, its twin beside it
    assert at.selectbox(key=f"explain_other_{runs['plain8']['id']}").value == runs["resnet8"]["id"]
    # four steps leave both at chance: the page says so before any lens
    stuck = [w.value for w in at.warning if "has not left chance" in w.value]
    assert len(stuck) == 2 and all("those of an untrained net" in w for w in stuck)
    snap = run_lens(at, "lesion", timeout=120, **TINY)  # a fresh interpreter: seconds on two busy cores
    assert snap["status"] == "done" and snap["tasks"] == 2, snap
    assert not at.exception and not at.error
    specs = chart_specs(at)
    assert len(specs) >= 2  # one unit at a time, k at a time (resnet8 has no stage with two units to swap)
    for label in (runs["resnet8"]["label"], runs["plain8"]["label"]):
        assert " · shapes" in label
        assert all(label in json.dumps(json.loads(spec), ensure_ascii=False) for spec in specs), label  # both nets drawn in every figure
    saved = explain.load(runs["plain8"]["path"], "lesion")
    assert saved is not None and saved[1] == {**explain.LENSES["lesion"].defaults, **TINY}
    assert any("held-out images" in c.value for c in at.caption)  # captions from the saved results
    assert any("no stage with two units" in i.value for i in at.info)  # the lesion notes


def test_paths_skip_the_plain_twin(runs):
    at = page()
    snap = run_lens(at, "paths", **TINY)
    assert snap["status"] == "done" and snap["tasks"] == 1, snap  # only the residual run was measured
    assert not at.exception and not at.error
    assert explain.load(runs["plain8"]["path"], "paths") is None
    assert explain.load(runs["resnet8"]["path"], "paths") is not None
    assert len(chart_specs(at)) == 1
    assert any("plain8" in i.value and "single path" in i.value for i in at.info)


def test_paths_of_a_plain_run_alone_is_an_info(runs, tmp_path, monkeypatch):
    shutil.copytree(runs["plain8"]["path"], tmp_path / runs["plain8"]["id"])  # no twin to pick
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    at = page()
    assert at.selectbox(key=f"explain_other_{runs['plain8']['id']}").value is None
    at.button(key="explain_paths_run").click()
    at.run()
    assert not at.exception and not at.error
    assert any("plain net (no shortcuts): it has a single path" in i.value for i in at.info), [i.value for i in at.info]
    assert "rx_analysis_job" not in at.session_state  # nothing was started


def test_landscape_contours_and_surfaces_side_by_side(runs):
    at = page()
    snap = run_lens(at, "landscape", dims=2, grid=3, images=16)
    assert snap["status"] == "done", snap
    specs = [json.loads(s) for s in chart_specs(at)]
    assert len(specs) == 3  # the line through beta = 0, contours and surfaces
    contour = next(s for s in specs if any(t["type"] == "contour" for t in s["data"]))
    ranges = {(t["zmin"], t["zmax"]) for t in contour["data"] if t["type"] == "contour"}
    assert len([t for t in contour["data"] if t["type"] == "contour"]) == 2 and len(ranges) == 1  # one scale
    assert any("3 x 3 points" in c.value for c in at.caption)


def test_a_landscape_at_chance_gets_no_comparison(runs):
    from resnet_explorer.analysis.landscape import summarize
    from resnet_explorer.reports.findings.evidence import Progress

    at = page()
    snap = run_lens(at, "landscape", grid=3, images=16)
    assert snap["status"] == "done", snap
    title = json.loads(chart_specs(at)[0])["layout"]["title"]["text"]
    stuck = []
    for name in ("plain8", "resnet8"):
        stats = summarize(explain.load(runs[name]["path"], "landscape")[0])
        if Progress(name, 10, loss=stats["centre_loss"], accuracy=stats["centre_accuracy"]).at_chance:
            stuck.append(name)
    assert stuck, "4 training steps should leave at least one of the tiny nets at chance"
    assert "No comparison" in title and "at chance at the trained weights" in title
    assert "less convex" not in title and "rises more" not in title


def forms(node) -> list:
    """Every st.form block under `node` (AppTest keeps them as blocks of type "form")."""
    found = [node] if getattr(node, "type", None) == "form" else []
    for child in getattr(node, "children", {}).values():
        found += forms(child)
    return found


def test_only_run_starts_a_lens_with_the_values_shown(runs):
    at = page()
    lens_forms = forms(at.main)
    assert len(lens_forms) == len(explain.LENSES) and not any(f.proto.form.enter_to_submit for f in lens_forms)  # Enter does not submit
    at.run()  # a rerun (another widget, a page refresh): nothing starts
    assert "rx_analysis_job" not in at.session_state
    at.number_input(key="explain_landscape_grid").set_value(5)
    at.number_input(key="explain_landscape_images").set_value(16)
    at.button(key="explain_landscape_run").click()
    at.run()
    assert wait_job(at)["status"] == "done"
    shown = {name: at.number_input(key=f"explain_landscape_{name}").value for name in ("grid", "images", "seed")}
    assert shown == {"grid": 5, "images": 16, "seed": 0}  # the form still shows what was run
    saved = explain.load(runs["plain8"]["path"], "landscape")[1]
    assert {k: saved[k] for k in shown} == shown  # the job ran with exactly the values the form showed


def test_stop_ends_a_running_analysis(runs):
    at = page()
    at.selectbox(key="explain_landscape_dims").set_value(2)
    at.number_input(key="explain_landscape_grid").set_value(31)
    at.number_input(key="explain_landscape_images").set_value(64)
    at.button(key="explain_landscape_run").click()
    at.run()
    job = at.session_state["rx_analysis_job"]
    deadline = time.time() + 30
    while job.snapshot()["status"] != "running" and time.time() < deadline:
        time.sleep(0.1)
    assert job.snapshot()["status"] == "running"
    at.run()
    assert [p.proto.text for p in at.get("progress")][0].startswith("plain8")  # the picked run first
    at.button(key="explain_stop").click()
    at.run()
    snap = wait_job(at, timeout=20)
    assert snap["status"] == "stopped", snap
    assert not at.exception and not at.error
    assert any("stopped" in i.value for i in at.info)
    assert explain.load(runs["plain8"]["path"], "landscape") is None  # nothing half-made was saved


def test_bad_option_and_damaged_result_keep_the_session(runs):
    at = page()
    at.number_input(key="explain_landscape_grid").set_value(4)  # typed: the step only moves the arrows
    at.button(key="explain_landscape_run").click()
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["grid must be odd, so that the trained weights are a grid point; got 4"]
    folder = explain.lens_folder(runs["resnet8"]["path"], "lesion")
    folder.mkdir(parents=True)
    (folder / "result.json").write_text("{not json")
    at.run()
    assert not at.exception
    assert any("damaged" in e.value and "run it again" in e.value for e in at.error)
    assert [t.label for t in at.tabs] == [e.title for e in explain.LENSES.values()]  # the page goes on


def test_a_failed_analysis_is_an_error_and_the_session_goes_on(runs, monkeypatch):
    from resnet_explorer.ui import analysis_jobs

    def failing(tasks, device):
        child = FakeChild(tasks, device)
        child.emit("started", 0, "resnet8 · shapes 16px · abcd")
        child.emit("failed", 0, "could not write the run folder")
        child.emit("finished")
        return child

    monkeypatch.setattr(analysis_jobs, "start_process", failing)
    at = page()
    at.button(key="explain_lesion_run").click()
    at.run()
    snap = wait_job(at, timeout=10)
    assert snap["status"] == "failed"
    assert [e.value for e in at.error] == ["Lesions failed: resnet8 · shapes 16px · abcd: could not write the run folder"]
    at.run()  # a later rerun still draws the page
    assert not at.exception and len(at.tabs) == len(explain.LENSES)


class FakeChild:
    """Stands in for the analysis process: replays messages the test sends, until "finished"."""

    def __init__(self, tasks, device):
        self.tasks, self.device = tasks, device
        self.returncode = None
        self._lines = queue.Queue()
        self.stdout = iter(self._lines.get, None)
        self.stdin = self
        self.stops = 0

    def emit(self, *message):
        self._lines.put(json.dumps(message) + "\n")
        if message[0] == "finished":
            self.returncode = 0
            self._lines.put(None)

    def write(self, text):
        self.stops += text.strip() == "stop"

    def flush(self):
        pass

    def poll(self):
        return self.returncode

    def wait(self):
        return self.returncode

    def kill(self):
        self.returncode = -9


def wait_for(condition, timeout=5.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_analysis_waits_in_the_training_queue_and_reports_each_task():
    line = jobs.TrainingQueue(limit=1)
    children = []

    def starter(tasks, device):
        children.append(FakeChild(tasks, device))
        return children[-1]

    class Training:  # a training job holding the cpu's one slot
        device = "cpu"

    training = Training()
    line.enqueue(training)
    assert line.wait_turn(training)
    job = AnalysisJob([("/runs/a", "lesion", TINY), ("/runs/b", "lesion", TINY)], "cpu", labels=["a", "b"],
                      queue=line, starter=starter).start()
    snap = job.snapshot()
    assert snap["status"] == "queued" and snap["position"] == 1
    assert progress_text(snap) == ("queued, 1st in line — one job at a time on cpu (training or analysis), "
                                   "another job is running")
    line.release(training)
    wait_for(lambda: children)
    child = children[0]
    assert [t["path"] for t in child.tasks] == ["/runs/a", "/runs/b"] and child.device == "cpu"
    child.emit("started", 0, "resnet8 · shapes 16px · aaaa")
    child.emit("progress", 0, 3, 7)
    wait_for(lambda: job.snapshot()["done"] == 3)
    snap = job.snapshot()
    assert (snap["status"], snap["total"], snap["label"]) == ("running", 7, "resnet8 · shapes 16px · aaaa")
    assert progress_text(snap) == "resnet8 · shapes 16px · aaaa (1 of 2), analysing: 3 / 7"
    child.emit("done", 0, [])
    child.emit("started", 1, "plain8 (bbbb)")
    child.emit("failed", 1, "bad thing")
    child.emit("finished")
    job.thread.join(timeout=5)
    snap = job.snapshot()
    assert snap["status"] == "failed" and snap["message"] == "plain8 (bbbb): bad thing"
    assert [s["status"] for s in job.task_states()] == ["done", "failed"]
    assert line.training("cpu") == 0  # the slot was given back


def test_stop_while_queued_never_starts():
    line = jobs.TrainingQueue(limit=1)

    class Training:
        device = "cpu"

    training = Training()
    line.enqueue(training)
    assert line.wait_turn(training)
    job = AnalysisJob([("/runs/a", "paths", TINY)], "cpu", queue=line,
                      starter=lambda *a: pytest.fail("started")).start()
    job.stop()
    job.thread.join(timeout=5)
    assert job.snapshot()["status"] == "stopped" and line.waiting("cpu") == 0


def test_the_unit_profile_tab_measures_the_run_alone(runs):
    """The profile is a lens without a twin: one task, saved in the picked run's folder only, and drawn."""
    at = page()
    at.number_input(key="explain_profile_samples").set_value(8)
    at.toggle(key="explain_profile_lesions").set_value(False)
    at.button(key="explain_profile_run").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    snap = wait_job(at)
    assert snap["status"] == "done" and snap["tasks"] == 1
    saved = {model: explain.load(row["path"], "profile") for model, row in runs.items()}
    assert sum(s is not None for s in saved.values()) == 1  # the picked run, not its twin
    profile, options = next(s for s in saved.values() if s is not None)
    assert profile.images == 8 and not profile.lesions and options == {"photos": "", "samples": 8, "lesions": False}
    tab = next(t for t in at.tabs if t.label == "Unit profile")
    assert len(tab.get("plotly_chart")) == 1
