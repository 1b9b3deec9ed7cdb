"""Attribution core against answers computed a second way, on a tiny model (widths 8-16-32)."""

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.analysis import (
    METHODS,
    AttributionMethod,
    AttributionResult,
    ImageError,
    attribute,
    default_layer,
    layer_choices,
    load_image,
    mask_share,
    method_support,
    predict,
    sanity_check,
)
from resnet_explorer.analysis import attribution as attribution_module
from resnet_explorer.analysis import images as images_module
from resnet_explorer.analysis.attribution import GradCamMethod, _placement
from resnet_explorer.analysis.checks import _randomise, _spearman

pytestmark = pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")

TINY = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


@pytest.fixture
def model():
    net = build_model(TINY, device="cpu")
    # Non-trivial BN statistics and affine parameters, so eval mode is not the identity.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


@pytest.fixture
def x():
    return torch.randn(2, 3, 32, 32)


def hook_count(model):
    return sum(len(getattr(m, d)) for m in model.modules() for d in HOOK_DICTS)


def scores(model, x, targets):
    with torch.no_grad():
        return model(x)[torch.arange(x.shape[0]), targets]


# --- shapes, metadata ---------------------------------------------------------------------------


def test_methods_registry():
    assert list(METHODS) == ["saliency", "integrated_gradients", "smoothgrad", "gradcam", "occlusion", "deeplift"]
    assert [name for name, info in METHODS.items() if not info.per_channel] == ["gradcam"]
    assert all(info.name == name and info.label and "arxiv.org" in info.paper for name, info in METHODS.items())
    assert METHODS["integrated_gradients"].label == "Integrated Gradients"
    with pytest.raises(TypeError):
        METHODS["new"] = METHODS["saliency"]


def test_registry_entries_describe_their_method():
    assert all(issubclass(cls, AttributionMethod) for cls in METHODS.values())
    assert [name for name, cls in METHODS.items() if cls.needs_layer] == ["gradcam"]
    assert all(cls.description and "\n" not in cls.description for cls in METHODS.values())
    assert {name: dict(cls.options) for name, cls in METHODS.items()} == {
        "saliency": {}, "integrated_gradients": {"steps": 50, "internal_batch_size": None, "baseline": "zeros",
                                              "tolerance": None, "max_steps": 512},
        "smoothgrad": {"n_samples": 16, "stdevs": 0.15}, "gradcam": {}, "occlusion": {"window": 8, "stride": 4,
                                                                                      "baseline": "zeros"},
        "deeplift": {"baseline": "zeros"},
    }


@pytest.mark.parametrize("method", list(METHODS))
def test_registry_methods_map_the_input_shape(model, method):
    """Each class, used directly as captum's are, gives (N, C or 1, H, W) maps on a non-square input."""
    cls = METHODS[method]
    x = torch.randn(3, 3, 16, 24)
    explainer = cls(model.eval(), "layer2.0" if cls.needs_layer else None)
    out = explainer.attribute(x, torch.tensor([0, 4, 9]), **({"steps": 4} if "steps" in cls.options else {}))
    assert out.maps.shape == (3, 3 if cls.per_channel else 1, 16, 24)
    assert torch.isfinite(out.maps).all() and out.maps.abs().sum() > 0
    assert (out.delta is None) == (out.baselines is None)
    assert not x.requires_grad and hook_count(model) == 0


