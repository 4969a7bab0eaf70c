"""Image-native estimator checks: scikit-learn's property checks, run on images.

scikit-learn's :func:`~sklearn.utils.estimator_checks.parametrize_with_checks`
feeds random tabular data (1 to 10 features, values outside [0, 1]), which the
image data contract (see the user guide's data contract page) rejects, so an
image estimator fails those checks before its own logic runs. The checks here
test the same properties (pickling, idempotent fit, sample-order and batch-size
invariance, untouched parameters, read-only memmap input, dtypes, NaN/inf
rejection...) on tiny synthetic chest X-rays from
:func:`skcxr.datasets.make_chest_xrays`, in the three layouts of the contract
and as read-only memmaps, reversed and strided views. One more property is
checked that scikit-learn does not: inference from several threads at once
gives the single-thread answers and leaves the model unchanged, as a
multi-threaded web server or Dask worker needs.

What an estimator is checked for comes from its scikit-learn tags and methods:
classifier, outlier detector, regressor, transformer, sampler (a
``fit_resample`` method, imbalanced-learn's API) or path reader (an estimator
whose tags say it takes strings and no 2-D arrays). An estimator that sets
``image_shape_`` in ``fit`` (as :func:`skcxr.utils.validate_images` does) is
checked as an image estimator: every layout, out-of-range values rejected,
clear errors for images of the wrong size. Any other estimator is fed the flat
layout only, as a feature matrix (for example a voting ensemble over sklearn
classifiers, or a map of embeddings).
"""

import functools
import re
from unittest import SkipTest

from sklearn.base import is_classifier, is_outlier_detector
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, validate_params

from ._check_data import OUTPUT_METHODS, _is_sampler, _takes_paths
from ._checks_general import (
    check_image_array_views,
    check_image_data_not_an_array,
    check_image_dict_unchanged,
    check_image_dtypes,
    check_image_fit_check_is_fitted,
    check_image_fit_idempotent,
    check_image_fit_returns_self,
    check_image_fit_score_takes_y,
    check_image_invalid_values,
    check_image_layouts,
    check_image_n_features_in,
    check_image_one_sample,
    check_image_params_not_mutated,
    check_image_pickle,
    check_image_pipeline_consistency,
    check_image_readonly_memmap,
    check_image_sample_order_invariance,
    check_image_shape_errors,
    check_image_subset_invariance,
)
from ._checks_kinds import (
    check_image_class_weight,
    check_image_classifiers_classes,
    check_image_classifiers_multilabel,
    check_image_classifiers_train,
    check_image_outliers_train,
    check_image_sampler_fit_resample,
    check_image_sampler_inputs,
    check_image_sampler_one_label,
    check_image_supervised_y_2d,
    check_image_transformer_general,
)
from ._checks_threads import check_image_thread_safe_inference

__all__ = [
    "OUTPUT_METHODS",
    "check_image_estimator",
    "parametrize_with_image_checks",
    "yield_image_checks",
    "check_image_array_views",
    "check_image_class_weight",
    "check_image_classifiers_classes",
    "check_image_classifiers_multilabel",
    "check_image_classifiers_train",
    "check_image_data_not_an_array",
    "check_image_dict_unchanged",
    "check_image_dtypes",
    "check_image_fit_check_is_fitted",
    "check_image_fit_idempotent",
    "check_image_fit_returns_self",
    "check_image_fit_score_takes_y",
    "check_image_invalid_values",
    "check_image_layouts",
    "check_image_n_features_in",
    "check_image_one_sample",
    "check_image_outliers_train",
    "check_image_params_not_mutated",
    "check_image_pickle",
    "check_image_pipeline_consistency",
    "check_image_readonly_memmap",
    "check_image_sample_order_invariance",
    "check_image_sampler_fit_resample",
    "check_image_sampler_inputs",
    "check_image_sampler_one_label",
    "check_image_shape_errors",
    "check_image_subset_invariance",
    "check_image_supervised_y_2d",
    "check_image_thread_safe_inference",
    "check_image_transformer_general",
]

# --------------------------------------------------------------- the suite
_GENERAL = (
    check_image_fit_returns_self,
    check_image_dict_unchanged,
    check_image_sample_order_invariance,
    check_image_subset_invariance,
    check_image_pickle,
    check_image_fit_idempotent,
    check_image_params_not_mutated,
    check_image_fit_check_is_fitted,
    check_image_fit_score_takes_y,
    check_image_data_not_an_array,
    check_image_thread_safe_inference,
)
_ARRAY_INPUT = (
    check_image_one_sample,
    check_image_n_features_in,
    check_image_shape_errors,
    check_image_readonly_memmap,
    check_image_array_views,
    check_image_layouts,
    check_image_dtypes,
    check_image_invalid_values,
    check_image_pipeline_consistency,
)
_CLASSIFIER = (
    check_image_classifiers_classes,
    check_image_classifiers_train,
    check_image_supervised_y_2d,
)
_SAMPLER = (
    check_image_sampler_fit_resample,
    check_image_sampler_one_label,
    check_image_sampler_inputs,
)


def _checks_for(estimator):
    checks = list(_GENERAL)
    if _takes_paths(estimator):
        checks.append(check_image_pipeline_consistency)
        return checks
    checks += _ARRAY_INPUT
    if hasattr(estimator, "fit_transform") and hasattr(estimator, "transform"):
        checks.append(check_image_transformer_general)
    if is_classifier(estimator):
        checks += _CLASSIFIER
        if "class_weight" in estimator.get_params():
            checks.append(check_image_class_weight)
        if get_tags(estimator).classifier_tags.multi_label:
            checks.append(check_image_classifiers_multilabel)
    if is_outlier_detector(estimator):
        checks.append(check_image_outliers_train)
    if _is_sampler(estimator):
        checks += _SAMPLER
    return checks


