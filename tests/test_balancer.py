import pickle
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imblearn.pipeline import Pipeline
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skcxr import AugmentBalancer
from tests._contract_checks import image_contract_failures

# sklearn's common checks (run by tests/test_common.py) feed small random 2-D
# arrays with 1-10 features and values outside [0, 1], which the image data
# contract (see the user guide's data contract page) rejects with its own
# ValueError. imbalanced-learn's own sampler checks use the same kind of data
# (make_classification); tests/test_common.py runs their image counterparts
# (skcxr.utils.estimator_checks: fit_resample counts, sample_indices_, one
# label, multiclass, dtypes, lists, 2-D target), and the tests below add more.
COMMON_ESTIMATORS = [AugmentBalancer(random_state=0)]
EXPECTED_FAILED_CHECKS = image_contract_failures("check_fit2d_1sample")

OFF = dict(
    flip=False, rotation=None, scale=None, shift=None, brightness=None, contrast=None
)


def _data(counts=(6, 3, 2), size=12, seed=0):
    labels = np.array(["normal", "bacteria", "virus"])[: len(counts)]
    y = np.repeat(labels, counts)
    X = np.random.default_rng(seed).random((len(y), size, size), dtype=np.float32)
    return X, y


def test_auto_balances_to_the_majority():
    X, y = _data()
    sampler = AugmentBalancer(random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    assert Counter(y_res) == {"normal": 6, "bacteria": 6, "virus": 6}
    assert X_res.shape == (18, 12, 12) and X_res.dtype == np.float32
    assert dict(sampler.sampling_strategy_) == {"bacteria": 3, "virus": 4}


def test_originals_first_unchanged_and_indices_valid():
    X, y = _data()
    sampler = AugmentBalancer(random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    np.testing.assert_array_equal(X_res[: len(X)], X)
    np.testing.assert_array_equal(y_res[: len(y)], y)
    idx = sampler.sample_indices_
    assert idx.shape == (len(y_res),)
    np.testing.assert_array_equal(idx[: len(X)], np.arange(len(X)))
    np.testing.assert_array_equal(y_res, y[idx])
    # the copies are augmented, not duplicated
    for i, source in enumerate(idx[len(X) :], start=len(X)):
        assert not np.array_equal(X_res[i], X[source])


def test_without_augmentation_copies_equal_their_sources():
    X, y = _data()
    sampler = AugmentBalancer(random_state=0, **OFF)
    X_res, _ = sampler.fit_resample(X, y)
    np.testing.assert_array_equal(X_res, X[sampler.sample_indices_])


def test_sources_are_used_evenly():
    X, y = _data(counts=(10, 3))
    sampler = AugmentBalancer(random_state=0)
    sampler.fit_resample(X, y)
    used = Counter(sampler.sample_indices_[len(X) :].tolist())
    assert set(used) == {10, 11, 12}
    # 7 new bacteria from 3 sources: each used 2 or 3 times
    assert sorted(used.values()) == [2, 2, 3]


def test_dict_targets_and_below_current_raises():
    X, y = _data()
    _, y_res = AugmentBalancer(
        sampling_strategy={"virus": 5, "bacteria": 3}, random_state=0
    ).fit_resample(X, y)
    assert Counter(y_res) == {"normal": 6, "bacteria": 3, "virus": 5}
    with pytest.raises(ValueError, match="greater or equal to the original"):
        AugmentBalancer(sampling_strategy={"normal": 2}).fit_resample(X, y)
    with pytest.raises(ValueError, match="not present"):
        AugmentBalancer(sampling_strategy={"effusion": 9}).fit_resample(X, y)


@pytest.mark.parametrize(
    "counts, ratios, expected",
    [
        ((6, 3, 2), {"normal": 2, "bacteria": 1, "virus": 2}, (6, 3, 6)),
        ((4, 8, 1), {"normal": 2, "bacteria": 1, "virus": 2}, (16, 8, 16)),
        ((5, 5, 5), {"normal": 2, "bacteria": 1, "virus": 2}, (10, 5, 10)),
        ((6, 3, 2), {"virus": 1, "bacteria": 1}, (6, 3, 3)),
        ((7, 3, 2), {"normal": 1.5, "virus": 1}, (7, 3, 5)),
    ],
)
def test_ratios(counts, ratios, expected):
    X, y = _data(counts=counts, size=8)
    _, y_res = AugmentBalancer(ratios=ratios, random_state=0).fit_resample(X, y)
    got = Counter(y_res)
    assert (got["normal"], got["bacteria"], got["virus"]) == expected


def test_ratio_2_1_2_proportions_hold_exactly_when_divisible():
    X, y = _data(counts=(10, 20, 4), size=8)
    _, y_res = AugmentBalancer(
        ratios={"normal": 2, "bacteria": 1, "virus": 2}, random_state=0
    ).fit_resample(X, y)
    assert Counter(y_res) == {"normal": 40, "bacteria": 20, "virus": 40}


def test_float_strategy_binary_and_other_strings():
    X, y = _data(counts=(10, 2))
    _, y_res = AugmentBalancer(sampling_strategy=0.5, random_state=0).fit_resample(X, y)
    assert Counter(y_res) == {"normal": 10, "bacteria": 5}
    X, y = _data(counts=(6, 3, 2))
    sampler = AugmentBalancer(sampling_strategy="minority", random_state=0)
    _, y_res = sampler.fit_resample(X, y)
    assert Counter(y_res) == {"normal": 6, "bacteria": 3, "virus": 6}


@pytest.mark.parametrize("layout", ["nhw", "n1hw", "flat"])
def test_layouts_are_preserved(layout):
    X, y = _data()
    Xl = {"nhw": X, "n1hw": X[:, None], "flat": X.reshape(len(X), -1)}[layout]
    X_res, y_res = AugmentBalancer(random_state=0).fit_resample(Xl, y)
    assert X_res.shape == (18,) + Xl.shape[1:]
    expected, _ = AugmentBalancer(random_state=0).fit_resample(X, y)
    np.testing.assert_array_equal(X_res.reshape(expected.shape), expected)


def test_deterministic_and_seed_dependent():
    X, y = _data()
    a = AugmentBalancer(random_state=1).fit_resample(X, y)[0]
    b = AugmentBalancer(random_state=1).fit_resample(X, y)[0]
    c = AugmentBalancer(random_state=2).fit_resample(X, y)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_numeric_labels_and_already_balanced():
    X, _ = _data(counts=(4, 4))
    y = np.array([0, 1] * 4)
    sampler = AugmentBalancer(random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    np.testing.assert_array_equal(X_res, X)
    np.testing.assert_array_equal(y_res, y)
    np.testing.assert_array_equal(sampler.sample_indices_, np.arange(8))


def test_pickle_and_clone():
    X, y = _data()
    sampler = AugmentBalancer(random_state=0, ratios={"normal": 1, "virus": 1})
    restored = pickle.loads(pickle.dumps(sampler))
    np.testing.assert_array_equal(
        restored.fit_resample(X, y)[0], clone(sampler).fit_resample(X, y)[0]
    )


def test_bad_input():
    X, y = _data()
    with pytest.raises(ValueError, match=r"not \[0, 1\]"):
        AugmentBalancer().fit_resample(X * 3, y)
    with pytest.raises(ValueError, match="NaN"):
        AugmentBalancer().fit_resample(np.where(X > 0.5, np.nan, X), y)
    with pytest.raises(ValueError, match="square image"):
        AugmentBalancer().fit_resample(np.zeros((len(y), 10)), y)
    with pytest.raises(TypeError, match="sparse"):
        AugmentBalancer().fit_resample(sparse.csr_matrix(np.zeros((len(y), 16))), y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        AugmentBalancer().fit_resample(X, y[:-1])
    with pytest.raises(ValueError, match="more than 1 class"):
        AugmentBalancer().fit_resample(X, np.array(["normal"] * len(y)))
    with pytest.raises(ValueError, match="not both"):
        AugmentBalancer(ratios={"normal": 1}, sampling_strategy="all").fit_resample(
            X, y
        )
    with pytest.raises(ValueError, match="not in y"):
        AugmentBalancer(ratios={"effusion": 1}).fit_resample(X, y)
    with pytest.raises(ValueError, match="positive numbers"):
        AugmentBalancer(ratios={"normal": 0, "virus": 1}).fit_resample(X, y)
    with pytest.raises(ValueError, match="at least one class"):
        AugmentBalancer(ratios={}).fit_resample(X, y)
    with pytest.raises(ValueError, match="brightness"):
        AugmentBalancer(brightness=(2, 1)).fit_resample(X, y)
    with pytest.raises(ValueError, match="rotation"):
        AugmentBalancer(rotation=-5).fit_resample(X, y)
    with pytest.raises(ValueError, match="multilabel"):
        AugmentBalancer().fit_resample(X, np.eye(3, dtype=int)[np.arange(len(y)) % 3])


# --- inside an imblearn Pipeline with GridSearchCV ----------------------------------


SPY_LOG = []  # module level: GridSearchCV deep-copies parameters when cloning


class SpyClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; records how many rows it saw in fit / predict."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        SPY_LOG.append(("fit", len(X), dict(Counter(y))))
        return self

    def predict(self, X):
        SPY_LOG.append(("predict", len(X), None))
        return np.full(len(X), self.majority_)


def test_pipeline_resamples_only_in_fit_with_grid_search():
    X, y = _data(counts=(12, 6, 6), size=8)
    X = X.reshape(len(X), -1)
    log = SPY_LOG
    log.clear()
    pipe = Pipeline(
        [("balance", AugmentBalancer(random_state=0)), ("clf", SpyClassifier())]
    )
    search = GridSearchCV(
        pipe,
        {"balance__rotation": [10.0, 20.0], "clf__alpha": [1.0]},
        cv=StratifiedKFold(3),
        n_jobs=1,
    )
    search.fit(X, y)
    fits = [entry for entry in log if entry[0] == "fit"]
    predicts = [entry for entry in log if entry[0] == "predict"]
    # 2 candidates x 3 folds + the refit
    assert len(fits) == 7
    # training folds hold 8/4/4 images, balanced to 8/8/8; the refit sees 12 x 3
    for _, n_rows, counts in fits[:-1]:
        assert n_rows == 24 and set(counts.values()) == {8}
    assert fits[-1][1] == 36
    # predictions are made on the untouched 8-image test folds
    assert predicts and all(n_rows == 8 for _, n_rows, _ in predicts)
    log.clear()
    assert len(search.predict(X)) == len(X)
    assert log == [("predict", len(X), None)]


# --- properties ---------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    extra=st.lists(st.integers(0, 5), min_size=4, max_size=4),
    use_dict=st.booleans(),
    seed=st.integers(0, 1000),
    layout=st.sampled_from(["nhw", "n1hw", "flat"]),
)
def test_property_counts_as_asked_and_originals_preserved(
    counts, extra, use_dict, seed, layout
):
    labels = np.array([f"class{i}" for i in range(len(counts))])
    y = np.repeat(labels, counts)
    X = np.random.default_rng(seed).random((len(y), 6, 6), dtype=np.float32)
    Xl = {"nhw": X, "n1hw": X[:, None], "flat": X.reshape(len(X), -1)}[layout]
    if use_dict:
        strategy = {label: c + e for label, c, e in zip(labels, counts, extra)}
        expected = strategy
    else:
        strategy = "auto"
        expected = {label: max(counts) for label in labels}
    sampler = AugmentBalancer(sampling_strategy=strategy, random_state=seed)
    X_res, y_res = sampler.fit_resample(Xl, y)
    assert Counter(y_res.tolist()) == expected
    assert X_res.shape[1:] == Xl.shape[1:] and X_res.dtype == np.float32
    np.testing.assert_array_equal(X_res[: len(X)], Xl)
    idx = sampler.sample_indices_
    assert idx.min() >= 0 and idx.max() < len(X)
    np.testing.assert_array_equal(y_res, y[idx])
    np.testing.assert_array_equal(idx[: len(X)], np.arange(len(X)))
    assert np.all((X_res >= 0) & (X_res <= 1))


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(1, 8), min_size=2, max_size=3),
    ratios=st.lists(st.integers(1, 4), min_size=3, max_size=3),
)
def test_property_ratios_never_remove_and_hold_proportions(counts, ratios):
    labels = [f"c{i}" for i in range(len(counts))]
    y = np.repeat(labels, counts)
    X = np.zeros((len(y), 4, 4), dtype=np.float32)
    asked = dict(zip(labels, ratios))
    _, y_res = AugmentBalancer(ratios=asked, random_state=0, **OFF).fit_resample(X, y)
    got = Counter(y_res.tolist())
    unit = max(c / r for c, r in zip(counts, ratios))
    for label, c, r in zip(labels, counts, ratios):
        assert got[label] >= c
        assert got[label] == max(c, int(np.ceil(unit * r - 1e-9)))


def test_one_of_policy_applies_exactly_one_transform_per_copy():
    """With only a flip and a brightness factor enabled, every copy is either
    exactly the flipped source or exactly the source made brighter, never both."""
    rng = np.random.default_rng(0)
    X = rng.random((22, 16, 16), dtype=np.float32) * 0.5
    y = np.array(["normal"] * 20 + ["virus"] * 2)
    off = dict(rotation=None, scale=None, shift=None, contrast=None)
    sampler = AugmentBalancer(
        policy="one_of", brightness=(1.5, 1.5), random_state=0, **off
    )
    X_res, _ = sampler.fit_resample(X, y)
    kinds = set()
    for copy, source in zip(X_res[22:], X[sampler.sample_indices_[22:]]):
        flipped = np.allclose(copy, source[:, ::-1])
        brighter = np.allclose(copy, np.clip(source * 1.5, 0, 1), atol=1e-6)
        assert flipped != brighter
        kinds.add("flip" if flipped else "brightness")
    assert kinds == {"flip", "brightness"}
    both = AugmentBalancer(brightness=(1.5, 1.5), random_state=0, **off)
    X_all, _ = both.fit_resample(X, y)
    assert all(
        np.allclose(c, np.clip(s * 1.5, 0, 1), atol=1e-6)
        or np.allclose(c, np.clip(s[:, ::-1] * 1.5, 0, 1), atol=1e-6)
        for c, s in zip(X_all[22:], X[both.sample_indices_[22:]])
    )
