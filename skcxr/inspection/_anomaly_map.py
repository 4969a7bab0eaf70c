"""Anomaly maps of a detector fitted on healthy images, overlaid on the X-rays."""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..utils._validation import check_images
from . import HeatmapDisplay

__all__ = ["AnomalyMapDisplay"]


class AnomalyMapDisplay:
    """Per-pixel anomaly maps over the X-rays, their maxima and lesion outlines.

    Each image is drawn in grey with its anomaly map on top (one colour
    range for all images, so the maps compare); a cross marks the map's
    maximum (the point the pointing game scores); an optional dashed
    contour shows where the map exceeds ``threshold`` and an optional white
    contour the true lesion ``masks``.

    Parameters
    ----------
    images : ndarray of shape (n_samples, H, W)
    maps : ndarray of shape (n_samples, H, W)
        Higher = more anomalous, e.g.
        :meth:`~skcxr.ReconstructionAnomalyDetector.anomaly_map`.
    titles : list of str, default=None
    threshold : float, default=None
        Level of the dashed contour (for the patch methods the per-image
        anomaly is the map's maximum, so the detector's ``threshold_`` outlines
        the region that makes an image an outlier).
    masks : ndarray of bool, shape (n_samples, H, W), default=None
        True lesions, outlined in white.

    Attributes
    ----------
    image_artists_, map_artists_ : list of matplotlib.image.AxesImage
    peak_artists_ : list of matplotlib.lines.Line2D
        The crosses at the maps' maxima.
    colorbar_ : matplotlib Colorbar or None
    ax_ : ndarray of matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import AnomalyMapDisplay
    >>> X = np.zeros((2, 8, 8)); maps = np.zeros((2, 8, 8)); maps[:, 2, 5] = 1
    >>> display = AnomalyMapDisplay(X, maps, threshold=0.5).plot()
    >>> peak = display.peak_artists_[0]
    >>> int(peak.get_xdata()[0]), int(peak.get_ydata()[0])  # column, row
    (5, 2)
    """

    def __init__(self, images, maps, *, titles=None, threshold=None, masks=None):
        self.images = images
        self.maps = maps
        self.titles = titles
        self.threshold = threshold
        self.masks = masks

    def plot(
        self,
        ax=None,
        *,
        cmap="jet",
        alpha=0.45,
        vmin=None,
        vmax=None,
        ncols=4,
        colorbar=False,
    ):
        """Draw the images, their anomaly maps, maxima and contours.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes, default=None
        cmap : str or Colormap, default="jet"
        alpha : float, default=0.45
            Opacity of the maps.
        vmin, vmax : float, default=None
            Colour range; by default the 1st percentile and the maximum of all
            maps (and ``threshold``).
        ncols : int, default=4
        colorbar : bool, default=False

        Returns
        -------
        self
        """
        images, _ = check_images(self.images, name="images")
        maps = np.asarray(self.maps, dtype=float)
        if maps.shape != images.shape:
            raise ValueError(
                f"maps has shape {maps.shape}; expected {images.shape}, one map per "
                "image at its resolution."
            )
        masks = None
        if self.masks is not None:
            masks = np.asarray(self.masks, dtype=bool)
            if masks.shape != images.shape:
                raise ValueError(
                    f"masks has shape {masks.shape}; expected {images.shape}."
                )
        top = float(maps.max())
        if self.threshold is not None:
            top = max(top, float(self.threshold))
        vmin = float(np.percentile(maps, 1)) if vmin is None else vmin
        vmax = max(top, vmin + 1e-12) if vmax is None else vmax
        heat = HeatmapDisplay(images, maps, titles=self.titles).plot(
            ax=ax,
            cmap=cmap,
            alpha=alpha,
            vmin=vmin,
            vmax=vmax,
            ncols=ncols,
            colorbar=colorbar,
        )
        fig, axes = heat.figure_, np.atleast_1d(heat.ax_)
        self.map_artists_ = heat.heatmap_artists_
        self.image_artists_ = heat.image_artists_
        self.colorbar_ = heat.colorbar_
        self.peak_artists_ = []
        for i, axis in enumerate(axes):
            row, col = np.unravel_index(np.argmax(maps[i]), maps[i].shape)
            (peak,) = axis.plot(
                col, row, marker="x", color="white", markersize=8, mew=2
            )
            self.peak_artists_.append(peak)
            if self.threshold is not None and maps[i].max() > self.threshold:
                axis.contour(
                    maps[i],
                    levels=[float(self.threshold)],
                    colors="black",
                    linestyles="dashed",
                    linewidths=1,
                )
            if masks is not None and masks[i].any():
                axis.contour(masks[i], levels=[0.5], colors="white", linewidths=1)
        self.figure_, self.ax_ = fig, axes
        return self

    @classmethod
    def from_estimator(
        cls, detector, X, y=None, *, masks=None, titles=None, ax=None, **kwargs
    ):
        """Compute ``detector.anomaly_map(X)`` and draw it.

        Parameters
        ----------
        detector : fitted :class:`~skcxr.ReconstructionAnomalyDetector`
            Or any object with ``anomaly_map`` and ``predict``.
        X : array-like of images
        y : array-like of shape (n_samples,), default=None
            True labels, shown in the titles.
        masks : ndarray of bool, shape (n_samples, H, W), default=None
            True lesions to outline.
        titles : list of str, default=None
            By default the prediction (``"outlier"`` / ``"inlier"``) and, when
            given, the true label.
        ax : Axes or array of Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        AnomalyMapDisplay
        """
        if isinstance(detector, BaseEstimator):
            check_is_fitted(detector)
        maps = detector.anomaly_map(X)
        images, _ = check_images(X, name="X")
        if titles is None:
            pred = detector.predict(X)
            titles = ["outlier" if p == -1 else "inlier" for p in pred]
            if y is not None:
                titles = [f"{t} ({label})" for t, label in zip(titles, np.asarray(y))]
        threshold = None
        if getattr(detector, "method", None) in ("padim", "patchcore"):
            threshold = getattr(detector, "threshold_", None)
        return cls(images, maps, titles=titles, threshold=threshold, masks=masks).plot(
            ax=ax, **kwargs
        )
