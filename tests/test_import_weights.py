"""import-weights: torchvision and timm checkpoints become "imported" runs that give the same logits.

timm is not installed: its layout is written by hand. timm's `ResNet` (timm/models/resnet.py) names its
modules as torchvision does for the nets the zoo builds — conv1, bn1, layer1..layer4 with conv1/bn1/
conv2/bn2 and downsample.0/.1, classifier `fc` — so the timm file below differs in the wrapping timm's
training checkpoints use: the weights under "state_dict_ema" beside "epoch", "arch", "version" and
"metric" (timm's CheckpointSaver, without its argparse "args", which weights_only refuses), keys saved
from DistributedDataParallel ("module." prefix), no `num_batches_tracked` entries, and the classifier
named `head.fc` (timm's generic heads). The deep stem of timm's resnet*d (conv1.0 ... conv1.6) is refused.
"""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.cli import main
from resnet_explorer.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_classes
from resnet_explorer.runs import Run, list_runs, load_run
from resnet_explorer.runs import checkpoints as ck


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    """A seeded resnet18 with BN statistics that are not the defaults (so a lost buffer changes the logits)."""
    torch.manual_seed(13)
    model = build_model("resnet18", device="cpu")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def torchvision_file(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "resnet18-tv.pth"
    torch.save(net.state_dict(), path)  # torchvision's hub files: a bare state dict, same keys
    return path


def timm_layout(state: dict[str, torch.Tensor]) -> dict:
    """`state` as a timm training checkpoint (see the module's docstring for the names mapped)."""
    weights = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        key = "head." + key if key.startswith("fc.") else key
        weights["module." + key] = value.clone()
    return {"epoch": 7, "arch": "resnet18", "state_dict_ema": weights, "version": 2, "metric": 0.5}


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_torchvision_checkpoint_imports_with_identical_logits(net, batch, torchvision_file, tmp_path):
    path = ck.import_weights(torchvision_file, "resnet18", tmp_path / "runs")
    run = load_run(path)
    assert run.kind == "imported" and run.status == "done" and run.config is None
    assert torch.equal(logits(run.model, batch), logits(net, batch))
    assert all(len(table) == 0 for table in run.tables.values()) and len(run.metrics) == 0
    assert run.normalisation == (IMAGENET_MEAN, IMAGENET_STD, 224)
    assert run.classes == imagenet_classes() and run.classes[0] == "tench" and len(set(run.classes)) == 1000
    info = json.loads((path / "run.json").read_text())
    assert info["source"]["file"] == "resnet18-tv.pth" and info["source"]["layout"] == "torchvision"
    assert info["source"]["sha256"] == __import__("hashlib").sha256(torchvision_file.read_bytes()).hexdigest()
    assert [r["kind"] for r in list_runs(tmp_path / "runs")] == ["imported"]
    assert not list((tmp_path / "runs").glob(".*"))  # no staging folder left behind


def test_timm_checkpoint_imports_with_identical_logits(net, batch, tmp_path):
    state = timm_layout(net.state_dict())
    assert ck.checkpoint_layout(state["state_dict_ema"]) == "timm"
    torch.save(state, tmp_path / "resnet18-timm.pth.tar")
    path = ck.import_weights(tmp_path / "resnet18-timm.pth.tar", "resnet18", tmp_path / "runs")
    run = load_run(path)
    assert run.info["source"]["layout"] == "timm"
    assert torch.equal(logits(run.model, batch), logits(net, batch))


def test_a_pickled_object_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').close()",)

    (tmp_path / "evil.pth").write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(ValueError, match=r"evil.pth holds objects other than tensors \((builtins\.)?exec\).*"
                                         r"nothing in it was executed"):
        ck.read_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()
    assert main(["import-weights", str(tmp_path / "evil.pth"), "--model", "resnet18", "--out",
                 str(tmp_path / "runs")]) == 2
    assert not marker.exists() and not any((tmp_path / "runs").iterdir())
    pickle.loads((tmp_path / "evil.pth").read_bytes())  # the payload is live: plain pickle runs it
    assert marker.exists()


def test_corrupt_and_foreign_files_get_one_line_messages(torchvision_file, tmp_path):
    data = torchvision_file.read_bytes()
    cases = {"truncated.pth": data[: len(data) // 2], "garbage.pth": b"not a checkpoint" * 64, "empty.pth": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"^{name} is (not a PyTorch checkpoint|empty)") as err:
            ck.read_checkpoint(tmp_path / name)
        assert "\n" not in str(err.value) and "weights_only=False" not in str(err.value)
    torch.save({"epoch": 3, "lr": torch.tensor(0.1), "note": "hi"}, tmp_path / "foreign.pth")
    with pytest.raises(ValueError, match="foreign.pth is not a state dict: its entry 'epoch' holds a int"):
        ck.read_checkpoint(tmp_path / "foreign.pth")
    torch.save({"epoch": 3, "arch": "x"}, tmp_path / "nostate.pth")
    with pytest.raises(ValueError, match="nostate.pth holds no state dict"):
        ck.read_checkpoint(tmp_path / "nostate.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        ck.read_checkpoint(tmp_path / "list.pth")
    with pytest.raises(ValueError, match="cannot be read: No such file"):
        ck.read_checkpoint(tmp_path / "missing.pth")


def test_file_size_is_checked_before_reading(torchvision_file, monkeypatch):
    monkeypatch.setattr(ck, "MAX_CHECKPOINT_BYTES", 1_000_000)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read past the size limit"))
    with pytest.raises(ValueError, match="more than the 0 GB a checkpoint may take: not reading it"):
        ck.read_checkpoint(torchvision_file)


def test_timm_deep_stem_is_refused_naming_its_keys():
    spec = ModelSpec.from_name("resnet18")
    state = {k: v for k, v in build_model(spec, device="meta").state_dict().items() if not k.startswith("conv1.")}
    for i, channels in ((0, 32), (3, 32), (6, 64)):  # timm resnet18d: conv-bn-act x3, bn1 after it
        state[f"conv1.{i}.weight"] = torch.empty(channels, 3 if i == 0 else 32, 3, 3, device="meta")
    for i in (1, 4):
        state[f"conv1.{i}.weight"] = torch.empty(32, device="meta")
    assert ck.checkpoint_layout(state) == "timm"
    with pytest.raises(ValueError, match=r"deep 3x3 stem .*: conv1\.0\.weight, conv1\.3\.weight, conv1\.6\.weight "
                                         r"and 2 more; the zoo cannot build it"):
        ck.to_zoo_state(state, spec)


def test_another_depth_is_refused_naming_keys_and_shapes(torchvision_file, tmp_path):
    resnet50 = build_model("resnet50", device="meta").state_dict()  # shapes only: no memory
    with pytest.raises(ValueError) as err:
        ck.to_zoo_state(resnet50, ModelSpec.from_name("resnet18"))
    message = str(err.value)
    assert message.startswith("the checkpoint does not fit resnet18: unexpected layer1.0.downsample.0.weight, "
                              "layer1.0.downsample.1.weight, layer1.0.downsample.1.bias and 195 more; ")
    assert ("layer1.0.conv1.weight is 64x64x1x1 in the file, 64x64x3x3 in resnet18, layer1.1.conv1.weight is "
            "64x256x1x1 in the file, 64x64x3x3 in resnet18" in message) and "missing" not in message
    runs = tmp_path / "runs"
    assert main(["import-weights", str(torchvision_file), "--model", "resnet34", "--out", str(runs)]) == 2
    assert not runs.exists() or not any(runs.iterdir())
    with pytest.raises(ValueError, match="missing layer1.2.conv1.weight"):
        ck.import_weights(torchvision_file, "resnet34", runs)
    with pytest.raises(ValueError, match="is a CIFAR net"):
        ck.import_weights(torchvision_file, "resnet56", runs)


def test_cli_imports_a_fine_tuned_head_with_its_class_names(net, batch, tmp_path, capsys):
    model = build_model(ModelSpec.from_name("resnet18").replace(num_classes=10), device="cpu")
    state = {**net.state_dict(), "fc.weight": model.fc.weight.detach(), "fc.bias": model.fc.bias.detach()}
    model.load_state_dict(state)
    torch.save(state, tmp_path / "tuned.pth")
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"kind {i}" for i in range(9)) + "\n")
    runs = tmp_path / "runs"
    assert main(["import-weights", str(tmp_path / "tuned.pth"), "--model", "resnet18", "--classes", str(names),
                 "--out", str(runs)]) == 2
    assert "names 9 classes (one per line), but the model has 10 outputs" in capsys.readouterr().err
    assert not any(runs.iterdir())
    names.write_text("\n".join(f"kind {i}" for i in range(10)) + "\n\n")
    assert main(["import-weights", str(tmp_path / "tuned.pth"), "--model", "resnet18", "--classes", str(names),
                 "--out", str(runs)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    run = load_run(out[-1])
    assert run.spec.num_classes == 10 and run.classes == [f"kind {i}" for i in range(10)]
    assert torch.equal(logits(run.model, batch), logits(model, batch))
    assert main(["import-weights", str(tmp_path / "tuned.pth"), "--model", "resnet18", "--out", str(runs)]) == 0
    assert load_run(capsys.readouterr().out.strip().splitlines()[-1], with_model=False).classes == list("0123456789")
    assert main(["import-weights", str(tmp_path / "nope.pth"), "--model", "resnet18", "--out", str(runs)]) == 2
    assert main(["import-weights", str(tmp_path / "tuned.pth"), "--model", "resnet17", "--out", str(runs)]) == 2


def test_runs_without_a_kind_are_trained():
    assert Run(path=__import__("pathlib").Path("x"), info={}, spec=ModelSpec(), config=None).kind == "trained"


def test_timm_safetensors_file_imports_with_identical_logits(net, batch, tmp_path):
    """timm's Hugging Face weights: a bare state dict in the safetensors format (no pickle at all)."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    path = ck.import_weights(tmp_path / "model.safetensors", "resnet18", tmp_path / "runs")
    run = load_run(path)
    assert torch.equal(logits(run.model, batch), logits(net, batch))
    renamed = tmp_path / "weights.bin"  # no telling suffix: recognised by its header
    renamed.write_bytes((tmp_path / "model.safetensors").read_bytes())
    assert ck.read_checkpoint(renamed).keys() == state.keys()


def test_a_damaged_safetensors_file_is_one_line(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ValueError, match=r"^model.safetensors is not a readable safetensors file") as err:
        ck.read_checkpoint(file)
    assert "\n" not in str(err.value)
