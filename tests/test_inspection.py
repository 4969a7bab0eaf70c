"""Unit tests of skcxr.inspection on hand-made models whose answer is known."""

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from skcxr.inspection import (
    EmbeddingDisplay,
    HeatmapDisplay,
    ImageGridDisplay,
    ReconstructionErrorDisplay,
    TrainingCurveDisplay,
    deletion_curve,
    grad_cam,
    intermediate_activations,
    occlusion_sensitivity,
    pointing_game,
    region_attribution,
    silhouette_side,
)
from skcxr.inspection._regions import region_masks

SIZE = 16


class _Mask(nn.Module):
    """Multiplies the input by a fixed mask (the model only sees part of the image)."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))

    def forward(self, x):
        return x * self.mask


class _Backbone(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.features = nn.Sequential(_Mask(mask), nn.Conv2d(1, 1, 1))
        with torch.no_grad():
            self.features[1].weight.fill_(1.0)
            self.features[1].bias.zero_()
        self.gradcam_layer = "features"


class _Net(nn.Module):
    """Logit of "pneumonia" = 40 * (mean intensity of the visible pixels - offset)."""

    def __init__(self, mask, offset=0.05):
        super().__init__()
        self.backbone = _Backbone(mask)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            scale = 40.0 / float(np.mean(mask))
            self.head.weight.copy_(torch.tensor([[-scale], [scale]]))
            self.head.bias.copy_(torch.tensor([40.0 * offset, -40.0 * offset]))

    def embed(self, x):
        return self.pool(self.backbone.features(x)).flatten(1)

    def forward(self, x):
        return self.head(self.embed(x))


class TorchClf:
    """The duck-typed protocol of a fitted TransferClassifier: module_, classes_,
    predict_proba, predict."""

    classes_ = np.array(["normal", "pneumonia"])

    def __init__(self, module):
        self.module_ = module.eval()

    def predict_proba(self, X):
        X = np.asarray(X, dtype=np.float32).reshape(len(X), 1, SIZE, SIZE)
        with torch.no_grad():
            return torch.softmax(self.module_(torch.from_numpy(X)), 1).numpy()

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


def _image_left_mask():
    mask = np.zeros((SIZE, SIZE), dtype=np.float32)
    mask[:, : SIZE // 2] = 1
    return mask


@pytest.fixture
def left_clf():
    """Sees only the image's left half (the patient's right lung)."""
    return TorchClf(_Net(_image_left_mask()))


def _blobs(n, *, row, col, rng, other=None):
    """Dim noise plus a bright 3x3 blob at (row, col) (and one at ``other``)."""
    X = rng.random((n, SIZE, SIZE), dtype=np.float32) * 0.05
    X[:, row - 1 : row + 2, col - 1 : col + 2] = 1.0
    if other is not None:
        X[:, other[0] - 1 : other[0] + 2, other[1] - 1 : other[1] + 2] = 1.0
    return X


# --------------------------------------------------------------------- grad_cam
def test_grad_cam_shape_range_and_peak_on_the_signal(left_clf):
    rng = np.random.default_rng(0)
    X = _blobs(4, row=4, col=4, rng=rng, other=(11, 12))  # the right blob is unseen
    maps = grad_cam(left_clf, X, target="pneumonia")
    assert maps.shape == X.shape and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    for m in maps:
        r, c = np.unravel_index(m.argmax(), m.shape)
        assert abs(r - 4) <= 1 and abs(c - 4) <= 1
        assert m[10:13, 11:14].max() < 0.1


def test_grad_cam_layouts_and_batches_agree(left_clf):
    X = _blobs(5, row=6, col=5, rng=np.random.default_rng(1))
    ref = grad_cam(left_clf, X)
    np.testing.assert_allclose(
        grad_cam(left_clf, X[:, None], batch_size=2), ref, atol=1e-6
    )
    np.testing.assert_allclose(
        grad_cam(left_clf, X.reshape(5, -1), batch_size=1), ref, atol=1e-6
    )


def test_grad_cam_default_target_is_the_predicted_class():
    rng = np.random.default_rng(2)
    module = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 2),
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    clf = TorchClf(module)
    X = rng.random((8, SIZE, SIZE), dtype=np.float32)
    pred = clf.predict(X)
    np.testing.assert_allclose(
        grad_cam(clf, X), grad_cam(clf, X, target=pred), atol=1e-6
    )
    # conv -> ReLU -> GAP -> linear: Grad-CAM on the ReLU output is CAM,
    # relu(sum_k w_ck A_k)
    cam = grad_cam(clf, X, target="normal", layer="1")
    with torch.no_grad():
        acts = module[:2](torch.from_numpy(X)[:, None])
        manual = torch.relu(
            torch.einsum("k,nkhw->nhw", module[4].weight[0], acts)
        ).numpy()
    manual /= np.maximum(manual.max(axis=(1, 2), keepdims=True), 1e-12)
    np.testing.assert_allclose(cam, manual, atol=1e-5)


def test_grad_cam_frozen_module_and_no_grad_context(left_clf):
    for p in left_clf.module_.parameters():
        p.requires_grad_(False)
    X = _blobs(2, row=3, col=3, rng=np.random.default_rng(3))
    with torch.no_grad():
        maps = grad_cam(left_clf, X)
    assert maps.max() == pytest.approx(1.0)


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def _hook_count(module):
    """Hooks other than the capture hook an explained layer keeps (one at most)."""
    from skcxr.nn._capture import _capture_hook

    captures = [
        list(m._forward_hooks.values()).count(_capture_hook) for m in module.modules()
    ]
    assert max(captures) <= 1
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in module.modules()
    ) - sum(captures)


def _active_captures():
    from skcxr.nn import _capture

    return len(getattr(_capture._state, "frames", []))


def test_hooks_removed_and_mode_restored_after_an_error(left_clf):
    module = left_clf.module_
    module.head = nn.Sequential(_Boom(), module.head)
    module.train()
    X = _blobs(2, row=3, col=3, rng=np.random.default_rng(4))
    with pytest.raises(RuntimeError, match="boom"):
        grad_cam(left_clf, X)
    assert _hook_count(module) == 0 and module.training
    with pytest.raises(RuntimeError, match="boom"):
        intermediate_activations(left_clf, X, "backbone.features.1")
    assert _hook_count(module) == 0 and module.training
    module.head = module.head[1]
    grad_cam(left_clf, X)
    assert _hook_count(module) == 0 and module.training  # success path too
    assert _active_captures() == 0


def test_grad_cam_bad_input(left_clf):
    X = _blobs(2, row=3, col=3, rng=np.random.default_rng(5))
    with pytest.raises(ValueError, match="not a class label"):
        grad_cam(left_clf, X, target="virus")
    with pytest.raises(ValueError, match="array of 2 labels"):
        grad_cam(left_clf, X, target=["normal"] * 3)
    with pytest.raises(ValueError, match="Did you mean 'backbone.features'"):
        grad_cam(left_clf, X, layer="backbone.featurs")
    with pytest.raises(ValueError, match=r"\(n, C, h, w\)"):
        grad_cam(left_clf, X, layer="head")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        grad_cam(left_clf, X * 2)
    with pytest.raises(ValueError, match="batch_size"):
        grad_cam(left_clf, X, batch_size=0)
    with pytest.raises(TypeError, match="module_"):
        grad_cam(object(), X)
    assert _hook_count(left_clf.module_) == 0 and _active_captures() == 0


def test_grad_cam_without_gradcam_layer_uses_last_conv():
    module = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.Conv2d(2, 2, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 2),
    )
    X = np.random.default_rng(6).random((2, SIZE, SIZE), dtype=np.float32)
    clf = TorchClf(module)
    np.testing.assert_allclose(
        grad_cam(clf, X), grad_cam(clf, X, layer=module[1]), atol=1e-6
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_grad_cam_on_cuda_leaves_the_module_on_its_device(left_clf):
    X = _blobs(3, row=4, col=4, rng=np.random.default_rng(7))
    cpu = grad_cam(left_clf, X)
    np.testing.assert_allclose(grad_cam(left_clf, X, device="cuda"), cpu, atol=1e-4)
    assert next(left_clf.module_.parameters()).device.type == "cpu"


def test_intermediate_activations(left_clf):
    X = _blobs(3, row=4, col=4, rng=np.random.default_rng(8))
    acts = intermediate_activations(left_clf, X, "backbone.features.1", batch_size=2)
    assert acts.shape == (3, 1, SIZE, SIZE) and acts.dtype == np.float32
    np.testing.assert_allclose(acts[:, 0], X * _image_left_mask(), atol=1e-6)
    default = intermediate_activations(left_clf, X, None)
    np.testing.assert_allclose(default, acts)
    assert _hook_count(left_clf.module_) == 0


# ------------------------------------------------------------ model-agnostic
class LeftUpperProba:
    """Not torch: p(pneumonia) rises with the mean of the image's top-left quadrant."""

    classes_ = np.array(["normal", "pneumonia"])

    def predict_proba(self, X):
        X = np.asarray(X).reshape(len(X), SIZE, SIZE)
        p = 1 / (1 + np.exp(-40 * (X[:, : SIZE // 2, : SIZE // 2].mean((1, 2)) - 0.1)))
        return np.c_[1 - p, p]

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


def test_occlusion_finds_the_signal_for_a_non_torch_model():
    X = _blobs(3, row=4, col=5, rng=np.random.default_rng(9), other=(12, 12))
    maps = occlusion_sensitivity(
        LeftUpperProba(), X, patch_size=4, stride=2, batch_size=7
    )
    assert maps.shape == X.shape and maps.dtype == np.float32
    assert np.all(maps >= -1) and np.all(maps <= 1)
    for m in maps:
        r, c = np.unravel_index(m.argmax(), m.shape)
        assert abs(r - 4) <= 2 and abs(c - 5) <= 2
        assert np.abs(m[10:, 10:]).max() < 1e-6  # the unseen blob changes nothing
    flat = occlusion_sensitivity(
        LeftUpperProba(), X.reshape(3, -1), patch_size=4, stride=2
    )
    np.testing.assert_allclose(flat, maps, atol=1e-6)
    # the explained class is the predicted one; "normal" gives the opposite sign
    normal = occlusion_sensitivity(
        LeftUpperProba(), X, target="normal", patch_size=4, stride=2
    )
    np.testing.assert_allclose(normal, -maps, atol=1e-6)


def test_occlusion_options(left_clf, capsys):
    X = _blobs(2, row=4, col=4, rng=np.random.default_rng(10))
    maps = occlusion_sensitivity(
        left_clf, X, patch_size=5, stride=3, baseline="mean", verbose=True
    )
    assert maps.shape == X.shape and maps[:, :, SIZE // 2 + 5 :].max() <= 1e-6
    assert "occlusion" in capsys.readouterr().err
    for kwargs, match in [
        ({"patch_size": 0}, "patch_size"),
        ({"patch_size": 40}, "larger than"),
        ({"stride": 1.5}, "stride"),
        ({"baseline": "median"}, "baseline"),
        ({"baseline": True}, "baseline"),
        ({"baseline": 2.0}, "baseline"),
        ({"target": "virus"}, "not a class label"),
    ]:
        with pytest.raises(ValueError, match=match):
            occlusion_sensitivity(left_clf, X, **kwargs)
    with pytest.raises(TypeError, match="predict_proba"):
        occlusion_sensitivity(object(), X)


@pytest.mark.parametrize(
    "regions, expected",
    [
        ("halves", "patient right / image left"),
        ("quadrants", "patient right upper / image top-left"),
        ("zones", "patient right upper zone / image top-left"),
    ],
)
def test_region_attribution_names_the_region_the_model_uses(regions, expected):
    X = _blobs(4, row=3, col=4, rng=np.random.default_rng(11), other=(12, 12))
    result = region_attribution(LeftUpperProba(), X, regions=regions, batch_size=5)
    assert result.scores.shape == (
        4,
        {"halves": 2, "quadrants": 4, "zones": 6}[regions],
    )
    assert result.top_region.tolist() == [expected] * 4
    assert result.top_side.tolist() == ["right"] * 4
    assert set(result.patient_sides) == {"right", "left"}
    # the regions tile the image
    assert (result.masks.sum(0) == 1).all()
    np.testing.assert_allclose(
        result.target_proba, LeftUpperProba().predict_proba(X)[:, 1]
    )


def test_region_names_follow_the_radiological_convention():
    masks, names, sides = region_masks((6, 6), "zones")
    for mask, name, side in zip(masks, names, sides):
        image_left = mask[:, :3].any()
        assert (side == "right") == image_left  # patient right = image left
        assert name.startswith(f"patient {side}") and ("-left" in name) == image_left
    with pytest.raises(ValueError, match="regions"):
        region_masks((6, 6), "lobes")


def test_silhouette_side():
    X = np.zeros((2, 8, 8), dtype=np.float32)
    X[0, :, :4] = 0.5
    X[1, :, 4:] = 0.5
    assert silhouette_side(X).tolist() == [
        "patient right / image left",
        "patient left / image right",
    ]
    assert silhouette_side(X, rule="darker").tolist() == [
        "patient left / image right",
        "patient right / image left",
    ]
    with pytest.raises(ValueError, match="rule"):
        silhouette_side(X, rule="heavier")


# ------------------------------------------------------------------- scores
def test_pointing_game_math():
    masks = np.zeros((3, 10, 10), dtype=bool)
    masks[:, 2:4, 2:4] = True
    maps = np.zeros((3, 10, 10))
    maps[0, 3, 3] = 1  # inside
    maps[1, 5, 3] = 1  # 2 px below: hit only with tolerance >= 2
    maps[2] = 1.0  # constant map: share of the pixels inside the lesion
    strict = pointing_game(maps, masks, tolerance=0)
    np.testing.assert_allclose(strict.hits, [1.0, 0.0, 0.04])
    assert strict.score == pytest.approx(1.04 / 3)
    assert strict.chance == pytest.approx(0.04)
    loose = pointing_game(maps, masks, tolerance=2)
    assert loose.hits[1] == 1.0
    # a disk of radius 2 around a 2x2 square: the 6x6 box less 3 pixels per corner
    assert loose.dilated_masks[0].sum() == 36 - 4 * 3
    region = np.zeros((10, 10), dtype=bool)
    region[:5] = True
    assert pointing_game(
        maps, masks, tolerance=0, region=region
    ).chance == pytest.approx(0.08)


def test_pointing_game_bad_input():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 0, 0] = True
    with pytest.raises(ValueError, match=r"images \[1\] have no lesion"):
        pointing_game(np.zeros((2, 4, 4)), masks)
    masks[1, 1, 1] = True
    with pytest.raises(ValueError, match="shape"):
        pointing_game(np.zeros((2, 5, 5)), masks)
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(np.zeros((2, 4, 4)), masks, tolerance=-1)
    with pytest.raises(ValueError, match="NaN"):
        pointing_game(np.full((2, 4, 4), np.nan), masks)


def test_deletion_curve_salient_below_random():
    rng = np.random.default_rng(12)
    X = (rng.random((6, SIZE, SIZE), dtype=np.float32) * 0.3 + 0.2).astype(np.float32)
    clf = LeftUpperProba()
    truth = np.zeros_like(X)
    truth[:, : SIZE // 2, : SIZE // 2] = X[
        :, : SIZE // 2, : SIZE // 2
    ]  # what the model uses
    result = deletion_curve(clf, X, truth, target="pneumonia", steps=8, random_state=0)
    assert result.fractions.shape == result.salient.shape == result.random.shape == (9,)
    assert result.salient_per_image.shape == (6, 9)
    np.testing.assert_allclose(result.salient[0], result.random[0])
    np.testing.assert_allclose(result.salient[0], clf.predict_proba(X)[:, 1].mean())
    assert result.salient[-1] == pytest.approx(result.random[-1])
    assert result.auc_salient < result.auc_random - 0.1
    again = deletion_curve(clf, X, truth, target="pneumonia", steps=8, random_state=0)
    np.testing.assert_allclose(again.random, result.random)
    # the reversed heatmap is worse than random
    worst = deletion_curve(clf, X, -truth, target="pneumonia", steps=8, random_state=0)
    assert worst.auc_salient > result.auc_random
    with pytest.raises(ValueError, match="heatmaps"):
        deletion_curve(clf, X, truth[:2])
    with pytest.raises(ValueError, match="steps"):
        deletion_curve(clf, X, truth, steps=0)


# ----------------------------------------------------------------- displays
def test_heatmap_display_from_estimator(left_clf):
    X = _blobs(3, row=4, col=4, rng=np.random.default_rng(13))
    for method in ("grad_cam", "occlusion"):
        display = HeatmapDisplay.from_estimator(
            left_clf,
            X,
            method=method,
            cmap="magma",
            alpha=0.3,
            colorbar=True,
            method_kwargs=(
                {"patch_size": 4, "stride": 4} if method == "occlusion" else None
            ),
        )
        assert len(display.ax_) == 3 and display.figure_ is display.ax_[0].figure
        base, over = display.image_artists_[0], display.heatmap_artists_[0]
        assert base.get_cmap().name == "gray" and base.get_array().ndim == 2
        assert base.get_clim() == (0.0, 1.0)
        assert over.get_cmap().name == "magma" and over.get_alpha() == 0.3
        assert display.ax_[0].get_title().startswith("pred: ")
        assert display.colorbar_ is not None
    with pytest.raises(ValueError, match="method"):
        HeatmapDisplay.from_estimator(left_clf, X, method="lime")


def test_heatmap_display_from_heatmaps_on_given_axes():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2)
    X = np.zeros((3, 8, 8), dtype=np.float32)
    X[:, 2, 2] = 1
    maps = np.random.default_rng(14).random((3, 8, 8))
    display = HeatmapDisplay.from_heatmaps(X, maps, titles=["a", "b", "c"], ax=axes)
    assert display.figure_ is fig and [a.get_title() for a in display.ax_] == [
        "a",
        "b",
        "c",
    ]
    # the base image is the untouched grey image, not an RGB conversion
    np.testing.assert_array_equal(display.image_artists_[1].get_array(), X[1])
    with pytest.raises(ValueError, match="titles"):
        HeatmapDisplay.from_heatmaps(X, maps, titles=["a"])


def test_image_grid_display():
    display = ImageGridDisplay.from_images(
        np.zeros((5, 64)), titles=list("abcde"), ncols=2
    )
    assert len(display.image_artists_) == 5 and display.ax_.shape == (5,)
    assert display.image_artists_[0].get_array().shape == (8, 8)
    assert len(display.figure_.axes) == 6  # 3x2 grid, the last axis switched off
    with pytest.raises(ValueError, match="images"):
        ImageGridDisplay.from_images(np.zeros((2, 5)))


def test_embedding_display():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(15)
    X = rng.normal(size=(20, 5))
    y = np.array(["normal", "bacteria"] * 10)
    display = EmbeddingDisplay.from_estimator(PCA(n_components=2), X, y, X_new=X[:3])
    assert set(display.scatters_) == {"normal", "bacteria"}
    assert len(display.scatters_["normal"].get_offsets()) == 10
    assert len(display.new_points_artist_.get_offsets()) == 3
    assert display.ax_.get_legend() is not None
    display = EmbeddingDisplay.from_predictions(X[:, :2], y)
    assert display.new_points_artist_ is None
    with pytest.raises(ValueError, match=r"\(n_samples, 2\)"):
        EmbeddingDisplay.from_predictions(X, y)


def test_reconstruction_error_display():
    class Detector:
        threshold_ = 0.25

        def fit(self):
            return self

        def score_samples(self, X):
            return -np.asarray(X).mean(axis=1)

    X = np.r_[np.full((5, 4), 0.1), np.full((5, 4), 0.4)]
    y = ["normal"] * 5 + ["bacteria"] * 5
    display = ReconstructionErrorDisplay.from_estimator(Detector(), X, y, bins=5)
    assert set(display.hists_) == {"normal", "bacteria"}
    assert sum(p.get_height() for p in display.hists_["normal"]) == 5
    assert display.threshold_line_.get_xdata()[0] == 0.25
    display = ReconstructionErrorDisplay.from_predictions(np.arange(4.0))
    assert list(display.hists_) == ["all"] and display.threshold_line_ is None


def test_training_curve_display():
    history = [
        {"epoch": 1, "train_loss": 1.0, "valid_loss": 1.2, "valid_acc": 0.5},
        {"epoch": 2, "train_loss": 0.6, "valid_loss": 0.9, "valid_acc": 0.7},
    ]

    class Fitted:
        history_ = history
        classes_ = np.array([0, 1])

    display = TrainingCurveDisplay.from_estimator(Fitted())
    assert set(display.lines_) == {"train_loss", "valid_loss", "valid_acc"}
    assert display.lines_["valid_acc"].axes is display.acc_ax_
    np.testing.assert_allclose(display.lines_["train_loss"].get_ydata(), [1.0, 0.6])
    no_valid = TrainingCurveDisplay.from_history([{"epoch": 1, "train_loss": 0.3}])
    assert list(no_valid.lines_) == ["train_loss"] and no_valid.acc_ax_ is None
    with pytest.raises(ValueError, match="empty"):
        TrainingCurveDisplay.from_history([])


def test_displays_draw_on_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_blur_baseline_everywhere():
    X = _blobs(2, row=4, col=4, rng=np.random.default_rng(16))
    clf = LeftUpperProba()
    maps = occlusion_sensitivity(clf, X, patch_size=4, stride=4, baseline="blur")
    assert maps.shape == X.shape and np.abs(maps[:, 8:, 8:]).max() < 1e-6
    assert region_attribution(
        clf, X, regions="quadrants", baseline="blur"
    ).top_index.tolist() == [0, 0]
    result = deletion_curve(
        clf, X, X, target="pneumonia", steps=4, baseline="blur", random_state=0
    )
    assert result.salient.shape == (5,)


# ------------------------------------------------- module layout and validation
def test_feature_modules_share_helpers_through_common_only():
    import ast
    import pathlib

    import skcxr.inspection

    folder = pathlib.Path(skcxr.inspection.__file__).parent
    for path in folder.glob("_*.py"):
        if path.name in ("__init__.py", "_common.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                # the shared helpers, or the public names of the package
                assert node.module in ("_common", None), (path.name, node.module)


@pytest.mark.parametrize(
    "func, kwargs, param",
    [
        (grad_cam, {"batch_size": "4"}, "batch_size"),
        (grad_cam, {"layer": 3}, "layer"),
        (intermediate_activations, {"layer": None, "batch_size": 0}, "batch_size"),
        (occlusion_sensitivity, {"stride": 1.5}, "stride"),
        (occlusion_sensitivity, {"baseline": 2.0}, "baseline"),
        (region_attribution, {"regions": "lobes"}, "regions"),
        (silhouette_side, {"rule": "left"}, "rule"),
    ],
)
def test_public_functions_validate_their_parameters(left_clf, func, kwargs, param):
    from sklearn.utils._param_validation import InvalidParameterError

    X = _blobs(1, row=3, col=3, rng=np.random.default_rng(20))
    args = (X,) if func is silhouette_side else (left_clf, X)
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter of"):
        func(*args, **kwargs)


def test_score_functions_validate_their_parameters(left_clf):
    from sklearn.utils._param_validation import InvalidParameterError

    from skcxr.inspection import error_overlap

    X = _blobs(2, row=3, col=3, rng=np.random.default_rng(21))
    masks = X > 0.5
    with pytest.raises(InvalidParameterError, match="'tolerance' parameter"):
        pointing_game(X, masks, tolerance="2")
    with pytest.raises(InvalidParameterError, match="'random_state' parameter"):
        deletion_curve(left_clf, X, X, random_state="zero")
    with pytest.raises(InvalidParameterError, match="'estimators_or_predictions'"):
        error_overlap("cnn", None, ["a"])


# ------------------------------------------------------- the Display pattern
def _display_cases(left_clf):
    """(display class, data constructor name, from_estimator call) per display."""
    X = _blobs(2, row=4, col=4, rng=np.random.default_rng(22))

    class Detector:
        threshold_ = 0.2

        def score_samples(self, X):
            return -np.asarray(X).reshape(len(X), -1).mean(1)

    class Fitted:
        history_ = [{"epoch": 1, "train_loss": 0.5}]

    from sklearn.decomposition import PCA

    from skcxr.inspection import ErrorOverlapDisplay

    y = ["normal", "pneumonia"]
    flat = X.reshape(2, -1)
    return [
        (HeatmapDisplay, "from_heatmaps", lambda: HeatmapDisplay.from_estimator(
            left_clf, X)),
        (ImageGridDisplay, "from_predictions", lambda: ImageGridDisplay.from_estimator(
            left_clf, X, y)),
        (EmbeddingDisplay, "from_predictions", lambda: EmbeddingDisplay.from_estimator(
            PCA(2).fit(flat), flat, y)),
        (ReconstructionErrorDisplay, "from_predictions",
         lambda: ReconstructionErrorDisplay.from_estimator(Detector(), X, y)),
        (TrainingCurveDisplay, "from_history",
         lambda: TrainingCurveDisplay.from_estimator(Fitted())),
        (ErrorOverlapDisplay, "from_predictions",
         lambda: ErrorOverlapDisplay.from_estimators([left_clf], X, y)),
    ]  # fmt: skip


def test_from_estimator_delegates_to_the_data_constructor(left_clf, monkeypatch):
    for cls, name, build in _display_cases(left_clf):
        calls = []
        original = getattr(cls, name).__func__

        def spy(klass, *args, _original=original, _calls=calls, **kwargs):
            _calls.append(klass)
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, name, classmethod(spy))
        display = build()
        assert calls == [cls], cls.__name__
        assert isinstance(display, cls) and display.figure_ is not None


def test_init_stores_and_plot_draws_on_the_given_axes():
    import matplotlib.pyplot as plt

    from skcxr.inspection import ErrorOverlapDisplay, error_overlap

    images = np.zeros((2, 8, 8))
    overlap = error_overlap({"m": ["a", "b"]}, None, ["a", "a"])
    displays = [
        (ImageGridDisplay(images), 2),
        (HeatmapDisplay(images, images), 2),
        (EmbeddingDisplay(np.eye(2), ["a", "b"]), 1),
        (ReconstructionErrorDisplay(np.arange(2.0)), 1),
        (TrainingCurveDisplay([{"train_loss": 1.0}]), 1),
        (ErrorOverlapDisplay(overlap), 1),
    ]
    for display, n_axes in displays:
        assert not hasattr(display, "figure_") and not hasattr(display, "ax_")
        fig, axes = plt.subplots(1, 2)
        ax = axes if n_axes == 2 else axes[1]
        assert display.plot(ax=ax) is display
        assert display.figure_ is fig
        first = display.ax_[0] if n_axes == 2 else display.ax_
        assert first is axes[0 if n_axes == 2 else 1]
        plt.close(fig)


# ------------------------------------------------- embeddings of a fitted map
@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(23)
    X = np.r_[rng.normal(0, 1, (20, 6)), rng.normal(4, 1, (20, 6))]
    return X, np.array(["normal"] * 20 + ["pneumonia"] * 20)


def _tsne(**kwargs):
    from skcxr import TSNE

    return TSNE(
        perplexity=5, n_iter=50, early_exaggeration_iter=50, random_state=0, **kwargs
    )


def _drawn(display, label, dims=2):
    artist = display.scatters_[label]
    if dims == 3:
        return np.column_stack(artist._offsets3d)
    return np.asarray(artist.get_offsets())


def test_embedding_display_draws_the_fitted_tsne_map(codes):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = codes
    tsne = _tsne().fit(X)
    placed = tsne.transform(X)
    assert not np.allclose(placed, tsne.embedding_, atol=1e-2)  # re-placing moves
    display = EmbeddingDisplay.from_estimator(tsne, X, y, X_new=X[:3] + 0.1)
    for label in ("normal", "pneumonia"):
        np.testing.assert_allclose(
            _drawn(display, label), tsne.embedding_[y == label], rtol=1e-6
        )
    assert len(display.new_points_artist_.get_offsets()) == 3
    # X=None draws the training map too; a pipeline ending in TSNE works the same
    same = EmbeddingDisplay.from_estimator(tsne, None, y)
    np.testing.assert_allclose(_drawn(same, "normal"), tsne.embedding_[y == "normal"])
    pipe = make_pipeline(StandardScaler(), _tsne()).fit(X)
    display = EmbeddingDisplay.from_estimator(pipe, X, y, X_new=X[:2])
    np.testing.assert_allclose(
        _drawn(display, "pneumonia"), pipe[-1].embedding_[y == "pneumonia"]
    )
    with pytest.raises(ValueError, match="training map of 40 points"):
        EmbeddingDisplay.from_estimator(tsne, X[:5], y[:5])


def test_embedding_display_unfitted_tsne_is_fitted(codes):
    X, y = codes
    tsne = _tsne()
    display = EmbeddingDisplay.from_estimator(tsne, X, y)
    np.testing.assert_allclose(
        _drawn(display, "normal"), tsne.embedding_[y == "normal"]
    )
    from sklearn.decomposition import PCA

    with pytest.raises(ValueError, match="embedding_"):
        EmbeddingDisplay.from_estimator(PCA(2).fit(X), None, y)


def test_embedding_display_draws_3d_maps(codes):
    import matplotlib.pyplot as plt

    X, y = codes
    tsne = _tsne(n_components=3).fit(X)
    display = EmbeddingDisplay.from_estimator(tsne, X, y, X_new=X[:2] + 0.1)
    assert display.ax_.name == "3d"
    assert display.ax_.get_zlabel() == "component 3"
    np.testing.assert_allclose(
        _drawn(display, "pneumonia", dims=3), tsne.embedding_[y == "pneumonia"]
    )
    assert np.column_stack(display.new_points_artist_._offsets3d).shape == (2, 3)
    _, flat_ax = plt.subplots()
    with pytest.raises(ValueError, match="3-D axes"):
        EmbeddingDisplay.from_predictions(tsne.embedding_, y, ax=flat_ax)
    with pytest.raises(ValueError, match="new_points has 2 columns"):
        EmbeddingDisplay.from_predictions(tsne.embedding_, y, new_points=np.eye(2))
    with pytest.raises(ValueError, match=r"\(n_samples, 3\)"):
        EmbeddingDisplay.from_predictions(np.ones((40, 4)), y)
