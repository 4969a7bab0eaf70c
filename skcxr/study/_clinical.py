"""The study's clinical evaluation of a fitted classifier.

Four questions a reader asks before taking a model's output as a probability
or a triage decision: are the probabilities calibrated (top-label ECE, Guo et
al. 2017, before and after temperature scaling fitted on the validation split
with scikit-learn's ``CalibratedClassifierCV(FrozenEstimator(model),
method="temperature")``), what sensitivity and specificity it has at the
threshold it would run at (chosen on validation for a target sensitivity of
"any finding", reported on test), and whether it fails some patients more
than others (per sex, age band, view and source, with the gap to the rest and
its interval; Seyyed-Kalantari et al. 2021). Every value carries a
patient-level bootstrap 95% CI.
"""

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from ..metrics import subgroup_metrics, threshold_for_sensitivity
from ._metrics import note, with_ci

__all__ = [
    "AGE_BANDS",
    "age_bands",
    "calibrate",
    "calibrate_like",
    "clinical_metrics",
    "positive_class",
    "ece_metric",
    "finding_score",
    "subgroup_rows",
]

#: Age bands of the subgroup analysis, in years: [low, high).
AGE_BANDS = ((0, 40), (40, 60), (60, 80), (80, 200))
#: Bins of the top-label ECE (Guo et al. 2017).
N_BINS = 15


def ece_metric(classes, n_bins=N_BINS):
    """``ece(y_true, proba)``: :func:`skcxr.metrics.expected_calibration_error`
    with ``labels=classes``, in numpy for the bootstrap resamples (equal to
    it; tests/test_study.py checks)."""
    classes = np.asarray(classes)
    edges = np.linspace(0.0, 1.0, n_bins + 1)

    def ece(y_true, proba):
        top = proba.argmax(axis=1)
        confidence = proba[np.arange(len(proba)), top]
        correct = classes[top] == y_true
        # bin m holds confidences in ((m - 1) / M, m / M]
        bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, None)
        gap = np.bincount(bins, weights=correct - confidence, minlength=n_bins)
        return float(np.abs(gap).sum() / len(y_true))

    return ece


def calibrate(model, X_val, y_val):
    """``model`` with temperature-scaled probabilities, fitted on validation."""
    # a frozen model is not refitted: one "fold" holding every validation
    # image (the default 5-fold split refuses a class with under 5 images)
    everything = np.arange(len(y_val))
    return CalibratedClassifierCV(
        FrozenEstimator(model), method="temperature", cv=[(everything, everything)]
    ).fit(X_val, y_val)


def calibrate_like(calibrated, model):
    """The temperature scaling of ``calibrated`` on another ``model`` that
    computes the same probabilities (the network behind a pipeline that reads
    the image files), without fitting it again.

    The study fits the temperature on the validation images in memory; the
    model it saves reads files. scikit-learn's calibrator holds the frozen
    model it calibrates (``calibrated_classifiers_[0].estimator``): that model
    is replaced, the fitted temperature is kept.
    """
    import copy

    out = copy.copy(calibrated)
    out.estimator = FrozenEstimator(model)
    out.calibrated_classifiers_ = []
    for fitted in calibrated.calibrated_classifiers_:
        fitted = copy.copy(fitted)
        fitted.estimator = out.estimator
        out.calibrated_classifiers_.append(fitted)
    return out


def positive_class(classes, healthy):
    """The class of a binary problem that is not ``healthy``."""
    return next(c for c in classes if c != healthy)


def finding_score(model, proba, healthy):
    """The probability of any finding: ``1 - P(healthy)``."""
    classes = list(np.asarray(model.classes_))
    return 1.0 - proba[:, classes.index(healthy)]


def _sensitivity(y_true, flagged):
    sick = y_true != 0
    return float(np.mean(flagged[sick])) if sick.any() else np.nan


def _specificity(y_true, flagged):
    well = y_true == 0
    return float(np.mean(~flagged[well])) if well.any() else np.nan


