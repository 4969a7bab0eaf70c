"""Batched Gaussian blur and Otsu thresholds, identical to scikit-image's.

Used by :class:`skcxr.OtsuMasker`: one call handles a whole block of images,
and the results equal ``scipy.ndimage.gaussian_filter`` /
``skimage.filters.threshold_otsu`` applied image by image, bit for bit.
"""

import numpy as np
from scipy import ndimage

__all__ = ["atlas_lung_mask", "batch_histograms", "otsu_thresholds"]


def _gaussian_blur(images, sigma):
    """``gaussian_filter(images, (0, sigma, sigma), mode="nearest")``, faster.

    The same two 1-D passes (rows axis, then columns axis) with the same
    arithmetic, so the result is identical; the first pass reads and writes
    through buffers whose rows are padded by 32 pixels, which keeps the strided
    column reads of power-of-two-wide images from thrashing the CPU cache.
    """
    n, height, width = images.shape
    pad = 32 if width >= 64 else 0
    source = np.empty((n, height, width + pad), dtype=np.float32)[:, :, :width]
    source[...] = images
    middle = np.empty((n, height, width + pad), dtype=np.float32)[:, :, :width]
    ndimage.gaussian_filter1d(
        source, sigma, axis=1, mode="nearest", truncate=4.0, output=middle
    )
    return ndimage.gaussian_filter1d(
        middle, sigma, axis=2, mode="nearest", truncate=4.0, output=np.float32
    )


def batch_histograms(images, n_bins=256):
    """Per-image histograms with ``np.histogram``'s bins over each image's range.

    Parameters
    ----------
    images : ndarray of shape (n_samples, H, W), dtype float32
    n_bins : int, default=256

    Returns
    -------
    counts : ndarray of shape (n_samples, n_bins), dtype float32
        Equal to ``np.histogram(image, bins=edges[i])[0]`` for every image.
    edges : ndarray of shape (n_samples, n_bins + 1), dtype of ``images``
        ``np.linspace(min, max, n_bins + 1)`` per image (min - 0.5, max + 0.5
        for a constant image), as in ``skimage.exposure.histogram``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.preprocessing._otsu import batch_histograms
    >>> counts, edges = batch_histograms(np.array([[[0.0, 0.5], [1.0, 1.0]]],
    ...                                            dtype=np.float32), n_bins=2)
    >>> counts.tolist(), edges.tolist()
    ([[1.0, 3.0]], [[0.0, 0.5, 1.0]])
    """
    counts, edges, _, _ = _histograms(images, n_bins)
    return counts, edges


def _histograms(images, n_bins):
    n = images.shape[0]
    flat = np.ascontiguousarray(images.reshape(n, -1))  # flat indices below
    low, high = flat.min(axis=1), flat.max(axis=1)
    constant = low == high
    first = np.where(constant, low - np.float32(0.5), low)
    last = np.where(constant, high + np.float32(0.5), high)
    edges = np.linspace(first, last, n_bins + 1, axis=1, dtype=flat.dtype)

    # bin index = number of inner edges <= value (np.histogram with explicit
    # edges). Guess it from the uniform spacing in float32; only values within
    # rounding distance of an edge can be wrong, and those few are recomputed
    # against the exact float32 edges.
    scale = n_bins / (last.astype(np.float64) - first)
    # ranges so small (subnormal) that the float32 scale overflows: exact search
    tiny = ~(scale < 1e30)
    scale = np.where(tiny, 0.0, scale).astype(np.float32)
    t = flat - first[:, None]
    t *= scale[:, None]
    # the maximum lands on n_bins (or a hair off): it is near an edge, so the
    # exact search below puts it in the last bin
    index = t.astype(np.intp)
    # rounding of t and of the edges, in bins: a few float32 ulps of the values
    # over the bin width, with a safety factor
    spacing = np.spacing(np.maximum(np.abs(first), np.abs(last))).astype(np.float64)
    eps = np.where(tiny, -1.0, 8.0 * spacing * scale + 2e-4).astype(np.float32)
    distance = np.rint(t)
    distance -= t
    np.abs(distance, out=distance)
    near = np.flatnonzero(distance < eps[:, None])
    if near.size:
        rows = near // flat.shape[1]
        values = flat.reshape(-1)[near]
        exact = np.minimum(index.reshape(-1)[near], n_bins - 1)
        while True:
            down = values < edges[rows, exact]
            up = (values >= edges[rows, exact + 1]) & (exact < n_bins - 1)
            if not (down.any() or up.any()):
                break
            exact -= down
            exact += up
        index.reshape(-1)[near] = exact
    for row in np.flatnonzero(tiny):
        index[row] = np.searchsorted(edges[row, 1:-1], flat[row], side="right")
    index += (np.arange(n, dtype=np.intp) * n_bins)[:, None]
    counts = np.bincount(index.ravel(), minlength=n * n_bins).reshape(n, n_bins)
    return counts.astype(np.float32), edges, low, constant


