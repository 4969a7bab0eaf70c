import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from torch import nn

from skcxr import TSNE, CNNEmbedder
from tests._contract_checks import TRANSFORMER_CHECKS, image_contract_failures

SMALL = dict(backbone="small_cnn", weights=None, random_state=0, device="cpu")

COMMON_ESTIMATORS = [CNNEmbedder(**SMALL)]

EXPECTED_FAILED_CHECKS = image_contract_failures(
    "check_fit2d_1sample", *TRANSFORMER_CHECKS
)


def _images(n=6, size=32, seed=0):
    return np.random.default_rng(seed).random((n, size, size), dtype=np.float32)


def _bright_dark(n_per=10, size=32, seed=0):
    """Two easy classes: a bright disc on the left or on the right."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for label, cx in (("left", size // 4), ("right", 3 * size // 4)):
        disc = ((xx - cx) ** 2 + (yy - size // 2) ** 2) < (size // 6) ** 2
        for _ in range(n_per):
            img = 0.2 * rng.random((size, size)) + 0.7 * disc
            images.append(img)
            labels.append(label)
    return np.asarray(images, np.float32), np.asarray(labels)


def _net():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3)
    )


def test_shapes_dtype_and_feature_names():
    X = _images()
    embedder = CNNEmbedder(**SMALL).fit(X)
    Z = embedder.transform(X)
    assert Z.shape == (6, 128) and Z.dtype == np.float32
    assert embedder.n_features_out_ == 128
    assert embedder.image_shape_ == (32, 32) and embedder.n_features_in_ == 1024
    names = embedder.get_feature_names_out()
    assert len(names) == 128 and names[0] == "cnnembedder0"
    assert not embedder.module_.training
    np.testing.assert_array_equal(CNNEmbedder(**SMALL).fit_transform(X), Z)


def test_every_layout_gives_the_same_embedding():
    X = _images()
    embedder = CNNEmbedder(**SMALL).fit(X)
    Z = embedder.transform(X)
    np.testing.assert_array_equal(embedder.transform(X[:, None]), Z)
    np.testing.assert_array_equal(embedder.transform(X.reshape(6, -1)), Z)


def test_deterministic_and_seeded():
    X = _images()
    a = CNNEmbedder(**SMALL).fit(X)
    np.testing.assert_array_equal(a.transform(X), a.transform(X))
    np.testing.assert_array_equal(a.transform(X), CNNEmbedder(**SMALL).fit_transform(X))
    other = CNNEmbedder(**{**SMALL, "random_state": 1}).fit_transform(X)
    assert not np.allclose(other, a.transform(X))


def test_seeding_leaves_global_torch_rng_alone():
    state = torch.random.get_rng_state()
    CNNEmbedder(**SMALL).fit(_images(2))
    assert torch.equal(state, torch.random.get_rng_state())


def test_batch_size_and_memory_format_do_not_change_results():
    X = _images(7)
    ref = CNNEmbedder(**SMALL, batch_size=32).fit_transform(X)
    for params in ({"batch_size": 3}, {"channels_last": False}):
        out = CNNEmbedder(**SMALL, **params).fit_transform(X)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pooling, dim", [("avg", 16), ("max", 16), ("avgmax", 32)])
def test_pooling(pooling, dim):
    X = _images()
    net = _net()
    Z = CNNEmbedder(backbone=net, pooling=pooling, device="cpu").fit_transform(X)
    assert Z.shape == (6, dim)
    with torch.no_grad():
        maps = net.eval()(torch.from_numpy(X)[:, None])
    expected = {"avg": maps.mean((2, 3)), "max": maps.amax((2, 3))}
    expected["avgmax"] = torch.cat([expected["avg"], expected["max"]], 1)
    np.testing.assert_allclose(Z, expected[pooling].numpy(), rtol=1e-4, atol=1e-5)


def test_module_backbone_is_copied():
    X = _images()
    net = _net()
    embedder = CNNEmbedder(backbone=net, device="cpu").fit(X)
    Z = embedder.transform(X)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    np.testing.assert_array_equal(embedder.transform(X), Z)


def test_pickle_and_joblib_round_trip(tmp_path):
    X = _images()
    embedder = CNNEmbedder(**SMALL).fit(X)
    Z = embedder.transform(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(embedder)).transform(X), Z)
    joblib.dump(embedder, tmp_path / "embedder.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "embedder.joblib").transform(X), Z
    )
    # an unfitted clone pickles too
    pickle.loads(pickle.dumps(clone(embedder)))


def test_efficientnet_lite0_imagenet_offline():
    X = _images(3, size=64)
    Z = CNNEmbedder(batch_size=2, device="cpu").fit_transform(X)
    assert Z.shape == (3, 1280)
    assert np.isfinite(Z).all() and Z.std() > 0


def test_knn_pipeline_on_easy_images():
    X, y = _bright_dark()
    X_test, y_test = _bright_dark(n_per=5, seed=1)
    pipe = make_pipeline(CNNEmbedder(**SMALL), KNeighborsClassifier(n_neighbors=3))
    pipe.fit(X, y)
    assert pipe.score(X_test, y_test) >= 0.9


def test_tsne_pipeline_places_new_images():
    X, y = _bright_dark()
    pipe = make_pipeline(
        CNNEmbedder(**SMALL), TSNE(perplexity=5, n_iter=60, random_state=0)
    ).fit(X)
    emb = pipe[-1].embedding_
    assert emb.shape == (20, 2)
    X_new, y_new = _bright_dark(n_per=2, seed=3)
    placed = pipe.transform(X_new)
    assert placed.shape == (4, 2) and placed.dtype == np.float32
    centroids = np.array([emb[y == k].mean(0) for k in ("left", "right")])
    nearest = np.linalg.norm(placed[:, None] - centroids[None], axis=2).argmin(1)
    np.testing.assert_array_equal(np.array(["left", "right"])[nearest], y_new)


def test_verbose_progress_bar(capsys):
    CNNEmbedder(**SMALL, verbose=True, batch_size=2).fit(_images(4)).transform(
        _images(4)
    )
    assert "CNNEmbedder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "X, match",
    [
        (np.full((2, 32, 32), 2.0, np.float32), r"not \[0, 1\]"),
        (np.full((2, 32, 32), np.nan, np.float32), "NaN"),
        (np.zeros((2, 30), np.float32), "square image"),
        (np.zeros((2, 3, 8, 8), np.float32), "grayscale"),
    ],
)
def test_bad_images(X, match):
    with pytest.raises(ValueError, match=match):
        CNNEmbedder(**SMALL).fit(X)


def test_transform_needs_the_fitted_image_size():
    embedder = CNNEmbedder(**SMALL).fit(_images())
    with pytest.raises(ValueError, match="fitted on images of size 32x32"):
        embedder.transform(_images(size=16))
    with pytest.raises(NotFittedError):
        CNNEmbedder(**SMALL).transform(_images())


def test_bad_backbones():
    X = _images()
    with pytest.raises(ValueError, match="Did you mean 'small_cnn'"):
        CNNEmbedder(backbone="smal_cnn", weights=None).fit(X)
    with pytest.raises(ValueError, match="pooling"):
        CNNEmbedder(**{**SMALL, "pooling": "sum"}).fit(X)
    with pytest.raises(NotFittedError):
        CNNEmbedder(backbone=KNeighborsClassifier()).fit(X)
    knn = KNeighborsClassifier(n_neighbors=1).fit(X.reshape(6, -1), np.arange(6))
    with pytest.raises(ValueError, match="module_.embed"):
        CNNEmbedder(backbone=knn).fit(X)
    with pytest.raises(ValueError, match="could not embed"):
        CNNEmbedder(backbone=nn.Conv2d(1, 4, 5), device="cpu").fit(_images(size=2))


@pytest.fixture(scope="module")
def fitted_transfer():
    from skcxr import TransferClassifier

    X, y = _bright_dark(n_per=6)
    clf = TransferClassifier(
        backbone="small_cnn",
        weights=None,
        head_sizes=(12,),
        max_epochs=1,
        validation_fraction=0,
        device="cpu",
        random_state=0,
    )
    return clf.fit(X, y), X, y


def test_transfer_classifier_penultimate_layer(fitted_transfer):
    clf, X, _ = fitted_transfer
    embedder = CNNEmbedder(backbone=clf, device="cpu").fit(X)
    Z = embedder.transform(X)
    assert Z.shape == (12, 12)
    with torch.inference_mode():
        expected = clf.module_.embed(torch.from_numpy(X)[:, None]).numpy()
    np.testing.assert_allclose(Z, expected, rtol=1e-4, atol=1e-5)
    # the module was copied: changing the classifier's network leaves it alone
    with torch.no_grad():
        original = clf.module_.head.hidden[0].weight.clone()
        clf.module_.head.hidden[0].weight.mul_(2.0)
    try:
        np.testing.assert_array_equal(embedder.transform(X), Z)
    finally:
        with torch.no_grad():
            clf.module_.head.hidden[0].weight.copy_(original)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(embedder)).transform(X), Z)


def test_frozen_transfer_classifier_survives_clone(fitted_transfer):
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import cross_val_score

    clf, X, y = fitted_transfer
    pipe = make_pipeline(
        CNNEmbedder(backbone=FrozenEstimator(clf), device="cpu"),
        KNeighborsClassifier(n_neighbors=1),
    )
    scores = cross_val_score(pipe, X, y, cv=2)
    assert scores.shape == (2,)
    # without FrozenEstimator, clone() returns an unfitted classifier
    with pytest.raises(NotFittedError):
        clone(CNNEmbedder(backbone=clf)).fit(X)


class _ConvUsedTwice(nn.Module):
    """bn(conv(x)) + conv(x): folding the batch norm would be wrong here."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        with torch.no_grad():
            self.bn.running_mean.fill_(0.3)
            self.bn.running_var.fill_(2.0)

    def forward(self, x):
        out = self.conv(x)
        return self.bn(out) + out


