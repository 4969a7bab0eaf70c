"""Which images every model gets wrong, and which only one model gets wrong or right."""

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import validate_params
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ..utils._validation import check_images
from ._common import check_fitted

__all__ = ["error_overlap", "ErrorOverlapDisplay"]


def _named_predictions(estimators_or_predictions, X, names):
    """Turn estimators (list, (name, est) list or dict) or predictions into a dict."""
    obj = estimators_or_predictions
    if isinstance(obj, dict):
        items = list(obj.items())
    else:
        items = []
        for item in obj:
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
            check_fitted(value)
            if X is None:
                raise ValueError("X: required to call predict on fitted estimators.")
            value = value.predict(X)
        out[str(name)] = column_or_1d(value)
    return out


@validate_params(
    {
        "estimators_or_predictions": [list, tuple, dict],
        "X": ["array-like", None],
        "y": ["array-like"],
        "names": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
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
    Build it with :meth:`from_estimators` (which predicts, then calls
    :meth:`from_predictions`) or :meth:`from_predictions`.

    Parameters
    ----------
    overlap : Bunch
        The output of :func:`error_overlap`.
    images : array-like, default=None
        Images of the samples (any layout of the data contract); when given,
        :meth:`plot` draws examples of every category and class under the
        counts table.

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
    >>> disp.categories_[:2]
    ['all wrong', 'only cnn wrong']
    """

    def __init__(self, overlap, *, images=None):
        self.overlap = overlap
        self.images = images

    def _categories(self):
        ov = self.overlap
        categories, masks = ["all wrong"], [ov.all_wrong]
        if len(ov.names) > 1:
            for name in ov.names:
                categories.append(f"only {name} wrong")
                masks.append(ov.only_wrong[name])
            for name in ov.names:
                categories.append(f"only {name} right")
                masks.append(ov.only_right[name])
        categories.append("all right")
        masks.append(ov.all_right)
        return categories, masks

    @classmethod
    def from_estimators(
        cls, estimators, X, y, *, names=None, images=None, max_per_cell=3, ax=None
    ):
        """Call ``predict`` of every fitted estimator on ``X`` and plot the overlap.

        Parameters
        ----------
        estimators : list or dict
            Fitted classifiers: a list, a list of ``(name, estimator)`` or a
            dict name -> estimator.
        X : array-like
            What the estimators predict on.
        y : array-like of shape (n_samples,)
            True labels.
        names : list of str, default=None
        images : array-like, default=None
            Defaults to ``X`` when ``X`` is an image array of the data
            contract and ``ax`` is None; otherwise (paths, features) only the
            counts table is drawn unless ``images`` is given.
        max_per_cell : int, default=3
        ax : matplotlib Axes, default=None
            Axes for the counts table alone (no example images).

        Returns
        -------
        display : ErrorOverlapDisplay
        """
        if images is None and ax is None:
            try:
                images = check_images(X, check_range=False)[0]
            except (ValueError, TypeError):
                images = None
        predictions = _named_predictions(estimators, X, names)
        return cls.from_predictions(
            predictions, y, images=images, max_per_cell=max_per_cell, ax=ax
        )

    @classmethod
    def from_predictions(
        cls, predictions, y, *, names=None, images=None, max_per_cell=3, ax=None
    ):
        """Plot the overlap of the predictions of several models.

        Parameters
        ----------
        predictions : dict or list
            A dict name -> predictions of shape ``(n_samples,)``, or a list
            of predictions with ``names``.
        y : array-like of shape (n_samples,)
            True labels.
        names : list of str, default=None
        images : array-like, default=None
            Images of the samples, drawn up to ``max_per_cell`` per category
            and class.
        max_per_cell : int, default=3
        ax : matplotlib Axes, default=None
            Axes for the counts table (only without ``images``).

        Returns
        -------
        display : ErrorOverlapDisplay
        """
        overlap = error_overlap(predictions, None, y, names=names)
        return cls(overlap, images=images).plot(ax=ax, max_per_cell=max_per_cell)

    def plot(self, ax=None, *, images=None, max_per_cell=3, cmap="gray"):
        """Draw the counts table and, with images, a grid of examples.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes for the counts table; only without images, which need a
            figure of their own.
        images : array-like, default=None
            Images of the samples (any layout of the data contract), drawn up
            to ``max_per_cell`` per category and class; ``None``: the images
            given to the display, if any.
        max_per_cell : int, default=3
        cmap : str, default="gray"

        Returns
        -------
        display : ErrorOverlapDisplay
        """
        import matplotlib.pyplot as plt

        if (
            isinstance(max_per_cell, bool)
            or not isinstance(max_per_cell, (int, np.integer))
            or max_per_cell < 1
        ):
            raise ValueError(f"max_per_cell must be an int >= 1; got {max_per_cell!r}.")
        images = self.images if images is None else images
        ov = self.overlap
        self.categories_, self.masks_ = self._categories()
        self.classes_ = np.unique(ov.y_true)
        self.counts_ = np.array(
            [
                [np.sum(mask & (ov.y_true == c)) for c in self.classes_]
                for mask in self.masks_
            ]
        )
        n_cat, n_cls = self.counts_.shape
        self.image_axes_ = None
        if images is None:
            if ax is None:
                _, ax = plt.subplots(figsize=(1.2 * n_cls + 2.5, 0.45 * n_cat + 1))
            self.figure_, self.ax_ = ax.figure, ax
        else:
            if ax is not None:
                raise ValueError(
                    "ax: the example images need a figure of their own; pass "
                    "ax=None, or draw the counts table only (no images)."
                )
            images = check_images(images, name="images", check_range=False)[0]
            if len(images) != len(ov.y_true):
                raise ValueError(
                    f"images: got {len(images)} images for {len(ov.y_true)} labels."
                )
            self._draw_examples(images, int(max_per_cell), cmap)
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

    def _draw_examples(self, images, k, cmap):
        """A new figure: the counts table on top, up to ``k`` examples per
        category and class below."""
        import matplotlib.pyplot as plt

        n_cat, n_cls = self.counts_.shape
        y_true = self.overlap.y_true
        fig = plt.figure(figsize=(0.9 * n_cls * k + 2, 1.4 * n_cat + 1.5))
        top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2])
        self.figure_, self.ax_ = fig, top.subplots()
        axes = bottom.subplots(n_cat, n_cls * k, squeeze=False)
        for r, mask in enumerate(self.masks_):
            for c, label in enumerate(self.classes_):
                idx = np.flatnonzero(mask & (y_true == label))[:k]
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
            # the row label sits on the first axis of the row, kept visible
            first = axes[r, 0]
            first.set_ylabel(self.categories_[r], rotation=0, ha="right", fontsize=7)
            first.set_axis_on()
            if not np.any(mask & (y_true == self.classes_[0])):
                for spine in first.spines.values():
                    spine.set_visible(False)
        self.image_axes_ = axes
