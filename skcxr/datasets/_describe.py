"""What a data set's folder holds: a one-screen summary of its label files.

:func:`describe_dataset` reads a folder with the loader of its layout and
counts what a study needs to know before it starts: the images the label
files list, how many are on disk, patients and studies, views, sex and age,
each finding's positive / negative / unknown labels, and the official split.
:func:`format_description` turns that summary into text (``skcxr data
describe`` prints it).
"""

import importlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ._labels import DATASET_NAMES, default_classes, source_labels
from ._real import _kermany_root

__all__ = ["describe_dataset", "format_description", "LAYOUTS"]

#: The folder layouts :func:`describe_dataset` reads, and what each expects.
LAYOUTS = {
    "kermany": "DIR[/chest_xray]/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg",
    "chestxray14": "DIR/Data_Entry_2017.csv, DIR/train_val_list.txt and "
    "test_list.txt, the images in DIR/images_*/images/ (or DIR/images/)",
    "chexpert": "DIR/CheXpert-v1.0-small/train.csv and valid.csv with the "
    "train/ and valid/ image folders beside them (or CheXpert-v1.0/; DIR may "
    "be that folder itself)",
    "mimic": "DIR/mimic-cxr-2.0.0-metadata.csv.gz, -chexpert.csv.gz and "
    "-split.csv.gz, the images in DIR/files/p10/p10000032/s50414267/*.jpg",
    "padchest": "DIR/PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv(.gz) "
    "and the image folders DIR/0/ ... DIR/54/ (or the images in DIR)",
    "rsna": "DIR/stage_2_train_labels.csv, DIR/stage_2_detailed_class_info.csv "
    "and DIR/stage_2_train_images/*.dcm",
    "vindr": "DIR/train.csv (or annotations/annotations_train.csv) and "
    "DIR/train/*.dicom",
    "siim": "DIR/train-rle.csv and DIR/dicom-images-train/<study>/<series>/*.dcm",
}

# layout -> (data set key, loader)
_DATASETS = {
    "kermany": ("kermany", "load_kermany"),
    "chestxray14": ("chestxray14", "load_chestxray14"),
    "chexpert": ("chexpert", "load_chexpert"),
    "mimic": ("mimic_cxr", "load_mimic_cxr"),
    "padchest": ("padchest", "load_padchest"),
    "rsna": ("rsna_pneumonia", "load_rsna_pneumonia"),
    "vindr": ("vindr_cxr", "load_vindr_cxr"),
    "siim": ("siim_pneumothorax", "load_siim_pneumothorax"),
}
# the data sets whose loaders read one label row per image
_ONE_ROW_PER_IMAGE = {"chestxray14", "chexpert", "mimic", "padchest"}
# the data sets that publish no patient: each image is its own
_NO_PATIENTS = {"rsna", "vindr", "siim"}


class LayoutError(ValueError):
    """A folder without the label file (or folders) its layout expects.

    ``str()`` is one line: what is missing under which folder, and what the
    layout expects.
    """

    def __init__(self, root, layout, missing):
        self.root, self.layout, self.missing = str(root), layout, missing
        self.expected = LAYOUTS[layout]
        super().__init__(self.message(f"layout {layout!r}"))

    def message(self, layout_name):
        """The one-line message, naming the layout as ``layout_name``."""
        return (
            f"no {self.missing} under {self.root}; {layout_name} expects "
            f"{self.expected.replace('DIR', self.root)}"
        )


