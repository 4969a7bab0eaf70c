import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage, sparse
from skimage.filters import gaussian, threshold_otsu
from sklearn.base import clone

import skcxr.preprocessing._masker as masker_module
from skcxr import OtsuMasker
from skcxr.preprocessing._otsu import batch_histograms, otsu_thresholds
from tests._contract_checks import TRANSFORMER_CHECKS, image_contract_failures

# sklearn's common checks (run by tests/test_common.py). They feed small random
# 2-D arrays with 1-10 features and values outside [0, 1]; the image data
# contract (see the user guide's data contract page) rejects a flat array whose width is not a square number
# of pixels, values outside [0, 1], object/complex dtypes and NaN/inf with its
# own ValueError, so these checks fail before reaching the estimator's logic.
COMMON_ESTIMATORS = [
    OtsuMasker(sigma=0.5),
    OtsuMasker(
        sigma=0.0, keep="above", clear_border=True, n_regions=1, fill_holes=True
    ),
]
EXPECTED_FAILED_CHECKS = image_contract_failures(
    "check_fit2d_1sample", *TRANSFORMER_CHECKS
)


def _images(n=5, size=24, seed=0):
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((n, size, size)), (0, 2, 2))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return smooth.astype(np.float32)


def _skimage_masks(X, sigma, keep="below"):
    masks = []
    for image in X:
        blurred = (
            gaussian(
                image, sigma=sigma, mode="nearest", truncate=4.0, preserve_range=True
            )
            if sigma
            else image
        )
        t = threshold_otsu(blurred)
        masks.append(blurred <= t if keep == "below" else blurred > t)
    return np.stack(masks)


# --- thresholds are scikit-image's --------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "kind", ["uniform", "skewed", "three_levels", "narrow", "one_outlier", "smooth"]
)
def test_thresholds_equal_skimage(kind, seed):
    rng = np.random.default_rng(seed)
    shape = (6, int(rng.integers(1, 40)), int(rng.integers(1, 40)))
    X = {
        "uniform": lambda: rng.random(shape, dtype=np.float32),
        "skewed": lambda: (rng.random(shape) ** 4).astype(np.float32),
        "three_levels": lambda: rng.integers(0, 3, shape).astype(np.float32) / 2,
        "narrow": lambda: (0.5 + 1e-3 * rng.random(shape)).astype(np.float32),
        "one_outlier": lambda: np.where(rng.random(shape) < 0.01, 0.9, 0.2).astype(
            np.float32
        ),
        "smooth": lambda: _images(6, 32, seed),
    }[kind]()
    expected = np.array([threshold_otsu(x) for x in X], dtype=np.float32)
    np.testing.assert_array_equal(otsu_thresholds(X), expected)


@pytest.mark.parametrize(
    "low, high", [(0.1, 0.7), (0.0, 1.0), (0.3, 0.30003), (1e-5, 2e-3), (0.25, 0.75)]
)
def test_histograms_exact_for_values_on_and_next_to_bin_edges(low, high):
    """Values on the float32 bin edges and one ulp either side land where
    np.histogram puts them (the fast path guesses, then fixes values near edges)."""
    low, high = np.float32(low), np.float32(high)
    edges = np.linspace(low, high, 257, dtype=np.float32)
    values = np.concatenate(
        [edges, np.nextafter(edges, np.float32(0)), np.nextafter(edges, np.float32(2))]
    )
    values = values[(values >= low) & (values <= high)]
    X = np.random.default_rng(0).choice(values, size=(8, 30, 30)).astype(np.float32)
    X[:, 0, 0], X[:, 0, 1] = low, high
    counts, got_edges = batch_histograms(X)
    for image, row_counts, row_edges in zip(X, counts, got_edges):
        np.testing.assert_array_equal(row_edges, edges)
        np.testing.assert_array_equal(row_counts, np.histogram(image, bins=edges)[0])
    expected = [threshold_otsu(x) for x in X]
    np.testing.assert_array_equal(otsu_thresholds(X), expected)


@pytest.mark.parametrize("shape", [(5, 1, 40), (5, 40, 1), (3, 20, 30)])
def test_fortran_ordered_and_strided_input(shape):
    X = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = [threshold_otsu(x) for x in X]
    np.testing.assert_array_equal(otsu_thresholds(np.asfortranarray(X)), expected)
    wide = np.random.default_rng(0).random((10,) + shape[1:], dtype=np.float32)[::2]
    np.testing.assert_array_equal(
        otsu_thresholds(wide), [threshold_otsu(x) for x in wide]
    )
    masker = OtsuMasker(sigma=0.0).fit(X)
    np.testing.assert_array_equal(
        masker.transform(np.asfortranarray(X)), masker.transform(X)
    )


