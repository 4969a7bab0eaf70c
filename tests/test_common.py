"""sklearn's common estimator checks on every skcxr estimator.

Each ``tests/test_<module>.py`` of an estimator declares, next to its own tests,
``COMMON_ESTIMATORS`` (small, seeded instances) and ``EXPECTED_FAILED_CHECKS``
(check name -> the reason it cannot pass); this file runs them all.
"""

import importlib

from sklearn.utils.estimator_checks import parametrize_with_checks

ESTIMATOR_TEST_MODULES = [
    "test_loader",
    "test_masker",
    "test_balancer",
    "test_transfer",
    "test_embedder",
    "test_tsne",
    "test_anomaly",
    "test_voter",
]

_estimators, _expected = [], {}
for _name in ESTIMATOR_TEST_MODULES:
    _module = importlib.import_module(f"tests.{_name}")
    for _estimator in _module.COMMON_ESTIMATORS:
        _estimators.append(_estimator)
        _expected[type(_estimator)] = _module.EXPECTED_FAILED_CHECKS


def test_every_public_estimator_is_checked():
    import skcxr

    checked = {type(est).__name__ for est in _estimators}
    public = {name for name in skcxr.__all__ if name[0].isupper()}
    assert public <= checked


@parametrize_with_checks(
    _estimators, expected_failed_checks=lambda e: _expected[type(e)]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