def _check_layout(root, layout):
    """Raise :class:`LayoutError` unless ``root`` has what ``layout`` reads."""
    root = Path(root)

    def any_file(*patterns):
        return any(next(root.glob(p), None) is not None for p in patterns)

    if layout == "kermany":
        bases = (root, root / "chest_xray", root / "chest_xray" / "chest_xray")
        if not any((b / s).is_dir() for b in bases for s in ("train", "val", "test")):
            raise LayoutError(root, layout, "train/, val/ or test/ folder")
    elif layout == "chestxray14":
        if not any_file("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"):
            raise LayoutError(root, layout, "Data_Entry_2017.csv")
    elif layout == "chexpert":
        folders = (root, root / "CheXpert-v1.0-small", root / "CheXpert-v1.0")
        if not any(
            (f / n).is_file() for f in folders for n in ("train.csv", "valid.csv")
        ):
            raise LayoutError(root, layout, "CheXpert-v1.0[-small]/train.csv")
    elif layout == "mimic":
        for kind in ("metadata", "chexpert"):
            if not any_file(f"mimic-cxr-2.*-{kind}.csv*"):
                raise LayoutError(root, layout, f"mimic-cxr-2.0.0-{kind}.csv(.gz)")
    elif layout == "padchest":
        if not any_file("PADCHEST_chest_x_ray_images_labels_160K*.csv*"):
            raise LayoutError(
                root, layout, "PADCHEST_chest_x_ray_images_labels_160K*.csv(.gz)"
            )
    elif layout == "rsna":
        if not any_file("*stage_*_train_labels.csv*"):
            raise LayoutError(root, layout, "stage_2_train_labels.csv")
    elif layout == "vindr":
        if not any_file("train.csv", "annotations/annotations_train.csv"):
            raise LayoutError(root, layout, "train.csv")
    elif layout == "siim":
        if not any_file("train-rle.csv*", "siim-pneumothorax-train-rle.csv*"):
            raise LayoutError(root, layout, "train-rle.csv")


