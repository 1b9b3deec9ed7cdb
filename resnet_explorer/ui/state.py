"""Typed access to what several pages share in `st.session_state`.

Keys (all prefixed ``rx_`` so they never collide with widget keys):

- ``rx_spec``: the `ModelSpec` chosen on the Architecture page;
- ``rx_device``: the device name chosen with it ("auto", "cpu", "cuda", "mps");
- ``rx_input_size``: the square input side in pixels;
- ``rx_model``: ``(spec, device, model)``, the user's built model on that device;
- ``rx_attr_models``: the Attribute page's runs with their models, ``{(path, device): (mtime, Run)}``;
- ``rx_attr_result``: the Attribute page's last studies, ``[(Run, Study)]``;
- ``rx_analysis_job``: the Explain page's `resnet_explorer.ui.analysis_jobs.AnalysisJob` (running or ended),
  read and written only through that module's functions.

`resnet_explorer.ui.jobs` keeps ``rx_job`` and ``rx_live_<name>`` and `resnet_explorer.ui.nav` keeps
``rx_nav_rerun``, each read only through its own
functions; `resnet_explorer.ui.run_picker` forms its widget keys from each page's prefix. Widget keys
that only one page uses stay in that page.
"""

from __future__ import annotations

import streamlit as st

from ..devices import resolve_device
from ..models import ModelSpec, ResNet, build_model

SPEC, DEVICE, INPUT_SIZE, MODEL = "rx_spec", "rx_device", "rx_input_size", "rx_model"
ATTR_MODELS, ATTR_RESULT = "rx_attr_models", "rx_attr_result"
ANALYSIS_JOB = "rx_analysis_job"
DEFAULT_MODEL = "resnet20"


def get_spec() -> ModelSpec:
    spec = st.session_state.get(SPEC)
    return spec if isinstance(spec, ModelSpec) else ModelSpec.from_name(DEFAULT_MODEL)


def get_device() -> str:
    return st.session_state.get(DEVICE, "auto")


def get_input_size() -> int:
    return int(st.session_state.get(INPUT_SIZE) or get_spec().default_input_size)


def set_choice(spec: ModelSpec, device: str, input_size: int) -> None:
    st.session_state[SPEC] = spec
    st.session_state[DEVICE] = device
    st.session_state[INPUT_SIZE] = int(input_size)


def get_model(confirm_large: bool = False) -> ResNet:
    """The chosen spec built on the chosen device, rebuilt only when either changes.

    Raises:
        ValueError: bad device or spec, or a large model without confirmation.
    """
    spec, device = get_spec(), get_device()
    cached = st.session_state.get(MODEL)
    resolved = str(resolve_device(device))
    if cached is not None and cached[0] == spec and cached[1] == resolved:
        return cached[2]
    st.session_state.pop(MODEL, None)  # free the old model before building the new one
    model = build_model(spec, device=resolved, confirm_large=confirm_large)
    st.session_state[MODEL] = (spec, resolved, model)
    return model
