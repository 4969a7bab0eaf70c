"""The common label space: the table against each real label file's vocabulary,
ChestX-ray14 (report-mined and expert labels) on real rows, pooling."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GroupShuffleSplit

from skcxr.datasets import (
    CHESTXRAY14_FINDINGS,
    COMMON_CLASSES,
    DATASET_NAMES,
    LABEL_TABLE,
    UNMAPPED_LABELS,
    concat_datasets,
    load_chestxray14,
    load_chexpert,
)
from skcxr.datasets._labels import default_classes, render_rst_table

from ._public_data import (
    PNG8,
    build_chexpert,
    head_rows,
    skipped,
    write_csv,
    write_file,
    xrv_data,
)

pd = pytest.importorskip("pandas")
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------ the table vs. the vocabularies
def _vocabulary(dataset):
    """Every label name that occurs in the data set's real label file."""
    if dataset == "chestxray14":
        df = pd.read_csv(
            xrv_data("Data_Entry_2017_v2020.csv.gz"), usecols=["Finding Labels"]
        )
        return set(df["Finding Labels"].str.split("|").explode())
    if dataset in ("chexpert", "mimic_cxr"):  # MIMIC-CXR-JPG uses the same names
        header, _ = head_rows(xrv_data("chexpert_train.csv.gz"), 1)
        return set(header[5:])
    if dataset == "padchest":
        df = pd.read_csv(
            xrv_data("PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"),
            usecols=["Labels"],
        )
        found = set()
        for text in df["Labels"].dropna().unique():
            found |= {label.strip() for label in ast.literal_eval(text)}
        return found
    if dataset == "vindr_cxr":
        df = pd.read_csv(xrv_data("vinbigdata-train.csv.gz"), usecols=["class_name"])
        return set(df["class_name"])
    if dataset == "nih_google2019":
        header, _ = head_rows(xrv_data("google2019_nih-chest-xray-labels.csv.gz"), 1)
        # the columns between NIH's metadata and "Set Id"
        return set(header[header.index("y]") + 1 : header.index("Set Id")])
    if dataset == "rsna_pneumonia":  # Target 1 and the three detailed classes
        df = pd.read_csv(xrv_data("kaggle_stage_2_train_labels.csv.zip"))
        assert set(df["Target"]) == {0, 1}
        return {"Lung Opacity", "Normal", "No Lung Opacity / Not Normal"}
    if dataset == "siim_pneumothorax":
        df = pd.read_csv(xrv_data("siim-pneumothorax-train-rle.csv.gz"))
        assert (df[" EncodedPixels"].str.strip() != "-1").any()
        return {"Pneumothorax"}
    raise AssertionError(dataset)


@pytest.mark.parametrize("dataset", list(DATASET_NAMES))
def test_table_covers_each_real_vocabulary(dataset):
    vocabulary = _vocabulary(dataset)
    mapped = {name for names in LABEL_TABLE.values() for name in names.get(dataset, ())}
    unmapped = set(UNMAPPED_LABELS[dataset])
    assert not mapped & unmapped, "a label is both mapped and not mapped"
    assert vocabulary - mapped - unmapped == set(), "labels neither mapped nor listed"
    assert mapped - vocabulary == set(), "mapped names that the file never uses"
    assert unmapped - vocabulary == set(), "unmapped names that the file never uses"


def test_common_names_and_defaults():
    assert COMMON_CLASSES == tuple(sorted(COMMON_CLASSES))
    assert default_classes("chestxray14") == list(CHESTXRAY14_FINDINGS)
    # the same finding under each data set's own name
    effusion = LABEL_TABLE["Effusion"]
    assert effusion["chestxray14"] == ("Effusion",)
    assert effusion["chexpert"] == effusion["mimic_cxr"] == ("Pleural Effusion",)
    assert "pleural effusion" in effusion["padchest"]
    assert effusion["vindr_cxr"] == ("Pleural effusion",)
    for dataset in DATASET_NAMES:
        classes = default_classes(dataset)
        assert "No Finding" not in classes and classes
    # a union of two labelled findings is asked for by name, not a default
    assert "Nodule/Mass" not in default_classes("chestxray14")
    assert "Nodule/Mass" in default_classes("vindr_cxr")


def test_label_table_is_read_only():
    with pytest.raises(TypeError):
        LABEL_TABLE["Effusion"] = {}
    with pytest.raises(TypeError):
        LABEL_TABLE["Effusion"]["chexpert"] = ("x",)


