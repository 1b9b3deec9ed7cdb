"""Unit profile: residual ratios, responses and lesions against hand-computed values, restoration, bounds, figure."""

import math
import threading

import numpy as np
import pandas as pd
import pytest
import torch

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.analysis.common import AnalysisStopped
from resnet_explorer.analysis.lesion import single_lesions
from resnet_explorer.analysis.profile import COLUMNS, MAX_PROFILE_IMAGES, UnitProfile, profile_units
from resnet_explorer.plots.profile import MAX_TICK_LABELS, plot_unit_profile
from resnet_explorer.training.probes import ProbeSet

CLASSES = 4
# A small ImageNet-style bottleneck net (stem 8, planes 8-16-32-64, out 32-256) with projections, 32 px inputs.
TINY_BOTTLENECK = ModelSpec(stem="imagenet", block="bottleneck", layers=(1, 2, 1, 1), width_multiplier=0.125,
                            shortcut="B", num_classes=CLASSES)


def net(spec: str | ModelSpec = "resnet14", **changes) -> torch.nn.Module:
    spec = ModelSpec.from_name(spec) if isinstance(spec, str) else spec
    model = build_model(spec.replace(num_classes=CLASSES, **changes), device="cpu")
    with torch.no_grad():  # BN statistics that are not the identity, so eval mode is not train mode
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def images(n: int = 10, size: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(3))


def last_affine(unit: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters that scale a residual branch's output linearly (its last BN, or last conv if pre-activation)."""
    if unit.pre_activation:
        return [unit.conv3.weight if hasattr(unit, "conv3") else unit.conv2.weight]
    bn = unit.bn3 if hasattr(unit, "bn3") else unit.bn2
    return [bn.weight, bn.bias]


def snapshot(model: torch.nn.Module) -> tuple:
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()])


def assert_intact(model: torch.nn.Module, before: tuple) -> None:
    state, modes = before
    after = model.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], state[k]) for k in state)
    assert [m.training for m in model.modules()] == modes
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def row(profile: UnitProfile, unit: str) -> pd.Series:
    return profile.rows.set_index("unit").loc[unit]


def test_zeroed_branch_has_ratio_zero_and_a_harmless_lesion():
    model = net()
    with torch.no_grad():
        for p in last_affine(model.layer2[1]):
            p.zero_()
    prof = profile_units(model, images(), batch_size=4)
    assert list(prof.rows.columns) == COLUMNS and list(prof.rows["unit"]) == [n for n, _ in model.units()]
    zero = row(prof, "layer2.1")
    assert zero["ratio_mean"] == 0 and zero["ratio_p90"] == 0 and zero["f_norm"] == 0
    assert zero["flip_rate"] == 0 and zero["prob_drop"] == pytest.approx(0, abs=1e-6)
    assert zero["kl"] == pytest.approx(0, abs=1e-6)
    others = prof.rows[prof.rows["unit"] != "layer2.1"]
    assert (others["ratio_mean"] > 0.05).all() and (others["kl"] > 1e-6).all()
    assert "smallest at layer2.1 (0)" in prof.headline()


@pytest.mark.parametrize("spec", ["resnet14", "preact_resnet14_basic", TINY_BOTTLENECK], ids=["post", "pre", "bottleneck"])
def test_scaling_a_branch_scales_its_ratio(spec):
    size = 32 if isinstance(spec, ModelSpec) else 8
    model, x = net(spec), images(6, size)
    names = [n for n, _ in model.units()]
    name, unit = "layer2.1", dict(model.units())["layer2.1"]  # its input and shortcut do not change
    assert unit.shortcut_kind == "identity"
    before = profile_units(model, x, lesions=False)
    with torch.no_grad():
        for p in last_affine(unit):
            p.mul_(3.0)
    after = profile_units(model, x, lesions=False)
    for col in ("ratio_mean", "ratio_p10", "ratio_p90", "ratio_of_means", "f_norm"):
        assert row(after, name)[col] == pytest.approx(3 * row(before, name)[col], rel=1e-4)
    assert row(after, name)["x_norm"] == pytest.approx(row(before, name)["x_norm"], rel=1e-6)
    for n in names[:names.index(name)]:
        assert row(after, n)["ratio_mean"] == pytest.approx(row(before, n)["ratio_mean"], rel=1e-6)


