import matplotlib
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from skcxr.inspection import ErrorOverlapDisplay, error_overlap

Y = np.array(["normal", "virus", "virus", "bacteria", "normal"])
PREDS = {
    "cnn": np.array(["normal", "virus", "normal", "virus", "virus"]),
    "vgg": np.array(["normal", "normal", "normal", "bacteria", "virus"]),
    "rn": np.array(["normal", "virus", "bacteria", "virus", "virus"]),
}


def test_masks_match_hand_count():
    ov = error_overlap(PREDS, None, Y)
    assert ov.names == ["cnn", "vgg", "rn"]
    assert ov.correct.shape == (3, 5) and ov.correct.dtype == bool
    np.testing.assert_array_equal(ov.all_wrong.nonzero()[0], [2, 4])
    np.testing.assert_array_equal(ov.all_right.nonzero()[0], [0])
    np.testing.assert_array_equal(ov.only_wrong["vgg"].nonzero()[0], [1])
    assert not ov.only_wrong["cnn"].any()
    np.testing.assert_array_equal(ov.only_right["vgg"].nonzero()[0], [3])
    # partition sanity: a sample is never both all-wrong and all-right
    assert not np.any(ov.all_wrong & ov.all_right)


def test_fitted_estimators_and_names():
    X = np.zeros((5, 1))
    ests = [
        DummyClassifier(strategy="constant", constant=c).fit(X, Y)
        for c in ["normal", "virus"]
    ]
    ov = error_overlap(ests, X, Y)
    assert ov.names == ["DummyClassifier_0", "DummyClassifier_1"]
    ov = error_overlap(ests, X, Y, names=["a", "b"])
    np.testing.assert_array_equal(ov.correct[0], Y == "normal")
    np.testing.assert_array_equal(ov.only_right["b"], Y == "virus")
    ov = error_overlap([("x", ests[0])], X, Y)
    np.testing.assert_array_equal(ov.only_wrong["x"], Y != "normal")


def test_bad_input():
    with pytest.raises(ValueError, match="names"):
        error_overlap(PREDS, None, Y, names=["a"])
    with pytest.raises(ValueError):
        error_overlap({"a": Y[:3]}, None, Y)
    with pytest.raises(ValueError, match="X"):
        error_overlap([DummyClassifier().fit([[0]] * 5, Y)], None, Y)
    with pytest.raises(ValueError, match="no model"):
        error_overlap({}, None, Y)


def test_display_counts_and_images():
    images = np.random.default_rng(0).random((5, 16, 16), dtype=np.float32)
    disp = ErrorOverlapDisplay.from_predictions(PREDS, Y, images=images, max_per_cell=2)
    assert disp.categories_[0] == "all wrong" and disp.categories_[-1] == "all right"
    assert disp.counts_.shape == (8, 3)
    assert disp.counts_[0].sum() == 2
    assert isinstance(disp.figure_, matplotlib.figure.Figure)
    assert disp.image_axes_.shape == (8, 6)
    only_table = ErrorOverlapDisplay.from_predictions(PREDS, Y)
    assert only_table.image_axes_ is None
    with pytest.raises(ValueError, match="images"):
        ErrorOverlapDisplay.from_predictions(PREDS, Y, images=images[:3])


def test_display_from_estimators_uses_image_X():
    X = np.random.default_rng(0).random((5, 64), dtype=np.float32)  # flat 8x8 images
    ests = {
        "a": DummyClassifier(strategy="constant", constant="virus").fit(X, Y),
        "b": DummyClassifier(strategy="constant", constant="normal").fit(X, Y),
    }
    disp = ErrorOverlapDisplay.from_estimators(ests, X, Y, max_per_cell=1)
    assert disp.image_axes_.shape == (len(disp.categories_), 3)


def test_display_on_given_axes_draws_the_table_only():
    import matplotlib.pyplot as plt

    X = np.random.default_rng(1).random((5, 64), dtype=np.float32)
    est = DummyClassifier(strategy="constant", constant="virus").fit(X, Y)
    fig, ax = plt.subplots()
    disp = ErrorOverlapDisplay.from_estimators([est], X, Y, ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig and disp.image_axes_ is None
    np.testing.assert_array_equal(disp.counts_.sum(0), [1, 2, 2])  # per class
    with pytest.raises(ValueError, match="ax"):
        disp.plot(ax=ax, images=X)
    with pytest.raises(ValueError, match="max_per_cell"):
        ErrorOverlapDisplay.from_predictions(PREDS, Y, max_per_cell=0)
