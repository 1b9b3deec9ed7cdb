"""Pixel attribution for ResNets through captum: one small class per method, behind a registry.

Each method is used as captum's are, ``Method(model, layer).attribute(inputs, target, **options)``,
and `METHODS` maps its name to its class, which carries the method's label, paper, one-line
description, whether it needs a layer, and its options with their defaults:

- saliency (`SaliencyMethod`): |d score / d x| (Simonyan et al. 2013);
- integrated_gradients (`IntegratedGradientsMethod`): path integral of the gradient from a baseline
  (Sundararajan et al. 2017);
- smoothgrad (`SmoothGradMethod`): saliency averaged over noisy copies (Smilkov et al. 2017);
- gradcam (`GradCamMethod`): class-weighted activations of one layer, upsampled (Selvaraju et al. 2017);
- occlusion (`OcclusionMethod`): score drop when a window is replaced by the baseline (Zeiler &
  Fergus 2014);
- deeplift (`DeepLiftMethod`): rescale rule against a baseline (Shrikumar et al. 2017).

`attribute(model, inputs, method)` is the entry point: it checks the arguments, picks the targets,
runs the method in eval mode on the model's device (or on the CPU where the method cannot run
there) and returns an `AttributionResult` with CPU maps. Adding a method takes one subclass of
`AttributionMethod` and its entry in `METHODS`.

The model is evaluated in eval mode, so BatchNorm is a fixed affine map for every method; each
module's mode is restored afterwards. Baselines (Integrated Gradients, DeepLIFT, Occlusion):
"zeros" is the all-zero *normalised* input, i.e. the dataset mean colour; "blur" is a Gaussian-blurred
copy of each image (Sturmfels, Lundberg & Lee 2020, "Visualizing the Impact of Feature Attribution
Baselines"); a black image depends on the normalisation, so it is passed as a tensor
(`black_baseline(mean, std)`; the study layer does this for the name "black").

Integrated Gradients can adapt its steps: with a ``tolerance``, the images whose completeness gap
|sum of the map - (f(x) - f(baseline))| is above ``tolerance * |f(x) - f(baseline)|`` are redone with
twice the steps, up to ``max_steps``; `AttributionResult.steps` and `AttributionResult.gap` report what
each image got.

Layer-wise Relevance Propagation is not offered: captum's LRP has no rule for the addition in a
skip connection (captum#546), so it cannot propagate relevance through a residual unit.
Attributing through the units needs one module per use and no in-place op (captum#578, #1082,
#156), which `resnet_explorer.models.blocks` guarantees; `layer_choices` lists every unit, and the
tests run Grad-CAM on each of them.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import DeviceUnavailableError, resolve_device
from .common import eval_mode


def _captum() -> Any:
    """captum.attr, imported on first use: it brings matplotlib with it (~0.8 s), which every command that
    never attributes (train, the lenses, the CLI's parser, the app's other pages) would otherwise pay."""
    import captum.attr

    return captum.attr

__all__ = [
    "METHODS", "AttributionMethod", "MethodOutput", "SaliencyMethod", "IntegratedGradientsMethod", "SmoothGradMethod",
    "GradCamMethod", "OcclusionMethod", "DeepLiftMethod", "AttributionResult", "attribute", "predict",
    "layer_choices", "default_layer", "method_support", "BASELINES", "black_baseline", "blur",
    "IG_TOLERANCE", "IG_START_STEPS", "IG_MAX_STEPS",
]

BASELINES: Mapping[str, str] = MappingProxyType({  # name -> what the user is told it is
    "zeros": "dataset mean (the all-zero normalised input)",
    "black": "black image",
    "blur": "blurred copy of the image",
})
IG_TOLERANCE = 0.01  # adaptive Integrated Gradients: completeness gap under 1% of f(x) - f(baseline)
IG_START_STEPS = 32  # ... starting from this many steps, doubling ...
IG_MAX_STEPS = 512  # ... up to this many (then the gap is reported as it is)
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
        steps: (N,) int64 Integrated Gradients steps each image got, else None.
    """

    method: str
    maps: torch.Tensor
    targets: torch.Tensor
    delta: torch.Tensor | None
    baselines: torch.Tensor | None
    layer: str | None
    device: str
    note: str = ""
    steps: torch.Tensor | None = None

    @property
    def score_change(self) -> torch.Tensor | None:
        """(N,) f(x)[target] - f(baseline)[target], read off the maps and the delta; None without a delta.

        Negative where the baseline scores higher than the image: the map then sums to a negative number.
        """
        if self.delta is None:
            return None
        return self.maps.sum(dim=(1, 2, 3)) - self.delta

    @property
    def gap(self) -> torch.Tensor | None:
        """(N,) relative completeness gap |delta| / |f(x) - f(baseline)|; None without a delta."""
        change = self.score_change
        if change is None:
            return None
        return self.delta.abs() / change.abs().clamp(min=1e-12)

    def heatmap(self, mode: HeatmapMode = "absolute") -> torch.Tensor:
        """One (N, H, W) map per image.

        Args:
            mode: "absolute": sum over channels of |map| (evidence either way); "positive":
                clamp(sum over channels of map, min=0) (evidence for the target class).

        Returns:
            (N, H, W) float32 on the CPU.
        """
        if mode == "absolute":
            return self.maps.abs().sum(dim=1)
        if mode == "positive":
            return self.maps.sum(dim=1).clamp(min=0)
        raise ValueError(f"unknown heatmap mode {mode!r}; choose one of absolute, positive")


