"""CheXpert, MIMIC-CXR and PadChest loaders on fixtures made from real label files.

Every expected count is made directly from the fixture's CSV with pandas (or
``ast``), independently of the loaders' parsing.
"""

import ast
import gzip
import re
import warnings

import numpy as np
import pytest

from skcxr.datasets import (
    LABEL_TABLE,
    load_chexpert,
    load_mimic_cxr,
    load_padchest,
)

from ._public_data import (
    CHEXPERT_META,
    JPEG,
    PNG16,
    build_chexpert,
    head_rows,
    skipped,
    write_csv,
    write_file,
    xrv_data,
)

pd = pytest.importorskip("pandas")

CHEXPERT_ROWS = 2000
UNCERTAIN = {"ignore": np.nan, "ones": 1.0, "zeros": 0.0}


# ------------------------------------------------------------------- CheXpert
@pytest.fixture(scope="module")
def chexpert(tmp_path_factory):
    root = tmp_path_factory.mktemp("chexpert")
    return root, build_chexpert(root, CHEXPERT_ROWS)


def _chexpert_frame(root, name="train.csv"):
    df = pd.read_csv(root / "CheXpert-v1.0-small" / name)
    df["relative"] = df["Path"].str.split("/", n=1).str[1]
    return df


def _chexpert_expected(df, uncertain):
    """The labeler's codes under a policy, with the "No Finding" rule."""
    obs = [c for c in df.columns if c not in (*CHEXPERT_META, "relative")]
    out = df[obs].astype(float).copy()
    healthy = out["No Finding"] == 1
    for c in obs:
        if c not in ("No Finding", "Support Devices"):
            out.loc[healthy & out[c].isna(), c] = 0.0
    out["No Finding"] = out["No Finding"].fillna(0.0)
    return out.replace(-1.0, UNCERTAIN[uncertain])


def _load_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        return kwargs.pop("_loader")(*args, **kwargs), caught


@pytest.mark.parametrize("uncertain", ["ignore", "ones", "zeros"])
def test_chexpert_counts_under_each_uncertainty_policy(chexpert, uncertain):
    root, missing = chexpert
    data, caught = _load_quietly(
        root, uncertain=uncertain, on_missing="skip", _loader=load_chexpert
    )
    df = _chexpert_frame(root)
    kept = df[~df["relative"].isin(missing)]
    assert data.n_rows == CHEXPERT_ROWS and data.n_unreadable == 0
    assert data.n_missing == len(missing) == 200 and data.n_excluded == 0
    assert len(data.paths) == len(kept) == CHEXPERT_ROWS - 200
    assert [str(m.message).split(" ")[0] for m in caught] == ["200"]
    assert data.dataset == "chexpert" and data.labels.dtype == float
    expected = _chexpert_expected(kept, uncertain)
    assert len(data.classes) == 13 and "No Finding" not in data.classes
    for j, common in enumerate(data.classes):
        column = LABEL_TABLE[common]["chexpert"][0]
        got, want = data.labels[:, j], expected[column].to_numpy()
        assert np.sum(got == 1) == np.sum(want == 1), common
        assert np.sum(got == 0) == np.sum(want == 0), common
        assert np.sum(np.isnan(got)) == np.sum(np.isnan(want)), common
        np.testing.assert_array_equal(got, want)
    if uncertain == "ignore":  # uncertain labels are unknown, not negative
        assert (
            np.isnan(data.labels).sum()
            > np.isnan(
                _chexpert_expected(kept, "zeros")[list(expected.columns)].to_numpy()
            ).sum()
            - 1
        )
    patients = kept["relative"].str.extract(r"(patient\d+)/")[0]
    studies = kept["relative"].str.extract(r"(patient\d+/study\d+)/")[0]
    assert len(set(data.patient_ids)) == patients.nunique()
    assert len(set(data.study_ids)) == studies.nunique()
    np.testing.assert_array_equal(data.patient_ids, patients.to_numpy())
    assert set(data.split) == {"train"}


