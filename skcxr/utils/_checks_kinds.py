"""Image checks for one kind of estimator: transformers, classifiers,
outlier detectors and samplers."""

import warnings

import numpy as np
from sklearn.base import clone

from ._check_data import (
    _assert_close,
    _assert_same_outputs,
    _fit,
    _flat,
    _images,
    _outputs,
    _prepared,
    _training_data,
)
from ._checks_general import _raises_value_error


def check_image_transformer_general(name, estimator_orig):
    """``fit_transform(X)`` equals ``fit(X).transform(X)``, one row per sample."""
    estimator = _prepared(estimator_orig)
    with _training_data(estimator) as (X, y):
        by_fit_transform = np.asarray(clone(estimator).fit_transform(X, y))
        by_transform = np.asarray(_fit(estimator, X, y).transform(X))
    assert len(by_transform) == len(X)
    _assert_close(
        by_fit_transform, by_transform, f"{name}: fit_transform != fit().transform"
    )


def check_image_classifiers_classes(name, estimator_orig):
    """String and integer labels, two or three classes: ``classes_`` is the
    sorted set of labels and ``predict`` only returns them."""
    X2, y2 = _images(2)
    X3, y3 = _images(3)
    cases = {
        "two string classes": (X2, y2),
        "three string classes": (X3, y3),
        "three integer classes": (X3, np.unique(y3, return_inverse=True)[1] + 3),
    }
    for what, (X, y) in cases.items():
        estimator = _prepared(estimator_orig)
        X = _flat(X)
        estimator.fit(X, y)
        np.testing.assert_array_equal(
            estimator.classes_, np.unique(y), err_msg=f"{name}.classes_ ({what})"
        )
        pred = estimator.predict(X)
        assert pred.shape == (len(X),), f"{name}.predict shape ({what})"
        assert set(np.unique(pred)) <= set(
            np.unique(y)
        ), f"{name}.predict returned labels not in y ({what})"
        assert np.asarray(pred).dtype.kind == np.asarray(y).dtype.kind, (
            f"{name}.predict returned {np.asarray(pred).dtype} labels for "
            f"{np.asarray(y).dtype} y ({what})"
        )


def check_image_classifiers_train(name, estimator_orig):
    """Outputs of a fitted classifier have the right shapes and agree.

    ``predict_proba`` rows sum to 1 and their argmax is ``predict``;
    ``decision_function`` has one column per class (one for two classes);
    ``score`` is an accuracy in [0, 1].
    """
    for n_classes in (2, 3):
        estimator = _prepared(estimator_orig)
        X, y = _images(n_classes)
        X = _flat(X)
        estimator.fit(X, y)
        pred = estimator.predict(X)
        assert pred.shape == (len(X),)
        if hasattr(estimator, "predict_proba"):
            proba = estimator.predict_proba(X)
            assert proba.shape == (len(X), n_classes)
            np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
            assert (proba >= 0).all()
            np.testing.assert_array_equal(
                estimator.classes_[np.argmax(proba, axis=1)],
                pred,
                err_msg=f"{name}: predict is not the argmax of predict_proba",
            )
        if hasattr(estimator, "decision_function"):
            decision = np.asarray(estimator.decision_function(X))
            expected = (len(X),) if n_classes == 2 else (len(X), n_classes)
            assert (
                decision.shape == expected
            ), f"{name}.decision_function shape {decision.shape} != {expected}"
        score = estimator.score(X, y)
        assert 0.0 <= score <= 1.0
        assert score == np.mean(pred == y)


