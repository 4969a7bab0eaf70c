"""The sections of ``skcxr study``'s report, one function each."""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    f1_score,
    roc_auc_score,
)
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

HEALTHY = "normal"


def binary_labels(y):
    """Healthy vs any finding: "pneumonia" for the Kermany classes (the first
    seed's task), "finding" for ChestX-ray14 findings."""
    y = np.asarray(y)
    findings = set(np.unique(y).tolist()) - {HEALTHY}
    positive = "pneumonia" if findings <= {"bacteria", "virus"} else "finding"
    return np.where(y == HEALTHY, HEALTHY, positive)


def evaluate(name, task, model, X, y):
    """The seeds' metrics for one fitted classifier on a held-out split."""
    from ..metrics import false_no_finding_rate, inference_time

    proba = model.predict_proba(X)
    pred = model.classes_[proba.argmax(axis=1)]
    classes = list(model.classes_)
    row = {"task": task, "model": name, "accuracy": accuracy_score(y, pred)}
    for label, score in zip(classes, f1_score(y, pred, labels=classes, average=None)):
        row[f"F1 {label}"] = score
    row["macro F1"] = f1_score(y, pred, average="macro")
    if len(classes) == 2:
        row["ROC AUC"] = roc_auc_score(y == classes[1], proba[:, 1])
    else:
        row["ROC AUC"] = roc_auc_score(y, proba, multi_class="ovr", labels=classes)
    row["FNFR"] = false_no_finding_rate(y, pred, healthy_label=HEALTHY)
    row["ms / image"] = 1000 * inference_time(model, X[:32])
    return row


def data_section(report, study):
    from ..inspection import ImageGridDisplay

    classes, counts = np.unique(study.y_train, return_counts=True)
    report.section("Data", f"Source: {study.source}.")
    report.table(
        [
            {"split": split, **{c: int((y == c).sum()) for c in classes}}
            for split, y in (
                ("train", study.y_train),
                ("validation", study.y_val),
                ("test", study.y_test),
            )
        ],
        caption="Images per class and split",
    )
    picks = [np.flatnonzero(study.y_train == c)[:4] for c in classes]
    index = np.concatenate(picks)
    display = ImageGridDisplay.from_images(
        study.X_train[index], titles=list(study.y_train[index]), ncols=4
    )
    report.figure(display.figure_, "Training images, four per class")


def classification_section(report, study, task, to_labels, configs, metrics_rows):
    from ..inspection import TrainingCurveDisplay

    y_train, y_test = to_labels(study.y_train), to_labels(study.y_test)
    report.section(
        f"{task.capitalize()} classification",
        "A frozen ImageNet-pretrained backbone (only the head trains, on features "
        "computed once), the same backbone fine-tuned end to end, and a small CNN "
        "trained from scratch; metrics on the held-out test split.",
    )
    models, rows = {}, []
    fig, axes = plt.subplots(1, len(configs), figsize=(5.5 * len(configs), 3.4))
    for ax, (name, model) in zip(np.atleast_1d(axes), configs.items()):
        model.fit(study.X_train, y_train)
        models[name] = model
        rows.append(evaluate(name, task, model, study.X_test, y_test))
        TrainingCurveDisplay.from_estimator(model, ax=ax)
        ax.set_title(name)
    report.table(rows)
    metrics_rows.extend(rows)
    fig.tight_layout()
    report.figure(fig, "Training curves (skorch history)")
    return models