def test_batch_norms_are_folded_only_when_exact():
    X = _images()
    embedder = CNNEmbedder(**SMALL).fit(X)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in embedder.module_.modules())

    net = _ConvUsedTwice().eval()
    embedder = CNNEmbedder(backbone=net, device="cpu").fit(X)
    assert any(isinstance(m, nn.BatchNorm2d) for m in embedder.module_.modules())
    with torch.no_grad():
        expected = net(torch.from_numpy(X)[:, None]).mean((2, 3)).numpy()
    np.testing.assert_allclose(embedder.transform(X), expected, rtol=1e-5, atol=1e-6)


def test_input_array_is_not_modified():
    X = _images()
    copy = X.copy()
    CNNEmbedder(
        backbone=nn.Sequential(nn.ReLU(), nn.Conv2d(1, 2, 3)), device="cpu"
    ).fit(X)
    np.testing.assert_array_equal(X, copy)


def test_read_only_input():
    X = _images()
    embedder = CNNEmbedder(
        backbone=nn.Sequential(nn.ReLU(), nn.Conv2d(1, 2, 3)), device="cpu"
    )
    expected = embedder.fit_transform(X)
    X.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(embedder.fit(X).transform(X), expected)


def test_model_is_a_deprecated_alias_of_backbone():
    X = _images()
    expected = CNNEmbedder(**SMALL).fit_transform(X)
    params = {k: v for k, v in SMALL.items() if k != "backbone"}
    old = CNNEmbedder(model="small_cnn", **params)
    with pytest.warns(FutureWarning, match="`model` was renamed to `backbone`"):
        np.testing.assert_array_equal(old.fit_transform(X), expected)
    assert old.get_params()["model"] == "small_cnn"
    assert CNNEmbedder().get_params()["model"] == "deprecated"
    with pytest.raises(ValueError, match="Both `backbone` and the deprecated `model`"):
        CNNEmbedder(backbone="fused_cnn", model="small_cnn", **params).fit(X)
    with warnings.catch_warnings():  # backbone= warns nothing
        warnings.simplefilter("error")
        CNNEmbedder(**SMALL).fit(X)