def describe_dataset(root, layout, **loader_options):
    """Summary of a chest X-ray data set's folder: images, patients, labels.

    Reads the folder with the loader of its layout (with
    ``on_missing="skip"``: a partial download is described, not refused) and
    counts the images its label files list and those on disk, patients and
    studies, views, sex, age (median and range), each finding's positive,
    negative and unknown labels, and the size of each side of the official
    split. The warnings the loader would give are kept in ``notes``.

    Parameters
    ----------
    root : str or os.PathLike
        The data set's folder, as its loader takes it.
    layout : {"kermany", "chestxray14", "chexpert", "mimic", "padchest", \
"rsna", "vindr", "siim"}
        Which data set's layout the folder has (the user guide lists what
        each expects).
    **loader_options
        Passed to the loader (:func:`load_chexpert`, ...), e.g.
        ``uncertain="ones"`` or ``classes=[...]``. By default every official
        split is read (``split=None``) and the findings are the loader's
        default ones, with "No Finding" where the data set labels it.

    Returns
    -------
    summary : :class:`~sklearn.utils.Bunch`
        ``layout``, ``dataset`` (its name), ``root``; ``n_listed`` (images
        the label files list), ``n_found`` (on disk and read),
        ``n_missing``, ``n_unreadable``, ``n_excluded`` and ``n_rows``
        (label file rows) as the loader counts them; ``n_patients`` and
        ``n_studies`` (None where the data set has none); ``views``,
        ``sex`` and ``split`` dicts of value -> number of images (``split``
        None without an official split); ``age`` a Bunch of ``n_known``,
        ``median``, ``min``, ``max`` (years; NaN when no age is known, None
        where the data set has no ages); ``findings`` a list of
        ``(name, n_positive, n_negative, n_unknown)``; ``notes`` list of str.

    Raises
    ------
    ValueError
        On an unknown layout, a folder that does not exist, or the loader's
        errors. A folder without the label file its layout expects raises a
        ``LayoutError`` (a ValueError) whose message is one line saying what
        is missing and what the layout expects.

    See Also
    --------
    format_description : The summary as text.

    Examples
    --------
    >>> from skcxr.datasets import describe_dataset, format_description
    >>> from skcxr.datasets._sample import SAMPLE_ROOT
    >>> summary = describe_dataset(SAMPLE_ROOT, "kermany")
    >>> summary.n_found, summary.split, summary.n_patients
    (16, {'val': 16}, 15)
    >>> summary.findings[0]
    ('Pneumonia', 8, 8, 0)
    >>> print(format_description(summary))  # doctest: +ELLIPSIS
    Kermany et al. 2018 (layout kermany) in .../kermany-sample/chest_xray
      images          16 found
      patients        15
      official split  val 16
      findings               positive  negative   unknown
        Pneumonia                   8         8         0
        Bacterial pneumonia         8         8         0
        Viral pneumonia             0        16         0
    """
    if layout not in _DATASETS:
        raise ValueError(f"layout must be one of {sorted(_DATASETS)}, got {layout!r}.")
    if not os.path.isdir(root):
        raise ValueError(f"{os.fspath(root)} is not a folder.")
    _check_layout(root, layout)
    dataset, loader_name = _DATASETS[layout]
    loader = getattr(importlib.import_module(__package__), loader_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if layout == "kermany":
            return _describe_kermany(root, loader, loader_options, caught)
        options = _default_options(layout, dataset, loader_options)
        data = loader(root, **options)
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    return _summary(layout, dataset, root, data, notes)


def _default_options(layout, dataset, options):
    options = {"on_missing": "skip", **options}
    if layout in ("chexpert", "mimic"):
        options.setdefault("split", None)
    if "classes" not in options and "No Finding" in source_labels(dataset):
        if layout != "chestxray14":  # it has no "No Finding" column
            options["classes"] = default_classes(dataset) + ["No Finding"]
    return options


def _counts(values):
    """value -> count, most frequent first (ties by value)."""
    if values is None:
        return None
    found, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    order = sorted(zip(found.tolist(), counts.tolist()), key=lambda p: (-p[1], p[0]))
    return dict(order)


def _age(age):
    age = np.asarray(age, dtype=float)
    known = age[~np.isnan(age)]
    if not known.size:
        return Bunch(n_known=0, median=np.nan, min=np.nan, max=np.nan)
    return Bunch(
        n_known=int(known.size),
        median=float(np.median(known)),
        min=float(known.min()),
        max=float(known.max()),
    )


def _summary(layout, dataset, root, data, notes):
    n_found = len(data.paths)
    n_listed = (
        data.n_rows
        if layout in _ONE_ROW_PER_IMAGE
        else n_found + data.n_missing + data.n_unreadable + data.n_excluded
    )
    findings = [
        (
            str(name),
            int(np.sum(data.labels[:, j] == 1)),
            int(np.sum(data.labels[:, j] == 0)),
            int(np.isnan(data.labels[:, j]).sum()),
        )
        for j, name in enumerate(data.classes)
    ]
    if layout == "chestxray14":  # "No Finding" is an empty finding list
        healthy = sum(not f for f in data.findings)
        findings.append(("No Finding", healthy, n_found - healthy, 0))
    return Bunch(
        layout=layout,
        dataset=DATASET_NAMES.get(data.dataset, data.dataset),
        root=str(root),
        n_listed=int(n_listed),
        n_found=n_found,
        n_missing=data.n_missing,
        n_unreadable=data.n_unreadable,
        n_excluded=data.n_excluded,
        n_rows=data.n_rows,
        n_patients=(
            None if layout in _NO_PATIENTS else len(set(data.patient_ids.tolist()))
        ),
        n_studies=None if layout in _NO_PATIENTS else len(set(data.study_ids.tolist())),
        views=_counts(data.views),
        sex=_counts(data.sex),
        age=_age(data.age),
        findings=findings,
        split=_counts(data.split),
        notes=notes,
    )


_KIND = re.compile(r"_(bacteria|virus)_", re.IGNORECASE)


def _describe_kermany(root, loader, options, caught):
    data = loader(root, return_X_y=False, **options)
    pneumonia = data.target == "PNEUMONIA"
    kinds = np.array(
        [
            (m.group(1).lower() if (m := _KIND.search(os.path.basename(p))) else "")
            for p in data.paths.tolist()
        ]
    )
    n = len(data.paths)
    findings = [("Pneumonia", int(pneumonia.sum()), int(n - pneumonia.sum()), 0)]
    for kind, name in (
        ("bacteria", "Bacterial pneumonia"),
        ("virus", "Viral pneumonia"),
    ):
        positive = int(((kinds == kind) & pneumonia).sum())
        unknown = int((pneumonia & (kinds == "")).sum())
        findings.append((name, positive, n - positive - unknown, unknown))
    return Bunch(
        layout="kermany",
        dataset="Kermany et al. 2018",
        root=str(_kermany_root(root)),
        n_listed=n,
        n_found=n,
        n_missing=0,
        n_unreadable=0,
        n_excluded=0,
        n_rows=None,
        n_patients=len(set(data.patient_ids.tolist())),
        n_studies=None,
        views=None,
        sex=None,
        age=None,
        findings=findings,
        split=_counts(data.split),
        notes=list(dict.fromkeys(str(w.message) for w in caught)),
    )


def _join(counts, limit=8):
    """``"a 3, b 2, ..."`` of a value -> count dict (the ``limit`` largest)."""
    items = [f"{k} {v:,}" for k, v in list(counts.items())[:limit]]
    rest = len(counts) - limit
    if rest > 0:
        items.append(f"{rest} more: {sum(list(counts.values())[limit:]):,}")
    return ", ".join(items)


def _years(value):
    return f"{value:.0f}" if value == round(value) else f"{value:.1f}"


def format_description(summary):
    """The text of a :func:`describe_dataset` summary (about 20-35 lines).

    Parameters
    ----------
    summary : :class:`~sklearn.utils.Bunch`
        As :func:`describe_dataset` returns it.

    Returns
    -------
    text : str

    Examples
    --------
    >>> from skcxr.datasets import describe_dataset, format_description
    >>> from skcxr.datasets._sample import SAMPLE_ROOT
    >>> text = format_description(describe_dataset(SAMPLE_ROOT, "kermany"))
    >>> print(text.splitlines()[1])
      images          16 found
    >>> print(text.splitlines()[-1])
        Viral pneumonia             0        16         0
    """
    s = summary
    lines = [f"{s.dataset} (layout {s.layout}) in {s.root}"]
    if s.n_rows is None:
        images = f"{s.n_found:,} found"
    else:
        images = (
            f"{s.n_listed:,} listed, {s.n_found:,} found, {s.n_missing:,} missing, "
            f"{s.n_unreadable:,} unreadable"
        )
        if s.n_excluded:
            images += f", {s.n_excluded:,} excluded"
    lines.append(f"  {'images':<16}{images}")
    if s.n_rows is not None and s.n_rows != s.n_listed:
        lines.append(f"  {'label rows':<16}{s.n_rows:,}")
    if s.n_patients is None:
        lines.append(f"  {'patients':<16}not published (each image is its own)")
    else:
        people = f"{s.n_patients:,}"
        if s.n_studies is not None:
            people += f", studies {s.n_studies:,}"
        lines.append(f"  {'patients':<16}{people}")
    split = "none (no official split)" if s.split is None else _join(s.split)
    lines.append(f"  {'official split':<16}{split}")
    if s.views is not None:
        lines.append(f"  {'views':<16}{_join(s.views)}")
    if s.sex is not None:
        lines.append(f"  {'sex':<16}{_join(s.sex)}")
    if s.age is not None:
        unknown = s.n_found - s.age.n_known
        if s.age.n_known:
            age = (
                f"median {_years(s.age.median)}, range {_years(s.age.min)}-"
                f"{_years(s.age.max)} ({s.age.n_known:,} known, {unknown:,} unknown)"
            )
        else:
            age = f"unknown for all {s.n_found:,}"
        lines.append(f"  {'age (years)':<16}{age}")
    width = max([len(name) for name, *_ in s.findings] + [10])
    lines.append(
        f"  {'findings':<{width + 2}}{'positive':>10}{'negative':>10}{'unknown':>10}"
    )
    for name, pos, neg, unk in s.findings:
        lines.append(f"    {name:<{width}}{pos:>10,}{neg:>10,}{unk:>10,}")
    for note in s.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