class MethodOutput(NamedTuple):
    """What one method's `AttributionMethod.attribute` returns, on the inputs' device.

    Attributes:
        maps: (N, C, H, W) for a per-channel method, else (N, 1, H, W).
        delta: (N,) convergence delta where the method has one, else None.
        baselines: (N, C, H, W) baselines the method compared against, where it reports them.
        steps: (N,) int64 steps each image got (Integrated Gradients), else None.
    """

    maps: torch.Tensor
    delta: torch.Tensor | None = None
    baselines: torch.Tensor | None = None
    steps: torch.Tensor | None = None


def layer_choices(model: nn.Module) -> list[str]:
    """Layers Grad-CAM can use: the stage outputs "layer1".."layerS", then every unit in depth order."""
    stages = [f"layer{s}" for s in range(1, len(model.stages) + 1)]
    return stages + [name for name, _ in model.units()]


def default_layer(model: nn.Module) -> str:
    """The last unit of the last stage, e.g. "layer3.8" for ResNet-56."""
    return model.units()[-1][0]


def check_inputs(model: nn.Module, inputs: torch.Tensor) -> None:
    """Raise a one-line ValueError unless ``inputs`` is a non-empty float (N, C, H, W) batch for ``model``.

    Args:
        model: its ``spec.in_channels``, where it has one, fixes C.
        inputs: the batch to check.
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or not inputs.is_floating_point():
        got = f"{inputs.dtype} {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a normalised float (N, C, H, W) tensor, got {got}")
    channels = getattr(getattr(model, "spec", None), "in_channels", inputs.shape[1])
    if inputs.shape[0] == 0 or inputs.shape[1] != channels or inputs.shape[2] == 0 or inputs.shape[3] == 0:
        raise ValueError(f"inputs must be (N, {channels}, H, W) with N, H, W >= 1, got {tuple(inputs.shape)}")


def check_positive_int(name: str, value: object, optional: bool = False) -> None:
    """Raise a one-line ValueError naming ``name`` unless ``value`` is an int >= 1 (a bool is not).

    Args:
        name: the option's name, for the message.
        value: the value to check.
        optional: None is accepted too.
    """
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}, got {value!r}")


def black_baseline(mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """A black image in normalised units: (C, 1, 1) holding (0 - mean) / std per channel (broadcasts over H, W)."""
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    return (-mean_t / std_t).view(-1, 1, 1)


def blur(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Gaussian blur of (N, C, H, W) images, per channel, edges replicated.

    Blurring commutes with the per-channel normalisation, so blurring normalised images gives the
    normalised blurred images. ``sigma`` defaults to an eighth of the larger side (2 px at 16 px).
    """
    sigma = max(x.shape[-2:]) / 8 if sigma is None else sigma
    if not sigma > 0:
        return x.clone()
    radius = max(1, min(math.ceil(3 * sigma), max(x.shape[-2:]) - 1))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _baselines(x: torch.Tensor, baseline: str | torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) baselines like ``x``: "zeros", "blur", or a tensor that broadcasts to ``x``, copied."""
    if isinstance(baseline, torch.Tensor):
        try:
            return baseline.detach().to(x.device, x.dtype).expand_as(x).clone()
        except RuntimeError:
            raise ValueError(f"a baseline tensor must broadcast to the inputs {tuple(x.shape)} ((C, H, W), "
                             f"(C, 1, 1) or (N, C, H, W)), got {tuple(baseline.shape)}") from None
    if baseline == "zeros":
        return torch.zeros_like(x)
    if baseline == "blur":
        return blur(x.detach())
    if baseline == "black":
        raise ValueError("a black baseline depends on the normalisation: pass black_baseline(mean, std) as the "
                         "baseline tensor")
    raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)} or pass a tensor")


def _grad_leaf(inputs: torch.Tensor) -> torch.Tensor:
    """``inputs`` as a new leaf that requires grad; the caller's tensor is untouched (captum warns otherwise)."""
    return inputs.detach().requires_grad_()


