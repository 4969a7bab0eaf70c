"""Score several explanation methods side by side on images with known lesions.

Each method's heatmaps are scored with the pointing game (Zhang et al. 2018),
the share of the map's mass inside the lesion (the energy-based pointing game
of Wang et al. 2020), and the deletion and insertion areas under the curve
(Petsiuk et al. 2018); every score comes with its chance level, and the time
per image with it.
"""

import time
from numbers import Real

from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, validate_params

from ..utils._validation import check_images
from . import (
    deletion_curve,
    energy_pointing_game,
    grad_cam,
    grad_cam_plus_plus,
    insertion_curve,
    occlusion_sensitivity,
    pointing_game,
    saliency,
)
from ._common import BASELINE, POSITIVE_INT, check_maps

__all__ = ["evaluate_explanations"]

METHODS = ("grad_cam", "grad_cam_plus_plus", "saliency", "smoothgrad", "occlusion")

COLUMNS = (
    "method",
    "pointing_game",
    "pointing_game_chance",
    "mass_in_lesion",
    "mass_in_lesion_chance",
    "deletion_auc",
    "deletion_auc_chance",
    "insertion_auc",
    "insertion_auc_chance",
    "seconds_per_image",
)


def _explain(method, estimator, X, target, params, batch_size, random_state):
    """Heatmaps of one method, with its defaults for this evaluation."""
    if method == "grad_cam":
        return grad_cam(estimator, X, target=target, batch_size=batch_size, **params)
    if method == "grad_cam_plus_plus":
        return grad_cam_plus_plus(
            estimator, X, target=target, batch_size=batch_size, **params
        )
    if method in ("saliency", "smoothgrad"):
        kwargs = {"method": "vanilla" if method == "saliency" else "smoothgrad"}
        kwargs.update(random_state=random_state, **params)
        return saliency(estimator, X, target=target, batch_size=batch_size, **kwargs)
    params = {"batch_size": batch_size, **params}
    return occlusion_sensitivity(estimator, X, target=target, **params)