def test_thresholds_of_constant_images_are_their_value():
    X = np.stack(
        [
            np.full((8, 8), 0.25),
            np.random.default_rng(0).random((8, 8)),
            np.ones((8, 8)),
        ]
    ).astype(np.float32)
    t = otsu_thresholds(X)
    assert t[0] == np.float32(0.25) and t[2] == 1.0
    assert t[0] == threshold_otsu(X[0]) and t[1] == threshold_otsu(X[1])


def test_thresholds_with_fewer_bins_equal_skimage():
    X = np.random.default_rng(1).random((4, 20, 20), dtype=np.float32)
    for n_bins in (2, 16, 1000):
        expected = [threshold_otsu(x, nbins=n_bins) for x in X]
        np.testing.assert_array_equal(otsu_thresholds(X, n_bins), expected)


def test_tiny_range_still_gives_a_threshold_inside_the_range():
    X = (0.5 + 1e-6 * np.random.default_rng(0).random((3, 8, 8))).astype(np.float32)
    t = otsu_thresholds(X)
    assert np.all((t >= X.min(axis=(1, 2))) & (t <= X.max(axis=(1, 2))))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)),
        elements=st.floats(0, 1, width=32),
    )
)
def test_property_thresholds_equal_skimage(X):
    t = otsu_thresholds(X)
    for image, value in zip(X, t):
        try:
            expected = threshold_otsu(image)
        except ValueError:  # range too small for 256 distinct float32 bin edges
            assert image.min() <= value <= image.max()
            continue
        assert value == np.float32(expected)


@pytest.mark.parametrize("sigma", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("keep", ["below", "above"])
def test_masks_equal_skimage_pipeline(sigma, keep):
    X = _images(6, 32)
    masker = OtsuMasker(sigma=sigma, keep=keep).fit(X)
    masks, thresholds = masker.compute_masks(X)
    np.testing.assert_array_equal(masks, _skimage_masks(X, sigma, keep))
    np.testing.assert_array_equal(thresholds, masker.thresholds_)


# --- transform ------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["nhw", "n1hw", "flat"])
def test_layout_is_preserved(layout):
    X = _images(4, 16)
    Xl = {"nhw": X, "n1hw": X[:, None], "flat": X.reshape(4, -1)}[layout]
    masker = OtsuMasker()
    Xt = masker.fit_transform(Xl)
    assert Xt.shape == Xl.shape and Xt.dtype == np.float32
    np.testing.assert_array_equal(Xt.reshape(X.shape), OtsuMasker().fit(X).transform(X))
    masks, _ = masker.compute_masks(Xl)
    assert masks.shape == Xl.shape and masks.dtype == bool


def test_transform_keeps_or_fills_each_pixel():
    X = _images()
    masker = OtsuMasker(fill_value=0.7).fit(X)
    masks, _ = masker.compute_masks(X)
    Xt = masker.transform(X)
    np.testing.assert_array_equal(Xt[masks], X[masks])
    assert np.all(Xt[~masks] == np.float32(0.7))
    assert masks.any() and (~masks).any()


def test_keep_sides_are_complements():
    X = _images()
    below, t_below = OtsuMasker(keep="below").fit(X).compute_masks(X)
    above, t_above = OtsuMasker(keep="above").fit(X).compute_masks(X)
    np.testing.assert_array_equal(below, ~above)
    np.testing.assert_array_equal(t_below, t_above)


def test_fit_transform_equals_fit_then_transform():
    X = _images()
    a = OtsuMasker(n_regions=2, fill_holes=True).fit_transform(X)
    b = OtsuMasker(n_regions=2, fill_holes=True).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)


def _reference_regions(mask, k):
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return np.isin(labels, np.argsort(-sizes, kind="stable")[:k] + 1)


