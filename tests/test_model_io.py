"""Model files load without running code unless the user trusts them."""

import functools
import os
import pickle

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skcxr.utils._model_io import load_model, save_model


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_payload_is_not_run_without_trust(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match="run code while they load"):
        load_model(evil)
    assert not marker.exists()


def test_trust_reads_a_pickle_made_here(tmp_path):
    import joblib

    model = DummyClassifier().fit([[0], [1]], [0, 1])
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = load_model(tmp_path / "model.joblib", trust=True)
    assert loaded.predict([[1]]).tolist() == model.predict([[1]]).tolist()


def test_a_safe_file_naming_an_untrusted_function_is_refused(tmp_path):
    import skops.io

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.skops"
    # crafted with skops itself: save_model refuses to write such a file
    evil = FunctionTransformer(func=os.system, kw_args={"command": f"touch {marker}"})
    skops.io.dump(evil, str(path))
    with pytest.raises(ValueError, match="types that skcxr does not trust") as info:
        load_model(path)
    assert "system" in str(info.value) and not marker.exists()


def test_safe_round_trip_of_a_sklearn_pipeline(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X, y = rng.random((30, 4)), np.array(["a", "b", "c"] * 10)
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(3)).fit(X, y)
    save_model(model, tmp_path / "m.skops")
    loaded = load_model(tmp_path / "m.skops")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda d: d, IsADirectoryError, "is a folder, not a model file"),
        (lambda d: d / "none.skops", FileNotFoundError, "model file not found"),
    ],
)
def test_bad_paths_are_named(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        load_model(make(tmp_path))


def test_a_corrupt_safe_file_gets_a_readable_error(tmp_path):
    import zipfile

    path = tmp_path / "broken.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "{not json")
    with pytest.raises(ValueError, match="not a readable model file"):
        load_model(path)


# --------------------------------------------------------------------------
# torch-backed estimators: networks stored as arrays, rebuilt when loaded

torch = pytest.importorskip("torch")


def _images(n=24, size=32, seed=0):
    return np.random.default_rng(seed).random((n, size, size), dtype=np.float32)


def _transfer(**params):
    from skcxr import TransferClassifier

    params = {
        "backbone": "small_cnn",
        "weights": None,
        "head_sizes": (8,),
        "max_epochs": 2,
        "batch_size": 8,
        "device": "cpu",
        "random_state": 0,
        **params,
    }
    return TransferClassifier(**params)


@functools.lru_cache
def _fitted(kind):
    """A fitted model of ``kind`` and its images (shared: do not change them)."""
    from skcxr import CNNEmbedder, ReconstructionAnomalyDetector

    X = _images()
    three = np.array(["normal", "bacteria", "virus"] * 8)
    if kind == "binary frozen":
        return _transfer().fit(X, three == "normal"), X
    if kind == "multi-label":
        Y = np.random.default_rng(1).integers(0, 2, size=(len(X), 3))
        return _transfer(pos_weight="balanced").fit(X, Y), X
    if kind == "fine-tuned":
        clf = _transfer(trainable="all", class_weight="balanced", label_smoothing=0.1)
        return clf.fit(X, three), X
    if kind == "embedder":
        return CNNEmbedder(backbone="small_cnn", weights=None, device="cpu").fit(X), X
    if kind == "padim":
        detector = ReconstructionAnomalyDetector(
            backbone="small_cnn", weights=None, n_features=20, device="cpu"
        )
        return detector.fit(X), X
    if kind == "patchcore":
        detector = ReconstructionAnomalyDetector(
            method="patchcore", backbone="small_cnn", weights=None, device="cpu"
        )
        return detector.fit(X), X
    detector = ReconstructionAnomalyDetector(
        method="autoencoder",
        latent_dim=4,
        depth=2,
        width=4,
        max_epochs=2,
        device="cpu",
        random_state=0,
    )
    if kind == "autoencoder, backbone encoder":
        detector.set_params(encoder="small_cnn", weights=None)
    return detector.fit(X), X


KINDS = [
    "binary frozen",
    "multi-label",
    "fine-tuned",
    "embedder",
    "padim",
    "patchcore",
    "autoencoder",
    "autoencoder, backbone encoder",
]


def _outputs(model, X):
    names = ("predict", "predict_proba", "transform", "score_samples")
    return {name: getattr(model, name)(X) for name in names if hasattr(model, name)}


def _assert_same_outputs(loaded, model, X):
    expected = _outputs(model, X)
    got = _outputs(loaded, X)
    assert got.keys() == expected.keys() and expected
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.fixture(params=KINDS)
def fitted(request):
    return _fitted(request.param)


def test_a_torch_model_saves_and_loads_safely_with_equal_outputs(fitted, tmp_path):
    import skops.io

    model, X = fitted
    path = tmp_path / "model.skops"
    save_model(model, path)
    # nothing but data: no torch type (or any type outside the list) is built
    assert set(skops.io.get_untrusted_types(file=str(path))) <= {
        f"skcxr.models.{type(model).__module__.rsplit('.', 1)[1]}."
        f"{type(model).__name__}"
    }
    rng_state = torch.random.get_rng_state()
    loaded = load_model(path)  # no trust argument
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert type(loaded) is type(model) and loaded is not model
    _assert_same_outputs(loaded, model, X)


def test_a_torch_model_pickles_through_the_same_plain_data(fitted):
    model, X = fitted
    state = model.__getstate__()

    def torch_objects(value):
        if isinstance(value, dict):
            return [t for v in value.values() for t in torch_objects(v)]
        if isinstance(value, (list, tuple)):
            return [t for v in value for t in torch_objects(v)]
        module = type(value).__module__
        return [value] if module.startswith(("torch", "skorch")) else []

    assert torch_objects(state) == []
    loaded = pickle.loads(pickle.dumps(model))
    _assert_same_outputs(loaded, model, X)


def test_a_loaded_classifier_keeps_its_history_and_trains_further(tmp_path):
    model, X = _fitted("fine-tuned")
    save_model(model, tmp_path / "m.skops")
    loaded = load_model(tmp_path / "m.skops")
    assert loaded.history_[:, "epoch"] == model.history_[:, "epoch"]
    np.testing.assert_array_equal(
        loaded.history_[:, "train_loss"], model.history_[:, "train_loss"]
    )
    assert loaded.net_.module_ is loaded.module_ and not loaded.module_.training
    frozen = [n for n, p in model.module_.named_parameters() if not p.requires_grad]
    assert [
        n for n, p in loaded.module_.named_parameters() if not p.requires_grad
    ] == frozen
    # the optimizer state is not saved: further epochs start a fresh one
    before = loaded.module_.head.out.weight.detach().clone()
    y_enc = np.searchsorted(
        loaded.classes_, np.array(["normal", "bacteria", "virus"] * 8)
    )
    loaded.net_.partial_fit(X[:, None], y_enc)
    assert not torch.equal(before, loaded.module_.head.out.weight)
    assert len(loaded.history_) == len(model.history_) + loaded.max_epochs


def test_an_embedder_keeps_its_folded_batch_norms(tmp_path):
    model, X = _fitted("embedder")
    identities = [
        n for n, m in model.module_.named_modules() if isinstance(m, torch.nn.Identity)
    ]
    assert identities  # batch norms were folded into their convolutions at fit
    save_model(model, tmp_path / "e.skops")
    loaded = load_model(tmp_path / "e.skops")
    assert [
        n for n, m in loaded.module_.named_modules() if isinstance(m, torch.nn.Identity)
    ] == identities
    assert all(not p.requires_grad for p in loaded.module_.parameters())


def test_an_embedder_of_a_fitted_classifier_round_trips(tmp_path):
    from skcxr import CNNEmbedder

    classifier, X = _fitted("fine-tuned")
    embedder = CNNEmbedder(backbone=classifier, device="cpu").fit(X)
    save_model(embedder, tmp_path / "e.skops")
    loaded = load_model(tmp_path / "e.skops")
    np.testing.assert_array_equal(loaded.transform(X), embedder.transform(X))
    _assert_same_outputs(loaded.backbone, classifier, X)


def test_a_user_module_backbone_needs_joblib_and_trust(tmp_path):
    import joblib

    from skcxr import CNNEmbedder

    X = _images(6)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    embedder = CNNEmbedder(backbone=network, device="cpu").fit(X)
    path = tmp_path / "e.skops"
    with pytest.raises(ValueError, match=r"CNNEmbedder\(backbone=\.\.\.\)") as info:
        save_model(make_pipeline(embedder), path)
    assert "joblib" in str(info.value) and "trust=True" in str(info.value)
    assert not path.exists() and os.listdir(tmp_path) == []
    joblib.dump(embedder, tmp_path / "e.joblib")
    loaded = load_model(tmp_path / "e.joblib", trust=True)
    np.testing.assert_array_equal(loaded.transform(X), embedder.transform(X))
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(embedder)).transform(X), embedder.transform(X)
    )


