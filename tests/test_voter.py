import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, get_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from skcxr import GAWeightedVoter
from skcxr.models._genetic import _batched_confusion, _score_from_confusion


def _models():
    return [
        ("lr", LogisticRegression(max_iter=200)),
        ("nb", GaussianNB()),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ]


COMMON_ESTIMATORS = [
    GAWeightedVoter(
        [("lr", LogisticRegression()), ("nb", GaussianNB())],
        population_size=8,
        n_generations=3,
        random_state=0,
    ),
]
EXPECTED_FAILED_CHECKS = {}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=240, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    return X, np.array(["normal", "bacteria", "virus"])[y]


def _small(**kw):
    params = dict(population_size=16, n_generations=8, random_state=0)
    params.update(kw)
    return GAWeightedVoter(_models(), **params)


def test_weights_on_simplex_and_reproducible(data):
    X, y = data
    a = _small().fit(X, y)
    b = _small().fit(X, y)
    assert a.weights_.shape == (3,)
    assert np.all(a.weights_ >= 0) and a.weights_.sum() == pytest.approx(1)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert set(a.fitness_history_) == {"best", "mean"}
    assert a.fitness_history_["best"].shape == (9,)
    assert a.best_score_ == pytest.approx(a.fitness_history_["best"].max())
    assert list(a.named_estimators_) == ["lr", "nb", "tree"]
    np.testing.assert_allclose(a.predict_proba(X).sum(axis=1), 1)


def test_string_labels_and_predict(data):
    X, y = data
    voter = _small().fit(X, y)
    assert list(voter.classes_) == ["bacteria", "normal", "virus"]
    assert set(voter.predict(X)) <= set(voter.classes_)
    assert voter.score(X, y) > 0.6


def test_uniform_is_one_line_and_ga_not_worse_on_validation(data):
    X, y = data
    uniform = _small(weights="uniform").fit(X, y)
    np.testing.assert_allclose(uniform.weights_, 1 / 3)
    ga = _small().fit(X, y)
    # same split -> same fitted models; the uniform chromosome competes in the GA
    assert ga.best_score_ >= uniform.best_score_
    fixed = _small(weights=[2, 1, 1]).fit(X, y)
    np.testing.assert_allclose(fixed.weights_, [0.5, 0.25, 0.25])


def test_prefit_uses_given_models_and_validation(data):
    X, y = data
    fitted = [(n, clone(e).fit(X[:150], y[:150])) for n, e in _models()]
    voter = GAWeightedVoter(
        fitted, prefit=True, population_size=10, n_generations=5, random_state=0
    ).fit(X[150:], y[150:])
    assert voter.estimators_[0] is fitted[0][1]
    proba = np.tensordot(voter.weights_, [e.predict_proba(X) for _, e in fitted], 1)
    np.testing.assert_allclose(voter.predict_proba(X), proba)
    with pytest.raises(ValueError, match="not fitted"):
        GAWeightedVoter(_models(), prefit=True).fit(X, y)
    with pytest.raises(ValueError, match="X_val"):
        GAWeightedVoter(fitted, prefit=True).fit(X, y, X_val=X, y_val=y)


def test_explicit_validation_set(data):
    X, y = data
    voter = _small().fit(X[:180], y[:180], X_val=X[180:], y_val=y[180:])
    # fitted on all of X[:180]
    ref = clone(_models()[1][1]).fit(X[:180], y[:180])
    np.testing.assert_allclose(
        voter.named_estimators_.nb.predict_proba(X), ref.predict_proba(X)
    )
    with pytest.raises(ValueError, match="together"):
        _small().fit(X, y, X_val=X)


