"""Calibration error of predicted probabilities: the top-label ECE.

A classifier is calibrated when, among the images it gives a confidence of
0.8, about 80% are right. Modern networks are over-confident (Guo et al.
2017): their confidence exceeds their accuracy. The expected calibration
error measures the gap; scikit-learn's
:class:`~sklearn.calibration.CalibratedClassifierCV` (temperature scaling)
reduces it, and :func:`sklearn.metrics.brier_score_loss` gives the Brier
score, a proper scoring rule that mixes calibration and discrimination.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

__all__ = ["expected_calibration_error"]

# Row sums of a probability matrix may differ from 1 by float32 rounding.
_ROW_SUM_TOLERANCE = 1e-4


def _binary_pos_label(y_true, pos_label):
    """The positive label of a binary ``y_true`` scored by a 1-D ``y_prob``."""
    if pos_label is not None:
        return pos_label
    found = np.unique(y_true)
    if len(found) > 2:
        raise ValueError(
            f"y_prob is 1-D (the positive class's probability of a binary problem) "
            f"but y_true has {len(found)} labels {found.tolist()}; pass the "
            "(n_samples, n_classes) probabilities instead."
        )
    if found.dtype.kind in "biuf" and set(found.tolist()) <= {0, 1, -1}:
        return 1
    raise ValueError(
        f"pos_label: y_true has the labels {found.tolist()}; name the class whose "
        "probability y_prob holds, e.g. pos_label=<the finding>."
    )


def _top_label(y_true, y_prob, *, labels=None, pos_label=None):
    """Confidence of the top label and whether it is right, per sample.

    ``y_prob`` of shape (n,) is the positive class's probability of a binary
    problem (the top label is then the more probable of the two classes, the
    negative one on a tie); of shape (n, k) the probabilities of ``labels``
    (default: the sorted labels of ``y_true``), rows summing to 1.
    """
    y_true = column_or_1d(y_true)
    y_prob = check_array(y_prob, ensure_2d=False, dtype="numeric", input_name="y_prob")
    y_prob = y_prob.astype(float, copy=False)
    check_consistent_length(y_true, y_prob)
    if y_prob.ndim not in (1, 2):
        raise ValueError(f"y_prob must be 1-D or 2-D; got shape {y_prob.shape}.")
    if len(y_true) == 0:
        raise ValueError("y_true is empty.")
    if y_prob.min() < 0 or y_prob.max() > 1:
        raise ValueError(
            "y_prob must hold probabilities in [0, 1] (predict_proba); got values "
            f"in [{y_prob.min():.4g}, {y_prob.max():.4g}]."
        )
    if y_prob.ndim == 1:
        positive = y_true == _binary_pos_label(y_true, pos_label)
        y_prob = np.column_stack([1.0 - y_prob, y_prob])
        true_index = positive.astype(int)
    else:
        if pos_label is not None:
            raise ValueError(
                "pos_label is for a 1-D y_prob (a binary problem); with "
                "(n_samples, n_classes) probabilities pass labels instead."
            )
        labels = np.unique(y_true) if labels is None else column_or_1d(labels)
        if len(labels) != y_prob.shape[1]:
            raise ValueError(
                f"labels: y_prob has {y_prob.shape[1]} columns but there are "
                f"{len(labels)} labels {labels.tolist()}; pass labels= the classes "
                "of the columns (the estimator's classes_)."
            )
        unknown = np.setdiff1d(np.unique(y_true), labels)
        if unknown.size:
            raise ValueError(
                f"y_true has labels {unknown.tolist()} that are not in labels "
                f"{labels.tolist()}."
            )
        sums = y_prob.sum(axis=1)
        if np.abs(sums - 1).max() > _ROW_SUM_TOLERANCE:
            raise ValueError(
                "y_prob: the rows of a probability matrix must sum to 1 (one "
                f"label per image); a row sums to {sums[np.argmax(abs(sums - 1))]:.4g}."
                " Top-label calibration is not defined for multi-label scores; "
                "score each finding as a binary problem."
            )
        sorter = np.argsort(labels)  # labels follow the columns, maybe unsorted
        true_index = sorter[np.searchsorted(labels, y_true, sorter=sorter)]
    top = np.argmax(y_prob, axis=1)
    confidence = y_prob[np.arange(len(top)), top]
    return confidence, top == true_index


def _bin_statistics(confidence, correct, n_bins):
    """Count, mean confidence and accuracy of ``n_bins`` equal-width bins.

    Bin ``m`` holds the confidences in ``(m / n_bins, (m + 1) / n_bins]``
    (the first bin also holds 0), as in Guo et al. 2017. Empty bins have nan
    mean confidence and accuracy.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, n_bins) / counts
        accuracy = np.bincount(which, correct.astype(float), n_bins) / counts
    return counts, mean_confidence, accuracy


