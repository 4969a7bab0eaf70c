import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from skcxr import ReconstructionAnomalyDetector
from tests._contract_checks import (
    OUTLIER_CHECKS,
    TRANSFORMER_CHECKS,
    image_contract_failures,
)

SMALL = dict(
    latent_dim=4, depth=2, width=4, max_epochs=2, batch_size=16, random_state=0
)

COMMON_ESTIMATORS = [
    ReconstructionAnomalyDetector(
        latent_dim=2, depth=1, width=2, max_epochs=1, random_state=0
    ),
    ReconstructionAnomalyDetector(
        latent_dim=2,
        depth=1,
        width=2,
        max_epochs=1,
        variational=True,
        error="ssim",
        random_state=0,
    ),
]

# Each check below was run with the image validation swapped for a permissive
# one (any 2-D array as a 1 x n_features image): all of them then passed, so
# they fail only because of the data contract.
EXPECTED_FAILED_CHECKS = image_contract_failures(
    "check_fit2d_1sample",
    "check_classifier_data_not_an_array",
    *TRANSFORMER_CHECKS,
    *OUTLIER_CHECKS,
)


def _smooth_images(n, size=16, seed=0):
    """Random smooth images in [0, 1] (blurred noise plus a dark 'lung' pair)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random((n, size, size)), sigma=(0, 2, 2))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    base = np.full((size, size), 0.8)
    q = size // 4
    base[q : 3 * q, q - 1 : 2 * q - 1] = 0.2
    base[q : 3 * q, 2 * q + 1 : 3 * q + 1] = 0.2
    return np.clip(0.6 * base + 0.4 * noise, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def X():
    return _smooth_images(40)


@pytest.fixture(scope="module")
def fitted(X):
    return ReconstructionAnomalyDetector(**SMALL).fit(X)


def test_shapes_and_layouts(X, fitted):
    n = len(X)
    assert fitted.n_features_in_ == 16 * 16 and fitted.image_shape_ == (16, 16)
    assert fitted.decision_scores_.shape == (n,)
    for Xl in (X, X[:, None], X.reshape(n, -1)):
        assert fitted.reconstruct(Xl).shape == Xl.shape
        assert fitted.reconstruct(Xl).dtype == np.float32
        codes = fitted.transform(Xl)
        assert codes.shape == (n, 4) and codes.dtype == np.float32
        np.testing.assert_allclose(
            fitted.score_samples(Xl), fitted.decision_scores_, rtol=1e-5
        )
    rec = fitted.reconstruct(X)
    assert rec.min() >= 0 and rec.max() <= 1
    assert fitted.get_feature_names_out().shape == (4,)
    assert len(fitted.history_) == 2


@pytest.mark.parametrize("size,depth", [(18, 3), (7, 2), (4, 3)])
def test_side_not_divisible_by_2_pow_depth(size, depth):
    Xs = _smooth_images(6, size=size)
    det = ReconstructionAnomalyDetector(**{**SMALL, "depth": depth}).fit(Xs)
    assert det.reconstruct(Xs).shape == Xs.shape


def test_sign_conventions(X, fitted):
    scores = fitted.score_samples(X)
    np.testing.assert_allclose(scores, -fitted.reconstruction_error(X))
    np.testing.assert_allclose(fitted.decision_function(X), scores - fitted.offset_)
    assert fitted.offset_ == -fitted.threshold_
    pred = fitted.predict(X)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_array_equal(pred == -1, fitted.decision_function(X) < 0)
    np.testing.assert_array_equal(
        pred == -1, fitted.reconstruction_error(X) > fitted.threshold_
    )
    # a far-off image reconstructs badly: an outlier
    odd = np.zeros((1, 16, 16), np.float32)
    odd[0, ::2] = 1.0
    assert fitted.predict(odd)[0] == -1 and fitted.decision_function(odd)[0] < 0
    np.testing.assert_array_equal(fitted.fit_predict(X), fitted.predict(X))


def test_threshold_mean(X, fitted):
    errors = -fitted.decision_scores_
    assert fitted.threshold_ == pytest.approx(errors.mean())


@pytest.mark.parametrize("q", [0.1, 0.25, 0.5])
def test_threshold_contamination(X, q):
    det = ReconstructionAnomalyDetector(**{**SMALL, "threshold": q}).fit(X)
    frac = np.mean(det.predict(X) == -1)
    assert abs(frac - q) <= 1.5 / len(X)
    assert det.threshold_ == pytest.approx(np.quantile(-det.decision_scores_, 1 - q))


@pytest.mark.parametrize("error", ["mse", "ssim", "masked_mse"])
@pytest.mark.parametrize("variational", [False, True])
def test_errors_and_vae(X, error, variational):
    det = ReconstructionAnomalyDetector(
        **{**SMALL, "error": error, "variational": variational}
    ).fit(X)
    errs = det.reconstruction_error(X)
    assert errs.shape == (len(X),) and np.isfinite(errs).all()
    assert (errs >= -1e-6).all()
    assert det.mask_.shape == (16, 16) and det.mask_.dtype == bool and det.mask_.any()
    # inference uses the VAE mean: deterministic
    np.testing.assert_array_equal(det.transform(X), det.transform(X))
    np.testing.assert_array_equal(det.score_samples(X), det.decision_scores_)


def test_ssim_of_identical_images_is_zero():
    from skcxr.models._anomaly import _ssim_error
    import torch

    x = torch.from_numpy(_smooth_images(3)[:, None])
    np.testing.assert_allclose(_ssim_error(x, x).numpy(), 0.0, atol=1e-5)
    assert (_ssim_error(x, 1 - x).numpy() > 0.5).all()


def test_reconstruction_error_override(fitted, X):
    for error in ("mse", "ssim", "masked_mse"):
        assert fitted.reconstruction_error(X, error=error).shape == (len(X),)
    with pytest.raises(ValueError, match="error"):
        fitted.reconstruction_error(X, error="l1")


def test_reproducible_and_no_global_rng(X):
    import torch

    state = torch.random.get_rng_state()
    a = ReconstructionAnomalyDetector(**{**SMALL, "variational": True}).fit(X)
    assert torch.equal(state, torch.random.get_rng_state())
    b = ReconstructionAnomalyDetector(**{**SMALL, "variational": True}).fit(X)
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    c = ReconstructionAnomalyDetector(**{**SMALL, "random_state": 1}).fit(X)
    assert not np.array_equal(a.transform(X), c.transform(X))


def test_early_stopping(X):
    det = ReconstructionAnomalyDetector(
        **{**SMALL, "max_epochs": 3, "early_stopping": True, "n_iter_no_change": 1}
    ).fit(X)
    assert "valid_loss" in det.history_[-1]
    with pytest.raises(ValueError, match="validation_fraction"):
        ReconstructionAnomalyDetector(**SMALL, early_stopping=True).fit(X[:3])


def test_pickle_clone_joblib(X, fitted, tmp_path):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.score_samples(X), fitted.score_samples(X))
    path = tmp_path / "det.joblib"
    joblib.dump(fitted, path)
    np.testing.assert_array_equal(joblib.load(path).predict(X), fitted.predict(X))
    cloned = clone(fitted)
    assert cloned.get_params() == fitted.get_params()
    assert not hasattr(cloned, "module_")


def test_subset_and_batch_invariance(X, fitted):
    np.testing.assert_allclose(
        fitted.score_samples(X[5:9]), fitted.score_samples(X)[5:9], rtol=1e-5, atol=1e-7
    )


def test_pipeline_latent_codes_to_classifier(X):
    y = np.r_[np.zeros(20), np.ones(20)]
    Xc = X.copy()
    Xc[20:, :4] = 1.0  # a bright band for class 1
    pipe = make_pipeline(ReconstructionAnomalyDetector(**SMALL), LogisticRegression())
    pipe.fit(Xc, y)
    assert pipe.predict(Xc).shape == (40,)
    assert pipe.score(Xc, y) > 0.5


@pytest.mark.parametrize(
    "params,match",
    [
        ({"threshold": 0.7}, "threshold"),
        ({"threshold": "median"}, "threshold"),
        ({"error": "l2"}, "error"),
        ({"depth": 0}, "depth"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_params(X, params, match):
    with pytest.raises(ValueError, match=match):
        ReconstructionAnomalyDetector(**{**SMALL, **params}).fit(X)


def test_bad_input(X, fitted):
    with pytest.raises(ValueError, match="square"):
        ReconstructionAnomalyDetector(**SMALL).fit(np.zeros((4, 10), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ReconstructionAnomalyDetector(**SMALL).fit(X * 3)
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ReconstructionAnomalyDetector(**SMALL).fit(bad)
    with pytest.raises(ValueError, match="fitted on images of size 16x16"):
        fitted.predict(np.zeros((2, 8, 8), np.float32))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ReconstructionAnomalyDetector().predict(X)


@pytest.mark.slow
def test_separates_healthy_from_pneumonia():
    """Healthy-only training on synthetic CXRs; ROC AUC healthy vs pneumonia.

    Measured (seeds: train 0, test 1, detector 0; 64 px, 200 training images,
    difficulty 0.3, width 8, 8 epochs): masked_mse 0.756, mse 0.569, ssim 0.559
    (bacteria 0.83 / virus 0.69 for masked_mse). Plain MSE and SSIM hover near
    chance, as in the first seed report: the viral haze is smooth and is
    reconstructed about as well as healthy lungs (virus-only MSE AUC ~0.49), and
    the whole-image errors are dominated by ribs and body edges. The lung mask
    focuses the error on where findings are. The bound 0.65 leaves ~0.1 margin
    for platform noise and is well above chance (0.5; with 100 sick vs 50
    healthy test images an AUC of 0.65 is ~3 standard errors above 0.5).
    """
    from skcxr.datasets import make_chest_xrays

    Xtr, _ = make_chest_xrays(
        200, classes=("normal",), size=64, difficulty=0.3, random_state=0
    )
    Xte, yte = make_chest_xrays(150, size=64, difficulty=0.3, random_state=1)
    det = ReconstructionAnomalyDetector(
        width=8,
        latent_dim=16,
        max_epochs=8,
        error="masked_mse",
        device="cpu",
        random_state=0,
    ).fit(Xtr)
    sick = yte != "normal"
    aucs = {
        e: roc_auc_score(sick, det.reconstruction_error(Xte, error=e))
        for e in ("mse", "ssim", "masked_mse")
    }
    print("ROC AUC healthy vs pneumonia:", {k: round(v, 3) for k, v in aucs.items()})
    assert aucs["masked_mse"] >= 0.65
    # score_samples is higher for healthy: the AUC of -score is the same number
    assert roc_auc_score(sick, -det.score_samples(Xte)) == pytest.approx(
        aucs["masked_mse"]
    )
