"""The trainer: a brief, repeatable training run that reports through events.

Listeners (the CLI's progress bar, the app's live charts, the run store's writer) receive
`Event`s; the trainer itself writes nothing and prints nothing.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..data import ImageData, augment_batch, load_data, normalize
from ..devices import resolve_device
from ..models import ModelSpec, ResNet, build_model
from .config import TrainConfig
from .probes import ProbeSet

EventKind = Literal["start", "step", "eval", "probe", "done"]
Status = Literal["running", "done", "stopped", "diverged", "failed"]


@dataclass(frozen=True)
class Event:
    """What a listener receives. `step` counts optimizer steps completed."""

    kind: EventKind
    step: int
    epoch: float
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


@dataclass
class TrainResult:
    status: Status
    message: str
    steps: int
    total_steps: int
    seconds: float
    model: ResNet
    data: ImageData
    metrics: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    residual_norms: list[dict] = field(default_factory=list)
    grad_flow: list[dict] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)


def _lr_lambda(schedule: str, total: int) -> Callable[[int], float]:
    """Multiplier of the peak rate after `i` steps."""
    if schedule == "constant":
        return lambda i: 1.0
    if schedule == "step":
        return lambda i: 0.1 ** ((i >= 0.5 * total) + (i >= 0.75 * total))
    if schedule == "cosine":
        return lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total))
    warm = max(1, int(0.25 * total))  # one-cycle: linear warm-up, then linear decay to ~0

    def onecycle(i: int) -> float:
        if i < warm:
            return 0.1 + 0.9 * i / warm
        return max(0.0, 1 - (i - warm) / max(1, total - warm)) * 0.999 + 0.001

    return onecycle


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on BN parameters and biases (standard practice; decay on BN scales only
    # shrinks them and the next conv undoes it).
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: Sequence[float], std: Sequence[float],
             batch_size: int = 500, autocast: Any = None, channels_last: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a held-out split, in eval mode (mode restored)."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=images.device)
    correct = torch.zeros((), device=images.device, dtype=torch.long)
    try:
        for i in range(0, len(images), batch_size):
            x = normalize(images[i:i + batch_size], mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels[i:i + batch_size]
            with autocast or contextlib.nullcontext():
                out = model(x)
            total_loss += nn.functional.cross_entropy(out.float(), y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
    finally:
        model.train(was_training)
    n = max(1, len(images))
    return total_loss.item() / n, correct.item() / n


def train(
    model_or_spec: ResNet | ModelSpec | str,
    config: TrainConfig,
    *,
    data: ImageData | None = None,
    listeners: Iterable[Listener] = (),
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train briefly and report through `listeners`.

    Args:
        model_or_spec: a built `ResNet` (trained in place), or a spec/name built here with
            `config.seed`; a spec's classes and input channels are set from the data.
        config: the run.
        data: preloaded data (else loaded from `config.dataset`).
        listeners: called with every `Event`, on this thread.
        stop: set it to stop after the current step; the run keeps its status "stopped".

    Returns:
        The result; `status` is "done", "stopped", "diverged" (non-finite loss: `message` names
        the step) or "failed" (e.g. CUDA out of memory).

    Raises:
        ValueError: bad configuration, data or device, before any step runs.
    """
    listeners = list(listeners)
    device = resolve_device(config.device)
    if data is None:
        data = load_data(config.dataset, root=config.data_root, seed=config.seed, train_size=config.train_size,
                         test_size=config.test_size, download=config.download)
    if isinstance(model_or_spec, ResNet):
        model = model_or_spec.to(device)
        if model.spec.num_classes != data.num_classes or model.spec.in_channels != data.in_channels:
            raise ValueError(
                f"the model expects {model.spec.in_channels}-channel images and {model.spec.num_classes} classes; "
                f"{data.name} has {data.in_channels} channels and {data.num_classes} classes"
            )
    else:
        spec = ModelSpec.from_name(model_or_spec) if isinstance(model_or_spec, str) else model_or_spec
        spec = spec.replace(num_classes=data.num_classes, in_channels=data.in_channels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_model(spec, device=device, confirm_large=True)
    n_train = len(data.train_images)
    if n_train < config.batch_size:
        raise ValueError(f"batch size {config.batch_size} is larger than the training set ({n_train} images)")
    steps_per_epoch = n_train // config.batch_size
    total = config.steps if config.steps is not None else max(1, math.ceil(config.epochs * steps_per_epoch))

    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else None
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_x, train_y = data.train_images.to(device), data.train_labels.to(device)
    test_x, test_y = data.test_images.to(device), data.test_labels.to(device)
    mean, std = data.mean, data.std

    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config.schedule, total))
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    order = torch.Generator().manual_seed(config.seed)
    aug = torch.Generator(device=device).manual_seed(config.seed + 1)
    probes = ProbeSet(model) if config.probe_every else None

    result = TrainResult("running", "", 0, total, 0.0, model, data)

    def emit(kind: EventKind, step: int, payload: dict[str, Any]) -> None:
        event = Event(kind, step, step / steps_per_epoch, payload)
        for listener in listeners:
            listener(event)

    def run_eval(step: int) -> None:
        # evaluation batches no larger than training ones: the run's peak memory is training's
        loss, acc = evaluate(model, test_x, test_y, mean, std, batch_size=config.batch_size, autocast=autocast,
                             channels_last=channels_last)
        row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss, "accuracy": acc}
        result.evals.append(row)
        emit("eval", step, row)

    emit("start", 0, {"total_steps": total, "steps_per_epoch": steps_per_epoch, "device": str(device),
                      "bf16": bf16, "channels_last": channels_last, "model": model, "data": data})
    started = time.perf_counter()
    step = 0
    window_loss: list[torch.Tensor] = []
    window_correct: list[torch.Tensor] = []
    window_seen = 0
    last_eval = -1
    model.train()
    try:
        while step < total and result.status == "running":
            perm = torch.randperm(n_train, generator=order).to(device)
            for b in range(steps_per_epoch):
                if step >= total:
                    break
                if stop is not None and stop.is_set():
                    result.status, result.message = "stopped", f"stopped on request after step {step}"
                    break
                idx = perm[b * config.batch_size:(b + 1) * config.batch_size]
                x = normalize(train_x[idx], mean, std)
                if config.augment:
                    x = augment_batch(x, aug)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = train_y[idx]
                probing = probes is not None and step % config.probe_every == 0
                with (probes.forward() if probing else contextlib.nullcontext()):
                    with autocast or contextlib.nullcontext():
                        out = model(x)
                        loss = criterion(out.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if probing:
                    probes.after_backward()
                optimizer.step()
                scheduler.step()
                step += 1
                window_loss.append(loss.detach())
                window_correct.append((out.argmax(1) == y).sum())
                window_seen += len(y)
                if probing:
                    record = probes.after_step(step)
                    result.residual_norms += record.residual_norms
                    result.grad_flow += record.grad_flow
                    result.responses += record.responses
                    emit("probe", step, {"record": record})
                if step % config.log_every == 0 or step == total:
                    losses = torch.stack(window_loss).float().tolist()
                    correct = int(torch.stack(window_correct).sum().item())
                    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
                    if bad is not None:
                        at = step - len(losses) + bad + 1
                        result.status = "diverged"
                        result.message = (f"loss became {losses[bad]} at step {at} (lr {config.lr}); "
                                          "try a lower learning rate")
                        break
                    row = {"step": step, "epoch": round(step / steps_per_epoch, 4),
                           "loss": sum(losses) / len(losses), "accuracy": correct / window_seen,
                           "lr": scheduler.get_last_lr()[0], "seconds": round(time.perf_counter() - started, 3)}
                    result.metrics.append(row)
                    emit("step", step, row)
                    window_loss, window_correct, window_seen = [], [], 0
                epoch_end = config.eval_every == 0 and step % steps_per_epoch == 0
                if epoch_end or (config.eval_every and step % config.eval_every == 0):
                    run_eval(step)
                    last_eval = step
            else:
                continue
            break
        if result.status == "running":
            result.status, result.message = "done", f"trained {step} steps"
        if result.status in ("done", "stopped") and step > 0 and last_eval != step:
            run_eval(step)
    except torch.cuda.OutOfMemoryError:
        result.status = "failed"
        result.message = (f"CUDA out of memory at step {step} with batch size {config.batch_size}; "
                          "try a smaller batch or model")
    except Exception as err:  # a failed run is reported, not raised: the app keeps running
        result.status, result.message = "failed", f"{type(err).__name__} at step {step}: {err}"
    finally:
        if probes is not None:
            probes._reset()
        result.steps = step
        result.seconds = time.perf_counter() - started
        emit("done", step, {"status": result.status, "message": result.message, "seconds": result.seconds})
    return result