def check_image_supervised_y_2d(name, estimator_orig):
    """A column-vector ``y`` of shape (n, 1) gives the same model as a 1-D ``y``."""
    estimator = _prepared(estimator_orig)
    X, y = _images()
    X = _flat(X)
    expected = _outputs(_fit(clone(estimator), X, y), X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a DataConversionWarning is welcome
        fitted = _fit(estimator, X, y[:, None])
    _assert_same_outputs(
        _outputs(fitted, X), expected, f"{name} with y of shape (n, 1)"
    )


def _multilabel_targets(labels):
    """An indicator matrix of 3 findings (one column per class, plus one
    finding shared by half of the images of each class)."""
    classes = np.unique(labels)
    Y = (labels[:, None] == classes[None, :]).astype(np.int64)
    shared = (np.arange(len(labels)) // 2) % 2  # half of each class, alternating
    return np.column_stack([Y, shared])


def check_image_classifiers_multilabel(name, estimator_orig):
    """A multi-label classifier takes an indicator matrix as ``y``.

    For classifiers whose ``multi_label`` tag is set: fitted on an indicator
    matrix (ndarray or list of lists, same model), ``predict`` returns a 0/1
    array of shape (n_samples, n_labels) and ``predict_proba`` an array of
    that shape with values in [0, 1] (or, as some scikit-learn classifiers
    do, one (n_samples, 2) array per label). Covers scikit-learn's
    ``check_classifiers_multilabel_*`` checks.
    """
    X, labels = _images(2)
    X = _flat(X)
    Y = _multilabel_targets(labels)
    estimator = _prepared(estimator_orig).fit(X, Y)
    outputs = _multilabel_outputs(estimator, X)
    pred = outputs["predict"]
    assert pred.shape == Y.shape, f"{name}.predict shape {pred.shape} != {Y.shape}"
    assert set(np.unique(pred)) <= {0, 1}, f"{name}.predict is not 0/1"
    if "predict_proba" in outputs:
        proba = outputs["predict_proba"]
        assert proba.shape == Y.shape, f"{name}.predict_proba shape {proba.shape}"
        assert proba.min() >= 0 and proba.max() <= 1
    from_lists = _multilabel_outputs(_prepared(estimator_orig).fit(X, Y.tolist()), X)
    _assert_same_outputs(from_lists, outputs, f"{name} with y as lists")


def _multilabel_outputs(estimator, X):
    """``predict`` and ``predict_proba`` as (n_samples, n_labels) arrays."""
    outputs = {"predict": np.asarray(estimator.predict(X))}
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        if isinstance(proba, list):  # one (n_samples, 2) array per label
            assert all(np.shape(p) == (len(X), 2) for p in proba)
            proba = np.column_stack([np.asarray(p)[:, 1] for p in proba])
        outputs["predict_proba"] = np.asarray(proba)
    return outputs


def check_image_class_weight(name, estimator_orig):
    """``class_weight="balanced"`` and a dict of weights fit, and change the model.

    On imbalanced images (12 against 4), fitting with either weighting works
    and at least one of them changes ``predict_proba`` (or ``predict``): the
    weights are not ignored. (One weighting alone may leave a model trained by
    a few steps of a sign-based optimiser such as Adam unchanged.)
    """
    X, y = _images(2, weights=(0.75,))
    X = _flat(X)
    plain = _prepared(estimator_orig).fit(X, y)
    method = "predict_proba" if hasattr(plain, "predict_proba") else "predict"
    reference = np.asarray(getattr(plain, method)(X))
    classes, counts = np.unique(y, return_counts=True)
    minority, majority = classes[np.argmin(counts)], classes[np.argmax(counts)]
    changed = []
    for class_weight in ("balanced", {minority: 10.0, majority: 1.0}):
        weighted = _prepared(estimator_orig).set_params(class_weight=class_weight)
        out = np.asarray(getattr(weighted.fit(X, y), method)(X))
        assert out.shape == reference.shape
        if method == "predict_proba":
            changed.append(not np.allclose(out, reference, rtol=1e-5, atol=1e-6))
        else:
            changed.append(not np.array_equal(out, reference))
    assert any(changed), f"{name}: class_weight has no effect on {method}"


def check_image_outliers_train(name, estimator_orig):
    """Outlier detectors: ``predict`` in {-1, +1} and consistent with
    ``decision_function`` (inlier where it is >= 0), which differs from
    ``score_samples`` by a constant; ``fit_predict`` matches ``fit().predict``."""
    estimator = _prepared(estimator_orig)
    X, _ = _images()
    X = _flat(X)
    estimator.fit(X)
    pred = estimator.predict(X)
    assert set(np.unique(pred)) <= {-1, 1}, f"{name}.predict gave {np.unique(pred)}"
    if hasattr(estimator, "decision_function"):
        decision = np.asarray(estimator.decision_function(X))
        assert decision.shape == (len(X),)
        np.testing.assert_array_equal(
            np.where(decision >= 0, 1, -1),
            pred,
            err_msg=f"{name}: predict disagrees with the sign of decision_function",
        )
        if hasattr(estimator, "score_samples"):
            offset = np.asarray(estimator.score_samples(X)) - decision
            np.testing.assert_allclose(
                offset,
                offset[0],
                rtol=1e-5,
                atol=1e-6 * max(1.0, float(np.abs(offset).max())),
                err_msg=f"{name}: score_samples - decision_function is not constant",
            )
    if hasattr(estimator, "fit_predict"):
        np.testing.assert_array_equal(
            _prepared(estimator_orig).fit_predict(X),
            pred,
            err_msg=f"{name}: fit_predict != fit().predict",
        )


def check_image_sampler_fit_resample(name, estimator_orig):
    """``fit_resample`` on imbalanced two- and three-class images.

    Shapes and lengths agree, every class reaches the count that
    ``sampling_strategy_`` asks for, ``sample_indices_`` (when the sampler
    exposes it) points at the source of every output image with its label.
    """
    for n_classes, weights in ((2, (0.75,)), (3, (0.5, 0.3))):
        estimator = _prepared(estimator_orig)
        X, y = _images(n_classes, weights)
        X_res, y_res = estimator.fit_resample(X, y)
        X_res, y_res = np.asarray(X_res), np.asarray(y_res)
        assert X_res.shape[1:] == X.shape[1:] and len(X_res) == len(y_res)
        before = dict(zip(*np.unique(y, return_counts=True)))
        after = dict(zip(*np.unique(y_res, return_counts=True)))
        kind = getattr(estimator, "_sampling_type", None)
        for label, n_change in estimator.sampling_strategy_.items():
            if kind == "over-sampling":
                expected = before[label] + n_change
            elif kind == "under-sampling":
                expected = n_change
            else:
                continue
            assert (
                after[label] == expected
            ), f"{name}: class {label!r} has {after[label]} images, not {expected}"
        if kind == "over-sampling" and estimator.sampling_strategy == "auto":
            assert len(set(after.values())) == 1, f"{name} did not balance: {after}"
        if hasattr(estimator, "sample_indices_"):
            indices = np.asarray(estimator.sample_indices_)
            assert indices.shape == (len(y_res),)
            assert indices.min() >= 0 and indices.max() < len(y)
            np.testing.assert_array_equal(y[indices], y_res)


def check_image_sampler_one_label(name, estimator_orig):
    """A sampler refuses a target with a single class, with a ``ValueError``."""
    estimator = _prepared(estimator_orig)
    X, y = _images()
    _raises_value_error(
        lambda: estimator.fit_resample(X, np.full(len(y), y[0])),
        f"{name}.fit_resample with one class",
    )


def check_image_sampler_inputs(name, estimator_orig):
    """Samplers take lists and a column-vector ``y``, and keep the label dtype.

    float32 images stay float32, integer labels keep their dtype, lists give
    the same result as arrays, and ``y`` of shape (n, 1) is accepted.
    """
    X, labels = _images(2, weights=(0.75,))
    y = (labels == labels[0]).astype(np.int32)
    X_res, y_res = _prepared(estimator_orig).fit_resample(X, y)
    assert np.asarray(X_res).dtype == np.float32
    assert (
        np.asarray(y_res).dtype == np.int32
    ), f"{name}.fit_resample turned int32 labels into {np.asarray(y_res).dtype}"
    X_list, y_list = _prepared(estimator_orig).fit_resample(X.tolist(), y.tolist())
    _assert_close(np.asarray(X_list), X_res, f"{name} on lists")
    _assert_close(np.asarray(y_list), y_res, f"{name} on lists")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X_2d, y_2d = _prepared(estimator_orig).fit_resample(X, y[:, None])
    assert len(X_2d) == len(np.ravel(y_2d)) == len(y_res)
