"""VinDr-CXR (Nguyen et al. 2022): Vietnamese radiographs read by three radiologists."""

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

__all__ = ["load_vindr_cxr"]

_SUFFIXES = (".dicom", ".dcm", ".png", ".jpg", ".jpeg")
_COLUMNS = ("image_id", "class_name", "rad_id", "x_min", "y_min", "x_max", "y_max")
_READERS = {
    "majority": lambda votes, n: 2 * votes > n,
    "any": lambda votes, n: votes >= 1,
    "consensus": lambda votes, n: votes == n,
}


@validate_params(
    {
        "root": [str, os.PathLike],
        "csv": [str, os.PathLike, None],
        "readers": [StrOptions(set(_READERS))],
        "headers": [StrOptions({"auto"}), None],
        "views": [str, "array-like", None],
        "on_missing": [StrOptions({"raise", "skip"})],
        "classes": ["array-like", None],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
@gc_paused()  # row lists hold no cycles: no collection while they are built
def load_vindr_cxr(
    root,
    csv=None,
    *,
    readers="majority",
    headers="auto",
    views=None,
    on_missing="raise",
    classes=None,
    as_frame=False,
):
    """File paths, findings and boxes of VinDr-CXR, with a reader policy.

    VinDr-CXR (Nguyen et al. 2022): 18,000 frontal radiographs of two
    hospitals in Hanoi. Each of the 15,000 training images was read by three
    of 17 radiologists, who boxed local findings (14 classes) or marked
    "No finding"; the 3,000 test images by a consensus of five. The label
    file has one row per box (or per reader's "No finding"), naming the
    reader (``rad_id``); ``readers`` turns the readers' marks into one label
    per image and finding.

    Download the training images and ``train.csv`` from the Kaggle
    competition https://www.kaggle.com/c/vinbigdata-chest-xray-abnormalities-detection
    (accept its rules), or the full release from PhysioNet,
    https://physionet.org/content/vindr-cxr/ (credentialed access, PhysioNet
    Credentialed Health Data License 1.5.0; its ``annotations/
    annotations_train.csv`` and ``annotations_test.csv`` have the same
    columns). Expected layout::

        root/train.csv
        root/train/000434271f63a053c4128a0ba6352c7f.dicom

    Parameters
    ----------
    root : str or os.PathLike
        The competition (or release) folder.
    csv : str or os.PathLike, default=None
        The box file (``image_id, class_name, rad_id, x_min, y_min, x_max,
        y_max``); by default ``root/train.csv`` or
        ``root/annotations/annotations_train.csv``. A file whose name has
        ``test`` in it is the official test set: its images are in
        ``root/test`` and ``split`` is ``"test"``.
    readers : {"majority", "any", "consensus"}, default="majority"
        An image has a finding when more than half of its readers (2 of 3)
        marked it, when any did, or when all did.
    headers : "auto" or None, default="auto"
        ``"auto"`` reads view, sex and age from the header of each DICOM
        image (pixels are not read); None reads nothing.
    views : str or list of str, default=None
        Keep only these ``ViewPosition`` values; None keeps every image.
    on_missing : {"raise", "skip"}, default="raise"
        An image of the CSV not on disk: raise a ValueError naming the first
        and how many, or leave them out with one warning.
    classes : list of str, default=None
        Common finding names (:data:`~skcxr.datasets.LABEL_TABLE`); a finding
        VinDr-CXR does not label (such as "Nodule" alone: it has only
        "Nodule/Mass") is NaN. Default: the 10 findings that map.
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of one row per image.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths`` (n,) str; ``labels`` (n, n_classes) float (every reader
        reads every finding, so 0 where the policy does not make it 1);
        ``classes``; ``findings`` list of lists of the class names the
        policy keeps (also the four with no common name: "Aortic
        enlargement", "Calcification", "ILD", "Other lesion");
        ``n_readers`` (n,) int; ``boxes`` (n,) object array of ``(n_boxes,
        4)`` float arrays ``x, y, width, height`` in pixels, every reader's,
        with ``box_findings`` and ``box_readers`` (n,) object arrays of
        ``(n_boxes,)`` str arrays; ``patient_ids`` and ``study_ids`` (n,) str,
        the ``image_id`` (no patient identifiers are published);
        ``split`` (n,) str, ``"train"`` or ``"test"``; ``views``, ``sex``,
        ``age`` from the DICOM headers; ``metadata`` dict with ``image_id``
        and ``rad_ids``; ``frame``; ``dataset`` ``"vindr_cxr"``; the counts
        ``n_rows`` (CSV rows), ``n_unreadable`` (images with an unreadable
        row, left out), ``n_excluded`` and ``n_missing``.

    Raises
    ------
    ValueError
        On a missing CSV or column, a missing image (``on_missing="raise"``),
        an unknown finding name, or no image left.

    References
    ----------
    .. [1] Nguyen HQ, Lam K, Le LT, et al. VinDr-CXR: An open dataset of
       chest X-rays with radiologist's annotations. Scientific Data 9, 429
       (2022).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skcxr.datasets import load_vindr_cxr
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "train.csv").write_text(
    ...     "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\\n"
    ...     "a,Cardiomegaly,3,R1,691,1375,1653,1831\\n"
    ...     "a,Cardiomegaly,3,R2,700,1380,1650,1840\\n"
    ...     "a,Pleural effusion,10,R2,100,100,300,400\\n"
    ...     "a,No finding,14,R3,,,,\\n"
    ...     "b,No finding,14,R1,,,,\\nb,No finding,14,R2,,,,\\n"
    ...     "b,No finding,14,R3,,,,\\n")
    >>> (root / "train").mkdir()
    >>> for name in ("a", "b"):
    ...     _ = (root / "train" / f"{name}.png").write_bytes(b"")
    >>> data = load_vindr_cxr(root, classes=["Cardiomegaly", "Effusion",
    ...                                      "No Finding", "Nodule"])
    >>> data.labels
    array([[ 1.,  0.,  0., nan],
           [ 0.,  0.,  1., nan]])
    >>> load_vindr_cxr(root, readers="any", classes=["Effusion"]).labels.ravel()
    array([1., 0.])
    >>> data.boxes[0][0], data.box_readers[0].tolist()
    (array([ 691., 1375.,  962.,  456.]), ['R1', 'R2', 'R2'])
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    if csv is None:
        candidates = (
            root / "train.csv",
            root / "annotations" / "annotations_train.csv",
        )
        csv = next((p for p in candidates if p.is_file()), None)
        if csv is None:
            raise ValueError(
                f"No train.csv (or annotations/annotations_train.csv) in "
                f"root={str(root)!r}; pass csv=path."
            )
    csv = Path(csv)
    classes = resolve_classes(classes, "vindr_cxr")
    source = source_name("vindr_cxr", csv)
    header, table, bad, n_rows = read_csv(csv, required=_COLUMNS)
    col = {name: j for j, name in enumerate(header)}
    images, unreadable = _per_image(table[:, [col[c] for c in _COLUMNS]])
    counts = {"n_rows": n_rows, "n_unreadable": len(unreadable) + len(bad)}
    if bad:
        warn_unreadable(
            counts["n_unreadable"], source, f"data row {bad[0][0]}", "wrong width"
        )
    elif unreadable:
        warn_unreadable(
            counts["n_unreadable"],
            source,
            f"image_id {unreadable[0][0]!r}",
            unreadable[0][1],
        )
    ids = np.asarray(list(images), dtype=object)
    split = "test" if "test" in csv.name.lower() else "train"

    folder = root / split
    on_disk, paths, counts["n_missing"] = images_on_disk(
        ids, folder, _SUFFIXES, ".dicom", on_missing=on_missing, source=source
    )
    ids = ids[on_disk]
    # headers=None: no DICOM file is opened, every tag stays blank
    read_from = (".dicom", ".dcm") if headers == "auto" else ()
    found = file_headers(paths, read_from, source=source)
    rows = {"ids": ids, "paths": np.asarray(paths, dtype=object), **found}
    rows["views"] = map_values(found["ViewPosition"].tolist(), view_name)
    keep = views_keep(rows["views"], views, source=source)
    counts["n_excluded"] = int(keep.size - np.count_nonzero(keep))
    rows = take(rows, keep)
    ids = rows["ids"]

    decide = _READERS[readers]
    findings, n_readers = [], []
    for i in ids:
        marks, names = images[i]["marks"], images[i]["readers"]
        findings.append([c for c, who in marks.items() if decide(len(who), len(names))])
        n_readers.append(len(names))
    boxes = object_array(
        [np.asarray(images[i]["boxes"], dtype=float).reshape(-1, 4) for i in ids]
    )
    box_findings, box_readers = (
        object_array([np.asarray(images[i][key], dtype=str) for i in ids])
        for key in ("box", "by")
    )
    return make_bunch(
        "vindr_cxr",
        paths=rows["paths"],
        labels=finding_labels(findings, classes, "vindr_cxr"),
        classes=classes,
        patient_ids=np.asarray(ids.tolist(), dtype=str),
        study_ids=np.asarray(ids.tolist(), dtype=str),
        split=np.full(len(ids), split),
        views=rows["views"],
        sex=map_values(rows["PatientSex"].tolist(), sex_name),
        age=map_values(rows["PatientAge"].tolist(), age_years, float),
        metadata={
            "image_id": ids,
            "rad_ids": np.asarray(
                ["|".join(sorted(images[i]["readers"])) for i in ids], dtype=object
            ),
            **{tag: rows[tag] for tag in DICOM_TAGS},
        },
        counts=counts,
        as_frame=as_frame,
        findings=findings,
        n_readers=np.asarray(n_readers, dtype=int),
        boxes=boxes,
        box_findings=box_findings,
        box_readers=box_readers,
    )


def _per_image(rows):
    """Readers, marks and boxes of each image (first-seen order), bad images."""
    images, unreadable = {}, {}
    for image_id, name, reader, *corners in rows.tolist():
        image_id, name, reader = image_id.strip(), name.strip(), reader.strip()
        if not (image_id and name and reader):
            unreadable.setdefault(image_id, "a blank image_id, class_name or rad_id")
            continue
        entry = images.setdefault(
            image_id,
            {"readers": set(), "marks": {}, "boxes": [], "box": [], "by": []},
        )
        entry["readers"].add(reader)
        entry["marks"].setdefault(name, set()).add(reader)
        if not any(c.strip() for c in corners):
            continue
        try:
            x0, y0, x1, y1 = (float(c) for c in corners)
        except ValueError:
            unreadable.setdefault(image_id, f"box {corners} is not four numbers")
            continue
        entry["boxes"].append((x0, y0, x1 - x0, y1 - y0))
        entry["box"].append(name)
        entry["by"].append(reader)
    for image_id in unreadable:
        images.pop(image_id, None)
    return images, list(unreadable.items())