def test_saving_an_untrusted_type_is_refused_at_save_time(tmp_path):
    path = tmp_path / "f.skops"
    with pytest.raises(ValueError, match="types that a safe model file does not"):
        save_model(FunctionTransformer(func=os.path.basename), path)
    assert os.listdir(tmp_path) == []


def test_a_device_missing_here_loads_on_the_cpu(monkeypatch, tmp_path):
    from skorch.exceptions import DeviceWarning

    from skcxr.nn._state import available_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert available_device("cuda") == available_device("cuda:1") == "cpu"
    model, X = _fitted("binary frozen")
    expected = model.predict_proba(X)
    model = pickle.loads(pickle.dumps(model))
    model.net_.device = "cuda"  # as if fitted on a GPU
    save_model(model, tmp_path / "gpu.skops")
    with pytest.warns(DeviceWarning, match="loaded on the CPU"):
        loaded = load_model(tmp_path / "gpu.skops")
    assert str(loaded.net_.device) == "cpu"
    assert next(loaded.module_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def test_a_shared_network_is_stored_once(tmp_path):
    from skcxr import GAWeightedVoter

    model, X = _fitted("fine-tuned")
    y = np.array(["normal", "bacteria", "virus"] * 8)
    single, double = tmp_path / "single.skops", tmp_path / "double.skops"
    save_model(model, single)
    # estimators, estimators_ and named_estimators_ refer to the same models
    voter = GAWeightedVoter(
        estimators=[("a", model)], prefit=True, weights="uniform"
    ).fit(X, y)
    save_model(voter, double)
    import zipfile

    def n_arrays(path):
        with zipfile.ZipFile(path) as archive:
            return sum(name.endswith(".npy") for name in archive.namelist())

    n_weights = len(model.module_.state_dict())
    assert n_arrays(single) >= n_weights  # referred to thrice, stored once:
    assert n_arrays(double) < n_arrays(single) + n_weights
    loaded = load_model(double)
    assert loaded.estimators_[0] is loaded.named_estimators_["a"]
    np.testing.assert_array_equal(loaded.predict_proba(X), voter.predict_proba(X))


@pytest.mark.slow
def test_a_study_pipeline_from_image_files_round_trips(tmp_path):
    from sklearn.frozen import FrozenEstimator
    from sklearn.neighbors import KNeighborsClassifier

    from skcxr import CNNEmbedder, GAWeightedVoter, ImageLoader
    from skcxr.datasets import make_chest_xrays, write_chest_xrays

    X, y = make_chest_xrays(
        30, classes=("normal", "bacteria", "virus"), size=32, random_state=0
    )
    write_chest_xrays(tmp_path / "data", X, y, random_state=0)
    paths = sorted(str(p) for p in (tmp_path / "data").rglob("*.jpeg"))
    assert len(paths) == len(X)
    labels = np.array([os.path.basename(os.path.dirname(p)).lower() for p in paths])
    labels = np.where(labels == "normal", "normal", "pneumonia")
    images = ImageLoader(size=32).transform(paths)
    classifier = _transfer(trainable="all").fit(images, labels)
    embedder = CNNEmbedder(backbone="small_cnn", weights=None, device="cpu").fit(images)
    knn = KNeighborsClassifier(3).fit(embedder.transform(images), labels)
    knn_pipeline = make_pipeline(FrozenEstimator(embedder), FrozenEstimator(knn))
    voter = GAWeightedVoter(
        estimators=[("cnn", classifier), ("knn", knn_pipeline)],
        prefit=True,
        random_state=0,
    ).fit(images, labels)
    model = make_pipeline(ImageLoader(size=32), voter)
    path = tmp_path / "ensemble.skops"
    save_model(model, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(paths), model.predict(paths))
    np.testing.assert_allclose(
        loaded.predict_proba(paths), model.predict_proba(paths), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["binary frozen", "embedder", "padim", "autoencoder"])
def test_a_pickle_of_the_previous_format_still_loads(kind, monkeypatch):
    from sklearn.base import BaseEstimator

    model, X = _fitted(kind)
    with monkeypatch.context() as patch:  # torch objects pickled as they are
        patch.setattr(type(model), "__getstate__", BaseEstimator.__getstate__)
        data = pickle.dumps(model)
    _assert_same_outputs(pickle.loads(data), model, X)


def _model_file(tmp_path):
    path = tmp_path / "model.skops"
    save_model(DummyClassifier().fit(np.zeros((4, 2)), [0, 1, 0, 1]), path)
    return path


def test_a_member_inflating_beyond_its_declared_shape_is_refused_unread(tmp_path):
    import tracemalloc
    import zipfile

    source = _model_file(tmp_path)
    bomb = tmp_path / "bomb.skops"
    with (
        zipfile.ZipFile(source) as zin,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zout,
    ):
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".npy") and not zout.namelist():
                data += b"\0" * (64 * 2**20)  # 64 MiB of zeros past the array
            zout.writestr(info.filename, data)
    assert bomb.stat().st_size < 2**20
    tracemalloc.start()
    with pytest.raises(ValueError, match="declares .* bytes but inflates to"):
        load_model(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20  # nothing was inflated


def test_an_object_array_member_is_refused(tmp_path):
    import zipfile

    source = _model_file(tmp_path)
    crafted = tmp_path / "objects.skops"
    buffer = __import__("io").BytesIO()
    np.save(buffer, np.array([None, 1], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(crafted, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        zout.writestr("extra.npy", buffer.getvalue())
    with pytest.raises(ValueError, match="holds Python objects"):
        load_model(crafted)


@pytest.mark.parametrize(
    "content, what",
    [
        (b"", "an empty file"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "a PNG image"),
        (None, "a damaged or truncated zip archive"),
    ],
)
def test_a_file_that_is_not_a_model_says_what_it_is(tmp_path, content, what):
    path = tmp_path / "given.skops"
    if content is None:  # the first bytes of a real model file
        content = _model_file(tmp_path).read_bytes()[:300]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"is {what}, not a model file"):
        load_model(path)
    with pytest.raises(ValueError, match=f"is {what}, not a model file"):
        load_model(path, trust=True)


def test_pipes_and_devices_are_not_model_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(ValueError, match="not a regular file"):
            load_model(path)


def test_a_saved_model_has_the_usual_file_mode_and_a_missing_folder_is_named(
    tmp_path,
):
    umask = os.umask(0o022)
    try:
        path = _model_file(tmp_path)
    finally:
        os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skops"]
    with pytest.raises(FileNotFoundError, match="the folder .*nowhere does not exist"):
        save_model(DummyClassifier(), tmp_path / "nowhere" / "m.skops")
