"""Paths and labels of the real data sets' layouts (Kermany, NIH ChestX-ray14)."""

import csv as _csv
import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_kermany", "load_chestxray14", "CHESTXRAY14_FINDINGS"]

_SPLITS = ("train", "val", "test")
_KERMANY_CLASSES = ("NORMAL", "PNEUMONIA")
_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_PNEUMONIA_KIND = re.compile(r"_(bacteria|virus)_", re.IGNORECASE)

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
_NO_FINDING = "No Finding"


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


def load_kermany(root, *, split=None, labels="binary", return_split=False):
    """File paths and labels of the Kermany pediatric pneumonia layout.

    The layout is ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``.
    Three-class labels come from the file names of the pneumonia images
    (``person1946_bacteria_4875.jpeg``, ``person1_virus_6.jpeg``).

    Parameters
    ----------
    root : str or os.PathLike
        The ``chest_xray`` folder or the folder that contains it.
    split : {"train", "val", "test"}, list of them, or None, default=None
        Splits to list; None lists every split present.
    labels : {"binary", "three_class"}, default="binary"
        ``"binary"``: ``"NORMAL"`` / ``"PNEUMONIA"`` (the folder names);
        ``"three_class"``: ``"normal"`` / ``"bacteria"`` / ``"virus"``.
    return_split : bool, default=False
        Also return the split of every file.

    Returns
    -------
    paths : ndarray of shape (n_files,) of str
        Sorted by split (train, val, test), class folder, file name.
    y : ndarray of shape (n_files,) of str
    splits : ndarray of shape (n_files,) of str
        Only with ``return_split=True``.

    Raises
    ------
    ValueError
        When the layout is missing, a requested split or class folder is
        missing, no image is found, or (three-class) a pneumonia file name says
        neither ``bacteria`` nor ``virus``.

    Examples
    --------
    >>> from skcxr.datasets import load_kermany
    >>> from skcxr.datasets._sample import SAMPLE_ROOT
    >>> paths, y = load_kermany(SAMPLE_ROOT, labels="three_class")
    >>> len(paths), sorted(set(y.tolist()))
    (16, ['bacteria', 'normal'])
    """
    if labels not in ("binary", "three_class"):
        raise ValueError(f"labels must be 'binary' or 'three_class', got {labels!r}.")
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
                if labels == "binary":
                    label = cls
                elif cls == "NORMAL":
                    label = "normal"
                else:
                    match = _PNEUMONIA_KIND.search(os.path.basename(path))
                    if match is None:
                        raise ValueError(
                            "Cannot tell bacteria from virus in the file name "
                            f"{path!r}: "
                            "expected a name like person1_bacteria_1.jpeg or "
                            "person1_virus_6.jpeg (or use labels='binary')."
                        )
                    label = match.group(1).lower()
                paths.append(path)
                y.append(label)
                split_of.append(s)
    if not paths:
        raise ValueError(
            f"No image (.jpeg, .jpg, .png) found under {str(base)!r} for "
            f"split(s) {splits}."
        )
    out = (np.asarray(paths, dtype=str), np.asarray(y, dtype=str))
    if return_split:
        out += (np.asarray(split_of, dtype=str),)
    return out


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


def load_chestxray14(
    root, csv=None, *, classes=None, on_missing="raise", as_frame=False
):
    """File paths, multi-finding labels and patient ids of NIH ChestX-ray14.

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
    classes : sequence of str, default=None
        Finding names, in the column order of ``labels``. Default: the 14
        findings of the data set, sorted (:data:`CHESTXRAY14_FINDINGS`).
    on_missing : {"raise", "skip"}, default="raise"
        A CSV row whose image file is not under ``root``: raise a ValueError,
        or leave the row out (for a partial download).
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of the CSV rows kept (needs pandas).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths`` (n,) str; ``findings`` list of lists of finding names (empty
        for "No Finding"); ``labels`` (n, n_classes) int binary matrix, ready for
        multi-label estimators; ``classes`` (n_classes,) str; ``patient_ids`` (n,)
        int, the groups of :class:`~sklearn.model_selection.GroupKFold` so a
        patient's follow-up images stay on one side; ``metadata`` dict of CSV
        column -> (n,) str array; ``frame`` DataFrame or None.

    Raises
    ------
    ValueError
        On a missing CSV or column, a missing image (``on_missing="raise"``), or a
        finding not in ``classes``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skcxr.datasets import load_chestxray14
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "Data_Entry_2017.csv").write_text(
    ...     "Image Index,Finding Labels,Follow-up #,Patient ID\\n"
    ...     "00000001_000.png,Cardiomegaly|Effusion,0,1\\n"
    ...     "00000002_000.png,No Finding,0,2\\n")
    >>> for name in ("00000001_000.png", "00000002_000.png"):
    ...     _ = (root / name).write_bytes(b"")
    >>> data = load_chestxray14(root, classes=["Cardiomegaly", "Effusion"])
    >>> data.labels, data.findings, data.patient_ids
    (array([[1, 1],
           [0, 0]]), [['Cardiomegaly', 'Effusion'], []], array([1, 2]))
    """
    if on_missing not in ("raise", "skip"):
        raise ValueError(f"on_missing must be 'raise' or 'skip', got {on_missing!r}.")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    csv_path = _find_csv(root) if csv is None else Path(csv)
    if not csv_path.is_file():
        raise ValueError(f"csv={str(csv_path)!r} is not a file.")
    classes = list(CHESTXRAY14_FINDINGS if classes is None else classes)
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
        found = [f for f in found if f != _NO_FINDING]
        for f in found:
            if f not in column:
                raise ValueError(
                    f"Finding {f!r} of {name!r} is not in classes={classes}; pass "
                    "classes=... with every finding name."
                )
        paths.append(path)
        findings.append(found)
        pids.append(int(row[i_pid]))
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

    labels = np.zeros((len(paths), len(classes)), dtype=int)
    for i, found in enumerate(findings):
        labels[i, [column[f] for f in found]] = 1
    metadata = {
        name: np.asarray(
            [row[j].strip() if j < len(row) else "" for row in kept_rows], dtype=str
        )
        for j, name in enumerate(header)
        if name
    }
    frame = None
    if as_frame:
        import pandas as pd

        frame = pd.DataFrame(metadata)
        frame.insert(0, "path", paths)
    return Bunch(
        paths=np.asarray(paths, dtype=str),
        findings=findings,
        labels=labels,
        classes=np.asarray(classes, dtype=str),
        patient_ids=np.asarray(pids, dtype=int),
        metadata=metadata,
        frame=frame,
    )
