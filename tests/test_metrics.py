import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, cross_validate

from skcxr.metrics import (
    cxr_scoring,
    f1_for_class,
    false_no_finding_rate,
    fnfr_scorer,
    inference_time,
    per_class_f1,
    sensitivity_scorer,
    sensitivity_specificity,
    specificity_scorer,
)

LABELS = ["normal", "bacteria", "virus"]
labels_st = st.lists(
    st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS)), min_size=1, max_size=60
)


@settings(max_examples=100, deadline=None)
@given(pairs=labels_st)
def test_fnfr_in_unit_interval_and_matches_hand_count(pairs):
    y_true = [t for t, _ in pairs]
    y_pred = [p for _, p in pairs]
    n_sick = sum(t != "normal" for t in y_true)
    missed = sum(t != "normal" and p == "normal" for t, p in pairs)
    if n_sick == 0:
        with pytest.warns(RuntimeWarning, match="undefined"):
            assert false_no_finding_rate(y_true, y_pred) == 0.0
        return
    fnfr = false_no_finding_rate(y_true, y_pred)
    assert 0.0 <= fnfr <= 1.0
    assert fnfr == pytest.approx(missed / n_sick)
    sens = sensitivity_scorer._score_func(np.array(y_true), np.array(y_pred))
    assert sens == pytest.approx(1 - fnfr)


def test_fnfr_custom_healthy_label_and_zero_division():
    assert false_no_finding_rate([0, 1, 1], [0, 0, 1], healthy_label=0) == 0.5
    with pytest.warns(RuntimeWarning):
        assert (
            false_no_finding_rate([0, 0], [0, 1], healthy_label=0, zero_division=np.nan)
            != 0
        )
    with pytest.raises(ValueError):
        false_no_finding_rate([0, 1], [0])


def test_sensitivity_specificity_binary_and_ovr():
    y_true = np.array(["normal", "pneumonia", "pneumonia", "normal", "normal"])
    y_pred = np.array(["normal", "pneumonia", "normal", "pneumonia", "normal"])
    assert sensitivity_specificity(y_true, y_pred, positive_label="pneumonia") == (
        0.5,
        pytest.approx(2 / 3),
    )
    ovr = sensitivity_specificity(y_true, y_pred)
    assert set(ovr) == {"normal", "pneumonia"}
    assert ovr["normal"] == (pytest.approx(2 / 3), 0.5)
    with pytest.raises(ValueError, match="positive_label"):
        sensitivity_specificity(y_true, y_pred, positive_label="virus")


def test_per_class_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.choice(LABELS, 50)
    y_pred = rng.choice(LABELS, 50)
    got = per_class_f1(y_true, y_pred)
    expected = f1_score(y_true, y_pred, average=None, labels=sorted(LABELS))
    assert list(got) == sorted(LABELS)
    np.testing.assert_allclose(list(got.values()), expected)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=120, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    return X, np.array(LABELS)[y]


def test_scorers_in_grid_search(data):
    X, y = data
    grid = GridSearchCV(
        LogisticRegression(),
        {"C": [0.01, 1.0]},
        cv=3,
        scoring=cxr_scoring(),
        refit="f1_macro",
    ).fit(X, y)
    for key in ["fnfr", "sensitivity", "specificity", "roc_auc_ovr", "accuracy"]:
        assert f"mean_test_{key}" in grid.cv_results_
    assert np.all(grid.cv_results_["mean_test_fnfr"] <= 0)  # negated loss
    grid = GridSearchCV(
        LogisticRegression(), {"C": [0.01, 1.0]}, cv=3, scoring=fnfr_scorer
    ).fit(X, y)
    assert -1 <= grid.best_score_ <= 0
    res = cross_validate(
        LogisticRegression(),
        X,
        y,
        cv=3,
        scoring={
            "f1_virus": f1_for_class("virus"),
            "sens": sensitivity_scorer,
            "spec": specificity_scorer,
        },
    )
    assert np.all((res["test_f1_virus"] >= 0) & (res["test_f1_virus"] <= 1))


def test_scorer_values(data):
    X, y = data
    always_normal = DummyClassifier(strategy="constant", constant="normal").fit(X, y)
    assert fnfr_scorer(always_normal, X, y) == -1.0
    assert sensitivity_scorer(always_normal, X, y) == 0.0
    assert specificity_scorer(always_normal, X, y) == 1.0
    assert f1_for_class("virus")(always_normal, X, y) == 0.0


def test_inference_time(data):
    X, y = data
    clf = LogisticRegression().fit(X, y)
    t = inference_time(clf, X, repeat=3)
    assert 0 < t < 0.1
    with pytest.raises(ValueError, match="repeat"):
        inference_time(clf, X, repeat=0)
