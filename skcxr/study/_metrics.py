"""The study's metric rows: every value with its bootstrap 95% confidence interval.

The metrics are written with numpy on fixed class lists so that the 1,000
bootstrap resamples of every row cost milliseconds; each one equals its
scikit-learn counterpart on the full test split (tests/test_study.py checks).
"""

import numpy as np
from sklearn.metrics import roc_auc_score

from ..metrics import bootstrap_ci, false_no_finding_rate

__all__ = ["evaluate", "evaluate_multilabel", "with_ci", "CHEXNET_AUC"]

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


def _roc_auc(classes):
    def roc_auc(y_true, proba):
        if len(classes) == 2:
            return roc_auc_score(y_true == classes[1], proba[:, 1])
        return roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)

    return roc_auc


def with_ci(row, name, y_true, y_pred, metric, *, groups, settings, random_state):
    """Add ``name``, ``name CI low`` and ``name CI high`` to ``row``."""
    ci = bootstrap_ci(
        y_true,
        y_pred,
        metric,
        groups=groups,
        n_resamples=settings.n_resamples,
        random_state=random_state,
    )
    row[name] = ci.estimate
    row[f"{name} CI low"] = ci.low
    row[f"{name} CI high"] = ci.high
    return row


def evaluate(name, task, model, X, y, groups, *, healthy, settings, random_state):
    """Metrics of one fitted single-label classifier on a held-out split.

    Accuracy, macro F1, per-class F1, ROC AUC (one-vs-rest beyond two classes)
    and the false-no-finding rate, each with a patient-level bootstrap CI.
    """
    proba = model.predict_proba(X)
    classes = np.asarray(model.classes_)
    pred = classes[proba.argmax(axis=1)]
    row = {"task": task, "model": name, "test images": len(y)}
    common = dict(groups=groups, settings=settings, random_state=random_state)
    with_ci(row, "accuracy", y, pred, _accuracy, **common)
    with_ci(row, "macro F1", y, pred, _macro_f1(classes), **common)
    for label in classes:
        with_ci(row, f"F1 {label}", y, pred, _f1_of(label), **common)
    with_ci(row, "ROC AUC", y, proba, _roc_auc(classes), **common)

    def fnfr(y_true, y_pred):
        return false_no_finding_rate(y_true, y_pred, healthy_label=healthy)

    with_ci(row, "FNFR", y, pred, fnfr, **common)
    return row


def evaluate_multilabel(model, X, Y, finding_names, groups, *, settings, random_state):
    """Per-finding ROC AUC with CIs, beside CheXNet's published figures."""
    proba = model.predict_proba(X)
    rows = []
    for j, finding in enumerate(finding_names):
        if len(np.unique(Y[:, j])) < 2:
            continue  # AUC is undefined without positives and negatives
        row = {"finding": finding, "positives": int(Y[:, j].sum())}
        with_ci(
            row,
            "ROC AUC",
            Y[:, j],
            proba[:, j],
            roc_auc_score,
            groups=groups,
            settings=settings,
            random_state=random_state,
        )
        row["CheXNet (Rajpurkar et al. 2017)"] = CHEXNET_AUC.get(finding, np.nan)
        rows.append(row)
    return rows
