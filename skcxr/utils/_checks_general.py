"""Image checks that apply to every estimator that takes images (or paths)."""

import functools
import inspect
import pickle
from unittest import SkipTest

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from ._check_data import (
    _SIZE,
    _as_nhw,
    _assert_close,
    _assert_same_outputs,
    _fit,
    _flat,
    _images,
    _is_image_estimator,
    _is_sampler,
    _layouts,
    _NotAnArray,
    _output_methods,
    _outputs,
    _prepared,
    _readonly_memmap,
    _require_inference,
    _target,
    _training_data,
)


def check_image_fit_returns_self(name, estimator_orig):
    """``fit`` returns the estimator itself (and ``fit_resample`` a pair)."""
    estimator = _prepared(estimator_orig)
    with _training_data(estimator) as (X, y):
        result = _fit(estimator, X, y)
        assert result is estimator, f"{name}.fit returned {result!r}, not self"
        if _is_sampler(estimator):
            resampled = estimator.fit_resample(X, y)
            assert len(resampled) == 2, f"{name}.fit_resample must return (X, y)"


def check_image_pickle(name, estimator_orig):
    """A pickled and unpickled fitted estimator gives the same outputs."""
    estimator = _prepared(estimator_orig)
    with _training_data(estimator) as (X, y):
        _fit(estimator, X, y)
        fitted_attrs = sorted(k for k in vars(estimator) if k.endswith("_"))
        again = pickle.loads(pickle.dumps(estimator))
        assert type(again) is type(estimator)
        assert (
            sorted(k for k in vars(again) if k.endswith("_")) == fitted_attrs
        ), f"{name}: fitted attributes lost in a pickle round trip"
        assert joblib.hash(again.get_params()) == joblib.hash(estimator.get_params())
        _assert_same_outputs(
            _outputs(again, X, y), _outputs(estimator, X, y), f"{name} unpickled"
        )


def check_image_fit_idempotent(name, estimator_orig):
    """Fitting twice with the same ``random_state`` gives the same outputs."""
    estimator = _prepared(estimator_orig)
    with _training_data(estimator) as (X, y):
        first = _outputs(_fit(estimator, X, y), X, y)
        second = _outputs(_fit(estimator, X, y), X, y)
    _assert_same_outputs(second, first, f"{name} refitted")


def check_image_params_not_mutated(name, estimator_orig):
    """``fit`` neither changes the parameters nor adds public non-fitted attributes.

    Covers scikit-learn's ``check_estimators_overwrite_params`` and
    ``check_dont_overwrite_parameters``.
    """
    estimator = _prepared(estimator_orig)
    params = {k: joblib.hash(v) for k, v in estimator.get_params(deep=False).items()}
    public_before = {k for k in vars(estimator) if not k.startswith("_")}
    with _training_data(estimator) as (X, y):
        _fit(estimator, X, y)
    changed = [
        k
        for k, v in estimator.get_params(deep=False).items()
        if joblib.hash(v) != params[k]
    ]
    assert not changed, f"{name}.fit changed the parameters {changed}"
    added = {
        k
        for k in vars(estimator)
        if not k.startswith("_") and not k.endswith("_") and k not in public_before
    }
    assert (
        not added
    ), f"{name}.fit added public attributes {sorted(added)} that do not end in '_'"


def check_image_dict_unchanged(name, estimator_orig):
    """Inference methods leave ``__dict__`` (and the fitted arrays) unchanged.

    Skipped for an estimator without inference methods (such as a sampler,
    which a pipeline passes over at inference).
    """
    estimator = _prepared(estimator_orig)
    _require_inference(name, estimator)
    with _training_data(estimator) as (X, y):
        _fit(estimator, X, y)
        for method in _output_methods(estimator):
            before = dict(vars(estimator))
            arrays = {
                k: v.copy() for k, v in before.items() if isinstance(v, np.ndarray)
            }
            getattr(estimator, method)(X)
            after = vars(estimator)
            assert set(after) == set(before), (
                f"{name}.{method} added or removed attributes "
                f"{sorted(set(after) ^ set(before))}"
            )
            rebound = [k for k in before if after[k] is not before[k]]
            assert not rebound, f"{name}.{method} rebound the attributes {rebound}"
            for k, value in arrays.items():
                np.testing.assert_array_equal(
                    after[k], value, err_msg=f"{name}.{method} modified {k}"
                )