@validate_params(
    {
        "y_true": ["array-like"],
        "y_prob": ["array-like"],
        "n_bins": [Interval(Integral, 1, None, closed="left")],
        "labels": ["array-like", None],
        "pos_label": [str, Integral, Real, None],
    },
    prefer_skip_nested_validation=True,
)
def expected_calibration_error(
    y_true, y_prob, *, n_bins=15, labels=None, pos_label=None
):
    r"""Top-label expected calibration error (ECE).

    The images are binned by the probability of their predicted class (the
    top label, its *confidence*) in ``n_bins`` equal-width bins over [0, 1];
    the ECE is the mean, weighted by the share of images in each bin, of the
    absolute difference between the accuracy and the mean confidence of the
    bin (Guo et al. 2017):

    .. math::

        \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{n}
        \left| \mathrm{acc}(B_m) - \mathrm{conf}(B_m) \right|

    0 is perfectly calibrated; an over-confident network (confidence above
    accuracy) has a large ECE. The value depends on ``n_bins`` and, on a small
    test set, on sampling noise: compare models with the same bins on the
    same images, and bootstrap it (:func:`skcxr.metrics.bootstrap_ci`) for an
    interval. For the Brier score use :func:`sklearn.metrics.brier_score_loss`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels (single-label: one class per image).
    y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
        Predicted probabilities (``predict_proba``). 1-D: the probability of
        the positive class of a binary problem; the top label is then the
        more probable of the two classes. 2-D: one column per class of
        ``labels``, rows summing to 1.
    n_bins : int, default=15
        Number of equal-width confidence bins over [0, 1] (15 as in Guo et al.
        2017). Bin ``m`` holds confidences in ``((m - 1) / M, m / M]``.
    labels : array-like of shape (n_classes,), default=None
        Classes of the columns of a 2-D ``y_prob`` (an estimator's
        ``classes_``); default: the sorted labels of ``y_true``, which must
        then all occur.
    pos_label : str, int or float, default=None
        The class whose probability a 1-D ``y_prob`` holds; default 1 when
        the labels are in {0, 1} or {-1, 1}.

    Returns
    -------
    ece : float in [0, 1]

    See Also
    --------
    sklearn.calibration.CalibratedClassifierCV : Temperature scaling
        (``method="temperature"``) of a fitted model wrapped in
        :class:`~sklearn.frozen.FrozenEstimator`, fitted on a validation set.
    sklearn.metrics.brier_score_loss : The Brier score.
    skcxr.inspection.ReliabilityDisplay : The reliability diagram.

    References
    ----------
    Guo, C., Pleiss, G., Sun, Y. and Weinberger, K. Q. (2017). On calibration
    of modern neural networks. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import expected_calibration_error
    >>> y_true = np.array([1] * 8 + [0] * 2)

    A confidence of 0.8 on images that are right 80% of the time is
    calibrated; 0.99 is over-confident:

    >>> round(expected_calibration_error(y_true, np.full(10, 0.8)), 2)
    0.0
    >>> round(expected_calibration_error(y_true, np.full(10, 0.99)), 2)
    0.19

    Class probabilities, columns following ``labels`` (``classes_``):

    >>> proba = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    >>> round(expected_calibration_error(
    ...     ["normal", "virus", "bacteria"], proba,
    ...     labels=["normal", "virus", "bacteria"]), 3)
    0.333
    """
    confidence, correct = _top_label(y_true, y_prob, labels=labels, pos_label=pos_label)
    counts, mean_confidence, accuracy = _bin_statistics(confidence, correct, n_bins)
    filled = counts > 0
    gaps = np.abs(accuracy[filled] - mean_confidence[filled])
    return float(np.sum(counts[filled] * gaps) / counts.sum())
