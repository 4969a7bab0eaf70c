"""A Flask app that predicts and explains uploaded chest X-rays.

The model is a pipeline from image files (every model ``skcxr study`` saves):
an upload is written to a private temporary file, read by the model's own
:class:`~skcxr.ImageLoader` (so DICOM, 16-bit PNG and its resize rules apply),
and removed. Explanations register hooks on the network, so requests that
explain are serialised by a lock; predictions run concurrently.
"""

import hmac
import io
import os
import tempfile
import threading
from importlib import resources

import numpy as np
from flask import Flask, jsonify, request, send_file
from PIL import Image
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

__all__ = ["create_app", "SUPPORTED_EXTENSIONS"]

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff")
DISCLAIMER = "For research use only. Not a medical device; not for diagnosis."


class _RequestError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _extension(filename):
    return os.path.splitext(filename.lower())[1]


def _model_name(model):
    return type(model[-1]).__name__


def _is_detector(estimator):
    return hasattr(estimator, "score_samples") and not hasattr(estimator, "classes_")


class _Predictor:
    """The loaded model (and optional detector) behind the routes."""

    def __init__(self, model, detector=None):
        self.model = model
        self.detector = detector
        self.estimator = model[-1]
        if not hasattr(self.estimator, "predict_proba"):
            raise ValueError(
                f"{_model_name(model)} is not a classifier with predict_proba; give "
                "an anomaly detector with --detector instead"
            )
        self.classes = [str(c) for c in self.estimator.classes_]
        self.multilabel = bool(getattr(self.estimator, "multilabel_", False))
        self.explain_lock = threading.Lock()

    def images(self, pipeline, path):
        """The upload at ``path`` as the model's input images."""
        return pipeline[:-1].transform([path])

    def predict(self, path, filename):
        images = self.images(self.model, path)
        proba = np.asarray(self.estimator.predict_proba(images))[0]
        if self.multilabel:
            predicted = [c for c, p in zip(self.classes, proba) if p >= 0.5]
        else:
            predicted = self.classes[int(np.argmax(proba))]
        result = {
            "filename": filename,
            "predicted": predicted,
            "probabilities": {c: float(p) for c, p in zip(self.classes, proba)},
        }
        if not self.multilabel:
            result["regions"] = self._regions(images)
        if self.detector is not None:
            codes = self.images(self.detector, path)
            result["anomaly_score"] = float(-self.detector[-1].score_samples(codes)[0])
        return result

    def _regions(self, images):
        """Which half of the chest drives the prediction (occlusion)."""
        from ..inspection import region_attribution

        regions = region_attribution(self.estimator, images, regions="halves")
        return {
            "scores": {
                str(name): float(s)
                for name, s in zip(regions.region_names, regions.scores[0])
            },
            "top_region": str(regions.top_region[0]),
        }

    def heatmap(self, path, method):
        from ..inspection import grad_cam, occlusion_sensitivity

        images = self.images(self.model, path)
        if method == "grad_cam" and not hasattr(self.estimator, "module_"):
            raise _RequestError(
                400,
                f"{_model_name(self.model)} is not a torch network, so Grad-CAM is "
                "not available; use method=occlusion",
            )
        explain = grad_cam if method == "grad_cam" else occlusion_sensitivity
        with self.explain_lock:
            maps = explain(self.estimator, images)
        image = np.asarray(images, dtype=np.float32).reshape(maps.shape)[0]
        return image, np.asarray(maps, dtype=np.float32)[0]

    def anomaly_map(self, path):
        estimator = self.detector[-1]
        if not hasattr(estimator, "anomaly_map"):
            raise _RequestError(400, "the detector does not produce anomaly maps")
        images = self.images(self.detector, path)
        with self.explain_lock:
            amap = np.asarray(estimator.anomaly_map(images), dtype=np.float32)[0]
        span = float(amap.max() - amap.min()) or 1.0
        image = np.asarray(images, dtype=np.float32).reshape(amap.shape[-2:])
        return image, (amap - amap.min()) / span