def otsu_thresholds(images, n_bins=256):
    """Otsu threshold of every image of a batch, as ``skimage.filters.threshold_otsu``.

    Each image gets its own ``n_bins`` histogram over its own [min, max] (the
    float32 edges of ``np.linspace``, left-closed bins, the last one closed), and
    Otsu's between-class variance is maximised over the bin centres with batched
    cumulative sums, in the same float32 arithmetic as scikit-image, so the
    thresholds are identical. A constant image's threshold is its value. An image
    whose range is too small for ``n_bins`` distinct float32 edges (where
    scikit-image raises) still gets a threshold inside its range.

    Parameters
    ----------
    images : ndarray of shape (n_samples, H, W), dtype float32
    n_bins : int, default=256

    Returns
    -------
    thresholds : ndarray of shape (n_samples,), dtype float32

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.preprocessing._otsu import otsu_thresholds
    >>> images = np.array([[[0.1, 0.1], [0.9, 0.9]]], dtype=np.float32)
    >>> float(otsu_thresholds(images)[0]) < 0.5
    True
    """
    n = images.shape[0]
    counts, edges, low, constant = _histograms(images, n_bins)
    centers = (edges[:, :-1] + edges[:, 1:]) / 2.0

    weight1 = np.cumsum(counts, axis=1)
    weight2 = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    moments = counts * centers
    # 0/0 only where a range too small for n_bins distinct float32 edges leaves
    # the first or last bins empty (scikit-image raises there); skip those bins
    with np.errstate(invalid="ignore", divide="ignore"):
        mean1 = np.cumsum(moments, axis=1) / weight1
        mean2 = (np.cumsum(moments[:, ::-1], axis=1) / weight2[:, ::-1])[:, ::-1]
        variance12 = (
            weight1[:, :-1] * weight2[:, 1:] * (mean1[:, :-1] - mean2[:, 1:]) ** 2
        )
    variance12[np.isnan(variance12)] = -np.inf
    best = np.argmax(variance12, axis=1)
    thresholds = centers[np.arange(n), best]
    thresholds[constant] = low[constant]
    return thresholds


def atlas_lung_mask(images):
    """Lung-field mask of the healthy atlas (the mean image of ``images``).

    The lungs are the dark (air-filled) region inside the bright body: blur the
    mean image, keep pixels below its Otsu threshold (Otsu 1979), drop dark
    regions that touch the image border (air outside the patient) and keep the
    two largest remaining regions. Falls back to the whole image when that
    leaves less than 5 % of it.

    Parameters
    ----------
    images : ndarray of shape (n_samples, H, W)

    Returns
    -------
    mask : ndarray of shape (H, W), bool

    Examples
    --------
    >>> from skcxr.datasets import make_chest_xrays
    >>> from skcxr.preprocessing._otsu import atlas_lung_mask
    >>> X, _ = make_chest_xrays(8, classes=("normal",), size=64, random_state=0)
    >>> mask = atlas_lung_mask(X)
    >>> mask.shape, round(float(mask.mean()), 3)
    ((64, 64), 0.178)
    """
    atlas = ndimage.gaussian_filter(
        images.mean(0), sigma=max(images.shape[1] / 64, 0.5)
    ).astype(np.float32)
    dark = atlas < otsu_thresholds(atlas[None])[0]
    labels, n = ndimage.label(dark)
    border = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    sizes = ndimage.sum(dark, labels, index=np.arange(1, n + 1))
    keep = [i + 1 for i in np.argsort(sizes)[::-1] if i + 1 not in border][:2]
    mask = np.isin(labels, keep)
    if mask.mean() < 0.05:
        mask = np.ones_like(dark)
    return mask