def check_image_sample_order_invariance(name, estimator_orig):
    """Permuting the samples permutes the outputs of every inference method.

    Skipped for an estimator without inference methods (a sampler).
    """
    estimator = _prepared(estimator_orig)
    _require_inference(name, estimator)
    with _training_data(estimator) as (X, y):
        _fit(estimator, X, y)
        order = np.random.default_rng(0).permutation(len(X))
        whole = _outputs(estimator, X)
        shuffled = _outputs(estimator, X[order])
    for method in whole:
        _assert_close(
            shuffled[method],
            whole[method][order],
            f"{name}.{method} depends on the order of the samples",
        )


def check_image_subset_invariance(name, estimator_orig):
    """Outputs do not depend on the batch: one image at a time, or a few, or all.

    Networks must be in evaluation mode at inference, with no batch statistics.
    Skipped for an estimator without inference methods (a sampler).
    """
    estimator = _prepared(estimator_orig)
    _require_inference(name, estimator)
    with _training_data(estimator) as (X, y):
        _fit(estimator, X, y)
        whole = _outputs(estimator, X)
        batches = [slice(0, 1), slice(1, 2), slice(2, 7), slice(7, len(X))]
        parts = [_outputs(estimator, X[b]) for b in batches]
    for method in whole:
        by_batch = np.concatenate([part[method] for part in parts])
        _assert_close(
            by_batch,
            whole[method],
            f"{name}.{method} gives other results on single images and small batches",
        )


def check_image_one_sample(name, estimator_orig):
    """Fitting on one image works or raises a ``ValueError`` that says why.

    (Inference on single images is tested by
    :func:`check_image_subset_invariance`.)
    """
    estimator = _prepared(estimator_orig)
    with _training_data(estimator) as (X, y):
        try:
            _fit(estimator, X[:1], None if y is None else y[:1])
        except ValueError as exc:
            message = str(exc).lower()
            assert "sample" in message or "class" in message, (
                f"{name}.fit on one image raised a ValueError that names neither "
                f"the samples nor the classes: {exc}"
            )
            return


def check_image_n_features_in(name, estimator_orig):
    """``n_features_in_`` is set by ``fit`` to the pixels per image (H * W)."""
    estimator = _prepared(estimator_orig)
    assert not hasattr(
        estimator, "n_features_in_"
    ), f"{name} has n_features_in_ before fit"
    with _training_data(estimator) as (X, y):
        _fit(estimator, X, y)
    assert estimator.n_features_in_ == _SIZE * _SIZE, (
        f"{name}.n_features_in_ is {estimator.n_features_in_}, not the "
        f"{_SIZE * _SIZE} pixels of a {_SIZE}x{_SIZE} image"
    )
    if _is_image_estimator(estimator):
        assert tuple(estimator.image_shape_) == (
            _SIZE,
            _SIZE,
        ), f"{name}.image_shape_ is {estimator.image_shape_}"


def _raises_value_error(func, what, *needles):
    try:
        func()
    except ValueError as exc:
        message = str(exc)
        for needle in needles:
            assert needle in message, f"{what}: the error {message!r} lacks {needle!r}"
        return
    raise AssertionError(f"{what}: no ValueError was raised")


def check_image_shape_errors(name, estimator_orig):
    """Images of the wrong size or shape get a clear ``ValueError``.

    After ``fit``, images of another size raise an error that gives both the
    fitted and the given number of pixels; a 1-D array is refused (in ``fit``
    and at inference); an image
    estimator also refuses a non-square flat array, a wrong rank and colour
    channels, naming the expected layouts.
    """
    estimator = _prepared(estimator_orig)
    X, labels = _images()
    y = _target(estimator, labels)
    X_flat = _flat(X)
    _fit(estimator, X_flat, y)
    small = _flat(X[:, ::2, ::2])  # 16 x 16 images
    for method in _output_methods(estimator):
        func = getattr(estimator, method)
        _raises_value_error(
            functools.partial(func, small),
            f"{name}.{method} on images of another size",
            str(small.shape[1]),
            str(X_flat.shape[1]),
        )
        _raises_value_error(
            functools.partial(func, X_flat[0]), f"{name}.{method} on a 1-D array"
        )
    _raises_value_error(
        lambda: _fit(clone(estimator), X_flat[0], y), f"{name}.fit on a 1-D array"
    )
    if not _is_image_estimator(estimator):
        return
    bad = {
        "a non-square flat array": X_flat[:, :-1],
        "an array of rank 5": X[:, None, None],
        "RGB images": np.repeat(X[:, None], 3, axis=1),
    }
    for what, X_bad in bad.items():
        _raises_value_error(
            lambda X_bad=X_bad: _fit(clone(estimator), X_bad, y),
            f"{name}.fit on {what}",
            "(n_samples, H, W)",
        )


