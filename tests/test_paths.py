"""Gradient per path length (Veit et al. 2016, Fig. 6): shares, gates against hand-built gradients, safety."""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.analysis.paths import (
    MAX_PATH_PASSES,
    AnalysisStopped,
    effective_range,
    path_gates,
    path_gradients,
    path_length_shares,
)
from resnet_explorer.plots.paths import plot_path_gradients

TINY = ModelSpec(layers=(1, 1, 1), width_multiplier=0.25, num_classes=4)  # 3 units, 4-8-16 channels


def _model(spec: ModelSpec = TINY, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(spec, device="cpu")
    # Random running statistics, so eval-mode BN is not the identity and the test sees it.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _data(n: int = 6, classes: int = 4, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def _first_unit_grad(model, x, y, detach: str | None = None) -> torch.Tensor:
    """Gradient of the summed loss at the first unit's input, written out by hand, optionally with every
    residual branch ("residual") or every shortcut ("shortcut") detached."""
    handles = []
    if detach is not None:
        for _, unit in model.units():
            tap = unit.residual_tap if detach == "residual" else unit.shortcut_tap
            handles.append(tap.register_forward_hook(lambda _m, _a, out: out.detach()))
    try:
        with torch.enable_grad():
            x0 = model.forward_stem(x).detach().requires_grad_()
            h = x0
            for stage in model.stages:
                h = stage(h)
            loss = F.cross_entropy(model.forward_head(model.forward_final(h)), y, reduction="sum")
            return torch.autograd.grad(loss, x0)[0]
    finally:
        for h in handles:
            h.remove()


def _mean_norm(grad: torch.Tensor) -> float:
    return float(grad.flatten(1).double().norm(dim=1).mean())


# --- shares and the effective range ----------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 3, 10, 27, 54])
def test_shares_are_binomial(n):
    shares = path_length_shares(n)
    assert shares.shape == (n + 1,)
    np.testing.assert_allclose(shares, [math.comb(n, k) / 2**n for k in range(n + 1)], rtol=1e-12, atol=0)
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)


def test_shares_stay_finite_for_ten_thousand_units():
    shares = path_length_shares(10_000)
    assert np.isfinite(shares).all() and (shares >= 0).all()
    assert shares.sum() == pytest.approx(1.0, abs=1e-9)
    assert int(np.argmax(shares)) == 5_000
    # Near the middle the normal approximation holds: share(n/2) ~ sqrt(2 / (pi n)).
    assert shares[5_000] == pytest.approx(math.sqrt(2 / (math.pi * 10_000)), rel=1e-3)
    with pytest.raises(ValueError, match="units"):
        path_length_shares(-1)


def test_effective_range_is_the_narrowest_run_holding_the_fraction():
    assert effective_range(range(5), [0, 1, 8, 2, 0], 0.7) == (2, 2)  # 8 of 11
    assert effective_range(range(5), [0, 1, 8, 2, 0], 0.8) == (2, 3)  # [1, 2] holds 9 >= 8.8 too, [2, 3] holds more
    assert effective_range(range(5), [0, 1, 8, 2, 0], 0.95) == (1, 3)  # 10.45 needs all three
    assert effective_range(range(5), [0, 1, 8, 2, 0], 1.0) == (1, 3)
    assert effective_range([0, 5, 10], [1, 0, 1], 0.9) == (0, 10)  # lengths measured sparsely: span in k
    assert effective_range(range(3), [0, 0, 0]) is None
    with pytest.raises(ValueError, match="fraction"):
        effective_range(range(3), [1, 1, 1], 0.0)


# --- gates against hand-built gradients ---------------------------------------------------------------

