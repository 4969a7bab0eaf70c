"""Chest X-ray metrics and scorers: FNFR, sensitivity / specificity, per-class F1.

Every scorer here works as ``GridSearchCV(scoring=...)`` (alone or in the dict
returned by :func:`cxr_scoring`).
"""

import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.metrics import f1_score, get_scorer, make_scorer
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ..utils._param_validation import IntInterval
from ..utils._validation import check_class_labels

__all__ = [
    "false_no_finding_rate",
    "sensitivity_specificity",
    "per_class_f1",
    "f1_for_class",
    "fnfr_scorer",
    "sensitivity_scorer",
    "specificity_scorer",
    "cxr_scoring",
    "inference_time",
]


def _check_targets(y_true, y_pred):
    y_true = check_class_labels(column_or_1d(y_true), name="y_true")
    y_pred = check_class_labels(column_or_1d(y_pred), name="y_pred")
    check_consistent_length(y_true, y_pred)
    if not len(y_true):
        raise ValueError("y_true and y_pred are empty: there is nothing to score.")
    return y_true, y_pred


# Names under which data sets spell their "no finding" class: Kermany et al. 2018
# ("NORMAL" folders), Wang et al. 2017 ChestX-ray14 ("No Finding").
_HEALTHY_NAMES = ("normal", "no finding", "no_finding", "healthy")


def _py(value):
    return value.item() if isinstance(value, np.generic) else value


def _suggest(label, found, *, healthy):
    """The label of ``found`` the user probably meant by ``label``, or None."""
    folded = str(label).casefold()
    for candidate in found:
        if str(candidate).casefold() == folded:
            return candidate
    for candidate in found:
        if (str(candidate).casefold() in _HEALTHY_NAMES) == healthy:
            return candidate
    if healthy and any(isinstance(c, (int, float)) and c == 0 for c in found):
        return 0  # integer labels: 0 is the usual "no finding" code
    return None


def _check_label_present(label, y_true, y_pred, *, param, healthy):
    """Raise when ``label`` is in neither ``y_true`` nor ``y_pred``.

    A label that matches nothing silently turns every image into "not this
    class": a model that predicts "healthy" for everyone would then get a
    perfect false-no-finding rate. Refuse it, and name the labels present.
    """
    found = [_py(lab) for lab in unique_labels(y_true, y_pred)]
    if any(lab == label for lab in found):
        return
    suggestion = _suggest(label, found, healthy=healthy)
    if suggestion is not None:
        hint = f"(e.g. {param}={suggestion!r})"
    elif healthy:
        hint = "naming the no-finding class, or score images that include it"
    else:
        hint = "naming the finding, or score images that include it"
    raise ValueError(
        f"{param}={label!r} is not among the labels {found}; pass {param}=... {hint}."
    )


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "healthy_label": [str, Integral],
        "zero_division": [Interval(Real, 0, 1, closed="both"), "nan"],
    },
    prefer_skip_nested_validation=True,
)
def false_no_finding_rate(y_true, y_pred, *, healthy_label="normal", zero_division=0.0):
    """False-no-finding rate: images with a finding predicted as healthy.

    ``FNFR = #(y_true != healthy and y_pred == healthy) / #(y_true != healthy)``.
    It is the share of sick patients a screening model would send home. Lower
    is better.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    healthy_label : str or int, default="normal"
        The "no finding" class. It must occur in ``y_true`` or ``y_pred``
        (Kermany et al. 2018 spell it ``"NORMAL"``, the three-class labels
        ``"normal"``).
    zero_division : float in [0, 1] or nan, default=0.0
        Value returned when ``y_true`` has no image with a finding (0/0); a
        ``RuntimeWarning`` is emitted.

    Returns
    -------
    fnfr : float in [0, 1]

    Raises
    ------
    ValueError
        When ``healthy_label`` is in neither ``y_true`` nor ``y_pred``: every
        image would count as a finding that is never predicted as healthy, and
        a model that calls everyone healthy would score a perfect 0.

    Examples
    --------
    >>> from skcxr.metrics import false_no_finding_rate
    >>> y_true = ["normal", "virus", "bacteria", "virus"]
    >>> y_pred = ["normal", "normal", "bacteria", "bacteria"]
    >>> false_no_finding_rate(y_true, y_pred)
    0.333...

    A misspelled ``healthy_label`` is refused rather than scored:

    >>> false_no_finding_rate(["NORMAL", "PNEUMONIA"], ["NORMAL", "NORMAL"])
    Traceback (most recent call last):
    ...
    ValueError: healthy_label='normal' is not among the labels ['NORMAL', ...
    """
    y_true, y_pred = _check_targets(y_true, y_pred)
    _check_label_present(
        healthy_label, y_true, y_pred, param="healthy_label", healthy=True
    )
    sick = y_true != healthy_label
    n_sick = int(sick.sum())
    if n_sick == 0:
        warnings.warn(
            "false_no_finding_rate is undefined: every image of y_true is "
            f"healthy_label={healthy_label!r}, none has a finding; "
            f"returning zero_division={zero_division}.",
            RuntimeWarning,
            stacklevel=2,
        )
        return float(zero_division)
    return float(np.sum(sick & (y_pred == healthy_label)) / n_sick)


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "positive_label": [str, Integral, None],
        "labels": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def sensitivity_specificity(y_true, y_pred, *, positive_label=None, labels=None):
    """Sensitivity (recall of the positive class) and specificity.

    Binary case: pass ``positive_label`` (the finding, for example
    ``"pneumonia"``). Multi-class: one-vs-rest for each label.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    positive_label : str or int, default=None
        If given, return the pair for this label against all others. It must
        occur in ``y_true`` or ``y_pred``.
    labels : array-like, default=None
        Labels to report when ``positive_label`` is None (default: all labels
        present in ``y_true`` or ``y_pred``).

    Returns
    -------
    (sensitivity, specificity) : tuple of float
        When ``positive_label`` is given. A value whose denominator is 0 is nan.
    dict of label -> (sensitivity, specificity)
        Otherwise, one-vs-rest per label.

    Raises
    ------
    ValueError
        When ``positive_label`` is in neither ``y_true`` nor ``y_pred``; the
        message names the labels found.

    Examples
    --------
    >>> from skcxr.metrics import sensitivity_specificity
    >>> y_true = ["normal", "pneumonia", "pneumonia", "normal"]
    >>> y_pred = ["normal", "pneumonia", "normal", "normal"]
    >>> sensitivity_specificity(y_true, y_pred, positive_label="pneumonia")
    (0.5, 1.0)
    """
    y_true, y_pred = _check_targets(y_true, y_pred)
    if positive_label is not None:
        _check_label_present(
            positive_label, y_true, y_pred, param="positive_label", healthy=False
        )
        return _sens_spec(y_true == positive_label, y_pred == positive_label)
    labels = unique_labels(y_true, y_pred) if labels is None else np.asarray(labels)
    return {_py(lab): _sens_spec(y_true == lab, y_pred == lab) for lab in labels}


