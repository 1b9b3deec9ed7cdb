"""`compare.comparison_findings`: what the Compare page, the CLI's `degradation` and the report say about
a set of runs, from runs built in memory with known final losses."""

from pathlib import Path

import pandas as pd
import pytest

from resnet_explorer.models import ModelSpec
from resnet_explorer.reports.compare import comparison_findings, twin_checks
from resnet_explorer.runs import Run
from resnet_explorer.training.presets import quick_config


def run(name: str, loss: float, seed: int = 0, accuracy: float | None = None) -> Run:
    """A finished run of `name` whose logged training loss ends at `loss` (held-out accuracy to match)."""
    spec = ModelSpec.from_name(name)
    steps = list(range(10, 260, 10))
    metrics = pd.DataFrame({"step": steps, "loss": [2.3] * 20 + [loss] * 5,
                            "accuracy": [0.1] * 20 + [max(0.1, 1 - loss / 2.4)] * 5})
    held = accuracy if accuracy is not None else max(0.1, 1 - loss / 2.4)
    evals = pd.DataFrame({"step": [250], "loss": [loss], "accuracy": [held]})
    rid = f"{name}-{seed}"
    return Run(Path("/nonexistent") / rid, {"id": rid, "status": "done", "steps": 250}, spec,
               quick_config(seed=seed), {"metrics": metrics, "eval": evals})


def texts(runs):
    return [(f.text, f.holds) for f in comparison_findings(runs)]


def test_same_depth_twins_that_both_trained_are_not_the_degradation_problem():
    said = texts([run("resnet20", 0.04), run("plain20", 0.30)])
    assert len(said) == 1
    text, holds = said[0]
    assert holds and text.startswith("resnet20 trains better than plain20 in 1 of 1 seed (final train loss 0.040 vs "
                                     "0.300)")
    assert "not the degradation problem" in text and "has not left chance" not in text


@pytest.mark.parametrize("order", [("resnet20", "plain20"), ("plain20", "resnet20")])
def test_twins_about_the_same_say_so_whatever_the_order(order):
    losses = {"resnet20": 0.30, "plain20": 0.31}
    (text, holds), = texts([run(name, losses[name]) for name in order])
    assert not holds and "end about the same" in text and "trains better" not in text.split('"')[0]


def test_a_plain_twin_at_chance_is_named_and_the_loss_gap_is_still_counted():
    # issue 18's old defaults: plain20 at chance, resnet20 trained
    said = texts([run("resnet20", 0.45), run("plain20", 2.25, accuracy=0.14)])
    assert said[0][0].startswith("plain20") and " has not left chance" in said[0][0] and not said[0][1]
    assert said[1][0].startswith("resnet20 trains better than plain20") and "not the degradation problem" in said[1][0]


def test_twins_both_at_chance_give_no_verdict():
    said = texts([run("resnet20", 2.28), run("plain20", 2.29)])
    assert "have not left chance" in said[0][0]
    assert said[1][0].startswith('No verdict on "resnet20 trains better than plain20"') and not said[1][1]


def test_the_degradation_preset_gives_both_claims_and_the_shallow_twins_once():
    runs = [run(n, loss, seed) for seed, scale in ((0, 1.0), (1, 1.1), (2, 0.95))
            for n, loss in (("plain20", 0.3 * scale), ("plain56", 2.2 + 0.02 * scale), ("resnet20", 0.04 * scale),
                            ("resnet56", 0.1 * scale))]
    said = texts(runs)
    heads = [t.split(" in ")[0] for t, _ in said]
    # plain56 sits at chance: named; then Fig. 6's two claims; then the depth-20 twins (the depth-56 pair is
    # the second claim already)
    assert "have not left chance" in said[0][0] and "plain56" in said[0][0]
    assert heads[1:] == ["plain56 trains worse than plain20", "resnet56 trains better than plain56",
                         "resnet20 trains better than plain20"]
    assert all(holds for _, holds in said[1:])
    assert "3 of 3 seeds" in said[1][0]
    assert len(twin_checks(runs)) == 2
