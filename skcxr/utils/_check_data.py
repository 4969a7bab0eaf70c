"""Data and helpers of the image estimator checks: tiny synthetic chest
X-rays, the estimator kind, fitting and comparing outputs."""

import functools
import os
import tempfile
from contextlib import contextmanager
from unittest import SkipTest

import numpy as np
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.utils import get_tags

__all__ = ["OUTPUT_METHODS"]

#: Methods whose outputs the invariance checks compare, in this order.
OUTPUT_METHODS = (
    "predict",
    "predict_proba",
    "decision_function",
    "score_samples",
    "transform",
)

_N_SAMPLES = 16
_SIZE = 32


# --------------------------------------------------------------------- data
@functools.lru_cache(maxsize=8)
def _synthetic(n_samples, n_classes, weights):
    from ..datasets import make_chest_xrays

    classes = ("normal", "bacteria", "virus")[:n_classes]
    X, y = make_chest_xrays(
        n_samples,
        classes=classes,
        weights=weights,
        size=_SIZE,
        difficulty=0.0,
        random_state=0,
    )
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


@functools.lru_cache(maxsize=1)
def _lung_masks():
    """The lung fields of the default training images (``_images()``)."""
    from ..datasets import make_chest_xrays

    *_, lungs = make_chest_xrays(
        _N_SAMPLES,
        classes=("normal", "bacteria"),
        size=_SIZE,
        difficulty=0.0,
        return_lung_masks=True,
        random_state=0,
    )
    lungs.setflags(write=False)
    return lungs


def _images(n_classes=2, weights=None, n_samples=_N_SAMPLES):
    """Fresh (writable) copies of tiny synthetic chest X-rays and their labels."""
    X, y = _synthetic(n_samples, n_classes, weights)
    return X.copy(), y.copy()


def _flat(X):
    return np.ascontiguousarray(X.reshape(len(X), -1))


class _NotAnArray:
    """An array-like that is not an ndarray (only ``__array__``)."""

    def __init__(self, data):
        self.data = np.asarray(data)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)


@contextmanager
def _image_files(X):
    """Write ``X`` as 8-bit PNG files; yields their paths (removed afterwards)."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, image in enumerate(X):
            path = os.path.join(folder, f"image_{i:03d}.png")
            Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)
            paths.append(path)
        yield np.asarray(paths)


@contextmanager
def _readonly_memmap(*arrays):
    """Read-only memmaps of ``arrays`` (numpy's ``np.load(mmap_mode="r")``).

    The maps are not closed by hand: a fitted estimator may keep a view of
    its training data. The folder goes when the maps are garbage collected
    (at once on POSIX; cleanup errors are ignored where open files cannot be
    removed).
    """
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        maps = []
        for i, array in enumerate(arrays):
            path = os.path.join(folder, f"array_{i}.npy")
            np.save(path, array)
            maps.append(np.load(path, mmap_mode="r"))
        yield maps


# ------------------------------------------------------------ estimator kind
def _takes_paths(estimator):
    tags = get_tags(estimator)
    return tags.input_tags.string and not tags.input_tags.two_d_array


def _is_sampler(estimator):
    return hasattr(estimator, "fit_resample")


def _needs_y(estimator):
    return (
        is_classifier(estimator)
        or is_regressor(estimator)
        or _is_sampler(estimator)
        or get_tags(estimator).target_tags.required
    )


def _target(estimator, labels):
    """``y`` for ``estimator`` from class labels: labels, numbers or None.

    An estimator whose ``_image_target`` is ``"masks"`` (a segmenter) gets
    the lung masks of the default training images instead.
    """
    if getattr(estimator, "_image_target", None) == "masks":
        if len(labels) != _N_SAMPLES:
            raise SkipTest("masks exist for the default training images only")
        return _lung_masks().copy()
    if is_regressor(estimator):
        return (labels == labels[0]).astype(np.float64)
    if _needs_y(estimator):
        return labels
    return None


def _output_methods(estimator):
    return [m for m in OUTPUT_METHODS if hasattr(estimator, m)]


def _is_image_estimator(fitted):
    """Whether a fitted estimator follows the image data contract."""
    return hasattr(fitted, "image_shape_")


def _prepared(estimator):
    """A clone with every unset ``random_state`` fixed, so fits are repeatable."""
    estimator = clone(estimator)
    fixed = {
        key: 0
        for key, value in estimator.get_params().items()
        if (key == "random_state" or key.endswith("__random_state")) and value is None
    }
    if fixed:
        estimator.set_params(**fixed)
    return estimator


def _fit(estimator, X, y):
    if y is None:
        return estimator.fit(X)
    return estimator.fit(X, y)


@contextmanager
def _training_data(estimator, n_classes=2, weights=None):
    """``(X, y)`` in the input form ``estimator`` takes (flat images or paths)."""
    X, labels = _images(n_classes, weights)
    y = _target(estimator, labels)
    if _takes_paths(estimator):
        with _image_files(X) as paths:
            yield paths, y
    else:
        yield _flat(X), y


def _outputs(estimator, X, y=None):
    """Outputs of every inference method (or of ``fit_resample`` for a sampler)."""
    if _is_sampler(estimator) and not _output_methods(estimator):
        X_res, y_res = estimator.fit_resample(X, y)
        return {"fit_resample X": np.asarray(X_res), "fit_resample y": y_res}
    return {m: np.asarray(getattr(estimator, m)(X)) for m in _output_methods(estimator)}


def _assert_close(actual, desired, what, *, tol=1e-4):
    """Equal arrays, or numbers equal within ``tol`` of the output scale.

    The default suits float32 networks whose kernels change with the batch;
    comparisons across input dtypes (float32 against float64 computations)
    use ``tol=1e-3``.
    """
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert (
        actual.shape == desired.shape
    ), f"{what}: shape {actual.shape} differs from {desired.shape}"
    if np.issubdtype(desired.dtype, np.number) and desired.dtype != bool:
        scale = float(np.max(np.abs(desired))) if desired.size else 1.0
        np.testing.assert_allclose(
            actual,
            desired,
            rtol=tol,
            atol=tol * max(1.0, scale),
            err_msg=what,
        )
    else:
        np.testing.assert_array_equal(actual, desired, err_msg=what)


def _assert_same_outputs(actual, desired, what, *, tol=1e-4):
    assert set(actual) == set(desired), f"{what}: methods {set(actual)} != {desired}"
    for method in desired:
        _assert_close(actual[method], desired[method], f"{what}: {method}", tol=tol)


def _layouts(X_nhw):
    return {
        "nhw": X_nhw,
        "n1hw": X_nhw[:, None],
        "flat": X_nhw.reshape(len(X_nhw), -1),
    }


def _as_nhw(array, n_samples):
    array = np.asarray(array)
    return array.reshape(n_samples, _SIZE, _SIZE)


def _require_inference(name, estimator):
    if not _output_methods(estimator):
        raise SkipTest(f"{name} has no inference method")
