"""Calibration error, operating thresholds and subgroup metrics: answers checked
against from-scratch references and simulations with known truth."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from skcxr.metrics import (
    bootstrap_ci,
    expected_calibration_error,
    subgroup_metrics,
    threshold_for_sensitivity,
    threshold_for_specificity,
)
from skcxr.metrics._subgroups import _count_matrices, _Subset

# ----------------------------------------------------------------- ECE


def reference_ece(y_true, proba, classes, n_bins):
    """Top-label ECE written out with a loop over bins (Guo et al. 2017)."""
    total, n = 0.0, len(y_true)
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        members = []
        for i in range(n):
            top = int(np.argmax(proba[i]))
            conf = proba[i, top]
            if (lo < conf <= hi) or (m == 0 and conf == 0):
                members.append((conf, classes[top] == y_true[i]))
        if members:
            conf = np.mean([c for c, _ in members])
            acc = np.mean([a for _, a in members])
            total += len(members) / n * abs(acc - conf)
    return total


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_matches_a_from_scratch_loop(n_classes, n_bins):
    rng = np.random.default_rng(n_classes * 100 + n_bins)
    proba = rng.dirichlet(np.ones(n_classes) * 0.7, 300)
    classes = np.array([f"c{k}" for k in range(n_classes)])
    y = classes[rng.integers(0, n_classes, 300)]
    got = expected_calibration_error(y, proba, n_bins=n_bins)
    assert got == pytest.approx(reference_ece(y, proba, classes, n_bins), abs=1e-12)


def test_ece_binary_1d_is_the_two_column_ece():
    rng = np.random.default_rng(0)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(int)
    two = np.column_stack([1 - p, p])
    assert expected_calibration_error(y, p) == pytest.approx(
        expected_calibration_error(y, two)
    )
    assert expected_calibration_error(y, p) == pytest.approx(
        reference_ece(y, two, np.array([0, 1]), 15)
    )
    # string labels need the positive class named
    y_str = np.where(y == 1, "pneumonia", "normal")
    with pytest.raises(ValueError, match="pos_label"):
        expected_calibration_error(y_str, p)
    assert expected_calibration_error(y_str, p, pos_label="pneumonia") == pytest.approx(
        expected_calibration_error(y, p)
    )


def test_ece_columns_follow_labels_not_sorted_order():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = ["virus", "normal", "virus"]
    # columns are (virus, normal): every top label is right
    ece = expected_calibration_error(y, proba, labels=["virus", "normal"])
    assert ece == pytest.approx(np.mean([0.1, 0.2, 0.4]))


def test_ece_calibrated_vs_over_confident():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01
    sharp = np.clip(0.5 + 1.8 * (p - 0.5), 0, 1)
    assert expected_calibration_error(y, sharp) > 0.1


def test_ece_refuses_bad_input():
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error([0, 1], [[0.9, 0.9], [0.1, 0.1]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([0, 1], [1.2, 0.1])
    with pytest.raises(ValueError, match="labels"):
        expected_calibration_error([0, 1], [[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="not in labels"):
        expected_calibration_error([0, 7], [[0.5, 0.5], [0.5, 0.5]], labels=[0, 1])
    with pytest.raises(ValueError, match="'n_bins' parameter"):
        expected_calibration_error([0, 1], [0.2, 0.8], n_bins=0)


# ----------------------------------------------------- operating points


def test_thresholds_reach_their_target_on_the_data_they_were_chosen_on():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    score = y + rng.normal(size=500)
    for target in (0.5, 0.8, 0.9, 0.95, 0.99, 1.0):
        t = threshold_for_sensitivity(y, score, target)
        called = score >= t
        assert called[y == 1].mean() >= target
        # the largest such threshold: one score higher misses the target
        higher = np.unique(score[score > t])
        if higher.size:
            assert (score >= higher[0])[y == 1].mean() < target
        t = threshold_for_specificity(y, score, target)
        assert (~(score >= t))[y == 0].mean() >= target
        lower = np.unique(score[score < t])
        if lower.size:
            assert (~(score >= lower[-1]))[y == 0].mean() < target


def test_thresholds_with_string_labels_and_ties():
    y = np.array(["normal", "pneumonia"] * 4)
    score = np.array([0.1, 0.5, 0.5, 0.5, 0.2, 0.9, 0.3, 0.5])
    assert threshold_for_sensitivity(y, score, 1.0, pos_label="pneumonia") == 0.5
    # one of the four negatives scores 0.5: specificity 0.75 at 0.5, 1 at 0.9
    assert threshold_for_specificity(y, score, 0.75, pos_label="pneumonia") == 0.5
    assert threshold_for_specificity(y, score, 1.0, pos_label="pneumonia") == 0.9
    with pytest.raises(ValueError, match="pos_label"):
        threshold_for_sensitivity(y, score, 0.9)
    with pytest.raises(ValueError, match="pos_label='Pneumonia' is not among"):
        threshold_for_sensitivity(y, score, 0.9, pos_label="Pneumonia")


def test_threshold_needs_both_classes_and_warns_on_inf():
    with pytest.raises(ValueError, match="both classes"):
        threshold_for_sensitivity([1, 1, 1], [0.2, 0.3, 0.4])
    with pytest.warns(RuntimeWarning, match="inf"):
        t = threshold_for_specificity([0, 1, 1], [0.9, 0.3, 0.4], 1.0)
    assert np.isinf(t)
    with pytest.raises(ValueError, match="'sensitivity' parameter"):
        threshold_for_sensitivity([0, 1], [0.2, 0.3], 0.0)


def test_validation_threshold_lands_near_the_target_on_a_large_test_set():
    rng = np.random.default_rng(3)

    def draw(n):
        y = rng.random(n) < 0.4
        return y.astype(int), np.where(y, 1.5, 0.0) + rng.normal(size=n)

    y_val, s_val = draw(2000)
    y_test, s_test = draw(50000)
    t = threshold_for_sensitivity(y_val, s_val, 0.95)
    test_sensitivity = (s_test >= t)[y_test == 1].mean()
    assert abs(test_sensitivity - 0.95) < 0.02


# ----------------------------------------------------------- subgroups


def simulated(n, auc_f, auc_m, seed, n_patients=None):
    """Binormal scores (unit variances) whose ROC AUC is ``auc`` per sex."""
    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    y = (rng.random(n) < 0.5).astype(int)
    shift = np.sqrt(2) * norm.ppf(np.where(sex == "F", auc_f, auc_m))
    score = y * shift + rng.normal(size=n)
    return y, score, sex


@pytest.mark.parametrize("decimals", [1, None])  # tied scores, or none
def test_weighted_auc_equals_sklearn_on_the_resampled_rows(decimals):
    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 2, n)
    score = y + rng.normal(size=n)
    if decimals is not None:
        score = np.round(score, decimals)
    subset = _Subset(np.ones(n, bool), y.astype(bool), score, score >= 0.5)
    patients = rng.integers(0, 40, n)
    for ids in (None, patients):
        gen = np.random.default_rng(1)
        W = next(_count_matrices(n, ids, 5, gen))
        got = subset.metric("roc_auc", W)
        gen = np.random.default_rng(1)
        from skcxr.metrics._bootstrap import _resample_indices

        for w, idx in zip(got, _resample_indices(n, ids, 5, gen)):
            assert w == pytest.approx(roc_auc_score(y[idx], score[idx]))


def test_subgroup_overall_interval_is_bootstrap_ci_with_the_same_resamples():
    y, score, sex = simulated(400, 0.8, 0.8, seed=0)
    patients = np.arange(400) // 3
    for ids in (None, patients):
        res = subgroup_metrics(
            y, score, sex, n_resamples=300, random_state=5, patient_ids=ids
        )
        ref = bootstrap_ci(
            y, score, roc_auc_score, groups=ids, n_resamples=300, random_state=5
        )
        assert res.overall == pytest.approx(ref.estimate)
        assert (res.overall_ci_low, res.overall_ci_high) == pytest.approx(
            (ref.low, ref.high)
        )
        assert res.unit == ("images" if ids is None else "patients")


def test_planted_gap_is_found_and_null_gap_is_not_called():
    y, score, sex = simulated(2000, 0.70, 0.85, seed=1)
    res = subgroup_metrics(y, score, sex, n_resamples=500, random_state=0)
    assert res.groups.tolist() == ["F", "M"]
    assert res.gap_called.tolist() == [True, True]
    assert res.gap[0] < 0 < res.gap[1]
    assert res.gap[0] == pytest.approx(res.value[0] - res.value[1])
    assert res.ci_low[0] < 0.70 < res.ci_high[0]
    assert res.ci_low[1] < 0.85 < res.ci_high[1]

    y, score, sex = simulated(2000, 0.8, 0.8, seed=2)
    res = subgroup_metrics(y, score, sex, n_resamples=500, random_state=0)
    assert res.gap_called.tolist() == [False, False]
    assert res.gap_ci_low[0] < 0 < res.gap_ci_high[0]


@pytest.mark.parametrize("metric", ["sensitivity", "specificity", "fnfr"])
def test_thresholded_metrics_match_their_definitions(metric):
    y, score, sex = simulated(600, 0.75, 0.85, seed=4)
    t = 0.6
    res = subgroup_metrics(
        y, score, sex, metric=metric, threshold=t, n_resamples=100, random_state=0
    )
    called = score >= t
    for j, g in enumerate(res.groups):
        m = sex == g
        sens = called[m & (y == 1)].mean()
        expected = {
            "sensitivity": sens,
            "fnfr": 1 - sens,
            "specificity": (~called)[m & (y == 0)].mean(),
        }[metric]
        assert res.value[j] == pytest.approx(expected)
        assert res.ci_low[j] <= res.value[j] <= res.ci_high[j]
    assert res.threshold == t and res.metric == metric


def test_not_estimable_groups_are_flagged_with_counts_never_averaged():
    y, score, sex = simulated(300, 0.8, 0.8, seed=5)
    view = np.array(["PA"] * 300, dtype=object)
    view[:12] = "AP"
    y[:12] = 0
    y[:3] = 1  # AP: 3 images with the finding, 9 without
    res = subgroup_metrics(
        y, score, {"view": view}, n_resamples=100, random_state=0, min_count=5
    )
    assert res.groups.tolist() == ["AP", "PA"]
    assert res.estimable.tolist() == [False, True]
    assert (res.n[0], res.n_positive[0], res.n_negative[0]) == (12, 3, 9)
    assert np.isnan(res.value[0]) and not res.gap_called[0]
    assert "3 images with the finding" in res.reason[0]
    assert "min_count=5" in res.reason[0]
    # the estimable group keeps its value; its rest of the data is too small
    assert np.isfinite(res.value[1]) and np.isnan(res.gap[1])
    assert res.reason[1].startswith("gap not estimable: rest of the data")
    # specificity only needs the 9 images without the finding
    res = subgroup_metrics(
        y,
        score,
        {"view": view},
        metric="specificity",
        n_resamples=100,
        random_state=0,
        min_count=5,
    )
    assert res.estimable.tolist() == [True, True]


def test_a_group_without_positives_does_not_crash():
    y, score, sex = simulated(200, 0.8, 0.8, seed=6)
    y[sex == "F"] = 0
    res = subgroup_metrics(y, score, sex, n_resamples=50, random_state=0)
    assert res.estimable.tolist() == [False, True]
    assert res.n_positive[0] == 0
    assert np.isfinite(res.overall)


def test_patient_level_resampling_is_used_and_widens_correlated_intervals():
    # 100 patients with 10 near-identical images each: image-level resampling
    # pretends to have 1,000 independent images
    rng = np.random.default_rng(7)
    n_pat, per = 100, 10
    patients = np.repeat(np.arange(n_pat), per)
    y = np.repeat(rng.integers(0, 2, n_pat), per)
    score = np.repeat(y[::per] + rng.normal(size=n_pat), per)
    score = score + rng.normal(scale=0.01, size=score.size)
    sex = np.repeat(rng.choice(["F", "M"], n_pat), per)
    images = subgroup_metrics(y, score, sex, n_resamples=300, random_state=0)
    by_patient = subgroup_metrics(
        y, score, sex, n_resamples=300, random_state=0, patient_ids=patients
    )
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    assert np.all(width(by_patient) > 2 * width(images))
    assert by_patient.unit == "patients"


def test_several_attributes_missing_values_and_frame():
    pd = pytest.importorskip("pandas")
    y, score, sex = simulated(400, 0.8, 0.8, seed=8)
    rng = np.random.default_rng(8)
    age = np.where(rng.random(400) < 0.5, "<60", "60+").astype(object)
    age[:20] = None
    frame = pd.DataFrame({"sex": sex, "age": age})
    res = subgroup_metrics(y, score, frame, n_resamples=100, random_state=0)
    assert res.attribute.tolist() == ["sex", "sex", "age", "age"]
    assert res.groups.tolist() == ["F", "M", "60+", "<60"]
    assert res.n[2] + res.n[3] == 380  # missing ages form no group
    out = subgroup_metrics(
        y, score, frame, n_resamples=100, random_state=0, as_frame=True
    )
    assert isinstance(out, pd.DataFrame)
    assert list(out["groups"]) == res.groups.tolist()
    np.testing.assert_allclose(out["gap"], res.gap)
    assert out.attrs["overall"] == pytest.approx(res.overall)
    assert out.attrs["metric"] == "roc_auc"


def test_subgroup_metrics_errors_name_the_parameter():
    y, score, sex = simulated(100, 0.8, 0.8, seed=9)
    with pytest.raises(ValueError, match="'metric' parameter"):
        subgroup_metrics(y, score, sex, metric="accuracy")
    with pytest.raises(ValueError, match="patient_ids"):
        subgroup_metrics(y, score, sex, patient_ids=[1, 2])
    with pytest.raises(ValueError, match="one value per image"):
        subgroup_metrics(y, score, sex[:5])
    with pytest.raises(ValueError, match="pos_label"):
        subgroup_metrics(np.where(y == 1, "pneumonia", "normal"), score, sex)
    with pytest.raises(ValueError, match="binary"):
        subgroup_metrics(np.arange(100) % 3, score, sex)
    with pytest.raises(ValueError, match="pos_label=2 is not among"):
        subgroup_metrics(y, score, sex, pos_label=2)
