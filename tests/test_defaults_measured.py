"""The defaults of `train` and the Train page are the ones bench/train_defaults.py measured to leave chance.

The bench trains `train --model M --seed S`'s defaults for plain20, resnet20 and resnet56 on seeds 0-4
with 1 and 2 torch threads (an hour on a CPU) and records in bench/results/train_defaults.json the config
of every cell. Here today's defaults are built the same way and compared with those configs, field by
field: a default changed since the bench ran is no longer known to leave chance, and the pages that
compare twins at the defaults would then compare nets that may not have trained.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "train_defaults.json"
RERUN = ("rerun `python bench/train_defaults.py --json bench/results/train_defaults.json` (about an hour) "
         "and commit its results with the new defaults")


def _bench():
    spec = importlib.util.spec_from_file_location("train_defaults", ROOT / "bench" / "train_defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cells() -> list[dict]:
    return json.loads(RESULTS.read_text())


def _differences(measured: dict, today: dict) -> dict:
    return {k: (measured.get(k, "<absent>"), today.get(k, "<absent>"))
            for k in sorted(set(measured) | set(today)) if measured.get(k, "<absent>") != today.get(k, "<absent>")}


def test_the_bench_measured_every_model_and_seed_it_names_and_all_left_chance(cells):
    bench = _bench()
    assert {(c["model"], c["seed"], c["threads"]) for c in cells} == {
        (m, s, t) for m in bench.MODELS for s in range(5) for t in (1, 2)}, RERUN
    assert all(c["status"] == "done" and not c["at_chance"] for c in cells)
    assert all("config" in c for c in cells), f"cells without the config they trained: {RERUN}"


def test_train_defaults_are_the_config_the_bench_measured(cells):
    bench = _bench()
    for c in cells:
        today = bench.cli_config(c["model"], c["seed"]).to_dict()
        assert today == c["config"], (
            f"`train --model {c['model']} --seed {c['seed']}` now builds another config than the one "
            f"bench/train_defaults.py measured to leave chance (measured, today): "
            f"{_differences(c['config'], today)}; {RERUN}")


def test_the_train_page_opens_on_the_config_the_bench_measured(cells):
    """Every field of the Train page's form, as it opens, against the measured config of its default model;
    only log_every differs on purpose (the page logs every 5 steps for its live curves; logging does not
    change what is trained)."""
    from streamlit.testing.v1 import AppTest

    from resnet_explorer.ui.state import DEFAULT_MODEL

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/2_Train.py").run()
    assert not at.exception
    seed = at.number_input(key="train_seed").value
    measured = next(c["config"] for c in cells if c["model"] == DEFAULT_MODEL and c["seed"] == seed)
    assert at.radio(key="train_budget_kind").value == "steps"
    shown = {"dataset": at.selectbox(key="train_dataset").value, "steps": at.number_input(key="train_budget").value,
             "batch_size": at.number_input(key="train_batch").value, "lr": at.number_input(key="train_lr").value,
             "optimizer": at.selectbox(key="train_optimizer").value,
             "schedule": at.selectbox(key="train_schedule").value,
             "weight_decay": at.number_input(key="train_wd").value,
             "probe_every": at.number_input(key="train_probe_every").value,
             "train_size": at.number_input(key="train_size").value or None,
             "image_size": at.number_input(key="train_image_size").value,
             "augment": at.checkbox(key="train_augment").value, "seed": seed}
    assert shown == {k: measured[k] for k in shown}, (
        f"the Train page now opens on another config than the one bench/train_defaults.py measured: "
        f"{_differences({k: measured[k] for k in shown}, shown)}; {RERUN}")
