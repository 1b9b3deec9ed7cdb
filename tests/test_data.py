"""Tests for `resnet_explorer.data`: shapes, CIFAR from pickles, image folders, augmentation.

CPU only, no network: the CIFAR download path runs against a patched ``urlopen``.
"""

import dataclasses
import hashlib
import io
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import resnet_explorer.data as data_pkg
from resnet_explorer.data import DATASETS, SHAPES_CLASSES, ImageData, augment_batch, load_data, normalize
from resnet_explorer.data import cifar as cifar_mod
from resnet_explorer.data import shapes as shapes_mod
from resnet_explorer.data.base import channel_stats
from resnet_explorer.data.folder import read_image


def assert_one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message and message
    for needle in needles:
        assert needle in message, message


@pytest.fixture(scope="module")
def shapes():
    return load_data("shapes", seed=0, train_size=500, test_size=200)


# --- shapes -----------------------------------------------------------------------------------


def test_public_api():
    assert sorted(data_pkg.__all__) == sorted(
        ["ImageData", "load_data", "DATASETS", "augment_batch", "denormalize", "normalize", "SHAPES_CLASSES",
         "spread_over_classes"])
    assert DATASETS == ("shapes", "shapes-easy", "cifar10", "cifar100", "folder:PATH")
    assert len(SHAPES_CLASSES) == 10 and len(set(SHAPES_CLASSES)) == 10


def test_shapes_shapes_and_dtypes(shapes):
    assert shapes.name == "shapes" and shapes.classes == SHAPES_CLASSES
    assert shapes.train_images.shape == (500, 3, 32, 32) and shapes.train_images.dtype == torch.uint8
    assert shapes.test_images.shape == (200, 3, 32, 32) and shapes.test_images.dtype == torch.uint8
    assert shapes.train_labels.shape == (500,) and shapes.train_labels.dtype == torch.int64
    assert shapes.test_labels.shape == (200,) and shapes.test_labels.dtype == torch.int64
    assert shapes.train_masks.shape == (500, 32, 32) and shapes.train_masks.dtype == torch.bool
    assert shapes.test_masks.shape == (200, 32, 32) and shapes.test_masks.dtype == torch.bool
    assert (shapes.num_classes, shapes.in_channels, shapes.image_size) == (10, 3, 32)
    assert shapes.source and "\n" not in shapes.source
    assert shapes.train_images.device.type == "cpu"


def test_shapes_default_sizes(monkeypatch):
    requested = []
    make = shapes_mod.make_shapes

    def record(n, **kwargs):  # generate 10 images, not 12,000: this checks the sizes asked for
        requested.append(n)
        return make(10, **kwargs)
    monkeypatch.setattr(shapes_mod, "make_shapes", record)
    load_data()
    assert requested == [10_000, 2_000]


def test_shapes_deterministic_per_seed():
    a = load_data("shapes", seed=3, train_size=60, test_size=30)
    b = load_data("shapes", seed=3, train_size=60, test_size=30)
    c = load_data("shapes", seed=4, train_size=60, test_size=30)
    for field in ("train_images", "train_labels", "train_masks", "test_images", "test_labels", "test_masks"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.train_images, c.train_images)
    assert not torch.equal(a.test_images, c.test_images)
    assert a.mean == b.mean and a.std == b.std


def test_shapes_leave_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    load_data("shapes", train_size=20, test_size=20)
    assert torch.equal(torch.get_rng_state(), before)


def test_shapes_train_and_test_do_not_overlap():
    # Equal sizes, so that one stream reused for both splits would give identical images.
    a = load_data("shapes", seed=0, train_size=100, test_size=100)
    b = load_data("shapes", seed=1, train_size=100, test_size=100)  # neighbouring seed: unrelated streams

    def overlap(x, y):
        seen = {bytes(img.numpy()) for img in x}
        return sum(bytes(img.numpy()) in seen for img in y)

    assert overlap(a.train_images, a.test_images) == 0
    assert overlap(a.test_images, b.train_images) == 0
    assert overlap(a.train_images, b.test_images) == 0


def test_shapes_class_balance():
    d = load_data("shapes", train_size=205, test_size=30)
    assert set(torch.bincount(d.train_labels, minlength=10).tolist()) == {20, 21}
    assert torch.bincount(d.test_labels, minlength=10).tolist() == [3] * 10
    assert not torch.equal(d.train_labels[:20], torch.arange(20) % 10)  # shuffled, not cyclic


