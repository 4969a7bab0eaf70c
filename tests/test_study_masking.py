"""``skcxr study --mask``: the lung masker fitted on the training split, its
masks scored against the synthetic lung fields beside Otsu's, a classifier per
masking choice, and saved models that mask the files they read."""

import csv

import numpy as np
import pytest

from skcxr._cli import main
from skcxr.datasets import make_chest_xrays
from skcxr.study._run import run_study
from skcxr.study._settings import StudySettings
from skcxr.utils import load_model

TINY = StudySettings.quick().updated(
    {
        "n_samples": 120,
        "size": 32,
        "head_epochs": 2,
        "finetune_epochs": 1,
        "scratch_epochs": 1,
        "anomaly_epochs": 1,
        "segmenter_epochs": 4,
        "n_resamples": 50,
        "n_explained": 1,
        "n_scored_explanations": 2,
        "mask": "segmenter",
    },
    source="test",
)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_study_with_the_segmenter_compares_the_masking_choices(tmp_path):
    from PIL import Image

    out = tmp_path / "report"
    run_study(out, settings=TINY, log=lambda line: None)
    rows = [r for r in _rows(out / "metrics.csv") if r["task"] == "lung masking"]
    models = [r["model"] for r in rows]
    assert len(models) == 3
    assert [m.split(", ")[-1] for m in models] == [
        "no mask",
        "Otsu's threshold",
        "U-Net segmenter",
    ]
    # the unmasked images have no lung masks to score; the two maskers do
    assert rows[0]["lung Dice"] == ""
    for row in rows[1:]:
        dice = float(row["lung Dice"])
        assert 0 < dice <= 1
        assert float(row["lung Dice CI low"]) <= dice <= float(row["lung Dice CI high"])
    assert "Lung masking" in (out / "report.html").read_text()
    # a saved model reads a file, masks it as the study did, then predicts
    model = load_model(out / "models" / "three-class.skops")
    assert [name for name, _ in model.steps] == ["load", "mask", "model"]
    image = make_chest_xrays(1, size=32, random_state=5)[0][0]
    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "x.png")
    path = [str(tmp_path / "x.png")]
    loaded, masked = model[:1].transform(path), model[:-1].transform(path)
    lungs = model["mask"].estimator.predict(loaded)
    assert np.array_equal(masked, np.where(lungs, loaded, 0))
    proba = model.predict_proba(path)
    assert np.array_equal(proba, model[-1].predict_proba(masked))


def test_the_segmenter_needs_lung_masks_a_real_folder_does_not_have(tmp_path):
    settings = TINY.updated({"mask": "segmenter"}, source="test")
    with pytest.raises(ValueError, match="only the synthetic data"):
        run_study(tmp_path / "r", data=tmp_path, settings=settings)


def test_the_mask_setting_is_checked(tmp_path):
    with pytest.raises(ValueError, match="'mask' must be one of"):
        StudySettings().updated({"mask": "watershed"}, source="test")
    with pytest.raises(SystemExit):
        main(["study", "--quick", "--mask", "watershed", "--out", str(tmp_path)])


def test_without_a_mask_the_synthetic_study_draws_no_lung_masks():
    from skcxr.study._data import load_study_data

    study = load_study_data(TINY.updated({"mask": "none"}, source="test"))
    assert study.lung_masks is None
    masked = load_study_data(TINY)
    assert masked.lung_masks.shape == masked.X.shape
    # asking for the lung fields changes neither the images nor the labels
    np.testing.assert_array_equal(study.X, masked.X)
    np.testing.assert_array_equal(study.y, masked.y)
