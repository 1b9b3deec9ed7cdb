"""What the runs shown actually say: the one place a page, the CLI or a report takes a claim from.

Every sentence a figure or page states as a finding is computed here from the data it describes,
under the rules of `evidence`: a run at chance supports no claim about its internals, and a
difference below its threshold or the seed spread is "about the same". Where the data do not show
what a paper reports, the text says so and gives the paper's claim as the paper's.

- `evidence`: the two rules (`Progress`, `Difference`) and their thresholds;
- `training`: verdicts over seeds (degradation) and the probe captions (residual ratios, gradient
  flow, layer responses);
- `lenses`: the Explain and Pretrained pages' sentences (loss landscape, lesions, paths, unit profile);
- `architecture`: the Architecture page's computed captions (MAC and parameter shares per stage, what a
  net and its twin differ in). Imported as submodules (`from resnet_explorer.reports.findings import lenses`):
  they read block graphs and lens results, which the training captions do not need.
"""

from .evidence import (
    CHANCE_ACCURACY_MARGIN,
    CHANCE_LOSS_MARGIN,
    SEED_MARGIN,
    Difference,
    Progress,
    at_chance_note,
    spread,
)
from .training import (
    GRADIENT_FACTOR,
    LOSS_FLOOR,
    LOSS_THRESHOLD,
    MARGIN,
    REFINE_FACTOR,
    RESPONSE_THRESHOLD,
    TAIL_FRACTION,
    Check,
    compare_losses,
    degradation_checks,
    gradient_finding,
    loss_gap_counts,
    mean_sd,
    progress_of,
    ratio_finding,
    responses_finding,
    tail_mean,
)

__all__ = [
    "CHANCE_ACCURACY_MARGIN", "CHANCE_LOSS_MARGIN", "GRADIENT_FACTOR", "LOSS_FLOOR", "LOSS_THRESHOLD", "MARGIN",
    "REFINE_FACTOR", "RESPONSE_THRESHOLD", "SEED_MARGIN", "TAIL_FRACTION", "Check", "Difference", "Progress",
    "at_chance_note", "compare_losses", "degradation_checks", "gradient_finding", "loss_gap_counts", "mean_sd",
    "progress_of", "ratio_finding", "responses_finding", "spread", "tail_mean",
]
