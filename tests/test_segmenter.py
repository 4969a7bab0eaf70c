import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skcxr import LungSegmenter, OtsuMasker
from skcxr.datasets import make_chest_xrays
from skcxr.metrics import dice_score
from tests._contract_checks import TRANSFORMER_CHECKS, image_contract_failures

TINY = dict(depth=2, width=4, max_epochs=1, batch_size=8, random_state=0)

COMMON_ESTIMATORS = [
    LungSegmenter(**TINY),
    LungSegmenter(output="crop", n_components=None, fill_holes=False, **TINY),
]
EXPECTED_FAILED_CHECKS = image_contract_failures(
    "check_fit2d_1sample", *TRANSFORMER_CHECKS
)


@pytest.fixture(scope="module")
def data():
    X, y, lungs = make_chest_xrays(
        48, size=32, difficulty=0.2, return_lung_masks=True, random_state=0
    )
    return X, y, lungs


@pytest.fixture(scope="module")
def fitted(data):
    X, _, lungs = data
    seg = LungSegmenter(depth=2, width=8, max_epochs=15, lr=1e-2, random_state=0)
    return seg.fit(X[:32], lungs[:32])


@pytest.mark.slow
def test_learns_the_lungs_of_generated_radiographs(data, fitted):
    X, _, lungs = data
    assert dice_score(lungs[32:], fitted.predict(X[32:])) > 0.8
    assert fitted.score(X[32:], lungs[32:]) == dice_score(
        lungs[32:], fitted.predict(X[32:])
    )
    assert fitted.history_[-1, "train_loss"] < fitted.history_[0, "train_loss"]


def test_outputs(data, fitted):
    X, _, _ = data
    proba = fitted.predict_proba(X[:4])
    masks = fitted.predict(X[:4])
    assert proba.shape == masks.shape == (4, 32, 32)
    assert proba.dtype == np.float32 and masks.dtype == bool
    assert 0 <= proba.min() and proba.max() <= 1
    seg = clone(fitted)
    seg.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    for output in ("masked", "crop", "mask"):
        seg.set_params(output=output)
        for layout in (X[:4], X[:4, None], X[:4].reshape(4, -1)):
            out = seg.transform(layout)
            assert out.shape == layout.shape and out.dtype == np.float32
    np.testing.assert_array_equal(seg.set_params(output="mask").transform(X[:4]), masks)
    masked = seg.set_params(output="masked", fill_value=1.0).transform(X[:4])
    np.testing.assert_array_equal(masked, np.where(masks, X[:4], 1.0))


def test_post_processing_keeps_two_regions_without_holes(data, fitted):
    from scipy import ndimage

    X, _, _ = data
    for mask in fitted.predict(X):
        assert ndimage.label(mask)[1] <= 2
        np.testing.assert_array_equal(ndimage.binary_fill_holes(mask), mask)


def test_masks_do_not_depend_on_the_batch(data, fitted):
    X, _, _ = data
    whole = fitted.predict_proba(X)
    one = np.concatenate([fitted.predict_proba(X[i : i + 1]) for i in range(5)])
    np.testing.assert_array_equal(whole[:5], one)


def test_random_state_reproducible_and_global_state_untouched(data):
    import torch

    X, _, lungs = data
    before = torch.random.get_rng_state()
    a = LungSegmenter(**TINY).fit(X[:8], lungs[:8]).predict_proba(X[:2])
    b = LungSegmenter(**TINY).fit(X[:8], lungs[:8]).predict_proba(X[:2])
    np.testing.assert_array_equal(a, b)
    assert torch.equal(before, torch.random.get_rng_state())


