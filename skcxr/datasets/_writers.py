"""Write images as files in the layouts of the real chest X-ray data sets."""

import csv
import datetime
import os
from numbers import Real

import numpy as np
from PIL import Image
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ..utils._random import seed_from
from ..utils._split import holdout_split
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
    from pydicom.dataset import FileDataset, FileMetaDataset
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


@validate_params(
    {
        "root": [str, os.PathLike],
        "X": ["array-like"],
        "y": ["array-like"],
        "layout": [StrOptions({"kermany", "chestxray14"})],
        "fmt": [StrOptions(set(_EXT)), None],
        "split": [str, "array-like", None],
        "patient_ids": ["array-like", None],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def write_chest_xrays(
    root,
    X,
    y,
    *,
    layout="kermany",
    fmt=None,
    split=None,
    patient_ids=None,
    test_size=0.2,
    random_state=None,
):
    """Write images and labels to files in a real data set's folder layout.

    The files can then be read back with :func:`load_kermany` or
    :func:`load_chestxray14`, which recover the labels, the patients and the
    official split.

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
        ``"|"``-joined combinations (several findings on one image).
    layout : {"kermany", "chestxray14"}, default="kermany"
        ``"kermany"`` (Kermany et al. 2018):
        ``root/chest_xray/{split}/{NORMAL|PNEUMONIA}/`` with the data set's
        file names, which encode the patient: ``IM-{patient}-{image}.jpeg`` or
        ``NORMAL2-IM-{patient}-{image}.jpeg`` for normal images,
        ``person{patient}_{bacteria|virus}_{image}.jpeg`` for pneumonia.
        ``"chestxray14"`` (Wang et al. 2017): ``root/images/00000001_000.png``
        (patient, follow-up), ``root/Data_Entry_2017.csv`` with the NIH
        columns, and the official split as ``root/train_val_list.txt`` and
        ``root/test_list.txt`` (one file name a line).
    fmt : {"jpeg", "png", "png16", "dicom"}, default=None
        File format: 8-bit JPEG, 8- or 16-bit PNG, or DICOM (Digital X-Ray,
        MONOCHROME2, 12 bits stored, ``.dcm``). ``None`` means the layout's
        own format (JPEG for Kermany, PNG for ChestX-ray14).
    split : str or array-like of str, default=None
        Official split: one name for all images or one per image, among
        ``"train"``, ``"val"``, ``"test"`` (Kermany folders) or ``"train"``,
        ``"test"`` (ChestX-ray14 lists). ``None`` draws a patient-grouped split
        (no patient on both sides, classes stratified when possible): about
        ``test_size`` of the images go to ``"test"``, the rest to ``"train"``.
    patient_ids : array-like of int, default=None
        Patient of each image (images of one patient become follow-ups).
        ``None`` draws patients owning one to a few images each (for Kermany,
        all of one label).
    test_size : float in (0, 1), default=0.2
        Fraction held out as ``"test"`` when ``split`` is None (NIH's
        ``test_list.txt`` holds about 23% of the images).
    random_state : int, RandomState instance or None, default=None
        Seed for the drawn patients, split, ages and sexes.

    Returns
    -------
    paths : ndarray of str, shape (n,)
        The written files, aligned with ``X``.

    Examples
    --------
    >>> import tempfile
    >>> from skcxr.datasets import load_kermany, make_chest_xrays, write_chest_xrays
    >>> X, y = make_chest_xrays(20, size=32, random_state=0)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     paths = write_chest_xrays(root, X, y, random_state=0)
    ...     data = load_kermany(root, labels="three_class", return_X_y=False)
    >>> sorted(set(data.split.tolist())), sorted(data.target) == sorted(y)
    (['test', 'train'], True)
    >>> train = set(data.patient_ids[data.split == "train"])
    >>> train & set(data.patient_ids[data.split == "test"])
    set()
    """
    images, _ = check_images(X)
    y = np.asarray(y).astype(str)
    n = len(images)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"y must hold one label per image ({n}), got shape {y.shape}; join "
            "several findings of an image with '|'."
        )
    fmt = fmt or ("jpeg" if layout == "kermany" else "png")
    if layout == "kermany":
        allowed, bad = _KERMANY, sorted(set(y) - set(_KERMANY))
    else:
        allowed = _NIH_NAMES
        bad = sorted({p for label in y for p in label.split("|")} - set(allowed))
    if bad:
        raise ValueError(
            f"y has labels {bad} the {layout} layout cannot hold; "
            f"allowed: {sorted(allowed)}."
        )
    rng = np.random.default_rng(seed_from(random_state))
    if patient_ids is None:
        patient_ids = _draw_patients(rng, n, y if layout == "kermany" else None)
    patient_ids = np.asarray(patient_ids).ravel()
    if patient_ids.shape[0] != n:
        raise ValueError(
            f"patient_ids has {patient_ids.shape[0]} entries but X has {n} images."
        )
    if patient_ids.dtype.kind not in "iu" or (patient_ids < 0).any():
        raise ValueError(
            "patient_ids must be non-negative integers (the number in the file "
            f"names), got {patient_ids[:5].tolist()}."
        )
    splits = _splits(split, y, patient_ids, layout, test_size, rng)
    root = os.fspath(root)
    if layout == "kermany":
        return _write_kermany(root, images, y, patient_ids, splits, fmt, rng)
    return _write_nih(root, images, y, patient_ids, splits, fmt, rng)


def _draw_patients(rng, n, labels=None):
    """Patient ids 1..P owning about two images each (one label each if ``labels``)."""
    pids = np.sort(rng.integers(1, max(2, n // 2) + 1, n))[rng.permutation(n)]
    keys = pids.astype(str) if labels is None else np.char.add(pids.astype(str), labels)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=int)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    return rank[inverse]  # numbered in order of first image


def _splits(split, y, patient_ids, layout, test_size, rng):
    """The split of every image: given, or drawn patient-grouped."""
    n = len(y)
    allowed = ("train", "val", "test") if layout == "kermany" else ("train", "test")
    if split is None:
        splits = np.full(n, "train", dtype="<U5")
        if n >= 2 and len(np.unique(patient_ids)) >= 2:
            _, test = holdout_split(
                y,
                test_size=test_size,
                groups=patient_ids,
                random_state=int(rng.integers(np.iinfo(np.int32).max)),
            )
            splits[test] = "test"
        return splits
    splits = np.asarray(split, dtype=str)
    if splits.ndim == 0:
        splits = np.full(n, splits.item(), dtype=splits.dtype)
    if splits.shape != (n,):
        raise ValueError(
            f"split must be a str or have one entry per image ({n}), "
            f"got shape {splits.shape}."
        )
    bad = sorted(set(splits.tolist()) - set(allowed))
    if bad:
        raise ValueError(
            f"split has names {bad} the {layout} layout cannot hold; "
            f"allowed: {list(allowed)}."
        )
    return splits


def _write_kermany(root, images, y, patient_ids, splits, fmt, rng):
    ext = _EXT[fmt]
    # One naming series per patient for normal images, as in the release.
    series = {
        pid: ("NORMAL2-" if rng.random() < 0.5 else "")
        for pid in np.unique(patient_ids[y == "normal"]).tolist()
    }
    per_kind, per_patient, paths = {}, {}, []
    for i in range(len(y)):
        pid, label = int(patient_ids[i]), y[i]
        if label == "normal":
            k = per_patient[pid] = per_patient.get(pid, 0) + 1
            name = f"{series[pid]}IM-{pid:04d}-{k:04d}"
        else:
            k = per_kind[label] = per_kind.get(label, 0) + 1
            name = f"person{pid}_{label}_{k}"
        folder = os.path.join(root, "chest_xray", splits[i], _KERMANY[label])
        os.makedirs(folder, exist_ok=True)
        paths.append(os.path.join(folder, name + ext))
        _save(paths[-1], images[i], fmt, pid)
    return np.asarray(paths, dtype=str)


def _write_nih(root, images, y, patient_ids, splits, fmt, rng):
    ext = _EXT[fmt]
    n = len(y)
    folder = os.path.join(root, "images")
    os.makedirs(folder, exist_ok=True)
    follow, rows, paths = {}, [], []
    lists = {"train": [], "test": []}
    ages = rng.integers(18, 90, n)
    sexes = rng.choice(["M", "F"], n)
    for i in range(n):
        pid = int(patient_ids[i])
        f = follow.get(pid, 0)
        follow[pid] = f + 1
        name = f"{pid:08d}_{f:03d}{ext}"
        paths.append(os.path.join(folder, name))
        lists[splits[i]].append(name)
        _save(paths[-1], images[i], fmt, pid)
        h, w = images[i].shape
        spacing = round(0.143 * 2500 / w, 6)
        found = [_NIH_NAMES[p] for p in y[i].split("|") if p != "normal"]
        findings = "|".join(dict.fromkeys(found)) or "No Finding"
        rows.append(
            [name, findings, f, pid, int(ages[i]), sexes[i], "PA", w, h]
            + [spacing, spacing]
        )
    with open(os.path.join(root, "Data_Entry_2017.csv"), "w", newline="") as fh:
        fh.write(NIH_COLUMNS + "\n")
        csv.writer(fh, lineterminator="\n").writerows(rows)
    for side, list_name in (("train", "train_val_list.txt"), ("test", "test_list.txt")):
        with open(os.path.join(root, list_name), "w", newline="") as fh:
            fh.writelines(f"{name}\n" for name in sorted(lists[side]))
    return np.asarray(paths, dtype=str)
