"""The study's computations, one function per report section.

Each function fits and scores models and returns plain data (metric rows,
fitted models, arrays for the figures); drawing is :mod:`skcxr.study._render`'s
job. Models are chosen on the validation split and scored once on the test
split.
"""

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from ..metrics import paired_bootstrap
from ._clinical import calibrate, clinical_metrics, subgroup_rows
from ._metrics import _macro_f1, binary_roc_auc, evaluate, evaluate_multilabel, with_ci

__all__ = [
    "TASK_NAMES",
    "binary_labels",
    "classifier_configs",
    "training_logs",
    "classification_task",
    "multilabel_task",
    "embedding_task",
    "anomaly_task",
    "ensemble_task",
    "explanation_task",
    "estimate_run_time",
]

TASK_NAMES = {2: "binary", 3: "three-class", 4: "four-class", 5: "five-class"}


@dataclass(frozen=True)
class Task:
    """A classification task of the study: its name, the labels it trains on
    (``to_labels`` of the study's labels) and its images: every image (healthy
    vs any finding, images with several or rare findings included) or the
    single-label ones."""

    name: str
    to_labels: Callable
    every_image: bool = False

    def subset(self, study, split):
        """``(X, labels, patients)`` of this task on split ``split``."""
        X, y, groups = study.subset(split, every_image=self.every_image)
        return X, self.to_labels(y), groups

    def attributes(self, study, split):
        """The subgroup attributes of this task's images of ``split``."""
        return study.subset_attributes(split, every_image=self.every_image)


def study_tasks(study):
    """The binary task (healthy vs any finding, on every image) and, with more
    than two single-label classes, the multi-class task; the last is the main
    task (the ensemble's and the explanations')."""
    binary = Task("binary", lambda y: binary_labels(y, study.healthy), every_image=True)
    n_classes = len(np.unique(study.subset("train")[1]))
    if n_classes <= 2:
        return [binary]
    return [binary, Task(task_name(n_classes), np.asarray)]


def task_name(n_classes):
    """``"three-class"`` for 3 classes, ``"15-class"`` beyond the named ones."""
    return TASK_NAMES.get(n_classes, f"{n_classes}-class")


def binary_labels(y, healthy):
    """Healthy vs any finding: "pneumonia" for the Kermany classes, "finding"
    for the multi-label data sets'."""
    y = np.asarray(y)
    findings = set(np.unique(y).tolist()) - {healthy}
    positive = "pneumonia" if findings <= {"bacteria", "virus"} else "finding"
    return np.where(y == healthy, healthy, positive)


def _pretrained_embedder(settings, study):
    """The study's CNNEmbedder: the pretrained backbone, with the study's device,
    inference engine and precision, reading files through the study's loader."""
    from ..models import CNNEmbedder

    return CNNEmbedder(
        backbone=settings.backbone,
        weights=settings.weights,
        device=settings.device,
        engine=settings.engine,
        precision=settings.precision,
        loader=study.loader,
    )


def training_logs(settings, *run):
    """The ``callbacks`` of a network trained by the study: a TensorBoard run
    in ``<log_dir>/<run...>`` when ``settings.log_dir`` is set, else None."""
    if not settings.log_dir:
        return None
    import os

    from ..nn import TensorBoardLogger

    parts = [part.replace(" ", "_").replace(",", "") for part in run]
    return [TensorBoardLogger(os.path.join(settings.log_dir, *parts))]


