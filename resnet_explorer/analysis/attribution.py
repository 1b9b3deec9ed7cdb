"""Pixel attribution for ResNets through captum: six methods behind one call.

`attribute(model, inputs, method)` returns an `AttributionResult` with CPU maps, whatever device
the model is on. Methods (`METHODS` holds their labels and papers):

- saliency: |d score / d x| (Simonyan et al. 2013);
- integrated_gradients: path integral of the gradient from a baseline (Sundararajan et al. 2017);
- smoothgrad: saliency averaged over noisy copies (Smilkov et al. 2017);
- gradcam: class-weighted activations of one layer, upsampled (Selvaraju et al. 2017);
- occlusion: score drop when a window is replaced by the baseline (Zeiler & Fergus 2014);
- deeplift: rescale rule against a baseline (Shrikumar et al. 2017).

The model is evaluated in eval mode, so BatchNorm is a fixed affine map for every method; each
module's mode is restored afterwards. The baseline "zeros" is the all-zero *normalised* input,
i.e. the dataset mean colour, not black.

Layer-wise Relevance Propagation is not offered: captum's LRP has no rule for the addition in a
skip connection (captum#546), so it cannot propagate relevance through a residual unit.
Attributing through the units needs one module per use and no in-place op (captum#578, #1082,
#156), which `resnet_explorer.models.blocks` guarantees; `layer_choices` lists every unit, and the
tests run Grad-CAM on each of them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import torch
from captum.attr import DeepLift, IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion, Saliency
from torch import nn

from ..devices import DEVICE_CHOICES, resolve_device

__all__ = [
    "METHODS", "MethodInfo", "AttributionResult", "attribute", "predict", "layer_choices", "default_layer",
    "method_support",
]


@dataclass(frozen=True)
class MethodInfo:
    """One attribution method: its key, display label, map shape and paper."""

    name: str
    label: str
    per_channel: bool  # False: one map per image (N, 1, H, W) rather than one per input channel
    paper: str


METHODS: Mapping[str, MethodInfo] = MappingProxyType({
    info.name: info for info in (
        MethodInfo("saliency", "Saliency", True,
                   "Simonyan, Vedaldi & Zisserman 2013, Deep Inside Convolutional Networks, "
                   "https://arxiv.org/abs/1312.6034"),
        MethodInfo("integrated_gradients", "Integrated Gradients", True,
                   "Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks, "
                   "https://arxiv.org/abs/1703.01365"),
        MethodInfo("smoothgrad", "SmoothGrad", True,
                   "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise, https://arxiv.org/abs/1706.03825"),
        MethodInfo("gradcam", "Grad-CAM", False,
                   "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks, "
                   "https://arxiv.org/abs/1610.02391"),
        MethodInfo("occlusion", "Occlusion", True,
                   "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks, "
                   "https://arxiv.org/abs/1311.2901"),
        MethodInfo("deeplift", "DeepLIFT", True,
                   "Shrikumar, Greenside & Kundaje 2017, Learning Important Features Through Propagating "
                   "Activation Differences, https://arxiv.org/abs/1704.02685"),
    )
})

# Where a method cannot run on a device type, it runs on the CPU instead, for this reason.
_CPU_FALLBACK: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "integrated_gradients": MappingProxyType({
        "mps": "captum's IG uses float64, which MPS lacks (captum#1240): runs on CPU",
    }),
})

_NOTES: Mapping[str, str] = MappingProxyType({
    "saliency": "one backward pass per image; |gradient| of the class score",
    "integrated_gradients": "steps forward and backward passes per image; internal_batch_size bounds memory",
    "smoothgrad": "n_samples noisy copies per image, |gradient| averaged; noise from torch's global RNG",
    "gradcam": "one map per image from one layer, upsampled bilinearly; negative evidence is clipped",
    "occlusion": "one forward pass per window position, no gradients; slow for small strides",
    "deeplift": "BatchNorm is evaluated in eval mode (a fixed affine map); rescale rule at every ReLU",
})

BASELINES: tuple[str, ...] = ("zeros",)
HeatmapMode = Literal["absolute", "positive"]


@dataclass
class AttributionResult:
    """Maps for a batch, on the CPU, and what produced them.

    Attributes:
        method: a key of `METHODS`.
        maps: float32 (N, C, H, W) for per-channel methods; (N, 1, H, W) for gradcam, >= 0.
        targets: (N,) int64, the classes attributed.
        delta: (N,) convergence delta (integrated_gradients, deeplift): sum of the map minus
            f(x)[target] - f(baseline)[target]; else None.
        baselines: (N, C, H, W) baselines used (integrated_gradients, deeplift), else None.
        layer: gradcam's layer name, else None.
        device: where it ran, after any CPU fallback (e.g. "cpu", "cuda:0").
        note: one line, e.g. why it ran on the CPU.
    """

    method: str
    maps: torch.Tensor
    targets: torch.Tensor
    delta: torch.Tensor | None
    baselines: torch.Tensor | None
    layer: str | None
    device: str
    note: str = ""

    def heatmap(self, mode: HeatmapMode = "absolute") -> torch.Tensor:
        """One (N, H, W) map per image.

        Args:
            mode: "absolute": sum over channels of |map| (evidence either way); "positive":
                clamp(sum over channels of map, min=0) (evidence for the target class).
        """
        if mode == "absolute":
            return self.maps.abs().sum(dim=1)
        if mode == "positive":
            return self.maps.sum(dim=1).clamp(min=0)
        raise ValueError(f"unknown heatmap mode {mode!r}; choose one of absolute, positive")


def _method_info(method: str) -> MethodInfo:
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[method]


def layer_choices(model: nn.Module) -> list[str]:
    """Layers Grad-CAM can use: the stage outputs "layer1".."layerS", then every unit in depth order."""
    stages = [f"layer{s}" for s in range(1, len(model.stages) + 1)]
    return stages + [name for name, _ in model.blocks()]


def default_layer(model: nn.Module) -> str:
    """The last unit of the last stage, e.g. "layer3.8" for ResNet-56."""
    return model.blocks()[-1][0]


def _placement(method: str, device: str | torch.device) -> tuple[str, str]:
    """(device type the method runs on, one-line reason when that is a CPU fallback, else "")."""
    kind = torch.device(device).type
    reason = _CPU_FALLBACK.get(method, {}).get(kind, "")
    return ("cpu", reason) if reason else (kind, "")


def _device_type(device: str | torch.device) -> str:
    name = str(device).strip().lower()
    if name == "auto":
        return resolve_device("auto").type
    try:
        kind = torch.device(name).type
    except (RuntimeError, ValueError):
        kind = ""
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    return kind


def method_support(model: nn.Module, device: str | torch.device) -> list[dict]:
    """One row per method: can it run for ``model`` on ``device``, and where.

    ``device`` is not checked for presence, so the rows for "mps" can be read on any machine.

    Returns:
        [{"method", "label", "available", "runs_on" ("cpu", "cuda" or "mps"), "note"}, ...] in
        the order of `METHODS`.
    """
    kind = _device_type(device)
    on_meta = any(p.is_meta for p in model.parameters())
    has_blocks = hasattr(model, "blocks") and bool(model.blocks())
    rows = []
    for name, info in METHODS.items():
        runs_on, reason = _placement(name, kind)
        available, note = True, reason or _NOTES[name]
        if on_meta:
            available, note = False, "the model has no weights (built on the meta device)"
        elif name == "gradcam" and not has_blocks:
            available, note = False, "Grad-CAM needs a ResNet's residual units to pick a layer from"
        rows.append({"method": name, "label": info.label, "available": available, "runs_on": runs_on, "note": note})
    return rows


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside, then every module's own mode back (a frozen BN may differ from its net)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _param_dtype(model: nn.Module) -> torch.dtype:
    param = next(model.parameters(), None)
    return param.dtype if param is not None else torch.float32


def check_inputs(model: nn.Module, inputs: torch.Tensor) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or not inputs.is_floating_point():
        got = f"{inputs.dtype} {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a normalised float (N, C, H, W) tensor, got {got}")
    channels = getattr(getattr(model, "spec", None), "in_channels", inputs.shape[1])
    if inputs.shape[0] == 0 or inputs.shape[1] != channels or inputs.shape[2] == 0 or inputs.shape[3] == 0:
        raise ValueError(f"inputs must be (N, {channels}, H, W) with N, H, W >= 1, got {tuple(inputs.shape)}")


def check_positive_int(name: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}, got {value!r}")


def _predict(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        probs = model(x).softmax(dim=1)  # (N, classes)
    p, classes = probs.max(dim=1)
    return classes, p


def predict(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and their softmax probabilities, in eval mode, without gradients.

    Args:
        model: a ResNet on any device; its modes are restored afterwards.
        inputs: (N, C, H, W) normalised float on any device.

    Returns:
        (classes (N,) int64, probabilities (N,) float32), both on the CPU.
    """
    check_inputs(model, inputs)
    device = _model_device(model)
    with _eval_mode(model):
        classes, p = _predict(model, inputs.detach().to(device, _param_dtype(model)))
    return classes.cpu(), p.float().cpu()


