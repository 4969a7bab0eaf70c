"""The study's metric rows: every value with its bootstrap 95% confidence interval.

The metrics are written with numpy on fixed class lists so that the 1,000
bootstrap resamples of every row cost milliseconds rather than seconds
(scikit-learn's ``roc_auc_score`` validates its input on every call: 2.5 s per
binary row and 4.7 s per three-class row, about a fifth of the default study);
each one equals its scikit-learn or :mod:`skcxr.metrics` counterpart
(tests/test_study.py checks).
"""

import numpy as np
from scipy.stats import rankdata

from ..metrics import bootstrap_ci

__all__ = [
    "evaluate",
    "evaluate_multilabel",
    "finding_auc_row",
    "mean_of_estimable",
    "note",
    "with_ci",
    "binary_roc_auc",
    "CHEXNET_AUC",
]

# per-finding test ROC AUC of CheXNet (Rajpurkar et al. 2017, Table 1)
CHEXNET_AUC = {
    "Atelectasis": 0.8094,
    "Cardiomegaly": 0.9248,
    "Effusion": 0.8638,
    "Infiltration": 0.7345,
    "Mass": 0.8676,
    "Nodule": 0.7802,
    "Pneumonia": 0.7680,
    "Pneumothorax": 0.8887,
    "Consolidation": 0.7901,
    "Edema": 0.8878,
    "Emphysema": 0.9371,
    "Fibrosis": 0.8047,
    "Pleural_Thickening": 0.8062,
    "Hernia": 0.9164,
}


def _accuracy(y_true, y_pred):
    return float(np.mean(y_true == y_pred))


def _f1_of(label):
    def f1(y_true, y_pred):
        true, pred = y_true == label, y_pred == label
        denominator = true.sum() + pred.sum()
        return 2.0 * np.sum(true & pred) / denominator if denominator else 0.0

    return f1


def _macro_f1(classes):
    per_class = [_f1_of(c) for c in classes]

    def macro_f1(y_true, y_pred):
        return float(np.mean([f(y_true, y_pred) for f in per_class]))

    return macro_f1