def embedding_section(report, study, metrics_rows, random_state):
    from ..models._embedder import CNNEmbedder
    from ..models._tsne import TSNE
    from ..inspection import EmbeddingDisplay

    report.section(
        "Embeddings, KNN and t-SNE",
        "Images are embedded by the pretrained efficientnet_lite0 without its "
        "classification layer; a KNN classifier (k=7 binary, k=5 three-class, as in "
        "the seed) works on the embeddings, and t-SNE maps them to 2-D. Test images "
        "are placed on the training map without refitting it.",
    )
    embedder = CNNEmbedder(model="efficientnet_lite0", weights="imagenet").fit(
        study.X_train
    )
    train_codes = embedder.transform(study.X_train)
    rows, models = [], {}
    for task, labels, k in (
        ("binary", binary_labels, 7),
        ("three-class", np.asarray, 5),
    ):
        # the embedder is fitted and the training codes computed once for both
        # tasks; the pipeline only chains the fitted steps for image input
        neighbours = KNeighborsClassifier(n_neighbors=k)
        neighbours.fit(train_codes, labels(study.y_train))
        knn = make_pipeline(FrozenEstimator(embedder), FrozenEstimator(neighbours))
        models[task] = knn
        rows.append(
            evaluate(
                f"KNN k={k} on embeddings",
                task,
                knn,
                study.X_test,
                labels(study.y_test),
            )
        )
    report.table(rows)
    metrics_rows.extend(rows)

    tsne = TSNE(perplexity=min(30, len(train_codes) // 4), random_state=random_state)
    train_map = tsne.fit_transform(train_codes)
    new_points = tsne.transform(embedder.transform(study.X_test[:10]))
    display = EmbeddingDisplay.from_predictions(
        train_map, study.y_train, new_points=new_points
    )
    report.figure(
        display.figure_,
        "t-SNE of the training embeddings; stars: ten "
        "test images placed on the existing map",
    )
    return models["three-class"]


def anomaly_section(report, study, settings, metrics_rows, random_state):
    from ..models._anomaly import ReconstructionAnomalyDetector
    from ..inspection import ReconstructionErrorDisplay

    report.section(
        "Anomaly detection from healthy images only",
        "A convolutional autoencoder learns to reconstruct healthy images; an image "
        "it reconstructs badly is flagged. The threshold is the mean training error "
        "(the first seed's rule). The seed scored whole-image pixel MSE; the "
        "detector here scores the error inside the lung fields (masked_mse), and "
        "the table compares both on the same fitted network.",
    )
    healthy = study.X_train[study.y_train == HEALTHY]
    detector = ReconstructionAnomalyDetector(
        error="masked_mse",
        max_epochs=settings.anomaly_epochs,
        threshold="mean",
        random_state=random_state,
    ).fit(healthy)
    sick = study.y_test != HEALTHY
    flagged = detector.predict(study.X_test) == -1
    rows = []
    for error in ("mse", "ssim", "masked_mse"):
        errors = detector.reconstruction_error(study.X_test, error=error)
        rows.append(
            {
                "task": "anomaly",
                "model": f"autoencoder, {error} error",
                "ROC AUC": roc_auc_score(sick, errors),
            }
        )
    rows[-1]["sensitivity"] = flagged[sick].mean()
    rows[-1]["specificity"] = (~flagged[~sick]).mean()
    report.table(
        rows,
        caption="Healthy vs any finding on the test split "
        "(ROC AUC 0.5 is chance; sensitivity/specificity at the threshold)",
    )
    metrics_rows.extend(rows)
    mse_auc, masked_auc = rows[0]["ROC AUC"], rows[-1]["ROC AUC"]
    report.paragraph(
        f"Whole-image MSE gives ROC AUC {mse_auc:.3f}; the lung-masked error gives "
        f"{masked_auc:.3f}. "
        + (
            "An AUC at or below 0.5 means sick images reconstruct as well as or "
            "better than healthy ones, the failure the first seed reported."
            if min(mse_auc, masked_auc) <= 0.5
            else "Both are above chance here; the reconstruction error is a weak signal "
            "next to the supervised classifiers above."
        )
    )
    display = ReconstructionErrorDisplay.from_estimator(
        detector, study.X_test, study.y_test
    )
    report.figure(
        display.figure_,
        "Lung-masked reconstruction error per class, test "
        "split, with the mean-training-error threshold",
    )
    return detector


def ensemble_section(report, study, members, metrics_rows, random_state):
    from ..models._voter import GAWeightedVoter

    report.section(
        "Ensembles: GA-weighted vs uniform averaging",
        "The three-class models are frozen and combined by soft voting. Uniform "
        "averaging gives every model the same weight; the genetic algorithm searches "
        "the weights on the validation split (fitness: macro F1).",
    )
    estimators = list(members.items())
    uniform = GAWeightedVoter(
        estimators=estimators, prefit=True, weights="uniform", random_state=random_state
    ).fit(study.X_val, study.y_val)
    ga = GAWeightedVoter(
        estimators=estimators, prefit=True, random_state=random_state
    ).fit(study.X_val, study.y_val)
    rows = [
        evaluate(name, "three-class", model, study.X_test, study.y_test)
        for name, model in [
            *members.items(),
            ("uniform average", uniform),
            ("GA-weighted", ga),
        ]
    ]
    report.table(rows)
    metrics_rows.extend(rows[-2:])
    report.table(
        [{"model": name, "GA weight": w} for name, w in zip(members, ga.weights_)],
        caption="Weights found by the genetic algorithm",
    )
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    history = ga.fitness_history_
    ax1.plot(history["best"], label="best")
    ax1.plot(history["mean"], label="population mean")
    ax1.set(xlabel="generation", ylabel="validation macro F1", title="GA fitness")
    ax1.legend()
    ConfusionMatrixDisplay.from_estimator(
        ga, study.X_test, study.y_test, ax=ax2, colorbar=False
    )
    ax2.set_title("GA-weighted ensemble, test split")
    report.figure(fig, "GA fitness per generation and the ensemble's confusion matrix")
    return ga


def explanation_section(report, study, name, model, settings):
    from ..inspection import HeatmapDisplay, region_attribution, silhouette_side

    report.section(
        "Explanations",
        f"Grad-CAM of '{name}' for correctly and wrongly classified test images "
        "(the heatmap shows where the evidence for the predicted class lies), and "
        "which half of the chest drives the prediction when occluded, against the "
        "seed's intensity-sum 'silhouette' rule. Sides are the viewer's: the "
        "patient's left lung is on the right of the image.",
    )
    pred = model.predict(study.X_test)
    for label, picked in (
        ("correct", pred == study.y_test),
        ("wrong", pred != study.y_test),
    ):
        index = np.flatnonzero(picked)[: settings.n_explained]
        if index.size == 0:
            report.paragraph(f"No {label} predictions to explain.", note=True)
            continue
        display = HeatmapDisplay.from_estimator(
            model,
            study.X_test[index],
            method="grad_cam",
            titles=[
                f"true {t} / pred {p}" for t, p in zip(study.y_test[index], pred[index])
            ],
        )
        report.figure(display.figure_, f"Grad-CAM, {label} predictions")
    index = np.flatnonzero(study.y_test != HEALTHY)[: 4 * settings.n_explained]
    if index.size:
        regions = region_attribution(model, study.X_test[index], regions="halves")
        silhouette = silhouette_side(study.X_test[index])
        report.table(
            [
                {
                    "image": int(i),
                    "true": study.y_test[i],
                    "occlusion": str(r),
                    "silhouette rule": str(s),
                }
                for i, r, s in zip(index, regions.top_region, silhouette)
            ],
            caption="Which half drives the prediction (pneumonia test images)",
        )


def error_overlap_section(report, study, members):
    from ..inspection import ErrorOverlapDisplay

    report.section(
        "Error overlap",
        "Images that every model misclassifies point at hard or mislabelled cases; "
        "images only one model gets wrong show where an ensemble can help.",
    )
    display = ErrorOverlapDisplay.from_estimators(
        list(members.values()), study.X_test, study.y_test, names=list(members)
    )
    display.plot(images=study.X_test)
    report.figure(display.figure_, "Test images by who gets them wrong, per class")
