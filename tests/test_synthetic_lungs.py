import numpy as np

from skcxr.datasets import make_chest_xrays


def test_lung_masks_leave_images_and_labels_unchanged():
    X, y = make_chest_xrays(12, size=48, random_state=3)
    X2, y2, masks, lungs = make_chest_xrays(
        12, size=48, return_masks=True, return_lung_masks=True, random_state=3
    )
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert lungs.shape == X.shape and lungs.dtype == bool
    assert masks.shape == X.shape


def test_lung_masks_are_two_dark_fields():
    from scipy import ndimage

    X, y, lungs = make_chest_xrays(
        8,
        classes=("normal",),
        size=64,
        difficulty=0.0,
        return_lung_masks=True,
        random_state=0,
    )
    for image, lung in zip(X, lungs):
        labels, n = ndimage.label(lung)
        sizes = np.bincount(labels.ravel())[1:]
        assert np.sum(sizes > 0.02 * lung.size) == 2  # one field per side
        assert image[lung].mean() < image[~lung].mean() - 0.1  # air is dark
    # the patient's right lung is on the image's left, the heart narrows the other
    left, right = lungs[:, :, :32].sum(), lungs[:, :, 32:].sum()
    assert left > right


def test_lung_masks_with_subgroup_difficulty():
    X, y, lungs, meta = make_chest_xrays(
        6,
        size=32,
        return_lung_masks=True,
        return_metadata=True,
        subgroup_difficulty={"sex": {"F": 0.9}},
        random_state=0,
    )
    assert lungs.shape == X.shape and lungs.any(axis=(1, 2)).all()


def test_real_lung_masks_from_torchxrayvision():
    from tests._real_lungs import real_lung_masks

    masks = real_lung_masks(5, size=64)
    assert masks.shape == (5, 64, 64) and masks.dtype == bool
    assert all(0.1 < m.mean() < 0.6 for m in masks)
