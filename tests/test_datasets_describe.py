"""``describe_dataset`` and ``skcxr data describe`` on a folder of each layout.

Every count of a summary is checked against the loader's Bunch of the same
folder, and the images found against the image files on disk.
"""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from skcxr import _cli
from skcxr.datasets import (
    describe_dataset,
    format_description,
    load_chestxray14,
    load_chexpert,
    load_kermany,
    load_mimic_cxr,
    load_padchest,
    load_rsna_pneumonia,
    load_siim_pneumothorax,
    load_vindr_cxr,
)
from skcxr.datasets._describe import LAYOUTS as DESCRIBED
from skcxr.datasets._describe import LayoutError

from ._layout_folders import LAYOUTS, build

ROOT = Path(__file__).resolve().parents[1]
LOADERS = {
    "chestxray14": load_chestxray14,
    "chexpert": load_chexpert,
    "mimic": load_mimic_cxr,
    "padchest": load_padchest,
    "rsna": load_rsna_pneumonia,
    "vindr": load_vindr_cxr,
    "siim": load_siim_pneumothorax,
}
IMAGES = (".jpeg", ".jpg", ".png", ".dcm", ".dicom")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {
        layout: build(layout, tmp_path_factory.mktemp(layout)) for layout in LAYOUTS
    }


def _images_on_disk(folder):
    return sum(
        name.lower().endswith(IMAGES)
        for _, _, names in os.walk(folder)
        for name in names
    )


def _loaded(layout, folder, summary):
    """The loader's Bunch with the options describe_dataset uses."""
    names = [name for name, *_ in summary.findings]
    if layout == "chestxray14":
        names.remove("No Finding")  # the images without finding, not a column
    options = {"on_missing": "skip", "classes": names}
    if layout in ("chexpert", "mimic"):
        options["split"] = None
    with pytest.warns(UserWarning):  # the images left out of a partial download
        return LOADERS[layout](folder, **options)


@pytest.mark.parametrize("layout", [name for name in LAYOUTS if name != "kermany"])
def test_summary_counts_are_the_loaders(folders, layout):
    folder = folders[layout]
    summary = describe_dataset(folder, layout)
    data = _loaded(layout, folder, summary)
    assert summary.layout == layout and summary.root == str(folder)
    assert summary.n_found == len(data.paths)
    # the images on disk: found, but for PadChest's one unreadable row
    assert _images_on_disk(folder) == summary.n_found + (layout == "padchest")
    for key in ("n_missing", "n_unreadable", "n_excluded", "n_rows"):
        assert summary[key] == data[key], key
    assert summary.n_missing > 0 and summary.n_excluded == 0
    if layout != "mimic":  # MIMIC-CXR also counts unreadable label-file rows
        assert summary.n_listed == (
            summary.n_found + summary.n_missing + summary.n_unreadable
        )
    if layout in ("chestxray14", "chexpert", "mimic", "padchest"):
        assert summary.n_listed == data.n_rows  # one label row per image
    if layout in ("rsna", "vindr", "siim"):  # no patient is published
        assert summary.n_patients is None and summary.n_studies is None
    else:
        assert summary.n_patients == len(set(data.patient_ids.tolist()))
        assert summary.n_studies == len(set(data.study_ids.tolist()))
    assert summary.views == Counter(data.views.tolist())
    assert list(summary.views.values()) == sorted(summary.views.values(), reverse=True)
    assert summary.sex == Counter(data.sex.tolist())
    known = data.age[~np.isnan(data.age)]
    assert summary.age.n_known == known.size
    if known.size:
        assert summary.age.median == np.median(known)
        assert (summary.age.min, summary.age.max) == (known.min(), known.max())
    assert summary.split == (None if data.split is None else Counter(data.split))
    for j, name in enumerate(data.classes):
        column = data.labels[:, j]
        assert summary.findings[j] == (
            name,
            int((column == 1).sum()),
            int((column == 0).sum()),
            int(np.isnan(column).sum()),
        )
        assert sum(summary.findings[j][1:]) == summary.n_found
    if layout == "chestxray14":
        healthy = sum(not f for f in data.findings)
        assert summary.findings[-1] == (
            "No Finding",
            healthy,
            len(data.paths) - healthy,
            0,
        )
    assert summary.notes and all("\n" not in note for note in summary.notes)


def test_what_each_layout_shows(folders):
    """Facts of the fixtures, as the summary states them."""
    chexpert = describe_dataset(folders["chexpert"], "chexpert")
    assert chexpert.split == {"train": 360, "val": 3} and chexpert.n_missing == 40
    assert chexpert.findings[-1][0] == "No Finding" and len(chexpert.findings) == 14
    nih = describe_dataset(folders["chestxray14"], "chestxray14")
    assert set(nih.split) == {"train", "test", "unassigned"}
    assert sum(nih.split.values()) == nih.n_found == 270
    padchest = describe_dataset(folders["padchest"], "padchest")
    assert padchest.n_unreadable == 1 and padchest.split is None
    assert any("could not be read" in note for note in padchest.notes)
    mimic = describe_dataset(folders["mimic"], "mimic")  # sex, age from MIMIC-IV
    assert mimic.sex == {"M": 6, "F": 2, "unknown": 3}
    assert (mimic.age.n_known, mimic.age.median) == (5, 69)
    assert (mimic.age.min, mimic.age.max) == (52, 71)
    assert mimic.split == {"train": 6, "val": 2, "test": 3}
    rsna = describe_dataset(folders["rsna"], "rsna")
    assert "unknown" not in rsna.views and rsna.age.n_known == rsna.n_found
    options = describe_dataset(folders["chexpert"], "chexpert", split="val")
    assert options.n_found == 3 and options.split == {"val": 3}


