"""Which images every model gets wrong, and which only one model gets wrong or right."""

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ..utils._validation import check_images

__all__ = ["error_overlap", "ErrorOverlapDisplay"]


def _named_predictions(estimators_or_predictions, X, names):
    """Turn estimators (list, (name, est) list or dict) or predictions into a dict."""
    obj = estimators_or_predictions
    if isinstance(obj, dict):
        items = list(obj.items())
    else:
        items = []
        for i, item in enumerate(obj):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                items.append(item)
            else:
                items.append((None, item))
    if names is not None:
        if len(names) != len(items):
            raise ValueError(f"names: got {len(names)} names for {len(items)} models.")
        items = [(n, v) for n, (_, v) in zip(names, items)]
    if not items:
        raise ValueError("estimators_or_predictions: no model given.")
    out = {}
    for i, (name, value) in enumerate(items):
        if name is None:
            name = type(value).__name__
            if sum(type(v).__name__ == name for n, v in items if n is None) > 1:
                name = f"{name}_{i}"
        if name in out:
            raise ValueError(f"names: {name!r} is used twice.")
        if hasattr(value, "predict"):
            if X is None:
                raise ValueError("X: required to call predict on fitted estimators.")
            value = value.predict(X)
        out[str(name)] = column_or_1d(value)
    return out


def error_overlap(estimators_or_predictions, X, y, *, names=None):
    """Overlap of the errors of several classifiers on the same labelled images.

    Parameters
    ----------
    estimators_or_predictions : list or dict
        Fitted classifiers (a list, a list of ``(name, estimator)`` or a dict
        name -> estimator; ``predict(X)`` is called) or a dict name ->
        predictions of shape ``(n_samples,)``.
    X : array-like or None
        Samples passed to ``predict`` (ignored for predictions).
    y : array-like of shape (n_samples,)
        True labels.
    names : list of str, default=None
        Model names (default: the dict keys, the tuple names or the class names).

    Returns
    -------
    overlap : :class:`~sklearn.utils.Bunch`
        ``names`` (list), ``y_true``, ``predictions`` (dict), ``correct``
        (bool ndarray ``(n_models, n_samples)``), ``all_wrong`` and ``all_right``
        (bool ``(n_samples,)``), ``only_wrong`` and ``only_right`` (dicts name ->
        bool mask: the images only that model gets wrong / right).

    Examples
    --------
    >>> from skcxr.inspection import error_overlap
    >>> y = ["normal", "virus", "virus", "bacteria"]
    >>> preds = {"cnn": ["normal", "virus", "normal", "virus"],
    ...          "vgg": ["normal", "normal", "normal", "bacteria"]}
    >>> ov = error_overlap(preds, None, y)
    >>> ov.all_wrong.nonzero()[0], ov.only_wrong["vgg"].nonzero()[0]
    (array([2]), array([1]))
    """
    y = column_or_1d(y)
    predictions = _named_predictions(estimators_or_predictions, X, names)
    check_consistent_length(y, *predictions.values())
    names = list(predictions)
    correct = np.stack([predictions[n] == y for n in names]).astype(bool)
    n_right = correct.sum(axis=0)
    m = len(names)
    only_wrong, only_right = {}, {}
    for i, name in enumerate(names):
        # all the others right, this one wrong / all the others wrong, this one right
        only_wrong[name] = ~correct[i] & (n_right == m - 1) if m > 1 else ~correct[i]
        only_right[name] = correct[i] & (n_right == 1) if m > 1 else correct[i].copy()
    return Bunch(
        names=names,
        y_true=y,
        predictions=predictions,
        correct=correct,
        all_wrong=n_right == 0,
        all_right=n_right == m,
        only_wrong=only_wrong,
        only_right=only_right,
    )


