"""The trainer: a brief, repeatable training run that reports through events.

Listeners (the CLI's progress bar, the app's live charts, the run store's writer) receive
`Event`s; the trainer itself writes nothing and prints nothing.

Three promises, each tested:
- Stop is prompt: the stop flag is checked before every training step and between evaluation
  batches, so a stopped run ends within one step or one evaluation batch (it is not evaluated
  again on the way out).
- Held-out evaluation is bounded: by default its cadence and subset are chosen from the budget so
  that it costs at most `EVAL_SHARE` of the run's compute (`eval_schedule`); the last evaluation
  of a finished run uses the whole split.
- Divergence is named: a non-finite loss, or a logged loss above `DIVERGE_FACTOR` times the
  starting loss (at least chance level, ln of the class count) for `DIVERGE_PATIENCE` logged rows
  in a row, ends the run "diverged" at that step.

Under torchrun (`training.distributed`) the same loop runs on every process, wrapped in PyTorch's
DistributedDataParallel: each rank trains on its slice of every global batch, every decision that
ends the loop is collective, and rank 0 alone emits events (writes, prints) and runs the probes.
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
from torch.nn.parallel import DistributedDataParallel

from ..data import ImageData, augment_batch, load_data, normalize
from ..models import ModelSpec, ResNet, build_model
from .config import TrainConfig
from .distributed import all_reduce_sum, any_rank, broadcast_buffers, current_world, local_device, shard
from .probes import ProbeRecord, ProbeSet, measure_responses

EventKind = Literal["start", "step", "eval", "probe", "responses_eval", "phase", "done"]
Status = Literal["running", "done", "stopped", "diverged", "failed"]

EVAL_SHARE = 0.10  # held-out evaluation's share of a run's compute, by default
FORWARD_COST = 1 / 3  # an evaluated image costs about a third of a trained one (forward only, no backward)
EVAL_SUBSET = 512  # images per intermediate evaluation, at most (the last one uses the whole split)
MAX_EVALS = 20  # intermediate evaluations per run, at most
RESPONSE_IMAGES = 256  # held-out images for the eval-mode responses at the end of a run
EVAL_BATCH_FACTOR = 4  # evaluation batches are this many training batches (at most 1024 images): without
# gradients only one layer's activations live at a time, so the run's peak memory stays training's
DIVERGE_FACTOR = 10.0  # a logged loss this many times the starting loss ...
DIVERGE_PATIENCE = 3  # ... for this many logged rows in a row is a divergence


@dataclass(frozen=True)
class Started:
    """The "start" event's payload: the run is set up and its first step is next."""

    total_steps: int
    steps_per_epoch: int
    device: str
    bf16: bool
    channels_last: bool
    model: ResNet
    data: ImageData
    spec: ModelSpec  # the spec trained, with the data's classes and input channels
    eval_steps: list[int]  # steps after which a held-out subset is evaluated (the end is not listed)
    eval_images: int  # images per intermediate evaluation
    result: TrainResult  # holds every row as it is recorded: read rows there rather than keep copies
    distributed: dict[str, Any] | None = None  # several processes: world_size, backend, global_batch, probes


@dataclass(frozen=True)
class Phase:
    """The "phase" event's payload: training, or evaluating batch `batch` of `batches`."""

    phase: Literal["training", "evaluating"]
    batch: int = 0
    batches: int = 0


@dataclass(frozen=True)
class Ended:
    """The "done" event's payload, however the run ended."""

    status: Status
    message: str
    seconds: float


Row = dict[str, Any]  # one row of a run table (columns in `runs.TABLES`)
Payload = Started | Row | ProbeRecord | list[Row] | Phase | Ended


@dataclass(frozen=True)
class Event:
    """What a listener receives. `step` counts optimizer steps completed.

    Kinds and payloads (`data`): "start" `Started`; "step" a metrics row; "eval" an evaluation
    row; "probe" a `ProbeRecord`; "responses_eval" the eval-mode response rows on held-out
    images at the end of a finished run; "phase" `Phase`; "done" `Ended`.
    """

    kind: EventKind
    step: int
    epoch: float
    data: Payload


Listener = Callable[[Event], None]


class ListenerError(RuntimeError):
    """Raised by a listener that cannot go on (e.g. the run store's disk is full): the run ends
    "failed" with this error's text as its message."""


