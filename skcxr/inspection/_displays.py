"""Plot helpers in scikit-learn's ``*Display`` style.

Each display stores what it draws, is built by ``from_estimator`` /
``from_predictions`` (or ``from_heatmaps``, ``from_history``,
``from_images``), and draws with ``plot(ax=None, ...)``, which returns the
display with ``figure_`` and ``ax_`` set. Images are always drawn as 2-D
arrays with a grey colour map (``vmin=0, vmax=1``), never converted to RGB,
so there is no channel-order mix-up; heatmaps go on top through a colour map
with an alpha.
"""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ..utils._validation import check_images

__all__ = [
    "HeatmapDisplay",
    "EmbeddingDisplay",
    "ReconstructionErrorDisplay",
    "TrainingCurveDisplay",
    "ImageGridDisplay",
]


def _grid(n, ncols, ax):
    """``(figure, n axes)`` from ``ax`` (Axes or array of Axes) or a new figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        ncols = max(1, min(ncols, n))
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(2.2 * ncols, 2.2 * nrows), squeeze=False
        )
        axes = axes.ravel()
        for extra in axes[n:]:
            extra.set_axis_off()
        return fig, axes[:n]
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if len(axes) < n:
        raise ValueError(f"ax: got {len(axes)} Axes for {n} images.")
    return axes[0].figure, axes[:n]


def _check_fitted(estimator):
    """sklearn's fitted check for sklearn estimators; duck-typed objects pass."""
    if isinstance(estimator, BaseEstimator):
        check_is_fitted(estimator)


def _single_ax(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax.figure, ax


def _titles(titles, n):
    if titles is None:
        return [None] * n
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"titles: got {len(titles)} titles for {n} images.")
    return titles


def _show_images(images, titles, ax, ncols):
    fig, axes = _grid(len(images), ncols, ax)
    artists = []
    for axis, image, title in zip(axes, images, _titles(titles, len(images))):
        artists.append(
            axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        )
        axis.set_axis_off()
        if title is not None:
            axis.set_title(str(title), fontsize=8)
    return fig, axes, artists


class ImageGridDisplay:
    """A grid of grayscale images with optional titles (misclassified examples,
    augmentations, ...).

    Parameters
    ----------
    images : ndarray of shape (n_samples, H, W)
    titles : list of str, default=None

    Attributes
    ----------
    image_artists_ : list of matplotlib.image.AxesImage
    ax_ : ndarray of matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import ImageGridDisplay
    >>> images = np.zeros((3, 8, 8))
    >>> display = ImageGridDisplay.from_images(images, titles=["a", "b", "c"])
    >>> len(display.image_artists_)
    3
    """

    def __init__(self, images, *, titles=None):
        self.images = images
        self.titles = titles

    def plot(self, ax=None, *, ncols=8):
        """Draw the grid on ``ax`` (an array of at least n Axes) or a new figure."""
        images, _ = check_images(self.images, name="images")
        self.figure_, self.ax_, self.image_artists_ = _show_images(
            images, self.titles, ax, ncols
        )
        return self

    @classmethod
    def from_images(cls, images, titles=None, *, ncols=8, ax=None):
        """Build and draw the grid of ``images`` (any layout of the data contract)."""
        return cls(images, titles=titles).plot(ax=ax, ncols=ncols)