def test_mask_validation(data):
    X, _, lungs = data
    seg = LungSegmenter(**TINY)
    with pytest.raises(ValueError, match="y holds 3 masks but X has 4 images"):
        seg.fit(X[:4], lungs[:3])
    bad = [m for m in lungs[:4]]
    bad[2] = bad[2][:30]
    with pytest.raises(ValueError, match=r"mask 2 has shape \(30, 32\).*32x32"):
        seg.fit(X[:4], bad)
    with pytest.raises(ValueError, match="boolean"):
        seg.fit(X[:4], lungs[:4] * 0.5)
    with pytest.raises(ValueError, match="requires y"):
        seg.fit(X[:4], None)
    # masks in the layouts of the images
    seg.fit(X[:4].reshape(4, -1), lungs[:4].reshape(4, -1).astype(int))
    seg.fit(X[:4, None], lungs[:4, None])


def test_parameter_errors(data):
    X, _, lungs = data
    with pytest.raises(ValueError, match="threshold"):
        LungSegmenter(threshold=1.5).fit(X[:2], lungs[:2])
    with pytest.raises(ValueError, match="device='tpu'"):
        LungSegmenter(device="tpu").fit(X[:2], lungs[:2])


def test_file_paths_and_the_mask_of_a_file(tmp_path, data):
    from PIL import Image

    from skcxr import ImageLoader

    X, _, lungs = data
    paths = []
    for i, image in enumerate(X[:6]):
        path = tmp_path / f"cxr_{i}.png"
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    seg = LungSegmenter(loader=ImageLoader(size=32), **TINY).fit(paths, lungs[:6])
    assert seg.predict(paths).shape == (6, 32, 32)
    assert seg.transform(paths).shape == (6, 32, 32)
    bad = list(lungs[:6])
    bad[4] = np.zeros((64, 64), bool)
    with pytest.raises(ValueError, match="cxr_4.png"):
        LungSegmenter(loader=ImageLoader(size=32), **TINY).fit(paths, bad)


def test_pickle_and_save_model_give_identical_masks(tmp_path, data, fitted):
    from skcxr.utils import load_model, save_model

    X, _, _ = data
    expected = fitted.predict(X)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(X), expected)
    path = tmp_path / "segmenter.skops"
    save_model(fitted, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert loaded.history_[:, "train_loss"] == fitted.history_[:, "train_loss"]


def test_frozen_segmenter_replaces_otsu_in_a_pipeline(data, fitted):
    X, y, _ = data
    labels = y == "normal"
    otsu = make_pipeline(OtsuMasker(), LogisticRegression(max_iter=200))
    unet = make_pipeline(FrozenEstimator(fitted), LogisticRegression(max_iter=200))
    for pipe in (otsu, unet):
        pipe.fit(X.reshape(len(X), -1), labels)
        assert pipe.predict(X.reshape(len(X), -1)).shape == (len(X),)
    # the frozen segmenter is not refitted on the class labels
    assert unet[0].estimator is fitted


def test_soft_dice_loss_equals_smp():
    torch = pytest.importorskip("torch")
    smp = pytest.importorskip("segmentation_models_pytorch")
    from skcxr.nn._unet import soft_dice_loss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 8, 8, generator=gen)
    target = (torch.rand(3, 1, 8, 8, generator=gen) > 0.5).float()
    theirs = smp.losses.DiceLoss(mode="binary", from_logits=True, smooth=1.0)
    torch.testing.assert_close(soft_dice_loss(logits, target), theirs(logits, target))


def test_smp_encoder(data):
    pytest.importorskip("segmentation_models_pytorch")
    X, _, lungs = data
    seg = LungSegmenter(encoder="resnet18", depth=3, width=4, max_epochs=1)
    seg.fit(X[:4], lungs[:4])
    assert seg.predict(X[:2]).shape == (2, 32, 32)
    again = pickle.loads(pickle.dumps(seg))
    np.testing.assert_array_equal(again.predict_proba(X[:2]), seg.predict_proba(X[:2]))
    with pytest.raises(ValueError, match="not an encoder"):
        LungSegmenter(encoder="no_such_net", depth=3).fit(X[:2], lungs[:2])
    with pytest.raises(ValueError, match="3 to 5"):
        LungSegmenter(encoder="resnet18", depth=2).fit(X[:2], lungs[:2])


