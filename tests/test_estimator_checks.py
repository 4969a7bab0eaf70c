"""The image-native check suite itself: well-behaved estimators pass, and each
check catches the bug it is there for."""

import numpy as np
import pytest
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    OutlierMixin,
    TransformerMixin,
)
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from skcxr import AugmentBalancer, ImageLoader, OtsuMasker
from skcxr.utils import restore_layout, validate_images
from skcxr.utils.estimator_checks import (
    check_image_array_views,
    check_image_classifiers_classes,
    check_image_classifiers_multilabel,
    check_image_dict_unchanged,
    check_image_estimator,
    check_image_fit_returns_self,
    check_image_invalid_values,
    check_image_layouts,
    check_image_params_not_mutated,
    check_image_pickle,
    check_image_sample_order_invariance,
    check_image_sampler_fit_resample,
    check_image_shape_errors,
    check_image_subset_invariance,
    parametrize_with_image_checks,
    yield_image_checks,
)


# ------------------------------------------------------- well-behaved estimators
class Gain(TransformerMixin, BaseEstimator):
    """Image-to-image: multiply by ``gain``, clip to [0, 1]."""

    def __init__(self, *, gain=1.5):
        self.gain = gain

    def fit(self, X, y=None):
        images, _ = validate_images(self, X, reset=True)
        self.mean_ = float(images.mean())
        return self

    def transform(self, X):
        check_is_fitted(self)
        images, layout = validate_images(self, X, reset=False)
        return restore_layout(np.clip(images * self.gain, 0, 1), layout)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class Centroids(ClassifierMixin, BaseEstimator):
    """Nearest class-mean image, probabilities from a softmax of distances."""

    def fit(self, X, y):
        images, _ = validate_images(self, X, reset=True)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        self.classes_, codes = np.unique(y, return_inverse=True)
        flat = images.reshape(len(images), -1)
        self.centroids_ = np.stack(
            [flat[codes == k].mean(0) for k in range(len(self.classes_))]
        )
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        images, _ = validate_images(self, X, reset=False)
        flat = images.reshape(len(images), -1).astype(np.float64)
        d = ((flat[:, None] - self.centroids_[None]) ** 2).sum(-1)
        logits = -(d - d.min(axis=1, keepdims=True))
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class MeanDistanceDetector(OutlierMixin, BaseEstimator):
    """Outliers are far from the mean training image."""

    def fit(self, X, y=None):
        images, _ = validate_images(self, X, reset=True)
        self.mean_ = images.mean(0)
        self.offset_ = float(np.median(self.score_samples(X)))
        return self

    def score_samples(self, X):
        check_is_fitted(self, "mean_")
        images, _ = validate_images(self, X, reset=False)
        return -((images - self.mean_) ** 2).mean(axis=(1, 2))

    def decision_function(self, X):
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        return np.where(self.decision_function(X) >= 0, 1, -1)


# ---------------------------------------------------------------- broken ones
class ReturnsNone(Gain):
    def fit(self, X, y=None):
        super().fit(X)


class RemembersLastBatch(Gain):
    def transform(self, X):
        self.last_batch_ = X
        return super().transform(X)


class BatchNormalised(Gain):
    """Normalises by the batch mean: output depends on the other images."""

    def transform(self, X):
        out = super().transform(X)
        return np.clip(out - out.mean() + 0.5, 0, 1).astype(np.float32)


class RefusesNegativeStrides(Gain):
    """Like ``torch.from_numpy``: refuses views with negative strides."""

    def fit(self, X, y=None):
        self._refuse(X)
        return super().fit(X)

    def transform(self, X):
        self._refuse(X)
        return super().transform(X)

    @staticmethod
    def _refuse(X):
        if isinstance(X, np.ndarray) and any(s < 0 for s in X.strides):
            raise ValueError("At least one stride in the given numpy array is negative")


class OverwritesParam(Gain):
    def fit(self, X, y=None):
        self.gain = float(self.gain) * 2
        return super().fit(X)


class AcceptsAnything(Gain):
    """No validation: NaN and any shape pass through."""

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float32)
        self.n_features_in_ = X.reshape(len(X), -1).shape[1]
        self.image_shape_ = (32, 32)
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float32)


class FlattensOutput(Gain):
    def transform(self, X):
        return super().transform(X).reshape(len(X), -1)


class PredictsStrangers(Centroids):
    def predict(self, X):
        pred = super().predict(X).astype(object)
        pred[0] = "stranger"
        return pred


class BadIndices(AugmentBalancer):
    def _fit_resample(self, X, y):
        X_res, y_res = super()._fit_resample(X, y)
        self.sample_indices_ = self.sample_indices_[::-1].copy()
        return X_res, y_res


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("estimator", [Gain(), Centroids(), MeanDistanceDetector()])
def test_well_behaved_estimators_pass_every_check(estimator):
    results = check_image_estimator(estimator)
    assert {r["status"] for r in results} == {"passed"}
    names = [r["check"] for r in results]
    assert len(names) == len(set(names)) > 15
    assert "check_image_layouts" in names and "check_image_readonly_memmap" in names


