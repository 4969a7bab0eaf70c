"""sklearn's common estimator checks, and their image-native versions, on every
skcxr estimator.

Each ``tests/test_<module>.py`` of an estimator declares, next to its own tests,
``COMMON_ESTIMATORS`` (small, seeded instances) and ``EXPECTED_FAILED_CHECKS``
(sklearn check name -> the reason it cannot pass); this file runs sklearn's
checks and ``skcxr.utils.estimator_checks`` on them all, and makes sure every
sklearn check expected to fail is covered by an image check that runs.
"""

import importlib
import inspect

import pytest
from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcxr.utils import estimator_checks
from skcxr.utils.estimator_checks import (
    parametrize_with_image_checks,
    yield_image_checks,
)
from tests._contract_checks import (
    COVERED_BY,
    EXPECTED_FAILED_IMAGE_CHECKS,
    expected_image_failures,
)

ESTIMATOR_TEST_MODULES = [
    "test_loader",
    "test_masker",
    "test_balancer",
    "test_transfer",
    "test_embedder",
    "test_tsne",
    "test_anomaly",
    "test_voter",
    "test_segmenter",
    "test_equalize",
]

_estimators, _expected = [], {}
for _name in ESTIMATOR_TEST_MODULES:
    _module = importlib.import_module(f"tests.{_name}")
    for _estimator in _module.COMMON_ESTIMATORS:
        _estimators.append(_estimator)
        _expected[type(_estimator)] = _module.EXPECTED_FAILED_CHECKS


def _public_estimator_classes():
    import skcxr

    classes = {}
    for name in skcxr.__all__:
        obj = getattr(skcxr, name)
        if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
            classes[name] = obj
    return classes


def test_every_public_estimator_is_checked():
    import skcxr

    public = _public_estimator_classes()
    # skcxr.__all__ also lists subpackages; those are not estimators
    assert {"preprocessing", "models", "utils"} <= set(skcxr.__all__)
    assert not set(public) & {"preprocessing", "models", "nn", "utils", "study"}
    assert {"ImageLoader", "TransferClassifier", "GAWeightedVoter"} <= set(public)
    checked = {type(est).__name__ for est in _estimators}
    assert set(public) <= checked


def _image_check_names(estimator):
    return {check.func.__name__ for check in yield_image_checks(estimator)}


@pytest.mark.parametrize("estimator", _estimators, ids=lambda est: type(est).__name__)
def test_expected_sklearn_failures_are_covered_by_image_checks(estimator):
    image_checks = _image_check_names(estimator)
    for sklearn_check in _expected[type(estimator)]:
        assert sklearn_check in COVERED_BY, (
            f"{sklearn_check} is expected to fail for {type(estimator).__name__} "
            "but names no covering image check"
        )
        covering = COVERED_BY[sklearn_check]
        assert covering in estimator_checks.__all__, covering
        assert covering in image_checks, (
            f"{covering} (covering {sklearn_check}) does not run on "
            f"{type(estimator).__name__}"
        )


def test_known_image_failures_name_existing_checks():
    by_class = {type(est).__name__: est for est in _estimators}
    for class_name, failures in EXPECTED_FAILED_IMAGE_CHECKS.items():
        assert set(failures) <= _image_check_names(by_class[class_name])
        assert all(len(reason) > 20 for reason in failures.values())


@parametrize_with_checks(
    _estimators, expected_failed_checks=lambda e: _expected[type(e)]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def _slow_to_fit(estimator):
    """The image checks fit an estimator some 30 times; those whose one fit on
    16 images of 32 px takes seconds of CPU (the patch-feature detectors:
    PaDiM's per-patch covariances, PatchCore's memory bank) run as slow tests."""
    return type(estimator).__name__ == "ReconstructionAnomalyDetector" and (
        estimator.get_params().get("method") in ("padim", "patchcore")
    )


@parametrize_with_image_checks(
    [est for est in _estimators if not _slow_to_fit(est)],
    expected_failed_checks=expected_image_failures,
)
def test_image_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_image_checks(
    [est for est in _estimators if _slow_to_fit(est)],
    expected_failed_checks=expected_image_failures,
)
def test_image_estimator_checks_slow_to_fit(estimator, check):
    check(estimator)
