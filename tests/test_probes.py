"""Probes against values computed by hand on a tiny model."""

import math

import pytest
import torch
from torch import nn

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.training import ProbeSet, response_modules

TINY = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)  # widths 8-16-32


def probe_step(model, x, y, lr=0.1):
    probes = ProbeSet(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # plain SGD: update = -lr * grad
    with probes.forward():
        loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    probes.after_backward()
    opt.step()
    return probes.after_step(1), grads, weights


def test_residual_norms_by_hand():
    model = build_model(TINY, device="cpu")
    seen = {}
    block = model.layer2[0]
    block.residual_tap.register_forward_hook(lambda m, a, o: seen.__setitem__("f", o.detach().clone()))
    block.shortcut_tap.register_forward_hook(lambda m, a, o: seen.__setitem__("x", o.detach().clone()))
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    record, _, _ = probe_step(model, x, y)
    row = next(r for r in record.residual_norms if r["unit"] == "layer2.0")
    f = torch.stack([seen["f"][i].pow(2).sum().sqrt() for i in range(4)]).mean().item()
    s = torch.stack([seen["x"][i].pow(2).sum().sqrt() for i in range(4)]).mean().item()
    assert row["stage"] == 2
    assert row["residual_norm"] == pytest.approx(f, rel=1e-5)
    assert row["shortcut_norm"] == pytest.approx(s, rel=1e-5)
    assert row["ratio"] == pytest.approx(f / s, rel=1e-5)
    assert [r["unit"] for r in record.residual_norms] == ["layer1.0", "layer2.0", "layer3.0"]


def test_zero_init_gives_zero_ratio():
    model = build_model(TINY.replace(zero_init_residual=True), device="cpu")
    record, _, _ = probe_step(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    assert all(r["residual_norm"] == 0.0 and r["ratio"] == 0.0 for r in record.residual_norms)


def test_plain_net_reports_f_only():
    model = build_model(TINY.plain(), device="cpu")
    record, _, _ = probe_step(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    assert len(record.residual_norms) == 3
    assert all(r["residual_norm"] > 0 and math.isnan(r["shortcut_norm"]) and math.isnan(r["ratio"])
               for r in record.residual_norms)


def test_gradient_flow_by_hand():
    model = build_model(TINY, device="cpu")
    record, grads, weights = probe_step(model, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), lr=0.1)
    rows = {r["layer"]: r for r in record.grad_flow}
    fc = rows["fc"]
    g = math.sqrt(grads["fc.weight"].pow(2).sum().item() + grads["fc.bias"].pow(2).sum().item())
    w = math.sqrt(weights["fc.weight"].pow(2).sum().item() + weights["fc.bias"].pow(2).sum().item())
    assert fc["grad_norm"] == pytest.approx(g, rel=1e-5)
    assert fc["weight_norm"] == pytest.approx(w, rel=1e-5)
    assert fc["update_ratio"] == pytest.approx(0.1 * g / w, rel=1e-4)  # plain SGD: |dw| = lr |g|
    conv = rows["layer1.0.conv1"]
    gw = grads["layer1.0.conv1.weight"]
    assert conv["grad_abs_mean"] == pytest.approx(gw.abs().mean().item(), rel=1e-5)
    # every parameterised module, no parameter-free one
    expected = {n for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))}
    assert set(rows) == expected


def test_responses_are_bn_outputs_after_3x3_convs():
    model = build_model(TINY, device="cpu")
    targets = dict(response_modules(model))
    assert targets["conv1"] is model.bn1 and targets["layer1.0.conv2"] is model.layer1[0].bn2
    seen = {}
    model.layer3[0].bn1.register_forward_hook(lambda m, a, o: seen.__setitem__("bn", o.detach().clone()))
    record, _, _ = probe_step(model, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    row = next(r for r in record.responses if r["layer"] == "layer3.0.conv1")
    assert row["std"] == pytest.approx(seen["bn"].std().item(), rel=1e-5)
    assert len(record.responses) == 1 + 2 * 3


def test_preact_response_targets():
    model = build_model(TINY.replace(pre_activation=True), device="cpu")
    targets = dict(response_modules(model))
    block = model.layer1[0]
    assert targets["layer1.0.conv1"] is block.bn2  # BN right after it in the unit
    assert targets["layer1.0.conv2"] is block.conv2  # nothing follows: its own output
    assert targets["conv1"] is model.conv1


def test_hooks_removed_even_after_an_exception():
    model = build_model(TINY, device="cpu")
    probes = ProbeSet(model)

    def count():
        return sum(len(m._forward_hooks) for m in model.modules())

    before = count()
    with pytest.raises(RuntimeError):
        with probes.forward():
            assert count() > before
            model(torch.randn(2, 5, 32, 32))  # wrong channels: raises inside the hooks' lifetime
    assert count() == before
