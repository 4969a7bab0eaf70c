import base64
import csv
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from skcxr._cli import main

REPORT_SECTIONS = [
    "Data",
    "Binary classification",
    "Binary: calibration, operating point and subgroups",
    "Three-class classification",
    "Three-class: calibration, operating point and subgroups",
    "Embeddings, KNN and t-SNE",
    "Anomaly detection from healthy images only",
    "Ensembles: GA-weighted vs uniform averaging",
    "Explanations",
    "Error overlap",
    "Model card",
]
WITHOUT_FIGURES = ("Model card",)


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    logs = str(out / "logs")  # TensorBoard runs, beside the report
    assert main(["study", "--quick", "--out", str(out), "--log-dir", logs]) == 0
    return out


@pytest.mark.slow
def test_quick_study_logs_a_tensorboard_run_per_network(quick_study):
    runs = {
        os.path.relpath(folder, quick_study / "logs")
        for folder, _, files in os.walk(quick_study / "logs")
        if any(f.startswith("events.out.tfevents") for f in files)
    }
    assert {
        "binary/frozen_efficientnet_lite0",
        "binary/fine-tuned_efficientnet_lite0",
        "binary/small_CNN_from_scratch",
        "anomaly/autoencoder",
    } <= runs, runs


@pytest.mark.slow
def test_quick_study_writes_every_section_with_figures(quick_study):
    html = (quick_study / "report.html").read_text()
    sections = html.split("<h2")[1:]
    assert [s[s.index(">") + 1 : s.index("</h2>")] for s in sections] == REPORT_SECTIONS
    for heading, section in zip(REPORT_SECTIONS, sections):
        if heading not in WITHOUT_FIGURES:
            assert "<img " in section and "data:image/png;base64," in section, heading
    for encoded in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as figure:
            figure.verify()  # a whole, decodable PNG: the browser can show it
            assert figure.format == "PNG" and min(figure.size) > 50
    with open(quick_study / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    models = {row["model"] for row in rows}
    assert {"GA-weighted", "uniform average", "small CNN from scratch"} <= models
    assert all(0 <= float(r["macro F1"]) <= 1 for r in rows if r["macro F1"])
    for row in rows:  # every reported value sits inside its own 95% CI
        for key, value in row.items():
            if value and value != "nan" and f"{key} CI low" in row:
                low, high = float(row[f"{key} CI low"]), float(row[f"{key} CI high"])
                assert low - 1e-9 <= float(value) <= high + 1e-9, (row["model"], key)
    assert "more than the resampling noise" in html
    for name in ("binary", "three-class", "anomaly", "ensemble"):
        assert (quick_study / "models" / f"{name}.skops").exists()
        assert (
            name in ("anomaly", "ensemble")
            or (quick_study / "models" / f"{name}-calibrated.skops").exists()
        )
    for row in rows:  # every classifier has its calibration and operating point
        if row["task"] in ("binary", "three-class", "ensemble") and row["accuracy"]:
            assert row["ECE"] and row["ECE calibrated"] and row["operating threshold"]
    with open(quick_study / "subgroups.csv") as f:
        attributes = {r["attribute"] for r in csv.DictReader(f)}
    assert attributes == {"sex", "age band", "view"}
    card = (quick_study / "model_card.md").read_text()
    assert card.startswith("# Model card") and "Synthetic images" in card
    with open(quick_study / "splits.csv") as f:
        splits = list(csv.DictReader(f))
    assert {r["split"] for r in splits} == {"train", "validation", "test"}
    assert "no patient has images in two splits" in html


def _predict_rows(model, paths, tmp_path):
    out_csv = tmp_path / "p.csv"
    # the study's models are in the safe format: no --trust needed
    assert main(["predict", str(model), *paths, "-o", str(out_csv)]) == 0
    with open(out_csv) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["binary", "three-class", "ensemble", "anomaly"])
def test_every_saved_model_reads_image_files(quick_study, tmp_path, name):
    from skcxr.datasets import load_sample_images

    paths, _ = load_sample_images()
    rows = _predict_rows(quick_study / "models" / f"{name}.skops", paths[:3], tmp_path)
    assert [r["path"] for r in rows] == list(paths[:3])
    assert all(r["prediction"] and not r["error"] for r in rows)


@pytest.mark.slow
def test_predict_keeps_one_row_per_input_with_an_error_column(
    quick_study, tmp_path, capsys
):
    from skcxr.datasets import load_sample_images

    paths, _ = load_sample_images()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    inputs = [paths[0], str(broken), paths[1]]
    rows = _predict_rows(quick_study / "models" / "three-class.skops", inputs, tmp_path)
    assert [r["path"] for r in rows] == inputs
    assert rows[1]["prediction"] == "" and "broken.png" in rows[1]["error"]
    assert rows[0]["prediction"] and rows[2]["prediction"]
    assert "1 of 3 file(s) could not be read" in capsys.readouterr().err


