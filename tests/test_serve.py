"""``skcxr serve``: the API through Flask's test client, and the page in a real
headless Chromium against the app served by waitress."""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image
from sklearn.pipeline import Pipeline

from skcxr import ImageLoader, TransferClassifier
from skcxr.datasets import load_sample_images, make_chest_xrays
from skcxr.serve import create_app
from skcxr.utils import save_model


@pytest.fixture(scope="module")
def model():
    X, y = make_chest_xrays(
        48, classes=("normal", "bacteria", "virus"), size=32, random_state=0
    )
    classifier = TransferClassifier(
        backbone="small_cnn",
        weights=None,
        trainable="all",
        head_sizes=(),
        max_epochs=2,
        validation_fraction=0,
        random_state=0,
    ).fit(X, y)
    return Pipeline([("load", ImageLoader(size=32)), ("model", classifier)])


@pytest.fixture(scope="module")
def sample_paths():
    paths, _ = load_sample_images()
    return list(paths)


def _upload(path, name=None):
    with open(path, "rb") as f:
        return (io.BytesIO(f.read()), name or os.path.basename(path))


def test_healthz_describes_the_model(model):
    health = create_app(model).test_client().get("/healthz").get_json()
    assert health["status"] == "ok" and health["model"] == "TransferClassifier"
    assert health["classes"] == ["bacteria", "normal", "virus"]
    assert "research use" in health["disclaimer"].lower()


def test_predict_returns_one_result_per_file_in_order(model, sample_paths):
    client = create_app(model).test_client()
    files = [_upload(p) for p in sample_paths[:3]]
    response = client.post("/api/predict", data={"file": files})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["filename"] for r in results] == [
        os.path.basename(p) for p in sample_paths[:3]
    ]
    for result in results:
        assert result["predicted"] in ("bacteria", "normal", "virus")
        assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert result["regions"]["top_region"] in result["regions"]["scores"]
    expected = model.predict_proba(sample_paths[:1])[0]
    got = [results[0]["probabilities"][c] for c in ("bacteria", "normal", "virus")]
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize(
    "layer, mode", [("overlay", "RGB"), ("heatmap", "RGBA"), ("image", "L")]
)
def test_explain_returns_a_png(model, sample_paths, layer, mode):
    client = create_app(model).test_client()
    response = client.post(
        f"/api/explain?method=grad_cam&layer={layer}",
        data={"file": [_upload(sample_paths[0])]},
    )
    assert response.status_code == 200 and response.mimetype == "image/png"
    picture = Image.open(io.BytesIO(response.data))
    assert picture.mode == mode and picture.size == (32, 32)


def test_explain_adds_no_hook_per_request(model, sample_paths):
    client = create_app(model).test_client()
    module = model[-1].module_

    def hooks():
        return [
            len(m._forward_hooks) + len(m._backward_hooks) for m in module.modules()
        ]

    client.post("/api/explain", data={"file": [_upload(sample_paths[0])]})
    before = hooks()  # the layer's one capture hook, kept (skcxr.nn._capture)
    for _ in range(3):
        client.post("/api/explain", data={"file": [_upload(sample_paths[0])]})
    assert hooks() == before and sum(before) <= 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(model, tmp_path):
    path = tmp_path / "model.skops"  # the safe format: served without --trust
    save_model(model, path)
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skcxr",
            "serve",
            str(path),
            "--port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(process.stderr.read())
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(
        service=Service(shutil.which("chromedriver")), options=options
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver " "(.ci/run installs them)",
)
def test_the_page_in_a_real_browser(server, sample_paths, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chromium()
    try:
        browser.get(server)
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: "classes:" in b.find_element(By.ID, "model-line").text)
        browser.find_element(By.ID, "file-input").send_keys(sample_paths[0])
        predicted = wait.until(
            ready.visibility_of_element_located((By.CSS_SELECTOR, ".predicted"))
        )
        assert predicted.text.split(": ")[1] in ("bacteria", "normal", "virus")
        bars = browser.find_elements(By.CSS_SELECTOR, ".bar-row")
        assert len(bars) == 3
        wait.until(
            lambda b: b.execute_script(
                "const h = document.querySelector('img.heatmap');"
                "return h.complete && h.naturalWidth > 0;"
            )
        )
        assert "research use only" in browser.page_source.lower()
        browser.save_screenshot(str(tmp_path / "serve.png"))
        assert (tmp_path / "serve.png").stat().st_size > 10_000

        text = tmp_path / "notes.txt"
        text.write_text("not an x-ray")
        browser.find_element(By.ID, "file-input").send_keys(str(text))
        error = wait.until(ready.visibility_of_element_located((By.ID, "error")))
        assert "notes.txt" in error.text and "unsupported file type" in error.text
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def detector():
    from skcxr import ReconstructionAnomalyDetector

    X, _ = make_chest_xrays(24, classes=("normal",), size=32, random_state=1)
    padim = ReconstructionAnomalyDetector(input_size=64, random_state=0).fit(X)
    return Pipeline([("load", ImageLoader(size=32)), ("model", padim)])


def test_a_detector_adds_the_anomaly_score_and_map(model, detector, sample_paths):
    client = create_app(model, detector=detector).test_client()
    assert client.get("/healthz").get_json()["detector"] == (
        "ReconstructionAnomalyDetector"
    )
    response = client.post("/api/predict", data={"file": [_upload(sample_paths[0])]})
    score = response.get_json()["results"][0]["anomaly_score"]
    expected = -detector.score_samples(sample_paths[:1])[0]
    assert score == pytest.approx(expected, rel=1e-5)
    response = client.post(
        "/api/explain?method=anomaly", data={"file": [_upload(sample_paths[0])]}
    )
    assert response.status_code == 200 and response.mimetype == "image/png"
    without = create_app(model).test_client()
    response = without.post(
        "/api/explain?method=anomaly", data={"file": [_upload(sample_paths[0])]}
    )
    assert response.status_code == 400 and "detector" in response.get_json()["error"]
