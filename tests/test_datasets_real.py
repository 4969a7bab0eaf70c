"""Tests of the Kermany and NIH ChestX-ray14 loaders and of the shipped sample."""

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import GroupKFold

from skcxr.datasets import (
    CHESTXRAY14_FINDINGS,
    CHESTXRAY14_NO_FINDING,
    kermany_patient_id,
    load_chestxray14,
    load_kermany,
    load_sample_images,
)
from skcxr.datasets._sample import SAMPLE_ROOT


def _touch_image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (4, 4), 128).save(
        path, format="PNG" if path.suffix == ".png" else "JPEG"
    )
    return path


@pytest.fixture
def kermany(tmp_path):
    base = tmp_path / "download" / "chest_xray"
    files = {
        "train/NORMAL/IM-0115-0001.jpeg",
        "train/NORMAL/NORMAL2-IM-0001-0001.jpeg",
        "train/PNEUMONIA/person1_bacteria_1.jpeg",
        "train/PNEUMONIA/person1_virus_6.jpeg",
        "train/PNEUMONIA/person22_virus_55.jpeg",
        "val/NORMAL/NORMAL2-IM-1427-0001.jpeg",
        "val/PNEUMONIA/person1946_bacteria_4874.jpeg",
        "test/NORMAL/IM-0001-0001.jpeg",
        "test/PNEUMONIA/person100_bacteria_475.jpeg",
    }
    for name in files:
        _touch_image(base / name)
    (base / "train" / "NORMAL" / ".DS_Store").write_bytes(b"junk")
    (base / "train" / "PNEUMONIA" / "notes.txt").write_text("not an image")
    return base


def test_kermany_binary_and_three_class(kermany):
    paths, y = load_kermany(kermany)
    assert len(paths) == 9
    assert Counter(y.tolist()) == {"NORMAL": 4, "PNEUMONIA": 5}
    assert all(Path(p).is_file() for p in paths)
    paths3, y3 = load_kermany(kermany, labels="three_class")
    np.testing.assert_array_equal(paths3, paths)
    assert Counter(y3.tolist()) == {"normal": 4, "bacteria": 3, "virus": 2}
    for p, label in zip(paths3, y3):
        name = Path(p).name
        assert label in name or (label == "normal" and "PNEUMONIA" not in p)


def test_kermany_root_may_be_the_parent(kermany):
    a = load_kermany(kermany)
    b = load_kermany(kermany.parent)
    np.testing.assert_array_equal(a[0], b[0])


def test_kermany_splits(kermany):
    paths, y, split = load_kermany(kermany, return_split=True)
    assert split.tolist() == ["train"] * 5 + ["val"] * 2 + ["test"] * 2
    paths, y = load_kermany(kermany, split="val")
    assert len(paths) == 2 and all("/val/" in p.replace("\\", "/") for p in paths)
    paths, y, split = load_kermany(kermany, split=["test", "val"], return_split=True)
    assert sorted(set(split.tolist())) == ["test", "val"] and len(paths) == 4


def test_kermany_errors(kermany, tmp_path):
    with pytest.raises(ValueError, match="labels"):
        load_kermany(kermany, labels="multi")
    with pytest.raises(ValueError, match="split"):
        load_kermany(kermany, split="validation")
    with pytest.raises(ValueError, match="not a folder"):
        load_kermany(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="No Kermany layout"):
        load_kermany(tmp_path)
    _touch_image(kermany / "train" / "PNEUMONIA" / "person3_unknown_9.jpeg")
    with pytest.raises(ValueError, match="person3_unknown_9.jpeg"):
        load_kermany(kermany, labels="three_class")
    assert len(load_kermany(kermany)[0]) == 10  # binary labels do not need the kind

    empty = tmp_path / "empty" / "chest_xray"
    (empty / "train" / "NORMAL").mkdir(parents=True)
    (empty / "train" / "PNEUMONIA").mkdir()
    with pytest.raises(ValueError, match="No image"):
        load_kermany(empty)
    (empty / "val").mkdir()
    with pytest.raises(ValueError, match="neither a NORMAL nor a PNEUMONIA"):
        load_kermany(empty, split="val")
    with pytest.raises(ValueError, match="'test' not found"):
        load_kermany(empty, split="test")


