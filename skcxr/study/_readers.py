"""One reader per data layout: images, labels, patients and what is known of them.

A reader turns a layout into a :class:`Source`: file paths (or synthetic
images), a single-label target for the classification tasks, the multi-label
finding matrix where the data set has one (common finding names, NaN where
unknown), patient ids, the official split where the data set has one, and
per-image attributes (sex, age, view) for the subgroup analysis. The study
then splits, subsamples and reads the images the same way for every layout.
"""

import os
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LAYOUTS",
    "NO_FINDING",
    "SEVERAL_FINDINGS",
    "Source",
    "finding_target",
    "read_layout",
    "read_synthetic",
]

KERMANY_HEALTHY = "normal"
NO_FINDING = "No Finding"
SEVERAL_FINDINGS = "several findings"
# not a disease: kept as a label of the multi-label model, never a class
NOT_A_FINDING = ("Support Devices", NO_FINDING)
# projections other than frontal are left out of a study (another anatomy view)
NON_FRONTAL = ("LATERAL", "LL", "RL", "L", "COSTAL", "EXCLUDE")


@dataclass
class Source:
    """A data set as the study reads it (see the module docstring).

    ``positive`` names what the binary task's positive class means, as a
    common finding name (``"Pneumonia"`` for Kermany's pneumonia) or
    ``"any finding"``; external validation matches it by name.
    """

    paths: np.ndarray
    y: np.ndarray
    patients: np.ndarray
    healthy: str
    description: str
    official: np.ndarray = None
    multilabel: np.ndarray = None
    finding_names: list = field(default_factory=list)
    attributes: dict = field(default_factory=dict)
    positive: str = "any finding"
    X: np.ndarray = None  # synthetic images, already in memory
    lesion_masks: np.ndarray = None
    lung_masks: np.ndarray = None  # synthetic lung fields, with --mask
    notes: list = field(default_factory=list)


def read_synthetic(settings, random_state):
    """Synthetic chest X-rays, one per synthetic patient (Kermany's classes)."""
    from ..datasets import make_chest_xrays

    with_lungs = settings.mask != "none"
    X, y, lesion_masks, *lung_masks, metadata = make_chest_xrays(
        settings.n_samples,
        classes=("normal", "bacteria", "virus"),
        size=settings.size,
        difficulty=settings.difficulty,
        return_masks=True,
        return_lung_masks=with_lungs,
        return_metadata=True,
        random_state=random_state,
    )
    patients = np.arange(len(y)).astype(str)
    return Source(
        paths=np.array([f"synthetic-{i:05d}" for i in range(len(y))]),
        y=y,
        patients=patients,
        healthy=KERMANY_HEALTHY,
        description=(
            f"synthetic: make_chest_xrays({settings.n_samples}, size={settings.size}"
            f", difficulty={settings.difficulty}, random_state={random_state}), one "
            "image per synthetic patient"
        ),
        positive="Pneumonia",
        attributes={
            name: np.asarray(metadata[name]) for name in ("sex", "age", "view")
        },
        X=X,
        lesion_masks=lesion_masks,
        lung_masks=lung_masks[0] if with_lungs else None,
    )


def _read_kermany(root):
    """Kermany et al. 2018: ``train|val|test/NORMAL|PNEUMONIA``, three classes."""
    from ..datasets import load_kermany

    bunch = load_kermany(root, labels="three_class", return_X_y=False)
    y = np.asarray(bunch.target)
    if not (y == KERMANY_HEALTHY).any():
        raise ValueError(
            f"The Kermany folder {os.fspath(root)!r} has no normal images (no "
            "NORMAL folder under train/, val/ or test/); a study compares them "
            "with pneumonia."
        )
    return Source(
        paths=np.asarray(bunch.paths),
        y=y,
        patients=np.asarray(bunch.patient_ids).astype(str),
        healthy=KERMANY_HEALTHY,
        description=f"kermany folder {os.fspath(root)!r}",
        official=np.asarray(bunch.split),
        positive="Pneumonia",
    )


