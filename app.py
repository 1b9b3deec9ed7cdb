"""ResNet Explorer: home page and the "why residuals" tour. `streamlit run app.py`; pages/ holds the rest."""

from pathlib import Path

import streamlit as st

from resnet_explorer.models.spec import NAMING_RULE
from resnet_explorer.plots import plot_grad_flow_heatmap, plot_residual_norms, plot_training_curves
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.training.presets import DEGRADATION_COMMAND, degradation_config, degradation_specs
from resnet_explorer.ui import jobs, state

st.set_page_config(page_title="ResNet Explorer", layout="wide")
jobs.limit_torch_threads()
EXAMPLES = Path(__file__).resolve().parent / "examples" / "degradation"


@st.cache_data(max_entries=1, show_spinner=False)
def example_tables(folder: str) -> dict:
    """The shipped example runs' tables by model name (plain20, plain56, resnet20, resnet56)."""
    return {r["model"]: load_run(r["path"], with_model=False).tables for r in reversed(list_runs(folder))}


st.title("ResNet Explorer")
st.markdown(
    """
Why do residual networks train when plain ones of the same depth do not? A residual unit computes
**y = F(x) + x**: its layers learn only the change F(x), and the shortcut carries x, and its
gradient, straight through. Build any ResNet next to its **plain twin** (the same layers without
shortcuts), train both on this machine, and look inside.
"""
)

tables = example_tables(str(EXAMPLES)) if EXAMPLES.is_dir() else {}
if {"plain20", "plain56", "resnet20", "resnet56"} <= set(tables):
    st.subheader("The point, in three figures")
    st.caption(f"Four runs shipped with the app, made by `{DEGRADATION_COMMAND}`: 250 steps of batch 64 on the "
               "embedded shapes data, the same seed, data order and budget for every net (about 2.5 minutes on a "
               "2-core CPU).")
    fig = plot_training_curves({m: t["metrics"] for m, t in tables.items()}, {m: t["eval"] for m, t in tables.items()})
    st.plotly_chart(fig, key="tour_curves", theme=None)
    st.markdown("**1. The degradation problem.** The 56-layer plain net trains *worse* than the 20-layer one, "
                "although it could copy it and set the extra layers to the identity. Its residual twin trains.")
    # full width: the figures' titles and subtitles need it (half-width columns cut them off)
    fig = plot_residual_norms({m: tables[m]["residual_norms"] for m in ("resnet56", "plain56")})
    st.plotly_chart(fig, key="tour_norms", theme=None)
    st.markdown("**2. Small changes.** In resnet56 most units add an F(x) smaller than their input x "
                "(ratio below 1): each unit refines rather than replaces (He et al. 2016).")
    fig = plot_grad_flow_heatmap({m: tables[m]["grad_flow"] for m in ("resnet56", "plain56")})
    st.plotly_chart(fig, key="tour_grads", theme=None)
    st.markdown("**3. Gradients reach the input.** Through the shortcuts, resnet56's early layers get "
                "gradients as large as its late ones; plain56's early layers get far smaller ones.")
    if st.button("Reproduce it live (about 2.5 minutes)", icon=":material/replay:", key="tour_reproduce"):
        try:
            jobs.start_job(degradation_specs(), degradation_config(device=state.get_device()))
            st.switch_page("pages/5_Compare.py")
        except ValueError as err:
            st.error(str(err))
else:
    st.info("The example runs (examples/degradation) are missing; make them with "
            f"`{DEGRADATION_COMMAND}`.")

st.subheader("Pages")
st.page_link("pages/1_Architecture.py", label="Architecture: block graph, parameters and MACs, plain twin",
             icon=":material/account_tree:")
st.page_link("pages/2_Train.py", label="Train: a few minutes on this machine, live curves",
             icon=":material/play_arrow:")
st.page_link("pages/3_Inspect.py", label="Inspect: residual norms, gradient flow, layer responses",
             icon=":material/monitoring:")
st.page_link("pages/4_Attribute.py", label="Attribute: what the trained net looks at (captum)",
             icon=":material/visibility:")
st.page_link("pages/5_Compare.py", label="Compare: plain vs residual, any runs side by side, report bundle",
             icon=":material/compare:")
spec = state.get_spec()
st.caption(f"Current model: **{spec.label}** on {state.get_device()}.")
with st.expander("Naming rule"):
    st.markdown(NAMING_RULE)