class HeatmapDisplay:
    """Heatmaps overlaid on the X-rays they explain.

    Parameters
    ----------
    images : ndarray of shape (n_samples, H, W)
    heatmaps : ndarray of shape (n_samples, H, W)
    titles : list of str, default=None

    Attributes
    ----------
    image_artists_, heatmap_artists_ : list of matplotlib.image.AxesImage
        The grey base images and the colour-mapped overlays.
    colorbar_ : matplotlib Colorbar or None
    ax_ : ndarray of matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import HeatmapDisplay
    >>> X = np.zeros((2, 8, 8)); maps = np.random.default_rng(0).random((2, 8, 8))
    >>> display = HeatmapDisplay.from_heatmaps(X, maps, titles=["one", "two"])
    >>> display.heatmap_artists_[0].get_alpha()
    0.45
    """

    def __init__(self, images, heatmaps, *, titles=None):
        self.images = images
        self.heatmaps = heatmaps
        self.titles = titles

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
        """Draw each image in grey with its heatmap on top.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes, default=None
        cmap : str or Colormap, default="jet"
        alpha : float, default=0.45
            Opacity of the heatmap.
        vmin, vmax : float, default=None
            Colour range; by default ``min(0, heatmaps.min())`` to ``heatmaps.max()``.
        ncols : int, default=4
        colorbar : bool, default=False

        Returns
        -------
        self
        """
        images, _ = check_images(self.images, name="images")
        maps = np.asarray(self.heatmaps, dtype=float).reshape(images.shape)
        vmin = min(0.0, float(maps.min())) if vmin is None else vmin
        vmax = max(float(maps.max()), vmin + 1e-12) if vmax is None else vmax
        fig, axes, base = _show_images(images, self.titles, ax, ncols)
        self.heatmap_artists_ = [
            axis.imshow(
                m,
                cmap=cmap,
                alpha=alpha,
                vmin=vmin,
                vmax=vmax,
                interpolation="bilinear",
            )
            for axis, m in zip(axes, maps)
        ]
        self.colorbar_ = (
            fig.colorbar(self.heatmap_artists_[-1], ax=list(axes), shrink=0.8)
            if colorbar
            else None
        )
        self.figure_, self.ax_, self.image_artists_ = fig, axes, base
        return self

    @classmethod
    def from_heatmaps(cls, X, heatmaps, titles=None, *, ax=None, **kwargs):
        """Draw precomputed ``heatmaps`` over ``X``; ``kwargs`` go to :meth:`plot`."""
        return cls(X, heatmaps, titles=titles).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        *,
        method="grad_cam",
        target=None,
        titles=None,
        ax=None,
        method_kwargs=None,
        **kwargs,
    ):
        """Explain ``estimator`` on ``X`` and draw the heatmaps.

        Parameters
        ----------
        estimator : fitted classifier
            Torch-backed for ``"grad_cam"``; anything with ``predict_proba``
            for ``"occlusion"``.
        X : array-like
        method : {"grad_cam", "occlusion"}, default="grad_cam"
        target : see :func:`~skcxr.inspection.grad_cam`
        titles : list of str, default=None
            By default ``"pred: <label>"`` (and the target when one is given).
        ax : Axes or array of Axes, default=None
        method_kwargs : dict, default=None
            Passed to :func:`grad_cam` or :func:`occlusion_sensitivity`.
        **kwargs
            Passed to :meth:`plot`.
        """
        from ._gradcam import grad_cam
        from ._occlusion import occlusion_sensitivity

        methods = {"grad_cam": grad_cam, "occlusion": occlusion_sensitivity}
        if method not in methods:
            raise ValueError(
                f"method must be one of {sorted(methods)}; got {method!r}."
            )
        heatmaps = methods[method](estimator, X, target=target, **(method_kwargs or {}))
        if titles is None:
            titles = [f"pred: {p}" for p in estimator.predict(X)]
            if target is not None:
                shown = np.broadcast_to(
                    np.asarray(target, dtype=object), (len(titles),)
                )
                titles = [f"{t}\nmap: {s}" for t, s in zip(titles, shown)]
        return cls(X, heatmaps, titles=titles).plot(ax=ax, **kwargs)


