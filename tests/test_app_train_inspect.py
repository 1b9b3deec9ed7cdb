"""Train and Inspect pages through AppTest, on a tiny budget and a temporary runs folder."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer import ModelSpec
from resnet_explorer.data import load_data
from resnet_explorer.runs import RunWriter, list_runs
from resnet_explorer.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return tmp_path


def make_run(root: Path, name: str) -> str:
    data = load_data("shapes", seed=0, train_size=64, test_size=32)
    spec = ModelSpec.from_name(name, num_classes=10)
    config = TrainConfig(steps=4, batch_size=16, probe_every=1, log_every=1, device="cpu")
    writer = RunWriter(root, spec, config)
    train(spec, config, data=data, listeners=[writer])
    return writer.id


def app(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(page).run()  # before the first run: the page alone, through app.py's navigation
    return at


def test_train_page_runs_and_shows_curves(runs):
    from resnet_explorer.training.presets import QUICK

    at = app("pages/2_Train.py")
    assert not at.exception
    assert at.info  # no run yet
    # the form opens on the recipe `train` defaults to too (the one measured to leave chance)
    shown = {"dataset": at.selectbox(key="train_dataset").value, "steps": at.number_input(key="train_budget").value,
             "batch_size": at.number_input(key="train_batch").value,
             "image_size": at.number_input(key="train_image_size").value,
             "augment": at.checkbox(key="train_augment").value}
    assert shown == {k: QUICK[k] for k in shown}
    at.number_input(key="train_budget").set_value(4)
    at.number_input(key="train_batch").set_value(16)
    at.number_input(key="train_size").set_value(64)
    at.number_input(key="train_probe_every").set_value(1)
    at.button[0].click()  # the form's submit button
    at.run()
    assert not at.exception and not at.error
    deadline = time.time() + 120
    while time.time() < deadline:
        at.run()
        if any("Inspect" in s.value for s in at.success):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"training did not finish: {[p.value for p in at.get('progress')]}")
    assert not at.exception
    assert len(at.get("plotly_chart")) == 1
    stored = list_runs(runs)
    assert len(stored) == 1 and stored[0]["status"] == "done" and stored[0]["model"] == "resnet20"
    config = stored[0]["config"]
    kept = ("dataset", "image_size", "augment", "warmup")  # the fields this test did not change
    assert {k: config[k] for k in kept} == {k: QUICK[k] for k in kept}
    # the final numbers, and the verdict on chance: 4 steps leave resnet20 at chance, and the page says so
    assert {m.label for m in at.metric} >= {"Final train loss", "Train error", "Held-out error"}
    assert any("has not left chance" in w.value for w in at.warning)


def wait_done(at: AppTest, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if any("Inspect" in s.value for s in at.success) or at.error:
            return
        time.sleep(0.5)
    pytest.fail("training did not finish")


def submit_tiny(at: AppTest, steps: int = 6) -> None:
    at.number_input(key="train_budget").set_value(int(steps))
    at.number_input(key="train_batch").set_value(16)
    at.number_input(key="train_size").set_value(64)
    at.button[0].click()
    at.run()


def test_two_sessions_train_at_once_and_survive_page_switches(runs, monkeypatch):
    from resnet_explorer.ui import jobs
    from tests.test_jobs import FakeStarter, wait_for

    # Two slots, as on a server configured for it, and workers that train until told (the real
    # worker through this page: test_train_page_runs_and_shows_curves).
    starter = FakeStarter()
    monkeypatch.setattr(jobs, "QUEUE", jobs.TrainingQueue(limit=2))
    monkeypatch.setattr(jobs, "start_process", starter)
    first, second = app("pages/2_Train.py"), app("pages/2_Train.py")
    submit_tiny(first)
    submit_tiny(second)
    wait_for(lambda: len(starter.workers) == 2)  # both train at once
    first.switch_page("pages/1_Architecture.py").run()  # leave while it trains
    assert not first.exception
    first.switch_page("pages/2_Train.py").run()
    assert not first.exception and [p.proto.text for p in first.get("progress")][0].startswith("resnet20: step")
    for worker in starter.workers:
        worker.finish()
    wait_done(first, timeout=10)
    wait_done(second, timeout=10)
    assert not first.exception and not second.exception and not first.error and not second.error


def test_train_page_bad_input_keeps_session(runs, monkeypatch):
    from resnet_explorer.ui import jobs
    from tests.test_jobs import in_process_training

    monkeypatch.setattr(jobs, "start_process", in_process_training)  # the worker's own code, on a thread here
    at = app("pages/2_Train.py")
    at.selectbox(key="train_dataset").set_value("folder")
    at.text_input(key="train_data_root").set_value(str(runs / "does-not-exist"))
    at.number_input(key="train_budget").set_value(2)
    at.button[0].click()
    at.run()
    deadline = time.time() + 60
    while time.time() < deadline and not at.error:
        time.sleep(0.3)
        at.run()
    assert not at.exception
    assert at.error and "does-not-exist" in at.error[0].value


def test_inspect_without_runs(runs):
    at = app("pages/3_Inspect.py")
    assert not at.exception and at.info


def test_inspect_overlays_the_twin(runs):
    make_run(runs, "resnet20")
    make_run(runs, "plain20")
    at = app("pages/3_Inspect.py")
    assert not at.exception and not at.error
    assert at.selectbox(key="inspect_run").value == list_runs(runs)[0]["id"]  # the newest
    charts = at.get("plotly_chart")
    assert len(charts) >= 6
    other = [s for s in at.selectbox if s.key.startswith("inspect_other_")][0]
    assert other.value is not None  # the twin was picked
    # 4 steps: both nets are at chance, so the page names them and claims nothing about their internals
    assert sum("has not left chance" in w.value for w in at.warning) == 2
    text = " ".join(m.value for m in at.markdown)
    assert "refine their input" not in text and "relatively larger gradients" not in text
    at.radio(key="inspect_grad_value").set_value("update_ratio").run()
    assert not at.exception


def test_inspect_opens_on_the_longest_finished_run(runs):
    import json

    done = make_run(runs, "resnet20")
    stopped = make_run(runs, "plain20")  # newer, but stopped after 2 steps
    info_path = runs / stopped / "run.json"
    info = json.loads(info_path.read_text())
    info.update(status="stopped", steps=2)
    info_path.write_text(json.dumps(info))
    assert list_runs(runs)[0]["id"] == stopped
    at = app("pages/3_Inspect.py")
    assert not at.exception and not at.error
    assert at.selectbox(key="inspect_run").value == done
    assert any(c.value.startswith("Opened on **resnet20**") and "most steps" in c.value for c in at.caption)


def test_inspect_warns_of_an_interrupted_run(runs):
    import json

    run_id = make_run(runs, "resnet20")
    info_path = runs / run_id / "run.json"
    info = json.loads(info_path.read_text())
    info.update(status="running", message="", steps=3, total_steps=4, pid=4242, host="elsewhere.invalid",
                pid_started=1.0, updated=time.time() - 7200)  # a writer on another machine, silent for 2 h
    info_path.write_text(json.dumps(info))
    at = app("pages/3_Inspect.py")
    assert not at.exception and not at.error and at.get("plotly_chart")
    assert at.warning[0].value == (
        "Interrupted after step 3 of 4: its process (pid 4242 on elsewhere.invalid) has not updated it for 2.0 h; "
        "the saved model is from step 4. The figures show what it wrote before it stopped.")


def _picker_page(many: bool, with_twin: bool, default: str | None) -> None:
    """A page with only the shared run picker; it prints the ids it got back."""
    import streamlit as st

    from resnet_explorer.runs import list_runs, load_run
    from resnet_explorer.ui import jobs
    from resnet_explorer.ui.run_picker import pick_many, pick_runs

    def load(row):
        return load_run(row["path"], with_model=False)

    runs = list_runs(jobs.runs_root())
    picked = pick_many("t", runs, load) if many else pick_runs("t", runs, load, with_twin=with_twin, default=default)
    st.text("picked: " + " ".join(p.id for p in picked))


def picked(at: AppTest) -> list[str]:
    return [t.value.split()[1:] for t in at.text if t.value.startswith("picked:")][0] if at.text else []


def test_run_picker(runs):
    resnet, plain = make_run(runs, "resnet20"), make_run(runs, "plain20")  # plain20 is the newest
    at = AppTest.from_function(_picker_page, args=(False, True, resnet), default_timeout=60).run()
    assert not at.exception and not at.error
    assert picked(at) == [resnet, plain]  # the default run, and its twin beside it
    assert at.selectbox(key="t_run").value == resnet and at.selectbox(key=f"t_other_{resnet}").value == plain
    assert at.selectbox(key="t_run").format_func(resnet) == f"resnet20 · shapes 32px · {resnet[-4:]} (done, 4/4 steps)"

    (runs / plain / "metrics.csv").write_text("a,b\n1,2\n")  # a damaged second run: named, the page goes on
    at.run()
    assert not at.exception and picked(at) == [resnet]
    assert [e.value for e in at.error] == [f"run {plain}: metrics.csv lacks the columns step, epoch, loss, accuracy, "
                                           "lr, seconds (its columns: a, b). Choose another run."]
    at.selectbox(key="t_run").set_value(plain).run()  # a damaged main run: named, the page stops there
    assert not at.exception and len(at.error) == 1 and not at.text
    assert at.selectbox(key=f"t_other_{plain}").value == resnet  # its twin, to choose instead

    at = AppTest.from_function(_picker_page, args=(False, False, None), default_timeout=60).run()
    assert not at.exception and [s.key for s in at.selectbox] == ["t_run"]  # no second picker
    assert at.selectbox(key="t_run").value == plain and at.error  # the newest, damaged

    at = AppTest.from_function(_picker_page, args=(True, False, None), default_timeout=60)
    at.query_params["runs"] = f"{resnet},nope,{plain}"
    at.run()
    assert not at.exception and at.multiselect(key="t_runs").value == [resnet, plain]  # unknown ids dropped
    assert picked(at) == [resnet] and len(at.error) == 1  # the damaged one named and left out
    assert [w.value for w in at.warning] == ["Not found, left out: run nope from the link."]
    at.multiselect(key="t_runs").set_value([]).run()
    assert picked(at) == [] and "runs" not in at.query_params


def test_a_second_session_waits_in_line_and_can_leave_it(runs, monkeypatch):
    from resnet_explorer.ui import jobs
    from tests.test_jobs import FakeStarter, wait_for

    starter = FakeStarter()  # workers that train until told: no torch process, no timing
    monkeypatch.setattr(jobs, "QUEUE", jobs.TrainingQueue(limit=1))
    monkeypatch.setattr(jobs, "start_process", starter)
    first, second = app("pages/2_Train.py"), app("pages/2_Train.py")
    submit_tiny(first)
    wait_for(lambda: starter.seeds == [0])
    submit_tiny(second)
    assert not first.exception and not second.exception and not second.error
    texts = [p.proto.text for p in second.get("progress")]
    assert texts == [f"resnet20: queued, 1st in line — one job at a time on {jobs.device_key('auto')} "
                     "(training or analysis), another job is running"]
    assert any("Stop takes it out of the line" in c.value for c in second.caption)
    second.button(key="train_stop").click().run()
    assert not second.exception
    assert any(i.value == "No run was made." for i in second.info)
    assert [p.proto.text for p in second.get("progress")] == ["resnet20: stopped while queued, before it started"]
    assert starter.seeds == [0]  # only the first session's worker ever started
    starter.workers[0].finish()
    wait_done(first, timeout=10)
    assert not first.exception and not first.error and starter.seeds == [0]


def test_train_page_cifar_missing_says_how_and_download_reaches_the_config(runs, monkeypatch):
    from resnet_explorer.ui import jobs
    from tests.test_jobs import in_process_training

    monkeypatch.setattr(jobs, "start_process", in_process_training)  # the worker's own code, on a thread here
    at = app("pages/2_Train.py")
    at.selectbox(key="train_dataset").set_value("cifar10")
    at.text_input(key="train_data_root").set_value(str(runs / "no-cifar-here"))
    at.number_input(key="train_budget").set_value(2)
    at.button[0].click()
    at.run()
    deadline = time.time() + 60
    while time.time() < deadline and not at.error:
        time.sleep(0.3)
        at.run()
    assert not at.exception
    message = at.error[0].value
    assert "no-cifar-here" in message and "Download if missing" in message and "cifar-10-python.tar.gz" in message

    asked = []
    monkeypatch.setattr(jobs, "start_job", lambda spec, config: asked.append(config))  # no network in tests
    at = app("pages/2_Train.py")
    at.selectbox(key="train_dataset").set_value("cifar10")
    at.checkbox(key="train_download").check()
    at.button[0].click()
    at.run()
    assert [c.download for c in asked] == [True] and asked[0].dataset == "cifar10"
    at.selectbox(key="train_dataset").set_value("shapes")  # the tick only matters for CIFAR
    at.button[0].click()
    at.run()
    assert [c.download for c in asked] == [True, False]
