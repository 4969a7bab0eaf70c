"""Gaussian blur + Otsu threshold masking of a batch of chest X-rays."""

from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ..utils._parallel import resolve_n_jobs
from ..utils._param_validation import IntInterval
from ..utils._validation import restore_layout, validate_images
from ._otsu import _gaussian_blur, otsu_thresholds

__all__ = ["OtsuMasker"]

# images handled together in one block: bounds the temporaries (one int index per
# pixel) and is the unit of work of the thread pool
_BLOCK_PIXELS = 1 << 19

# 4-connectivity inside an image, no connection across images of the batch
_BATCH_CROSS = np.zeros((3, 3, 3), dtype=bool)
_BATCH_CROSS[1] = ndimage.generate_binary_structure(2, 1)


def _border_labels(labels, n_labels):
    """Boolean lookup: which labels touch the border of their image."""
    border = np.zeros(n_labels + 1, dtype=bool)
    for edge in (labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]):
        border[edge.ravel()] = True
    return border


def _regions(masks, n_regions, clear_border):
    """Drop regions touching the border and/or keep the ``n_regions`` largest."""
    labels, n_labels = ndimage.label(masks, structure=_BATCH_CROSS)
    if n_labels == 0:
        return masks
    keep = np.ones(n_labels + 1, dtype=bool)
    if clear_border:
        keep &= ~_border_labels(labels, n_labels)
    if n_regions is not None:
        sizes = np.bincount(labels.ravel(), minlength=n_labels + 1)[1:]
        sizes[~keep[1:]] = 0  # cleared regions rank last
        # labels are numbered in raster order: each image owns a contiguous range
        last = np.maximum.accumulate(labels.reshape(len(masks), -1).max(axis=1))
        owner = np.searchsorted(last, np.arange(1, n_labels + 1), side="left")
        order = np.lexsort((-sizes, owner))
        starts = np.searchsorted(owner[order], owner[order], side="left")
        rank = np.empty(n_labels, dtype=np.intp)
        rank[order] = np.arange(n_labels) - starts
        keep[1:] &= rank < n_regions
    keep[0] = False
    return keep[labels]


def _fill_holes(masks):
    """Fill background regions that do not touch the border of their image."""
    labels, n_labels = ndimage.label(~masks, structure=_BATCH_CROSS)
    if n_labels == 0:
        return masks
    border = _border_labels(labels, n_labels)
    border[0] = True  # foreground stays foreground
    return masks | ~border[labels]


