"""Region attribution ("which lung, which zone drives the prediction") and the
intensity-sum "silhouette" baseline.

Side convention
---------------
Chest X-rays are displayed in the radiological convention: the patient faces
the viewer, so the **patient's right lung is on the image's left** and the
patient's left lung (with most of the heart) is on the image's right. Every
region is therefore named by both sides, e.g. ``"patient right / image left"``
for the image's left half, and the result also carries ``patient_sides``
(``"right"``/``"left"``) so that an attribution can be compared with a lesion
side directly. An image that was flipped left-right (some augmentations do)
breaks the convention; region names describe the pixels as given.
"""

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import StrOptions, validate_params

from ..utils._validation import check_images, restore_layout
from ._common import (
    BASELINE,
    POSITIVE_INT,
    baseline_values,
    predict_proba_images,
    reference_proba,
)

__all__ = ["region_attribution", "silhouette_side", "silhouette_region", "mask_region"]

_ROWS = {
    "halves": [("", "", 0, 1)],
    "quadrants": [("upper", "top", 0, 2), ("lower", "bottom", 1, 2)],
    "zones": [
        ("upper zone", "top", 0, 3),
        ("middle zone", "middle", 1, 3),
        ("lower zone", "bottom", 2, 3),
    ],
}
# image half -> patient side (radiological convention)
_SIDES = [("left", "right", 0), ("right", "left", 1)]


