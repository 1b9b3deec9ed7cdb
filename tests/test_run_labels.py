"""One label rule for runs (`runs.run_label`): model, data and id, for trained, imported and damaged runs."""

import json

import pytest

from resnet_explorer.runs import data_label, list_runs, run_label, unique_labels
from resnet_explorer.ui.run_picker import describe, mixed_data, row_labels, shown_names

TRAINED = {"spec_name": "resnet20", "kind": "trained",
           "config": {"dataset": "shapes-easy", "image_size": 16},
           "data": {"name": "shapes-easy", "image_size": 16}}


def test_a_label_names_the_model_the_data_and_the_id():
    assert run_label(TRAINED, "20261127-131739-resnet20-c7c0") == "resnet20 · shapes-easy 16px · c7c0"
    assert run_label(TRAINED, "20261127-131739-resnet20-c7c0", full_id=True) == \
        "resnet20 · shapes-easy 16px · 20261127-131739-resnet20-c7c0"
    assert run_label(TRAINED, "ab", "plain20") == "plain20 · shapes-easy 16px · ab"
    # before training starts there is no data section: the config says what it will be
    assert data_label({"config": {"dataset": "cifar10", "image_size": 32}}) == "cifar10 32px"
    # the data section wins: it is what was loaded
    assert data_label({"config": {"dataset": "cifar10", "image_size": 32},
                       "data": {"name": "cifar10", "image_size": 24}}) == "cifar10 24px"
    assert data_label({"data": {"name": "folder:/home/me/pictures/pets/", "image_size": 64}}) == "folder:pets 64px"


def test_imported_runs_name_their_data_or_say_imported():
    imported = {"kind": "imported", "spec_name": "resnet18", "data": {"name": "imagenet", "image_size": 224}}
    assert run_label(imported, "x-1234") == "resnet18 · imagenet 224px · 1234"
    assert data_label({"kind": "imported"}) == "imported"
    assert data_label({}) == "unknown data"


@pytest.mark.parametrize("info", [
    {"data": "shapes", "config": None},
    {"data": {"name": 7, "image_size": "16"}, "config": {"dataset": ["x"], "image_size": True}},
    {"data": {"name": "", "image_size": -3}},
    {"data": None, "config": 3, "spec_name": 5},
])
def test_a_damaged_run_json_never_breaks_its_label(info):
    label = run_label(info, "run-abcd")
    assert label.endswith(" · abcd") and "unknown data" in label


def test_list_runs_rows_carry_the_label_and_image_size(tmp_path):
    for name, info in {"good-c7c0": {**TRAINED, "id": "good-c7c0"},
                       "bad-0001": {"id": "bad-0001", "spec_name": "plain8", "data": [1], "config": "?"}}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(info))
    rows = {r["id"]: r for r in list_runs(tmp_path)}
    assert rows["good-c7c0"]["label"] == "resnet20 · shapes-easy 16px · c7c0"
    assert rows["good-c7c0"]["image_size"] == 16 and rows["good-c7c0"]["dataset"] == "shapes-easy"
    assert rows["good-c7c0"]["data_label"] == "shapes-easy 16px"
    assert rows["bad-0001"]["label"] == "plain8 · unknown data · 0001" and rows["bad-0001"]["image_size"] is None


def test_colliding_labels_get_the_whole_id_then_a_number():
    pairs = [("a · d · 1234", "a · d · x-1234"), ("a · d · 1234", "a · d · y-1234"), ("b · d · 9", "b · d · z-9"),
             ("b · d · 9", "b · d · z-9")]
    assert unique_labels(pairs) == ["a · d · x-1234", "a · d · y-1234", "b · d · z-9 [1]", "b · d · z-9 [2]"]


def test_pickers_show_the_label_then_the_state():
    row = {"id": "r-c7c0", "model": "resnet20", "status": "done", "steps": 250, "total_steps": 250,
           "label": "resnet20 · shapes-easy 16px · c7c0", "full_label": "resnet20 · shapes-easy 16px · r-c7c0"}
    assert describe(row) == "resnet20 · shapes-easy 16px · c7c0 (done, 250/250 steps)"
    assert describe({"id": "i-1234", "model": "resnet18", "kind": "imported", "label": "resnet18 · imagenet 224px · 1234"}) \
        == "resnet18 · imagenet 224px · 1234 (imported)"
    # a hand-made row without a label still gets one, from its config
    assert describe({"id": "q-0000", "model": "plain8", "status": "running", "steps": 3, "total_steps": None,
                     "config": {"dataset": "shapes", "image_size": 32}}) == "plain8 · shapes 32px · 0000 (running, 3 steps)"
    twin = {**row, "id": "s-c7c0", "full_label": "resnet20 · shapes-easy 16px · s-c7c0"}
    assert list(row_labels([row, twin]).values()) == [row["full_label"], twin["full_label"]]
    assert shown_names([row, twin])["s-c7c0"] == "resnet20 · shapes-easy 16px · s-c7c0 (done, 250/250 steps)"


def test_runs_on_different_data_are_flagged():
    preset = {"id": "a", "data_label": "shapes-easy 16px"}
    trained = {"id": "b", "data_label": "shapes 32px"}
    imported = {"id": "c", "kind": "imported", "data_label": "imagenet 224px"}
    assert mixed_data([preset, {**preset, "id": "d"}, imported]) is None  # imported weights aside
    assert mixed_data([preset, {**preset, "id": "d"}, trained]) == (
        "These runs were trained on different data (shapes-easy 16px: 2 runs; shapes 32px: 1 run), so their "
        "losses and errors do not compare like for like.")