def test_class_order_alignment():
    # models trained on different subsets of the classes / label orders
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = np.repeat(["c", "a", "b"], 30)
    X[:, 0] += np.repeat([0, 3, 6], 30)
    m1 = LogisticRegression().fit(X, y)
    keep = y != "b"
    m2 = GaussianNB().fit(X[keep], y[keep])  # knows only a and c
    voter = GAWeightedVoter([("m1", m1), ("m2", m2)], prefit=True, weights=[0, 1]).fit(
        X, y
    )
    proba = voter.predict_proba(X)
    np.testing.assert_array_equal(voter.classes_, ["a", "b", "c"])
    np.testing.assert_allclose(proba[:, [0, 2]], m2.predict_proba(X))
    np.testing.assert_allclose(proba[:, 1], 0)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "name",
    [
        "f1_macro",
        "accuracy",
        "balanced_accuracy",
        "f1_weighted",
        "f1_micro",
        "recall_macro",
        "precision_macro",
    ],
)
def test_vectorised_fitness_matches_sklearn(name):
    rng = np.random.default_rng(1)
    n_classes, pop = 4, 12
    y_true = rng.integers(0, n_classes - 1, 60)  # class 3 absent from y_true
    y_pred = rng.integers(0, n_classes, (pop, 60))
    y_pred[0] = 0  # one individual predicts a single class
    cm = _batched_confusion(y_true, y_pred, n_classes)
    got = _score_from_confusion(cm, name)
    scorer = get_scorer(name)
    expected = [scorer._score_func(y_true, p, **scorer._kwargs) for p in y_pred]
    np.testing.assert_allclose(got, expected)


def test_ga_fitness_equals_f1_score_per_individual(data):
    X, y = data
    voter = _small().fit(X, y)
    P = voter._collect_probas(X)
    W = np.random.default_rng(0).dirichlet(np.ones(3), size=20)
    got = voter._fitness_function(y, P)(W)
    expected = [
        f1_score(y, voter.classes_[np.tensordot(w, P, 1).argmax(1)], average="macro")
        for w in W
    ]
    np.testing.assert_allclose(got, expected)


def test_non_vectorised_scorer(data):
    X, y = data
    voter = _small(scoring="roc_auc_ovr", population_size=6, n_generations=2).fit(X, y)
    assert 0.5 < voter.best_score_ <= 1
    assert voter.weights_.sum() == pytest.approx(1)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    pop=st.integers(2, 12),
    gens=st.integers(0, 6),
    elite=st.floats(0.01, 0.9),
    mutation=st.floats(0, 1),
    crossover=st.floats(0, 1),
    k=st.integers(1, 4),
)
def test_elitism_never_loses_best_and_simplex(
    seed, pop, gens, elite, mutation, crossover, k
):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(3), size=(4, 40))  # 4 models, 40 samples, 3 classes
    y = rng.integers(0, 3, 40)
    voter = GAWeightedVoter(
        [(f"m{i}", GaussianNB()) for i in range(4)],
        population_size=pop,
        n_generations=gens,
        elite_fraction=elite,
        mutation_rate=mutation,
        crossover_rate=crossover,
        tournament_size=k,
    )
    from sklearn.preprocessing import LabelEncoder

    voter.le_ = LabelEncoder().fit(y)
    voter.classes_ = voter.le_.classes_
    w, best, history = voter._run_ga(P, y, np.random.default_rng(seed))
    assert np.all(np.diff(history["best"]) >= -1e-12)
    assert best == pytest.approx(history["best"].max())
    assert np.all(w >= 0) and w.sum() == pytest.approx(1)
    assert np.all(history["mean"] <= history["best"] + 1e-12)


def test_pickle_and_clone(data):
    X, y = data
    voter = _small().fit(X, y)
    again = pickle.loads(pickle.dumps(voter))
    np.testing.assert_array_equal(again.predict(X), voter.predict(X))
    c = clone(voter)
    assert not hasattr(c, "weights_")
    assert c.get_params()["lr__max_iter"] == 200


def test_grid_search_over_voter_and_nested_params(data):
    X, y = data
    grid = GridSearchCV(
        _small(population_size=6, n_generations=2),
        {"weights": ["ga", "uniform"], "tree__max_depth": [2, 4]},
        cv=2,
    ).fit(X, y)
    assert set(grid.best_params_) == {"weights", "tree__max_depth"}


