"""The user's own photos for a pretrained (imported) net: ImageNet's resize-then-crop, folders of images,
and the top-5 predictions shown beside every attribution."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_explorer import build_model
from resnet_explorer.analysis import ImageError, load_image, predict, predict_top
from resnet_explorer.analysis.study import (
    TOP_K,
    image_files,
    images_inputs,
    percent,
    run_study,
    top_line,
    top_predictions,
    upload_inputs,
)
from resnet_explorer.cli import main
from resnet_explorer.limits import MAX_USER_IMAGES
from resnet_explorer.runs import checkpoints as ck
from resnet_explorer.runs import load_run

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def smooth_image(width: int, height: int) -> Image.Image:
    """Smooth colour ramps with a bright disc off centre: crops of it differ, resampling barely matters."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r, g = 255 * x / (width - 1), 255 * y / (height - 1)
    b = np.where((x - 0.3 * width) ** 2 + (y - 0.4 * height) ** 2 < (0.2 * min(width, height)) ** 2, 255.0, 40.0)
    return Image.fromarray(np.stack([r, g, b], axis=-1).round().astype(np.uint8))


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def torchvision_eval_transform(img: Image.Image, resize: int, crop: int) -> np.ndarray:
    """torchvision's Resize(resize) + CenterCrop(crop) on a PIL image, written out step by step."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    resized = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    return np.asarray(resized.crop((left, top, left + crop, top + crop)), dtype=np.int16)


@pytest.mark.parametrize("size", [(640, 480), (300, 500)])
def test_resize_then_crop_matches_torchvisions_two_steps(size):
    img = smooth_image(*size)
    _, preview = load_image(encode(img), image_size=224, mean=MEAN, std=STD, resize=256)
    ours = preview.permute(1, 2, 0).numpy().astype(np.int16)
    reference = torchvision_eval_transform(img, 256, 224)
    assert np.abs(ours - reference).mean() < 1.5
    # the whole centre square (no separate resize) is a different picture: the comparison can fail
    _, whole = load_image(encode(img), image_size=224, mean=MEAN, std=STD)
    assert np.abs(whole.permute(1, 2, 0).numpy().astype(np.int16) - reference).mean() > 5


def test_resize_smaller_than_the_crop_is_refused():
    with pytest.raises(ValueError, match=r"resize \(200\) must be at least image_size \(224\)"):
        load_image(encode(smooth_image(300, 300)), image_size=224, mean=MEAN, std=STD, resize=200)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """An imported seeded resnet18 (ImageNet layout, 224 px, resize 256)."""
    torch.manual_seed(7)
    file = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(build_model("resnet18", device="cpu").state_dict(), file)
    return ck.import_weights(file, "resnet18", tmp_path_factory.mktemp("runs"))


def test_an_imported_run_scales_uploads_to_256_then_keeps_the_centre_224(imported):
    run = load_run(imported, with_model=False)
    assert run.resize == 256 and run.normalisation[2] == 224
    img = smooth_image(640, 480)
    inputs = upload_inputs(run, encode(img), "photo.png")
    assert inputs.note == "640 x 480 px, shorter side scaled to 256 px, centre 224 x 224 px kept"
    expected, _ = load_image(encode(img), image_size=224, mean=run.normalisation[0], std=run.normalisation[1],
                             resize=256)
    assert torch.equal(inputs.images, expected)
    padded = upload_inputs(run, encode(img), "photo.png", fit="pad")  # the resize applies to the crop only
    assert "padded to 224 x 224" in padded.note


def test_a_bad_resize_in_run_json_is_one_clear_line(imported, tmp_path):
    import shutil

    copy = tmp_path / imported.name
    shutil.copytree(imported, copy)
    info = json.loads((copy / "run.json").read_text())
    info["data"]["resize"] = 100  # below the 224 crop
    (copy / "run.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"data.resize should be a whole number from 224 to \d+, got 100"):
        _ = load_run(copy, with_model=False).resize


def test_a_folder_of_photos_skips_what_cannot_be_read_and_says_so(imported, tmp_path):
    run = load_run(imported, with_model=False)
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode(smooth_image(320, 240)))
    (folder / "b.jpg").write_bytes(encode(smooth_image(240, 320), "JPEG"))
    (folder / "c.png").write_bytes(b"not an image")
    (folder / ".hidden.png").write_bytes(encode(smooth_image(64, 64)))
    (folder / "notes.txt").write_text("not an image either")
    files, total = image_files(folder)
    assert [f.name for f in files] == ["a.png", "b.jpg", "c.png"] and total == 3
    inputs = images_inputs(run, [(f.name, f) for f in files], total=total)
    assert inputs.names == ["a.png", "b.jpg"] and inputs.images.shape == (2, 3, 224, 224)
    assert inputs.previews.shape == (2, 3, 224, 224) and inputs.previews.dtype == torch.uint8
    assert "2 images, shorter side scaled to 256 px" in inputs.note
    assert "1 left out" in inputs.note and "c.png is not a readable image" in inputs.note
    first, total = image_files(folder, limit=1)
    some = images_inputs(run, [(f.name, f) for f in first], total=total)
    assert some.names == ["a.png"] and "the first 1 of 3 (sorted by name)" in some.note
    with pytest.raises(ImageError, match="none of the 1 images could be read; the first: .*c.png"):
        images_inputs(run, [("c.png", folder / "c.png")])


def test_folder_bounds_are_checked_before_anything_is_read(imported, tmp_path):
    run = load_run(imported, with_model=False)
    with pytest.raises(ValueError, match="is not a folder"):
        image_files(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no images"):
        image_files(tmp_path)
    with pytest.raises(ValueError, match=f"images must be .*{MAX_USER_IMAGES}"):
        images_inputs(run, [("x.png", tmp_path / "never-read.png")] * (MAX_USER_IMAGES + 1))


def test_predict_top_is_softmax_topk_and_agrees_with_predict():
    torch.manual_seed(0)
    model = build_model("resnet8", num_classes=10, device="cpu").train()
    x = torch.randn(6, 3, 16, 16)
    classes, probs = predict_top(model, x, k=3)
    assert model.training  # its mode is restored
    with torch.no_grad():
        expected = model.eval()(x).softmax(dim=1).topk(3, dim=1)
    assert torch.equal(classes, expected.indices) and torch.allclose(probs, expected.values)
    top1, p1 = predict(model, x)
    assert torch.equal(classes[:, 0], top1) and torch.allclose(probs[:, 0], p1)
    every, _ = predict_top(model, x, k=50)  # more than the net has: all 10, best first
    assert every.shape == (6, 10) and sorted(every[0].tolist()) == list(range(10))


def test_the_study_keeps_the_top_five_and_writes_them_for_people(imported):
    run = load_run(imported)
    inputs = upload_inputs(run, encode(smooth_image(320, 240)), "photo.png")
    study = run_study(run.model, inputs, ["saliency"], sanity=False)
    assert study.top_classes.shape == (1, TOP_K) and study.top_classes[0, 0] == study.predicted[0]
    assert torch.all(study.top_probs[0, :-1] >= study.top_probs[0, 1:])
    rows = top_predictions(study, run.classes)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["class"] == run.classes[int(study.predicted[0])]
    line = top_line(study, 0, run.classes)
    assert line.count(" · ") == TOP_K - 1 and line.startswith(run.classes[int(study.predicted[0])])


@pytest.mark.parametrize("p, text", [(0.62, "62%"), (0.095, "10%"), (0.043, "4.3%"), (0.0004, "<0.1%")])
def test_percent_never_shows_a_ranked_class_as_zero(p, text):
    assert percent(p) == text


def test_attribute_cli_on_a_folder_writes_predictions_and_prints_the_top_five(imported, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, size in [("one.png", (320, 240)), ("two.png", (200, 300))]:
        (folder / name).write_bytes(encode(smooth_image(*size)))
    out = tmp_path / "attr"
    assert main(["attribute", str(imported), "--image", str(folder), "--methods", "saliency", "--no-sanity",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert np.load(out / "attributions.npz")["inputs"].shape == (2, 3, 224, 224)
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["image"], r["rank"]) for r in rows] == [(n, str(k)) for n in ("one.png", "two.png") for k in range(1, 6)]
    probs = [float(r["probability"]) for r in rows[:5]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert f"one.png: {rows[0]['class']} " in err and "2 images, shorter side scaled to 256 px" in err


def test_profile_cli_on_a_folder_of_photos_writes_the_table_and_figure(imported, tmp_path, capsys):
    out = tmp_path / "prof"
    assert main(["profile", str(imported), "--out", str(out)]) == 2  # an imported net has no held-out images
    assert "has no dataset: give your own images (--photos" in capsys.readouterr().err and not out.exists()
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, size in [("one.png", (320, 240)), ("two.png", (200, 300))]:
        (folder / name).write_bytes(encode(smooth_image(*size)))
    assert main(["profile", str(imported), "--images", str(folder), "--no-lesions", "--format", "html",
                 "--out", str(out)]) == 0
    written, err = capsys.readouterr()
    *files, folder_printed = [Path(p) for p in written.split()]
    assert folder_printed == out  # the folder last, as every lens prints it
    assert sorted(p.suffix for p in files) == [".csv", ".html"] and all(p.is_file() for p in files)
    assert all(p.name.startswith("resnet18_") for p in files)  # named by their run, the figure as the table
    import pandas as pd

    rows = pd.read_csv(next(p for p in files if p.suffix == ".csv"))
    assert list(rows["unit"]) == [f"layer{s}.{i}" for s in range(1, 5) for i in range(2)]
    assert "2 images, shorter side scaled to 256 px" in err and "resnet18" in err and "(eval mode, 2 images)" in err