def yield_image_checks(estimator):
    """Yield the image checks that apply to ``estimator``.

    Each check is a callable taking the estimator (it works on a clone); it
    raises an ``AssertionError`` or an unexpected exception when the estimator
    fails, and :class:`unittest.SkipTest` when it does not apply (for example
    the layout check of an estimator that is not an image estimator).

    Parameters
    ----------
    estimator : estimator instance
        The estimator to check (not modified).

    Yields
    ------
    check : callable
        ``check(estimator)``; ``check.func.__name__`` is the check's name.

    Examples
    --------
    >>> from skcxr import OtsuMasker
    >>> from skcxr.utils.estimator_checks import yield_image_checks
    >>> names = [check.func.__name__ for check in yield_image_checks(OtsuMasker())]
    >>> "check_image_pickle" in names and "check_image_layouts" in names
    True
    """
    name = type(estimator).__name__
    for check in _checks_for(estimator):
        yield functools.partial(check, name)


def _check_name(check):
    return (
        check.func.__name__
        if isinstance(check, functools.partial)
        else (check.__name__)
    )


@validate_params(
    {
        "estimator": [HasMethods(["fit", "get_params"])],
        "expected_failed_checks": [dict, None],
        "on_fail": [str, None],
    },
    prefer_skip_nested_validation=True,
)
def check_image_estimator(estimator, *, expected_failed_checks=None, on_fail="raise"):
    """Run every image check that applies to ``estimator``.

    The image-native counterpart of :func:`sklearn.utils.estimator_checks.
    check_estimator`: the same properties, tested on tiny synthetic chest
    X-rays in every layout of the image data contract.

    Parameters
    ----------
    estimator : estimator instance
        The estimator to check; it is cloned, never modified.
    expected_failed_checks : dict of str to str, default=None
        Check name -> why it fails. Those checks still run; a failure is
        reported as ``"xfail"`` instead of raising.
    on_fail : {"raise"} or None, default="raise"
        ``"raise"`` raises the first unexpected failure; ``None`` records it
        as ``"failed"`` and goes on.

    Returns
    -------
    results : list of dict
        One dict per check with keys ``"check"`` (its name), ``"status"``
        (``"passed"``, ``"failed"``, ``"xfail"``, ``"xpass"`` or
        ``"skipped"``) and ``"reason"`` (the expected-failure reason, the skip
        reason or the error, else ``None``).

    Raises
    ------
    AssertionError or Exception
        The first unexpected failure, when ``on_fail="raise"``.

    Examples
    --------
    >>> from skcxr import OtsuMasker
    >>> from skcxr.utils.estimator_checks import check_image_estimator
    >>> results = check_image_estimator(OtsuMasker(sigma=0.5))
    >>> sorted({r["status"] for r in results})
    ['passed']
    >>> len(results) > 15
    True
    """
    if on_fail not in ("raise", None):
        raise ValueError(f"on_fail must be 'raise' or None; got {on_fail!r}.")
    expected = dict(expected_failed_checks or {})
    results = []
    for check in yield_image_checks(estimator):
        check_name = _check_name(check)
        reason = expected.get(check_name)
        try:
            check(estimator)
        except SkipTest as exc:
            results.append(
                {"check": check_name, "status": "skipped", "reason": str(exc)}
            )
        except Exception as exc:
            if reason is not None:
                results.append(
                    {"check": check_name, "status": "xfail", "reason": reason}
                )
                continue
            if on_fail == "raise":
                raise
            results.append(
                {"check": check_name, "status": "failed", "reason": repr(exc)}
            )
        else:
            status = "passed" if reason is None else "xpass"
            results.append({"check": check_name, "status": status, "reason": reason})
    return results


def _estimator_id(estimator):
    return re.sub(r"\s", "", repr(estimator))


@validate_params(
    {"estimators": ["array-like"], "expected_failed_checks": [callable, None]},
    prefer_skip_nested_validation=True,
)
def parametrize_with_image_checks(estimators, *, expected_failed_checks=None):
    """Pytest decorator running the image checks on each of ``estimators``.

    The image-native counterpart of :func:`sklearn.utils.estimator_checks.
    parametrize_with_checks`: the decorated test gets ``estimator`` and
    ``check`` arguments and should call ``check(estimator)``.

    Parameters
    ----------
    estimators : list of estimator instances
        Estimators to check (cloned by every check, never modified).
    expected_failed_checks : callable, default=None
        ``estimator -> dict`` of check name -> reason; those checks are marked
        ``xfail`` with that reason.

    Returns
    -------
    decorator : ``pytest.mark.parametrize``

    Examples
    --------
    >>> from skcxr import OtsuMasker
    >>> from skcxr.utils.estimator_checks import parametrize_with_image_checks
    >>> @parametrize_with_image_checks([OtsuMasker()])
    ... def test_image_checks(estimator, check):
    ...     check(estimator)
    """
    import pytest

    params = []
    for estimator in estimators:
        expected = (
            expected_failed_checks(estimator) if expected_failed_checks else None
        ) or {}
        for check in yield_image_checks(estimator):
            check_name = _check_name(check)
            marks = []
            if check_name in expected:
                marks.append(pytest.mark.xfail(reason=expected[check_name]))
            params.append(
                pytest.param(
                    estimator,
                    check,
                    marks=marks,
                    id=f"{_estimator_id(estimator)}-{check_name}",
                )
            )
    return pytest.mark.parametrize("estimator, check", params)