def test_any_sklearn_classifier(data):
    X, y = data
    voter = GAWeightedVoter(
        [("knn", KNeighborsClassifier(5)), ("nb", GaussianNB())],
        population_size=6,
        n_generations=2,
        random_state=0,
    ).fit(X, y)
    assert voter.n_features_in_ == X.shape[1]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"population_size": 1}, "population_size"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"weights": [1, 2]}, "weights"),
        ({"weights": [-1, 1, 1]}, "weights"),
        ({"scoring": "not_a_scorer"}, "not_a_scorer"),
    ],
)
def test_bad_params(data, params, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        _small(**params).fit(X, y)


def test_estimator_without_predict_proba(data):
    X, y = data
    from sklearn.svm import LinearSVC

    with pytest.raises(ValueError, match="predict_proba"):
        GAWeightedVoter([("svc", LinearSVC())]).fit(X, y)


@pytest.mark.parametrize(
    "labels, fitted_labels",
    [
        (np.array(["a", "b"]), np.array([0, 1])),  # strings vs integers
        (np.array([0, 1]), np.array(["0", "1"])),  # integers vs strings
        (np.array(["normal", "virus"]), np.array(["normal", "bacteria"])),
    ],
)
def test_prefit_classes_not_in_y_are_refused(labels, fitted_labels):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    codes = np.arange(40) % 2
    X[:, 0] += 3 * codes
    good = LogisticRegression().fit(X, labels[codes])
    stray = GaussianNB().fit(X, fitted_labels[codes])
    voter = GAWeightedVoter([("good", good), ("stray", stray)], prefit=True)
    with pytest.raises(ValueError, match="'stray' \\(GaussianNB\\)"):
        voter.fit(X, labels[codes])
    # the matching model alone is fine and predicts labels of y only
    alone = GAWeightedVoter([("good", good)], prefit=True, n_generations=1).fit(
        X, labels[codes]
    )
    assert set(alone.predict(X)) <= set(labels)
    np.testing.assert_array_equal(alone.classes_, np.unique(labels))


def test_validation_labels_must_match_the_type_of_y(data):
    X, y = data
    with pytest.raises(ValueError, match="y_val"):
        _small().fit(X[:180], y[:180], X_val=X[180:], y_val=np.arange(60) % 3)


def test_split_is_the_shared_holdout_split(data):
    from skcxr.utils._split import holdout_split

    X, y = data
    voter = _small(weights="uniform")
    split_seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max)
    X_fit, y_fit, X_val, y_val = voter._split(X, y, split_seed)
    train, test = holdout_split(y, test_size=0.2, random_state=split_seed)
    np.testing.assert_array_equal(X_val, X[test])
    np.testing.assert_array_equal(y_fit, y[train])
    # stratified: every class keeps its share of the validation split
    _, counts = np.unique(y_val, return_counts=True)
    _, all_counts = np.unique(y, return_counts=True)
    assert np.abs(counts / counts.sum() - all_counts / all_counts.sum()).max() < 0.02
    with pytest.raises(ValueError, match="at least 2 samples"):
        voter._split(X[:1], y[:1], 0)


def test_reversed_and_strided_views_of_images():
    # torch-based members (here a CNN embedding pipeline) get any numpy view
    from sklearn.pipeline import make_pipeline

    from skcxr import CNNEmbedder
    from skcxr.datasets import make_chest_xrays

    images, y = make_chest_xrays(
        16, classes=("normal", "bacteria"), size=32, random_state=0
    )
    X = images.reshape(16, -1)
    embed = make_pipeline(
        CNNEmbedder(backbone="small_cnn", weights=None, random_state=0, device="cpu"),
        LogisticRegression(),
    )
    voter = GAWeightedVoter(
        [("cnn", embed), ("lr", LogisticRegression())],
        population_size=4,
        n_generations=1,
        random_state=0,
    ).fit(X[::-1], y[::-1])
    expected = voter.predict_proba(np.ascontiguousarray(X[::-1]))
    np.testing.assert_allclose(voter.predict_proba(X[::-1]), expected, rtol=1e-5)
    doubled = np.repeat(X, 2, axis=1)
    np.testing.assert_allclose(
        voter.predict_proba(doubled[:, ::2]), voter.predict_proba(X), rtol=1e-5
    )


def test_inconsistent_lengths_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        _small().fit(X[:-1], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        _small().fit(X, y, X_val=X[:10], y_val=y[:9])


def test_bad_weights_and_labels_are_named():
    X, y = make_classification(40, random_state=0)
    models = [("lr", LogisticRegression()), ("nb", GaussianNB())]
    with pytest.raises(ValueError, match=r"weights must be numbers.*\['a', 'b'\]"):
        GAWeightedVoter(models, weights=["a", "b"]).fit(X, y)
    labels = np.array(["normal", 1] * 20, dtype=object)
    with pytest.raises(ValueError, match="mixes label types"):
        GAWeightedVoter(models).fit(X, labels)
    labels = np.array(["normal", None] * 20, dtype=object)
    with pytest.raises(ValueError, match=r"20 missing label\(s\)"):
        GAWeightedVoter(models).fit(X, labels)
