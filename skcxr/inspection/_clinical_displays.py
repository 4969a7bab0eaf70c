"""Plots of the clinical evaluation: reliability diagrams and subgroup forest plots.

Both follow scikit-learn's display pattern (as the displays of
``skcxr.inspection._displays``): ``__init__`` stores what to draw, :meth:`plot`
draws it and sets ``ax_`` and ``figure_``, ``from_predictions`` computes it
from scores and ``from_estimator`` from a fitted model.
"""

import numpy as np
from sklearn.calibration import CalibrationDisplay, calibration_curve
from sklearn.utils.validation import column_or_1d

from ..metrics import expected_calibration_error, subgroup_metrics
from ..metrics._calibration import _binary_pos_label
from ._common import check_fitted

__all__ = ["ReliabilityDisplay", "SubgroupDisplay"]


def _panels(n, ax):
    """``(figure, axes)``: ``n`` side-by-side Axes, given or new."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(
            1, n, figsize=(4.2 * n, 4.2), squeeze=False, layout="constrained"
        )
        return fig, axes.ravel()
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if len(axes) != n:
        raise ValueError(
            f"ax: the diagram has {n} panel(s) (one per class for more than two "
            f"classes); got {len(axes)} Axes."
        )
    return axes[0].figure, axes


class ReliabilityDisplay:
    """Reliability diagram of a classifier's probabilities, with its ECE.

    For a binary problem, one panel: the fraction of positives against the
    mean predicted probability of the positive class, per probability bin
    (scikit-learn's :class:`~sklearn.calibration.CalibrationDisplay`). For
    more classes, one such panel per class, one-vs-rest. The legend gives the
    top-label expected calibration error
    (:func:`~skcxr.metrics.expected_calibration_error`, Guo et al. 2017) of
    the whole model, with the same bins. Draw a second model on the same
    panels with ``ax=display.ax_`` (for example the model after temperature
    scaling).

    Parameters
    ----------
    prob_true, prob_pred : list of ndarray
        Per panel, the fraction of positives and the mean predicted
        probability of every non-empty bin
        (:func:`sklearn.calibration.calibration_curve`).
    y_prob : list of ndarray
        Per panel, the predicted probabilities of its class.
    classes : list
        The class of every panel (the positive class when binary).
    ece : float
        Top-label expected calibration error.
    estimator_name : str, default=None
        Name in the legend.

    Attributes
    ----------
    displays_ : list of sklearn.calibration.CalibrationDisplay
        One per panel.
    lines_ : list of matplotlib Line2D
    ax_ : ndarray of matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import ReliabilityDisplay
    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(2000)
    >>> y = (rng.random(2000) < p).astype(int)  # calibrated: P(y = 1) = p
    >>> display = ReliabilityDisplay.from_predictions(y, p, name="calibrated")
    >>> over = np.clip(0.5 + 1.6 * (p - 0.5), 0, 1)  # over-confident
    >>> display = ReliabilityDisplay.from_predictions(
    ...     y, over, name="over-confident", ax=display.ax_)
    >>> [line.get_label() for line in display.ax_[0].get_lines()]
    ['Perfectly calibrated', 'calibrated (ECE 0.020)', 'over-confident (ECE 0.098)']

    Three classes: one panel per class.

    >>> proba = rng.dirichlet(np.ones(3), 200)
    >>> labels = np.array(["bacteria", "normal", "virus"])
    >>> y3 = labels[proba.argmax(axis=1)]
    >>> display = ReliabilityDisplay.from_predictions(y3, proba, n_bins=5)
    >>> len(display.ax_), display.ax_[2].get_title()
    (3, 'virus vs rest')
    """

    def __init__(
        self, prob_true, prob_pred, y_prob, *, classes, ece, estimator_name=None
    ):
        self.prob_true = prob_true
        self.prob_pred = prob_pred
        self.y_prob = y_prob
        self.classes = classes
        self.ece = ece
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, name=None, ref_line=True, **kwargs):
        """Draw one reliability curve per panel.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes, default=None
            One Axes per panel (one for a binary problem); ``None``: a new
            figure.
        name : str, default=None
            Legend name; default ``estimator_name``.
        ref_line : bool, default=True
            Draw the diagonal of a perfectly calibrated model.
        **kwargs
            Passed to :func:`matplotlib.pyplot.plot`.

        Returns
        -------
        display : ReliabilityDisplay
        """
        n = len(self.classes)
        fig, axes = _panels(n, ax)
        name = self.estimator_name if name is None else name
        label = (
            f"ECE {self.ece:.3f}" if name is None else f"{name} (ECE {self.ece:.3f})"
        )
        self.displays_, self.lines_ = [], []
        for axis, true, pred, prob, cls in zip(
            axes, self.prob_true, self.prob_pred, self.y_prob, self.classes
        ):
            display = CalibrationDisplay(
                true, pred, prob, estimator_name=name, pos_label=cls
            ).plot(ax=axis, name=label, ref_line=ref_line, **kwargs)
            if n > 1:
                axis.set_title(f"{cls} vs rest")
            axis.set_xlim(-0.02, 1.02)
            axis.set_ylim(-0.02, 1.02)
            self.displays_.append(display)
            self.lines_.append(display.line_)
        self.figure_, self.ax_ = fig, axes
        return self

    @classmethod
    def from_predictions(
        cls,
        y_true,
        y_prob,
        *,
        labels=None,
        pos_label=None,
        n_bins=15,
        strategy="uniform",
        name=None,
        ax=None,
        **kwargs,
    ):
        """Draw the reliability diagram of predicted probabilities.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
        y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
            1-D: the positive class's probability of a binary problem. 2-D:
            ``predict_proba`` (columns following ``labels``); two columns
            give one panel, of the second class.
        labels : array-like, default=None
            Classes of the columns of a 2-D ``y_prob``; default: the sorted
            labels of ``y_true``.
        pos_label : str, int or float, default=None
            The class of a 1-D ``y_prob``; default 1 for {0, 1} labels.
        n_bins : int, default=15
            Bins of the curves and of the ECE.
        strategy : {"uniform", "quantile"}, default="uniform"
            Bins of the curves (see
            :func:`~sklearn.calibration.calibration_curve`); the ECE always
            uses equal-width bins.
        name : str, default=None
        ax : matplotlib Axes or array of Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ReliabilityDisplay
        """
        y_true = column_or_1d(y_true)
        y_prob = np.asarray(y_prob, dtype=float)
        ece = expected_calibration_error(
            y_true, y_prob, n_bins=n_bins, labels=labels, pos_label=pos_label
        )
        if y_prob.ndim == 1:
            columns = [y_prob]
            classes = [_binary_pos_label(y_true, pos_label)]
        else:
            labels = np.unique(y_true) if labels is None else column_or_1d(labels)
            keep = [1] if y_prob.shape[1] == 2 else range(y_prob.shape[1])
            columns = [y_prob[:, j] for j in keep]
            classes = [labels.tolist()[j] for j in keep]
        prob_true, prob_pred = [], []
        for column, positive in zip(columns, classes):
            true, pred = calibration_curve(
                (y_true == positive).astype(int),
                column,
                n_bins=n_bins,
                strategy=strategy,
                pos_label=1,
            )
            prob_true.append(true)
            prob_pred.append(pred)
        display = cls(
            prob_true, prob_pred, columns, classes=classes, ece=ece, estimator_name=name
        )
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        n_bins=15,
        strategy="uniform",
        name=None,
        ax=None,
        **kwargs,
    ):
        """Draw the reliability diagram of ``estimator.predict_proba(X)``.

        Parameters
        ----------
        estimator : fitted classifier
            Single-label, with ``predict_proba`` and ``classes_`` (a pipeline,
            a :class:`~sklearn.calibration.CalibratedClassifierCV`, ...).
        X : array-like
            What ``predict_proba`` takes (images or file paths).
        y : array-like of shape (n_samples,)
        n_bins : int, default=15
        strategy : {"uniform", "quantile"}, default="uniform"
        name : str, default=None
            Legend name; default the estimator's class name.
        ax : matplotlib Axes or array of Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ReliabilityDisplay
        """
        check_fitted(estimator)
        proba = estimator.predict_proba(X)
        name = type(estimator).__name__ if name is None else name
        return cls.from_predictions(
            y,
            proba,
            labels=estimator.classes_,
            n_bins=n_bins,
            strategy=strategy,
            name=name,
            ax=ax,
            **kwargs,
        )


_METRIC_NAMES = {
    "roc_auc": "ROC AUC",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "fnfr": "false no-finding rate",
}


def _field(result, name, default=None):
    """A column of a subgroup result (Bunch or DataFrame) or a scalar of it."""
    if hasattr(result, "attrs") and hasattr(result, "columns"):  # DataFrame
        if name in result.columns:
            return result[name].to_numpy()
        return result.attrs.get(name, default)
    return result.get(name, default)


class SubgroupDisplay:
    """Forest plot of a metric per subgroup, with intervals and called gaps.

    One row per group (grouped under their attribute: sex, age band, view,
    ...): the group's value and its bootstrap interval as a point and a
    horizontal bar, the value on all images as a vertical dashed line.
    Groups whose gap to the rest of the data has an interval that excludes 0
    (:func:`~skcxr.metrics.subgroup_metrics`'s ``gap_called``) are drawn in
    ``called_color`` and marked with a star; groups that cannot be estimated
    are listed with their counts instead of a point.

    Parameters
    ----------
    attribute, groups : array-like of shape (n_groups,)
        The attribute and the value of every group.
    value, ci_low, ci_high : array-like of shape (n_groups,)
        The metric and its interval (nan where not estimable).
    n : array-like of shape (n_groups,), default=None
        Images per group, shown next to the group's name.
    n_positive : array-like of shape (n_groups,), default=None
        Images with the finding per group, shown for groups not estimable.
    gap_called : array-like of bool of shape (n_groups,), default=None
    estimable : array-like of bool of shape (n_groups,), default=None
        Default: where ``value`` is finite.
    overall : float, default=None
        The metric on all images (the vertical line).
    metric : str, default=None
        Name of the metric (x-axis label).
    confidence_level : float, default=None
        Coverage of the intervals (legend).

    Attributes
    ----------
    intervals_ : matplotlib LineCollection or None
        The intervals of the estimable groups.
    points_ : matplotlib PathCollection or None
        Their values.
    called_ : matplotlib PathCollection or None
        Stars on the groups with a called gap.
    overall_line_ : matplotlib Line2D or None
    not_estimable_texts_ : list of matplotlib Text
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import SubgroupDisplay
    >>> rng = np.random.default_rng(0)
    >>> n = 600
    >>> sex = rng.choice(["F", "M"], n)
    >>> view = np.where(np.arange(n) < 8, "AP", "PA")
    >>> y = rng.integers(0, 2, n)
    >>> score = y * np.where(sex == "F", 0.5, 2.0) + rng.normal(size=n)
    >>> display = SubgroupDisplay.from_predictions(
    ...     y, score, {"sex": sex, "view": view}, n_resamples=200, random_state=0)
    >>> [t.get_text() for t in display.ax_.get_yticklabels()]
    ['sex', 'F (n=...)', 'M (n=...)', 'view', 'AP (n=8)', 'PA (n=592)']
    >>> len(display.called_.get_offsets()), len(display.not_estimable_texts_)
    (2, 1)
    """

    def __init__(
        self,
        attribute,
        groups,
        value,
        ci_low,
        ci_high,
        *,
        n=None,
        n_positive=None,
        gap_called=None,
        estimable=None,
        overall=None,
        metric=None,
        confidence_level=None,
    ):
        self.attribute = attribute
        self.groups = groups
        self.value = value
        self.ci_low = ci_low
        self.ci_high = ci_high
        self.n = n
        self.n_positive = n_positive
        self.gap_called = gap_called
        self.estimable = estimable
        self.overall = overall
        self.metric = metric
        self.confidence_level = confidence_level

    def _rows(self):
        """Plot rows top to bottom: ``(label, group index or None)``."""
        attribute = np.asarray(self.attribute, dtype=object)
        rows = []
        for name in dict.fromkeys(attribute.tolist()):
            rows.append((str(name), None))
            for j in np.flatnonzero(attribute == name):
                label = str(np.asarray(self.groups, dtype=object)[j])
                if self.n is not None:
                    label += f" (n={int(np.asarray(self.n)[j])})"
                rows.append((label, int(j)))
        return rows

    def plot(self, ax=None, *, color="tab:blue", called_color="tab:red"):
        """Draw the forest plot.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        color : str, default="tab:blue"
            Colour of the groups without a called gap.
        called_color : str, default="tab:red"
            Colour of the groups whose gap interval excludes 0.

        Returns
        -------
        display : SubgroupDisplay
        """
        import matplotlib.pyplot as plt

        value = np.asarray(self.value, dtype=float)
        low = np.asarray(self.ci_low, dtype=float)
        high = np.asarray(self.ci_high, dtype=float)
        k = len(value)
        if not (len(low) == len(high) == len(np.asarray(self.groups)) == k):
            raise ValueError(
                "value, ci_low, ci_high and groups must have one entry per group."
            )
        estimable = (
            np.isfinite(value)
            if self.estimable is None
            else np.asarray(self.estimable, bool)
        )
        called = (
            np.zeros(k, bool)
            if self.gap_called is None
            else np.asarray(self.gap_called, bool)
        )
        rows = self._rows()
        if ax is None:
            _, ax = plt.subplots(
                figsize=(6.0, 0.35 * len(rows) + 1.2), layout="constrained"
            )
        fig = ax.figure
        position = {j: y for y, (_, j) in enumerate(rows) if j is not None}
        shown = [j for j in range(k) if estimable[j]]
        self.intervals_ = self.points_ = self.called_ = self.overall_line_ = None
        if shown:
            ys = np.array([position[j] for j in shown], dtype=float)
            colours = [called_color if called[j] else color for j in shown]
            self.intervals_ = ax.hlines(
                ys,
                low[shown],
                high[shown],
                colors=colours,
                linewidth=2,
                label=(
                    "interval"
                    if self.confidence_level is None
                    else f"{100 * self.confidence_level:.3g}% interval"
                ),
            )
            self.points_ = ax.scatter(
                value[shown], ys, c=colours, s=30, zorder=3, label="group value"
            )
            marked = [j for j in shown if called[j]]
            if marked:
                span = max(1e-9, float(np.max(high[shown]) - np.min(low[shown])))
                self.called_ = ax.scatter(
                    high[marked] + 0.03 * span,
                    [position[j] for j in marked],
                    marker="*",
                    s=90,
                    c=called_color,
                    zorder=3,
                    label="gap to the rest called",
                )
        if self.overall is not None and np.isfinite(self.overall):
            self.overall_line_ = ax.axvline(
                float(self.overall),
                color="gray",
                linestyle="--",
                label=f"all images ({float(self.overall):.3f})",
            )
        self.not_estimable_texts_ = []
        x_text = float(self.overall) if self.overall is not None else 0.5
        for j in range(k):
            if not estimable[j]:
                detail = "not estimable"
                if self.n_positive is not None:
                    detail += (
                        f" ({int(np.asarray(self.n_positive)[j])} with the finding)"
                    )
                self.not_estimable_texts_.append(
                    ax.text(
                        x_text,
                        position[j],
                        detail,
                        va="center",
                        ha="center",
                        fontsize=8,
                        color="gray",
                        style="italic",
                    )
                )
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([label for label, _ in rows])
        for tick, (_, j) in zip(ax.get_yticklabels(), rows):
            if j is None:
                tick.set_fontweight("bold")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel(_METRIC_NAMES.get(self.metric, self.metric or "metric"))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        self.figure_, self.ax_ = fig, ax
        return self

    @classmethod
    def from_result(cls, result, *, ax=None, **kwargs):
        """Draw the result of :func:`~skcxr.metrics.subgroup_metrics`.

        Parameters
        ----------
        result : Bunch or DataFrame
            As returned by :func:`~skcxr.metrics.subgroup_metrics`.
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : SubgroupDisplay
        """
        metric = _field(result, "metric")
        threshold = _field(result, "threshold")
        if metric in _METRIC_NAMES and threshold is not None:
            metric = f"{_METRIC_NAMES[metric]} at threshold {threshold:.3g}"
        display = cls(
            _field(result, "attribute"),
            _field(result, "groups"),
            _field(result, "value"),
            _field(result, "ci_low"),
            _field(result, "ci_high"),
            n=_field(result, "n"),
            n_positive=_field(result, "n_positive"),
            gap_called=_field(result, "gap_called"),
            estimable=_field(result, "estimable"),
            overall=_field(result, "overall"),
            metric=metric,
            confidence_level=_field(result, "confidence_level"),
        )
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def from_predictions(
        cls, y_true, y_score, groups, *, metric="roc_auc", ax=None, **kwargs
    ):
        """Compute :func:`~skcxr.metrics.subgroup_metrics` and draw it.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            Binary truth (the finding or not).
        y_score : array-like of shape (n_samples,)
            Score of the finding.
        groups : array-like of shape (n_samples,), dict or DataFrame
            One or several subgroup attributes.
        metric : {"roc_auc", "sensitivity", "specificity", "fnfr"}, default="roc_auc"
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :func:`~skcxr.metrics.subgroup_metrics` (``threshold``,
            ``pos_label``, ``min_count``, ``n_resamples``,
            ``confidence_level``, ``random_state``, ``patient_ids``).

        Returns
        -------
        display : SubgroupDisplay
        """
        result = subgroup_metrics(y_true, y_score, groups, metric=metric, **kwargs)
        return cls.from_result(result, ax=ax)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        groups,
        *,
        pos_label=None,
        metric="roc_auc",
        ax=None,
        **kwargs,
    ):
        """Score ``X`` with a fitted binary classifier and draw its subgroups.

        Parameters
        ----------
        estimator : fitted binary classifier
            With ``predict_proba`` and ``classes_``.
        X : array-like
            What ``predict_proba`` takes (images or file paths).
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), dict or DataFrame
        pos_label : str, int or float, default=None
            The class with the finding; default ``classes_[1]``.
        metric : {"roc_auc", "sensitivity", "specificity", "fnfr"}, default="roc_auc"
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :func:`~skcxr.metrics.subgroup_metrics`.

        Returns
        -------
        display : SubgroupDisplay
        """
        check_fitted(estimator)
        classes = np.asarray(estimator.classes_)
        if len(classes) != 2:
            raise ValueError(
                f"estimator: from_estimator needs a binary classifier; it has "
                f"{len(classes)} classes. Use from_predictions with y_true != "
                "<healthy label> and y_score = 1 - P(healthy)."
            )
        pos_label = classes[1].item() if pos_label is None else pos_label
        if pos_label not in classes.tolist():
            raise ValueError(
                f"pos_label={pos_label!r} is not one of the classes {classes.tolist()}."
            )
        column = classes.tolist().index(pos_label)
        score = estimator.predict_proba(X)[:, column]
        return cls.from_predictions(
            y, score, groups, metric=metric, pos_label=pos_label, ax=ax, **kwargs
        )