class EmbeddingDisplay:
    """2-D embedding (e.g. t-SNE of CNN features) scattered and coloured by class.

    Parameters
    ----------
    embedding : ndarray of shape (n_samples, 2)
    y : array-like of shape (n_samples,)
    new_points : ndarray of shape (n_new, 2), default=None
        Highlighted points (e.g. new images placed on an existing map).

    Attributes
    ----------
    scatters_ : dict of label -> PathCollection
    new_points_artist_ : PathCollection or None
    ax_, figure_

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import EmbeddingDisplay
    >>> emb = np.random.default_rng(0).normal(size=(6, 2))
    >>> y = ["a", "b"] * 3
    >>> display = EmbeddingDisplay.from_predictions(emb, y, new_points=emb[:1])
    >>> sorted(display.scatters_)
    ['a', 'b']
    """

    def __init__(self, embedding, y, *, new_points=None):
        self.embedding = embedding
        self.y = y
        self.new_points = new_points

    @staticmethod
    def _check(points, name):
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(
                f"{name} must have shape (n_samples, 2); got {points.shape}. "
                "Reduce it to 2-D "
                "first, e.g. with skcxr.TSNE."
            )
        return points

    def plot(self, ax=None, *, cmap="tab10", alpha=0.8, s=15, legend=True):
        """Scatter the embedding by class; new points as large black-edged stars."""
        import matplotlib.pyplot as plt

        emb = self._check(self.embedding, "embedding")
        y = np.asarray(self.y)
        if y.shape != (len(emb),):
            raise ValueError(f"y has shape {y.shape}; expected ({len(emb)},).")
        fig, ax = _single_ax(ax)
        colours = plt.get_cmap(cmap)
        self.scatters_ = {}
        for k, label in enumerate(np.unique(y).tolist()):
            pts = emb[y == label]
            self.scatters_[label] = ax.scatter(
                pts[:, 0],
                pts[:, 1],
                s=s,
                alpha=alpha,
                color=colours(k % colours.N),
                label=str(label),
            )
        self.new_points_artist_ = None
        if self.new_points is not None:
            new = self._check(self.new_points, "new_points")
            self.new_points_artist_ = ax.scatter(
                new[:, 0],
                new[:, 1],
                s=12 * s,
                marker="*",
                c="yellow",
                edgecolors="black",
                linewidths=1.0,
                label="new",
                zorder=3,
            )
        ax.set_xlabel("component 1")
        ax.set_ylabel("component 2")
        if legend:
            ax.legend(fontsize=8, markerscale=1.0)
        self.figure_, self.ax_ = fig, ax
        return self

    @classmethod
    def from_predictions(cls, embedding, y, new_points=None, *, ax=None, **kwargs):
        """Draw a precomputed 2-D ``embedding`` coloured by ``y``."""
        return cls(embedding, y, new_points=new_points).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, transformer, X, y, X_new=None, *, ax=None, **kwargs):
        """Embed ``X`` with ``transformer`` (fitted: ``transform``; else
        ``fit_transform``) and ``X_new`` with ``transform``, then draw."""
        try:
            _check_fitted(transformer)
            embedding = transformer.transform(X)
        except NotFittedError:
            embedding = transformer.fit_transform(X, y)
        new = None if X_new is None else transformer.transform(X_new)
        return cls(embedding, y, new_points=new).plot(ax=ax, **kwargs)


class ReconstructionErrorDisplay:
    """Histograms of an anomaly detector's reconstruction error per class, with
    its threshold.

    Parameters
    ----------
    errors : ndarray of shape (n_samples,)
    y : array-like of shape (n_samples,), default=None
        One histogram per class; ``None``: a single histogram.
    threshold : float, default=None

    Attributes
    ----------
    hists_ : dict of label -> list of patches
    threshold_line_ : Line2D or None
    ax_, figure_

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import ReconstructionErrorDisplay
    >>> errors = np.r_[np.full(5, 0.1), np.full(5, 0.3)]
    >>> display = ReconstructionErrorDisplay.from_predictions(
    ...     errors, ["normal"] * 5 + ["bacteria"] * 5, threshold=0.2)
    >>> display.threshold_line_.get_xdata()[0]
    0.2
    """

    def __init__(self, errors, y=None, *, threshold=None):
        self.errors = errors
        self.y = y
        self.threshold = threshold

    def plot(self, ax=None, *, bins=30, alpha=0.5, density=False):
        """Draw overlapping per-class histograms and the threshold line."""
        errors = np.asarray(self.errors, dtype=float).ravel()
        y = np.full(len(errors), "all") if self.y is None else np.asarray(self.y)
        if y.shape != errors.shape:
            raise ValueError(f"y has shape {y.shape}; expected {errors.shape}.")
        fig, ax = _single_ax(ax)
        edges = np.histogram_bin_edges(errors, bins=bins)
        self.hists_ = {}
        for label in np.unique(y).tolist():
            _, _, patches = ax.hist(
                errors[y == label],
                bins=edges,
                alpha=alpha,
                density=density,
                label=str(label),
            )
            self.hists_[label] = patches
        self.threshold_line_ = None
        if self.threshold is not None:
            self.threshold_line_ = ax.axvline(
                float(self.threshold), color="black", linestyle="--", label="threshold"
            )
        ax.set_xlabel("reconstruction error")
        ax.set_ylabel("density" if density else "images")
        ax.legend(fontsize=8)
        self.figure_, self.ax_ = fig, ax
        return self

    @classmethod
    def from_predictions(cls, errors, y=None, *, threshold=None, ax=None, **kwargs):
        """Draw precomputed reconstruction ``errors``."""
        return cls(errors, y, threshold=threshold).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, detector, X, y=None, *, ax=None, **kwargs):
        """Errors ``-detector.score_samples(X)`` and ``detector.threshold_``."""
        _check_fitted(detector)
        errors = -np.asarray(detector.score_samples(X), dtype=float)
        return cls(errors, y, threshold=getattr(detector, "threshold_", None)).plot(
            ax=ax, **kwargs
        )


