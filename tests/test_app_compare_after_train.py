"""Compare opens on the pair just trained on the Train page, unless the user chose runs there."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer import ModelSpec
from resnet_explorer.data import load_data
from resnet_explorer.runs import RunWriter
from resnet_explorer.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(tmp_path))
    import streamlit as st

    st.cache_data.clear()
    return tmp_path


# The whole walk (train, Compare opens on the run; train its twin, Compare opens on both) runs in the real
# browser: tests/browser/test_browser.py::test_a_short_run_and_its_twin_claim_only_what_the_runs_show.


def _page_after(runs_root: str, chosen: list[str] | None, run_id: str) -> None:
    import streamlit as st

    from resnet_explorer.ui.run_picker import compare_after_training, preselect

    class Ended:  # what compare_after_training reads of a TrainingJob
        def snapshot(self):
            return {"run_id": run_id, "status": "done"}

    if chosen is not None and "step" not in st.session_state:
        st.session_state["step"] = 1
        st.session_state["compare_runs"] = chosen  # as the user's multiselect leaves it
    if st.session_state.get("preset"):
        preselect("compare", st.session_state["preset"])
    st.text(" ".join(compare_after_training(Ended(), runs_root)) or "-")
    st.text("compare: " + " ".join(st.session_state.get("compare_runs_next", st.session_state.get("compare_runs")) or []))


def _made(root: Path, *names: str, image_size: int = 32) -> list[str]:
    data = load_data("shapes", seed=0, train_size=32, test_size=16, image_size=image_size)
    ids = []
    for name in names:
        spec = ModelSpec.from_name(name, num_classes=10)
        config = TrainConfig(steps=1, batch_size=16, probe_every=0, log_every=1, device="cpu", image_size=image_size)
        writer = RunWriter(root, spec, config, save_model=False)
        train(spec, config, data=data, listeners=[writer])
        ids.append(writer.id)
    return ids


def test_the_users_choice_on_compare_stands_and_the_apps_own_does_not(tmp_path):
    resnet, plain, other = _made(tmp_path, "resnet8", "plain8", "resnet14")
    at = AppTest.from_function(_page_after, args=(str(tmp_path), [other], plain)).run()
    assert not at.exception
    assert at.text[0].value == "-" and at.text[1].value == f"compare: {other}"  # chosen by the user: kept

    at = AppTest.from_function(_page_after, args=(str(tmp_path), None, plain))
    at.session_state["preset"] = [other]  # the app's own earlier preselection (a preset) gives way
    at.run()
    assert at.text[0].value == f"{plain} {resnet}" and at.text[1].value == f"compare: {plain} {resnet}"

    at = AppTest.from_function(_page_after, args=(str(tmp_path), None, "gone-0000")).run()
    assert at.text[0].value == "-"  # a run that is not (or no longer) in the folder: nothing


def test_compare_warns_when_the_runs_were_trained_on_different_data(runs):
    ids = _made(runs, "resnet8", image_size=16) + _made(runs, "plain8")
    at = AppTest.from_file(str(ROOT / "pages" / "5_Compare.py"), default_timeout=120)
    at.query_params["runs"] = ",".join(ids)
    at.run()
    assert not at.exception
    assert [w.value for w in at.warning if "left chance" not in w.value] == [
        "These runs were trained on different data (shapes 16px: 1 run; shapes 32px: 1 run), so their losses and "
        "errors do not compare like for like."]
