"""What every analysis of a trained net shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["AnalysisStopped", "eval_mode"]


class AnalysisStopped(RuntimeError):
    """The caller's stop event was set: the analysis ended early and returned nothing."""


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside, then every module's own mode back (a frozen BN may differ from its net)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
