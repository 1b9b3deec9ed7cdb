"""`TrainConfig`: everything a run needs besides the model, validated on construction."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from ..limits import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_IMAGE_SIZE,
    MAX_SEED,
    MAX_STEPS,
    MAX_TEST_IMAGES,
    MAX_TRAIN_IMAGES,
    MAX_WORLD_SIZE,
    check_int,
)

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
_OPTIONAL = ("steps", "train_size", "test_size", "eval_size")  # None: the budget is epochs / the whole split


@dataclass(frozen=True)
class TrainConfig:
    """A brief training run.

    Args:
        dataset: "shapes" (embedded, default), "cifar10", "cifar100" or "folder:PATH".
        data_root: where CIFAR lives (python-pickle layout); None: ./data.
        download: fetch CIFAR when it is missing (only when asked).
        train_size, test_size: subsample the splits (None: the dataset's default).
        image_size: side of the square images in pixels (shapes draws at it, others resize).
        epochs, steps: the budget; give exactly one (epochs may be fractional).
        batch_size: images per step and process: a step of a run on `world_size` processes trains on
            world_size x batch_size images (torchvision's reference scripts count the batch the same way).
        optimizer: "sgd" (momentum, He et al. 2015) or "adamw".
        lr: peak learning rate (one-cycle and cosine) or the start rate (step, constant).
        momentum: SGD momentum (AdamW's beta1).
        weight_decay: L2 penalty (SGD) or decoupled decay (AdamW).
        decay_all: also decay BN scales/shifts and biases, as He et al. 2015 (default: conv and fc
            weights only, the common practice today).
        schedule: "onecycle" (Smith 2018: linear warm-up, then linear decay), "cosine", "step"
            (x0.1 at 50% and 75%, as He et al. 2015's 32k/48k of 64k iterations), "constant".
        warmup: one-cycle only: the share of the budget spent warming up from a tenth of `lr`.
        label_smoothing: cross-entropy label smoothing.
        augment: random crop (4-pixel padding) and horizontal flip, He et al. 2015 Sec. 4.2.
        seed: model init, data order and augmentation; repeatable bit for bit on CPU.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        precision: "auto" is bf16 autocast on CUDA and float32 elsewhere.
        channels_last: None is on for CUDA, off elsewhere.
        probe_every: run the probes every k steps (0: never).
        log_every: training loss/accuracy averaged over this many steps per logged row (step 1 is a row of
            its own, so the first point of a curve exists after one step).
        eval_every: held-out evaluation every this many steps on `eval_size` images (0: automatic,
            a cadence and subset that keep evaluation within 10% of the run's compute). The run
            always ends with an evaluation on the whole held-out split, unless it was stopped.
        eval_size: images per intermediate evaluation (None: automatic; the whole split when
            `eval_every` is given).
        world_size: processes training the run together (torchrun, `training.distributed`); 1 is an
            ordinary run, and a run.json written before this field existed reads as 1.
    """

    dataset: str = "shapes"
    data_root: str | None = None
    download: bool = False
    train_size: int | None = None
    test_size: int | None = None
    image_size: int = 32
    epochs: float | None = None
    steps: int | None = None
    batch_size: int = 128
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_all: bool = False
    schedule: Literal["onecycle", "cosine", "step", "constant"] = "onecycle"
    warmup: float = 0.25
    label_smoothing: float = 0.0
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool | None = None
    probe_every: int = 10
    log_every: int = 10
    eval_every: int = 0
    eval_size: int | None = None
    world_size: int = 1

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("give exactly one budget: epochs or steps")
        if self.epochs is not None and not (isinstance(self.epochs, (int, float)) and not isinstance(self.epochs, bool)
                                            and math.isfinite(self.epochs) and 0 < self.epochs <= MAX_EPOCHS):
            raise ValueError(f"epochs must be a number above 0 and at most {MAX_EPOCHS:,}, got {self.epochs!r}")
        for name, high in (("steps", MAX_STEPS), ("batch_size", MAX_BATCH_SIZE), ("log_every", MAX_STEPS),
                           ("train_size", MAX_TRAIN_IMAGES), ("test_size", MAX_TEST_IMAGES),
                           ("eval_size", MAX_TEST_IMAGES), ("image_size", MAX_IMAGE_SIZE),
                           ("world_size", MAX_WORLD_SIZE)):
            if getattr(self, name) is not None or name not in _OPTIONAL:
                check_int(name, getattr(self, name), 1, high)
        for name, high in (("probe_every", MAX_STEPS), ("eval_every", MAX_STEPS), ("seed", MAX_SEED)):
            check_int(name, getattr(self, name), 0, high)
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not isinstance(self.weight_decay, (int, float)) or not math.isfinite(self.weight_decay) \
                or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not isinstance(self.warmup, (int, float)) or not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a share of the budget in [0, 1), got {self.warmup!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.dataset, str) or not self.dataset:
            from ..data import DATASETS

            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}")

    @property
    def data_key(self) -> tuple:
        """The fields that decide the data: two configs with equal keys load the same images."""
        return (self.dataset, self.data_root, self.seed, self.train_size, self.test_size, self.image_size,
                self.download)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config `to_dict` wrote; unknown keys are refused, naming them (as `ModelSpec.from_dict`)."""
        if not isinstance(data, dict):
            raise ValueError(f"a TrainConfig is a JSON object of fields, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(sorted(unknown))}")
        return cls(**data)
