"""`attribute`'s study in bounded chunks, and its choice of held-out images spread over the classes."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_explorer import ModelSpec, build_model
from resnet_explorer.analysis import METHODS, attribute, mask_share, predict, sanity_check
from resnet_explorer.analysis import study as study_module
from resnet_explorer.analysis.study import StudyInputs, dataset_inputs, run_study, summary
from resnet_explorer.data import spread_over_classes
from resnet_explorer.limits import MAX_ATTRIBUTE_SAMPLES
from resnet_explorer.runs import Run
from resnet_explorer.training import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")

TINY = ModelSpec(stem="cifar", layers=(1, 1, 1), width_multiplier=0.5)
STEPS = 8  # integrated gradients' steps: enough to exercise internal batching, cheap on a CPU


@pytest.fixture
def model():
    net = build_model(TINY, device="cpu")
    with torch.no_grad():  # non-trivial BN statistics, so eval mode is not the identity
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        # Centre each class's score over random images, so the predictions differ from image to image.
        net.fc.bias -= net.eval()(torch.randn(64, 3, 16, 16)).mean(dim=0)
    return net


def study_inputs(n: int) -> StudyInputs:
    images = torch.randn(n, 3, 16, 16)
    return StudyInputs(
        images=images, previews=torch.zeros(n, 3, 16, 16, dtype=torch.uint8), names=[f"x{i}" for i in range(n)],
        labels=torch.arange(n) % 10, masks=torch.rand(n, 16, 16) > 0.5,
    )


# --- run_study in chunks -------------------------------------------------------------------------

def column(rows: list[dict], key: str) -> torch.Tensor:
    return torch.tensor([math.nan if r[key] is None else r[key] for r in rows])


def test_chunked_study_equals_one_batch(model, monkeypatch):
    """Chunks of 3, 3 and 1 images give the maps, deltas and scores of one call on all 7."""
    monkeypatch.setattr(study_module, "ATTRIBUTE_BATCH", 3)
    inputs = study_inputs(7)
    x = inputs.images
    torch.manual_seed(5)
    study = run_study(model, inputs, list(METHODS), sanity=True, steps=STEPS)
    classes, probs = predict(model, x)
    assert torch.equal(study.predicted, classes) and torch.allclose(study.confidence, probs)
    assert len(set(classes.tolist())) > 1  # a misaligned target would show
    torch.manual_seed(5)  # SmoothGrad's noise: the same draws, image after image
    for method in METHODS:
        kwargs = {"steps": STEPS} if method == "integrated_gradients" else {}
        whole = attribute(model, x, method, targets=classes, **kwargs)
        got = study.results[method]
        assert got.maps.shape == whole.maps.shape, method
        assert torch.allclose(got.maps, whole.maps, atol=1e-5, rtol=1e-4), method
        assert torch.equal(got.targets, whole.targets), method
        for name in ("delta", "baselines"):
            mine, theirs = getattr(got, name), getattr(whole, name)
            assert (mine is None) == (theirs is None), (method, name)
            if mine is not None:
                assert torch.allclose(mine, theirs, atol=1e-5), (method, name)
        rows = [r for r in study.scores if r["method"] == method]
        assert [r["image"] for r in rows] == inputs.names
        share, area = mask_share(whole.heatmap("positive"), inputs.masks)
        assert torch.allclose(column(rows, "mask_share"), share, atol=1e-5, equal_nan=True), method
        assert torch.allclose(column(rows, "mask_area"), area), method
        if method != "smoothgrad":  # the check re-seeds per chunk: SmoothGrad's noise follows the chunk
            corr = sanity_check(model, x, method, targets=classes, **kwargs)
            assert torch.allclose(column(rows, "sanity_spearman"), corr, atol=1e-4, equal_nan=True), method
    means = {row["method"]: row for row in summary(study, "tiny")}
    assert list(means) == list(METHODS)
    for method, row in means.items():  # the per-image score and its mean share one name
        per_image = column([r for r in study.scores if r["method"] == method], "sanity_spearman")
        assert row["sanity_spearman"] == pytest.approx(per_image.nanmean().item(), nan_ok=True), method


def largest_forwards(model, n: int) -> dict[str, int]:
    """The largest batch the model's first layer sees, per method, in a study of ``n`` images."""
    sizes = []
    handle = model.conv1.register_forward_pre_hook(lambda m, a: sizes.append(a[0].shape[0]))
    largest = {}
    try:
        for method in METHODS:
            sizes.clear()
            run_study(model, study_inputs(n), [method], sanity=True, steps=16)
            largest[method] = max(sizes)
    finally:
        handle.remove()
    return largest


def test_largest_forward_batch_does_not_grow_with_the_images(model, monkeypatch):
    """Every method, the predictions and the sanity check's copy see batches bounded by the chunk.

    In chunks of 3: occlusion evaluates a chunk at its 9 window positions at once (27), integrated
    gradients at most 8 * 3 = 24 of its 16 * 3 scaled images, DeepLIFT inputs and baselines
    together (6), SmoothGrad the 16 noisy copies of one image.
    """
    monkeypatch.setattr(study_module, "ATTRIBUTE_BATCH", 3)
    few, many = largest_forwards(model, 7), largest_forwards(model, 20)
    assert few == many == {"saliency": 3, "integrated_gradients": 24, "smoothgrad": 16, "gradcam": 3,
                           "occlusion": 27, "deeplift": 6}