def test_shipped_sample_files():
    paths, y = load_sample_images()
    assert len(paths) == 16 and (SAMPLE_ROOT / "README.md").is_file()
    assert "CC BY 4.0" in (SAMPLE_ROOT / "README.md").read_text()
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.mode == "L" and max(im.size) == 512
    names = sorted(Path(p).name for p in paths)
    assert (
        "person1946_bacteria_4875.jpeg" in names
        and "NORMAL2-IM-1427-0001.jpeg" in names
    )
    with pytest.raises(ValueError, match="labels"):
        load_sample_images(labels="nih")


# ---------------------------------------------------------------- ChestX-ray14
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
ROWS = [
    "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143,",
    "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143,",
    "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171,",
    "00000003_000.png,Hernia,0,3,81,F,PA,2582,2991,0.143,0.143,",
    "00000003_001.png,Effusion|Infiltration|Atelectasis,1,3,74,F,AP,"
    "2500,2048,0.168,0.168,",
    "00000004_000.png,Mass|Nodule,0,4,82,M,AP,2500,2048,0.168,0.168,",
]


def _nih(root, rows=ROWS, layout="nested", csv_name="Data_Entry_2017.csv"):
    root.mkdir(parents=True, exist_ok=True)
    (root / csv_name).write_text("\n".join([HEADER, *rows]) + "\n")
    for i, row in enumerate(rows):
        name = row.split(",")[0]
        folder = {"flat": root, "images": root / "images"}.get(layout)
        if folder is None:
            folder = root / f"images_{1 + i // 3:03d}" / "images"
        _touch_image(folder / name)
    return root


@pytest.mark.parametrize("layout", ["flat", "images", "nested"])
def test_chestxray14_layouts_and_labels(tmp_path, layout):
    data = load_chestxray14(_nih(tmp_path / "nih", layout=layout))
    assert data.classes.tolist() == list(CHESTXRAY14_FINDINGS)
    # float since the loaders share one label space (NaN = not labelled)
    assert data.labels.shape == (6, 14) and data.labels.dtype.kind == "f"
    assert not np.isnan(data.labels).any()
    assert data.findings[1] == ["Cardiomegaly", "Emphysema"] and data.findings[2] == []
    assert data.labels[2].sum() == 0
    col = {c: j for j, c in enumerate(data.classes)}
    assert data.labels[
        4, [col["Effusion"], col["Infiltration"], col["Atelectasis"]]
    ].tolist() == [1, 1, 1]
    assert data.labels.sum() == 9
    assert data.patient_ids.tolist() == [1, 1, 2, 3, 3, 4]
    assert [Path(p).name for p in data.paths] == [r.split(",")[0] for r in ROWS]
    assert all(Path(p).is_file() for p in data.paths)
    assert data.metadata["View Position"].tolist() == [
        "PA",
        "PA",
        "PA",
        "PA",
        "AP",
        "AP",
    ]
    assert data.metadata["Follow-up #"][1] == "1"
    assert data.metadata["OriginalImage[Height]"][0] == "2749"
    assert data.metadata["OriginalImagePixelSpacing[y]"][2] == "0.171"
    assert data.frame is None


def test_chestxray14_patient_groups_keep_patients_on_one_side(tmp_path):
    data = load_chestxray14(_nih(tmp_path / "nih"))
    for train, test in GroupKFold(n_splits=2).split(
        data.paths, groups=data.patient_ids
    ):
        assert not set(data.patient_ids[train]) & set(data.patient_ids[test])


def test_chestxray14_explicit_csv_classes_and_v2020_name(tmp_path):
    root = _nih(tmp_path / "nih", csv_name="Data_Entry_2017_v2020.csv")
    data = load_chestxray14(
        root,
        classes=[
            "Mass",
            "Cardiomegaly",
            "Emphysema",
            "Hernia",
            "Effusion",
            "Infiltration",
            "Atelectasis",
            "Nodule",
        ],
    )
    assert data.labels[:, 0].tolist() == [0, 0, 0, 0, 0, 1]
    other = load_chestxray14(root, csv=root / "Data_Entry_2017_v2020.csv")
    assert other.labels.shape == (6, 14)


