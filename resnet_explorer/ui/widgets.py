"""Shared widgets: the model picker, figure downloads, a filterable table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from ..devices import DEVICE_CHOICES, resolve_device
from ..export import chromium_path, figure_to_html, figure_to_image, rows_to_csv
from ..limits import (
    MAX_CLASSES,
    MAX_GROUPS,
    MAX_IN_CHANNELS,
    MAX_INPUT_SIZE,
    MAX_UNITS,
    MAX_WIDTH_MULTIPLIER,
    MAX_WIDTH_PER_GROUP,
    MIN_WIDTH_MULTIPLIER,
)
from ..models import ModelSpec, get_variant, list_variants
from ..models.spec import CONVS_PER_BLOCK, IMAGENET_LAYERS, cifar_units_per_stage
from . import state

SHORTCUT_HELP = {
    "A": "A: zero-pad where the shape changes (no parameters)",
    "B": "B: 1x1 projection where the shape changes",
    "C": "C: 1x1 projection on every unit",
}
SHORTCUT_LABELS = {"A": "A: zero-pad", "B": "B: projection", "C": "C: all projection"}  # fit a narrow column
CUSTOM = "custom"  # the variant picker's entry for a composed spec that no named variant matches
COUNT_COLUMNS = {"params", "macs", "mult_adds", "shortcut_params", "shortcut params"}
# widget key -> ModelSpec field
_FIELDS = {
    "arch_stem": "stem", "arch_block": "block", "arch_preact": "pre_activation", "arch_shortcut": "shortcut",
    "arch_width": "width_multiplier", "arch_groups": "groups", "arch_wpg": "width_per_group",
    "arch_classes": "num_classes", "arch_in_channels": "in_channels", "arch_zero_init": "zero_init_residual",
}


def _load_spec_into_widgets(spec: ModelSpec) -> None:
    for key, field in _FIELDS.items():
        st.session_state[key] = getattr(spec, field)
    st.session_state["arch_layers"] = ", ".join(map(str, spec.layers))
    st.session_state["arch_plain"] = not spec.residual
    st.session_state["arch_input_size"] = spec.default_input_size


def _on_variant() -> None:
    if st.session_state["arch_variant"] == CUSTOM:  # nothing to load: the fields below already hold it
        return
    st.session_state["arch_typed"] = ""
    st.session_state.pop("arch_name_error", None)
    _load_spec_into_widgets(ModelSpec.from_name(st.session_state["arch_variant"]))


def _on_typed() -> None:
    name = st.session_state.get("arch_typed", "").strip()
    if not name:
        return
    try:
        spec = ModelSpec.from_name(name)
    except ValueError as err:
        st.session_state["arch_name_error"] = str(err)
        return
    st.session_state.pop("arch_name_error", None)
    _load_spec_into_widgets(spec)
    if spec.name in list_variants():
        st.session_state["arch_variant"] = spec.name


def _on_stem() -> None:
    """A new family starts from its smallest named net (the old stage counts do not fit it)."""
    start = ModelSpec.from_name("resnet20" if st.session_state["arch_stem"] == "cifar" else "resnet18")
    _load_spec_into_widgets(start.replace(pre_activation=st.session_state["arch_preact"]))
    st.session_state["arch_plain"] = st.session_state.get("arch_plain_keep", False)


def _on_depth() -> None:
    """Depth -> units per stage: CIFAR n = (D-2)/6 or (D-2)/9; ImageNet one of torchvision's five."""
    depth, stem = int(st.session_state["arch_depth"]), st.session_state["arch_stem"]
    try:
        if stem == "cifar":
            n = cifar_units_per_stage(depth, st.session_state["arch_block"])
            st.session_state["arch_layers"] = f"{n}, {n}, {n}"
        elif depth in IMAGENET_LAYERS:
            block, layers = IMAGENET_LAYERS[depth]
            st.session_state["arch_block"] = block
            st.session_state["arch_layers"] = ", ".join(map(str, layers))
        else:
            raise ValueError(
                f"ImageNet depth {depth}: the named depths are {', '.join(map(str, IMAGENET_LAYERS))}; "
                "set the units per stage for any other"
            )
        st.session_state.pop("arch_depth_error", None)
    except ValueError as err:
        st.session_state["arch_depth_error"] = str(err)