def test_shapes_masks_are_whole_objects(shapes):
    for masks in (shapes.train_masks, shapes.test_masks):
        fraction = masks.float().mean(dim=(1, 2))
        assert fraction.min() > 0.01 and fraction.max() < 0.4
        border = masks[:, 0].any(1) | masks[:, -1].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
        assert not border.any(), "every object lies fully inside the image"


def test_shapes_objects_contrast_with_background(shapes):
    x, m = shapes.train_images.float() / 255, shapes.train_masks
    inside = (x * m[:, None]).sum((2, 3)) / m[:, None].sum((2, 3))
    edge = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], dim=2).mean(2)
    assert ((inside - edge).norm(dim=1) > 0.25).float().mean() > 0.95


def test_shapes_textures(shapes):
    x, m, y = shapes.train_images.float().mean(1), shapes.train_masks, shapes.train_labels

    def inside_std(label):
        return torch.stack([x[i][m[i]].std() for i in (y == label).nonzero().squeeze(1)]).median()

    square = SHAPES_CLASSES.index("square")
    for name in ("h-stripes", "v-stripes", "checkerboard"):
        assert inside_std(SHAPES_CLASSES.index(name)) > 2 * inside_std(square), name

    def step(label, dim):
        idx = (y == label).nonzero().squeeze(1)
        xs, ms = x[idx], m[idx]
        diff = (xs.diff(dim=dim)).abs()
        both = ms.narrow(dim, 1, ms.shape[dim] - 1) & ms.narrow(dim, 0, ms.shape[dim] - 1)
        return (diff * both).sum() / both.sum()

    h, v = SHAPES_CLASSES.index("h-stripes"), SHAPES_CLASSES.index("v-stripes")
    assert step(h, 1) > 1.5 * step(h, 2), "horizontal stripes change from row to row"
    assert step(v, 2) > 1.5 * step(v, 1), "vertical stripes change from column to column"


def test_shapes_image_size():
    d = load_data("shapes", train_size=20, test_size=10, image_size=24)
    assert d.train_images.shape == (20, 3, 24, 24) and d.test_masks.shape == (10, 24, 24)
    assert d.train_masks.any(dim=(1, 2)).all()
    with pytest.raises(ValueError) as excinfo:
        load_data("shapes", train_size=20, test_size=10, image_size=8)
    assert_one_line_error(excinfo, "image_size")


# --- statistics and validation ------------------------------------------------------------------


def test_mean_std_match_direct_computation(shapes):
    x = shapes.train_images.double() / 255
    assert shapes.mean == pytest.approx(x.mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert shapes.std == pytest.approx(x.std(dim=(0, 2, 3), correction=0).tolist(), abs=1e-9)
    # Train split only: the test split has its own statistics.
    assert shapes.mean != pytest.approx((shapes.test_images.double() / 255).mean(dim=(0, 2, 3)).tolist(), abs=1e-6)


def test_channel_stats_constant_channel():
    images = torch.randint(0, 256, (4, 2, 5, 5), dtype=torch.uint8)
    images[:, 1] = 7
    mean, std = channel_stats(images)
    assert mean[1] == pytest.approx(7 / 255) and std[1] == 1.0
    assert std[0] == pytest.approx((images[:, 0].double() / 255).std(correction=0).item())


def _tiny_data(**changes):
    fields = dict(
        name="t", classes=("a", "b"),
        train_images=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), train_labels=torch.tensor([0, 1, 0, 1]),
        test_images=torch.zeros(2, 3, 8, 8, dtype=torch.uint8), test_labels=torch.tensor([1, 0]),
        mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2),
    )
    fields.update(changes)
    return ImageData(**fields)