class OtsuMasker(TransformerMixin, BaseEstimator):
    """Mask each chest X-ray with a Gaussian blur and its own Otsu threshold.

    Each image is blurred (:func:`scipy.ndimage.gaussian_filter`, ``mode="nearest"``,
    ``truncate=4.0``: the defaults of ``skimage.filters.gaussian``), thresholded at
    the Otsu threshold of the blurred image (identical to
    ``skimage.filters.threshold_otsu``), optionally cleaned up (largest regions,
    holes filled), and the masked-out pixels are set to ``fill_value``. The whole
    batch is processed at once (blur, histograms, cumulative sums, labelling),
    in blocks shared among ``n_jobs`` threads.

    The transformer is stateless: ``fit`` only records the image size and, for
    inspection, the thresholds of the images it was given.

    Parameters
    ----------
    sigma : float, default=1.0
        Standard deviation of the Gaussian blur in pixels; 0 disables it.
    n_bins : int, default=256
        Histogram bins for Otsu's method (256 like scikit-image).
    keep : {"below", "above"}, default="below"
        Which pixels to keep: ``"below"`` keeps ``blurred <= threshold`` (the
        darker side, the lung fields of a chest X-ray),
        ``"above"`` keeps ``blurred > threshold`` (scikit-image's foreground).
        The two masks are complements.
    clear_border : bool, default=False
        Drop the 4-connected regions of each mask that touch the image border
        (the air around the body when keeping the dark side).
    n_regions : int or None, default=None
        Keep only the ``n_regions`` largest 4-connected regions of each mask
        (for example 2 for the two lungs), after ``clear_border``.
    fill_holes : bool, default=False
        Fill holes in each mask (last step).
    fill_value : float, default=0.0
        Value in [0, 1] given to masked-out pixels.
    n_jobs : int or None, default=None
        Threads working on blocks of images; None means 1, -1 all CPUs (as
        in joblib), capped at the available CPUs and at the number of blocks.

    Attributes
    ----------
    thresholds_ : ndarray of shape (n_samples,)
        Otsu thresholds of the blurred images seen in ``fit``.
    n_features_in_ : int
        Pixels per image.
    image_shape_ : tuple of int
        ``(H, W)`` of the images seen in ``fit``.

    See Also
    --------
    skcxr.AugmentBalancer : Balance classes with augmented copies.

    Notes
    -----
    ``transform`` does not store the masks it computes (a scikit-learn
    transformer leaves its state alone outside ``fit``); :meth:`compute_masks`
    returns the masks and thresholds of any batch instead.

    Masking is not idempotent in general: once pixels are set to
    ``fill_value`` the histogram, hence the threshold, of the masked image
    changes. Applying the same masks twice changes nothing, and a two-level
    image masked without blur, with ``fill_value`` on the dropped side, stays
    as it is.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr import OtsuMasker
    >>> X = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    >>> masker = OtsuMasker(sigma=2.0, n_regions=2, fill_holes=True)
    >>> Xt = masker.fit_transform(X)
    >>> Xt.shape, Xt.dtype
    ((3, 32, 32), dtype('float32'))
    >>> masks, thresholds = masker.compute_masks(X)
    >>> masks.dtype, thresholds.shape
    (dtype('bool'), (3,))
    """

    _parameter_constraints: dict = {
        "sigma": [Interval(Real, 0, None, closed="left")],
        "n_bins": [IntInterval(2, None, closed="left")],
        "keep": [StrOptions({"below", "above"})],
        "clear_border": ["boolean"],
        "n_regions": [IntInterval(1, None, closed="left"), None],
        "fill_holes": ["boolean"],
        "fill_value": [Interval(Real, 0, 1, closed="both")],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        *,
        sigma=1.0,
        n_bins=256,
        keep="below",
        clear_border=False,
        n_regions=None,
        fill_holes=False,
        fill_value=0.0,
        n_jobs=None,
    ):
        self.sigma = sigma
        self.n_bins = n_bins
        self.keep = keep
        self.clear_border = clear_border
        self.n_regions = n_regions
        self.fill_holes = fill_holes
        self.fill_value = fill_value
        self.n_jobs = n_jobs

    def _block(self, images):
        """Masks and thresholds of one block of images."""
        if self.sigma > 0:
            blurred = _gaussian_blur(images, self.sigma)
        else:
            blurred = images
        thresholds = otsu_thresholds(blurred, self.n_bins)
        t = thresholds[:, None, None]
        masks = blurred <= t if self.keep == "below" else blurred > t
        if self.n_regions is not None or self.clear_border:
            masks = _regions(masks, self.n_regions, self.clear_border)
        if self.fill_holes:
            masks = _fill_holes(masks)
        return masks, thresholds

    def _run(self, images, *, want_masks, want_images):
        """Process ``images`` block by block (in threads when ``n_jobs`` > 1).

        Each block is blurred, thresholded and, if asked, masked while it is
        still in the CPU cache. Returns ``(masks or None, thresholds, masked
        images or None)``.
        """
        n, height, width = images.shape
        block = max(1, _BLOCK_PIXELS // (height * width))
        thresholds = np.empty(n, dtype=np.float32)
        masks = np.empty(images.shape, dtype=bool) if want_masks else None
        out = np.empty(images.shape, dtype=np.float32) if want_images else None
        fill = np.float32(self.fill_value)

        def work(start):
            stop = min(start + block, n)
            block_masks, thresholds[start:stop] = self._block(images[start:stop])
            if masks is not None:
                masks[start:stop] = block_masks
            if out is not None:
                if fill == 0:
                    np.multiply(images[start:stop], block_masks, out=out[start:stop])
                else:
                    np.copyto(out[start:stop], fill)
                    np.copyto(out[start:stop], images[start:stop], where=block_masks)

        starts = range(0, n, block)
        n_jobs = resolve_n_jobs(self.n_jobs, n_tasks=len(starts))
        if n_jobs == 1:
            for start in starts:
                work(start)
        else:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                list(pool.map(work, starts))
        return masks, thresholds, out

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Record the image size and the thresholds of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) \
                or (n_samples, H*W)
            Images in [0, 1].
        y : None
            Ignored.

        Returns
        -------
        self : OtsuMasker
        """
        images, _ = validate_images(self, X, reset=True)
        _, self.thresholds_, _ = self._run(images, want_masks=False, want_images=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit and mask ``X`` in one pass (same result as ``fit(X).transform(X)``).

        Parameters
        ----------
        X : array-like of images
        y : None
            Ignored.

        Returns
        -------
        X_masked : ndarray, float32, in the layout of ``X``
        """
        images, layout = validate_images(self, X, reset=True)
        _, self.thresholds_, out = self._run(images, want_masks=False, want_images=True)
        return restore_layout(out, layout)

    def compute_masks(self, X):
        """Boolean masks (True = kept) and Otsu thresholds of ``X``.

        Parameters
        ----------
        X : array-like of images
            Same image size as in ``fit``.

        Returns
        -------
        masks : ndarray of bool in the layout of ``X``
        thresholds : ndarray of shape (n_samples,), float32
            Otsu threshold of each blurred image.
        """
        images, layout = validate_images(self, X, reset=False)
        masks, thresholds, _ = self._run(images, want_masks=True, want_images=False)
        return restore_layout(masks, layout), thresholds

    def transform(self, X):
        """Return the masked images in the layout of ``X``.

        Parameters
        ----------
        X : array-like of images
            Same image size as in ``fit``.

        Returns
        -------
        X_masked : ndarray, float32
            ``X`` where the mask is True, ``fill_value`` elsewhere.
        """
        images, layout = validate_images(self, X, reset=False)
        _, _, out = self._run(images, want_masks=False, want_images=True)
        return restore_layout(out, layout)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.requires_fit = True
        return tags
