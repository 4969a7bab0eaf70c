import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import BaseEstimator

from skcxr.utils._validation import check_images, restore_layout, validate_images

LAYOUT_SHAPES = {
    "nhw": lambda n, s: (n, s, s),
    "n1hw": lambda n, s: (n, 1, s, s),
    "flat": lambda n, s: (n, s * s),
}


@given(
    layout=st.sampled_from(sorted(LAYOUT_SHAPES)),
    n=st.integers(1, 4),
    side=st.integers(1, 6),
    data=st.data(),
)
def test_every_layout_round_trips(layout, n, side, data):
    shape = LAYOUT_SHAPES[layout](n, side)
    X = data.draw(
        arrays(np.float64, shape, elements=st.floats(0, 1, allow_subnormal=False))
    )
    images, found = check_images(X)
    assert found == layout
    assert images.shape == (n, side, side)
    assert images.dtype == np.float32
    back = restore_layout(images, found)
    assert back.shape == X.shape
    np.testing.assert_allclose(back, X.astype(np.float32))


def test_rectangular_images_keep_their_shape():
    images, layout = check_images(np.zeros((2, 3, 5)))
    assert images.shape == (2, 3, 5) and layout == "nhw"


@pytest.mark.parametrize(
    "X, message",
    [
        (np.zeros((2, 5)), "not the size of a square image"),
        (np.zeros(4), "rank 1"),
        (np.zeros((1, 2, 2, 2, 2)), "rank 5"),
        (np.zeros((2, 3, 4, 4)), "3 channels"),
        (np.zeros((0, 4, 4)), "0 samples"),
        (np.full((1, 2, 2), np.nan), "NaN or infinity"),
        (np.full((1, 2, 2), np.inf), "NaN or infinity"),
        (np.full((1, 2, 2), 1.5), r"not \[0, 1\]"),
        (np.full((1, 2, 2), -0.1), r"not \[0, 1\]"),
        (np.array([["a", "b"]]), "must be numeric"),
        (np.array([[None, "b"]], dtype=object), "must be numeric"),
        (np.zeros((1, 4), dtype=complex), "Complex data not supported"),
        (np.zeros((3, 0)), r"0 feature\(s\)"),
        ("not an array", "got str"),
    ],
)
def test_bad_input_names_the_expected_layouts(X, message):
    with pytest.raises(ValueError, match=message) as info:
        check_images(X)
    assert "(n_samples, H, W), (n_samples, 1, H, W)" in str(info.value)


def test_sparse_input_is_refused():
    import scipy.sparse as sp

    with pytest.raises(TypeError, match="sparse matrix"):
        check_images(sp.csr_matrix(np.zeros((2, 4))))


def test_numeric_object_arrays_are_converted():
    images, _ = check_images(np.zeros((2, 4), dtype=object))
    assert images.dtype == np.float32


def test_range_check_can_be_skipped_for_raw_intensities():
    images, _ = check_images(np.full((1, 2, 2), 200.0), check_range=False)
    assert images.max() == 200.0


def test_integer_images_become_float32():
    images, _ = check_images(np.ones((1, 2, 2), dtype=np.uint8))
    assert images.dtype == np.float32


class _Dummy(BaseEstimator):
    def fit(self, X, y=None):
        return self


def test_validate_images_records_and_checks_the_fitted_size():
    est = _Dummy()
    validate_images(est, np.zeros((2, 4, 4)), reset=True)
    assert est.n_features_in_ == 16 and est.image_shape_ == (4, 4)
    validate_images(est, np.zeros((3, 16)), reset=False)
    with pytest.raises(ValueError, match="fitted on images of size 4x4"):
        validate_images(est, np.zeros((1, 5, 5)), reset=False)


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="Unknown layout"):
        restore_layout(np.zeros((1, 2, 2)), "nchw")


def _views():
    X = np.random.default_rng(0).random((4, 8, 8), dtype=np.float32)
    big = np.repeat(np.repeat(X, 2, axis=1), 2, axis=2)
    return X, {
        "reversed": (X[::-1], X[::-1]),
        "flipped": (np.flip(X, axis=(1, 2)), X[:, ::-1, ::-1]),
        "fortran": (np.asfortranarray(X), X),
        "strided": (big[:, ::2, ::2], X),
        "reversed n1hw": (X[::-1, None], X[::-1]),
        "reversed flat": (X.reshape(4, -1)[::-1], X[::-1]),
        "float64 reversed": (X.astype(np.float64)[::-1], X[::-1]),
    }


@pytest.mark.parametrize("kind", list(_views()[1]))
def test_any_numpy_view_becomes_c_contiguous_float32(kind):
    import torch

    _, views = _views()
    view, expected = views[kind]
    images, _ = check_images(view)
    assert images.flags.c_contiguous and images.dtype == np.float32
    assert all(stride > 0 for stride in images.strides)
    np.testing.assert_array_equal(images, expected)
    # what crashed before: torch refuses negative strides
    np.testing.assert_array_equal(torch.from_numpy(images).numpy(), expected)


def test_contiguous_float32_is_not_copied():
    X = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    for layout_view in (X, X[:, 0], X.reshape(3, -1)):
        images, _ = check_images(layout_view)
        assert np.shares_memory(images, X)
    est = _Dummy()
    images, _ = validate_images(est, X, reset=True)
    assert np.shares_memory(images, X)


def test_read_only_memmap_is_used_in_place(tmp_path):
    X = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    images, _ = check_images(mapped)
    assert np.shares_memory(images, mapped) and not images.flags.writeable
    reversed_images, _ = check_images(mapped[::-1])
    np.testing.assert_array_equal(reversed_images, X[::-1])
    assert reversed_images.flags.c_contiguous


def test_contract_helpers_are_public_in_skcxr_utils():
    import skcxr.utils
    from skcxr.utils import _validation, estimator_checks

    assert skcxr.utils.check_images is _validation.check_images
    assert skcxr.utils.validate_images is _validation.validate_images
    assert skcxr.utils.restore_layout is _validation.restore_layout
    assert skcxr.utils.estimator_checks is estimator_checks
    assert {"check_images", "estimator_checks"} <= set(dir(skcxr.utils))


def test_channels_last_colour_images_are_recognised():
    rgb = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    with pytest.raises(
        ValueError, match=r"channels-last images of shape \(4, 32, 32, 3\)"
    ):
        check_images(rgb)
    with pytest.raises(ValueError, match="got 3 channels"):  # channels first
        check_images(np.moveaxis(rgb, -1, 1))


@pytest.mark.parametrize(
    "y, match",
    [
        (np.array(["normal", 1], dtype=object), r"mixes label types \(int, str\)"),
        (np.array(["normal", None], dtype=object), r"1 missing label\(s\).*\[1\]"),
        (np.array([0.0, np.nan]), r"1 missing label\(s\)"),
        (np.array([0.25, 0.5, 0.75]), "continuous values.*threshold scores"),
        (np.zeros((2, 2)), r"1-D array of class labels; got shape \(2, 2\)"),
    ],
)
def test_class_labels_that_cannot_be_classes(y, match):
    from skcxr.utils._validation import check_class_labels

    with pytest.raises(ValueError, match=match):
        check_class_labels(y)


def test_booleans_are_not_counts():
    from sklearn.utils._param_validation import InvalidParameterError

    from skcxr import ImageLoader

    with pytest.raises(InvalidParameterError, match="'size' parameter .* Got True"):
        ImageLoader(size=True).fit(["a.png"])
