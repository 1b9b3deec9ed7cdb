import pytest

from resnet_explorer import ModelSpec, list_variants
from resnet_explorer.models import nearest_legal_depths


@pytest.mark.parametrize("name", list_variants())
def test_registered_names_round_trip(name):
    spec = ModelSpec.from_name(name)
    assert spec.name == name
    assert ModelSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    "name, stem, block, layers, preact, residual, shortcut",
    [
        ("resnet18", "imagenet", "basic", (2, 2, 2, 2), False, True, "B"),
        ("resnet50", "imagenet", "bottleneck", (3, 4, 6, 3), False, True, "B"),
        ("plain34", "imagenet", "basic", (3, 4, 6, 3), False, False, "B"),
        ("resnet56", "cifar", "basic", (9, 9, 9), False, True, "A"),
        ("plain20", "cifar", "basic", (3, 3, 3), False, False, "A"),
        ("resnet1202", "cifar", "basic", (200, 200, 200), False, True, "A"),
        ("cifar_resnet50", "cifar", "basic", (8, 8, 8), False, True, "A"),
        ("preact_resnet164", "cifar", "bottleneck", (18, 18, 18), True, True, "B"),
        ("preact_resnet1001", "cifar", "bottleneck", (111, 111, 111), True, True, "B"),
        ("preact_resnet110_basic", "cifar", "basic", (18, 18, 18), True, True, "A"),
        ("resnet164_bottleneck", "cifar", "bottleneck", (18, 18, 18), False, True, "B"),
        ("resnet74", "cifar", "basic", (12, 12, 12), False, True, "A"),
    ],
)
def test_name_parsing(name, stem, block, layers, preact, residual, shortcut):
    spec = ModelSpec.from_name(name)
    assert (spec.stem, spec.block, spec.layers, spec.pre_activation, spec.residual, spec.shortcut) == (
        stem, block, layers, preact, residual, shortcut)
    assert spec.name == name


def test_depth_counts_weighted_layers():
    assert ModelSpec.from_name("resnet56").depth == 56
    assert ModelSpec.from_name("resnet50").depth == 50
    assert ModelSpec.from_name("preact_resnet1001").depth == 1001


def test_wide_and_grouped_names():
    wide = ModelSpec.from_name("wide_resnet50_2")
    assert (wide.groups, wide.width_per_group) == (1, 128)
    rx = ModelSpec.from_name("resnext50_32x4d")
    assert (rx.groups, rx.width_per_group) == (32, 4)
    assert rx.plain().name == "plain_resnext50_32x4d"
    assert ModelSpec.from_name("plain_resnext50_32x4d") == rx.plain()


def test_plain_twin():
    spec = ModelSpec.from_name("resnet56", zero_init_residual=True)
    twin = spec.plain()
    assert twin.name == "plain56" and not twin.residual and not twin.zero_init_residual
    assert twin.layers == spec.layers and twin.with_residual().name == "resnet56"


@pytest.mark.parametrize(
    "name, fragments",
    [
        ("resnet21", ["6n+2", "20 and 26", "ImageNet depths"]),
        ("preact_resnet100", ["9n+2", "92 and 101", "_basic"]),
        ("plain57", ["6n+2", "56 and 62"]),
        ("resnet2", ["6n+2", "8"]),
        ("resnet164_bottleneck_x", ["unknown model name"]),
        ("vgg16", ["unknown model name"]),
    ],
)
def test_bad_names_state_the_rule(name, fragments):
    with pytest.raises(ValueError) as err:
        ModelSpec.from_name(name)
    for f in fragments:
        assert f in str(err.value)
    assert "\n" not in str(err.value)


def test_nearest_legal_depths():
    assert nearest_legal_depths(21, "basic") == (20, 26)
    assert nearest_legal_depths(100, "bottleneck") == (92, 101)
    assert nearest_legal_depths(56, "basic") == (62,)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": -3}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"width_multiplier": 0}, "width_multiplier"),
        ({"width_multiplier": -1.0}, "width_multiplier"),
        ({"width_multiplier": 0.01}, "from 0.125 to 16"),
        ({"width_multiplier": 1e6}, "from 0.125 to 16"),
        ({"num_classes": 10**12}, "from 1 to 100,000"),
        ({"layers": (10**9, 1, 1)}, "ceiling of 10,000"),
        ({"layers": tuple(range(1, 10**5))}, "got 99,999"),
        ({"layers": (3, 3)}, "3 unit counts"),
        ({"layers": (3, 0, 3)}, "at least one block"),
        ({"stem": "vgg"}, "stem"),
        ({"shortcut": "D"}, "shortcut"),
        ({"groups": 2}, "basic blocks"),
        ({"block": "bottleneck", "width_per_group": 1, "groups": 1}, "no channels"),
        ({"residual": False, "zero_init_residual": True}, "needs shortcuts"),
    ],
)
def test_invalid_specs_raise_value_error(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ModelSpec(**kwargs)


def test_label_names_non_default_options():
    spec = ModelSpec.from_name("resnet56", shortcut="B", width_multiplier=2, num_classes=100)
    assert spec.label == "resnet56 (shortcut B, width x2, 100 classes)"
    assert ModelSpec.from_name("resnet56").label == "resnet56"