# --- the methods --------------------------------------------------------------------------------


class AttributionMethod:
    """One attribution method, used as captum's are: ``Method(model, layer).attribute(inputs, target)``.

    A subclass sets the class attributes below and implements `attribute`, whose keyword-only
    arguments are the method's options; `options` is read from that signature.

    The model is used as it is: `attribute` (the module function) puts it in eval mode, on the
    right device, and resolves the targets before calling a method.

    Attributes:
        name: the key in `METHODS`, e.g. "integrated_gradients".
        label: display name, e.g. "Integrated Gradients".
        description: one line on what it computes and costs.
        paper: where it comes from, with a link.
        per_channel: True: one map per input channel (N, C, H, W); False: one per image (N, 1, H, W).
        needs_layer: it attributes at a layer of the model (`layer_choices`).
        cpu_fallback: device type -> one-line reason the method runs on the CPU on that device.
        options: the keyword options of `attribute` and their defaults.

    Args:
        model: a ResNet (or any module with the inputs' device and dtype).
        layer: a name from `layer_choices`; checked for every method, used where `needs_layer`
            (None: `default_layer`).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    paper: ClassVar[str]
    per_channel: ClassVar[bool] = True
    needs_layer: ClassVar[bool] = False
    cpu_fallback: ClassVar[Mapping[str, str]] = MappingProxyType({})
    options: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        params = inspect.signature(cls.attribute).parameters.values()
        cls.options = MappingProxyType({p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY})

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        if layer is not None:
            choices = layer_choices(model)
            if layer not in choices:
                raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(choices)}")
        self.model = model
        self.layer = (layer or default_layer(model)) if self.needs_layer else None

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> MethodOutput:
        """Attribute each image's ``target`` score.

        Args:
            inputs: (N, C, H, W) normalised float on the model's device, in its dtype.
            target: (N,) int64 classes on the same device.

        Returns:
            A `MethodOutput` on the inputs' device.
        """
        raise NotImplementedError


class SaliencyMethod(AttributionMethod):
    """|gradient| of the class score with respect to each input pixel."""

    name = "saliency"
    label = "Saliency"
    description = "one backward pass per image; |gradient| of the class score"
    paper = ("Simonyan, Vedaldi & Zisserman 2013, Deep Inside Convolutional Networks, "
             "https://arxiv.org/abs/1312.6034")

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> MethodOutput:
        return MethodOutput(_captum().Saliency(self.model).attribute(_grad_leaf(inputs), target=target))


class IntegratedGradientsMethod(AttributionMethod):
    """Gradients integrated along the straight path from a baseline to the input."""

    name = "integrated_gradients"
    label = "Integrated Gradients"
    description = "steps forward and backward passes per image; internal_batch_size bounds memory"
    paper = ("Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks, "
             "https://arxiv.org/abs/1703.01365")
    cpu_fallback = MappingProxyType({"mps": "captum's IG uses float64, which MPS lacks (captum#1240): runs on CPU"})

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor, *, steps: int = 50,
                  internal_batch_size: int | None = None, baseline: str | torch.Tensor = "zeros",
                  tolerance: float | None = None, max_steps: int = IG_MAX_STEPS) -> MethodOutput:
        """Integrated gradients with their convergence delta and the steps each image got.

        Args:
            inputs, target: as in `AttributionMethod.attribute`.
            steps: Gauss-Legendre steps (the first try, when ``tolerance`` is given).
            internal_batch_size: at most this many scaled inputs per forward (bounds memory,
                captum#245); None: all N * steps at once.
            baseline: "zeros" (the dataset mean), "blur", or a tensor broadcasting to the inputs
                (e.g. `black_baseline`).
            tolerance: None: ``steps`` for every image. A fraction: images whose completeness gap
                |delta| is above ``tolerance * |f(x) - f(baseline)|`` are redone with twice the
                steps, while that stays within ``max_steps``.
            max_steps: the cap on the doubling.
        """
        check_positive_int("steps", steps)
        check_positive_int("internal_batch_size", internal_batch_size, optional=True)
        check_positive_int("max_steps", max_steps)
        if tolerance is not None and not (isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool)
                                          and 0 < tolerance < 1):
            raise ValueError(f"tolerance must be a fraction between 0 and 1 or None, got {tolerance!r}")
        base = _baselines(inputs, baseline)
        ig = _captum().IntegratedGradients(self.model)
        maps, delta = torch.empty_like(inputs), torch.empty(len(inputs), device=inputs.device)
        used = torch.full((len(inputs),), steps, dtype=torch.int64)
        todo = torch.arange(len(inputs), device=inputs.device)
        while True:
            part, part_delta = ig.attribute(
                inputs[todo], baselines=base[todo], target=target[todo], n_steps=steps,
                internal_batch_size=internal_batch_size, return_convergence_delta=True,
            )
            maps[todo], delta[todo], used[todo.cpu()] = part, part_delta.to(delta.dtype), steps
            if tolerance is None or 2 * steps > max_steps:
                break
            change = part.sum(dim=(1, 2, 3)) - part_delta
            open_ = part_delta.abs() > tolerance * change.abs()
            if not bool(open_.any()):
                break
            todo, steps = todo[open_], 2 * steps
        return MethodOutput(maps, delta, base, used)


class SmoothGradMethod(AttributionMethod):
    """Saliency averaged over noisy copies of each image (NoiseTunnel over Saliency).

    Smilkov et al. scale the noise by each image's own range (x_max - x_min); captum takes one
    stdev per input tensor, so each image gets its own call and its map does not depend on the
    other images in the batch. The noise comes from torch's global RNG.
    """

    name = "smoothgrad"
    label = "SmoothGrad"
    description = "n_samples noisy copies per image, |gradient| averaged; noise from torch's global RNG"
    paper = "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise, https://arxiv.org/abs/1706.03825"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor, *, n_samples: int = 16,
                  stdevs: float = 0.15) -> MethodOutput:
        """SmoothGrad maps, one image at a time.

        Args:
            inputs, target: as in `AttributionMethod.attribute`.
            n_samples: noisy copies per image.
            stdevs: noise std as a fraction of each image's range (x_max - x_min).
        """
        check_positive_int("n_samples", n_samples)
        if isinstance(stdevs, bool) or not isinstance(stdevs, (int, float)) or not stdevs > 0:
            raise ValueError(f"stdevs must be a positive fraction of the input range, got {stdevs!r}")
        tunnel = _captum().NoiseTunnel(_captum().Saliency(self.model))
        maps = []
        for i in range(inputs.shape[0]):
            xi = inputs[i:i + 1]
            sigma = float(stdevs) * float(xi.max() - xi.min())  # 0 for a constant image: plain saliency
            maps.append(tunnel.attribute(xi, nt_type="smoothgrad", nt_samples=n_samples, stdevs=sigma,
                                         target=target[i:i + 1]))
        return MethodOutput(torch.cat(maps))


class GradCamMethod(AttributionMethod):
    """Grad-CAM: one layer's activations weighted by their spatially averaged gradients, upsampled.

    Only evidence for the class is kept (``relu_attributions``, as in the paper, captum#179).
    """

    name = "gradcam"
    label = "Grad-CAM"
    description = "one map per image from one layer, upsampled bilinearly; negative evidence is clipped"
    paper = ("Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks, "
             "https://arxiv.org/abs/1610.02391")
    per_channel = False
    needs_layer = True

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> MethodOutput:
        module = self.model.get_submodule(self.layer)
        cam = _captum().LayerGradCam(self.model, module).attribute(_grad_leaf(inputs), target=target, relu_attributions=True)
        return MethodOutput(_captum().LayerAttribution.interpolate(cam, tuple(inputs.shape[2:]), interpolate_mode="bilinear"))


class OcclusionMethod(AttributionMethod):
    """Score drop when a square window, across all channels, is replaced by the baseline."""

    name = "occlusion"
    label = "Occlusion"
    description = "one forward pass per window position, no gradients; slow for small strides"
    paper = ("Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks, "
             "https://arxiv.org/abs/1311.2901")

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor, *, window: int = 8, stride: int = 4,
                  baseline: str | torch.Tensor = "zeros") -> MethodOutput:
        """Occlusion maps: each pixel's mean score drop over the windows that cover it.

        Args:
            inputs, target: as in `AttributionMethod.attribute`.
            window: side of the square window, at most the input's height and width.
            stride: step of the window.
            baseline: the fill: "zeros" (the dataset mean), "blur", or a tensor broadcasting to the inputs.
        """
        check_positive_int("window", window)
        check_positive_int("stride", stride)
        n, channels, height, width = inputs.shape
        if window > min(height, width):
            raise ValueError(f"window {window} is larger than the {height} x {width} input")
        windows = ((height - window) // stride + 1) * ((width - window) // stride + 1)
        maps = _captum().Occlusion(self.model).attribute(
            inputs, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride),
            baselines=_baselines(inputs, baseline), target=target,
            perturbations_per_eval=max(1, min(windows, 256 // n)),
        )
        return MethodOutput(maps)


class DeepLiftMethod(AttributionMethod):
    """DeepLIFT's rescale rule against a baseline, with its summation-to-delta gap."""

    name = "deeplift"
    label = "DeepLIFT"
    description = "BatchNorm is evaluated in eval mode (a fixed affine map); rescale rule at every ReLU"
    paper = ("Shrikumar, Greenside & Kundaje 2017, Learning Important Features Through Propagating "
             "Activation Differences, https://arxiv.org/abs/1704.02685")

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor, *,
                  baseline: str | torch.Tensor = "zeros") -> MethodOutput:
        """DeepLIFT maps with their convergence delta.

        Args:
            inputs, target: as in `AttributionMethod.attribute`.
            baseline: "zeros" (the dataset mean), "blur", or a tensor broadcasting to the inputs.
        """
        inputs = _grad_leaf(inputs)
        base = _baselines(inputs, baseline)
        maps, delta = _captum().DeepLift(self.model).attribute(inputs, baselines=base, target=target,
                                                     return_convergence_delta=True)
        return MethodOutput(maps, delta, base)


METHODS: Mapping[str, type[AttributionMethod]] = MappingProxyType({
    method.name: method for method in (
        SaliencyMethod, IntegratedGradientsMethod, SmoothGradMethod, GradCamMethod, OcclusionMethod, DeepLiftMethod,
    )
})


def _method_class(method: str) -> type[AttributionMethod]:
    """The registered class for ``method``; a one-line ValueError naming every method otherwise."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[method]


def _method_options(method: type[AttributionMethod], options: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``method`` takes; another method's options are ignored, a name no method takes is refused."""
    known = dict.fromkeys(name for cls in METHODS.values() for name in cls.options)
    unknown = [name for name in options if name not in known]
    if unknown:
        raise TypeError(f"unknown attribution option(s) {', '.join(unknown)}; options: {', '.join(known)}")
    return {name: value for name, value in options.items() if name in method.options}


# --- devices ------------------------------------------------------------------------------------


def _placement(method: str, device_type: str) -> tuple[str, str]:
    """(device type the method runs on, one-line reason when that is a CPU fallback, else "")."""
    reason = METHODS[method].cpu_fallback.get(device_type, "")
    return ("cpu", reason) if reason else (device_type, "")


def _device_type(device: str | torch.device) -> str:
    """The type of the device ``device`` names ("auto" as resolved here), whether present here or not."""
    try:
        return resolve_device(device).type
    except DeviceUnavailableError:  # a well-formed name of a device this machine lacks
        return torch.device(str(device).strip().lower()).type


def method_support(model: nn.Module, device: str | torch.device) -> list[dict]:
    """One row per method: can it run for ``model`` on ``device``, and where.

    ``device`` is not checked for presence, so the rows for "mps" can be read on any machine.

    Args:
        model: a ResNet, possibly on the meta device (then nothing is available).
        device: "auto", "cpu", "cuda", "cuda:N", "mps" or a `torch.device`.

    Returns:
        [{"method", "label", "available", "runs_on" ("cpu", "cuda" or "mps"), "note"}, ...] in
        the order of `METHODS`.

    Raises:
        ValueError: ``device`` is not a device name.
    """
    kind = _device_type(device)
    on_meta = any(p.is_meta for p in model.parameters())
    has_units = hasattr(model, "units") and bool(model.units())
    rows = []
    for name, method in METHODS.items():
        runs_on, reason = _placement(name, kind)
        available, note = True, reason or method.description
        if on_meta:
            available, note = False, "the model has no weights (built on the meta device)"
        elif method.needs_layer and not has_units:
            available, note = False, f"{method.label} needs a ResNet's residual units to pick a layer from"
        rows.append({"method": name, "label": method.label, "available": available, "runs_on": runs_on, "note": note})
    return rows


# --- running a method ---------------------------------------------------------------------------



def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _param_dtype(model: nn.Module) -> torch.dtype:
    param = next(model.parameters(), None)
    return param.dtype if param is not None else torch.float32


def _predict(model: nn.Module, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(classes, probabilities): (N,) each for k=1, else (N, k), most probable first."""
    with torch.no_grad():
        probs = model(x).float().softmax(dim=1)  # (N, classes)
    if k == 1:
        p, classes = probs.max(dim=1)
        return classes, p
    p, classes = probs.topk(min(k, probs.shape[1]), dim=1)
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
    with eval_mode(model):
        classes, p = _predict(model, inputs.detach().to(device, _param_dtype(model)))
    return classes.cpu(), p.float().cpu()


def predict_top(model: nn.Module, inputs: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most probable classes of each image and their softmax probabilities (eval mode).

    Args:
        model: a ResNet on any device; its modes are restored afterwards.
        inputs: (N, C, H, W) normalised float on any device.
        k: how many classes, 1 or more; a net with fewer classes gives all of them.

    Returns:
        (classes (N, k') int64, probabilities (N, k') float32), k' = min(k, classes), most probable
        first, on the CPU.
    """
    check_positive_int("k", k)
    check_inputs(model, inputs)
    device = _model_device(model)
    with eval_mode(model):
        classes, p = _predict(model, inputs.detach().to(device, _param_dtype(model)), max(2, k))
    return classes[:, :k].cpu(), p[:, :k].cpu()


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


def _to_cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().to("cpu", torch.float32)


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str,
    *,
    targets: int | torch.Tensor | None = None,
    layer: str | None = None,
    **options: Any,
) -> AttributionResult:
    """Attribute each image's class score to its pixels with the method registered as ``method``.

    Args:
        model: a ResNet on any device; evaluated in eval mode, every module's mode restored after.
        inputs: (N, C, H, W) normalised float on any device.
        method: a key of `METHODS`.
        targets: None: the predicted classes; an int: that class for every image; an (N,) tensor.
        layer: for a method that `needs_layer` (gradcam): a name from `layer_choices`; None:
            `default_layer`. Checked, and otherwise ignored, for the other methods.
        **options: the method's keyword options (``METHODS[method].options`` holds them with their
            defaults): steps, internal_batch_size, baseline, tolerance and max_steps for
            integrated_gradients; n_samples and stdevs for smoothgrad; window, stride and baseline
            for occlusion; baseline for deeplift. Options of other methods are ignored, so one set of options
            can serve several methods.

    Returns:
        An `AttributionResult` on the CPU.

    Raises:
        ValueError: an unknown method, layer or baseline, a bad input shape, target or option,
            each with the valid choices in one line.
        TypeError: an option no method takes.
    """
    method_class = _method_class(method)
    check_inputs(model, inputs)
    own_options = _method_options(method_class, options)

    model_device = _model_device(model)
    runs_on, note = _placement(method, model_device.type)
    device = model_device if runs_on == model_device.type else torch.device(runs_on)
    with eval_mode(model):
        # The fallback runs a copy, so the caller's model never changes device.
        net = model if device == model_device else copy.deepcopy(model).to(device)
        explainer = method_class(net, layer)
        x = inputs.detach().to(device, _param_dtype(net))
        target = _resolve_targets(net, x, targets)
        out = explainer.attribute(x, target, **own_options)
    return AttributionResult(
        method=method, maps=_to_cpu(out.maps), targets=target.cpu(), delta=_to_cpu(out.delta),
        baselines=_to_cpu(out.baselines), layer=explainer.layer, device=str(device), note=note,
        steps=None if out.steps is None else out.steps.cpu(),
    )
