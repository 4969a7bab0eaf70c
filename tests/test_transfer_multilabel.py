"""TransferClassifier on multi-label targets (several findings per image)."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.dummy import DummyClassifier
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, train_test_split
from skorch.dataset import Dataset

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.nn._transfer_net import HoldoutSplit, SmoothedBCEWithLogitsLoss

FINDINGS = ("effusion", "atelectasis", "infiltration")

TINY = dict(
    backbone="small_cnn",
    weights=None,
    head_sizes=(8,),
    max_epochs=2,
    batch_size=16,
    random_state=0,
    device="cpu",
)


def _findings(n, size=48, random_state=0):
    return make_chest_xrays(
        n, classes=FINDINGS, multilabel=True, size=size, random_state=random_state
    )


def _banded(n=48, size=32, seed=0):
    """Images whose labels (3 of them, independent) are bright bands."""
    rng = np.random.default_rng(seed)
    Y = rng.integers(0, 2, size=(n, 3))
    X = rng.random((n, size, size), dtype=np.float32) * 0.5
    for k in range(3):
        X[Y[:, k] == 1, 6 * k : 6 * k + 4] += 0.5
    return np.clip(X, 0, 1), Y


def _mean_auc(Y, proba):
    return np.mean([roc_auc_score(Y[:, k], proba[:, k]) for k in range(Y.shape[1])])


@pytest.mark.slow
def test_frozen_imagenet_beats_the_prior_on_findings():
    X, Y = _findings(240)
    assert Y.shape == (240, 3) and (Y.sum(axis=1) >= 2).any()
    X_train, X_test, Y_train, Y_test = train_test_split(
        X, Y, test_size=0.4, random_state=0
    )
    clf = TransferClassifier(
        backbone="efficientnet_lite0",
        weights="imagenet",
        head_sizes=(32,),
        lr=3e-3,
        max_epochs=30,
        pos_weight="balanced",
        random_state=0,
        device="cpu",
    ).fit(X_train, Y_train)
    prior = DummyClassifier(strategy="prior").fit(
        X_train.reshape(len(X_train), -1), Y_train
    )
    prior_proba = np.column_stack(
        [p[:, 1] for p in prior.predict_proba(X_test.reshape(len(X_test), -1))]
    )
    proba = clf.predict_proba(X_test)
    assert proba.shape == Y_test.shape
    assert _mean_auc(Y_test, proba) > _mean_auc(Y_test, prior_proba) + 0.1
    # more than one finding is learnt (a faint basal effusion is the hardest at
    # 48 pixels)
    aucs = [roc_auc_score(Y_test[:, k], proba[:, k]) for k in range(3)]
    assert sum(auc > 0.6 for auc in aucs) >= 2, dict(zip(FINDINGS, aucs))


def test_multilabel_outputs_follow_mlpclassifier():
    X, Y = _banded()
    clf = TransferClassifier(**{**TINY, "max_epochs": 4, "lr": 1e-2}).fit(X, Y)
    assert clf.multilabel_ and clf.used_feature_cache_
    assert clf.classes_.tolist() == [0, 1, 2]
    proba = clf.predict_proba(X)
    assert proba.shape == (48, 3) and proba.dtype == np.float64
    assert ((proba > 0) & (proba < 1)).all()
    assert not np.allclose(proba.sum(axis=1), 1)  # independent labels, not a softmax
    pred = clf.predict(X)
    assert pred.shape == (48, 3) and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, proba > 0.5)
    # score is the subset accuracy (every label of an image right)
    assert clf.score(X, Y) == pytest.approx(accuracy_score(Y, pred))
    # the module's logits through a sigmoid are the probabilities
    with torch.no_grad():
        logits = clf.module_(torch.as_tensor(X[:5, None]))
    np.testing.assert_allclose(torch.sigmoid(logits).numpy(), proba[:5], atol=1e-5)
    assert isinstance(clf.net_.criterion_, torch.nn.BCEWithLogitsLoss)
    # multi-label epochs record the per-finding accuracy too
    assert {"valid_loss", "valid_acc", "train_acc"} <= set(clf.history_[-1])


def test_label_representations_give_the_same_model():
    X, Y = _banded()
    expected = TransferClassifier(**TINY).fit(X, Y).predict_proba(X)
    for same in [Y.tolist(), sp.csr_matrix(Y), Y.astype(bool), Y.astype(np.float32)]:
        got = TransferClassifier(**TINY).fit(X, same).predict_proba(X)
        np.testing.assert_array_equal(got, expected)


def test_fine_tuning_path_and_label_smoothing():
    X, Y = _banded()
    clf = TransferClassifier(
        **{**TINY, "trainable": "all", "augment": True, "label_smoothing": 0.2}
    ).fit(X, Y)
    assert not clf.used_feature_cache_ and clf.predict(X).shape == (48, 3)
    criterion = clf.net_.criterion_
    assert isinstance(criterion, SmoothedBCEWithLogitsLoss)
    assert criterion.label_smoothing == 0.2
    # smoothing pulls the targets towards 1/2: a perfect 0/1 logit loses more
    logits = torch.tensor([[8.0, -8.0]])
    target = torch.tensor([[1.0, 0.0]])
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert criterion(logits, target) > plain


def test_validation_split_is_random_for_multilabel():
    X, Y = _banded(n=40)
    clf = TransferClassifier(**{**TINY, "validation_fraction": 0.25}).fit(X, Y)
    assert isinstance(clf.net_.train_split, HoldoutSplit)
    train, valid = clf.net_.train_split(Dataset(X[:, None], Y), Y)
    assert len(valid) == 10 and len(train) == 30
    assert not set(train.indices) & set(valid.indices)
    assert len(clf.history_[-1, "batches"]) == 2 + 1  # 30 training rows, 10 valid


def test_pos_weight():
    X, Y = _banded()
    Y = Y.copy()
    Y[:, 2] = 0
    Y[:4, 2] = 1  # a rare label: 4 positives of 48
    Y[:, 1] = 1
    Y[0, 1] = 0  # an almost always present one: 1 negative
    clf = TransferClassifier(**{**TINY, "pos_weight": "balanced"}).fit(X, Y)
    weights = clf.net_.criterion_.pos_weight.numpy()
    n_pos = Y.sum(axis=0)
    np.testing.assert_allclose(weights, (48 - n_pos) / n_pos, rtol=1e-6)
    assert weights[2] > 1 > weights[1]
    Y[:, 0] = 0  # no positive at all: the weight is clipped
    clf = TransferClassifier(**{**TINY, "pos_weight": "balanced"}).fit(X, Y)
    assert clf.net_.criterion_.pos_weight.numpy()[0] == 100
    given = TransferClassifier(**{**TINY, "pos_weight": [1.0, 2.0, 3.0]}).fit(X, Y)
    np.testing.assert_array_equal(given.net_.criterion_.pos_weight.numpy(), [1, 2, 3])
    assert TransferClassifier(**TINY).fit(X, Y).net_.criterion_.pos_weight is None


def test_multilabel_errors():
    X, Y = _banded()
    with pytest.raises(ValueError, match=r"pos_weight must hold one positive weight"):
        TransferClassifier(**{**TINY, "pos_weight": [1.0, 2.0]}).fit(X, Y)
    with pytest.raises(ValueError, match=r"pos_weight must hold one positive weight"):
        TransferClassifier(**{**TINY, "pos_weight": [1.0, -2.0, 1.0]}).fit(X, Y)
    with pytest.raises(ValueError, match="pos_weight applies to a multi-label"):
        TransferClassifier(**{**TINY, "pos_weight": "balanced"}).fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="use pos_weight"):
        TransferClassifier(**{**TINY, "class_weight": "balanced"}).fit(X, Y)
    with pytest.raises(ValueError, match=r"holds the values \[2.0\]"):
        TransferClassifier(**TINY).fit(X, Y * 2)
    with pytest.raises(ValueError, match="2-D array of strings.*MultiLabelBinarizer"):
        TransferClassifier(**TINY).fit(X, np.where(Y == 1, "yes", "no"))
    with pytest.raises(ValueError, match="no known label"):
        TransferClassifier(**TINY).fit(X, np.full(Y.shape, np.nan))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        TransferClassifier(**TINY).fit(X, Y[:-1])


def test_grid_search_roc_auc_and_pickle():
    X, Y = _banded(n=36)
    search = GridSearchCV(
        TransferClassifier(**TINY),
        {"head_sizes": [(4,), (8,)], "pos_weight": [None, "balanced"]},
        scoring="roc_auc",
        cv=2,
    ).fit(X, Y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    best = search.best_estimator_
    assert best.multilabel_ and search.predict(X).shape == (36, 3)
    loaded = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(loaded.predict_proba(X), search.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), search.predict(X))


def test_unknown_labels_are_masked_out_of_the_loss():
    from skcxr.nn._transfer_net import SmoothedBCEWithLogitsLoss

    logits = torch.randn(4, 3, requires_grad=True)
    target = torch.tensor([[1.0, np.nan, 0.0]] * 4)
    loss = SmoothedBCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 3.0, 4.0]))
    loss(logits, target).backward()
    assert torch.all(logits.grad[:, 1] == 0)  # the unknown finding gets no gradient
    known = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, [0, 2]], target[:, [0, 2]], pos_weight=torch.tensor([2.0, 4.0])
    )
    assert float(loss(logits, target)) == pytest.approx(float(known), rel=1e-6)


def test_pooled_data_sets_labelling_different_findings_train_together():
    """Two halves each label two of the three findings (NaN for the third):
    every finding is learnt from the half that labels it."""
    X, Y = _banded(n=96, seed=1)
    Y_pooled = Y.astype(float)
    Y_pooled[:48, 2] = np.nan  # the first data set does not label finding 2
    Y_pooled[48:, 0] = np.nan  # the second does not label finding 0
    params = {
        "max_epochs": 10,
        "lr": 1e-2,
        "trainable": "all",
        "pos_weight": "balanced",
    }
    model = TransferClassifier(**{**TINY, **params}).fit(X, Y_pooled)
    X_test, Y_test = _banded(n=64, seed=2)
    proba = model.predict_proba(X_test)
    aucs = [roc_auc_score(Y_test[:, k], proba[:, k]) for k in range(3)]
    assert min(aucs) > 0.8, aucs
    assert np.isfinite(model.history_[:, "valid_auc"]).all()