def _sens_spec(true_pos, pred_pos):
    tp = np.sum(true_pos & pred_pos)
    tn = np.sum(~true_pos & ~pred_pos)
    n_pos, n_neg = true_pos.sum(), (~true_pos).sum()
    sens = float(tp / n_pos) if n_pos else float("nan")
    spec = float(tn / n_neg) if n_neg else float("nan")
    return sens, spec


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "labels": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def per_class_f1(y_true, y_pred, *, labels=None):
    """F1 score of every class, as a dict label -> F1.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    labels : array-like, default=None
        Labels to report (default: all labels present in ``y_true`` or
        ``y_pred``, sorted).

    Returns
    -------
    scores : dict of label -> float

    Examples
    --------
    >>> from skcxr.metrics import per_class_f1
    >>> per_class_f1(["a", "a", "b"], ["a", "b", "b"])
    {'a': 0.666..., 'b': 0.666...}
    """
    y_true, y_pred = _check_targets(y_true, y_pred)
    labels = unique_labels(y_true, y_pred) if labels is None else np.asarray(labels)
    scores = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0.0)
    return {_py(lab): float(s) for lab, s in zip(labels, scores)}


def _class_f1(y_true, y_pred, *, label):
    return float(
        f1_score(y_true, y_pred, labels=[label], average="macro", zero_division=0.0)
    )


@validate_params({"label": [str, Integral]}, prefer_skip_nested_validation=True)
def f1_for_class(label):
    """Scorer of the F1 of one class (for ``GridSearchCV(scoring=...)``).

    Parameters
    ----------
    label : str or int
        The class whose F1 the scorer returns.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``, as made by
        :func:`sklearn.metrics.make_scorer`.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> from skcxr.metrics import f1_for_class
    >>> clf = DummyClassifier(strategy="constant", constant="virus")
    >>> clf = clf.fit([[0], [0]], ["normal", "virus"])
    >>> f1_for_class("virus")(clf, [[0], [0]], ["normal", "virus"])
    0.666...
    """
    return make_scorer(_class_f1, label=label)


