"""Tests of the hold-out split helpers (patient-grouped, stratified when possible)."""

import numpy as np
import pytest

from skcxr.utils._split import can_stratify, holdout_split


def _check_partition(train, test, n):
    assert len(train) > 0 and len(test) > 0
    assert not set(train.tolist()) & set(test.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))


def _patients(n_patients=60, seed=0, p_a=0.3):
    """Patients with 1-4 images each, all of one class (a patient's diagnosis)."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 5, n_patients)
    groups = np.repeat(np.arange(n_patients), per)
    label = np.where(rng.random(n_patients) < p_a, "a", "b")
    return label[groups], groups


@pytest.mark.parametrize(
    "y, test_size, expected",
    [
        (["a", "a", "b", "b"], 0.5, True),
        (["a", "a", "a", "b"], 0.5, False),  # a class with one member
        (["a", "a", "b", "b", "c", "c"], 0.2, False),  # test side too small
        (["a", "a", "b", "b", "c", "c"], 0.5, True),
        (np.zeros((4, 2)), 0.5, False),  # label-indicator matrix
        (["a"], 0.5, False),
    ],
)
def test_can_stratify(y, test_size, expected):
    assert can_stratify(y, test_size) is expected


def test_ungrouped_split_is_stratified_and_a_partition():
    y = np.array(["a"] * 30 + ["b"] * 70)
    train, test = holdout_split(y, test_size=0.2, random_state=0)
    _check_partition(train, test, 100)
    assert len(test) == 20 and np.sum(y[test] == "a") == 6
    # a class with a single member cannot be stratified: plain random split
    y = np.array(["a"] * 9 + ["b"])
    train, test = holdout_split(y, test_size=0.3, random_state=0)
    _check_partition(train, test, 10)
    assert len(test) == 3


@pytest.mark.parametrize("test_size", [0.1, 0.2, 0.25, 0.4, 0.6, 0.8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_split_keeps_patients_on_one_side(test_size, seed):
    y, groups = _patients(seed=seed)
    train, test = holdout_split(
        y, test_size=test_size, groups=groups, random_state=seed
    )
    _check_partition(train, test, len(y))
    assert not set(groups[train]) & set(groups[test])
    # whole patients move, so the fraction is approximate, also above one half
    assert abs(len(test) / len(y) - test_size) < 0.1


def test_grouped_split_keeps_class_proportions_when_possible():
    y, groups = _patients(n_patients=200, seed=3, p_a=0.25)
    train, test = holdout_split(y, test_size=0.2, groups=groups, random_state=0)
    overall = np.mean(y == "a")
    assert abs(np.mean(y[test] == "a") - overall) < 0.03
    assert abs(np.mean(y[train] == "a") - overall) < 0.03


@pytest.mark.parametrize("test_size", [0.03, 0.97])
def test_grouped_split_small_fractions_stay_small(test_size):
    # 3% cannot be made of at most 20 stratified folds: whole groups at random
    y, groups = _patients(n_patients=400, seed=5)
    train, test = holdout_split(y, test_size=test_size, groups=groups, random_state=0)
    assert not set(groups[train]) & set(groups[test])
    small = test if test_size < 0.5 else train
    assert len(np.unique(groups[small])) == 12  # 3% of 400 patients


def test_grouped_split_falls_back_to_whole_groups_at_random():
    # class "a" spans 2 patients: 2 stratified folds would hold out half, not 30%
    y = np.array(["a"] * 3 + ["b"] * 17)
    groups = np.repeat(np.arange(10), 2)
    train, test = holdout_split(y, test_size=0.3, groups=groups, random_state=0)
    _check_partition(train, test, 20)
    assert not set(groups[train]) & set(groups[test])
    assert len(np.unique(groups[test])) == 3  # 30% of the 10 groups
    # class "a" in one patient only
    y = np.array(["a"] * 2 + ["b"] * 18)
    train, test = holdout_split(y, test_size=0.2, groups=groups, random_state=1)
    _check_partition(train, test, 20)
    assert len(np.unique(groups[test])) == 2
    # a label-indicator matrix is split by groups without stratification
    Y = np.random.default_rng(0).integers(0, 2, (20, 3))
    train, test = holdout_split(Y, test_size=0.5, groups=groups, random_state=0)
    _check_partition(train, test, 20)
    assert not set(groups[train]) & set(groups[test])


def test_grouped_split_with_two_groups():
    y = np.array(["a", "b", "a", "b"])
    groups = np.array([7, 7, 8, 8])
    train, test = holdout_split(y, test_size=0.2, groups=groups, random_state=0)
    _check_partition(train, test, 4)
    assert len(set(groups[test])) == 1 and len(set(groups[train])) == 1


def test_split_is_deterministic_and_seed_dependent():
    y, groups = _patients(seed=4)
    a = holdout_split(y, test_size=0.2, groups=groups, random_state=0)
    b = holdout_split(y, test_size=0.2, groups=groups, random_state=0)
    c = holdout_split(y, test_size=0.2, groups=groups, random_state=1)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_split_errors():
    with pytest.raises(ValueError, match="at least 2 samples"):
        holdout_split(["a"], test_size=0.5)
    with pytest.raises(ValueError, match="groups has shape"):
        holdout_split(["a", "b", "a"], test_size=0.5, groups=[1, 2])
    with pytest.raises(ValueError, match="at least 2 distinct groups"):
        holdout_split(["a", "b", "a"], test_size=0.5, groups=[1, 1, 1])
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match="test_size"):
            holdout_split(["a", "b"], test_size=bad)
