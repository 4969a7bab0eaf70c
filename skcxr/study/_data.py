"""The study's data: images, labels, patients and patient-disjoint splits.

A reader per layout (:mod:`skcxr.study._readers`) gives the images, labels,
patients and attributes; here they are split three ways and read. Official
test sets are honoured (Kermany et al. 2018 ``test/``; Wang et al. 2017
``test_list.txt``; MIMIC-CXR's split); every other split is grouped by patient
with :func:`skcxr.utils._split.holdout_split`, so no patient's images fall on
both sides of a split. A class too rare to be estimated in every split is
left out of the single-label tasks, with a note giving its counts.
"""

import csv
from dataclasses import dataclass, field

import numpy as np

from ..utils._split import holdout_split
from ._readers import SEVERAL_FINDINGS, read_layout, read_synthetic

__all__ = ["StudyData", "load_study_data", "read_images", "subsample", "SPLITS"]

SPLITS = ("train", "validation", "test")
# what a single-label task cannot use: several findings, or a class too rare
RARE = "rare class"


@dataclass
class StudyData:
    """Images with their labels and patients, split three ways.

    ``split`` says where each image goes: ``"train"`` fits the models,
    ``"validation"`` chooses between them (and the ensemble's weights, the
    calibration, the operating point), and ``"test"`` is only scored.
    ``multilabel`` is the finding matrix of a multi-label data set (NaN where
    unknown; None elsewhere). ``lesion_masks`` are the known lesions of
    synthetic images, ``(n_images, H, W)`` booleans (None for real data), so
    explanations can be scored against them; ``lung_masks`` their lung fields
    (with ``--mask``), to train and score a lung segmenter. ``attributes`` maps an attribute
    (``"sex"``, ``"age"``, ``"view"``) to its per-image values where the data
    set records it. ``positive`` names what the binary task's positive class
    means (a finding's common name or ``"any finding"``). ``notes`` say what
    was left out and why.
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
    lung_masks: np.ndarray = None
    loader: object = None  # an ImageLoader when X holds file paths (streaming)
    attributes: dict = field(default_factory=dict)
    positive: str = "any finding"
    notes: list = field(default_factory=list)

    def pixels(self, X):
        """Images of ``X``: ``X`` itself, or the files read when streaming."""
        return X if self.loader is None else self.loader.transform(X)

    def part(self, name):
        """Boolean mask of the images in split ``name``."""
        return self.split == name

    def single_label(self):
        """Boolean mask of the images the single-label tasks use."""
        return (self.y != SEVERAL_FINDINGS) & (self.y != RARE)

    def _mask(self, name, every_image):
        mask = self.part(name)
        return mask if every_image else mask & self.single_label()

    def subset(self, name, *, multilabel=False, every_image=False):
        """``(X, y, patients)`` of split ``name``: the single-label images (by
        default), every image (``every_image``: for healthy vs any finding,
        with ``y`` holding :data:`SEVERAL_FINDINGS` or :data:`RARE` for images
        no single class fits), or every image with the finding matrix as
        ``y`` (``multilabel``)."""
        if multilabel:
            mask, y = self.part(name), self.multilabel
        else:
            mask, y = self._mask(name, every_image), self.y
        return self.X[mask], y[mask], self.patients[mask]

    def subset_attributes(self, name, *, every_image=False):
        """The ``attributes`` of the images of ``subset(name, ...)``."""
        mask = self._mask(name, every_image)
        return {key: values[mask] for key, values in self.attributes.items()}

    def lesions(self, name, *, every_image=False):
        """The lesion masks aligned with ``subset(name, ...)``, or None."""
        if self.lesion_masks is None:
            return None
        return self.lesion_masks[self._mask(name, every_image)]

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


def subsample(y, patients, max_images, random_state):
    """A stratified, patient-grouped subsample of about ``max_images`` images."""
    if not max_images or max_images >= len(y):
        return np.arange(len(y))
    _, keep = holdout_split(
        y, test_size=max_images / len(y), groups=patients, random_state=random_state
    )
    return np.sort(keep)


def _set_rare_classes(y, split, healthy, minimum):
    """Mark the images of classes with fewer than ``minimum`` images in some
    split as :data:`RARE`; returns the new labels and one note per class."""
    y = np.asarray(y, dtype=object).copy()
    notes = []
    for label in sorted(set(y.tolist()) - {healthy, SEVERAL_FINDINGS}):
        counts = {name: int(((y == label) & (split == name)).sum()) for name in SPLITS}
        if min(counts.values()) < minimum:
            y[y == label] = RARE
            notes.append(
                f"{label}: too few images to estimate ("
                + ", ".join(f"{n} {name}" for name, n in counts.items())
                + f"; at least {minimum} per split are needed); left out of the "
                "single-label tasks, kept in the multi-label one."
            )
    if not (y == healthy).any():
        raise ValueError(f"No image of the healthy class {healthy!r} is left.")
    return y.astype(str), notes


def read_images(paths, settings, log):
    """``(X, loader)``: the images of ``paths`` read at the study's size, or,
    when they would not fit (:func:`~skcxr.utils._memory.should_stream`), the
    paths themselves and the :class:`~skcxr.ImageLoader` the models read them
    through, batch by batch."""
    from ..preprocessing import ImageLoader
    from ..utils._memory import should_stream

    loader = ImageLoader(size=settings.size, n_jobs=-1)
    stream, array, available = should_stream(
        len(paths), settings.size, mode=settings.streaming
    )
    if not stream:
        return loader.fit_transform(paths), None
    free = "unknown" if available is None else f"{available / 2**30:.1f} GiB"
    log(
        f"streaming from files (streaming={settings.streaming!r}): {len(paths)} "
        f"images at {settings.size} px would take {array / 2**30:.1f} GiB as "
        f"float32 ({free} available); batches are decoded in worker processes"
    )
    return np.asarray(paths), loader


def load_study_data(
    settings, *, data=None, layout="kermany", random_state=0, log=print
):
    """Load the synthetic default or a real folder and split it by patient.

    Parameters
    ----------
    settings : StudySettings
    data : str or os.PathLike, default=None
        A folder in ``layout``; ``None`` draws synthetic images, one per
        synthetic patient.
    layout : str, default="kermany"
        One of :data:`skcxr.study._readers.LAYOUTS`.
    random_state : int, default=0
    log : callable, default=print
        Told whether the images are loaded or streamed from the files.

    Returns
    -------
    StudyData
    """
    if data is None:
        source = read_synthetic(settings, random_state)
        split = _assign_splits(source.y, source.patients, None, settings, random_state)
        return StudyData(
            source.X,
            source.y,
            source.patients,
            split,
            source.paths,
            source.description,
            "synthetic",
            source.healthy,
            lesion_masks=source.lesion_masks,
            lung_masks=source.lung_masks,
            attributes=source.attributes,
            positive=source.positive,
        )
    source = read_layout(data, layout)
    keep = subsample(source.y, source.patients, settings.max_images, random_state)
    paths, y, patients = source.paths[keep], source.y[keep], source.patients[keep]
    multilabel = None if source.multilabel is None else source.multilabel[keep]
    attributes = {key: values[keep] for key, values in source.attributes.items()}
    official_test = None if source.official is None else source.official[keep] == "test"
    if official_test is not None and not official_test.any():
        official_test = None  # a folder without its official test images
    split = _assign_splits(y, patients, official_test, settings, random_state)
    y, rare_notes = _set_rare_classes(
        y, split, source.healthy, settings.min_class_images
    )
    X, loader = read_images(paths, settings, log)
    test_rule = "official test split" if official_test is not None else "no official"
    description = (
        f"{source.description}: {len(y)} images of {len(np.unique(patients))} "
        f"patients at {settings.size} px ({test_rule}"
        + (")" if official_test is not None else " test split: patient-grouped)")
    )
    return StudyData(
        X,
        y,
        patients,
        split,
        paths,
        description,
        layout,
        source.healthy,
        multilabel,
        list(source.finding_names),
        loader=loader,
        attributes=attributes,
        positive=source.positive,
        notes=source.notes + rare_notes,
    )
