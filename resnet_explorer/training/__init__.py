"""Training: the config, the trainer with its events, and the probes."""

from .config import TrainConfig
from .probes import ProbeRecord, ProbeSet, response_modules
from .trainer import Event, TrainResult, evaluate, train

__all__ = ["TrainConfig", "ProbeRecord", "ProbeSet", "response_modules", "Event", "TrainResult", "evaluate", "train"]