@pytest.mark.parametrize("n_regions", [1, 2, 3])
def test_n_regions_keeps_the_largest_regions_per_image(n_regions):
    X = np.random.default_rng(2).random((8, 30, 30), dtype=np.float32)
    masker = OtsuMasker(sigma=1.0, keep="above").fit(X)
    plain, _ = masker.compute_masks(X)
    kept, _ = clone(masker).set_params(n_regions=n_regions).fit(X).compute_masks(X)
    expected = np.stack([_reference_regions(m, n_regions) for m in plain])
    np.testing.assert_array_equal(kept, expected)
    for m in kept:
        assert ndimage.label(m)[1] <= n_regions


def _reference_clear_border(mask):
    labels, _ = ndimage.label(mask)
    border = np.unique(
        np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    )
    return mask & ~np.isin(labels, border)


@pytest.mark.parametrize("n_regions", [None, 1, 2])
def test_clear_border_drops_regions_touching_the_border(n_regions):
    X = np.random.default_rng(4).random((8, 30, 30), dtype=np.float32)
    plain, _ = OtsuMasker(sigma=1.0).fit(X).compute_masks(X)
    masker = OtsuMasker(sigma=1.0, clear_border=True, n_regions=n_regions).fit(X)
    got, _ = masker.compute_masks(X)
    cleared = [_reference_clear_border(m) for m in plain]
    if n_regions is not None:
        cleared = [_reference_regions(m, n_regions) for m in cleared]
    np.testing.assert_array_equal(got, np.stack(cleared))
    assert not got[:, 0].any() and not got[:, :, -1].any()
    assert got.any()


def test_fill_holes_matches_binary_fill_holes_per_image():
    X = np.random.default_rng(3).random((8, 30, 30), dtype=np.float32)
    plain, _ = OtsuMasker(sigma=1.0).fit(X).compute_masks(X)
    filled, _ = OtsuMasker(sigma=1.0, fill_holes=True).fit(X).compute_masks(X)
    np.testing.assert_array_equal(
        filled, np.stack([ndimage.binary_fill_holes(m) for m in plain])
    )
    # a ring: its hole is filled, the outside is not
    ring = np.zeros((1, 15, 15), dtype=np.float32)
    ring[0, 3:12, 3:12] = 1
    ring[0, 6:9, 6:9] = 0
    masker = OtsuMasker(sigma=0, keep="above", fill_holes=True).fit(ring)
    masks, _ = masker.compute_masks(ring)
    assert masks[0, 7, 7] and masks[0, 3:12, 3:12].all() and not masks[0, 0, 0]


def test_blocks_and_threads_give_the_same_result(monkeypatch):
    X = _images(11, 16)
    expected = OtsuMasker(n_regions=1, fill_holes=True).fit_transform(X)
    monkeypatch.setattr(masker_module, "_BLOCK_PIXELS", 3 * 16 * 16)
    for n_jobs in (1, 2, -1):
        got = OtsuMasker(n_regions=1, fill_holes=True, n_jobs=n_jobs).fit_transform(X)
        np.testing.assert_array_equal(got, expected)


def test_n_jobs_follows_the_shared_rule(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from skcxr.utils._parallel import resolve_n_jobs

    X = _images(6, 16)
    monkeypatch.setattr(masker_module, "_BLOCK_PIXELS", 2 * 16 * 16)  # 3 blocks
    pools = []

    def recording_pool(max_workers):
        pools.append(max_workers)
        return ThreadPoolExecutor(max_workers=max_workers)

    monkeypatch.setattr(masker_module, "ThreadPoolExecutor", recording_pool)
    expected = OtsuMasker().fit_transform(X)
    for n_jobs in (None, 1, -1, 10_000):
        pools.clear()
        got = OtsuMasker(n_jobs=n_jobs).fit_transform(X)
        np.testing.assert_array_equal(got, expected)
        workers = resolve_n_jobs(n_jobs, n_tasks=3)
        # never more threads than blocks or CPUs; no pool at all for one worker
        assert pools == ([] if workers == 1 else [workers])
        assert all(w <= 3 for w in pools)


def test_fitted_attributes_and_pickle():
    X = _images()
    masker = OtsuMasker().fit(X)
    assert masker.n_features_in_ == 24 * 24 and masker.image_shape_ == (24, 24)
    assert masker.thresholds_.shape == (5,)
    restored = pickle.loads(pickle.dumps(masker))
    np.testing.assert_array_equal(restored.transform(X), masker.transform(X))


# --- bad input ------------------------------------------------------------------


def test_bad_input():
    X = _images()
    masker = OtsuMasker().fit(X)
    with pytest.raises(ValueError, match="fitted on images of size 24x24"):
        masker.transform(_images(size=16))
    with pytest.raises(ValueError, match=r"not \[0, 1\]"):
        masker.transform(X * 2)
    with pytest.raises(ValueError, match="NaN"):
        masker.transform(np.where(X > 0.5, np.nan, X))
    with pytest.raises(ValueError, match="square image"):
        OtsuMasker().fit(np.zeros((3, 10)))
    with pytest.raises(TypeError, match="sparse"):
        OtsuMasker().fit(sparse.csr_matrix(np.zeros((3, 16))))
    with pytest.raises(ValueError, match="keep"):
        OtsuMasker(keep="middle").fit(X)
    with pytest.raises(ValueError, match="sigma"):
        OtsuMasker(sigma=-1).fit(X)
    with pytest.raises(ValueError, match="fill_value"):
        OtsuMasker(fill_value=2).fit(X)
    with pytest.raises(ValueError, match="n_regions"):
        OtsuMasker(n_regions=0).fit(X)
    with pytest.raises(Exception, match="not fitted"):
        OtsuMasker().transform(X)


# --- properties -------------------------------------------------------------------

_image_batches = arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(2, 10), st.integers(2, 10)),
    elements=st.floats(0, 1, width=32),
)


