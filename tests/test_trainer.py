import math
import threading

import pytest
import torch

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.data import load_data
from resnet_explorer.training import TrainConfig, train
from resnet_explorer.training.trainer import (
    EVAL_SHARE,
    EVAL_SUBSET,
    FORWARD_COST,
    MAX_EVALS,
    eval_schedule,
)

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
    assert kinds.count("step") == 4 and kinds.count("probe") == 3
    assert [m["step"] for m in result.metrics] == [1, 2, 4, 6]  # step 1 is logged, so a live chart starts at once
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
    assert result.metrics[-1]["step"] == 2
    assert not result.evals  # not evaluated on the way out: stop ends the run within the step


def test_stop_mid_evaluation_ends_within_one_batch():
    data = load_data("shapes", seed=0, train_size=64, test_size=160)
    stop = threading.Event()
    phases, after_stop = [], []

    def listener(event):
        if event.kind == "phase" and event.data.phase == "evaluating":
            (after_stop if stop.is_set() else phases).append(event.data.batch)
            if event.data.batch == 2:
                stop.set()

    # eval_every=2: the first evaluation (3 batches of 4 x 16) starts after step 2
    result = train(TINY, config(steps=50, eval_every=2), data=data, listeners=[listener], stop=stop)
    assert result.status == "stopped" and result.steps == 2, result.message
    assert phases == [1, 2] and after_stop == []  # batch 2 finished, no batch 3 was started
    assert result.evals == []  # a half-done evaluation records nothing


def test_huge_learning_rate_diverges_naming_the_step(data):
    result = train(TINY, config(steps=40, lr=10.0, schedule="constant", log_every=1, probe_every=0), data=data)
    assert result.status == "diverged", (result.status, [m["loss"] for m in result.metrics])
    assert "step" in result.message and "lower learning rate" in result.message


def test_finite_blow_up_diverges_after_patience(data):
    def blow_up(event):  # logits x1e4 after step 3: the loss stays finite but enormous
        if event.kind == "step" and event.step == 3:
            with torch.no_grad():
                model.fc.weight.mul_(1e4)

    model = build_model(TINY, device="cpu")
    result = train(model, config(steps=20, lr=1e-6, log_every=1, probe_every=0, schedule="constant"), data=data,
                   listeners=[blow_up])
    assert result.status == "diverged"
    assert "from step 4 to step 6" in result.message, result.message
    assert result.steps == 6 and [m["step"] for m in result.metrics] == [1, 2, 3, 4, 5]  # the last row is not logged


def test_a_run_that_trains_is_not_called_diverged(data):
    result = train(TINY, config(steps=30, log_every=1, probe_every=0), data=data)
    assert result.status == "done"


@pytest.mark.parametrize("total, batch, n_test", [(250, 64, 1000), (250, 64, 2000), (1000, 128, 10_000), (6, 16, 32),
                                                  (5000, 64, 2000)])
def test_automatic_evaluation_stays_within_its_share(total, batch, n_test):
    steps, subset = eval_schedule(total, batch, n_test)
    assert steps == sorted(set(steps)) and all(0 < s < total for s in steps)
    assert subset <= min(n_test, EVAL_SUBSET) and len(steps) <= MAX_EVALS
    evaluated = len(steps) * subset + n_test  # the last evaluation uses the whole split
    trained = total * batch
    # forward-only images cost FORWARD_COST of a trained one
    assert len(steps) == 0 or evaluated * FORWARD_COST <= EVAL_SHARE * trained


def test_preset_sized_run_evaluates_on_a_subset_then_the_whole_split():
    steps, subset = eval_schedule(250, 64, 1000)
    assert 3 <= len(steps) <= 10 and subset == 512
    assert eval_schedule(100, 16, 64, eval_every=30) == ([30, 60, 90], 64)
    assert eval_schedule(100, 16, 64, eval_every=30, eval_size=20) == ([30, 60, 90], 20)


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
        ({"weight_decay": float("nan")}, "weight_decay"),
        ({"weight_decay": float("inf")}, "weight_decay"),
        ({"warmup": 1.0}, "warmup"),
        ({"image_size": 0}, "image_size"),
        ({"eval_size": 0}, "eval_size"),
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
    result = train(TINY, TrainConfig(epochs=1.5, batch_size=16, probe_every=0, device="cpu", eval_every=4), data=data)
    assert result.steps == 6  # 64 images / 16 = 4 steps per epoch
    assert [e["step"] for e in result.evals] == [4, 6]  # as asked, and the end on the whole split
    assert [e["images"] for e in result.evals] == [32, 32]