def test_unknown_method_or_option_names_the_known_ones(model, x):
    with pytest.raises(ValueError, match="choose one of " + ", ".join(METHODS)):
        attribute(model, x, "guided_backprop")
    with pytest.raises(TypeError, match="step.*steps, internal_batch_size, baseline, tolerance, max_steps, n_samples, stdevs, window"):
        attribute(model, x, "integrated_gradients", step=4)
    saliency = attribute(model, x, "saliency", targets=0)  # another method's options are ignored
    assert torch.equal(attribute(model, x, "saliency", targets=0, steps=4, window=3).maps, saliency.maps)
    with pytest.raises(ValueError, match="unknown layer"):
        GradCamMethod(model, "fc")


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_shapes_and_metadata(model, x, method):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = attribute(model, x, method, steps=8, n_samples=4)
    channels = 3 if METHODS[method].per_channel else 1
    assert result.method == method
    assert result.maps.shape == (2, channels, 32, 32)
    assert result.maps.dtype == torch.float32 and result.maps.device.type == "cpu"
    assert torch.isfinite(result.maps).all() and result.maps.abs().sum() > 0
    assert result.targets.dtype == torch.int64 and result.targets.shape == (2,)
    assert result.device == "cpu" and result.note == ""
    has_delta = method in ("integrated_gradients", "deeplift")
    assert (result.delta is not None) == has_delta
    assert (result.baselines is not None) == has_delta
    if has_delta:
        assert result.delta.shape == (2,) and result.delta.dtype == torch.float32
        assert result.baselines.shape == x.shape and (result.baselines == 0).all()
    assert result.layer == ("layer3.0" if method == "gradcam" else None)
    if method == "gradcam":
        assert (result.maps >= 0).all()
    assert result.heatmap().shape == (2, 32, 32)
    # eval mode inside (BN statistics untouched), every module's mode restored, no hook left
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert hook_count(model) == 0


def test_heatmap_modes():
    maps = torch.tensor([[[[1.0, -2.0]], [[-3.0, 1.0]]]])  # (1, 2, 1, 2)
    result = AttributionResult("saliency", maps, torch.tensor([0]), None, None, None, "cpu")
    assert result.heatmap("absolute").tolist() == [[[4.0, 3.0]]]
    assert result.heatmap("positive").tolist() == [[[0.0, 0.0]]]
    result.maps = -maps
    assert result.heatmap("positive").tolist() == [[[2.0, 1.0]]]
    with pytest.raises(ValueError, match="absolute, positive"):
        result.heatmap("signed")


def test_layer_choices_and_default(model):
    assert layer_choices(model) == ["layer1", "layer2", "layer3", "layer1.0", "layer2.0", "layer3.0"]
    assert default_layer(model) == "layer3.0"
    deeper = build_model(TINY.replace(layers=(2, 1, 3)), device="cpu")
    assert layer_choices(deeper)[3:] == ["layer1.0", "layer1.1", "layer2.0", "layer3.0", "layer3.1", "layer3.2"]
    assert default_layer(deeper) == "layer3.2"


@pytest.mark.parametrize("spec", [TINY, TINY.plain(), TINY.replace(pre_activation=True), TINY.replace(shortcut="B")],
                         ids=["resnet", "plain", "preact", "projection"])
def test_gradcam_on_every_layer(spec, x):
    model = build_model(spec, device="cpu")
    for layer in layer_choices(model):
        result = attribute(model, x, "gradcam", layer=layer)
        assert result.layer == layer
        assert result.maps.shape == (2, 1, 32, 32) and (result.maps >= 0).all()
        assert torch.isfinite(result.maps).all()
        assert hook_count(model) == 0


def test_gradcam_equals_hand_computation(model, x):
    targets = torch.tensor([1, 4])
    result = attribute(model, x, "gradcam", targets=targets, layer="layer2.0")
    model.eval()
    seen = {}
    handle = model.layer2[0].register_forward_hook(lambda m, a, o: seen.__setitem__("a", o))
    try:
        out = model(x)
    finally:
        handle.remove()
    acts = seen["a"]  # (N, K, h, w)
    (grads,) = torch.autograd.grad(out[torch.arange(2), targets].sum(), acts)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # Grad-CAM's alpha_k: spatially averaged gradients
    cam = (weights * acts).sum(dim=1, keepdim=True).relu()
    expected = F.interpolate(cam, size=(32, 32), mode="bilinear")
    assert torch.allclose(result.maps, expected.detach(), atol=1e-6)


# --- oracles --------------------------------------------------------------------------------------


def test_integrated_gradients_completeness(model, x):
    result = attribute(model, x, "integrated_gradients", steps=50)
    t = result.targets
    gap = scores(model.eval(), x, t) - scores(model, torch.zeros_like(x), t)
    sums = result.maps.sum(dim=(1, 2, 3))
    assert torch.allclose(sums - gap, result.delta, atol=1e-4)
    assert (result.delta.abs() <= 0.01 * gap.abs().clamp(min=1e-3)).all()  # 50 steps converge
    assert gap.abs().min() > 1e-3  # the check is not vacuous


