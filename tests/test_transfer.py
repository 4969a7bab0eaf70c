import pickle

import joblib
import numpy as np
import pytest
import torch
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skcxr import TransferClassifier
from skcxr.nn._transfer_net import AugmentBatches, TransferNet
from tests._contract_checks import (
    CLASSIFIER_CHECKS,
    IMAGE_CONTRACT_REASON,
    image_contract_failures,
)

TINY = dict(
    backbone="small_cnn",
    weights=None,
    head_sizes=(8,),
    max_epochs=2,
    batch_size=16,
    random_state=0,
    device="cpu",
)

COMMON_ESTIMATORS = [
    TransferClassifier(**TINY),
    # convolutions on the feature map: the head trains on cached maps
    TransferClassifier(**TINY, head_convs=(4,)),
]

EXPECTED_FAILED_CHECKS = {
    **image_contract_failures(*CLASSIFIER_CHECKS),
    **dict.fromkeys(
        [
            "check_classifiers_multilabel_representation_invariance",
            "check_classifiers_multilabel_output_format_predict",
            "check_classifiers_multilabel_output_format_predict_proba",
            "check_classifiers_multilabel_output_format_decision_function",
        ],
        f"{IMAGE_CONTRACT_REASON}; covered on images by "
        "tests/test_transfer_multilabel.py",
    ),
}


