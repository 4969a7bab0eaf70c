import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from skcxr.preprocessing._augment import random_augment

OFF = dict(
    flip=False, rotation=None, scale=None, shift=None, brightness=None, contrast=None
)


def _images(n=6, h=24, w=20, seed=0):
    return np.random.default_rng(seed).random((n, h, w), dtype=np.float32)


def test_shape_dtype_range_and_input_untouched():
    X = _images()
    before = X.copy()
    out = random_augment(X, np.random.default_rng(0))
    assert out.shape == X.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(X, before)
    assert not np.shares_memory(out, X)


def test_deterministic_for_a_seed_and_varies_across_seeds():
    X = _images()
    a = random_augment(X, np.random.default_rng(3))
    b = random_augment(X, np.random.default_rng(3))
    c = random_augment(X, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(random_augment(X, 3), a)


def test_all_disabled_is_identity_copy():
    X = _images()
    out = random_augment(X, np.random.default_rng(0), **OFF)
    np.testing.assert_array_equal(out, X)
    assert out is not X


def test_flip_only_mirrors_about_half_of_the_images():
    X = _images(n=40)
    out = random_augment(X, np.random.default_rng(0), **{**OFF, "flip": True})
    same = np.array([np.array_equal(o, x) for o, x in zip(out, X)])
    mirrored = np.array([np.array_equal(o, x[:, ::-1]) for o, x in zip(out, X)])
    assert np.all(same ^ mirrored)
    assert 5 < mirrored.sum() < 35


def test_vflip_only_turns_about_half_of_the_images_upside_down():
    X = _images(n=40)
    out = random_augment(X, np.random.default_rng(0), **{**OFF, "vflip": True})
    same = np.array([np.array_equal(o, x) for o, x in zip(out, X)])
    upside_down = np.array([np.array_equal(o, x[::-1]) for o, x in zip(out, X)])
    assert np.all(same ^ upside_down)
    assert 5 < upside_down.sum() < 35


def test_both_flips_give_all_four_orientations():
    X = _images(n=60)
    out = random_augment(X, 1, **{**OFF, "flip": True, "vflip": True})
    kinds = []
    for o, x in zip(out, X):
        views = [x, x[:, ::-1], x[::-1], x[::-1, ::-1]]
        matches = [np.array_equal(o, v) for v in views]
        assert sum(matches) == 1
        kinds.append(matches.index(True))
    assert set(kinds) == {0, 1, 2, 3}


def _one_of_kinds(X, out):
    """Which single transform made each output: 'flip', 'vflip' or 'brightness'."""
    kinds = []
    for o, x in zip(out, X):
        candidates = {
            "flip": np.array_equal(o, x[:, ::-1]),
            "vflip": np.array_equal(o, x[::-1]),
            "brightness": not np.array_equal(o, x)
            and np.allclose(o / x, (o / x).flat[0], rtol=1e-5),
        }
        assert sum(candidates.values()) == 1, candidates
        kinds.append(next(k for k, v in candidates.items() if v))
    return kinds


def test_one_of_applies_exactly_one_enabled_transform_per_image():
    X = 0.1 + 0.4 * _images(n=60)  # no clipping at x1.5, no zero pixel
    options = {**OFF, "flip": True, "vflip": True, "brightness": (1.2, 1.5)}
    out = random_augment(X, 7, **options, policy="one_of")
    kinds = _one_of_kinds(X, out)
    counts = {k: kinds.count(k) for k in ("flip", "vflip", "brightness")}
    assert all(c >= 10 for c in counts.values()), counts  # uniform: ~20 each
    # a chosen flip is always applied, unlike policy "all" (probability 1/2)
    assert not any(np.array_equal(o, x) for o, x in zip(out, X))
    # deterministic for a seed, different for another
    np.testing.assert_array_equal(random_augment(X, 7, **options, policy="one_of"), out)
    other = random_augment(X, 8, **options, policy="one_of")
    assert _one_of_kinds(X, other) != kinds


def test_one_of_with_geometric_ops_changes_one_thing():
    X = np.zeros((30, 21, 21), dtype=np.float32)
    X[:, 10, 10] = 0.5
    options = {**OFF, "shift": 0.3, "brightness": (1.5, 1.5)}
    out = random_augment(X, 0, **options, policy="one_of")
    peaks = out.reshape(len(out), -1).max(axis=1)
    brightened = np.isclose(peaks, 0.75) & (out[:, 10, 10] == peaks)
    shifted = peaks <= 0.5 + 1e-6  # moved (and maybe interpolated), not brighter
    assert np.all(brightened ^ shifted)
    assert 5 < brightened.sum() < 25


def test_one_of_with_one_enabled_transform_is_that_transform_always():
    X = _images(n=10)
    out = random_augment(X, 0, **{**OFF, "vflip": True}, policy="one_of")
    np.testing.assert_array_equal(out, X[:, ::-1])
    none = random_augment(X, 0, **OFF, policy="one_of")
    np.testing.assert_array_equal(none, X)


def test_all_policy_without_vflip_is_unchanged_by_the_new_options():
    X = _images()
    default = random_augment(X, 3)
    explicit = random_augment(X, 3, vflip=False, policy="all")
    np.testing.assert_array_equal(default, explicit)


def test_rotation_matches_scipy_affine_transform():
    X = _images(n=3, h=31, w=31)
    out = random_augment(X, np.random.default_rng(5), **{**OFF, "rotation": 30.0})
    angles = np.deg2rad(np.random.default_rng(5).uniform(-30, 30, 3))
    center = np.array([15.0, 15.0])
    for image, got, angle in zip(X, out, angles):
        c, s = np.cos(angle), np.sin(angle)
        matrix = np.array([[c, s], [-s, c]])
        ref = ndimage.affine_transform(
            image.astype(np.float64),
            matrix,
            offset=center - matrix @ center,
            order=1,
            mode="nearest",
        )
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_rotation_of_a_constant_image_stays_constant():
    X = np.full((4, 16, 16), 0.3, dtype=np.float32)
    out = random_augment(X, 0, **{**OFF, "rotation": 20, "scale": 0.1, "shift": 0.1})
    np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_brightness_factor_in_range():
    X = _images() * 0.5  # no clipping at x1.5
    out = random_augment(X, 0, **{**OFF, "brightness": (1.2, 1.5)})
    ratio = out / np.maximum(X, 1e-6)
    per_image = np.median(ratio.reshape(len(X), -1), axis=1)
    assert np.all((per_image >= 1.2 - 1e-4) & (per_image <= 1.5 + 1e-4))
    np.testing.assert_allclose(
        ratio[X > 0.01], np.repeat(per_image, 24 * 20)[(X > 0.01).ravel()], rtol=1e-3
    )


def test_contrast_keeps_the_mean_and_scales_the_spread():
    X = 0.4 + 0.2 * _images()  # no clipping for contrast <= 1.2
    out = random_augment(X, 0, **{**OFF, "contrast": (0.5, 0.8)})
    np.testing.assert_allclose(out.mean(axis=(1, 2)), X.mean(axis=(1, 2)), atol=1e-5)
    spread = out.std(axis=(1, 2)) / X.std(axis=(1, 2))
    assert np.all((spread >= 0.5 - 1e-4) & (spread <= 0.8 + 1e-4))


def test_shift_moves_a_bright_dot_within_bounds():
    X = np.zeros((5, 21, 21), dtype=np.float32)
    X[:, 10, 10] = 1.0
    out = random_augment(X, 1, **{**OFF, "shift": 0.2})
    for image in out:
        r, c = np.unravel_index(np.argmax(image), image.shape)
        assert abs(r - 10) <= 0.2 * 21 + 1 and abs(c - 10) <= 0.2 * 21 + 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rotation": -1}, "rotation"),
        ({"scale": 1.5}, "scale"),
        ({"shift": "a"}, "shift"),
        ({"brightness": (2.0, 1.0)}, "brightness"),
        ({"brightness": (0.0, 1.0)}, "brightness"),
        ({"contrast": "high"}, "contrast"),
        ({"flip": "yes"}, "flip"),
        ({"vflip": 1}, "vflip"),
        ({"policy": "any"}, "policy"),
        ({"policy": None}, "policy"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_augment(_images(n=1), 0, **kwargs)


def test_bad_images_and_rng_raise():
    with pytest.raises(ValueError, match="n_samples, H, W"):
        random_augment(np.zeros((4, 4), dtype=np.float32), 0)
    with pytest.raises(ValueError, match="rng"):
        random_augment(_images(n=1), "seed")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    flip=st.booleans(),
    vflip=st.booleans(),
    policy=st.sampled_from(["all", "one_of"]),
    rotation=st.one_of(st.none(), st.floats(0, 180)),
    scale=st.one_of(st.none(), st.floats(0, 0.9)),
    shift=st.one_of(st.none(), st.floats(0, 0.9)),
    brightness=st.one_of(st.none(), st.tuples(st.floats(0.1, 1), st.floats(1, 3))),
    contrast=st.one_of(st.none(), st.tuples(st.floats(0.1, 1), st.floats(1, 3))),
)
def test_property_output_is_valid_images(
    n, h, w, seed, flip, vflip, policy, rotation, scale, shift, brightness, contrast
):
    X = np.random.default_rng(seed).random((n, h, w), dtype=np.float32)
    out = random_augment(
        X,
        np.random.default_rng(seed),
        flip=flip,
        vflip=vflip,
        policy=policy,
        rotation=rotation,
        scale=scale,
        shift=shift,
        brightness=brightness,
        contrast=contrast,
    )
    assert out.shape == X.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
