import functools

import pytest

from resnet_explorer import ModelSpec, build_model, list_variants
from resnet_explorer.models.graph import build_graph, layer_rows
from resnet_explorer.plots import default_expanded, plot_block_graph
from tests.test_models import meta_model


@functools.cache
def graph_of(name: str):
    """`build_graph` of the variant `name` at its default input size, built once per process (a 600-unit
    graph takes seconds); the tests only read it."""
    return build_graph(ModelSpec.from_name(name))

# torchvision's model table (GFLOPS column = multiply-accumulates) at 224x224.
IMAGENET_GMACS = {"resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51}


@pytest.mark.parametrize("name", list_variants())
def test_totals_match_the_module(name):
    graph = graph_of(name)
    model = meta_model(name)
    assert graph.total_params == sum(p.numel() for p in model.parameters())
    assert len(graph.units()) == ModelSpec.from_name(name).num_units


@pytest.mark.parametrize("name, gmacs", IMAGENET_GMACS.items())
def test_imagenet_macs(name, gmacs):
    assert round(graph_of(name).total_macs / 1e9, 2) == gmacs


def test_cifar_macs_by_hand():
    # resnet20 at 32x32: stem 3x3x3x16 at 32x32, stage k has 6 3x3 convs of width w at side s
    # (stride-2 first conv at the output side), fc 64x10.
    stem = 32 * 32 * 16 * 27
    stages = sum(6 * s * s * w * w * 9 for w, s in ((16, 32), (32, 16), (64, 8)))
    # the first conv of stages 2 and 3 reads half the channels
    stages -= 16 * 16 * 32 * 16 * 9 + 8 * 8 * 64 * 32 * 9
    assert graph_of("resnet20").total_macs == stem + stages + 640


def test_edges_typed_by_shortcut():
    g = graph_of("resnet20")
    assert g.skip_counts() == {"identity": 7, "projection": 0, "zero_pad": 2}
    assert [e.kind for e in g.skips() if e.target == "layer2.0"] == ["zero_pad"]
    assert graph_of("resnet50").skip_counts()["projection"] == 4
    plain = graph_of("plain20")
    assert plain.skips() == [] and len([e for e in plain.edges if e.kind == "main"]) == len(plain.nodes) - 1


def test_shapes_follow_the_stages():
    g = graph_of("resnet50")
    assert g.node("stem").out_shape == (64, 56, 56)
    assert g.node("layer4.2").out_shape == (2048, 7, 7)
    assert g.node("fc").out_shape == (1000,)
    g = build_graph(ModelSpec.from_name("resnet56"), input_size=64)
    assert g.node("layer3.8").out_shape == (64, 16, 16)


def test_stage_rows_sum_to_totals():
    g = graph_of("preact_resnet164")
    rows = g.stage_rows()
    assert [r["stage"] for r in rows] == ["stem", "layer1", "layer2", "layer3", "head"]
    assert sum(r["params"] for r in rows) == g.total_params
    assert sum(r["macs"] for r in rows) == g.total_macs


def test_torchinfo_rows_agree():
    model = build_model("resnet20", device="cpu")
    was = [m.running_mean.clone() for m in model.modules() if hasattr(m, "running_mean")]
    rows = layer_rows(model, 32, "cpu", depth=3)
    assert model.training  # mode restored
    now = [m.running_mean for m in model.modules() if hasattr(m, "running_mean")]
    assert all((a == b).all() for a, b in zip(was, now))  # eval mode: BN statistics untouched
    top = [r for r in rows if r["depth"] == 1]
    assert sum(r["params"] for r in top) == 269_722
    # the convs agree with the graph's MACs (torchinfo adds the bias to fc and counts BN too)
    graph = graph_of("resnet20")
    conv_macs = sum(r["mult_adds"] for r in rows if r["type"] == "Conv2d")
    assert conv_macs == graph.total_macs - graph.node("fc").macs
    block = next(r for r in rows if r["layer"] == "layer2.0")
    assert block["mult_adds"] == sum(r["mult_adds"] for r in rows if r["layer"].startswith("layer2.0.")) > 0
    assert {r["layer"] for r in rows} >= {"conv1", "layer1.0.conv1", "layer3.2.residual_tap", "fc"}


def test_deep_nets_start_collapsed():
    g = graph_of("resnet1202")
    assert default_expanded(g) == set()
    fig = plot_block_graph(g)
    units = [t for t in fig.data if t.name == "units"][0]
    assert len(units.x) == 3 + 3  # stem, three stage boxes, pool, fc
    fig = plot_block_graph(g, expanded={1})
    assert len([t for t in fig.data if t.name == "units"][0].x) == 200 + 2 + 3


def test_small_nets_start_expanded_with_an_arc_per_skip():
    g = graph_of("resnet20")
    fig = plot_block_graph(g)
    identity = [t for t in fig.data if t.name and t.name.startswith("identity")][0]
    assert list(identity.x).count(None) == 7
    assert not [t for t in plot_block_graph(graph_of("plain20")).data
                if t.name and "shortcut" in t.name]