def classifier_configs(settings, random_state, loader=None, task=""):
    """Three ways to train a CNN: frozen pretrained backbone, fine-tuned
    backbone and a small CNN from scratch (cosine schedule and label
    smoothing, which ended the epoch-to-epoch swings of its validation
    accuracy in benchmarks/bench_recipe.py). With ``settings.log_dir``, each logs
    to its TensorBoard run ``<log_dir>/<task>/<name>``."""
    from ..models import TransferClassifier

    common = dict(
        random_state=random_state,
        validation_fraction=0.15,
        batch_size=settings.batch_size,
        device=settings.device,
        loader=loader,
    )
    backbone = settings.backbone
    configs = {
        f"frozen {backbone}": TransferClassifier(
            backbone=backbone,
            weights=settings.weights,
            trainable="head",
            engine=settings.engine,
            precision=settings.precision,
            head_sizes=(64,),
            max_epochs=settings.head_epochs,
            lr=3e-3,
            **common,
        ),
        f"fine-tuned {backbone}": TransferClassifier(
            backbone=backbone,
            weights=settings.weights,
            trainable="all",
            head_sizes=(64,),
            max_epochs=settings.finetune_epochs,
            # benchmarks/bench_recipe.py: discriminative rates scored higher on
            # its split but lower on the study's own (0.658 vs 0.742)
            lr=5e-4,
            **common,
        ),
        "small CNN from scratch": TransferClassifier(
            backbone="small_cnn",
            weights=None,
            trainable="all",
            head_sizes=(64,),
            max_epochs=settings.scratch_epochs,
            lr=1e-3,
            lr_schedule="cosine",
            label_smoothing=0.1,
            class_weight="balanced",
            **common,
        ),
    }
    for name, model in configs.items():
        model.set_params(callbacks=training_logs(settings, task, name))
    return configs


def _validation_macro_f1(model, X, y):
    return f1_score(y, model.predict(X), average="macro")


def classification_task(study, task, configs, settings, random_state):
    """Fit every configuration; score on the test split, calibration and the
    operating point included; pick the best on the validation split (macro
    F1) and analyse its subgroups."""
    X_train, y_train, _ = task.subset(study, "train")
    X_val, y_val, _ = task.subset(study, "validation")
    X_test, y_test, groups = task.subset(study, "test")
    models, rows, histories, fit_seconds = {}, [], {}, {}
    calibrated, thresholds = {}, {}
    for name, model in configs.items():
        start = time.perf_counter()
        model.fit(X_train, y_train)
        fit_seconds[name] = time.perf_counter() - start
        models[name] = model
        histories[name] = model.history_
        row, calibrated[name], thresholds[name] = _scored(
            name, task.name, model, study, task, settings, random_state
        )
        rows.append(row)
    validation = {n: _validation_macro_f1(m, X_val, y_val) for n, m in models.items()}
    best = max(validation, key=validation.get)
    subgroups, subgroup_results = subgroup_rows(
        models[best],
        calibrated[best],
        X_test,
        y_test,
        groups,
        task.attributes(study, "test"),
        healthy=study.healthy,
        threshold=thresholds[best],
        min_count=settings.min_class_images,
        n_resamples=settings.n_resamples,
        random_state=random_state,
    )
    return dict(
        calibrated=calibrated,
        thresholds=thresholds,
        subgroups=[{"task": task.name, "model": best, **row} for row in subgroups],
        subgroup_results=subgroup_results,
        reliability=dict(
            classes=np.asarray(models[best].classes_),
            proba=models[best].predict_proba(X_test),
            calibrated=calibrated[best].predict_proba(X_test),
        ),
        task=task.name,
        rows=rows,
        models=models,
        histories=histories,
        parameters={name: model.parameter_table_ for name, model in models.items()},
        fit_seconds=fit_seconds,
        validation_macro_f1=validation,
        best=best,
        y_test=y_test,
        test_groups=groups,
        test_pred=models[best].predict(X_test),
    )


def _scored(name, label, model, study, task, settings, random_state):
    """The metric row of a fitted classifier of ``task`` on the test split
    (named ``name``, task column ``label``), its calibration and operating
    point included: ``(row, calibrated model, operating threshold)``; the
    temperature and the threshold are fitted on the validation split."""
    X_val, y_val, val_groups = task.subset(study, "validation")
    X_test, y_test, groups = task.subset(study, "test")
    row = evaluate(
        name,
        label,
        model,
        X_test,
        y_test,
        groups,
        healthy=study.healthy,
        n_resamples=settings.n_resamples,
        random_state=random_state,
    )
    calibrated = calibrate(model, X_val, y_val)
    threshold = clinical_metrics(
        row,
        model,
        calibrated,
        {"validation": (X_val, y_val, val_groups), "test": (X_test, y_test, groups)},
        healthy=study.healthy,
        target_sensitivity=settings.target_sensitivity,
        n_resamples=settings.n_resamples,
        random_state=random_state,
    )
    return row, calibrated, threshold


