"""File paths as X: batches decoded in DataLoader workers (skcxr.nn._streaming).

Equality with the in-memory path: the same files read by ImageLoader give
bit-identical images, the frozen features are computed in the same batches,
and the DataLoader leaves torch's global generator alone, so a seeded fit
gives the same weights; results are compared with ``atol=1e-6`` (float
rounding only, observed 0).
"""

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline
from torch import nn

from skcxr import (
    CNNEmbedder,
    ImageLoader,
    OtsuMasker,
    ReconstructionAnomalyDetector,
    TransferClassifier,
)
from skcxr.datasets import make_chest_xrays, write_chest_xrays
from skcxr.nn import _transfer_net
from skcxr.nn._streaming import (
    PathReader,
    is_paths,
    iter_batches,
    stream_map,
    streamed_pooled_features,
)

SIZE = 32
SMALL = dict(
    backbone="small_cnn", weights=None, max_epochs=2, batch_size=8, random_state=0
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pngs")
    X, y = make_chest_xrays(20, size=SIZE, random_state=0)
    paths = write_chest_xrays(root, X, y, fmt="png", random_state=0)
    return np.asarray(paths), np.asarray(y)


def _loader(**kwargs):
    return ImageLoader(size=SIZE, n_jobs=2, **kwargs)


def _children():
    """Pids of this process's live child processes (DataLoader workers among them)."""
    return {p.pid for p in multiprocessing.active_children()}


@pytest.fixture
def no_new_children():
    """Fail if a test leaves a decoding worker process behind."""
    before = _children()
    yield
    assert _children() <= before


class _CountReads(TransformerMixin, BaseEstimator):
    """A per-batch step appending one line per image to ``log`` (any process)."""

    def __init__(self, log=None):
        self.log = log

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        with open(self.log, "a") as fh:
            fh.write("x\n" * len(X))
        return X


def _reads(log):
    return len(open(log).read().split()) if os.path.exists(log) else 0


@pytest.mark.parametrize(
    "trainable", ["head", pytest.param("all", marks=pytest.mark.slow)]
)
def test_transfer_classifier_paths_equal_arrays(files, trainable, no_new_children):
    paths, y = files
    images = _loader().transform(paths)
    ref = TransferClassifier(trainable=trainable, **SMALL).fit(images, y)
    clf = TransferClassifier(trainable=trainable, loader=_loader(), **SMALL)
    clf.fit(list(paths), y)
    assert clf.used_feature_cache_ == (trainable == "head")
    assert clf.image_shape_ == ref.image_shape_ == (SIZE, SIZE)
    np.testing.assert_allclose(
        clf.predict_proba(paths), ref.predict_proba(images), atol=1e-6
    )
    np.testing.assert_array_equal(clf.predict(paths), ref.predict(images))


def test_embedder_pipeline_loader_equals_in_memory_steps(files, no_new_children):
    paths, _ = files
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU())
    masked = make_pipeline(_loader(), OtsuMasker()).fit_transform(paths)
    ref = CNNEmbedder(backbone=net, batch_size=8, device="cpu").fit(masked)
    loader = make_pipeline(_loader(), OtsuMasker())
    emb = CNNEmbedder(backbone=net, batch_size=8, device="cpu", loader=loader)
    out = emb.fit(paths).transform(paths)
    np.testing.assert_allclose(out, ref.transform(masked), atol=1e-6)
    # without the masker the embeddings differ: the step really ran
    plain = CNNEmbedder(backbone=net, batch_size=8, device="cpu").fit(paths[:2])
    assert not np.allclose(plain.transform(paths), out)


@pytest.mark.parametrize(
    "method", ["autoencoder", pytest.param("padim", marks=pytest.mark.slow)]
)
def test_anomaly_detector_paths_equal_arrays(files, method):
    paths, _ = files
    images = _loader().transform(paths)
    kw = dict(method=method, batch_size=8, random_state=0, device="cpu")
    if method == "autoencoder":
        kw.update(latent_dim=4, depth=2, width=4, max_epochs=2)
    else:
        kw.update(weights=None, input_size=32)
    ref = ReconstructionAnomalyDetector(**kw).fit(images)
    det = ReconstructionAnomalyDetector(loader=_loader(), **kw).fit(paths)
    assert det.threshold_ == pytest.approx(ref.threshold_, abs=1e-6)
    np.testing.assert_allclose(
        det.score_samples(paths), ref.score_samples(images), atol=1e-6
    )
    np.testing.assert_array_equal(det.predict(paths), ref.predict(images))
    np.testing.assert_allclose(det.transform(paths), ref.transform(images), atol=1e-6)
    np.testing.assert_allclose(
        det.anomaly_map(paths[:3]), ref.anomaly_map(images[:3]), atol=1e-6
    )


