"""Multi-label metrics with unknown labels (NaN), finding by finding.

Pooled chest X-ray data sets label different findings (a finding one data set
does not label is unknown, NaN, for its images), and some labels are uncertain
and left unknown on purpose (CheXpert's U-Ignore policy, Irvin et al. 2019).
Every metric here is computed per finding over the images whose label for
that finding is known.
"""

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.utils._param_validation import validate_params

__all__ = ["roc_auc_per_finding", "f1_per_finding"]


def _check(y_true, y_other, name):
    Y = np.asarray(y_true, dtype=np.float64)
    P = np.asarray(y_other, dtype=np.float64)
    if Y.ndim != 2 or P.shape != Y.shape:
        raise ValueError(
            f"y_true and {name} must be 2-D arrays of one shape (n_images, "
            f"n_findings); got {Y.shape} and {P.shape}."
        )
    known = ~np.isnan(Y)
    if not np.isin(Y[known], (0, 1)).all():
        raise ValueError("y_true must hold 0, 1 or NaN (unknown).")
    if not np.isfinite(P).all():
        raise ValueError(f"{name} must be finite.")
    return Y, P, known


@validate_params(
    {"y_true": ["array-like"], "y_score": ["array-like"]},
    prefer_skip_nested_validation=True,
)
def roc_auc_per_finding(y_true, y_score):
    """ROC AUC of each finding over the images where it is known.

    Parameters
    ----------
    y_true : array-like of shape (n_images, n_findings)
        1 present, 0 absent, NaN unknown.
    y_score : array-like of shape (n_images, n_findings)
        Scores or probabilities of each finding.

    Returns
    -------
    auc : ndarray of shape (n_findings,)
        NaN for a finding whose known labels are all of one value (the AUC is
        not defined); average with ``np.nanmean`` over the others and report
        how many were left out.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import roc_auc_per_finding
    >>> Y = np.array([[1, 0], [0, np.nan], [1, 0], [0, 0]])
    >>> P = np.array([[.9, .2], [.1, .9], [.6, .1], [.4, .3]])
    >>> roc_auc_per_finding(Y, P)
    array([ 1., nan])
    """
    Y, P, known = _check(y_true, y_score, "y_score")
    out = np.full(Y.shape[1], np.nan)
    for j in range(Y.shape[1]):
        y = Y[known[:, j], j]
        if 0 < y.sum() < len(y):
            out[j] = roc_auc_score(y, P[known[:, j], j])
    return out


@validate_params(
    {"y_true": ["array-like"], "y_pred": ["array-like"]},
    prefer_skip_nested_validation=True,
)
def f1_per_finding(y_true, y_pred):
    """F1 score of each finding over the images where it is known.

    Parameters
    ----------
    y_true : array-like of shape (n_images, n_findings)
        1 present, 0 absent, NaN unknown.
    y_pred : array-like of shape (n_images, n_findings)
        Predicted 0/1 indicators.

    Returns
    -------
    f1 : ndarray of shape (n_findings,)
        NaN for a finding with no known label.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import f1_per_finding
    >>> Y = np.array([[1, np.nan], [0, np.nan], [1, np.nan]])
    >>> f1_per_finding(Y, [[1, 0], [1, 0], [1, 1]])
    array([0.8, nan])
    """
    Y, P, known = _check(y_true, y_pred, "y_pred")
    out = np.full(Y.shape[1], np.nan)
    for j in range(Y.shape[1]):
        if known[:, j].any():
            out[j] = f1_score(Y[known[:, j], j], P[known[:, j], j], zero_division=0.0)
    return out
