"""Bootstrap confidence intervals of a metric, per image or per patient.

A test set of a few hundred chest X-rays gives a metric that can move by several
points from one draw of patients to the next; the percentile bootstrap (Efron &
Tibshirani 1993) shows how much. When a patient contributes several images (the
follow-up studies of ChestX-ray14, Wang et al. 2017), the images are not
independent, so the resampling unit must be the patient (the cluster bootstrap,
Field & Welsh 2007), otherwise the interval is too narrow.
"""

import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_consistent_length

from ..utils._random import seed_from

__all__ = [
    "BootstrapResult",
    "PairedBootstrapResult",
    "bootstrap_ci",
    "paired_bootstrap",
]


@dataclass(frozen=True)
class BootstrapResult:
    """Result of :func:`bootstrap_ci`.

    Attributes
    ----------
    estimate : float
        The metric on the full data.
    low, high : float
        Percentile bootstrap interval at ``confidence_level``.
    confidence_level : float
    n_resamples : int
        Resamples on which the metric was defined (the interval uses them).
    n_skipped : int
        Resamples skipped because the metric raised a ValueError or returned nan.
    distribution : ndarray of shape (n_resamples,)
        The metric on every valid resample.

    Examples
    --------
    >>> from sklearn.metrics import accuracy_score
    >>> from skcxr.metrics import bootstrap_ci
    >>> y = [0, 1] * 20
    >>> res = bootstrap_ci(y, y, accuracy_score, n_resamples=50, random_state=0)
    >>> res.estimate, res.low, res.high
    (1.0, 1.0, 1.0)
    """

    estimate: float
    low: float
    high: float
    confidence_level: float
    n_resamples: int
    n_skipped: int
    distribution: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class PairedBootstrapResult:
    """Result of :func:`paired_bootstrap`.

    Attributes
    ----------
    estimate_a, estimate_b : float
        The metric of each model on the full data.
    difference : float
        ``estimate_a - estimate_b``.
    low, high : float
        Percentile bootstrap interval of the difference at ``confidence_level``.
    significant : bool
        Whether the interval excludes 0.
    confidence_level : float
    n_resamples : int
        Resamples on which the metric was defined for both models.
    n_skipped : int
        Resamples skipped because the metric was undefined for either model.
    distribution : ndarray of shape (n_resamples,)
        The difference on every valid resample.

    Examples
    --------
    >>> from sklearn.metrics import accuracy_score
    >>> from skcxr.metrics import paired_bootstrap
    >>> y = [0, 1] * 20
    >>> res = paired_bootstrap(y, y, y, accuracy_score, n_resamples=50, random_state=0)
    >>> res.difference, res.significant
    (0.0, False)
    """

    estimate_a: float
    estimate_b: float
    difference: float
    low: float
    high: float
    significant: bool
    confidence_level: float
    n_resamples: int
    n_skipped: int
    distribution: np.ndarray = field(repr=False, compare=False)


