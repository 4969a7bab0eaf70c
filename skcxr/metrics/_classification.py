"""Chest X-ray metrics and scorers: FNFR, sensitivity / specificity, per-class F1.

Every scorer here works as ``GridSearchCV(scoring=...)`` (alone or in the dict
returned by :func:`cxr_scoring`).
"""

import time
import warnings

import numpy as np
from sklearn.metrics import f1_score, get_scorer, make_scorer
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_consistent_length, column_or_1d

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
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    check_consistent_length(y_true, y_pred)
    return y_true, y_pred


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
        The "no finding" class.
    zero_division : float, default=0.0
        Value returned when ``y_true`` has no image with a finding (0/0); a
        ``UndefinedMetricWarning``-style ``RuntimeWarning`` is emitted.

    Returns
    -------
    fnfr : float in [0, 1]

    Examples
    --------
    >>> from skcxr.metrics import false_no_finding_rate
    >>> y_true = ["normal", "virus", "bacteria", "virus"]
    >>> y_pred = ["normal", "normal", "bacteria", "bacteria"]
    >>> false_no_finding_rate(y_true, y_pred)
    0.333...
    """
    y_true, y_pred = _check_targets(y_true, y_pred)
    sick = y_true != healthy_label
    n_sick = int(sick.sum())
    if n_sick == 0:
        warnings.warn(
            "false_no_finding_rate is undefined: y_true has no image with a finding; "
            f"returning zero_division={zero_division}.",
            RuntimeWarning,
        )
        return float(zero_division)
    return float(np.sum(sick & (y_pred == healthy_label)) / n_sick)


def sensitivity_specificity(y_true, y_pred, *, positive_label=None, labels=None):
    """Sensitivity (recall of the positive class) and specificity.

    Binary case: pass ``positive_label`` (the finding, for example
    ``"pneumonia"``). Multi-class: one-vs-rest for each label.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    positive_label : label, default=None
        If given, return the pair for this label against all others.
    labels : array-like, default=None
        Labels to report when ``positive_label`` is None (default: all labels
        present in ``y_true`` or ``y_pred``).

    Returns
    -------
    (sensitivity, specificity) : tuple of float
        When ``positive_label`` is given. A value whose denominator is 0 is nan.
    dict of label -> (sensitivity, specificity)
        Otherwise, one-vs-rest per label.

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
        if positive_label not in unique_labels(y_true, y_pred):
            raise ValueError(
                f"positive_label={positive_label!r} is not in y_true or y_pred."
            )
        return _sens_spec(y_true == positive_label, y_pred == positive_label)
    labels = unique_labels(y_true, y_pred) if labels is None else np.asarray(labels)
    return {_py(lab): _sens_spec(y_true == lab, y_pred == lab) for lab in labels}


def _py(value):
    return value.item() if isinstance(value, np.generic) else value


def _sens_spec(true_pos, pred_pos):
    tp = np.sum(true_pos & pred_pos)
    tn = np.sum(~true_pos & ~pred_pos)
    n_pos, n_neg = true_pos.sum(), (~true_pos).sum()
    sens = float(tp / n_pos) if n_pos else float("nan")
    spec = float(tn / n_neg) if n_neg else float("nan")
    return sens, spec


def per_class_f1(y_true, y_pred, *, labels=None):
    """F1 score of every class, as a dict label -> F1.

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


def f1_for_class(label):
    """Scorer of the F1 of one class (for ``GridSearchCV(scoring=...)``).

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
    healthy = y_true == healthy_label
    if not healthy.any():
        warnings.warn(
            "specificity is undefined: y_true has no healthy image; returning 0.0.",
            RuntimeWarning,
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


def cxr_scoring(healthy_label="normal"):
    """Dict of scorers for multi-metric ``GridSearchCV`` / ``cross_validate``.

    Keys: ``"accuracy"``, ``"f1_macro"``, ``"roc_auc_ovr"`` (sklearn's),
    ``"fnfr"`` (negated false-no-finding rate), ``"sensitivity"`` and
    ``"specificity"`` (of "has a finding" against ``healthy_label``). Use it
    also to get the FNFR / sensitivity / specificity scorers for another
    healthy label than ``"normal"``.

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
    if int(repeat) < 1:
        raise ValueError(f"repeat must be >= 1; got {repeat}.")
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