@pytest.mark.parametrize("spec", ["resnet14", TINY_BOTTLENECK], ids=["identity", "projection"])
def test_norms_and_responses_match_hooks_and_the_training_probes(spec):
    size = 32 if isinstance(spec, ModelSpec) else 8
    model, x = net(spec), images(7, size)
    seen: dict[str, dict[str, torch.Tensor]] = {}
    handles = []

    def keep(name, key, inputs=False):
        def hook(module, args, output=None):
            t = args[0] if inputs else output
            seen.setdefault(name, {})[key] = t.detach().clone()
        return hook

    for name, unit in model.units():
        handles.append(unit.register_forward_pre_hook(keep(name, "in", inputs=True)))
        handles.append(unit.register_forward_hook(keep(name, "out")))
        handles.append(unit.residual_tap.register_forward_hook(keep(name, "f")))
        handles.append(unit.shortcut_tap.register_forward_hook(keep(name, "x")))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    probes = ProbeSet(model, gradients=False, responses=False)
    with probes.forward(), torch.no_grad():
        model(x)
    probe_rows = {r["unit"]: r for r in probes.after_step(0).residual_norms}

    prof = profile_units(model, x, batch_size=3)  # batches of 3, 3 and 1
    for name, unit in model.units():
        r = row(prof, name)
        norm = {k: v.flatten(1).norm(dim=1).double().numpy() for k, v in seen[name].items()}
        ratio = norm["f"] / norm["x"]
        assert r["ratio_mean"] == pytest.approx(ratio.mean(), rel=1e-5)
        assert r["ratio_p10"] == pytest.approx(np.percentile(ratio, 10), rel=1e-5)
        assert r["ratio_p90"] == pytest.approx(np.percentile(ratio, 90), rel=1e-5)
        assert r["in_norm"] == pytest.approx(norm["in"].mean(), rel=1e-5)
        if unit.shortcut_kind == "identity":
            assert r["x_norm"] == pytest.approx(r["in_norm"], rel=1e-6)
            assert r["ratio_mean"] == pytest.approx((norm["f"] / norm["in"]).mean(), rel=1e-5)
        else:  # a projection: x is the projected input, not the input
            assert abs(r["x_norm"] - r["in_norm"]) > 1e-3 * r["in_norm"]
        # the same norms as the training probes take
        assert r["f_norm"] == pytest.approx(probe_rows[name]["residual_norm"], rel=1e-5)
        assert r["x_norm"] == pytest.approx(probe_rows[name]["shortcut_norm"], rel=1e-5)
        assert r["ratio_of_means"] == pytest.approx(probe_rows[name]["ratio"], rel=1e-5)
        std = seen[name]["out"].flatten(1).std(dim=1).double().numpy()
        assert r["response_std"] == pytest.approx(std.mean(), rel=1e-5)
        assert r["shortcut"] == unit.shortcut_kind and r["stride"] == unit.stride


def test_lesion_columns_match_hand_deletion_and_single_lesions():
    model, x = net(), images(9)
    prof = profile_units(model, x, batch_size=4)
    with torch.no_grad():
        log_p = model(x).log_softmax(1)
    top = log_p.argmax(1)
    oracle = single_lesions(model, x, top, batch_size=5).rows.set_index("unit")
    for name, unit in model.units():
        handle = unit.residual_tap.register_forward_hook(lambda m, a, out: torch.zeros_like(out))
        try:
            with torch.no_grad():
                log_q = model(x).log_softmax(1)
        finally:
            handle.remove()
        r = row(prof, name)
        assert r["flip_rate"] == pytest.approx(float((log_q.argmax(1) != top).float().mean()))
        assert r["flip_rate"] == pytest.approx(oracle.loc[name, "error"])
        drop = (log_p.exp() - log_q.exp()).gather(1, top[:, None]).mean()
        assert r["prob_drop"] == pytest.approx(float(drop), abs=1e-6)
        assert r["kl"] == pytest.approx(float((log_p.exp() * (log_p - log_q)).sum(1).mean()), abs=1e-6)
    assert prof.top1_prob == pytest.approx(float(log_p.exp().max(1).values.mean()), rel=1e-5)
    assert prof.rows["flip_rate"].max() > 0  # the comparison above is not all zeros


