"""Paths, labels, patient ids and official splits of the real data sets' layouts.

Two public chest X-ray collections:

- Kermany et al. 2018 (Cell), pediatric pneumonia: folders
  ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/``, the split being the
  folder; the patient is encoded in the file name.
- Wang et al. 2017 (CVPR), NIH ChestX-ray14: ``Data_Entry_2017.csv`` with the
  findings and patient of every PNG image, and the official patient-wise split
  in ``train_val_list.txt`` / ``test_list.txt``.
"""

import csv as _csv
import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import StrOptions, validate_params

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


def _check_classes(classes):
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError("classes must name at least one finding, got [].")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat a finding, got {classes}.")
    if CHESTXRAY14_NO_FINDING in classes:
        raise ValueError(
            f"classes must not contain {CHESTXRAY14_NO_FINDING!r}: an image without "
            "finding has an all-zero row of labels (and, with single_label='drop', "
            f"the target {CHESTXRAY14_NO_FINDING!r})."
        )
    return classes


@validate_params(
    {
        "root": [str, os.PathLike],
        "csv": [str, os.PathLike, None],
        "classes": ["array-like", None],
        "on_missing": [StrOptions({"raise", "skip"})],
        "single_label": [StrOptions({"drop"}), None],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_chestxray14(
    root,
    csv=None,
    *,
    classes=None,
    on_missing="raise",
    single_label=None,
    as_frame=False,
):
    """File paths, findings, patient ids and official split of NIH ChestX-ray14.

    The data set of Wang et al. 2017: 112,120 frontal radiographs of 30,805
    patients, each with any of 14 findings mined from the reports, or
    ``"No Finding"``.

    Parameters
    ----------
    root : str or os.PathLike
        Folder holding the PNG images, directly or in ``images/`` or in the
        release's ``images_001/images/`` ... ``images_012/images/`` folders.
    csv : str or os.PathLike, default=None
        The metadata file; by default ``root/Data_Entry_2017.csv`` (or
        ``Data_Entry_2017_v2020.csv``). Columns used: ``"Image Index"``,
        ``"Finding Labels"`` (findings separated by ``|``, ``"No Finding"`` for
        none) and ``"Patient ID"``; every column is kept in ``metadata``.
    classes : array-like of str, default=None
        Findings that get a column of ``labels``, in that order. Default: the 14
        findings of the data set, sorted (:data:`CHESTXRAY14_FINDINGS`). Other
        findings of an image stay in ``findings``.
    on_missing : {"raise", "skip"}, default="raise"
        A CSV row whose image file is not under ``root``: raise a ValueError,
        or leave the row out (for a partial download).
    single_label : {"drop"} or None, default=None
        ``"drop"`` keeps only the images that fit a single-label task and adds
        their ``target``: an image without finding is
        :data:`CHESTXRAY14_NO_FINDING`, an image whose only finding is in
        ``classes`` is that finding, and every other image (several findings,
        or one outside ``classes``) is left out of every returned array. So
        ``classes=["Atelectasis", "Effusion", "Infiltration"]`` gives a
        four-class problem with ``"No Finding"``.
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of the CSV rows kept and
        their ``path`` (needs pandas: ``pip install pandas``).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths`` (n,) str; ``findings`` list of lists of every finding name
        (empty for "No Finding"); ``labels`` (n, n_classes) int binary matrix,
        ready for multi-label estimators; ``classes`` (n_classes,) str;
        ``patient_ids`` (n,) int, the groups of
        :class:`~sklearn.model_selection.GroupKFold` so a patient's follow-up
        images stay on one side; ``split`` (n,) str or None: the official
        patient-wise split, ``"train"`` for images in ``train_val_list.txt``,
        ``"test"`` for ``test_list.txt``, ``"unassigned"`` for images in neither
        (the lists are searched beside the CSV, then in ``root``; None when
        neither list exists); ``target`` (n,) str and ``target_names``
        (sorted labels present) with ``single_label="drop"``, else None;
        ``metadata`` dict of CSV column -> (n,) str array; ``frame`` DataFrame
        or None.

    Raises
    ------
    ValueError
        On a missing CSV or column, a missing image (``on_missing="raise"``), an
        image in both official lists, repeated ``classes``, or no image left.
    ImportError
        With ``as_frame=True`` when pandas is not installed.

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
    (array([1, 1, 0]), array([1, 1, 2]))
    >>> data.findings
    [['Cardiomegaly', 'Effusion'], ['Effusion'], []]
    >>> data.split
    array(['unassigned', 'unassigned', 'test'], dtype='<U10')
    >>> load_chestxray14(root, classes=["Effusion"], single_label="drop").target
    array(['Effusion', 'No Finding'], dtype='<U10')
    """
    frame_module = _import_pandas() if as_frame else None
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    csv_path = _find_csv(root) if csv is None else Path(csv)
    if not csv_path.is_file():
        raise ValueError(f"csv={str(csv_path)!r} is not a file.")
    classes = _check_classes(CHESTXRAY14_FINDINGS if classes is None else classes)
    column = {name: j for j, name in enumerate(classes)}

    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = _csv.reader(fh)
        header = _split_bracket_columns([h.strip() for h in next(reader, [])])
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    needed = ("Image Index", "Finding Labels", "Patient ID")
    missing_cols = [c for c in needed if c not in header]
    if missing_cols:
        raise ValueError(
            f"{str(csv_path)!r} lacks the column(s) {missing_cols}; header: {header}."
        )
    i_img, i_find, i_pid = (header.index(c) for c in needed)

    index = _index_images(root)
    paths, findings, pids, kept_rows, not_found = [], [], [], [], []
    for row in rows:
        name = row[i_img].strip()
        path = index.get(name)
        if path is None:
            not_found.append(name)
            continue
        found = [f.strip() for f in row[i_find].split("|") if f.strip()]
        try:
            pid = int(row[i_pid])
        except ValueError:
            raise ValueError(
                f"Patient ID {row[i_pid]!r} of {name!r} in {str(csv_path)!r} is not "
                "an integer."
            ) from None
        paths.append(path)
        findings.append([f for f in found if f != CHESTXRAY14_NO_FINDING])
        pids.append(pid)
        kept_rows.append(row)
    if not_found and on_missing == "raise":
        raise ValueError(
            f"{len(not_found)} image(s) listed in {str(csv_path)!r} are not under "
            f"{str(root)!r} (e.g. {not_found[:3]}); pass on_missing='skip' to use the "
            "images present."
        )
    if not paths:
        raise ValueError(
            f"None of the images listed in {str(csv_path)!r} is under {str(root)!r}."
        )

    names = [row[i_img].strip() for row in kept_rows]
    folders = list(dict.fromkeys([csv_path.parent, root]))
    split = _official_split(names, folders)
    target = None
    if single_label == "drop":
        keep, target = _single_label_keep(findings, column)
        if not keep.any():
            raise ValueError(
                f"No image of {str(csv_path)!r} has no finding or a single finding "
                f"among classes={classes}."
            )
        paths = [p for p, k in zip(paths, keep) if k]
        findings = [f for f, k in zip(findings, keep) if k]
        pids = [p for p, k in zip(pids, keep) if k]
        kept_rows = [r for r, k in zip(kept_rows, keep) if k]
        split = None if split is None else split[keep]

    labels = np.zeros((len(paths), len(classes)), dtype=int)
    for i, found in enumerate(findings):
        labels[i, [column[f] for f in found if f in column]] = 1
    metadata = {
        name: np.asarray(
            [row[j].strip() if j < len(row) else "" for row in kept_rows], dtype=str
        )
        for j, name in enumerate(header)
        if name
    }
    frame = None
    if frame_module is not None:
        frame = frame_module.DataFrame(metadata)
        frame.insert(0, "path", paths)
    return Bunch(
        paths=np.asarray(paths, dtype=str),
        findings=findings,
        labels=labels,
        classes=np.asarray(classes, dtype=str),
        patient_ids=np.asarray(pids, dtype=int),
        split=split,
        target=target,
        target_names=None if target is None else np.unique(target),
        metadata=metadata,
        frame=frame,
    )


def _import_pandas():
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            "as_frame=True needs pandas: pip install pandas (or pip install "
            "'skcxr[pandas]')."
        ) from exc
    return pandas
