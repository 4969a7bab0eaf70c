"""RSNA Pneumonia, VinDr-CXR and SIIM-ACR loaders on fixtures from real label files.

The images are tiny generated DICOM files whose headers carry view, sex and
age; expected counts are made from the fixture CSVs with pandas.
"""

import warnings

import numpy as np
import pytest

from skcxr.datasets import (
    LABEL_TABLE,
    RunLengthMasks,
    load_rsna_pneumonia,
    load_siim_pneumothorax,
    load_vindr_cxr,
    rle_decode,
    rle_encode,
)

from ._public_data import PNG8, skipped, write_csv, write_dicom, write_file, xrv_data

pd = pytest.importorskip("pandas")
pytest.importorskip("pydicom")


def _quiet(loader, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        return loader(*args, **kwargs), [str(w.message) for w in caught]


# ----------------------------------------------------------------------- RSNA
RSNA_IMAGES = 300


@pytest.fixture(scope="module")
def rsna(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsna")
    labels = pd.read_csv(xrv_data("kaggle_stage_2_train_labels.csv.zip"), dtype=str)
    ids = list(dict.fromkeys(labels["patientId"]))[:RSNA_IMAGES]
    rows = labels[labels["patientId"].isin(ids)]
    rows.to_csv(root / "stage_2_train_labels.csv", index=False)
    headers = pd.read_csv(
        xrv_data("kaggle_stage_2_train_images_dicom_headers.csv.gz"), dtype=str
    )
    headers = headers[headers["PatientID"].isin(ids)].drop(columns=headers.columns[0])
    headers.to_csv(root.parent / "rsna_headers.csv", index=False)
    by_id = headers.set_index("PatientID")
    missing = []
    for i, pid in enumerate(ids):
        if skipped(i, 10):
            missing.append(pid)
            continue
        write_dicom(
            root / "stage_2_train_images" / f"{pid}.dcm",
            sex=by_id.loc[pid, "PatientSex"],
            age=by_id.loc[pid, "PatientAge"],
            view=by_id.loc[pid, "ViewPosition"],
            patient_id=pid,
        )
    return root, rows, headers, missing


def test_rsna_one_row_per_image_with_boxes(rsna):
    root, rows, headers, missing = rsna
    data, messages = _quiet(load_rsna_pneumonia, root, on_missing="skip")
    assert data.n_rows == len(rows) and data.n_unreadable == 0
    assert data.n_missing == len(missing) == 30
    assert messages == [m for m in messages if m.startswith("30 of the 300")]
    kept = rows[~rows["patientId"].isin(missing)]
    ids = list(dict.fromkeys(kept["patientId"]))
    assert data.patient_ids.tolist() == ids and len(set(data.study_ids)) == len(ids)
    target = kept.groupby("patientId", sort=False)["Target"].first().astype(float)
    assert data.classes.tolist() == ["Lung Opacity", "Pneumonia"]
    np.testing.assert_array_equal(data.labels[:, 0], target.loc[ids])
    np.testing.assert_array_equal(data.labels[:, 1], target.loc[ids])
    positive = kept[kept["Target"] == "1"]
    assert sum(len(b) for b in data.boxes) == len(positive)
    first = positive["patientId"].iloc[0]
    i = ids.index(first)
    np.testing.assert_array_equal(
        data.boxes[i],
        positive[positive["patientId"] == first][["x", "y", "width", "height"]]
        .astype(float)
        .to_numpy(),
    )
    assert all(b.shape == (0, 4) for b, t in zip(data.boxes, target.loc[ids]) if t == 0)
    assert data.findings[i] == ["Lung Opacity"] and data.split is None


def test_rsna_views_sex_age_from_dicom_or_header_csv(rsna):
    root, rows, headers, missing = rsna
    from_dicom, _ = _quiet(load_rsna_pneumonia, root, on_missing="skip")
    from_csv, _ = _quiet(
        load_rsna_pneumonia,
        root,
        headers=root.parent / "rsna_headers.csv",
        on_missing="skip",
    )
    none, _ = _quiet(load_rsna_pneumonia, root, headers=None, on_missing="skip")
    by_id = headers.set_index("PatientID").loc[from_dicom.patient_ids]
    for data in (from_dicom, from_csv):
        np.testing.assert_array_equal(data.views, by_id["ViewPosition"])
        np.testing.assert_array_equal(data.sex, by_id["PatientSex"])
        np.testing.assert_array_equal(data.age, by_id["PatientAge"].astype(float))
    assert set(none.views) == {"unknown"} and np.isnan(none.age).all()
    pa, _ = _quiet(load_rsna_pneumonia, root, views=["PA"], on_missing="skip")
    assert pa.n_excluded == int((by_id["ViewPosition"] != "PA").sum())
    assert len(pa.paths) + pa.n_excluded + pa.n_missing == RSNA_IMAGES


def test_rsna_detailed_classes_and_unreadable_rows(tmp_path):
    (tmp_path / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\n"
        "a,,,,,0\nb,10,20,30,40,1\nc,,,,,0\nd,,,,,2\ne,1,2,3,x,1\n"
    )
    for name in "abcde":
        write_file(tmp_path / "stage_2_train_images" / f"{name}.png", PNG8)
    with pytest.warns(UserWarning, match=r"2 row\(s\).*patientId 'd'.*Target '2'"):
        data = load_rsna_pneumonia(tmp_path, classes=["No Finding", "Effusion"])
    assert data.patient_ids.tolist() == ["a", "b", "c"] and data.n_unreadable == 2
    assert np.isnan(data.labels).all()  # no class file: Normal is not known
    (tmp_path / "stage_2_detailed_class_info.csv").write_text(
        "patientId,class\na,Normal\nb,Lung Opacity\nc,No Lung Opacity / Not Normal\n"
    )
    with pytest.warns(UserWarning):
        data = load_rsna_pneumonia(tmp_path, classes=["No Finding", "Effusion"])
    np.testing.assert_array_equal(data.labels[:, 0], [1, 0, 0])
    assert np.isnan(data.labels[:, 1]).all()
    assert data.findings == [
        ["Normal"],
        ["Lung Opacity"],
        ["No Lung Opacity / Not Normal"],
    ]


# ---------------------------------------------------------------------- VinDr
VINDR_IMAGES = 200


@pytest.fixture(scope="module")
def vindr(tmp_path_factory):
    root = tmp_path_factory.mktemp("vindr")
    boxes = pd.read_csv(
        xrv_data("vinbigdata-train.csv.gz"), dtype=str, keep_default_na=False
    )
    ids = list(dict.fromkeys(boxes["image_id"]))[:VINDR_IMAGES]
    rows = boxes[boxes["image_id"].isin(ids)]
    rows.to_csv(root / "train.csv", index=False)
    missing = []
    for i, image_id in enumerate(ids):
        if skipped(i, 10):
            missing.append(image_id)
            continue
        write_dicom(
            root / "train" / f"{image_id}.dicom",
            sex="MF"[i % 2],
            age=f"{20 + i % 60:03d}Y",
            view="PA",
        )
    return root, rows, missing


def _vindr_expected(rows, policy):
    votes = rows.groupby(["image_id", "class_name"])["rad_id"].nunique()
    readers = rows.groupby("image_id")["rad_id"].nunique()
    n = readers.loc[votes.index.get_level_values(0)].to_numpy()
    keep = {"majority": 2 * votes > n, "any": votes >= 1, "consensus": votes == n}
    return votes[keep[policy].to_numpy()].index


@pytest.mark.parametrize("policy", ["majority", "any", "consensus"])
def test_vindr_reader_policies(vindr, policy):
    root, rows, missing = vindr
    data, messages = _quiet(
        load_vindr_cxr,
        root,
        readers=policy,
        on_missing="skip",
        classes=[
            "Cardiomegaly",
            "Effusion",
            "No Finding",
            "Nodule/Mass",
            "Nodule",
            "Pleural_Thickening",
            "Fibrosis",
        ],
    )
    kept = rows[~rows["image_id"].isin(missing)]
    assert data.n_rows == len(rows) and data.n_missing == len(missing) == 20
    assert data.patient_ids.tolist() == list(dict.fromkeys(kept["image_id"]))
    assert (data.n_readers == 3).all() and set(data.split) == {"train"}
    passed = _vindr_expected(kept, policy)
    for j, common in enumerate(data.classes):
        if "vindr_cxr" not in LABEL_TABLE[common]:
            assert np.isnan(data.labels[:, j]).all(), common
            continue
        names = set(LABEL_TABLE[common]["vindr_cxr"])
        images = {i for i, c in passed if c in names}
        assert data.labels[:, j].sum() == len(images), common
        assert not np.isnan(data.labels[:, j]).any()
    with_box = kept[kept["x_min"] != ""]
    assert sum(len(b) for b in data.boxes) == len(with_box)
    assert sum(len(r) for r in data.box_readers) == len(with_box)
    i = list(data.patient_ids).index(with_box["image_id"].iloc[0])
    x0, y0, x1, y1 = with_box.iloc[0][["x_min", "y_min", "x_max", "y_max"]].astype(
        float
    )
    np.testing.assert_allclose(data.boxes[i][0], [x0, y0, x1 - x0, y1 - y0])
    assert data.box_findings[i][0] == with_box["class_name"].iloc[0]


def test_vindr_policies_nest_and_headers(vindr):
    root, rows, missing = vindr
    loaded = {
        p: _quiet(load_vindr_cxr, root, readers=p, on_missing="skip")[0]
        for p in ("consensus", "majority", "any")
    }
    assert (loaded["consensus"].labels <= loaded["majority"].labels).all()
    assert (loaded["majority"].labels <= loaded["any"].labels).all()
    data = loaded["majority"]
    assert set(data.views) == {"PA"} and set(data.sex) == {"M", "F"}
    assert data.age.min() >= 20 and data.age.max() < 80
    with pytest.raises(ValueError, match=r"20 image\(s\)"):
        load_vindr_cxr(root)
    with pytest.raises(ValueError, match="readers"):
        load_vindr_cxr(root, readers="two")


# ----------------------------------------------------------------------- SIIM
SIIM_IMAGES = 250


@pytest.fixture(scope="module")
def siim(tmp_path_factory):
    root = tmp_path_factory.mktemp("siim")
    rle = pd.read_csv(xrv_data("siim-pneumothorax-train-rle.csv.gz"), dtype=str)
    ids = list(dict.fromkeys(rle["ImageId"]))[:SIIM_IMAGES]
    # the images with several regions first: they test the union
    several = rle["ImageId"].value_counts()
    ids = (
        list(several[several > 1].index[:20])
        + [i for i in ids if i not in several[several > 1].index[:20]][
            : SIIM_IMAGES - 20
        ]
    )
    rows = rle[rle["ImageId"].isin(ids)]
    rows.to_csv(root / "train-rle.csv", index=False)
    missing, header = [], {}
    for i, uid in enumerate(ids):
        if skipped(i, 10):
            missing.append(uid)
            continue
        header[uid] = (
            "FM"[i % 2],
            float(30 + i % 50),
            "AP" if i % 3 else "PA",
            f"pid-{i // 2}",
        )
        write_dicom(
            root / "dicom-images-train" / f"1.2.{i}" / f"1.2.{i}.1" / f"{uid}.dcm",
            sex=header[uid][0],
            age=f"{int(header[uid][1])}",
            view=header[uid][2],
            patient_id=header[uid][3],
        )
    return root, rows, missing, header


def kaggle_rle2mask(rle, width, height):
    """``rle2mask`` of the challenge's published ``mask_functions.py``."""
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    starts, lengths = array[0::2], array[1::2]
    current_position = 0
    for index, start in enumerate(starts):
        current_position += start
        mask[current_position : current_position + lengths[index]] = 255
        current_position += lengths[index]
    return mask.reshape(width, height)


def test_siim_labels_masks_union_and_missing(siim):
    root, rows, missing, header = siim
    data, messages = _quiet(load_siim_pneumothorax, root, on_missing="skip")
    kept = rows[~rows["ImageId"].isin(missing)]
    ids = list(dict.fromkeys(kept["ImageId"]))
    assert data.study_ids.tolist() == ids and data.n_missing == len(missing)
    assert data.n_rows == len(rows) and data.n_unreadable == 0
    positive = kept.groupby("ImageId", sort=False)[" EncodedPixels"].agg(
        lambda r: any(v.strip() != "-1" for v in r)
    )
    np.testing.assert_array_equal(data.labels[:, 0], positive.loc[ids].astype(float))
    assert isinstance(data.masks, RunLengthMasks)
    assert data.masks.shape == (len(ids), 1024, 1024)
    regions = kept.groupby("ImageId", sort=False)[" EncodedPixels"].agg(list)
    several = [uid for uid in ids if len(regions[uid]) > 1]
    singles = [uid for uid in ids if len(regions[uid]) == 1][:3]
    assert len(several) >= 15
    for uid in several + singles:
        want = np.zeros((1024, 1024), dtype=bool)
        for r in (r.strip() for r in regions[uid]):
            if r != "-1":
                want |= kaggle_rle2mask(r, 1024, 1024).T > 0
        np.testing.assert_array_equal(data.masks[ids.index(uid)], want)
    subset = data.masks[[0, 2]]
    assert isinstance(subset, RunLengthMasks) and subset.shape[0] == 2
    np.testing.assert_array_equal(subset.decode()[1], data.masks[2])
    want = [header[uid] for uid in ids]
    assert data.sex.tolist() == [w[0] for w in want]
    assert data.age.tolist() == [w[1] for w in want]
    assert data.views.tolist() == [w[2] for w in want]
    assert data.patient_ids.tolist() == [w[3] for w in want]
    assert not [m for m in messages if "DICOM" in m or "VR" in m]
    with pytest.raises(ValueError, match=r"25 image\(s\)"):
        load_siim_pneumothorax(root, headers=None)


def test_rle_decode_matches_kaggle_and_encode_inverts_it():
    rle = pd.read_csv(xrv_data("siim-pneumothorax-train-rle.csv.gz"), dtype=str)
    strings = [s.strip() for s in rle[" EncodedPixels"] if s.strip() != "-1"]
    for s in strings[:10]:
        np.testing.assert_array_equal(
            rle_decode(s), kaggle_rle2mask(s, 1024, 1024).T > 0
        )
    # every published encoding is canonical: encoding its mask gives it back
    assert all(rle_encode(rle_decode(s)) == s for s in strings[:60])
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (5, 3), (64, 64), (7, 40)]:
        for density in (0.0, 0.1, 0.5, 1.0):
            mask = rng.random(shape) < density
            assert (rle_decode(rle_encode(mask), shape=shape) == mask).all()
    assert rle_encode(np.zeros((3, 3))) == "-1" and not rle_decode("-1").any()
    a, b = "0 2", "3 1"  # pixels 0-1 and 3 of a 2 x 2 image, column-major
    union = rle_decode([a, b], shape=(2, 2))
    np.testing.assert_array_equal(union, [[True, False], [True, True]])
    np.testing.assert_array_equal(
        union, rle_decode(a, shape=(2, 2)) | rle_decode(b, shape=(2, 2))
    )
    with pytest.raises(ValueError, match="pairs"):
        rle_decode("1 2 3", shape=(4, 4))
    with pytest.raises(ValueError, match="past"):
        rle_decode("10 10", shape=(4, 4))
    with pytest.raises(ValueError, match="run-length"):
        rle_decode("1 x", shape=(4, 4))


def test_siim_unreadable_encoding_is_counted(tmp_path):
    (tmp_path / "train-rle.csv").write_text(
        "ImageId, EncodedPixels\na, 1 2\nb, 5\nc, -1\n"
    )
    for name in "abc":
        write_file(tmp_path / "dicom-images-train" / "s" / f"{name}.png", PNG8)
    with pytest.warns(UserWarning, match=r"1 row\(s\).*ImageId 'b'.*pairs"):
        data = load_siim_pneumothorax(tmp_path, mask_side=4)
    assert data.study_ids.tolist() == ["a", "c"] and data.n_unreadable == 1
    assert data.labels.ravel().tolist() == [1.0, 0.0]
    assert data.masks[0].sum() == 2


def test_dicom_loaders_write_nothing_in_rows_it_skips(tmp_path):
    header = [
        "image_id",
        "class_name",
        "class_id",
        "rad_id",
        "x_min",
        "y_min",
        "x_max",
        "y_max",
    ]
    write_csv(
        tmp_path / "train.csv",
        header,
        [["a", "No finding", "14", "R1", "", "", "", ""]],
    )
    with pytest.raises(ValueError, match="None of the images"):
        _quiet(load_vindr_cxr, tmp_path, on_missing="skip")