def region_masks(shape, regions="halves"):
    """Boolean masks of the named regions of an ``(H, W)`` image.

    Returns
    -------
    masks : ndarray of shape (n_regions, H, W), dtype bool
    names : ndarray of str
        ``"patient <side> [<level>] / image <position>"``.
    patient_sides : ndarray of str
        ``"right"`` or ``"left"`` (the patient's side) per region.
    """
    if regions not in _ROWS:
        raise ValueError(f"regions must be one of {sorted(_ROWS)}; got {regions!r}.")
    height, width = shape
    masks, names, sides = [], [], []
    for image_side, patient_side, col in _SIDES:
        c0, c1 = (0, width // 2) if col == 0 else (width // 2, width)
        for level, position, row, n_rows in _ROWS[regions]:
            r0, r1 = height * row // n_rows, height * (row + 1) // n_rows
            mask = np.zeros(shape, dtype=bool)
            mask[r0:r1, c0:c1] = True
            patient = " ".join(filter(None, ["patient", patient_side, level]))
            image = f"{position}-{image_side}" if position else image_side
            masks.append(mask)
            names.append(f"{patient} / image {image}")
            sides.append(patient_side)
    return np.stack(masks), np.array(names), np.array(sides)


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "regions": [StrOptions(set(_ROWS))],
        "target": "no_validation",
        "baseline": BASELINE,
        "batch_size": POSITIVE_INT,
        "masker": "no_validation",
    },
    prefer_skip_nested_validation=True,
)
def region_attribution(
    estimator,
    X,
    *,
    regions="halves",
    target=None,
    baseline=0.0,
    batch_size=64,
    masker=None,
):
    """Probability drop of the target class when each region is occluded.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba``
        Receives the occluded images in the layout ``X`` came in.
    X : array-like
        Images per the data contract.
    regions : {"halves", "quadrants", "zones"}, default="halves"
        ``"halves"``: image left/right half; ``"quadrants"``: upper/lower x
        left/right; ``"zones"``: upper/middle/lower thirds x left/right (the
        radiological lung zones).
    target : None, class label or array-like of shape (n_samples,), default=None
        The class whose probability is watched; ``None``: the predicted class.
    baseline : float in [0, 1], "mean" or "blur", default=0.0
        Fill value of an occluded region; ``"mean"``: each image's mean;
        ``"blur"``: a strongly blurred copy of the image.
    batch_size : int, default=64
        Occluded images per ``predict_proba`` call.
    masker : estimator, array-like of bool or None, default=None
        Restricts each region to the lung fields: only the pixels of the
        region inside the image's lung mask are occluded. A fitted
        :class:`~skcxr.LungSegmenter` (its :meth:`~skcxr.LungSegmenter.predict`
        masks), a fitted :class:`~skcxr.OtsuMasker` (its ``compute_masks``),
        or the masks themselves, shape ``(n_samples, H, W)``. None occludes
        the whole region.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``scores`` (n_samples, n_regions) probability drops (positive: the
        region supports the class); ``region_names`` (n_regions,) named by the
        patient's side and the image position (see the module docstring);
        ``patient_sides`` (n_regions,) ``"right"``/``"left"``; ``masks``
        (n_regions, H, W); ``top_index``, ``top_region`` and ``top_side``
        (n_samples,): the region with the largest drop, its name and its
        patient side; ``target_proba`` (n_samples,) the unoccluded probability;
        ``lung_masks`` (n_samples, H, W) the masks of ``masker`` (None
        without one).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skcxr.inspection import region_attribution
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 64), dtype=np.float32)  # flat 8x8 images
    >>> y = X.reshape(40, 8, 8)[:, :, :4].mean((1, 2)) > 0.5  # image left half decides
    >>> clf = LogisticRegression().fit(X, y)
    >>> result = region_attribution(clf, X[:3], target=True)
    >>> result.region_names.tolist()
    ['patient right / image left', 'patient left / image right']
    >>> result.top_side.tolist()
    ['right', 'right', 'right']
    """
    images, layout = check_images(X)
    n = len(images)
    masks, names, sides = region_masks(images.shape[1:], regions)
    lungs = _lung_masks(masker, images, layout)
    fill = baseline_values(images, baseline)
    idx, p_ref = reference_proba(estimator, images, layout, target, batch_size)
    n_regions = len(masks)
    scores = np.empty((n, n_regions), dtype=np.float64)
    per_batch = max(1, batch_size // n_regions)
    for start in range(0, n, per_batch):
        part = images[start : start + per_batch]
        hidden = masks[None]
        if lungs is not None:
            hidden = hidden & lungs[start : start + per_batch][:, None]
        occluded = np.where(
            hidden, fill[start : start + per_batch][:, None], part[:, None]
        )
        occluded = occluded.reshape(-1, *images.shape[1:]).astype(np.float32)
        proba = predict_proba_images(estimator, occluded, layout, batch_size)
        proba = proba.reshape(len(part), n_regions, -1)
        rows = np.arange(len(part))
        scores[start : start + len(part)] = (
            p_ref[start : start + len(part), None]
            - proba[rows, :, idx[start : start + len(part)]]
        )
    top = scores.argmax(1)
    return Bunch(
        scores=scores,
        region_names=names,
        patient_sides=sides,
        masks=masks,
        top_index=top,
        top_region=names[top],
        top_side=sides[top],
        target_proba=p_ref,
        lung_masks=lungs,
    )


def _lung_masks(masker, images, layout):
    """``(n, H, W)`` bool lung masks from ``masker`` (see region_attribution)."""
    if masker is None:
        return None
    if hasattr(masker, "compute_masks"):  # OtsuMasker
        masks = masker.compute_masks(restore_layout(images, layout))[0]
    elif hasattr(masker, "predict"):  # LungSegmenter
        masks = masker.predict(restore_layout(images, layout))
    else:
        masks = masker
    masks = np.asarray(masks)
    if masks.dtype != bool or masks.size != images.size:
        raise ValueError(
            "masker must be a fitted LungSegmenter or OtsuMasker, or boolean masks "
            f"of shape {images.shape}; got an array of shape {masks.shape} and "
            f"dtype {masks.dtype}."
        )
    return masks.reshape(images.shape)


@validate_params(
    {"X": ["array-like"], "rule": [StrOptions({"brighter", "darker"})]},
    prefer_skip_nested_validation=True,
)
def silhouette_side(X, *, rule="brighter"):
    """Intensity-sum side rule: name the affected half by its summed intensity.

    A baseline for :func:`region_attribution` (the "silhouette" rule): it
    compares the summed intensity of the two halves of the chest and never
    looks at a model. Consolidation is opaque (bright) on an X-ray, so the
    ``"brighter"`` rule names the half with the larger summed intensity as the
    affected side; ``"darker"`` names the other one. Note that the heart
    alone makes the image's right half (patient's left) brighter in many
    normal images, which is why this rule is a weak baseline.

    Parameters
    ----------
    X : array-like
        Images per the data contract.
    rule : {"brighter", "darker"}, default="brighter"

    Returns
    -------
    sides : ndarray of str, shape (n_samples,)
        Half names as in ``region_attribution(..., regions="halves").region_names``
        (``"patient right / image left"`` or ``"patient left / image right"``).

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import silhouette_side
    >>> image = np.zeros((1, 4, 4), dtype=np.float32); image[0, :, :2] = 1
    >>> silhouette_side(image).tolist()
    ['patient right / image left']
    """
    images, _ = check_images(X)
    width = images.shape[2]
    left = images[:, :, : width // 2].sum((1, 2), dtype=np.float64)
    right = images[:, :, width // 2 :].sum((1, 2), dtype=np.float64)
    _, names, _ = region_masks(images.shape[1:], "halves")
    image_right = right > left if rule == "brighter" else right < left
    return names[image_right.astype(int)]


# the lobe box of the silhouette rule, in rows of a 224 px image (upper quadrant)
_LOBE_ROWS_224 = (20, 110)
# image positions accepted by mask_region, as (column half, row half or None)
_POSITIONS = {
    "left": (0, None),
    "right": (1, None),
    "top-left": (0, 0),
    "bottom-left": (0, 1),
    "top-right": (1, 0),
    "bottom-right": (1, 1),
}


def _pick(first, second, rule):
    """1 where ``second`` is the brighter (``"brighter"``) or darker part."""
    return (second > first if rule == "brighter" else second < first).astype(int)


@validate_params(
    {"X": ["array-like"], "rule": [StrOptions({"brighter", "darker"})]},
    prefer_skip_nested_validation=True,
)
def silhouette_region(X, *, rule="brighter"):
    """Silhouette rule narrowed down: half, then quadrant, then lobe box.

    The rule of the upload-interface study of the Kermany images: the affected
    half is the one with the larger summed intensity (as in
    :func:`silhouette_side`); inside that half, the affected quadrant is the
    brighter of its upper and lower quarters; the lesion is then marked by a
    "lobe box" spanning rows 20-110 of a 224 px image for an upper quadrant
    (the mirrored rows 114-204 for a lower one) and the columns of the half,
    scaled to the image size. No model is involved; it is a baseline for the
    heatmaps (compare its ``masks`` with the lesion masks).

    Parameters
    ----------
    X : array-like
        Images per the data contract.
    rule : {"brighter", "darker"}, default="brighter"
        ``"darker"`` picks the darker half and quadrant instead.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``side`` (n_samples,) the half, named as by :func:`silhouette_side`;
        ``quadrant`` (n_samples,) the quadrant, named as by
        ``region_attribution(..., regions="quadrants")``; ``box``
        (n_samples, 4) int ``(row_start, row_stop, col_start, col_stop)`` of
        the lobe box; ``masks`` (n_samples, H, W) bool, the lobe boxes.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import silhouette_region
    >>> image = np.zeros((1, 224, 224), dtype=np.float32)
    >>> image[0, 130:200, 20:100] = 1  # opacity low in the image's left half
    >>> result = silhouette_region(image)
    >>> result.side.tolist(), result.quadrant.tolist()
    (['patient right / image left'], ['patient right lower / image bottom-left'])
    >>> result.box.tolist()
    [[114, 204, 0, 112]]
    """
    images, _ = check_images(X)
    n, height, width = images.shape
    half_w, half_h = width // 2, height // 2
    sums = np.empty((n, 2, 2))  # (image half: left/right, rows: top/bottom)
    for col, (c0, c1) in enumerate([(0, half_w), (half_w, width)]):
        for row, (r0, r1) in enumerate([(0, half_h), (half_h, height)]):
            sums[:, col, row] = images[:, r0:r1, c0:c1].sum((1, 2), dtype=np.float64)
    col = _pick(*sums.sum(2).T, rule)
    per_half = sums[np.arange(n), col]
    row = _pick(per_half[:, 0], per_half[:, 1], rule)

    _, half_names, _ = region_masks((height, width), "halves")
    _, quadrant_names, _ = region_masks((height, width), "quadrants")
    top, bottom = (round(r * height / 224) for r in _LOBE_ROWS_224)
    rows = np.array([(top, bottom), (height - bottom, height - top)])[row]
    cols = np.array([(0, half_w), (half_w, width)])[col]
    box = np.column_stack([rows, cols]).astype(int)
    masks = np.zeros((n, height, width), dtype=bool)
    for k, (r0, r1, c0, c1) in enumerate(box):
        masks[k, r0:r1, c0:c1] = True
    return Bunch(
        side=half_names[col],
        quadrant=quadrant_names[2 * col + row],
        box=box,
        masks=masks,
    )


@validate_params(
    {
        "X": ["array-like"],
        "region": [StrOptions(set(_POSITIONS))],
        "fill": BASELINE,
    },
    prefer_skip_nested_validation=True,
)
def mask_region(X, region, *, fill=0.0):
    """Keep one half or quadrant of each image and blank everything else.

    The helper for the "train on one half or quadrant only" experiment: a
    model fitted on ``mask_region(X_train, "left")`` can only use the image's
    left half (the patient's right lung); comparing its score with a model
    fitted on the other half, or on whole images, shows where the evidence
    is.

    Parameters
    ----------
    X : array-like
        Images per the data contract.
    region : {"left", "right", "top-left", "top-right", "bottom-left", \
            "bottom-right"}
        The part kept, by its position in the image (radiological convention:
        the image's left is the patient's right).
    fill : float in [0, 1], "mean" or "blur", default=0.0
        Value of the blanked pixels; ``"mean"``: each image's mean intensity;
        ``"blur"``: a strongly blurred copy of the image.

    Returns
    -------
    X_masked : ndarray
        Float32 images in the layout ``X`` came in.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.inspection import mask_region
    >>> X = np.ones((2, 4, 4), dtype=np.float32)
    >>> mask_region(X, "top-left")[0]
    array([[1., 1., 0., 0.],
           [1., 1., 0., 0.],
           [0., 0., 0., 0.],
           [0., 0., 0., 0.]], dtype=float32)
    >>> mask_region(X.reshape(2, 16), "right").shape  # flat in, flat out
    (2, 16)
    """
    images, layout = check_images(X)
    height, width = images.shape[1:]
    col, row = _POSITIONS[region]
    keep = np.zeros((height, width), dtype=bool)
    c0, c1 = (0, width // 2) if col == 0 else (width // 2, width)
    r0, r1 = (
        (0, height) if row is None else [(0, height // 2), (height // 2, height)][row]
    )
    keep[r0:r1, c0:c1] = True
    out = np.where(keep, images, baseline_values(images, fill)).astype(np.float32)
    return restore_layout(out, layout)
