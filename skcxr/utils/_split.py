"""Hold-out splits: patient-grouped when groups are known, stratified when possible.

One rule for every split skcxr makes (train / validation / test splits, the
validation split of the networks and of the ensemble weights, the official
splits written by :func:`skcxr.datasets.write_chest_xrays`): images of one
patient never fall on both sides, and class proportions are kept whenever every
class has enough members (or patients) to be stratified.
"""

from numbers import Real

import numpy as np
from sklearn.model_selection import (
    GroupShuffleSplit,
    StratifiedGroupKFold,
    train_test_split,
)
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["can_stratify", "holdout_split"]

_MAX_FOLDS = 20  # StratifiedGroupKFold costs n_groups * n_folds
_GOOD_ENOUGH = 0.1  # relative error of m / k that stops the search for folds
_FRACTION_TOLERANCE = 0.25  # relative: a coarser stratified fraction falls back


def can_stratify(y, test_size):
    """Whether a stratified split of ``y`` with ``test_size`` is possible.

    Every class needs at least two members, and both sides must be able to
    hold one member of every class.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels; a 2-D label-indicator matrix is never stratified.
    test_size : float in (0, 1)
        Fraction of samples held out.

    Returns
    -------
    bool

    Examples
    --------
    >>> from skcxr.utils._split import can_stratify
    >>> can_stratify(["a", "a", "b", "b"], 0.5)
    True
    >>> can_stratify(["a", "a", "a", "b"], 0.5)
    False
    """
    y = np.asarray(y)
    if y.ndim != 1 or len(y) < 2:
        return False
    _, counts = np.unique(y, return_counts=True)
    n_test = int(np.ceil(test_size * len(y)))
    return bool(counts.min() >= 2 and len(counts) <= min(n_test, len(y) - n_test))


@validate_params(
    {
        "y": ["array-like"],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "groups": ["array-like", None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def holdout_split(y, *, test_size, groups=None, random_state=None):
    """Indices of a train / test hold-out split of ``y``.

    Without ``groups``: sklearn's ``train_test_split``, stratified on ``y``
    when :func:`can_stratify` allows it. With ``groups`` (patient ids): no
    group is split across the two sides. When every class spans enough groups,
    ``StratifiedGroupKFold`` cuts the groups into ``k`` <= 20 folds that keep
    the class proportions and ``m`` of them form the test side, ``m / k``
    approximating ``test_size`` with as few folds as possible. When no such
    fraction is within 25% of the smaller side (``0.25 * min(test_size, 1 -
    test_size)``), for instance when a class spans too few groups or
    ``test_size`` is below 1/20, ``GroupShuffleSplit`` draws whole groups at
    random instead.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_labels)
        Targets; a 2-D label-indicator matrix is split without stratification.
    test_size : float in (0, 1)
        Fraction of samples held out. With ``groups`` it is approximate: whole
        groups move, and without stratification it is the fraction of groups.
    groups : array-like of shape (n_samples,), default=None
        Patient (or other) ids.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    train_index, test_index : ndarray of int
        Both non-empty, disjoint, together ``range(n_samples)``.

    Raises
    ------
    ValueError
        With fewer than 2 samples, fewer than 2 distinct groups, or ``groups``
        of another length than ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.utils._split import holdout_split
    >>> y = np.array(["a", "b"] * 10)
    >>> patients = np.repeat(np.arange(10), 2)
    >>> train, test = holdout_split(y, test_size=0.2, groups=patients, random_state=0)
    >>> set(patients[train]) & set(patients[test])
    set()
    >>> len(test)
    4
    """
    y = np.asarray(y)
    n_samples = len(y)
    if n_samples < 2:
        raise ValueError(
            f"A hold-out split needs at least 2 samples; got n_samples={n_samples}."
        )
    indices = np.arange(n_samples)
    if groups is None:
        stratify = y if can_stratify(y, test_size) else None
        train, test = train_test_split(
            indices, test_size=test_size, stratify=stratify, random_state=random_state
        )
        return np.sort(train), np.sort(test)
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_samples:
        raise ValueError(
            f"groups has shape {groups.shape} for {n_samples} samples; give one "
            "patient id per image."
        )
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(
            "A patient-grouped split needs at least 2 distinct groups; "
            f"got {n_groups}."
        )
    if y.ndim == 1:
        smaller = min(test_size, 1 - test_size)
        k_max = min(_MAX_FOLDS, int(_groups_per_class(y, groups).min()))
        if k_max >= 2:
            m, k = _fold_fraction(test_size, k_max)
            if abs(m / k - test_size) <= _FRACTION_TOLERANCE * smaller:
                splitter = StratifiedGroupKFold(
                    n_splits=k, shuffle=True, random_state=random_state
                )
                folds = [test for _, test in splitter.split(indices, y, groups)]
                test = np.sort(np.concatenate(folds[:m]))
                if 0 < len(test) < n_samples:
                    return np.setdiff1d(indices, test), test
    splitter = GroupShuffleSplit(
        n_splits=1, test_size=test_size, random_state=random_state
    )
    train, test = next(splitter.split(indices, groups=groups))
    return np.sort(train), np.sort(test)


def _fold_fraction(test_size, k_max):
    """Folds ``(m, k)``, ``1 <= m < k <= k_max``, with ``m / k`` near ``test_size``.

    The fewest folds whose fraction is within 10% (of the smaller side) of
    ``test_size``, else the nearest fraction.
    """
    good_enough = _GOOD_ENOUGH * min(test_size, 1 - test_size)
    best = None
    for k in range(2, k_max + 1):
        m = min(k - 1, max(1, int(round(test_size * k))))
        error = abs(m / k - test_size)
        if error <= good_enough:
            return m, k
        if best is None or error < best[0]:
            best = (error, m, k)
    return best[1], best[2]


def _groups_per_class(y, groups):
    return np.array([len(np.unique(groups[y == c])) for c in np.unique(y)])