def test_image_data_validates():
    d = _tiny_data()
    assert (d.num_classes, d.in_channels, d.image_size) == (2, 3, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.name = "x"
    bad = [
        dict(train_images=torch.zeros(4, 3, 8, 8)),                       # float, not uint8
        dict(train_labels=torch.tensor([0, 1, 2, 1])),                    # label 2 with two classes
        dict(test_labels=torch.tensor([1, 0], dtype=torch.int32)),
        dict(test_images=torch.zeros(2, 3, 7, 7, dtype=torch.uint8)),     # differs from train
        dict(mean=(0.5, 0.5)),
        dict(std=(0.2, 0.0, 0.2)),
        dict(train_masks=torch.zeros(4, 8, 8)),                           # not bool
        dict(classes=("a", "a")),
    ]
    for change in bad:
        with pytest.raises(ValueError) as excinfo:
            _tiny_data(**change)
        assert_one_line_error(excinfo)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(dataset="imagenet"), "unknown dataset"),
    (dict(train_size=0), "train_size"),
    (dict(test_size=-5), "test_size"),
    (dict(train_size=2.5), "train_size"),
    (dict(image_size=0), "image_size"),
    (dict(seed="1"), "seed"),
])
def test_load_data_rejects_bad_input(kwargs, needle):
    with pytest.raises(ValueError) as excinfo:
        load_data(**kwargs)
    assert_one_line_error(excinfo, needle)


