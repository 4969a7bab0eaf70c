import base64
import csv
import io
import re
import subprocess
import sys

import pytest
from PIL import Image

from skcxr._cli import main

REPORT_SECTIONS = [
    "Data",
    "Binary classification",
    "Three-class classification",
    "Embeddings, KNN and t-SNE",
    "Anomaly detection from healthy images only",
    "Ensembles: GA-weighted vs uniform averaging",
    "Explanations",
    "Error overlap",
]


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    assert main(["study", "--quick", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_quick_study_writes_every_section_with_figures(quick_study):
    html = (quick_study / "report.html").read_text()
    sections = html.split("<h2")[1:]
    assert [s[s.index(">") + 1 : s.index("</h2>")] for s in sections] == REPORT_SECTIONS
    for heading, section in zip(REPORT_SECTIONS, sections):
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
    for name in ("binary", "three-class", "anomaly", "ensemble"):
        assert (quick_study / "models" / f"{name}.joblib").exists()


@pytest.mark.slow
def test_predict_and_explain_work_on_the_shipped_real_images(quick_study, tmp_path,
                                                             capsys):
    from skcxr.datasets import load_sample_images

    paths, _ = load_sample_images()
    model = str(quick_study / "models" / "three-class.joblib")
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
    assert "is not a model saved by skcxr" in capsys.readouterr().err


def test_unknown_layout_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as info:
        main(["study", "--layout", "mnist"])
    assert info.value.code == 2
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "skcxr", "--help"],
                            capture_output=True, text=True)
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

    X, y = make_chest_xrays(90, classes=classes, size=48, random_state=0)
    write_chest_xrays(tmp_path / "data", X, y, layout=layout)
    out = tmp_path / "report"
    argv = ["study", "--quick", "--data", str(tmp_path / "data"), "--layout", layout]
    assert main([*argv, "--out", str(out)]) == 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    binary = [r for r in rows if r["task"] == "binary"]
    assert binary and all(r[f"F1 {positive}"] != "" for r in binary)
    three_class = {k for r in rows if r["task"] == "three-class" for k in r if r[k]}
    assert {f"F1 {c}" for c in classes} <= three_class
