"""Pure functions from data to plotly figures; shared by the app, the CLI and reports.

Never renders, never imports Streamlit. Modules: `training` (curves, residual norms, gradient flow,
responses), `attribution` (attribution grid and scores), `architecture` (block graph, stage bars),
`style` (layout, colours and run styles every figure shares), `heatmap` (attribution maps as
displayable arrays) and `png` (PIL output: data URIs and the offline attribution grid). Figures that
tell plain from residual runs take `residual` from each run's spec, never from its label.
"""

from .architecture import (
    AUTO_EXPAND_UNITS,
    default_expanded,
    plot_block_graph,
    plot_stage_bars,
    si_count,
)
from .attribution import plot_attribution_grid, plot_attribution_scores
from .heatmap import normalize_heatmap
from .png import render_attribution_png
from .style import NO_DATA, SKIP_STYLE, no_data_figure, run_styles
from .training import (
    available_steps,
    plot_grad_flow_heatmap,
    plot_grad_flow_profile,
    plot_live_loss,
    plot_residual_heatmap,
    plot_residual_norms,
    plot_responses,
    plot_training_curves,
)

__all__ = [
    "AUTO_EXPAND_UNITS", "default_expanded", "si_count", "plot_block_graph", "plot_stage_bars",
    "plot_attribution_grid", "plot_attribution_scores", "normalize_heatmap", "render_attribution_png",
    "NO_DATA", "SKIP_STYLE", "no_data_figure", "run_styles",
    "available_steps", "plot_grad_flow_heatmap", "plot_grad_flow_profile", "plot_live_loss", "plot_residual_heatmap",
    "plot_residual_norms", "plot_responses", "plot_training_curves",
]
