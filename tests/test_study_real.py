"""Whole studies on real label files: a partial ChestX-ray14 download with rare
findings, external validation on a CheXpert folder, and Kermany folders that
miss a class. The label files come from torchxrayvision's wheel (its first
rows), the images are small generated radiographs written at their paths."""

import csv
import gzip

import numpy as np
import pytest

from skcxr.study._run import run_study
from skcxr.study._settings import StudySettings
from tests._public_data import build_chexpert, xrv_data

# a whole study in seconds: every network trains one or two epochs
TINY = StudySettings.quick().updated(
    {
        "size": 32,
        "head_epochs": 2,
        "finetune_epochs": 1,
        "scratch_epochs": 1,
        "anomaly_epochs": 1,
        "n_resamples": 50,
        "n_explained": 1,
        "n_scored_explanations": 2,
    },
    source="test",
)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def nih_folder(tmp_path_factory):
    """The first 300 rows of the real NIH label file, with generated images."""
    from PIL import Image

    from skcxr.datasets import make_chest_xrays

    source = xrv_data("Data_Entry_2017_v2020.csv.gz")
    root = tmp_path_factory.mktemp("nih")
    with gzip.open(source, "rt", newline="") as f:
        reader = csv.reader(f)
        header, rows = next(reader), [row for _, row in zip(range(300), reader)]
    with open(root / "Data_Entry_2017_v2020.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    (root / "images").mkdir()
    X, _ = make_chest_xrays(len(rows), size=32, random_state=0)
    for row, image in zip(rows, X):
        Image.fromarray((image * 255).astype(np.uint8)).save(root / "images" / row[0])
    return root, rows


@pytest.mark.slow
def test_a_partial_nih_download_is_studied_to_the_end(nih_folder, tmp_path):
    """Rare findings (a handful of images) are reported as not estimable, with
    their counts, instead of stopping the study; the models are then scored
    on a CheXpert folder through the common finding names."""
    root, rows = nih_folder
    external = tmp_path / "chexpert"
    build_chexpert(external, 400)
    out = tmp_path / "report"
    run_study(
        out,
        data=root,
        layout="chestxray14",
        external=external,
        external_layout="chexpert",
        settings=TINY,
        log=lambda line: None,
    )
    html = (out / "report.html").read_text()
    assert "too few images to estimate" in html and "not estimable" in html
    metrics = _rows(out / "metrics.csv")
    findings = {r["finding"]: r for r in metrics if r["task"] == "multi-label"}
    counted = {}
    for row in rows:
        for finding in row[1].split("|"):
            counted[finding] = counted.get(finding, 0) + 1
    hernia = findings["Hernia"]  # 3 images in these rows
    assert int(hernia["positives"]) <= counted["Hernia"]
    assert np.isnan(float(hernia["ROC AUC"]))
    assert "not estimable" in hernia["notes"]
    external_rows = [r for r in metrics if r["task"] == "external validation"]
    shared = {r["finding"] for r in external_rows}
    assert {"any finding", "Effusion", "Atelectasis", "Cardiomegaly"} <= shared
    assert all(
        r["external ROC AUC"] or "not estimable" in r["notes"] for r in external_rows
    )
    # the subgroups come from the label file's sex, age and view columns
    attributes = {r["attribute"] for r in _rows(out / "subgroups.csv")}
    assert {"sex", "age band", "view"} <= attributes
    card = (out / "model_card.md").read_text()
    assert "Report-mined labels are noisy" in card and "Not a medical device" in card


@pytest.mark.slow
def test_a_kermany_folder_without_virus_images(tmp_path):
    from skcxr.datasets import make_chest_xrays, write_chest_xrays

    X, y = make_chest_xrays(60, classes=("normal", "bacteria"), size=32, random_state=0)
    write_chest_xrays(tmp_path / "data", X, y, layout="kermany", random_state=0)
    out = tmp_path / "report"
    run_study(out, data=tmp_path / "data", settings=TINY, log=lambda line: None)
    tasks = {r["task"] for r in _rows(out / "metrics.csv")}
    assert "binary" in tasks and "ensemble" in tasks and "three-class" not in tasks


def test_a_kermany_folder_without_normal_images_names_the_folder(tmp_path):
    from skcxr.datasets import make_chest_xrays, write_chest_xrays

    X, y = make_chest_xrays(12, classes=("bacteria", "virus"), size=32, random_state=0)
    write_chest_xrays(tmp_path / "data", X, y, layout="kermany", random_state=0)
    with pytest.raises(ValueError, match="has no normal images \\(no NORMAL folder"):
        run_study(tmp_path / "r", data=tmp_path / "data", settings=TINY)