@settings(max_examples=40, deadline=None)
@given(
    X=_image_batches,
    sigma=st.sampled_from([0.0, 0.7, 1.5]),
    keep=st.sampled_from(["below", "above"]),
    n_regions=st.sampled_from([None, 1, 2]),
    clear_border=st.booleans(),
    fill_holes=st.booleans(),
    fill_value=st.floats(0, 1),
    layout=st.sampled_from(["nhw", "n1hw", "flat"]),
)
def test_property_mask_is_binary_and_shape_preserved(
    X, sigma, keep, n_regions, clear_border, fill_holes, fill_value, layout
):
    if layout == "flat":
        X = X[:, :, : X.shape[1]]  # a flat array must hold square images
        X = np.pad(X, ((0, 0), (0, 0), (0, X.shape[1] - X.shape[2])))
    Xl = {"nhw": X, "n1hw": X[:, None], "flat": X.reshape(len(X), -1)}[layout]
    masker = OtsuMasker(
        sigma=sigma,
        keep=keep,
        n_regions=n_regions,
        clear_border=clear_border,
        fill_holes=fill_holes,
        fill_value=fill_value,
    )
    Xt = masker.fit_transform(Xl)
    masks, thresholds = masker.compute_masks(Xl)
    assert Xt.shape == Xl.shape and masks.shape == Xl.shape
    assert masks.dtype == bool and thresholds.shape == (len(X),)
    # each output pixel is the input pixel (mask True) or fill_value (mask False)
    np.testing.assert_array_equal(Xt, np.where(masks, Xl, np.float32(fill_value)))
    # applying the same masks again changes nothing
    np.testing.assert_array_equal(np.where(masks, Xt, np.float32(fill_value)), Xt)


@settings(max_examples=40, deadline=None)
@given(
    levels=st.tuples(st.floats(0, 1, width=32), st.floats(0, 1, width=32)).filter(
        lambda ab: ab[0] < ab[1]
    ),
    pattern=arrays(
        bool, st.tuples(st.integers(1, 3), st.integers(2, 9), st.integers(2, 9))
    ),
    keep=st.sampled_from(["below", "above"]),
)
def test_property_idempotent_on_masked_two_level_images(levels, pattern, keep):
    """Masking a masked image changes nothing.

    Otsu's threshold depends on the whole histogram, so once pixels are replaced by
    ``fill_value`` a *blurred*, many-level image may get a new threshold. The
    property that holds exactly: without blur (``sigma=0``), on images made of a
    background level and a foreground level, with ``fill_value`` on the dropped
    side (0 when keeping the bright side, 1 when keeping the dark side), masking
    is idempotent.
    """
    low, high = np.float32(levels[0]), np.float32(levels[1])
    X = np.where(pattern, high, low).astype(np.float32)
    fill = 0.0 if keep == "above" else 1.0
    masker = OtsuMasker(sigma=0, keep=keep, fill_value=fill)
    once = masker.fit_transform(X)
    twice = masker.fit_transform(once)
    np.testing.assert_array_equal(twice, once)
