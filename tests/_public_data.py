"""Fixture folders of the public data sets, made from their real label files.

The label files ship in torchxrayvision's wheel (``torchxrayvision/data``); it
is found without being imported (importing it imports torch), and tests that
need it are skipped with the reason when it is not installed. Each builder
copies the first rows of a real file into the data set's folder layout under
a temporary folder and writes a small generated image at most listed paths.
"""

import csv
import gzip
import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def xrv_data(name):
    """Path of a label file of torchxrayvision's wheel, or skip the test."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or spec.origin is None:
        pytest.skip(
            "torchxrayvision (the test extra) is not installed: its wheel "
            "holds the real label files these tests read"
        )
    path = Path(spec.origin).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"torchxrayvision's wheel lacks data/{name}")
    return path


def read_text(path):
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = archive.read(archive.namelist()[0])
    return data.decode("utf-8-sig")


def head_rows(path, n_rows=None):
    """Header and the first ``n_rows`` data rows of a real label file."""
    if str(path).endswith(".gz"):  # read only as far as needed
        fh = gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    else:
        fh = io.StringIO(read_text(path), newline="")
    with fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = []
        for row in reader:
            if n_rows is not None and len(rows) >= n_rows:
                break
            rows.append(row)
    return header, rows


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _image_bytes(bits=8, fmt="PNG"):
    buffer = io.BytesIO()
    pixels = np.full((8, 8), 30000 if bits == 16 else 128, f"uint{bits}")
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


PNG8 = _image_bytes()
PNG16 = _image_bytes(16)
JPEG = _image_bytes(fmt="JPEG")


def write_file(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_dicom(path, *, sex="", age="", view="", patient_id=""):
    """An 8 x 8 MONOCHROME2 DICOM file with these header values (as given:
    real sets store ages such as "43" where DICOM asks for "043Y")."""
    from pydicom.config import disable_value_validation
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    with disable_value_validation():
        for keyword, value in (
            ("PatientSex", sex),
            ("PatientAge", age),
            ("ViewPosition", view),
            ("PatientID", patient_id),
        ):
            if value:
                setattr(ds, keyword, value)
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.full((8, 8), 100, np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with disable_value_validation():
        ds.save_as(path, enforce_file_format=True)


def skipped(i, every):
    """Whether row ``i`` gets no image (every ``every``-th row, from the 3rd)."""
    return every and i % every == 2


CHEXPERT_META = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")


def build_chexpert(root, n_rows, every=10):
    """CheXpert-v1.0-small with the first rows of the real train.csv and 3
    hand-written rows of valid.csv; every ``every``-th train image missing.

    Returns the missing paths (relative to the data folder).
    """
    folder = root / "CheXpert-v1.0-small"
    header, rows = head_rows(xrv_data("chexpert_train.csv.gz"), n_rows)
    write_csv(folder / "train.csv", header, rows)
    prefix = "CheXpert-v1.0-small/valid/"
    valid = [
        [
            f"{prefix}patient64541/study1/view1_frontal.jpg",
            "Male",
            "73",
            "Frontal",
            "AP",
        ]
        + ["0.0"] * 14,
        [
            f"{prefix}patient64542/study1/view1_frontal.jpg",
            "Male",
            "70",
            "Frontal",
            "PA",
        ]
        + ["0.0", "0.0", "1.0"]
        + ["0.0"] * 11,
        [f"{prefix}patient64542/study1/view2_lateral.jpg", "Male", "70", "Lateral", ""]
        + ["0.0", "0.0", "1.0"]
        + ["0.0"] * 11,
    ]
    write_csv(folder / "valid.csv", header, valid)
    missing = []
    for i, row in enumerate(rows + valid):
        relative = row[0].split("/", 1)[1]
        if i < len(rows) and skipped(i, every):
            missing.append(relative)
            continue
        write_file(folder / relative, JPEG)
    return missing