def test_integrated_gradients_internal_batch_size(model, x):
    """It bounds the batch the model sees (captum#245) and leaves the result alone."""
    sizes = []
    handle = model.conv1.register_forward_pre_hook(lambda m, a: sizes.append(a[0].shape[0]))
    try:
        whole = attribute(model, x, "integrated_gradients", targets=0, steps=10)
        largest_whole, sizes[:] = max(sizes), []
        parts = attribute(model, x, "integrated_gradients", targets=0, steps=10, internal_batch_size=4)
    finally:
        handle.remove()
    assert largest_whole == 20 and max(sizes) == 4
    assert torch.allclose(whole.maps, parts.maps, atol=1e-5)


def test_saliency_is_the_input_gradient(model, x):
    targets = torch.tensor([3, 7])
    result = attribute(model, x, "saliency", targets=targets)
    model.eval()
    xg = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(xg)[torch.arange(2), targets].sum(), xg)
    assert torch.allclose(result.maps, grad.abs(), atol=1e-6)


def test_deeplift_summation_to_delta(model, x):
    result = attribute(model, x, "deeplift", targets=torch.tensor([0, 5]))
    gap = scores(model.eval(), x, result.targets) - scores(model, torch.zeros_like(x), result.targets)
    assert (result.delta.abs() < 1e-3).all()
    assert torch.allclose(result.maps.sum(dim=(1, 2, 3)), gap, atol=1e-3)
    assert not any(hasattr(m, "input") or hasattr(m, "output") for m in model.modules())


def occlusion_by_loop(model, x, targets, window, stride):
    """Mean score drop over the windows (zeroed across all channels) that cover each pixel."""
    n, _, h, w = x.shape
    total, count = torch.zeros_like(x), torch.zeros_like(x)
    reference = scores(model, x, targets)
    for i in range(0, h - window + 1, stride):
        for j in range(0, w - window + 1, stride):
            occluded = x.clone()
            occluded[:, :, i:i + window, j:j + window] = 0
            drop = reference - scores(model, occluded, targets)
            total[:, :, i:i + window, j:j + window] += drop.view(n, 1, 1, 1)
            count[:, :, i:i + window, j:j + window] += 1
    return total / count.clamp(min=1)


@pytest.mark.parametrize(("window", "stride"), [(4, 4), (8, 4), (6, 5)])
def test_occlusion_equals_direct_loop(model, window, stride):
    x = torch.randn(2, 3, 16, 16)
    targets = torch.tensor([2, 9])
    result = attribute(model, x, "occlusion", targets=targets, window=window, stride=stride)
    expected = occlusion_by_loop(model.eval(), x, targets, window, stride)
    assert torch.allclose(result.maps, expected, atol=1e-5)


def test_smoothgrad_image_does_not_depend_on_batch(model, x):
    x = torch.stack([x[0], 10 * x[1]])  # very different ranges
    torch.manual_seed(1)
    batch = attribute(model, x, "smoothgrad", targets=0, n_samples=4)
    torch.manual_seed(1)
    alone = attribute(model, x[:1], "smoothgrad", targets=0, n_samples=4)
    assert torch.allclose(batch.maps[:1], alone.maps, atol=1e-6)
    saliency = attribute(model, x[:1], "saliency", targets=0)
    assert not torch.allclose(alone.maps, saliency.maps, atol=1e-4)  # the noise did something


# --- arguments ------------------------------------------------------------------------------------


def test_targets(model, x):
    predicted = model.eval()(x).argmax(dim=1)
    assert torch.equal(attribute(model, x, "saliency").targets, predicted)
    assert attribute(model, x, "saliency", targets=6).targets.tolist() == [6, 6]
    chosen = attribute(model, x, "saliency", targets=torch.tensor([1, 8]))
    assert chosen.targets.tolist() == [1, 8]
    one = attribute(model, x[:1], "saliency", targets=8)
    assert torch.allclose(chosen.maps[1:], attribute(model, x[1:], "saliency", targets=8).maps)
    assert not torch.allclose(one.maps, attribute(model, x[:1], "saliency", targets=1).maps)