def _resolve_targets(model: nn.Module, x: torch.Tensor, targets: int | torch.Tensor | None) -> torch.Tensor:
    """(N,) int64 on ``x``'s device: the predicted classes, one class for all, or one per image."""
    n = x.shape[0]
    if targets is None:
        return _predict(model, x)[0]
    classes = getattr(getattr(model, "spec", None), "num_classes", None)
    if isinstance(targets, bool) or not isinstance(targets, (int, torch.Tensor)):
        raise ValueError(f"targets must be None, an int or an (N,) integer tensor, got {type(targets).__name__}")
    if isinstance(targets, int):
        targets = torch.full((n,), targets, dtype=torch.int64)
    elif targets.shape != (n,) or targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be an integer tensor of shape ({n},), got {targets.dtype} "
                         f"{tuple(targets.shape)}")
    targets = targets.to(x.device, torch.int64)
    if classes is not None and bool(((targets < 0) | (targets >= classes)).any()):
        raise ValueError(f"targets must lie in [0, {classes}), got {targets.tolist()}")
    return targets


def _baselines(x: torch.Tensor, baseline: str | torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, torch.Tensor):
        if baseline.shape not in (x.shape, x.shape[1:]):
            raise ValueError(f"a baseline tensor must be (C, H, W) or (N, C, H, W) like the inputs "
                             f"{tuple(x.shape)}, got {tuple(baseline.shape)}")
        return baseline.detach().to(x.device, x.dtype).expand_as(x).clone()
    if baseline == "zeros":
        return torch.zeros_like(x)
    raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)} or pass a tensor")