def test_shared_parameters_match_transfer_classifier():
    from skcxr import TransferClassifier

    mine, theirs = CNNEmbedder().get_params(), TransferClassifier().get_params()
    shared = set(mine) & set(theirs)
    assert {"backbone", "weights", "pooling", "batch_size", "device"} <= shared
    assert {"random_state", "verbose"} <= shared
    for name in shared - {"verbose"}:  # a bool here, skorch's level there
        assert mine[name] == theirs[name], name
    assert bool(mine["verbose"]) == bool(theirs["verbose"])


@pytest.mark.parametrize(
    "view",
    [
        lambda X: X[::-1],
        lambda X: np.flip(X, 0),
        lambda X: X[:, ::-1, ::-1],
        lambda X: np.asfortranarray(X),
        lambda X: X.transpose(0, 2, 1),
        lambda X: np.repeat(X, 2, axis=0)[::2],
    ],
    ids=["reversed", "flip", "flip-pixels", "fortran", "transposed", "strided"],
)
def test_views_embed_like_their_contiguous_copies(view):
    X = _images()
    V = view(X)
    embedder = CNNEmbedder(**SMALL).fit(V)
    expected = CNNEmbedder(**SMALL).fit(np.ascontiguousarray(V))
    np.testing.assert_array_equal(
        embedder.transform(V), expected.transform(np.ascontiguousarray(V))
    )
    if V.strides[0] < 0:  # reversed order in, reversed embeddings out
        np.testing.assert_array_equal(
            embedder.transform(V), expected.transform(X)[::-1]
        )