def multilabel_task(study, settings, random_state):
    """A frozen-backbone multi-label classifier of every finding present."""
    from ..models import TransferClassifier

    X_train, Y_train, _ = study.subset("train", multilabel=True)
    X_test, Y_test, groups = study.subset("test", multilabel=True)
    model = TransferClassifier(
        backbone=settings.backbone,
        weights=settings.weights,
        trainable="head",
        head_sizes=(64,),
        max_epochs=settings.head_epochs,
        lr=3e-3,
        pos_weight="balanced",
        batch_size=settings.batch_size,
        device=settings.device,
        loader=study.loader,
        callbacks=training_logs(settings, "multi-label", "frozen"),
        random_state=random_state,
    ).fit(X_train, Y_train)
    rows = evaluate_multilabel(
        model,
        X_test,
        Y_test,
        study.finding_names,
        groups,
        minimum=settings.min_class_images,
        n_resamples=settings.n_resamples,
        random_state=random_state,
    )
    return dict(model=model, rows=rows)


def embedding_task(study, tasks, settings, random_state):
    """CNN embeddings, a KNN per task (k=7 binary, k=5 otherwise) and a
    t-SNE map of the training images with test images placed on it."""
    from ..models import TSNE

    X_train, _, _ = tasks[-1].subset(study, "train")
    embedder = _pretrained_embedder(settings, study).fit(X_train)
    # tasks on the same images share their training codes (every image is
    # single-label when no image has several or rare findings)
    all_single = bool(study.single_label()[study.part("train")].all())
    codes = {}
    rows, models = [], {}
    for task in tasks:
        X_train, y_train, _ = task.subset(study, "train")
        images = task.every_image and not all_single
        if images not in codes:
            codes[images] = embedder.transform(X_train)
        k = 7 if task.name == "binary" else 5
        # the pipeline only chains the fitted steps for image input
        neighbours = KNeighborsClassifier(n_neighbors=k)
        neighbours.fit(codes[images], y_train)
        knn = make_pipeline(FrozenEstimator(embedder), FrozenEstimator(neighbours))
        models[task.name] = knn
        name = f"KNN k={k} on embeddings"
        rows.append(
            _scored(name, task.name, knn, study, task, settings, random_state)[0]
        )
    # the map of the main task's training images
    X_train, y_train, _ = study.subset("train", every_image=tasks[-1].every_image)
    X_test = study.subset("test", every_image=tasks[-1].every_image)[0]
    train_codes = codes[tasks[-1].every_image and not all_single]
    tsne = TSNE(perplexity=min(30, len(train_codes) // 4), random_state=random_state)
    train_map = tsne.fit_transform(train_codes)
    new_points = tsne.transform(embedder.transform(X_test[:10]))
    return dict(
        rows=rows,
        models=models,
        train_map=train_map,
        train_labels=y_train,
        new_points=new_points,
    )


def anomaly_task(study, settings, random_state):
    """Detectors fitted on healthy training images only, scored on the test
    split as healthy vs any finding, beside a CNN-embedding baseline."""
    from sklearn.covariance import LedoitWolf
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    from ..models import ReconstructionAnomalyDetector

    X_train, y_train, _ = study.subset("train", every_image=True)
    X_test, y_test, groups = study.subset("test", every_image=True)
    healthy = X_train[y_train == study.healthy]
    sick = y_test != study.healthy
    common = dict(
        groups=groups, n_resamples=settings.n_resamples, random_state=random_state
    )
    detectors = {
        "PaDiM patch Gaussians (default)": ReconstructionAnomalyDetector(
            threshold=0.05,
            device=settings.device,
            engine=settings.engine,
            precision=settings.precision,
            loader=study.loader,
            random_state=random_state,
        ),
        "autoencoder, lung-masked error": ReconstructionAnomalyDetector(
            method="autoencoder",
            error="masked_mse",
            threshold=0.05,
            max_epochs=settings.anomaly_epochs,
            device=settings.device,
            loader=study.loader,
            callbacks=training_logs(settings, "anomaly", "autoencoder"),
            random_state=random_state,
        ),
    }
    rows, anomalies, flags = [], {}, {}
    for name, detector in detectors.items():
        detector.fit(healthy)
        anomalies[name] = detector.reconstruction_error(X_test)
        row = {"task": "anomaly", "model": name}
        with_ci(row, "ROC AUC", sick, anomalies[name], binary_roc_auc, **common)
        # predict()'s rule (-1 above threshold_), without scoring the images again
        flagged = flags[name] = anomalies[name] > detector.threshold_
        with_ci(row, "sensitivity", sick, flagged, _recall_of(True), **common)
        with_ci(row, "specificity", sick, flagged, _recall_of(False), **common)
        rows.append(row)
    # the baselines a user would write in three lines of scikit-learn
    embedder = _pretrained_embedder(settings, study).fit(healthy)
    healthy_codes, test_codes = embedder.transform(healthy), embedder.transform(X_test)
    baselines = {
        "Ledoit-Wolf Mahalanobis": LedoitWolf().fit(healthy_codes).mahalanobis,
        "IsolationForest": lambda codes: -IsolationForest(random_state=random_state)
        .fit(healthy_codes)
        .score_samples(codes),
        "LocalOutlierFactor": lambda codes: -LocalOutlierFactor(novelty=True)
        .fit(healthy_codes)
        .score_samples(codes),
    }
    for name, anomaly_of in baselines.items():
        row = {"task": "anomaly", "model": f"baseline: CNN embedding + {name}"}
        scores = anomaly_of(test_codes)
        rows.append(with_ci(row, "ROC AUC", sick, scores, binary_roc_auc, **common))

    default_name, default = next(iter(detectors.items()))
    flagged = flags[default_name]
    maps = {}
    for label, picked in (
        ("correctly flagged", flagged & sick),
        ("missed", ~flagged & sick),
        ("false alarms", flagged & ~sick),
    ):
        index = np.flatnonzero(picked)[: settings.n_explained]
        if index.size:
            amap = default.anomaly_map(X_test[index])
            low = amap.min(axis=(1, 2), keepdims=True)
            span = np.maximum(amap.max(axis=(1, 2), keepdims=True) - low, 1e-12)
            maps[label] = dict(
                images=study.pixels(X_test[index]),
                maps=(amap - low) / span,
                titles=[f"true {t}" for t in y_test[index]],
            )
    return dict(
        rows=rows,
        detector=default,
        name=default_name,
        test_errors=anomalies[default_name],
        y_test=y_test,
        threshold=default.threshold_,
        maps=maps,
    )


def _recall_of(value):
    def recall(y_true, flagged):
        wanted = y_true == value
        return float(np.mean(flagged[wanted] == value)) if wanted.any() else np.nan

    return recall


def ensemble_task(study, members, task, settings, random_state):
    """GA-weighted soft voting against uniform averaging of the same models
    (of ``task``), with a paired bootstrap of the macro-F1 difference."""
    from ..models import GAWeightedVoter

    X_val, y_val, _ = task.subset(study, "validation")
    X_test, y_test, groups = task.subset(study, "test")
    estimators = list(members.items())
    uniform = GAWeightedVoter(
        estimators=estimators, prefit=True, weights="uniform", random_state=random_state
    ).fit(X_val, y_val)
    ga = GAWeightedVoter(
        estimators=estimators, prefit=True, random_state=random_state
    ).fit(X_val, y_val)
    rows = []
    for name, model in (("uniform average", uniform), ("GA-weighted", ga)):
        row, _, _ = _scored(
            name, "ensemble", model, study, task, settings, random_state
        )
        rows.append(row)
    ga_pred = ga.predict(X_test)
    comparison = paired_bootstrap(
        y_test,
        ga_pred,
        uniform.predict(X_test),
        _macro_f1(np.asarray(ga.classes_)),
        groups=groups,
        n_resamples=settings.n_resamples,
        random_state=random_state,
    )
    rows.append(
        {
            "task": "ensemble",
            "model": "GA-weighted minus uniform average (paired)",
            "test images": len(y_test),
            "macro F1 difference": comparison.difference,
            "macro F1 difference CI low": comparison.low,
            "macro F1 difference CI high": comparison.high,
        }
    )
    return dict(
        rows=rows,
        model=ga,
        weights=dict(zip(members, ga.weights_)),
        fitness_history=ga.fitness_history_,
        comparison=comparison,
        y_test=y_test,
        test_pred=ga_pred,
    )


def explanation_task(study, name, model, task, settings):
    """Grad-CAM maps of correct and wrong test predictions, and which half of
    the chest drives the prediction against the silhouette rule."""
    from ..inspection import grad_cam, region_attribution, silhouette_side

    X_test, y_test, _ = task.subset(study, "test")
    pred = model.predict(X_test)
    heatmaps = {}
    for label, picked in (("correct", pred == y_test), ("wrong", pred != y_test)):
        index = np.flatnonzero(picked)[: settings.n_explained]
        if index.size:
            images = study.pixels(X_test[index])
            heatmaps[label] = dict(
                images=images,
                maps=grad_cam(model, images),
                titles=[
                    f"true {t} / pred {p}" for t, p in zip(y_test[index], pred[index])
                ],
            )
    index = np.flatnonzero(y_test != study.healthy)[: 4 * settings.n_explained]
    regions = []
    if index.size:
        images = study.pixels(X_test[index])
        attribution = region_attribution(model, images, regions="halves")
        silhouette = silhouette_side(images)
        regions = [
            {
                "image": int(i),
                "true": y_test[i],
                "occlusion": str(r),
                "silhouette rule": str(s),
            }
            for i, r, s in zip(index, attribution.top_region, silhouette)
        ]
    return dict(
        name=name,
        heatmaps=heatmaps,
        regions=regions,
        scores=_explanation_scores(study, task, model, X_test, y_test, pred, settings),
    )


def _explanation_scores(study, task, model, X_test, y_test, pred, settings):
    """Every explanation method scored against the known lesions of the
    correctly classified diseased test images (synthetic data only)."""
    from ..inspection import evaluate_explanations

    masks = study.lesions("test", every_image=task.every_image)
    if masks is None:
        return None
    index = np.flatnonzero((pred == y_test) & (y_test != study.healthy))
    index = index[: settings.n_scored_explanations]
    if not index.size:
        return None
    # a quarter of a 4 x 4 Grad-CAM cell, the coarsest map compared
    tolerance = max(2, settings.size // 16)
    result = evaluate_explanations(
        model,
        study.pixels(X_test[index]),
        masks[index],
        tolerance=tolerance,
        method_params={"smoothgrad": {"n_samples": 10}},
        random_state=0,
    )
    return dict(rows=result.rows, n_images=result.n_images, tolerance=tolerance)


def estimate_run_time(study, settings):
    """A rough estimate of the training time, from a timed forward pass.

    Returns seconds. Per single-label task: one pass of the frozen backbone
    over the training images, and per fine-tuning epoch about nine inference
    passes' worth of work (forward and backward without the inference-time
    optimisations); calibrated on the default study, where it is within about
    20% of the measured classification time.
    """
    from ..models import CNNEmbedder

    X_train, _, _ = study.subset("train")
    sample = study.pixels(X_train[: min(16, len(X_train))])
    embedder = CNNEmbedder(
        backbone=settings.backbone, weights=settings.weights, device=settings.device
    ).fit(sample)
    embedder.transform(sample)  # warm-up
    start = time.perf_counter()
    embedder.transform(sample)
    per_image = (time.perf_counter() - start) / len(sample)
    passes = 3 + 9 * settings.finetune_epochs
    return per_image * len(X_train) * passes * 2