def test_plain_net_has_no_ratio_and_reports_undeletable_units():
    model, x = net("plain14"), images(8)
    prof = profile_units(model, x, batch_size=8)
    rows = prof.rows
    assert rows["ratio_mean"].isna().all() and rows["x_norm"].isna().all() and rows["ratio_of_means"].isna().all()
    assert (rows["f_norm"] > 0).all() and (rows["in_norm"] > 0).all() and (rows["shortcut"] == "none").all()
    blocked = rows[~rows["deletable"]]
    assert list(blocked["unit"]) == ["layer2.0", "layer3.0"]
    assert blocked["flip_rate"].isna().all() and blocked["how"].str.contains("cannot be deleted").all()
    ok = rows[rows["deletable"]]
    assert len(ok) == 4 and ok["flip_rate"].notna().all()
    with torch.no_grad():
        top = model(x).argmax(1)
    oracle = single_lesions(model, x, top).rows.set_index("unit")
    for _, r in ok.iterrows():
        assert r["flip_rate"] == pytest.approx(oracle.loc[r["unit"], "error"])
    text = prof.summary()
    assert "no residual ratio" in text and "2 units cannot be deleted" in text and "layer3.0" in text
    fig = plot_unit_profile(prof)
    assert {t.legendgroup for t in fig.data} == {"response std", "single-unit lesions"}
    assert "cannot be deleted" in {t.name for t in fig.data}


def test_weights_modes_and_hooks_restored_also_after_errors():
    model, x = net(), images(10)
    model.train()
    model.layer2.eval()  # a mixed state comes back module by module
    before = snapshot(model)
    calls = []
    profile_units(model, x, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(d, 3 * 7) for d in range(1, 22)]  # 3 batches x (intact + 6 lesioned)
    assert_intact(model, before)

    def fail(done, total):
        if done == 3:  # inside the first batch's lesions
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        profile_units(model, x, batch_size=4, progress=fail)
    assert_intact(model, before)
    for target, when in ((model.layer2[0], 1), (model.fc, 4)):  # inside the intact pass (its hooks on), inside a lesion
        count = {"n": 0}

        def explode(module, args, when=when, count=count):
            count["n"] += 1
            if count["n"] == when:
                raise RuntimeError("inside")

        handle = target.register_forward_pre_hook(explode)
        try:
            with pytest.raises(RuntimeError, match="inside"):
                profile_units(model, x, batch_size=4)
        finally:
            handle.remove()
        assert_intact(model, before)


def test_bounds_refuse_before_anything_runs():
    model = net()
    calls = {"n": 0}
    handle = model.conv1.register_forward_pre_hook(lambda m, a: calls.__setitem__("n", calls["n"] + 1))
    try:
        # 513 images as a view of one (no memory), then a meta tensor far too big to allocate
        with pytest.raises(ValueError, match="images must be from"):
            profile_units(model, torch.zeros(1, 3, 8, 8).expand(MAX_PROFILE_IMAGES + 1, 3, 8, 8))
        with pytest.raises(ValueError, match="images must be from"):
            profile_units(model, torch.empty(MAX_PROFILE_IMAGES + 1, 3, 100_000, 100_000, device="meta"))
        with pytest.raises(ValueError, match="normalised float"):
            profile_units(model, (images() * 100).to(torch.uint8))
        with pytest.raises(ValueError, match="channels"):
            profile_units(model, torch.zeros(2, 1, 8, 8))
        with pytest.raises(ValueError, match="batch_size"):
            profile_units(model, images(), batch_size=0)
        with pytest.raises(ValueError, match="ResNet"):
            profile_units(torch.nn.Linear(2, 2), images())
        assert calls["n"] == 0
        profile_units(model, images(MAX_PROFILE_IMAGES, 2), lesions=False, batch_size=MAX_PROFILE_IMAGES)
        assert calls["n"] == 1
    finally:
        handle.remove()


