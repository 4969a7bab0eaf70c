"""``skcxr study``: compute a whole chest X-ray study, then render its report.

The study classifies healthy vs pneumonia and normal / bacterial / viral
pneumonia (Kermany et al. 2018) or ChestX-ray14 findings (Wang et al. 2017)
with a frozen pretrained backbone, a fine-tuned one and a network trained from
scratch; embeds the images for KNN and a t-SNE map; detects anomalies with a
detector fitted on healthy images only; weights an ensemble with a genetic
algorithm against uniform averaging; explains predictions with Grad-CAM and
region attribution; and shows which images every model gets wrong. Splits are
patient-disjoint and every metric carries a bootstrap 95% confidence interval.
"""

import csv
import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline

from ..nn._engines import check_engine
from ..utils._model_io import save_model
from . import _tasks as tasks
from ._data import load_study_data
from ._external import external_task
from ._masking import check_masking, masking_task
from ._model_card import model_card, to_markdown
from ._render import render_report
from ._settings import StudySettings

__all__ = ["StudyResults", "compute_study", "run_study"]


@dataclass
class StudyResults:
    """Everything the report shows: settings, data, metric rows, fitted models
    and the arrays behind every figure."""

    settings: StudySettings
    data: object
    classification: dict
    multilabel: object
    embedding: dict
    anomaly: dict
    ensemble: dict
    explanation: dict
    error_overlap: object
    main_task: object = None
    external: dict = None
    masking: dict = None

    @property
    def metric_rows(self):
        """Every metric row of every section, in report order."""
        rows = [r for result in self.classification.values() for r in result["rows"]]
        if self.multilabel is not None:
            rows += [
                {"task": "multi-label", "model": "frozen, per finding", **r}
                for r in self.multilabel["rows"]
            ]
        rows += self.embedding["rows"] + self.anomaly["rows"] + self.ensemble["rows"]
        if self.masking is not None:
            rows += self.masking["rows"]
        if self.external is not None:
            rows += self.external["rows"]
        return rows

    @property
    def subgroup_rows(self):
        """The rows of ``subgroups.csv``: every task's kept model."""
        return [
            r for result in self.classification.values() for r in result["subgroups"]
        ]

    def calibrated_models(self):
        """The kept model of each task with temperature-scaled probabilities
        (and, for a binary task, its operating threshold), reading image files:
        ``"<task>-calibrated"`` -> model."""
        from sklearn.frozen import FrozenEstimator
        from sklearn.model_selection import FixedThresholdClassifier

        from ._clinical import calibrate_like, positive_class

        models = {}
        for task, result in self.classification.items():
            best = result["best"]
            network = self._from_files(result["models"][best])
            model = calibrate_like(result["calibrated"][best], network)
            threshold = result["thresholds"][best]
            classes = list(model.classes_)
            if len(classes) == 2 and threshold is not None:
                # the decision at the operating threshold; nothing is refitted
                model = FixedThresholdClassifier(
                    FrozenEstimator(model),
                    threshold=threshold,
                    pos_label=positive_class(classes, self.data.healthy),
                    response_method="predict_proba",
                ).fit(np.zeros((len(classes), 1)), classes)
            models[f"{task}-calibrated"] = model
        return models

    def _from_files(self, estimator):
        """``estimator`` behind an :class:`~skcxr.ImageLoader` of the study's
        size (and the study's fitted lung masker, with ``--mask``)."""
        from sklearn.frozen import FrozenEstimator

        from ..preprocessing import ImageLoader

        steps = [("load", ImageLoader(size=self.settings.size))]
        if self.masking is not None:
            steps.append(("mask", FrozenEstimator(self.masking["masker"])))
        return Pipeline(steps + [("model", estimator)])

    def path_models(self):
        """Each saved model as a pipeline from image files: name -> Pipeline."""
        from_files = self._from_files
        models = {
            task: from_files(result["models"][result["best"]])
            for task, result in self.classification.items()
        }
        if self.multilabel is not None:
            models["multi-label"] = from_files(self.multilabel["model"])
        models["ensemble"] = from_files(self.ensemble["model"])
        models["anomaly"] = from_files(self.anomaly["detector"])
        return models


def _progress(log):
    start = time.perf_counter()

    def step(message):
        log(f"[{time.perf_counter() - start:6.1f} s] {message}")

    return step


