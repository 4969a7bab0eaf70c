"""TransferClassifier(head_convs=...): convolution blocks on the backbone's
feature map before the global pooling, trained with the dense head."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from skcxr import CNNEmbedder, TransferClassifier
from skcxr.nn._transfer_net import Head, TransferNet
from skcxr.utils._model_io import load_model, save_model

TINY = dict(
    backbone="small_cnn",
    weights=None,
    head_sizes=(8,),
    max_epochs=2,
    batch_size=16,
    random_state=0,
    device="cpu",
)


def _data(n=32, size=32, seed=0):
    """Images whose class is readable from the brightness of a band."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, size, size), dtype=np.float32) * 0.5
    y = np.array(["normal", "virus"])[np.arange(n) % 2]
    X[y == "virus", 8:14] += 0.5
    return np.clip(X, 0, 1), y


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def frozen(data):
    """A frozen backbone and a head with two convolution blocks."""
    return TransferClassifier(head_convs=(6, 4), **TINY).fit(*data)


def test_head_convs_are_conv_bn_relu_blocks_before_the_pooling(frozen, data):
    X, _ = data
    module = frozen.module_
    assert isinstance(module, TransferNet)
    convs = [m for m in module.head.convs if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(128, 6), (6, 4)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    kinds = [type(m) for m in module.head.convs]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert module.head.hidden[0].in_features == 4
    x = torch.from_numpy(X[:3])[:, None]
    with torch.no_grad():  # pooled after the convolutions
        fmap = module.backbone(x)
        expected = module.head(module.head.convs(fmap).mean(dim=(2, 3)))
        torch.testing.assert_close(module(x), expected)
    assert frozen.predict_proba(X).shape == (len(X), 2)
    assert frozen.module_.embed(x).shape == (3, 8)


def test_frozen_backbone_with_head_convs_gives_the_model_of_the_cached_path(
    frozen, data
):
    """With a frozen backbone the head's convolutions train on cached feature
    maps (pooled features would skip them); the model is the one the pooled
    cache gives (the same untouched backbone in a TransferNet), only with
    convolutions in its head."""
    X, y = data
    cached = TransferClassifier(**TINY).fit(X, y)
    assert cached.used_feature_cache_ and frozen.used_feature_cache_
    assert type(cached.module_) is type(frozen.module_)
    assert frozen.n_trainable_blocks_ == cached.n_trainable_blocks_ == 0
    # the frozen backbone (batch-norm statistics included) is left as built
    for key, value in cached.module_.backbone.state_dict().items():
        torch.testing.assert_close(frozen.module_.backbone.state_dict()[key], value)
    assert not any(p.requires_grad for p in frozen.module_.backbone.parameters())
    assert all(p.requires_grad for p in frozen.module_.head.parameters())
    # the convolutions count as the (trainable) head
    rows = {r["block"]: r for r in frozen.parameter_table_}
    cached_rows = {r["block"]: r for r in cached.parameter_table_}
    n_convs = sum(p.numel() for p in frozen.module_.head.convs.parameters())
    assert n_convs == 128 * 6 * 9 + 2 * 6 + 6 * 4 * 9 + 2 * 4
    assert rows["head"]["non_trainable"] == 0
    assert rows["head"]["trainable"] == n_convs + 4 * 8 + 8 + 8 * 2 + 2
    assert {b: r for b, r in rows.items() if b != "head"} == {
        b: r for b, r in cached_rows.items() if b != "head"
    }
    # no head_convs: no parameter and no state-dict entry for them
    assert not any(k.startswith("head.convs") for k in cached.module_.state_dict())
    assert len(cached.module_.head.convs) == 0


def test_cached_feature_maps_train_the_model_of_the_whole_network(
    frozen, data, monkeypatch
):
    """Training the head on cached maps equals training the whole network with
    the frozen backbone run every epoch (the path of files given as X)."""
    X, y = data
    monkeypatch.setattr(TransferClassifier, "_use_cache", lambda self, files: False)
    uncached = TransferClassifier(head_convs=(6, 4), **TINY).fit(X, y)
    assert not uncached.used_feature_cache_
    np.testing.assert_allclose(
        uncached.history_[:, "train_loss"], frozen.history_[:, "train_loss"], rtol=1e-5
    )
    np.testing.assert_allclose(
        uncached.predict_proba(X), frozen.predict_proba(X), rtol=1e-5, atol=1e-6
    )


def test_head_convs_on_files_train_through_the_frozen_backbone(data, tmp_path):
    from skcxr import ImageLoader
    from skcxr.datasets import write_chest_xrays

    X, y = data
    paths = list(write_chest_xrays(tmp_path / "images", X, y, random_state=0))
    params = dict(TINY, head_convs=(4,), loader=ImageLoader(size=32))
    clf = TransferClassifier(**params).fit(paths, y)
    assert not clf.used_feature_cache_  # streaming keeps pooled features only
    assert clf.predict_proba(paths).shape == (len(paths), 2)
    assert not any(p.requires_grad for p in clf.module_.backbone.parameters())


def test_head_convs_train_with_a_fine_tuned_backbone_and_reproducibly(data):
    X, y = data
    params = dict(TINY, head_convs=(4,), trainable=1, random_state=3)
    first = TransferClassifier(**params).fit(X, y)
    again = TransferClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), again.predict_proba(X))
    assert first.n_trainable_blocks_ == 1 and not first.used_feature_cache_
    assert np.isfinite(first.history_[:, "train_loss"]).all()


