import numpy as np
import pytest
from scipy.spatial.distance import directed_hausdorff

from skcxr.metrics import dice_score, hausdorff_distance_95, jaccard_score


def _random_masks(n=5, size=24, seed=0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((n, size, size)), (0, 2, 2))
    return smooth > np.median(smooth)


def test_dice_and_jaccard_per_image_then_mean():
    a, b = _random_masks(seed=0), _random_masks(seed=1)
    dice = dice_score(a, b, average=None)
    jaccard = jaccard_score(a, b, average=None)
    for i in range(len(a)):
        inter = np.sum(a[i] & b[i])
        assert dice[i] == pytest.approx(2 * inter / (a[i].sum() + b[i].sum()))
        assert jaccard[i] == pytest.approx(inter / np.sum(a[i] | b[i]))
    np.testing.assert_allclose(jaccard, dice / (2 - dice))
    assert dice_score(a, b) == pytest.approx(dice.mean())
    assert jaccard_score(a, b) == pytest.approx(jaccard.mean())
    assert dice_score(a, a) == jaccard_score(a, a) == 1.0
    assert dice_score(a, ~a) == 0.0


def test_jaccard_agrees_with_sklearn_on_one_image():
    from sklearn.metrics import jaccard_score as sk_jaccard

    a, b = _random_masks(1, seed=2), _random_masks(1, seed=3)
    assert jaccard_score(a, b) == pytest.approx(sk_jaccard(a.ravel(), b.ravel()))


def test_empty_masks_and_single_images():
    empty = np.zeros((2, 8, 8), bool)
    full = np.ones((2, 8, 8), bool)
    assert dice_score(empty, empty) == jaccard_score(empty, empty) == 1.0
    assert dice_score(empty, full) == 0.0
    assert hausdorff_distance_95(empty, empty) == 0.0
    assert hausdorff_distance_95(empty, full) == np.inf
    assert dice_score(full[0], full[0].astype(int)) == 1.0  # one (H, W) mask, 0/1


def test_hausdorff_95_against_scipy_hausdorff():
    a, b = _random_masks(3, seed=4), _random_masks(3, seed=5)
    hd95 = hausdorff_distance_95(a, b, average=None)
    for i in range(3):
        pa, pb = np.argwhere(a[i]), np.argwhere(b[i])
        full = max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])
        assert 0 < hd95[i] <= full + 1e-9  # a percentile of boundary distances
    # a shift by k pixels: every boundary point is k away at most
    shifted = np.roll(a, 2, axis=2)
    shifted[:, :, :2] = False
    assert hausdorff_distance_95(a[:, :, :-2], shifted[:, :, :-2]) <= 2.0
    assert hausdorff_distance_95(a, a) == 0.0
    anisotropic = hausdorff_distance_95(a, b, spacing=(2.0, 2.0))
    assert anisotropic == pytest.approx(2 * hausdorff_distance_95(a, b))


def test_errors_name_the_argument():
    a = _random_masks(2)
    with pytest.raises(ValueError, match="masks_pred has shape"):
        dice_score(a, a[:1])
    with pytest.raises(ValueError, match="masks_true must be boolean"):
        jaccard_score(a * 0.5, a)
    with pytest.raises(ValueError, match="average"):
        dice_score(a, a, average="macro")
    with pytest.raises(ValueError, match="spacing"):
        hausdorff_distance_95(a, a, spacing=0)
    with pytest.raises(ValueError, match=r"\(n_samples, H, W\)"):
        dice_score(a.ravel(), a.ravel())
