import csv
import os
import re

import numpy as np
import pytest
from PIL import Image

from skcxr.datasets import make_chest_xrays, write_chest_xrays
from skcxr.datasets._synthetic import CLASSES

ALL = CLASSES


def test_shapes_dtype_range():
    X, y = make_chest_xrays(7, size=40, random_state=0)
    assert X.shape == (7, 40, 40) and X.dtype == np.float32
    assert X.min() >= 0 and X.max() <= 1 and np.isfinite(X).all()
    assert y.shape == (7,) and y.dtype.kind == "U"
    assert set(y) <= {"normal", "bacteria", "virus"}


def test_deterministic_and_seed_dependent():
    a = make_chest_xrays(5, size=32, classes=ALL, return_masks=True, random_state=3)
    b = make_chest_xrays(5, size=32, classes=ALL, return_masks=True, random_state=3)
    c = make_chest_xrays(5, size=32, classes=ALL, return_masks=True, random_state=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_weights_give_exact_counts():
    _, y = make_chest_xrays(20, weights=[0.5, 0.25, 0.25], size=32, random_state=0)
    assert (np.sum(y == "normal"), np.sum(y == "bacteria"), np.sum(y == "virus")) == (
        10,
        5,
        5,
    )
    _, y = make_chest_xrays(
        10, classes=["normal", "virus"], weights=[0.8], size=32, random_state=0
    )
    assert np.sum(y == "normal") == 8 and np.sum(y == "virus") == 2


def test_every_class_renders_with_masks_inside_lungs():
    X, y, masks = make_chest_xrays(
        24, classes=ALL, size=64, difficulty=0.3, return_masks=True, random_state=1
    )
    assert set(y) == set(ALL) and masks.dtype == bool and masks.shape == X.shape
    assert not masks[y == "normal"].any()
    assert masks[y != "normal"].any(axis=(1, 2)).all()
    # lesions are in the chest, not in the outer image border
    assert not masks[:, :, :4].any() and not masks[:, :, -4:].any()
    # a finding whitens the lung where it is: lesion pixels are brighter than the
    # same pixels of an average normal image
    normal_mean = X[y == "normal"].mean(axis=0)
    for name in ("bacteria",):
        idx = np.flatnonzero(y == name)
        diff = [X[i][masks[i]].mean() - normal_mean[masks[i]].mean() for i in idx]
        assert np.mean(diff) > 0.03, name


def test_virus_is_bilateral():
    _, y, masks = make_chest_xrays(
        6, classes=["virus"], size=64, return_masks=True, random_state=2
    )
    half = masks.shape[2] // 2
    assert (
        masks[:, :, :half].any(axis=(1, 2)).all()
        and masks[:, :, half:].any(axis=(1, 2)).all()
    )


def _lesion_contrast(difficulty):
    X, y, masks = make_chest_xrays(
        30,
        classes=["normal", "bacteria"],
        size=48,
        difficulty=difficulty,
        return_masks=True,
        random_state=0,
    )
    ref = X[y == "normal"].mean(axis=0)
    return np.mean(
        [abs(X[i][m].mean() - ref[m].mean()) for i, m in enumerate(masks) if m.any()]
    )


def test_difficulty_shrinks_lesion_contrast():
    c0, c5, c9 = (_lesion_contrast(d) for d in (0.0, 0.5, 0.9))
    assert c0 > c5 > c9


def test_sizes_and_return_masks_false():
    for size in (32, 33, 100):
        X, y = make_chest_xrays(2, size=size, random_state=0)
        assert X.shape == (2, size, size)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"classes": ["normal", "covid"]}, "classes"),
        ({"classes": "normal"}, "classes"),
        ({"classes": ["normal", "normal"]}, "classes"),
        ({"classes": []}, "classes"),
        ({"difficulty": 1.5}, "difficulty"),
        ({"difficulty": -0.1}, "difficulty"),
        ({"weights": [0.5, 0.5, 0.2, 0.1]}, "weights"),
        ({"weights": [-1, 1, 1]}, "weights"),
        ({"weights": [0.9, 0.9]}, "weights"),
        ({"size": 16}, "size"),
        ({"size": 64.0}, "size"),
        ({"n_samples": 0}, "n_samples"),
        ({"return_masks": "yes"}, "return_masks"),
        ({"n_samples": True}, "n_samples"),
        ({"difficulty": True}, "difficulty"),
        ({"random_state": "zero"}, "random_state"),
    ],
)
def test_validation_errors(kwargs, match):
    kwargs = {"n_samples": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_chest_xrays(
            random_state=kwargs.pop("random_state", 0),
            size=kwargs.pop("size", 32),
            **kwargs,
        )


FINDINGS3 = ["effusion", "atelectasis", "infiltration"]


def test_multilabel_indicator_matrix_and_union_masks():
    X, Y, masks = make_chest_xrays(
        80,
        classes=FINDINGS3,
        multilabel=True,
        size=32,
        return_masks=True,
        random_state=0,
    )
    assert X.shape == (80, 32, 32) and Y.shape == (80, 3) and Y.dtype.kind == "i"
    assert set(np.unique(Y)) == {0, 1}
    n_findings = Y.sum(axis=1)
    # independent findings at 0.35 each: healthy images, and two or three at once
    assert (n_findings == 0).any() and (n_findings >= 2).any()
    assert np.all(np.abs(Y.mean(axis=0) - 0.35) < 0.15)
    area = masks.sum(axis=(1, 2))
    assert not area[n_findings == 0].any() and area[n_findings > 0].all()
    # the mask is the union: more findings cover more lung on average
    assert area[n_findings == 1].mean() < area[n_findings >= 2].mean()
    healthy = X[n_findings == 0].mean(axis=0)
    sick = [X[i][m].mean() - healthy[m].mean() for i, m in enumerate(masks) if m.any()]
    assert np.mean(sick) > 0  # findings whiten the lung


def test_multilabel_weights_columns_and_determinism():
    _, Y, masks = make_chest_xrays(
        6,
        classes=["virus", "effusion"],
        weights=[1.0, 0.0],
        multilabel=True,
        size=32,
        return_masks=True,
        random_state=1,
    )
    assert Y[:, 0].tolist() == [1] * 6 and Y[:, 1].tolist() == [0] * 6
    assert masks.any(axis=(1, 2)).all()
    a = make_chest_xrays(5, multilabel=True, size=32, random_state=2)
    b = make_chest_xrays(5, multilabel=True, size=32, random_state=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].shape == (5, 3)  # default findings: effusion, atelectasis, infiltration


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"classes": ["normal", "effusion"]}, "normal"),
        ({"classes": FINDINGS3, "weights": [0.5, 0.5]}, "weights"),
        ({"classes": FINDINGS3, "weights": [0.5, 0.5, 1.5]}, "weights"),
        ({"multilabel": "yes"}, "multilabel"),
    ],
)
def test_multilabel_validation_errors(kwargs, match):
    kwargs = {"multilabel": True, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_chest_xrays(2, size=32, random_state=0, **kwargs)


_KERMANY_NAME = re.compile(
    r"^((NORMAL2-)?IM-\d{4}-\d{4}|person\d+_(bacteria|virus)_\d+)\.(jpeg|png|dcm)$"
)


def _label_from_name(path):
    name = os.path.basename(path)
    assert _KERMANY_NAME.match(name), name
    return (
        "bacteria"
        if "_bacteria_" in name
        else "virus" if "_virus_" in name else "normal"
    )


def test_write_kermany_round_trip(tmp_path):
    X, y = make_chest_xrays(9, size=32, random_state=0)
    split = np.array(["train"] * 6 + ["test"] * 3)
    paths = write_chest_xrays(tmp_path, X, y, split=split, random_state=0)
    assert len(paths) == 9 and all(os.path.isfile(p) for p in paths)
    for p, label, s in zip(paths, y, split):
        rel = os.path.relpath(p, tmp_path).split(os.sep)
        assert rel[:2] == ["chest_xray", s]
        assert rel[2] == ("NORMAL" if label == "normal" else "PNEUMONIA")
        assert _label_from_name(p) == label
        with Image.open(p) as im:
            assert im.mode == "L" and im.size == (32, 32) and im.format == "JPEG"
    img = np.asarray(Image.open(paths[0]), dtype=np.float32) / 255
    assert np.abs(img - X[0]).mean() < 0.05
    try:
        from skcxr.datasets import load_kermany
    except (ImportError, AttributeError):  # pragma: no cover - loader not there yet
        return
    got_paths, got_y = load_kermany(tmp_path, labels="three_class")
    order = {os.path.realpath(p): lab for p, lab in zip(paths, y)}
    assert sorted(got_y) == sorted(y)
    assert all(order[os.path.realpath(p)] == lab for p, lab in zip(got_paths, got_y))


def test_write_kermany_rejects_other_classes(tmp_path):
    X, y = make_chest_xrays(2, classes=["effusion"], size=32, random_state=0)
    with pytest.raises(ValueError, match="kermany"):
        write_chest_xrays(tmp_path, X, y)
    with pytest.raises(ValueError, match="layout"):
        write_chest_xrays(tmp_path, X, y, layout="mimic")
    with pytest.raises(ValueError, match="fmt"):
        write_chest_xrays(tmp_path, X, y, layout="chestxray14", fmt="bmp")


def test_write_chestxray14_csv_and_png16(tmp_path):
    X, y = make_chest_xrays(
        6, classes=["normal", "effusion", "atelectasis"], size=32, random_state=0
    )
    paths = write_chest_xrays(
        tmp_path,
        X,
        y,
        layout="chestxray14",
        fmt="png16",
        patient_ids=[1, 1, 2, 2, 2, 3],
    )
    assert [os.path.basename(p) for p in paths] == [
        "00000001_000.png",
        "00000001_001.png",
        "00000002_000.png",
        "00000002_001.png",
        "00000002_002.png",
        "00000003_000.png",
    ]
    with Image.open(paths[0]) as im:
        arr = np.asarray(im)
    assert arr.dtype.itemsize == 2 and np.abs(arr / 65535 - X[0]).max() < 1e-3
    with open(tmp_path / "Data_Entry_2017.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:7] == [
        "Image Index",
        "Finding Labels",
        "Follow-up #",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
    ]
    assert rows[0][7:] == [
        "OriginalImage[Width",
        "Height]",
        "OriginalImagePixelSpacing[x",
        "y]",
    ]
    names = {
        "normal": "No Finding",
        "effusion": "Effusion",
        "atelectasis": "Atelectasis",
    }
    assert [r[1] for r in rows[1:]] == [names[v] for v in y]
    assert all(len(r) == 11 for r in rows)


def test_write_dicom(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    X, y = make_chest_xrays(2, size=32, random_state=0)
    paths = write_chest_xrays(tmp_path, X, y, fmt="dicom")
    assert all(p.endswith(".dcm") for p in paths)
    ds = pydicom.dcmread(paths[0])
    assert ds.file_meta.TransferSyntaxUID is not None
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsStored == 12
    arr = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(
        ds.RescaleIntercept
    )
    np.testing.assert_allclose(arr / 4095, X[0], atol=1e-3)
