"""Histogram equalisation of a batch of chest X-rays: CLAHE and global.

Written with numpy alone (scikit-image is not needed at run time): the
contextual-region histograms of a whole block of images come from one
``np.bincount``, their clipping and mappings are computed for all regions
at once, and the bilinear interpolation between region mappings is one
gather per neighbour. The results follow ``skimage.exposure``'s
``equalize_adapthist`` and ``equalize_hist`` image by image.
"""

import math
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ..utils._parallel import resolve_n_jobs
from ..utils._param_validation import IntInterval
from ..utils._validation import restore_layout, validate_images
from ._otsu import batch_histograms

__all__ = ["HistogramEqualizer"]

_GRAY_LEVELS = 2**14  # gray levels of the CLAHE computation (as scikit-image)
_BLOCK_PIXELS = 1 << 20  # pixels of the images handled together by one thread


def _kernel(kernel_size, shape):
    if kernel_size is None:
        return tuple(max(s // 8, 1) for s in shape)
    if isinstance(kernel_size, Integral):
        return (int(kernel_size),) * 2
    kernel = tuple(int(k) for k in kernel_size)
    if len(kernel) != 2 or min(kernel) < 1:
        raise ValueError(
            f"kernel_size must be a positive int or a pair of them (rows, columns); "
            f"got {kernel_size!r}."
        )
    return kernel


def _bins(images, nbins):
    """Gray-level bins of every pixel (scikit-image's CLAHE quantisation).

    Each image is read as 16-bit integers (``img_as_uint``), stretched to
    2**14 gray levels over its own range, and the levels are grouped in bins
    of ``1 + 2**14 // nbins``. Also returns which images are not constant.
    """
    levels = np.rint(images * np.float32(65535))
    low = levels.min(axis=(1, 2), keepdims=True)
    high = levels.max(axis=(1, 2), keepdims=True)
    scale = (_GRAY_LEVELS - 1) / np.where(high > low, high - low, 1)
    levels -= low
    levels *= scale
    np.round(levels, out=levels)
    # level // bin_size, exactly: integer levels are at least 1 / bin_size
    # away from the next bin edge, far above float32 rounding
    levels += np.float32(0.5)
    levels /= np.float32(1 + _GRAY_LEVELS // nbins)
    return np.floor(levels).astype(np.int32), (high > low)[:, 0, 0]


def _clip(hist, limit):
    """Clip every histogram (last axis) at ``limit`` and redistribute the excess.

    Zuiderveld's redistribution, as scikit-image's ``clip_histogram``, for
    all histograms at once: the excess is first given evenly to every bin
    (bins that would pass the limit are set to it), then what remains is
    added one count at a time to the bins still under the limit, in strides
    of ``bins under the limit // remaining excess`` starting at bin 0, then
    1, ... until none remains.
    """
    nbins = hist.shape[-1]
    hist = hist.reshape(-1, nbins).astype(np.int64)
    excess = np.maximum(hist - limit, 0).sum(axis=1)
    np.minimum(hist, limit, out=hist)
    increment = excess // nbins
    upper = (limit - increment)[:, None]
    low = hist < upper
    excess -= low.sum(axis=1) * increment
    hist += low * increment[:, None]
    mid = (hist >= upper) & (hist < limit)
    excess -= np.where(mid, limit - hist, 0).sum(axis=1)
    hist[mid] = limit

    bins = np.arange(nbins)
    rows = np.flatnonzero(excess > 0)
    while rows.size:
        at_start = excess.copy()
        for index in range(nbins):
            sub = hist[rows]
            under = sub < limit
            step = np.maximum(1, under.sum(axis=1) // excess[rows])
            add = under & (bins >= index) & ((bins - index) % step[:, None] == 0)
            hist[rows] = sub + add
            excess[rows] -= add.sum(axis=1)
            rows = rows[excess[rows] > 0]
            if rows.size == 0:
                break
        # histograms still in excess go round again if this pass placed any
        rows = rows[excess[rows] != at_start[rows]]
    return hist


def _clahe(images, kernel_size, clip_limit, nbins):
    """CLAHE of a block of ``(n, H, W)`` images in [0, 1] (Zuiderveld 1994)."""
    n, height, width = images.shape
    k0, k1 = _kernel(kernel_size, (height, width))
    bins, varying = _bins(images, nbins)
    top, left = k0 // 2, k1 // 2
    pad = [
        (0, 0),
        (top, (k0 - height % k0) % k0 + math.ceil(k0 / 2)),
        (left, (k1 - width % k1) % k1 + math.ceil(k1 / 2)),
    ]
    bins = np.pad(bins, pad, mode="reflect")
    _, ph, pw = bins.shape
    nh, nw = ph // k0 - 1, pw // k1 - 1  # contextual regions

    # one histogram per contextual region of every image, from one bincount
    inner = bins[:, top : top + nh * k0, left : left + nw * k1]
    plane = (
        np.repeat(np.arange(nh, dtype=np.int64) * nw, k0)[:, None]
        + np.repeat(np.arange(nw, dtype=np.int64), k1)[None, :]
    ) * nbins
    offsets = np.arange(n, dtype=np.int64)[:, None, None] * (nh * nw * nbins)
    index = inner + plane
    index += offsets
    hist = np.bincount(index.ravel(), minlength=n * nh * nw * nbins)
    del index
    hist = hist.reshape(n, nh, nw, nbins)

    elements = k0 * k1
    if clip_limit > 0:
        limit = max(int(clip_limit * elements), 1)
        hist = _clip(hist, limit).reshape(n, nh, nw, nbins)
    maps = np.cumsum(hist, axis=-1, dtype=np.float64)
    maps *= (_GRAY_LEVELS - 1) / elements
    np.minimum(maps, _GRAY_LEVELS - 1, out=maps)
    maps = np.floor(maps).astype(np.float32)
    maps = np.pad(maps, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge").ravel()

    # bilinear interpolation between the mappings of the four regions around
    # each pixel, for the pixels of the image only (not its padding)
    rows = np.arange(top, top + height)
    cols = np.arange(left, left + width)
    wr = ((rows % k0) / k0).astype(np.float32)[:, None]
    wc = ((cols % k1) / k1).astype(np.float32)[None, :]
    stride_r = (nw + 2) * nbins
    plane = (rows // k0)[:, None] * stride_r + (cols // k1)[None, :] * nbins
    offsets = np.arange(n, dtype=np.int64)[:, None, None] * ((nh + 2) * stride_r)
    index = bins[:, top : top + height, left : left + width] + plane
    index += offsets
    result = np.zeros((n, height, width), dtype=np.float32)
    term = np.empty_like(result)
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        weight = (wr if dr else 1 - wr) * (wc if dc else 1 - wc)
        np.take(maps[dr * stride_r + dc * nbins :], index, out=term)
        term *= weight
        result += term
    np.floor(result, out=result)  # scikit-image keeps integer levels
    low = result.min(axis=(1, 2), keepdims=True)
    high = result.max(axis=(1, 2), keepdims=True)
    result -= low
    result /= np.where(high > low, high - low, 1)
    result[~varying] = images[~varying]  # a constant image stays as it is
    return result


def _global(images, nbins):
    """Global histogram equalisation of a block (``equalize_hist``)."""
    counts, edges = batch_histograms(images, nbins)
    cdf = np.cumsum(counts, axis=1, dtype=np.float64)
    cdf /= cdf[:, -1:]
    centers = (edges[:, :-1] + edges[:, 1:]) / 2
    out = np.empty_like(images)
    for i in range(images.shape[0]):
        out[i] = np.interp(images[i], centers[i], cdf[i])
    return out


class HistogramEqualizer(TransformerMixin, BaseEstimator):
    """Equalise the contrast of chest X-rays: CLAHE or the global histogram.

    ``method="clahe"``: contrast-limited adaptive histogram equalisation
    (Zuiderveld 1994): each image is divided into contextual regions of
    ``kernel_size`` pixels, each region's histogram is clipped at
    ``clip_limit`` and equalised, and every pixel is mapped by bilinear
    interpolation between the mappings of the four regions around it. The
    result follows ``skimage.exposure.equalize_adapthist`` (mean absolute
    difference below 0.01 per image; the excess of a clipped histogram is
    spread evenly instead of count by count). ``method="global"``: one
    histogram per image, as ``skimage.exposure.equalize_hist``.

    The transformer is stateless: ``fit`` only records the image size.
    Images are processed a block at a time, blocks shared among ``n_jobs``
    threads; scikit-image is not needed.

    Parameters
    ----------
    method : {"clahe", "global"}, default="clahe"
        Adaptive (contrast-limited) or global equalisation.
    clip_limit : float in [0, 1], default=0.01
        Used when ``method="clahe"``: the highest bin count of a region's
        histogram, as a fraction of the region's pixels (higher: more
        contrast; 0: no limit, plain adaptive equalisation).
    kernel_size : int, pair of int or None, default=None
        Used when ``method="clahe"``: the shape of the contextual regions
        (rows, columns); None: 1/8 of the image height and width.
    nbins : int, default=256
        Gray-level bins of the histograms.
    n_jobs : int or None, default=None
        Threads working on blocks of images; None means 1, -1 all CPUs.

    Attributes
    ----------
    n_features_in_ : int
        Pixels per image.
    image_shape_ : tuple of int
        ``(H, W)`` of the images seen in ``fit``.

    See Also
    --------
    skcxr.OtsuMasker : Mask the lung fields.

    Notes
    -----
    Zuiderveld (1994), "Contrast Limited Adaptive Histogram Equalization",
    Graphics Gems IV, 474-485. Each image is stretched to its own range, so
    the output of every (non-constant) image spans [0, 1]; a constant image
    is returned as it is.

    Examples
    --------
    >>> from skcxr import HistogramEqualizer
    >>> from skcxr.datasets import make_chest_xrays
    >>> X, _ = make_chest_xrays(4, size=64, random_state=0)
    >>> Xt = HistogramEqualizer(clip_limit=0.02).fit_transform(X)
    >>> Xt.shape, Xt.dtype, float(Xt.min()), float(Xt.max())
    ((4, 64, 64), dtype('float32'), 0.0, 1.0)
    >>> HistogramEqualizer(method="global").fit_transform(X).shape
    (4, 64, 64)
    """

    _parameter_constraints = {
        "method": [StrOptions({"clahe", "global"})],
        "clip_limit": [Interval(Real, 0, 1, closed="both")],
        "kernel_size": [IntInterval(1, None, closed="left"), tuple, list, None],
        "nbins": [IntInterval(2, None, closed="left")],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        *,
        method="clahe",
        clip_limit=0.01,
        kernel_size=None,
        nbins=256,
        n_jobs=None,
    ):
        self.method = method
        self.clip_limit = clip_limit
        self.kernel_size = kernel_size
        self.nbins = nbins
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Record the image size.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) \
                or (n_samples, H*W)
            Images in [0, 1].
        y : None
            Ignored.

        Returns
        -------
        self : HistogramEqualizer
        """
        images, _ = validate_images(self, X, reset=True)
        _kernel(self.kernel_size, images.shape[1:])
        return self

    def _equalize(self, images):
        if self.method == "global":
            return _global(images, self.nbins)
        return _clahe(images, self.kernel_size, self.clip_limit, self.nbins)

    def transform(self, X):
        """Equalised images, in the layout of ``X``.

        Parameters
        ----------
        X : array-like of images
            Same image size as in ``fit``.

        Returns
        -------
        X_equalized : ndarray, float32, in [0, 1]
        """
        images, layout = validate_images(self, X, reset=False)
        n, height, width = images.shape
        block = max(1, _BLOCK_PIXELS // (height * width))
        starts = range(0, n, block)
        n_jobs = resolve_n_jobs(self.n_jobs, n_tasks=len(starts))
        out = np.empty(images.shape, dtype=np.float32)

        def work(start):
            out[start : start + block] = self._equalize(images[start : start + block])

        if n_jobs == 1:
            for start in starts:
                work(start)
        else:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                list(pool.map(work, starts))
        return restore_layout(out, layout)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.requires_fit = True
        return tags
