"""Image check of concurrent inference: several threads, the single-thread answers.

A fitted estimator served by a multi-threaded web server (waitress) or held by
a Dask worker with several threads is called from many threads at once. Its
inference methods must then give each caller the answer one thread gets, and
leave the fitted model as it was: no parameter swapped in place, no hook or
mode toggled on a shared network, no cache filled half-way.
"""

from concurrent.futures import ThreadPoolExecutor

import joblib

from ._check_data import (
    _assert_same_outputs,
    _fit,
    _outputs,
    _prepared,
    _require_inference,
    _training_data,
)

#: Threads of the check: as many as a default waitress server runs (its
#: ``threads=4``) twice over, and more than the cores of a small machine, so
#: the calls interleave.
N_THREADS = 8


def fitted_digest(estimator):
    """A digest of everything a fitted ``estimator`` pickles (parameters,
    fitted arrays and network weights): equal digests, same model."""
    return joblib.hash(estimator)


def check_image_thread_safe_inference(name, estimator_orig):
    """Inference from 8 threads at once gives the single-thread outputs, and
    the fitted model is unchanged afterwards.

    Every inference method runs on one image per call, each image twice,
    from a pool of :data:`N_THREADS` threads; each call must return exactly
    what the same call returned from one thread (within the float32
    tolerance of the other checks). Afterwards a single-thread pass gives the
    same outputs again and :func:`fitted_digest` is unchanged: concurrency
    neither mixed the callers' answers nor corrupted the model.
    Skipped for an estimator without inference methods (a sampler).
    """
    estimator = _prepared(estimator_orig)
    _require_inference(name, estimator)
    with _training_data(estimator) as (X, y):
        _fit(estimator, X, y)
        rows = [X[i : i + 1] for i in range(len(X))]
        expected = [_outputs(estimator, row) for row in rows]
        digest = fitted_digest(estimator)
        order = list(range(len(rows))) * 2
        with ThreadPoolExecutor(N_THREADS) as pool:
            got = list(pool.map(lambda i: _outputs(estimator, rows[i]), order))
        for i, outputs in zip(order, got):
            _assert_same_outputs(
                outputs,
                expected[i],
                f"{name} called from {N_THREADS} threads, image {i}",
            )
        after = [_outputs(estimator, row) for row in rows]
    for i, outputs in enumerate(after):
        _assert_same_outputs(
            outputs, expected[i], f"{name} after concurrent calls, image {i}"
        )
    assert (
        fitted_digest(estimator) == digest
    ), f"{name}: concurrent inference changed the fitted model"