# --- dataset_inputs ------------------------------------------------------------------------------

def write_folder(root, counts: dict[str, int]) -> None:
    """train/ and test/ class folders of 4 x 4 PNGs, one train image per class, ``counts`` test images."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", dict.fromkeys(counts, 1)), ("test", counts)):
        for name, count in per_class.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def folder_run(tmp_path, counts: dict[str, int]) -> Run:
    root = tmp_path / "pictures"
    if counts:
        write_folder(root, counts)
    config = TrainConfig(dataset=f"folder:{root}", steps=1, image_size=8)
    return Run(path=tmp_path, info={"id": "r"}, spec=TINY, config=config)


def test_samples_spread_over_a_class_ordered_split(tmp_path):
    run = folder_run(tmp_path, {"a": 4, "b": 2, "c": 4, "d": 4})  # held-out labels 0000 11 2222 3333
    inputs = dataset_inputs(run, 8)
    assert inputs.labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert inputs.names == ["test #0", "test #4", "test #6", "test #10", "test #1", "test #5", "test #7", "test #11"]
    assert inputs.images.shape == (8, 3, 8, 8)  # the run's image size, not the default 32
    assert inputs.note == ""
    assert Counter(dataset_inputs(run, 12).labels.tolist()) == {0: 4, 1: 2, 2: 3, 3: 3}  # b runs out


def test_samples_beyond_the_split_take_it_all_with_a_note(tmp_path):
    run = folder_run(tmp_path, {"a": 3, "b": 2})
    inputs = dataset_inputs(run, 9)
    assert sorted(inputs.names) == [f"test #{i}" for i in range(5)]
    assert "5 images" in inputs.note and "9 asked for" in inputs.note
    picked = dataset_inputs(run, indices=[4, 0])  # explicit indices are kept as given
    assert picked.names == ["test #4", "test #0"] and picked.labels.tolist() == [1, 0]


def test_spread_over_interleaved_labels():
    labels = torch.tensor([2, 0, 2, 1, 0, 2, 0])
    assert spread_over_classes(labels, 5) == [1, 3, 0, 4, 2]
    assert spread_over_classes(labels, 100) == [1, 3, 0, 4, 2, 6, 5]


@pytest.mark.parametrize("samples", [0, -1, MAX_ATTRIBUTE_SAMPLES + 1, True])
def test_bad_samples_name_the_range_before_reading_data(tmp_path, samples):
    run = folder_run(tmp_path, {})  # no folder: reading the data would fail with another message
    with pytest.raises(ValueError, match=f"samples must be .*from 1 to {MAX_ATTRIBUTE_SAMPLES:,}") as err:
        dataset_inputs(run, samples)
    assert str(samples) in str(err.value).replace(",", "") and "\n" not in str(err.value)


def test_a_study_of_no_images_is_refused(model):
    with pytest.raises(ValueError, match="no images"):
        run_study(model, StudyInputs(torch.zeros(0, 3, 16, 16), torch.zeros(0, 3, 16, 16, dtype=torch.uint8), []),
                  ["saliency"])


def test_study_baselines_and_adaptive_steps(model):
    from resnet_explorer.analysis.attribution import IG_MAX_STEPS, IG_START_STEPS, IG_TOLERANCE, black_baseline

    inputs = study_inputs(3)
    with pytest.raises(ValueError, match="normalisation"):
        run_study(model, inputs, ["integrated_gradients"], sanity=False, baseline="black")
    with pytest.raises(ValueError, match="zeros, black, blur"):
        run_study(model, inputs, ["integrated_gradients"], sanity=False, baseline="white")
    inputs.mean, inputs.std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    study = run_study(model, inputs, ["integrated_gradients", "deeplift", "saliency"], sanity=False, baseline="black")
    black = black_baseline(inputs.mean, inputs.std).expand(3, 3, 16, 16)
    for method in ("integrated_gradients", "deeplift"):
        assert torch.allclose(study.results[method].baselines, black)
    rows = {(r["method"], r["image"]): r for r in study.scores}
    for name in inputs.names:
        ig, saliency = rows["integrated_gradients", name], rows["saliency", name]
        assert ig["baseline"] == "black" and saliency["baseline"] is None and saliency["gap"] is None
        assert IG_START_STEPS <= ig["steps"] <= IG_MAX_STEPS
        assert ig["gap"] <= IG_TOLERANCE or ig["steps"] == IG_MAX_STEPS
        assert ig["gap"] == pytest.approx(abs(ig["delta"]) / abs(ig["score_change"]), rel=1e-4)
    fixed = run_study(model, inputs, ["integrated_gradients"], sanity=False, steps=4)
    assert [r["steps"] for r in fixed.scores] == [4, 4, 4]
