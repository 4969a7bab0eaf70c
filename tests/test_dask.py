"""Dask: grid searches through joblib's Dask backend and chunked batch inference.

The cluster tests share one loopback ``LocalCluster`` (two worker processes,
one thread each), started once for the module and closed at its end.
"""

import sys
from types import SimpleNamespace

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from skcxr import ImageLoader, OtsuMasker, TransferClassifier
from skcxr.datasets import make_chest_xrays, write_chest_xrays
from skcxr.parallel import TorchThreads, map_in_chunks

SIZE = 32


def _transfer(**params):
    params = {
        "backbone": "small_cnn",
        "weights": None,
        "max_epochs": 2,
        "batch_size": 16,
        "device": "cpu",
        "random_state": 0,
        **params,
    }
    return TransferClassifier(**params)


@pytest.fixture(scope="module")
def data():
    return make_chest_xrays(48, size=SIZE, random_state=0)


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    X, y = data
    root = tmp_path_factory.mktemp("cxr")
    paths = write_chest_xrays(root, X, y, fmt="png", random_state=0)
    return paths, y


@pytest.fixture(scope="module")
def linear_model(files):
    """A cheap fitted paths pipeline (the chunking logic does not need a CNN)."""
    paths, y = files
    model = make_pipeline(
        ImageLoader(size=SIZE, layout="flat"), LogisticRegression(max_iter=300)
    )
    return model.fit(paths, y)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture
def torch_threads():
    """Restore this process's torch threads after a test that changes them."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread(torch_threads):
    """This process computes with one torch thread, as every cluster worker does.

    Float reductions depend on how torch splits them over threads: the same
    seeded fit with 1 and with 2 threads differs by about 1e-9 in log loss.
    Identical results need the same number of threads on both sides.
    """
    torch.set_num_threads(1)


# ----------------------------------------------------------- local chunking
@pytest.mark.parametrize("chunk_size", [1, 7, 48, 1000])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_local_chunks_match_one_call(linear_model, files, chunk_size, method):
    paths, _ = files
    expected = getattr(linear_model, method)(paths)
    out = map_in_chunks(linear_model, paths, method=method, chunk_size=chunk_size)
    assert out.shape == expected.shape
    if out.dtype.kind == "f":  # float32 BLAS rounding depends on the batch size
        assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    else:
        assert_array_equal(out, expected)


def test_local_chunks_of_images_and_path_lists(linear_model, files, data):
    paths, _ = files
    images = linear_model[0].transform(paths)
    expected = linear_model[-1].predict_proba(images)
    assert_allclose(
        map_in_chunks(linear_model[-1], images, chunk_size=10), expected, rtol=1e-5
    )
    # a plain list of str works like the array of paths
    assert_allclose(
        map_in_chunks(linear_model, list(map(str, paths)), chunk_size=10),
        expected,
        rtol=1e-5,
    )


def _label_and_top_probability(model, paths):
    proba = model.predict_proba(paths)
    return np.column_stack([model.classes_[proba.argmax(1)], proba.max(1)])


def test_a_function_instead_of_a_method(linear_model, files):
    paths, _ = files
    out = map_in_chunks(
        linear_model, paths, method=_label_and_top_probability, chunk_size=10
    )
    assert out.shape == (len(paths), 2)
    assert_array_equal(out[:, 0], linear_model.predict(paths))


def test_errors_name_the_problem(linear_model, files):
    paths, y = files
    with pytest.raises(ValueError, match="method='transform'"):
        map_in_chunks(linear_model, paths, method="transform")
    with pytest.raises(NotFittedError):
        map_in_chunks(LogisticRegression(), np.zeros((3, 4)), method="predict")
    with pytest.raises(InvalidParameterError, match="'X' parameter"):
        map_in_chunks(linear_model, paths[0])  # one path, not a list
    with pytest.raises(ValueError, match="at least one"):
        map_in_chunks(linear_model, [])
    with pytest.raises(InvalidParameterError, match="chunk_size"):
        map_in_chunks(linear_model, paths, chunk_size=0)
    with pytest.raises(InvalidParameterError, match="client"):
        map_in_chunks(linear_model, paths, client=3)


def test_an_output_that_drops_rows_is_refused(files):
    paths, _ = files
    first_row_only = FunctionTransformer(lambda X: X[:1]).fit(paths)
    with pytest.raises(ValueError, match="one row per input"):
        map_in_chunks(first_row_only, paths, method="transform", chunk_size=4)


def test_without_dask_the_cluster_path_says_how_to_install(
    linear_model, files, monkeypatch
):
    paths, _ = files
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install skcxr\[dask\]"):
        map_in_chunks(linear_model, paths, client="tcp://127.0.0.1:8786")
    with pytest.raises(ImportError, match=r"pip install skcxr\[dask\]"):
        TorchThreads()
    # the local path needs no Dask
    assert map_in_chunks(linear_model, paths[:3], method="predict").shape == (3,)


# ------------------------------------------------------------ torch threads
def test_torch_threads_plugin_sets_threads_from_the_worker(torch_threads):
    pytest.importorskip("distributed")
    target = 1 if torch_threads > 1 else 2
    worker = SimpleNamespace(state=SimpleNamespace(nthreads=target))
    TorchThreads().setup(worker)
    assert torch.get_num_threads() == target
    TorchThreads(n_threads=torch_threads).setup(worker)
    assert torch.get_num_threads() == torch_threads
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_threads"):
            TorchThreads(n_threads=bad)


# ----------------------------------------------------------------- cluster
def _scores(search):
    return {
        key: value
        for key, value in search.cv_results_.items()
        if "test_" in key or key.startswith("param")
    }


@pytest.mark.slow
def test_grid_search_on_cluster_equals_local_run(client, one_torch_thread, data):
    X, y = data
    pipe = make_pipeline(OtsuMasker(), _transfer())
    grid = {"transferclassifier__head_sizes": [(16,), (32,)]}
    kwargs = {"cv": 2, "scoring": ["accuracy", "neg_log_loss"], "refit": False}
    local = GridSearchCV(pipe, grid, n_jobs=1, **kwargs).fit(X, y)
    with client.as_current(), joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(pipe, grid, n_jobs=-1, **kwargs).fit(X, y)
    local_scores, remote_scores = _scores(local), _scores(remote)
    assert local_scores.keys() == remote_scores.keys()
    for key, value in local_scores.items():
        assert_array_equal(remote_scores[key], value, err_msg=key)
    # the log losses differ between the candidates: a real comparison
    losses = local.cv_results_["mean_test_neg_log_loss"]
    assert losses[0] != losses[1]
    # both workers took part
    assert len(client.nthreads()) == 2


@pytest.mark.slow
def test_cross_validate_paths_pipeline_on_cluster(client, one_torch_thread, files):
    """Files as X (ImageLoader first), fitted estimators pickled back from workers."""
    paths, y = files
    pipe = make_pipeline(ImageLoader(size=SIZE), OtsuMasker(), _transfer())
    kwargs = {"cv": 2, "scoring": "neg_log_loss", "return_estimator": True}
    local = cross_validate(pipe, paths, y, n_jobs=1, **kwargs)
    with joblib.parallel_config(backend="dask", client=client):
        remote = cross_validate(pipe, paths, y, n_jobs=-1, **kwargs)
    assert_array_equal(remote["test_score"], local["test_score"])
    for mine, theirs in zip(local["estimator"], remote["estimator"]):
        assert_array_equal(
            theirs.predict_proba(paths[:8]), mine.predict_proba(paths[:8])
        )


@pytest.mark.slow
def test_feature_cache_on_storage_the_workers_share(
    client, one_torch_thread, data, tmp_path
):
    """A grid over head parameters with the frozen-feature cache in a shared folder."""
    X, y = data
    cache = tmp_path / "features"
    grid = {"lr": [1e-3, 1e-2]}
    kwargs = {"cv": 2, "scoring": "neg_log_loss", "refit": False}
    local = GridSearchCV(_transfer(), grid, **kwargs).fit(X, y)
    with joblib.parallel_config(backend="dask", client=client):
        remote = GridSearchCV(_transfer(memory=str(cache)), grid, n_jobs=-1, **kwargs)
        remote.fit(X, y)
    assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    # the workers cached the features of each training fold once, in the shared
    # folder: 4 fits (2 learning rates x 2 folds), 2 cache entries
    assert len(list(cache.rglob("output.pkl"))) == 2


@pytest.mark.slow
def test_map_in_chunks_on_cluster_keeps_input_order(client, one_torch_thread, files):
    paths, y = files
    model = make_pipeline(ImageLoader(size=SIZE), OtsuMasker(), _transfer()).fit(
        paths, y
    )
    # the same chunks computed here and on the cluster give the same numbers
    local = map_in_chunks(model, paths, chunk_size=5)
    assert_array_equal(map_in_chunks(model, paths, client=client, chunk_size=5), local)
    # and chunking changes only float rounding (convolution kernels per batch size)
    assert_allclose(local, model.predict_proba(paths), rtol=1e-5, atol=1e-6)
    # shuffled input: the output follows it, not the order chunks finished in
    order = np.random.default_rng(0).permutation(len(paths))
    labels = map_in_chunks(
        model, paths[order], method="predict", client=client, chunk_size=3
    )
    assert_array_equal(labels, model.predict(paths)[order])
    # a scheduler address works as well as a Client
    address = client.scheduler.address
    assert_array_equal(
        map_in_chunks(model, paths[:7], client=address, chunk_size=2),
        map_in_chunks(model, paths[:7], chunk_size=2),
    )
    # a chunk's error comes back naming the file, and stops the other chunks
    missing = str(paths[0]).replace(".png", "-missing.png")
    with pytest.raises(ValueError, match="-missing.png"):
        map_in_chunks(model, [*paths[:20], missing], client=client, chunk_size=4)
    # the torch threads plugin went to every worker
    plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert all(TorchThreads.name in names for names in plugins.values())


@pytest.mark.slow
def test_torch_threads_plugin_on_cluster_workers(client):
    def threads():
        import torch

        return torch.get_num_threads()

    client.register_plugin(TorchThreads(n_threads=2))
    assert set(client.run(threads).values()) == {2}
    client.register_plugin(TorchThreads())  # replaces it: the worker's nthreads
    assert set(client.run(threads).values()) == {1}


@pytest.mark.slow
def test_a_worker_with_several_threads_gives_single_thread_answers(files):
    """One worker, four threads, each running chunks of the same model at once:
    a pretrained backbone (its folded first convolution) and PaDiM's patch
    features were the parts that mixed the threads' answers."""
    from skcxr import ReconstructionAnomalyDetector

    distributed = pytest.importorskip("distributed")
    paths, y = files
    model = make_pipeline(
        ImageLoader(size=SIZE),
        _transfer(backbone="efficientnet_lite0", weights="imagenet", trainable=1),
    ).fit(paths, y)
    detector = make_pipeline(
        ImageLoader(size=SIZE), ReconstructionAnomalyDetector(random_state=0)
    ).fit(paths[y == "normal"])
    paths = paths[:16]
    expected_proba = map_in_chunks(model, paths, chunk_size=1)
    expected_scores = map_in_chunks(
        detector, paths, method="score_samples", chunk_size=1
    )
    with (
        distributed.LocalCluster(
            n_workers=1,
            processes=True,
            threads_per_worker=4,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        proba = map_in_chunks(model, paths, client=client, chunk_size=1)
        scores = map_in_chunks(
            detector, paths, method="score_samples", client=client, chunk_size=1
        )
    assert_allclose(proba, expected_proba, rtol=1e-6, atol=1e-6)
    assert_allclose(scores, expected_scores, rtol=1e-6, atol=1e-6)