def test_docs_render_the_table():
    page = (ROOT / "docs" / "user_guide" / "datasets.rst").read_text()
    assert render_rst_table() in page


# --------------------------------------------------- ChestX-ray14 on real rows
NIH_ROWS = 1500


@pytest.fixture(scope="module")
def nih(tmp_path_factory):
    root = tmp_path_factory.mktemp("nih")
    header, rows = head_rows(xrv_data("Data_Entry_2017_v2020.csv.gz"), NIH_ROWS)
    write_csv(root / "Data_Entry_2017_v2020.csv", header, rows)
    missing = []
    for i, row in enumerate(rows):
        if skipped(i, 10):
            missing.append(row[0])
        else:
            write_file(root / "images" / row[0], PNG8)
    return root, missing


def test_chestxray14_real_rows(nih):
    root, missing = nih
    with pytest.warns(UserWarning, match=r"150 of the 1500"):
        data = load_chestxray14(root, on_missing="skip")
    df = pd.read_csv(root / "Data_Entry_2017_v2020.csv")
    kept = df[~df["Image Index"].isin(missing)]
    assert (data.n_rows, data.n_missing, len(data.paths)) == (1500, 150, 1350)
    found = kept["Finding Labels"].str.split("|")
    for j, name in enumerate(data.classes):
        assert data.labels[:, j].sum() == found.map(lambda f, n=name: n in f).sum()
    assert not np.isnan(data.labels).any()
    assert len(set(data.patient_ids)) == kept["Patient ID"].nunique()
    np.testing.assert_array_equal(
        data.study_ids, kept["Image Index"].str[:-4].to_numpy()
    )
    np.testing.assert_array_equal(data.views, kept["View Position"].to_numpy())
    np.testing.assert_array_equal(data.sex, kept["Patient Gender"].to_numpy())
    np.testing.assert_array_equal(data.age, kept["Patient Age"].astype(float))
    assert data.dataset == "chestxray14" and data.split is None
    with pytest.warns(UserWarning):
        pa = load_chestxray14(root, on_missing="skip", views="PA")
    assert pa.n_excluded == (df["View Position"] != "PA").sum()
    assert len(pa.paths) + pa.n_excluded + pa.n_missing == NIH_ROWS


def test_chestxray14_common_names_and_errors(nih):
    root, _ = nih
    with pytest.warns(UserWarning):
        data = load_chestxray14(
            root, classes=["Nodule/Mass", "Lung Opacity"], on_missing="skip"
        )
    df = pd.read_csv(root / "Data_Entry_2017_v2020.csv")
    kept = df[df["Image Index"].isin([Path(p).name for p in data.paths])]
    either = kept["Finding Labels"].str.contains(r"\b(?:Nodule|Mass)\b")
    np.testing.assert_array_equal(data.labels[:, 0], either.astype(float))
    assert np.isnan(data.labels[:, 1]).all()  # ChestX-ray14 has no Lung Opacity
    with pytest.raises(ValueError, match="did you mean 'Effusion'"):
        load_chestxray14(root, classes=["Pleural Effusion"])
    with pytest.raises(ValueError, match="did you mean 'Pleural_Thickening'"):
        load_chestxray14(root, classes=["Pleural Thickening"])


GOOGLE_ROWS = 800


def test_chestxray14_google2019_expert_labels(tmp_path):
    header, rows = head_rows(
        xrv_data("google2019_nih-chest-xray-labels.csv.gz"), GOOGLE_ROWS
    )
    write_csv(tmp_path / "google2019_nih-chest-xray-labels.csv", header, rows)
    for row in rows:
        write_file(tmp_path / "images_001" / "images" / row[0], PNG8)
    data = load_chestxray14(tmp_path, labels="google2019")
    df = pd.read_csv(tmp_path / "google2019_nih-chest-xray-labels.csv")
    assert data.dataset == "nih_google2019" and len(data.paths) == GOOGLE_ROWS
    column = {
        "Fracture": "Fracture",
        "Pneumothorax": "Pneumothorax",
        "Lung Opacity": "Airspace opacity",
        "Nodule/Mass": "Nodule or mass",
    }
    assert sorted(column) == data.classes.tolist()
    for j, common in enumerate(data.classes):
        want = (df[column[common]] == "YES").astype(float)
        np.testing.assert_array_equal(data.labels[:, j], want, err_msg=common)
    split = df["Set Id"].map({"val": "val", "test": "test"})
    np.testing.assert_array_equal(data.split, split.to_numpy())
    assert len(set(data.patient_ids)) == df["Patient ID"].nunique()
    with pytest.raises(ValueError, match="single_label='drop' needs labels='nih'"):
        load_chestxray14(tmp_path, labels="google2019", single_label="drop")
    with pytest.raises(ValueError, match="No expert label file"):
        load_chestxray14(tmp_path / "images_001", labels="google2019")