def test_kermany_summary(folders):
    summary = describe_dataset(folders["kermany"], "kermany")
    data = load_kermany(folders["kermany"], return_X_y=False)
    assert summary.n_found == summary.n_listed == len(data.paths) == 12
    assert summary.n_patients == len(set(data.patient_ids.tolist()))
    assert summary.split == Counter(data.split.tolist())
    assert summary.root == str(folders["kermany"] / "chest_xray")
    pneumonia = int((data.target == "PNEUMONIA").sum())
    assert summary.findings[0] == ("Pneumonia", pneumonia, 12 - pneumonia, 0)
    three = load_kermany(folders["kermany"], labels="three_class")[1]
    assert summary.findings[1][1] == (three == "bacteria").sum()
    assert summary.findings[2][1] == (three == "virus").sum()
    assert summary.views is summary.sex is summary.age is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_text_fits_one_screen(folders, layout):
    summary = describe_dataset(folders[layout], layout)
    text = format_description(summary)
    lines = text.splitlines()
    assert len(lines) <= 40 and lines[0].startswith(summary.dataset)
    assert f"{summary.n_found:,} found" in lines[1]
    for name, positive, negative, unknown in summary.findings:
        assert any(
            line.split()[-3:] == [f"{positive:,}", f"{negative:,}", f"{unknown:,}"]
            and line.strip().startswith(name)
            for line in lines
        ), name
    if summary.split is not None:
        assert all(f"{side} {n:,}" in text for side, n in summary.split.items())


def test_layout_errors_say_what_was_expected(folders):
    nih = folders["chestxray14"]
    for layout in DESCRIBED:
        if layout == "chestxray14":
            continue
        with pytest.raises(LayoutError) as error:
            describe_dataset(nih, layout)
        message = str(error.value)
        assert message.startswith("no ") and f"under {nih}" in message
        assert f"layout {layout!r} expects" in message and "\n" not in message
    with pytest.raises(ValueError, match="layout must be one of"):
        describe_dataset(nih, "nih")
    with pytest.raises(ValueError, match="is not a folder"):
        describe_dataset(nih / "Data_Entry_2017.csv", "chestxray14")


def test_cli_prints_the_summary(folders, capsys):
    folder = folders["chexpert"]
    assert _cli.main(["data", "describe", str(folder), "--layout", "chexpert"]) == 0
    out, err = capsys.readouterr()
    assert out == format_description(describe_dataset(folder, "chexpert")) + "\n"
    assert err == ""


@pytest.mark.parametrize(
    "layout, folder, expected",
    [
        ("chexpert", "chestxray14", "no CheXpert-v1.0[-small]/train.csv under "),
        ("chestxray14", "chexpert", "no Data_Entry_2017.csv under "),
        ("padchest", "mimic", "no PADCHEST_chest_x_ray_images_labels_160K"),
        ("mimic", "padchest", "no mimic-cxr-2.0.0-metadata.csv(.gz) under "),
        ("kermany", "siim", "no train/, val/ or test/ folder under "),
        ("rsna", "vindr", "no stage_2_train_labels.csv under "),
        ("vindr", "rsna", "no train.csv under "),
        ("siim", "kermany", "no train-rle.csv under "),
    ],
)
def test_cli_wrong_layout_exits_2_with_one_line(
    folders, capsys, layout, folder, expected
):
    path = str(folders[folder])
    assert _cli.main(["data", "describe", path, "--layout", layout]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"skcxr: error: {expected}")
    assert f"; --layout {layout} expects {path}" in err


def test_cli_bad_folder_and_layout(tmp_path, capsys):
    missing = str(tmp_path / "nowhere")
    assert _cli.main(["data", "describe", missing, "--layout", "chexpert"]) == 2
    assert (
        capsys.readouterr().err == f"skcxr: error: data folder not found: {missing}\n"
    )
    (tmp_path / "train.csv").write_text("a,b\n")
    a_file = str(tmp_path / "train.csv")
    assert _cli.main(["data", "describe", a_file, "--layout", "vindr"]) == 2
    assert "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        _cli.main(["data", "describe", str(tmp_path), "--layout", "nih"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        _cli.main(["data", "describe", str(tmp_path)])  # --layout is required


def test_cli_layouts_are_the_described_and_studied_ones():
    from skcxr.study._readers import LAYOUTS as STUDIED

    assert sorted(_cli.LAYOUTS) == sorted(DESCRIBED) == sorted(LAYOUTS)
    assert sorted(STUDIED) == sorted(LAYOUTS)


def test_describe_does_not_import_torch(folders):
    """``python -m skcxr data describe`` reads label files only: no torch."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "skcxr", "data", "describe"]
        + [str(folders["chexpert"]), "--layout", "chexpert"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("CheXpert (layout chexpert)")
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()}
    assert "skcxr.datasets._describe" in imported
    assert not {name for name in imported if name.split(".")[0] == "torch"}