@pytest.mark.parametrize("pre_activation", [False, True], ids=["post-act", "pre-act"])
def test_paths_of_all_subsets_sum_to_the_full_gradient(pre_activation):
    """Given the forward pass, backprop is linear, so the 2^n single-path gradients add up to the full one
    (post-activation too: the ReLU after each addition is one fixed mask on both of a unit's paths)."""
    model = _model(TINY.replace(pre_activation=pre_activation)).eval()
    x, y = _data()
    full = _first_unit_grad(model, x, y)
    with path_gates(model) as gates, torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        total = torch.zeros_like(full)
        for flags in itertools.product([False, True], repeat=3):
            gates.residual[:] = flags
            total += torch.autograd.grad(loss, gates.first_input, retain_graph=True)[0]
        # One path alone is not the whole gradient.
        assert not torch.allclose(torch.autograd.grad(loss, gates.first_input, retain_graph=True)[0], full, atol=1e-4)
    torch.testing.assert_close(total, full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shortcut", ["A", "B"], ids=["zero-pad", "projection"])
def test_shortest_and_longest_paths_match_detached_nets(shortcut):
    """k = 0 is the net with every residual branch detached, k = n the net with every shortcut detached."""
    model = _model(TINY.replace(shortcut=shortcut)).eval()
    x, y = _data()
    result = path_gradients(model, x, y, ks=[0, 3], draws=2, batch_size=4)  # two batches: 4 + 2 images
    got = result.summary.set_index("k")["mean_grad"]
    assert got[0] == pytest.approx(_mean_norm(_first_unit_grad(model, x, y, detach="residual")), rel=1e-5)
    assert got[3] == pytest.approx(_mean_norm(_first_unit_grad(model, x, y, detach="shortcut")), rel=1e-5)
    assert got[0] != pytest.approx(got[3], rel=1e-2)
    assert result.backward_passes == 4  # k = 0 and k = n have one set each, measured once per batch


def test_result_tables_and_batch_size_invariance():
    model = _model()
    x, y = _data()
    one = path_gradients(model, x, y, draws=3, seed=5, batch_size=6)
    split = path_gradients(model, x, y, draws=3, seed=5, batch_size=4)
    np.testing.assert_allclose(one.rows["grad_norm"], split.rows["grad_norm"], rtol=1e-5)
    assert list(one.rows.columns) == ["k", "draw", "grad_norm"] and len(one.rows) == 4 * 3
    s = one.summary
    assert list(s.columns) == ["k", "share", "mean_grad", "std_grad", "total"] and list(s["k"]) == [0, 1, 2, 3]
    np.testing.assert_allclose(s["share"], [1 / 8, 3 / 8, 3 / 8, 1 / 8])
    np.testing.assert_allclose(s["total"], s["mean_grad"] * s["share"])
    np.testing.assert_allclose(s["mean_grad"], one.rows.groupby("k")["grad_norm"].mean())
    assert s.loc[s["k"] == 0, "std_grad"].item() == pytest.approx(0.0, abs=1e-12)  # a single path of length 0
    assert one.effective == effective_range(s["k"], s["total"], 0.9)
    assert one.peak_k == int(s["k"][s["total"].idxmax()])
    assert one.num_units == 3 and one.images == 6


# --- refusals, limits, safety --------------------------------------------------------------------

def test_plain_net_and_bad_requests_are_refused():
    x, y = _data()
    with pytest.raises(ValueError, match="plain net"):
        path_gradients(_model(TINY.plain()), x, y)
    model = _model()
    for kwargs, match in [(dict(draws=0), "draws"), (dict(ks=[4]), "path length"), (dict(ks=[]), "at least one"),
                          (dict(batch_size=0), "batch size"), (dict(fraction=1.5), "fraction"),
                          (dict(draws=MAX_PATH_PASSES // 4 + 1), "draws|backward passes")]:
        with pytest.raises(ValueError, match=match):
            path_gradients(model, x, y, **kwargs)
    with pytest.raises(ValueError, match="labels"):
        path_gradients(model, x, y.float())
    with pytest.raises(ValueError, match="labels"):
        path_gradients(model, x, y + 4)


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_model_left_as_it_was_also_after_an_error():
    model = _model().train()
    model.layer2[0].bn1.eval()  # a module in its own mode must keep it
    x, y = _data()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model.eval()(x)
    model.train()
    model.layer2[0].bn1.eval()

    def check() -> None:
        assert model.training and not model.layer2[0].bn1.training and model.layer1[0].bn1.training
        assert _hooks(model) == 0
        assert all(p.grad is None for p in model.parameters())
        for k, v in model.state_dict().items():
            torch.testing.assert_close(v, state[k], rtol=0, atol=0)
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(x), before, rtol=0, atol=0)
        model.train()
        model.layer2[0].bn1.eval()

    path_gradients(model, x, y, draws=2)
    check()

    def fail(done: int, total: int) -> None:
        if done == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        path_gradients(model, x, y, draws=2, progress=fail)
    check()


def test_stop_and_progress():
    model = _model()
    x, y = _data()
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 5:
            stop.set()

    with pytest.raises(AnalysisStopped, match="after 5 of 8"):
        path_gradients(model, x, y, draws=2, progress=progress, stop=stop)
    assert seen == [(i, 8) for i in range(1, 6)]
    assert _hooks(model) == 0
    seen.clear()
    with pytest.raises(AnalysisStopped, match="after 0 of"):
        path_gradients(model, x, y, draws=2, progress=progress, stop=stop)
    assert seen == []


# --- plot ------------------------------------------------------------------------------------------

def test_plot_states_the_effective_range_from_the_data():
    model = _model()
    x, y = _data()
    result = path_gradients(model, x, y, draws=2)
    other = path_gradients(_model(seed=3), x, y, draws=2)
    fig = plot_path_gradients({"a": result, "b": other}, residual=True)
    low, high = result.effective
    assert f"{low}" in fig.layout.title.text and f"{high}" in fig.layout.title.text
    assert "90%" in fig.layout.title.text
    assert fig.layout.yaxis2.type == "log"
    assert any(shape.type == "rect" for shape in fig.layout.shapes)  # the shaded range
    names = {t.name for t in fig.data}
    assert {"a", "b"} <= names
    single = plot_path_gradients(result, residual=True)
    assert f"lengths {low}" in single.layout.title.text or f"length {low}" in single.layout.title.text