def _current_depth() -> int | None:
    try:
        layers = _parse_layers(st.session_state["arch_layers"])
    except ValueError:
        return None
    return 2 + CONVS_PER_BLOCK[st.session_state["arch_block"]] * sum(layers) if layers else None


def _parse_layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"units per stage must be whole numbers separated by commas, got {text!r}") from None


def model_picker() -> tuple[ModelSpec | None, str, int]:
    """Variant (named or composed), device and input size; shows its own errors.

    Returns:
        (spec or None when the inputs are invalid, device name, input size).
    """
    if "arch_stem" not in st.session_state:  # first visit, or back from another page
        shared = spec_from_query(st.query_params)
        device, device_problem = device_from_query(st.query_params)
        problems = [p for p in (shared if isinstance(shared, str) else None, device_problem) if p]
        if problems:
            st.session_state["arch_name_error"] = " ".join(problems)
        if isinstance(shared, ModelSpec):
            state.set_choice(shared, device or state.get_device(), shared.default_input_size)
        elif device:
            state.set_choice(state.get_spec(), device, state.get_input_size())
        chosen = state.get_spec()
        _load_spec_into_widgets(chosen)
        st.session_state["arch_input_size"] = state.get_input_size()
        st.session_state["arch_device"] = state.get_device()
    _sync_variant()

    left, right = st.columns([2, 1])
    with left:
        st.selectbox(
            "Start from a named variant", [*list_variants(), CUSTOM], key="arch_variant", on_change=_on_variant,
            format_func=_variant_label,
            help="Fills in the fields below; change any of them to compose your own (shown as custom).",
        )
    with right:
        st.text_input(
            "...or type any name", key="arch_typed", on_change=_on_typed, placeholder="e.g. resnet74, plain38",
            help="[cifar_][preact_](resnet|plain)<depth>[_basic|_bottleneck]: basic depth 6n+2, bottleneck 9n+2",
        )
    if st.session_state.get("arch_name_error"):
        st.error(st.session_state["arch_name_error"])

    depth = _current_depth()
    if depth is not None:
        st.session_state["arch_depth"] = depth  # follows the units per stage
    c1, c2, c3, c4, c5 = st.columns(5)
    st.session_state["arch_plain_keep"] = st.session_state.get("arch_plain", False)
    c1.selectbox("Stem / family", ("cifar", "imagenet"), key="arch_stem", on_change=_on_stem,
                 help="cifar: 3x3 conv, stages 16-32-64. imagenet: 7x7/2 conv + max-pool, stages 64-128-256-512.")
    c2.selectbox("Unit", ("basic", "bottleneck"), key="arch_block")
    c3.number_input("Depth", min_value=3, max_value=MAX_DEPTH, step=1, key="arch_depth", on_change=_on_depth,
                    help="Weighted layers. CIFAR: 6n+2 (basic) or 9n+2 (bottleneck); ImageNet: 18, 34, 50, 101, 152")
    c4.text_input("Units per stage", key="arch_layers", help="3 numbers for cifar, 4 for imagenet")
    c5.selectbox("Shortcut", ("A", "B", "C"), key="arch_shortcut", format_func=SHORTCUT_LABELS.get,
                 help="Where a unit changes shape, the shortcut must match it. "
                      + "; ".join(SHORTCUT_HELP.values()) + ".")
    depth_error = st.session_state.pop("arch_depth_error", None)
    if depth_error:
        st.error(depth_error)
    c1.toggle("Pre-activation", key="arch_preact",
              help="He et al. 2016: batch norm and ReLU before each convolution, an identity path kept clean")
    c2.toggle("Plain (no shortcuts)", key="arch_plain")
    c3.toggle("Zero-init last BN", key="arch_zero_init")
    with st.expander("Width, groups, classes, input"):
        d1, d2, d3 = st.columns(3)
        d1.number_input("Width multiplier", min_value=MIN_WIDTH_MULTIPLIER, max_value=MAX_WIDTH_MULTIPLIER,
                        step=0.25, key="arch_width")
        d2.number_input("Groups (bottleneck)", min_value=1, max_value=MAX_GROUPS, step=1, key="arch_groups")
        d3.number_input("Width per group (bottleneck)", min_value=1, max_value=MAX_WIDTH_PER_GROUP, step=1,
                        key="arch_wpg")
        d1.number_input("Classes", min_value=1, max_value=MAX_CLASSES, step=1, key="arch_classes")
        d2.number_input("Input channels", min_value=1, max_value=MAX_IN_CHANNELS, step=1, key="arch_in_channels")
        d3.number_input("Input size (pixels)", min_value=8, max_value=MAX_INPUT_SIZE, step=8, key="arch_input_size")
    st.selectbox("Device", DEVICE_CHOICES, key="arch_device",
                 help="auto picks cuda, then mps, then cpu; the model is built there")

    try:
        spec = _widget_spec()
    except (TypeError, ValueError) as err:
        st.error(f"Invalid model: {err}")
        spec = None
    if depth_error:  # the fields still hold the previous model: show none rather than it, as if current
        spec = None
    return spec, st.session_state["arch_device"], int(st.session_state["arch_input_size"])


