"""Performance per subgroup (sex, age band, view, ...) with bootstrap intervals.

A model can be accurate on average and still miss findings more often in one
group of patients: Seyyed-Kalantari et al. 2021 found chest X-ray classifiers
that under-diagnose (call "no finding" on sick patients) women, young
patients, Black and Hispanic patients and patients on Medicaid more often.
:func:`subgroup_metrics` reports each group's value with its percentile
bootstrap interval (Efron & Tibshirani 1993) and its gap to the rest of the
data with an interval from the same resamples, so that a gap is called only
when its interval excludes 0.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ._bootstrap import _COMMON, _check_rng, _percentile_interval, _resample_indices

__all__ = ["subgroup_metrics"]

# Which classes each metric needs: (images with the finding, images without).
_NEEDS = {
    "roc_auc": (True, True),
    "sensitivity": (True, False),
    "fnfr": (True, False),
    "specificity": (False, True),
}
# Entries of the resample-count matrix computed at once (bounds memory).
_CHUNK_ENTRIES = 2**22
_COLUMNS = (
    "attribute",
    "groups",
    "n",
    "n_positive",
    "n_negative",
    "value",
    "ci_low",
    "ci_high",
    "rest_value",
    "gap",
    "gap_ci_low",
    "gap_ci_high",
    "gap_called",
    "estimable",
    "reason",
    "n_resamples",
)


def _binary_target(y_true, pos_label):
    """``y_true == positive class`` as a bool array."""
    found = np.unique(y_true)
    if len(found) > 2:
        raise ValueError(
            f"y_true must be binary (finding or not); got {len(found)} labels "
            f"{found.tolist()}. For a multi-class model score 'any finding': "
            "y_true != healthy label and y_score = 1 - P(healthy)."
        )
    if pos_label is None:
        if found.dtype.kind in "biuf" and set(found.tolist()) <= {0, 1, -1}:
            pos_label = 1
        else:
            raise ValueError(
                f"pos_label: y_true has the labels {found.tolist()}; name the class "
                "with the finding, e.g. pos_label='pneumonia'."
            )
    elif pos_label not in found.tolist():
        raise ValueError(
            f"pos_label={pos_label!r} is not among the labels of y_true "
            f"{found.tolist()}."
        )
    return y_true == pos_label


def _is_missing(value):
    try:
        return value is None or bool(value != value)  # NaN, NaT, pandas NA
    except (TypeError, ValueError):
        return True


def _attributes(groups, n):
    """``[(name, values)]``: one object array of group values per attribute."""
    if hasattr(groups, "columns") and hasattr(groups, "iloc"):  # DataFrame
        items = [(str(c), groups[c].to_numpy()) for c in groups.columns]
    elif isinstance(groups, dict):
        items = [(str(k), v) for k, v in groups.items()]
    else:
        name = getattr(groups, "name", None)
        items = [(str(name) if name is not None else "group", groups)]
    out = []
    for name, values in items:
        values = np.asarray(values, dtype=object)
        if values.ndim != 1 or len(values) != n:
            raise ValueError(
                f"groups: attribute {name!r} must hold one value per image ({n}); "
                f"got shape {values.shape}. Pass several attributes as a dict of "
                "name -> values or a DataFrame."
            )
        out.append((name, values))
    if not out:
        raise ValueError("groups: no attribute given.")
    return out


def _levels(values):
    """Sorted distinct non-missing values and the mask of missing ones."""
    missing = np.fromiter((_is_missing(v) for v in values), bool, len(values))
    present = values[~missing].tolist()
    try:
        levels = sorted(set(present))
    except TypeError:  # mixed types
        levels = sorted(set(present), key=str)
    return levels, missing


class _Subset:
    """Rows of a subset, sorted by score (ties grouped) for the weighted AUC."""

    def __init__(self, mask, positive, score, called):
        self.rows = np.flatnonzero(mask)
        order = np.argsort(score[self.rows], kind="stable")
        self.rows = self.rows[order]
        s = score[self.rows]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        self.starts = None if len(starts) == len(s) else starts  # None: no ties
        self.positive = positive[self.rows].astype(float)
        self.called = called[self.rows]

    def metric(self, name, W):
        """The metric on every resample: ``W`` (n, B) counts of every row.

        nan where the resample holds no image of a class the metric needs.
        """
        W = W[self.rows]  # (m, B): one row of counts per image of the subset
        pos = self.positive
        if name == "roc_auc":
            P = W * pos[:, None]
            N = W - P
            if self.starts is not None:  # tied scores: one block per score
                P = np.add.reduceat(P, self.starts, axis=0)
                N = np.add.reduceat(N, self.starts, axis=0)
            below = np.cumsum(N, axis=0) - N  # weight of negatives scored lower
            num = np.sum(P * (below + 0.5 * N), axis=0)
            den = P.sum(axis=0) * N.sum(axis=0)
        elif name == "specificity":
            neg = 1.0 - pos
            num, den = (neg * ~self.called) @ W, neg @ W
        else:
            hit = self.called if name == "sensitivity" else ~self.called
            num, den = (pos * hit) @ W, pos @ W
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)


def _count_matrices(n, patient_ids, n_resamples, rng):
    """Yield (n, B) matrices: how often each row is in each bootstrap resample.

    The resamples are those of :func:`bootstrap_ci` (images, or whole patients
    when ``patient_ids`` is given), in chunks that bound memory.
    """
    chunk = max(1, _CHUNK_ENTRIES // max(n, 1))
    counts = []
    for idx in _resample_indices(n, patient_ids, n_resamples, rng):
        counts.append(np.bincount(idx, minlength=n))
        if len(counts) == chunk:
            yield np.asarray(counts, dtype=float).T.copy()
            counts = []
    if counts:
        yield np.asarray(counts, dtype=float).T.copy()


def _too_few(metric, n_pos, n_neg, min_count, what):
    """Why ``metric`` cannot be estimated on these counts, or None."""
    need_pos, need_neg = _NEEDS[metric]
    if need_pos and n_pos < min_count:
        return f"{what}: {n_pos} images with the finding (fewer than min_count={min_count})"
    if need_neg and n_neg < min_count:
        return (
            f"{what}: {n_neg} images without the finding (fewer than "
            f"min_count={min_count})"
        )
    return None


def _undefined_too_often(stats, n_resamples, what):
    n_valid = int(np.isfinite(stats).sum())
    if n_valid < max(2, n_resamples / 2):
        return (
            f"{what}: undefined on {n_resamples - n_valid} of {n_resamples} "
            "resamples (too few images of a class)"
        )
    return None


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "groups": ["array-like", dict],
        "metric": [StrOptions(set(_NEEDS))],
        "threshold": [Interval(Real, None, None, closed="neither")],
        "pos_label": [str, Integral, Real, None],
        "min_count": [Interval(Integral, 1, None, closed="left")],
        "patient_ids": ["array-like", None],
        "as_frame": ["boolean"],
    }
    | {k: v for k, v in _COMMON.items() if k != "groups"},
    prefer_skip_nested_validation=True,
)
def subgroup_metrics(
    y_true,
    y_score,
    groups,
    *,
    metric="roc_auc",
    threshold=0.5,
    pos_label=None,
    min_count=10,
    n_resamples=1000,
    confidence_level=0.95,
    random_state=None,
    patient_ids=None,
    as_frame=False,
):
    """A metric per subgroup, with bootstrap intervals and gaps to the rest.

    For every value of every attribute in ``groups`` (for example
    ``sex == "F"``), the metric on that group's images, its percentile
    bootstrap interval, and its *gap*: the group's value minus the value on
    all other images, with an interval. One set of bootstrap resamples of the
    whole test set is drawn (of images, or of patients with ``patient_ids``);
    each resample is split into the group and the rest, so the gap's
    interval accounts for the uncertainty of both sides and for the group's
    size varying from one resample to the next. A gap is called
    (``gap_called``) only when its interval excludes 0.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary truth: the image shows the finding (positive) or not.
    y_score : array-like of shape (n_samples,)
        Score of the finding (higher: more likely), such as
        ``predict_proba(X)[:, 1]``. For a multi-class model use
        ``1 - P(healthy)`` against ``y_true != healthy``.
    groups : array-like of shape (n_samples,), dict or DataFrame
        The subgroup attribute of every image (``"F"``/``"M"``), or several
        attributes: a dict of name -> values or a DataFrame, one column per
        attribute. Missing values (None, nan) form no group; their images
        count in the rest of the data and in the overall value. Bin
        continuous attributes (age) first.
    metric : {"roc_auc", "sensitivity", "specificity", "fnfr"}, default="roc_auc"
        ``"fnfr"``: the false "no finding" rate, images with the finding
        scored below ``threshold`` (under-diagnosis, Seyyed-Kalantari et al.
        2021), ``1 - sensitivity``; lower is better, so a positive gap means
        the group is under-diagnosed.
    threshold : float, default=0.5
        Images with ``y_score >= threshold`` are called positive (for
        sensitivity, specificity and FNFR; the ROC AUC ignores it). Choose it
        on validation data (:func:`threshold_for_sensitivity`).
    pos_label : str, int or float, default=None
        The positive class of ``y_true``; default 1 when the labels are in
        {0, 1} or {-1, 1}.
    min_count : int, default=10
        The fewest images of each class the metric needs (with the finding
        for sensitivity and FNFR, without for specificity, both for ROC AUC)
        for a group, and for the rest of the data, to be estimable. A group
        below it, or whose metric is undefined on more than half of the
        resamples, is reported with ``estimable=False``, nan values and the
        ``reason``.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    confidence_level : float in (0, 1), default=0.95
        Coverage of every interval. It holds per group: with many groups,
        some gap is called by chance more often than ``1 - confidence_level``
        (raise it, e.g. Bonferroni: ``1 - 0.05 / n_groups``).
    random_state : int, numpy Generator, RandomState or None, default=None
        Source of the resamples (never the global NumPy state).
    patient_ids : array-like of shape (n_samples,), default=None
        Patient of every image: patients are resampled with all their images
        (the cluster bootstrap of :func:`bootstrap_ci`). Pass them whenever
        a patient has several images.
    as_frame : bool, default=False
        Return a pandas DataFrame (one row per group; the scalars in
        ``frame.attrs``) instead of a Bunch.

    Returns
    -------
    result : Bunch or DataFrame
        One entry per group (attributes in the given order, values sorted):
        ``attribute``, ``groups`` (the group value), ``n``, ``n_positive``,
        ``n_negative``, ``value``, ``ci_low``, ``ci_high``, ``rest_value``
        (the metric on the other images), ``gap`` (``value - rest_value``),
        ``gap_ci_low``, ``gap_ci_high``, ``gap_called`` (the gap's interval
        excludes 0), ``estimable``, ``reason`` (why not estimable, else
        ``""``) and ``n_resamples`` (resamples on which the group's value is
        defined). The values and intervals of a group that is not estimable
        are nan; the gap of an estimable group whose rest of the data is not
        estimable is nan and not called. Scalars: ``metric``, ``threshold``
        (None for the ROC AUC), ``confidence_level``, ``unit`` ("images" or
        "patients"), ``overall``, ``overall_ci_low`` and ``overall_ci_high``
        (the metric on all images).

    See Also
    --------
    bootstrap_ci : The interval of a metric on the whole test set.
    skcxr.inspection.SubgroupDisplay : The forest plot of the result.

    Notes
    -----
    The ROC AUC on a resample is the Mann-Whitney statistic with each image
    weighted by how often the resample drew it (ties count one half), which
    equals :func:`sklearn.metrics.roc_auc_score` on the resampled rows; the
    thresholded metrics are weighted proportions. Every group and its rest
    are scored on all resamples at once.

    References
    ----------
    Seyyed-Kalantari, L., Zhang, H., McDermott, M. B. A., Chen, I. Y. and
    Ghassemi, M. (2021). Underdiagnosis bias of artificial intelligence
    algorithms applied to chest radiographs in under-served patient
    populations. Nature Medicine 27, 2176-2182.

    Efron, B. and Tibshirani, R. J. (1993). An Introduction to the Bootstrap.
    Chapman & Hall.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.metrics import subgroup_metrics
    >>> rng = np.random.default_rng(0)
    >>> n = 600
    >>> sex = rng.choice(["F", "M"], n)
    >>> y = rng.integers(0, 2, n)

    Scores separate the classes less well on women's images:

    >>> signal = np.where(sex == "F", 0.5, 2.0)
    >>> score = y * signal + rng.normal(size=n)
    >>> res = subgroup_metrics(y, score, sex, n_resamples=200, random_state=0)
    >>> res.groups.tolist(), res.gap_called.tolist()
    (['F', 'M'], [True, True])
    >>> bool(res.gap[0] < 0 < res.gap[1])
    True

    A group too small to estimate is reported, not averaged in:

    >>> view = np.where(np.arange(n) < 8, "AP", "PA")
    >>> res = subgroup_metrics(y, score, {"view": view}, n_resamples=200,
    ...                        random_state=0)
    >>> res.groups.tolist(), res.estimable.tolist(), res.n_positive.tolist()
    (['AP', 'PA'], [False, True], [5, 305])
    >>> print(res.reason[0])
    group: 5 images with the finding (fewer than min_count=10)
    >>> print(res.reason[1])
    gap not estimable: rest of the data: 5 images with the finding (fewer than min_count=10)
    """
    y_true = column_or_1d(y_true)
    y_score = column_or_1d(y_score).astype(float)
    check_consistent_length(y_true, y_score)
    n = len(y_true)
    if n == 0:
        raise ValueError("y_true is empty.")
    if not np.all(np.isfinite(y_score)):
        raise ValueError("y_score must be finite.")
    positive = _binary_target(y_true, pos_label)
    if patient_ids is not None:
        patient_ids = column_or_1d(patient_ids)
        if len(patient_ids) != n:
            raise ValueError(
                f"patient_ids must hold one id per image ({n}); got "
                f"{len(patient_ids)}."
            )
    called = y_score >= threshold
    attributes = _attributes(groups, n)

    # Rows of the result, then the overall value as the last subset.
    names, levels, in_masks = [], [], []
    for name, values in attributes:
        found, missing = _levels(values)
        for level in found:
            names.append(name)
            levels.append(level)
            in_masks.append((values == level) & ~missing)
    everything = np.ones(n, dtype=bool)
    masks = in_masks + [~m for m in in_masks] + [everything]
    k = len(in_masks)

    # Which subsets can be scored at all (enough images of each class).
    what = ["group"] * k + ["rest of the data"] * k + ["all images"]
    reasons = []
    for j, mask in enumerate(masks):
        n_pos = int(np.sum(positive & mask))
        n_neg = int(mask.sum()) - n_pos
        reasons.append(_too_few(metric, n_pos, n_neg, min_count, what[j]))
    # One subset per distinct set of rows (with two groups, the rest of one is
    # the other): ``index[j]`` is the subset of mask ``j``.
    subsets, index, seen = [], {}, {}
    for j, mask in enumerate(masks):
        if reasons[j] is None:
            key = np.packbits(mask).tobytes()
            if key not in seen:
                seen[key] = len(subsets)
                subsets.append(_Subset(mask, positive, y_score, called))
            index[j] = seen[key]

    ones = np.ones((n, 1))
    values = np.array([subset.metric(metric, ones)[0] for subset in subsets])
    resampled = np.full((len(subsets), n_resamples), np.nan)
    rng = _check_rng(random_state)
    start = 0
    for W in _count_matrices(n, patient_ids, n_resamples, rng):
        for i, subset in enumerate(subsets):
            resampled[i, start : start + W.shape[1]] = subset.metric(metric, W)
        start += W.shape[1]
    point = np.full(len(masks), np.nan)
    stats = np.full((len(masks), n_resamples), np.nan)
    for j, i in index.items():
        point[j], stats[j] = values[i], resampled[i]
        reasons[j] = _undefined_too_often(stats[j], n_resamples, what[j])

    def interval(values):
        valid = values[np.isfinite(values)]
        return _percentile_interval(valid, confidence_level)

    rows = {c: [] for c in _COLUMNS}
    for j in range(k):
        mask, rest = masks[j], k + j
        n_pos = int(np.sum(positive & mask))
        row = {
            "attribute": names[j],
            "groups": levels[j],
            "n": int(mask.sum()),
            "n_positive": n_pos,
            "n_negative": int(mask.sum()) - n_pos,
            "value": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "rest_value": np.nan,
            "gap": np.nan,
            "gap_ci_low": np.nan,
            "gap_ci_high": np.nan,
            "gap_called": False,
            "estimable": reasons[j] is None,
            "reason": reasons[j] or "",
            "n_resamples": int(np.isfinite(stats[j]).sum()),
        }
        if row["estimable"]:
            row["value"] = point[j]
            row["ci_low"], row["ci_high"] = interval(stats[j])
            if reasons[rest] is None:
                row["rest_value"] = point[rest]
                row["gap"] = point[j] - point[rest]
                low, high = interval(stats[j] - stats[rest])
                row["gap_ci_low"], row["gap_ci_high"] = low, high
                row["gap_called"] = bool(low > 0 or high < 0)
            else:
                row["reason"] = f"gap not estimable: {reasons[rest]}"
        for c in _COLUMNS:
            rows[c].append(row[c])

    overall = point[-1]
    overall_ci = (np.nan, np.nan) if reasons[-1] else interval(stats[-1])
    scalars = {
        "metric": metric,
        "threshold": None if metric == "roc_auc" else float(threshold),
        "confidence_level": float(confidence_level),
        "unit": "images" if patient_ids is None else "patients",
        "overall": float(overall),
        "overall_ci_low": overall_ci[0],
        "overall_ci_high": overall_ci[1],
    }
    if as_frame:
        import pandas as pd

        frame = pd.DataFrame(rows, columns=list(_COLUMNS))
        frame.attrs.update(scalars)
        return frame
    arrays = {c: np.asarray(v) for c, v in rows.items()}
    arrays["groups"] = np.asarray(rows["groups"], dtype=object)
    return Bunch(**arrays, **scalars)
