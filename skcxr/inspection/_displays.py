"""Plot helpers in scikit-learn's ``*Display`` style.

Each display follows scikit-learn's pattern (as in
:class:`sklearn.metrics.RocCurveDisplay`): ``__init__`` only stores the data
to draw; :meth:`plot` draws it on ``ax`` (or a new figure), sets
``figure_`` and ``ax_`` and returns the display; ``from_estimator`` computes
what the estimator predicts and hands it to the data constructor
(``from_predictions``, ``from_heatmaps``, ``from_history`` or
``from_images``), which builds the display and calls :meth:`plot`.

Images are always drawn as 2-D arrays with a grey colour map
(``vmin=0, vmax=1``), never converted to RGB, so there is no channel-order
mix-up; heatmaps go on top through a colour map with an alpha.
"""

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from ..utils._validation import check_images
from ._common import check_fitted

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
        ncols = max(1, min(int(ncols), n))
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


def _single_ax(ax, projection=None):
    import matplotlib.pyplot as plt

    if ax is None:
        fig = plt.figure()
        ax = fig.add_subplot(projection=projection)
    return ax.figure, ax


def _titles(titles, n):
    if titles is None:
        return [None] * n
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"titles: got {len(titles)} titles for {n} images.")
    return titles


def _prediction_titles(y_pred, y_true=None):
    """``"pred: p"``, or ``"true t / pred p"`` when the true labels are known."""
    if y_true is None:
        return [f"pred: {p}" for p in y_pred]
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true: got {len(y_true)} labels for {len(y_pred)} predictions."
        )
    return [f"true {t} / pred {p}" for t, p in zip(y_true, y_pred)]


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

    Build it with :meth:`from_images`, or with :meth:`from_estimator` /
    :meth:`from_predictions` to title each image with its prediction.

    Parameters
    ----------
    images : array-like
        Images in any layout of the data contract.
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
    >>> display = ImageGridDisplay.from_predictions(images, ["a", "b", "b"],
    ...                                             ["a", "a", "b"])
    >>> display.ax_[1].get_title()
    'true b / pred a'
    """

    def __init__(self, images, *, titles=None):
        self.images = images
        self.titles = titles

    def plot(self, ax=None, *, ncols=8):
        """Draw the grid.

        Parameters
        ----------
        ax : array of matplotlib Axes, default=None
            At least one Axes per image; ``None``: a new figure.
        ncols : int, default=8
            Columns of the new figure's grid.

        Returns
        -------
        display : ImageGridDisplay
        """
        images, _ = check_images(self.images, name="images")
        self.figure_, self.ax_, self.image_artists_ = _show_images(
            images, self.titles, ax, ncols
        )
        return self

    @classmethod
    def from_images(cls, images, titles=None, *, ncols=8, ax=None):
        """Build and draw the grid of ``images`` (any layout of the data contract)."""
        return cls(images, titles=titles).plot(ax=ax, ncols=ncols)

    @classmethod
    def from_predictions(cls, images, y_true, y_pred, *, ncols=8, ax=None):
        """Draw ``images`` titled ``"true <label> / pred <label>"``.

        Parameters
        ----------
        images : array-like
        y_true : array-like of shape (n_samples,) or None
            ``None``: titles show the prediction only.
        y_pred : array-like of shape (n_samples,)
        ncols : int, default=8
        ax : array of matplotlib Axes, default=None

        Returns
        -------
        display : ImageGridDisplay
        """
        y_pred = list(np.asarray(y_pred).ravel())
        y_true = None if y_true is None else list(np.asarray(y_true).ravel())
        titles = _prediction_titles(y_pred, y_true)
        return cls.from_images(images, titles, ncols=ncols, ax=ax)

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, ncols=8, ax=None):
        """Predict ``X`` with a fitted classifier and draw the images titled by
        prediction (and true label when ``y`` is given).

        Parameters
        ----------
        estimator : fitted classifier
        X : array-like
            Images per the data contract (also what ``predict`` receives).
        y : array-like of shape (n_samples,), default=None
        ncols : int, default=8
        ax : array of matplotlib Axes, default=None

        Returns
        -------
        display : ImageGridDisplay
        """
        check_fitted(estimator)
        y_pred = estimator.predict(X)
        return cls.from_predictions(X, y, y_pred, ncols=ncols, ax=ax)


class HeatmapDisplay:
    """Heatmaps overlaid on the X-rays they explain.

    Build it with :meth:`from_estimator` (Grad-CAM, Selvaraju et al. 2017, or
    occlusion sensitivity) or :meth:`from_heatmaps`.

    Parameters
    ----------
    images : array-like
        Images in any layout of the data contract.
    heatmaps : array-like of shape (n_samples, H, W)
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
        display : HeatmapDisplay
        """
        images, _ = check_images(self.images, name="images")
        maps = np.asarray(self.heatmaps, dtype=float)
        if maps.size != images.size:
            raise ValueError(
                f"heatmaps has shape {maps.shape}; expected one map per image, "
                f"{images.shape}."
            )
        maps = maps.reshape(images.shape)
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
            :func:`~skcxr.inspection.grad_cam` or
            :func:`~skcxr.inspection.occlusion_sensitivity`.
        target : see :func:`~skcxr.inspection.grad_cam`
        titles : list of str, default=None
            By default ``"pred: <label>"`` (and the target when one is given).
        ax : Axes or array of Axes, default=None
        method_kwargs : dict, default=None
            Passed to :func:`grad_cam` or :func:`occlusion_sensitivity`.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : HeatmapDisplay
        """
        from . import grad_cam, occlusion_sensitivity

        methods = {"grad_cam": grad_cam, "occlusion": occlusion_sensitivity}
        if method not in methods:
            raise ValueError(
                f"method must be one of {sorted(methods)}; got {method!r}."
            )
        heatmaps = methods[method](estimator, X, target=target, **(method_kwargs or {}))
        if titles is None:
            titles = _prediction_titles(estimator.predict(X))
            if target is not None:
                shown = np.broadcast_to(
                    np.asarray(target, dtype=object), (len(titles),)
                )
                titles = [f"{t}\nmap: {s}" for t, s in zip(titles, shown)]
        return cls.from_heatmaps(X, heatmaps, titles, ax=ax, **kwargs)