def binary_roc_auc(is_positive, score):
    """ROC AUC as the Mann-Whitney statistic (Hanley & McNeil 1982).

    The probability that a positive scores above a negative, ties counting
    half; nan (undefined) when either class is absent.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    n_positive = int(is_positive.sum())
    n_negative = is_positive.size - n_positive
    if not n_positive or not n_negative:
        return np.nan
    positive_ranks = rankdata(score)[is_positive].sum()
    return float(
        (positive_ranks - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)
    )


def _roc_auc(classes):
    """Binary ROC AUC of the second class, or the macro one-vs-rest average."""

    def roc_auc(y_true, proba):
        if len(classes) == 2:
            return binary_roc_auc(y_true == classes[1], proba[:, 1])
        return float(
            np.mean(
                [
                    binary_roc_auc(y_true == c, proba[:, k])
                    for k, c in enumerate(classes)
                ]
            )
        )

    return roc_auc


def _false_no_finding_rate(healthy):
    """:func:`skcxr.metrics.false_no_finding_rate`, nan without findings."""

    def fnfr(y_true, y_pred):
        sick = y_true != healthy
        n_sick = int(sick.sum())
        return np.sum(sick & (y_pred == healthy)) / n_sick if n_sick else np.nan

    return fnfr


def with_ci(row, name, y_true, y_pred, metric, *, groups, n_resamples, random_state):
    """Add ``name``, ``name CI low`` and ``name CI high`` to ``row``.

    A metric that cannot be estimated on the data (an AUC without positives,
    say) gets NaN in all three and a line in ``row["notes"]``; it never stops
    the study, and it is never averaged with the others silently.
    """
    if np.isnan(metric(np.asarray(y_true), np.asarray(y_pred))):
        row[name] = row[f"{name} CI low"] = row[f"{name} CI high"] = np.nan
        note(row, f"{name} not estimable on these {len(y_true)} images")
        return row
    ci = bootstrap_ci(
        y_true,
        y_pred,
        metric,
        groups=groups,
        n_resamples=n_resamples,
        random_state=random_state,
    )
    row[name] = ci.estimate
    row[f"{name} CI low"] = ci.low
    row[f"{name} CI high"] = ci.high
    return row


def note(row, text):
    """Append ``text`` to the ``notes`` column of a metric row."""
    row["notes"] = f"{row['notes']}; {text}" if row.get("notes") else text
    return row


def evaluate(name, task, model, X, y, groups, *, healthy, n_resamples, random_state):
    """Metrics of one fitted single-label classifier on a held-out split.

    Accuracy, macro F1, per-class F1, ROC AUC (one-vs-rest beyond two classes)
    and the false-no-finding rate, each with a patient-level bootstrap CI.
    """
    proba = model.predict_proba(X)
    classes = np.asarray(model.classes_)
    pred = classes[proba.argmax(axis=1)]
    row = {"task": task, "model": name, "test images": len(y)}
    common = dict(groups=groups, n_resamples=n_resamples, random_state=random_state)
    with_ci(row, "accuracy", y, pred, _accuracy, **common)
    with_ci(row, "macro F1", y, pred, _macro_f1(classes), **common)
    for label in classes:
        with_ci(row, f"F1 {label}", y, pred, _f1_of(label), **common)
    with_ci(row, "ROC AUC", y, proba, _roc_auc(classes), **common)
    with_ci(row, "FNFR", y, pred, _false_no_finding_rate(healthy), **common)
    return row


def _known(metric, known):
    """``metric`` on the rows where the label is known (a mask of the images)."""

    def on_known(y_true, score):
        keep = ~np.isnan(y_true)
        return metric(y_true[keep] == 1, score[keep])

    return on_known


def finding_auc_row(
    finding, y_true, score, groups, *, minimum, n_resamples, random_state
):
    """ROC AUC of one finding over the images where it is known, with its CI,
    or a not-estimable row with the counts (fewer than ``minimum`` positive or
    negative images)."""
    y_true = np.asarray(y_true, dtype=float)
    known = ~np.isnan(y_true)
    positives = int((y_true[known] == 1).sum())
    negatives = int(known.sum()) - positives
    row = {"finding": finding, "positives": positives, "negatives": negatives}
    if min(positives, negatives) < minimum:
        row["ROC AUC"] = row["ROC AUC CI low"] = row["ROC AUC CI high"] = np.nan
        return note(
            row,
            f"not estimable: {positives} positive and {negatives} negative images "
            f"(at least {minimum} of each are needed); left out of the mean",
        )
    return with_ci(
        row,
        "ROC AUC",
        y_true,
        score,
        _known(binary_roc_auc, known),
        groups=groups,
        n_resamples=n_resamples,
        random_state=random_state,
    )


def evaluate_multilabel(
    model, X, Y, finding_names, groups, *, minimum, n_resamples, random_state
):
    """Per-finding ROC AUC with CIs, beside CheXNet's published figures."""
    proba = model.predict_proba(X)
    rows = []
    for j, finding in enumerate(finding_names):
        row = finding_auc_row(
            finding,
            Y[:, j],
            proba[:, j],
            groups,
            minimum=minimum,
            n_resamples=n_resamples,
            random_state=random_state,
        )
        row["CheXNet (Rajpurkar et al. 2017)"] = CHEXNET_AUC.get(finding, np.nan)
        rows.append(row)
    return rows


def mean_of_estimable(rows, name="ROC AUC"):
    """The mean of ``name`` over the rows that have it, and how many were left
    out (not estimable)."""
    values = [r[name] for r in rows if not np.isnan(r[name])]
    return (float(np.mean(values)) if values else np.nan), len(rows) - len(values)
