"""MIMIC-CXR-JPG (Johnson et al. 2019): Beth Israel Deaconess radiographs."""

import os
from pathlib import Path

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

from ._common import (
    UNCERTAIN,
    UNKNOWN,
    age_years,
    check_missing,
    labeler_codes,
    labeler_labels,
    labeler_unreadable,
    make_bunch,
    map_values,
    present,
    read_csv,
    sex_name,
    source_name,
    take,
    view_name,
    views_keep,
    warn_unreadable,
    year_of,
)
from ._labels import resolve_classes
from ._table import gc_paused, read_table

__all__ = ["load_mimic_cxr"]

_SPLITS = {"train": "train", "validate": "val", "test": "test"}
_IDS = ("subject_id", "study_id")
_PER_ROW = ("dicom_id", *_IDS, "ViewPosition")
_SPLIT_COLUMNS = ("dicom_id", "split")


def _find(root, kind, given=None):
    """``mimic-cxr-2.x.x-{kind}.csv[.gz]`` in ``root`` (the newest version)."""
    if given is not None:
        return Path(given)
    found = sorted(root.glob(f"mimic-cxr-2.*-{kind}.csv*"))
    return found[-1] if found else None


@validate_params(
    {
        "root": [str, os.PathLike],
        "labeler": [StrOptions({"chexpert", "negbio"})],
        "uncertain": [StrOptions(set(UNCERTAIN))],
        "views": [str, "array-like", None],
        "split": [StrOptions({"train", "val", "test"}), None],
        "on_missing": [StrOptions({"raise", "skip"})],
        "classes": ["array-like", None],
        "patients": [str, os.PathLike, None],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
@gc_paused()  # row lists hold no cycles: no collection while they are built
def load_mimic_cxr(
    root,
    *,
    labeler="chexpert",
    uncertain="ignore",
    views=None,
    split=None,
    on_missing="raise",
    classes=None,
    patients=None,
    as_frame=False,
):
    """File paths, findings, patients and official split of MIMIC-CXR-JPG.

    MIMIC-CXR (Johnson et al. 2019): 377,110 chest radiographs of 227,835
    studies of 65,379 patients of the Beth Israel Deaconess Medical Center
    (Boston), 2011-2016. MIMIC-CXR-JPG 2.x labels every study with the 14
    observations of the CheXpert labeler or of NegBio (Peng et al. 2018)
    mined from its report (1 positive, 0 negative, -1 uncertain, blank not
    mentioned), and gives an official patient-wise split.

    Credentialed access on PhysioNet,
    https://physionet.org/content/mimic-cxr-jpg/ (complete the required
    training and sign the data use agreement; PhysioNet Credentialed Health
    Data License 1.5.0: no redistribution, no re-identification). Expected
    layout (the files of the release, plain or gzipped)::

        root/mimic-cxr-2.0.0-chexpert.csv.gz
        root/mimic-cxr-2.0.0-negbio.csv.gz
        root/mimic-cxr-2.0.0-metadata.csv.gz
        root/mimic-cxr-2.0.0-split.csv.gz
        root/files/p10/p10000032/s50414267/02aa804e-....jpg

    Sex and age are not part of MIMIC-CXR: they come from MIMIC-IV's
    ``patients.csv.gz`` (``gender``, ``anchor_age``, ``anchor_year``) when it
    is given or lies in ``root``; the age at a study is ``anchor_age`` plus
    the years from ``anchor_year`` to the (equally shifted) ``StudyDate``.

    Parameters
    ----------
    root : str or os.PathLike
        The ``mimic-cxr-jpg/2.x.x`` folder: the CSV files and ``files/``.
    labeler : {"chexpert", "negbio"}, default="chexpert"
        Which label file to read.
    uncertain : {"ignore", "ones", "zeros"}, default="ignore"
        Uncertain (-1) labels: unknown (NaN), positive or negative (the
        U-Ignore, U-Ones and U-Zeros policies of Irvin et al. 2019).
    views : str or list of str, default=None
        Keep only these ``ViewPosition`` values (``"PA"``, ``"AP"``,
        ``"LATERAL"``, ``"LL"``, ... , ``"unknown"`` for a blank one); None
        keeps every image.
    split : {"train", "val", "test"} or None, default=None
        Keep one side of the official split (``"val"`` is the release's
        ``"validate"``); None keeps every image.
    on_missing : {"raise", "skip"}, default="raise"
        An image of the metadata file not on disk: raise a ValueError naming
        the first and how many, or leave them out with one warning.
    classes : list of str, default=None
        Common finding names (:data:`~skcxr.datasets.LABEL_TABLE`) that get a
        column of ``labels``; a finding MIMIC-CXR does not label is NaN.
        Default: the 13 findings (``"No Finding"`` on request).
    patients : str or os.PathLike, default=None
        MIMIC-IV's ``patients.csv[.gz]``; by default ``root/patients.csv.gz``
        or ``root/patients.csv`` when present.
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of one row per image.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths`` (n,) str; ``labels`` (n, n_classes) float (1, 0, NaN
        unknown; the labels of the image's study, with "No Finding" read as
        in :func:`load_chexpert`; NaN for every finding of an image whose
        study has no label row); ``classes``; ``patient_ids`` (n,) str
        (``subject_id``); ``study_ids`` (n,) str (``study_id``); ``split``
        (n,) str ``"train"``, ``"val"``, ``"test"`` (``"unassigned"`` for an
        image the split file lacks), or None without a split file; ``views``
        (n,) str; ``sex`` (n,) str and ``age`` (n,) float, ``"unknown"`` and
        NaN without MIMIC-IV's patients file; ``metadata`` dict of column of
        the metadata file -> (n,) object array of str; ``frame``;
        ``dataset`` ``"mimic_cxr"``; the counts ``n_rows`` (rows of the
        metadata file), ``n_unreadable``, ``n_excluded`` (by ``views`` and
        ``split``) and ``n_missing``.

    Raises
    ------
    ValueError
        On a missing file or column, a missing image
        (``on_missing="raise"``), an unknown finding name, or no image left.

    See Also
    --------
    load_chexpert : CheXpert, labelled by the same labeler.

    References
    ----------
    .. [1] Johnson AEW, Pollard TJ, Berkowitz SJ, et al. MIMIC-CXR, a
       de-identified publicly available database of chest radiographs with
       free-text reports. Sci Data 6, 317 (2019).
    .. [2] Johnson AEW, Pollard TJ, Greenbaum NR, et al. MIMIC-CXR-JPG, a
       large publicly available database of labeled chest radiographs.
       arXiv:1901.07042 (2019).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skcxr.datasets import load_mimic_cxr
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "mimic-cxr-2.0.0-metadata.csv").write_text(
    ...     "dicom_id,subject_id,study_id,ViewPosition,StudyDate\\n"
    ...     "d1,10000032,50414267,PA,21800506\\n"
    ...     "d2,10000032,50414267,LATERAL,21800506\\n"
    ...     "d3,10000764,57375967,AP,21321015\\n")
    >>> _ = (root / "mimic-cxr-2.0.0-chexpert.csv").write_text(
    ...     "subject_id,study_id,Cardiomegaly,No Finding,Pleural Effusion\\n"
    ...     "10000032,50414267,,1.0,\\n"
    ...     "10000764,57375967,-1.0,,1.0\\n")
    >>> _ = (root / "mimic-cxr-2.0.0-split.csv").write_text(
    ...     "dicom_id,study_id,subject_id,split\\n"
    ...     "d1,50414267,10000032,train\\nd2,50414267,10000032,train\\n"
    ...     "d3,57375967,10000764,validate\\n")
    >>> for subject, study, dicom in [("10000032", "50414267", "d1"),
    ...         ("10000032", "50414267", "d2"), ("10000764", "57375967", "d3")]:
    ...     image = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
    ...     image.mkdir(parents=True, exist_ok=True)
    ...     _ = (image / f"{dicom}.jpg").write_bytes(b"")
    >>> data = load_mimic_cxr(root, classes=["Cardiomegaly", "Effusion"])
    >>> data.labels
    array([[ 0.,  0.],
           [ 0.,  0.],
           [nan,  1.]])
    >>> data.split.tolist(), data.views.tolist()
    (['train', 'train', 'val'], ['PA', 'LATERAL', 'AP'])
    >>> load_mimic_cxr(root, split="val", uncertain="ones",
    ...                classes=["Cardiomegaly"]).labels
    array([[1.]])
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    classes = resolve_classes(classes, "mimic_cxr")
    meta_path, label_path = _find(root, "metadata"), _find(root, labeler)
    for kind, path in (("metadata", meta_path), (labeler, label_path)):
        if path is None:
            raise ValueError(
                f"No mimic-cxr-2.0.0-{kind}.csv(.gz) in root={str(root)!r}."
            )
    source = source_name("mimic_cxr", meta_path)
    # the columns every row needs; the others are read for the images kept
    table = read_table(meta_path, required=("dicom_id", *_IDS), columns=_PER_ROW)
    header, bad = table.header, table.bad
    counts = {"n_rows": table.n_rows, "n_unreadable": len(bad)}
    col = {name: j for j, name in enumerate(header)}
    unreadable = [] if not bad else [(source, f"data row {bad[0][0]}", "wrong width")]
    rows = {"index": np.arange(len(table))}
    rows.update({c: table.column(c) for c in ("dicom_id", *_IDS)})
    blank = np.zeros(len(table), dtype=bool)
    for c in ("dicom_id", *_IDS):
        blank |= map_values(rows[c], lambda v: not v.strip(), bool)
    if blank.any():
        unreadable.append(
            (
                source,
                f"row of dicom_id {rows['dicom_id'][np.argmax(blank)]!r}",
                "a blank id",
            )
        )
        counts["n_unreadable"] += int(blank.sum())
        rows = take(rows, ~blank)

    rows["views"] = map_values(
        (
            table.column("ViewPosition")[rows["index"]]
            if "ViewPosition" in col
            else [""] * len(rows["index"])
        ),
        view_name,
    )
    split_path = _find(root, "split")
    rows["split"] = (
        None
        if split_path is None
        else _official_split(split_path, rows["dicom_id"], unreadable)
    )
    if split is not None and rows["split"] is None:
        raise ValueError(
            f"split={split!r} needs the official split file "
            f"mimic-cxr-2.0.0-split.csv(.gz) in root={str(root)!r}."
        )
    keep = views_keep(rows["views"], views, source=source)
    if split is not None:
        keep &= rows["split"] == split
    counts["n_excluded"] = int(keep.size - np.count_nonzero(keep))
    if rows["split"] is None:
        del rows["split"]
    rows = take(rows, keep)

    relpaths = [
        f"files/p{s[:2]}/p{s}/s{t}/{d}.jpg"
        for s, t, d in zip(
            rows["subject_id"].tolist(),
            rows["study_id"].tolist(),
            rows["dicom_id"].tolist(),
        )
    ]
    on_disk = present(str(root), relpaths)
    counts["n_missing"] = check_missing(
        on_disk, relpaths, on_missing, source=source, root=root
    )
    if not on_disk.any():
        raise ValueError(f"None of the images listed in {source} is on disk.")
    if counts["n_missing"]:
        rows = take(rows, on_disk)
        relpaths = [p for p, ok in zip(relpaths, on_disk) if ok]
    table = table.rows(rows["index"])
    subject, study = rows["subject_id"], rows["study_id"]

    labels = _study_labels(
        label_path, subject, study, classes, uncertain, counts, unreadable
    )
    sex, age = _sex_age(root, patients, subject, table, col)
    if unreadable:
        warn_unreadable(counts["n_unreadable"], *unreadable[0])
    base = os.path.join(str(root), "")
    return make_bunch(
        "mimic_cxr",
        paths=[base + p for p in relpaths],
        labels=labels,
        classes=classes,
        patient_ids=np.asarray(subject.tolist(), dtype=str),
        study_ids=np.asarray(study.tolist(), dtype=str),
        split=rows.get("split"),
        views=rows["views"],
        sex=sex,
        age=age,
        metadata={name: table[:, j] for j, name in enumerate(header) if name},
        counts=counts,
        as_frame=as_frame,
    )


def _official_split(path, dicom, unreadable):
    table = read_table(path, required=("dicom_id", "split"), columns=_SPLIT_COLUMNS)
    if table.bad:
        unreadable.append(
            (
                source_name("mimic_cxr", path),
                f"data row {table.bad[0][0]}",
                "wrong width",
            )
        )
    sides = map_values(
        table.column("split"), lambda s: _SPLITS.get(s.strip(), "unassigned")
    )
    side = dict(zip(table.column("dicom_id").tolist(), sides.tolist()))
    return map_values(dicom, lambda d: side.get(d, "unassigned"))


def _study_labels(path, subject, study, classes, uncertain, counts, unreadable):
    """Labels of each image's study (NaN where its study has no label row)."""
    header, table, bad, _ = read_csv(path, required=_IDS)
    col = {name: j for j, name in enumerate(header)}
    observed = [j for j, name in enumerate(header) if name and name not in _IDS]
    wrong = labeler_unreadable(table[:, observed])
    if bad or wrong.any():
        where = bad[0][0] if bad else int(np.argmax(wrong)) + 1
        why = "wrong width" if bad else "a label that is not 1, 0, -1 or blank"
        unreadable.append((source_name("mimic_cxr", path), f"data row {where}", why))
        counts["n_unreadable"] += len(bad) + int(wrong.sum())
    row_of = {
        key: i
        for i, key in enumerate(
            zip(
                table[:, col["subject_id"]].tolist(), table[:, col["study_id"]].tolist()
            )
        )
        if not wrong[i]
    }
    index = np.fromiter(
        (row_of.get(key, -1) for key in zip(subject.tolist(), study.tolist())),
        dtype=int,
        count=len(subject),
    )
    needed = np.unique(index[index >= 0])  # the label rows of kept images
    codes = np.vstack(
        [labeler_codes(table[needed][:, observed]), np.full((1, len(observed)), np.nan)]
    )
    row = np.full(len(table) + 1, len(needed))  # index -1 (no row): the NaN row
    row[needed] = np.arange(len(needed))
    study_codes = codes[row[index]]
    labels = labeler_labels(
        study_codes, [header[j] for j in observed], classes, "mimic_cxr", uncertain
    )
    labels[index < 0] = np.nan  # no label row: unknown, not "No Finding" zeros
    return labels


def _sex_age(root, patients, subject, table, col):
    """Sex and age at the study from MIMIC-IV's patients file, when there is one."""
    n = len(subject)
    if patients is None:
        patients = next(
            (
                p
                for p in (root / "patients.csv.gz", root / "patients.csv")
                if p.is_file()
            ),
            None,
        )
    if patients is None:
        return np.full(n, UNKNOWN), np.full(n, np.nan)
    header, people, _, _ = read_csv(
        patients, required=("subject_id", "gender", "anchor_age", "anchor_year")
    )
    pcol = {name: j for j, name in enumerate(header)}
    person = {
        row[pcol["subject_id"]].strip(): (
            sex_name(row[pcol["gender"]]),
            age_years(row[pcol["anchor_age"]]),
            year_of(row[pcol["anchor_year"]]),
        )
        for row in people.tolist()
    }
    dates = table[:, col["StudyDate"]].tolist() if "StudyDate" in col else [""] * n
    unknown = (UNKNOWN, np.nan, np.nan)
    sex, age = [], []
    for s, date in zip(subject.tolist(), dates):
        found_sex, anchor_age, anchor_year = person.get(s.strip(), unknown)
        sex.append(found_sex)
        age.append(anchor_age + year_of(date) - anchor_year)
    return np.asarray(sex), np.asarray(age, dtype=float)
