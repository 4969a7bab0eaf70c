"""Paths, labels, patient ids and official splits of the real data sets' layouts.

Two public chest X-ray collections:

- Kermany et al. 2018 (Cell), pediatric pneumonia: folders
  ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/``, the split being the
  folder; the patient is encoded in the file name.
- Wang et al. 2017 (CVPR), NIH ChestX-ray14: ``Data_Entry_2017.csv`` with the
  findings and patient of every PNG image, and the official patient-wise split
  in ``train_val_list.txt`` / ``test_list.txt``; or the expert labels of four
  findings of Majkowska et al. 2020 (``labels="google2019"``).
"""

import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import StrOptions, validate_params

from ._common import (
    age_years,
    check_missing,
    finding_labels,
    import_pandas,
    make_bunch,
    map_values,
    sex_name,
    source_name,
    take,
    to_frame,
    view_name,
    views_keep,
    warn_unreadable,
)
from ._google2019 import COMBINED, RELEASE, expert_findings, find_files
from ._google2019 import read as read_expert
from ._labels import resolve_classes, source_labels
from ._table import gc_paused, read_table

__all__ = [
    "load_kermany",
    "load_chestxray14",
    "kermany_patient_id",
    "CHESTXRAY14_FINDINGS",
    "CHESTXRAY14_NO_FINDING",
]

_SPLITS = ("train", "val", "test")
_KERMANY_CLASSES = ("NORMAL", "PNEUMONIA")
_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".dcm")
_PNEUMONIA_KIND = re.compile(r"_(bacteria|virus)_", re.IGNORECASE)
_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_IM = re.compile(r"(?:^|-)(IM-\d+)(?:-\d+)+$", re.IGNORECASE)

#: The 14 findings of NIH ChestX-ray14, sorted (the column order of ``labels``).
CHESTXRAY14_FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
#: The ChestX-ray14 label of an image without any finding (the healthy class).
CHESTXRAY14_NO_FINDING = "No Finding"
_NIH_LISTS = {"train": "train_val_list.txt", "test": "test_list.txt"}
_NIH_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")
_NIH_PER_ROW = ("Image Index", "View Position")
_UNASSIGNED = "unassigned"


@validate_params(
    {"filename": [str, os.PathLike]},
    prefer_skip_nested_validation=True,
)
def kermany_patient_id(filename):
    """Patient id encoded in a Kermany file name.

    Pneumonia images are named ``person{patient}_{bacteria|virus}_{image}``;
    normal images ``IM-{patient}-{image}`` or ``NORMAL2-IM-{patient}-{image}``
    (sometimes with a further ``-{number}``).
    Both normal forms give the same id ``IM-{patient}``: when the two numbering
    series denote different children, their images are grouped together, which
    can only make a patient-grouped split stricter, never leak a patient. A
    name that matches neither form is its own patient (the file stem).

    Parameters
    ----------
    filename : str or os.PathLike
        File name or path (only the last component is used).

    Returns
    -------
    patient_id : str

    Examples
    --------
    >>> from skcxr.datasets import kermany_patient_id
    >>> kermany_patient_id("train/PNEUMONIA/person1_bacteria_1.jpeg")
    'person1'
    >>> kermany_patient_id("IM-0115-0001.jpeg"), kermany_patient_id(
    ...     "NORMAL2-IM-0381-0001.jpeg")
    ('IM-0115', 'IM-0381')
    >>> kermany_patient_id("scan_17.png")
    'scan_17'
    """
    stem = Path(os.fspath(filename)).stem
    match = _PERSON.match(stem)
    if match is not None:
        return match.group(1).lower()
    match = _IM.search(stem)
    if match is not None:
        return match.group(1).upper()
    return stem


def _kermany_root(root):
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    for candidate in (root, root / "chest_xray", root / "chest_xray" / "chest_xray"):
        if any((candidate / split).is_dir() for split in _SPLITS):
            return candidate
    raise ValueError(
        f"No Kermany layout under root={str(root)!r}: expected "
        "chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg (root may be the "
        "chest_xray folder or its parent)."
    )


