"""External validation: the study's models scored on a second data set.

Whether a model still works on another hospital's images is the question a
reviewer asks first. Every image of the external data set is a test image
(nothing there is fitted). The findings the models predict are matched with
the external labels by their common names (:data:`skcxr.datasets.LABEL_TABLE`):
the binary model's positive class (``"Pneumonia"`` for Kermany's pneumonia,
``"any finding"`` otherwise) and each finding of the multi-label model. For
each match: ROC AUC on the internal test split and on the external images,
each with a patient-level bootstrap 95% CI, and the drop (external minus
internal) with the interval of the difference of the two independent
bootstraps.
"""

import numpy as np

from ..metrics import bootstrap_ci
from ._clinical import finding_score
from ._data import read_images, subsample
from ._metrics import binary_roc_auc, note
from ._readers import finding_target, read_layout

__all__ = ["external_task"]


def _on_known(y_true, score):
    known = ~np.isnan(y_true)
    return binary_roc_auc(y_true[known] == 1, score[known])


def _auc(y_true, score, groups, minimum, n_resamples, random_state):
    """The bootstrap result of a finding's ROC AUC over its known labels, or
    a reason it cannot be estimated."""
    y_true = np.asarray(y_true, dtype=float)
    known = ~np.isnan(y_true)
    positives = int((y_true[known] == 1).sum())
    negatives = int(known.sum()) - positives
    if min(positives, negatives) < minimum:
        return None, f"{positives} positive and {negatives} negative images"
    result = bootstrap_ci(
        y_true,
        score,
        _on_known,
        groups=groups,
        n_resamples=n_resamples,
        random_state=random_state,
    )
    return result, f"{positives} positive and {negatives} negative images"


def _row(model, finding, internal, external, settings, random_state):
    """One comparison row: internal and external AUC with CIs and the drop."""
    common = dict(
        minimum=settings.min_class_images,
        n_resamples=settings.n_resamples,
        random_state=random_state,
    )
    row = {"task": "external validation", "model": model, "finding": finding}
    results = {}
    for side, (y_true, score, groups) in (
        ("internal", internal),
        ("external", external),
    ):
        results[side], counts = _auc(y_true, score, groups, **common)
        row[f"{side} images"] = counts
        name = f"{side} ROC AUC"
        if results[side] is None:
            row[name] = row[f"{name} CI low"] = row[f"{name} CI high"] = np.nan
            note(row, f"{side} AUC not estimable ({counts})")
        else:
            row[name] = results[side].estimate
            row[f"{name} CI low"] = results[side].low
            row[f"{name} CI high"] = results[side].high
    if all(results.values()):
        m = min(
            len(results["internal"].distribution), len(results["external"].distribution)
        )
        drop = (
            results["external"].distribution[:m] - results["internal"].distribution[:m]
        )
        row["drop"] = results["external"].estimate - results["internal"].estimate
        row["drop CI low"], row["drop CI high"] = np.percentile(drop, [2.5, 97.5])
    else:
        row["drop"] = row["drop CI low"] = row["drop CI high"] = np.nan
    return row


def external_task(results, root, layout, settings, random_state, log):
    """Score the study's binary and multi-label models on the data set at
    ``root`` (``layout``); returns the comparison rows and a description."""
    study = results.data
    source = read_layout(root, layout)
    keep = subsample(source.y, source.patients, settings.max_images, random_state)
    # images in memory, or paths the models read batch by batch
    X, _ = read_images(source.paths[keep], settings, log)
    patients = source.patients[keep]
    rows = []
    binary = results.classification.get("binary")
    if binary is not None:
        best = binary["best"]
        model = binary["models"][best]
        target = finding_target(source, study.positive)
        if target is None:
            log(f"note: the external data set does not label {study.positive!r}")
        else:
            internal_score = finding_score(
                model, binary["reliability"]["proba"], study.healthy
            )
            internal_truth = (binary["y_test"] != study.healthy).astype(float)
            groups = binary["test_groups"]
            external_score = finding_score(model, model.predict_proba(X), study.healthy)
            rows.append(
                _row(
                    f"binary: {best}",
                    study.positive,
                    (internal_truth, internal_score, groups),
                    (target[keep], external_score, patients),
                    settings,
                    random_state,
                )
            )
    if results.multilabel is not None:
        model = results.multilabel["model"]
        X_ml, Y_ml, ml_groups = study.subset("test", multilabel=True)
        internal_proba = model.predict_proba(X_ml)
        shared = [
            (j, name)
            for j, name in enumerate(study.finding_names)
            if finding_target(source, name) is not None
        ]
        if shared:
            external_proba = model.predict_proba(X)
        for j, name in shared:
            rows.append(
                _row(
                    "multi-label, per finding",
                    name,
                    (Y_ml[:, j], internal_proba[:, j], ml_groups),
                    (
                        finding_target(source, name)[keep],
                        external_proba[:, j],
                        patients,
                    ),
                    settings,
                    random_state,
                )
            )
    description = (
        f"{source.description}: {len(patients)} images of "
        f"{len(np.unique(patients))} patients at {settings.size} px"
    )
    return dict(rows=rows, description=description, notes=source.notes)