@pytest.mark.parametrize("bad", [10, -1, torch.tensor([0, 10]), torch.tensor([0]), torch.tensor([0.0, 1.0]),
                                 torch.tensor([True, False]), True, "3", [0, 1]])
def test_bad_targets(model, x, bad):
    with pytest.raises(ValueError, match="targets"):
        attribute(model, x, "saliency", targets=bad)


def test_bad_arguments_name_the_choices(model, x):
    with pytest.raises(ValueError, match="saliency, integrated_gradients, smoothgrad, gradcam, occlusion, deeplift") \
            as info:
        attribute(model, x, "lrp")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="layer1, layer2, layer3, layer1.0, layer2.0, layer3.0"):
        attribute(model, x, "gradcam", layer="layer4")
    with pytest.raises(ValueError, match="layer1, layer2"):
        attribute(model, x, "saliency", layer="fc")
    for bad in (x[0], x[:, :1], x.long(), torch.empty(0, 3, 32, 32)):
        with pytest.raises(ValueError, match=r"\(N, "):
            attribute(model, bad, "saliency")
    with pytest.raises(ValueError, match="zeros, black, blur"):
        attribute(model, x, "integrated_gradients", baseline="grey")
    with pytest.raises(ValueError, match="black_baseline"):
        attribute(model, x, "deeplift", baseline="black")
    with pytest.raises(ValueError, match="broadcast"):
        attribute(model, x, "integrated_gradients", baseline=torch.zeros(3, 5, 5))
    for bad in (0, 1.5, True, "0.01"):
        with pytest.raises(ValueError, match="tolerance"):
            attribute(model, x, "integrated_gradients", tolerance=bad)
    with pytest.raises(ValueError, match="steps"):
        attribute(model, x, "integrated_gradients", steps=0)
    with pytest.raises(ValueError, match="window"):
        attribute(model, x, "occlusion", window=40)
    with pytest.raises(ValueError, match="stdevs"):
        attribute(model, x, "smoothgrad", stdevs=0)


def test_ig_adaptive_steps(model, x):
    """Each image gets the fewest doublings that bring its gap under the tolerance, or the cap."""
    x4 = torch.cat([x, x.flip(-1)])
    result = attribute(model, x4, "integrated_gradients", steps=2, tolerance=0.01, max_steps=64)
    change = scores(model.eval(), x4, result.targets) - scores(model, torch.zeros_like(x4), result.targets)
    assert torch.allclose(result.score_change, change, atol=1e-4)
    assert torch.allclose(result.gap, result.delta.abs() / change.abs(), rtol=1e-4)
    assert ((result.gap <= 0.01) | (result.steps == 64)).all()
    assert (result.steps > 2).any()  # two steps are too few for this net: the doubling is exercised
    for i, s in enumerate(result.steps.tolist()):  # each image's map is the fixed-steps map at its steps
        alone = attribute(model, x4[i:i + 1], "integrated_gradients", targets=result.targets[i:i + 1], steps=s)
        assert torch.allclose(alone.maps, result.maps[i:i + 1], atol=1e-5)
        if s > 2:  # the step count below it was not enough
            fewer = attribute(model, x4[i:i + 1], "integrated_gradients", targets=result.targets[i:i + 1],
                              steps=s // 2)
            assert float(fewer.gap[0]) > 0.01
    fixed = attribute(model, x4, "integrated_gradients", steps=8)
    assert fixed.steps.tolist() == [8] * 4


def test_blur_and_black_baselines(model, x):
    from resnet_explorer.analysis.attribution import black_baseline, blur
    from resnet_explorer.data import normalize

    flat = torch.full((1, 3, 16, 16), 0.7)
    assert torch.allclose(blur(flat), flat, atol=1e-6)  # a constant image is its own blur
    blurred = blur(x)
    assert blurred.shape == x.shape and blurred.var() < 0.5 * x.var()
    assert torch.allclose(blurred.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.05)  # brightness kept
    mean, std = (0.2, 0.4, 0.6), (0.1, 0.2, 0.3)
    m, sd = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    pixels = torch.rand(2, 3, 16, 16)
    assert torch.allclose(blur((pixels - m) / sd), (blur(pixels) - m) / sd, atol=1e-5)  # commutes with normalising
    black = normalize(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), mean, std)
    assert torch.allclose(black_baseline(mean, std).expand(1, 3, 4, 4), black)
    result = attribute(model, x, "integrated_gradients", baseline="blur", steps=16)
    assert torch.allclose(result.baselines, blur(x))
    gap = scores(model.eval(), x, result.targets) - scores(model, blur(x), result.targets)
    assert torch.allclose(result.score_change, gap, atol=1e-4)


