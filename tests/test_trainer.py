import math
import threading

import pytest
import torch

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.data import load_data
from resnet_explorer.training import TrainConfig, train

TINY = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)


@pytest.fixture(scope="module")
def data():
    return load_data("shapes", seed=0, train_size=64, test_size=32)


def config(**kw):
    base = dict(steps=6, batch_size=16, probe_every=2, log_every=2, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_with_events(data):
    events = []
    result = train(TINY, config(), data=data, listeners=[events.append])
    assert result.status == "done" and result.steps == 6 and result.total_steps == 6
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("step") == 3 and kinds.count("probe") == 3
    assert [m["step"] for m in result.metrics] == [2, 4, 6]
    assert result.evals and result.evals[-1]["step"] == 6
    assert {r["step"] for r in result.residual_norms} == {1, 3, 5}
    assert all(0 <= m["accuracy"] <= 1 and math.isfinite(m["loss"]) for m in result.metrics)


def test_overfits_one_batch(data):
    one = load_data("shapes", seed=0, train_size=16, test_size=16)
    result = train(TINY, config(steps=40, lr=0.05, augment=False, schedule="constant", probe_every=0,
                                weight_decay=0.0), data=one)
    first, last = result.metrics[0]["loss"], result.metrics[-1]["loss"]
    assert last < 0.3 * first and result.metrics[-1]["accuracy"] == 1.0


def test_bit_for_bit_repeatable_on_cpu(data):
    a = train(TINY, config(), data=data)
    b = train(TINY, config(), data=data)
    c = train(TINY, config(seed=1), data=data)
    assert [m["loss"] for m in a.metrics] == [m["loss"] for m in b.metrics]
    assert a.grad_flow == b.grad_flow
    assert [m["loss"] for m in a.metrics] != [m["loss"] for m in c.metrics]


def test_stop_on_request_keeps_the_run(data):
    stop = threading.Event()

    def stopper(event):
        if event.kind == "step" and event.step >= 2:
            stop.set()

    result = train(TINY, config(steps=50), data=data, listeners=[stopper], stop=stop)
    assert result.status == "stopped" and result.steps == 2
    assert result.evals[-1]["step"] == 2  # a stopped run is still evaluated


def test_nan_loss_diverges_naming_the_step(data):
    model = build_model(TINY, device="cpu")
    with torch.no_grad():
        model.fc.bias.fill_(float("nan"))
    result = train(model, config(), data=data)
    assert result.status == "diverged" and "at step 1" in result.message
    assert result.metrics == []


def test_schedules_and_adamw(data):
    for schedule in ("onecycle", "cosine", "step", "constant"):
        result = train(TINY, config(schedule=schedule, optimizer="adamw", lr=1e-3, probe_every=0), data=data)
        assert result.status == "done", result.message
    result = train(TINY, config(steps=8, schedule="step", probe_every=0), data=data)
    lrs = [m["lr"] for m in result.metrics]
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.001)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"steps": 0}, "steps"),
        ({"steps": None}, "exactly one budget"),
        ({"epochs": 1.0}, "exactly one budget"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"schedule": "poly"}, "schedule"),
        ({"probe_every": -1}, "probe_every"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
    ],
)
def test_bad_config(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        config(**kwargs)


def test_batch_larger_than_data(data):
    with pytest.raises(ValueError, match="larger than the training set"):
        train(TINY, config(batch_size=1000), data=data)


def test_model_and_data_must_agree(data):
    with pytest.raises(ValueError, match="classes"):
        train(build_model(TINY.replace(num_classes=7), device="cpu"), config(), data=data)


def test_epochs_budget(data):
    result = train(TINY, TrainConfig(epochs=1.5, batch_size=16, probe_every=0, device="cpu"), data=data)
    assert result.steps == 6  # 64 images / 16 = 4 steps per epoch
    assert [e["step"] for e in result.evals] == [4, 6]  # each epoch, and the end