def test_on_error_skip_drops_targets_in_fit(files, tmp_path, no_new_children):
    paths, y = files
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    X = (
        [str(bad)]
        + list(paths[:10])
        + [str(tmp_path / "missing.png")]
        + list(paths[10:])
    )
    y_all = np.concatenate([["virus"], y[:10], ["virus"], y[10:]])
    for trainable in ("head", "all"):
        clf = TransferClassifier(
            trainable=trainable, loader=_loader(on_error="skip"), **SMALL
        ).fit(X, y_all)
        ref = TransferClassifier(trainable=trainable, loader=_loader(), **SMALL)
        ref.fit(paths, y)  # the same images and labels, without the bad files
        np.testing.assert_allclose(
            clf.predict_proba(paths), ref.predict_proba(paths), atol=1e-6
        )
    # predict returns one row per path: an unreadable file raises, naming it
    with pytest.raises(ValueError, match="broken.png"):
        clf.predict(X)
    with pytest.raises(ValueError, match="missing.png"):
        TransferClassifier(loader=_loader(), **SMALL).fit(X, y_all)
    with pytest.warns(UserWarning, match="Skipped 2 of 22"):
        ReconstructionAnomalyDetector(
            method="autoencoder",
            max_epochs=1,
            depth=2,
            width=4,
            loader=_loader(on_error="warn"),
        ).fit(X)


def test_feature_cache_decodes_each_file_once(files, tmp_path):
    paths, y = files
    log = str(tmp_path / "reads.log")
    loader = make_pipeline(_loader(), _CountReads(log))
    clf = TransferClassifier(loader=loader, memory=str(tmp_path / "cache"), **SMALL)
    first = clf.fit(paths, y).predict_proba(paths)
    n_first = _reads(log)
    # fit: the steps are fitted on the first batch, then every file is read once
    assert len(paths) <= n_first <= len(paths) + 64
    second = clf.set_params(head_sizes=(16,), lr=3e-3).fit(paths, y)
    n_fit_read = _reads(log) - n_first
    assert n_fit_read == 0  # a cache hit: no file decoded
    assert not np.allclose(second.predict_proba(paths), first)
    # a changed file (new size and time) is decoded again
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(paths[0])
    before = _reads(log)
    clf.fit(paths, y)
    assert _reads(log) > before


def test_iteration_abandoned_shuts_workers_down(files):
    paths, _ = files
    before = _children()
    reader = PathReader(_loader())
    batches = iter_batches(reader, list(paths), 2)
    rows, images = next(batches)
    assert rows.tolist() == [0, 1] and images.shape == (2, SIZE, SIZE)
    assert len(_children() - before) == 2  # two decoding workers
    batches.close()
    assert _children() <= before


def test_loader_validation(files):
    paths, y = files
    assert is_paths(paths) and is_paths(list(paths)) and not is_paths(np.zeros(3))
    with pytest.raises(ValueError, match="loader must be"):
        TransferClassifier(loader=OtsuMasker(), **SMALL).fit(paths, y)
    clf = TransferClassifier(loader=_loader(), **SMALL).fit(paths, y)
    with pytest.raises(ValueError, match="loader reads images of size 48x48"):
        clf.set_params(loader=ImageLoader(size=48)).predict(paths)
    # loader=None reads at the fitted size
    proba = clf.set_params(loader=None).predict_proba(paths)
    np.testing.assert_allclose(
        proba, clf.predict_proba(_loader().transform(paths)), atol=1e-6
    )


