"""Folders written by write_chest_xrays read back with patients and official splits."""

import csv
import os
from collections import Counter

import numpy as np
import pytest

from skcxr.datasets import (
    kermany_patient_id,
    load_chestxray14,
    load_kermany,
    make_chest_xrays,
    write_chest_xrays,
)

FINDINGS3 = ["effusion", "atelectasis", "infiltration"]


def _by_path(paths, values):
    return {os.path.realpath(p): v for p, v in zip(paths, values)}


def test_kermany_folder_patients_and_grouped_split(tmp_path):
    X, y = make_chest_xrays(60, size=32, random_state=0)
    paths = write_chest_xrays(tmp_path, X, y, random_state=0)
    data = load_kermany(tmp_path, labels="three_class", return_X_y=False)
    assert len(data.paths) == 60
    label_of = _by_path(paths, y)
    assert all(
        label_of[os.path.realpath(p)] == t for p, t in zip(data.paths, data.target)
    )
    # drawn patients own several images, all of one label
    counts = Counter(data.patient_ids.tolist())
    assert max(counts.values()) >= 2 and len(counts) < 60
    for pid in counts:
        assert len(set(data.target[data.patient_ids == pid])) == 1
    # the drawn official split is train / test and no patient is on both sides
    assert set(data.split) == {"train", "test"}
    train = set(data.patient_ids[data.split == "train"])
    assert not train & set(data.patient_ids[data.split == "test"])
    assert 0.1 <= np.mean(data.split == "test") <= 0.3
    # stratified: every class is on both sides
    for side in ("train", "test"):
        assert set(data.target[data.split == side]) == set(y)


def test_kermany_file_names_encode_given_patients(tmp_path):
    X, y = make_chest_xrays(8, size=32, random_state=1)
    y = np.array(["normal"] * 3 + ["bacteria"] * 3 + ["virus"] * 2)
    pids = np.array([7, 7, 12, 3, 3, 3, 3, 40])
    paths = write_chest_xrays(tmp_path, X, y, patient_ids=pids, split="test")
    names = [os.path.basename(p) for p in paths]
    assert names[3:] == [
        "person3_bacteria_1.jpeg",
        "person3_bacteria_2.jpeg",
        "person3_bacteria_3.jpeg",
        "person3_virus_1.jpeg",
        "person40_virus_2.jpeg",
    ]
    assert [n.split("IM-")[1] for n in names[:3]] == [
        "0007-0001.jpeg",
        "0007-0002.jpeg",
        "0012-0001.jpeg",
    ]
    expected = ["IM-0007", "IM-0007", "IM-0012"] + ["person3"] * 4 + ["person40"]
    assert [kermany_patient_id(p) for p in paths] == expected
    data = load_kermany(tmp_path, return_X_y=False)
    assert set(data.split) == {"test"}
    assert sorted(data.patient_ids) == sorted(expected)


def test_chestxray14_folder_real_format_patients_and_official_split(tmp_path):
    X, Y = make_chest_xrays(
        80, classes=FINDINGS3, multilabel=True, size=32, random_state=0
    )
    y = np.array(["|".join(np.array(FINDINGS3)[row == 1]) or "normal" for row in Y])
    paths = write_chest_xrays(tmp_path, X, y, layout="chestxray14", random_state=0)
    with open(tmp_path / "Data_Entry_2017.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:4] == ["Image Index", "Finding Labels", "Follow-up #", "Patient ID"]
    assert {r[1] for r in rows[1:]} >= {"No Finding", "Effusion|Atelectasis"}
    classes = ["Effusion", "Atelectasis", "Infiltration"]
    data = load_chestxray14(tmp_path, classes=classes)
    np.testing.assert_array_equal(data.paths, paths)
    np.testing.assert_array_equal(data.labels, Y)
    # patients own several images, numbered as follow-ups
    counts = Counter(data.patient_ids.tolist())
    assert max(counts.values()) >= 2
    follow = data.metadata["Follow-up #"].astype(int)
    for pid, n in counts.items():
        assert sorted(follow[data.patient_ids == pid]) == list(range(n))
    # NIH's list files: a patient-grouped split, about 20% test
    assert set(data.split) == {"train", "test"}
    train = set(data.patient_ids[data.split == "train"])
    assert not train & set(data.patient_ids[data.split == "test"])
    assert 0.1 <= np.mean(data.split == "test") <= 0.3
    listed = (tmp_path / "test_list.txt").read_text().split()
    assert listed == sorted(listed)
    assert sorted(os.path.basename(p) for p in paths[data.split == "test"]) == listed
    # the single-label form keeps images with no finding or exactly one
    single = load_chestxray14(tmp_path, classes=classes, single_label="drop")
    keep = Y.sum(axis=1) <= 1
    assert len(single.target) == keep.sum()
    assert Counter(single.target)["No Finding"] == np.sum(Y.sum(axis=1) == 0)
    np.testing.assert_array_equal(single.split, data.split[keep])


def test_chestxray14_given_split_and_patients(tmp_path):
    X, y = make_chest_xrays(4, classes=["normal", "effusion"], size=32, random_state=0)
    split = ["train", "test", "train", "test"]
    write_chest_xrays(
        tmp_path, X, y, layout="chestxray14", split=split, patient_ids=[1, 2, 1, 2]
    )
    assert (tmp_path / "test_list.txt").read_text() == (
        "00000002_000.png\n00000002_001.png\n"
    )
    data = load_chestxray14(tmp_path)
    assert data.split.tolist() == split
    assert data.patient_ids.tolist() == [1, 2, 1, 2]


def test_writer_is_deterministic(tmp_path):
    X, y = make_chest_xrays(20, size=32, random_state=0)
    a = write_chest_xrays(tmp_path / "a", X, y, random_state=3)
    b = write_chest_xrays(tmp_path / "b", X, y, random_state=3)
    rel = [os.path.relpath(p, tmp_path / "a") for p in a]
    assert rel == [os.path.relpath(p, tmp_path / "b") for p in b]


def test_single_patient_goes_to_train(tmp_path):
    X, y = make_chest_xrays(2, classes=["normal"], size=32, random_state=0)
    write_chest_xrays(tmp_path, X, y, patient_ids=[5, 5])
    data = load_kermany(tmp_path, return_X_y=False)
    assert data.split.tolist() == ["train", "train"]
    assert data.patient_ids.tolist() == ["IM-0005", "IM-0005"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "val", "layout": "chestxray14"}, "split has names"),
        ({"split": "dev"}, "split has names"),
        ({"split": ["train"]}, "one entry per image"),
        ({"patient_ids": [1.5, 2.0]}, "patient_ids"),
        ({"patient_ids": [-1, 2]}, "patient_ids"),
        ({"patient_ids": [1]}, "patient_ids"),
        ({"test_size": 1.0}, "test_size"),
        ({"random_state": "x"}, "random_state"),
    ],
)
def test_writer_errors(tmp_path, kwargs, match):
    X, y = make_chest_xrays(2, size=32, random_state=0)
    with pytest.raises(ValueError, match=match):
        write_chest_xrays(tmp_path, X, y, **kwargs)


def test_writer_rejects_a_label_matrix(tmp_path):
    X, Y = make_chest_xrays(2, multilabel=True, size=32, random_state=0)
    with pytest.raises(ValueError, match="join"):
        write_chest_xrays(tmp_path, X, Y, layout="chestxray14")
