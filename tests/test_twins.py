"""Twins are paired by spec, never by name: `runs.find_twin` on `list_runs`-shaped rows.

Two runs are twins when their specs differ only in `residual` (zero-init aside: a plain net cannot
have it) and they used the same data (dataset, image_size, train_size, test_size), seed and budget
(steps or epochs, batch_size).
"""

from __future__ import annotations

import pytest

from resnet_explorer import ModelSpec
from resnet_explorer.models import list_variants
from resnet_explorer.runs import TWIN_CONFIG_FIELDS, are_twins, find_twin, twin_key
from resnet_explorer.training import TrainConfig

CONFIG = TrainConfig(steps=100, batch_size=64, train_size=512, test_size=128, image_size=32, seed=0)


def row(run_id: str, spec: ModelSpec, config: TrainConfig = CONFIG) -> dict:
    """A `list_runs` row: what find_twin reads (the model name is for people only)."""
    return {"id": run_id, "model": spec.name, "spec": spec.to_dict(), "config": config.to_dict()}


def twin_of(spec: ModelSpec) -> ModelSpec:
    return spec.plain() if spec.residual else spec.with_residual()


def pair(a: ModelSpec, b: ModelSpec, config_a: TrainConfig = CONFIG, config_b: TrainConfig = CONFIG) -> tuple:
    """find_twin in both directions over the two runs."""
    runs = [row("b", b, config_b), row("a", a, config_a)]
    return find_twin(runs, "a"), find_twin(runs, "b")


# --- every registered family -------------------------------------------------------------------

@pytest.mark.parametrize("name", list_variants())
def test_every_registered_variant_pairs_with_its_twin(name):
    spec = ModelSpec.from_name(name)
    twin = twin_of(spec)
    assert twin.residual != spec.residual
    assert pair(spec, twin) == ("b", "a")
    assert pair(spec, spec) == (None, None)  # the same model twice is never a twin


@pytest.mark.parametrize("residual, plain", [
    ("resnet56", "plain56"),  # CIFAR
    ("resnet20", "plain20"),
    ("preact_resnet164", "preact_plain164"),  # pre-activation bottleneck
    ("preact_resnet110_basic", "preact_plain110_basic"),
    ("resnet164_bottleneck", "plain164_bottleneck"),
    ("resnet18", "plain18"),  # ImageNet
    ("resnet50", "plain50"),
    ("cifar_resnet50", "cifar_plain50"),
    ("wide_resnet50_2", "plain_wide_resnet50_2"),  # a name swap gives "wide_plain50_2"
    ("wide_resnet101_2", "plain_wide_resnet101_2"),
    ("resnext50_32x4d", "plain_resnext50_32x4d"),  # a name swap gives the name itself
    ("resnext101_64x4d", "plain_resnext101_64x4d"),
])
def test_names_of_twins(residual, plain):
    a, b = ModelSpec.from_name(residual), ModelSpec.from_name(plain)
    assert a.residual and not b.residual
    assert pair(a, b) == ("b", "a")


@pytest.mark.parametrize("spec", [
    ModelSpec(stem="cifar", layers=(2, 3, 4)),  # composed: 2-3-4 units
    ModelSpec(stem="cifar", layers=(2, 3, 4), shortcut="B"),
    ModelSpec(stem="cifar", layers=(3, 3, 3), shortcut="C", width_multiplier=2.0),
    ModelSpec(stem="cifar", block="bottleneck", layers=(1, 2, 1), pre_activation=True, shortcut="B"),
    ModelSpec(stem="imagenet", block="bottleneck", layers=(1, 1, 1, 1), groups=4, width_per_group=16),
    ModelSpec(stem="imagenet", layers=(1, 2, 2, 1), num_classes=7, in_channels=1),
], ids=lambda s: s.label)
def test_composed_specs_pair_with_their_twins(spec):
    assert pair(spec, spec.plain()) == ("b", "a")


def test_zero_init_is_ignored():
    zero = ModelSpec.from_name("resnet56", zero_init_residual=True)
    assert pair(zero, ModelSpec.from_name("plain56")) == ("b", "a")
    assert pair(zero, ModelSpec.from_name("resnet56")) == (None, None)  # both residual


# --- what twins must share ---------------------------------------------------------------------

