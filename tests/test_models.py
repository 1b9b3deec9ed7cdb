import functools
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_explorer import LargeModelError, ModelSpec, build_model, count_parameters, list_variants
from resnet_explorer.models import LARGE_UNITS, ZeroPadShortcut
from tests.torchvision_oracle import seeded_input, seeded_state_dict

EXACT_PARAMS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "wide_resnet50_2": 68_883_240, "resnext50_32x4d": 25_028_904,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
    "resnet110": 1_727_962, "resnet1202": 19_421_274,
}
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "torchvision_resnets.json").read_text())


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.cache
def meta_model(name: str) -> nn.Module:
    """The variant `name` on the meta device, built once per process: the deep ones take seconds to build
    (600-unit nets), and several tests (here and in test_graph) only read them."""
    return build_model(name, device="meta")


@pytest.mark.parametrize("name", list_variants())
def test_every_variant_builds_and_runs(name):
    spec = ModelSpec.from_name(name)
    size = 32 if spec.stem == "cifar" else 64
    # train mode: BN normalises with batch statistics, as in training; in eval mode the
    # fresh running statistics are the identity and 600 untrained units overflow float32.
    model = build_model(name, device="cpu").train()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()
    assert n_params(model) == count_parameters(spec)


@pytest.mark.parametrize("name, expected", EXACT_PARAMS.items())
def test_exact_parameter_counts(name, expected):
    assert n_params(meta_model(name)) == expected
    assert count_parameters(ModelSpec.from_name(name)) == expected
    plain = ModelSpec.from_name(name).plain()
    if plain.shortcut == "A":  # option A is parameter-free: the plain twin is identical
        assert count_parameters(plain) == expected


@pytest.mark.parametrize("name, low, high", [("preact_resnet164", 1.69e6, 1.71e6), ("preact_resnet1001", 10.2e6, 10.4e6)])
def test_preact_counts_match_paper(name, low, high):
    assert low <= n_params(meta_model(name)) <= high


@pytest.mark.parametrize("name", list(FIXTURE["models"]))
def test_torchvision_state_dict_layout(name):
    ours = {k: list(v.shape) for k, v in meta_model(name).state_dict().items()}
    assert ours == FIXTURE["models"][name]["shapes"]


@pytest.mark.parametrize("name", [n for n, e in FIXTURE["models"].items() if "logits" in e])
def test_torchvision_checkpoint_gives_same_outputs(name):
    entry = FIXTURE["models"][name]
    model = build_model(name, device="cpu").eval()
    model.load_state_dict(seeded_state_dict(entry["shapes"]), strict=True)
    with torch.no_grad():
        out = model(seeded_input())
    torch.testing.assert_close(out, torch.tensor(entry["logits"]), atol=2e-5, rtol=1e-5)


def call_counts(model: nn.Module, x: torch.Tensor) -> Counter:
    counts: Counter = Counter()
    handles = [m.register_forward_hook(lambda m, a, o, n=n: counts.update([n])) for n, m in model.named_modules() if n]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return counts


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet20", "plain20", "preact_resnet164",
                                  "preact_resnet110_basic", "resnext50_32x4d"])
def test_no_module_is_called_twice_and_no_inplace(name):
    spec = ModelSpec.from_name(name)
    model = build_model(spec.replace(layers=tuple(1 for _ in spec.layers)), device="cpu")
    size = 32 if spec.stem == "cifar" else 64
    counts = call_counts(model, torch.randn(2, 3, size, size))
    assert max(counts.values()) == 1
    assert not [n for n, m in model.named_modules() if getattr(m, "inplace", False)]


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "preact_resnet164", "plain20"])
def test_taps_present_and_parameter_free(name):
    model = meta_model(name)
    for _, block in model.units():
        assert isinstance(block.residual_tap, nn.Identity)
        assert (block.shortcut_tap is None) == (not model.spec.residual)
    keys = model.state_dict().keys()
    assert not [k for k in keys if "tap" in k]


