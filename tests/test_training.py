"""Training you can watch: per-epoch scores on the training batches, user
callbacks, progress and logging, mixed precision and Hyperband."""

import os

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from torch import nn

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.nn._transfer_net import make_net

TINY = dict(backbone="small_cnn", weights=None, batch_size=16, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_chest_xrays(48, size=32, random_state=0)


def _linear_net(n_features, n_classes, **kwargs):
    options = dict(
        n_classes=n_classes,
        optimizer="sgd",
        lr=0.0,
        lr_schedule=None,
        lr_gamma=0.9,
        max_epochs=2,
        batch_size=8,
        validation_fraction=0.25,
        early_stopping=None,
        augment=None,
        seed=0,
        device="cpu",
        verbose=0,
        generator=torch.Generator().manual_seed(0),
    )
    options.update(kwargs)
    return make_net(nn.Linear(n_features, n_classes), **options)


def test_training_scores_reuse_the_epoch_predictions():
    """train_acc / train_auc come from the training batches' own predictions:
    one forward pass per batch, and with frozen weights (lr=0, no dropout) they
    equal the scores of a separate prediction."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=64) > 0).astype(np.int64)
    net = _linear_net(5, 2)
    calls = []
    net.initialize()
    net.module_.register_forward_hook(lambda *a: calls.append(1))
    net.partial_fit(X, y, epochs=1)
    row = net.history[-1]
    assert len(calls) == row["train_batch_count"] + row["valid_batch_count"]
    train = net.get_split_datasets(X, y)[0].indices
    proba = net.predict_proba(X[train])
    from sklearn.metrics import roc_auc_score

    assert row["train_acc"] == pytest.approx(np.mean(proba.argmax(1) == y[train]))
    assert row["train_auc"] == pytest.approx(roc_auc_score(y[train], proba[:, 1]))


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_history_records_training_and_validation_scores(kind):
    X, y = make_chest_xrays(
        48, size=32, multilabel=kind == "multilabel", random_state=0
    )
    if kind == "multilabel":  # unknown labels are masked finding by finding
        y = y.astype(float)
        y[::4, 0] = np.nan
    clf = TransferClassifier(**TINY, validation_fraction=0.4, max_epochs=2).fit(X, y)
    for key in ("train_acc", "train_auc", "valid_acc", "valid_auc", "valid_f1"):
        scores = np.array(clf.history_[:, key], dtype=float)
        assert scores.shape == (2,), key
        assert np.all((scores >= 0) & (scores <= 1)), (key, scores)


def test_training_scores_without_a_validation_split(data):
    X, y = data
    clf = TransferClassifier(**TINY, validation_fraction=0, max_epochs=1).fit(X, y)
    row = clf.history_[-1]
    assert {"train_acc", "train_auc"} <= set(row)
    assert not any(k.startswith("valid_") for k in row)


def test_training_curve_display_draws_training_beside_validation(data):
    from skcxr.inspection import TrainingCurveDisplay

    X, y = data
    clf = TransferClassifier(**TINY, max_epochs=2).fit(X, y)
    display = TrainingCurveDisplay.from_estimator(clf, metrics=("loss", "acc", "auc"))
    assert set(display.lines_) == {
        "train_loss",
        "valid_loss",
        "train_acc",
        "valid_acc",
        "train_auc",
        "valid_auc",
    }
    assert display.lines_["train_auc"].axes is display.score_ax_
    assert display.lines_["train_loss"].axes is display.ax_
    assert display.lines_["train_auc"].get_linestyle() == "--"
    assert (
        display.lines_["train_auc"].get_color()
        == display.lines_["valid_auc"].get_color()
    )
    with pytest.raises(TypeError, match="sequence"):
        TrainingCurveDisplay(clf.history_, metrics="auc").plot()


class EpochCounter(Callback):
    """Records how many epochs it has seen into the history."""

    def __init__(self, key="user_epochs"):
        self.key = key

    def initialize(self):
        self.seen_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.seen_ += 1
        # runs after skcxr's scores: the epoch's row is complete
        assert "train_auc" in net.history[-1] or "train_loss" in net.history[-1]
        net.history.record(self.key, self.seen_)


def test_a_user_callback_runs_once_per_epoch(data):
    X, y = data
    counter = EpochCounter()
    clf = TransferClassifier(
        **TINY, max_epochs=3, callbacks=[counter, ("named", EpochCounter("again"))]
    ).fit(X, y)
    assert list(clf.history_[:, "user_epochs"]) == [1, 2, 3]
    assert list(clf.history_[:, "again"]) == [1, 2, 3]
    names = [name for name, _ in clf.net_.callbacks_]
    assert names.index("EpochCounter") > names.index("valid_auc")
    assert "named" in names
    # the parameter is untouched: fit trained a copy
    assert not hasattr(counter, "seen_") and clf.callbacks[0] is counter


def test_a_user_callback_runs_in_the_autoencoder():
    from skcxr import ReconstructionAnomalyDetector

    X, _ = make_chest_xrays(12, size=32, random_state=0)
    detector = ReconstructionAnomalyDetector(
        method="autoencoder",
        max_epochs=2,
        latent_dim=2,
        depth=1,
        width=2,
        callbacks=[EpochCounter()],
        random_state=0,
    ).fit(X)
    assert list(detector.history_[:, "user_epochs"]) == [1, 2]


def test_callbacks_clone_pickle_and_save(data, tmp_path):
    import pickle

    from sklearn.base import clone

    from skcxr.utils import load_model, save_model

    X, y = data
    clf = TransferClassifier(**TINY, max_epochs=1, callbacks=[EpochCounter("k")])
    copy = clone(clf)
    assert copy.callbacks[0] is not clf.callbacks[0]
    assert copy.callbacks[0].get_params() == {"key": "k"}
    clf.fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert again.callbacks[0].key == "k"
    np.testing.assert_allclose(again.predict_proba(X[:4]), clf.predict_proba(X[:4]))
    path = tmp_path / "model.skops"
    save_model(clf, path)
    assert clf.callbacks[0].key == "k"  # left out of the file only
    loaded = load_model(path)
    assert loaded.callbacks is None
    np.testing.assert_allclose(loaded.predict_proba(X[:4]), clf.predict_proba(X[:4]))


@pytest.mark.parametrize(
    "callbacks, match",
    [
        ("accuracy", "'callbacks' parameter"),
        (["accuracy"], r"callbacks\[0\] must be a skorch callback"),
        ([("name", 3)], r"callbacks\[0\] must be a skorch callback"),
    ],
)
def test_a_non_callback_is_refused_naming_the_parameter(data, callbacks, match):
    X, y = data
    with pytest.raises((TypeError, ValueError), match=match):
        TransferClassifier(**TINY, max_epochs=1, callbacks=callbacks).fit(X, y)


def test_study_log_dir_gives_every_network_its_run(tmp_path):
    from skcxr.nn import TensorBoardLogger
    from skcxr.study._settings import StudySettings
    from skcxr.study._tasks import classifier_configs

    settings = StudySettings.quick()
    assert all(m.callbacks is None for m in classifier_configs(settings, 0).values())
    settings = settings.updated({"log_dir": str(tmp_path)}, source="test")
    configs = classifier_configs(settings, 0, task="binary")
    folders = []
    for model in configs.values():
        (logger,) = model.callbacks
        assert isinstance(logger, TensorBoardLogger)
        folders.append(os.path.relpath(logger.log_dir, tmp_path))
    assert folders == [
        "binary/frozen_efficientnet_lite0",
        "binary/fine-tuned_efficientnet_lite0",
        "binary/small_CNN_from_scratch",
    ]


def test_tensorboard_logger_writes_a_run_and_names_the_missing_extra(
    data, tmp_path, monkeypatch
):
    import pickle
    import sys

    from sklearn.base import clone

    from skcxr.nn import TensorBoardLogger

    X, y = data
    logger = TensorBoardLogger(tmp_path / "run")
    clf = TransferClassifier(**TINY, max_epochs=2, callbacks=[logger])
    clone(pickle.loads(pickle.dumps(clf))).fit(X, y)
    files = os.listdir(tmp_path / "run")
    assert any(f.startswith("events.out.tfevents") for f in files)
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    events = EventAccumulator(str(tmp_path / "run")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "Loss/train_loss",
        "Loss/valid_loss",
        "ROC AUC/train_auc",
        "ROC AUC/valid_auc",
        "Accuracy/train_acc",
    } <= tags
    assert len(events.Scalars("ROC AUC/train_auc")) == 2
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"skcxr\[tensorboard\]"):
        clf.fit(X, y)


def test_map_in_chunks_shows_progress_on_request(capsys):
    from sklearn.dummy import DummyClassifier

    from skcxr.parallel import map_in_chunks

    X, y = np.zeros((10, 2)), np.array([0, 1] * 5)
    model = DummyClassifier().fit(X, y)
    map_in_chunks(model, X, chunk_size=4)
    assert capsys.readouterr().err == ""
    proba = map_in_chunks(model, X, chunk_size=4, progress=True)
    assert proba.shape == (10, 2)
    assert "10/10" in capsys.readouterr().err


@pytest.mark.slow
def test_bf16_training_reaches_fp32_accuracy():
    """Mixed precision changes the arithmetic, not what the network learns:
    bf16 autocast lands within noise of fp32, on the training batches and on
    held-out synthetic images."""
    from sklearn.model_selection import train_test_split

    X, y = make_chest_xrays(
        160, classes=("normal", "bacteria"), size=32, difficulty=0.0, random_state=0
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    train, test = {}, {}
    for precision in ("32", "bf16-mixed"):
        clf = TransferClassifier(
            **TINY,
            trainable="all",
            lr=2e-3,
            lr_schedule="cosine",
            max_epochs=8,
            device="cpu",
            train_precision=precision,
        ).fit(X_train, y_train)
        assert np.isfinite(clf.history_[:, "train_loss"]).all()
        train[precision] = np.mean(clf.history_[-2:, "train_acc"])
        test[precision] = clf.score(X_test, y_test)
    assert train["32"] > 0.8, train  # fp32 learned something to compare with
    assert train["bf16-mixed"] >= train["32"] - 0.1, train
    assert test["bf16-mixed"] >= test["32"] - 0.1, test


def test_mixed_precision_steps_with_loss_scaling():
    """The float16 path (GradScaler: scaled backward, unscaled gradients for
    the callbacks, one optimizer step) trains; on the CPU here, CUDA in use."""
    from skorch.callbacks import GradientNormClipping

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    net = _linear_net(
        5,
        2,
        lr=0.5,
        max_epochs=5,
        train_precision="16-mixed",
        callbacks=[GradientNormClipping(1.0)],
    ).fit(X, y)
    assert isinstance(net.grad_scaler_, torch.amp.GradScaler)
    losses = net.history[:, "train_loss"]
    assert losses[-1] < losses[0]
    assert net.history[-1, "train_acc"] > 0.8


def test_16_mixed_needs_cuda_and_unknown_precision_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="CUDA GPU.*bf16-mixed"):
        TransferClassifier(
            **TINY, max_epochs=1, device="cpu", train_precision="16-mixed"
        ).fit(X, y)
    with pytest.raises(ValueError, match="train_precision"):
        TransferClassifier(**TINY, max_epochs=1, train_precision="bf16").fit(X, y)


def test_train_precision_survives_clone_pickle_and_save(data, tmp_path):
    import pickle

    from skcxr.utils import load_model, save_model

    X, y = data
    clf = TransferClassifier(
        **TINY, max_epochs=1, device="cpu", train_precision="bf16-mixed"
    ).fit(X, y)
    assert clf.net_.train_precision == "bf16-mixed"
    again = pickle.loads(pickle.dumps(clf))
    assert again.net_.train_precision == "bf16-mixed"
    save_model(clf, tmp_path / "m.skops")
    loaded = load_model(tmp_path / "m.skops")
    assert loaded.train_precision == "bf16-mixed"
    np.testing.assert_allclose(loaded.predict_proba(X[:3]), clf.predict_proba(X[:3]))


def test_hyperband_results_and_errors():
    from scipy.stats import randint
    from sklearn.datasets import make_classification
    from sklearn.tree import DecisionTreeClassifier

    from skcxr.model_selection import HyperbandSearchCV

    X, y = make_classification(90, random_state=0)
    search = HyperbandSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"min_samples_leaf": randint(1, 20)},
        resource="max_depth",
        max_resources=4,
        factor=2,
        cv=3,
        random_state=0,
    ).fit(X, y)
    n_rows = sum(len(b.cv_results_["params"]) for b in search.brackets_)
    assert len(search.cv_results_["params"]) == n_rows
    assert sorted(set(search.cv_results_["bracket"])) == [0, 1, 2]
    best = search.cv_results_["params"][search.best_index_]
    assert best == search.best_params_ and best["max_depth"] == 4
    assert search.cv_results_["mean_test_score"][search.best_index_] == pytest.approx(
        search.best_score_
    )
    assert search.predict(X[:3]).shape == (3,)
    with pytest.raises(ValueError, match="not a parameter"):
        HyperbandSearchCV(
            DecisionTreeClassifier(), {}, resource="max_epochs", max_resources=4
        ).fit(X, y)


@pytest.mark.slow
def test_hyperband_over_epochs_of_a_transfer_classifier():
    from skcxr.model_selection import HyperbandSearchCV

    X, y = make_chest_xrays(40, size=32, random_state=0)
    search = HyperbandSearchCV(
        TransferClassifier(**TINY, validation_fraction=0),
        {"lr": [1e-3, 3e-3, 1e-2]},
        max_resources=2,
        factor=2,
        cv=2,
        random_state=0,
    ).fit(X, y)
    assert [b.n_resources_ for b in search.brackets_] == [[1, 2], [2]]
    assert search.best_params_["max_epochs"] == 2
    assert len(search.best_estimator_.history_) == 2


def _run_fit(command, out, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    script = str(Path(__file__).with_name("_accelerate_fit.py"))
    subprocess.run(
        [sys.executable, *command, script, str(out)],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    import json

    with open(out) as f:
        return json.load(f)


@pytest.mark.slow
def test_two_processes_with_accelerate_learn_what_one_process_does(tmp_path):
    """Data-parallel training over two CPU processes (gloo) ends with the same
    network in both processes and learns what one process learns."""
    pytest.importorskip("accelerate")
    one = _run_fit([], tmp_path / "one.json", tmp_path)
    two = _run_fit(
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
        tmp_path / "two.json",
        tmp_path,
    )
    assert one["processes"] == 1 and two["processes"] == 2
    assert two["digests"][0] == pytest.approx(two["digests"][1], rel=1e-6)
    # each process trains on its half of every epoch's batches
    assert two["train_batches"] == one["train_batches"] // 2
    assert two["finite"] and two["train_loss"][-1] < two["train_loss"][0]
    assert two["accuracy"] >= one["accuracy"] - 0.15, (one, two)
