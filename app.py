"""ResNet Explorer: home page. `streamlit run app.py`; pages/ holds the rest."""

import streamlit as st

from resnet_explorer.graph import build_graph
from resnet_explorer.models import ModelSpec
from resnet_explorer.models.spec import NAMING_RULE
from resnet_explorer.plots import plot_block_graph
from resnet_explorer.ui import state

st.set_page_config(page_title="ResNet Explorer", layout="wide")

st.title("ResNet Explorer")
st.markdown(
    """
Why do residual networks train when plain ones of the same depth do not? This app lets you build
any ResNet (ImageNet ResNet-18 to 152, the CIFAR nets of He et al. 2015 from 20 to 1202 layers, the
pre-activation nets of He et al. 2016, wide and grouped variants) next to its **plain twin**, the same
layers without shortcuts, and look inside.

A residual unit computes **y = F(x) + x**: the stacked layers learn only the change F(x), and the
shortcut carries x (and its gradient) straight through. Without it, a 56-layer plain net trains
*worse* than a 20-layer one (the degradation problem, He et al. 2015, Fig. 1 and 6).
"""
)


@st.cache_data(max_entries=2)
def home_graph(name: str):
    return plot_block_graph(build_graph(ModelSpec.from_name(name)), height=360)


st.plotly_chart(home_graph("resnet20"), theme=None, key="home_graph", config={"displaylogo": False})
st.page_link("pages/1_Architecture.py", label="Architecture: block graph, parameters and MACs, plain twin",
             icon=":material/account_tree:")
st.page_link("pages/2_Train.py", label="Train: a few minutes on this machine, live curves",
             icon=":material/play_arrow:")
st.page_link("pages/3_Inspect.py", label="Inspect: residual norms, gradient flow, layer responses",
             icon=":material/monitoring:")
spec = state.get_spec()
st.caption(f"Current model: **{spec.label}** on {state.get_device()}. Attributions and the plain-vs-residual "
           "Compare page come in the next releases.")
with st.expander("Naming rule"):
    st.markdown(NAMING_RULE)