def clinical_metrics(
    row,
    model,
    calibrated,
    split_data,
    *,
    healthy,
    target_sensitivity,
    n_resamples,
    random_state,
):
    """Add calibration and operating-point columns to a metric ``row``.

    ``split_data`` maps ``"validation"`` and ``"test"`` to ``(X, y, groups)``.
    Returns the operating threshold (None when it cannot be chosen).
    """
    X_val, y_val, _ = split_data["validation"]
    X_test, y_test, groups = split_data["test"]
    common = dict(groups=groups, n_resamples=n_resamples, random_state=random_state)
    classes = np.asarray(model.classes_)
    ece = ece_metric(classes)
    proba = model.predict_proba(X_test)
    calibrated_proba = calibrated.predict_proba(X_test)
    with_ci(row, "ECE", y_test, proba, ece, **common)
    with_ci(row, "ECE calibrated", y_test, calibrated_proba, ece, **common)
    row["temperature"] = float(_temperature(calibrated))
    sick_val = (y_val != healthy).astype(int)
    if sick_val.min() == sick_val.max():
        note(row, "no operating point: the validation split has one class only")
        return None
    score_val = finding_score(model, calibrated.predict_proba(X_val), healthy)
    threshold = float(
        threshold_for_sensitivity(sick_val, score_val, sensitivity=target_sensitivity)
    )
    flagged = finding_score(model, calibrated_proba, healthy) >= threshold
    sick = (y_test != healthy).astype(int)
    row["operating threshold"] = threshold
    row["target sensitivity"] = target_sensitivity
    with_ci(row, "sensitivity at threshold", sick, flagged, _sensitivity, **common)
    with_ci(row, "specificity at threshold", sick, flagged, _specificity, **common)
    return threshold


def _temperature(calibrated):
    """The fitted temperature of a temperature-scaled model (1: unchanged)."""
    scaler = calibrated.calibrated_classifiers_[0].calibrators[0]
    beta = getattr(scaler, "beta_", None)
    return np.nan if beta is None else 1.0 / float(beta)


def age_bands(ages):
    """Age in years -> band labels such as ``"40-59"`` (``""`` when unknown)."""
    ages = np.asarray(ages, dtype=float)
    out = np.full(len(ages), "", dtype=object)
    for low, high in AGE_BANDS:
        label = f"{low}-{high - 1}" if high < 200 else f"{low}+"
        out[(ages >= low) & (ages < high)] = label
    return out


def _groups(attributes):
    """The subgroup attributes: age in bands, unknown values as missing."""
    groups = {}
    for name, values in attributes.items():
        values = age_bands(values) if name == "age" else np.asarray(values, object)
        values = np.where(np.isin(values, ("", "unknown", "U", "O")), None, values)
        if any(v is not None for v in values):
            groups["age band" if name == "age" else name] = values
    return groups


def subgroup_rows(
    model,
    calibrated,
    X_test,
    y_test,
    patients,
    attributes,
    *,
    healthy,
    threshold,
    min_count,
    n_resamples,
    random_state,
):
    """Per subgroup: ROC AUC of any finding and the false no-finding rate at
    the operating threshold, with their gaps to the rest. Returns the rows of
    ``subgroups.csv`` and the :func:`~skcxr.metrics.subgroup_metrics` result
    of each metric (for the forest plots)."""
    groups = _groups(attributes)
    if not groups:
        return [], []
    score = finding_score(model, calibrated.predict_proba(X_test), healthy)
    sick = (np.asarray(y_test) != healthy).astype(int)
    rows, results = [], []
    metrics = [("roc_auc", 0.5)]
    if threshold is not None:
        metrics.append(("fnfr", threshold))
    for metric, cut in metrics:
        result = subgroup_metrics(
            sick,
            score,
            groups,
            metric=metric,
            threshold=cut,
            min_count=min_count,
            n_resamples=n_resamples,
            random_state=random_state,
            patient_ids=patients,
        )
        results.append(result)
        for k in range(len(result.groups)):
            rows.append(
                {
                    "metric": "ROC AUC" if metric == "roc_auc" else "FNFR",
                    "attribute": result.attribute[k],
                    "group": str(result.groups[k]),
                    "images": int(result.n[k]),
                    "with finding": int(result.n_positive[k]),
                    "value": float(result.value[k]),
                    "CI low": float(result.ci_low[k]),
                    "CI high": float(result.ci_high[k]),
                    "gap": float(result.gap[k]),
                    "gap CI low": float(result.gap_ci_low[k]),
                    "gap CI high": float(result.gap_ci_high[k]),
                    "gap called": bool(result.gap_called[k]),
                    "estimable": bool(result.estimable[k]),
                    "reason": str(result.reason[k]),
                }
            )
    return rows, results
