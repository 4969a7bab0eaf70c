"""CPU inference engines (ONNX Runtime, OpenVINO) behind the estimators: same
outputs as torch, pickling, cloning, set_params, clear errors, command line."""

import copy
import csv
import gc
import io
import logging
import os
import pickle
import re
import sys
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from skcxr import (
    CNNEmbedder,
    ImageLoader,
    ReconstructionAnomalyDetector,
    TransferClassifier,
)
from skcxr._cli import main
from skcxr.datasets import load_sample_images, make_chest_xrays
from skcxr.nn._engines import check_engine, set_engine
from skcxr.nn._features import PooledFeatures
from skcxr.nn._runners import (
    EngineCache,
    EngineRunner,
    network_fingerprint,
    shared_runner,
)

ENGINES = ["onnxruntime", "openvino"]
# a tiny network with reproducible random weights, on the CPU
SMALL = dict(backbone="small_cnn", weights=None, device="cpu", random_state=0)


def _needs(engine):
    pytest.importorskip(engine)
    pytest.importorskip("onnx")


def _needs_int8(engine):
    _needs(engine)
    pytest.importorskip("onnxruntime")  # its quantisation tool


def _assert_close(got, expected, rtol=1e-4):
    """Equal within ``rtol`` relative to the output's scale (its largest value)."""
    scale = float(np.abs(expected).max())
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    assert float(np.abs(got - expected).max()) <= rtol * scale


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((10, 64, 64), dtype=np.float32)


@pytest.fixture(scope="module")
def labelled():
    X, y = make_chest_xrays(
        30, classes=("normal", "bacteria", "virus"), size=32, random_state=0
    )
    return X, y


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "backbone",
    ["small_cnn", pytest.param("efficientnet_lite0", marks=pytest.mark.slow)],
)
def test_embedder_engine_equals_torch(engine, backbone, images):
    _needs(engine)
    embedder = CNNEmbedder(
        backbone=backbone, weights=None, device="cpu", batch_size=4, random_state=0
    ).fit(images)
    expected = embedder.transform(images)
    got = embedder.set_params(engine=engine).transform(images)
    _assert_close(got, expected)
    assert np.abs(expected).max() > 0
    # a last batch smaller than batch_size went through the same graph
    _assert_close(embedder.transform(images[:3]), expected[:3])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_vision_transformer_runs_on_the_engine(engine, images):
    """Patch tokens laid on their grid and the resize to the model's fixed
    input size export too."""
    _needs(engine)
    pytest.importorskip("timm")
    embedder = CNNEmbedder(
        backbone="timm:test_vit", weights=None, device="cpu", random_state=0
    ).fit(images[:4])
    expected = embedder.transform(images[:4])
    _assert_close(embedder.set_params(engine=engine).transform(images[:4]), expected)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("size", [24, 64])  # up- and down-sampled inside