def check_image_readonly_memmap(name, estimator_orig):
    """Read-only memmapped images (and labels) give the same results as arrays."""
    estimator = _prepared(estimator_orig)
    X, labels = _images()
    y = _target(estimator, labels)
    X = _flat(X)
    expected = _outputs(_fit(clone(estimator), X, y), X, y)
    with _readonly_memmap(X, *([] if y is None else [y])) as maps:
        X_map, y_map = maps[0], (maps[1] if y is not None else None)
        assert not X_map.flags.writeable
        fitted = _fit(estimator, X_map, y_map)
        got = _outputs(fitted, X_map, y_map)
        # the memmapped input is not modified
        np.testing.assert_array_equal(X_map, X)
    _assert_same_outputs(got, expected, f"{name} on read-only memmaps")
    if _is_image_estimator(estimator):
        X_nhw = X.reshape(-1, _SIZE, _SIZE)
        with _readonly_memmap(X_nhw) as (X_map,):
            got = _outputs(estimator, X_map, y)
        expected_nhw = _outputs(estimator, X_nhw, y)
        _assert_same_outputs(got, expected_nhw, f"{name} on read-only (n, H, W)")


def check_image_array_views(name, estimator_orig):
    """Reversed, flipped, Fortran-ordered and strided views work like copies.

    Views with negative strides (``X[::-1]``, ``np.flip``), Fortran-ordered
    arrays and strided slices (``X[:, ::2, ::2]`` of a larger array) must give
    the same results as their C-contiguous copies, in ``fit`` and at inference.
    """
    estimator = _prepared(estimator_orig)
    X, labels = _images()
    y = _target(estimator, labels)
    flat = _flat(X)
    view = flat[::-1]
    y_rev = None if y is None else y[::-1]
    expected = _outputs(
        _fit(clone(estimator), np.ascontiguousarray(view), y_rev), flat, y_rev
    )
    got = _outputs(_fit(estimator, view, y_rev), flat, y_rev)
    _assert_same_outputs(got, expected, f"{name} fitted on a reversed view")
    if _is_sampler(estimator) and not _output_methods(estimator):
        return
    doubled = np.repeat(flat, 2, axis=1)
    views = {
        "a reversed view": flat[::-1],
        "a Fortran-ordered array": np.asfortranarray(flat),
        "a strided column slice": doubled[:, ::2],
    }
    if _is_image_estimator(estimator):
        big = np.repeat(np.repeat(X, 2, axis=1), 2, axis=2)
        views.update(
            {
                "a reversed (n, H, W) view": X[::-1],
                "np.flip of (n, H, W)": np.flip(X, axis=(1, 2)),
                "X[:, ::2, ::2] of larger images": big[:, ::2, ::2],
                "a reversed (n, 1, H, W) view": X[::-1, None],
            }
        )
    for what, V in views.items():
        assert not V.flags.c_contiguous, what
        _assert_same_outputs(
            _outputs(estimator, V),
            _outputs(estimator, np.ascontiguousarray(V)),
            f"{name} on {what}",
        )


