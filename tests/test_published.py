"""torchvision's published weights table, torch's hub cache listing, and the opt-in download (tested
offline through file:// URLs)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch

from resnet_explorer import build_model
from resnet_explorer.cli import main
from resnet_explorer.runs import load_run
from resnet_explorer.runs import published as pub
from resnet_explorer.runs.checkpoints import import_weights, importable_names


def test_every_published_entry_is_an_importable_net_with_a_hash_named_file():
    names = importable_names()
    assert set(names) == {p.model for p in pub.PUBLISHED}  # every ImageNet net the zoo builds has weights
    for p in pub.PUBLISHED:
        assert re.fullmatch(rf"{p.model}-[0-9a-f]{{8}}\.pth", p.file), p
        assert p.url == pub.BASE_URL + p.file and len(p.hash_prefix) == 8
        assert p.resize in (232, 256) and 60 < p.top1 < 90
    assert pub.published("resnet50").tag == "IMAGENET1K_V2" and pub.published("resnet50").resize == 232
    assert pub.published("resnet50", "imagenet1k_v1").file == "resnet50-0676ba61.pth"
    assert pub.published("resnet18").tag == "IMAGENET1K_V1"  # its only weights
    with pytest.raises(ValueError, match="torchvision's resnet18 weights are IMAGENET1K_V1, not 'V9'"):
        pub.published("resnet18", "V9")
    with pytest.raises(ValueError, match="publishes no ImageNet weights for 'resnet20'"):
        pub.published("resnet20")


@pytest.mark.parametrize("name, model", [
    ("resnet50-0676ba61.pth", "resnet50"),  # a published file
    ("resnet50_a1_0-14fe96d1.pth", "resnet50"),  # timm's name
    ("resnet101.pth", "resnet101"),
    ("resnext101_32x8d_wsl.pth", "resnext101_32x8d"),  # the longest name that fits
    ("resnet1x.pth", None),
    ("vit_base.pth", None),
])
def test_guess_model_from_a_file_name(name, model):
    assert pub.guess_model(name, importable_names()) == model


def test_hub_checkpoints_follow_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert pub.hub_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    assert pub.hub_checkpoints() == ([], 0)  # no cache yet: an empty list, not an error
    folder = pub.hub_dir()
    folder.mkdir(parents=True)
    for name in ("resnet50-0676ba61.pth", "b.pt", ".partial.pth", "notes.txt"):
        (folder / name).write_bytes(b"x" * 10)
    rows, total = pub.hub_checkpoints()
    assert [r["file"] for r in rows] == ["b.pt", "resnet50-0676ba61.pth"] and total == 2
    assert rows[1]["published"] == pub.published("resnet50", "IMAGENET1K_V1") and rows[0]["published"] is None
    assert pub.hub_checkpoints(limit=1)[0][0]["file"] == "b.pt"


def seeded_file(folder: Path, model: str = "resnet18", prefix_ok: bool = True) -> tuple[Path, str]:
    """A seeded state dict saved under torchvision's naming: <model>-<first 8 hex of its sha256>.pth."""
    torch.manual_seed(3)
    data = folder / "staging.pth"
    torch.save(build_model(model, device="cpu").state_dict(), data)
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    name = f"{model}-{digest[:8] if prefix_ok else '00000000'}.pth"
    data.rename(folder / name)
    return folder / name, digest


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local 'download server' (a folder behind file://) and an empty hub cache."""
    server = tmp_path / "server"
    server.mkdir()
    monkeypatch.setattr(pub, "BASE_URL", server.as_uri() + "/")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return server


def test_download_checks_the_hash_and_leaves_nothing_when_it_fails(mirror, tmp_path):
    good, digest = seeded_file(mirror)
    entry = pub.Published("resnet18", "TEST", good.name, 232, 70.0, 45.0)
    target = pub.download(entry, progress=False)
    assert target == pub.hub_dir() / good.name and target.read_bytes() == good.read_bytes()
    assert pub.download(entry, progress=False) == target  # there already: nothing fetched
    bad, _ = seeded_file(mirror, prefix_ok=False)
    with pytest.raises(ValueError, match="did not match its published hash"):
        pub.download(pub.Published("resnet18", "TEST", bad.name, 256, 70.0, 45.0), progress=False)
    assert not (pub.hub_dir() / bad.name).exists()
    with pytest.raises(ValueError, match=r"could not download file://.*resnet18-12345678\.pth"):
        pub.download(pub.Published("resnet18", "TEST", "resnet18-12345678.pth", 256, 70.0, 45.0), progress=False)
    assert sorted(p.name for p in pub.hub_dir().iterdir()) == [good.name]


def test_import_takes_torchvisions_resize_only_for_the_published_file_itself(mirror, tmp_path, monkeypatch):
    good, digest = seeded_file(mirror)
    entry = pub.Published("resnet18", "TEST", good.name, 232, 70.0, 45.0)
    monkeypatch.setattr(pub, "_BY_FILE", {good.name: entry})
    run = load_run(import_weights(good, "resnet18", tmp_path / "runs"), with_model=False)
    assert run.resize == 232 and run.info["source"]["published"] == "torchvision TEST, ImageNet top-1 70.0%"
    assert run.info["source"]["sha256"] == digest
    impostor = tmp_path / good.name  # same name, other bytes: no claim, the default resize
    torch.manual_seed(4)
    torch.save(build_model("resnet18", device="cpu").state_dict(), impostor)
    run = load_run(import_weights(impostor, "resnet18", tmp_path / "runs"), with_model=False)
    assert run.resize == 256 and run.info["source"]["published"] is None
    run = load_run(import_weights(impostor, "resnet18", tmp_path / "runs", resize=288), with_model=False)
    assert run.resize == 288
    with pytest.raises(ValueError, match="resize must be a whole number of pixels from 224"):
        import_weights(impostor, "resnet18", tmp_path / "runs", resize=100)


def test_cli_lists_the_hub_cache_and_downloads_only_when_asked(mirror, tmp_path, monkeypatch, capsys):
    good, _ = seeded_file(mirror)
    entry = pub.Published("resnet18", "IMAGENET1K_V1", good.name, 256, 69.758, 44.661)
    monkeypatch.setattr(pub, "PUBLISHED", (entry,))
    monkeypatch.setattr(pub, "_BY_FILE", {good.name: entry})
    runs = tmp_path / "runs"
    assert main(["import-weights", "--list"]) == 0
    assert ": 0 checkpoint files" in capsys.readouterr().err
    assert main(["import-weights", "--model", "resnet18", "--out", str(runs)]) == 2  # no file, no --download
    assert "give the checkpoint FILE, or --download" in capsys.readouterr().err
    assert not pub.hub_dir().exists()  # nothing fetched unless asked
    assert main(["import-weights", "--model", "resnet18", "--download", "--out", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert (pub.hub_dir() / good.name).is_file() and "torchvision IMAGENET1K_V1" in err
    assert load_run(out.strip().splitlines()[-1], with_model=False).imported
    assert main(["import-weights", "--list"]) == 0
    out, err = capsys.readouterr()
    assert ": 1 checkpoint file" in err and good.name in out and "named as resnet18 IMAGENET1K_V1 (torchvision" in out
    assert main(["import-weights", str(good), "--model", "resnet18", "--download", "--out", str(runs)]) == 2
    assert "not both" in capsys.readouterr().err


def test_cli_import_of_the_same_file_again_reuses_its_run(tmp_path, capsys):
    file, _ = seeded_file(tmp_path)
    runs = tmp_path / "runs"
    assert main(["import-weights", str(file), "--model", "resnet18", "--out", str(runs)]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["import-weights", str(file), "--model", "resnet18", "--out", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == first and "imported before, as this run" in err
    assert main(["import-weights", str(file), "--model", "resnet18", "--resize", "288", "--out", str(runs)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] != first  # another resize: another run
    assert len(list(runs.iterdir())) == 2


def test_the_hugging_face_cache_is_listed_by_model_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert pub.hf_hub_dir() == tmp_path / "hf" / "hub"
    snapshot = tmp_path / "hf" / "hub" / "models--timm--resnet50.a1_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"x" * 10)
    (snapshot / "config.json").write_text("{}")
    rows, total, folders = pub.cached_checkpoints()
    assert total == 1 and folders == [pub.hub_dir(), pub.hf_hub_dir()]
    assert rows[0]["file"] == "timm/resnet50.a1_in1k" and rows[0]["cache"] == "Hugging Face"
    assert rows[0]["path"].endswith("model.safetensors")
    assert pub.guess_model(rows[0]["file"], importable_names()) == "resnet50"
