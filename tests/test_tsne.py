import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcxr import TSNE

FAST = dict(perplexity=5, n_iter=60, early_exaggeration_iter=40, random_state=0)

COMMON_ESTIMATORS = [TSNE(**FAST)]

EXPECTED_FAILED_CHECKS = {
    "check_transformer_general": (
        "transform places samples on the fitted map by optimising them against the "
        "fixed training points, so transform(X_train) lies near, but not on, the "
        "training map that fit_transform returns"
    ),
    "check_transformer_data_not_an_array": (
        "same reason as check_transformer_general: transform(X_train) approximates "
        "the training map instead of reproducing it"
    ),
}


def _blobs(n_per=20, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0] * n_features, [8.0] * n_features])
    X = np.concatenate([c + rng.normal(size=(n_per, n_features)) for c in centers])
    y = np.repeat([0, 1], n_per)
    return X, y


def test_fit_attributes_and_dtype():
    X, _ = _blobs()
    tsne = TSNE(**FAST).fit(X)
    assert tsne.embedding_.shape == (40, 2)
    assert tsne.embedding_.dtype == np.float32
    assert tsne.n_features_in_ == 6
    assert tsne.effective_perplexity_ == 5
    assert np.isfinite(tsne.kl_divergence_)
    out = TSNE(**FAST).fit_transform(X)
    np.testing.assert_array_equal(out, tsne.embedding_)


def test_seeded_fit_is_reproducible():
    X, _ = _blobs()
    a = TSNE(**FAST).fit_transform(X)
    b = TSNE(**FAST).fit_transform(X)
    np.testing.assert_allclose(a, b)


def test_map_separates_clusters_and_transform_places_new_points_nearby():
    X, y = _blobs()
    tsne = TSNE(**FAST).fit(X)
    emb = tsne.embedding_
    centroids = np.array([emb[y == k].mean(0) for k in (0, 1)])
    X_new, y_new = _blobs(n_per=3, seed=1)
    placed = tsne.transform(X_new)
    assert placed.shape == (6, 2) and placed.dtype == np.float32
    dist = np.linalg.norm(placed[:, None] - centroids[None], axis=2)
    np.testing.assert_array_equal(dist.argmin(1), y_new)
    # the training map did not move
    np.testing.assert_array_equal(tsne.embedding_, emb)


def test_transform_leaves_the_fitted_map_and_its_frame_alone():
    # openTSNE's transform recentres the map in place; the fitted map is
    # centred already, so transform changes no fitted state and places points
    # in the frame of embedding_
    X, y = _blobs()
    tsne = TSNE(**FAST).fit(X)
    reference = np.array(tsne.opentsne_embedding_)
    np.testing.assert_allclose(reference, tsne.embedding_, atol=1e-5)
    low, high = reference.min(0), reference.max(0)
    np.testing.assert_allclose((low + high) / 2, 0, atol=1e-9)
    first = tsne.transform(X[:5] + 0.01)
    np.testing.assert_array_equal(np.array(tsne.opentsne_embedding_), reference)
    np.testing.assert_allclose(tsne.transform(X[:5] + 0.01), first, atol=1e-5)
    # each placed point lands closer to its source's map position than the
    # typical distance between map points
    near = np.linalg.norm(first - tsne.embedding_[:5], axis=1)
    spread = np.linalg.norm(tsne.embedding_[:, None] - tsne.embedding_[None], axis=2)
    assert near.max() < np.median(spread)


def test_n_components_3():
    X, _ = _blobs()
    tsne = TSNE(n_components=3, **FAST).fit(X)
    assert tsne.embedding_.shape == (40, 3)
    assert tsne.transform(X[:2]).shape == (2, 3)


def test_pickle_round_trip_then_transform(tmp_path):
    X, _ = _blobs()
    tsne = TSNE(**FAST).fit(X)
    expected = tsne.transform(X[:4] + 0.1)
    loaded = pickle.loads(pickle.dumps(tsne))
    np.testing.assert_allclose(loaded.transform(X[:4] + 0.1), expected, atol=1e-5)
    joblib.dump(tsne, tmp_path / "tsne.joblib")
    loaded = joblib.load(tmp_path / "tsne.joblib")
    np.testing.assert_allclose(loaded.transform(X[:4] + 0.1), expected, atol=1e-5)


def test_small_training_set_lowers_perplexity():
    X, _ = _blobs(n_per=5)  # 10 samples: 3 * 5 > 9
    tsne = TSNE(**FAST).fit(X)
    assert tsne.effective_perplexity_ == pytest.approx(3.0)
    assert tsne.transform(X[:2]).shape == (2, 2)


def test_perplexity_too_large_raises():
    X, _ = _blobs(n_per=2)
    with pytest.raises(ValueError, match="perplexity=5 must be smaller"):
        TSNE(**FAST).fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"perplexity": 0}, "perplexity"),
        ({"initialization": "umap"}, "initialization"),
        ({"n_components": 0}, "n_components"),
    ],
)
def test_bad_params(params, match):
    X, _ = _blobs()
    with pytest.raises(ValueError, match=match):
        clone(TSNE(**FAST)).set_params(**params).fit(X)


def test_bad_input():
    X, _ = _blobs()
    tsne = TSNE(**FAST).fit(X)
    with pytest.raises(ValueError, match="6 features"):
        tsne.transform(X[:, :3])
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TSNE(**FAST).fit(X_nan)


def test_in_pipeline():
    X, _ = _blobs()
    pipe = make_pipeline(StandardScaler(), TSNE(**FAST)).fit(X)
    assert pipe.transform(X[:3]).shape == (3, 2)