def _image_files(folder):
    return sorted(
        entry.path
        for entry in os.scandir(folder)
        if entry.is_file()
        and not entry.name.startswith(".")
        and entry.name.lower().endswith(_IMAGE_SUFFIXES)
    )


@validate_params(
    {
        "root": [str, os.PathLike],
        "split": [StrOptions(set(_SPLITS)), list, tuple, None],
        "labels": [StrOptions({"binary", "three_class"})],
        "return_split": ["boolean"],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_kermany(
    root, *, split=None, labels="binary", return_split=False, return_X_y=True
):
    """File paths, labels, patient ids and official split of Kermany et al. 2018.

    The layout is ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``
    (pediatric pneumonia, Kermany et al. 2018). Three-class labels come from
    the file names of the pneumonia images (``person1946_bacteria_4875.jpeg``,
    ``person1_virus_6.jpeg``); patient ids from every file name (see
    :func:`kermany_patient_id`).

    Parameters
    ----------
    root : str or os.PathLike
        The ``chest_xray`` folder or the folder that contains it.
    split : {"train", "val", "test"}, list of them, or None, default=None
        Official splits to list; None lists every split present.
    labels : {"binary", "three_class"}, default="binary"
        ``"binary"``: ``"NORMAL"`` / ``"PNEUMONIA"`` (the folder names);
        ``"three_class"``: ``"normal"`` / ``"bacteria"`` / ``"virus"``.
    return_split : bool, default=False
        With ``return_X_y=True``, also return the split of every file.
    return_X_y : bool, default=True
        Return ``(paths, y)`` (or ``(paths, y, splits)``); with False, a
        :class:`~sklearn.utils.Bunch` that also holds the patient ids.

    Returns
    -------
    paths : ndarray of shape (n_files,) of str
        Sorted by split (train, val, test), class folder, file name.
    y : ndarray of shape (n_files,) of str
    splits : ndarray of shape (n_files,) of str
        Only with ``return_split=True``.
    data : :class:`~sklearn.utils.Bunch`
        Only with ``return_X_y=False`` (then ``return_split`` is ignored):
        ``paths`` (n,) str; ``target`` (n,) str; ``split`` (n,) str, the
        official folder (``"train"``, ``"val"`` or ``"test"``); ``patient_ids``
        (n,) str, the groups of :class:`~sklearn.model_selection.GroupKFold`;
        ``target_names`` the sorted labels present.

    Raises
    ------
    ValueError
        When the layout is missing, a requested split or class folder is
        missing, no image is found, or (three-class) a pneumonia file name says
        neither ``bacteria`` nor ``virus``.

    See Also
    --------
    kermany_patient_id : Patient id of one file name.

    Examples
    --------
    >>> from skcxr.datasets import load_kermany
    >>> from skcxr.datasets._sample import SAMPLE_ROOT
    >>> paths, y = load_kermany(SAMPLE_ROOT, labels="three_class")
    >>> len(paths), sorted(set(y.tolist()))
    (16, ['bacteria', 'normal'])
    >>> data = load_kermany(SAMPLE_ROOT, return_X_y=False)
    >>> data.target_names.tolist(), sorted(set(data.split.tolist()))
    (['NORMAL', 'PNEUMONIA'], ['val'])
    >>> data.patient_ids[-8:-5].tolist()
    ['person1946', 'person1946', 'person1947']
    """
    base = _kermany_root(root)
    if split is None:
        splits = [s for s in _SPLITS if (base / s).is_dir()]
    else:
        splits = [split] if isinstance(split, str) else list(split)
        for s in splits:
            if s not in _SPLITS:
                raise ValueError(
                    f"split must be one of {_SPLITS} or a list of them, got {s!r}."
                )
            if not (base / s).is_dir():
                raise ValueError(f"split {s!r} not found: no folder {str(base / s)!r}.")
    paths, y, split_of = [], [], []
    for s in splits:
        present = [c for c in _KERMANY_CLASSES if (base / s / c).is_dir()]
        if not present:
            raise ValueError(
                f"{str(base / s)!r} has neither a NORMAL nor a PNEUMONIA folder."
            )
        for cls in present:
            for path in _image_files(base / s / cls):
                paths.append(path)
                y.append(_kermany_label(path, cls, labels))
                split_of.append(s)
    if not paths:
        raise ValueError(
            f"No image (.jpeg, .jpg, .png, .dcm) found under {str(base)!r} for "
            f"split(s) {splits}."
        )
    paths = np.asarray(paths, dtype=str)
    y = np.asarray(y, dtype=str)
    split_of = np.asarray(split_of, dtype=str)
    if not return_X_y:
        return Bunch(
            paths=paths,
            target=y,
            split=split_of,
            patient_ids=np.asarray([kermany_patient_id(p) for p in paths], dtype=str),
            target_names=np.unique(y),
        )
    return (paths, y, split_of) if return_split else (paths, y)


def _kermany_label(path, cls, labels):
    if labels == "binary":
        return cls
    if cls == "NORMAL":
        return "normal"
    match = _PNEUMONIA_KIND.search(os.path.basename(path))
    if match is None:
        raise ValueError(
            f"Cannot tell bacteria from virus in the file name {path!r}: "
            "expected a name like person1_bacteria_1.jpeg or "
            "person1_virus_6.jpeg (or use labels='binary')."
        )
    return match.group(1).lower()


def _find_csv(root):
    for name in ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"):
        if (root / name).is_file():
            return root / name
    raise ValueError(
        f"No Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv) in {str(root)!r}; "
        "pass csv=path."
    )


def _index_images(root):
    """Map file name -> path over root, root/images and root/images_*/images."""
    folders = [root, root / "images"]
    folders += sorted(p / "images" for p in root.glob("images_*") if p.is_dir())
    folders += sorted(p for p in root.glob("images_*") if p.is_dir())
    index = {}
    for folder in folders:
        if folder.is_dir():
            for entry in os.scandir(folder):
                if entry.is_file() and entry.name.lower().endswith(_IMAGE_SUFFIXES):
                    index.setdefault(entry.name, entry.path)
    return index


def _split_bracket_columns(header):
    """Name NIH's 2-field "OriginalImage[Width,Height]" "...[Width]", "...[Height]"."""
    out, prefix = [], None
    for name in header:
        if prefix is None and "[" in name and "]" not in name:
            prefix, _, first = name.partition("[")
            out.append(f"{prefix}[{first}]")
        elif prefix is not None:
            last = name.endswith("]")
            out.append(f"{prefix}[{name.rstrip(']')}]")
            prefix = None if last else prefix
        else:
            out.append(name)
    return out


def _official_split(names, folders):
    """NIH's split of ``names`` from the list files in ``folders``; None if absent."""
    found = {}
    for side, list_name in _NIH_LISTS.items():
        for folder in folders:
            if (folder / list_name).is_file():
                found[side] = folder / list_name
                break
    if not found:
        return None
    members = {}
    for side, path in found.items():
        with open(path, encoding="utf-8-sig") as fh:
            members[side] = {line.strip() for line in fh if line.strip()}
    both = members.get("train", set()) & members.get("test", set())
    if both:
        raise ValueError(
            f"{len(both)} image(s) are in both {str(found['train'])!r} and "
            f"{str(found['test'])!r} (e.g. {sorted(both)[:3]}); an image belongs to "
            "one side of the official split."
        )
    side_of = {name: side for side in members for name in members[side]}
    return np.asarray([side_of.get(n, _UNASSIGNED) for n in names], dtype="<U10")


def _single_label_keep(findings, column):
    """Row mask and target of the single-label (drop) form."""
    keep, target = [], []
    for found in findings:
        if not found:
            keep.append(True)
            target.append(CHESTXRAY14_NO_FINDING)
        elif len(found) == 1 and found[0] in column:
            keep.append(True)
            target.append(found[0])
        else:
            keep.append(False)
    return np.asarray(keep, dtype=bool), np.asarray(target, dtype=str)


def _check_classes(classes, labels):
    dataset = "chestxray14" if labels == "nih" else "nih_google2019"
    if classes is not None and CHESTXRAY14_NO_FINDING in [str(c) for c in classes]:
        raise ValueError(
            f"classes must not contain {CHESTXRAY14_NO_FINDING!r}: an image without "
            "finding has an all-zero row of labels (and, with single_label='drop', "
            f"the target {CHESTXRAY14_NO_FINDING!r})."
        )
    return resolve_classes(classes, dataset)


def _nih_findings(table, header):
    """Per row: the findings of ``Finding Labels`` ("No Finding" is none)."""
    column = header.index("Finding Labels")
    return [
        [f for f in (x.strip() for x in cell.split("|")) if f and f != "No Finding"]
        for cell in table[:, column].tolist()
    ]


def _nih_patient(name, cell):
    """Patient id of a row: the ``Patient ID`` cell, else the image name's digits."""
    text = (cell if cell is not None else name.split("_", 1)[0]).strip()
    return int(text) if text.isdigit() else None


@validate_params(
    {
        "root": [str, os.PathLike],
        "csv": [str, os.PathLike, None],
        "labels": [StrOptions({"nih", "google2019"})],
        "classes": ["array-like", None],
        "views": [str, "array-like", None],
        "on_missing": [StrOptions({"raise", "skip"})],
        "single_label": [StrOptions({"drop"}), None],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
@gc_paused()  # row lists hold no cycles: no collection while they are built
def load_chestxray14(
    root,
    csv=None,
    *,
    labels="nih",
    classes=None,
    views=None,
    on_missing="raise",
    single_label=None,
    as_frame=False,
):
    """File paths, findings, patient ids and official split of NIH ChestX-ray14.

    The data set of Wang et al. 2017: 112,120 frontal radiographs of 30,805
    patients of the NIH Clinical Center, each with any of 14 findings mined
    from the reports, or ``"No Finding"``. With ``labels="google2019"``, the
    4,376 images that a panel of radiologists labelled for four findings
    instead (Majkowska et al. 2020).

    Download the images and ``Data_Entry_2017.csv`` from
    https://nihcc.app.box.com/v/ChestXray-NIHCC (no restriction of use; cite
    Wang et al. 2017, link the site and acknowledge the NIH Clinical Center
    as the provider). Google's expert labels are distributed with the images
    on Google Cloud (https://cloud.google.com/healthcare-api/docs/resources/public-datasets/nih-chest).
    Expected layout::

        root/Data_Entry_2017.csv
        root/train_val_list.txt, root/test_list.txt     (the official split)
        root/images_001/images/00000001_000.png ... images_012/images/...

    (or every PNG in ``root`` or ``root/images``).

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding the PNG images, directly or in ``images/`` or in the
        release's ``images_001/images/`` ... ``images_012/images/`` folders.
    csv : str or os.PathLike, default=None
        The label file. With ``labels="nih"``, by default
        ``root/Data_Entry_2017.csv`` (or ``Data_Entry_2017_v2020.csv``).
        Columns used: ``"Image Index"``, ``"Finding Labels"`` (findings
        separated by ``|``, ``"No Finding"`` for none), ``"Patient ID"``,
        ``"Follow-up #"``, ``"View Position"``, ``"Patient Gender"`` (or
        ``"Patient Sex"``) and ``"Patient Age"``; every column is kept in
        ``metadata``. With ``labels="google2019"``, by default the
        ``four_findings_expert_labels_test_labels.csv`` and
        ``..._validation_labels.csv`` of Google's release (or one file with a
        ``Set Id`` column), looked for in ``root``.
    labels : {"nih", "google2019"}, default="nih"
        The report-mined labels of Wang et al. 2017, or the expert labels of
        Majkowska et al. 2020 (``Fracture``, ``Pneumothorax``, ``Airspace
        opacity`` -> "Lung Opacity", ``Nodule or mass`` -> "Nodule/Mass"; a
        cell neither ``YES`` nor ``NO`` is unknown).
    classes : array-like of str, default=None
        Common finding names (:data:`~skcxr.datasets.LABEL_TABLE`) that get a
        column of ``labels``, in that order; one the labels do not cover is
        NaN. Default: the 14 findings of the data set, sorted
        (:data:`CHESTXRAY14_FINDINGS`), or the four expert findings. Other
        findings of an image stay in ``findings``.
    views : str or list of str, default=None
        Keep only these ``View Position`` values (``"PA"``, ``"AP"``); None
        keeps every image.
    on_missing : {"raise", "skip"}, default="raise"
        A CSV row whose image file is not under ``root``: raise a ValueError
        naming the first and how many, or leave those rows out with one
        warning (for a partial download).
    single_label : {"drop"} or None, default=None
        ``"drop"`` keeps only the images that fit a single-label task and adds
        their ``target``: an image without finding is
        :data:`CHESTXRAY14_NO_FINDING`, an image whose only finding is in
        ``classes`` is that finding, and every other image (several findings,
        or one outside ``classes``) is left out of every returned array. So
        ``classes=["Atelectasis", "Effusion", "Infiltration"]`` gives a
        four-class problem with ``"No Finding"``. Only with ``labels="nih"``.
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of one row per image (needs
        pandas: ``pip install pandas``).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths`` (n,) str; ``findings`` list of lists of every finding name
        (empty for "No Finding"; the expert-positive ones with
        ``"google2019"``); ``labels`` (n, n_classes) float, 1 or 0 (NaN for a
        finding the labels do not cover), ready for multi-label estimators;
        ``classes`` (n_classes,) str; ``patient_ids`` (n,) int, the groups of
        :class:`~sklearn.model_selection.GroupKFold` so a patient's follow-up
        images stay on one side; ``study_ids`` (n,) str, the image name
        without ``.png`` (patient and follow-up number); ``split`` (n,) str
        or None: the official patient-wise split, ``"train"`` for images in
        ``train_val_list.txt``, ``"test"`` for ``test_list.txt``,
        ``"unassigned"`` for images in neither (the lists are searched beside
        the CSV, then in ``root``; None when neither list exists); with
        ``"google2019"``, ``"val"`` or ``"test"`` of the expert sets;
        ``views`` (n,) str; ``sex`` (n,) str ``"M"``, ``"F"`` or
        ``"unknown"``; ``age`` (n,) float years; ``target`` (n,) str and
        ``target_names`` (sorted labels present) with
        ``single_label="drop"``, else None; ``metadata`` dict of CSV column
        -> (n,) object array of str; ``frame`` DataFrame or None;
        ``dataset`` ``"chestxray14"`` or ``"nih_google2019"``; the counts
        ``n_rows``, ``n_unreadable`` (rows left out with a warning: wrong
        width or no patient id), ``n_excluded`` (by ``views`` and
        ``single_label``) and ``n_missing``.

    Raises
    ------
    ValueError
        On a missing CSV or column, a missing image (``on_missing="raise"``), an
        image in both official lists, repeated or unknown ``classes`` (with a
        "did you mean"), or no image left.
    ImportError
        With ``as_frame=True`` when pandas is not installed.

    References
    ----------
    .. [1] Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM. ChestX-ray8:
       Hospital-scale chest X-ray database and benchmarks on
       weakly-supervised classification and localization of common thorax
       diseases. CVPR 2017.
    .. [2] Majkowska A, Mittal S, Steiner DF, et al. Chest radiograph
       interpretation with deep learning models: assessment with
       radiologist-adjudicated reference standards and population-adjusted
       evaluation. Radiology 294(2), 421-431 (2020).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skcxr.datasets import load_chestxray14
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "Data_Entry_2017.csv").write_text(
    ...     "Image Index,Finding Labels,Follow-up #,Patient ID\\n"
    ...     "00000001_000.png,Cardiomegaly|Effusion,0,1\\n"
    ...     "00000001_001.png,Effusion,1,1\\n"
    ...     "00000002_000.png,No Finding,0,2\\n")
    >>> _ = (root / "test_list.txt").write_text("00000002_000.png\\n")
    >>> for name in ("00000001_000.png", "00000001_001.png", "00000002_000.png"):
    ...     _ = (root / name).write_bytes(b"")
    >>> data = load_chestxray14(root, classes=["Effusion"])
    >>> data.labels.ravel(), data.patient_ids
    (array([1., 1., 0.]), array([1, 1, 2]))
    >>> data.findings
    [['Cardiomegaly', 'Effusion'], ['Effusion'], []]
    >>> data.split
    array(['unassigned', 'unassigned', 'test'], dtype='<U10')
    >>> load_chestxray14(root, classes=["Effusion"], single_label="drop").target
    array(['Effusion', 'No Finding'], dtype='<U10')
    >>> load_chestxray14(root, classes=["Effusion", "Lung Opacity"]).labels[0]
    array([ 1., nan])

    Google's expert labels of the same images:

    >>> _ = (root / "four_findings_expert_labels_test_labels.csv").write_text(
    ...     "Image Index,Patient ID,Fracture,Pneumothorax,Airspace opacity,"
    ...     "Nodule or mass\\n"
    ...     "00000001_000.png,1,NO,NO,YES,NO\\n00000002_000.png,2,NO,YES,NO,NO\\n")
    >>> expert = load_chestxray14(root, labels="google2019")
    >>> expert.classes.tolist()
    ['Fracture', 'Lung Opacity', 'Nodule/Mass', 'Pneumothorax']
    >>> expert.labels, expert.split.tolist()
    (array([[0., 1., 0., 0.],
           [0., 0., 0., 1.]]), ['test', 'test'])
    """
    frame_module = import_pandas() if as_frame else None  # fail before reading
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    dataset = "chestxray14" if labels == "nih" else "nih_google2019"
    if single_label is not None and labels != "nih":
        raise ValueError(
            "single_label='drop' needs labels='nih': the expert labels cover four "
            "findings, so an image without them need not be without finding."
        )
    classes = _check_classes(classes, labels)
    if labels == "nih":
        csv_path = _find_csv(root) if csv is None else Path(csv)
        # the columns every row needs; the others are read for the rows kept
        table = read_table(csv_path, required=_NIH_COLUMNS, columns=_NIH_PER_ROW)
        header = _split_bracket_columns(table.header)
        bad, n_rows = table.bad, table.n_rows
        source = source_name(dataset, csv_path)
        expert = None
    else:
        files = [Path(csv)] if csv is not None else find_files([root])
        if not files:
            raise ValueError(
                f"No expert label file ({RELEASE['test']}, {RELEASE['val']} or "
                f"{COMBINED[0]}[.gz]) in root={str(root)!r}; pass csv=path."
            )
        table, expert, source = read_expert(files)
        header, bad, n_rows = table.header, table.bad, table.n_rows
        csv_path = files[0]
    col = {name: j for j, name in enumerate(header)}
    counts = {"n_rows": n_rows, "n_unreadable": len(bad)}
    rows = {"index": np.arange(len(table))}
    if expert is not None:
        rows["split"] = expert
    rows["views"] = _column(table, col, "View Position", view_name)
    keep = views_keep(rows["views"], views, source=source)
    counts["n_excluded"] = int(keep.size - np.count_nonzero(keep))
    if counts["n_excluded"]:
        rows = take(rows, keep)

    names = table.column(col["Image Index"])
    if counts["n_excluded"]:
        names = names[rows["index"]]
    names = [n.strip() for n in names.tolist()]
    index = _index_images(root)
    on_disk = np.fromiter((n in index for n in names), bool, len(names))
    counts["n_missing"] = check_missing(
        on_disk, names, on_missing, source=source, root=root
    )
    if not on_disk.any():
        raise ValueError(
            f"None of the images listed in {str(csv_path)!r} is under {str(root)!r}."
        )
    if counts["n_missing"]:
        rows = take(rows, on_disk)
        names = [n for n, ok in zip(names, on_disk) if ok]

    # the patient of each image kept; a row without one is unreadable
    rows["table"] = table.rows(rows["index"])
    cells = (
        rows["table"][:, col["Patient ID"]].tolist()
        if "Patient ID" in col
        else [None] * len(names)
    )
    pids = [_nih_patient(n, c) for n, c in zip(names, cells)]
    no_pid = np.fromiter((p is None for p in pids), bool, len(pids))
    counts["n_unreadable"] += int(no_pid.sum())
    if bad:
        warn_unreadable(
            counts["n_unreadable"], source, f"data row {bad[0][0]}", "wrong width"
        )
    elif no_pid.any():
        warn_unreadable(
            counts["n_unreadable"],
            source,
            f"image {names[int(np.argmax(no_pid))]!r}",
            "its Patient ID is not an integer",
        )
    rows["names"] = np.asarray(names, dtype=object)
    rows["pids"] = np.asarray([-1 if p is None else p for p in pids], dtype=int)
    if no_pid.any():
        rows = take(rows, ~no_pid)
    sex_col = "Patient Gender" if "Patient Gender" in col else "Patient Sex"
    rows["sex"] = _column(rows["table"], col, sex_col, sex_name)
    rows["age"] = _column(rows["table"], col, "Patient Age", age_years, float)
    table, names = rows["table"], rows["names"].tolist()
    if labels == "nih":
        findings = _nih_findings(table, header)
        folders = list(dict.fromkeys([csv_path.parent, root]))
        split = _official_split(names, folders)
    else:
        findings, unknown = expert_findings(table, header)
        split = rows["split"]

    target = None
    if single_label == "drop":
        keep, target = _single_label_keep(findings, set(classes))
        if not keep.any():
            raise ValueError(
                f"No image of {str(csv_path)!r} has no finding or a single finding "
                f"among classes={classes}."
            )
        counts["n_excluded"] += int(keep.size - np.count_nonzero(keep))
        rows = take(rows, keep)
        table, names = rows["table"], rows["names"].tolist()
        findings = [f for f, k in zip(findings, keep) if k]
        split = None if split is None else split[keep]

    values = finding_labels(findings, classes, dataset)
    if labels != "nih":  # a blank expert cell is unknown, not absent
        own = source_labels(dataset)
        for j, common in enumerate(classes):
            for i, blank in enumerate(unknown):
                if set(own.get(common, ())) & set(blank):
                    values[i, j] = np.nan
    metadata = {
        name: np.asarray([c.strip() for c in table[:, j].tolist()], dtype=object)
        for j, name in enumerate(header)
        if name
    }
    bunch = make_bunch(
        dataset,
        paths=[index[n] for n in names],
        labels=values,
        classes=classes,
        patient_ids=rows["pids"],
        study_ids=[n.rsplit(".", 1)[0] for n in names],
        split=split,
        views=rows["views"],
        sex=rows["sex"],
        age=rows["age"],
        metadata=metadata,
        counts=counts,
        as_frame=False,
        findings=findings,
        target=target,
        target_names=None if target is None else np.unique(target),
    )
    if frame_module is not None:
        bunch.frame = to_frame(bunch)
    return bunch


def _column(table, col, name, fn, dtype=object):
    """``fn`` of a column of a table or cell array, or of blanks when it lacks it."""
    if name not in col:
        values = [""] * len(table)
    elif isinstance(table, np.ndarray):
        values = table[:, col[name]]
    else:
        values = table.column(col[name])
    return map_values(values, fn, dtype)
