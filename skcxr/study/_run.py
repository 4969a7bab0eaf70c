"""``skcxr study``: a whole chest X-ray study, written up as one HTML report.

The study follows the seed reports: binary and three-class classification with a
frozen pretrained backbone, a fine-tuned one and a network trained from scratch;
embeddings with KNN and a t-SNE map; a healthy-only anomaly detector; a
GA-weighted ensemble against uniform averaging; Grad-CAM and region
explanations; and which images every model gets wrong.
"""

import csv
import os
import time
from dataclasses import dataclass

import joblib
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from . import _sections as sections
from ._report import HTMLReport
from ._sections import HEALTHY, binary_labels

__all__ = ["StudySettings", "run_study"]


@dataclass
class StudySettings:
    """How big the study is; ``quick()`` is the one-minute smoke run."""

    n_samples: int = 1200
    size: int = 64
    difficulty: float = 0.5
    head_epochs: int = 30
    finetune_epochs: int = 8
    scratch_epochs: int = 20
    anomaly_epochs: int = 30
    n_explained: int = 4

    @classmethod
    def quick(cls):
        return cls(
            n_samples=150,
            size=48,
            head_epochs=8,
            finetune_epochs=1,
            scratch_epochs=3,
            anomaly_epochs=3,
            n_explained=2,
        )


@dataclass
class StudyData:
    """Images split three ways; ``val`` is for choosing ensemble weights."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str


def _progress(log):
    start = time.perf_counter()

    def step(message):
        log(f"[{time.perf_counter() - start:6.1f} s] {message}")

    return step


def load_study_data(settings, *, data=None, layout="kermany", random_state=0):
    """Images and labels ("normal" is the healthy class), split 60/20/20."""
    from ..preprocessing._loader import ImageLoader
    from ..datasets import load_chestxray14, load_kermany, make_chest_xrays

    if data is None:
        X, y = make_chest_xrays(
            settings.n_samples,
            classes=("normal", "bacteria", "virus"),
            size=settings.size,
            difficulty=settings.difficulty,
            random_state=random_state,
        )
        source = (
            f"synthetic: make_chest_xrays({settings.n_samples}, size={settings.size}, "
            f"difficulty={settings.difficulty}, random_state={random_state})"
        )
    else:
        if layout == "kermany":
            paths, y = load_kermany(data, labels="three_class")
        elif layout == "chestxray14":
            paths, y = _single_finding(load_chestxray14(data))
        else:
            raise ValueError(
                f"Unknown layout {layout!r}; expected 'kermany' or 'chestxray14'."
            )
        X = ImageLoader(size=settings.size, n_jobs=-1).fit_transform(paths)
        source = f"{layout} folder {os.fspath(data)!r}: {len(y)} images"
    y = np.asarray(y)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=random_state
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=random_state
    )
    return StudyData(X_train, y_train, X_val, y_val, X_test, y_test, source)


def _single_finding(bunch):
    """ChestX-ray14 images with at most one finding; no finding -> "normal"."""
    keep = np.array([len(f) <= 1 for f in bunch.findings])
    if not keep.any():
        raise ValueError("No image in the ChestX-ray14 folder has a single finding.")
    labels = np.array(
        [f[0].lower() if f else HEALTHY for f, k in zip(bunch.findings, keep) if k]
    )
    return np.asarray(bunch.paths)[keep], labels


def classifier_configs(settings, random_state):
    """The seeds' three ways to train a CNN, as named TransferClassifiers."""
    from ..models._transfer import TransferClassifier

    common = dict(random_state=random_state, validation_fraction=0.15, batch_size=32)
    return {
        "frozen efficientnet_lite0": TransferClassifier(
            backbone="efficientnet_lite0",
            weights="imagenet",
            trainable="head",
            head_sizes=(64,),
            max_epochs=settings.head_epochs,
            lr=3e-3,
            **common,
        ),
        "fine-tuned efficientnet_lite0": TransferClassifier(
            backbone="efficientnet_lite0",
            weights="imagenet",
            trainable="all",
            head_sizes=(64,),
            max_epochs=settings.finetune_epochs,
            lr=5e-4,
            **common,
        ),
        "small CNN from scratch": TransferClassifier(
            backbone="small_cnn",
            weights=None,
            trainable="all",
            head_sizes=(64,),
            max_epochs=settings.scratch_epochs,
            lr=2e-3,
            class_weight="balanced",
            **common,
        ),
    }


def run_study(
    out_dir, *, data=None, layout="kermany", quick=False, random_state=0, log=print
):
    """Run the whole study and write ``report.html``, ``metrics.csv`` and models.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder for the report; created if missing.
    data : str or os.PathLike, default=None
        A real data set's folder; ``None`` uses synthetic images.
    layout : {"kermany", "chestxray14"}, default="kermany"
        The folder layout of ``data``.
    quick : bool, default=False
        A smoke run of about a minute instead of the full study.
    random_state : int, default=0
    log : callable, default=print
        Receives one progress line per step.

    Returns
    -------
    report_path : str
    """
    settings = StudySettings.quick() if quick else StudySettings()
    step = _progress(log)
    os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
    report = HTMLReport("skcxr chest X-ray study")
    metrics_rows = []

    step("loading data")
    study = load_study_data(
        settings, data=data, layout=layout, random_state=random_state
    )
    sections.data_section(report, study)

    models, best_name = {}, {}
    for task, to_labels in (("binary", binary_labels), ("three-class", np.asarray)):
        step(f"{task} classification: training frozen, fine-tuned and scratch CNNs")
        fitted = sections.classification_section(
            report,
            study,
            task,
            to_labels,
            classifier_configs(settings, random_state),
            metrics_rows,
        )
        y_val = to_labels(study.y_val)
        best_name[task] = max(fitted, key=lambda n: fitted[n].score(study.X_val, y_val))
        models[task] = fitted
        joblib.dump(
            _path_model(fitted[best_name[task]], settings.size),
            os.path.join(out_dir, "models", f"{task}.joblib"),
        )
    three_class = models["three-class"]

    step("embeddings: CNNEmbedder + KNN and the t-SNE map")
    knn = sections.embedding_section(report, study, metrics_rows, random_state)

    step("anomaly detection trained on healthy images only")
    detector = sections.anomaly_section(
        report, study, settings, metrics_rows, random_state
    )
    joblib.dump(detector, os.path.join(out_dir, "models", "anomaly.joblib"))

    step("ensembles: GA-weighted vs uniform averaging")
    members = {**three_class, "KNN on embeddings": knn}
    ensemble = sections.ensemble_section(
        report, study, members, metrics_rows, random_state
    )
    joblib.dump(ensemble, os.path.join(out_dir, "models", "ensemble.joblib"))

    step("explanations: Grad-CAM and region attribution")
    name = best_name["three-class"]
    sections.explanation_section(report, study, name, three_class[name], settings)

    step("error overlap across models")
    sections.error_overlap_section(report, study, members)

    _write_metrics(os.path.join(out_dir, "metrics.csv"), metrics_rows)
    report_path = os.path.join(out_dir, "report.html")
    report.write(report_path)
    step(f"done: {report_path}")
    return report_path


def _path_model(classifier, size):
    """A pipeline from image files to predictions, for ``skcxr predict``/``explain``."""
    from ..preprocessing._loader import ImageLoader

    return Pipeline([("load", ImageLoader(size=size)), ("classify", classifier)])


def _write_metrics(path, rows):
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
