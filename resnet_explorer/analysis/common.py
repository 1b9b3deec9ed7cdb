"""What every analysis of a finished run shares."""

from __future__ import annotations

__all__ = ["AnalysisStopped"]


class AnalysisStopped(RuntimeError):
    """The caller's stop event was set: the analysis ended early and returned nothing."""
