"""Saliency, SmoothGrad, Grad-CAM++, the silhouette region rule, the insertion
curve, the energy-based pointing game and evaluate_explanations."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from skcxr.inspection import (
    deletion_curve,
    energy_pointing_game,
    evaluate_explanations,
    grad_cam,
    grad_cam_plus_plus,
    insertion_curve,
    mask_region,
    pointing_game,
    saliency,
    silhouette_region,
    silhouette_side,
)


class _Net(nn.Module):
    """conv -> ReLU -> conv -> max-pool -> linear: gradients vary in space."""

    def __init__(self, n_classes=2):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 2, 3, padding=1)
        self.pool = nn.AdaptiveMaxPool2d(2)
        self.fc = nn.Linear(8, n_classes)

    def forward(self, x):
        return self.fc(self.pool(self.conv2(self.relu(self.conv1(x)))).flatten(1))


class _Tiny:
    """Follows the torch protocol: module_, classes_, predict_proba."""

    def __init__(self, module, classes=("normal", "pneumonia")):
        self.module_ = module.eval()
        self.classes_ = np.array(classes)

    def predict_proba(self, X):
        X = np.asarray(X, dtype=np.float32)
        side = int(round(np.sqrt(X[0].size)))
        with torch.no_grad():
            logits = self.module_(torch.from_numpy(X.reshape(-1, 1, side, side)))
        return torch.softmax(logits, 1).numpy()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return _Tiny(_Net())


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, 16, 16), dtype=np.float32)


def _n_hooks(module):
    return sum(
        len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
        for m in module.modules()
    )


# ------------------------------------------------------------------ saliency
@pytest.mark.parametrize("method", ["vanilla", "smoothgrad"])
def test_saliency_shape_range_and_peak(tiny, images, method):
    maps = saliency(tiny, images, method=method, n_samples=4, random_state=0)
    assert maps.shape == images.shape and maps.dtype == np.float32
    assert maps.min() >= 0
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0)


def test_vanilla_saliency_is_the_absolute_input_gradient():
    # a linear model's gradient is its weight, whatever the image
    torch.manual_seed(1)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    est = _Tiny(linear)
    X = np.random.default_rng(1).random((3, 8, 8), dtype=np.float32)
    maps = saliency(est, X, target="pneumonia")
    weight = linear[1].weight.detach().numpy()[1].reshape(8, 8)
    expected = np.abs(weight) / np.abs(weight).max()
    for m in maps:
        np.testing.assert_allclose(m, expected, rtol=1e-5, atol=1e-6)


def test_smoothgrad_is_deterministic_with_random_state(tiny, images):
    kwargs = {"method": "smoothgrad", "n_samples": 5, "noise_level": 0.2}
    first = saliency(tiny, images, random_state=3, **kwargs)
    again = saliency(tiny, images, random_state=3, **kwargs)
    other = saliency(tiny, images, random_state=4, **kwargs)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # no noise: SmoothGrad is the vanilla map
    quiet = saliency(tiny, images, method="smoothgrad", noise_level=0, n_samples=2)
    np.testing.assert_allclose(quiet, saliency(tiny, images), atol=1e-6)


def test_smoothgrad_converges_with_more_samples(tiny, images):
    # a Monte Carlo mean: two noise draws agree better with more samples
    def gap(n_samples):
        a, b = (
            saliency(
                tiny, images, method="smoothgrad", n_samples=n_samples, random_state=r
            )
            for r in (0, 1)
        )
        return np.abs(a - b).mean()

    assert gap(60) < gap(3) / 2


def test_saliency_threshold_keeps_the_strong_weights(tiny, images):
    full = saliency(tiny, images)
    half = saliency(tiny, images, threshold=0.5)
    strict = saliency(tiny, images, threshold=0.7)
    assert ((half == 0) | (half >= 0.5)).all()
    np.testing.assert_array_equal(half[full >= 0.5], full[full >= 0.5])
    assert (strict > 0).sum() < (half > 0).sum() < (full > 0).sum()


def test_saliency_restores_mode_and_leaves_no_hooks(images):
    est = _Tiny(_Net())
    est.module_.train()
    before = _n_hooks(est.module_)
    saliency(est, images, method="smoothgrad", n_samples=2, random_state=0)
    assert est.module_.training and _n_hooks(est.module_) == before


# --------------------------------------------------------------- Grad-CAM++
def _grad_cam_pp_reference(module, image, target):
    """Grad-CAM++ with explicit loops over channels and locations."""
    x = torch.from_numpy(image)[None, None]
    acts = module.relu(module.conv1(x))
    logits = module.fc(module.pool(module.conv2(acts)).flatten(1))
    (grads,) = torch.autograd.grad(logits[0, target], acts)
    A, g = acts[0].detach().double().numpy(), grads[0].double().numpy()
    cam = np.zeros(A.shape[1:])
    for k in range(A.shape[0]):
        total = A[k].sum()
        weight = 0.0
        for i in range(A.shape[1]):
            for j in range(A.shape[2]):
                denom = 2 * g[k, i, j] ** 2 + total * g[k, i, j] ** 3
                alpha = g[k, i, j] ** 2 / denom if denom != 0 else 0.0
                weight += alpha * max(g[k, i, j], 0.0)
        cam += weight * A[k]
    cam = np.maximum(cam, 0)
    return cam / cam.max() if cam.max() > 0 else cam


def test_grad_cam_plus_plus_matches_a_hand_reference(tiny, images):
    # the hooked ReLU keeps the input size, so no upsampling is involved
    maps = grad_cam_plus_plus(tiny, images, target="pneumonia", layer="relu")
    assert maps.shape == images.shape
    for image, m in zip(images, maps):
        expected = _grad_cam_pp_reference(tiny.module_, image, 1)
        np.testing.assert_allclose(m, expected, atol=1e-5)


def test_grad_cam_plus_plus_differs_from_grad_cam(tiny, images):
    plus = grad_cam_plus_plus(tiny, images, layer="relu")
    plain = grad_cam(tiny, images, layer="relu")
    assert plus.min() >= 0 and plus.max() <= 1
    assert not np.allclose(plus, plain)


def test_grad_cam_plus_plus_leaves_no_capture_active_on_error(images):
    from skcxr.nn import _capture

    est = _Tiny(_Net())
    est.module_.fc = nn.Linear(5, 2)  # fails after the hooked layer has run
    with pytest.raises(RuntimeError):
        grad_cam_plus_plus(est, images, layer="relu")
    assert not getattr(_capture._state, "frames", [])
    hooks = _n_hooks(est.module_)
    with pytest.raises(RuntimeError):  # no second hook on the layer
        grad_cam_plus_plus(est, images, layer="relu")
    assert _n_hooks(est.module_) == hooks == 1


# ---------------------------------------------------------- parameter errors
@pytest.mark.parametrize(
    "func, kwargs, param",
    [
        (saliency, {"method": "integrated"}, "method"),
        (saliency, {"threshold": 1.5}, "threshold"),
        (saliency, {"n_samples": 0}, "n_samples"),
        (saliency, {"noise_level": -0.1}, "noise_level"),
        (grad_cam_plus_plus, {"batch_size": 0}, "batch_size"),
        (grad_cam_plus_plus, {"layer": 3}, "layer"),
    ],
)
def test_public_functions_validate_their_parameters(tiny, images, func, kwargs, param):
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter of"):
        func(tiny, images, **kwargs)


def test_region_functions_validate_their_parameters(images):
    with pytest.raises(InvalidParameterError, match="'region' parameter"):
        mask_region(images, "centre")
    with pytest.raises(InvalidParameterError, match="'fill' parameter"):
        mask_region(images, "left", fill=2.0)
    with pytest.raises(InvalidParameterError, match="'rule' parameter"):
        silhouette_region(images, rule="left")


def test_unknown_target_is_named(tiny, images):
    with pytest.raises(ValueError, match="target 'covid'"):
        saliency(tiny, images, target="covid")


# ----------------------------------------------------------- silhouette rule
@pytest.mark.parametrize(
    "rows, cols, quadrant",
    [
        ((4, 12), (2, 14), "patient right upper / image top-left"),
        ((36, 44), (2, 14), "patient right lower / image bottom-left"),
        ((4, 12), (34, 46), "patient left upper / image top-right"),
        ((36, 44), (34, 46), "patient left lower / image bottom-right"),
    ],
)
def test_silhouette_region_narrows_down_to_the_bright_quadrant(rows, cols, quadrant):
    image = np.full((1, 48, 48), 0.2, dtype=np.float32)
    image[0, slice(*rows), slice(*cols)] = 1.0
    result = silhouette_region(image)
    assert result.quadrant.tolist() == [quadrant]
    assert result.side.tolist() == silhouette_side(image).tolist()
    r0, r1, c0, c1 = result.box[0]
    # rows 20-110 of a 224 px image (mirrored for a lower quadrant), scaled
    upper = (round(20 * 48 / 224), round(110 * 48 / 224))
    assert (r0, r1) == (
        upper if "upper" in quadrant else (48 - upper[1], 48 - upper[0])
    )
    assert (c0, c1) == ((0, 24) if quadrant.endswith("left") else (24, 48))
    assert result.masks[0].sum() == (r1 - r0) * (c1 - c0)
    assert result.masks[0, slice(*rows), slice(*cols)].mean() > 0.5


def test_silhouette_region_darker_rule_picks_the_other_half():
    image = np.zeros((1, 32, 32), dtype=np.float32)
    image[0, 2:10, 2:12] = 1.0
    assert (
        silhouette_region(image).side[0]
        != silhouette_region(image, rule="darker").side[0]
    )


@pytest.mark.parametrize("region", ["left", "right", "top-left", "bottom-right"])
def test_mask_region_keeps_one_part(region):
    rng = np.random.default_rng(2)
    X = rng.uniform(0.1, 1, (3, 32, 32)).astype(np.float32)
    out = mask_region(X, region)
    kept = out != 0
    assert kept.mean() == pytest.approx(0.5 if "-" not in region else 0.25)
    np.testing.assert_array_equal(out[kept], X[kept])
    # kept part is where the name says (image left = columns 0..15)
    cols = np.flatnonzero(kept[0].any(0))
    assert (cols < 16).all() if region.endswith("left") else (cols >= 16).all()
    # layouts round-trip
    assert mask_region(X.reshape(3, -1), region).shape == (3, 32 * 32)
    mean = mask_region(X, region, fill="mean")
    np.testing.assert_allclose(
        mean[~kept].reshape(3, -1)[:, 0], X.mean((1, 2)), rtol=1e-5
    )


def test_training_on_one_half_finds_where_the_signal_is():
    # the label lives in the image's left half: a model fitted on the left half
    # scores far better than one fitted on the right half
    rng = np.random.default_rng(3)
    X = rng.random((200, 8, 8), dtype=np.float32)
    y = X[:, :, :4].mean((1, 2)) > 0.5
    scores = {}
    for side in ("left", "right"):
        Xs = mask_region(X, side).reshape(200, -1)
        clf = LogisticRegression(max_iter=500).fit(Xs[:150], y[:150])
        scores[side] = clf.score(Xs[150:], y[150:])
    assert scores["left"] > scores["right"] + 0.2


# ------------------------------------------------------------------ scores
@pytest.fixture(scope="module")
def linear_problem():
    rng = np.random.default_rng(0)
    X = rng.random((60, 64), dtype=np.float32)
    y = X.reshape(60, 8, 8)[:, :, :4].mean((1, 2)) > 0.5
    clf = LogisticRegression().fit(X, y)
    maps = np.broadcast_to(clf.coef_.reshape(1, 8, 8), (60, 8, 8))
    return clf, X, maps


def test_insertion_curve_salient_above_random(linear_problem):
    clf, X, maps = linear_problem
    result = insertion_curve(clf, X, maps, target=True, steps=8, random_state=0)
    assert result.auc_salient > result.auc_random
    assert result.salient.shape == result.random.shape == (9,)
    # all pixels inserted: the original image's probability
    proba = clf.predict_proba(X)[:, 1]
    np.testing.assert_allclose(result.salient_per_image[:, -1], proba, rtol=1e-5)
    np.testing.assert_allclose(result.random_per_image[:, -1], proba, rtol=1e-5)


def test_deletion_and_insertion_start_from_opposite_ends(linear_problem):
    clf, X, maps = linear_problem
    dele = deletion_curve(clf, X, maps, target=True, baseline=0.0, random_state=0)
    ins = insertion_curve(clf, X, maps, target=True, baseline=0.0, random_state=0)
    np.testing.assert_allclose(
        dele.salient_per_image[:, 0], ins.salient_per_image[:, -1]
    )
    np.testing.assert_allclose(
        dele.salient_per_image[:, -1], ins.salient_per_image[:, 0]
    )
    assert dele.auc_salient < dele.auc_random


def test_energy_pointing_game_against_chance():
    masks = np.zeros((3, 10, 10), dtype=bool)
    masks[:, 2:5, 2:5] = True
    uniform = energy_pointing_game(np.ones((3, 10, 10)), masks)
    assert uniform.score == pytest.approx(uniform.chance) == pytest.approx(0.09)
    inside = energy_pointing_game(masks * 0.7, masks)
    assert inside.score == pytest.approx(1.0)
    lungs = np.zeros((10, 10), dtype=bool)
    lungs[:, :5] = True
    assert energy_pointing_game(np.ones((3, 10, 10)), masks, region=lungs).chance == (
        pytest.approx(9 / 50)
    )
    with pytest.raises(ValueError, match="masks: images"):
        energy_pointing_game(np.ones((1, 10, 10)), np.zeros((1, 10, 10), bool))


# ------------------------------------------------------- evaluate_explanations
def test_evaluate_explanations_rows_and_chance_columns(tiny, images):
    masks = np.zeros(images.shape, dtype=bool)
    masks[:, 4:10, 4:10] = True
    methods = ("grad_cam", "grad_cam_plus_plus", "saliency", "smoothgrad", "occlusion")
    result = evaluate_explanations(
        tiny,
        images,
        masks,
        methods=methods,
        steps=4,
        method_params={"smoothgrad": {"n_samples": 3}, "occlusion": {"stride": 4}},
        random_state=0,
    )
    assert [row["method"] for row in result.rows] == list(methods)
    assert all(list(row) == result.columns for row in result.rows)
    for score in ("pointing_game", "mass_in_lesion", "deletion_auc", "insertion_auc"):
        assert f"{score}_chance" in result.columns
        assert all(0 <= row[score] <= 1 for row in result.rows)
    # the same random order for every row: equal chance levels
    for chance in (
        "pointing_game_chance",
        "mass_in_lesion_chance",
        "deletion_auc_chance",
    ):
        assert len({row[chance] for row in result.rows}) == 1
    area = masks.mean()
    assert result.rows[0]["mass_in_lesion_chance"] == pytest.approx(area)
    assert all(row["seconds_per_image"] > 0 for row in result.rows)
    assert set(result.heatmaps) == set(methods)
    assert all(m.shape == images.shape for m in result.heatmaps.values())
    # the table reuses the scoring functions
    game = pointing_game(result.heatmaps["saliency"], masks, tolerance=2)
    assert result.rows[2]["pointing_game"] == game.score
    assert all(name in result.text for name in methods)


def test_evaluate_explanations_errors(tiny, images):
    masks = np.ones(images.shape, dtype=bool)
    with pytest.raises(ValueError, match="methods"):
        evaluate_explanations(tiny, images, masks, methods=["lime"])
    with pytest.raises(ValueError, match="method_params"):
        evaluate_explanations(
            tiny, images, masks, methods="saliency", method_params={"occlusion": {}}
        )
    with pytest.raises(ValueError, match="masks has 2 maps"):
        evaluate_explanations(tiny, images, masks[:2], methods="saliency")
    with pytest.raises(InvalidParameterError, match="'steps' parameter"):
        evaluate_explanations(tiny, images, masks, steps=0)


# ------------------------------------------ a fitted TransferClassifier (slow)
@pytest.fixture(scope="module")
def fitted():
    from skcxr import TransferClassifier
    from skcxr.datasets import make_chest_xrays

    X, y, masks = make_chest_xrays(
        320,
        classes=("normal", "bacteria"),
        size=64,
        difficulty=0.3,
        return_masks=True,
        random_state=0,
    )
    clf = TransferClassifier(
        backbone="small_cnn",
        weights=None,
        trainable="all",
        max_epochs=14,
        lr=3e-3,
        validation_fraction=0.0,
        random_state=0,
        device="cpu",
    ).fit(X[:240], y[:240])
    X_test, y_test, masks_test = X[240:], y[240:], masks[240:]
    hit = (clf.predict(X_test) == y_test) & (y_test == "bacteria")
    return clf, X_test[hit], masks_test[hit], masks.any(axis=0)


@pytest.mark.slow
def test_grad_cam_beats_chance_in_the_comparison(fitted):
    from skcxr.inspection import intermediate_activations

    clf, X, masks, lungs = fitted
    assert len(X) >= 15, "too few correctly classified pneumonia images"
    grid = intermediate_activations(clf, X[:1], None).shape[-1]
    result = evaluate_explanations(
        clf,
        X,
        masks,
        target="bacteria",
        region=lungs,
        tolerance=X.shape[2] / grid / 4,
        method_params={"smoothgrad": {"n_samples": 10}},
        random_state=0,
    )
    print("\n" + result.text)
    rows = {row["method"]: row for row in result.rows}
    for method in ("grad_cam", "grad_cam_plus_plus", "saliency", "smoothgrad"):
        assert result.heatmaps[method].shape == X.shape
    assert rows["grad_cam"]["pointing_game"] > rows["grad_cam"]["pointing_game_chance"]
    assert (
        rows["grad_cam"]["mass_in_lesion"] > rows["grad_cam"]["mass_in_lesion_chance"]
    )
    # the model's own gradients are cheaper than occlusion's many forward passes
    assert (
        rows["grad_cam"]["seconds_per_image"] < rows["occlusion"]["seconds_per_image"]
    )
