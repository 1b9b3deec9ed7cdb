"""Verdicts counted over seeds, and captions worded from the data they describe."""

import math

import pandas as pd
import pytest

from resnet_explorer.findings import (
    Check,
    compare_losses,
    degradation_checks,
    gradient_finding,
    mean_sd,
    ratio_finding,
    responses_finding,
    tail_mean,
)


def test_tail_mean_is_the_last_fifth():
    df = pd.DataFrame({"loss": [9.0] * 8 + [1.0, 3.0]})
    assert tail_mean(df, "loss") == 2.0
    assert tail_mean(pd.DataFrame({"loss": [float("nan")]}), "loss") is None
    assert tail_mean(None, "loss") is None


def test_checks_count_seeds_and_measure_the_margin():
    losses = {"plain20": {0: 0.3, 1: 0.5, 2: 0.4}, "plain56": {0: 2.3, 1: 2.25, 2: 0.35},
              "resnet56": {0: 0.2, 1: 0.3}}
    deeper, residual = degradation_checks(losses, 20, 56)
    assert (deeper.held, deeper.of) == (2, 3)  # seed 2: plain56 below plain20
    assert not deeper.robust
    assert deeper.text().startswith("plain56 trains worse than plain20 in 2 of 3 seeds (final train loss 1.633 ± ")
    assert (residual.held, residual.of, residual.seeds) == (2, 2, (0, 1))  # only the seeds both have
    assert residual.text().startswith("resnet56 trains better than plain56 in 2 of 2 seeds")


def test_a_robust_check_needs_every_seed_and_three_spreads():
    wide = Check("a", "b", (0, 1, 2), (2.0, 2.6, 1.4), (0.3, 0.4, 0.5))  # holds on each seed, gap 1.6, sd 0.6
    assert wide.held == 3 and wide.margin == pytest.approx(1.6 / 0.6) and not wide.robust
    tight = Check("a", "b", (0, 1, 2), (2.3, 2.29, 2.31), (0.3, 0.4, 0.5))
    assert tight.robust and tight.margin == pytest.approx(1.9 / 0.1)
    one = compare_losses("a", "b", {"a": {0: 2.0}, "b": {0: 1.0}})
    assert one.robust and math.isinf(one.margin) and "1 of 1 seed (" in one.text() and "spread" not in one.text()


def test_mean_sd_text():
    assert mean_sd([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"
    assert mean_sd([0.5]) == "0.500" and mean_sd([]) == "n/a"


def _norms(ratios):
    return pd.DataFrame({"step": 100, "unit": [f"layer1.{i}" for i in range(len(ratios))], "stage": 1,
                         "residual_norm": ratios, "shortcut_norm": 1.0, "ratio": ratios})


def test_ratio_caption_follows_the_data():
    agrees = ratio_finding("resnet56", _norms([0.2, 0.4, 0.6, 1.5]))
    assert "3 of 4 units" in agrees and "refine" in agrees
    contradicts = ratio_finding("resnet56", _norms([1.2, 1.4, 1.6, 0.5]))
    assert "1 of 4 units" in contradicts and "does not show" in contradicts and "Most units refine" not in contradicts
    assert ratio_finding("x", None) is None


def _grads(first, last):
    layers = ["conv1", "layer1.0.conv1", "layer3.8.conv2", "fc"]
    return pd.DataFrame({"step": 50, "layer": layers, "grad_norm": [first, 1.0, last, 2.0]})


def test_gradient_caption_follows_the_data():
    residual = {"resnet56": True, "plain56": False}
    agrees = gradient_finding({"resnet56": _grads(0.8, 1.0), "plain56": _grads(0.01, 1.0)}, residual)
    assert "resnet56's first conv gets a gradient 0.8x" in agrees and "reach the early layers" in agrees
    contradicts = gradient_finding({"resnet56": _grads(0.01, 1.0), "plain56": _grads(0.8, 1.0)}, residual)
    assert "do not get relatively larger gradients" in contradicts and "reach the early layers of" not in contradicts


def _responses(std):
    return pd.DataFrame({"step": 10, "layer": ["conv1", "layer1.0.conv1"], "std": std})


@pytest.mark.parametrize("res, plain, word", [
    (0.5, 1.0, "smaller, as He et al. 2015 report"),
    (1.0, 1.01, "about the same"),  # training-mode BN: both read ~1.0
    (1.3, 1.0, "larger, unlike"),
])
def test_responses_caption_claims_smaller_only_when_the_data_show_it(res, plain, word):
    text = responses_finding({"resnet20": _responses([res, res]), "plain20": _responses([plain, plain])},
                             {"resnet20": True, "plain20": False}, {"resnet20": 20, "plain20": 20})
    assert word in text
    if "smaller" not in word:
        assert "smaller, as" not in text


def test_responses_caption_needs_twins_of_the_same_depth():
    text = responses_finding({"resnet20": _responses([0.5, 0.5]), "plain56": _responses([1.0, 1.0])},
                             {"resnet20": True, "plain56": False}, {"resnet20": 20, "plain56": 56})
    assert text is None
