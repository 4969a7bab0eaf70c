"""Reliability diagrams and subgroup forest plots."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from skcxr.inspection import ReliabilityDisplay, SubgroupDisplay
from skcxr.metrics import expected_calibration_error, subgroup_metrics


def _binary(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = np.where(X[:, 0] + rng.normal(scale=0.7, size=n) > 0, "pneumonia", "normal")
    return X, y


def test_reliability_binary_draws_sklearn_curves_and_the_ece():
    rng = np.random.default_rng(0)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    display = ReliabilityDisplay.from_predictions(y, p, n_bins=10, name="m")
    true, pred = calibration_curve(y, p, n_bins=10)
    line = display.lines_[0]
    np.testing.assert_allclose(line.get_xdata(), pred)
    np.testing.assert_allclose(line.get_ydata(), true)
    ece = expected_calibration_error(y, p, n_bins=10)
    assert line.get_label() == f"m (ECE {ece:.3f})"
    assert len(display.ax_) == 1 and display.figure_ is display.ax_[0].figure


def test_reliability_from_estimator_overlays_the_calibrated_model():
    X, y = _binary()
    model = LogisticRegression(C=100).fit(X[:200], y[:200])
    display = ReliabilityDisplay.from_estimator(model, X[400:], y[400:])
    calibrated = CalibratedClassifierCV(
        FrozenEstimator(model), method="temperature"
    ).fit(X[200:400], y[200:400])
    ReliabilityDisplay.from_estimator(
        calibrated, X[400:], y[400:], name="temperature", ax=display.ax_
    )
    labels = [line.get_label() for line in display.ax_[0].get_lines()]
    assert labels[0] == "Perfectly calibrated"
    assert labels[1].startswith("LogisticRegression (ECE")
    assert labels[2].startswith("temperature (ECE")
    assert "pneumonia" in display.ax_[0].get_xlabel()  # positive class: classes_[1]


def test_reliability_multiclass_one_panel_per_class():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), 300)
    classes = np.array(["virus", "normal", "bacteria"])  # column order
    y = np.array([rng.choice(classes, p=row) for row in proba])
    display = ReliabilityDisplay.from_predictions(y, proba, labels=classes, n_bins=5)
    assert [ax.get_title() for ax in display.ax_] == [f"{c} vs rest" for c in classes]
    for k, line in enumerate(display.lines_):
        true, _ = calibration_curve(y == classes[k], proba[:, k], n_bins=5)
        np.testing.assert_allclose(line.get_ydata(), true)
    with pytest.raises(ValueError, match="3 panel"):
        ReliabilityDisplay.from_predictions(y, proba, labels=classes, ax=display.ax_[0])


def _subgroups(n=800, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    view = np.where(np.arange(n) < 8, "AP", "PA")
    y = rng.integers(0, 2, n)
    score = y * np.where(sex == "F", 0.6, 2.0) + rng.normal(size=n)
    return y, score, {"sex": sex, "view": view}


def test_subgroup_forest_plot_marks_called_gaps_and_unestimable_groups():
    y, score, groups = _subgroups()
    res = subgroup_metrics(y, score, groups, n_resamples=200, random_state=0)
    display = SubgroupDisplay.from_result(res)
    ticks = [t.get_text() for t in display.ax_.get_yticklabels()]
    assert ticks[0] == "sex" and ticks[3] == "view"
    assert ticks[4] == "AP (n=8)"
    assert len(display.called_.get_offsets()) == int(res.gap_called.sum()) == 2
    assert len(display.points_.get_offsets()) == int(res.estimable.sum()) == 3
    np.testing.assert_allclose(
        display.points_.get_offsets()[:, 0], res.value[res.estimable]
    )
    assert display.overall_line_.get_xdata()[0] == pytest.approx(res.overall)
    (text,) = display.not_estimable_texts_
    assert "not estimable" in text.get_text()
    assert f"{res.n_positive[2]} with the finding" in text.get_text()
    assert display.ax_.get_xlabel() == "ROC AUC"
    assert display.intervals_.get_label() == "95% interval"
    display = SubgroupDisplay.from_predictions(
        y, score, groups, n_resamples=100, confidence_level=1 - 0.05 / 4
    )
    assert display.intervals_.get_label() == "98.8% interval"


def test_subgroup_display_from_frame_predictions_and_estimator():
    pd = pytest.importorskip("pandas")
    y, score, groups = _subgroups()
    frame = subgroup_metrics(
        y,
        score,
        groups,
        metric="fnfr",
        threshold=0.5,
        n_resamples=100,
        random_state=0,
        as_frame=True,
    )
    display = SubgroupDisplay.from_result(frame)
    assert display.ax_.get_xlabel() == "false no-finding rate at threshold 0.5"
    assert isinstance(frame, pd.DataFrame)
    display = SubgroupDisplay.from_predictions(
        y, score, groups["sex"], n_resamples=100, random_state=0
    )
    assert [t.get_text() for t in display.ax_.get_yticklabels()][0] == "group"

    X, y_text = _binary()
    model = LogisticRegression().fit(X[:300], y_text[:300])
    sex = np.where(np.arange(300) % 2, "F", "M")
    display = SubgroupDisplay.from_estimator(
        model, X[300:], y_text[300:], {"sex": sex}, n_resamples=100, random_state=0
    )
    expected = subgroup_metrics(
        y_text[300:],
        model.predict_proba(X[300:])[:, 1],
        {"sex": sex},
        pos_label="pneumonia",
        n_resamples=100,
        random_state=0,
    )
    np.testing.assert_allclose(display.points_.get_offsets()[:, 0], expected.value)
    three = LogisticRegression().fit(X[:300], np.arange(300) % 3)
    with pytest.raises(ValueError, match="binary classifier"):
        SubgroupDisplay.from_estimator(three, X[300:], y_text[300:], sex)