def test_read_only_views_and_memmaps(tmp_path):
    X = _images()
    embedder = CNNEmbedder(**SMALL).fit(X)
    Z = embedder.transform(X)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    read_only = X.copy()
    read_only.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable tensor" warning
        np.testing.assert_array_equal(embedder.transform(mapped), Z)
        np.testing.assert_array_equal(embedder.transform(mapped[::-1]), Z[::-1])
        np.testing.assert_array_equal(embedder.transform(read_only[::-1]), Z[::-1])
        refit = CNNEmbedder(**SMALL).fit(mapped[::-1])
    np.testing.assert_array_equal(refit.transform(X), Z)


def _rgb_resnet(seed=0):
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torchvision.models.resnet18(weights=None).eval()


def test_user_backbone_embeds_its_feature_layer():
    from skcxr.nn import UserBackbone

    X = _images(4)
    rgb = _rgb_resnet()
    backbone = UserBackbone(rgb, feature_layer="layer3", in_channels=3)
    embedder = CNNEmbedder(backbone=backbone, device="cpu").fit(X)
    Z = embedder.transform(X)
    assert Z.shape == (4, 256) and embedder.n_features_out_ == 256
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (torch.from_numpy(X)[:, None].repeat(1, 3, 1, 1) - mean) / std
    trunk = torch.nn.Sequential(*list(rgb.children())[:-3])  # through layer3
    with torch.no_grad():
        expected = trunk(x).mean((2, 3)).numpy()
    np.testing.assert_allclose(Z, expected, rtol=1e-4, atol=1e-4)
    # clone copies the module: the clone embeds the same, from its own copy
    twin = clone(embedder)
    assert twin.backbone is not backbone
    assert twin.backbone.features is not rgb
    np.testing.assert_allclose(twin.fit_transform(X), Z, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(embedder)).transform(X), Z)


def test_weights_file_for_a_module_backbone(tmp_path):
    X = _images()
    net, other = _net(), _net()
    torch.save(other.state_dict(), tmp_path / "other.pth")
    loaded = CNNEmbedder(backbone=net, weights=tmp_path / "other.pth", device="cpu")
    expected = CNNEmbedder(backbone=other, device="cpu").fit_transform(X)
    np.testing.assert_array_equal(loaded.fit_transform(X), expected)
    own = CNNEmbedder(backbone=net, weights=None, device="cpu").fit_transform(X)
    assert not np.allclose(own, expected)  # None keeps the module's own weights
    np.testing.assert_array_equal(
        CNNEmbedder(backbone=net, device="cpu").fit_transform(X), own
    )


@pytest.mark.parametrize(
    "device, match",
    [
        ("tpu", "device='tpu' is not supported"),
        pytest.param(
            "cuda",
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA"),
        ),
        pytest.param(
            "mps",
            "cannot use Apple's MPS",
            marks=pytest.mark.skipif(
                torch.backends.mps.is_available(), reason="has MPS"
            ),
        ),
    ],
)
def test_a_device_this_machine_lacks_is_named(device, match):
    X = np.zeros((2, 32, 32), np.float32)
    with pytest.raises(ValueError, match=match):
        CNNEmbedder(backbone="small_cnn", weights=None, device=device).fit(X)


def test_weights_that_are_a_folder_or_text_are_named(tmp_path):
    X = np.zeros((2, 32, 32), np.float32)
    with pytest.raises(IsADirectoryError, match="is a folder, not a weights file"):
        CNNEmbedder(backbone="efficientnet_lite0", weights=tmp_path).fit(X)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt' is not a torch weights file"):
        CNNEmbedder(backbone="efficientnet_lite0", weights=notes).fit(X)