_RSS_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import torch
    from torch import nn
    from skcxr import CNNEmbedder, ImageLoader, TransferClassifier

    root, n = sys.argv[1], int(sys.argv[2])
    paths = [f"{root}/{i:05d}.png" for i in range(n)]
    y = np.array(["a", "b"] * (n // 2))
    loader = ImageLoader(size=64, n_jobs=2)
    net = nn.Sequential(nn.Conv2d(1, 8, 5, stride=4), nn.ReLU())

    def stream(paths, y):
        TransferClassifier(
            backbone="small_cnn", weights=None, max_epochs=1, batch_size=64,
            loader=loader, device="cpu", random_state=0,
        ).fit(paths, y)
        CNNEmbedder(backbone=net, loader=loader, batch_size=64, device="cpu").fit(
            paths
        ).transform(paths)

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    # warm-up, twice: imports, allocator pools, workers (the first fit of a
    # process leaves caches behind that a second one reuses)
    stream(paths[:256], y[:256])
    stream(paths[:256], y[:256])
    base = peak()
    stream(paths, y)
    streamed = peak() - base
    images = loader.transform(paths)
    print(json.dumps({"streamed": streamed, "array": images.nbytes}))
    """)


@pytest.mark.slow
def test_peak_rss_streaming_far_below_in_memory_array(tmp_path):
    n = 2000
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i:05d}.png", compress_level=1)
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(tmp_path), str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        # freed batch buffers go back to the system, not to a fragmenting heap
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["array"] == n * 64 * 64 * 4
    # the peak grew by less than 40% of the in-memory float32 images
    assert result["streamed"] < 0.4 * result["array"], result


class _LiveOutputs:
    """Per-batch outputs handed out (one array, or one per name in ``names``),
    and how many earlier ones were still alive (held by the caller) at each call."""

    def __init__(self, width, names=None):
        self.width, self.names, self.refs, self.held = width, names, [], []

    def __call__(self, images, **kwargs):
        self.held.append(sum(ref() is not None for ref in self.refs))
        outputs = {}
        for name in self.names or [None]:
            out = np.full((len(images), self.width), len(self.refs), np.float32)
            self.refs.append(weakref.ref(out))
            outputs[name] = out
        return outputs if self.names else outputs[None]


def test_streamed_features_fill_one_buffer(files, monkeypatch):
    # the features of each batch are copied into one preallocated float32
    # (n, C) array per pooling and let go: memory does not hold a list of
    # every batch's features (and their concatenation, twice the size)
    paths, _ = files
    live = _LiveOutputs(width=5, names=("avg", "max"))
    monkeypatch.setattr(
        _transfer_net,
        "pooled_features",
        lambda backbone, key, images, **kw: live(images),
    )
    features, rows = streamed_pooled_features(
        None, "key", PathReader(_loader()), list(paths), device="cpu",
        batch_size=4, memory=None,
    )  # fmt: skip
    assert len(live.refs) == 2 * 5  # 20 files in 5 batches, two poolings
    assert max(live.held) <= 1  # at most one output of the batch before
    assert rows.tolist() == list(range(len(paths)))
    for feats in features.values():
        assert feats.dtype == np.float32 and feats.shape == (len(paths), 5)
        assert feats.flags.c_contiguous
    # batch b of 4 files holds outputs 2b (avg) and 2b + 1 (max)
    np.testing.assert_array_equal(features["avg"][:, 0], np.repeat([0, 2, 4, 6, 8], 4))
    np.testing.assert_array_equal(features["max"][:, 0], np.repeat([1, 3, 5, 7, 9], 4))


def test_streamed_features_keep_one_pooling_without_a_cache(
    files, tmp_path, monkeypatch
):
    # without a cache only the pooling asked for is kept (half the memory); a
    # cache keeps both so that a fit with the other pooling hits it
    paths, _ = files
    monkeypatch.setattr(
        _transfer_net,
        "pooled_features",
        lambda backbone, key, images, **kw: _LiveOutputs(3, ("avg", "max"))(images),
    )
    kw = dict(device="cpu", batch_size=8, pooling="max")
    reader = PathReader(_loader())
    features, _ = streamed_pooled_features(
        None, "key", reader, list(paths), memory=None, **kw
    )
    assert set(features) == {"max"} and features["max"].shape == (len(paths), 3)
    features, _ = streamed_pooled_features(
        None, "key", reader, list(paths), memory=str(tmp_path), **kw
    )
    assert set(features) == {"avg", "max"}


def test_stream_map_fills_one_buffer(files):
    paths, _ = files
    live = _LiveOutputs(width=3)
    out = stream_map(live, PathReader(_loader()), list(paths), 8)
    assert len(live.refs) == 3 and max(live.held) <= 1
    np.testing.assert_array_equal(out[:, 0], np.repeat([0, 1, 2], [8, 8, 4]))


def test_pooled_features_equal_per_batch_pooling():
    # written batch by batch into float32 buffers: the same bits as the
    # pooled outputs of the same batches joined
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU())
    images = np.random.default_rng(0).random((10, 12, 12), dtype=np.float32)
    out = _transfer_net.pooled_features(net, None, images, device="cpu", batch_size=4)
    assert set(out) == {"avg", "max"}
    with torch.inference_mode():
        fmaps = [net(torch.from_numpy(images[s : s + 4])[:, None]) for s in (0, 4, 8)]
    for pooling, feats in out.items():
        assert feats.dtype == np.float32 and feats.shape == (10, 6)
        ref = np.concatenate([_transfer_net._pool(f, pooling).numpy() for f in fmaps])
        np.testing.assert_array_equal(feats, ref)


def test_daemon_process_decodes_in_place(files, monkeypatch):
    # a Dask worker is a daemonic process, which may not start children
    paths, _ = files
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)
    before = _children()
    batches = iter_batches(PathReader(_loader()), list(paths), 8)
    rows, images = next(batches)
    assert _children() == before  # no worker started
    assert rows.tolist() == list(range(8))
    np.testing.assert_array_equal(images.numpy(), _loader().transform(paths[:8]))
    batches.close()


def test_an_unreadable_file_at_predict_is_not_told_to_skip(tmp_path):
    from PIL import Image

    from skcxr import ImageLoader, TransferClassifier

    good = tmp_path / "good.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(good)
    (tmp_path / "bad.png").write_text("not an image")
    clf = TransferClassifier(
        backbone="small_cnn",
        weights=None,
        max_epochs=1,
        loader=ImageLoader(size=32, on_error="skip"),
        random_state=0,
    ).fit(np.array([str(good)] * 8), [0, 1] * 4)
    with pytest.raises(ValueError, match="bad.png.*needs an output row") as error:
        clf.predict(np.array([str(good), str(tmp_path / "bad.png")]))
    assert "out of fit" not in str(error.value)