def test_chestxray14_errors(tmp_path):
    root = _nih(tmp_path / "nih")
    for classes, match in [
        ([], "at least one"),
        (["Mass", "Mass"], "repeat"),
        (["Mass", "No Finding"], "No Finding"),
        ("Mass", "classes"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_chestxray14(root, classes=classes)
    with pytest.raises(ValueError, match="single_label"):
        load_chestxray14(root, single_label="keep")
    (root / "images_001" / "images" / "00000001_001.png").unlink()
    with pytest.raises(ValueError, match="00000001_001.png.*on_missing='skip'"):
        load_chestxray14(root)
    data = load_chestxray14(root, on_missing="skip")
    assert len(data.paths) == 5 and data.patient_ids.tolist() == [1, 2, 3, 3, 4]
    with pytest.raises(ValueError, match="on_missing"):
        load_chestxray14(root, on_missing="drop")
    with pytest.raises(ValueError, match="Data_Entry_2017.csv"):
        load_chestxray14(tmp_path)
    with pytest.raises(ValueError, match="not a file"):
        load_chestxray14(root, csv=root / "nope.csv")
    (tmp_path / "bad.csv").write_text("Image Index,Labels\nx.png,Mass\n")
    with pytest.raises(ValueError, match="Finding Labels"):
        load_chestxray14(root, csv=tmp_path / "bad.csv")


def test_chestxray14_as_frame(tmp_path):
    pytest.importorskip("pandas")
    data = load_chestxray14(_nih(tmp_path / "nih"), as_frame=True)
    assert list(data.frame["Image Index"]) == [r.split(",")[0] for r in ROWS]
    assert "path" in data.frame.columns
    kept = load_chestxray14(
        tmp_path / "nih", classes=["Hernia"], single_label="drop", as_frame=True
    )
    assert list(kept.frame["path"]) == kept.paths.tolist()


def test_chestxray14_as_frame_without_pandas_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas fails
    with pytest.raises(ImportError, match="pip install pandas"):
        load_chestxray14(_nih(tmp_path / "nih"), as_frame=True)


# ------------------------------------------------- patients and official splits
@pytest.mark.parametrize(
    "name, expected",
    [
        ("person1_bacteria_1.jpeg", "person1"),
        ("person1946_virus_4875.jpeg", "person1946"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("NORMAL2-IM-0381-0001.jpeg", "IM-0381"),
        ("NORMAL2-IM-0645-0001-0002.jpeg", "IM-0645"),
        ("Person7_Virus_3.JPEG", "person7"),
        ("chest_xray/test/NORMAL/IM-0001-0002.jpeg", "IM-0001"),
        ("scan_17.png", "scan_17"),
        ("IM-0115.jpeg", "IM-0115"),  # no image number: the stem
    ],
)
def test_kermany_patient_id(name, expected):
    assert kermany_patient_id(name) == expected
    assert kermany_patient_id(Path(name)) == expected


def test_kermany_patient_id_validates_its_argument():
    with pytest.raises(ValueError, match="filename"):
        kermany_patient_id(17)


def test_kermany_bunch_has_patients_and_official_split(kermany):
    data = load_kermany(kermany, labels="three_class", return_X_y=False)
    paths, y, split = load_kermany(kermany, labels="three_class", return_split=True)
    np.testing.assert_array_equal(data.paths, paths)
    np.testing.assert_array_equal(data.target, y)
    np.testing.assert_array_equal(data.split, split)
    assert data.target_names.tolist() == ["bacteria", "normal", "virus"]
    by_name = {Path(p).name: pid for p, pid in zip(data.paths, data.patient_ids)}
    assert by_name == {
        "IM-0115-0001.jpeg": "IM-0115",
        "NORMAL2-IM-0001-0001.jpeg": "IM-0001",
        "person1_bacteria_1.jpeg": "person1",
        "person1_virus_6.jpeg": "person1",
        "person22_virus_55.jpeg": "person22",
        "NORMAL2-IM-1427-0001.jpeg": "IM-1427",
        "person1946_bacteria_4874.jpeg": "person1946",
        "IM-0001-0001.jpeg": "IM-0001",
        "person100_bacteria_475.jpeg": "person100",
    }
    assert data.patient_ids.dtype.kind == "U"
    # return_split does not change the Bunch; split=... restricts it
    val = load_kermany(kermany, split="val", return_split=True, return_X_y=False)
    assert val.split.tolist() == ["val", "val"] and len(val.patient_ids) == 2


def test_kermany_parameter_validation(kermany):
    with pytest.raises(ValueError, match="root"):
        load_kermany(3)
    with pytest.raises(ValueError, match="return_X_y"):
        load_kermany(kermany, return_X_y="no")
    with pytest.raises(ValueError, match="split"):
        load_kermany(kermany, split=["train", "dev"])


def _write_lists(folder, train, test):
    (folder / "train_val_list.txt").write_text("".join(f"{n}\n" for n in train))
    (folder / "test_list.txt").write_text("".join(f"{n}\n" for n in test))


NAMES = [r.split(",")[0] for r in ROWS]


def test_chestxray14_official_split(tmp_path):
    root = _nih(tmp_path / "nih")
    assert load_chestxray14(root).split is None  # no list files
    _write_lists(root, NAMES[:3], NAMES[3:5])  # the last image is in neither
    data = load_chestxray14(root)
    assert data.split.tolist() == ["train"] * 3 + ["test"] * 2 + ["unassigned"]
    train = set(data.patient_ids[data.split == "train"])
    assert not train & set(data.patient_ids[data.split == "test"])
    # only the test list: every other image is unassigned
    (root / "train_val_list.txt").unlink()
    assert load_chestxray14(root).split.tolist() == ["unassigned"] * 3 + [
        "test"
    ] * 2 + ["unassigned"]


def test_chestxray14_lists_beside_the_csv_win(tmp_path):
    root = _nih(tmp_path / "nih")
    meta = tmp_path / "meta"
    meta.mkdir()
    (root / "Data_Entry_2017.csv").rename(meta / "Data_Entry_2017.csv")
    _write_lists(root, NAMES, [])
    _write_lists(meta, NAMES[2:], NAMES[:2])
    data = load_chestxray14(root, csv=meta / "Data_Entry_2017.csv")
    assert data.split.tolist() == ["test"] * 2 + ["train"] * 4


def test_chestxray14_image_in_both_lists_raises(tmp_path):
    root = _nih(tmp_path / "nih")
    _write_lists(root, NAMES, NAMES[:1])
    with pytest.raises(ValueError, match="00000001_000.png.*both|both.*00000001_000"):
        load_chestxray14(root)


def test_chestxray14_classes_subset_keeps_every_finding(tmp_path):
    data = load_chestxray14(_nih(tmp_path / "nih"), classes=["Cardiomegaly"])
    assert data.labels.shape == (6, 1)
    assert data.labels[:, 0].tolist() == [1, 1, 0, 0, 0, 0]
    assert data.findings[1] == ["Cardiomegaly", "Emphysema"]
    assert data.findings[4] == ["Effusion", "Infiltration", "Atelectasis"]
    assert data.target is None and data.target_names is None


def test_chestxray14_single_label_drop(tmp_path):
    root = _nih(tmp_path / "nih")
    _write_lists(root, NAMES[:3], NAMES[3:])
    full = load_chestxray14(root)
    data = load_chestxray14(
        root, classes=["Hernia", "Cardiomegaly"], single_label="drop"
    )
    # kept: one finding among classes, or no finding; dropped: several findings
    assert data.target.tolist() == ["Cardiomegaly", CHESTXRAY14_NO_FINDING, "Hernia"]
    assert data.target_names.tolist() == ["Cardiomegaly", "Hernia", "No Finding"]
    keep = [0, 2, 3]
    np.testing.assert_array_equal(data.paths, full.paths[keep])
    np.testing.assert_array_equal(data.patient_ids, full.patient_ids[keep])
    np.testing.assert_array_equal(data.split, full.split[keep])
    assert data.labels.tolist() == [[0, 1], [0, 0], [1, 0]]
    assert data.findings == [["Cardiomegaly"], [], ["Hernia"]]
    for column, values in data.metadata.items():
        np.testing.assert_array_equal(values, full.metadata[column][keep])
    # a finding outside classes drops the image, even when it is the only one
    only = load_chestxray14(root, classes=["Cardiomegaly"], single_label="drop")
    assert "Hernia" not in only.target and len(only.target) == 2
    # the four-class ChestX-ray14 task
    four = load_chestxray14(
        root, classes=["Atelectasis", "Effusion", "Infiltration"], single_label="drop"
    )
    assert four.target.tolist() == [CHESTXRAY14_NO_FINDING]
    multi = _nih(tmp_path / "multi", rows=[ROWS[1], ROWS[4]])
    with pytest.raises(ValueError, match="no finding or a single finding"):
        load_chestxray14(multi, single_label="drop")