def _widget_spec() -> ModelSpec:
    """The spec the fields describe (raises ValueError/TypeError when they describe none)."""
    return ModelSpec(
        layers=_parse_layers(st.session_state["arch_layers"]),
        residual=not st.session_state["arch_plain"],
        **{field: st.session_state[key] for key, field in _FIELDS.items()},
    )


def _sync_variant() -> None:
    """Point the variant picker at the spec the fields describe: its name when a variant matches, else custom."""
    try:
        spec = _widget_spec()
    except (KeyError, TypeError, ValueError):
        return  # invalid fields: keep the picker where it is
    named = spec.name in list_variants() and _is_named(spec)
    st.session_state["arch_variant"] = spec.name if named else CUSTOM


def _is_named(spec: ModelSpec) -> bool:
    try:
        return ModelSpec.from_name(spec.name) == spec
    except ValueError:
        return False


MAX_DEPTH = 9 * (MAX_UNITS // 3) + 2  # the deepest CIFAR net under the unit ceiling (bottleneck)
MAX_LINK_CHARACTERS = 4_000  # a ?spec= link is a few hundred characters; longer ones are refused unread


def spec_from_query(params) -> ModelSpec | str | None:
    """The model a shared link names (``?model=resnet56`` or ``?spec=<json>``); an error text if bad.

    Every bound of `ModelSpec` applies (units, widths, classes: `resnet_explorer.limits`), checked
    before anything is built; the page never silently clamps a value into a widget's range.
    """
    try:
        for key in ("spec", "model"):
            if len(params.get(key) or "") > MAX_LINK_CHARACTERS:
                raise ValueError(f"its {key} is {len(params[key]):,} characters long "
                                 f"(at most {MAX_LINK_CHARACTERS:,})")
        if params.get("spec"):
            spec = ModelSpec.from_json(params["spec"])
        elif params.get("model"):
            spec = ModelSpec.from_name(params["model"])
        else:
            return None
    except (ValueError, TypeError, RecursionError) as err:  # a hand-edited link: say why, keep the session
        return f"The link's model is invalid: {err}"
    return spec


def device_from_query(params) -> tuple[str | None, str | None]:
    """(the link's ``?device=``, or None; a message when it names no device this app offers)."""
    device = params.get("device")
    if not device:
        return None, None
    if device not in DEVICE_CHOICES:
        shown = device if len(device) <= 20 else device[:20] + "..."
        return None, f"The link's device {shown!r} is not one of {', '.join(DEVICE_CHOICES)}; kept the current one."
    return device, None


def spec_to_query(spec: ModelSpec, device: str) -> dict[str, str]:
    """Query parameters that reopen this model: its name when that says it all, else the spec."""
    params = {"model": spec.name} if _is_named(spec) else {"spec": spec.to_json()}
    if device != "auto":
        params["device"] = device
    return params


def _variant_label(name: str) -> str:
    if name == CUSTOM:  # a fixed label: the composed model's name heads the page below
        return "custom (composed below)"
    v = get_variant(name)
    return f"{name} ({v.paper_params} in the paper)" if v and v.paper_params else name


def static_export_problem() -> str | None:
    """Why PNG/SVG export cannot work here, or None when a Chromium for kaleido is present."""
    if chromium_path() is not None:
        return None
    return "PNG/SVG export needs Chrome or Chromium (Debian/Ubuntu: apt-get install chromium)"


def figure_downloads(fig: go.Figure, stem: str, key: str, rows: Sequence[dict[str, Any]] | None = None) -> None:
    """Downloads for a figure: HTML (self-contained), PNG, SVG, its data as CSV (when tabular) and JSON.

    The HTML, PNG, SVG and JSON are made when clicked. An HTML file embeds plotly.js (4.7 MB): made on every
    rerun, the browser fetched each one as the page drew (~1 s of the server's CPU apiece to build and gzip
    it, six per Inspect page), whether or not the user ever downloaded it."""
    cols = st.columns(5)
    cols[0].download_button("HTML", lambda: figure_to_html(fig), f"{stem}.html", "text/html", key=f"{key}_html",
                            icon=":material/download:", on_click="ignore")
    problem = static_export_problem()
    for col, fmt, mime in ((cols[1], "png", "image/png"), (cols[2], "svg", "image/svg+xml")):
        col.download_button(fmt.upper(), _deferred_image(fig, fmt), f"{stem}.{fmt}", mime, key=f"{key}_{fmt}",
                            icon=":material/download:", disabled=problem is not None, help=problem,
                            on_click="ignore")
    if rows is not None:
        cols[3].download_button("CSV", rows_to_csv(rows), f"{stem}.csv", "text/csv", key=f"{key}_csv",
                                icon=":material/download:", on_click="ignore")
    cols[4].download_button("JSON", fig.to_json, f"{stem}.json", "application/json", key=f"{key}_json",
                            icon=":material/download:", on_click="ignore",
                            help="The figure with all its data (plotly's JSON: every trace's x, y, z)")


def _deferred_image(fig: go.Figure, fmt: str) -> Callable[[], bytes]:
    """Rendered only when clicked (kaleido takes ~2 s); the button is disabled without Chromium."""
    return lambda: figure_to_image(fig, fmt)


def filterable_table(rows: Sequence[dict[str, Any]], key: str, column: str, label: str = "Filter") -> list[dict]:
    """A text filter over `column` (case-insensitive substring) above the table; returns shown rows."""
    needle = st.text_input(label, key=key, placeholder="e.g. layer3, conv, downsample").strip().lower()
    shown = [r for r in rows if needle in str(r[column]).lower()] if needle else list(rows)
    st.caption(f"{len(shown):,} of {len(rows):,} rows")
    table(shown, height=min(420, 38 + 35 * max(len(shown), 1)))
    return shown


def table(rows: Sequence[dict[str, Any]], height: int | str = "auto") -> None:
    """A dataframe with thousands separators on the count columns."""
    counts = {c: st.column_config.NumberColumn(format="localized")
              for c in (rows[0] if rows else {}) if c.lower() in COUNT_COLUMNS}
    st.dataframe(rows, hide_index=True, width="stretch", height=height, column_config=counts)


def page_device() -> str:
    """The device chosen on the Architecture page, resolved ("auto" -> "cuda" / "mps" / "cpu"); a device
    this machine lacks is an `st.error` naming it, and the page stops there."""
    try:
        return str(resolve_device(state.get_device()))
    except ValueError as err:
        st.error(f"{err} (choose another device on the Architecture page)")
        st.stop()
