"""Synthetic posteroanterior (PA) chest radiographs with known lesion masks.

Images follow the radiological display convention: the patient faces the
viewer, so the patient's *right* lung is on the image's *left* and the heart
(which sits to the patient's left) bulges towards the image's *right*.  Dense
structures (bone, heart, soft tissue, fluid) are bright; air-filled lungs are
dark, as on a real PA radiograph.

Everything is drawn with numpy on coordinate grids, a batch of images at a
time; randomness comes only from ``random_state``.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, validate_params

from ..utils._random import seed_from
from ._synthetic_findings import FINDINGS
from ._synthetic_findings import _noise as _smooth_noise

__all__ = ["make_chest_xrays"]

CLASSES = ("normal", "bacteria", "virus", "effusion", "atelectasis", "infiltration")
_DEFAULT_CLASSES = ("normal", "bacteria", "virus")
_DEFAULT_FINDINGS = ("effusion", "atelectasis", "infiltration")
_DEFAULT_PREVALENCE = 0.35
_CHUNK_PIXELS = 2**20  # pixels drawn at once: bounds memory (depends on size only)
_F = np.float32


def _sig(z):
    """Logistic function (soft step) in float32."""
    return (0.5 + 0.5 * np.tanh(0.5 * z)).astype(_F, copy=False)


def _col(v):
    """Per-image parameter vector -> broadcastable (n, 1, 1) float32 array."""
    return np.asarray(v, dtype=_F)[:, None, None]


def _blur(images, sigma_px):
    """Separable Gaussian blur with a per-image sigma (reflect padding)."""
    radius = int(np.ceil(3 * max(float(np.max(sigma_px)), 0.3)))
    taps = np.arange(-radius, radius + 1, dtype=_F)
    kern = np.exp(-0.5 * (taps[None, :] / np.maximum(sigma_px, 1e-3)[:, None]) ** 2)
    kern = (kern / kern.sum(axis=1, keepdims=True)).astype(_F)
    size = images.shape[1]
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(images, pad, mode="reflect")
        out = np.zeros_like(images)
        for j in range(2 * radius + 1):
            sl = [slice(None)] * 3
            sl[axis] = slice(j, j + size)
            out += kern[:, j, None, None] * padded[tuple(sl)]
        images = out
    return images


def _validate(n_samples, classes, weights, difficulty, multilabel):
    """Check what the parameter constraints cannot; return classes and weights."""
    if isinstance(n_samples, (bool, np.bool_)):
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
    if isinstance(difficulty, (bool, np.bool_)):
        raise ValueError(f"difficulty must be a float in [0, 1], got {difficulty!r}.")
    if classes is None:
        classes = _DEFAULT_FINDINGS if multilabel else _DEFAULT_CLASSES
    classes = [str(c) for c in classes]
    if len(classes) == 0:
        raise ValueError("classes must name at least one class.")
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown:
        raise ValueError(
            f"classes contains unknown names {unknown}; allowed: {list(CLASSES)}."
        )
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must not repeat a name, got {classes}.")
    k = len(classes)
    if multilabel:
        if "normal" in classes:
            raise ValueError(
                "With multilabel=True, classes are findings: 'normal' is not one (an "
                f"image without finding has an all-zero row of y); got {classes}."
            )
        if weights is None:
            return classes, np.full(k, _DEFAULT_PREVALENCE)
        w = np.asarray(weights, dtype=float).ravel()
        if w.size != k:
            raise ValueError(
                f"With multilabel=True, weights holds the probability of each of "
                f"the len(classes)={k} findings, got {w.size} entries."
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0) or np.any(w > 1):
            raise ValueError(
                "With multilabel=True, weights must be probabilities in [0, 1], "
                f"got {list(w)}."
            )
        return classes, w
    if weights is None:
        w = np.full(k, 1.0 / k)
    else:
        w = np.asarray(weights, dtype=float).ravel()
        if w.size not in (k, k - 1) or w.size == 0:
            raise ValueError(
                f"weights must have len(classes)={k} (or {k - 1}, the last inferred) "
                f"entries, got {w.size}."
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"weights must be finite and non-negative, got {list(w)}.")
        if w.size == k - 1:
            if w.sum() > 1 + 1e-9:
                raise ValueError(
                    f"weights for {k - 1} of {k} classes sum to more than 1: {list(w)}."
                )
            w = np.append(w, max(0.0, 1.0 - w.sum()))
        if w.sum() <= 0:
            raise ValueError("weights must not all be zero.")
        w = w / w.sum()
    return classes, w


def _class_counts(n_samples, w):
    counts = np.floor(n_samples * w).astype(int)
    rest = n_samples - counts.sum()
    order = np.argsort(-(n_samples * w - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "classes": ["array-like", None],
        "weights": ["array-like", None],
        "size": [Interval(Integral, 32, None, closed="left")],
        "difficulty": [Interval(Real, 0, 1, closed="both")],
        "multilabel": ["boolean"],
        "return_masks": ["boolean"],
        "return_lung_masks": ["boolean"],
        "return_metadata": ["boolean"],
        "subgroup_difficulty": [dict, None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_chest_xrays(
    n_samples=100,
    *,
    classes=None,
    weights=None,
    size=128,
    difficulty=0.5,
    multilabel=False,
    return_masks=False,
    return_lung_masks=False,
    return_metadata=False,
    subgroup_difficulty=None,
    random_state=None,
):
    """Generate synthetic PA chest radiographs with class-specific findings.

    Each image has lungs, heart and mediastinum, spine, posterior and anterior
    ribs, clavicles, diaphragm domes (the right one higher), soft tissue and a
    body outline, with patient-to-patient variation in size, position,
    rotation, exposure, noise and blur. Display convention: the patient's
    right is on the image's left, so the heart bulges to the image's right.

    Findings per class (side and lobe drawn at random):

    - ``"normal"``: none.
    - ``"bacteria"``: dense focal or lobar consolidation, more often in a lower
      zone, sometimes with air bronchograms (dark branching lines inside).
    - ``"virus"``: diffuse bilateral interstitial / reticular haze, perihilar
      and basal.
    - ``"effusion"``: fluid at a lung base with a meniscus rising laterally,
      blunting the costophrenic angle.
    - ``"atelectasis"``: volume loss (smaller lung, raised hemidiaphragm,
      mediastinal shift towards it), plate-like linear opacity and a displaced
      fissure.
    - ``"infiltration"``: a few patchy, ill-defined opacities.

    The first three mimic the pediatric pneumonia data of Kermany et al. 2018,
    the last three findings of NIH ChestX-ray14 (Wang et al. 2017), where an
    image may carry several findings at once (``multilabel=True``).

    Parameters
    ----------
    n_samples : int, default=100
        Number of images.
    classes : sequence of str, default=None
        Classes to draw, among ``"normal"``, ``"bacteria"``, ``"virus"``,
        ``"effusion"``, ``"atelectasis"`` and ``"infiltration"``. ``None``
        means ``("normal", "bacteria", "virus")``, or with ``multilabel=True``
        the findings ``("effusion", "atelectasis", "infiltration")``. With
        ``multilabel=True`` every name is a finding (``"normal"`` is not
        allowed: a healthy image has no finding).
    weights : array-like of float, default=None
        Single-label: class proportions, aligned with ``classes`` (normalised
        to sum to 1), or one fewer entry, the last class getting the rest (as
        in :func:`sklearn.datasets.make_classification`). ``None`` balances the
        classes. Counts are exact (``round(n_samples * weight)``, remainders to
        the largest fractions) and labels are shuffled. Multi-label: the
        probability of each finding, drawn independently per image; ``None``
        means 0.35 each, so some images have no finding and some two or three.
    size : int, default=128
        Height and width of the square images (>= 32).
    difficulty : float in [0, 1], default=0.5
        0 gives large, high-contrast findings on similar-looking patients; 1
        gives small, faint findings on very variable, noisy, blurred images, so
        that the classes overlap.
    multilabel : bool, default=False
        Draw each finding of ``classes`` independently on every image, and
        return ``y`` as an indicator matrix.
    return_masks : bool, default=False
        Also return the lesion masks (where the findings are, inside the lungs;
        all False for an image without finding).
    return_lung_masks : bool, default=False
        Also return the lung-field masks: the two lungs as drawn, less where
        the heart, mediastinum and aortic knob cover them (the convention of
        lung segmentation data sets such as JSRT's). The masks are anatomical:
        a consolidation or an effusion does not cut its area out of them, as
        an intensity threshold would. Asking for them changes neither ``X``
        nor ``y``.
    return_metadata : bool, default=False
        Also return the patients' metadata: ``sex`` (``"F"``/``"M"``, even
        odds), ``age`` (years, integers from 18 to 95, mean about 55) and the
        ``view`` of the radiograph (``"PA"`` about 60%, ``"AP"`` 40%). They
        are drawn independently of the labels and images, from a generator
        of their own derived from ``random_state``, so asking for them
        changes neither ``X`` nor ``y``.
    subgroup_difficulty : dict, default=None
        Plant a subgroup effect of known size: ``{attribute: {value:
        difficulty}}`` draws the images of that subgroup at another
        ``difficulty``, e.g. ``{"sex": {"F": 0.9}}`` (women's findings fainter
        than the others', drawn at ``difficulty``). Attributes are those of
        the metadata (``"sex"``, ``"view"``, or ``"age"`` with ``(low, high)``
        year ranges as keys: ``{"age": {(70, 95): 0.9}}``, bounds included);
        an image in several listed subgroups takes the highest difficulty.
        Labels, metadata and the other images' distribution are unchanged.
    random_state : int, RandomState instance or None, default=None
        Seed; the same value always gives the same images.

    Returns
    -------
    X : ndarray of shape (n_samples, size, size), float32
        Images in [0, 1].
    y : ndarray of shape (n_samples,) of str, or (n_samples, n_classes) of int
        Class labels; with ``multilabel=True`` a 0/1 indicator matrix whose
        columns follow ``classes``.
    masks : ndarray of shape (n_samples, size, size), bool
        Only with ``return_masks=True``: the union of the image's findings.
    lung_masks : ndarray of shape (n_samples, size, size), bool
        Only with ``return_lung_masks=True`` (after ``masks``): the lung fields.
    metadata : :class:`~sklearn.utils.Bunch`
        Only with ``return_metadata=True`` (last): ``sex``, ``age`` and
        ``view``, arrays of shape (n_samples,), and ``difficulty``, the
        difficulty each image was drawn at.

    Examples
    --------
    >>> from skcxr.datasets import make_chest_xrays
    >>> X, y, masks = make_chest_xrays(6, size=32, return_masks=True, random_state=0)
    >>> X.shape, X.dtype, sorted(set(y.tolist()))
    ((6, 32, 32), dtype('float32'), ['bacteria', 'normal', 'virus'])
    >>> healthy = y == "normal"
    >>> bool(masks[healthy].any()), bool(masks[~healthy].any(axis=(1, 2)).all())
    (False, True)
    >>> X, Y = make_chest_xrays(
    ...     4, classes=["effusion", "atelectasis"], multilabel=True, size=32,
    ...     random_state=0)
    >>> Y.shape, Y.dtype.kind
    ((4, 2), 'i')

    Patient metadata, and a planted subgroup effect (fainter findings on
    women's images); the labels do not move:

    >>> import numpy as np
    >>> X, y, meta = make_chest_xrays(
    ...     6, size=32, return_metadata=True, subgroup_difficulty={"sex": {"F": 0.9}},
    ...     random_state=0)
    >>> sorted(meta), bool(np.array_equal(y, make_chest_xrays(6, size=32,
    ...                                                     random_state=0)[1]))
    (['age', 'difficulty', 'sex', 'view'], True)
    >>> bool(np.all(meta.difficulty[meta.sex == "F"] == 0.9))
    True

    Lung-field masks, for training and scoring a lung segmentation:

    >>> X, y, lungs = make_chest_xrays(4, size=64, return_lung_masks=True,
    ...                                random_state=0)
    >>> lungs.shape, lungs.dtype, 0.1 < float(lungs.mean()) < 0.5
    ((4, 64, 64), dtype('bool'), True)
    """
    classes, w = _validate(n_samples, classes, weights, difficulty, multilabel)
    seed = seed_from(random_state)
    rng = np.random.default_rng(seed)
    metadata = None
    if return_metadata or subgroup_difficulty is not None:
        # A child generator: the images and labels of a seed stay the same.
        metadata = _draw_metadata(np.random.SeedSequence(seed).spawn(1)[0], n_samples)
        metadata.difficulty = _difficulties(
            metadata, float(difficulty), subgroup_difficulty
        )
    if multilabel:
        y = (rng.random((n_samples, len(classes))) < w).astype(int)
    else:
        counts = _class_counts(n_samples, w)
        y = np.repeat(np.asarray(classes, dtype=object), counts)
        y = y[rng.permutation(n_samples)].astype(str)
    X = np.empty((n_samples, size, size), dtype=_F)
    masks = np.zeros((n_samples, size, size), dtype=bool) if return_masks else None
    lungs = np.zeros((n_samples, size, size), dtype=bool) if return_lung_masks else None
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n_samples, chunk):
        stop = min(start + chunk, n_samples)
        if multilabel:
            present = {c: y[start:stop, j] == 1 for j, c in enumerate(classes)}
        else:
            present = {c: y[start:stop] == c for c in classes}
        if subgroup_difficulty is None:
            img, msk, lng = _draw_batch(
                rng, present, stop - start, size, float(difficulty)
            )
        else:
            img, msk, lng = _draw_by_difficulty(
                rng, present, size, metadata.difficulty[start:stop]
            )
        X[start:stop] = img
        if return_masks:
            masks[start:stop] = msk
        if return_lung_masks:
            lungs[start:stop] = lng
    out = (X, y)
    if return_masks:
        out = (*out, masks)
    if return_lung_masks:
        out = (*out, lungs)
    return (*out, metadata) if return_metadata else out


def _draw_metadata(seed_sequence, n):
    """Sex, age (adults, years) and view of ``n`` patients."""
    rng = np.random.default_rng(seed_sequence)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    age = np.clip(np.rint(rng.normal(55.0, 17.0, n)), 18, 95).astype(int)
    view = np.where(rng.random(n) < 0.6, "PA", "AP")
    return Bunch(sex=sex, age=age, view=view)


def _difficulties(metadata, difficulty, subgroup_difficulty):
    """The difficulty of every image: ``difficulty`` or its subgroup's."""
    out = np.full(len(metadata.sex), difficulty)
    for attribute, levels in (subgroup_difficulty or {}).items():
        if attribute not in ("sex", "age", "view"):
            raise ValueError(
                f"subgroup_difficulty: unknown attribute {attribute!r}; use 'sex', "
                "'age' or 'view'."
            )
        if not isinstance(levels, dict):
            raise ValueError(
                f"subgroup_difficulty[{attribute!r}] must map a value to a "
                f"difficulty, e.g. {{'F': 0.9}}; got {levels!r}."
            )
        values = metadata[attribute]
        for level, level_difficulty in levels.items():
            if not (isinstance(level_difficulty, Real) and 0 <= level_difficulty <= 1):
                raise ValueError(
                    f"subgroup_difficulty[{attribute!r}][{level!r}] must be a "
                    f"difficulty in [0, 1]; got {level_difficulty!r}."
                )
            if attribute == "age":
                try:
                    low, high = level
                except (TypeError, ValueError):
                    raise ValueError(
                        "subgroup_difficulty['age'] keys are (low, high) year "
                        f"ranges, e.g. (70, 95); got {level!r}."
                    ) from None
                member = (values >= low) & (values <= high)
            else:
                allowed = ("F", "M") if attribute == "sex" else ("PA", "AP")
                if level not in allowed:
                    raise ValueError(
                        f"subgroup_difficulty[{attribute!r}]: unknown value "
                        f"{level!r}; use one of {list(allowed)}."
                    )
                member = values == level
            out[member] = np.maximum(out[member], float(level_difficulty))
    return out


def _draw_by_difficulty(rng, present, size, difficulty):
    """Draw a batch whose images have different difficulties, one level at a time."""
    n = len(difficulty)
    images = np.empty((n, size, size), dtype=_F)
    masks = np.zeros((n, size, size), dtype=bool)
    lungs = np.zeros((n, size, size), dtype=bool)
    for level in np.unique(difficulty):
        idx = np.flatnonzero(difficulty == level)
        sub = {name: flags[idx] for name, flags in present.items()}
        images[idx], masks[idx], lungs[idx] = _draw_batch(
            rng, sub, len(idx), size, float(level)
        )
    return images, masks, lungs


def _draw_batch(rng, present, n, size, d):
    """Draw ``n`` radiographs; returns images, lesion masks and lung fields.

    ``present`` maps a finding name to a boolean (n,) vector: the images that
    show it (several findings of one image combine).
    """
    var = 0.5 + d  # patient-to-patient variation grows with difficulty
    N = lambda sd: rng.normal(0.0, sd * var, n)  # noqa: E731
    g = ((np.arange(size, dtype=_F) + 0.5) / size * 2 - 1).astype(_F)
    eps = _F(2.2 / size)  # soft edge of about one pixel

    # Pose: rotation, scale, shift (patient frame xp, yp; image x right, y down).
    ang = np.deg2rad(N(2.5))
    scale = np.clip(1 + N(0.045), 0.8, 1.2)
    tx, ty = N(0.03), N(0.03)
    ca, sa = _col(np.cos(ang) / scale), _col(np.sin(ang) / scale)
    dx, dy = g[None, None, :] - _col(tx), g[None, :, None] - _col(ty)
    xp = (ca * dx + sa * dy).astype(_F)
    yp = (ca * dy - sa * dx).astype(_F)
    del dx, dy

    # Volume loss for atelectasis is an anatomical change: draw it first.
    atel = present.get("atelectasis", np.zeros(n, dtype=bool))
    atel_side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    shift = np.where(atel, atel_side * rng.uniform(0.02, 0.06, n) * (1 - 0.5 * d), 0.0)

    # Body outline and soft tissue.
    W0 = _col(0.84 * (1 + N(0.03)))
    half_w = W0 * (1 + 0.05 * yp)
    body = _sig((half_w - np.abs(xp)) / eps)
    tissue = _col(0.50 * (1 + N(0.05)))
    D = 0.03 + body * (tissue + 0.16 * (np.abs(xp) / half_w) ** 8)
    D += body * 0.06 * _sig((yp - 0.55) / 0.12)

    # Lungs (index 0: patient's right = image left).
    a0, b0 = 0.285 * (1 + N(0.05)), 0.56 * (1 + N(0.04))
    cy = -0.08 + N(0.025)
    dome_h = 0.11 * (1 + N(0.2))
    geo_sides = []
    lung = np.zeros_like(xp)
    for sgn in (-1.0, 1.0):
        a = a0 * (1 + N(0.03))
        b = b0 * (1 + N(0.02))
        cx = sgn * (0.37 + 0.5 * N(0.03))
        raise_ = (0.06 if sgn < 0 else 0.0) + N(0.015)  # right dome higher
        loss = atel & (atel_side == sgn)
        b = np.where(loss, b * (1 - rng.uniform(0.06, 0.14, n) * (1 - 0.5 * d)), b)
        raise_ = np.where(
            loss, raise_ + rng.uniform(0.04, 0.1, n) * (1 - 0.5 * d), raise_
        )
        a = np.where(loss, a * 0.93, a)
        lx = sgn * (xp - _col(cx + shift))
        v = (yp - _col(cy)) / _col(b)
        taper = np.sqrt(np.clip((v + 1) / 1.05, 1e-4, 1)) * (1 + 0.06 * v)
        side = _sig((taper * _col(a) - np.abs(lx + 0.02 * v)) / eps)
        side *= _sig((1.05 - v) * _col(b) / eps) * _sig((v + 0.98) * _col(b) / eps)
        y_d = _col(cy + b * 0.98 - raise_) - _col(dome_h) * np.exp(
            -(((lx + 0.15 * _col(a)) / (0.75 * _col(a))) ** 2)
        )
        side *= _sig((y_d - yp) / eps)
        lung = np.maximum(lung, side)
        geo_sides.append(
            {
                "sgn": sgn,
                "lx": lx,
                "u": lx / _col(a),
                "v": v,
                "lung": side,
                "a": a,
                "b": b,
                "cx": cx,
                "y_d": y_d,
            }
        )

    # Heart, mediastinum, aortic knob, trachea, spine.
    hx, hy = _col(0.13 + N(0.025) + shift), _col(0.33 + N(0.03))
    ha, hb = _col(0.35 * (1 + N(0.07))), _col(0.25 * (1 + N(0.07)))
    tilt = np.deg2rad(-25 + N(6))
    ct, st = _col(np.cos(tilt)), _col(np.sin(tilt))
    hdx, hdy = xp - hx, yp - hy
    rr = np.sqrt(((ct * hdx + st * hdy) / ha) ** 2 + ((ct * hdy - st * hdx) / hb) ** 2)
    heart = _sig((1 - rr) * hb / eps)
    mx = xp - _col(0.015 + shift)
    med = _sig((0.095 + 0.03 * (yp + 1) - np.abs(mx)) / eps) * _sig((0.35 - yp) / 0.05)
    knob = _sig((0.075 - np.sqrt((mx - 0.1) ** 2 + (yp + 0.33) ** 2)) / eps)
    centre = np.maximum(np.maximum(heart, med), knob)
    lung_fields = (lung > 0.5) & (centre < 0.5)
    below = _sig(
        (geo_sides[1]["y_d"] + 0.03 - yp) / 0.03
    )  # heart ends at the left dome
    D += 0.10 * np.maximum(np.maximum(heart * below, med), knob) * body
    spine_x = np.abs(xp - _col(0.5 * shift))
    spine = _sig((0.07 - spine_x) / eps) * (
        0.65 + 0.35 * np.cos(np.pi * (yp - _col(rng.uniform(0, 0.1, n))) / 0.105) ** 2
    )
    D += 0.14 * spine * body
    D -= (
        0.10
        * _sig((0.032 - np.abs(mx + 0.005)) / eps)
        * _sig((-0.32 - yp) / 0.03)
        * body
    )

    # Ribs (posterior: arch laterally then fall; anterior: fainter, falling medially).
    rib_dy = _col(0.125 * (1 + N(0.05)))
    rib_y0 = _col(-0.74 + N(0.02))
    ribs = np.zeros_like(xp)
    clav = np.zeros_like(xp)
    clav_y0 = _col(-0.64 + N(0.03))
    for sgn in (-1.0, 1.0):
        lx2 = sgn * (xp - _col(0.5 * shift))
        inside = _sig((lx2 - 0.07) / eps) * _sig((half_w - 0.02 - lx2) / eps)
        t = (yp - rib_y0 + 0.40 * lx2 - 0.85 * lx2**2) / rib_dy
        frac = t - np.floor(t)
        band = _sig(frac * rib_dy / eps) * _sig((0.42 - frac) * rib_dy / eps)
        band *= (t > 0) & (t < 10)
        ribs += inside * band * (1 + 0.5 * _sig((0.08 - frac) * rib_dy / eps))
        ta = (yp - rib_y0 - 0.25 - 0.40 * (0.85 - lx2)) / rib_dy
        fa = ta - np.floor(ta)
        band_a = _sig(fa * rib_dy / eps) * _sig((0.35 - fa) * rib_dy / eps)
        ribs += (
            0.35 * inside * band_a * ((ta > 0) & (ta < 6)) * _sig((lx2 - 0.3) / 0.06)
        )
        y_c = clav_y0 - 0.10 * lx2 - 0.12 * lx2**2 + 0.25 * lx2**3
        clav += (
            _sig((0.028 - np.abs(yp - y_c)) / eps)
            * _sig((lx2 - 0.05) / eps)
            * _sig((0.6 - lx2) / eps)
        )
    D += body * (0.10 * ribs * (0.3 + 0.7 * lung) + 0.16 * clav)

    # Lung markings: vessels radiating from the hila.
    wiggle = _smooth_noise(rng, n, size, 0.04 * size)
    vessels = np.zeros_like(xp)
    for s in geo_sides:
        hx_, hy_ = s["sgn"] * 0.17, -0.02
        ddx, ddy = s["sgn"] * xp - hx_, yp - hy_
        theta = np.arctan2(ddy, np.abs(ddx) + 1e-3)
        r = np.sqrt(ddx**2 + ddy**2)
        vessels += np.exp(-4 * (1 - np.cos(22 * theta + 1.5 * wiggle))) * np.exp(
            -r / 0.35
        )

    # Findings replace lung air by fluid / tissue.
    lung_bin = lung > 0.5
    opacity = np.zeros_like(xp)
    masks = np.zeros(xp.shape, dtype=bool)
    for name, draw in FINDINGS.items():
        idx = np.flatnonzero(present.get(name, ()))
        if idx.size == 0:
            continue
        geo = {
            "xp": xp[idx],
            "yp": yp[idx],
            "lung": lung[idx],
            "eps": eps,
            "size": size,
            "sides": [
                {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                for s in geo_sides
            ],
            "atel_side": atel_side[idx],
            "hy": hy[idx],
        }
        op, m = draw(rng, geo, d)
        opacity[idx] = np.maximum(opacity[idx], np.clip(op, 0, 1))
        m &= lung_bin[idx]
        for j in np.flatnonzero(
            ~m.any(axis=(1, 2))
        ):  # tiny images: keep the peak pixel
            m[j].flat[np.argmax(op[j] * lung[idx][j])] = True
        masks[idx] |= m

    air = _col(0.40 * (1 + N(0.07))) * lung * (1 - 0.92 * centre)
    D -= air * (1 - opacity) * (1 - 0.05 * vessels)

    # Exposure, quantum noise, detector blur.
    D = np.clip(D, 0, 1)
    D **= _col(np.exp(N(0.12)))
    D *= _col(1 + N(0.05))
    sigma = (0.008 + 0.035 * d) * rng.uniform(0.6, 1.4, n)
    D += (
        _col(sigma)
        * np.sqrt(np.clip(D, 0, 1) + 0.02)
        * rng.standard_normal(D.shape, dtype=_F)
    )
    blur = (0.3 + rng.random(n) * (0.4 + 1.2 * d)) * size / 128
    D = _blur(np.clip(D, 0, 1), blur)
    return np.clip(D, 0, 1).astype(_F, copy=False), masks, lung_fields