def test_a_folded_stem_that_resizes_runs_on_the_engine(engine, size):
    """The antialiased resize of weights trained at one resolution (the
    torchxrayvision convention), as exact matrix products in the graph."""
    _needs(engine)
    from skcxr.nn._backbones import FoldedConv

    with torch.random.fork_rng():
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    net = torch.nn.Sequential(
        FoldedConv(conv, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4), input_size=40),
        torch.nn.Flatten(),
    ).eval()
    x = np.random.default_rng(1).random((3, 1, size, size), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert expected.shape == (3, 4 * 40 * 40)
    runner = EngineRunner(net, engine, input_shape=(1, size, size))
    _assert_close(runner(x), expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_classifier_engine_equals_torch_in_fit_and_predict(engine, labelled):
    _needs(engine)
    X, y = labelled
    params = dict(SMALL, max_epochs=3)
    reference = TransferClassifier(**params).fit(X, y)
    expected = reference.predict_proba(X)
    # the frozen backbone's features (the feature cache) through the engine
    fitted = TransferClassifier(engine=engine, **params).fit(X, y)
    assert fitted.used_feature_cache_
    _assert_close(fitted.predict_proba(X), expected)
    # predict_proba of the fitted network, switched after fit
    _assert_close(reference.set_params(engine=engine).predict_proba(X), expected)
    np.testing.assert_array_equal(reference.predict(X), fitted.predict(X))


@pytest.mark.parametrize("engine", ENGINES)
def test_fine_tuned_classifier_runs_its_whole_network_on_the_engine(engine, labelled):
    _needs(engine)
    X, y = labelled
    reference = TransferClassifier(trainable="all", max_epochs=2, **SMALL).fit(X, y)
    assert not reference.used_feature_cache_
    expected = reference.predict_proba(X)
    _assert_close(reference.set_params(engine=engine).predict_proba(X), expected)


def test_network_fingerprint_follows_weights_and_settings_not_memory_format():
    torch.manual_seed(0)
    net = PooledFeatures(
        torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU()), "avg"
    ).eval()
    digest = network_fingerprint(net)
    assert network_fingerprint(copy.deepcopy(net)) == digest
    channels_last = copy.deepcopy(net).to(memory_format=torch.channels_last)
    assert network_fingerprint(channels_last) == digest
    changed_weight = copy.deepcopy(net)
    with torch.no_grad():
        changed_weight.network[0].weight[0, 0, 0, 0] += 1e-6
    assert network_fingerprint(changed_weight) != digest
    other_pooling = copy.deepcopy(net)
    other_pooling.pooling = "max"  # same weights, another function
    assert network_fingerprint(other_pooling) != digest


@pytest.fixture
def built_runners(monkeypatch):
    """The class names of the networks every new EngineRunner exports."""
    built = []
    original_init = EngineRunner.__init__

    def counting_init(self, module, *args, **kwargs):
        built.append(type(module).__name__)
        original_init(self, module, *args, **kwargs)

    monkeypatch.setattr(EngineRunner, "__init__", counting_init)
    return built


@pytest.mark.parametrize("engine", ENGINES)
def test_one_runner_serves_every_estimator_of_the_same_frozen_backbone(
    engine, labelled, built_runners
):
    _needs(engine)
    X, y = labelled
    binary = TransferClassifier(engine=engine, max_epochs=2, **SMALL)
    binary.fit(X, np.where(y == "normal", "normal", "finding"))
    three_class = TransferClassifier(engine=engine, max_epochs=2, **SMALL).fit(X, y)
    embedder = CNNEmbedder(engine=engine, **SMALL).fit(X)
    got = {
        "binary": binary.predict_proba(X),
        "three-class": three_class.predict_proba(X),
        "embedder": embedder.transform(X),
    }
    # one export of the folded backbone for two fits, two predictions and the
    # embeddings; each estimator's results are still its own torch results
    assert built_runners == ["PooledFeatures"]
    _assert_close(got["binary"], binary.set_params(engine="torch").predict_proba(X))
    expected = three_class.set_params(engine="torch").predict_proba(X)
    _assert_close(got["three-class"], expected)
    _assert_close(got["embedder"], embedder.set_params(engine="torch").transform(X))


@pytest.mark.parametrize("engine", ENGINES)
def test_classifier_on_files_streams_its_features_through_the_engine(
    engine, tmp_path, built_runners
):
    _needs(engine)
    from skcxr.datasets import write_chest_xrays

    X, y = make_chest_xrays(24, size=32, random_state=0)
    paths = list(write_chest_xrays(tmp_path / "images", X, y, random_state=0))
    params = dict(
        SMALL, max_epochs=2, loader=ImageLoader(size=32), memory=str(tmp_path / "cache")
    )
    reference = TransferClassifier(**params).fit(paths, y)
    fitted = TransferClassifier(engine=engine, **params).fit(paths, y)
    assert fitted.used_feature_cache_
    # the torch features cached by the first fit are not taken for the engine's
    assert built_runners == ["PooledFeatures"]
    _assert_close(fitted.predict_proba(paths), reference.predict_proba(paths))
    assert built_runners == ["PooledFeatures"]  # predicting reused it


def test_a_shared_runner_lives_only_as_long_as_its_estimators(images):
    _needs("onnxruntime")
    embedder = CNNEmbedder(engine="onnxruntime", **SMALL).fit(images)
    runner = shared_runner(
        embedder.module_, "onnxruntime", input_shape=(1, *images.shape[1:])
    )
    assert runner is next(iter(embedder._engine_cache._entries.values()))[1]
    alive = weakref.ref(runner)
    del embedder, runner
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("engine", ENGINES)
def test_multilabel_classifier_engine_gives_sigmoid_probabilities(engine, labelled):
    _needs(engine)
    X, _ = labelled
    Y = (np.random.default_rng(1).random((len(X), 3)) > 0.5).astype(int)
    clf = TransferClassifier(max_epochs=2, **SMALL).fit(X, Y)
    expected = clf.predict_proba(X)
    _assert_close(clf.set_params(engine=engine).predict_proba(X), expected)


@pytest.mark.parametrize(
    "engine, method",
    [("onnxruntime", "padim"), ("openvino", "padim"), ("onnxruntime", "patchcore")],
)
def test_anomaly_detector_engine_equals_torch(engine, method, images):
    _needs(engine)
    images = images[:8, ::2, ::2]
    params = dict(method=method, backbone="small_cnn", weights=None, device="cpu")
    if method == "padim":
        params["n_features"] = 20
    reference = ReconstructionAnomalyDetector(random_state=0, **params).fit(images)
    expected = reference.score_samples(images)
    codes = reference.transform(images)
    # features of fit and of scoring through the engine (the channel subset of
    # PaDiM is chosen after the training features: applied outside the graph)
    fitted = ReconstructionAnomalyDetector(random_state=0, engine=engine, **params)
    fitted.fit(images)
    _assert_close(fitted.score_samples(images), expected)
    _assert_close(fitted.decision_scores_, reference.decision_scores_)
    reference.set_params(engine=engine)
    _assert_close(reference.score_samples(images), expected)
    _assert_close(reference.transform(images), codes)


def test_pickle_and_clone_keep_the_engine_and_rebuild_the_session(images):
    _needs("onnxruntime")
    embedder = CNNEmbedder(engine="onnxruntime", **SMALL).fit(images)
    expected = embedder.transform(images)
    assert len(embedder._engine_cache) == 1
    restored = pickle.loads(pickle.dumps(embedder))
    assert restored.engine == "onnxruntime"
    assert len(getattr(restored, "_engine_cache", ())) == 0  # nothing compiled kept
    np.testing.assert_array_equal(restored.transform(images), expected)
    assert len(restored._engine_cache) == 1  # rebuilt on first use
    cloned = clone(embedder)
    assert cloned.get_params()["engine"] == "onnxruntime"
    np.testing.assert_array_equal(cloned.fit(images).transform(images), expected)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(next(iter(embedder._engine_cache._entries.values()))[1])


def test_set_params_switches_engines_and_refit_is_never_stale(images):
    _needs("onnxruntime")
    _needs("openvino")
    embedder = CNNEmbedder(**SMALL).fit(images)
    expected = embedder.transform(images)
    for engine in ENGINES:
        _assert_close(embedder.set_params(engine=engine).transform(images), expected)
    assert {key[0] for key in embedder._engine_cache._entries} == set(ENGINES)
    np.testing.assert_array_equal(
        embedder.set_params(engine="torch").transform(images), expected
    )
    # a refit with other weights: the engine follows the new network
    embedder.set_params(random_state=1, engine="onnxruntime").fit(images)
    refit = embedder.set_params(engine="torch").transform(images)
    assert not np.allclose(refit, expected)
    _assert_close(embedder.set_params(engine="onnxruntime").transform(images), refit)


def test_the_engine_cache_is_keyed_on_the_network_object():
    cache, first, second = EngineCache(), object(), object()
    assert cache.get("k", first, lambda: 1) == 1
    assert cache.get("k", first, lambda: 2) == 1
    assert cache.get("k", second, lambda: 3) == 3
    assert len(pickle.loads(pickle.dumps(cache))) == 0


@pytest.mark.parametrize(
    "engine, blocked, extra",
    [
        ("onnxruntime", "onnxruntime", "skcxr[onnx]"),
        ("openvino", "openvino", "skcxr[openvino]"),
        ("onnxruntime", "onnx", "skcxr[onnx]"),
    ],
)
def test_a_missing_package_names_the_extra(engine, blocked, extra, images, monkeypatch):
    monkeypatch.setitem(sys.modules, blocked, None)  # import raises ImportError
    embedder = CNNEmbedder(backbone="small_cnn", weights=None, device="cpu")
    with pytest.raises(ImportError, match=re.escape(f"pip install {extra}")):
        embedder.set_params(engine=engine).fit(images)
    with pytest.raises(ImportError, match=engine):
        check_engine(engine, "cpu")


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_an_engine_on_a_gpu_is_refused_clearly(device, images):
    with pytest.raises(ValueError, match="runs on the CPU.*engine='torch'"):
        check_engine("onnxruntime", device)
    check_engine("torch", device)  # torch runs anywhere
    embedder = CNNEmbedder(
        backbone="small_cnn", weights=None, device="cuda", engine="openvino"
    )
    with pytest.raises(ValueError, match="device='cuda'"):
        embedder.fit(images)


def test_an_unknown_engine_is_refused_by_parameter_validation(images):
    with pytest.raises(ValueError, match="engine"):
        CNNEmbedder(engine="tensorrt").fit(images)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_runner_is_safe_to_call_from_threads(engine):
    _needs(engine)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten()
    ).eval()
    runner = EngineRunner(net, engine, input_shape=(1, 12, 12), n_threads=1)
    batches = [
        np.random.default_rng(i).random((3, 1, 12, 12), np.float32) for i in range(8)
    ]
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(runner, batches))
    for batch, out in zip(batches, outputs):
        with torch.inference_mode():
            expected = net(torch.from_numpy(batch)).numpy()
        _assert_close(out, expected)
    with pytest.raises(ValueError, match=r"\(1, 12, 12\)"):
        runner(np.zeros((1, 1, 8, 8), np.float32))