def _finding_sensitivity(y_true, y_pred, *, healthy_label="normal"):
    """Share of images with a finding not called healthy (``1 - FNFR``)."""
    return 1.0 - false_no_finding_rate(y_true, y_pred, healthy_label=healthy_label)


def _finding_specificity(y_true, y_pred, *, healthy_label="normal"):
    """Share of healthy images called healthy (recall of the healthy class)."""
    y_true, y_pred = _check_targets(y_true, y_pred)
    _check_label_present(
        healthy_label, y_true, y_pred, param="healthy_label", healthy=True
    )
    healthy = y_true == healthy_label
    if not healthy.any():
        warnings.warn(
            "specificity is undefined: y_true has no image of "
            f"healthy_label={healthy_label!r} (only predictions do); returning 0.0.",
            RuntimeWarning,
            stacklevel=2,
        )
        return 0.0
    return float(np.mean(y_pred[healthy] == healthy_label))


#: Scorer of the false-no-finding rate with ``healthy_label="normal"``
#: (``greater_is_better=False``: it returns ``-FNFR``, as sklearn's loss scorers do).
fnfr_scorer = make_scorer(false_no_finding_rate, greater_is_better=False)

#: Scorer of the sensitivity of "has a finding" vs ``"normal"`` (``1 - FNFR``):
#: in a multi-class task a finding predicted as another finding still counts as detected.
sensitivity_scorer = make_scorer(_finding_sensitivity)

#: Scorer of the specificity of "has a finding" vs ``"normal"``: the recall of ``"normal"``.
specificity_scorer = make_scorer(_finding_specificity)


@validate_params({"healthy_label": [str, Integral]}, prefer_skip_nested_validation=True)
def cxr_scoring(healthy_label="normal"):
    """Dict of scorers for multi-metric ``GridSearchCV`` / ``cross_validate``.

    Keys: ``"accuracy"``, ``"f1_macro"``, ``"roc_auc_ovr"`` (sklearn's),
    ``"fnfr"`` (negated false-no-finding rate), ``"sensitivity"`` and
    ``"specificity"`` (of "has a finding" against ``healthy_label``). Use it
    also to get the FNFR / sensitivity / specificity scorers for another
    healthy label than ``"normal"``.

    Parameters
    ----------
    healthy_label : str or int, default="normal"
        The "no finding" class (``"NORMAL"`` for the binary Kermany et al.
        2018 labels). A scorer raises a ValueError on a split where it occurs
        in neither the true nor the predicted labels.

    Returns
    -------
    scoring : dict of str -> callable

    Examples
    --------
    >>> from skcxr.metrics import cxr_scoring
    >>> sorted(cxr_scoring())
    ['accuracy', 'f1_macro', 'fnfr', 'roc_auc_ovr', 'sensitivity', 'specificity']
    """
    return {
        "accuracy": get_scorer("accuracy"),
        "f1_macro": get_scorer("f1_macro"),
        "roc_auc_ovr": get_scorer("roc_auc_ovr"),
        "fnfr": make_scorer(
            false_no_finding_rate, greater_is_better=False, healthy_label=healthy_label
        ),
        "sensitivity": make_scorer(_finding_sensitivity, healthy_label=healthy_label),
        "specificity": make_scorer(_finding_specificity, healthy_label=healthy_label),
    }


@validate_params(
    {
        "estimator": [object],
        "X": ["array-like"],
        "repeat": [IntInterval(1, None, closed="left")],
        "method": [str],
    },
    prefer_skip_nested_validation=True,
)
def inference_time(estimator, X, *, repeat=3, method="predict"):
    """Seconds per image of ``estimator.<method>(X)``: median of ``repeat`` runs.

    Parameters
    ----------
    estimator : fitted estimator
    X : array-like
        Samples passed unchanged to the method.
    repeat : int, default=3
        Number of timed runs (after no warm-up; use ``repeat >= 3``).
    method : str, default="predict"

    Returns
    -------
    seconds_per_image : float

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> from skcxr.metrics import inference_time
    >>> clf = DummyClassifier().fit([[0], [1]], [0, 1])
    >>> inference_time(clf, [[0]] * 10) >= 0
    True
    """
    func = getattr(estimator, method)
    n = len(X)
    if n == 0:
        raise ValueError("X: empty; cannot time inference on 0 images.")
    times = []
    for _ in range(int(repeat)):
        start = time.perf_counter()
        func(X)
        times.append(time.perf_counter() - start)
    return float(np.median(times) / n)