@dataclass
class TrainResult:
    """A run's outcome and every row it recorded; the one place rows live while a run goes on.

    The trainer appends each row before it emits the event that announces it, so a listener
    (the run store's writer) reads rows here rather than keeping copies.

    Attributes:
        status: "done", "stopped", "diverged" or "failed" at the end ("running" before).
        message: one line saying why it ended (the step, the error).
        steps: optimizer steps completed; total_steps: the budget in steps.
        seconds: wall time of the loop; eval_seconds: the part spent evaluating.
        model: the trained model (on the run's device); data: the data it trained on.
        metrics, evals: logged training rows and held-out evaluation rows (columns in `runs.TABLES`).
        residual_norms, grad_flow, responses: probe rows (training mode, on probe steps).
        responses_eval: eval-mode responses on held-out images at the end of a finished run.
    """

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
    responses_eval: list[dict] = field(default_factory=list)
    eval_seconds: float = 0.0


def load_config_data(config: TrainConfig) -> ImageData:
    """The data a config asks for (one place that unpacks the config's data fields)."""
    return load_data(config.dataset, root=config.data_root, seed=config.seed, train_size=config.train_size,
                     test_size=config.test_size, download=config.download, image_size=config.image_size)


def load_run_data(config: TrainConfig) -> ImageData:
    """The data of a saved run's config, for an analysis: the config is read as data, not as instructions,
    so nothing is downloaded and no folder is created, whatever its `download` and `data_root` say (a
    run folder from elsewhere could otherwise fetch CIFAR into any folder it names). Only training
    downloads, and only when its user asks."""
    return load_config_data(config.replace(download=False))


def _lr_lambda(schedule: str, total: int, warmup: float = 0.25) -> Callable[[int], float]:
    """Multiplier of the peak rate after `i` steps."""
    if schedule == "constant":
        return lambda i: 1.0
    if schedule == "step":
        return lambda i: 0.1 ** ((i >= 0.5 * total) + (i >= 0.75 * total))
    if schedule == "cosine":
        return lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total))
    warm = int(warmup * total)  # one-cycle: linear warm-up from 0.1, then linear decay to ~0

    def onecycle(i: int) -> float:
        if i < warm:
            return 0.1 + 0.9 * i / warm
        return max(0.0, 1 - (i - warm) / max(1, total - warm)) * 0.999 + 0.001

    return onecycle


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # By default no weight decay on BN parameters and biases (common practice: decay on BN scales
    # only shrinks them and the next conv undoes it). `decay_all` decays every parameter, as
    # He et al. 2015 did; it is what lets BN scales, and with them the responses of Fig. 7, shrink.
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 or config.decay_all]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 and not config.decay_all]
    groups = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)


def eval_schedule(total_steps: int, batch_size: int, n_test: int, eval_every: int = 0,
                  eval_size: int | None = None) -> tuple[list[int], int]:
    """When to evaluate before the end, and on how many held-out images.

    With `eval_every` > 0: every that many steps (before the last), on `eval_size` images or the
    whole split. With 0 (automatic): evenly spaced evaluations on at most `EVAL_SUBSET` images,
    as many as fit with the final whole-split evaluation into `EVAL_SHARE` of the training
    compute (an evaluated image costing `FORWARD_COST` of a trained one), at most `MAX_EVALS`.

    Returns:
        (steps, subset): the steps after which to evaluate (ascending, all < total_steps) and
        the images per intermediate evaluation.
    """
    if eval_every:
        subset = min(n_test, eval_size or n_test)
        return list(range(eval_every, total_steps, eval_every)), subset
    subset = min(n_test, eval_size or EVAL_SUBSET)
    budget = EVAL_SHARE * total_steps * batch_size / FORWARD_COST  # in evaluated images
    count = int(max(0.0, budget - n_test) // max(1, subset))
    count = min(count, MAX_EVALS, total_steps - 1)
    steps = sorted({round(total_steps * (k + 1) / (count + 1)) for k in range(count)} - {0, total_steps})
    return steps, subset


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: Sequence[float], std: Sequence[float],
             batch_size: int = 500, autocast: Any = None, channels_last: bool = False,
             stop: threading.Event | None = None,
             progress: Callable[[int, int], None] | None = None) -> tuple[float, float] | None:
    """Mean cross-entropy and accuracy on a held-out split, in eval mode (mode restored).

    Checks `stop` before every batch and returns None when it is set; calls `progress(i, n)`
    before batch i of n.
    """
    sums = _eval_sums(model, images, labels, mean, std, batch_size, autocast, channels_last, stop, progress)
    if sums is None:
        return None
    n = max(1, len(images))
    return sums[0].item() / n, sums[1].item() / n