class TrainingCurveDisplay:
    """Training curves from a skorch history: train/valid loss and valid accuracy
    per epoch (the accuracy on a twin axis on the right).

    Parameters
    ----------
    history : skorch History or list of dict
        One dict per epoch with some of ``epoch``, ``train_loss``,
        ``valid_loss``, ``valid_acc``.

    Attributes
    ----------
    lines_ : dict of key -> Line2D
    acc_ax_ : Axes or None
    ax_, figure_

    Examples
    --------
    >>> from skcxr.inspection import TrainingCurveDisplay
    >>> history = [{"epoch": 1, "train_loss": 0.9, "valid_loss": 1.0, "valid_acc": 0.5},
    ...            {"epoch": 2, "train_loss": 0.5, "valid_loss": 0.7, "valid_acc": 0.7}]
    >>> sorted(TrainingCurveDisplay.from_history(history).lines_)
    ['train_loss', 'valid_acc', 'valid_loss']
    """

    keys = ("train_loss", "valid_loss", "valid_acc")

    def __init__(self, history):
        self.history = history

    def plot(self, ax=None):
        """Draw the loss curves on ``ax`` and the accuracy on its twin axis."""
        rows = [dict(row) for row in self.history]
        if not rows:
            raise ValueError("history is empty: the estimator has not been trained.")
        fig, ax = _single_ax(ax)
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(rows)]
        self.lines_, self.acc_ax_ = {}, None
        for key in self.keys:
            values = [row.get(key, np.nan) for row in rows]
            if all(v is None or np.isnan(v) for v in values):
                continue
            values = [np.nan if v is None else float(v) for v in values]
            if key.endswith("acc"):
                self.acc_ax_ = self.acc_ax_ or ax.twinx()
                (line,) = self.acc_ax_.plot(
                    epochs, values, "o-", color="tab:green", label=key
                )
                self.acc_ax_.set_ylabel("accuracy")
            else:
                (line,) = ax.plot(epochs, values, "o-", label=key)
            self.lines_[key] = line
        if not self.lines_:
            raise ValueError(f"history has none of the keys {self.keys}.")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        handles = list(self.lines_.values())
        ax.legend(handles, [h.get_label() for h in handles], fontsize=8)
        self.figure_, self.ax_ = fig, ax
        return self

    @classmethod
    def from_history(cls, history, *, ax=None):
        """Draw a skorch ``History`` (or a list of per-epoch dicts)."""
        return cls(history).plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Draw ``estimator.history_`` (or ``estimator.net_.history``)."""
        _check_fitted(estimator)
        history = getattr(estimator, "history_", None)
        if history is None:
            history = getattr(getattr(estimator, "net_", None), "history", None)
        if history is None:
            raise TypeError(
                f"{type(estimator).__name__} has no training history (history_)."
            )
        return cls(history).plot(ax=ax)
