"""Write images as files in the layouts of the real chest X-ray data sets."""

import csv
import datetime
import os

import numpy as np
from PIL import Image

from ..utils._random import seed_from
from ..utils._validation import check_images

__all__ = ["write_chest_xrays"]

_KERMANY = {"normal": "NORMAL", "bacteria": "PNEUMONIA", "virus": "PNEUMONIA"}
_NIH_NAMES = {
    "normal": "No Finding",
    "bacteria": "Pneumonia",
    "virus": "Pneumonia",
    "effusion": "Effusion",
    "atelectasis": "Atelectasis",
    "infiltration": "Infiltration",
}
NIH_COLUMNS = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
_EXT = {"jpeg": ".jpeg", "png": ".png", "png16": ".png", "dicom": ".dcm"}


def _save(path, image, fmt, patient_id):
    if fmt == "jpeg":
        Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(
            path, quality=95
        )
    elif fmt == "png":
        Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(path)
    elif fmt == "png16":
        Image.fromarray(np.round(image * 65535).astype(np.uint16)).save(path)
    else:
        _save_dicom(path, image, patient_id)


def _save_dicom(path, image, patient_id):
    from pydicom.dataset import FileMetaDataset, FileDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = (
        "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.PatientID, ds.PatientName = str(patient_id), f"SYNTHETIC^{patient_id}"
    ds.ContentDate = datetime.date(2020, 1, 1).strftime("%Y%m%d")
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.PixelData = np.round(image * 4095).astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_chest_xrays(
    root,
    X,
    y,
    *,
    layout="kermany",
    fmt=None,
    split=None,
    patient_ids=None,
    random_state=None,
):
    """Write images and labels to files in a real data set's folder layout.

    Parameters
    ----------
    root : str or path-like
        Folder to write into (created if needed).
    X : array-like of shape (n, H, W), (n, 1, H, W) or (n, H*W)
        Images in [0, 1] (the image data contract).
    y : array-like of shape (n,) of str
        Labels as from :func:`make_chest_xrays`. ``layout="kermany"`` accepts
        only ``"normal"``, ``"bacteria"`` and ``"virus"``; ``"chestxray14"``
        also ``"effusion"``, ``"atelectasis"``, ``"infiltration"`` and
        ``"|"``-joined combinations.
    layout : {"kermany", "chestxray14"}, default="kermany"
        ``"kermany"``: ``root/chest_xray/{split}/{NORMAL|PNEUMONIA}/`` with file
        names such as ``NORMAL2-IM-0001-0001.jpeg``,
        ``person12_bacteria_34.jpeg`` and ``person5_virus_11.jpeg``.
        ``"chestxray14"``: ``root/images/00000001_000.png`` plus
        ``root/Data_Entry_2017.csv`` with the NIH columns.
    fmt : {"jpeg", "png", "png16", "dicom"}, default=None
        File format: 8-bit JPEG, 8- or 16-bit PNG, or DICOM (Digital X-Ray,
        MONOCHROME2, 12 bits stored, ``.dcm``). ``None`` means the layout's
        own format (JPEG for Kermany, PNG for ChestX-ray14).
    split : str or array-like of str, default=None
        Kermany split folder(s): one name for all images or one per image.
        ``None`` means ``"train"``.
    patient_ids : array-like of int, default=None
        Patient of each image (images of one patient become follow-ups).
        ``None`` draws patients with a few images each.
    random_state : int, RandomState instance or None, default=None
        Seed for the drawn patients, ages and sexes.

    Returns
    -------
    paths : ndarray of str, shape (n,)
        The written files, aligned with ``X``.

    Examples
    --------
    >>> import tempfile
    >>> from skcxr.datasets import make_chest_xrays, write_chest_xrays
    >>> X, y = make_chest_xrays(3, size=32, random_state=0)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     paths = write_chest_xrays(root, X, y, random_state=0)
    ...     print(len(paths), sorted({p.split(os.sep)[-2] for p in paths}))
    3 ['NORMAL', 'PNEUMONIA']
    """
    images, _ = check_images(X)
    y = np.asarray(y).astype(str).ravel()
    n = len(images)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} labels but X has {n} images.")
    if layout not in ("kermany", "chestxray14"):
        raise ValueError(f"layout must be 'kermany' or 'chestxray14', got {layout!r}.")
    fmt = fmt or ("jpeg" if layout == "kermany" else "png")
    if fmt not in _EXT:
        raise ValueError(f"fmt must be one of {sorted(_EXT)}, got {fmt!r}.")
    rng = np.random.default_rng(seed_from(random_state))
    if patient_ids is None:
        patient_ids = np.sort(rng.integers(1, max(2, n // 2) + 1, n))
        patient_ids = patient_ids[rng.permutation(n)]
    patient_ids = np.asarray(patient_ids).ravel()
    if patient_ids.shape[0] != n:
        raise ValueError(
            f"patient_ids has {patient_ids.shape[0]} entries but X has {n} images."
        )
    root = os.fspath(root)
    ext = _EXT[fmt]
    paths = []
    if layout == "kermany":
        bad = sorted(set(y) - set(_KERMANY))
        if bad:
            raise ValueError(
                f"y has labels {bad} the kermany layout cannot hold; "
                f"allowed: {sorted(_KERMANY)}."
            )
        split = "train" if split is None else split
        splits = np.asarray(split, dtype=str)
        if splits.ndim == 0:
            splits = np.broadcast_to(splits, (n,))
        if splits.shape != (n,):
            raise ValueError(
                f"split must be a str or have one entry per image ({n}), "
                f"got shape {splits.shape}."
            )
        counter = {}
        for i in range(n):
            pid, label = int(patient_ids[i]), y[i]
            counter[label] = counter.get(label, 0) + 1
            k = counter[label]
            if label == "normal":
                name = f"NORMAL2-IM-{k:04d}-0001"
            else:
                name = f"person{pid}_{label}_{k}"
            folder = os.path.join(root, "chest_xray", splits[i], _KERMANY[label])
            os.makedirs(folder, exist_ok=True)
            paths.append(os.path.join(folder, name + ext))
            _save(paths[-1], images[i], fmt, pid)
        return np.asarray(paths, dtype=str)

    findings = []
    for label in y:
        parts = label.split("|")
        bad = [p for p in parts if p not in _NIH_NAMES]
        if bad:
            raise ValueError(
                f"y has labels {bad} the chestxray14 layout cannot hold; "
                f"allowed: {sorted(_NIH_NAMES)}."
            )
        findings.append("|".join(dict.fromkeys(_NIH_NAMES[p] for p in parts)))
    folder = os.path.join(root, "images")
    os.makedirs(folder, exist_ok=True)
    follow, rows = {}, []
    ages = rng.integers(18, 90, n)
    sexes = rng.choice(["M", "F"], n)
    for i in range(n):
        pid = int(patient_ids[i])
        f = follow.get(pid, 0)
        follow[pid] = f + 1
        name = f"{pid:08d}_{f:03d}{ext}"
        paths.append(os.path.join(folder, name))
        _save(paths[-1], images[i], fmt, pid)
        h, w = images[i].shape
        spacing = round(0.143 * 2500 / w, 6)
        rows.append(
            [
                name,
                findings[i],
                f,
                pid,
                int(ages[i]),
                sexes[i],
                "PA",
                w,
                h,
                spacing,
                spacing,
            ]
        )
    with open(os.path.join(root, "Data_Entry_2017.csv"), "w", newline="") as fh:
        fh.write(NIH_COLUMNS + "\n")
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return np.asarray(paths, dtype=str)