def check_image_layouts(name, estimator_orig):
    """The three layouts give the same results; image-to-image keeps the layout.

    Fitting on ``(n, H, W)`` or on flat images gives the same model;
    ``(n, H, W)``, ``(n, 1, H, W)`` and flat ``(n, H*W)`` inputs give the same
    outputs; an image-to-image transformer (or a sampler) returns the layout it
    was given.
    """
    estimator = _prepared(estimator_orig)
    X, labels = _images()
    y = _target(estimator, labels)
    _fit(estimator, _flat(X), y)
    if not _is_image_estimator(estimator):
        raise SkipTest(f"{name} is not an image estimator (no image_shape_)")
    n = len(X)
    if _is_sampler(estimator):
        results = {}
        for layout, X_in in _layouts(X).items():
            X_res, y_res = clone(estimator).fit_resample(X_in, y)
            assert np.asarray(X_res).shape[1:] == X_in.shape[1:], (
                f"{name}.fit_resample turned {layout} images into shape "
                f"{np.asarray(X_res).shape}"
            )
            results[layout] = (_as_nhw(X_res, len(y_res)), y_res)
        for layout in ("n1hw", "flat"):
            _assert_close(results[layout][0], results["nhw"][0], layout)
            _assert_close(results[layout][1], results["nhw"][1], layout)
        return
    by_fit_layout = {}
    for fit_layout in ("flat", "nhw"):
        if fit_layout == "flat":
            fitted = estimator  # fitted on flat images above
        else:
            fitted = _fit(clone(estimator), _layouts(X)[fit_layout], y)
        outs = {}
        for layout, X_in in _layouts(X).items():
            for method, out in _outputs(fitted, X_in).items():
                if method == "transform" and out.size == X_in.size and out.ndim > 1:
                    assert out.shape == X_in.shape, (
                        f"{name}.transform turned {layout} images of shape "
                        f"{X_in.shape} into shape {out.shape}"
                    )
                    out = _as_nhw(out, n)
                outs[(layout, method)] = out
        for (layout, method), out in outs.items():
            _assert_close(
                out,
                outs[("nhw", method)],
                f"{name}.{method} on {layout} differs from (n, H, W)",
            )
        by_fit_layout[fit_layout] = outs
    for key, out in by_fit_layout["nhw"].items():
        _assert_close(
            out,
            by_fit_layout["flat"][key],
            f"{name} fitted on (n, H, W) differs from fitted on flat images: {key}",
        )


def check_image_dtypes(name, estimator_orig):
    """float32, float64 and numeric object arrays work; float32 is preserved.

    Covers ``check_estimators_dtypes``, ``check_dtype_object`` and
    ``check_transformer_preserve_dtypes``: results agree across input dtypes,
    a transformer whose ``preserves_dtype`` tag lists a dtype returns it, and
    an object array holding a string is refused.
    """
    estimator = _prepared(estimator_orig)
    X, labels = _images()
    y = _target(estimator, labels)
    flat = _flat(X)
    transformer_tags = get_tags(estimator).transformer_tags
    preserves = transformer_tags.preserves_dtype if transformer_tags else []
    reference = None
    fitted = {}
    for dtype in (np.float32, np.float64, object):
        X_in = flat.astype(dtype)
        if dtype is np.float64 and not _is_sampler(estimator):
            # float64 at inference on the float32 model; object input (which
            # becomes float64 or float32 inside) goes through fit below
            model = fitted[np.float32]
        else:
            model = fitted[dtype] = _fit(clone(estimator), X_in, y)
        outputs = _outputs(model, X_in, y)
        if reference is None:
            reference = outputs
        else:
            _assert_same_outputs(
                outputs, reference, f"{name} on {np.dtype(dtype)} input", tol=1e-3
            )
        if np.dtype(dtype).name in preserves and "transform" in outputs:
            assert outputs["transform"].dtype == dtype, (
                f"{name}.transform turned {np.dtype(dtype)} into "
                f"{outputs['transform'].dtype} although preserves_dtype lists it"
            )
    if _is_sampler(estimator):
        X_res, _ = clone(estimator).fit_resample(flat, y)
        assert (
            np.asarray(X_res).dtype == np.float32
        ), f"{name}.fit_resample did not keep float32"
    X_str = flat.astype(object)
    X_str[0, 0] = "a"
    try:
        _fit(clone(estimator), X_str, y)
    except (ValueError, TypeError):
        pass
    else:
        raise AssertionError(f"{name}.fit accepted an object array holding a string")


def check_image_invalid_values(name, estimator_orig):
    """NaN, infinity and (for image estimators) values outside [0, 1] raise.

    ``fit`` and every inference method raise a ``ValueError``.
    """
    estimator = _prepared(estimator_orig)
    X, labels = _images()
    y = _target(estimator, labels)
    flat = _flat(X)
    _fit(estimator, flat, y)
    bad = {}
    for value in (np.nan, np.inf, -np.inf):
        X_bad = flat.copy()
        X_bad[0, 5] = value
        bad[str(value)] = X_bad
    if _is_image_estimator(estimator):
        bad["values above 1"] = flat * 1.5 + 0.1
        bad["negative values"] = flat - 0.5
    for what, X_bad in bad.items():
        _raises_value_error(
            lambda X_bad=X_bad: _fit(clone(estimator), X_bad, y),
            f"{name}.fit on {what}",
        )
        for method in _output_methods(estimator):
            _raises_value_error(
                functools.partial(getattr(estimator, method), X_bad),
                f"{name}.{method} on {what}",
            )


