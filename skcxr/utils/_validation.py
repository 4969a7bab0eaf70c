"""The image data contract shared by every image estimator.

See the data contract page of the user guide.

Images travel as float32 arrays in [0, 1], grayscale, in one of three layouts:

* ``"nhw"``:  ``(n_samples, H, W)``
* ``"n1hw"``: ``(n_samples, 1, H, W)``
* ``"flat"``: ``(n_samples, H*W)`` of a square image (H = W = sqrt(n_features))

:func:`check_images` turns any of them into ``(n_samples, H, W)`` and says which
layout it was given; :func:`restore_layout` turns a result back, so an
image-to-image transformer returns the layout it received.
"""

import math

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

__all__ = ["check_class_labels", "check_images", "restore_layout", "validate_images"]

LAYOUTS_HELP = (
    "(n_samples, H, W), (n_samples, 1, H, W) or a flat (n_samples, H*W) array of a "
    "square image, float values in [0, 1]"
)


def _fail(message, name):
    return ValueError(f"{name}: {message}. Expected images as {LAYOUTS_HELP}.")


def check_images(X, *, name="X", check_range=True):
    """Validate images and bring them to ``(n_samples, H, W)`` float32.

    Parameters
    ----------
    X : array-like
        Images in one of the layouts of the data contract.
    name : str, default="X"
        Name used in error messages.
    check_range : bool, default=True
        Reject values outside [0, 1].

    Returns
    -------
    images : ndarray of shape (n_samples, H, W), dtype float32, C-contiguous
        A view of ``X`` when ``X`` is already C-contiguous float32 (no copy);
        otherwise a C-contiguous float32 copy. Any array numpy can make is
        accepted: reversed views (negative strides), Fortran-ordered arrays,
        strided slices, read-only arrays and memmaps (a read-only input gives
        a read-only view).
    layout : {"nhw", "n1hw", "flat"}
        The layout ``X`` came in, for :func:`restore_layout`.

    Raises
    ------
    TypeError
        For a sparse matrix.
    ValueError
        For a wrong rank, a non-square flat array, an empty array, non-numeric,
        complex, NaN or infinite values, or values outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.utils._validation import check_images
    >>> images, layout = check_images(np.zeros((2, 16)))
    >>> images.shape, layout
    ((2, 4, 4), 'flat')
    """
    if sp.issparse(X):
        # TypeError, as sklearn's check_array raises for sparse input it refuses
        raise TypeError(str(_fail("got a sparse matrix; images must be dense", name)))
    if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
        try:
            X = np.asarray(X)
        except ValueError as exc:  # ragged nested lists
            raise _fail(f"could not be made into an array ({exc})", name) from None
    else:
        raise _fail(f"got {type(X).__name__}", name)
    if X.dtype == object:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError):
            raise _fail("got dtype object; images must be numeric", name) from None
    if np.issubdtype(X.dtype, np.complexfloating):
        raise _fail("Complex data not supported", name)
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise _fail(f"got dtype {X.dtype}; images must be numeric", name)
    if X.ndim == 2 and X.shape[1] == 0:
        # sklearn's wording, which its common checks look for
        raise _fail(
            f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.", name
        )
    if X.size and not np.isfinite(X).all():
        raise _fail("contains NaN or infinity", name)

    if X.ndim == 2:
        side = math.isqrt(X.shape[1])
        if side * side != X.shape[1] or side == 0:
            raise _fail(
                f"a flat array has {X.shape[1]} features, which is not the size of a "
                "square image",
                name,
            )
        images, layout = X.reshape(X.shape[0], side, side), "flat"
    elif X.ndim == 3:
        images, layout = X, "nhw"
    elif X.ndim == 4 and X.shape[1] == 1:
        images, layout = X[:, 0], "n1hw"
    elif X.ndim == 4 and X.shape[-1] in (1, 3, 4) and X.shape[1] > 4:
        raise _fail(
            f"got channels-last images of shape {X.shape} ({X.shape[-1]} channels "
            "in the last axis); images must be grayscale: convert colour images to "
            "gray first (e.g. rgb @ [0.299, 0.587, 0.114], ITU-R 601) and drop the "
            "channel axis",
            name,
        )
    elif X.ndim == 4:
        raise _fail(f"got {X.shape[1]} channels; images must be grayscale", name)
    else:
        raise _fail(f"got an array of rank {X.ndim} and shape {X.shape}", name)

    if images.shape[0] == 0:
        raise _fail("got 0 samples", name)
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise _fail(f"got images of size {images.shape[1:]}", name)

    # C-contiguous with positive strides, so torch.from_numpy and other
    # buffer consumers accept it; no copy when X already is such an array
    images = np.ascontiguousarray(images, dtype=np.float32)
    if check_range:
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise _fail(f"values range over [{low:.4g}, {high:.4g}], not [0, 1]", name)
    return images, layout


