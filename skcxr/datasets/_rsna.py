"""RSNA Pneumonia Detection Challenge (Shih et al. 2019): boxes on NIH images."""

import os
from pathlib import Path

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

from ._common import (
    DICOM_TAGS,
    age_years,
    file_headers,
    finding_labels,
    images_on_disk,
    make_bunch,
    map_values,
    object_array,
    read_csv,
    sex_name,
    source_name,
    take,
    view_name,
    views_keep,
    warn_unreadable,
)
from ._labels import resolve_classes
from ._table import gc_paused

__all__ = ["load_rsna_pneumonia"]

_SUFFIXES = (".dcm", ".png", ".jpg", ".jpeg")
_POSITIVE = "Lung Opacity"


def _newest(root, pattern):
    found = sorted(root.glob(pattern))
    return found[-1] if found else None


@validate_params(
    {
        "root": [str, os.PathLike],
        "csv": [str, os.PathLike, None],
        "headers": [StrOptions({"auto"}), str, os.PathLike, None],
        "views": [str, "array-like", None],
        "on_missing": [StrOptions({"raise", "skip"})],
        "classes": ["array-like", None],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
@gc_paused()  # row lists hold no cycles: no collection while they are built
def load_rsna_pneumonia(
    root,
    csv=None,
    *,
    headers="auto",
    views=None,
    on_missing="raise",
    classes=None,
    as_frame=False,
):
    """File paths, pneumonia labels and boxes of the RSNA Pneumonia Challenge.

    The RSNA Pneumonia Detection Challenge (Shih et al. 2019): 26,684
    frontal radiographs of NIH ChestX-ray14, re-read by radiologists of the
    RSNA and the Society of Thoracic Radiology, who drew a box around each
    opacity suspicious for pneumonia. ``Target`` 1 marks the class "Lung
    Opacity"; ``stage_2_detailed_class_info.csv`` also tells "Normal" from
    "No Lung Opacity / Not Normal". The challenge's test labels were not
    published, so there is no official split.

    Download from https://www.kaggle.com/c/rsna-pneumonia-detection-challenge
    (accept the competition's rules; the images come from NIH
    ChestX-ray14, whose use is unrestricted with attribution). Expected
    layout::

        root/stage_2_train_labels.csv
        root/stage_2_detailed_class_info.csv       (optional)
        root/stage_2_train_images/0004cfab-14fd-4e49-80ba-63a80b6bddd6.dcm

    The images may also be PNG or JPEG files of the same names.

    Parameters
    ----------
    root : str or os.PathLike
        The competition folder.
    csv : str or os.PathLike, default=None
        The label file (``patientId, x, y, width, height, Target``; plain,
        gzipped or zipped); by default ``root/stage_2_train_labels.csv``.
    headers : "auto", str, os.PathLike or None, default="auto"
        Where view, sex and age come from: a CSV of the DICOM headers with
        ``PatientID``, ``ViewPosition``, ``PatientSex``, ``PatientAge``
        columns (the layout of torchxrayvision's
        ``kaggle_stage_2_train_images_dicom_headers.csv.gz``); ``"auto"``
        uses such a file in ``root`` when there is one, else reads the
        header of every DICOM image (pixels are not read; about 0.3 ms a
        file); None reads nothing (views and sex ``"unknown"``, age NaN).
    views : str or list of str, default=None
        Keep only these views (``"PA"``, ``"AP"``, ``"unknown"``); None keeps
        every image.
    on_missing : {"raise", "skip"}, default="raise"
        An image of the CSV not on disk: raise a ValueError naming the first
        and how many, or leave them out with one warning.
    classes : list of str, default=None
        Common finding names (:data:`~skcxr.datasets.LABEL_TABLE`). Default:
        ``["Lung Opacity", "Pneumonia"]``, both ``Target``; ``"No Finding"``
        is the detailed class "Normal" (NaN without the class file); any
        other finding is NaN.
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of one row per image.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        One entry per image (the CSV has one row per box): ``paths`` (n,)
        str; ``labels`` (n, n_classes) float; ``classes``; ``boxes`` (n,)
        object array, each a ``(n_boxes, 4)`` float array of ``x, y, width,
        height`` in pixels of the 1024 x 1024 image (no row for a negative
        image); ``findings`` list of lists (``"Lung Opacity"`` and the
        detailed class when known); ``patient_ids`` and ``study_ids`` (n,) str,
        the ``patientId``, which names one image (the challenge does not link
        images of one patient); ``split`` None; ``views``, ``sex`` (n,) str
        and ``age`` (n,) float from the headers; ``metadata`` dict of
        ``patientId``, ``Target``, ``class`` and the header columns; ``frame``;
        ``dataset`` ``"rsna_pneumonia"``; the counts ``n_rows`` (CSV rows),
        ``n_unreadable`` (images with a row that is not a box or a 0/1
        ``Target``), ``n_excluded`` (by ``views``) and ``n_missing``.

    Raises
    ------
    ValueError
        On a missing CSV or column, a missing image (``on_missing="raise"``),
        an unknown finding name, or no image left.

    Notes
    -----
    The images are a subset of ChestX-ray14: pooling this set with
    :func:`load_chestxray14` or :func:`load_siim_pneumothorax` can hold the
    same radiograph twice under different names.

    References
    ----------
    .. [1] Shih G, Wu CC, Halabi SS, et al. Augmenting the National
       Institutes of Health chest radiograph dataset with expert annotations
       of possible pneumonia. Radiology: Artificial Intelligence 1(1),
       e180041 (2019).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skcxr.datasets import load_rsna_pneumonia
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "stage_2_train_labels.csv").write_text(
    ...     "patientId,x,y,width,height,Target\\n"
    ...     "a,264.0,152.0,213.0,379.0,1\\n"
    ...     "a,562.0,152.0,256.0,453.0,1\\n"
    ...     "b,,,,,0\\n")
    >>> (root / "stage_2_train_images").mkdir()
    >>> for name in ("a", "b"):
    ...     _ = (root / "stage_2_train_images" / f"{name}.png").write_bytes(b"")
    >>> data = load_rsna_pneumonia(root, headers=None)
    >>> data.classes.tolist(), data.labels.tolist()
    (['Lung Opacity', 'Pneumonia'], [[1.0, 1.0], [0.0, 0.0]])
    >>> data.boxes[0]
    array([[264., 152., 213., 379.],
           [562., 152., 256., 453.]])
    >>> data.boxes[1].shape, data.n_rows
    ((0, 4), 3)
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    csv = _newest(root, "*stage_*_train_labels.csv*") if csv is None else Path(csv)
    if csv is None:
        raise ValueError(
            f"No stage_2_train_labels.csv in root={str(root)!r}; pass csv=path."
        )
    classes = resolve_classes(classes, "rsna_pneumonia")
    source = source_name("rsna_pneumonia", csv)
    columns = ("patientId", "x", "y", "width", "height", "Target")
    header, table, bad, n_rows = read_csv(csv, required=columns)
    col = {name: j for j, name in enumerate(header)}
    images, unreadable = _per_image(table, [col[c] for c in columns])
    counts = {"n_rows": n_rows, "n_unreadable": len(unreadable)}
    if bad:
        counts["n_unreadable"] += len(bad)
        warn_unreadable(
            counts["n_unreadable"], source, f"data row {bad[0][0]}", "wrong width"
        )
    elif unreadable:
        warn_unreadable(
            counts["n_unreadable"],
            source,
            f"patientId {unreadable[0][0]!r}",
            unreadable[0][1],
        )
    ids = np.asarray(list(images), dtype=object)
    target = np.asarray([images[i][0] for i in ids], dtype=float)
    boxes = object_array(
        [np.asarray(images[i][1], dtype=float).reshape(-1, 4) for i in ids]
    )

    folder = root / "stage_2_train_images"
    folder = folder if folder.is_dir() else root
    on_disk, paths, counts["n_missing"] = images_on_disk(
        ids, folder, _SUFFIXES, ".dcm", on_missing=on_missing, source=source
    )
    rows = take({"ids": ids, "target": target, "boxes": boxes}, on_disk)

    found = _headers(root, headers, rows["ids"], paths, source)
    rows["views"] = map_values(found["ViewPosition"].tolist(), view_name)
    rows["paths"] = np.asarray(paths, dtype=object)
    rows.update({f"header {tag}": found[tag] for tag in found})
    keep = views_keep(rows["views"], views, source=source)
    counts["n_excluded"] = int(keep.size - np.count_nonzero(keep))
    rows = take(rows, keep)

    detailed = _detailed_classes(root, rows["ids"])
    findings = [
        list(dict.fromkeys(f for f in ((_POSITIVE if t == 1 else ""), c) if f))
        for t, c in zip(rows["target"].tolist(), detailed.tolist())
    ]
    labels = finding_labels(findings, classes, "rsna_pneumonia")
    if "No Finding" in classes:  # only the detailed class file says "Normal"
        labels[detailed == "", classes.index("No Finding")] = np.nan
    ids = rows["ids"]
    metadata = {
        "patientId": ids,
        "Target": np.asarray([str(int(t)) for t in rows["target"]], dtype=object),
        "class": detailed,
        **{tag: rows[f"header {tag}"] for tag in DICOM_TAGS},
    }
    return make_bunch(
        "rsna_pneumonia",
        paths=rows["paths"],
        labels=labels,
        classes=classes,
        patient_ids=np.asarray(ids.tolist(), dtype=str),
        study_ids=np.asarray(ids.tolist(), dtype=str),
        split=None,
        views=rows["views"],
        sex=map_values(rows["header PatientSex"].tolist(), sex_name),
        age=map_values(rows["header PatientAge"].tolist(), age_years, float),
        metadata=metadata,
        counts=counts,
        as_frame=as_frame,
        boxes=rows["boxes"],
        findings=findings,
    )


def _per_image(table, cols):
    """``{patientId: (target, boxes)}`` in first-seen order, and bad images."""
    images, unreadable = {}, {}
    for row in table[:, cols].tolist():
        pid, box, target = row[0].strip(), row[1:5], row[5].strip()
        if target not in ("0", "1"):
            unreadable.setdefault(pid, f"Target {target!r} is not 0 or 1")
            continue
        entry = images.setdefault(pid, [int(target), []])
        if entry[0] != int(target):
            unreadable.setdefault(pid, "rows with Target 0 and 1")
        if target == "1":
            try:
                entry[1].append([float(v) for v in box])
            except ValueError:
                unreadable.setdefault(pid, f"box {box} is not four numbers")
    for pid in unreadable:
        images.pop(pid, None)
    return images, list(unreadable.items())


def _headers(root, headers, ids, paths, source):
    """``{tag: values}`` from a header CSV, the DICOM files, or nothing."""
    n = len(ids)
    blank = {tag: np.full(n, "", dtype=object) for tag in DICOM_TAGS}
    if headers is None:
        return blank
    if isinstance(headers, str) and headers == "auto":
        headers = _newest(root, "*stage_*_train_images_dicom_headers.csv*")
        if headers is None:
            return file_headers(paths, ".dcm", source=source)
    header, table, _, _ = read_csv(headers, required=DICOM_TAGS)
    col = {name: j for j, name in enumerate(header)}
    row_of = {pid.strip(): i for i, pid in enumerate(table[:, col["PatientID"]])}
    where = np.fromiter((row_of.get(i, -1) for i in ids), int, n)
    for tag in DICOM_TAGS:
        values = np.append(table[:, col[tag]], "")
        blank[tag] = values[where]
    return blank


def _detailed_classes(root, ids):
    """The detailed class of each image ("" without the class file)."""
    path = _newest(root, "*stage_*_detailed_class_info.csv*")
    if path is None:
        return np.full(len(ids), "", dtype=object)
    header, table, _, _ = read_csv(path, required=("patientId", "class"))
    col = {name: j for j, name in enumerate(header)}
    found = dict(
        zip(
            (p.strip() for p in table[:, col["patientId"]]),
            (c.strip() for c in table[:, col["class"]]),
        )
    )
    return np.asarray([found.get(i, "") for i in ids], dtype=object)
