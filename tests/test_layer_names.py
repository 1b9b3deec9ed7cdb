"""ResNet module names: the unit and stage a name belongs to (depth order: tests/test_plots_training.py)."""

import pytest

from resnet_explorer.models import ModelSpec, build_model
from resnet_explorer.models.layer_names import HEAD_MODULES, depth_key, stage_of, unit_of


@pytest.mark.parametrize("name, unit, stage", [
    ("layer3.2.conv1", "layer3.2", "layer3"),
    ("layer2.13", "layer2.13", "layer2"),
    ("layer1.0.downsample.1", "layer1.0", "layer1"),
    ("layer4", None, "layer4"),
    ("conv1", None, None),
    ("bn1", None, None),
    ("fc", None, None),
    ("layers.0.conv1", None, None),  # not a stage: "layer" then digits only
    ("layer10.3", "layer10.3", "layer10"),
])
def test_unit_and_stage_of_a_name(name, unit, stage):
    assert unit_of(name) == unit and stage_of(name) == stage


def test_a_real_models_names_sort_input_to_output():
    model = build_model(ModelSpec.from_name("resnet20"))
    names = [name for name, _ in model.named_modules() if name]
    ordered = sorted(names, key=depth_key)
    stages = [stage_of(n) for n in ordered if stage_of(n)]
    assert stages == sorted(stages)  # layer1 ... then layer2 ... then layer3
    head = [n for n in ordered if n.split(".")[0] in HEAD_MODULES]
    assert ordered[-len(head):] == head and ordered[-1] == "fc"
    assert ordered[0] == "conv1"
