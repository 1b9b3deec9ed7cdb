"""ResNet Explorer's home page: what the tool is for, and the "why residuals" tour (the app starts in app.py)."""

from pathlib import Path

import streamlit as st

from resnet_explorer.jobs.estimates import cached_preset_estimate
from resnet_explorer.models.spec import NAMING_RULE
from resnet_explorer.plots import plot_grad_flow_heatmap, plot_residual_norms, plot_training_curves
from resnet_explorer.reports.compare import degradation_finding, group_runs, run_progress
from resnet_explorer.reports.findings import gradient_finding, ratio_finding
from resnet_explorer.runs import list_runs, load_run
from resnet_explorer.training.presets import DEGRADATION_COMMAND, degradation_config, degradation_specs, describe
from resnet_explorer.ui import jobs, state

EXAMPLES = Path(__file__).resolve().parent / "examples" / "degradation"


@st.cache_data(max_entries=1, show_spinner=False)
def example_runs(folder: str) -> list:
    """The shipped example runs (every model and seed), oldest first."""
    return [load_run(r["path"], with_model=False) for r in reversed(list_runs(folder))]


st.title("ResNet Explorer")
st.markdown(
    """
Why does a deep plain net train worse than a shallower one, while the same deep net with shortcuts
trains well (He et al. 2015)? A residual unit computes
**y = F(x) + x**: its layers learn only the change F(x), and the shortcut carries x, and its
gradient, straight through. Build any ResNet next to its **plain twin** (the same layers without
shortcuts), train both on this machine, and look inside.
"""
)

runs = example_runs(str(EXAMPLES)) if EXAMPLES.is_dir() else []
checks = degradation_finding(runs)
if checks:
    groups = group_runs(runs)
    seeds = sorted({r.config.seed for r in runs})
    first = {g[0].spec.name: g[0] for g in groups}  # the lowest seed of each model, for the probe figures
    residual = {g[0].spec.name: bool(g[0].spec.residual) for g in groups}
    st.subheader("The point, in three figures")
    st.caption(f"{len(runs)} runs shipped with the app, made by `{DEGRADATION_COMMAND}`: "
               f"{describe(runs[0].config)}, for seeds {', '.join(map(str, seeds))}; every net gets the same data, "
               "data order and budget per seed.")
    # Training curves only: the sentence under the figure is about training loss and error (Fig. 6's
    # claim); held-out markers crowded it, and Compare shows them.
    fig = plot_training_curves({g[0].spec.name: [r.tables["metrics"] for r in g] for g in groups}, None,
                               residual=residual, depth={g[0].spec.name: g[0].spec.depth for g in groups})
    st.plotly_chart(fig, key="tour_curves", theme=None)
    st.markdown("**1. The degradation problem.** He et al. 2015 found that a deeper plain net trains *worse* than a "
                "shallower one, although it could copy it and set its extra layers to the identity; its residual "
                "twin does not. In these runs:")
    for check in checks:
        st.markdown(f"- **{'Holds' if check.held == check.of else 'Not on every seed'}:** {check.text()}")
    # the probe figures: the deepest twin pair on its lowest seed; the gradient comparison needs twins that
    # both left chance (a net at chance supports no claim about its internals)
    lowest = list(first.values())
    left = {rid: not p.at_chance for rid, p in run_progress(lowest, [run.id for run in lowest]).items()}
    twins = [(run, next((o for o in lowest if o.spec == run.spec.plain() and o is not run), None))
             for run in sorted(lowest, key=lambda r: -r.spec.depth) if run.spec.residual]
    twins = [(r, p) for r, p in twins if p is not None]

    def labelled(*runs) -> dict:
        return {f"{run.spec.name} (seed {run.config.seed})": run for run in runs}

    pair = labelled(*twins[0]) if twins else {}
    fig = plot_residual_norms({label: run.tables["residual_norms"] for label, run in pair.items()},
                              residual={label: run.spec.residual for label, run in pair.items()},
                              depth={label: run.spec.depth for label, run in pair.items()})
    st.plotly_chart(fig, key="tour_norms", theme=None)
    res_label = next((label for label, run in pair.items() if run.spec.residual), None)
    ratio_text = ratio_finding(res_label, pair[res_label].tables["residual_norms"],
                               run_progress([pair[res_label]], [res_label])[res_label]) if res_label else None
    st.markdown("**2. Small changes?** " + (ratio_text or "No residual-norm probes in these runs."))
    trained = [(r, p) for r, p in twins if left.get(r.id) and left.get(p.id)]
    grads = labelled(*trained[0]) if trained else pair
    fig = plot_grad_flow_heatmap({label: run.tables["grad_flow"] for label, run in grads.items()})
    st.plotly_chart(fig, key="tour_grads", theme=None)
    grad_text = gradient_finding({label: run.tables["grad_flow"] for label, run in grads.items()},
                                 {label: bool(run.spec.residual) for label, run in grads.items()},
                                 run_progress(list(grads.values()), list(grads)))
    if trained and twins and trained[0] != twins[0]:
        grad_text = (f"Shown for the deepest twins that both left chance, {' and '.join(grads)}: "
                     f"{twins[0][1].spec.name} never left chance, so its gradients say nothing about trained nets. "
                     + (grad_text or ""))
    st.markdown("**3. Do gradients reach the input?** " + (grad_text or "No gradient probes in these runs."))
    estimate = cached_preset_estimate(runs, state.get_device())  # times a few steps here, once in 10 minutes
    minutes = estimate.text() if estimate is not None else "a few minutes"
    if st.button(f"Reproduce it live (one seed; {minutes})", icon=":material/replay:", key="tour_reproduce"):
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
st.page_link("pages/6_Explain.py", label="Explain: lesions, gradient paths and the loss landscape of a trained run",
             icon=":material/psychology:")
st.page_link("pages/7_Pretrained.py", label="Pretrained: import a torchvision or timm ResNet, look inside it with "
             "your photos", icon=":material/photo_camera:")
spec = state.get_spec()
st.caption(f"Current model: **{spec.label}** on {state.get_device()}.")
with st.expander("Naming rule"):
    st.markdown(NAMING_RULE)