def test_google2019_release_files_blank_cells_and_patients_from_names(tmp_path):
    head = "Image Index,Fracture,Pneumothorax,Airspace opacity,Nodule or mass\n"
    (tmp_path / "four_findings_expert_labels_test_labels.csv").write_text(
        head + "00000013_008.png,NO,NO,YES,\n"
    )
    (tmp_path / "four_findings_expert_labels_validation_labels.csv").write_text(
        head + "00000032_002.png,YES,NO,NO,NO\n"
    )
    for name in ("00000013_008.png", "00000032_002.png"):
        write_file(tmp_path / name, PNG8)
    data = load_chestxray14(tmp_path, labels="google2019")
    assert data.split.tolist() == ["test", "val"]
    assert data.patient_ids.tolist() == [13, 32]
    np.testing.assert_array_equal(
        data.labels, [[0, 1, np.nan, 0], [1, 0, 0, 0]]
    )  # a blank expert cell is unknown
    assert data.findings == [["Airspace opacity"], ["Fracture"]]


# ------------------------------------------------------------------- pooling
def test_concat_datasets_pools_on_the_union_of_classes(nih, tmp_path):
    root, _ = nih
    build_chexpert(tmp_path, 300)
    with pytest.warns(UserWarning):
        nih_data = load_chestxray14(root, on_missing="skip")
        chexpert = load_chexpert(tmp_path, split=None, on_missing="skip")
    pooled = concat_datasets(nih_data, chexpert)
    n_nih, n_chex = len(nih_data.paths), len(chexpert.paths)
    assert len(pooled.paths) == n_nih + n_chex
    assert pooled.classes.tolist()[:14] == list(CHESTXRAY14_FINDINGS)
    assert set(pooled.classes) == set(nih_data.classes) | set(chexpert.classes)
    col = {c: j for j, c in enumerate(pooled.classes)}
    assert np.isnan(pooled.labels[n_nih:, col["Emphysema"]]).all()
    assert np.isnan(pooled.labels[:n_nih, col["Support Devices"]]).all()
    np.testing.assert_array_equal(
        pooled.labels[:n_nih, col["Effusion"]],
        nih_data.labels[:, list(nih_data.classes).index("Effusion")],
    )
    np.testing.assert_array_equal(
        pooled.labels[n_nih:, col["Effusion"]],
        chexpert.labels[:, list(chexpert.classes).index("Effusion")],
    )
    assert pooled.source.tolist() == ["chestxray14"] * n_nih + ["chexpert"] * n_chex
    assert pooled.patient_ids[0] == f"chestxray14:{nih_data.patient_ids[0]}"
    assert set(pooled.split) == {"unassigned", "train", "val"}
    np.testing.assert_array_equal(pooled.metadata["index"][n_nih:], np.arange(n_chex))
    assert pooled.n_missing == nih_data.n_missing + chexpert.n_missing
    train, test = next(
        GroupShuffleSplit(test_size=0.3, random_state=0).split(
            pooled.paths, groups=pooled.patient_ids
        )
    )
    assert not set(pooled.patient_ids[train]) & set(pooled.patient_ids[test])
    # a source name per Bunch; the same name shares the patients
    same = concat_datasets(chexpert, chexpert, names=["a", "a"])
    assert len(set(same.patient_ids)) == len(set(chexpert.patient_ids))
    with pytest.raises(ValueError, match="names has 1 entries for 2"):
        concat_datasets(chexpert, chexpert, names=["a"])
    with pytest.raises(ValueError, match="at least one"):
        concat_datasets()
    with pytest.raises(ValueError, match=re.escape("lacks ['labels'")):
        concat_datasets({"paths": []})


def test_loaders_do_not_import_torch(tmp_path):
    """``import skcxr.datasets`` and a loader call leave torch unimported."""
    (tmp_path / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\na,,,,,0\n"
    )
    write_file(tmp_path / "stage_2_train_images" / "a.png", PNG8)
    code = (
        "import sys, skcxr.datasets as d\n"
        "for name in d.__all__: getattr(d, name)\n"
        f"d.load_rsna_pneumonia({str(tmp_path)!r}, headers=None)\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert out.stdout.strip() == "False"
