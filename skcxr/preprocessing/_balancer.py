"""Balance classes by appending augmented copies of minority-class images."""

import numbers
from collections.abc import Mapping
from math import ceil

import numpy as np
from imblearn.base import BaseSampler
from imblearn.utils import check_sampling_strategy, check_target_type
from sklearn.base import _fit_context
from sklearn.utils import check_consistent_length, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets

from ..utils._validation import restore_layout, validate_images
from ._augment import _check_factor_range, random_augment

__all__ = ["AugmentBalancer"]


def _ratio_targets(ratios, y):
    """Smallest counts in the proportions ``ratios`` that remove no image."""
    if not ratios:
        raise ValueError("ratios must map at least one class to a positive number.")
    classes, counts = np.unique(y, return_counts=True)
    current = dict(zip(classes.tolist(), counts.tolist()))
    unknown = [c for c in ratios if c not in current]
    if unknown:
        raise ValueError(
            f"ratios names classes {unknown} that are not in y; classes in y: "
            f"{sorted(current)}."
        )
    for label, weight in ratios.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, numbers.Real)
            or not (weight > 0 and np.isfinite(weight))
        ):
            raise ValueError(
                f"ratios must map classes to positive numbers; got {weight!r} for "
                f"class {label!r}."
            )
    unit = max(current[label] / weight for label, weight in ratios.items())
    return {
        label: max(current[label], ceil(unit * weight - 1e-9))
        for label, weight in ratios.items()
    }