@pytest.mark.slow
def test_export_leaves_the_network_unchanged():
    _needs("onnxruntime")
    from skcxr.nn import build_backbone

    net = build_backbone("efficientnet_lite0", weights=None).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    types = [type(m) for m in net.modules()]
    EngineRunner(net, "onnxruntime", input_shape=(1, 64, 64))
    assert [type(m) for m in net.modules()] == types
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, labelled):
    from skcxr.utils import save_model

    X, y = labelled
    classifier = TransferClassifier(max_epochs=2, **SMALL).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "model.skops"
    save_model(Pipeline([("load", ImageLoader(size=32)), ("model", classifier)]), path)
    return path


def _predict_csv(argv, tmp_path, name):
    out = tmp_path / name
    assert main(["predict", *argv, "-o", str(out)]) == 0
    with open(out) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("engine", ENGINES)
def test_cli_predict_with_an_engine_writes_the_same_csv(saved_model, tmp_path, engine):
    _needs(engine)
    paths = list(load_sample_images()[0][:4])
    plain = _predict_csv([str(saved_model), *paths], tmp_path, "torch.csv")
    fast = _predict_csv(
        [str(saved_model), *paths, "--engine", engine], tmp_path, "engine.csv"
    )
    assert [r["prediction"] for r in fast] == [r["prediction"] for r in plain]
    columns = [c for c in plain[0] if c.startswith("p(")]
    got = np.array([[float(r[c]) for c in columns] for r in fast])
    expected = np.array([[float(r[c]) for c in columns] for r in plain])
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_cli_predict_engine_without_its_package_is_a_one_line_error(
    saved_model, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "openvino", None)
    paths = list(load_sample_images()[0][:1])
    argv = ["predict", str(saved_model), *paths, "--engine", "openvino"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("skcxr: error:") and "pip install skcxr[openvino]" in err


def test_cli_study_and_serve_take_an_engine():
    from skcxr._cli import _parser, _study_settings

    args = _parser().parse_args(["study", "--quick", "--engine", "onnxruntime"])
    assert _study_settings(args).engine == "onnxruntime"
    assert _study_settings(_parser().parse_args(["study"])).engine == "torch"
    args = _parser().parse_args(["serve", "m.skops", "--engine", "openvino"])
    assert args.engine == "openvino"


def test_serve_app_with_an_engine_predicts_like_torch(saved_model):
    _needs("onnxruntime")
    from PIL import Image

    from skcxr.serve import create_app
    from skcxr.utils import load_model

    model = load_model(saved_model)
    path = load_sample_images()[0][0]
    expected = model.predict_proba([path])[0]
    client = create_app(model, engine="onnxruntime").test_client()
    assert model[-1].engine == "onnxruntime"
    buffer = io.BytesIO()
    Image.open(path).save(buffer, format="PNG")
    buffer.seek(0)
    response = client.post(
        "/api/predict", data={"file": [(buffer, os.path.basename(path) + ".png")]}
    )
    assert response.status_code == 200
    result = response.get_json()["results"][0]
    got = [result["probabilities"][str(c)] for c in model[-1].classes_]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_set_engine_reaches_every_step_that_has_it(images):
    from sklearn.neighbors import KNeighborsClassifier

    embedder = CNNEmbedder(backbone="small_cnn", weights=None, device="cpu")
    model = Pipeline([("embed", embedder), ("knn", KNeighborsClassifier(1))])
    assert set_engine(model, "torch") == ["embed__engine"]
    assert set_engine(KNeighborsClassifier(), "onnxruntime") == []
    with pytest.raises(ValueError, match="engine must be one of"):
        set_engine(model, "tensorrt")


# ----------------------------------------------------------- reduced precision
def _correlation(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_int8_embeddings_are_quantised_yet_close_to_fp32(images):
    engine = "onnxruntime"
    _needs_int8(engine)
    expected = CNNEmbedder(**SMALL).fit(images).transform(images)
    embedder = CNNEmbedder(engine=engine, precision="int8", **SMALL).fit(images)
    got = embedder.transform(images)
    assert got.shape == expected.shape and got.dtype == np.float32
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert 1e-4 < error < 0.2  # really 8-bit, and still the same embedding
    assert _correlation(got, expected) > 0.99
    # the engine runs the network it was fitted with, at each precision
    fp32 = embedder.set_params(precision="fp32").transform(images)
    _assert_close(fp32, expected)
    np.testing.assert_array_equal(
        embedder.set_params(precision="int8").transform(images), got
    )


def _operators(onnx_bytes):
    import onnx

    return {node.op_type for node in onnx.load_from_string(onnx_bytes).graph.node}


@pytest.mark.parametrize(
    "engine, operator", [("onnxruntime", "QLinearConv"), ("openvino", "QuantizeLinear")]
)
def test_int8_graph_holds_quantised_operators(engine, operator, capsys):
    _needs_int8(engine)
    from skcxr.nn._export import export_onnx, quantize_int8

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU()).eval()
    calibration = np.random.default_rng(0).random((4, 1, 8, 8), np.float32)
    fp32 = export_onnx(net, (1, 8, 8))
    assert operator not in _operators(fp32)
    assert operator in _operators(quantize_int8(fp32, calibration, engine))
    assert capsys.readouterr().out == ""  # no progress bar of the tool


def test_int8_calibration_images_are_drawn_from_training_data_and_kept(tmp_path):
    _needs("onnxruntime")
    from skcxr.nn._export import N_CALIBRATION_IMAGES

    X = np.random.default_rng(1).random((N_CALIBRATION_IMAGES + 8, 32, 32), np.float32)
    params = dict(backbone="small_cnn", weights=None, device="cpu")
    embedder = CNNEmbedder(
        engine="onnxruntime", precision="int8", random_state=0, **params
    ).fit(X)
    kept = embedder.calibration_images_
    assert kept.shape == (N_CALIBRATION_IMAGES, 32, 32)
    rows = [int(np.flatnonzero((X == image).all(axis=(1, 2)))[0]) for image in kept]
    assert rows == sorted(rows) and len(set(rows)) == len(rows)
    again = clone(embedder).fit(X)
    np.testing.assert_array_equal(again.calibration_images_, kept)  # random_state
    restored = pickle.loads(pickle.dumps(embedder))
    np.testing.assert_array_equal(restored.calibration_images_, kept)
    np.testing.assert_array_equal(restored.transform(X), embedder.transform(X))
    assert CNNEmbedder(**params).fit(X).calibration_images_ is None  # fp32: none


def test_int8_calibration_reads_only_the_drawn_files(tmp_path):
    _needs("onnxruntime")
    from skcxr.datasets import write_chest_xrays
    from skcxr.nn._export import N_CALIBRATION_IMAGES, calibration_rows

    X, y = make_chest_xrays(N_CALIBRATION_IMAGES + 4, size=32, random_state=0)
    paths = list(write_chest_xrays(tmp_path, X, y, fmt="png", random_state=0))
    loader = ImageLoader(size=32)
    embedder = CNNEmbedder(
        backbone="small_cnn",
        weights=None,
        device="cpu",
        engine="onnxruntime",
        precision="int8",
        loader=loader,
        random_state=0,
    ).fit(paths)
    rows = calibration_rows(len(paths), 0)
    assert len(rows) == N_CALIBRATION_IMAGES < len(paths)
    np.testing.assert_allclose(
        embedder.calibration_images_, loader.transform(paths)[rows], atol=1e-6
    )


def test_int8_quantiser_advice_is_dropped_but_other_threads_still_log(
    monkeypatch, caplog
):
    _needs("onnxruntime")
    import onnxruntime.quantization

    from skcxr.nn._export import export_onnx, quantize_int8

    def quantize_static(model, path, *args, **kwargs):
        logging.warning("advice of the quantiser")  # its own thread
        other = threading.Thread(target=logging.warning, args=("another thread",))
        other.start()
        other.join()
        with open(path, "wb") as file:
            file.write(b"int8 graph")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", quantize_static)
    net = torch.nn.Conv2d(1, 2, 3).eval()
    calibration = np.zeros((2, 1, 8, 8), np.float32)
    with caplog.at_level(logging.WARNING):
        assert quantize_int8(export_onnx(net, (1, 8, 8)), calibration, "onnxruntime")
        logging.warning("after quantising")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["another thread", "after quantising"]


def test_int8_after_an_fp32_fit_asks_for_a_refit(images):
    _needs("onnxruntime")
    embedder = CNNEmbedder(**SMALL).fit(images)
    embedder.set_params(engine="onnxruntime", precision="int8")
    with pytest.raises(ValueError, match="fit it again with precision='int8'"):
        embedder.transform(images)
    embedder.set_params(engine="torch", precision="fp32")
    with pytest.raises(ValueError, match="fit it again with precision='int8'"):
        set_engine(Pipeline([("embed", embedder)]), "onnxruntime", precision="int8")
    assert embedder.get_params()["precision"] == "fp32"  # nothing half-set


def test_int8_on_openvino_is_refused_clearly(images):
    _needs("openvino")
    embedder = CNNEmbedder(
        backbone="small_cnn", weights=None, engine="openvino", precision="int8"
    )
    with pytest.raises(ValueError, match="int8' runs on ONNX Runtime"):
        embedder.fit(images)


@pytest.mark.parametrize("estimator", [CNNEmbedder, TransferClassifier])
def test_reduced_precision_needs_an_engine(estimator, labelled):
    X, y = labelled
    model = estimator(backbone="small_cnn", weights=None, precision="int8")
    with pytest.raises(ValueError, match="run by an inference engine"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="precision"):
        estimator(precision="fp16").fit(X, y)


def test_bf16_runs_only_on_openvino_with_cpu_support(images):
    _needs("openvino")
    import openvino

    params = dict(backbone="small_cnn", weights=None, device="cpu", random_state=0)
    with pytest.raises(ValueError, match="bf16.*OpenVINO"):
        CNNEmbedder(engine="onnxruntime", precision="bf16", **params).fit(images)
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    bf16 = CNNEmbedder(engine="openvino", precision="bf16", **params)
    if "BF16" not in capabilities:
        with pytest.raises(ValueError, match="bfloat16 instructions"):
            bf16.fit(images)
        return
    expected = CNNEmbedder(**params).fit(images).transform(images)
    _assert_close(bf16.fit(images).transform(images), expected, rtol=5e-2)


def test_int8_classifier_and_detector_follow_their_fp32_selves(labelled):
    engine = "onnxruntime"
    _needs_int8(engine)
    from scipy.stats import spearmanr

    X, y = labelled
    params = dict(SMALL, max_epochs=3)
    reference = TransferClassifier(**params).fit(X, y)
    quantised = TransferClassifier(engine=engine, precision="int8", **params).fit(X, y)
    proba = quantised.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    expected = reference.predict_proba(X)
    assert np.abs(proba - expected).max() < 0.1
    assert np.mean(proba.argmax(1) == expected.argmax(1)) >= 0.9

    healthy = X[:12]
    detector = dict(
        method="padim", backbone="small_cnn", weights=None, device="cpu", n_features=20
    )
    fp32 = ReconstructionAnomalyDetector(random_state=0, **detector).fit(healthy)
    int8 = ReconstructionAnomalyDetector(
        random_state=0, engine=engine, precision="int8", **detector
    ).fit(healthy)
    assert spearmanr(int8.score_samples(X), fp32.score_samples(X))[0] > 0.9


def test_cli_precision_reaches_the_study_and_asks_for_what_it_needs(
    saved_model, tmp_path, capsys
):
    from skcxr._cli import _parser, _study_settings
    from skcxr.study import run_study
    from skcxr.study._settings import StudySettings

    argv = ["study", "--quick", "--engine", "onnxruntime", "--precision", "int8"]
    settings = _study_settings(_parser().parse_args(argv))
    assert (settings.engine, settings.precision) == ("onnxruntime", "int8")
    # a precision without an engine fails before any work or file
    out = tmp_path / "report"
    with pytest.raises(ValueError, match="run by an inference engine"):
        run_study(
            str(out),
            settings=StudySettings.quick().updated(
                {"precision": "int8"}, source="test"
            ),
        )
    assert not out.exists()
    with pytest.raises(ValueError, match="setting 'precision'"):
        StudySettings().updated({"precision": "fp16"}, source="test")

    paths = list(load_sample_images()[0][:1])
    model = str(saved_model)
    assert main(["predict", model, *paths, "--precision", "int8"]) == 2
    assert "give both" in capsys.readouterr().err
    _needs("onnxruntime")  # a model fitted in fp32 has no calibration images
    argv = ["predict", model, *paths, "--engine", "onnxruntime", "--precision", "int8"]
    assert main(argv) == 2
    assert "fit it again with precision='int8'" in capsys.readouterr().err
