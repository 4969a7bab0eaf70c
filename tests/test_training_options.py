"""Training options of TransferClassifier: weight decay, LR schedules, checkpoints,
validation scores in the history, the parameter table, augmentation policies and
successive halving over epochs."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import HalvingGridSearchCV

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.nn._transfer_net import ValidationScore, parameter_table

TINY = dict(backbone="small_cnn", weights=None, batch_size=16, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = make_chest_xrays(48, size=32, random_state=0)
    return X, y


def _lrs(clf):
    return list(clf.history_[:, "event_lr"])


def test_new_params_are_cloned_and_listed():
    expected = dict(
        weight_decay=1e-4,
        lr_schedule="step",
        lr_step_size=3,
        lr_patience=4,
        min_lr=1e-6,
        checkpoint="runs/cp",
    )
    params = clone(TransferClassifier(**expected)).get_params()
    assert {k: params[k] for k in expected} == expected
    defaults = TransferClassifier().get_params()
    assert defaults["weight_decay"] == 0.0 and defaults["checkpoint"] is None


@pytest.mark.parametrize(
    "optimizer, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]
)
def test_weight_decay_reaches_the_optimizer(data, optimizer, cls):
    X, y = data
    clf = TransferClassifier(
        **TINY, optimizer=optimizer, weight_decay=0.05, max_epochs=1
    ).fit(X, y)
    opt = clf.net_.optimizer_
    assert type(opt) is cls
    assert all(group["weight_decay"] == 0.05 for group in opt.param_groups)


def test_weight_decay_shrinks_the_weights(data):
    X, y = data

    def head_norm(decay):
        clf = TransferClassifier(
            **TINY, optimizer="sgd", lr=0.05, weight_decay=decay, max_epochs=3
        ).fit(X, y)
        return sum(p.norm() ** 2 for p in clf.module_.head.parameters()).item()

    assert head_norm(1.0) < 0.9 * head_norm(0.0)


def test_step_schedule_lr_per_epoch(data):
    X, y = data
    clf = TransferClassifier(
        **TINY,
        lr=1e-3,
        lr_schedule="step",
        lr_step_size=2,
        lr_gamma=0.5,
        max_epochs=5,
    ).fit(X, y)
    np.testing.assert_allclose(_lrs(clf), 1e-3 * 0.5 ** (np.arange(5) // 2))


def test_plateau_honours_min_lr_and_patience(data):
    X, y = data
    # sgd at lr 1e-6 leaves the validation loss flat: every epoch after the
    # first is "no improvement"
    common = dict(**TINY, optimizer="sgd", lr=1e-6, lr_schedule="plateau", lr_gamma=0.1)
    floor = TransferClassifier(**common, lr_patience=0, min_lr=3e-7, max_epochs=4).fit(
        X, y
    )
    np.testing.assert_allclose(_lrs(floor), [1e-6, 1e-6, 3e-7, 3e-7])
    free = TransferClassifier(**common, lr_patience=0, max_epochs=4).fit(X, y)
    assert _lrs(free)[-1] < 3e-7 / 2
    patient = TransferClassifier(**common, lr_patience=5, max_epochs=4).fit(X, y)
    np.testing.assert_allclose(_lrs(patient), 1e-6)


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_min_lr_must_be_below_lr(data, schedule):
    X, y = data
    clf = TransferClassifier(**TINY, lr=1e-3, min_lr=1e-3, lr_schedule=schedule)
    with pytest.raises(ValueError, match="min_lr"):
        clf.fit(X, y)


def test_cosine_schedule_ends_at_min_lr(data):
    X, y = data
    clf = TransferClassifier(
        **TINY, lr=1e-3, min_lr=2e-4, lr_schedule="cosine", max_epochs=3
    ).fit(X, y)
    lrs = _lrs(clf)
    assert lrs[0] == pytest.approx(1e-3) and min(lrs) > 2e-4
    np.testing.assert_allclose(
        clf.net_.optimizer_.param_groups[0]["lr"], 2e-4, rtol=1e-6
    )


def _files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, files in os.walk(root)
        for f in files
    )


@pytest.mark.slow
def test_checkpoint_writes_only_its_folder_and_restores_the_best(
    data, tmp_path, monkeypatch
):
    X, y = data
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    folder = tmp_path / "runs" / "cp"
    clf = TransferClassifier(
        **TINY, trainable="all", checkpoint=str(folder), max_epochs=3
    ).fit(X, y)
    names = {"params.pt", "optimizer.pt", "criterion.pt", "history.json"}
    assert set(_files(tmp_path)) == {os.path.join("runs", "cp", n) for n in names}
    saved = json.loads((folder / "history.json").read_text())
    history = clf.history_
    losses = history[:, "valid_loss"]
    best = int(np.argmin(losses))
    assert len(saved) == best + 1  # the history as of the best epoch
    assert history[:, "event_cp"] == list(history[:, "valid_loss_best"])
    # the fitted estimator holds the best epoch's weights, not the last ones
    state = torch.load(folder / "params.pt", weights_only=True)
    for name, value in clf.module_.state_dict().items():
        torch.testing.assert_close(value.cpu(), state[name])


@pytest.mark.slow
def test_checkpoint_resumes_from_the_saved_epoch(data, tmp_path):
    X, y = data
    folder = tmp_path / "cp"
    params = dict(
        **TINY,
        trainable="all",
        checkpoint=folder,
        lr_schedule="step",
        lr_step_size=1,
        lr_gamma=0.5,
    )
    first = TransferClassifier(**params, max_epochs=2).fit(X, y)
    n_saved = len(json.loads((folder / "history.json").read_text()))
    assert 1 <= n_saved <= 2
    resumed = TransferClassifier(**params, max_epochs=4).fit(X, y)
    history = resumed.history_
    assert history[:, "epoch"] == [1, 2, 3, 4]
    # the saved epochs are loaded, not trained again
    assert history[:n_saved, "train_loss"] == first.history_[:n_saved, "train_loss"]
    # the step schedule continues from the saved epoch
    np.testing.assert_allclose(_lrs(resumed), 1e-3 * 0.5 ** np.arange(4))
    # "best" is judged against the loaded epochs too
    losses = history[:, "valid_loss"]
    for i in range(n_saved, 4):
        assert history[i, "valid_loss_best"] == (losses[i] < min(losses[:i]))
    # nothing left to train: the checkpoint's best weights come back as they are
    again = TransferClassifier(**params, max_epochs=n_saved).fit(X, y)
    assert len(again.history_) == n_saved
    np.testing.assert_allclose(
        again.predict_proba(X[:4]), first.predict_proba(X[:4]), rtol=1e-5
    )


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_history_has_validation_auc_and_f1(kind):
    if kind == "multilabel":
        X, y = make_chest_xrays(48, size=32, multilabel=True, random_state=0)
    else:
        classes = ["normal", "virus"] if kind == "binary" else None
        X, y = make_chest_xrays(48, size=32, classes=classes, random_state=0)
    clf = TransferClassifier(**TINY, validation_fraction=0.4, max_epochs=3).fit(X, y)
    for name in ("valid_auc", "valid_f1"):
        scores = np.array(clf.history_[:, name], dtype=float)
        assert scores.shape == (3,)
        assert np.all((scores >= 0) & (scores <= 1)), (name, scores)


def test_no_validation_split_no_validation_scores(data):
    X, y = data
    clf = TransferClassifier(**TINY, validation_fraction=0, max_epochs=2).fit(X, y)
    row = clf.history_[-1]
    assert "train_loss" in row and not any(k.startswith("valid_") for k in row)


class _StubNet:
    def __init__(self, proba):
        self.proba = proba

    def predict_proba(self, X):
        return self.proba


def test_validation_score_matches_sklearn():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 6)
    proba = rng.dirichlet(np.ones(3), size=len(y))
    net = _StubNet(proba)
    auc = ValidationScore("auc", 3, False)(net, None, y)
    assert auc == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    f1 = ValidationScore("f1", 3, False)(net, None, y)
    assert f1 == pytest.approx(f1_score(y, proba.argmax(1), average="macro"))
    y2 = y % 2
    p2 = np.column_stack([1 - proba[:, 0], proba[:, 0]])
    assert ValidationScore("auc", 2, False)(_StubNet(p2), None, y2) == pytest.approx(
        roc_auc_score(y2, p2[:, 1])
    )
    Y = np.column_stack([y2, 1 - y2, np.zeros_like(y2)])  # last label: no positive
    auc = ValidationScore("auc", 3, True)(_StubNet(proba), None, Y)
    assert auc == pytest.approx(roc_auc_score(Y[:, :2], proba[:, :2]))
    # one class only in the validation split: undefined, not an error
    assert np.isnan(ValidationScore("auc", 2, False)(_StubNet(p2), None, 0 * y2))


@pytest.mark.parametrize("trainable", ["head", 1, "all"])
def test_parameter_table_counts_follow_trainable(data, trainable):
    X, y = data
    clf = TransferClassifier(**TINY, trainable=trainable, max_epochs=1).fit(X, y)
    table = pd.DataFrame(clf.parameter_table_)
    assert list(table.columns) == ["block", "trainable", "non_trainable"]
    params = list(clf.module_.parameters())
    assert table[["trainable", "non_trainable"]].to_numpy().sum() == sum(
        p.numel() for p in params
    )
    assert table["trainable"].sum() == sum(p.numel() for p in params if p.requires_grad)
    blocks = [f"backbone.{b}" for b in clf.module_.backbone.blocks]
    assert table["block"].tolist() == [*blocks, "head"]
    rows = table.set_index("block")
    assert rows.loc["head", "non_trainable"] == 0 and rows.loc["head", "trainable"] > 0
    n = {"head": 0, 1: 1, "all": len(blocks)}[trainable]
    trained = rows.loc[blocks, "trainable"] > 0
    assert trained.tolist() == [False] * (len(blocks) - n) + [True] * n
    frozen = rows.loc[blocks, "non_trainable"] > 0
    assert frozen.tolist() == [True] * (len(blocks) - n) + [False] * n


def test_parameter_table_unblocked_parameters_go_to_their_top_level_child():
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.Sequential(torch.nn.Linear(3, 2))
    )
    net[1].requires_grad_(False)
    rows = parameter_table(net, blocks=["1.0"])
    assert rows == [
        {"block": "0", "trainable": 9, "non_trainable": 0},
        {"block": "1.0", "trainable": 0, "non_trainable": 8},
    ]


def test_vflip_and_one_of_augment_options_are_used(data):
    X, y = data
    clf = TransferClassifier(
        **TINY,
        augment={"vflip": True, "policy": "one_of"},
        max_epochs=1,
    ).fit(X, y)
    assert clf.net_.iterator_train__transform.options == {
        "vflip": True,
        "policy": "one_of",
    }
    assert not clf.used_feature_cache_
    with pytest.raises(ValueError, match="augment.*policy"):
        TransferClassifier(**TINY, augment={"policy": "some"}).fit(X, y)


@pytest.mark.slow
def test_successive_halving_over_epochs():
    """The documented Hyperband-style search: epochs are the resource."""
    X, y = make_chest_xrays(40, size=32, random_state=0)
    search = HalvingGridSearchCV(
        TransferClassifier(**TINY, validation_fraction=0),
        {"lr": [1e-3, 1e-2]},
        resource="max_epochs",
        min_resources=1,
        max_resources=2,
        factor=2,
        cv=2,
        random_state=0,
    ).fit(X, y)
    assert search.n_resources_ == [1, 2]
    assert search.n_candidates_ == [2, 1]
    assert search.best_estimator_.max_epochs == 2
    assert len(search.best_estimator_.history_) == 2
    assert search.best_params_["max_epochs"] == 2


@pytest.mark.parametrize("weight", [np.nan, np.inf, -1.0, 0.0, "high", True])
def test_class_weights_must_be_finite_positive_numbers(data, weight):
    X, y = data
    weights = {"normal": weight, "bacteria": 1.0, "virus": 1.0}
    with pytest.raises(ValueError, match="class_weight must map classes to finite"):
        TransferClassifier(**TINY, class_weight=weights, max_epochs=1).fit(X, y)


@pytest.mark.parametrize("validation_fraction", [0.2, 0.0])
def test_a_diverging_fit_stops_with_the_epoch_and_the_cause(data, validation_fraction):
    X, y = data
    clf = TransferClassifier(
        **TINY, lr=1e30, max_epochs=3, validation_fraction=validation_fraction
    )
    with pytest.raises(
        ValueError, match=r"Training diverged: .* at epoch \d+.*lr=1e\+30"
    ):
        clf.fit(X, y)


def test_a_loss_that_runs_away_warns():
    from sklearn.exceptions import ConvergenceWarning
    from skorch import NeuralNetRegressor

    from skcxr.nn._callbacks import DivergenceGuard

    # plain gradient descent on a line with a step twice too long: the loss
    # grows fourfold per epoch and stays finite
    X, y = np.ones((8, 1), np.float32), np.full((8, 1), 10.0, np.float32)
    net = NeuralNetRegressor(
        torch.nn.Linear(1, 1, bias=False),
        optimizer=torch.optim.SGD,
        lr=1.5,
        max_epochs=5,
        train_split=None,
        callbacks=[DivergenceGuard()],
        verbose=0,
    )
    with pytest.warns(ConvergenceWarning, match="training diverged.*lr=1.5"):
        net.fit(X, y)
    assert np.isfinite(net.history[-1, "train_loss"])
