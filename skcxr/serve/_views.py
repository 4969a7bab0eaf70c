"""The web app's routes, as a Flask blueprint of module-level views.

The app factory (:func:`skcxr.serve.create_app`) puts the loaded model (a
:class:`~skcxr.serve._predictor.Predictor`) and the settings in
``current_app.extensions["skcxr"]``; the views read them from there.
"""

import hmac
import io
import os
import tempfile
from importlib import resources

import numpy as np
from flask import Blueprint, current_app, jsonify, request, send_file
from PIL import Image

from ._predictor import RequestError

__all__ = ["DISCLAIMER", "SUPPORTED_EXTENSIONS", "views"]

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff")
DISCLAIMER = "For research use only. Not a medical device; not for diagnosis."
LAYERS = ("overlay", "heatmap", "image")

views = Blueprint("skcxr", __name__)


def _state():
    return current_app.extensions["skcxr"]


def _extension(filename):
    return os.path.splitext(filename.lower())[1]


@views.before_app_request
def check_token():
    token = _state()["token"]
    if token is None or not request.path.startswith("/api/"):
        return None
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    given = given or request.form.get("token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise RequestError(401, "a valid token is required (Authorization: Bearer ...)")
    return None


def _uploads(single):
    files = request.files.getlist("file")
    if not files or all(not f.filename for f in files):
        raise RequestError(400, "no file uploaded: send images in the 'file' field")
    if single and len(files) > 1:
        raise RequestError(400, "send one image in the 'file' field")
    limit = _state()["max_files"]
    if len(files) > limit:
        raise RequestError(
            413, f"{len(files)} files in one request; at most {limit} are accepted"
        )
    for upload in files:
        if _extension(upload.filename) not in SUPPORTED_EXTENSIONS:
            raise RequestError(
                415,
                f"{upload.filename}: unsupported file type; send PNG, JPEG, TIFF or "
                "DICOM images",
            )
    return files


def _with_temporary_file(upload, work):
    """Run ``work(path)`` on the upload saved to a private temporary file."""
    handle, path = tempfile.mkstemp(suffix=_extension(upload.filename))
    try:
        with os.fdopen(handle, "wb") as f:
            upload.save(f)
        return work(path)
    except (ValueError, OSError) as exc:
        reason = str(exc).replace(path, upload.filename).splitlines()[0]
        raise RequestError(
            400, f"{upload.filename} is not a readable image: {reason}"
        ) from exc
    finally:
        os.remove(path)


def _png(image, heatmap, layer, alpha=0.45):
    """PNG bytes of an RGB overlay (``layer="overlay"``), the coloured heatmap
    alone with its own transparency (``"heatmap"``) or the gray input
    (``"image"``)."""
    from matplotlib import colormaps

    if layer == "image":
        picture = Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
    else:
        colours = colormaps["jet"](np.clip(heatmap, 0, 1))  # (H, W, 4) in [0, 1]
        if layer == "heatmap":
            colours[..., 3] = np.clip(heatmap, 0, 1) ** 0.5
            picture = Image.fromarray((colours * 255).astype(np.uint8), mode="RGBA")
        else:
            gray = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=2)
            blend = (1 - alpha) * gray + alpha * colours[..., :3]
            picture = Image.fromarray((blend * 255).astype(np.uint8), mode="RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


@views.get("/")
def index():
    page = resources.files("skcxr.serve") / "static" / "index.html"
    return send_file(page, mimetype="text/html")


@views.get("/static/<name>")
def static_file(name):
    path = resources.files("skcxr.serve") / "static" / name
    if name not in ("app.js", "style.css") or not path.is_file():
        raise RequestError(404, f"no static file {name}")
    mimetype = "text/javascript" if name.endswith(".js") else "text/css"
    return send_file(path, mimetype=mimetype)


@views.get("/healthz")
def healthz():
    return jsonify(
        {"status": "ok", **_state()["predictor"].describe(), "disclaimer": DISCLAIMER}
    )


@views.post("/api/predict")
def predict():
    predictor = _state()["predictor"]
    results = [
        _with_temporary_file(f, lambda path, f=f: predictor.predict(path, f.filename))
        for f in _uploads(single=False)
    ]
    return jsonify({"results": results})


@views.post("/api/explain")
def explain():
    predictor = _state()["predictor"]
    method = request.args.get("method", "grad_cam")
    layer = request.args.get("layer", "overlay")
    if layer not in LAYERS:
        raise RequestError(400, f"layer must be {', '.join(LAYERS)}")
    predictor.check_method(method)
    (upload,) = _uploads(single=True)

    def work(path):
        if layer == "image":
            pipeline = predictor.detector if method == "anomaly" else predictor.pipeline
            images = np.asarray(predictor.images(pipeline, path), np.float32)
            side = int(round(np.sqrt(images[0].size)))
            return images[0].reshape(side, side), None
        if method == "anomaly":
            return predictor.anomaly_map(path)
        return predictor.heatmap(path, method)

    image, heatmap = _with_temporary_file(upload, work)
    return send_file(_png(image, heatmap, layer), mimetype="image/png")
