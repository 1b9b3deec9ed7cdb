"""The home and Architecture pages through Streamlit's AppTest (no browser)."""

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
ARCH = "pages/1_Architecture.py"


@pytest.fixture
def at():
    """The app through app.py's navigation, not yet run: a test opens its page first (`switch_page` before the
    first run opens that page alone; running Home first cost ~1.5 s of every test)."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def metric(app, label_start: str) -> str:
    return next(m.value for m in app.metric if m.label.startswith(label_start))


def current_model_caption(app) -> str:
    return next(c.value for c in app.caption if c.value.startswith("Current model"))


def test_home_page(at):
    at.run()
    assert not at.exception
    assert "ResNet Explorer" in at.title[0].value
    assert "resnet20" in current_model_caption(at)


def test_architecture_default(at):
    at.switch_page(ARCH).run()
    assert not at.exception and not at.error
    assert metric(at, "Parameters") == "269,722"
    assert metric(at, "Depth") == "20"
    assert len(at.get("plotly_chart")) == 2
    assert at.session_state["rx_spec"].name == "resnet20"


def test_pick_deep_variant_and_the_page_caps_drawn_units(at):
    """One session on resnet1202 (its graph takes seconds to trace): it opens collapsed, and an expanded
    stage draws a capped number of units."""
    at.switch_page(ARCH).run()
    at.selectbox(key="arch_variant").set_value("resnet1202").run()
    assert not at.exception and not at.error
    assert metric(at, "Parameters") == "19,421,274"
    assert at.multiselect[0].label.startswith("Expand stages") and at.multiselect[0].value == []
    at.multiselect[0].set_value([1]).run()
    assert not at.exception and not at.error
    assert at.number_input(key="arch_max_units").value == 12
    at.number_input(key="arch_max_units").set_value(6).run()
    assert not at.exception and not at.error


def test_bad_name_keeps_session_alive(at):
    at.switch_page(ARCH).run()
    at.text_input(key="arch_typed").set_value("resnet21").run()
    assert not at.exception
    assert any("6n+2" in e.value for e in at.error)
    at.text_input(key="arch_typed").set_value("plain56").run()
    assert not at.exception and not at.error
    assert metric(at, "Parameters") == "853,018"
    assert at.session_state["rx_spec"].name == "plain56"


def test_compose_and_invalid_layers(at):
    at.switch_page(ARCH).run()
    at.text_input(key="arch_layers").set_value("2, 2").run()
    assert any("3 unit counts" in e.value for e in at.error) and not at.exception
    at.text_input(key="arch_layers").set_value("2, 2, 2").run()
    at.toggle(key="arch_preact").set_value(True).run()
    at.selectbox(key="arch_block").set_value("bottleneck").run()
    assert not at.error and not at.exception
    assert at.session_state["rx_spec"].name == "preact_resnet20"


def test_depth_field_sets_units(at):
    at.switch_page(ARCH).run()
    at.number_input(key="arch_depth").set_value(110).run()
    assert at.text_input(key="arch_layers").value == "18, 18, 18"
    assert at.session_state["rx_spec"].name == "resnet110"
    at.number_input(key="arch_depth").set_value(111).run()
    assert any("6n+2" in e.value for e in at.error) and not at.exception
    assert at.number_input(key="arch_depth").value == 110  # the field snaps back to the spec
    at.selectbox(key="arch_stem").set_value("imagenet").run()
    assert at.session_state["rx_spec"].name == "resnet18" and not at.error
    at.number_input(key="arch_depth").set_value(50).run()
    assert at.session_state["rx_spec"].label == "resnet50" and not at.error


def test_large_model_is_confirmed_first(at):
    at.switch_page(ARCH).run()
    at.text_input(key="arch_typed").set_value("resnet10004").run()
    assert not at.exception
    assert at.warning and not at.get("plotly_chart")
    assert at.session_state["rx_spec"].name == "resnet20"  # nothing chosen yet


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_an_error(at):
    at.switch_page(ARCH).run()
    at.selectbox(key="arch_device").set_value("cuda").run()
    assert not at.exception
    assert any("CUDA" in e.value for e in at.error)


def test_choice_survives_page_switch(at):
    at.switch_page(ARCH).run()
    at.selectbox(key="arch_variant").set_value("resnet56").run()
    at.switch_page("app.py").run()
    assert "resnet56" in current_model_caption(at)
    at.switch_page(ARCH).run()
    assert metric(at, "Parameters") == "853,018"


def test_layer_table_filter(at):
    at.switch_page(ARCH).run()
    at.segmented_control(key="arch_view").set_value("layers").run()
    at.text_input(key="arch_layer_filter").set_value("layer3.2").run()
    assert not at.exception
    assert any("rows" in c.value and c.value.split()[0] != c.value.split()[2] for c in at.caption)


def test_layer_table_is_built_only_in_its_view(at, monkeypatch):
    from resnet_explorer.models import graph
    from resnet_explorer.ui import state

    calls = []

    def counted(model, *args, **kwargs):
        calls.append(args)
        return real(model, *args, **kwargs)

    real = graph.layer_rows
    monkeypatch.setattr(graph, "layer_rows", counted)
    at.switch_page(ARCH).run()
    at.selectbox(key="arch_variant").set_value("resnet56").run()
    assert not at.exception and not at.error
    assert at.segmented_control(key="arch_view").value == "stage" and len(at.get("plotly_chart")) == 2
    for view in ("unit", "twin", "stage"):
        at.segmented_control(key="arch_view").set_value(view).run()
        assert not at.exception and not at.error
    assert calls == [] and state.MODEL not in at.session_state  # neither the model nor its table yet
    at.segmented_control(key="arch_view").set_value("layers").run()
    assert not at.exception and not at.error
    assert len(calls) == 1 and at.session_state[state.MODEL][0].name == "resnet56"
    assert any(c.value.endswith(" rows") for c in at.caption)
    at.selectbox(key="arch_variant").set_value("resnet20").run()  # the view stays open: the new model's table
    assert len(calls) == 2 and at.session_state[state.MODEL][0].name == "resnet20"


def test_shared_link_opens_the_model():
    import streamlit as st

    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / ARCH), default_timeout=120)
    at.query_params["model"] = "plain56"
    at.run()
    assert not at.exception
    assert metric(at, "Parameters") == "853,018" and at.session_state["rx_spec"].name == "plain56"
    at.selectbox(key="arch_shortcut").set_value("B").run()
    assert "spec" in at.query_params and "model" not in at.query_params  # a custom spec travels whole


def test_bad_shared_link_is_an_error_not_a_crash():
    at = AppTest.from_file(str(ROOT / ARCH), default_timeout=120)
    at.query_params["model"] = "resnet21"
    at.run()
    assert not at.exception
    assert any("link" in e.value and "6n+2" in e.value for e in at.error)


def _stage_label_slack(fig, width: int = 1400, px_per_char: int = 7) -> float:
    """The smallest gap in px between neighbouring stage labels (negative: they overlap) at `width`."""
    import re

    lo, hi = fig.layout.xaxis.range
    px_per_x = (width - fig.layout.margin.l - fig.layout.margin.r) / (hi - lo)
    anns = sorted((a for a in fig.layout.annotations if a.text.startswith("<b>layer")), key=lambda a: a.x)

    def half_width(a):
        return px_per_char * max(len(re.sub("<[^>]+>", "", line)) for line in a.text.split("<br>")) / 2

    return min((b.x - a.x) * px_per_x - half_width(a) - half_width(b) for a, b in zip(anns, anns[1:]))


def test_deep_stage_expansion_stays_legible():
    from resnet_explorer.plots import plot_block_graph
    from resnet_explorer.plots.architecture import MAX_DRAWN_UNITS
    from tests.test_graph import graph_of  # built once per process

    g = graph_of("resnet1202")
    assert _stage_label_slack(plot_block_graph(g, {1})) < 0  # every unit drawn: the labels collide
    for stages in ({1}, {2}, {3}, {1, 2, 3}):
        for cap in (4, MAX_DRAWN_UNITS, 20):
            fig = plot_block_graph(g, stages, max_units=cap)
            assert _stage_label_slack(fig) > 0, (stages, cap)
            units = next(t for t in fig.data if t.name == "units")
            assert len(units.x) == 3 + (3 - len(stages)) + cap * len(stages)
    fig = plot_block_graph(g, {1}, max_units=12)
    gaps = [a for a in fig.layout.annotations if a.hovertext and "not drawn" in a.hovertext]
    assert [a.text for a in gaps] == ["… 188 …"] and "188 units" in gaps[0].hovertext
    labels = list(next(t for t in fig.data if t.name == "units").text)
    assert "1.5" in labels and "1.194" in labels and "1.6" not in labels and "1.193" not in labels


def test_plain_net_wording(at):
    at.switch_page(ARCH).run()
    at.toggle(key="arch_plain").set_value(True).run()
    assert not at.exception and not at.error
    assert any(m.label == "Units" for m in at.metric)
    assert not any(m.label == "Residual units" for m in at.metric)
    assert at.selectbox(key="arch_variant").value == "plain20"


def test_variant_picker_follows_composed_spec(at):
    at.switch_page(ARCH).run()
    at.text_input(key="arch_layers").set_value("2, 3, 4").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="arch_variant").value == "custom"
    at.selectbox(key="arch_variant").set_value("resnet56").run()
    assert at.selectbox(key="arch_variant").value == "resnet56" and metric(at, "Parameters") == "853,018"


def test_illegal_depth_stops_the_page(at):
    at.switch_page(ARCH).run()
    at.number_input(key="arch_depth").set_value(111).run()
    assert any("6n+2" in e.value for e in at.error) and not at.exception
    assert not at.get("plotly_chart") and not at.metric  # the previous model is not shown as if current
    at.number_input(key="arch_depth").set_value(56).run()
    assert not at.error and metric(at, "Parameters") == "853,018"


def stage_bars_title(app) -> str:
    import json

    specs = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    return next(s["layout"]["title"]["text"] for s in specs if s["layout"]["title"]["text"].startswith("Parameters"))


def test_captions_follow_the_net_shown(at):
    at.switch_page(ARCH).run()
    at.selectbox(key="arch_variant").set_value("resnet50").run()
    assert not at.exception and not at.error
    title = stage_bars_title(at).replace("<br>", " ")
    assert "not spread evenly" in title and "16/25/36/20%" in title and "follow the unit counts 3/4/6/3" in title
    assert "Most parameters (59%) sit in layer4, the last and widest stage" in title
    at.segmented_control(key="arch_view").set_value("twin").run()
    twin = " ".join(m.value for m in at.markdown)
    assert "plus 4 1x1 projection convolutions" in twin and "2,776,576 parameters" in twin
    assert "stack the same convolutions" not in twin
    at.selectbox(key="arch_variant").set_value("resnet56").run()
    twin = " ".join(m.value for m in at.markdown)
    assert "**resnet56** and **plain56** stack the same convolutions: 853,018 parameters each" in twin
    at.segmented_control(key="arch_view").set_value("stage").run()
    assert "spread about evenly over the 3 stages" in stage_bars_title(at).replace("<br>", " ")


def test_metric_labels_fit_their_column(at):
    """st.metric cuts a label to its column's width: at 1400 px five columns hold about 24 characters."""
    at.switch_page(ARCH).run()
    at.selectbox(key="arch_variant").set_value("preact_resnet164").run()
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert len(labels) == 5 and all(len(label) <= 24 for label in labels), labels
    twin = next(m for m in at.metric if m.label == "Twin's parameters")
    assert twin.value == "1,661,274" and "preact_plain164" in twin.help and "41,984 parameters fewer" in twin.help
    assert any("Twin: **preact_plain164**" in c.value for c in at.caption)