def test_stop_raises_promptly():
    model, x = net(), images(12)
    stop = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done == 2:
            stop.set()

    with pytest.raises(AnalysisStopped):
        profile_units(model, x, batch_size=4, progress=progress, stop=stop)
    assert calls == [1, 2]
    before = snapshot(model)
    with pytest.raises(AnalysisStopped):
        profile_units(model, x, stop=stop, progress=calls.append)
    assert calls == [1, 2]
    assert_intact(model, before)


def synthetic(ratios: list[float], units: list[str], strides: list[int]) -> UnitProfile:
    """A profile with the given mean ratios, for the words and the figure."""
    rows = []
    for p, (name, ratio, stride) in enumerate(zip(units, ratios, strides, strict=True)):
        stage, index = (int(s) for s in name[len("layer"):].split("."))
        rows.append({c: math.nan for c in COLUMNS} | {
            "unit": name, "position": p, "stage": stage, "index": index, "stride": stride,
            "shortcut": "identity" if stride == 1 and index else "projection", "downsampling": stride > 1,
            "changes_shape": index == 0, "ratio_mean": ratio, "ratio_p10": 0.8 * ratio, "ratio_p90": 1.2 * ratio,
            "response_std": 1.0 + p, "response_std_p10": 0.9 + p, "response_std_p90": 1.1 + p, "deletable": True,
            "how": "branch F zeroed", "flip_rate": 0.01 * p, "prob_drop": 0.004 * p, "kl": 0.01})
    return UnitProfile(rows=pd.DataFrame(rows, columns=COLUMNS), images=8, model="toy", residual=True,
                       num_classes=10, lesions=True, top1_prob=0.5)


UNITS = ["layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.1", "layer2.2"]
STRIDES = [1, 1, 1, 2, 1, 1]


def test_summary_states_what_the_data_shows():
    falling = synthetic([0.5, 0.3, 0.1, 0.9, 0.4, 0.12], UNITS, STRIDES)
    text = falling.summary()
    assert "smallest at layer1.2 (0.1), largest at layer2.0 (0.9), a unit that changes the shape" in text
    assert "average 0.7 (2 units), larger than the 0.23 of the 4 identity-shortcut units" in text
    assert "falls from the first to the last identity unit, by more than a factor 1.25, in 2 of 2 stages" in text
    assert "most at layer2.2 (5%, mean probability of the intact top-1 class down 0.02 from 0.50)" in text
    rising = synthetic([0.2, 0.3, 0.6, 0.1, 0.4, 0.8], UNITS, STRIDES)
    text = rising.summary()
    assert "smallest at layer2.0 (0.1), largest at layer2.2 (0.8) (eval" in text
    assert "smaller than" in text and "Within no stage does the ratio fall" in text


def test_figure_rows_ticks_marks_and_title():
    model, x = net(), images(6)
    prof = profile_units(model, x)
    fig = plot_unit_profile(prof)
    groups = {}
    for t in fig.data:
        groups.setdefault(t.legendgroup, set()).add(t.yaxis)
    assert groups == {"residual ratio": {"y"}, "response std": {"y2"}, "single-unit lesions": {"y3"}}
    assert fig.layout.yaxis.type == "log"
    names = [n for n, _ in model.units()]
    assert list(fig.layout.xaxis.ticktext) == names
    assert fig.layout.title.text.startswith(prof.headline())
    lo = prof.rows.loc[prof.rows["ratio_mean"].idxmin(), "unit"]
    assert f"smallest at {lo}" in fig.layout.title.text
    bands = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(bands) == 3 * int(prof.rows["downsampling"].sum())  # one per downsampling unit, in every row
    assert plot_unit_profile(prof, title="Mine").layout.title.text.startswith("Mine<br>")
    many = [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(18)]  # resnet110: 54 units
    big = plot_unit_profile(synthetic([0.1 + 0.01 * i for i in range(54)], many,
                                      [2 if u.endswith(".0") and u != "layer1.0" else 1 for u in many]))
    ticks = list(big.layout.xaxis.ticktext)
    assert len(ticks) <= MAX_TICK_LABELS and ticks[0] == "layer1.0" and set(ticks) <= set(many)
    assert len(ticks) == math.ceil(54 / math.ceil(54 / MAX_TICK_LABELS))