def test_taps_see_branch_and_shortcut():
    model = build_model("resnet20", device="cpu").eval()
    seen = {}
    block = model.layer2[0]
    block.residual_tap.register_forward_hook(lambda m, a, o: seen.__setitem__("f", o))
    block.shortcut_tap.register_forward_hook(lambda m, a, o: seen.__setitem__("x", o))
    block.register_forward_hook(lambda m, a, o: seen.__setitem__("y", o))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(seen["y"], torch.relu(seen["f"] + seen["x"]))


def test_zero_pad_shortcut_is_option_a():
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "preact_resnet164", "preact_resnet110_basic"])
def test_zero_init_makes_every_branch_output_zero(name):
    spec = ModelSpec.from_name(name, zero_init_residual=True)
    model = build_model(spec.replace(layers=tuple(1 for _ in spec.layers)), device="cpu").train()
    branch = []
    for _, block in model.units():
        block.residual_tap.register_forward_hook(lambda m, a, o: branch.append(o.abs().max().item()))
    size = 32 if spec.stem == "cifar" else 64
    model(torch.randn(2, 3, size, size))
    assert branch and max(branch) == 0.0
    # without zero-init the branches are not zero: the check above can fail
    model = build_model(spec.replace(zero_init_residual=False, layers=tuple(1 for _ in spec.layers)), device="cpu")
    branch.clear()
    for _, block in model.units():
        block.residual_tap.register_forward_hook(lambda m, a, o: branch.append(o.abs().max().item()))
    model(torch.randn(2, 3, size, size))
    assert min(branch) > 0


def test_plain_net_has_no_shortcut_modules():
    model = meta_model("plain56")
    assert all(b.downsample is None and b.shortcut_tap is None for _, b in model.units())


def test_options_b_and_c():
    b = build_model(ModelSpec.from_name("resnet20", shortcut="B"), device="meta")
    c = build_model(ModelSpec.from_name("resnet20", shortcut="C"), device="meta")
    kinds_b = [blk.shortcut_kind for _, blk in b.units()]
    assert kinds_b.count("projection") == 2 and kinds_b.count("identity") == 7
    assert all(blk.shortcut_kind == "projection" for _, blk in c.units())
    assert n_params(c) > n_params(b) > 269_722


def test_width_multiplier_and_classes():
    model = build_model(ModelSpec.from_name("resnet20", width_multiplier=2), num_classes=100, in_channels=1,
                        device="cpu").eval()
    assert model.conv1.in_channels == 1 and model.conv1.out_channels == 32 and model.fc.out_features == 100
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 100)


def test_large_model_needs_confirmation():
    depth = 6 * (LARGE_UNITS // 3 + 1) + 2
    with pytest.raises(LargeModelError, match="confirm"):
        build_model(f"resnet{depth}", device="cpu")
    model = build_model(f"resnet{depth}", device="meta")  # meta allocates nothing: no confirmation
    assert len(model.units()) > LARGE_UNITS


def test_build_model_rejects_other_types():
    with pytest.raises(ValueError):
        build_model(42)


def test_a_meta_build_skips_the_initialisers_for_its_own_thread_only():
    """On the meta device the initialisers are skipped (nothing to fill); the shapes are those of a real build, and
    a model built on another thread meanwhile is initialised as always."""
    import threading

    from resnet_explorer.models import resnet

    meta = build_model("resnet20", device="meta")
    real = build_model("resnet20", device="cpu")
    assert {k: v.shape for k, v in meta.state_dict().items()} == {k: v.shape for k, v in real.state_dict().items()}
    torch.manual_seed(0)
    expected = build_model("resnet20", device="cpu").state_dict()
    built = {}

    def other_thread():
        torch.manual_seed(0)
        built["state"] = build_model("resnet20", device="cpu").state_dict()

    with resnet._NoInit():  # as during a meta build on this thread
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        skipped = torch.ones(3)
        torch.nn.init.zeros_(skipped)
    assert skipped.tolist() == [1.0, 1.0, 1.0]  # this thread's fills were skipped ...
    assert all(torch.equal(v, built["state"][k]) for k, v in expected.items())  # ... the other thread's were not
