"""Preset experiments: the same budget and data for every run, so the runs compare."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import ModelSpec
from .config import TrainConfig

# He et al. 2015 Fig. 6 in miniature. 250 steps of batch 64 on the embedded shapes data run in
# about 2.5 minutes for all four nets on a 2-core CPU and already separate them (README).
DEGRADATION_DEPTHS = (20, 56)
DEGRADATION_STEPS = 250
DEGRADATION_BATCH = 64
DEGRADATION_COMMAND = "python -m resnet_explorer degradation --no-weights --out examples/degradation"


def degradation_specs(depths: Sequence[int] = DEGRADATION_DEPTHS) -> list[ModelSpec]:
    """Plain twins first, then the residual nets, shallow to deep (CIFAR family, option A)."""
    if len(depths) < 2:
        raise ValueError("the degradation preset needs at least two depths, e.g. 20,56")
    return [ModelSpec.from_name(f"{kind}{d}") for kind in ("plain", "resnet") for d in depths]


def degradation_config(**changes) -> TrainConfig:
    """The preset's training config; `changes` override single fields (device, seed, ...)."""
    return TrainConfig(**{"steps": DEGRADATION_STEPS, "batch_size": DEGRADATION_BATCH, **changes})