def test_missing_smp_names_the_extra(monkeypatch, data):
    import sys

    X, _, lungs = data
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)
    with pytest.raises(ImportError, match=r"skcxr\[segment\]"):
        LungSegmenter(encoder="resnet18", depth=3).fit(X[:2], lungs[:2])


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_inference_engines_match_torch(data, fitted, engine):
    pytest.importorskip("onnx")
    pytest.importorskip(engine)
    X, _, _ = data
    seg = pickle.loads(pickle.dumps(fitted)).set_params(engine=engine)
    expected = fitted.predict_proba(X[:6])
    np.testing.assert_allclose(seg.predict_proba(X[:6]), expected, atol=1e-4)
    assert np.mean(seg.predict(X[:6]) != fitted.predict(X[:6])) < 1e-3
    again = pickle.loads(pickle.dumps(seg))  # the engine is rebuilt, not pickled
    np.testing.assert_allclose(again.predict_proba(X[:2]), expected[:2], atol=1e-4)


def test_predicted_lungs_as_the_region_of_the_pointing_game(fitted):
    from skcxr.inspection import pointing_game

    X, y, lesions, lungs = make_chest_xrays(
        8, classes=("bacteria",), size=32, difficulty=0.0, return_masks=True,
        return_lung_masks=True, random_state=1,
    )  # fmt: skip
    region = fitted.predict(X)
    # a heatmap that points at the lesion scores 1; chance is the lesion's
    # share of the predicted lungs
    result = pointing_game(lesions.astype(np.float32), lesions, region=region)
    assert result.score == 1.0 and 0 < result.chance < 1


@pytest.mark.slow
def test_real_lung_shapes():
    from tests._real_lungs import radiographs_around, real_lung_masks

    lungs = real_lung_masks(40, size=32)
    X = radiographs_around(lungs)
    seg = LungSegmenter(depth=2, width=8, max_epochs=10, batch_size=8, random_state=0)
    seg.fit(X[:30], lungs[:30])
    assert dice_score(lungs[30:], seg.predict(X[30:])) > 0.8
    # real annotations come at their own size: a mismatch names the mask
    big = list(lungs[:4])
    big[1] = real_lung_masks(2, size=48)[1]
    with pytest.raises(ValueError, match=r"mask 1 has shape \(48, 48\)"):
        LungSegmenter(**TINY).fit(X[:4], big)


def test_region_attribution_inside_the_predicted_lungs(data, fitted):
    from skcxr.inspection import region_attribution

    class DarkLeftLung:
        """P(class 1) grows with the darkness of the image's left half."""

        classes_ = np.array([0, 1])

        def predict_proba(self, X):
            X = np.asarray(X).reshape(len(X), 32, 32)
            p = 1 - X[:, :, :16].mean(axis=(1, 2))
            return np.stack([1 - p, p], axis=1)

    X, _, _ = data
    clf = DarkLeftLung()
    whole = region_attribution(clf, X[:4], target=1, baseline=1.0)
    lungs = region_attribution(clf, X[:4], target=1, baseline=1.0, masker=fitted)
    np.testing.assert_array_equal(lungs.lung_masks, fitted.predict(X[:4]))
    # occluding only the lungs of a half drops less than the whole half
    assert (lungs.scores[:, 0] < whole.scores[:, 0]).all()
    assert (lungs.scores[:, 0] > 0).all() and lungs.top_side.tolist() == ["right"] * 4
    nothing = np.zeros((4, 32, 32), bool)
    none = region_attribution(clf, X[:4], target=1, baseline=1.0, masker=nothing)
    np.testing.assert_allclose(none.scores, 0, atol=1e-7)
    otsu = OtsuMasker(clear_border=True, n_regions=2, fill_holes=True).fit(X[:4])
    assert region_attribution(clf, X[:4], target=1, masker=otsu).scores.shape == (4, 2)
    with pytest.raises(ValueError, match="masker"):
        region_attribution(clf, X[:4], masker=np.zeros((4, 8, 8), bool))
