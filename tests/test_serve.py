"""``skcxr serve``: the API through Flask's test client, and the page in a real
headless Chromium against the app served by waitress."""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
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
        options = browser.find_elements(By.CSS_SELECTOR, "#method option")
        assert [o.get_attribute("value") for o in options] == [
            "grad_cam",
            "grad_cam_plus_plus",
            "occlusion",
            "saliency",
            "lung_region",
        ]
        assert "Selvaraju et al. 2017" in browser.find_element(By.ID, "sources").text
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


# ------------------------------------------------------------ many clients at once
@pytest.fixture(scope="module")
def pretrained_model():
    """A classifier on a pretrained backbone: its folded first convolution is the
    part that concurrent requests used to corrupt."""
    X, y = make_chest_xrays(
        36, classes=("normal", "bacteria", "virus"), size=32, random_state=0
    )
    classifier = TransferClassifier(
        backbone="efficientnet_lite0", trainable=1, max_epochs=1, random_state=0
    ).fit(X, y)
    return Pipeline([("load", ImageLoader(size=32)), ("model", classifier)])


def _served(app, threads):
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.effective_port}"


def _post(url, path):
    import uuid

    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{os.path.basename(path)}"\r\n\r\n'
            ).encode()
            + f.read()
            + f"\r\n--{boundary}--\r\n".encode()
        )
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, response.read()


ROUTES = [
    "/api/predict",
    "/api/explain?method=grad_cam&layer=heatmap",
    "/api/explain?method=grad_cam_plus_plus&layer=heatmap",
    "/api/explain?method=saliency&layer=heatmap",
    "/api/explain?method=occlusion&layer=heatmap",
    "/api/explain?method=anomaly&layer=heatmap",
]


def _answer(route, body):
    if route == "/api/predict":
        result = json.loads(body)["results"][0]
        return np.array(
            list(result["probabilities"].values()) + [result["anomaly_score"]]
        )
    return np.asarray(Image.open(io.BytesIO(body)), dtype=np.float64)


def test_sixteen_concurrent_clients_get_the_single_client_answers(
    pretrained_model, detector, sample_paths
):
    from concurrent.futures import ThreadPoolExecutor

    app = create_app(pretrained_model, detector=detector)
    server, url = _served(app, threads=8)
    try:
        jobs = [(route, path) for route in ROUTES for path in sample_paths[:4]]
        single = {}
        for route, path in jobs:  # one client, one request at a time
            status, body = _post(url + route, path)
            assert status == 200
            single[route, path] = _answer(route, body)
        with ThreadPoolExecutor(16) as clients:
            answers = list(
                clients.map(lambda job: _post(url + job[0], job[1]), jobs * 3)
            )
    finally:
        server.close()
    assert [status for status, _ in answers] == [200] * len(answers)
    for (route, path), (_, body) in zip(jobs * 3, answers):
        np.testing.assert_allclose(
            _answer(route, body),
            single[route, path],
            rtol=1e-6,
            atol=1e-6,
            err_msg=f"{route} {os.path.basename(path)}",
        )


def test_the_explanations_a_torch_model_offers(model, sample_paths):
    client = create_app(model).test_client()
    names = [e["name"] for e in client.get("/healthz").get_json()["explanations"]]
    assert names == [
        "grad_cam",
        "grad_cam_plus_plus",
        "occlusion",
        "saliency",
        "lung_region",
    ]
    for name in names:
        response = client.post(
            f"/api/explain?method={name}&layer=heatmap",
            data={"file": [_upload(sample_paths[0])]},
        )
        assert response.status_code == 200, (name, response.get_json())
        heat = np.asarray(Image.open(io.BytesIO(response.data)))[..., 3]
        assert heat.max() > heat.min(), name  # a map, not a blank image
    response = client.post(
        "/api/explain?method=lime", data={"file": [_upload(sample_paths[0])]}
    )
    assert response.status_code == 400 and "grad_cam" in response.get_json()["error"]


def test_a_calibrated_model_at_an_operating_point(model, sample_paths):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    y = np.array(["normal"] * 8 + ["pneumonia"] * 8)
    paths, _ = load_sample_images()
    binary = Pipeline(
        [
            ("load", ImageLoader(size=32)),
            (
                "model",
                TransferClassifier(
                    backbone="small_cnn", weights=None, max_epochs=2, random_state=0
                ),
            ),
        ]
    ).fit(paths, y)
    calibrated = CalibratedClassifierCV(FrozenEstimator(binary), method="temperature")
    served = FixedThresholdClassifier(calibrated.fit(paths, y), threshold=0.3)
    served.fit(paths, y)
    client = create_app(served).test_client()
    health = client.get("/healthz").get_json()
    assert health["calibrated"] and health["operating_threshold"] == 0.3
    result = client.post(
        "/api/predict", data={"file": [_upload(sample_paths[0])]}
    ).get_json()["results"][0]
    expected = served.predict_proba(sample_paths[:1])[0]
    np.testing.assert_allclose(list(result["probabilities"].values()), expected)
    assert result["predicted"] == served.predict(sample_paths[:1])[0]


def test_settings_and_models_are_checked_at_start_up(model, detector):
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_upload_mb must be a positive"):
            create_app(model, max_upload_mb=bad)
    with pytest.raises(ValueError, match="max_files must be a positive integer"):
        create_app(model, max_files=0)
    with pytest.raises(ValueError, match="--detector must be an anomaly detector"):
        create_app(model, detector=model)
    with pytest.raises(
        ValueError, match="ReconstructionAnomalyDetector, not a classifier"
    ):
        create_app(detector)


def test_too_many_files_in_one_request_says_so(model, sample_paths):
    client = create_app(model, max_files=3).test_client()
    files = [_upload(sample_paths[0], f"x{i}.jpeg") for i in range(5)]
    response = client.post("/api/predict", data={"file": files})
    assert response.status_code == 413
    assert "at most 3" in response.get_json()["error"]
    many = [(io.BytesIO(b"x"), f"x{i}.png") for i in range(1200)]
    response = create_app(model).test_client().post("/api/predict", data={"file": many})
    assert response.status_code == 413
    assert "too many files" in response.get_json()["error"]