def test_chexpert_sex_age_views(chexpert):
    root, missing = chexpert
    data, _ = _load_quietly(root, on_missing="skip", _loader=load_chexpert)
    kept = _chexpert_frame(root)
    kept = kept[~kept["relative"].isin(missing)]
    sex = kept["Sex"].map({"Male": "M", "Female": "F"}).fillna("unknown")
    np.testing.assert_array_equal(data.sex, sex.to_numpy())
    age = kept["Age"].astype(float).where(kept["Age"] != 0)
    np.testing.assert_array_equal(data.age, age.to_numpy())
    view = np.where(kept["Frontal/Lateral"] == "Lateral", "LATERAL", kept["AP/PA"])
    np.testing.assert_array_equal(data.views, view)
    pa, _ = _load_quietly(root, views=["PA"], on_missing="skip", _loader=load_chexpert)
    assert set(pa.views) == {"PA"}
    all_df = _chexpert_frame(root)
    is_pa = (all_df["Frontal/Lateral"] == "Frontal") & (all_df["AP/PA"] == "PA")
    assert pa.n_excluded == int((~is_pa).sum())
    assert len(pa.paths) + pa.n_missing + pa.n_excluded == CHEXPERT_ROWS
    assert pa.n_missing == int(all_df[is_pa]["relative"].isin(missing).sum())


def test_chexpert_missing_images_raise_with_count_and_first(chexpert):
    root, missing = chexpert
    first = str(missing[0])
    with pytest.raises(ValueError, match=r"^200 image\(s\) listed in CheXpert") as err:
        load_chexpert(root)
    assert first in str(err.value) and "on_missing='skip'" in str(err.value)
    assert "\n" not in str(err.value)


def test_chexpert_official_validation_split(chexpert):
    root, _ = chexpert
    val = load_chexpert(root, split="val")
    assert val.split.tolist() == ["val"] * 3 and val.n_rows == 3
    assert val.patient_ids.tolist() == ["patient64541", "patient64542"] * 1 + [
        "patient64542"
    ]
    assert val.labels[:, list(val.classes).index("Cardiomegaly")].tolist() == [0, 1, 1]
    both, _ = _load_quietly(root, split=None, on_missing="skip", _loader=load_chexpert)
    assert (both.split == "val").sum() == 3
    assert (both.split == "train").sum() == CHEXPERT_ROWS - 200
    assert not set(both.patient_ids[both.split == "val"]) & set(
        both.patient_ids[both.split == "train"]
    )


def test_chexpert_classes_in_common_names(chexpert):
    root, missing = chexpert
    data, _ = _load_quietly(
        root,
        classes=["Effusion", "Mass", "No Finding"],
        on_missing="skip",
        _loader=load_chexpert,
    )
    kept = _chexpert_frame(root)
    kept = kept[~kept["relative"].isin(missing)]
    expected = _chexpert_expected(kept, "ignore")
    np.testing.assert_array_equal(data.labels[:, 0], expected["Pleural Effusion"])
    assert np.isnan(data.labels[:, 1]).all()  # CheXpert does not label Mass
    assert data.labels[:, 2].sum() == (kept["No Finding"] == 1).sum()
    assert not np.isnan(data.labels[:, 2]).any()
    with pytest.raises(ValueError, match="did you mean 'Effusion'"):
        load_chexpert(root, classes=["Pleural Effusion"])
    with pytest.raises(ValueError, match="did you mean 'Cardiomegaly'"):
        load_chexpert(root, classes=["Cardiomegally"])
    with pytest.raises(ValueError, match="common names are"):
        load_chexpert(root, classes=["Tuberculosis"])
    with pytest.raises(ValueError, match="uncertain"):
        load_chexpert(root, uncertain="maybe")


def test_chexpert_unreadable_rows_are_counted_and_named(tmp_path):
    folder = tmp_path / "CheXpert-v1.0-small"
    header = [*CHEXPERT_META, "No Finding", "Cardiomegaly"]
    rows = [
        [
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg",
            "Female",
            "68",
            "Frontal",
            "AP",
            "1.0",
            "",
        ],
        [
            "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg",
            "Male",
            "50",
            "Frontal",
            "PA",
            "",
            "2.0",
        ],
        [
            "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg",
            "Male",
            "50",
            "Frontal",
            "PA",
            "",
            "1.0",
        ],
    ]
    write_csv(folder / "train.csv", header, rows)
    with open(folder / "train.csv", "a") as fh:
        fh.write("CheXpert-v1.0-small/train/patient00004/study1/view1.jpg,Male\n")
    for row in rows:
        write_file(folder / row[0].split("/", 1)[1], JPEG)
    with pytest.warns(UserWarning, match=r"2 row\(s\) of CheXpert.*data row 4"):
        data = load_chexpert(tmp_path, classes=["Cardiomegaly"])
    assert (data.n_rows, data.n_unreadable, len(data.paths)) == (4, 2, 2)
    assert data.labels.ravel().tolist() == [0.0, 1.0]