def _data(n=48, size=32, n_classes=3, seed=0):
    """Images whose class is readable from the brightness of a band."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, size, size), dtype=np.float32) * 0.5
    labels = np.array(["normal", "bacteria", "virus"][:n_classes])
    y = labels[np.arange(n) % n_classes]
    for k, label in enumerate(labels):
        X[y == label, 4 * k : 4 * k + 6] += 0.5
    return np.clip(X, 0, 1), y


def test_fit_predict_string_labels():
    X, y = _data()
    clf = TransferClassifier(**{**TINY, "max_epochs": 3}).fit(X, y)
    assert clf.classes_.tolist() == ["bacteria", "normal", "virus"]
    proba = clf.predict_proba(X)
    assert proba.shape == (48, 3) and np.allclose(proba.sum(1), 1)
    assert set(clf.predict(X)) <= set(clf.classes_)
    assert 0 <= clf.score(X, y) <= 1
    assert clf.n_features_in_ == 32 * 32 and clf.image_shape_ == (32, 32)
    assert clf.used_feature_cache_
    assert isinstance(clf.module_, TransferNet) and not clf.module_.training
    assert clf.module_ is clf.net_.module_
    assert len(clf.history_) == 3 and "valid_loss" in clf.history_[-1]
    x = torch.as_tensor(X[:5, None])
    with torch.no_grad():
        assert clf.module_.embed(x).shape == (5, 8)
        logits = clf.module_(x)
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), proba[:5], atol=1e-5)


def test_layouts_and_binary():
    X, y = _data(n_classes=2)
    clf = TransferClassifier(**TINY).fit(X.reshape(len(X), -1), y)
    p_flat = clf.predict_proba(X.reshape(len(X), -1))
    np.testing.assert_allclose(p_flat, clf.predict_proba(X[:, None]))
    np.testing.assert_allclose(p_flat, clf.predict_proba(X))
    assert p_flat.shape == (48, 2)


def test_reproducible_and_global_rng_untouched():
    X, y = _data()
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    params = {**TINY, "trainable": "all", "augment": True, "dropout": 0.5}
    a = TransferClassifier(**params).fit(X, y).predict_proba(X)
    b = TransferClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])
    c = TransferClassifier(**{**params, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.allclose(a, c)


def test_cached_features_match_training_on_images():
    X, y = _data()
    cached = TransferClassifier(**TINY).fit(X, y)
    # a learnable resizer turns the cache off: the path that trains on images
    assert cached.used_feature_cache_
    assert (
        not TransferClassifier(**{**TINY, "resizer": 24}).fit(X, y).used_feature_cache_
    )
    assert (
        not TransferClassifier(**{**TINY, "augment": True})
        .fit(X, y)
        .used_feature_cache_
    )
    assert all(not p.requires_grad for p in cached.module_.backbone.parameters())


def test_memory_reuses_backbone_features(tmp_path, monkeypatch):
    X, y = _data()
    memory = joblib.Memory(str(tmp_path), verbose=0)
    TransferClassifier(**TINY, memory=memory).fit(X, y)

    def broken(self, x):
        raise AssertionError("the backbone ran although its features were cached")

    from skcxr.nn._backbones import Backbone

    monkeypatch.setattr(Backbone, "forward", broken)
    clf = TransferClassifier(
        **{**TINY, "head_sizes": (4,), "pooling": "max"}, memory=str(tmp_path)
    ).fit(X, y)
    assert clf.used_feature_cache_
    with pytest.raises(
        AssertionError, match="backbone ran"
    ):  # other images: recomputed
        TransferClassifier(**TINY, memory=memory).fit(X[:-3], y[:-3])


@pytest.mark.parametrize("trainable", ["all", 0, 2])
def test_trainable_blocks(trainable):
    X, y = _data()
    clf = TransferClassifier(**{**TINY, "trainable": trainable}).fit(X, y)
    backbone = clf.module_.backbone
    n = len(backbone.blocks) if trainable == "all" else trainable
    for i, name in enumerate(backbone.blocks):
        grads = {p.requires_grad for p in backbone.get_submodule(name).parameters()}
        assert grads == {i >= len(backbone.blocks) - n}
    assert clf.used_feature_cache_ == (trainable == 0)
    # frozen batch norms keep their running statistics in training mode
    clf.module_.train()
    for name in backbone.blocks[: len(backbone.blocks) - n]:
        bn = backbone.get_submodule(name)[1]
        assert isinstance(bn, torch.nn.BatchNorm2d) and not bn.training
    clf.module_.eval()


def test_frozen_backbone_does_not_change():
    X, y = _data()
    clf = TransferClassifier(**{**TINY, "trainable": 1, "max_epochs": 1})
    clf.fit(X, y)
    first = clf.module_.backbone.get_submodule(clf.module_.backbone.blocks[0])
    # rebuild the same initial backbone and compare a frozen block
    with torch.random.fork_rng():
        from skcxr.nn._backbones import build_backbone
        from skcxr.utils._random import seed_from

        torch.manual_seed(seed_from(0))
        initial = build_backbone("small_cnn")
    init_block = initial.get_submodule(initial.blocks[0])
    for a, b in zip(first.state_dict().values(), init_block.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_schedules_class_weight_and_early_stopping():
    X, y = _data()
    clf = TransferClassifier(
        **{
            **TINY,
            "lr_schedule": "exponential",
            "lr_gamma": 0.5,
            "max_epochs": 3,
            "class_weight": "balanced",
        }
    ).fit(X, y)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)
    np.testing.assert_allclose(clf.net_.criterion_.weight.numpy(), [1, 1, 1])
    Xi, yi = X[:40], y[:40]
    yi = np.where(np.arange(40) < 30, "normal", yi)
    weighted = TransferClassifier(**{**TINY, "class_weight": {"virus": 3.0}}).fit(
        Xi, yi
    )
    weights = dict(zip(weighted.classes_, weighted.net_.criterion_.weight.numpy()))
    assert weights == {"bacteria": 1.0, "normal": 1.0, "virus": 3.0}
    for schedule in ["plateau", "cosine"]:
        TransferClassifier(
            **{**TINY, "lr_schedule": schedule, "optimizer": "rmsprop"}
        ).fit(X, y)
    stop = TransferClassifier(
        **{**TINY, "max_epochs": 30, "early_stopping": 1, "lr": 0.5, "optimizer": "sgd"}
    ).fit(X, y)
    losses = stop.history_[:, "valid_loss"]
    assert len(losses) < 30
    names = [name for name, _ in stop.net_.callbacks_]
    assert "early_stopping" in names
    # the best epoch's weights are restored: the final model has the best valid loss
    y_enc = np.searchsorted(stop.classes_, y)
    _, valid = stop.net_.get_split_datasets(X[:, None], y_enc)
    idx = np.asarray(valid.indices)
    assert len(idx) == 5
    with torch.no_grad():
        logits = stop.module_(torch.as_tensor(X[idx, None]))
        loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y_enc[idx]))
    assert np.argmin(losses) < len(losses) - 1
    assert float(loss) == pytest.approx(min(losses), rel=1e-4)
    no_valid = TransferClassifier(**{**TINY, "validation_fraction": 0}).fit(X, y)
    assert "valid_loss" not in no_valid.history_[-1]


def test_augment_only_training_batches():
    X, y = _data()
    clf = TransferClassifier(
        **{**TINY, "augment": {"rotation": 10.0, "flip": True}}
    ).fit(X, y)
    assert isinstance(clf.net_.iterator_train__transform, AugmentBatches)
    assert "iterator_valid__transform" not in clf.net_.get_params()
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))
    augment = AugmentBatches({"rotation": 10.0}, seed=0)
    batch = torch.as_tensor(X[:4, None])
    first, second = augment(batch), augment(batch)
    assert first.shape == batch.shape and not torch.equal(first, second)
    assert float(first.min()) >= 0 and float(first.max()) <= 1


def test_pickle_and_joblib_roundtrip(tmp_path):
    X, y = _data()
    clf = TransferClassifier(**{**TINY, "early_stopping": 2, "lr_schedule": "plateau"})
    clf.fit(X, y)
    expected = clf.predict_proba(X)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    assert loaded.module_ is loaded.net_.module_ is loaded.net_.module
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "clf.joblib").predict_proba(X), expected
    )
    # the module is pickled once: the pickle is about the size of the parameters
    n_bytes = sum(
        t.numel() * t.element_size() for t in clf.module_.state_dict().values()
    )
    assert len(pickle.dumps(clf)) < 2 * n_bytes + 200_000


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_pickle_of_a_cuda_fit_loads_on_cpu():
    from skorch.exceptions import DeviceWarning

    X, y = _data()
    clf = TransferClassifier(**TINY).fit(X, y)
    expected = clf.predict_proba(X)
    clf.net_.device = "cuda"  # as if fitted on a GPU
    with pytest.warns(DeviceWarning):
        loaded = pickle.loads(pickle.dumps(clf))
    assert str(loaded.net_.device) == "cpu"
    assert all(p.device.type == "cpu" for p in loaded.module_.parameters())
    np.testing.assert_allclose(loaded.predict_proba(X), expected)


def test_clone_and_params():
    clf = TransferClassifier(**TINY)
    assert clone(clf).get_params() == clf.get_params()
    with pytest.raises(NotFittedError):
        clf.predict(np.zeros((2, 16, 16), np.float32))
    with pytest.raises(NotFittedError):
        _ = clf.module_


def test_bad_input_and_params():
    X, y = _data()
    with pytest.raises(ValueError, match="Did you mean 'resnet50'"):
        TransferClassifier(backbone="resnet5").fit(X, y)
    with pytest.raises(ValueError, match="head_sizes"):
        TransferClassifier(**{**TINY, "head_sizes": (8, 0)}).fit(X, y)
    with pytest.raises(ValueError, match="trainable=9"):
        TransferClassifier(**{**TINY, "trainable": 9}).fit(X, y)
    with pytest.raises(ValueError, match="optimizer"):
        TransferClassifier(**{**TINY, "optimizer": "adagrad"}).fit(X, y)
    with pytest.raises(ValueError, match="no pretrained weights"):
        TransferClassifier(backbone="small_cnn").fit(X, y)
    with pytest.raises(ValueError, match="augment"):
        TransferClassifier(**{**TINY, "augment": {"rotation": -5}}).fit(X, y)
    with pytest.raises(ValueError, match="class_weight names classes"):
        TransferClassifier(**{**TINY, "class_weight": {"covid": 2.0}}).fit(X, y)
    with pytest.raises(ValueError, match=r"not \[0, 1\]"):
        TransferClassifier(**TINY).fit(X * 3, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        TransferClassifier(**TINY).fit(X, np.full(len(X), "normal"))
    clf = TransferClassifier(**TINY).fit(X, y)
    with pytest.raises(ValueError, match="fitted on images of size 32x32"):
        clf.predict(X[:, :16, :16])
    with pytest.raises(ValueError, match="grayscale"):
        clf.predict(np.stack([X] * 3, axis=1))


def test_grid_search_in_pipelines(tmp_path):
    X, y = _data(n=36)
    flat = X.reshape(len(X), -1)
    pipe = Pipeline(
        [
            ("identity", FunctionTransformer()),
            ("clf", TransferClassifier(**TINY, memory=str(tmp_path))),
        ]
    )
    search = GridSearchCV(
        pipe, {"clf__head_sizes": [(4,), (8,)], "clf__lr": [1e-3, 1e-2]}, cv=2
    ).fit(flat, y)
    assert search.best_estimator_.predict(flat).shape == (36,)
    imb = ImbPipeline(
        [
            ("over", RandomOverSampler(random_state=0)),
            ("clf", TransferClassifier(**TINY)),
        ]
    )
    Xi, yi = flat[:30], np.where(np.arange(30) < 20, "normal", y[:30])
    halving = HalvingGridSearchCV(
        imb, {"clf__dropout": [0.0, 0.3]}, cv=2, factor=2, random_state=0
    ).fit(Xi, yi)
    assert set(halving.best_estimator_.predict(Xi)) <= set(yi)


@pytest.mark.slow
def test_lite0_imagenet_beats_random_init():
    from skcxr.datasets import make_chest_xrays

    X, y = make_chest_xrays(150, size=64, difficulty=0.5, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    scores = {}
    for weights in ["imagenet", None]:
        clf = TransferClassifier(
            backbone="efficientnet_lite0",
            weights=weights,
            head_sizes=(64,),
            max_epochs=20,
            random_state=0,
            device="cpu",
        ).fit(X_train, y_train)
        scores[weights] = f1_score(y_test, clf.predict(X_test), average="macro")
    assert scores["imagenet"] > scores[None] + 0.05, scores


@pytest.mark.slow
def test_paths_pipeline_grid_search_pickles(tmp_path):
    from PIL import Image

    from skcxr import ImageLoader, OtsuMasker
    from skcxr.datasets import make_chest_xrays

    X, y = make_chest_xrays(30, classes=("normal", "bacteria"), size=48, random_state=1)
    paths = []
    for i, image in enumerate(X):
        path = tmp_path / f"{y[i]}_{i}.png"
        Image.fromarray((image * 255).round().astype(np.uint8)).save(path)
        paths.append(str(path))
    paths = np.array(paths)
    pipe = Pipeline(
        [
            ("load", ImageLoader(size=32)),
            ("mask", OtsuMasker()),
            ("clf", TransferClassifier(**TINY)),
        ]
    )
    search = GridSearchCV(pipe, {"clf__head_sizes": [(4,), (8,)]}, cv=3).fit(paths, y)
    expected = search.predict_proba(paths)
    joblib.dump(search, tmp_path / "search.joblib")
    loaded = joblib.load(tmp_path / "search.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(paths), expected)
    assert set(loaded.predict(paths)) <= {"normal", "bacteria"}


def test_validation_split_matches_a_stratified_shuffle_split():
    from skorch.dataset import Dataset, ValidSplit

    from skcxr.nn._transfer_net import HoldoutSplit
    from skcxr.utils._split import can_stratify

    X, y = _data(n=60)
    y_enc = np.searchsorted(np.unique(y), y)
    data = Dataset(X[:, None], y_enc)
    for fraction, labels in [(0.1, y_enc), (0.2, y_enc), (0.1, np.arange(60) % 7)]:
        train, valid = HoldoutSplit(fraction, random_state=3)(data, labels)
        stratified = can_stratify(labels, fraction)  # False for the 7 classes
        expected = ValidSplit(fraction, stratified=stratified, random_state=3)(
            data, labels
        )
        # the same rows as skorch's (Stratified)ShuffleSplit, in sorted order
        np.testing.assert_array_equal(train.indices, np.sort(expected[0].indices))
        np.testing.assert_array_equal(valid.indices, np.sort(expected[1].indices))


def test_warmup_trains_the_head_first():
    X, y = _data()
    clf = TransferClassifier(
        **{**TINY, "trainable": "all", "warmup_epochs": 2, "max_epochs": 3}
    ).fit(X, y)
    n_batches = -(-43 // TINY["batch_size"])  # 43 training rows after the hold-out
    state = clf.net_.optimizer_.state
    backbone = [p for p in clf.module_.backbone.parameters() if p in state]
    head = list(clf.module_.head.parameters())
    # Adam saw the backbone in the last epoch only, the head in all three
    assert {int(state[p]["step"]) for p in backbone} == {n_batches}
    assert {int(state[p]["step"]) for p in head} == {3 * n_batches}
    assert len(backbone) == len(list(clf.module_.backbone.parameters()))
    assert all(p.requires_grad for p in clf.module_.backbone.parameters())
    # with the backbone frozen, the head is trained as with trainable="head"
    frozen = TransferClassifier(**{**TINY, "trainable": 1, "warmup_epochs": 1}).fit(
        X, y
    )
    assert frozen.n_trainable_blocks_ == 1
    with pytest.raises(ValueError, match="warmup_epochs=2 leaves no epoch"):
        TransferClassifier(**{**TINY, "trainable": "all", "warmup_epochs": 2}).fit(X, y)


def test_backbone_lr_and_label_smoothing():
    X, y = _data()
    clf = TransferClassifier(
        **{**TINY, "trainable": "all", "backbone_lr": 0.1, "label_smoothing": 0.1}
    ).fit(X, y)
    groups = clf.net_.optimizer_.param_groups
    backbone = {id(p) for p in clf.module_.backbone.parameters()}
    lrs = {all(id(p) in backbone for p in g["params"]): g["lr"] for g in groups}
    assert lrs == {True: pytest.approx(1e-4), False: pytest.approx(1e-3)}
    assert clf.net_.criterion_.label_smoothing == 0.1
    # backbone_lr=0 keeps the pretrained (here: initial) backbone as it was
    still = TransferClassifier(**{**TINY, "trainable": "all", "backbone_lr": 0.0})
    still.fit(X, y)
    with torch.random.fork_rng():
        from skcxr.nn._backbones import build_backbone
        from skcxr.utils._random import seed_from

        torch.manual_seed(seed_from(0))
        initial = build_backbone("small_cnn")
    for (name, a), b in zip(
        still.module_.backbone.state_dict().items(), initial.state_dict().values()
    ):
        if "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(a, b)
    # default: one learning rate, no smoothing (the single-label behaviour so far)
    plain = TransferClassifier(**{**TINY, "trainable": "all"}).fit(X, y)
    assert len(plain.net_.optimizer_.param_groups) == 1
    assert plain.net_.criterion_.label_smoothing == 0


def test_images_smaller_than_the_backbone_needs(monkeypatch):
    import re

    from skcxr.models import _transfer
    from skcxr.models._transfer import _runs_on
    from skcxr.nn._backbones import build_backbone

    def without_upsampling(name, **kwargs):
        backbone = build_backbone(name, **kwargs)
        backbone.min_size = 1  # a network that does not upsample small inputs
        return backbone

    monkeypatch.setattr(_transfer, "build_backbone", without_upsampling)
    X, y = _data(n=12, size=16)
    # densenet121 pools a 16x16 input down to nothing before its last block
    params = {**TINY, "backbone": "densenet121", "max_epochs": 1}
    with pytest.raises(ValueError, match=r"16x16 .* minimum size .*'densenet121'"):
        TransferClassifier(**params).fit(X, y)
    with pytest.raises(ValueError) as info:  # the training path (no feature cache)
        TransferClassifier(**{**params, "trainable": "all"}).fit(X, y)
    size = int(re.search(r"needs, (\d+)x\1 pixels", str(info.value)).group(1))
    densenet = without_upsampling("densenet121")
    assert _runs_on(densenet, (size, size)) and not _runs_on(densenet, (size - 1,) * 2)
    assert f"ImageLoader(size={size})" in str(info.value)
    with pytest.raises(ValueError, match=rf"resizer=16 .* {size}x{size} pixels"):
        TransferClassifier(**{**params, "resizer": 16}).fit(X, y)


def test_clear_errors_for_device_missing_labels_and_empty_data():
    X, y = _data(n=12)
    with pytest.raises(ValueError, match=r"device='tpu'.*'auto', 'cpu', 'cuda', "):
        TransferClassifier(**{**TINY, "device": "tpu"}).fit(X, y)
    for device in ["cuda:x", "gpu"]:
        with pytest.raises(ValueError, match="cuda:N"):
            TransferClassifier(**{**TINY, "device": device}).fit(X, y)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            TransferClassifier(**{**TINY, "device": "cuda:0"}).fit(X, y)
    labels = y.astype(object)
    labels[[2, 5]] = None
    with pytest.raises(ValueError, match=r"2 missing label\(s\).*index \[2, 5\]"):
        TransferClassifier(**TINY).fit(X, labels)
    with pytest.raises(ValueError, match="missing label"):
        TransferClassifier(**TINY).fit(X, [0.0, np.nan] * 6)
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        TransferClassifier(**TINY).fit(X[:0], y[:0])