@pytest.mark.slow
def test_explain_says_when_the_model_has_no_image_gradient(
    quick_study, tmp_path, capsys
):
    from skcxr.datasets import load_sample_images

    paths, _ = load_sample_images()
    model = str(quick_study / "models" / "ensemble.skops")
    heatmap = tmp_path / "heatmap.png"
    assert main(["explain", model, paths[0], "-o", str(heatmap)]) == 2
    assert "--method occlusion" in capsys.readouterr().err
    argv = ["explain", model, paths[0], "-o", str(heatmap), "--method", "occlusion"]
    assert main(argv) == 0
    assert heatmap.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    anomaly = str(quick_study / "models" / "anomaly.skops")
    assert main(["explain", anomaly, paths[0], "-o", str(heatmap)]) == 2
    assert "anomaly detector" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_and_explain_work_on_the_shipped_real_images(
    quick_study, tmp_path, capsys
):
    from skcxr.datasets import load_sample_images

    paths, _ = load_sample_images()
    model = str(quick_study / "models" / "three-class.skops")
    out_csv = tmp_path / "p.csv"
    assert main(["predict", model, *paths[:3], "-o", str(out_csv)]) == 0
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == list(paths[:3])
    for row in rows:
        probabilities = [float(v) for k, v in row.items() if k.startswith("p(")]
        assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-4

    heatmap = tmp_path / "heatmap.png"
    assert main(["explain", model, paths[0], "-o", str(heatmap)]) == 0
    assert heatmap.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "predicted" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["study", "--data", "/no/such/folder"], "data folder not found"),
        (["predict", "/no/model.joblib", "a.png"], "model file not found"),
        (["explain", "/no/model.joblib", "a.png"], "model file not found"),
        (["predict", "/", "a.png"], "is a folder, not a model file"),
        (["study", "--config", "/no/settings.toml"], "settings file not found"),
    ],
)
def test_bad_paths_get_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("skcxr: error:") and message in err
    assert err.count("\n") == 1