def test_chexpert_as_frame(chexpert):
    root, _ = chexpert
    data = load_chexpert(root, split="val", as_frame=True)
    frame = data.frame
    assert list(frame.columns[:7]) == [
        "path",
        "patient_id",
        "study_id",
        "split",
        "view",
        "sex",
        "age",
    ]
    assert frame["Cardiomegaly"].tolist() == [0.0, 1.0, 1.0]
    assert "Cardiomegaly (raw)" in frame.columns and "Path" in frame.columns
    assert len(frame) == 3


# ------------------------------------------------------------------ MIMIC-CXR
META = (
    "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,"
    "Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,"
    "ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning"
)
MIMIC_IMAGES = [
    # dicom_id, subject, study, view, date
    (
        "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014",
        "10000032",
        "50414267",
        "PA",
        "21800506",
    ),
    (
        "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962",
        "10000032",
        "50414267",
        "LATERAL",
        "21800506",
    ),
    (
        "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab",
        "10000032",
        "53189527",
        "AP",
        "21800626",
    ),
    (
        "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714",
        "10000764",
        "57375967",
        "AP",
        "21321015",
    ),
    (
        "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4",
        "10000764",
        "57375967",
        "",
        "21321015",
    ),
    (
        "fffabebf-74fd3a1f-673b6b41-96ec0ac9-2ab69818",
        "10000898",
        "50771383",
        "PA",
        "21461002",
    ),
    (
        "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c",
        "10000898",
        "54205396",
        "PA",
        "21471103",
    ),
]
OBS = (
    "Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,"
    "Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,"
    "Pneumonia,Pneumothorax,Support Devices"
).split(",")
CHEXPERT_STUDIES = {
    "50414267": {"No Finding": "1.0"},
    "53189527": {"Cardiomegaly": "1.0", "Pleural Effusion": "-1.0", "Edema": "0.0"},
    "57375967": {
        "Cardiomegaly": "-1.0",
        "Pleural Effusion": "1.0",
        "Support Devices": "1.0",
    },
    # 50771383 has no label row; 54205396 is labelled below
    "54205396": {"Pneumonia": "1.0", "Lung Opacity": "1.0"},
}
SUBJECT = {
    "50414267": "10000032",
    "53189527": "10000032",
    "57375967": "10000764",
    "54205396": "10000898",
}


def _mimic(root, negbio_changes=None, gz=True):
    meta = [
        f"{d},{s},{t},CHEST (PA AND LAT),{v},3056,2544,{date},"
        f"134010.234,CHEST (PA AND LAT),postero-anterior,Erect"
        for d, s, t, v, date in MIMIC_IMAGES
    ]
    files = {
        "metadata": "\n".join([META, *meta]) + "\n",
        "split": "dicom_id,study_id,subject_id,split\n"
        + "".join(
            f"{d},{t},{s},{'test' if s == '10000764' else 'validate' if t == '54205396' else 'train'}\n"
            for d, s, t, _, _ in MIMIC_IMAGES
        ),
    }
    for kind, studies in (
        ("chexpert", CHEXPERT_STUDIES),
        ("negbio", {**CHEXPERT_STUDIES, **(negbio_changes or {})}),
    ):
        lines = ["subject_id,study_id," + ",".join(OBS)]
        for study, values in studies.items():
            cells = [values.get(name, "") for name in OBS]
            lines.append(f"{SUBJECT[study]},{study}," + ",".join(cells))
        files[kind] = "\n".join(lines) + "\n"
    root.mkdir(parents=True, exist_ok=True)
    for kind, text in files.items():
        name = f"mimic-cxr-2.0.0-{kind}.csv"
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (root / name).write_text(text)
    for d, s, t, _, _ in MIMIC_IMAGES:
        write_file(root / "files" / f"p{s[:2]}" / f"p{s}" / f"s{t}" / f"{d}.jpg", JPEG)
    return root


