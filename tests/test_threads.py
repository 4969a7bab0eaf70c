"""Fitted models used from several threads at once (a web server's threads, a
Dask worker's): every call gets the single-thread answer and the model is
unchanged afterwards.

The common image check ``check_image_thread_safe_inference`` runs on every
estimator of ``tests/test_common.py``; here it runs on the networks whose
folded first convolution (pretrained weights), patch features, engines or
user feature layers had their own paths, and on every explanation.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from skcxr import CNNEmbedder, ReconstructionAnomalyDetector, TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import (
    grad_cam,
    grad_cam_plus_plus,
    intermediate_activations,
    occlusion_sensitivity,
    region_attribution,
    saliency,
)
from skcxr.nn._backbones import UserBackbone
from skcxr.utils._checks_threads import N_THREADS, fitted_digest
from skcxr.utils.estimator_checks import check_image_thread_safe_inference

SIZE = 32
FOLDED = {"backbone": "efficientnet_lite0", "weights": "imagenet"}


def _engines():
    engines = []
    for engine, module in (("onnxruntime", "onnxruntime"), ("openvino", "openvino")):
        try:
            __import__(module)
        except ImportError:
            continue
        engines.append(engine)
    return engines


@pytest.mark.parametrize(
    "estimator",
    [
        # the folded first convolution of pretrained weights (was swapped in place)
        TransferClassifier(**FOLDED, trainable="head", max_epochs=1, random_state=0),
        TransferClassifier(**FOLDED, trainable=1, max_epochs=1, random_state=0),
        CNNEmbedder(**FOLDED),
        # the patch features (hooks were registered at every call)
        ReconstructionAnomalyDetector(input_size=32, random_state=0),
        ReconstructionAnomalyDetector(
            method="patchcore", input_size=32, random_state=0
        ),
        *[
            TransferClassifier(
                **FOLDED, trainable="head", max_epochs=1, engine=e, random_state=0
            )
            for e in _engines()
        ],
        *[
            ReconstructionAnomalyDetector(input_size=32, engine=e, random_state=0)
            for e in _engines()
        ],
    ],
    ids=lambda est: f"{type(est).__name__}-{est.get_params().get('engine', 'torch')}",
)
def test_networks_give_single_thread_answers_from_threads(estimator):
    check_image_thread_safe_inference(type(estimator).__name__, estimator)


class _Racy(ClassifierMixin, BaseEstimator):
    """Stores the image being predicted on itself, then reads it back: the
    pattern that mixes callers' answers."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.image_shape_ = (SIZE, SIZE)
        return self

    def predict_proba(self, X):
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        self.current_ = X  # shared state written at inference
        mean = sum(float(self.current_.mean()) for _ in range(200)) / 200
        return np.column_stack([np.full(len(X), mean), np.full(len(X), 1 - mean)])

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


def test_the_check_catches_an_estimator_that_mixes_answers():
    with pytest.raises(AssertionError):
        check_image_thread_safe_inference("_Racy", _Racy())


# ----------------------------------------------------------------- explanations
@pytest.fixture(scope="module")
def data():
    return make_chest_xrays(
        24, classes=("normal", "bacteria", "virus"), size=SIZE, random_state=0
    )


@pytest.fixture(scope="module")
def classifier(data):
    X, y = data
    return TransferClassifier(**FOLDED, trainable=1, max_epochs=1, random_state=0).fit(
        X, y
    )


@pytest.fixture(scope="module")
def user_classifier(data):
    """A user network whose feature map is an inner layer's output."""
    X, y = data
    backbone = UserBackbone(
        nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 1)),
        feature_layer="1",
    )
    return TransferClassifier(
        backbone=backbone, trainable="all", max_epochs=2, random_state=0
    ).fit(X, y)


@pytest.fixture(scope="module")
def detector(data):
    X, y = data
    return ReconstructionAnomalyDetector(input_size=32, random_state=0).fit(
        X[y == "normal"]
    )


EXPLANATIONS = {
    "grad_cam": lambda m, X: grad_cam(m, X),
    "grad_cam_plus_plus": lambda m, X: grad_cam_plus_plus(m, X),
    "saliency": lambda m, X: saliency(m, X),
    "smoothgrad": lambda m, X: saliency(
        m, X, method="smoothgrad", n_samples=4, random_state=0
    ),
    "occlusion": lambda m, X: occlusion_sensitivity(m, X, patch_size=8, stride=8),
    "regions": lambda m, X: region_attribution(m, X, regions="quadrants").scores,
    "activations": lambda m, X: intermediate_activations(m, X, None),
}


def _assert_thread_safe(explain, model, X):
    """``explain(model, one image)`` from 8 threads: the single-thread maps,
    the model unchanged."""
    rows = [X[i : i + 1] for i in range(len(X))]
    expected = [explain(model, row) for row in rows]
    digest = fitted_digest(model)
    order = list(range(len(rows))) * 2
    with ThreadPoolExecutor(N_THREADS) as pool:
        got = list(pool.map(lambda i: explain(model, rows[i]), order))
    for i, maps in zip(order, got):
        np.testing.assert_allclose(maps, expected[i], atol=1e-5, err_msg=f"image {i}")
    assert fitted_digest(model) == digest
    np.testing.assert_allclose(explain(model, rows[0]), expected[0], atol=1e-5)


@pytest.mark.parametrize("method", sorted(EXPLANATIONS))
def test_explanations_give_single_thread_maps_from_threads(classifier, data, method):
    _assert_thread_safe(EXPLANATIONS[method], classifier, data[0][:8])


@pytest.mark.parametrize("method", ["grad_cam", "activations"])
def test_a_user_feature_layer_is_thread_safe(user_classifier, data, method):
    _assert_thread_safe(EXPLANATIONS[method], user_classifier, data[0][:8])


def test_anomaly_maps_give_single_thread_maps_from_threads(detector, data):
    _assert_thread_safe(lambda m, X: m.anomaly_map(X), detector, data[0][:8])


def test_a_training_mode_module_is_explained_in_eval_mode_and_left_alone(
    classifier, data
):
    X = data[0][:4]
    expected = grad_cam(classifier, X)
    module = classifier.module_
    module.train()
    try:
        np.testing.assert_allclose(grad_cam(classifier, X), expected, atol=1e-5)
        assert module.training  # the fitted module was not switched
    finally:
        module.eval()
    running = [
        m.running_mean.clone()
        for m in module.modules()
        if isinstance(m, nn.BatchNorm2d)
    ]
    grad_cam(classifier, X)
    after = [m.running_mean for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(after, running))
