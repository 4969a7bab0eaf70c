"""PadChest (Bustos et al. 2020): 160,868 radiographs of San Juan Hospital, Spain."""

import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

from ._common import (
    check_missing,
    finding_labels,
    make_bunch,
    map_values,
    present,
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

__all__ = ["load_padchest"]

_CSV_GLOB = "PADCHEST_chest_x_ray_images_labels_160K*.csv*"
_COLUMNS = (
    "ImageID",
    "ImageDir",
    "StudyID",
    "PatientID",
    "PatientBirth",
    "PatientSex_DICOM",
    "StudyDate_DICOM",
    "Projection",
    "Labels",
)
_PER_ROW = ("ImageID", "ImageDir", "Projection")
_ITEM = r"""\s*(?:'[^']*'|"[^"]*")\s*"""
_LIST = re.compile(rf"^\s*\[(?:{_ITEM}(?:,{_ITEM})*)?\]\s*$")
_STRING = re.compile(r"""'([^']*)'|"([^"]*)\"""")


def parse_label_list(text):
    """The labels of a PadChest ``Labels`` cell, or None if it is not a list.

    ``"['pneumonia', ' pleural effusion']"`` gives ``("pneumonia", "pleural
    effusion")``: surrounding spaces stripped, empty entries dropped.
    """
    if _LIST.match(text) is None:
        return None
    found = (a or b for a, b in _STRING.findall(text))
    return tuple(dict.fromkeys(f.strip() for f in found if f.strip()))


@validate_params(
    {
        "root": [str, os.PathLike],
        "csv": [str, os.PathLike, None],
        "views": [str, "array-like", None],
        "on_missing": [StrOptions({"raise", "skip"})],
        "classes": ["array-like", None],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
@gc_paused()  # row lists hold no cycles: no collection while they are built
def load_padchest(
    root, csv=None, *, views=None, on_missing="raise", classes=None, as_frame=False
):
    """File paths, findings and patients of PadChest.

    PadChest (Bustos et al. 2020): 160,868 radiographs (six projections) of
    about 67,000 patients of San Juan Hospital (Alicante, Spain), 2009-2017,
    as 16-bit PNGs; the label file lists 160,861 images of 67,625 patients.
    Each report is labelled with radiographic findings, differential
    diagnoses and locations of a hierarchical vocabulary; 27% of the reports
    by physicians, the rest by a recurrent network trained on them
    (``MethodLabel``). There is no official split.

    Download from https://bimcv.cipf.es/bimcv-projects/padchest/ after a
    request (research use; the data may not be shared and no attempt may be
    made to re-identify anyone). Expected layout: the label CSV and the
    numbered image folders of the download (``ImageDir``), or all images in
    one folder::

        root/PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv[.gz]
        root/0/20536686640136348236148679891455886468_k6ga29.png
        root/1/...

    Parameters
    ----------
    root : str or os.PathLike
        Folder of the image folders (or of the images).
    csv : str or os.PathLike, default=None
        The label file; by default the ``PADCHEST_chest_x_ray_images_labels_
        160K*.csv[.gz]`` in ``root``.
    views : str or list of str, default=None
        Keep only these projections, in the common names: ``"PA"``,
        ``"LATERAL"`` (``L``), ``"AP"``, ``"AP supine"`` (``AP_horizontal``),
        ``"COSTAL"``, ``"EXCLUDE"``, ``"unknown"`` (``UNK``); None keeps all.
    on_missing : {"raise", "skip"}, default="raise"
        An image of the CSV not on disk: raise a ValueError naming the first
        and how many, or leave them out with one warning.
    classes : list of str, default=None
        Common finding names (:data:`~skcxr.datasets.LABEL_TABLE`); a finding
        PadChest does not label is NaN. Default: the 17 findings PadChest's
        labels map to (``"No Finding"``, from ``normal``, and
        ``"Nodule/Mass"`` on request).
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of one row per image.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths`` (n,) str; ``labels`` (n, n_classes) float, 1 when the label
        list holds any of the labels :data:`~skcxr.datasets.LABEL_TABLE`
        lists for the finding, else 0; ``classes``; ``findings`` list of
        lists of every label of an image (stripped, empty entries dropped);
        ``patient_ids`` (n,) str (``PatientID``); ``study_ids`` (n,) str
        (``StudyID``); ``split`` None; ``views`` (n,) str; ``sex`` (n,) str
        ``"M"``, ``"F"``, ``"O"`` or ``"unknown"``; ``age`` (n,) float, the
        year of ``StudyDate_DICOM`` minus ``PatientBirth`` (NaN if either is
        missing); ``metadata`` dict of CSV column -> (n,) object array of
        str; ``frame``; ``dataset`` ``"padchest"``; the counts ``n_rows``,
        ``n_unreadable`` (rows whose ``Labels`` is not a list, e.g. blank,
        left out with a warning naming the first), ``n_excluded`` (by
        ``views``) and ``n_missing``.

    Raises
    ------
    ValueError
        On a missing CSV or column, a missing image (``on_missing="raise"``),
        an unknown finding name, or no image left.

    References
    ----------
    .. [1] Bustos A, Pertusa A, Salinas JM, de la Iglesia-Vayá M. PadChest: A
       large chest x-ray image dataset with multi-label annotated reports.
       Medical Image Analysis 66, 101797 (2020).

    Examples
    --------
    >>> import tempfile, pathlib, warnings
    >>> from skcxr.datasets import load_padchest
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
    ...      ).write_text(
    ...     "ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,"
    ...     "PatientSex_DICOM,Projection,Labels\\n"
    ...     "a.png,0,20140915,s1,p1,1930.0,F,PA,['normal']\\n"
    ...     "b.png,0,20150914,s2,p2,1929.0,M,L,"
    ...     "\\"['pneumonia', ' pleural effusion']\\"\\n"
    ...     "c.png,0,20150914,s3,p3,,M,PA,\\n")
    >>> (root / "0").mkdir()
    >>> for name in ("a.png", "b.png", "c.png"):
    ...     _ = (root / "0" / name).write_bytes(b"")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     data = load_padchest(root, classes=["Effusion", "Pneumonia",
    ...                                         "Lung Opacity"])
    >>> print(caught[0].message)  # doctest: +ELLIPSIS
    1 row(s) of PadChest file ... the first, ImageID 'c.png': ...
    >>> data.labels  # PadChest does not label Lung Opacity
    array([[ 0.,  0., nan],
           [ 1.,  1., nan]])
    >>> data.findings, data.views.tolist(), data.age.tolist()
    ([['normal'], ['pneumonia', 'pleural effusion']], ['PA', 'LATERAL'], [84.0, 86.0])
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    if csv is None:
        found = sorted(root.glob(_CSV_GLOB))
        if not found:
            raise ValueError(
                f"No {_CSV_GLOB} in root={str(root)!r}; pass csv=path of the "
                "PadChest label file."
            )
        csv = found[0]
    csv = Path(csv)
    classes = resolve_classes(classes, "padchest")
    source = source_name("padchest", csv)
    # the columns every row needs; the others are read for the rows kept
    table = read_table(csv, required=_COLUMNS, columns=_PER_ROW)
    header, bad = table.header, table.bad
    col = {name: j for j, name in enumerate(header)}
    counts = {"n_rows": table.n_rows, "n_unreadable": len(bad)}
    rows = {"index": np.arange(len(table))}
    rows["views"] = map_values(table.column("Projection"), view_name)
    keep = views_keep(rows["views"], views, source=source)
    counts["n_excluded"] = int(keep.size - np.count_nonzero(keep))
    if counts["n_excluded"]:
        rows = take(rows, keep)

    relpaths = _relative_paths(root, table, rows["index"])
    on_disk = present(str(root), relpaths)
    counts["n_missing"] = check_missing(
        on_disk, relpaths, on_missing, source=source, root=root
    )
    if counts["n_missing"]:
        rows = take(rows, on_disk)
        relpaths = [p for p, ok in zip(relpaths, on_disk) if ok]

    # the label lists of the images kept; one that is not a list is unreadable
    table = rows["table"] = table.rows(rows["index"])
    lists = map_values(table[:, col["Labels"]].tolist(), parse_label_list)
    wrong = np.fromiter((f is None for f in lists), bool, len(lists))
    counts["n_unreadable"] += int(wrong.sum())
    if bad:
        warn_unreadable(
            counts["n_unreadable"], source, f"data row {bad[0][0]}", "wrong width"
        )
    elif wrong.any():
        i = int(np.argmax(wrong))
        warn_unreadable(
            counts["n_unreadable"],
            source,
            f"ImageID {table[i, col['ImageID']]!r}",
            f"Labels {table[i, col['Labels']]!r} is not a list of labels",
        )
    rows["findings"] = lists
    if wrong.any():
        rows = take(rows, ~wrong)
        relpaths = [p for p, w in zip(relpaths, wrong) if not w]
    if not relpaths:
        raise ValueError(f"None of the images listed in {source} is on disk.")
    table = rows["table"]

    findings = [list(f) for f in rows["findings"]]
    base = os.path.join(str(root), "")
    birth = map_values(table[:, col["PatientBirth"]].tolist(), year_of, float)
    study = map_values(table[:, col["StudyDate_DICOM"]].tolist(), year_of, float)
    return make_bunch(
        "padchest",
        paths=[base + p for p in relpaths],
        labels=finding_labels(findings, classes, "padchest"),
        classes=classes,
        patient_ids=np.asarray(table[:, col["PatientID"]].tolist(), dtype=str),
        study_ids=np.asarray(table[:, col["StudyID"]].tolist(), dtype=str),
        split=None,
        views=rows["views"],
        sex=map_values(table[:, col["PatientSex_DICOM"]].tolist(), sex_name),
        age=study - birth,
        metadata={name: table[:, j] for j, name in enumerate(header) if name},
        counts=counts,
        as_frame=as_frame,
        findings=findings,
    )


def _relative_paths(root, table, index):
    """``ImageDir/ImageID`` when the numbered folders exist, else ``ImageID``."""
    names = table.column("ImageID")[index].tolist()
    folders = map_values(
        table.column("ImageDir")[index], lambda d: d.strip().split(".")[0]
    ).tolist()
    nested = any((root / d).is_dir() for d in set(folders[:1000]) if d)
    if not nested:
        return names
    return [f"{d}/{n}" for d, n in zip(folders, names)]