def test_mimic_labels_split_and_views(tmp_path):
    root = _mimic(tmp_path / "mimic-cxr-jpg" / "2.0.0")
    data = load_mimic_cxr(root, classes=["Cardiomegaly", "Effusion", "Pneumonia"])
    assert data.n_rows == 7 and len(data.paths) == 7
    assert data.patient_ids.tolist() == [s for _, s, _, _, _ in MIMIC_IMAGES]
    assert data.study_ids.tolist() == [t for _, _, t, _, _ in MIMIC_IMAGES]
    nan = np.nan
    np.testing.assert_array_equal(
        data.labels,
        [
            [0, 0, 0],  # No Finding: blank findings are negative
            [0, 0, 0],
            [1, nan, nan],  # uncertain effusion unknown; pneumonia not mentioned
            [nan, 1, nan],
            [nan, 1, nan],
            [nan, nan, nan],  # study without a label row
            [nan, nan, 1],
        ],
    )
    assert data.split.tolist() == ["train"] * 3 + ["test"] * 2 + ["train", "val"]
    assert data.views.tolist() == ["PA", "LATERAL", "AP", "AP", "unknown", "PA", "PA"]
    assert all(p.endswith(".jpg") and "/files/p10/" in p for p in data.paths)
    assert set(data.sex) == {"unknown"} and np.isnan(data.age).all()
    ones = load_mimic_cxr(root, uncertain="ones", classes=["Effusion"])
    assert ones.labels.ravel()[2] == 1
    zeros = load_mimic_cxr(root, uncertain="zeros", classes=["Effusion"])
    assert zeros.labels.ravel()[2] == 0
    test = load_mimic_cxr(root, split="test")
    assert len(test.paths) == 2 and test.n_excluded == 5
    lateral = load_mimic_cxr(root, views=["LATERAL"])
    assert len(lateral.paths) == 1 and lateral.n_excluded == 6


def test_mimic_negbio_missing_plain_csv_and_patients(tmp_path):
    root = _mimic(
        tmp_path / "m", negbio_changes={"57375967": {"Cardiomegaly": "1.0"}}, gz=False
    )
    negbio = load_mimic_cxr(root, labeler="negbio", classes=["Cardiomegaly"])
    assert negbio.labels.ravel()[3:5].tolist() == [1.0, 1.0]
    (root / "patients.csv").write_text(
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
        "10000032,F,52,2180,2014 - 2016,2180-09-09\n"
        "10000764,M,86,2132,2014 - 2016,\n"
    )
    data = load_mimic_cxr(root)
    assert data.sex.tolist() == ["F"] * 3 + ["M"] * 2 + ["unknown"] * 2
    np.testing.assert_array_equal(data.age[:5], [52, 52, 52, 86, 86])
    assert np.isnan(data.age[5:]).all()
    victim = MIMIC_IMAGES[2]
    (
        root / "files" / "p10" / f"p{victim[1]}" / f"s{victim[2]}" / f"{victim[0]}.jpg"
    ).unlink()
    with pytest.raises(ValueError, match=rf"1 image\(s\).*{victim[0]}\.jpg"):
        load_mimic_cxr(root)
    with pytest.warns(UserWarning, match=r"1 of the 7 image\(s\)"):
        data = load_mimic_cxr(root, on_missing="skip")
    assert len(data.paths) == 6 and data.n_missing == 1
    with pytest.raises(ValueError, match="split file"):
        (root / "mimic-cxr-2.0.0-split.csv").unlink()
        load_mimic_cxr(root, split="train")
    with pytest.warns(UserWarning, match="n_missing"):
        assert load_mimic_cxr(root, on_missing="skip").split is None


# ------------------------------------------------------------------- PadChest
PADCHEST_ROWS = 1000
GARBLED = {10: "", 20: "pneumonia, pleural effusion", 30: "['unterminated"}
GARBLED_MISSING = {12: "['pneumonia'"}  # its image is missing: counted there


@pytest.fixture(scope="module")
def padchest(tmp_path_factory):
    root = tmp_path_factory.mktemp("padchest")
    path = xrv_data("PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz")
    header, rows = head_rows(path, PADCHEST_ROWS)
    at = {name: j for j, name in enumerate(header)}
    for i, text in {**GARBLED, **GARBLED_MISSING}.items():
        rows[i][at["Labels"]] = text
    write_csv(
        root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", header, rows
    )
    missing = []
    for i, row in enumerate(rows):
        relative = f"{row[at['ImageDir']]}/{row[at['ImageID']]}"
        if skipped(i, 10):
            missing.append(row[at["ImageID"]])
        else:
            write_file(root / relative, PNG16)
    return root, missing


def _padchest_frame(root):
    df = pd.read_csv(
        root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
        keep_default_na=False,
        dtype=str,
    )

    def parse(text):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return (
            [v.strip() for v in value if v.strip()] if isinstance(value, list) else None
        )

    df["parsed"] = df["Labels"].map(parse)
    return df


