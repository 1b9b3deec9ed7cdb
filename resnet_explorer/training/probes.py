"""Probes: hooks that reduce what a network does inside to a few scalars per layer.

On a probe step the trainer calls, in order::

    with probes.forward():            # hooks live only inside this block, removed in `finally`
        loss = criterion(model(x), y)
    loss.backward()
    probes.after_backward()           # gradient statistics, weight snapshot
    optimizer.step()
    record = probes.after_step(step)  # update/weight ratios; one host sync for everything

Every statistic stays a 0-d tensor on the model's device until `after_step` moves them all to the
host at once, so a probe step costs one synchronisation. Activations are never kept: each hook
reduces its tensor to a scalar and lets it go.

What is measured:
- residual norms, per unit: ||F(x)|| at `residual_tap` and ||x|| at `shortcut_tap`, the per-sample
  L2 norm averaged over the batch, and their ratio (ratio of the means). Plain units: F only.
- gradient flow, per parameterised module (conv, BN, fc): the L2 norm of its gradient, the mean
  |gradient|, the L2 norm of its weights, and ||w_after - w_before|| / ||w_before|| for the step.
- responses: the standard deviation of each 3x3 conv's output after the BN that follows it in
  the same unit (He et al. 2015, Fig. 7: "after BN and before nonlinearity"). A 3x3 conv that no BN
  follows inside its unit (the last conv of a pre-activation unit) is measured at its own output.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.resnet import ResNet


@dataclass
class ProbeRecord:
    """One probe step's rows, ready for the run store's CSV files."""

    step: int
    residual_norms: list[dict] = field(default_factory=list)  # step, unit, stage, residual_norm, shortcut_norm, ratio
    grad_flow: list[dict] = field(default_factory=list)  # step, layer, grad_norm, grad_abs_mean, weight_norm, update_ratio
    responses: list[dict] = field(default_factory=list)  # step, layer, std


def response_modules(model: ResNet) -> list[tuple[str, nn.Module]]:
    """(3x3 conv name, module whose output is its response) in depth order."""
    found: list[tuple[str, nn.Module]] = []

    def scan(prefix: str, parent: nn.Module) -> None:
        children = list(parent.named_children())
        for i, (name, child) in enumerate(children):
            if isinstance(child, nn.Conv2d) and child.kernel_size == (3, 3):
                following = children[i + 1][1] if i + 1 < len(children) else None
                found.append((prefix + name, following if isinstance(following, nn.BatchNorm2d) else child))

    scan("", model)  # the CIFAR stem's 3x3 conv
    for unit_name, unit in model.units():
        scan(unit_name + ".", unit)
    return found


def _sample_norm(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float().flatten(1).norm(dim=1).mean()


class ProbeSet:
    """Residual-norm, gradient-flow and response probes for one model.

    Args:
        model: a `ResNet` (its units carry `residual_tap` / `shortcut_tap`).
        residual, gradients, responses: which probes to run.
    """

    def __init__(self, model: ResNet, residual: bool = True, gradients: bool = True, responses: bool = True) -> None:
        self.model = model
        self.use_residual, self.use_gradients, self.use_responses = residual, gradients, responses
        self.units = model.units()
        self.response_targets = response_modules(model) if responses else []
        # modules that own parameters directly, with their parameter lists (fixed order)
        self.layers: list[tuple[str, list[nn.Parameter]]] = [
            (name, list(m.parameters(recurse=False)))
            for name, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False))
        ]
        self._flat = [p for _, ps in self.layers for p in ps]
        self._counts = [len(ps) for _, ps in self.layers]
        self._numels = [sum(p.numel() for p in ps) for _, ps in self.layers]
        self.clear()

    def clear(self) -> None:
        """Drop every statistic held for the current probe step."""
        self._f: dict[str, torch.Tensor] = {}
        self._x: dict[str, torch.Tensor] = {}
        self._std: dict[str, torch.Tensor] = {}
        self._grad_sq: torch.Tensor | None = None
        self._grad_abs: torch.Tensor | None = None
        self._weight_sq: torch.Tensor | None = None
        self._snapshot: list[torch.Tensor] | None = None

    @contextmanager
    def forward(self):
        """Hooks for the residual-norm and response probes, removed on exit even on error."""
        self.clear()
        handles = []
        try:
            if self.use_residual:
                for name, unit in self.units:
                    handles.append(unit.residual_tap.register_forward_hook(self._store(self._f, name)))
                    if unit.shortcut_tap is not None:
                        handles.append(unit.shortcut_tap.register_forward_hook(self._store(self._x, name)))
            for name, module in self.response_targets:
                handles.append(module.register_forward_hook(self._store_std(name)))
            yield self
        finally:
            for h in handles:
                h.remove()

    @staticmethod
    def _store(target: dict, name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            target[name] = _sample_norm(output)

        return hook

    def _store_std(self, name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            self._std[name] = output.detach().float().std()

        return hook

    def after_backward(self) -> None:
        """Per-layer gradient and weight statistics; snapshot the weights for the update ratio."""
        if not self.use_gradients:
            return
        params = self._flat
        grads = [p.grad.detach().float() if p.grad is not None else torch.zeros_like(p, dtype=torch.float32)
                 for p in params]
        sq = torch.stack(torch._foreach_norm(grads)) ** 2
        absum = torch.stack([g.abs().sum() for g in grads])
        wsq = torch.stack(torch._foreach_norm([p.detach().float() for p in params])) ** 2
        index = torch.repeat_interleave(torch.arange(len(self.layers), device=sq.device),
                                        torch.tensor(self._counts, device=sq.device))
        zeros = torch.zeros(len(self.layers), device=sq.device)
        self._grad_sq = zeros.index_add(0, index, sq)
        self._grad_abs = zeros.index_add(0, index, absum)
        self._weight_sq = zeros.index_add(0, index, wsq)
        self._snapshot = [p.detach().clone() for p in params]

    def after_step(self, step: int) -> ProbeRecord:
        """Finish the probe step: update ratios, then everything to the host in one transfer."""
        record = ProbeRecord(step)
        names = [n for n, _ in self.units]
        tensors: list[torch.Tensor] = []
        slots: list[tuple[str, str]] = []
        for n in names:
            for kind, source in (("f", self._f), ("x", self._x)):
                if n in source:
                    tensors.append(source[n])
                    slots.append((kind, n))
        for name, value in self._std.items():
            tensors.append(value)
            slots.append(("std", name))
        if self._grad_sq is not None and self._snapshot is not None:
            delta = torch._foreach_sub([p.detach() for p in self._flat], self._snapshot)
            dsq = torch.stack(torch._foreach_norm([d.float() for d in delta])) ** 2
            index = torch.repeat_interleave(torch.arange(len(self.layers), device=dsq.device),
                                            torch.tensor(self._counts, device=dsq.device))
            update_sq = torch.zeros(len(self.layers), device=dsq.device).index_add(0, index, dsq)
            tensors += [self._grad_sq, self._grad_abs, self._weight_sq, update_sq]
        flat = torch.cat([t.reshape(-1) for t in tensors]).tolist() if tensors else []

        values: dict[tuple[str, str], float] = {}
        for i, slot in enumerate(slots):
            values[slot] = flat[i]
        for name, _ in self.units:
            if ("f", name) not in values:
                continue
            f = values[("f", name)]
            x = values.get(("x", name), math.nan)
            record.residual_norms.append({
                "step": step, "unit": name, "stage": int(name.split(".")[0][len("layer"):]),
                "residual_norm": f, "shortcut_norm": x, "ratio": f / x if x and not math.isnan(x) else math.nan,
            })
        for name, _ in self.response_targets:
            if ("std", name) in values:
                record.responses.append({"step": step, "layer": name, "std": values[("std", name)]})
        if self._grad_sq is not None:
            k = len(self.layers)
            rest = flat[len(slots):]
            grad_sq, grad_abs, weight_sq, update_sq = (rest[i * k:(i + 1) * k] for i in range(4))
            for i, (name, _) in enumerate(self.layers):
                w = math.sqrt(weight_sq[i])
                record.grad_flow.append({
                    "step": step, "layer": name, "grad_norm": math.sqrt(grad_sq[i]),
                    "grad_abs_mean": grad_abs[i] / self._numels[i], "weight_norm": w,
                    "update_ratio": math.sqrt(update_sq[i]) / w if w > 0 else math.nan,
                })
        self.clear()
        return record


@torch.no_grad()
def measure_responses(model: ResNet, images: torch.Tensor, step: int) -> list[dict]:
    """Response std of every 3x3 layer in eval mode (running BN statistics) on held-out `images`.

    He et al. 2015 (Fig. 7) measure responses of trained nets; in training mode each BN output is
    normalised by its own batch, so its std is almost exactly sqrt(mean gamma^2 + var beta) and
    says little about the input. In eval mode the running statistics are used, as at test time.

    Args:
        model: the trained model (its mode is restored).
        images: normalised float images on the model's device, one batch.
        step: the step the rows are recorded at.

    Returns:
        Rows (step, layer, std) in depth order.
    """
    probes = ProbeSet(model, residual=False, gradients=False, responses=True)
    was_training = model.training
    model.eval()
    try:
        with probes.forward():
            model(images)
        return probes.after_step(step).responses
    finally:
        model.train(was_training)
        probes.clear()
