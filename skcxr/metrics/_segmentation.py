"""Overlap and boundary metrics of segmentation masks (lung fields, lesions).

Each metric compares boolean masks image by image and, by default, returns
the mean over the images: a large lung and a small one count the same.
"""

import numpy as np
from scipy import ndimage

__all__ = ["dice_score", "jaccard_score", "hausdorff_distance_95"]


def _check_masks(masks_true, masks_pred):
    """Both masks as boolean ``(n_samples, H, W)`` arrays of one shape."""
    arrays = []
    for name, masks in (("masks_true", masks_true), ("masks_pred", masks_pred)):
        masks = np.asarray(masks)
        if masks.dtype != bool:
            if (
                not np.issubdtype(masks.dtype, np.number)
                or not np.isin(masks, (0, 1)).all()
            ):
                raise ValueError(
                    f"{name} must be boolean masks (or 0/1 numbers); got dtype "
                    f"{masks.dtype} with other values. Threshold probabilities "
                    "first, e.g. proba >= 0.5."
                )
            masks = masks.astype(bool)
        if masks.ndim == 2:
            masks = masks[None]
        if masks.ndim != 3 or masks.shape[0] == 0:
            raise ValueError(
                f"{name} must be a mask of shape (H, W) or masks of shape "
                f"(n_samples, H, W); got shape {masks.shape}."
            )
        arrays.append(masks)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"masks_true has shape {arrays[0].shape} but masks_pred has shape "
            f"{arrays[1].shape}; the masks must match image for image."
        )
    return arrays


def _average(values, average):
    if average is None:
        return values
    if average != "mean":
        raise ValueError(f"average must be 'mean' or None; got {average!r}.")
    return float(np.mean(values))


def _overlap(masks_true, masks_pred):
    true, pred = _check_masks(masks_true, masks_pred)
    inter = np.count_nonzero(true & pred, axis=(1, 2)).astype(np.float64)
    n_true = np.count_nonzero(true, axis=(1, 2)).astype(np.float64)
    n_pred = np.count_nonzero(pred, axis=(1, 2)).astype(np.float64)
    return inter, n_true, n_pred


def dice_score(masks_true, masks_pred, *, average="mean"):
    """Dice similarity coefficient of boolean masks, per image then averaged.

    ``2 |A & B| / (|A| + |B|)`` (Dice 1945; Sørensen 1948): 1 for identical
    masks, 0 for disjoint ones. Two empty masks agree perfectly (1).

    Parameters
    ----------
    masks_true : array-like of shape (n_samples, H, W) or (H, W)
        Reference masks, boolean (or 0/1).
    masks_pred : array-like of the same shape
        Predicted masks, e.g. :meth:`skcxr.LungSegmenter.predict`.
    average : {"mean"} or None, default="mean"
        ``"mean"``: the mean of the per-image scores; ``None``: the
        per-image scores.

    Returns
    -------
    float or ndarray of shape (n_samples,)

    See Also
    --------
    jaccard_score : Intersection over union, ``J = D / (2 - D)`` per image.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import dice_score
    >>> a = np.zeros((1, 4, 4), bool); a[0, :2] = True
    >>> b = np.zeros((1, 4, 4), bool); b[0, 1:3] = True
    >>> dice_score(a, b)
    0.5
    """
    inter, n_true, n_pred = _overlap(masks_true, masks_pred)
    total = n_true + n_pred
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(total > 0, 2.0 * inter / total, 1.0)
    return _average(scores, average)