class ErrorOverlapDisplay:
    """Counts (and example images) of shared and model-specific errors, per class.

    Rows are categories (``"all wrong"``, ``"only <model> wrong"``, ...,
    ``"only <model> right"``, ..., ``"all right"``), columns the true classes.
    Build it with :meth:`from_estimators` or :meth:`from_predictions`.

    Parameters
    ----------
    overlap : Bunch
        The output of :func:`error_overlap`.

    Attributes
    ----------
    categories_ : list of str
    classes_ : ndarray
    counts_ : ndarray of shape (n_categories, n_classes)
        Number of images per category and true class.
    masks_ : list of ndarray
        Boolean sample mask of every category.
    figure_ : matplotlib Figure
    ax_ : matplotlib Axes
        The counts table.
    image_axes_ : ndarray of Axes or None
        The image grid ``(n_categories, n_classes * max_per_cell)`` when images
        are drawn.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import ErrorOverlapDisplay
    >>> y = np.array(["normal", "virus", "virus", "bacteria"])
    >>> preds = {"cnn": ["normal", "virus", "normal", "virus"],
    ...          "vgg": ["normal", "normal", "normal", "bacteria"]}
    >>> images = np.random.default_rng(0).random((4, 16, 16))
    >>> disp = ErrorOverlapDisplay.from_predictions(preds, y, images=images)
    >>> disp.counts_.shape
    (6, 3)
    """

    def __init__(self, overlap):
        self.overlap = overlap
        ov = overlap
        self.classes_ = np.unique(ov.y_true)
        self.categories_ = ["all wrong"]
        self.masks_ = [ov.all_wrong]
        if len(ov.names) > 1:
            for name in ov.names:
                self.categories_.append(f"only {name} wrong")
                self.masks_.append(ov.only_wrong[name])
            for name in ov.names:
                self.categories_.append(f"only {name} right")
                self.masks_.append(ov.only_right[name])
        self.categories_.append("all right")
        self.masks_.append(ov.all_right)
        self.counts_ = np.array(
            [
                [np.sum(mask & (ov.y_true == c)) for c in self.classes_]
                for mask in self.masks_
            ]
        )

    @classmethod
    def from_estimators(
        cls, estimators, X, y, *, names=None, images=None, max_per_cell=3, ax=None
    ):
        """Call ``predict`` of every fitted estimator and plot the overlap.

        ``images`` defaults to ``X`` when ``X`` is an image array of the data
        contract; otherwise (paths, features) only the counts table is drawn
        unless ``images`` is given.
        """
        if images is None:
            try:
                images = check_images(X, check_range=False)[0]
            except (ValueError, TypeError):
                images = None
        overlap = error_overlap(estimators, X, y, names=names)
        return cls(overlap).plot(images=images, max_per_cell=max_per_cell, ax=ax)

    @classmethod
    def from_predictions(
        cls, predictions, y, *, names=None, images=None, max_per_cell=3, ax=None
    ):
        """Plot the overlap of a dict name -> predictions."""
        overlap = error_overlap(predictions, None, y, names=names)
        return cls(overlap).plot(images=images, max_per_cell=max_per_cell, ax=ax)

    def plot(self, *, images=None, max_per_cell=3, ax=None, cmap="gray"):
        """Draw the counts table and, with ``images``, a grid of examples.

        Parameters
        ----------
        images : array-like, default=None
            Images of the samples (any layout of the data contract), drawn up to
            ``max_per_cell`` per category and class.
        max_per_cell : int, default=3
        ax : matplotlib Axes, default=None
            Axes for the counts table (only used without ``images``).
        cmap : str, default="gray"

        Returns
        -------
        self : ErrorOverlapDisplay
        """
        import matplotlib.pyplot as plt

        if int(max_per_cell) < 1:
            raise ValueError(f"max_per_cell must be >= 1; got {max_per_cell}.")
        n_cat, n_cls = self.counts_.shape
        self.image_axes_ = None
        if images is None:
            if ax is None:
                _, ax = plt.subplots(figsize=(1.2 * n_cls + 2.5, 0.45 * n_cat + 1))
            self.figure_, self.ax_ = ax.figure, ax
        else:
            images = check_images(images, name="images", check_range=False)[0]
            if len(images) != len(self.overlap.y_true):
                raise ValueError(
                    f"images: got {len(images)} images for {len(self.overlap.y_true)} labels."
                )
            k = int(max_per_cell)
            fig = plt.figure(
                figsize=(0.9 * n_cls * k + 2, 0.9 * n_cat + 0.5 * n_cat + 1.5)
            )
            top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2])
            self.figure_, self.ax_ = fig, top.subplots()
            axes = bottom.subplots(n_cat, n_cls * k, squeeze=False)
            for r, mask in enumerate(self.masks_):
                for c, label in enumerate(self.classes_):
                    idx = np.flatnonzero(mask & (self.overlap.y_true == label))[:k]
                    for j in range(k):
                        a = axes[r, c * k + j]
                        a.set_xticks([])
                        a.set_yticks([])
                        if j < len(idx):
                            a.imshow(images[idx[j]], cmap=cmap, vmin=0, vmax=1)
                        else:
                            a.set_axis_off()
                        if r == 0 and j == 0:
                            a.set_title(str(label), loc="left", fontsize=8)
                    if j == k - 1 and c == 0:
                        axes[r, 0].set_ylabel(
                            self.categories_[r], rotation=0, ha="right", fontsize=7
                        )
                        axes[r, 0].set_axis_on()
                        if not np.any(mask & (self.overlap.y_true == label)):
                            for spine in axes[r, 0].spines.values():
                                spine.set_visible(False)
            self.image_axes_ = axes
        ax = self.ax_
        ax.imshow(self.counts_, cmap="Blues", aspect="auto")
        for r in range(n_cat):
            for c in range(n_cls):
                ax.text(
                    c, r, str(self.counts_[r, c]), ha="center", va="center", fontsize=8
                )
        ax.set_xticks(range(n_cls), [str(c) for c in self.classes_])
        ax.set_yticks(range(n_cat), self.categories_)
        ax.set_xlabel("true class")
        ax.set_title("images per category")
        return self