def restore_layout(images, layout):
    """Return ``(n_samples, H, W)`` images in the layout named by ``layout``.

    Parameters
    ----------
    images : ndarray of shape (n_samples, H, W)
    layout : {"nhw", "n1hw", "flat"}

    Returns
    -------
    ndarray
        ``images`` reshaped (a view) to the layout.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.utils._validation import restore_layout
    >>> restore_layout(np.zeros((2, 4, 4)), "n1hw").shape
    (2, 1, 4, 4)
    """
    n = images.shape[0]
    if layout == "nhw":
        return images
    if layout == "n1hw":
        return images[:, None]
    if layout == "flat":
        return images.reshape(n, -1)
    raise ValueError(f"Unknown layout {layout!r}; expected 'nhw', 'n1hw' or 'flat'.")


def validate_images(estimator, X, *, reset, check_range=True):
    """:func:`check_images` plus sklearn's fitted-shape bookkeeping.

    With ``reset=True`` (in ``fit``) sets ``n_features_in_`` (pixels per image)
    and ``image_shape_`` ``(H, W)``; with ``reset=False`` checks that the images
    have the fitted size.

    Parameters
    ----------
    estimator : BaseEstimator
    X : array-like
    reset : bool
    check_range : bool, default=True

    Returns
    -------
    images : ndarray of shape (n_samples, H, W), dtype float32, C-contiguous
        As returned by :func:`check_images`.
    layout : {"nhw", "n1hw", "flat"}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator
    >>> from skcxr.utils import validate_images
    >>> est = BaseEstimator()
    >>> images, layout = validate_images(est, np.zeros((3, 1, 8, 8)), reset=True)
    >>> est.n_features_in_, est.image_shape_, layout
    (64, (8, 8), 'n1hw')
    """
    images, layout = check_images(X, check_range=check_range)
    shape = tuple(images.shape[1:])
    if reset:
        estimator.n_features_in_ = shape[0] * shape[1]
        estimator.image_shape_ = shape
    else:
        check_is_fitted(estimator)
        if shape != tuple(estimator.image_shape_):
            raise ValueError(
                f"X has images of size {shape[0]}x{shape[1]} ({shape[0] * shape[1]} "
                f"features), but {type(estimator).__name__} was fitted on images of "
                f"size {estimator.image_shape_[0]}x{estimator.image_shape_[1]} "
                f"({estimator.n_features_in_} features)."
            )
    return images, layout


def check_class_labels(y, *, name="y"):
    """Class labels of one type, none missing, or a ``ValueError`` saying why.

    The checks scikit-learn's own would fail on obscurely: a missing label
    (None or NaN), labels of mixed types (numbers and strings: they cannot be
    sorted), and continuous values where classes are expected. A 1-D array of
    the labels is returned.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    name : str, default="y"
        How the message names the labels.

    Returns
    -------
    y : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.utils._validation import check_class_labels
    >>> check_class_labels(["normal", "virus"]).tolist()
    ['normal', 'virus']
    >>> check_class_labels(np.array(["normal", 1], dtype=object))
    Traceback (most recent call last):
    ...
    ValueError: y mixes label types (int, str): use one type for every label, \
e.g. all strings.
    """
    from sklearn.utils.multiclass import type_of_target

    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of class labels; got shape {y.shape}."
        )
    if y.dtype.kind in "Of":
        missing = np.fromiter(
            (v is None or (isinstance(v, float) and math.isnan(v)) for v in y),
            bool,
            len(y),
        )
        if missing.any():
            rows = np.flatnonzero(missing)
            raise ValueError(
                f"{name} has {len(rows)} missing label(s) (None or NaN), e.g. at "
                f"index {rows[:5].tolist()}; every image needs a label: drop the "
                "unlabelled images (or give them a class of their own)."
            )
    if y.dtype.kind == "O":
        kinds = sorted(
            {"str" if isinstance(v, str) else type(v).__name__ for v in y.tolist()}
        )
        numeric = {"int", "float", "bool"}
        if len(kinds) > 1 and not set(kinds) <= numeric:
            raise ValueError(
                f"{name} mixes label types ({', '.join(kinds)}): use one type for "
                "every label, e.g. all strings."
            )
    if len(y) and type_of_target(y, input_name=name) == "continuous":
        raise ValueError(
            f"{name} holds continuous values such as {y[:3].tolist()}; class labels "
            "are expected (e.g. 0/1 or 'normal'/'pneumonia'): threshold scores or "
            "probabilities into classes first."
        )
    return y