def test_baseline_tensor(model, x):
    base = torch.full((3, 32, 32), 0.5)
    result = attribute(model, x, "integrated_gradients", baseline=base, steps=50)
    assert torch.equal(result.baselines, base.expand(2, 3, 32, 32))
    gap = scores(model.eval(), x, result.targets) - scores(model, base.expand(2, -1, -1, -1), result.targets)
    assert torch.allclose(result.maps.sum(dim=(1, 2, 3)) - gap, result.delta, atol=1e-4)


def test_predict(model, x):
    model.train()
    classes, probs = predict(model, x)
    model.eval()
    expected = model(x).softmax(dim=1).max(dim=1)
    assert torch.equal(classes, expected.indices)
    assert torch.allclose(probs, expected.values.detach())
    assert classes.dtype == torch.int64 and probs.dtype == torch.float32


# --- hooks and modes ------------------------------------------------------------------------------


def test_hook_count_sees_hooks(model):
    handle = model.layer1[0].relu1.register_forward_hook(lambda m, a, o: None)
    assert hook_count(model) == 1
    handle.remove()
    assert hook_count(model) == 0


@pytest.mark.parametrize("method", list(METHODS))
def test_no_hook_survives_an_exception(model, x, method, monkeypatch):
    def broken(_):
        raise RuntimeError("boom")

    monkeypatch.setattr(model.fc, "forward", broken)
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        attribute(model, x, method, targets=0, steps=4, n_samples=2)
    assert hook_count(model) == 0
    assert all(m.training for m in model.modules())


# --- devices --------------------------------------------------------------------------------------


def test_method_support_on_cpu(model):
    rows = method_support(model, "cpu")
    assert [r["method"] for r in rows] == list(METHODS)
    assert all(r["available"] and r["runs_on"] == "cpu" and r["note"] and "\n" not in r["note"] for r in rows)
    assert [r["label"] for r in rows] == [info.label for info in METHODS.values()]
    assert "eval mode" in rows[-1]["note"]


def test_method_support_mps_fallback(model):
    rows = {r["method"]: r for r in method_support(model, "mps")}
    assert rows["integrated_gradients"]["runs_on"] == "cpu"
    assert "captum#1240" in rows["integrated_gradients"]["note"]
    assert all(r["runs_on"] == "mps" for name, r in rows.items() if name != "integrated_gradients")
    assert _placement("integrated_gradients", "mps")[0] == "cpu"
    assert _placement("integrated_gradients", "cuda") == ("cuda", "")
    assert _placement("saliency", "mps") == ("mps", "")


def test_method_support_bad_device(model):
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps"):
        method_support(model, "tpu")


def test_method_support_meta_model():
    rows = method_support(build_model(TINY, device="meta"), "cpu")
    assert not any(r["available"] for r in rows)


def test_attribute_applies_the_fallback_on_a_copy(model, x, monkeypatch):
    """A CPU->CPU fallback rule exercises the copy path that MPS takes."""
    monkeypatch.setattr(attribution_module.SaliencyMethod, "cpu_fallback", {"cpu": "test reason: runs on CPU"})
    fallback = attribute(model, x, "saliency", targets=2)
    monkeypatch.undo()
    direct = attribute(model, x, "saliency", targets=2)
    assert fallback.note == "test reason: runs on CPU" and fallback.device == "cpu"
    assert torch.allclose(fallback.maps, direct.maps)


# --- mask_share and sanity_check ------------------------------------------------------------------