class AugmentBalancer(BaseSampler):
    """Over-sample classes with augmented copies of their own images.

    ``fit_resample(X, y)`` returns the original images first and unchanged,
    followed by new images: each a random augmentation (flip, rotation,
    zoom, shift, brightness, contrast; see ``random_augment`` in
    ``skcxr.preprocessing._augment``) of an image of the class it is added to, until every
    class reaches its target count. Source images are used as evenly as
    possible: each image of a class is copied once before any is copied twice.

    Inside an :class:`imblearn.pipeline.Pipeline` it resamples during ``fit``
    only; ``predict`` and ``transform`` pass images through untouched.

    Parameters
    ----------
    sampling_strategy : float, str, dict or callable, default="auto"
        Target counts, as in imbalanced-learn's over-samplers: ``"auto"`` (=
        ``"not majority"``) brings every class to the majority count;
        ``"minority"``, ``"not minority"``, ``"all"``; a dict ``{class:
        target count}`` (a target below the current count raises a
        ``ValueError``: this sampler never removes images); a float (binary
        only: minority / majority after resampling); or a callable ``y ->
        dict``.
    ratios : dict or None, default=None
        Class proportions instead of counts, for example ``{"normal": 2,
        "bacteria": 1, "virus": 2}``. Each listed class gets ``ceil(u *
        ratio)`` images with the smallest ``u`` that needs no class to shrink;
        unlisted classes are left as they are. When given,
        ``sampling_strategy`` must stay ``"auto"``.
    flip : bool, default=True
        Random left-right flips.
    rotation : float or None, default=20.0
        Maximum rotation in degrees (±20° by default).
    scale : float or None, default=0.1
        Maximum relative zoom in or out.
    shift : float or None, default=0.1
        Maximum shift as a fraction of the image size.
    brightness : tuple of float or None, default=(1.2, 1.5)
        Range of the brightness factor (x1.2-1.5).
    contrast : tuple of float or None, default=(0.8, 1.2)
        Range of the contrast factor around the image mean.
    policy : {"all", "one_of"}, default="all"
        ``"all"``: every copy gets every enabled transform, each with its own
        random amount. ``"one_of"``: every copy gets exactly one of them,
        chosen uniformly at random (one flip, or one rotation, or one
        brightness change...), as some balancing studies of pediatric
        pneumonia images did; disable the transforms you do not want (e.g.
        ``scale=None, shift=None, contrast=None`` leaves flip, rotation and
        brightness).
    random_state : int, RandomState instance or None, default=None
        Controls the choice of source images and the augmentations.

    Attributes
    ----------
    sampling_strategy_ : dict
        Number of images added per class.
    sample_indices_ : ndarray of shape (n_samples_resampled,)
        Index in ``X`` of the source of every output image: ``0 .. n-1`` for the
        originals, then the image each augmented copy was made from.
    n_features_in_ : int
        Pixels per image.
    image_shape_ : tuple of int
        ``(H, W)`` of the images.

    See Also
    --------
    imblearn.over_sampling.RandomOverSampler : Duplicates instead of augmenting.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr import AugmentBalancer
    >>> X = np.random.default_rng(0).random((6, 16, 16), dtype=np.float32)
    >>> y = np.array(["normal"] * 4 + ["virus"] * 2)
    >>> X_res, y_res = AugmentBalancer(random_state=0).fit_resample(X, y)
    >>> X_res.shape, sorted(y_res.tolist()).count("virus")
    ((8, 16, 16), 4)
    >>> sampler = AugmentBalancer(ratios={"normal": 1, "virus": 2}, random_state=0)
    >>> X_res, y_res = sampler.fit_resample(X, y)
    >>> int((y_res == "virus").sum()), sampler.sample_indices_[6:].tolist()
    (8, [4, 5, 4, 5, 4, 5])
    """

    _sampling_type = "over-sampling"

    _parameter_constraints: dict = {
        "sampling_strategy": [
            Interval(numbers.Real, 0, 1, closed="right"),
            StrOptions({"auto", "minority", "not minority", "not majority", "all"}),
            Mapping,
            callable,
        ],
        "ratios": [Mapping, None],
        "flip": ["boolean"],
        "rotation": [Interval(numbers.Real, 0, 180, closed="both"), None],
        "scale": [Interval(numbers.Real, 0, 1, closed="left"), None],
        "shift": [Interval(numbers.Real, 0, 1, closed="left"), None],
        "brightness": [tuple, list, None],
        "contrast": [tuple, list, None],
        "policy": [StrOptions({"all", "one_of"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        sampling_strategy="auto",
        ratios=None,
        flip=True,
        rotation=20.0,
        scale=0.1,
        shift=0.1,
        brightness=(1.2, 1.5),
        contrast=(0.8, 1.2),
        policy="all",
        random_state=None,
    ):
        self.sampling_strategy = sampling_strategy
        self.ratios = ratios
        self.flip = flip
        self.rotation = rotation
        self.scale = scale
        self.shift = shift
        self.brightness = brightness
        self.contrast = contrast
        self.policy = policy
        self.random_state = random_state

    def _check_images_targets(self, X, y):
        for name in ("brightness", "contrast"):
            _check_factor_range(name, getattr(self, name))
        check_classification_targets(y)
        images, layout = validate_images(self, X, reset=True)
        y, binarize_y = check_target_type(y, indicate_one_vs_all=True)
        if binarize_y:
            raise ValueError(
                "y must be a 1-D class label per image; AugmentBalancer does not "
                "resample multilabel (indicator) targets."
            )
        check_consistent_length(images, y)
        y = np.asarray(y)
        if self.ratios is not None:
            if not (
                isinstance(self.sampling_strategy, str)
                and self.sampling_strategy == "auto"
            ):
                raise ValueError(
                    "Give either ratios or sampling_strategy, not both; got "
                    f"ratios={self.ratios!r} and "
                    f"sampling_strategy={self.sampling_strategy!r}."
                )
            strategy = _ratio_targets(self.ratios, y)
        else:
            strategy = self.sampling_strategy
        self.sampling_strategy_ = check_sampling_strategy(
            strategy, y, self._sampling_type
        )
        return images, layout, y

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Validate the images and compute how many images each class gets.

        Use :meth:`fit_resample` to get the balanced data.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) \
                or (n_samples, H*W)
            Images in [0, 1].
        y : array-like of shape (n_samples,)
            Class labels (strings are fine).

        Returns
        -------
        self : AugmentBalancer
        """
        self._check_images_targets(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_resample(self, X, y):
        """Return the images and labels with augmented copies appended.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) \
                or (n_samples, H*W)
            Images in [0, 1].
        y : array-like of shape (n_samples,)
            Class labels (strings are fine).

        Returns
        -------
        X_resampled : ndarray, float32, in the layout of ``X``
            The ``n_samples`` originals, then the augmented copies.
        y_resampled : ndarray of shape (n_samples_resampled,)
        """
        images, layout, y = self._check_images_targets(X, y)
        X_res, y_res = self._fit_resample(images, y)
        return restore_layout(X_res, layout), y_res

    def _fit_resample(self, X, y):
        random_state = check_random_state(self.random_state)
        rng = np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
        sources = []
        for label, n_new in self.sampling_strategy_.items():
            if n_new <= 0:
                continue
            members = np.flatnonzero(y == label)
            rounds = -(-n_new // members.size)
            picks = np.concatenate([rng.permutation(members) for _ in range(rounds)])
            sources.append(picks[:n_new])
        sources = np.concatenate(sources) if sources else np.empty(0, dtype=np.intp)
        self.sample_indices_ = np.concatenate([np.arange(len(X)), sources])
        if not sources.size:
            return X.copy(), y.copy()
        augmented = random_augment(
            X[sources],
            rng,
            flip=self.flip,
            rotation=self.rotation,
            scale=self.scale,
            shift=self.shift,
            brightness=self.brightness,
            contrast=self.contrast,
            policy=self.policy,
        )
        return np.concatenate([X, augmented]), y[self.sample_indices_]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.dataframe = False
        tags.input_tags.string = False
        tags.sampler_tags.sample_indices = True
        return tags
