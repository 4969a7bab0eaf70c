"""The loaders read what torchxrayvision's dataset classes read, label by label.

torchxrayvision (Cohen et al. 2022) is the reference: on the same rows of the
same real label files, its ``labels`` and ours agree wherever it reads a
finding (its view filter and one-image-per-patient reduction turned off).
It imports torch, so these checks live in their own file.
"""

import warnings

import numpy as np
import pytest

from skcxr.datasets import (
    LABEL_TABLE,
    UNMAPPED_LABELS,
    load_chestxray14,
    load_chexpert,
    load_vindr_cxr,
)

from ._public_data import (
    PNG8,
    build_chexpert,
    head_rows,
    write_csv,
    write_file,
    xrv_data,
)

xrv = pytest.importorskip("torchxrayvision")
pytest.importorskip("pandas")


def _quiet(loader, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loader(*args, **kwargs)


def test_chexpert_like_chex_dataset(tmp_path):
    missing = build_chexpert(tmp_path, 1500)
    folder = tmp_path / "CheXpert-v1.0-small"
    theirs = xrv.datasets.CheX_Dataset(
        imgpath=str(folder),
        csvpath=str(folder / "train.csv"),
        views=["*"],
        unique_patients=False,
    )
    ours = _quiet(load_chexpert, tmp_path, on_missing="skip")
    on_disk = ~theirs.csv["Path"].str.split("/", n=1).str[1].isin(missing)
    # its names are the common names (it calls Pleural Effusion "Effusion")
    assert set(theirs.pathologies) == set(ours.classes)
    for j, name in enumerate(theirs.pathologies):
        mine = ours.labels[:, list(ours.classes).index(name)]
        np.testing.assert_array_equal(
            mine, theirs.labels[on_disk.to_numpy(), j], err_msg=name
        )


def test_chestxray14_like_nih_dataset(tmp_path):
    header, rows = head_rows(xrv_data("Data_Entry_2017_v2020.csv.gz"), 1500)
    write_csv(tmp_path / "Data_Entry_2017.csv", header, rows)
    for row in rows:
        write_file(tmp_path / "images" / row[0], PNG8)
    theirs = xrv.datasets.NIH_Dataset(
        imgpath=str(tmp_path / "images"),
        csvpath=str(tmp_path / "Data_Entry_2017.csv"),
        views=["*"],
        unique_patients=False,
    )
    ours = load_chestxray14(tmp_path)
    assert list(theirs.pathologies) == ours.classes.tolist()
    np.testing.assert_array_equal(ours.labels, theirs.labels)
    np.testing.assert_array_equal(ours.age, theirs.csv["age_years"])


def test_vindr_any_reader_like_vindr_dataset(tmp_path):
    import pandas as pd

    boxes = pd.read_csv(xrv_data("vinbigdata-train.csv.gz"))
    ids = list(dict.fromkeys(boxes["image_id"]))[:400]
    boxes[boxes["image_id"].isin(ids)].to_csv(tmp_path / "train.csv", index=False)
    for image_id in ids:
        write_file(tmp_path / "train" / f"{image_id}.png", PNG8)
    theirs = xrv.datasets.VinDr_Dataset(
        imgpath=str(tmp_path / "train"), csvpath=str(tmp_path / "train.csv")
    )
    ours = load_vindr_cxr(
        tmp_path,
        readers="any",  # torchxrayvision keeps a class any reader marked
        headers=None,
        classes=[c for c in LABEL_TABLE if "vindr_cxr" in LABEL_TABLE[c]],
    )
    order = [ours.patient_ids.tolist().index(i) for i in theirs.csv["image_id"]]
    common = {"Pulmonary Fibrosis": "Fibrosis"}
    unmapped = {n.lower(): n for n in UNMAPPED_LABELS["vindr_cxr"]}
    for j, name in enumerate(theirs.pathologies):
        if name.lower() in unmapped:  # no common name: in ``findings``
            source = unmapped[name.lower()]
            mine = np.array([source in ours.findings[i] for i in order], float)
        else:
            column = list(ours.classes).index(common.get(name, name))
            mine = ours.labels[order, column]
        np.testing.assert_array_equal(mine, theirs.labels[:, j], err_msg=name)
