"""End-to-end: explanations of a trained TransferClassifier scored against the
known lesions of the synthetic data."""

import numpy as np
import pytest

from skcxr.inspection import (
    deletion_curve,
    grad_cam,
    intermediate_activations,
    pointing_game,
    region_attribution,
    silhouette_side,
)

pytestmark = pytest.mark.slow

EPOCHS, LR = 14, 3e-3


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
        max_epochs=EPOCHS,
        lr=LR,
        validation_fraction=0.0,
        random_state=0,
        device="cpu",
    ).fit(X[:240], y[:240])
    X_test, y_test, masks_test = X[240:], y[240:], masks[240:]
    hit = (clf.predict(X_test) == y_test) & (y_test == "bacteria")
    # lesions lie inside the lungs: the union of all masks outlines the lung fields
    return clf, X_test[hit], masks_test[hit], masks.any(axis=0)


def _lesion_side(masks):
    """Patient side of each lesion from its centroid (image left = patient right)."""
    cols = np.array([np.nonzero(m)[1].mean() for m in masks])
    return np.where(cols < masks.shape[2] / 2, "right", "left")


def test_grad_cam_pointing_game_above_chance(fitted):
    clf, X, masks, lungs = fitted
    assert len(X) >= 15, "too few correctly classified pneumonia images"
    heatmaps = grad_cam(clf, X)
    assert heatmaps.shape == X.shape and 0 <= heatmaps.min() and heatmaps.max() <= 1
    acts = intermediate_activations(clf, X[:2], None)
    assert acts.ndim == 4 and len(acts) == 2
    # Grad-CAM is upsampled from the layer's coarse grid; the pointing game's
    # tolerance is a quarter of one grid cell (Zhang et al. 2018 use 15 px at 224)
    tolerance = X.shape[2] / acts.shape[3] / 4
    game = pointing_game(heatmaps, masks, tolerance=tolerance, region=lungs)
    # the brightness of the image itself, a model-free heatmap, as the baseline
    bright = pointing_game(X * lungs, masks, tolerance=tolerance, region=lungs)
    print(
        f"\npointing game (tolerance {tolerance:g} px): {game.score:.3f} on {len(X)} "
        f"images; chance (lesion share of the lung fields) {game.chance:.3f}; "
        f"brightest pixel {bright.score:.3f}"
    )
    assert game.score > 2 * game.chance
    assert game.score > bright.score


def test_deletion_curve_salient_below_random(fitted):
    clf, X, _, _ = fitted
    heatmaps = grad_cam(clf, X)
    for baseline in ("blur", 0.0):
        curve = deletion_curve(
            clf, X, heatmaps, target="bacteria", baseline=baseline, random_state=0
        )
        print(
            f"\ndeletion AUC (baseline={baseline}): salient {curve.auc_salient:.3f}, "
            f"random {curve.auc_random:.3f}"
        )
        assert curve.auc_salient < curve.auc_random


def test_region_attribution_names_the_lesion_side(fitted):
    clf, X, masks, _ = fitted
    side = _lesion_side(masks)
    result = region_attribution(clf, X, target="bacteria", baseline="blur")
    accuracy = np.mean(result.top_side == side)
    chance = max(
        np.mean(side == "right"), np.mean(side == "left")
    )  # always the commoner side
    silhouette = silhouette_side(X)
    sil_side = np.where(
        np.char.find(silhouette.astype(str), "patient right") >= 0, "right", "left"
    )
    print(
        f"\nregion attribution side accuracy {accuracy:.2f}; silhouette rule "
        f"{np.mean(sil_side == side):.2f}; majority-side chance {chance:.2f}"
    )
    assert accuracy > chance + 0.15
