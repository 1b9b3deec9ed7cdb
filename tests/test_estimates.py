"""The home page's Reproduce estimate: the example runs' recorded times scaled by steps timed here."""

import dataclasses
import math
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_explorer.jobs import estimates
from resnet_explorer.jobs.estimates import (
    Estimate,
    cached_preset_estimate,
    minutes_text,
    preset_estimate,
    recorded_seconds,
    step_seconds,
)
from resnet_explorer.models import ModelSpec
from resnet_explorer.runs import list_runs, load_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "degradation"


@pytest.fixture(scope="module")
def examples():
    return [load_run(r["path"], with_model=False) for r in list_runs(EXAMPLES)]


def test_minutes_are_rounded_up_to_the_half_minute():
    assert minutes_text(20) == "under a minute"
    assert minutes_text(60) == "about 1 minute"
    assert minutes_text(61) == "about 1.5 minutes"
    assert minutes_text(104) == "about 2 minutes"
    assert minutes_text(6 * 60 - 5) == "about 6 minutes"


def test_recorded_times_are_averaged_over_seeds_per_model(examples):
    recorded = recorded_seconds(examples)
    assert set(recorded) == {"plain20", "plain56", "resnet20", "resnet56"}
    plain20 = [r.info["seconds"] for r in examples if r.spec.name == "plain20"]
    assert len(plain20) == 3 and recorded["plain20"] == (pytest.approx(sum(plain20) / 3), 250)


def test_the_estimate_scales_one_seeds_recorded_time_by_this_machines_speed(examples):
    recorded = recorded_seconds(examples)
    total = sum(s for s, _ in recorded.values())
    timed = []

    def four_times_slower(run):
        timed.append(run.spec.name)
        seconds, steps = recorded[run.spec.name]
        return 4 * seconds / steps

    estimate = preset_estimate(examples, four_times_slower)
    assert timed == [min(recorded, key=lambda n: recorded[n][0])]  # the cheapest net only, once
    assert estimate.seconds == pytest.approx(4 * total) and estimate.speed == pytest.approx(4)
    assert estimate.text() == f"an estimate from a few training steps timed here just now: {minutes_text(4 * total)}"
    assert 60 < total < 180  # the shipped runs: 1 to 3 minutes for one seed where they were made


@pytest.mark.parametrize("measure", [lambda run: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")),
                                     lambda run: math.nan, lambda run: 0.0])
def test_without_a_timing_the_recorded_times_stand_and_say_whose_they_are(examples, measure):
    estimate = preset_estimate(examples, measure)
    assert estimate.speed is None and estimate.seconds == estimate.recorded
    assert estimate.text().startswith("an estimate from the example runs' recorded times: about ")
    assert estimate.text().endswith(" on the machine that made them")


def test_runs_without_a_usable_recorded_time_are_left_out(examples):
    run = examples[0]
    damaged = [dataclasses.replace(run, info={**run.info, "seconds": value}) for value in ("12", True, -1, None)]
    assert recorded_seconds(damaged) == {}
    assert preset_estimate(damaged, lambda run: 1.0) is None
    unfinished = dataclasses.replace(run, info={**run.info, "status": "stopped"})
    assert recorded_seconds([unfinished]) == {}


def test_a_step_is_timed_here():
    spec = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)
    seconds = step_seconds(spec, batch_size=8, image_size=16, steps=2)
    assert 0 < seconds < 30
    started = time.perf_counter()
    assert step_seconds(spec, batch_size=8, image_size=16, steps=10_000, budget=0.2) > 0
    assert time.perf_counter() - started < 10  # the budget, not the steps asked for, ends the timing


def test_the_timing_is_made_once_per_max_age(examples, monkeypatch):
    calls = []
    monkeypatch.setattr(estimates, "step_seconds", lambda *args, **kwargs: calls.append(args) or 0.1)
    monkeypatch.setattr(estimates, "_cache", {})
    now = [1000.0]
    first = cached_preset_estimate(examples, "cpu", clock=lambda: now[0])
    now[0] += 599
    assert cached_preset_estimate(examples, "cpu", clock=lambda: now[0]) is first and len(calls) == 1
    now[0] += 2
    again = cached_preset_estimate(examples, "cpu", clock=lambda: now[0])
    assert len(calls) == 2 and isinstance(again, Estimate)
    assert calls[0][1:3] == (64, 16)  # the preset's batch and image size


def test_the_home_page_says_its_reproduce_time_is_an_estimate(monkeypatch):
    monkeypatch.setattr(estimates, "_cache", {})
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    label = at.button(key="tour_reproduce").label
    assert label.startswith("Reproduce it live (one seed; an estimate from ") and " about " in label
    assert "2-core" not in label