class EmbeddingDisplay:
    """2-D or 3-D embedding (e.g. t-SNE of CNN features) scattered and coloured
    by class.

    A map of two columns is drawn on ordinary axes, one of three columns on
    3-D axes.

    Parameters
    ----------
    embedding : array-like of shape (n_samples, 2) or (n_samples, 3)
    y : array-like of shape (n_samples,)
    new_points : array-like of shape (n_new, n_components), default=None
        Highlighted points (e.g. new images placed on an existing map).

    Attributes
    ----------
    scatters_ : dict of label -> PathCollection
    new_points_artist_ : PathCollection or None
    ax_ : matplotlib Axes (3-D axes for a 3-D map)
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import EmbeddingDisplay
    >>> emb = np.random.default_rng(0).normal(size=(6, 2))
    >>> y = ["a", "b"] * 3
    >>> display = EmbeddingDisplay.from_predictions(emb, y, new_points=emb[:1])
    >>> sorted(display.scatters_)
    ['a', 'b']
    >>> emb3 = np.random.default_rng(0).normal(size=(6, 3))
    >>> EmbeddingDisplay.from_predictions(emb3, y).ax_.name
    '3d'
    """

    def __init__(self, embedding, y, *, new_points=None):
        self.embedding = embedding
        self.y = y
        self.new_points = new_points

    @staticmethod
    def _check(points, name, n_components=None):
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise ValueError(
                f"{name} must have shape (n_samples, 2) or (n_samples, 3); got "
                f"{points.shape}. Reduce it first, e.g. with skcxr.TSNE."
            )
        if n_components is not None and points.shape[1] != n_components:
            raise ValueError(
                f"{name} has {points.shape[1]} columns; the embedding has "
                f"{n_components}."
            )
        return points

    def plot(self, ax=None, *, cmap="tab10", alpha=0.8, s=15, legend=True):
        """Scatter the embedding by class; new points as large black-edged stars.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            3-D axes (``projection="3d"``) for a 3-D map; ``None``: a new
            figure with the right kind of axes.
        cmap : str or Colormap, default="tab10"
        alpha : float, default=0.8
        s : float, default=15
            Marker size.
        legend : bool, default=True

        Returns
        -------
        display : EmbeddingDisplay
        """
        import matplotlib.pyplot as plt

        emb = self._check(self.embedding, "embedding")
        y = np.asarray(self.y)
        if y.shape != (len(emb),):
            raise ValueError(f"y has shape {y.shape}; expected ({len(emb)},).")
        dims = emb.shape[1]
        if ax is not None and (ax.name == "3d") != (dims == 3):
            raise ValueError(
                f"ax: a {dims}-D embedding needs "
                + ("3-D axes (projection='3d')." if dims == 3 else "2-D axes.")
            )
        fig, ax = _single_ax(ax, projection="3d" if dims == 3 else None)
        colours = plt.get_cmap(cmap)
        self.scatters_ = {}
        for k, label in enumerate(np.unique(y).tolist()):
            pts = emb[y == label]
            self.scatters_[label] = ax.scatter(
                *pts.T,
                s=s,
                alpha=alpha,
                color=colours(k % colours.N),
                label=str(label),
            )
        self.new_points_artist_ = None
        if self.new_points is not None:
            new = self._check(self.new_points, "new_points", dims)
            self.new_points_artist_ = ax.scatter(
                *new.T,
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
        if dims == 3:
            ax.set_zlabel("component 3")
        if legend:
            ax.legend(fontsize=8, markerscale=1.0)
        self.figure_, self.ax_ = fig, ax
        return self

    @classmethod
    def from_predictions(cls, embedding, y, new_points=None, *, ax=None, **kwargs):
        """Draw a precomputed 2-D or 3-D ``embedding`` coloured by ``y``;
        ``kwargs`` go to :meth:`plot`."""
        return cls(embedding, y, new_points=new_points).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y, X_new=None, *, ax=None, **kwargs):
        """Embed ``X`` with ``estimator`` and ``X_new`` with ``transform``, then draw.

        * A fitted estimator that keeps its training map in ``embedding_``
          (such as :class:`skcxr.TSNE`, alone or as the last step of a
          pipeline): ``X`` is its training data and the fitted map is drawn
          as it is, without placing the points again (``transform`` of the
          training data would give nearby, not identical, positions). ``X``
          may then be ``None``; otherwise it must have as many samples as the
          map.
        * Any other fitted transformer: ``transform(X)``.
        * An unfitted one: ``fit_transform(X, y)``.

        Parameters
        ----------
        estimator : transformer or pipeline ending in one
            Maps samples to 2 or 3 components.
        X : array-like or None
            The points of the map (see above).
        y : array-like of shape (n_samples,)
            Class of each point of the map.
        X_new : array-like, default=None
            Samples placed on the map with ``estimator.transform`` and drawn
            as stars.
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : EmbeddingDisplay
        """
        final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
        try:
            check_fitted(estimator)
            fitted = True
        except NotFittedError:
            fitted = False
        training_map = getattr(final, "embedding_", None) if fitted else None
        if training_map is not None:
            embedding = np.asarray(training_map)
            n_seen = None if X is None else _n_samples(X)
            if n_seen is not None and n_seen != len(embedding):
                raise ValueError(
                    f"X: {type(final).__name__} is fitted and keeps its training map "
                    f"of {len(embedding)} points in embedding_, which is drawn as is; "
                    f"X has {n_seen} samples. Pass its training data (or None), and "
                    "other samples as X_new."
                )
        elif X is None:
            raise ValueError(
                f"X: required unless the estimator keeps a fitted map in embedding_; "
                f"{type(final).__name__} does not."
            )
        elif fitted:
            embedding = estimator.transform(X)
        else:
            embedding = estimator.fit_transform(X, y)
        new = None if X_new is None else estimator.transform(X_new)
        return cls.from_predictions(embedding, y, new, ax=ax, **kwargs)