@pytest.mark.parametrize("other", [
    ModelSpec.from_name("plain20"),  # another depth
    ModelSpec.from_name("plain56", shortcut="B"),  # shortcut options differ (and plain nets have none to use)
    ModelSpec.from_name("plain56", width_multiplier=2.0),
    ModelSpec.from_name("plain56", num_classes=100),
    ModelSpec.from_name("preact_plain56_basic"),
    ModelSpec.from_name("plain110"),
], ids=lambda s: s.label)
def test_specs_that_differ_beyond_residual_are_not_twins(other):
    assert pair(ModelSpec.from_name("resnet56"), other) == (None, None)


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"dataset": "cifar10"}, {"image_size": 24}, {"train_size": 256}, {"test_size": 64},
    {"train_size": None}, {"steps": 200}, {"steps": None, "epochs": 1.0}, {"batch_size": 32},
    {"world_size": 2},
], ids=lambda c: ",".join(c))
def test_different_data_seed_or_budget_are_not_twins(change):
    assert pair(ModelSpec.from_name("resnet56"), ModelSpec.from_name("plain56"), CONFIG,
                CONFIG.replace(**change)) == (None, None)


@pytest.mark.parametrize("change", [
    {"device": "cuda"}, {"lr": 0.05}, {"optimizer": "adamw"}, {"probe_every": 0}, {"log_every": 5},
    {"data_root": "/elsewhere"},
], ids=lambda c: ",".join(c))
def test_settings_outside_data_seed_and_budget_do_not_matter(change):
    assert pair(ModelSpec.from_name("resnet56"), ModelSpec.from_name("plain56"), CONFIG,
                CONFIG.replace(**change)) == ("b", "a")


def test_twin_fields_are_the_data_seed_and_budget():
    assert set(TWIN_CONFIG_FIELDS) == {"dataset", "image_size", "train_size", "test_size", "seed", "steps", "epochs",
                                       "batch_size", "world_size"}
    resnet, plain = ModelSpec.from_name("resnet56"), ModelSpec.from_name("plain56")
    assert twin_key(resnet, CONFIG) == twin_key(plain, CONFIG) == (plain, tuple(
        getattr(CONFIG, f) for f in TWIN_CONFIG_FIELDS))
    assert are_twins((resnet, CONFIG), (plain, CONFIG)) and are_twins((plain, CONFIG), (resnet, CONFIG))
    assert not are_twins((resnet, CONFIG), (resnet, CONFIG))


# --- choosing among runs -----------------------------------------------------------------------

def test_the_newest_twin_wins_and_the_same_model_is_never_its_own_twin():
    resnet, plain = ModelSpec.from_name("resnet56"), ModelSpec.from_name("plain56")
    runs = [row("new-plain", plain), row("new-resnet", resnet), row("resnet", resnet), row("old-plain", plain)]
    assert find_twin(runs, "resnet") == "new-plain"  # list_runs order: newest first
    assert find_twin(runs, "old-plain") == "new-resnet"
    alone = [row("x", resnet), row("y", resnet), row("z", resnet.replace(zero_init_residual=True))]
    assert [find_twin(alone, i) for i in ("x", "y", "z")] == [None, None, None]


def test_the_twin_is_found_among_other_runs():
    runs = [row("p20", ModelSpec.from_name("plain20")), row("w", ModelSpec.from_name("wide_resnet50_2")),
            row("r56-seed1", ModelSpec.from_name("resnet56"), CONFIG.replace(seed=1)),
            row("p56", ModelSpec.from_name("plain56")), row("r56", ModelSpec.from_name("resnet56")),
            row("r20", ModelSpec.from_name("resnet20"))]
    assert find_twin(runs, "r56") == "p56" and find_twin(runs, "p56") == "r56"
    assert find_twin(runs, "r20") == "p20" and find_twin(runs, "p20") == "r20"
    assert find_twin(runs, "w") is None and find_twin(runs, "r56-seed1") is None


def test_rows_without_a_valid_spec_or_config_pair_with_nothing():
    resnet, plain = ModelSpec.from_name("resnet56"), ModelSpec.from_name("plain56")
    damaged = [
        {"id": "old", "model": "plain56"},  # no spec or config: a name alone proves nothing
        {"id": "no-config", "model": "plain56", "spec": plain.to_dict(), "config": None},
        {"id": "bad-spec", "model": "plain56", "spec": {"layers": "x"}, "config": CONFIG.to_dict()},
        {"id": "bad-config", "model": "plain56", "spec": plain.to_dict(), "config": {"steps": None}},
    ]
    runs = [*damaged, row("r", resnet)]
    assert find_twin(runs, "r") is None
    assert all(find_twin(runs, r["id"]) is None for r in damaged)
    assert find_twin([*damaged, row("r", resnet), row("p", plain)], "r") == "p"
    assert find_twin(runs, "missing") is None and find_twin([], "r") is None