# --- CIFAR --------------------------------------------------------------------------------------


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _fake_cifar10(root, per_batch=4, n_test=3):
    """A tiny cifar-10-batches-py; returns the (N, 3072) train rows and labels in file order."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        _dump(folder / f"data_batch_{i}", {b"batch_label": b"x", b"data": data, b"labels": y, b"filenames": []})
        rows.append(data)
        labels += y
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    _dump(folder / "test_batch", {b"data": test, b"labels": [9, 0, 5][:n_test]})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch})
    return folder, np.concatenate(rows), labels, test


def test_cifar10_from_fake_pickles(tmp_path):
    folder, rows, labels, test = _fake_cifar10(tmp_path)
    for root in (tmp_path, folder):  # the parent or the folder itself
        d = load_data("cifar10", root=root)
        assert d.name == "cifar10" and d.classes[0] == "airplane" and d.classes[9] == "truck"
        assert d.train_images.shape == (20, 3, 32, 32) and d.train_images.dtype == torch.uint8
        assert d.train_labels.tolist() == labels and d.test_labels.tolist() == [9, 0, 5]
        assert d.train_masks is None
        # Channel-major rows: the green value of pixel (row 2, col 5) sits at 1024 + 2 * 32 + 5.
        assert d.train_images[7, 1, 2, 5].item() == rows[7, 1024 + 2 * 32 + 5]
        assert np.array_equal(d.test_images.reshape(3, -1).numpy(), test)
        assert d.mean == pytest.approx((rows.reshape(-1, 3, 1024) / 255).mean(axis=(0, 2)).tolist())


def test_cifar_sizes_take_the_first_images(tmp_path):
    _, rows, labels, _ = _fake_cifar10(tmp_path)
    d = load_data("cifar10", root=tmp_path, train_size=6, test_size=2)  # spans two batch files
    assert d.train_labels.tolist() == labels[:6]
    assert np.array_equal(d.train_images.reshape(6, -1).numpy(), rows[:6])
    assert len(d.test_labels) == 2
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path, train_size=21)
    assert_one_line_error(excinfo, "train_size=21")


def test_cifar_resize(tmp_path):
    _fake_cifar10(tmp_path)
    d = load_data("cifar10", root=tmp_path, image_size=16)
    assert d.train_images.shape == (20, 3, 16, 16) and d.image_size == 16


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    fine = [99, 0, 42, 7, 13]
    _dump(folder / "train", {b"data": train, b"fine_labels": fine, b"coarse_labels": [0, 1, 2, 3, 4]})
    _dump(folder / "test", {b"data": train[:2], b"fine_labels": [1, 2], b"coarse_labels": [0, 0]})
    names = [f"class{i}".encode() for i in range(100)]
    _dump(folder / "meta", {b"fine_label_names": names, b"coarse_label_names": [b"c"] * 20})
    d = load_data("cifar100", root=tmp_path)
    assert d.num_classes == 100 and d.classes[42] == "class42"
    assert d.train_labels.tolist() == fine and d.test_labels.tolist() == [1, 2]
    assert np.array_equal(d.train_images.reshape(5, -1).numpy(), train)


def _no_network(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the network was touched")
    monkeypatch.setattr(cifar_mod.urllib.request, "urlopen", fail)


def test_cifar_missing_folder_says_how_to_download(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path / "nowhere")
    assert_one_line_error(excinfo, "download=True", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar100", root=tmp_path)
    assert_one_line_error(excinfo, "cifar-100-python")


@pytest.mark.parametrize("corrupt, needle", [
    (lambda p: p.write_bytes(b"\x80\x04 this is not a pickle"), "not a readable pickle"),
    (lambda p: _dump(p, {b"labels": [1, 2]}), "b'data'"),
    (lambda p: _dump(p, {b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}), "3072"),
    (lambda p: _dump(p, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "b'labels'"),
    (lambda p: _dump(p, [1, 2, 3]), "dict"),
])
def test_cifar_malformed_file_names_it(tmp_path, monkeypatch, corrupt, needle):
    _no_network(monkeypatch)
    folder, *_ = _fake_cifar10(tmp_path)
    corrupt(folder / "data_batch_2")
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path)
    assert_one_line_error(excinfo, "data_batch_2", needle)


def test_cifar_label_out_of_range(tmp_path):
    folder, *_ = _fake_cifar10(tmp_path)
    _dump(folder / "test_batch", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]})
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path)
    assert_one_line_error(excinfo, "labels")


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_cifar_pickle_may_not_run_code(tmp_path):
    folder, *_ = _fake_cifar10(tmp_path)
    target = tmp_path / "pwned"
    _dump(folder / "data_batch_1", {b"data": _Exploit(target), b"labels": []})
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path)
    assert_one_line_error(excinfo, "data_batch_1", "refusing")
    assert not target.exists()


def _archive_bytes(build):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        build(tar)
    return buffer.getvalue()


def _serve(monkeypatch, payload, spec_md5=None):
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(payload)
    monkeypatch.setattr(cifar_mod.urllib.request, "urlopen", urlopen)
    if spec_md5 is not None:
        spec = dataclasses.replace(cifar_mod.CIFAR_SPECS["cifar10"], md5=spec_md5)
        monkeypatch.setitem(cifar_mod.CIFAR_SPECS, "cifar10", spec)
    return calls


def test_cifar_download_verifies_and_extracts(tmp_path, monkeypatch):
    source, *_ = _fake_cifar10(tmp_path / "src")
    payload = _archive_bytes(lambda tar: tar.add(source, arcname="cifar-10-batches-py"))
    calls = _serve(monkeypatch, payload, hashlib.md5(payload).hexdigest())
    d = load_data("cifar10", root=tmp_path / "dl", download=True)
    assert calls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert len(d.train_labels) == 20 and (tmp_path / "dl" / "cifar-10-batches-py" / "test_batch").is_file()
    load_data("cifar10", root=tmp_path / "dl", download=True)
    assert len(calls) == 1, "a present folder is not downloaded again"


def test_cifar_download_rejects_wrong_md5(tmp_path, monkeypatch):
    source, *_ = _fake_cifar10(tmp_path / "src")
    _serve(monkeypatch, _archive_bytes(lambda tar: tar.add(source, arcname="cifar-10-batches-py")))
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path / "dl", download=True)
    assert_one_line_error(excinfo, "md5")
    assert not (tmp_path / "dl" / "cifar-10-batches-py").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "cifar-10-batches-py/../../evil.txt"])
def test_cifar_download_rejects_unsafe_members(tmp_path, monkeypatch, name):
    def build(tar):
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    payload = _archive_bytes(build)
    _serve(monkeypatch, payload, hashlib.md5(payload).hexdigest())
    (tmp_path / "dl").mkdir()
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path / "dl", download=True)
    assert_one_line_error(excinfo, "unsafe member")
    assert not (tmp_path / "evil.txt").exists()


def test_cifar_download_rejects_links(tmp_path, monkeypatch):
    def build(tar):
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    payload = _archive_bytes(build)
    _serve(monkeypatch, payload, hashlib.md5(payload).hexdigest())
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path / "dl", download=True)
    assert_one_line_error(excinfo, "unsafe member")


def test_cifar_network_error_is_one_line(tmp_path, monkeypatch):
    def urlopen(url, timeout=None):
        raise urllib.error.URLError("Name or service not known\nsecond line")
    monkeypatch.setattr(cifar_mod.urllib.request, "urlopen", urlopen)
    with pytest.raises(ValueError) as excinfo:
        load_data("cifar10", root=tmp_path, download=True)
    assert_one_line_error(excinfo, "could not download", "Name or service not known")


# --- image folders ------------------------------------------------------------------------------


def _save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def _palette_red(size=(10, 10)):
    img = Image.new("P", size, 0)
    img.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    return img


def _make_folder(root):
    """Three classes of five images each, in every mode a user might bring."""
    for k in range(5):
        _save(root / "circle" / f"{k}.png", Image.new("RGB", (40, 20), (10 * k, 100, 200)))
        _save(root / "grey" / f"{k}.png", Image.new("L", (16, 16), 77))
        _save(root / "mixed" / f"{k}.jpg", Image.new("RGB", (33, 33), (0, 128, 255)), quality=95)
    _save(root / "mixed" / "p.png", _palette_red())
    _save(root / "mixed" / "rgba.png", Image.new("RGBA", (12, 12), (200, 100, 50, 255)))
    (root / "mixed" / "notes.txt").write_text("not an image, ignored")
    (root / ".hidden").mkdir()


def test_read_image_converts_modes(tmp_path):
    cases = {
        "l.png": (Image.new("L", (9, 9), 77), (77, 77, 77)),
        "p.png": (_palette_red(), (255, 0, 0)),
        "rgba_opaque.png": (Image.new("RGBA", (9, 9), (200, 100, 50, 255)), (200, 100, 50)),
        "rgba_half.png": (Image.new("RGBA", (9, 9), (200, 100, 50, 128)), (100, 50, 25)),  # over black
        "la.png": (Image.new("LA", (9, 9), (200, 0)), (0, 0, 0)),
        "i16.png": (Image.fromarray(np.full((9, 9), 257 * 60, np.uint16)), (60, 60, 60)),
        "rgb.bmp": (Image.new("RGB", (9, 9), (1, 2, 3)), (1, 2, 3)),
    }
    for name, (image, colour) in cases.items():
        _save(tmp_path / name, image)
        x = read_image(tmp_path / name, 8)
        assert x.shape == (3, 8, 8) and x.dtype == torch.uint8, name
        assert torch.allclose(x.float().mean(dim=(1, 2)), torch.tensor(colour, dtype=torch.float), atol=1.5), name


def test_read_image_resizes_bilinear(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, 20:] = 255  # left half black, right half white; 40 wide, 20 high
    _save(tmp_path / "halves.png", Image.fromarray(array))
    x = read_image(tmp_path / "halves.png", 8)
    assert x.shape == (3, 8, 8)
    assert (x[:, :, :3] < 10).all() and (x[:, :, 5:] > 245).all()
    assert 10 < x[0, 0, 3] < 245 or 10 < x[0, 0, 4] < 245, "bilinear blends at the edge"


def test_folder_split_and_conversion(tmp_path):
    _make_folder(tmp_path)
    d = load_data(f"folder:{tmp_path}", image_size=16)
    assert d.name == f"folder:{tmp_path}" and d.classes == ("circle", "grey", "mixed")
    assert d.train_images.shape[1:] == (3, 16, 16) and d.train_images.dtype == torch.uint8
    # 5, 5 and 7 images: round(20%) = 1, 1, 1 go to test.
    assert torch.bincount(d.train_labels).tolist() == [4, 4, 6]
    assert torch.bincount(d.test_labels).tolist() == [1, 1, 1]
    grey = torch.cat([d.train_images[d.train_labels == 1], d.test_images[d.test_labels == 1]])
    assert (grey == 77).all(), "an L image becomes three equal channels"
    everything = torch.cat([d.train_images, d.test_images]).flatten(2).float().mean(2).round()
    assert any(row.tolist() == [255.0, 0.0, 0.0] for row in everything), "the palette image is red"
    assert "80/20" in d.source and "\n" not in d.source


def test_folder_split_depends_on_seed_only(tmp_path):
    _make_folder(tmp_path)

    def test_images(seed):
        return load_data(f"folder:{tmp_path}", seed=seed, image_size=8).test_images

    assert torch.equal(test_images(0), test_images(0))
    assert any(not torch.equal(test_images(0), test_images(s)) for s in range(1, 6))


def test_folder_train_test_layout_and_subsets(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for k in range(n):
            _save(tmp_path / split / "a" / f"{k}.png", Image.new("RGB", (8, 8), (k, 0, 0)))
            _save(tmp_path / split / "b" / f"{k}.webp", Image.new("RGB", (8, 8), (0, 200, 0)), lossless=True)
    d = load_data(f"folder:{tmp_path}", image_size=8)
    assert d.train_labels.tolist() == [0, 0, 0, 1, 1, 1] and d.test_labels.tolist() == [0, 0, 1, 1]
    assert d.test_images[3, 1].float().mean() == pytest.approx(200, abs=2)
    assert "train/ and test/" in d.source
    small = load_data(f"folder:{tmp_path}", image_size=8, train_size=4, test_size=1)
    assert len(small.train_labels) == 4 and len(small.test_labels) == 1
    with pytest.raises(ValueError) as excinfo:
        load_data(f"folder:{tmp_path}", train_size=7)
    assert_one_line_error(excinfo, "train_size=7")


def test_folder_errors(tmp_path):
    cases = []
    cases.append((f"folder:{tmp_path / 'missing'}", "does not exist"))
    flat = tmp_path / "flat"
    _save(flat / "loose.png", Image.new("RGB", (4, 4)))
    cases.append((f"folder:{flat}", "no class sub-folders"))
    empty_class = tmp_path / "empty_class"
    _save(empty_class / "a" / "1.png", Image.new("RGB", (4, 4)))
    _save(empty_class / "a" / "2.png", Image.new("RGB", (4, 4)))
    (empty_class / "b").mkdir()
    (empty_class / "b" / "readme.txt").write_text("x")
    cases.append((f"folder:{empty_class}", "has no images"))
    corrupt = tmp_path / "corrupt"
    for k in range(3):
        _save(corrupt / "a" / f"{k}.png", Image.new("RGB", (4, 4)))
    (corrupt / "a" / "2.png").write_bytes(b"definitely not a png")
    cases.append((f"folder:{corrupt}", str(corrupt / "a" / "2.png")))
    single = tmp_path / "single"
    _save(single / "a" / "1.png", Image.new("RGB", (4, 4)))
    cases.append((f"folder:{single}", "at least 2"))
    half = tmp_path / "half"
    _save(half / "train" / "a" / "1.png", Image.new("RGB", (4, 4)))
    cases.append((f"folder:{half}", "no test/"))
    cases.append(("folder:", "needs a path"))
    for dataset, needle in cases:
        with pytest.raises(ValueError) as excinfo:
            load_data(dataset)
        assert_one_line_error(excinfo, needle)


# --- normalize and augment ------------------------------------------------------------------------


def test_normalize_matches_formula(shapes):
    x = normalize(shapes.train_images, shapes.mean, shapes.std)
    assert x.dtype == torch.float32 and x.shape == shapes.train_images.shape
    mean = torch.tensor(shapes.mean).view(1, 3, 1, 1)
    std = torch.tensor(shapes.std).view(1, 3, 1, 1)
    assert torch.allclose(x, (shapes.train_images.float() / 255 - mean) / std, atol=1e-5)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-4)
    assert normalize(shapes.train_images[0], shapes.mean, shapes.std).shape == (3, 32, 32)


@pytest.mark.parametrize("args", [
    (torch.zeros(1, 3, 4, 4), (0.5,) * 3, (0.2,) * 3),                    # float input
    (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (0.5,) * 2, (0.2,) * 3),  # channel count
    (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (0.5,) * 3, (0.2, 0.0, 0.2)),
])
def test_normalize_rejects_bad_input(args):
    with pytest.raises(ValueError) as excinfo:
        normalize(*args)
    assert_one_line_error(excinfo)


def test_augment_keeps_shape_and_identity():
    x = torch.randn(6, 3, 10, 12)
    y = augment_batch(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert not torch.equal(y, x)
    same = augment_batch(x, padding=0, flip=False)
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()


def test_augment_flip_only():
    x = torch.randn(64, 3, 5, 7)
    y = augment_batch(x, torch.Generator().manual_seed(1), padding=0)
    flipped = [torch.equal(y[i], torch.flip(x[i], dims=[-1])) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54, "about half the samples are flipped"


def test_augment_deterministic_per_generator():
    x = torch.randn(16, 3, 8, 8)
    a = augment_batch(x, torch.Generator().manual_seed(5))
    b = augment_batch(x, torch.Generator().manual_seed(5))
    c = augment_batch(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_crops_are_windows_of_the_padded_image():
    n, h, w, p = 12, 6, 5, 2
    x = torch.randn(n, 2, h, w)
    y = augment_batch(x, torch.Generator().manual_seed(2), padding=p)
    padded = F.pad(x, (p, p, p, p))
    offsets = set()
    for i in range(n):
        matches = [
            (dy, dx, flip)
            for dy in range(2 * p + 1) for dx in range(2 * p + 1) for flip in (False, True)
            if torch.equal(y[i], (padded[i].flip(-1) if flip else padded[i])[:, dy:dy + h, dx:dx + w])
        ]
        assert matches, f"sample {i} is no window of its padded image"
        offsets.add(matches[0][:2])
    assert len(offsets) > 2, "the crop offsets vary"


def test_augment_one_sample_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = augment_batch(x, torch.Generator().manual_seed(0), padding=1, flip=True)
    # Replay the documented draws: row offset, column offset, then the flip.
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 3, (1,), generator=g).item()
    dx = torch.randint(0, 3, (1,), generator=g).item()
    flip = torch.rand(1, generator=g).item() < 0.5
    padded = torch.zeros(6, 6)
    padded[1:5, 1:5] = x[0, 0]
    window = padded[dy:dy + 4, dx:dx + 4]  # crop, then flip the crop
    assert torch.equal(y[0, 0], window.flip(-1) if flip else window)


def _python2_pickle(raw, labels):
    """The bytes Python 2's cPickle (protocol 2) writes for {"data": uint8 array, "labels": list},
    as in the published CIFAR files: py2 str opcodes and numpy.core.* globals."""
    def string(b):
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + len(b).to_bytes(4, "little") + b
    n = len(raw) // 3072
    return (b"\x80\x02}(" + string(b"data")
            + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + string(b"b") + b"\x87R("
            + b"K\x01K" + bytes([n]) + b"M\x00\x0c\x86cnumpy\ndtype\n" + string(b"u1") + b"K\x00K\x01\x87R(K\x03"
            + string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + string(raw) + b"tb"
            + string(b"labels") + b"](" + b"".join(b"K" + bytes([y]) for y in labels) + b"eu.")


def test_cifar_reads_python2_pickles(tmp_path):
    folder, *_ = _fake_cifar10(tmp_path)
    raw = bytes(range(256)) * 24  # two images
    (folder / "data_batch_1").write_bytes(_python2_pickle(raw, [3, 8]))
    d = load_data("cifar10", root=tmp_path)
    assert d.train_labels[:2].tolist() == [3, 8] and len(d.train_labels) == 18
    assert d.train_images[1, 2, 31, 31].item() == raw[2 * 3072 - 1]


def test_easy_shapes_are_the_same_classes_drawn_cleaner():
    easy = load_data("shapes-easy", seed=3, train_size=200, test_size=20, image_size=16)
    standard = load_data("shapes", seed=3, train_size=200, test_size=20, image_size=16)
    assert easy.name == "shapes-easy" and easy.classes == standard.classes and "(easy)" in easy.source
    assert torch.equal(easy.train_labels, standard.train_labels)  # same draw order, other knobs
    assert easy.train_images.shape == (200, 3, 16, 16)
    assert easy.train_masks.float().mean() > standard.train_masks.float().mean()  # bigger objects
    with pytest.raises(ValueError, match="level"):
        shapes_mod.make_shapes(4, level="hard")


def test_kept_draws_are_the_callers_own_and_equal_a_fresh_draw(monkeypatch):
    """make_shapes keeps its last draws (an analysis re-makes a run's data on every page rerun): what it hands
    back is a copy the caller may change, equal to what drawing again gives, and the keep is bounded."""
    from resnet_explorer.data import shapes

    monkeypatch.setattr(shapes, "_drawn", {})
    first = shapes.make_shapes(40, seed=3, stream=1, image_size=16)
    first[0].zero_()
    first[2].fill_(True)
    again = shapes.make_shapes(40, seed=3, stream=1, image_size=16)
    assert len(shapes._drawn) == 1
    monkeypatch.setattr(shapes, "_drawn", {})
    fresh = shapes.make_shapes(40, seed=3, stream=1, image_size=16)
    assert all(torch.equal(a, b) for a, b in zip(again, fresh))
    assert again[0].any() and not again[2].all()
    for seed in range(shapes.CACHE_ENTRIES + 3):
        shapes.make_shapes(10, seed=seed, image_size=16)
    assert len(shapes._drawn) == shapes.CACHE_ENTRIES
    monkeypatch.setattr(shapes, "CACHE_BYTES", 10 * 16 * 16 * 4 - 1)  # one byte short of a draw of 10: not kept
    shapes.make_shapes(10, seed=99, image_size=16)
    assert (10, 99, 0, 16, "standard") not in shapes._drawn
