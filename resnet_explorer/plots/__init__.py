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

__all__ = ["AUTO_EXPAND_BLOCKS", "SKIP_STYLE", "default_expanded", "human", "plot_block_graph", "plot_stage_bars"]