def jaccard_score(masks_true, masks_pred, *, average="mean"):
    """Jaccard index (intersection over union) of boolean masks, per image.

    ``|A & B| / |A | B|`` (Jaccard 1912): 1 for identical masks, 0 for
    disjoint ones; two empty masks agree perfectly (1).

    Unlike :func:`sklearn.metrics.jaccard_score`, which compares label
    vectors of a classification, this function takes masks of images:
    ``(n_samples, H, W)`` arrays, scored image by image and then averaged.
    Import it as ``skcxr.metrics.jaccard_score`` where both are used.

    Parameters
    ----------
    masks_true : array-like of shape (n_samples, H, W) or (H, W)
        Reference masks, boolean (or 0/1).
    masks_pred : array-like of the same shape
        Predicted masks.
    average : {"mean"} or None, default="mean"
        ``"mean"``: the mean of the per-image scores; ``None``: the
        per-image scores.

    Returns
    -------
    float or ndarray of shape (n_samples,)

    See Also
    --------
    dice_score : The Dice coefficient, ``D = 2 J / (1 + J)`` per image.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import jaccard_score
    >>> a = np.zeros((1, 4, 4), bool); a[0, :2] = True
    >>> b = np.zeros((1, 4, 4), bool); b[0, 1:3] = True
    >>> round(jaccard_score(a, b), 4)
    0.3333
    """
    inter, n_true, n_pred = _overlap(masks_true, masks_pred)
    union = n_true + n_pred - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(union > 0, inter / union, 1.0)
    return _average(scores, average)


def _surface(mask):
    """The pixels of ``mask`` with a 4-neighbour outside it (or on the border)."""
    eroded = ndimage.binary_erosion(mask, border_value=0)
    return mask & ~eroded


def _hd95(true, pred, spacing):
    if not true.any() and not pred.any():
        return 0.0
    if not true.any() or not pred.any():
        return np.inf
    surface_true, surface_pred = _surface(true), _surface(pred)
    to_true = ndimage.distance_transform_edt(~surface_true, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~surface_pred, sampling=spacing)
    distances = np.concatenate([to_pred[surface_true], to_true[surface_pred]])
    return float(np.percentile(distances, 95))


def hausdorff_distance_95(masks_true, masks_pred, *, spacing=1.0, average="mean"):
    """95th percentile Hausdorff distance between mask boundaries, per image.

    The boundary pixels of each mask (those with a 4-neighbour outside it)
    are measured to the nearest boundary pixel of the other mask (Euclidean
    distance transform, :func:`scipy.ndimage.distance_transform_edt`); the
    95th percentile of both directions' distances together is the image's
    distance (Huttenlocher et al. 1993 for the Hausdorff distance; the 95th
    percentile makes it robust to a few stray pixels, as in the medical
    segmentation decathlon). 0 for identical masks; lower is better.

    Parameters
    ----------
    masks_true : array-like of shape (n_samples, H, W) or (H, W)
        Reference masks, boolean (or 0/1).
    masks_pred : array-like of the same shape
        Predicted masks.
    spacing : float or tuple of two floats, default=1.0
        Pixel size (rows, columns), e.g. in millimetres; distances are in
        its unit.
    average : {"mean"} or None, default="mean"
        ``"mean"``: the mean of the per-image distances; ``None``: the
        per-image distances.

    Returns
    -------
    float or ndarray of shape (n_samples,)
        ``inf`` for an image where one mask is empty and the other is not
        (and so the mean); 0 where both are empty.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import hausdorff_distance_95
    >>> a = np.zeros((1, 8, 8), bool); a[0, 2:6, 2:6] = True
    >>> b = np.zeros((1, 8, 8), bool); b[0, 2:6, 3:7] = True
    >>> hausdorff_distance_95(a, b)
    1.0
    >>> hausdorff_distance_95(a, b, spacing=0.5)
    0.5
    """
    true, pred = _check_masks(masks_true, masks_pred)
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (2,))
    if not np.all(spacing > 0) or not np.all(np.isfinite(spacing)):
        raise ValueError(
            f"spacing must be positive pixel sizes; got {spacing.tolist()}."
        )
    distances = np.array([_hd95(t, p, tuple(spacing)) for t, p in zip(true, pred)])
    return _average(distances, average)