def check_image_fit_check_is_fitted(name, estimator_orig):
    """``check_is_fitted`` fails before ``fit`` (when fitting is needed) and
    passes after; inference before ``fit`` raises ``NotFittedError``."""
    estimator = _prepared(estimator_orig)
    with _training_data(estimator) as (X, y):
        if get_tags(estimator).requires_fit:
            try:
                check_is_fitted(estimator)
            except NotFittedError:
                pass
            else:
                raise AssertionError(f"{name} passes check_is_fitted before fit")
            for method in _output_methods(estimator):
                try:
                    getattr(estimator, method)(X)
                except NotFittedError:
                    continue
                raise AssertionError(
                    f"{name}.{method} before fit did not raise NotFittedError"
                )
        _fit(estimator, X, y)
        check_is_fitted(estimator)


def check_image_pipeline_consistency(name, estimator_orig):
    """The estimator alone and at the end of a ``Pipeline`` give the same outputs."""
    estimator = _prepared(estimator_orig)
    if _is_sampler(estimator):
        from imblearn.pipeline import make_pipeline as make_imb_pipeline

        with _training_data(estimator) as (X, y):
            pipe = make_imb_pipeline(clone(estimator))
            got = pipe.fit_resample(X, y)
            expected = clone(estimator).fit_resample(X, y)
        for a, b in zip(got, expected):
            _assert_close(a, b, f"{name} in a Pipeline")
        return
    with _training_data(estimator) as (X, y):
        pipe = _fit(make_pipeline(clone(estimator)), X, y)
        alone = _outputs(_fit(estimator, X, y), X)
        in_pipe = {m: np.asarray(getattr(pipe, m)(X)) for m in alone}
    _assert_same_outputs(in_pipe, alone, f"{name} in a Pipeline")


def check_image_fit_score_takes_y(name, estimator_orig):
    """``fit``, ``score``, ``fit_predict``, ``fit_transform`` and
    ``fit_resample`` take ``y`` as their second argument, and ``fit`` runs
    with it given (an unsupervised estimator ignores it)."""
    estimator = _prepared(estimator_orig)
    for method in (
        "fit",
        "score",
        "partial_fit",
        "fit_predict",
        "fit_transform",
        "fit_resample",
    ):
        func = getattr(estimator, method, None)
        if func is None:
            continue
        args = [p for p in inspect.signature(func).parameters if p != "self"]
        assert len(args) >= 2 and args[1] in (
            "y",
            "Y",
        ), f"{name}.{method} takes {args}; its second argument must be y"
    _, labels = _images()
    with _training_data(estimator) as (X, y):
        y = labels if y is None else y  # unsupervised estimators ignore it
        assert estimator.fit(X, y) is estimator


def check_image_data_not_an_array(name, estimator_orig):
    """Array-likes that are not arrays (``__array__`` only, nested lists) give
    the same results as arrays, in ``fit`` and at inference."""
    estimator = _prepared(estimator_orig)
    with _training_data(estimator) as (X, y):
        expected = _outputs(_fit(clone(estimator), X, y), X, y)
        y_in = None if y is None else _NotAnArray(y)
        fitted = _fit(estimator, _NotAnArray(X), y_in)
        if _is_sampler(fitted) and not _output_methods(fitted):
            inputs = {
                "an object with __array__": (_NotAnArray(X), y_in),
                "lists": (X.tolist(), None if y is None else list(y)),
            }
            for what, (X_in, y_list) in inputs.items():
                got = _outputs(clone(estimator), X_in, y_list)
                _assert_same_outputs(got, expected, f"{name} on {what}", tol=1e-3)
            return
        for what, X_in in {
            "an object with __array__": _NotAnArray(X),
            "lists": X.tolist(),
        }.items():
            got = {m: np.asarray(getattr(fitted, m)(X_in)) for m in expected}
            _assert_same_outputs(got, expected, f"{name} on {what}", tol=1e-3)
