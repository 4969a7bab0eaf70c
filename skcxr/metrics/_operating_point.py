"""Operating thresholds of a score for a target sensitivity or specificity.

A screening model is used at one threshold: images scoring at or above it are
called positive. The threshold is chosen on validation data for a clinical
target (for example 95% sensitivity, so that few patients with a finding are
sent home) and then reported, unchanged, on the test set. Chosen on the test
set it would report the target by construction, not what the model achieves
on new patients.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.metrics import roc_curve
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = ["threshold_for_sensitivity", "threshold_for_specificity"]


def _roc(y_true, y_score, pos_label):
    """``(fpr, tpr, thresholds)`` at every distinct score (decreasing thresholds)."""
    y_true = column_or_1d(y_true)
    y_score = column_or_1d(y_score)
    check_consistent_length(y_true, y_score)
    if len(np.unique(y_true)) != 2:
        raise ValueError(
            "y_true must hold both classes (images with and without the finding) "
            f"to choose a threshold; got the labels {np.unique(y_true).tolist()}."
        )
    if not np.all(np.isfinite(y_score)):
        raise ValueError("y_score must be finite.")
    if pos_label is not None and pos_label not in np.unique(y_true).tolist():
        raise ValueError(
            f"pos_label={pos_label!r} is not among the labels of y_true "
            f"{np.unique(y_true).tolist()}."
        )
    return roc_curve(y_true, y_score, pos_label=pos_label, drop_intermediate=False)


_PARAMS = {
    "y_true": ["array-like"],
    "y_score": ["array-like"],
    "pos_label": [str, Integral, Real, None],
}


@validate_params(
    _PARAMS | {"sensitivity": [Interval(Real, 0, 1, closed="right")]},
    prefer_skip_nested_validation=True,
)
def threshold_for_sensitivity(y_true, y_score, sensitivity=0.95, *, pos_label=None):
    """The largest threshold whose sensitivity reaches ``sensitivity``.

    Images with ``y_score >= threshold`` are called positive (the convention
    of :func:`sklearn.metrics.roc_curve` and of
    :class:`~sklearn.model_selection.FixedThresholdClassifier`). Among the
    thresholds at which the sensitivity (true-positive rate) on ``y_true`` is
    at least ``sensitivity``, the largest is returned: it gives the highest
    specificity that meets the target.

    Choose it on a validation set, never on the test set: on the data it was
    chosen on it meets the target by construction, and only a held-out test
    set tells how far from the target the model lands on new patients (the
    test sensitivity varies around the target with the number of positive
    images of the validation set).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels of the validation images.
    y_score : array-like of shape (n_samples,)
        Scores of the positive class (higher: more likely positive), such as
        ``predict_proba(X)[:, 1]``.
    sensitivity : float in (0, 1], default=0.95
        Target sensitivity.
    pos_label : str, int or float, default=None
        The positive class; default 1 when the labels are in {0, 1} or
        {-1, 1} (as in :func:`~sklearn.metrics.roc_curve`).

    Returns
    -------
    threshold : float
        One of the scores of the positive images in ``y_score``.

    See Also
    --------
    threshold_for_specificity : The threshold for a target specificity.
    sklearn.model_selection.FixedThresholdClassifier : A classifier that
        predicts at a given threshold.
    sklearn.model_selection.TunedThresholdClassifierCV : A threshold that
        maximises a score, by cross-validation.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import threshold_for_sensitivity
    >>> y_val = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    >>> score = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    >>> threshold_for_sensitivity(y_val, score, 0.75)
    0.7
    >>> threshold_for_sensitivity(y_val, score, 1.0)
    0.4
    """
    _, tpr, thresholds = _roc(y_true, y_score, pos_label)
    # tpr increases as the threshold decreases: the first index that reaches
    # the target is the largest threshold (tpr reaches 1 at the last one).
    index = int(np.argmax(tpr >= sensitivity - 1e-12))
    return float(thresholds[index])


@validate_params(
    _PARAMS | {"specificity": [Interval(Real, 0, 1, closed="both")]},
    prefer_skip_nested_validation=True,
)
def threshold_for_specificity(y_true, y_score, specificity=0.95, *, pos_label=None):
    """The smallest threshold whose specificity reaches ``specificity``.

    Images with ``y_score >= threshold`` are called positive. The specificity
    (true-negative rate) grows with the threshold, so among the thresholds at
    which the specificity on ``y_true`` is at least ``specificity`` the
    smallest is returned: it gives the highest sensitivity that meets the
    target.

    Choose it on a validation set, never on the test set (see
    :func:`threshold_for_sensitivity`).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels of the validation images.
    y_score : array-like of shape (n_samples,)
        Scores of the positive class (higher: more likely positive).
    specificity : float in [0, 1], default=0.95
        Target specificity.
    pos_label : str, int or float, default=None
        The positive class; default 1 when the labels are in {0, 1} or
        {-1, 1}.

    Returns
    -------
    threshold : float
        A score of ``y_score``, or ``inf`` (every image negative, with a
        warning) when even the highest score gives a specificity below the
        target (a negative image has the highest score).

    See Also
    --------
    threshold_for_sensitivity : The threshold for a target sensitivity.
    sklearn.model_selection.FixedThresholdClassifier : A classifier that
        predicts at a given threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import threshold_for_specificity
    >>> y_val = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    >>> score = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    >>> threshold_for_specificity(y_val, score, 0.75)
    0.4
    >>> threshold_for_specificity(y_val, score, 1.0)
    0.7
    """
    fpr, _, thresholds = _roc(y_true, y_score, pos_label)
    # fpr increases as the threshold decreases: the last index whose
    # specificity 1 - fpr still reaches the target is the smallest threshold.
    reached = np.flatnonzero(1.0 - fpr >= specificity - 1e-12)
    threshold = float(thresholds[reached[-1]])
    if np.isinf(threshold):
        warnings.warn(
            f"no finite threshold reaches specificity={specificity}: the highest "
            "score belongs to an image without the finding. Returning inf (every "
            "image negative).",
            RuntimeWarning,
            stacklevel=2,
        )
    return threshold
