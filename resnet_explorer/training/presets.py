"""Preset experiments: the same budget and data for every run, so the runs compare.

The degradation preset is He et al. 2015's Fig. 6 in miniature: plain and residual CIFAR nets at
two depths, the same data, order and budget, on the embedded shapes data. Its settings were
chosen by measuring (bench/degradation_search.py, bench/degradation_robustness.py): with them the
preset's conclusion (plain56 ends with a higher training loss than plain20; resnet56 with a lower
one than plain56) held for seeds 0-4 with 1 and 2 torch threads, with a gap many times the
seed-to-seed spread. The older preset (32 px, standard shapes, augmentation) decided its result by
whether the shallow plain net escaped the loss plateau at chance in time, which changed with the
seed and the thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import ModelSpec
from .config import TrainConfig

DEGRADATION_DEPTHS = (20, 56)
DEGRADATION_SEEDS = (0, 1, 2)
# The recipe a new user starts from: `train`'s and the Train page's defaults, and the degradation
# preset's. What differs from TrainConfig's defaults, and why. With it plain20, resnet20 and
# resnet56 leave chance on every seed 0-4 with 1 and 2 torch threads (bench/train_defaults.py;
# the table is in the README), so a twin comparison at the defaults compares nets that trained.
# On the standard shapes data at 32 px (the defaults before) plain20 sat at chance after 200
# steps, and the pages then taught that a 20-layer plain net cannot train: the opposite of
# He et al. 2015, where plain-20 trains and plain-56 degrades.
QUICK = {
    "dataset": "shapes-easy",  # bigger objects, strong contrast: the plateau at chance no longer decides the result
    "image_size": 16,  # 2.4x the throughput of 32 px on a CPU; the CIFAR nets' stages run at 16/8/4
    "augment": False,  # a 4-pixel shift is a quarter of a 16-pixel image; training loss is what is compared
    "steps": 250,
    "batch_size": 64,
    "warmup": 0.5,  # half the budget warming up from lr 0.01: resnet56 got stuck on 1 seed in 5 with 0.25
}
DEGRADATION = {**QUICK, "test_size": 1000, "log_every": 10}
DEGRADATION_COMMAND = ("python -m resnet_explorer degradation --seeds 0,1,2 --no-weights "
                       "--out examples/degradation")


def degradation_specs(depths: Sequence[int] = DEGRADATION_DEPTHS) -> list[ModelSpec]:
    """Plain twins first, then the residual nets, shallow to deep (CIFAR family, option A).

    Raises:
        ValueError: fewer than two different depths, or a depth that is not a CIFAR basic-block
            depth 6n+2 (18 and 34 name ImageNet nets elsewhere; here they are refused, not swapped).
    """
    depths = sorted(set(depths))
    if len(depths) < 2:
        raise ValueError("the degradation preset needs at least two different depths, e.g. 20,56")
    specs = []
    for kind in ("plain", "resnet"):
        for d in depths:
            spec = ModelSpec.from_name(f"cifar_{kind}{d}")  # names the 6n+2 rule and the nearest depths
            if spec.block != "basic":
                raise ValueError(f"depth {d}: the degradation preset uses CIFAR basic-block nets (6n+2)")
            specs.append(spec)
    return specs


def quick_config(**changes) -> TrainConfig:
    """The defaults of `train` and the Train page (`QUICK`); `changes` override single fields."""
    return TrainConfig(**{**QUICK, **changes})


def degradation_config(**changes) -> TrainConfig:
    """The preset's training config; `changes` override single fields (device, seed, steps, ...)."""
    return TrainConfig(**{**DEGRADATION, **changes})


def describe(config: TrainConfig) -> str:
    """One line naming a preset run's budget, for captions and the CLI."""
    batch = (f"{config.batch_size * config.world_size} ({config.world_size} processes x {config.batch_size})"
             if config.world_size > 1 else f"{config.batch_size}")
    return (f"{config.steps} steps of batch {batch} on {config.dataset} at {config.image_size} px"
            f"{'' if config.augment else ', no augmentation'}, SGD with one-cycle to lr {config.lr:g} "
            f"({config.warmup:.0%} warm-up)")
