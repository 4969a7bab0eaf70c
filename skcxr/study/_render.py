"""Render :class:`~skcxr.study._run.StudyResults` as one self-contained HTML page.

Nothing here fits a model: every number and array comes from the results.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay

from ._metrics import mean_of_estimable
from ._report import HTMLReport

__all__ = ["render_report", "ci_table"]


#: The calibration and operating-point columns of a metric row, shown apart.
CLINICAL_COLUMNS = (
    "ECE",
    "ECE calibrated",
    "temperature",
    "operating threshold",
    "target sensitivity",
    "sensitivity at threshold",
    "specificity at threshold",
)


def _columns(rows, keep):
    """Rows restricted to the columns for which ``keep(name)`` holds (a
    column's CI bounds follow it)."""
    return [
        {
            key: value
            for key, value in row.items()
            if keep(key.removesuffix(" CI low").removesuffix(" CI high"))
        }
        for row in rows
    ]


def performance_rows(rows):
    """The rows without their calibration and operating-point columns."""
    return _columns(rows, lambda key: key not in CLINICAL_COLUMNS)


def clinical_rows(rows):
    """The model and its calibration and operating-point columns."""
    return _columns(rows, lambda key: key in ("model", *CLINICAL_COLUMNS))


def ci_table(rows):
    """Rows with ``m``, ``m CI low``, ``m CI high`` columns shown as one
    ``"0.812 [0.771, 0.850]"`` cell per metric."""
    shown = []
    for row in rows:
        out = {}
        for key, value in row.items():
            if key.endswith((" CI low", " CI high")):
                continue
            if f"{key} CI low" in row:
                value = (
                    "not estimable"
                    if np.isnan(value)
                    else f"{value:.3f} [{row[f'{key} CI low']:.3f}, "
                    f"{row[f'{key} CI high']:.3f}]"
                )
            out[key] = value
        shown.append(out)
    return shown


def _data_section(report, results):
    from ..inspection import ImageGridDisplay

    data = results.data
    report.section("Data", f"Source: {data.source}.")
    for text in data.notes:
        report.paragraph(text, note=True)
    report.table(data.split_rows(), caption="Images, patients and classes per split")
    report.paragraph(
        "Every split is grouped by patient: "
        + (
            "no patient has images in two splits (checked; the assignment of every "
            "image is in splits.csv)."
            if data.patients_disjoint()
            else "WARNING: some patient has images in two splits."
        )
    )
    X_train, y_train, _ = data.subset("train")
    index = np.concatenate(
        [np.flatnonzero(y_train == c)[:4] for c in np.unique(y_train)]
    )
    display = ImageGridDisplay(
        data.pixels(X_train[index]), titles=list(y_train[index])
    ).plot(ncols=4)
    report.figure(display.figure_, "Training images, four per class")
    report.table(results.settings.as_rows(), caption="Settings of this run")


def _masking_section(report, masking, settings):
    from ..inspection import ImageGridDisplay

    report.section(
        "Lung masking",
        f"Every task below ran on images masked by --mask {settings.mask}. Each "
        "masking choice was fitted on the training split (the U-Net on its lung "
        "masks, Otsu's threshold needs none); on the test split, its lung masks "
        "against the known lung fields (Dice) and the frozen-backbone classifier "
        "trained on its images, with patient-level bootstrap 95% CIs.",
    )
    keep = ("model", "lung Dice", "accuracy", "macro F1", "ROC AUC")
    report.table(ci_table(_columns(masking["rows"], lambda key: key in keep)))
    names = list(masking["examples"])
    images = np.concatenate([masking["examples"][n] for n in names])
    per_row = len(masking["examples"][names[0]])
    titles = [n for n in names for _ in range(per_row)]
    display = ImageGridDisplay(images, titles=titles).plot(ncols=per_row)
    report.figure(display.figure_, "Test images as each masking choice sees them")


def _classification_section(report, result, weights):
    from ..inspection import TrainingCurveDisplay

    task = result["task"]
    source = "ImageNet weights" if weights == "imagenet" else f"weights {weights}"
    report.section(
        f"{task.capitalize()} classification",
        f"A frozen pretrained backbone ({source}; only the head trains, on "
        "features computed once), the same backbone fine-tuned end to end, and a "
        "small CNN trained from scratch. Test-split metrics with patient-level "
        "bootstrap 95% confidence intervals; the model kept is the best on the "
        "validation split by macro F1.",
    )
    report.table(ci_table(performance_rows(result["rows"])))
    report.paragraph(
        "Validation macro F1: "
        + ", ".join(
            f"{name} {value:.3f}"
            for name, value in result["validation_macro_f1"].items()
        )
        + f"; kept: {result['best']}."
    )
    report.table(
        _parameter_rows(result["parameters"]),
        caption="Parameters per network (trainable as set by its trainable option)",
    )
    report.table(
        result["parameters"][result["best"]],
        caption=f"Parameters per block of the kept network ({result['best']})",
    )
    frozen, tuned = (
        next(r["macro F1"] for r in result["rows"] if r["model"].startswith(kind))
        for kind in ("frozen", "fine-tuned")
    )
    if tuned < frozen:
        report.paragraph(
            f"Fine-tuning the whole backbone lost to the frozen backbone here (test "
            f"macro F1 {tuned:.3f} vs {frozen:.3f}). On this many training images "
            "the frozen features are the stronger default; head warm-up "
            "(warmup_epochs) and a lower backbone learning rate (backbone_lr) did not "
            "close the gap in the recipe comparison either.",
            note=True,
        )
    histories = result["histories"]
    fig, axes = plt.subplots(1, len(histories), figsize=(5.5 * len(histories), 3.4))
    for ax, (name, history) in zip(np.atleast_1d(axes), histories.items()):
        TrainingCurveDisplay(history, metrics=("loss", "acc", "auc")).plot(ax=ax)
        ax.set_title(name)
    fig.tight_layout()
    report.figure(
        fig,
        "Training curves (skorch history): loss (left axis), accuracy and ROC AUC "
        "(right axis) per epoch, on the training batches (dashed) and the "
        "validation split (solid)",
    )


def _clinical_section(report, result, healthy, target_sensitivity):
    from ..inspection import ReliabilityDisplay, SubgroupDisplay

    task, best = result["task"], result["best"]
    report.section(
        f"{task.capitalize()}: calibration, operating point and subgroups",
        "Top-label expected calibration error (ECE, 15 bins; Guo et al. 2017) "
        "on the test split before and after temperature scaling fitted on the "
        "validation split (scikit-learn's CalibratedClassifierCV with "
        "FrozenEstimator, method='temperature'). The operating threshold of "
        f"'any finding' (1 - P({healthy})) is chosen on the validation split to "
        f"reach a sensitivity of {target_sensitivity:g}, then sensitivity and "
        "specificity are measured at it on the test split. All with "
        "patient-level bootstrap 95% CIs.",
    )
    report.table(ci_table(clinical_rows(result["rows"])))
    reliability = result["reliability"]
    y_test, classes = result["y_test"], reliability["classes"]
    display = ReliabilityDisplay.from_predictions(
        y_test, reliability["proba"], labels=classes, name=f"{best}"
    )
    ReliabilityDisplay.from_predictions(
        y_test,
        reliability["calibrated"],
        labels=classes,
        name="temperature-scaled",
        ax=display.ax_,
    )
    report.figure(display.figure_, f"Reliability diagram of the kept model ({best})")
    if not result["subgroup_results"]:
        report.paragraph(
            "No subgroup attribute (sex, age, view) is known for these images.",
            note=True,
        )
        return
    report.paragraph(
        f"Subgroups of the kept model ({best}): per sex, age band and view, the "
        "ROC AUC of any finding and the false no-finding rate at the operating "
        "threshold (under-diagnosis; Seyyed-Kalantari et al. 2021), each with "
        "its gap to the other test images. A gap is called only when its 95% "
        "interval excludes 0; with several groups some gap can be called by "
        "chance."
    )
    report.table(_subgroup_table(result["subgroups"]), caption="subgroups.csv")
    for subgroup_result in result["subgroup_results"]:
        display = SubgroupDisplay.from_result(subgroup_result)
        report.figure(display.figure_, f"{_field_name(subgroup_result)} per subgroup")


def _field_name(result):
    return {"roc_auc": "ROC AUC", "fnfr": "False no-finding rate"}.get(
        result.metric, result.metric
    )


def _subgroup_table(rows):
    shown = []
    for row in rows:
        cell = (
            f"{row['value']:.3f} [{row['CI low']:.3f}, {row['CI high']:.3f}]"
            if row["estimable"]
            else f"not estimable: {row['reason']}"
        )
        gap = (
            f"{row['gap']:+.3f} [{row['gap CI low']:+.3f}, {row['gap CI high']:+.3f}]"
            if row["estimable"]
            else ""
        )
        shown.append(
            {
                "metric": row["metric"],
                "attribute": row["attribute"],
                "group": row["group"],
                "images": row["images"],
                "with finding": row["with finding"],
                "value [95% CI]": cell,
                "gap to the rest [95% CI]": gap,
                "gap called": "yes" if row["gap called"] else "",
            }
        )
    return shown


def _external_section(report, external):
    report.section(
        "External validation",
        f"The models scored on a second data set, {external['description']}; "
        "every image there is a test image. Findings are matched with its labels "
        "by their common names. ROC AUC on the internal test split and on the "
        "external images, each with a patient-level bootstrap 95% CI, and the "
        "drop (external minus internal) with the interval of the difference.",
    )
    for text in external["notes"]:
        report.paragraph(text, note=True)
    if external["rows"]:
        report.table(ci_table(external["rows"]))
    else:
        report.paragraph(
            "The external data set labels none of the findings the models predict."
        )


def _model_card_section(report, results):
    from ._model_card import model_card

    report.section(
        "Model card",
        "What the kept models are for and how they did (also in model_card.md; "
        "the sections of Mitchell et al. 2019).",
    )
    for kind, content in model_card(results):
        if kind in ("h2", "h3"):
            report.heading(content, level=int(kind[1]) + 1)
        elif kind == "p":
            report.paragraph(content)
        elif kind == "ul":
            report.bullets(content)
        else:
            report.table(content)


def _parameter_rows(tables):
    """One row per network: its trainable and frozen parameter counts."""
    rows = []
    for name, table in tables.items():
        trainable = sum(row["trainable"] for row in table)
        frozen = sum(row["non_trainable"] for row in table)
        rows.append(
            {
                "model": name,
                "trainable params": trainable,
                "non-trainable params": frozen,
                "total": trainable + frozen,
                "blocks trained": sum(row["trainable"] > 0 for row in table),
                "blocks": len(table),
            }
        )
    return rows


def _multilabel_section(report, result):
    report.section(
        "Multi-label findings",
        "One frozen-backbone network with a sigmoid output per finding (binary "
        "cross-entropy), as CheXNet (Rajpurkar et al. 2017) trained on "
        "ChestX-ray14 (Wang et al. 2017). Per-finding test ROC AUC with "
        "patient-level bootstrap 95% CIs beside CheXNet's published figures, "
        "which came from 112,120 images at 224 px.",
    )
    report.table(ci_table(result["rows"]))
    mean, left_out = mean_of_estimable(result["rows"])
    report.paragraph(
        f"Mean ROC AUC over the {len(result['rows']) - left_out} estimable findings: "
        f"{mean:.3f}"
        + (
            f"; {left_out} finding(s) had too few positive or negative test images "
            "to be estimated and are left out of the mean (see their notes)."
            if left_out
            else "."
        )
    )


def _embedding_section(report, result):
    from ..inspection import EmbeddingDisplay

    report.section(
        "Embeddings, KNN and t-SNE",
        "Images are embedded by the pretrained backbone without its classification "
        "layer; a KNN classifier (k=7 binary, k=5 otherwise) works on the "
        "embeddings, and t-SNE (openTSNE) maps them to 2-D. Test images are placed "
        "on the training map without refitting it.",
    )
    report.table(ci_table(result["rows"]))
    display = EmbeddingDisplay(
        result["train_map"], result["train_labels"], new_points=result["new_points"]
    ).plot()
    report.figure(
        display.figure_,
        "t-SNE of the training embeddings; stars: ten test images placed on the "
        "existing map",
    )


def _anomaly_section(report, result, healthy):
    from ..inspection import HeatmapDisplay, ReconstructionErrorDisplay

    report.section(
        "Anomaly detection from healthy images only",
        "Detectors fitted on healthy training images only flag images unlike them. "
        "The default models pretrained CNN patch features at every location with a "
        "Gaussian (PaDiM, Defard et al. 2020) and scores an image by its most "
        "anomalous location; the convolutional autoencoder scores its "
        "reconstruction error inside the lung fields. Each threshold flags 5% of "
        "the healthy training images (out-of-fold scores for PaDiM). The last rows "
        "are the baselines a user would write with scikit-learn on CNN embeddings: "
        "a Ledoit-Wolf Mahalanobis distance, an isolation forest and the local "
        "outlier factor.",
    )
    report.table(
        ci_table(result["rows"]),
        caption=f"{healthy} vs any finding on the test split (ROC AUC 0.5 is chance; "
        "sensitivity/specificity at the threshold)",
    )
    display = ReconstructionErrorDisplay(
        result["test_errors"], result["y_test"], threshold=result["threshold"]
    ).plot()
    display.ax_.set_xlabel("anomaly score")
    report.figure(
        display.figure_,
        f"{result['name']}: anomaly score per class, test split, with the threshold",
    )
    for label, maps in result["maps"].items():
        display = HeatmapDisplay(
            maps["images"], maps["maps"], titles=maps["titles"]
        ).plot()
        report.figure(display.figure_, f"Anomaly maps, {label}")


def _ensemble_section(report, result):
    comparison = result["comparison"]
    report.section(
        "Ensembles: GA-weighted vs uniform averaging",
        "The classifiers of the main task are frozen and combined by soft voting. "
        "Uniform averaging gives every model the same weight; the genetic algorithm "
        "searches the weights on the validation split (fitness: macro F1).",
    )
    report.table(ci_table([r for r in result["rows"] if "accuracy" in r]))
    verdict = (
        "more than the resampling noise"
        if comparison.significant
        else "by no more than the resampling noise"
    )
    report.paragraph(
        f"GA-weighted minus uniform macro F1: {comparison.difference:+.3f} "
        f"(paired bootstrap 95% CI [{comparison.low:+.3f}, {comparison.high:+.3f}]): "
        f"the GA weights differ from uniform averaging {verdict}."
    )
    report.table(
        [{"model": name, "GA weight": w} for name, w in result["weights"].items()],
        caption="Weights found by the genetic algorithm",
    )
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    history = result["fitness_history"]
    ax1.plot(history["best"], label="best")
    ax1.plot(history["mean"], label="population mean")
    ax1.set(xlabel="generation", ylabel="validation macro F1", title="GA fitness")
    ax1.legend()
    ConfusionMatrixDisplay.from_predictions(
        result["y_test"], result["test_pred"], ax=ax2, colorbar=False
    )
    ax2.set_title("GA-weighted ensemble, test split")
    report.figure(fig, "GA fitness per generation and the ensemble's confusion matrix")


def _explanation_section(report, result):
    from ..inspection import HeatmapDisplay

    report.section(
        "Explanations",
        f"Grad-CAM (Selvaraju et al. 2017) of '{result['name']}' for correctly and "
        "wrongly classified test images (the heatmap shows where the evidence for "
        "the predicted class lies), and which half of the chest drives the "
        "prediction when occluded, against the intensity-sum 'silhouette' rule. "
        "Sides are the viewer's: the patient's left lung is on the right of the "
        "image.",
    )
    for label in ("correct", "wrong"):
        maps = result["heatmaps"].get(label)
        if maps is None:
            report.paragraph(f"No {label} predictions to explain.", note=True)
            continue
        display = HeatmapDisplay(
            maps["images"], maps["maps"], titles=maps["titles"]
        ).plot()
        report.figure(display.figure_, f"Grad-CAM, {label} predictions")
    report.table(
        result["regions"],
        caption="Which half drives the prediction (test images with a finding)",
    )
    scores = result.get("scores")
    if scores is not None:
        report.paragraph(
            "How well each method localises the known lesions of the synthetic "
            f"images, on {scores['n_images']} correctly classified test images "
            "with a finding: the pointing game (the map's maximum within "
            f"{scores['tolerance']} px of the lesion), the share of the map's mass "
            "inside the lesion (Wang et al. 2020), and the deletion (lower is "
            "better) and insertion (higher is better) curves of Petsiuk et al. "
            "2018; each score is followed by its chance level in parentheses (a "
            "random point, a uniform map, a random pixel order)."
        )
        report.table(
            _score_with_chance(scores["rows"]),
            caption="Explanation methods scored against the known lesions",
        )


def _score_with_chance(rows):
    """``score`` and ``score_chance`` columns shown as one ``"0.47 (0.19)"``
    cell per score."""
    shown = []
    for row in rows:
        out = {}
        for key, value in row.items():
            if key.endswith("_chance"):
                continue
            label = key.replace("_", " ")
            if f"{key}_chance" in row:
                value = f"{value:.3f} ({row[f'{key}_chance']:.3f})"
            elif isinstance(value, float):
                value = f"{value:.3g}"
            out[label] = value
        shown.append(out)
    return shown


def _error_overlap_section(report, overlap, images):
    from ..inspection import ErrorOverlapDisplay

    report.section(
        "Error overlap",
        "Images that every model misclassifies point at hard or mislabelled cases; "
        "images only one model gets wrong show where an ensemble can help.",
    )
    display = ErrorOverlapDisplay(overlap).plot(images=images)
    report.figure(display.figure_, "Test images by who gets them wrong, per class")


def render_report(results, path):
    """Write ``results`` as a self-contained ``report.html`` at ``path``."""
    report = HTMLReport("skcxr chest X-ray study")
    _data_section(report, results)
    if results.masking is not None:
        _masking_section(report, results.masking, results.settings)
    for result in results.classification.values():
        _classification_section(report, result, results.settings.weights)
        _clinical_section(
            report,
            result,
            results.data.healthy,
            results.settings.target_sensitivity,
        )
    if results.multilabel is not None:
        _multilabel_section(report, results.multilabel)
    _embedding_section(report, results.embedding)
    _anomaly_section(report, results.anomaly, results.data.healthy)
    _ensemble_section(report, results.ensemble)
    _explanation_section(report, results.explanation)
    X_test, _, _ = results.main_task.subset(results.data, "test")
    # example images need pixels; when streaming, the counts table alone
    streamed = results.data.loader is not None
    _error_overlap_section(report, results.error_overlap, None if streamed else X_test)
    if results.external is not None:
        _external_section(report, results.external)
    _model_card_section(report, results)
    report.write(path)
    return path