def _n_samples(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


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
        """Draw overlapping per-class histograms and the threshold line.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        bins : int or str, default=30
            Bins shared by all classes (:func:`numpy.histogram_bin_edges`).
        alpha : float, default=0.5
        density : bool, default=False
            Normalise each histogram to unit area.

        Returns
        -------
        display : ReconstructionErrorDisplay
        """
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
        """Errors ``-detector.score_samples(X)`` and ``detector.threshold_``.

        Parameters
        ----------
        detector : fitted outlier detector
            Higher ``score_samples`` means more normal (sklearn's convention),
            so the reconstruction error is its negative.
        X : array-like
        y : array-like of shape (n_samples,), default=None
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ReconstructionErrorDisplay
        """
        check_fitted(detector)
        errors = -np.asarray(detector.score_samples(X), dtype=float)
        threshold = getattr(detector, "threshold_", None)
        return cls.from_predictions(errors, y, threshold=threshold, ax=ax, **kwargs)


class TrainingCurveDisplay:
    """Per-epoch training curves from a skorch history: each metric on the
    training data beside the same metric on the validation split.

    Every name in ``metrics`` draws ``train_<name>`` (dashed) and
    ``valid_<name>`` (solid, same colour) when the history records them, or
    the history key ``<name>`` itself (e.g. ``"valid_f1"`` or ``"event_lr"``).
    Losses (names ending in ``loss``) go on the left axis; every other metric
    (accuracy, ROC AUC, F1: scores in [0, 1]) on a twin axis on the right.

    Parameters
    ----------
    history : skorch History or list of dict
        One dict per epoch with some of ``epoch``, ``train_loss``,
        ``valid_loss``, ``train_acc``, ``valid_acc``, ``train_auc``,
        ``valid_auc``, ... (see ``history_`` of
        :class:`~skcxr.TransferClassifier`).
    metrics : sequence of str, default=("loss", "acc")
        The metrics to draw, e.g. ``("loss", "acc", "auc")``.

    Attributes
    ----------
    lines_ : dict of key -> Line2D
    score_ax_ : Axes or None
        The right axis of the scores (None when no score is drawn);
        ``acc_ax_`` is the same axis.
    ax_, figure_

    Examples
    --------
    >>> from skcxr.inspection import TrainingCurveDisplay
    >>> history = [{"epoch": 1, "train_loss": 0.9, "valid_loss": 1.0, "valid_acc": 0.5},
    ...            {"epoch": 2, "train_loss": 0.5, "valid_loss": 0.7, "valid_acc": 0.7}]
    >>> sorted(TrainingCurveDisplay.from_history(history).lines_)
    ['train_loss', 'valid_acc', 'valid_loss']
    >>> history = [{"train_auc": 0.6, "valid_auc": 0.5, "valid_f1": 0.4}]
    >>> sorted(TrainingCurveDisplay(history, metrics=("auc", "valid_f1")).plot().lines_)
    ['train_auc', 'valid_auc', 'valid_f1']
    """

    def __init__(self, history, *, metrics=("loss", "acc")):
        self.history = history
        self.metrics = metrics

    @property
    def keys(self):
        """The history keys ``metrics`` asks for, in drawing order."""
        return tuple(key for _, key in self._keys())

    def _keys(self):
        """``(metric index, history key)`` pairs."""
        for i, metric in enumerate(self.metrics):
            if metric.startswith(("train_", "valid_", "event_")):
                yield i, metric
            else:
                yield i, f"train_{metric}"
                yield i, f"valid_{metric}"

    def plot(self, ax=None):
        """Draw the loss curves on ``ax`` and the scores on its twin axis.

        Parameters
        ----------
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : TrainingCurveDisplay
        """
        import matplotlib.pyplot as plt

        if isinstance(self.metrics, str):
            raise TypeError(
                f"metrics must be a sequence of metric names, e.g. ('loss', 'acc'); "
                f"got the string {self.metrics!r}."
            )
        rows = [dict(row) for row in self.history]
        if not rows:
            raise ValueError("history is empty: the estimator has not been trained.")
        fig, ax = _single_ax(ax)
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(rows)]
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        self.lines_, self.score_ax_ = {}, None
        for i, key in self._keys():
            values = [row.get(key, np.nan) for row in rows]
            values = [np.nan if v is None else float(v) for v in values]
            if all(np.isnan(v) for v in values):
                continue
            style = dict(
                color=colours[i % len(colours)],
                linestyle="--" if key.startswith("train_") else "-",
                marker="o",
                markersize=3,
                label=key,
            )
            if key.endswith("loss"):
                (line,) = ax.plot(epochs, values, **style)
            else:
                self.score_ax_ = self.score_ax_ or ax.twinx()
                (line,) = self.score_ax_.plot(epochs, values, **style)
            self.lines_[key] = line
        if not self.lines_:
            raise ValueError(f"history has none of the keys {self.keys}.")
        if self.score_ax_ is not None:
            scores = sorted(
                {k.split("_", 1)[1] for k in self.lines_ if "loss" not in k}
            )
            self.score_ax_.set_ylabel(
                "accuracy" if scores == ["acc"] else ", ".join(scores)
            )
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        handles = list(self.lines_.values())
        ax.legend(handles, [h.get_label() for h in handles], fontsize=8)
        self.figure_, self.ax_ = fig, ax
        return self

    @property
    def acc_ax_(self):
        """The score axis (``score_ax_``)."""
        return self.score_ax_

    @classmethod
    def from_history(cls, history, *, metrics=("loss", "acc"), ax=None):
        """Draw a skorch ``History`` (or a list of per-epoch dicts).

        Parameters
        ----------
        history : skorch History or list of dict
        metrics : sequence of str, default=("loss", "acc")
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : TrainingCurveDisplay
        """
        return cls(history, metrics=metrics).plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, *, metrics=("loss", "acc"), ax=None):
        """Draw ``estimator.history_`` (or ``estimator.net_.history``).

        Parameters
        ----------
        estimator : fitted skorch-backed estimator
        metrics : sequence of str, default=("loss", "acc")
            E.g. ``("loss", "acc", "auc")`` for a
            :class:`~skcxr.TransferClassifier`.
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : TrainingCurveDisplay
        """
        check_fitted(estimator)
        history = getattr(estimator, "history_", None)
        if history is None:
            history = getattr(getattr(estimator, "net_", None), "history", None)
        if history is None:
            raise TypeError(
                f"{type(estimator).__name__} has no training history (history_)."
            )
        return cls.from_history(history, metrics=metrics, ax=ax)