def test_an_empty_folder_gets_a_one_line_error(tmp_path, capsys):
    assert main(["study", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("[")]
    assert len(errors) == 1 and errors[0].startswith("skcxr: error: No Kermany")
    assert "Traceback" not in err


def test_a_file_that_is_not_a_model_is_refused(tmp_path, capsys):
    not_a_model = tmp_path / "model.joblib"
    not_a_model.write_text("hello")
    assert main(["predict", str(not_a_model), str(not_a_model)]) == 2
    assert "not in the safe model format" in capsys.readouterr().err
    assert main(["predict", str(not_a_model), str(not_a_model), "--trust"]) == 2
    err = capsys.readouterr().err
    assert "is not a readable model file" in err and err.count("\n") == 1


def test_unknown_layout_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as info:
        main(["study", "--layout", "mnist"])
    assert info.value.code == 2
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "skcxr", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "study" in result.stdout


def test_malloc_tuning_applies_on_glibc(monkeypatch):
    import platform

    from skcxr._cli import tune_glibc_malloc

    monkeypatch.delenv("SKCXR_NO_MALLOC_TUNING", raising=False)
    assert tune_glibc_malloc() is (platform.libc_ver()[0] == "glibc")


def test_malloc_tuning_can_be_switched_off(monkeypatch):
    from skcxr._cli import tune_glibc_malloc

    monkeypatch.setenv("SKCXR_NO_MALLOC_TUNING", "1")
    assert tune_glibc_malloc() is False


@pytest.mark.slow
@pytest.mark.parametrize(
    "layout, classes, positive",
    [
        ("kermany", ("normal", "bacteria", "virus"), "pneumonia"),
        ("chestxray14", ("normal", "effusion", "atelectasis"), "finding"),
    ],
)
def test_study_runs_on_real_folder_layouts(tmp_path, layout, classes, positive):
    from skcxr.datasets import make_chest_xrays, write_chest_xrays

    X, y = make_chest_xrays(120, classes=classes, size=48, random_state=0)
    # patients own several images (follow-ups), as in both real data sets
    patients = np.repeat(np.arange(40), 3)
    write_chest_xrays(
        tmp_path / "data", X, y, layout=layout, patient_ids=patients, random_state=0
    )
    out = tmp_path / "report"
    argv = ["study", "--quick", "--data", str(tmp_path / "data"), "--layout", layout]
    assert main([*argv, "--size", "48", "--out", str(out)]) == 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    binary = [r for r in rows if r["task"] == "binary"]
    assert binary and all(r[f"F1 {positive}"] != "" for r in binary)
    assert {r["image size"] for r in rows} == {"48"}
    with open(out / "splits.csv") as f:
        splits = list(csv.DictReader(f))
    owners = {}
    for row in splits:
        owners.setdefault(row["patient"], set()).add(row["split"])
    assert all(len(s) == 1 for s in owners.values())  # no patient in two splits
    html = (out / "report.html").read_text()
    assert "no patient has images in two splits" in html
    if layout == "chestxray14":
        findings = {r["finding"] for r in rows if r["task"] == "multi-label"}
        assert findings == {"Effusion", "Atelectasis"}
        assert (out / "models" / "multi-label.skops").exists()
    else:
        three_class = {k for r in rows if r["task"] == "three-class" for k in r if r[k]}
        assert {f"F1 {c}" for c in classes} <= three_class


@pytest.mark.slow
def test_predict_on_a_dask_scheduler_writes_the_same_csv(quick_study, tmp_path):
    distributed = pytest.importorskip("distributed")
    import torch

    from skcxr.datasets import load_sample_images

    paths, _ = load_sample_images()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    inputs = [*paths[:4], str(broken), *paths[4:6]]
    model = str(quick_study / "models" / "three-class.skops")
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    common = ["--chunk-size", "3"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: identical float rounding
    try:
        assert main(["predict", model, *inputs, "-o", str(local), *common]) == 0
        with distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster:
            argv = ["predict", model, *inputs, "-o", str(remote), *common]
            assert main([*argv, "--scheduler", cluster.scheduler_address]) == 0
    finally:
        torch.set_num_threads(threads)
    assert remote.read_text() == local.read_text()


def test_a_shared_pickle_does_not_run_without_trust(tmp_path, capsys):
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.joblib"
    evil.write_bytes(pickle.dumps(Payload()))
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    assert main(["predict", str(evil), str(image)]) == 2
    assert "--trust" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serve", "m.skops", "--port", "70000"], "--port: 70000 is not a port number"),
        (["serve", "m.skops", "--max-upload-mb", "nan"], "'nan' is not a positive"),
        (["serve", "m.skops", "--max-upload-mb", "-5"], "'-5' is not a positive"),
        (["serve", "m.skops", "--threads", "0"], "--threads: 0 is not positive"),
        (["study", "--max-images", "-3"], "--max-images: -3 is not positive"),
        (["study", "--epochs", "two"], "--epochs: 'two' is not a whole number"),
    ],
)
def test_bad_numbers_are_refused_by_argparse(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_settings_out_of_range_name_the_setting(tmp_path, capsys):
    config = tmp_path / "settings.toml"
    config.write_text("test_fraction = 1.5\n")
    assert main(["study", "--config", str(config), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "setting 'test_fraction' is a fraction, between 0 and 1" in err


def _tiny_model(tmp_path):
    """A saved model from image files that needs no training."""
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import make_pipeline

    from skcxr import ImageLoader
    from skcxr.utils import save_model

    model = make_pipeline(
        ImageLoader(size=8), DummyClassifier().fit(np.zeros((2, 64)), ["a", "b"])
    )
    path = tmp_path / "tiny.skops"
    save_model(model, path)
    return str(path)


def test_a_file_given_as_the_data_folder_or_a_pipe_as_an_image(tmp_path, capsys):
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert main(["study", "--data", str(image), "--out", str(tmp_path / "o")]) == 2
    assert "is a file; give the data set's folder" in capsys.readouterr().err
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    assert main(["predict", _tiny_model(tmp_path), str(pipe)]) == 2
    assert "pipe.png is not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "address, message",
    [
        ("tcp://127.0.0.1:9", "no Dask scheduler answers at tcp://127.0.0.1:9"),
        ("notaurl", "'notaurl' is not like tcp://HOST:PORT"),
    ],
)
def test_a_scheduler_that_is_not_there_fails_at_once(
    tmp_path, address, message, capsys
):
    import time

    pytest.importorskip("distributed")
    from skcxr.datasets import load_sample_images

    paths, _ = load_sample_images()
    model = _tiny_model(tmp_path)
    start = time.perf_counter()
    status = main(["predict", model, paths[0], "--scheduler", address])
    assert status == 2 and time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_predict_exits_2_when_no_input_could_be_read(quick_study, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    model = str(quick_study / "models" / "three-class.skops")
    output = tmp_path / "rows.csv"
    assert main(["predict", model, str(broken), "-o", str(output)]) == 2
    assert "broken.png" in output.read_text()  # the error row is still written
    assert "1 of 1 file(s) could not be read" in capsys.readouterr().err


@pytest.mark.slow
def test_two_quick_studies_write_the_same_metrics(quick_study, tmp_path):
    """A seeded study is reproducible on one machine: the README's table is
    what a fresh run writes."""
    again = tmp_path / "again"
    assert main(["study", "--quick", "--out", str(again)]) == 0
    assert (again / "metrics.csv").read_text() == (
        quick_study / "metrics.csv"
    ).read_text()
    assert (again / "subgroups.csv").read_text() == (
        quick_study / "subgroups.csv"
    ).read_text()