def _format(rows):
    """A fixed-width text table of the rows (three decimals)."""
    header = [
        "method",
        "pointing game",
        "mass in lesion",
        "deletion AUC (lower better)",
        "insertion AUC",
        "s/image",
    ]
    lines = []
    for row in rows:
        lines.append(
            [
                row["method"],
                f"{row['pointing_game']:.3f} ({row['pointing_game_chance']:.3f})",
                f"{row['mass_in_lesion']:.3f} ({row['mass_in_lesion_chance']:.3f})",
                f"{row['deletion_auc']:.3f} ({row['deletion_auc_chance']:.3f})",
                f"{row['insertion_auc']:.3f} ({row['insertion_auc_chance']:.3f})",
                f"{row['seconds_per_image']:.4f}",
            ]
        )
    widths = [max(len(r[k]) for r in [header, *lines]) for k in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    text = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    text += [fmt.format(*line) for line in lines]
    text.append("(chance level in parentheses)")
    return "\n".join(line.rstrip() for line in text)


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "masks": ["array-like"],
        "methods": ["array-like", str],
        "target": "no_validation",
        "region": ["array-like", None],
        "tolerance": [Interval(Real, 0, None, closed="left")],
        "steps": POSITIVE_INT,
        "baseline": BASELINE,
        "method_params": [dict, None],
        "batch_size": POSITIVE_INT,
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def evaluate_explanations(
    estimator,
    X,
    masks,
    *,
    methods=METHODS,
    target=None,
    region=None,
    tolerance=2,
    steps=10,
    baseline="blur",
    method_params=None,
    batch_size=64,
    random_state=None,
):
    """Score explanation methods against known lesions, one row per method.

    For each method the heatmaps of ``X`` are computed and scored:

    * ``pointing_game``: share of images whose heatmap maximum lies in the
      lesion dilated by ``tolerance`` pixels (:func:`pointing_game`); chance:
      the dilated lesion's share of ``region`` (a random point);
    * ``mass_in_lesion``: share of the heatmap's positive mass inside the
      lesion (:func:`energy_pointing_game`); chance: the lesion's share of
      ``region`` (a uniform or random heatmap);
    * ``deletion_auc``: area under the target probability as the most salient
      pixels are replaced by ``baseline`` (:func:`deletion_curve`; lower is
      better); chance: the same with a random pixel order;
    * ``insertion_auc``: area under the target probability as the most salient
      pixels are put back into ``baseline`` (:func:`insertion_curve`; higher
      is better); chance: a random order;
    * ``seconds_per_image``: wall time of the heatmaps alone, per image.

    Parameters
    ----------
    estimator : fitted classifier
        Exposes ``module_`` and ``classes_`` for the gradient methods (e.g. a
        fitted :class:`~skcxr.TransferClassifier`) and ``predict_proba`` for
        occlusion and the curves.
    X : array-like
        Images per the data contract, each with a lesion (typically the
        correctly classified images of a diseased class).
    masks : array-like of bool, shape (n_samples, H, W)
        The lesion of each image, e.g. from
        ``make_chest_xrays(..., return_masks=True)``.
    methods : str or sequence of str, default=("grad_cam", "grad_cam_plus_plus", \
"saliency", "smoothgrad", "occlusion")
        Any of those names: :func:`grad_cam`, :func:`grad_cam_plus_plus`,
        :func:`saliency` with ``method="vanilla"`` or ``"smoothgrad"``, and
        :func:`occlusion_sensitivity`.
    target : None, class label or array-like of shape (n_samples,), default=None
        The class explained and watched by the curves; ``None``: the predicted
        class of each image.
    region : array-like of bool, shape (H, W) or (n_samples, H, W), default=None
        Where the chance levels and the mass are counted, e.g. the lung fields;
        ``None``: the whole image.
    tolerance : float, default=2
        Pointing-game tolerance in pixels; a quarter of the Grad-CAM layer's
        cell (image side / feature-map side / 4) suits coarse maps.
    steps : int, default=10
        Points of the deletion and insertion curves, less one.
    baseline : float in [0, 1], "mean" or "blur", default="blur"
        Fill of the deletion and insertion curves, and of the occluding patch.
    method_params : dict or None, default=None
        Extra keyword arguments per method name, e.g.
        ``{"occlusion": {"patch_size": 4}, "smoothgrad": {"n_samples": 10}}``.
        By default occlusion uses a patch of 1/8 of the image side and half
        that stride, and SmoothGrad 25 noisy copies.
    batch_size : int, default=64
        Images per forward pass of the gradient methods and per
        ``predict_proba`` call of occlusion and the curves.
    random_state : int, RandomState instance or None, default=None
        SmoothGrad noise and the random pixel orders of the curves; with an
        int, every row uses the same random order, so the chance columns of
        the curves are equal across rows.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``rows`` a list of dicts, one per method, with the keys in
        ``columns``; ``columns`` the column names (``"method"``, then each
        score followed by its ``*_chance`` column, then
        ``"seconds_per_image"``); ``heatmaps`` a dict method -> (n_samples,
        H, W) maps; ``text`` the table as fixed-width text; ``n_images``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skcxr.inspection import evaluate_explanations
    >>> class Tiny:  # scores the mean of the image's top-left corner
    ...     classes_ = np.array([0, 1])
    ...     module_ = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1),
    ...         torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 2))
    ...     def predict_proba(self, X):
    ...         with torch.no_grad():
    ...             logits = self.module_(torch.as_tensor(X).reshape(-1, 1, 8, 8))
    ...         return torch.softmax(logits, 1).numpy()
    >>> tiny = Tiny()
    >>> with torch.no_grad():
    ...     _ = tiny.module_[0].weight.fill_(1.0), tiny.module_[0].bias.zero_()
    ...     _ = tiny.module_[3].weight.zero_(), tiny.module_[3].bias.zero_()
    ...     _ = tiny.module_[3].weight[1].view(8, 8)[:3, :3].fill_(1.0)
    >>> X = np.full((4, 8, 8), 0.5, dtype=np.float32)
    >>> masks = np.zeros((4, 8, 8), dtype=bool); masks[:, :3, :3] = True
    >>> result = evaluate_explanations(tiny, X, masks, methods=["saliency"],
    ...                                target=1, tolerance=0, steps=4,
    ...                                baseline=0.0, random_state=0)
    >>> row = result.rows[0]
    >>> row["method"], row["mass_in_lesion"], round(row["mass_in_lesion_chance"], 3)
    ('saliency', 1.0, 0.141)
    >>> bool(row["insertion_auc"] > row["insertion_auc_chance"])
    True
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(
            f"methods: {unknown or methods} not among the known methods "
            f"{list(METHODS)}."
        )
    method_params = dict(method_params or {})
    extra = sorted(set(method_params) - set(methods))
    if extra:
        raise ValueError(f"method_params: keys {extra} are not in methods={methods}.")
    n = len(check_images(X)[0])
    masks = check_maps(masks, "masks").astype(bool)
    if len(masks) != n:
        raise ValueError(f"masks has {len(masks)} maps for {n} images in X.")
    side = min(masks.shape[1:])
    occlusion = {"patch_size": max(1, side // 8), "baseline": baseline}
    occlusion["stride"] = max(1, occlusion["patch_size"] // 2)

    rows, heatmaps = [], {}
    for method in methods:
        params = dict(occlusion) if method == "occlusion" else {}
        params.update(method_params.get(method, {}))
        start = time.perf_counter()
        maps = _explain(method, estimator, X, target, params, batch_size, random_state)
        seconds = (time.perf_counter() - start) / max(n, 1)
        heatmaps[method] = maps
        game = pointing_game(maps, masks, tolerance=tolerance, region=region)
        energy = energy_pointing_game(maps, masks, region=region)
        curves = {}
        for name, func in (
            ("deletion", deletion_curve),
            ("insertion", insertion_curve),
        ):
            curves[name] = func(
                estimator,
                X,
                maps,
                target=target,
                steps=steps,
                baseline=baseline,
                batch_size=batch_size,
                random_state=random_state,
            )
        rows.append(
            {
                "method": method,
                "pointing_game": game.score,
                "pointing_game_chance": game.chance,
                "mass_in_lesion": energy.score,
                "mass_in_lesion_chance": energy.chance,
                "deletion_auc": curves["deletion"].auc_salient,
                "deletion_auc_chance": curves["deletion"].auc_random,
                "insertion_auc": curves["insertion"].auc_salient,
                "insertion_auc_chance": curves["insertion"].auc_random,
                "seconds_per_image": seconds,
            }
        )
    return Bunch(
        rows=rows,
        columns=list(COLUMNS),
        heatmaps=heatmaps,
        text=_format(rows),
        n_images=n,
    )