@pytest.mark.parametrize(
    "broken, check",
    [
        (ReturnsNone(), check_image_fit_returns_self),
        (RemembersLastBatch(), check_image_dict_unchanged),
        (BatchNormalised(), check_image_subset_invariance),
        (RefusesNegativeStrides(), check_image_array_views),
        (OverwritesParam(), check_image_params_not_mutated),
        (AcceptsAnything(), check_image_invalid_values),
        (AcceptsAnything(), check_image_shape_errors),
        (FlattensOutput(), check_image_layouts),
        (PredictsStrangers(), check_image_classifiers_classes),
        (BadIndices(random_state=0), check_image_sampler_fit_resample),
    ],
    ids=lambda x: getattr(x, "__name__", type(x).__name__),
)
def test_each_check_catches_its_bug(broken, check):
    name = type(broken).__name__
    with pytest.raises((AssertionError, ValueError)):
        check(name, broken)
    # the same check passes on the well-behaved parent
    parent = type(broken).__mro__[1]
    check(parent.__name__, parent())


def test_batch_dependence_is_not_an_order_problem():
    # a per-batch normalisation keeps the sample order: only the subset check fails
    check_image_sample_order_invariance("BatchNormalised", BatchNormalised())


class ForgetsOnPickle(Gain):
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: leave the original alone
        state["gain"] = 1.0
        return state


def test_pickle_check_compares_outputs():
    with pytest.raises(AssertionError):
        check_image_pickle("ForgetsOnPickle", ForgetsOnPickle())


def test_checks_follow_the_estimator_kind():
    def names(estimator):
        return {check.func.__name__ for check in yield_image_checks(estimator)}

    classifier, transformer = names(Centroids()), names(Gain())
    sampler, reader = names(AugmentBalancer()), names(ImageLoader(size=16))
    assert "check_image_classifiers_classes" in classifier - transformer
    assert "check_image_transformer_general" in transformer - classifier
    assert "check_image_outliers_train" in names(MeanDistanceDetector())
    assert {"check_image_sampler_fit_resample", "check_image_sampler_one_label"} <= (
        sampler - transformer
    )
    assert "check_image_subset_invariance" in sampler  # skipped: no inference
    assert "check_image_classifiers_multilabel" not in classifier
    # a path reader gets the general checks, none that feed it arrays
    assert {"check_image_pickle", "check_image_subset_invariance"} <= reader
    assert not reader & {"check_image_layouts", "check_image_invalid_values"}


def test_expected_failures_and_on_fail():
    results = check_image_estimator(
        BatchNormalised(),
        expected_failed_checks={"check_image_subset_invariance": "batch statistics"},
    )
    status = {r["check"]: r["status"] for r in results}
    assert status["check_image_subset_invariance"] == "xfail"
    assert status["check_image_sample_order_invariance"] == "passed"
    with pytest.raises(AssertionError):
        check_image_estimator(BatchNormalised())
    recorded = check_image_estimator(BatchNormalised(), on_fail=None)
    failed = [r for r in recorded if r["status"] == "failed"]
    assert [r["check"] for r in failed] == ["check_image_subset_invariance"]
    passing = check_image_estimator(
        Gain(), expected_failed_checks={"check_image_pickle": "not really"}
    )
    assert {r["status"] for r in passing if r["check"] == "check_image_pickle"} == {
        "xpass"
    }


def test_non_image_estimators_skip_only_the_layout_check():
    from sklearn.linear_model import LogisticRegression

    results = check_image_estimator(LogisticRegression(C=0.01))
    status = {r["check"]: r["status"] for r in results}
    assert status.pop("check_image_layouts") == "skipped"
    assert set(status.values()) == {"passed"}


def test_parametrize_marks_expected_failures():
    decorator = parametrize_with_image_checks(
        [Gain(), OtsuMasker()],
        expected_failed_checks=lambda est: (
            {"check_image_pickle": "reason"} if isinstance(est, Gain) else {}
        ),
    )
    (params,) = decorator.mark.args[1:]
    assert decorator.mark.args[0] == "estimator, check"
    ids = [param.id for param in params]
    assert len(ids) == len(set(ids))
    assert "Gain()-check_image_pickle" in ids
    xfails = [p.id for p in params if p.marks]
    assert xfails == ["Gain()-check_image_pickle"]
    assert xfails[0].startswith("Gain")


def test_parameters_are_validated():
    with pytest.raises(InvalidParameterError, match="estimator"):
        check_image_estimator("not an estimator")
    with pytest.raises(ValueError, match="on_fail"):
        check_image_estimator(Gain(), on_fail="warn")
    with pytest.raises(InvalidParameterError, match="expected_failed_checks"):
        parametrize_with_image_checks([Gain()], expected_failed_checks={"a": "b"})


@parametrize_with_image_checks([Gain(), Centroids()])
def test_decorator_runs_the_checks(estimator, check):
    check(estimator)


def test_multilabel_check_runs_for_multilabel_classifiers():
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=3)
    names = {check.func.__name__ for check in yield_image_checks(knn)}
    assert "check_image_classifiers_multilabel" in names
    check_image_classifiers_multilabel("KNeighborsClassifier", knn)

    class FirstLabelOnly(KNeighborsClassifier):
        def predict(self, X):
            return super().predict(X)[:, 0]

    with pytest.raises(AssertionError, match="predict shape"):
        check_image_classifiers_multilabel("FirstLabelOnly", FirstLabelOnly(3))


def test_samplers_skip_the_dict_check():
    from unittest import SkipTest

    with pytest.raises(SkipTest, match="no inference method"):
        check_image_dict_unchanged("AugmentBalancer", AugmentBalancer())