def _check_rng(random_state):
    """A numpy Generator from ``random_state``; never the global numpy state."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(seed_from(random_state))
    return np.random.default_rng(random_state)


def _check_arrays(arrays, names, groups):
    out = []
    for array, name in zip(arrays, names):
        array = np.asarray(array)
        if array.ndim not in (1, 2):
            raise ValueError(
                f"{name} must be 1-D (labels or scores) or 2-D (probabilities, "
                f"label indicators); got an array of shape {array.shape}."
            )
        out.append(array)
    check_consistent_length(*out)
    if len(out[0]) == 0:
        raise ValueError(f"{names[0]} is empty; cannot bootstrap 0 samples.")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.ndim != 1 or len(groups) != len(out[0]):
            raise ValueError(
                f"groups must be 1-D with one id per sample ({len(out[0])}); got "
                f"shape {groups.shape}."
            )
    return out, groups


def _resample_indices(n_samples, groups, n_resamples, rng):
    """Yield ``n_resamples`` row-index arrays of bootstrap resamples.

    Without groups, rows are drawn with replacement. With groups, groups are
    drawn with replacement and every row of a drawn group is taken (the
    cluster bootstrap), so a resample has a varying number of rows.
    """
    if groups is None:
        for _ in range(n_resamples):
            yield rng.integers(0, n_samples, n_samples)
        return
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")  # rows sorted by group
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_groups = len(counts)
    for _ in range(n_resamples):
        drawn = rng.integers(0, n_groups, n_groups)
        lengths = counts[drawn]
        # Position of every row in ``order``: the start of its group plus its
        # rank inside the group.
        offsets = np.repeat(starts[drawn] - np.cumsum(lengths) + lengths, lengths)
        yield order[offsets + np.arange(lengths.sum())]


def _evaluate(metric, y_true, y_pred, caught):
    """``(value, reason, warned)``: value None where the metric is undefined.

    The metric is undefined when it raises a ValueError or returns nan (recent
    scikit-learn returns nan with an ``UndefinedMetricWarning``, for example the
    ROC AUC of a resample with one class). ``caught`` is the list that records
    warnings (the caller catches them, so that a thousand resamples do not
    print a thousand warnings, and summarises them).
    """
    n_caught = len(caught)
    try:
        value = np.asarray(metric(y_true, y_pred), dtype=float)
    except ValueError as exc:
        return None, str(exc), None
    warned = str(caught[-1].message) if len(caught) > n_caught else None
    if value.ndim != 0:
        raise ValueError(
            f"metric must return a scalar; it returned an array of shape {value.shape}."
        )
    if np.isnan(value):
        return None, warned or "the metric returned nan", None
    return float(value), None, warned


def _full_data(metric, y_true, y_pred, name):
    """The metric on the full data; its errors and warnings reach the caller."""
    value = np.asarray(metric(y_true, y_pred), dtype=float)
    if value.ndim != 0:
        raise ValueError(
            f"metric must return a scalar; it returned an array of shape {value.shape}."
        )
    if np.isnan(value):
        raise ValueError(
            f"metric is nan on the full data ({name}); no interval can be computed."
        )
    return float(value)


def _bootstrap(metric, y_true, y_preds, groups, n_resamples, rng):
    """Statistics of every valid resample (the difference for two predictions).

    Written by hand rather than with :func:`scipy.stats.bootstrap`: scipy cannot
    resample clusters (all rows of a patient together), and for a metric that
    is not vectorised it calls the metric once per resample anyway.
    """
    stats, skipped, warned = [], {}, {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for idx in _resample_indices(len(y_true), groups, n_resamples, rng):
            values = []
            for y_pred in y_preds:
                value, reason, warning = _evaluate(
                    metric, y_true[idx], y_pred[idx], caught
                )
                if value is None:
                    skipped[reason] = skipped.get(reason, 0) + 1
                    break
                if warning is not None:
                    warned[warning] = warned.get(warning, 0) + 1
                values.append(value)
            else:
                stats.append(values[0] if len(values) == 1 else values[0] - values[1])
            del caught[:]  # keep memory flat over many resamples
    return np.asarray(stats, dtype=float), skipped, warned


def _most_common(counts):
    return max(counts, key=counts.get)


def _interval(stats, skipped, warned, n_resamples, confidence_level, unit):
    n_valid = len(stats)
    n_skipped = n_resamples - n_valid
    if n_skipped:
        detail = (
            f"{n_skipped} of {n_resamples} bootstrap resamples (of {unit}) were "
            "skipped because the metric is undefined on them (most often: "
            f"{_most_common(skipped)})"
        )
        if n_valid < max(2, n_resamples / 2):
            raise ValueError(
                f"{detail}; only {n_valid} remain, too few for a "
                f"{confidence_level:.0%} interval. Use a larger test set (or more "
                "patients), or a metric defined on every resample."
            )
        warnings.warn(
            f"{detail}; the interval uses the {n_valid} others.",
            RuntimeWarning,
            stacklevel=3,
        )
    if warned:
        warnings.warn(
            f"the metric warned on {sum(warned.values())} of the {n_valid} bootstrap "
            f"resamples used (most often: {_most_common(warned)})",
            RuntimeWarning,
            stacklevel=3,
        )
    low, high = _percentile_interval(stats, confidence_level)
    return low, high, n_valid, n_skipped


def _percentile_interval(stats, confidence_level):
    """The percentile interval of the valid resample statistics ``stats``."""
    alpha = 1.0 - confidence_level
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


_COMMON = {
    "groups": ["array-like", None],
    "n_resamples": [Interval(Integral, 1, None, closed="left")],
    "confidence_level": [Interval(Real, 0, 1, closed="neither")],
    "random_state": [
        Interval(Integral, 0, None, closed="left"),
        np.random.Generator,
        np.random.RandomState,
        None,
    ],
}


@validate_params(
    {"y_true": ["array-like"], "y_pred": ["array-like"], "metric": [callable]}
    | _COMMON,
    prefer_skip_nested_validation=True,
)
def bootstrap_ci(
    y_true,
    y_pred,
    metric,
    *,
    groups=None,
    n_resamples=1000,
    confidence_level=0.95,
    random_state=None,
):
    """Percentile bootstrap confidence interval of ``metric(y_true, y_pred)``.

    Rows (images) are resampled with replacement; with ``groups`` (patient
    ids) whole patients are resampled instead, every image of a drawn patient
    coming along (the cluster bootstrap). Use ``groups`` whenever a patient
    has several images: they are correlated, and an image-level bootstrap
    then gives too narrow an interval.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        True labels, or a label-indicator matrix (multi-label).
    y_pred : array-like of shape (n_samples,) or (n_samples, n_columns)
        Predicted labels, scores, class probabilities or a multi-label matrix:
        whatever ``metric`` takes. Rows are resampled together with ``y_true``.
    metric : callable
        ``metric(y_true, y_pred) -> float``, for example
        :func:`sklearn.metrics.roc_auc_score` or
        :func:`skcxr.metrics.false_no_finding_rate` (bind keyword arguments
        with :func:`functools.partial`).
    groups : array-like of shape (n_samples,), default=None
        Patient id of every row. None resamples rows.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the interval.
    random_state : int, numpy Generator, RandomState or None, default=None
        Source of the resamples (a NumPy ``Generator`` is built from it; the
        global NumPy state is never used). Pass an int for reproducible
        intervals.

    Returns
    -------
    result : BootstrapResult
        Frozen dataclass with ``estimate`` (the metric on the full data),
        ``low``, ``high``, ``confidence_level``, ``n_resamples`` (valid
        resamples), ``n_skipped`` and ``distribution``.

    Raises
    ------
    ValueError
        When the metric is nan on the full data (its own errors propagate), or
        undefined on more than half of the resamples (for example ROC AUC on
        resamples that hold one class only); the message says how many were
        skipped and why.

    Warns
    -----
    RuntimeWarning
        One warning when some (at most half) of the resamples were skipped
        because the metric is undefined on them (it raised a ValueError or
        returned nan), and one that summarises the warnings the metric emitted
        on the resamples used (they are not repeated once per resample).

    See Also
    --------
    paired_bootstrap : Compare two models on the same resamples.

    Notes
    -----
    The percentile method (Efron & Tibshirani 1993): the interval is the
    ``(1 - confidence_level) / 2`` and ``(1 + confidence_level) / 2``
    quantiles of the metric over the resamples. Skipping undefined resamples
    conditions on resamples where the metric exists, hence the warning.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.metrics import accuracy_score, roc_auc_score
    >>> from skcxr.metrics import bootstrap_ci
    >>> rng = np.random.default_rng(0)
    >>> y_true = rng.integers(0, 2, 200)
    >>> y_pred = np.where(rng.random(200) < 0.8, y_true, 1 - y_true)
    >>> res = bootstrap_ci(
    ...     y_true, y_pred, accuracy_score, n_resamples=200, random_state=0
    ... )
    >>> bool(res.low < res.estimate < res.high), res.n_resamples
    (True, 200)

    Patient-level interval of the ROC AUC of a score, four images per patient:

    >>> patients = np.repeat(np.arange(50), 4)
    >>> score = y_true + rng.normal(0, 0.8, 200)
    >>> res = bootstrap_ci(
    ...     y_true, score, roc_auc_score, groups=patients, n_resamples=200,
    ...     random_state=0,
    ... )
    >>> bool(res.low < res.estimate < res.high)
    True
    """
    (y_true, y_pred), groups = _check_arrays(
        (y_true, y_pred), ("y_true", "y_pred"), groups
    )
    estimate = _full_data(metric, y_true, y_pred, "y_pred")
    rng = _check_rng(random_state)
    stats, skipped, warned = _bootstrap(
        metric, y_true, [y_pred], groups, n_resamples, rng
    )
    unit = "images" if groups is None else "groups"
    low, high, n_valid, n_skipped = _interval(
        stats, skipped, warned, n_resamples, confidence_level, unit
    )
    return BootstrapResult(
        estimate=estimate,
        low=low,
        high=high,
        confidence_level=float(confidence_level),
        n_resamples=n_valid,
        n_skipped=n_skipped,
        distribution=stats,
    )


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred_a": ["array-like"],
        "y_pred_b": ["array-like"],
        "metric": [callable],
    }
    | _COMMON,
    prefer_skip_nested_validation=True,
)
def paired_bootstrap(
    y_true,
    y_pred_a,
    y_pred_b,
    metric,
    *,
    groups=None,
    n_resamples=1000,
    confidence_level=0.95,
    random_state=None,
):
    """Paired bootstrap interval of the difference of a metric between two models.

    Both models are scored on the same resamples (of images, or of patients
    with ``groups``), so the interval of ``metric(a) - metric(b)`` accounts for
    their correlated errors: a paired comparison is far tighter than two
    overlapping stand-alone intervals suggest.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        True labels, or a label-indicator matrix (multi-label).
    y_pred_a, y_pred_b : array-like of shape (n_samples,) or (n_samples, n_columns)
        Predictions of model A and model B on the same samples (labels, scores
        or probabilities: whatever ``metric`` takes).
    metric : callable
        ``metric(y_true, y_pred) -> float``. For a loss (lower is better) a
        negative difference favours model A.
    groups : array-like of shape (n_samples,), default=None
        Patient id of every row. None resamples rows.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    confidence_level : float in (0, 1), default=0.95
        Coverage of the interval.
    random_state : int, numpy Generator, RandomState or None, default=None
        Source of the resamples (a NumPy ``Generator``; never the global state).

    Returns
    -------
    result : PairedBootstrapResult
        Frozen dataclass with ``estimate_a``, ``estimate_b``, ``difference``
        (``estimate_a - estimate_b``), ``low`` and ``high`` (interval of the
        difference), ``significant`` (the interval excludes 0),
        ``confidence_level``, ``n_resamples`` (valid resamples), ``n_skipped``
        and ``distribution``.

    Raises
    ------
    ValueError
        When the metric is nan on the full data for either model, or
        undefined on more than half of the resamples (for either model).

    Warns
    -----
    RuntimeWarning
        When some (at most half) of the resamples were skipped, and to
        summarise the warnings the metric emitted on the resamples used.

    See Also
    --------
    bootstrap_ci : Interval of one model's metric.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.metrics import accuracy_score
    >>> from skcxr.metrics import paired_bootstrap
    >>> rng = np.random.default_rng(0)
    >>> y_true = rng.integers(0, 2, 300)
    >>> good = np.where(rng.random(300) < 0.9, y_true, 1 - y_true)
    >>> poor = np.where(rng.random(300) < 0.7, y_true, 1 - y_true)
    >>> res = paired_bootstrap(
    ...     y_true, good, poor, accuracy_score, n_resamples=200, random_state=0
    ... )
    >>> bool(res.difference > 0), res.significant
    (True, True)
    """
    (y_true, y_pred_a, y_pred_b), groups = _check_arrays(
        (y_true, y_pred_a, y_pred_b), ("y_true", "y_pred_a", "y_pred_b"), groups
    )
    estimate_a = _full_data(metric, y_true, y_pred_a, "y_pred_a")
    estimate_b = _full_data(metric, y_true, y_pred_b, "y_pred_b")
    rng = _check_rng(random_state)
    stats, skipped, warned = _bootstrap(
        metric, y_true, [y_pred_a, y_pred_b], groups, n_resamples, rng
    )
    unit = "images" if groups is None else "groups"
    low, high, n_valid, n_skipped = _interval(
        stats, skipped, warned, n_resamples, confidence_level, unit
    )
    return PairedBootstrapResult(
        estimate_a=estimate_a,
        estimate_b=estimate_b,
        difference=estimate_a - estimate_b,
        low=low,
        high=high,
        significant=bool(low > 0 or high < 0),
        confidence_level=float(confidence_level),
        n_resamples=n_valid,
        n_skipped=n_skipped,
        distribution=stats,
    )
