import subprocess
import sys

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
    if "normal" not in y_true + y_pred:
        with pytest.raises(ValueError, match="healthy_label='normal' is not among"):
            false_no_finding_rate(y_true, y_pred)
        return
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


# Kermany et al. 2018 folder labels, and the same task coded as integers.
KERMANY_Y = np.array(["NORMAL", "PNEUMONIA", "PNEUMONIA", "NORMAL", "PNEUMONIA"])
INT_Y = np.array([0, 1, 1, 0, 1])


@pytest.mark.parametrize(
    "y_true, healthy, found",
    [(KERMANY_Y, "'NORMAL'", "['NORMAL', 'PNEUMONIA']"), (INT_Y, "0", "[0, 1]")],
)
def test_absent_healthy_label_is_refused_not_scored_perfect(y_true, healthy, found):
    # A model that calls everyone healthy, scored with the default
    # healthy_label="normal" that these labels do not contain: before the fix
    # it got FNFR 0 and sensitivity 1.
    y_pred = np.full_like(y_true, y_true[0])
    message = (
        f"healthy_label='normal' is not among the labels {found}; "
        f"pass healthy_label=... (e.g. healthy_label={healthy})."
    )
    with pytest.raises(ValueError) as exc:
        false_no_finding_rate(y_true, y_pred)
    assert str(exc.value) == message
    X = np.zeros((len(y_true), 1))
    always_healthy = DummyClassifier(strategy="constant", constant=y_true[0])
    always_healthy.fit(X, y_true)
    for scorer in (fnfr_scorer, sensitivity_scorer, specificity_scorer):
        with pytest.raises(ValueError, match="healthy_label='normal' is not among"):
            scorer(always_healthy, X, y_true)
    # Inside a search, the refusal shows as a nan score instead of a perfect one.
    with pytest.warns(UserWarning, match="healthy_label"):
        scores = cross_validate(
            always_healthy, X, y_true, cv=2, scoring=sensitivity_scorer
        )["test_score"]
    assert np.isnan(scores).all()
    # With the right label the same model gets the worst scores.
    scoring = cxr_scoring(healthy_label=y_true[0].item())
    assert false_no_finding_rate(y_true, y_pred, healthy_label=y_true[0]) == 1.0
    assert scoring["fnfr"](always_healthy, X, y_true) == -1.0
    assert scoring["sensitivity"](always_healthy, X, y_true) == 0.0
    assert scoring["specificity"](always_healthy, X, y_true) == 1.0


def test_absent_label_messages_for_sensitivity_specificity():
    with pytest.raises(ValueError) as exc:
        sensitivity_specificity(KERMANY_Y, KERMANY_Y, positive_label="pneumonia")
    assert str(exc.value) == (
        "positive_label='pneumonia' is not among the labels ['NORMAL', 'PNEUMONIA']; "
        "pass positive_label=... (e.g. positive_label='PNEUMONIA')."
    )
    with pytest.raises(ValueError, match=r"positive_label=2 is not among .*\[0, 1\]"):
        sensitivity_specificity(INT_Y, INT_Y, positive_label=2)
    assert sensitivity_specificity(INT_Y, INT_Y, positive_label=1) == (1.0, 1.0)


def test_absent_healthy_label_without_a_likely_candidate():
    # Only findings in this subset: nothing to suggest, so say what to do.
    with pytest.raises(ValueError, match="naming the no-finding class"):
        false_no_finding_rate(["bacteria", "virus"], ["virus", "virus"])


def test_healthy_label_present_only_in_predictions_is_scored():
    # Every image has a finding; the healthy label occurs only in y_pred.
    y_true = ["PNEUMONIA"] * 4
    y_pred = ["NORMAL", "PNEUMONIA", "PNEUMONIA", "PNEUMONIA"]
    assert false_no_finding_rate(y_true, y_pred, healthy_label="NORMAL") == 0.25
    spec = cxr_scoring("NORMAL")["specificity"]._score_func
    with pytest.warns(RuntimeWarning) as record:
        assert spec(np.array(y_true), np.array(y_pred), healthy_label="NORMAL") == 0
    message = str(record[0].message)
    assert "no image of healthy_label='NORMAL'" in message
    assert "returning 0.0" in message


def test_public_functions_validate_their_parameters():
    with pytest.raises(ValueError, match="'healthy_label' parameter"):
        false_no_finding_rate([0, 1], [0, 1], healthy_label=0.5)
    with pytest.raises(ValueError, match="'zero_division' parameter"):
        false_no_finding_rate([0, 1], [0, 1], healthy_label=0, zero_division=2)
    with pytest.raises(ValueError, match="'label' parameter"):
        f1_for_class([1])
    with pytest.raises(ValueError, match="'healthy_label' parameter"):
        cxr_scoring(None)


def test_import_does_not_import_torch():
    code = (
        "import sys, skcxr.metrics as m; m.bootstrap_ci; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


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


@pytest.mark.parametrize(
    "metric", [false_no_finding_rate, sensitivity_specificity, per_class_f1]
)
def test_scores_instead_of_labels_and_empty_input_are_named(metric):
    scores = np.random.default_rng(0).random(10)
    with pytest.raises(ValueError, match="y_true holds continuous values"):
        metric(scores, scores)
    with pytest.raises(ValueError, match="empty: there is nothing to score"):
        metric([], [])
