"""Pure functions from data to plotly figures; shared by the app, the CLI and reports.

Never renders, never imports Streamlit.
"""

from .architecture import (
    AUTO_EXPAND_BLOCKS,
    SKIP_STYLE,
    default_expanded,
    human,
    plot_block_graph,
    plot_stage_bars,
)
from .attribution import (
    denormalize,
    normalize_heatmap,
    plot_attribution_grid,
    plot_attribution_scores,
    render_attribution_png,
)
from .training import (
    available_steps,
    depth_key,
    plot_grad_flow_heatmap,
    plot_grad_flow_profile,
    plot_live_loss,
    plot_residual_heatmap,
    plot_residual_norms,
    plot_responses,
    plot_training_curves,
)

__all__ = [
    "AUTO_EXPAND_BLOCKS", "SKIP_STYLE", "default_expanded", "human", "plot_block_graph", "plot_stage_bars",
    "available_steps", "depth_key", "plot_grad_flow_heatmap", "plot_grad_flow_profile", "plot_live_loss", "plot_residual_heatmap",
    "plot_residual_norms", "plot_responses", "plot_training_curves",
    "denormalize", "normalize_heatmap", "plot_attribution_grid", "plot_attribution_scores", "render_attribution_png",
]
