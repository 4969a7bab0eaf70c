import warnings
from functools import partial

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from skcxr.metrics import (
    BootstrapResult,
    PairedBootstrapResult,
    bootstrap_ci,
    false_no_finding_rate,
    paired_bootstrap,
)


def fast_accuracy(y_true, y_pred):
    return float(np.mean(y_true == y_pred))


def predictions(n, accuracy, rng):
    """Binary labels and predictions that are right with probability ``accuracy``."""
    y_true = rng.integers(0, 2, n)
    right = rng.random(n) < accuracy
    return y_true, np.where(right, y_true, 1 - y_true)


def width(res):
    return res.high - res.low


def test_interval_brackets_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = {}
    for n in (100, 1600):
        y_true, y_pred = predictions(n, 0.8, rng)
        res = bootstrap_ci(y_true, y_pred, fast_accuracy, random_state=0)
        assert isinstance(res, BootstrapResult)
        assert res.low <= res.estimate <= res.high
        assert res.estimate == accuracy_score(y_true, y_pred)
        assert res.n_resamples == 1000 and res.n_skipped == 0
        assert len(res.distribution) == 1000
        # Close to the normal-approximation width 2 * 1.96 * sqrt(p (1 - p) / n).
        expected = 2 * 1.96 * np.sqrt(res.estimate * (1 - res.estimate) / n)
        assert width(res) == pytest.approx(expected, rel=0.2)
        widths[n] = width(res)
    # 16 times the images: about a quarter of the width.
    assert widths[1600] < widths[100] / 3


def test_coverage_of_a_known_accuracy():
    # 120 test sets drawn from a predictor whose true accuracy is 0.8: about
    # 95% of the intervals must contain 0.8.
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(120):
        y_true, y_pred = predictions(150, 0.8, rng)
        res = bootstrap_ci(
            y_true, y_pred, fast_accuracy, n_resamples=200, random_state=i
        )
        hits += res.low <= 0.8 <= res.high
    assert 0.88 <= hits / 120 <= 0.99


def test_confidence_level_orders_the_intervals():
    y_true, y_pred = predictions(300, 0.7, np.random.default_rng(2))
    res = {
        level: bootstrap_ci(
            y_true, y_pred, fast_accuracy, confidence_level=level, random_state=0
        )
        for level in (0.5, 0.9, 0.99)
    }
    assert width(res[0.5]) < width(res[0.9]) < width(res[0.99])
    assert res[0.9].confidence_level == 0.9


def correlated_patients(n_patients, per_patient, rng, *, correlated):
    """Each patient's images are all right or all wrong (or independent)."""
    groups = np.repeat(np.arange(n_patients), per_patient)
    y_true = rng.integers(0, 2, n_patients * per_patient)
    if correlated:
        right = np.repeat(rng.random(n_patients) < 0.75, per_patient)
    else:
        right = rng.random(n_patients * per_patient) < 0.75
    return y_true, np.where(right, y_true, 1 - y_true), groups


def test_patient_level_interval_is_wider_for_correlated_images():
    rng = np.random.default_rng(3)
    y_true, y_pred, groups = correlated_patients(60, 5, rng, correlated=True)
    images = bootstrap_ci(y_true, y_pred, fast_accuracy, random_state=0)
    patients = bootstrap_ci(
        y_true, y_pred, fast_accuracy, groups=groups, random_state=0
    )
    assert patients.estimate == images.estimate
    # Five perfectly correlated images per patient: about sqrt(5) times wider.
    assert width(patients) > 1.7 * width(images)
    # Independent images: the two intervals agree.
    y_true, y_pred, groups = correlated_patients(60, 5, rng, correlated=False)
    images = bootstrap_ci(y_true, y_pred, fast_accuracy, random_state=0)
    patients = bootstrap_ci(
        y_true, y_pred, fast_accuracy, groups=groups, random_state=0
    )
    assert 0.75 < width(patients) / width(images) < 1.33


def test_groups_resample_whole_patients():
    # Patients of 1, 2 and 3 images, with string ids in shuffled row order.
    sizes = {"p1": 1, "p2": 2, "p3": 3, "p4": 2}
    groups = np.array([g for g, k in sizes.items() for _ in range(k)])
    groups = groups[np.random.default_rng(4).permutation(len(groups))]
    seen_sizes = set()

    def check(y_true, y_pred):
        ids, counts = np.unique(y_true, return_counts=True)
        for pid, count in zip(ids, counts):
            # Every drawn patient brings all its rows, once per draw.
            assert count % sizes[pid] == 0
        seen_sizes.add(len(y_true))
        assert np.array_equal(y_true, y_pred)
        return 0.0

    res = bootstrap_ci(groups, groups, check, groups=groups, random_state=0)
    assert res.n_resamples == 1000
    assert len(seen_sizes) > 3  # resamples of patients have varying sizes