def _png(image, heatmap, layer, alpha=0.45):
    """PNG bytes of an RGB overlay (``layer="overlay"``), the coloured heatmap
    alone with its own transparency (``"heatmap"``) or the gray input
    (``"image"``)."""
    from matplotlib import colormaps

    if layer == "image":
        picture = Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        buffer.seek(0)
        return buffer
    colours = colormaps["jet"](np.clip(heatmap, 0, 1))  # (H, W, 4) in [0, 1]
    if layer == "heatmap":
        colours[..., 3] = np.clip(heatmap, 0, 1) ** 0.5
        rgba = (colours * 255).astype(np.uint8)
        picture = Image.fromarray(rgba, mode="RGBA")
    else:
        gray = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=2)
        blend = (1 - alpha) * gray + alpha * colours[..., :3]
        picture = Image.fromarray((blend * 255).astype(np.uint8), mode="RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def create_app(model, *, detector=None, max_upload_mb=20, token=None, engine=None):
    """The web app for a fitted model that reads image files.

    Parameters
    ----------
    model : Pipeline
        A classifier pipeline whose first step is an :class:`~skcxr.ImageLoader`
        (any classification model that ``skcxr study`` saves).
    detector : Pipeline, default=None
        An anomaly detector pipeline from image files (``models/anomaly``);
        adds ``anomaly_score`` to every prediction.
    max_upload_mb : float, default=20
        Largest request body; larger uploads get status 413.
    token : str, default=None
        When set, every ``/api/`` request needs ``Authorization: Bearer TOKEN``
        (or a ``token`` form field), else status 401.
    engine : {"torch", "onnxruntime", "openvino"} or None, default=None
        When set, the inference engine of every step of ``model`` and
        ``detector`` that has an ``engine`` parameter (set in place; see
        :ref:`inference_engines`); None keeps the engines they were saved
        with. Grad-CAM heatmaps always run in torch.

    Returns
    -------
    flask.Flask

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn.dummy import DummyClassifier
    >>> from skcxr import ImageLoader
    >>> model = Pipeline([("load", ImageLoader(size=8)),
    ...                   ("model", DummyClassifier().fit(np.zeros((2, 64)), [0, 1]))])
    >>> client = create_app(model).test_client()
    >>> client.get("/healthz").get_json()["classes"]
    ['0', '1']
    """
    if engine is not None:
        from ..nn._engines import set_engine

        for pipeline in (model, detector):
            if pipeline is not None:
                set_engine(pipeline, engine)
    predictor = _Predictor(model, detector)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    static = resources.files("skcxr.serve") / "static"

    def error(status, message):
        response = jsonify({"error": message})
        response.status_code = status
        return response

    @app.errorhandler(_RequestError)
    def request_error(exc):
        return error(exc.status, str(exc))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        return error(413, f"the upload is larger than the limit of {max_upload_mb} MB")

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return error(exc.code, exc.description)

    @app.before_request
    def check_token():
        if token is None or not request.path.startswith("/api/"):
            return None
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        given = given or request.form.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return error(401, "a valid token is required (Authorization: Bearer ...)")
        return None

    def uploads(single):
        files = request.files.getlist("file")
        if not files or all(not f.filename for f in files):
            raise _RequestError(
                400, "no file uploaded: send images in the 'file' field"
            )
        if single and len(files) > 1:
            raise _RequestError(400, "send one image in the 'file' field")
        for upload in files:
            if _extension(upload.filename) not in SUPPORTED_EXTENSIONS:
                raise _RequestError(
                    415,
                    f"{upload.filename}: unsupported file type; send PNG, JPEG, "
                    "TIFF or DICOM images",
                )
        return files

    def with_temporary_file(upload, work):
        """Run ``work(path)`` on the upload saved to a private temporary file."""
        handle, path = tempfile.mkstemp(suffix=_extension(upload.filename))
        try:
            with os.fdopen(handle, "wb") as f:
                upload.save(f)
            return work(path)
        except (ValueError, OSError) as exc:
            if isinstance(exc, _RequestError):
                raise
            reason = str(exc).replace(path, upload.filename).splitlines()[0]
            raise _RequestError(
                400, f"{upload.filename} is not a readable image: {reason}"
            ) from exc
        finally:
            os.remove(path)

    @app.get("/")
    def index():
        return send_file(static / "index.html", mimetype="text/html")

    @app.get("/static/<name>")
    def static_file(name):
        path = static / name
        if name not in ("app.js", "style.css") or not path.is_file():
            raise _RequestError(404, f"no static file {name}")
        mimetype = "text/javascript" if name.endswith(".js") else "text/css"
        return send_file(path, mimetype=mimetype)

    @app.get("/healthz")
    def healthz():
        return jsonify(
            {
                "status": "ok",
                "model": _model_name(model),
                "classes": predictor.classes,
                "multilabel": predictor.multilabel,
                "detector": None if detector is None else _model_name(detector),
                "disclaimer": DISCLAIMER,
            }
        )

    @app.post("/api/predict")
    def predict():
        results = [
            with_temporary_file(
                f, lambda path, f=f: predictor.predict(path, f.filename)
            )
            for f in uploads(single=False)
        ]
        return jsonify({"results": results})

    @app.post("/api/explain")
    def explain():
        method = request.args.get("method", "grad_cam")
        layer = request.args.get("layer", "overlay")
        if method not in ("grad_cam", "occlusion", "anomaly"):
            raise _RequestError(
                400, "method must be grad_cam, occlusion or anomaly (with a detector)"
            )
        if layer not in ("overlay", "heatmap", "image"):
            raise _RequestError(400, "layer must be overlay, heatmap or image")
        if method == "anomaly" and detector is None:
            raise _RequestError(400, "no anomaly detector is loaded (--detector)")
        (upload,) = uploads(single=True)

        def work(path):
            if layer == "image":
                pipeline = detector if method == "anomaly" else model
                images = np.asarray(predictor.images(pipeline, path), np.float32)
                side = int(round(np.sqrt(images[0].size)))
                return images[0].reshape(side, side), None
            if method == "anomaly":
                return predictor.anomaly_map(path)
            return predictor.heatmap(path, method)

        image, heatmap = with_temporary_file(upload, work)
        return send_file(_png(image, heatmap, layer), mimetype="image/png")

    return app