def _single_label(labels, classes):
    """A finding name per image: the only positive finding, ``NO_FINDING``
    without one (unknown labels count as not positive), or
    ``SEVERAL_FINDINGS``."""
    findings = [j for j, c in enumerate(classes) if c not in NOT_A_FINDING]
    positive = np.nan_to_num(labels[:, findings], nan=0.0) == 1
    count = positive.sum(axis=1)
    names = np.asarray(classes, dtype=object)[findings]
    y = np.full(len(labels), SEVERAL_FINDINGS, dtype=object)
    y[count == 0] = NO_FINDING
    one = count == 1
    y[one] = names[positive[one].argmax(axis=1)]
    return y.astype(str)


def _public_loader(layout):
    from .. import datasets

    return {
        "chestxray14": datasets.load_chestxray14,
        "chexpert": datasets.load_chexpert,
        "mimic": datasets.load_mimic_cxr,
        "padchest": datasets.load_padchest,
        "rsna": datasets.load_rsna_pneumonia,
        "vindr": datasets.load_vindr_cxr,
        "siim": datasets.load_siim_pneumothorax,
    }[layout]


def _read_public(root, layout):
    """A multi-label public data set through its loader (frontal views only;
    images not on disk are counted and left out: a partial download can be
    studied)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bunch = _public_loader(layout)(root, on_missing="skip")
    notes = [str(w.message) for w in caught]
    views = np.asarray(bunch.views).astype(str)
    frontal = ~np.isin(views, NON_FRONTAL)
    if not frontal.all():
        notes.append(
            f"{int((~frontal).sum())} lateral or other non-frontal images left out."
        )
    if not frontal.any():
        raise ValueError(f"No frontal image in {os.fspath(root)!r}.")
    labels = np.asarray(bunch.labels, dtype=float)[frontal]
    classes = [str(c) for c in bunch.classes]
    y = _single_label(labels, classes)
    present = np.nansum(labels, axis=0) > 0
    if not present.all():  # nothing to learn or score: not modelled
        absent = [c for c, p in zip(classes, present) if not p]
        notes.append(f"No positive image of {', '.join(absent)}: not modelled.")
        labels = labels[:, present]
        classes = [c for c, p in zip(classes, present) if p]
    findings = [c for c in classes if c not in NOT_A_FINDING]
    split = None if bunch.get("split") is None else np.asarray(bunch.split)[frontal]
    attributes = {
        "sex": np.asarray(bunch.sex).astype(str)[frontal],
        "age": np.asarray(bunch.age, dtype=float)[frontal],
        "view": views[frontal],
    }
    return Source(
        paths=np.asarray(bunch.paths)[frontal],
        y=y,
        patients=np.asarray(bunch.patient_ids).astype(str)[frontal],
        healthy=NO_FINDING,
        description=f"{layout} folder {os.fspath(root)!r}",
        official=split,
        multilabel=labels,
        finding_names=classes,
        attributes=attributes,
        positive=findings[0] if len(findings) == 1 else "any finding",
        notes=notes,
    )


#: Every layout a study reads from a folder.
LAYOUTS = (
    "kermany",
    "chestxray14",
    "chexpert",
    "mimic",
    "padchest",
    "rsna",
    "vindr",
    "siim",
)


def finding_target(source, name):
    """1 / 0 / NaN per image: whether it has finding ``name`` (a common finding
    name, or ``"any finding"``), for scoring a model on this data set."""
    if source.multilabel is None or name == "any finding":
        if source.multilabel is None:
            healthy = source.y == source.healthy
            if name not in ("any finding", source.positive):
                return None
            return (~healthy).astype(float)
        findings = [
            j for j, c in enumerate(source.finding_names) if c not in NOT_A_FINDING
        ]
        labels = source.multilabel[:, findings]
        positive = (np.nan_to_num(labels, nan=0.0) == 1).any(axis=1)
        known_negative = (labels == 0).all(axis=1)
        return np.where(positive, 1.0, np.where(known_negative, 0.0, np.nan))
    if name not in source.finding_names:
        return None
    return source.multilabel[:, source.finding_names.index(name)]


def read_layout(root, layout):
    """The :class:`Source` of the data set at ``root`` in ``layout``."""
    if layout not in LAYOUTS:
        raise ValueError(f"Unknown layout {layout!r}; expected one of {LAYOUTS}.")
    if layout == "kermany":
        return _read_kermany(root)
    return _read_public(root, layout)
