"""A Flask app that predicts and explains uploaded chest X-rays.

The model reads image files (every model ``skcxr study`` saves): an upload is
written to a private temporary file, read by the model's own
:class:`~skcxr.ImageLoader` (so DICOM, 16-bit PNG and its resize rules apply),
and removed. Requests run concurrently on the server's threads: predictions
and explanations never change the fitted model, so every request gets the
answer a single client would.
"""

import math
from numbers import Real

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ._predictor import Predictor, RequestError
from ._views import SUPPORTED_EXTENSIONS, views

__all__ = ["create_app", "SUPPORTED_EXTENSIONS"]


def _error(status, message):
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _request_error(exc):
    return _error(exc.status, str(exc))


def _too_large(exc):
    settings = current_app.extensions["skcxr"]
    limit_mb = settings["max_upload_mb"]
    if (request.content_length or 0) <= limit_mb * 1024 * 1024:
        return _error(
            413, f"too many files in one request; at most {settings['max_files']}"
        )
    return _error(413, f"the upload is larger than the limit of {limit_mb:g} MB")


def _http_error(exc):
    return _error(exc.code, exc.description)


def _check_settings(max_upload_mb, max_files, token):
    if (
        not isinstance(max_upload_mb, Real)
        or isinstance(max_upload_mb, bool)
        or not math.isfinite(max_upload_mb)
        or max_upload_mb <= 0
    ):
        raise ValueError(
            f"max_upload_mb must be a positive number of megabytes; got "
            f"{max_upload_mb!r}."
        )
    if not isinstance(max_files, int) or isinstance(max_files, bool) or max_files < 1:
        raise ValueError(f"max_files must be a positive integer; got {max_files!r}.")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError("token must be a non-empty string (or None).")


def create_app(
    model, *, detector=None, max_upload_mb=20, max_files=100, token=None, engine=None
):
    """The web app for a fitted model that reads image files.

    Parameters
    ----------
    model : Pipeline or classifier
        A classifier pipeline whose first step is an :class:`~skcxr.ImageLoader`
        (any classification model that ``skcxr study`` saves), or such a
        pipeline inside scikit-learn's calibration
        (``CalibratedClassifierCV(FrozenEstimator(pipeline))``) and
        operating-point (``FixedThresholdClassifier``) wrappers: the page then
        shows the calibrated probabilities and the decision at that threshold.
    detector : Pipeline, default=None
        An anomaly detector pipeline from image files (``models/anomaly``);
        adds ``anomaly_score`` to every prediction.
    max_upload_mb : float, default=20
        Largest request body; larger uploads get status 413.
    max_files : int, default=100
        Most files in one request; more get status 413.
    token : str, default=None
        When set, every ``/api/`` request needs ``Authorization: Bearer TOKEN``
        (or a ``token`` form field), else status 401.
    engine : {"torch", "onnxruntime", "openvino"} or None, default=None
        When set, the inference engine of every step of ``model`` and
        ``detector`` that has an ``engine`` parameter (set in place; see
        :ref:`inference_engines`); None keeps the engines they were saved
        with. Heatmaps from gradients always run in torch.

    Returns
    -------
    flask.Flask

    Raises
    ------
    ValueError
        A model that is not a classifier from image files, a detector that is
        not an anomaly detector, or a bad setting (named).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn.dummy import DummyClassifier
    >>> from skcxr import ImageLoader
    >>> model = Pipeline([("load", ImageLoader(size=8)),
    ...                   ("model", DummyClassifier().fit(np.zeros((2, 64)), [0, 1]))])
    >>> client = create_app(model).test_client()
    >>> health = client.get("/healthz").get_json()
    >>> health["classes"], [e["name"] for e in health["explanations"]]
    (['0', '1'], ['occlusion', 'lung_region'])
    """
    _check_settings(max_upload_mb, max_files, token)
    predictor = Predictor(model, detector)
    if engine is not None:
        from ..nn._engines import set_engine

        for pipeline in (model, detector):
            if pipeline is not None:
                set_engine(pipeline, engine)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    # werkzeug refuses more form parts than this with a 413 of its own
    app.config["MAX_FORM_PARTS"] = max_files + 10
    app.extensions["skcxr"] = {
        "predictor": predictor,
        "token": token,
        "max_upload_mb": max_upload_mb,
        "max_files": max_files,
    }
    app.register_blueprint(views)
    app.register_error_handler(RequestError, _request_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _http_error)
    return app
