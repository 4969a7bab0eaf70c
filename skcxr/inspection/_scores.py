"""Scores for explanations against known lesions: the pointing game, its
energy-based form, and the deletion and insertion curves.

References: the pointing game, Zhang et al. 2018, "Top-down Neural Attention
by Excitation Backprop", IJCV; the energy-based pointing game, Wang et al.
2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
Networks", CVPR workshops; the deletion and insertion metrics, Petsiuk et al.
2018, "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC.
"""

from numbers import Real

import numpy as np
from scipy import ndimage
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, validate_params

from ..utils._validation import check_images
from ._common import (
    BASELINE,
    POSITIVE_INT,
    baseline_values,
    check_maps,
    predict_proba_images,
    reference_proba,
)

__all__ = ["pointing_game", "energy_pointing_game", "deletion_curve", "insertion_curve"]

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2


def dilate_masks(masks, tolerance):
    """Dilate boolean ``(n, H, W)`` masks by a disk of radius ``tolerance`` pixels."""
    masks = np.asarray(masks, dtype=bool)
    if tolerance == 0:
        return masks
    r = int(np.ceil(tolerance))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (yy**2 + xx**2) <= tolerance**2
    return ndimage.binary_dilation(masks, structure=disk[None])


@validate_params(
    {
        "heatmaps": ["array-like"],
        "masks": ["array-like"],
        "tolerance": [Interval(Real, 0, None, closed="left")],
        "region": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def pointing_game(heatmaps, masks, *, tolerance=2, region=None):
    """Share of images whose heatmap maximum falls inside the (dilated) lesion.

    Parameters
    ----------
    heatmaps : array-like of shape (n_samples, H, W)
    masks : array-like of bool, shape (n_samples, H, W)
        Lesion masks (e.g. from ``make_chest_xrays(..., return_masks=True)``);
        every mask must contain a lesion.
    tolerance : float, default=2
        Radius, in pixels, of the disk the masks are dilated by (the pointing
        game's tolerance for maps computed on coarse feature grids).
    region : array-like of bool, shape (H, W) or (n_samples, H, W), default=None
        Where a random point may land for the ``chance`` level, e.g. the lung
        fields; ``None``: the whole image.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``score`` (float) the hit rate; ``hits`` (n_samples,) 1.0 for a hit,
        0.0 for a miss, and the share of tied maxima inside the lesion when
        the maximum is tied (the expected hit of a random tie-break, so a
        constant heatmap scores at chance); ``chance`` (float) the mean share
        of ``region`` covered by the dilated lesion, i.e. the score of a
        uniformly random point; ``dilated_masks``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import pointing_game
    >>> masks = np.zeros((2, 8, 8), dtype=bool); masks[:, 0:2, 0:2] = True
    >>> heatmaps = np.zeros((2, 8, 8)); heatmaps[0, 1, 1] = 1; heatmaps[1, 7, 7] = 1
    >>> result = pointing_game(heatmaps, masks, tolerance=0)
    >>> float(result.score), result.hits.tolist(), float(result.chance)
    (0.5, [1.0, 0.0], 0.0625)
    """
    masks = check_maps(masks, "masks")
    heatmaps = check_maps(heatmaps, "heatmaps", len(masks), masks.shape[1:])
    masks = masks.astype(bool)
    empty = np.flatnonzero(~masks.any(axis=(1, 2)))
    if len(empty):
        raise ValueError(
            f"masks: images {empty[:10].tolist()} have no lesion; the pointing game is "
            "defined for images with a lesion only (select them first)."
        )
    dilated = dilate_masks(masks, tolerance)
    peak = heatmaps == heatmaps.max(axis=(1, 2), keepdims=True)
    hits = (peak & dilated).sum((1, 2)) / peak.sum((1, 2))
    if region is None:
        region = np.ones_like(masks)
    region = np.broadcast_to(np.asarray(region, dtype=bool), masks.shape)
    area = region.sum((1, 2))
    if (area == 0).any():
        raise ValueError("region: an image has an empty region.")
    chance = float(np.mean((dilated & region).sum((1, 2)) / area))
    return Bunch(
        score=float(hits.mean()),
        hits=hits.astype(float),
        chance=chance,
        dilated_masks=dilated,
    )


@validate_params(
    {
        "heatmaps": ["array-like"],
        "masks": ["array-like"],
        "region": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def energy_pointing_game(heatmaps, masks, *, region=None):
    """Share of each heatmap's mass that lies inside the lesion.

    The energy-based pointing game of Wang et al. 2020: the sum of the
    (positive part of the) heatmap inside the lesion mask divided by its sum
    over ``region``. Unlike :func:`pointing_game` it looks at the whole map,
    not only at its maximum, so a map that is peaked on the lesion but also
    spread over the rest of the lungs scores lower.

    Parameters
    ----------
    heatmaps : array-like of shape (n_samples, H, W)
        Negative values count as 0.
    masks : array-like of bool, shape (n_samples, H, W)
        Lesion masks; every mask must contain a lesion.
    region : array-like of bool, shape (H, W) or (n_samples, H, W), default=None
        Where the mass is counted (e.g. the lung fields); ``None``: the whole
        image.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``score`` (float) the mean share; ``per_image`` (n_samples,);
        ``chance`` (float) the mean share of ``region`` covered by the lesion,
        i.e. the score of a uniform (or uniformly random) heatmap. An all-zero
        map counts as uniform.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import energy_pointing_game
    >>> masks = np.zeros((1, 4, 4), dtype=bool); masks[0, :2, :2] = True
    >>> heatmaps = np.zeros((1, 4, 4)); heatmaps[0, :2, :] = 1  # top half
    >>> result = energy_pointing_game(heatmaps, masks)
    >>> float(result.score), float(result.chance)
    (0.5, 0.25)
    """
    masks = check_maps(masks, "masks")
    heatmaps = check_maps(heatmaps, "heatmaps", len(masks), masks.shape[1:])
    masks = masks.astype(bool)
    empty = np.flatnonzero(~masks.any(axis=(1, 2)))
    if len(empty):
        raise ValueError(
            f"masks: images {empty[:10].tolist()} have no lesion; the energy-based "
            "pointing game is defined for images with a lesion only."
        )
    if region is None:
        region = np.ones_like(masks)
    region = np.broadcast_to(np.asarray(region, dtype=bool), masks.shape)
    area = region.sum((1, 2))
    if (area == 0).any():
        raise ValueError("region: an image has an empty region.")
    share_of_area = (masks & region).sum((1, 2)) / area
    mass = np.clip(heatmaps.astype(np.float64), 0, None) * region
    total = mass.sum((1, 2))
    inside = (mass * masks).sum((1, 2))
    per_image = np.where(
        total > 0, inside / np.where(total > 0, total, 1), share_of_area
    )
    return Bunch(
        score=float(per_image.mean()),
        per_image=per_image,
        chance=float(share_of_area.mean()),
    )


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "heatmaps": ["array-like"],
        "target": "no_validation",
        "steps": POSITIVE_INT,
        "baseline": BASELINE,
        "batch_size": POSITIVE_INT,
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def deletion_curve(
    estimator,
    X,
    heatmaps,
    *,
    target=None,
    steps=10,
    baseline=0.0,
    batch_size=64,
    random_state=None,
):
    """Target-class probability as the most salient pixels are removed first,
    against the same with a random pixel order.

    A faithful heatmap makes the probability fall faster than random removal,
    so ``auc_salient`` is lower than ``auc_random``.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba``
        Receives the images in the layout ``X`` came in.
    X : array-like
        Images per the data contract.
    heatmaps : array-like of shape (n_samples, H, W)
        Larger = more salient. Ties are broken at random.
    target : None, class label or array-like of shape (n_samples,), default=None
        ``None``: the predicted class of the unmodified image.
    steps : int, default=10
        The curve has ``steps + 1`` points, removing fractions
        ``0, 1/steps, ..., 1`` of the pixels.
    baseline : float in [0, 1], "mean" or "blur", default=0.0
        Value the removed pixels are set to; ``"blur"`` (a strongly blurred
        copy of the image) keeps the images closer to what the model saw in
        training than a constant, whose scattered pixels random removal turns
        into salt noise.
    batch_size : int, default=64
    random_state : int, RandomState instance or None, default=None
        For the random order and for tie-breaking.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``fractions`` (steps + 1,); ``salient`` and ``random`` (steps + 1,)
        the mean target probability; ``salient_per_image`` and
        ``random_per_image`` (n_samples, steps + 1); ``auc_salient`` and
        ``auc_random`` the trapezoid areas under the mean curves.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcxr.inspection import deletion_curve
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 64), dtype=np.float32)
    >>> y = X.reshape(40, 8, 8)[:, :, :4].mean((1, 2)) > 0.5
    >>> clf = LogisticRegression().fit(X, y)
    >>> maps = np.broadcast_to(clf.coef_.reshape(1, 8, 8), (40, 8, 8))
    >>> result = deletion_curve(clf, X, maps, target=True, steps=4, random_state=0)
    >>> result.fractions.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> bool(result.auc_salient < result.auc_random)
    True
    """
    return _pixel_order_curve(
        estimator,
        X,
        heatmaps,
        "deletion",
        target,
        steps,
        baseline,
        batch_size,
        random_state,
    )


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "heatmaps": ["array-like"],
        "target": "no_validation",
        "steps": POSITIVE_INT,
        "baseline": BASELINE,
        "batch_size": POSITIVE_INT,
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def insertion_curve(
    estimator,
    X,
    heatmaps,
    *,
    target=None,
    steps=10,
    baseline="blur",
    batch_size=64,
    random_state=None,
):
    """Target-class probability as the most salient pixels are put back first
    into a blank (by default blurred) image, against a random pixel order.

    The counterpart of :func:`deletion_curve` (Petsiuk et al. 2018): a faithful
    heatmap makes the probability rise faster than random insertion, so
    ``auc_salient`` is higher than ``auc_random``.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba``
        Receives the images in the layout ``X`` came in.
    X : array-like
        Images per the data contract.
    heatmaps : array-like of shape (n_samples, H, W)
        Larger = more salient. Ties are broken at random.
    target : None, class label or array-like of shape (n_samples,), default=None
        ``None``: the predicted class of the unmodified image.
    steps : int, default=10
        The curve has ``steps + 1`` points, inserting fractions
        ``0, 1/steps, ..., 1`` of the pixels.
    baseline : float in [0, 1], "mean" or "blur", default="blur"
        The image the pixels are inserted into; Petsiuk et al. start from a
        blurred copy, which a constant would turn into salt noise.
    batch_size : int, default=64
    random_state : int, RandomState instance or None, default=None
        For the random order and for tie-breaking.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        The keys of :func:`deletion_curve`: ``fractions``; ``salient`` and
        ``random`` the mean probabilities; ``salient_per_image`` and
        ``random_per_image``; ``auc_salient`` and ``auc_random``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcxr.inspection import insertion_curve
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 64), dtype=np.float32)
    >>> y = X.reshape(40, 8, 8)[:, :, :4].mean((1, 2)) > 0.5
    >>> clf = LogisticRegression().fit(X, y)
    >>> maps = np.broadcast_to(clf.coef_.reshape(1, 8, 8), (40, 8, 8))
    >>> result = insertion_curve(clf, X, maps, target=True, steps=4, random_state=0)
    >>> bool(result.auc_salient > result.auc_random)
    True
    """
    return _pixel_order_curve(
        estimator,
        X,
        heatmaps,
        "insertion",
        target,
        steps,
        baseline,
        batch_size,
        random_state,
    )


def _pixel_order_curve(
    estimator, X, heatmaps, kind, target, steps, baseline, batch_size, random_state
):
    """Deletion (salient pixels replaced by ``baseline`` first) or insertion
    (salient pixels of the image put into ``baseline`` first) curves."""
    images, layout = check_images(X)
    n, height, width = images.shape
    maps = check_maps(heatmaps, "heatmaps", n, (height, width)).reshape(n, -1)
    rng = check_random_state(random_state)
    fill = baseline_values(images, baseline).reshape(n, -1)
    idx, _ = reference_proba(estimator, images, layout, target, batch_size)

    n_pixels = height * width
    counts = np.round(np.linspace(0, 1, steps + 1) * n_pixels).astype(int)
    salient_order = np.lexsort((rng.random_sample(maps.shape), -maps), axis=1)
    random_order = np.argsort(rng.random_sample(maps.shape), axis=1)
    flat = images.reshape(n, -1)

    # every (order, step, image) in one stream, sent in batches of batch_size
    ranks = np.empty((2, n, n_pixels), dtype=np.intp)
    for k, order in enumerate((salient_order, random_order)):
        np.put_along_axis(ranks[k], order, np.arange(n_pixels)[None], axis=1)
    first, second = (fill, flat) if kind == "deletion" else (flat, fill)
    shape = (2, steps + 1, n)
    probs = np.empty(shape)
    for start in range(0, probs.size, batch_size):
        rows = np.arange(start, min(start + batch_size, probs.size))
        c, s, i = np.unravel_index(rows, shape)
        changed = ranks[c, i] < counts[s][:, None]
        mixed = np.where(changed, first[i], second[i]).reshape(-1, height, width)
        proba = predict_proba_images(
            estimator, mixed.astype(np.float32), layout, batch_size
        )
        probs[c, s, i] = proba[np.arange(len(rows)), idx[i]]
    salient, random = probs[0].T, probs[1].T
    fractions = counts / n_pixels
    return Bunch(
        fractions=fractions,
        salient=salient.mean(0),
        random=random.mean(0),
        salient_per_image=salient,
        random_per_image=random,
        auc_salient=float(_trapezoid(salient.mean(0), fractions)),
        auc_random=float(_trapezoid(random.mean(0), fractions)),
    )