def _smoothgrad(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, n_samples: int, stdevs: float):
    """NoiseTunnel(Saliency), one image at a time.

    Smilkov et al. scale the noise by each image's own range (x_max - x_min); captum takes one
    stdev per input tensor, so each image gets its own call and its map does not depend on the
    other images in the batch.
    """
    tunnel = NoiseTunnel(Saliency(model))
    maps = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        sigma = stdevs * float(xi.max() - xi.min())  # 0 for a constant image: plain saliency
        maps.append(tunnel.attribute(xi, nt_type="smoothgrad", nt_samples=n_samples, stdevs=sigma,
                                     target=targets[i:i + 1]))
    return torch.cat(maps)


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str,
    *,
    targets: int | torch.Tensor | None = None,
    layer: str | None = None,
    steps: int = 50,
    internal_batch_size: int | None = None,
    n_samples: int = 16,
    stdevs: float = 0.15,
    window: int = 8,
    stride: int = 4,
    baseline: str | torch.Tensor = "zeros",
) -> AttributionResult:
    """Attribute each image's class score to its pixels.

    Args:
        model: a ResNet on any device; evaluated in eval mode, every module's mode restored after.
        inputs: (N, C, H, W) normalised float on any device.
        method: a key of `METHODS`.
        targets: None: the predicted classes; an int: that class for every image; an (N,) tensor.
        layer: gradcam only (ignored by the others, but checked): a name from `layer_choices`;
            None: `default_layer`.
        steps: integrated_gradients: Gauss-Legendre steps.
        internal_batch_size: integrated_gradients: at most this many scaled inputs per forward
            (bounds memory, captum#245); None: all N * steps at once.
        n_samples: smoothgrad: noisy copies per image.
        stdevs: smoothgrad: noise std as a fraction of each image's range (x_max - x_min).
        window: occlusion: side of the square window, which covers all channels.
        stride: occlusion: step of the window.
        baseline: integrated_gradients, deeplift, occlusion (the fill value): "zeros", the
            all-zero normalised input (the dataset mean), or a (C, H, W) / (N, C, H, W) tensor.

    Returns:
        An `AttributionResult` on the CPU.

    Raises:
        ValueError: an unknown method, layer or baseline, a bad input shape, target or option,
            each with the valid choices in one line.
    """
    _method_info(method)
    check_inputs(model, inputs)
    choices = layer_choices(model) if (method == "gradcam" or layer is not None) else []
    if layer is not None and layer not in choices:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(choices)}")
    for name, value in (("steps", steps), ("n_samples", n_samples), ("window", window), ("stride", stride)):
        check_positive_int(name, value)
    check_positive_int("internal_batch_size", internal_batch_size, optional=True)
    if isinstance(stdevs, bool) or not isinstance(stdevs, (int, float)) or not stdevs > 0:
        raise ValueError(f"stdevs must be a positive fraction of the input range, got {stdevs!r}")
    if method == "occlusion" and window > min(inputs.shape[2], inputs.shape[3]):
        raise ValueError(f"window {window} is larger than the {inputs.shape[2]} x {inputs.shape[3]} input")

    model_device = _model_device(model)
    runs_on, note = _placement(method, model_device)
    device = model_device if runs_on == model_device.type else torch.device(runs_on)
    with _eval_mode(model):
        # The fallback runs a copy, so the caller's model never changes device.
        net = model if device == model_device else copy.deepcopy(model).to(device)
        x = inputs.detach().to(device, _param_dtype(net))
        if method in ("saliency", "gradcam", "deeplift"):
            x.requires_grad_()  # a detached copy, so the caller's tensor is untouched; captum warns otherwise
        target = _resolve_targets(net, x, targets)
        delta = base = used_layer = None
        if method == "saliency":
            maps = Saliency(net).attribute(x, target=target)
        elif method == "integrated_gradients":
            base = _baselines(x, baseline)
            maps, delta = IntegratedGradients(net).attribute(
                x, baselines=base, target=target, n_steps=steps, internal_batch_size=internal_batch_size,
                return_convergence_delta=True,
            )
        elif method == "smoothgrad":
            maps = _smoothgrad(net, x, target, n_samples, float(stdevs))
        elif method == "gradcam":
            used_layer = layer or default_layer(net)
            module = net.get_submodule(used_layer)
            # relu_attributions: keep only evidence for the class, as in the paper (captum#179).
            cam = LayerGradCam(net, module).attribute(x, target=target, relu_attributions=True)  # (N, 1, h, w)
            maps = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
        elif method == "occlusion":
            windows = ((x.shape[2] - window) // stride + 1) * ((x.shape[3] - window) // stride + 1)
            maps = Occlusion(net).attribute(
                x, sliding_window_shapes=(x.shape[1], window, window), strides=(x.shape[1], stride, stride),
                baselines=_baselines(x, baseline), target=target,
                perturbations_per_eval=max(1, min(windows, 256 // x.shape[0])),
            )
        else:  # deeplift
            base = _baselines(x, baseline)
            maps, delta = DeepLift(net).attribute(x, baselines=base, target=target, return_convergence_delta=True)

    def cpu(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().to("cpu", torch.float32)

    return AttributionResult(
        method=method, maps=cpu(maps), targets=target.cpu(), delta=cpu(delta), baselines=cpu(base),
        layer=used_layer, device=str(device), note=note,
    )
