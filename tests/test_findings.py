"""Every finding sentence, table-driven: data on each side of each threshold, runs at chance, and the
arguments in either order. A sentence's words must change with its data, never only its numbers."""

import math

import pandas as pd
import pytest

from resnet_explorer.reports.findings import (
    GRADIENT_FACTOR,
    LOSS_FLOOR,
    REFINE_FACTOR,
    RESPONSE_THRESHOLD,
    Check,
    Difference,
    Progress,
    at_chance_note,
    compare_losses,
    degradation_checks,
    gradient_finding,
    mean_sd,
    progress_of,
    ratio_finding,
    responses_finding,
    tail_mean,
)

LN10 = math.log(10)


def test_tail_mean_is_the_last_fifth():
    df = pd.DataFrame({"loss": [9.0] * 8 + [1.0, 3.0]})
    assert tail_mean(df, "loss") == 2.0
    assert tail_mean(pd.DataFrame({"loss": [float("nan")]}), "loss") is None
    assert tail_mean(None, "loss") is None


def test_mean_sd_text():
    assert mean_sd([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"
    assert mean_sd([0.5]) == "0.500" and mean_sd([]) == "n/a"


# --- a run at chance -----------------------------------------------------------------------------

@pytest.mark.parametrize("loss, accuracy, kind, at_chance", [
    (2.26, 0.14, "held-out", True),  # issue 18's plain20 at the old defaults: loss and error at chance
    (0.90 * LN10 + 0.001, 0.9, "held-out", True),  # loss just inside the margin of ln 10
    (0.90 * LN10 - 0.001, 0.9, "held-out", False),  # just outside it
    (0.5, 0.10 + 0.09 - 0.001, "held-out", True),  # a low training loss but held-out accuracy at chance
    (0.5, 0.10 + 0.09 + 0.001, "held-out", False),
    (0.45, 0.80, "held-out", False),
    (None, 0.15, "training", True),
    (None, None, "held-out", False),  # nothing measured: unknown, not "at chance"
])
def test_progress_names_a_run_at_chance(loss, accuracy, kind, at_chance):
    p = Progress("plain20", 10, loss=loss, accuracy=accuracy, accuracy_kind=kind)
    assert p.at_chance is at_chance
    text = p.text()
    if at_chance:
        assert text.startswith("plain20 has not left chance") and "ln 10 = 2.30" in text or "chance 10%" in text
        assert "say nothing" in text
    elif p.known:
        assert text.startswith("plain20 has left chance")
    else:
        assert "no final loss" in text


def test_progress_of_reads_the_last_evaluation_and_falls_back_to_training_accuracy():
    metrics = pd.DataFrame({"step": range(1, 11), "loss": [2.3] * 8 + [0.4, 0.6], "accuracy": [0.1] * 8 + [0.9, 0.9]})
    evals = pd.DataFrame({"step": [5, 10], "accuracy": [0.1, 0.85]})
    p = progress_of("r", 10, metrics, evals)
    assert (p.loss, p.accuracy, p.accuracy_kind, p.at_chance) == (pytest.approx(0.5), 0.85, "held-out", False)
    q = progress_of("r", 10, metrics, None)
    assert q.accuracy_kind == "training" and q.accuracy == pytest.approx(0.9)
    assert at_chance_note([p, q]) is None
    stuck = Progress("plain56", 10, loss=2.3)
    assert at_chance_note([p, stuck]) == stuck.text()


# --- a difference under its threshold or the seed spread is "about the same" ---------------------

@pytest.mark.parametrize("values, kwargs, direction", [
    ((0.97, 1.0), dict(threshold=0.05), 0),
    ((0.94, 1.0), dict(threshold=0.05), -1),
    ((1.0, 0.94), dict(threshold=0.05), 1),  # the same pair reversed: the opposite word
    ((0.06, 0.0), dict(threshold=0.05, scale="absolute"), 1),
    ((0.04, 0.0), dict(threshold=0.05, scale="absolute"), 0),
    ((1.4, 1.4), dict(threshold=1.5, scale="ratio"), 0),  # issue 18's "1.4x and 1.4x"
    ((2.2, 1.4), dict(threshold=1.5, scale="ratio"), 1),
    ((1.4, 2.2), dict(threshold=1.5, scale="ratio"), -1),
    ((0.039, 0.033), dict(threshold=0.10, floor=0.05), 0),  # 15% apart but 0.006 nats: under the floor
    ((0.9, 1.0), dict(threshold=0.05, spreads=(0.05, 0.01), seeds=3), 0),  # gap 0.1 < 3 spreads of 0.05
    ((0.8, 1.0), dict(threshold=0.05, spreads=(0.05, 0.01), seeds=3), -1),
    ((0.9, 1.0), dict(threshold=0.05, spreads=(0.05, 0.01), seeds=1), -1),  # one seed: no spread test
    ((float("nan"), 1.0), dict(threshold=0.05), 0),
    ((-1.0, 1.0), dict(threshold=1.5, scale="ratio"), 0),  # a ratio needs two positive values
])
def test_difference_has_a_direction_only_past_its_threshold(values, kwargs, direction):
    d = Difference("x", ("a", "b"), values, **kwargs)
    assert d.direction == direction
    assert d.word() == {1: "larger", -1: "smaller", 0: "about the same"}[direction]
    assert (d.why_same() == "") is (direction != 0)


# --- degradation verdicts over seeds -------------------------------------------------------------

@pytest.mark.parametrize("worse, better, verdict", [
    ((2.3,), (0.3,), "holds"),
    ((2.3, 2.25, 2.31), (0.3, 0.4, 0.5), "holds"),
    ((2.0, 2.6, 1.4), (0.3, 0.4, 0.5), "mixed"),  # every seed, but the gap is under 3 spreads
    ((2.3, 2.25, 0.35), (0.3, 0.5, 0.4), "mixed"),  # seed 2 goes the other way
    ((0.039,), (0.033,), "about the same"),
    ((0.30, 0.32), (0.31, 0.30), "about the same"),
    ((0.3,), (2.3,), "reversed"),
    ((2.30,), (2.26,), "at chance"),  # issue 18: plain56 2.30 vs plain20 2.26 at the old defaults
    ((), (), "no seeds"),
])
def test_check_verdicts(worse, better, verdict):
    seeds = tuple(range(len(worse)))
    check = Check("plain56", "plain20", seeds, worse, better)
    assert check.verdict == verdict
    assert check.robust is (verdict == "holds")
    text = check.text()
    if verdict == "holds":
        assert text.startswith(f"plain56 trains worse than plain20 in {len(seeds)} of {len(seeds)} seed")
    else:
        assert "plain56 trains worse than plain20 in" not in text
    if verdict == "at chance":
        assert "No verdict" in text and "left chance" in text
    if verdict == "about the same":
        assert "about the same" in text and f"{LOSS_FLOOR:g}" in text


def test_numbers_follow_the_order_of_the_nets_named():
    # issue 18: "resnet56 trains better than plain56 (final train loss 2.299 vs 0.122)" had them reversed
    _, residual = degradation_checks({"plain20": {0: 0.3}, "plain56": {0: 2.299}, "resnet56": {0: 0.122}}, 20, 56)
    assert residual.text() == "resnet56 trains better than plain56 in 1 of 1 seed (final train loss 0.122 vs 2.299)"
    deeper = compare_losses("plain56", "plain20", {"plain56": {0: 2.299}, "plain20": {0: 0.3}})
    assert "(final train loss 2.299 vs 0.300)" in deeper.text()


def test_checks_count_only_the_seeds_both_have():
    losses = {"plain20": {0: 0.3, 1: 0.5, 2: 0.4}, "plain56": {0: 2.3, 1: 2.25, 2: 0.35},
              "resnet56": {0: 0.2, 1: 0.3}}
    deeper, residual = degradation_checks(losses, 20, 56)
    assert (deeper.held, deeper.reversed_, deeper.of) == (2, 1, 3)  # seed 2: 0.35 vs 0.4, the other way
    assert deeper.verdict == "mixed" and "only in 2 of 3 seeds" in deeper.text()
    assert (residual.held, residual.of, residual.seeds) == (2, 2, (0, 1))
    assert residual.verdict == "holds" and residual.margin > 3


def test_chance_depends_on_the_number_of_classes():
    # 100 classes: ln 100 = 4.6, so a loss of 2.3 has left chance
    check = Check("plain56", "plain20", (0,), (4.5,), (2.3,), classes=100)
    assert check.verdict == "holds"
    assert Check("plain56", "plain20", (0,), (4.6,), (4.5,), classes=100).verdict == "at chance"


# --- probe captions ------------------------------------------------------------------------------

def _norms(ratios):
    return pd.DataFrame({"step": 100, "unit": [f"layer1.{i}" for i in range(len(ratios))], "stage": 1,
                         "residual_norm": ratios, "shortcut_norm": 1.0, "ratio": ratios})


LOW, HIGH = 1 / REFINE_FACTOR, REFINE_FACTOR


@pytest.mark.parametrize("ratios, verdict", [
    ([0.2, 0.4, 0.6, 1.5], "Most units refine"),
    ([LOW - 0.01] * 3 + [1.0] * 2, "Most units refine"),  # 3 of 5 just under the threshold
    ([LOW + 0.01] * 3 + [1.0] * 2, "do not add a clearly smaller change"),  # just over it
    # issue 18: 7 of 9 units below 1 with a median of 0.89 is not "most units refine"
    ([0.85, 0.86, 0.88, 0.89, 0.89, 0.9, 0.95, 1.1, 1.2], "do not add a clearly smaller change"),
    ([1.3, 1.4, 1.6, 0.5], "by more than its own size"),
])
def test_ratio_caption_follows_the_data(ratios, verdict):
    text = ratio_finding("resnet56", _norms(ratios))
    assert verdict in text
    if verdict != "Most units refine":
        assert "Most units refine" not in text and "does not show" in text
    assert f"the median ||F(x)|| / ||x|| is {pd.Series(ratios).median():.2f}" in text


def test_ratio_caption_of_a_run_at_chance_makes_no_claim():
    stuck = Progress("resnet56", 10, loss=2.3)
    text = ratio_finding("resnet56", _norms([0.2, 0.3, 0.4]), stuck)
    assert text == stuck.text() and "refine" not in text
    assert ratio_finding("x", None) is None


def _grads(first, last):
    layers = ["conv1", "layer1.0.conv1", "layer3.8.conv2", "fc"]
    return pd.DataFrame({"step": 50, "layer": layers, "grad_norm": [first, 1.0, last, 2.0]})


@pytest.mark.parametrize("res, plain, verdict", [
    (1.4, 1.4, "about the same"),  # issue 18: "1.4x its last; 1.4x" was captioned as shortcuts helping
    (1.4 * GRADIENT_FACTOR * 0.99, 1.4, "about the same"),
    (1.4 * GRADIENT_FACTOR * 1.01, 1.4, "relatively larger gradients than those of plain56"),
    (0.01, 0.8, "get relatively larger gradients than those of resnet56"),
])
@pytest.mark.parametrize("order", ["residual first", "plain first"])
def test_gradient_caption_follows_the_data(res, plain, verdict, order):
    grads = {"resnet56": _grads(res, 1.0), "plain56": _grads(plain, 1.0)}
    if order == "plain first":
        grads = dict(reversed(grads.items()))
    text = gradient_finding(grads, {"resnet56": True, "plain56": False})
    assert verdict in text
    if verdict != "relatively larger gradients than those of plain56":
        assert "shortcuts carry the gradient back" not in text


def test_gradient_caption_names_a_run_at_chance_and_compares_nothing():
    stuck = Progress("plain56", 10, loss=2.29)
    text = gradient_finding({"resnet56": _grads(3.0, 1.0), "plain56": _grads(0.01, 1.0)},
                            {"resnet56": True, "plain56": False}, {"plain56": stuck})
    assert stuck.text() in text
    assert "relatively larger" not in text and "about the same" not in text


def _responses(std):
    return pd.DataFrame({"step": 10, "layer": ["conv1", "layer1.0.conv1"], "std": std})


@pytest.mark.parametrize("res, plain, word", [
    (0.5, 1.0, "smaller, as He et al. 2015 report"),
    (1.0 * (1 - RESPONSE_THRESHOLD) - 0.001, 1.0, "smaller, as He et al. 2015 report"),
    (1.0 * (1 - RESPONSE_THRESHOLD) + 0.001, 1.0, "about the same"),
    (1.0, 1.01, "about the same"),  # training-mode BN: both read ~1.0
    (1.3, 1.0, "larger, unlike"),
])
@pytest.mark.parametrize("order", ["residual first", "plain first"])
def test_responses_caption_claims_smaller_only_when_the_data_show_it(res, plain, word, order):
    data = {"resnet20": _responses([res, res]), "plain20": _responses([plain, plain])}
    if order == "plain first":
        data = dict(reversed(data.items()))
    text = responses_finding(data, {"resnet20": True, "plain20": False}, {"resnet20": 20, "plain20": 20},
                             measured="in eval mode on held-out images")
    assert word in text and "in eval mode on held-out images" in text
    if "smaller" not in word:
        assert "smaller, as" not in text


def test_responses_caption_of_a_net_at_chance_gives_no_verdict():
    stuck = Progress("plain20", 10, loss=2.25, accuracy=0.14)
    text = responses_finding({"resnet20": _responses([0.5, 0.5]), "plain20": _responses([1.0, 1.0])},
                             {"resnet20": True, "plain20": False}, {"resnet20": 20, "plain20": 20},
                             progress={"plain20": stuck, "resnet20": Progress("resnet20", 10, loss=0.4)})
    assert "no verdict" in text and "plain20 has not left chance" in text
    assert "smaller" not in text


def test_responses_caption_needs_twins_of_the_same_depth():
    text = responses_finding({"resnet20": _responses([0.5, 0.5]), "plain56": _responses([1.0, 1.0])},
                             {"resnet20": True, "plain56": False}, {"resnet20": 20, "plain56": 56})
    assert text is None