@pytest.mark.parametrize(
    "head_convs", [(0,), (8, -1), (2.5,), (True,), ("16",), "16", None]
)
def test_bad_head_convs_are_refused_naming_the_parameter(data, head_convs):
    X, y = data
    with pytest.raises((ValueError, TypeError), match="head_convs"):
        TransferClassifier(head_convs=head_convs, **TINY).fit(X, y)


def test_clone_pickle_and_safe_model_file_keep_the_head_convs(frozen, data, tmp_path):
    X, _ = data
    expected = frozen.predict_proba(X)
    assert clone(frozen).get_params()["head_convs"] == (6, 4)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(frozen)).predict_proba(X), expected
    )
    save_model(frozen, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops")
    assert len(loaded.module_.head.convs) == 6
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-6)


def test_embedder_of_a_classifier_with_head_convs(frozen, data):
    X, _ = data
    codes = CNNEmbedder(backbone=frozen, device="cpu").fit(X).transform(X)
    assert codes.shape == (len(X), 8)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_head_convs_run_on_the_inference_engines(frozen, data, engine):
    pytest.importorskip(engine)
    pytest.importorskip("onnx")
    X, _ = data
    expected = frozen.predict_proba(X)
    # the fitted network (its convolutions included) exported to the engine
    fitted = pickle.loads(pickle.dumps(frozen)).set_params(engine=engine)
    got = fitted.predict_proba(X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # fitted with the engine: the maps for the convolutions come from torch
    with_engine = TransferClassifier(head_convs=(6, 4), engine=engine, **TINY)
    np.testing.assert_allclose(
        with_engine.fit(*data).predict_proba(X), expected, atol=1e-4
    )


def test_head_builds_its_convolutions_only_when_asked():
    plain = Head(8, (4,), 0.0, 2)
    assert not list(plain.convs.parameters())
    z = torch.rand(3, 8, 4, 4)
    torch.testing.assert_close(plain.convs(z), z)  # an identity
    conv = Head(8, (), 0.0, 2, convs=(5,)).eval()
    assert conv.convs(z).shape == (3, 5, 4, 4) and conv.out.in_features == 5


def test_grad_cam_reaches_the_backbone_through_the_head_convs(frozen, data):
    from skcxr.inspection import grad_cam

    X, _ = data
    maps = grad_cam(frozen, X[:3])
    assert maps.shape == (3, 32, 32) and np.isfinite(maps).all()
    inner = grad_cam(frozen, X[:3], layer="head.convs")  # a layer of the head
    assert inner.shape == (3, 32, 32) and 0 <= inner.min() and inner.max() <= 1


@pytest.mark.slow
def test_resnet50_with_conv_blocks_on_its_feature_map():
    """The reproduced configuration: ResNet50 + Conv2D blocks, frozen backbone."""
    X, y = _data(n=16, size=64)
    clf = TransferClassifier(
        **dict(TINY, backbone="resnet50", head_convs=(32, 16), max_epochs=1)
    ).fit(X, y)
    assert clf.used_feature_cache_
    first = clf.module_.head.convs[0]
    assert (first.in_channels, first.out_channels) == (2048, 32)
    assert clf.predict_proba(X).shape == (16, 2)