def test_reproducible_and_no_global_state():
    y_true, y_pred = predictions(80, 0.7, np.random.default_rng(5))
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    first = bootstrap_ci(y_true, y_pred, fast_accuracy, random_state=7)
    again = bootstrap_ci(y_true, y_pred, fast_accuracy, random_state=7)
    other = bootstrap_ci(y_true, y_pred, fast_accuracy, random_state=8)
    assert first == again
    np.testing.assert_array_equal(first.distribution, again.distribution)
    assert not np.array_equal(first.distribution, other.distribution)
    gen = bootstrap_ci(
        y_true, y_pred, fast_accuracy, random_state=np.random.default_rng(7)
    )
    np.testing.assert_array_equal(first.distribution, gen.distribution)
    legacy = np.random.RandomState(3)
    a = bootstrap_ci(y_true, y_pred, fast_accuracy, random_state=legacy)
    b = bootstrap_ci(
        y_true, y_pred, fast_accuracy, random_state=np.random.RandomState(3)
    )
    np.testing.assert_array_equal(a.distribution, b.distribution)
    # The global numpy state is neither read nor advanced.
    bootstrap_ci(y_true, y_pred, fast_accuracy)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_multilabel_and_multiclass_roc_auc():
    rng = np.random.default_rng(6)
    n, k = 300, 3
    y_true = (rng.random((n, k)) < 0.3).astype(int)
    scores = y_true + rng.normal(0, 0.7, (n, k))
    groups = np.repeat(np.arange(n // 3), 3)
    res = bootstrap_ci(
        y_true, scores, roc_auc_score, groups=groups, n_resamples=100, random_state=0
    )
    assert res.estimate == roc_auc_score(y_true, scores)
    assert 0.5 < res.low < res.estimate < res.high <= 1.0
    assert res.n_resamples == 100
    # Class probabilities of three classes, one-vs-rest ROC AUC.
    y = rng.integers(0, 3, n)
    logits = np.eye(3)[y] * 1.5 + rng.normal(0, 1, (n, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    auc_ovr = partial(roc_auc_score, multi_class="ovr")
    res = bootstrap_ci(y, proba, auc_ovr, n_resamples=100, random_state=0)
    assert res.low < res.estimate < res.high
    assert res.estimate == pytest.approx(auc_ovr(y, proba))


def test_paired_comparison_detects_a_better_model():
    rng = np.random.default_rng(7)
    y_true, model_a = predictions(400, 0.85, rng)
    # Model B is model A with 20 more errors: a small but sure difference.
    wrong = rng.choice(np.flatnonzero(model_a == y_true), 20, replace=False)
    model_b = model_a.copy()
    model_b[wrong] = 1 - model_b[wrong]
    res = paired_bootstrap(y_true, model_a, model_b, fast_accuracy, random_state=0)
    assert isinstance(res, PairedBootstrapResult)
    assert res.difference == pytest.approx(20 / 400)
    assert res.difference == pytest.approx(res.estimate_a - res.estimate_b)
    assert 0 < res.low <= res.difference <= res.high
    assert res.significant
    # The separate intervals overlap: only the paired comparison sees it.
    ci_a = bootstrap_ci(y_true, model_a, fast_accuracy, random_state=0)
    ci_b = bootstrap_ci(y_true, model_b, fast_accuracy, random_state=0)
    assert ci_b.high > ci_a.low
    # Swapping the models flips the sign.
    swapped = paired_bootstrap(y_true, model_b, model_a, fast_accuracy, random_state=0)
    assert swapped.difference == -res.difference and swapped.significant
    assert swapped.high < 0


def test_paired_comparison_of_identical_or_equivalent_models():
    rng = np.random.default_rng(8)
    y_true, y_pred = predictions(200, 0.8, rng)
    same = paired_bootstrap(y_true, y_pred, y_pred, fast_accuracy, random_state=0)
    assert (same.difference, same.low, same.high, same.significant) == (
        0.0,
        0.0,
        0.0,
        False,
    )
    # Same accuracy, different errors: model B errs on other images than A.
    wrong_a = np.flatnonzero(y_pred != y_true)
    wrong_b = rng.choice(np.flatnonzero(y_pred == y_true), len(wrong_a), replace=False)
    other = y_true.copy()
    other[wrong_b] = 1 - other[wrong_b]
    groups = np.repeat(np.arange(100), 2)
    res = paired_bootstrap(
        y_true, y_pred, other, fast_accuracy, groups=groups, random_state=0
    )
    assert res.difference == 0.0
    assert res.low < 0 < res.high and not res.significant


def test_undefined_resamples_are_skipped_and_counted():
    # 3 positives in 30 images: some resamples hold no positive (ROC AUC nan).
    rng = np.random.default_rng(9)
    y_true = np.zeros(30, dtype=int)
    y_true[:3] = 1
    scores = y_true + rng.normal(0, 0.5, 30)
    with pytest.warns(RuntimeWarning, match="were skipped") as record:
        res = bootstrap_ci(
            y_true, scores, roc_auc_score, n_resamples=200, random_state=0
        )
    assert 0 < res.n_skipped < 100
    assert res.n_resamples + res.n_skipped == 200
    assert len(res.distribution) == res.n_resamples
    assert "Only one class" in str(record[0].message)
    # One summary, not one warning per resample.
    assert len(record) == 1


def test_too_few_valid_resamples_is_an_error():
    # A metric defined only when image 0 is drawn exactly once: undefined on
    # about 1 - 1/e = 63% of image resamples and on 1 - (4/5) ** 4 = 59% of
    # resamples of 5 patients.
    y = np.arange(20)

    def undefined_with_image_0(y_true, y_pred):
        if (y_true == 0).sum() != 1:
            raise ValueError("image 0 not drawn once")
        return 1.0

    with pytest.raises(ValueError, match=r"only \d+ remain, too few for a 95%") as exc:
        bootstrap_ci(y, y, undefined_with_image_0, n_resamples=200, random_state=0)
    assert "(most often: image 0 not drawn once)" in str(exc.value)
    groups = np.repeat(np.arange(5), 4)
    with pytest.raises(ValueError, match=r"resamples \(of groups\) were skipped"):
        paired_bootstrap(
            y, y[::-1], y, undefined_with_image_0, groups=groups, random_state=0
        )


def test_metric_warnings_are_summarised_once():
    # FNFR warns (and returns zero_division) on resamples without a finding.
    y_true = np.array(["normal"] * 9 + ["virus"])
    y_pred = np.array(["normal"] * 10)
    fnfr = partial(false_no_finding_rate, healthy_label="normal")
    with pytest.warns(RuntimeWarning, match="the metric warned on") as record:
        res = bootstrap_ci(y_true, y_pred, fnfr, n_resamples=200, random_state=0)
    assert len(record) == 1
    assert "none has a finding" in str(record[0].message)
    assert res.estimate == 1.0 and res.low == 0.0


def test_fnfr_interval_by_patient():
    rng = np.random.default_rng(10)
    labels = np.array(["normal", "bacteria", "virus"])
    y_true = labels[rng.integers(0, 3, 120)]
    y_pred = np.where(rng.random(120) < 0.8, y_true, "normal")
    fnfr = partial(false_no_finding_rate, healthy_label="normal")
    res = bootstrap_ci(y_true, y_pred, fnfr, groups=np.arange(120) // 2, random_state=0)
    assert res.estimate == fnfr(y_true, y_pred)
    assert 0 <= res.low < res.estimate < res.high <= 1


def test_errors_name_the_problem():
    y = np.array([0, 1] * 10)
    with pytest.raises(ValueError, match="'metric' parameter"):
        bootstrap_ci(y, y, "accuracy")
    with pytest.raises(ValueError, match="'n_resamples' parameter"):
        bootstrap_ci(y, y, fast_accuracy, n_resamples=0)
    with pytest.raises(ValueError, match="'confidence_level' parameter"):
        paired_bootstrap(y, y, y, fast_accuracy, confidence_level=95)
    with pytest.raises(ValueError, match="'random_state' parameter"):
        bootstrap_ci(y, y, fast_accuracy, random_state="seed")
    with pytest.raises(ValueError, match="groups must be 1-D with one id per sample"):
        bootstrap_ci(y, y, fast_accuracy, groups=[1, 2])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        paired_bootstrap(y, y, y[:5], fast_accuracy)
    with pytest.raises(ValueError, match="y_pred must be 1-D .* or 2-D"):
        bootstrap_ci(y, np.zeros((20, 2, 2)), fast_accuracy)
    with pytest.raises(ValueError, match="y_true is empty"):
        bootstrap_ci([], [], fast_accuracy)
    with pytest.raises(ValueError, match="must return a scalar"):
        bootstrap_ci(y, y, lambda t, p: np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"nan on the full data \(y_pred_b\)"):
        paired_bootstrap(y, y, 1 - y, lambda t, p: 1.0 if p[0] == 0 else np.nan)
    # The metric's own error on the full data reaches the caller unchanged.
    with pytest.raises(ValueError, match="healthy_label='normal' is not among"):
        bootstrap_ci(y, y, false_no_finding_rate)


def test_accepts_lists_and_does_not_warn_when_all_is_well():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = bootstrap_ci(
            [0, 1, 1, 0] * 10, [0, 1, 0, 0] * 10, accuracy_score, n_resamples=100
        )
    assert res.estimate == 0.75
    assert res.low < 0.75 < res.high
