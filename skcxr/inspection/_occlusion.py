"""Occlusion sensitivity: how much the target-class probability drops when a
patch of the image is replaced by a baseline value.

Only ``predict_proba`` is used, so it works for any classifier on images (a
:class:`~skcxr.TransferClassifier`, a KNN on CNN embeddings in a
:class:`~sklearn.pipeline.Pipeline`, a plain sklearn model fitted on flat
pixels, ...). The occluded copies are sent to ``predict_proba`` in batches,
in the layout ``X`` came in.

Reference: Zeiler and Fergus 2014, "Visualizing and Understanding
Convolutional Networks", ECCV.
"""

import numpy as np
from sklearn.utils._param_validation import validate_params
from tqdm.auto import tqdm

from ..utils._validation import check_images
from ._common import (
    BASELINE,
    POSITIVE_INT,
    baseline_values,
    predict_proba_images,
    reference_proba,
)

__all__ = ["occlusion_sensitivity"]


def _starts(size, patch, stride):
    starts = list(range(0, max(size - patch, 0) + 1, stride))
    if starts[-1] + patch < size:  # cover the last rows/columns too
        starts.append(size - patch)
    return starts


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "target": "no_validation",
        "patch_size": POSITIVE_INT,
        "stride": POSITIVE_INT,
        "baseline": BASELINE,
        "batch_size": POSITIVE_INT,
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
def occlusion_sensitivity(
    estimator,
    X,
    *,
    target=None,
    patch_size=8,
    stride=4,
    baseline=0.0,
    batch_size=64,
    verbose=False,
):
    """Probability-drop maps from sliding an occluding patch over each image.

    For every patch position the patch is set to ``baseline`` and the drop
    ``p(target | image) - p(target | occluded image)`` is added to the pixels
    under the patch; each pixel's value is the mean drop over the patches that
    cover it.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba``
    X : array-like
        Images per the data contract; the estimator receives the occluded
        copies in the same layout.
    target : None, class label or array-like of shape (n_samples,), default=None
        The class whose probability is watched; ``None``: the predicted class.
    patch_size : int, default=8
        Side of the square patch, in pixels.
    stride : int, default=4
        Step between patch positions; the last row/column of positions is
        added so that every pixel is covered.
    baseline : float in [0, 1], "mean" or "blur", default=0.0
        Fill value of the patch; ``"mean"`` uses each image's mean intensity,
        ``"blur"`` a strongly blurred copy of the image.
    batch_size : int, default=64
        Occluded images per ``predict_proba`` call.
    verbose : bool, default=False
        Show a tqdm progress bar over the batches.

    Returns
    -------
    heatmaps : ndarray of shape (n_samples, H, W), dtype float32
        Mean probability drop per pixel, in [-1, 1]; positive where hiding the
        pixel lowers the target probability (evidence for the class).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcxr.inspection import occlusion_sensitivity
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((20, 64), dtype=np.float32)  # flat 8x8 images
    >>> y = X.reshape(20, 8, 8)[:, :, :4].mean((1, 2)) > 0.5  # left half decides
    >>> clf = LogisticRegression().fit(X, y)
    >>> maps = occlusion_sensitivity(clf, X[:2], patch_size=4, stride=4)
    >>> maps.shape
    (2, 8, 8)
    """
    images, layout = check_images(X)
    n, height, width = images.shape
    if patch_size > min(height, width):
        raise ValueError(
            f"patch_size={patch_size} is larger than the images ({height}x{width})."
        )
    fill = baseline_values(images, baseline)
    idx, p_ref = reference_proba(estimator, images, layout, target, batch_size)

    positions = [
        (r, c)
        for r in _starts(height, patch_size, stride)
        for c in _starts(width, patch_size, stride)
    ]
    jobs = [(i, r, c) for i in range(n) for (r, c) in positions]
    drops = np.zeros((n, height, width), dtype=np.float64)
    counts = np.zeros((height, width), dtype=np.float64)
    for r, c in positions:
        counts[r : r + patch_size, c : c + patch_size] += 1
    starts = range(0, len(jobs), batch_size)
    for start in tqdm(starts, desc="occlusion", disable=not verbose):
        chunk = jobs[start : start + batch_size]
        rows = np.array([j[0] for j in chunk])
        batch = images[rows].copy()
        for k, (i, r, c) in enumerate(chunk):
            batch[k, r : r + patch_size, c : c + patch_size] = fill[
                i, r : r + patch_size, c : c + patch_size
            ]
        proba = predict_proba_images(estimator, batch, layout, batch_size)
        drop = p_ref[rows] - proba[np.arange(len(chunk)), idx[rows]]
        for k, (i, r, c) in enumerate(chunk):
            drops[i, r : r + patch_size, c : c + patch_size] += drop[k]
    return (drops / np.maximum(counts, 1)).astype(np.float32)
