"""Patient metadata and planted subgroup effects of make_chest_xrays."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skcxr.datasets import make_chest_xrays
from skcxr.metrics import subgroup_metrics


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"return_masks": True},
        {"multilabel": True, "return_masks": True},
        {"classes": ["normal", "virus"], "weights": [0.7], "difficulty": 0.9},
    ],
)
def test_metadata_leaves_images_and_labels_bit_identical(kwargs):
    plain = make_chest_xrays(30, size=32, random_state=4, **kwargs)
    *with_meta, meta = make_chest_xrays(
        30, size=32, random_state=4, return_metadata=True, **kwargs
    )
    assert len(with_meta) == len(plain)
    for a, b in zip(plain, with_meta):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert set(meta) == {"sex", "age", "view", "difficulty"}


def test_metadata_values_are_plausible_and_seeded():
    *_, meta = make_chest_xrays(800, size=32, return_metadata=True, random_state=0)
    assert set(meta.sex) == {"F", "M"} and 0.44 < np.mean(meta.sex == "F") < 0.56
    assert set(meta.view) == {"PA", "AP"} and 0.54 < np.mean(meta.view == "PA") < 0.66
    assert meta.age.dtype.kind == "i" and meta.age.min() >= 18 and meta.age.max() <= 95
    assert 50 < meta.age.mean() < 60
    np.testing.assert_array_equal(meta.difficulty, 0.5)
    *_, again = make_chest_xrays(800, size=32, return_metadata=True, random_state=0)
    *_, other = make_chest_xrays(800, size=32, return_metadata=True, random_state=1)
    np.testing.assert_array_equal(meta.age, again.age)
    assert not np.array_equal(meta.age, other.age)


def _lesion_contrast(X, masks, normal_mean):
    return np.mean(
        [X[i][masks[i]].mean() - normal_mean[masks[i]].mean() for i in range(len(X))]
    )


def test_subgroup_difficulty_plants_fainter_findings_in_one_group_only():
    kwargs = dict(classes=["normal", "bacteria"], size=48, random_state=2)
    X0, y0, meta0 = make_chest_xrays(120, return_metadata=True, **kwargs)
    X, y, masks, meta = make_chest_xrays(
        120,
        difficulty=0.2,
        return_masks=True,
        return_metadata=True,
        subgroup_difficulty={"sex": {"F": 1.0}},
        **kwargs,
    )
    np.testing.assert_array_equal(y, y0)  # labels and metadata do not move
    for key in ("sex", "age", "view"):
        np.testing.assert_array_equal(meta[key], meta0[key])
    women = meta.sex == "F"
    np.testing.assert_array_equal(meta.difficulty, np.where(women, 1.0, 0.2))
    normal_mean = X[y == "normal"].mean(axis=0)
    sick = y == "bacteria"
    contrast_f = _lesion_contrast(X[sick & women], masks[sick & women], normal_mean)
    contrast_m = _lesion_contrast(X[sick & ~women], masks[sick & ~women], normal_mean)
    assert contrast_f < 0.5 * contrast_m


def test_subgroup_difficulty_by_age_range_and_view():
    *_, meta = make_chest_xrays(
        200,
        size=32,
        difficulty=0.1,
        return_metadata=True,
        subgroup_difficulty={"age": {(70, 95): 0.8}, "view": {"AP": 0.6}},
        random_state=0,
    )
    old, ap = meta.age >= 70, meta.view == "AP"
    np.testing.assert_array_equal(meta.difficulty[old], 0.8)  # highest wins
    np.testing.assert_array_equal(meta.difficulty[ap & ~old], 0.6)
    np.testing.assert_array_equal(meta.difficulty[~ap & ~old], 0.1)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"race": {"A": 0.9}}, "unknown attribute 'race'"),
        ({"sex": 0.9}, "must map a value"),
        ({"sex": {"female": 0.9}}, "unknown value 'female'"),
        ({"sex": {"F": 1.5}}, r"difficulty in \[0, 1\]"),
        ({"age": {70: 0.9}}, "year ranges"),
    ],
)
def test_bad_subgroup_difficulty_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        make_chest_xrays(4, size=32, subgroup_difficulty=bad, random_state=0)
    with pytest.raises(ValueError, match="'subgroup_difficulty' parameter"):
        make_chest_xrays(4, size=32, subgroup_difficulty=[0.9], random_state=0)


def test_a_planted_gap_is_found_and_an_absent_one_is_not():
    """Known truth: women's findings drawn at difficulty 0.95, nothing by view."""
    X, y, meta = make_chest_xrays(
        800,
        classes=["normal", "bacteria"],
        size=32,
        difficulty=0.2,
        return_metadata=True,
        subgroup_difficulty={"sex": {"F": 0.95}},
        random_state=0,
    )
    X = X.reshape(len(X), -1)
    model = make_pipeline(PCA(30, random_state=0), LogisticRegression(max_iter=1000))
    model.fit(X[:400], y[:400])
    score = model.predict_proba(X[400:])[:, list(model.classes_).index("bacteria")]
    res = subgroup_metrics(
        y[400:],
        score,
        {"sex": meta.sex[400:], "view": meta.view[400:]},
        pos_label="bacteria",
        n_resamples=500,
        random_state=0,
    )
    assert res.groups.tolist() == ["F", "M", "AP", "PA"]
    assert res.gap_called.tolist() == [True, True, False, False]
    assert res.gap[0] < -0.1