def test_padchest_counts_unreadable_and_missing(padchest):
    root, missing = padchest
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_padchest(root, on_missing="skip")
    df = _padchest_frame(root)
    unreadable = df["parsed"].isna()
    on_disk = ~df["ImageID"].isin(missing)
    assert unreadable.sum() == len(GARBLED) + len(GARBLED_MISSING)
    messages = [str(w.message) for w in caught]
    first = df.loc[(unreadable & on_disk).idxmax(), "ImageID"]
    assert any(m.startswith("3 row(s) of PadChest") and first in m for m in messages)
    # each row counted once: first not on disk, then unreadable
    assert data.n_rows == PADCHEST_ROWS and data.n_unreadable == 3
    assert data.n_missing == len(missing) == int((~on_disk).sum())
    kept = df[~unreadable & on_disk]
    assert len(data.paths) + data.n_missing + data.n_unreadable == PADCHEST_ROWS
    assert data.findings == kept["parsed"].tolist()
    for j, common in enumerate(data.classes):
        names = set(LABEL_TABLE[common]["padchest"])
        want = kept["parsed"].map(lambda found, n=names: bool(n & set(found)))
        assert data.labels[:, j].sum() == want.sum(), common
    effusion = kept["Labels"].str.contains(r"'\s*pleural effusion'")
    j = list(data.classes).index("Effusion")
    assert data.labels[effusion.to_numpy(), j].all()
    assert not np.isnan(data.labels).any()
    assert len(set(data.patient_ids)) == kept["PatientID"].nunique()
    assert data.split is None


def test_padchest_views_sex_age(padchest):
    root, missing = padchest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_padchest(root, on_missing="skip", classes=["No Finding", "Nodule"])
        lateral = load_padchest(root, on_missing="skip", views="LATERAL")
    df = _padchest_frame(root)
    kept = df[df["parsed"].notna() & ~df["ImageID"].isin(missing)]
    view = (
        kept["Projection"]
        .map(
            {
                "PA": "PA",
                "L": "LATERAL",
                "AP": "AP",
                "AP_horizontal": "AP supine",
                "UNK": "unknown",
            }
        )
        .fillna(kept["Projection"])
    )
    np.testing.assert_array_equal(data.views, view.to_numpy())
    assert len(lateral.paths) == (kept["Projection"] == "L").sum()
    sex = kept["PatientSex_DICOM"].where(
        kept["PatientSex_DICOM"].isin(["M", "F", "O"]), "unknown"
    )
    np.testing.assert_array_equal(data.sex, sex.to_numpy())
    birth = pd.to_numeric(kept["PatientBirth"], errors="coerce")
    age = kept["StudyDate_DICOM"].str[:4].astype(float) - birth
    np.testing.assert_array_equal(data.age, age.to_numpy())
    normal = kept["parsed"].map(lambda f: "normal" in f)
    assert data.labels[:, 0].sum() == normal.sum()


def test_padchest_flat_folder_and_explicit_csv(tmp_path):
    header = [
        "ImageID",
        "ImageDir",
        "StudyDate_DICOM",
        "StudyID",
        "PatientID",
        "PatientBirth",
        "PatientSex_DICOM",
        "Projection",
        "Labels",
    ]
    rows = [
        ["a.png", "0", "20140915", "s1", "p1", "1930.0", "F", "PA", "['normal']"],
        [
            "b.png",
            "3",
            "20150914",
            "s2",
            "p1",
            "None",
            "",
            "AP_horizontal",
            "['nodule', ' pseudonodule', '']",
        ],
    ]
    write_csv(tmp_path / "labels.csv", header, rows)
    for name in ("a.png", "b.png"):
        write_file(tmp_path / "images" / name, PNG16)
    data = load_padchest(
        tmp_path / "images",
        csv=tmp_path / "labels.csv",
        classes=["Nodule", "Nodule/Mass", "Mass", "Lung Opacity"],
    )
    assert data.findings == [["normal"], ["nodule", "pseudonodule"]]
    np.testing.assert_array_equal(data.labels, [[0, 0, 0, np.nan], [1, 1, 0, np.nan]])
    assert data.views.tolist() == ["PA", "AP supine"]
    assert data.sex.tolist() == ["F", "unknown"]
    assert data.age[0] == 84 and np.isnan(data.age[1])
    assert data.patient_ids.tolist() == ["p1", "p1"]
    with pytest.raises(ValueError, match=re.escape("PADCHEST_chest_x_ray")):
        load_padchest(tmp_path / "images")


def test_a_file_that_is_not_csv_is_named(tmp_path):
    folder = tmp_path / "CheXpert-v1.0-small"
    folder.mkdir()
    (folder / "train.csv").write_text("Path,Sex\n" + "x" * 200_000 + ",Male\n")
    with pytest.raises(ValueError, match=r"train.csv' is not a CSV file: field"):
        load_chexpert(tmp_path)
    (folder / "train.csv").write_bytes(b"Path,Sex\n\xff\xfe,Male\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        load_chexpert(tmp_path)
