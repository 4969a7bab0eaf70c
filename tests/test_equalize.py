import numpy as np
import pytest

from skcxr import HistogramEqualizer
from skcxr.datasets import make_chest_xrays
from tests._contract_checks import TRANSFORMER_CHECKS, image_contract_failures

COMMON_ESTIMATORS = [
    HistogramEqualizer(),
    HistogramEqualizer(method="global", nbins=64),
    HistogramEqualizer(clip_limit=0.05, kernel_size=(6, 10), n_jobs=2),
]
EXPECTED_FAILED_CHECKS = image_contract_failures(
    "check_fit2d_1sample", *TRANSFORMER_CHECKS
)


def _images(n=4, size=64, seed=1):
    X, _ = make_chest_xrays(n, size=size, random_state=seed)
    X[0, :, : size // 3] *= 0.3  # one under-exposed side
    return X


@pytest.mark.parametrize(
    "size, params",
    [
        (64, {}),
        (100, dict(kernel_size=(10, 14), clip_limit=0.03)),
        (96, dict(clip_limit=0.0)),
        (80, dict(nbins=64, kernel_size=16)),
        (48, dict(clip_limit=1.0)),
    ],
)
def test_clahe_equals_scikit_image(size, params):
    exposure = pytest.importorskip("skimage.exposure")
    X = _images(size=size)
    ours = HistogramEqualizer(**params).fit_transform(X)
    for image, out in zip(X, ours):
        expected = exposure.equalize_adapthist(image, **params)
        assert np.abs(out - expected).mean() < 0.01


def test_global_equals_scikit_image():
    exposure = pytest.importorskip("skimage.exposure")
    X = _images()
    ours = HistogramEqualizer(method="global").fit_transform(X)
    for image, out in zip(X, ours):
        np.testing.assert_allclose(out, exposure.equalize_hist(image), atol=1e-5)


def test_threads_layouts_and_constant_images():
    X = _images(6, size=32)
    X[3] = 0.4
    single = HistogramEqualizer().fit_transform(X)
    threaded = HistogramEqualizer(n_jobs=2).fit_transform(X)
    np.testing.assert_array_equal(single, threaded)
    np.testing.assert_array_equal(single[3], X[3])  # constant: unchanged
    assert single[0].min() == 0.0 and single[0].max() == 1.0
    flat = HistogramEqualizer().fit_transform(X.reshape(6, -1))
    np.testing.assert_array_equal(flat.reshape(single.shape), single)
    assert HistogramEqualizer().fit_transform(X[:, None]).shape == (6, 1, 32, 32)


def test_clahe_raises_local_contrast_of_the_lungs():
    X, _, lungs = make_chest_xrays(4, size=64, return_lung_masks=True, random_state=0)
    Xt = HistogramEqualizer(clip_limit=0.02).fit_transform(X)
    assert Xt[lungs].std() > X[lungs].std()


def test_parameter_errors():
    X = _images(2, size=32)
    with pytest.raises(ValueError, match="kernel_size"):
        HistogramEqualizer(kernel_size=(4, 4, 4)).fit(X)
    with pytest.raises(ValueError, match="clip_limit"):
        HistogramEqualizer(clip_limit=2.0).fit(X)
    with pytest.raises(ValueError, match="method"):
        HistogramEqualizer(method="cv2").fit(X)
