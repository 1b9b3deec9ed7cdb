"""Architecture: build any variant, see its block graph, counts and plain/residual twin."""

import hashlib
import time

import streamlit as st

from resnet_explorer.devices import resolve_device
from resnet_explorer.export import rows_to_csv
from resnet_explorer.models import ModelSpec, large_model_message
from resnet_explorer.models.graph import build_graph, layer_rows
from resnet_explorer.plots import default_expanded, plot_block_graph, plot_stage_bars, si_count
from resnet_explorer.plots.architecture import MAX_DRAWN_UNITS
from resnet_explorer.reports.findings.architecture import stage_bars_caption, twin_difference, twin_help
from resnet_explorer.ui import state
from resnet_explorer.ui.nav import through_app
from resnet_explorer.ui.widgets import figure_downloads, filterable_table, model_picker, spec_to_query, table

through_app()  # a page opened by its URL on a fresh server: through app.py's navigation
st.set_page_config(page_title="Architecture - ResNet Explorer", layout="wide")
VIEWS = {"stage": "Per stage", "unit": "Per unit", "twin": "Plain vs residual twin", "layers": "torchinfo layers"}


@st.cache_data(max_entries=32, show_spinner="Tracing the block graph...")
def cached_graph(spec_json: str, input_size: int):
    return build_graph(ModelSpec.from_json(spec_json), input_size)


@st.cache_data(max_entries=8, show_spinner="Running torchinfo...")
def cached_layer_rows(spec_json: str, input_size: int, device: str, depth: int, _model):
    return layer_rows(_model, input_size, device, depth)


st.title("Architecture")
st.caption("Pick a variant or compose one; see its block graph, where its parameters and compute sit, "
           "and how its twin (the same layers with shortcuts added or removed) compares.")

spec, device, input_size = model_picker()
if spec is None:
    st.stop()
try:
    resolve_device(device)
except ValueError as err:
    st.error(str(err))
    st.stop()

try:
    message = large_model_message(spec)  # arithmetic, before anything is built; refuses past the ceiling
except ValueError as err:
    st.error(str(err))
    st.stop()
spec_key = hashlib.sha1(spec.to_json().encode()).hexdigest()[:10]  # widget keys tied to this spec
if message and not st.checkbox(f"{message}. Build it anyway?", key=f"arch_confirm_large_{spec_key}"):
    st.warning("Large model: nothing built yet. Tick the box above to trace and build it.")
    st.stop()

try:
    graph = cached_graph(spec.to_json(), input_size)
    twin_spec = spec.plain() if spec.residual else spec.with_residual()
    twin = cached_graph(twin_spec.to_json(), input_size)
except ValueError as err:
    st.error(str(err))
    st.stop()
state.set_choice(spec, device, input_size)
st.query_params.from_dict(spec_to_query(spec, device))  # the URL reopens this model: share it

st.subheader(spec.label)
m = st.columns(5)
m[0].metric("Depth (weighted layers)", spec.depth)
m[1].metric("Residual units" if spec.residual else "Units", spec.num_units,
            help=None if spec.residual else "Blocks of the plain net: each passes only F(x) on (no shortcut)")
m[2].metric("Parameters", f"{graph.total_params:,}")
m[3].metric(f"MACs at {input_size}x{input_size}", si_count(graph.total_macs))
# A short label: st.metric cuts a label to its column's width ("preact_plain164 param…" at 1400 px); the twin's
# name is in the help and in the caption below.
m[4].metric("Twin's parameters", f"{twin.total_params:,}",
            delta=f"{twin.total_params - graph.total_params:+,}" if twin.total_params != graph.total_params else None,
            delta_color="off", help=twin_help(graph, twin))
st.caption(f"Twin: **{twin_spec.name}**, the same units {'with' if twin_spec.residual else 'without'} shortcuts "
           "(the *Plain vs residual twin* view says how their convolutions differ).")

pick, cap = st.columns([3, 1])
expand = pick.multiselect(
    "Expand stages (unit by unit)", list(range(1, graph.num_stages + 1)), default=sorted(default_expanded(graph)),
    format_func=lambda s: f"layer{s} ({len(graph.units(s))} units)", key=f"arch_expand_{spec_key}",
    help="Stages past a few dozen units start collapsed so deep nets stay readable.",
)
longest = max((len(graph.units(s)) for s in expand), default=0)
max_units = None
if longest > 4:  # only where it can hide something
    max_units = cap.number_input(
        "Units drawn per stage", min_value=4, max_value=20, value=MAX_DRAWN_UNITS, step=1, key="arch_max_units",
        help="An expanded stage with more units shows its first and last few and a '… N …' gap for the units between, "
             "so the graph stays legible; the table below lists every unit.")
fig = plot_block_graph(graph, expand, max_units=max_units)
# theme=None: the chart looks like its downloads (Streamlit's theme shrinks titles and fonts).
st.plotly_chart(fig, key="arch_graph", theme=None, config={"displaylogo": False})
figure_downloads(fig, f"{spec.name}_graph", "dl_graph", graph.unit_rows())

# One view at a time, and only its code runs: st.tabs would run every tab, and the torchinfo table builds the
# real model (resnet1202: 5,410 rows, ~9 s) on every spec change.
view = st.segmented_control("View", list(VIEWS), default="stage", required=True, format_func=VIEWS.get,
                            key="arch_view", label_visibility="collapsed")
if view == "stage":
    table(graph.stage_rows())
    bars = plot_stage_bars(graph.stage_rows(), twin.stage_rows(), (spec.name, twin_spec.name),
                           caption=stage_bars_caption(graph))
    st.plotly_chart(bars, key="arch_stage_bars", theme=None)
    figure_downloads(bars, f"{spec.name}_stages", "dl_stages", graph.stage_rows())
elif view == "unit":
    filterable_table(graph.unit_rows(), "arch_unit_filter", "node")
elif view == "twin":
    st.markdown(
        twin_difference(graph, twin) + " The residual net adds each unit's input x to its output F(x); the plain "
        "net passes only F(x) on. He et al. 2015 (Fig. 6) found that deeper plain nets trained *worse* and that "
        "shortcuts fixed it: compare the two on the Train page to see whether yours do."
    )
    rows = []
    for g in (graph, twin):
        rows.append({"model": g.spec.label, "params": g.total_params, "MACs": g.total_macs,
                     "shortcut params": sum(n.shortcut_params for n in g.units()),
                     **{f"{k} skips": v for k, v in g.skip_counts().items()}})
    table(rows)
elif view == "layers":  # builds the model: only when asked
    depth = st.slider("Nesting depth", 1, 4, 3, key="arch_summary_depth", help="Module nesting shown by torchinfo")
    try:
        started = time.perf_counter()
        model = state.get_model(confirm_large=True)
        built = time.perf_counter() - started
    except ValueError as err:
        st.error(str(err))
        st.stop()
    st.caption(f"Built on **{state.get_device()}** ({next(model.parameters()).device}) in {built:.2f} s; "
               "torchinfo runs in eval mode with that device.")
    rows = cached_layer_rows(spec.to_json(), input_size, str(next(model.parameters()).device), depth, model)
    shown = filterable_table(rows, "arch_layer_filter", "layer", "Filter layers")
    st.download_button("CSV", rows_to_csv(shown), f"{spec.name}_layers.csv", "text/csv", key="dl_layers",
                       icon=":material/download:", on_click="ignore")