def test_mask_share_by_hand():
    masks = torch.zeros(4, 4, 4, dtype=torch.bool)
    masks[:, :2, :] = True  # top half: area 0.5
    maps = torch.zeros(4, 4, 4)
    maps[0, 0, 0] = 3.0  # all positive mass inside
    maps[1] = 1.0  # uniform
    maps[2, 3, 3], maps[2, 0, 0] = 3.0, 1.0  # 1 of 4 inside
    maps[3, 0, 0] = -5.0  # no positive mass
    share, area = mask_share(maps, masks)
    assert share[:3].tolist() == [1.0, 0.5, 0.25]
    assert math.isnan(share[3].item())
    assert area.tolist() == [0.5] * 4
    small, _ = mask_share(maps * 1e-3, masks)  # a share, not a sum: the scale does not matter
    assert torch.allclose(small[:3], share[:3])
    with pytest.raises(ValueError, match="masks"):
        mask_share(maps, masks.float())
    with pytest.raises(ValueError, match="heatmap"):
        mask_share(maps[0], masks[0])


def test_spearman_helper():
    a = torch.rand(3, 5, 5)
    assert torch.allclose(_spearman(a, a), torch.ones(3))
    assert torch.allclose(_spearman(a, -a), -torch.ones(3))
    assert torch.allclose(_spearman(a, a.exp()), torch.ones(3))  # ranks only
    # with ties, by hand: ranks (1.5, 1.5, 3, 4) vs (1, 2, 3, 4): rho = 4.5 / sqrt(4.5 * 5)
    rho = _spearman(torch.tensor([[0.0, 0.0, 1.0, 2.0]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert rho.item() == pytest.approx(4.5 / math.sqrt(4.5 * 5.0), rel=1e-6)
    assert math.isnan(_spearman(torch.ones(1, 4), torch.rand(1, 4)).item())


def test_sanity_check_leaves_model_and_rng_alone(model, x):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    rho = sanity_check(model, x, "smoothgrad", n_samples=4)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and hook_count(model) == 0
    assert rho.shape == (2,) and rho.dtype == torch.float32
    assert ((rho >= -1) & (rho <= 1)).all()
    assert torch.equal(rho, sanity_check(model, x, "smoothgrad", n_samples=4))  # seeded: repeatable


def test_sanity_check_sees_the_weights(model, x):
    rho = sanity_check(model, x, "saliency")
    assert (rho < 0.9).all()  # a re-initialised net gives a different gradient map
    other = sanity_check(model, x, "saliency", seed=1)
    assert not torch.equal(rho, other)


def test_sanity_check_of_an_unchanged_model_is_one(model, x, monkeypatch):
    """With re-initialisation switched off, both runs see the same weights and the same noise."""
    monkeypatch.setattr("resnet_explorer.analysis.checks._randomise", lambda net: None)
    rho = sanity_check(model, x, "smoothgrad", n_samples=4)
    assert torch.allclose(rho, torch.ones(2))


def test_randomise_resets_weights_and_statistics(model):
    copy = build_model(TINY, device="cpu")
    copy.load_state_dict(model.state_dict())
    _randomise(copy)
    assert not torch.equal(copy.conv1.weight, model.conv1.weight)
    bns = [m for m in copy.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all((m.running_mean == 0).all() and (m.running_var == 1).all() for m in bns)
    assert all((m.weight == 1).all() and (m.bias == 0).all() for m in bns)


def test_sanity_check_uses_trained_targets(model, x, monkeypatch):
    seen = []
    real = attribution_module.attribute

    def spy(net, inputs, method, **kwargs):
        seen.append(kwargs["targets"].tolist())
        return real(net, inputs, method, **kwargs)

    monkeypatch.setattr("resnet_explorer.analysis.checks.attribute", spy)
    sanity_check(model, x, "saliency")
    assert seen == [model.eval()(x).argmax(dim=1).tolist()] * 2


# --- load_image -----------------------------------------------------------------------------------

MEAN, STD = (0.5, 0.25, 0.0), (0.5, 0.5, 1.0)


def encode(img, fmt="PNG"):
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def palette_image():
    img = Image.new("P", (20, 10), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    return img


def i16_image():
    img = Image.fromarray(np.full((10, 20), 25700, dtype=np.uint16))  # 25700 / 257 = 100
    assert img.mode.startswith("I;16")
    return img


@pytest.mark.parametrize(("make", "rgb"), [
    (lambda: Image.new("RGB", (40, 24), (10, 20, 30)), (10, 20, 30)),
    (lambda: Image.new("L", (7, 9), 100), (100, 100, 100)),
    (palette_image, (10, 20, 30)),
    (lambda: Image.new("RGBA", (40, 40), (200, 100, 50, 0)), (0, 0, 0)),  # transparent: black
    (lambda: Image.new("RGBA", (40, 40), (200, 100, 50, 255)), (200, 100, 50)),
    (i16_image, (100, 100, 100)),
], ids=["rgb", "L", "P", "RGBA-clear", "RGBA-opaque", "I;16"])
def test_load_image_modes(make, rgb, tmp_path):
    data = encode(make())
    x, preview = load_image(data, image_size=32, mean=MEAN, std=STD)
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    assert preview.shape == (3, 32, 32) and preview.dtype == torch.uint8
    assert preview[:, 5, 5].tolist() == list(rgb)
    expected = (torch.tensor(rgb) / 255.0 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(x[0, :, 5, 5], expected, atol=1e-6)
    path = tmp_path / "image.png"
    path.write_bytes(data)
    from_path, _ = load_image(path, image_size=32, mean=MEAN, std=STD)
    assert torch.equal(from_path, x)


def test_load_image_jpeg():
    x, preview = load_image(encode(Image.new("RGB", (64, 64), (10, 120, 230)), "JPEG"), image_size=16,
                            mean=MEAN, std=STD)
    assert x.shape == (1, 3, 16, 16)
    assert (preview[:, 8, 8].int() - torch.tensor([10, 120, 230])).abs().max() <= 3


def test_load_image_resizes_bilinear_to_square():
    img = Image.new("RGB", (64, 32), (0, 0, 0))
    img.paste((255, 255, 255), (32, 0, 64, 32))  # right half white
    _, preview = load_image(encode(img), image_size=32, mean=MEAN, std=STD)
    assert preview[:, :, :14].max() == 0 and preview[:, :, 18:].min() == 255


def bad_message(source, **kwargs):
    with pytest.raises(ImageError) as info:
        load_image(source, image_size=32, mean=MEAN, std=STD, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_load_image_rejects_unreadable(tmp_path):
    png = encode(Image.new("RGB", (40, 40), (1, 2, 3)))
    assert "is not a readable image" in bad_message(b"")
    assert "is not a readable image" in bad_message(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    assert "is not a readable image" in bad_message(png[: len(png) // 2])  # header fine, data truncated
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    assert bad_message(text) == f"{text} is not a readable image"
    assert "is not a readable image" in bad_message(tmp_path / "missing.png")
    assert isinstance(ImageError("x"), ValueError)


def test_load_image_checks_size_before_decoding(monkeypatch):
    big = encode(Image.new("1", (5000, 5000)))  # 25 M pixels, a few kB on disk
    assert len(big) < 100_000

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded an image over the limit")

    monkeypatch.setattr(images_module, "read_image", no_decode)
    message = bad_message(big, max_pixels=20_000_000)
    assert "5000 x 5000" in message and "20,000,000" in message
    assert "25,000,000" in message


@pytest.mark.parametrize("side", [40, 50])  # Pillow warns past the limit, raises past twice it
def test_load_image_turns_pillow_bomb_checks_into_image_error(side, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    message = bad_message(encode(Image.new("L", (side, side))), max_pixels=10**9)
    assert "decompression-bomb" in message


def test_load_image_bad_arguments():
    png = encode(Image.new("RGB", (8, 8)))
    with pytest.raises(ValueError, match="3 values"):
        load_image(png, image_size=32, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="image_size"):
        load_image(png, image_size=0, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(png, image_size=32, mean=MEAN, std=STD, max_pixels=None)
    with pytest.raises(ValueError, match="bytes or a path"):
        load_image(io.BytesIO(png), image_size=32, mean=MEAN, std=STD)
