"""Hold-out splits: patient-grouped when groups are known, stratified when possible.

One rule for every split skcxr makes (the study's train / validation / test
splits, the validation split of the networks and of the ensemble weights):
images of one patient never fall on both sides, and class proportions are kept
whenever every class has enough members (or patients) to be stratified.
"""

import numpy as np
from sklearn.model_selection import (
    GroupShuffleSplit,
    StratifiedGroupKFold,
    train_test_split,
)

__all__ = ["can_stratify", "holdout_split"]


def can_stratify(y, test_size):
    """Whether a stratified split of ``y`` with ``test_size`` is possible.

    Every class needs at least two members, and both sides must be able to
    hold one member of every class.

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
    return counts.min() >= 2 and len(counts) <= min(n_test, len(y) - n_test)


def holdout_split(y, *, test_size, groups=None, random_state=None):
    """Indices of a train / test hold-out split of ``y``.

    Without ``groups``: sklearn's ``train_test_split``, stratified on ``y``
    when :func:`can_stratify` allows it. With ``groups`` (patient ids): no
    group is split across the two sides; ``StratifiedGroupKFold`` keeps the
    class proportions when every class spans enough groups, otherwise
    ``GroupShuffleSplit`` draws whole groups at random.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_labels)
        Targets; a 2-D label-indicator matrix is split without stratification.
    test_size : float
        Fraction of samples (without groups) or of groups (with groups) held out.
    groups : array-like of shape (n_samples,), default=None
        Patient (or other) ids.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    train_index, test_index : ndarray of int

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.utils._split import holdout_split
    >>> y = np.array(["a", "b"] * 10)
    >>> patients = np.repeat(np.arange(10), 2)
    >>> train, test = holdout_split(y, test_size=0.2, groups=patients, random_state=0)
    >>> set(patients[train]) & set(patients[test])
    set()
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
        return train_test_split(
            indices, test_size=test_size, stratify=stratify, random_state=random_state
        )
    groups = np.asarray(groups)
    if len(groups) != n_samples:
        raise ValueError(
            f"groups has {len(groups)} entries for {n_samples} samples; give one "
            "patient id per image."
        )
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(
            "A patient-grouped split needs at least 2 distinct groups; "
            f"got {n_groups}."
        )
    n_splits = min(n_groups, max(2, int(round(1 / test_size))))
    if y.ndim == 1 and _groups_per_class(y, groups).min() >= n_splits:
        splitter = StratifiedGroupKFold(
            n_splits=n_splits, shuffle=True, random_state=random_state
        )
        train, test = next(splitter.split(indices, y, groups))
    else:
        splitter = GroupShuffleSplit(
            n_splits=1, test_size=test_size, random_state=random_state
        )
        train, test = next(splitter.split(indices, groups=groups))
    return train, test


def _groups_per_class(y, groups):
    return np.array([len(np.unique(groups[y == c])) for c in np.unique(y)])
