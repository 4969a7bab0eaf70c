"""The study's data: images, labels, patients and patient-disjoint splits.

Official test sets are honoured (Kermany et al. 2018 ``test/``; Wang et al.
2017 ``test_list.txt``); every other split is grouped by patient with
:func:`skcxr.utils._split.holdout_split`, so no patient's images fall on both
sides of a split.
"""

import csv
import os
from dataclasses import dataclass, field

import numpy as np

from ..utils._split import holdout_split

__all__ = ["StudyData", "load_study_data", "KERMANY_HEALTHY", "NIH_HEALTHY"]

KERMANY_HEALTHY = "normal"
NIH_HEALTHY = "No Finding"
SEVERAL_FINDINGS = "several findings"
SPLITS = ("train", "validation", "test")


@dataclass
class StudyData:
    """Images with their labels and patients, split three ways.

    ``split`` says where each image goes: ``"train"`` fits the models,
    ``"validation"`` chooses between them (and the ensemble's weights), and
    ``"test"`` is only scored. ``multilabel`` is the finding indicator matrix
    of ChestX-ray14 (None elsewhere). ``lesion_masks`` are the known lesions of
    synthetic images, ``(n_images, H, W)`` booleans (None for real data), so
    explanations can be scored against them.
    """

    X: np.ndarray
    y: np.ndarray
    patients: np.ndarray
    split: np.ndarray
    paths: np.ndarray
    source: str
    layout: str
    healthy: str
    multilabel: np.ndarray = None
    finding_names: list = field(default_factory=list)
    lesion_masks: np.ndarray = None
    loader: object = None  # an ImageLoader when X holds file paths (streaming)

    def pixels(self, X):
        """Images of ``X``: ``X`` itself, or the files read when streaming."""
        return X if self.loader is None else self.loader.transform(X)

    def part(self, name):
        """Boolean mask of the images in split ``name``."""
        return self.split == name

    def subset(self, name, *, multilabel=False):
        """``(X, y, patients)`` of split ``name`` for a single-label or the
        multi-label task (images with several findings are multi-label only)."""
        mask = self.part(name)
        if multilabel:
            y = self.multilabel
        else:
            mask &= self.y != SEVERAL_FINDINGS
            y = self.y
        return self.X[mask], y[mask], self.patients[mask]

    def lesions(self, name):
        """The lesion masks aligned with ``subset(name)``, or None."""
        if self.lesion_masks is None:
            return None
        return self.lesion_masks[self.part(name) & (self.y != SEVERAL_FINDINGS)]

    def split_rows(self):
        """One row per split: images, patients and images per class."""
        classes = np.unique(self.y)
        return [
            {
                "split": name,
                "images": int(self.part(name).sum()),
                "patients": len(np.unique(self.patients[self.part(name)])),
                **{c: int((self.y[self.part(name)] == c).sum()) for c in classes},
            }
            for name in SPLITS
        ]

    def patients_disjoint(self):
        """Whether no patient has images in two splits."""
        owners = {}
        for patient, split in zip(self.patients, self.split):
            owners.setdefault(patient, set()).add(split)
        return all(len(s) == 1 for s in owners.values())

    def write_splits_csv(self, path):
        """``path, patient, label, split`` for every image."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "patient", "label", "split"])
            writer.writerows(zip(self.paths, self.patients, self.y, self.split))


def _assign_splits(y, patients, official_test, settings, random_state):
    """Official test images stay test; the rest splits by patient."""
    split = np.full(len(y), "train", dtype=object)
    if official_test is None:
        rest, test = holdout_split(
            y,
            test_size=settings.test_fraction,
            groups=patients,
            random_state=random_state,
        )
        split[test] = "test"
    else:
        split[official_test] = "test"
        rest = np.flatnonzero(~official_test)
    fit, val = holdout_split(
        y[rest],
        test_size=settings.validation_fraction,
        groups=patients[rest],
        random_state=random_state,
    )
    split[rest[val]] = "validation"
    return split.astype(str)


def _subsample(y, patients, max_images, random_state):
    """A stratified, patient-grouped subsample of about ``max_images`` images."""
    if not max_images or max_images >= len(y):
        return np.arange(len(y))
    _, keep = holdout_split(
        y, test_size=max_images / len(y), groups=patients, random_state=random_state
    )
    return np.sort(keep)


def load_study_data(
    settings, *, data=None, layout="kermany", random_state=0, log=print
):
    """Load the synthetic default or a real folder and split it by patient.

    Parameters
    ----------
    settings : StudySettings
    data : str or os.PathLike, default=None
        A Kermany or ChestX-ray14 folder; ``None`` draws synthetic images, one
        per synthetic patient.
    layout : {"kermany", "chestxray14"}, default="kermany"
    random_state : int, default=0
    log : callable, default=print
        Told whether the images are loaded or streamed from the files.

    Returns
    -------
    StudyData
    """
    from ..datasets import load_chestxray14, load_kermany, make_chest_xrays
    from ..preprocessing import ImageLoader

    multilabel, finding_names = None, []
    if data is None:
        X, y, lesion_masks = make_chest_xrays(
            settings.n_samples,
            classes=("normal", "bacteria", "virus"),
            size=settings.size,
            difficulty=settings.difficulty,
            return_masks=True,
            random_state=random_state,
        )
        patients = np.arange(len(y)).astype(str)
        paths = np.array([f"synthetic-{i:05d}" for i in range(len(y))])
        split = _assign_splits(y, patients, None, settings, random_state)
        source = (
            f"synthetic: make_chest_xrays({settings.n_samples}, size={settings.size}, "
            f"difficulty={settings.difficulty}, random_state={random_state}), one "
            "image per synthetic patient"
        )
        return StudyData(
            X,
            y,
            patients,
            split,
            paths,
            source,
            "synthetic",
            KERMANY_HEALTHY,
            lesion_masks=lesion_masks,
        )
    if layout == "kermany":
        bunch = load_kermany(data, labels="three_class", return_X_y=False)
        paths, y = bunch.paths, bunch.target
        patients = np.asarray(bunch.patient_ids).astype(str)
        official = np.asarray(bunch.split)
        healthy = KERMANY_HEALTHY
    elif layout == "chestxray14":
        bunch = load_chestxray14(data)
        paths = bunch.paths
        # the single-label task keeps images with no finding or exactly one
        y = np.array(
            [
                f[0] if len(f) == 1 else NIH_HEALTHY if not f else SEVERAL_FINDINGS
                for f in bunch.findings
            ]
        )
        patients = np.asarray(bunch.patient_ids).astype(str)
        official = None if bunch.get("split") is None else np.asarray(bunch.split)
        present = bunch.labels.any(axis=0)
        multilabel = bunch.labels[:, present]
        finding_names = [str(c) for c in np.asarray(bunch.classes)[present]]
        healthy = NIH_HEALTHY
    else:
        raise ValueError(
            f"Unknown layout {layout!r}; expected 'kermany' or 'chestxray14'."
        )
    keep = _subsample(y, patients, settings.max_images, random_state)
    paths, y, patients = paths[keep], np.asarray(y)[keep], patients[keep]
    if multilabel is not None:
        multilabel = multilabel[keep]
    official_test = None if official is None else official[keep] == "test"
    if official_test is not None and not official_test.any():
        official_test = None  # a folder without its official test images
    split = _assign_splits(y, patients, official_test, settings, random_state)
    from ..utils._memory import should_stream

    loader = ImageLoader(size=settings.size, n_jobs=-1)
    stream, array, available = should_stream(
        len(paths), settings.size, mode=settings.streaming
    )
    if stream:
        X = np.asarray(paths)  # the models read the files through `loader`
        free = "unknown" if available is None else f"{available / 2**30:.1f} GiB"
        log(
            f"streaming from files (streaming={settings.streaming!r}): {len(y)} "
            f"images at {settings.size} px would take {array / 2**30:.1f} GiB as "
            f"float32 ({free} available); batches are decoded in "
            "worker processes"
        )
    else:
        X, loader = loader.fit_transform(paths), None
    test_rule = "official test split" if official_test is not None else "no official"
    source = (
        f"{layout} folder {os.fspath(data)!r}: {len(y)} images of "
        f"{len(np.unique(patients))} patients at {settings.size} px ({test_rule}"
        + (")" if official_test is not None else " test split: patient-grouped)")
    )
    return StudyData(
        X,
        y,
        patients,
        split,
        paths,
        source,
        layout,
        healthy,
        multilabel,
        finding_names,
        loader=loader,
    )
