"""Seeded weights that both torchvision (to make the fixture) and our models (in tests) load.

The fixture `fixtures/torchvision_resnets.json` was written by `fixtures/make_torchvision_fixture.py`
with torchvision 0.29.1; CI does not need torchvision. torch's CPU generator gives the same
numbers across releases, so the same seed gives the same weights in both environments.
"""

from __future__ import annotations

import math

import torch

FIXTURE_INPUT_SHAPE = (2, 3, 64, 64)


def seeded_state_dict(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights for every key, drawn in sorted key order from one seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.long)
            continue
        noise = torch.randn(shape, generator=gen)
        if key.endswith("running_var"):
            state[key] = 0.5 + noise.abs()
        elif key.endswith("running_mean") or key.endswith("bias"):
            state[key] = 0.1 * noise
        elif len(shape) == 1:  # BN weight
            state[key] = 1.0 + 0.1 * noise
        else:  # conv / linear weight: unit-variance outputs
            fan_in = math.prod(shape[1:])
            state[key] = noise / math.sqrt(fan_in)
    return state


def seeded_input(seed: int = 1) -> torch.Tensor:
    return torch.randn(FIXTURE_INPUT_SHAPE, generator=torch.Generator().manual_seed(seed))