@torch.no_grad()
def _eval_sums(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: Sequence[float],
               std: Sequence[float], batch_size: int, autocast: Any, channels_last: bool,
               stop: threading.Event | None,
               progress: Callable[[int, int], None] | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`evaluate`'s summed cross-entropy and count of correct predictions (0-d tensors on the images'
    device), or None when stopped."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=images.device)
    correct = torch.zeros((), device=images.device, dtype=torch.long)
    starts = range(0, len(images), batch_size)
    try:
        for i, start in enumerate(starts):
            if stop is not None and stop.is_set():
                return None
            if progress is not None:
                progress(i, len(starts))
            x = normalize(images[start:start + batch_size], mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels[start:start + batch_size]
            with autocast or contextlib.nullcontext():
                out = model(x)
            total_loss += nn.functional.cross_entropy(out.float(), y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
    finally:
        model.train(was_training)
    return total_loss, correct


class _Run:
    """One training run's moving parts, so that `train` reads as a flat loop."""

    def __init__(self, model_or_spec: ResNet | ModelSpec | str, config: TrainConfig, data: ImageData | None,
                 listeners: list[Listener], stop: threading.Event | None) -> None:
        self.config, self.listeners, self.stop = config, listeners, stop
        self.world = world = current_world()
        if config.world_size != world.size:
            raise ValueError(f"the config says {config.world_size} process(es) (world_size) but {world.size} "
                             "are training: set world_size to the number of processes torchrun started")
        self.device = device = local_device(config.device, world)
        self.data = data = load_config_data(config) if data is None else data
        self.model = model = self._model(model_or_spec, config, data, device)
        self.n_train = len(data.train_images)
        self.global_batch = config.batch_size * world.size  # images per step over all processes
        if self.n_train < self.global_batch:
            per = f" ({world.size} processes x {config.batch_size})" if world.distributed else ""
            raise ValueError(f"batch size {self.global_batch}{per} is larger than the training set "
                             f"({self.n_train} images)")
        self.steps_per_epoch = self.n_train // self.global_batch
        self.total = (config.steps if config.steps is not None
                      else max(1, math.ceil(config.epochs * self.steps_per_epoch)))
        self.bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else None
        self.channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
        if self.channels_last:
            self.model = model = model.to(memory_format=torch.channels_last)
        self.train_x, self.train_y = data.train_images.to(device), data.train_labels.to(device)
        self.test_x, self.test_y = data.test_images.to(device), data.test_labels.to(device)
        self.eval_steps, self.eval_subset = eval_schedule(self.total, self.global_batch, len(self.test_x),
                                                          config.eval_every, config.eval_size)
        self.eval_batch = max(config.batch_size, min(1024, EVAL_BATCH_FACTOR * config.batch_size))
        # every rank builds the same model from config.seed; DDP also broadcasts rank 0's weights here
        # and all-reduces (averages) the gradients in backward, so `.grad` after backward is the global one
        self.forward_model: nn.Module = model
        if world.distributed:
            self.forward_model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = build_optimizer(model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(config.schedule, self.total, config.warmup))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.order = torch.Generator().manual_seed(config.seed)
        # the same data order on every rank (`shard` slices it); augmentation draws differ per rank:
        # rank r seeds with seed + 1 + r (rank 0, like a one-process run, with seed + 1)
        self.aug = torch.Generator(device=device).manual_seed(config.seed + 1 + world.rank)
        # probes on rank 0 only, hooked on the inner module: their residual norms and responses describe
        # rank 0's slice of the batch, their gradients are DDP's all-reduced ones (the global batch's)
        self.probes = ProbeSet(model) if config.probe_every and world.main else None
        self.result = TrainResult("running", "", 0, self.total, 0.0, model, data)
        self.window: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        self.start_loss: float | None = None
        self.high_since: int | None = None  # first step of the current run of too-high logged losses
        self.high_rows = 0

    @staticmethod
    def _model(model_or_spec: ResNet | ModelSpec | str, config: TrainConfig, data: ImageData,
               device: torch.device) -> ResNet:
        if isinstance(model_or_spec, ResNet):
            spec = model_or_spec.spec
            if spec.num_classes != data.num_classes or spec.in_channels != data.in_channels:
                raise ValueError(
                    f"the model expects {spec.in_channels}-channel images and {spec.num_classes} classes; "
                    f"{data.name} has {data.in_channels} channels and {data.num_classes} classes"
                )
            return model_or_spec.to(device)
        spec = ModelSpec.from_name(model_or_spec) if isinstance(model_or_spec, str) else model_or_spec
        spec = spec.replace(num_classes=data.num_classes, in_channels=data.in_channels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return build_model(spec, device=device, confirm_large=True)

    def emit(self, kind: EventKind, step: int, payload: Payload) -> None:
        if not self.world.main:  # rank 0 alone writes the run folder and prints
            return
        event = Event(kind, step, step / self.steps_per_epoch, payload)
        for listener in self.listeners:
            listener(event)

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def stop_requested(self) -> bool:
        """Whether any rank was asked to stop: collective, every rank calls it before every step."""
        return any_rank(self.stopping(), self.world, self.device)

    def distributed_info(self) -> dict[str, Any] | None:
        """What run.json records about the processes (None for one process)."""
        world = self.world
        if not world.distributed:
            return None
        return {"world_size": world.size, "backend": world.backend, "batch_per_process": self.config.batch_size,
                "global_batch": self.global_batch,
                "probes": "rank 0: residual norms and responses on rank 0's slice of the batch; gradient flow "
                          "after DDP's all-reduce (the global batch)"}

    def step(self, step: int, idx: torch.Tensor) -> None:
        """One optimizer step on the batch `idx`; probes when due."""
        config = self.config
        x = normalize(self.train_x[idx], self.data.mean, self.data.std)
        if config.augment:
            x = augment_batch(x, self.aug)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.train_y[idx]
        probing = self.probes is not None and step % config.probe_every == 0
        with (self.probes.forward() if probing else contextlib.nullcontext()):
            with self.autocast or contextlib.nullcontext():
                out = self.forward_model(x)
                loss = self.criterion(out.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if probing:
            self.probes.after_backward()
        self.optimizer.step()
        self.scheduler.step()
        self.window.append((loss.detach(), (out.argmax(1) == y).sum(), len(y)))
        if probing:
            record = self.probes.after_step(step + 1)
            self.result.residual_norms += record.residual_norms
            self.result.grad_flow += record.grad_flow
            self.result.responses += record.responses
            self.emit("probe", step + 1, record)

    def log(self, step: int, started: float) -> bool:
        """Average the window into a metrics row; False (and status "diverged") on a blow-up."""
        # one all-reduce of [per-step losses..., correct, seen]: every rank gets the global values, so
        # all of them judge divergence alike; a step's loss is the mean of the ranks' equal-sized slices
        values = torch.cat([torch.stack([w[0] for w in self.window]).float(),
                            torch.stack([w[1] for w in self.window]).sum().float().reshape(1),
                            torch.tensor([float(sum(w[2] for w in self.window))], device=self.device)])
        values = all_reduce_sum(values, self.world).tolist()
        losses = [v / self.world.size for v in values[:-2]]
        correct, seen = int(values[-2]), int(values[-1])
        self.window = []
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
        if bad is not None:
            return self._diverged(f"loss became {losses[bad]} at step {step - len(losses) + bad + 1}")
        mean = sum(losses) / len(losses)
        if self.start_loss is None:  # never below chance level: a fine-tuned net may start near 0
            self.start_loss = max(losses[0], math.log(max(2, self.data.num_classes)))
        if mean > DIVERGE_FACTOR * self.start_loss:
            self.high_since = self.high_since or step
            self.high_rows += 1
            if self.high_rows >= DIVERGE_PATIENCE:
                return self._diverged(f"loss {mean:.3g} stayed above {DIVERGE_FACTOR:g}x its starting value "
                                      f"{self.start_loss:.3g} from step {self.high_since} to step {step}")
        else:
            self.high_since, self.high_rows = None, 0
        row = {"step": step, "epoch": round(step / self.steps_per_epoch, 4), "loss": mean,
               "accuracy": correct / seen, "lr": self.scheduler.get_last_lr()[0],
               "seconds": round(time.perf_counter() - started, 3)}
        self.result.metrics.append(row)
        self.emit("step", step, row)
        return True

    def _diverged(self, what: str) -> bool:
        self.result.status = "diverged"
        self.result.message = f"{what} (lr {self.config.lr}); try a lower learning rate"
        return False

    def evaluate(self, step: int, images: int) -> None:
        """Evaluate on the first `images` held-out images; nothing is recorded if stopped midway."""
        started = time.perf_counter()

        def progress(i: int, n: int) -> None:
            self.emit("phase", step, Phase("evaluating", i + 1, n))

        # several processes: each evaluates its share of the images with rank 0's model (buffers
        # broadcast first); one all-reduce of the sums and of a stopped flag, so every rank records the
        # same row, or none
        broadcast_buffers(self.model, self.world)
        part = torch.tensor_split(torch.arange(images), self.world.size)[self.world.rank]
        first, last = (int(part[0]), int(part[-1]) + 1) if len(part) else (0, 0)
        sums = _eval_sums(self.model, self.test_x[first:last], self.test_y[first:last], self.data.mean,
                          self.data.std, self.eval_batch, self.autocast, self.channels_last, self.stop, progress)
        stopped = sums is None
        zero = torch.zeros((), device=self.device)
        loss, correct = (zero, zero) if stopped else sums
        totals = all_reduce_sum(torch.stack([loss.float(), correct.float(), zero + last - first, zero + stopped]),
                                self.world).tolist()
        self.result.eval_seconds += time.perf_counter() - started
        if totals[3] > 0:
            return
        n = max(1.0, totals[2])
        row = {"step": step, "epoch": round(step / self.steps_per_epoch, 4), "loss": totals[0] / n,
               "accuracy": totals[1] / n, "images": images}
        self.result.evals.append(row)
        self.emit("eval", step, row)
        self.emit("phase", step, Phase("training"))

    def close(self, step: int, started: float) -> None:
        """However the run ended: remove the probes' hooks, record the totals, emit "done"."""
        if self.probes is not None:
            self.probes.clear()
        result = self.result
        result.steps = step
        result.seconds = time.perf_counter() - started
        self.emit("done", step, Ended(result.status, result.message, result.seconds))

    def finish(self, step: int) -> None:
        """A finished run's last evaluation on the whole held-out split, then eval-mode responses;
        a stop that lands during them ends the run "stopped" (it is not evaluated again)."""
        result = self.result
        self.evaluate(step, len(self.test_x))
        if self.probes is not None and not self.stopping():
            x = normalize(self.test_x[:RESPONSE_IMAGES], self.data.mean, self.data.std)
            with self.autocast or contextlib.nullcontext():
                result.responses_eval = measure_responses(self.model, x, step)
            self.emit("responses_eval", step, result.responses_eval)
        # the last evaluation is missing only when a stop cut it short (a collective outcome on every rank)
        if not result.evals or result.evals[-1]["step"] != step:
            result.status, result.message = "stopped", f"stopped on request after step {step}"


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
        data: preloaded data (else loaded from the config by `load_config_data`).
        listeners: called with every `Event`, on this thread; on rank 0 only when several processes
            train together (`training.distributed`: join the process group first, and set
            `config.world_size` to their number).
        stop: set it to stop before the next step or evaluation batch; the run ends "stopped".
            A KeyboardInterrupt raised inside the run (a second Ctrl-C) ends it "stopped" at once.

    Returns:
        The result; `status` is "done", "stopped", "diverged" (`message` names the step) or
        "failed" (e.g. CUDA out of memory).

    Raises:
        ValueError: bad configuration, data or device, before any step runs.
    """
    run = _Run(model_or_spec, config, data, list(listeners), stop)
    result, total = run.result, run.total
    evals_due = set(run.eval_steps)
    started = time.perf_counter()
    step = 0
    run.model.train()
    try:
        run.emit("start", 0, Started(total, run.steps_per_epoch, str(run.device), run.bf16, run.channels_last,
                                     run.model, run.data, run.model.spec, run.eval_steps, run.eval_subset, result,
                                     run.distributed_info()))
        while result.status == "running":
            if step % run.steps_per_epoch == 0:
                perm = torch.randperm(run.n_train, generator=run.order).to(run.device)
            if step >= total:
                result.status, result.message = "done", f"trained {step} steps"
                break
            if run.stop_requested():
                result.status, result.message = "stopped", f"stopped on request after step {step}"
                break
            run.step(step, shard(perm, step % run.steps_per_epoch, config.batch_size, run.world))
            step += 1
            # step 1 is logged too, so a live chart has its first point after one step, not log_every
            if (step % config.log_every == 0 or step in (1, total)) and not run.log(step, started):
                break
            if step in evals_due:
                run.evaluate(step, run.eval_subset)
        # every rank left the loop after the same step: give all of them rank 0's model (what it saves)
        broadcast_buffers(run.model, run.world)
        if result.status == "done":
            run.finish(step)
    except KeyboardInterrupt:  # a second Ctrl-C (the CLI's first one sets `stop`): end now, keep the run
        result.status, result.message = "stopped", f"interrupted at step {step}"
    except ListenerError as err:
        result.status, result.message = "failed", str(err)
    except torch.cuda.OutOfMemoryError:
        result.status = "failed"
        result.message = (f"CUDA out of memory at step {step} with batch size {config.batch_size}; "
                          "try a smaller batch or model")
    except Exception as err:  # a failed run is reported, not raised: the app keeps running
        result.status, result.message = "failed", f"{type(err).__name__} at step {step}: {err}"
    finally:
        run.close(step, started)
    return result