def compute_study(
    settings,
    *,
    data=None,
    layout="kermany",
    external=None,
    external_layout=None,
    random_state=0,
    log=print,
):
    """Fit and score every part of the study (and, with ``external``, score
    the models on that data set); returns :class:`StudyResults`."""
    from ..inspection import error_overlap

    step = _progress(log)
    step("loading data")
    study = load_study_data(
        settings, data=data, layout=layout, random_state=random_state, log=step
    )
    step(f"data: {study.source}")
    for text in study.notes:
        step(f"note: {text}")
    estimate = tasks.estimate_run_time(study, settings)
    step(
        f"estimated training time: about {estimate / 60:.0f} min (from a timed "
        "forward pass; the whole study takes longer)"
    )
    study_tasks = tasks.study_tasks(study)
    main_task = study_tasks[-1]
    masking = None
    if settings.mask != "none":
        step(f"lung masking ({settings.mask}) compared with the other choices")
        masking = masking_task(study, main_task, settings, random_state, step)
        study = dataclasses.replace(study, X=masking["masked"])
    classification = {}
    for task in study_tasks:
        step(f"{task.name} classification: frozen, fine-tuned and scratch CNNs")
        classification[task.name] = tasks.classification_task(
            study,
            task,
            tasks.classifier_configs(
                settings, random_state, loader=study.loader, task=task.name
            ),
            settings,
            random_state,
        )
    multilabel = None
    if study.multilabel is not None:
        step("multi-label findings")
        multilabel = tasks.multilabel_task(study, settings, random_state)

    step("embeddings: CNNEmbedder + KNN and the t-SNE map")
    embedding = tasks.embedding_task(study, study_tasks, settings, random_state)
    step("anomaly detection trained on healthy images only")
    anomaly = tasks.anomaly_task(study, settings, random_state)

    step("ensembles: GA-weighted vs uniform averaging")
    main = classification[main_task.name]
    members = {
        **main["models"],
        "KNN on embeddings": embedding["models"][main_task.name],
    }
    ensemble = tasks.ensemble_task(study, members, main_task, settings, random_state)

    step("explanations: Grad-CAM and region attribution")
    explanation = tasks.explanation_task(
        study, main["best"], main["models"][main["best"]], main_task, settings
    )
    step("error overlap across models")
    X_test, y_test, _ = main_task.subset(study, "test")
    overlap = error_overlap(members, X_test, y_test)
    results = StudyResults(
        settings,
        study,
        classification,
        multilabel,
        embedding,
        anomaly,
        ensemble,
        explanation,
        overlap,
        main_task=main_task,
        masking=masking,
    )
    if external is not None:
        step(f"external validation on {external} ({external_layout or layout})")
        results.external = external_task(
            results,
            external,
            external_layout or layout,
            settings,
            random_state,
            step,
        )
    return results


def run_study(
    out_dir,
    *,
    data=None,
    layout="kermany",
    external=None,
    external_layout=None,
    quick=False,
    settings=None,
    random_state=0,
    log=print,
):
    """Run the whole study and write its report folder.

    Writes ``report.html``, ``metrics.csv`` (every metric with its 95% CI
    bounds), ``splits.csv`` (path, patient, label and split of every image),
    ``subgroups.csv`` (the kept models per sex, age band and view),
    ``model_card.md``, ``settings.toml`` and ``models/*.skops`` (each a model
    from image files, in the safe format of :func:`skcxr.utils.save_model`,
    which ``skcxr predict``, ``explain`` and ``serve`` load without running
    code from it; ``<task>-calibrated.skops`` with temperature-scaled
    probabilities and, binary, the decision at the operating threshold).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder for the report; created if missing.
    data : str or os.PathLike, default=None
        A real data set's folder; ``None`` uses synthetic images.
    layout : str, default="kermany"
        The folder layout of ``data``: one of
        :data:`skcxr.study._readers.LAYOUTS`.
    external : str or os.PathLike, default=None
        A second data set's folder on which the models are scored (external
        validation; the findings matched by their common names).
    external_layout : str, default=None
        The folder layout of ``external``; None: ``layout``.
    quick : bool, default=False
        A smoke run of about a minute (ignored when ``settings`` is given).
    settings : StudySettings, default=None
        Every setting; by default the synthetic study, or for a real folder the
        same at the backbone's native input size.
    random_state : int, default=0
    log : callable, default=print
        Receives one progress line per step.

    Returns
    -------
    report_path : str
    """
    if settings is None:
        settings = StudySettings.quick() if quick else StudySettings()
        if data is not None:
            settings = settings.for_real_data()
    # an engine, device and precision that cannot run together fail before any work
    check_engine(settings.engine, settings.device, settings.precision)
    check_masking(settings, data)
    os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
    results = compute_study(
        settings,
        data=data,
        layout=layout,
        external=external,
        external_layout=external_layout,
        random_state=random_state,
        log=log,
    )
    for name, model in results.path_models().items():
        save_model(model, os.path.join(out_dir, "models", f"{name}.skops"))
    for name, model in results.calibrated_models().items():
        save_model(model, os.path.join(out_dir, "models", f"{name}.skops"))
    results.data.write_splits_csv(os.path.join(out_dir, "splits.csv"))
    _write_csv(os.path.join(out_dir, "subgroups.csv"), results.subgroup_rows)
    with open(os.path.join(out_dir, "model_card.md"), "w", encoding="utf-8") as f:
        f.write(to_markdown(model_card(results)))
    with open(os.path.join(out_dir, "settings.toml"), "w", encoding="utf-8") as f:
        f.write(settings.to_toml())
    _write_metrics(os.path.join(out_dir, "metrics.csv"), results.metric_rows, settings)
    report_path = render_report(results, os.path.join(out_dir, "report.html"))
    log(f"done: {report_path}")
    return report_path


def _write_metrics(path, rows, settings):
    recorded = {
        "image size": settings.size,
        "backbone": settings.backbone,
        "bootstrap resamples": settings.n_resamples,
    }
    _write_csv(path, [{**row, **recorded} for row in rows])


def _write_csv(path, rows):
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
