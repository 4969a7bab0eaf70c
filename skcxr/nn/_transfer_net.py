"""The torch modules and the skorch plumbing behind :class:`skcxr.TransferClassifier`."""

import numpy as np
import torch
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import Callback, EarlyStopping, LRScheduler
from torch import nn

from ..utils._split import holdout_split

__all__ = [
    "Head",
    "TransferNet",
    "TensorBatches",
    "AugmentBatches",
    "HoldoutSplit",
    "BackboneWarmup",
    "SmoothedBCEWithLogitsLoss",
    "make_net",
    "fit_net",
    "pooled_features",
]


class Head(nn.Module):
    """Pooled features ``(n, C)`` -> dense ReLU layers with dropout -> logits.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._transfer_net import Head
    >>> head = Head(8, (4,), 0.1, 3)
    >>> head(torch.rand(2, 8)).shape, head.embed(torch.rand(2, 8)).shape
    (torch.Size([2, 3]), torch.Size([2, 4]))
    """

    def __init__(self, in_features, sizes, dropout, n_classes):
        super().__init__()
        layers, width = [], in_features
        if not sizes and dropout:
            layers.append(nn.Dropout(dropout))
        for size in sizes:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, n_classes)

    def embed(self, z):
        return self.hidden(z)

    def forward(self, z):
        return self.out(self.hidden(z))


def _pool(fmap, pooling):
    return fmap.mean(dim=(2, 3)) if pooling == "avg" else fmap.amax(dim=(2, 3))


class TransferNet(nn.Module):
    """(resizer ->) backbone -> global pooling -> head; input ``(n, 1, H, W)`` in [0, 1].

    Batches enter the backbone in channels-last memory format (faster
    convolutions on CPU); :class:`~skcxr.TransferClassifier` converts the
    weights too.

    ``embed(x)`` returns the penultimate layer (the input of ``head.out``),
    ``features(x)`` the pooled backbone features, ``forward(x)`` the logits.
    In training mode, batch-norm layers whose parameters are all frozen stay in
    eval mode (their running statistics are part of the frozen backbone).
    """

    def __init__(self, backbone, head, *, pooling="avg", resizer=None):
        super().__init__()
        self.resizer = resizer
        self.backbone = backbone
        self.head = head
        self.pooling = pooling

    def features(self, x):
        if self.resizer is not None:
            x = self.resizer(x)
        x = x.contiguous(memory_format=torch.channels_last)
        return _pool(self.backbone(x), self.pooling)

    def embed(self, x):
        return self.head.embed(self.features(x))

    def forward(self, x):
        return self.head(self.features(x))

    def train(self, mode=True):
        super().train(mode)
        if mode:
            for module in self.backbone.modules():
                params = list(module.parameters(recurse=False))
                if (
                    isinstance(module, nn.modules.batchnorm._BatchNorm)
                    and params
                    and not any(p.requires_grad for p in params)
                ):
                    module.eval()
        return self


def pooled_features(backbone, key, images, *, device, batch_size):
    """Average- and max-pooled features of a frozen backbone, ``{"avg": (n, C), "max": (n, C)}``.

    ``key`` identifies the backbone and its weights for a joblib cache (the
    module itself is not hashed).
    """
    backbone = backbone.to(device)
    was_training = backbone.training
    backbone.eval()
    out = {"avg": [], "max": []}
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(
                np.ascontiguousarray(images[start : start + batch_size])
            )
            x = x[:, None].to(device).contiguous(memory_format=torch.channels_last)
            fmap = backbone(x)
            for pooling in out:
                out[pooling].append(_pool(fmap, pooling).float().cpu().numpy())
    backbone.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def _arrays(dataset):
    """(X, y) arrays of a skorch Dataset or a Subset of one (from HoldoutSplit)."""
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, np.asarray(dataset.indices)
    X, y = dataset.X, dataset.y
    if indices is not None:
        X, y = X[indices], (None if y is None else y[indices])
    X = torch.as_tensor(np.ascontiguousarray(X))
    y = None if y is None else torch.as_tensor(np.asarray(y))
    return X, y


class TensorBatches:
    """A DataLoader stand-in slicing in-memory arrays (no per-sample indexing).

    Yields ``(X_batch, y_batch)``; the order is reshuffled each epoch from
    ``generator`` when ``shuffle``. ``transform`` (a callable on X batches) is
    applied to every batch.
    """

    def __init__(
        self, dataset, batch_size=32, shuffle=False, generator=None, transform=None
    ):
        self.X, self.y = _arrays(dataset)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform

    def __len__(self):
        return -(-len(self.X) // self.batch_size)

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            idx = (
                slice(start, start + self.batch_size)
                if order is None
                else order[start : start + self.batch_size]
            )
            X = self.X[idx]
            if self.transform is not None:
                X = self.transform(X)
            yield X, (torch.zeros(len(X)) if self.y is None else self.y[idx])


class AugmentBatches:
    """Random augmentation of ``(n, 1, H, W)`` training batches (``random_augment``)."""

    def __init__(self, options, seed):
        self.options = {} if options is True else dict(options)
        self.seed = seed
        self._rng = None

    def __call__(self, X):
        from ..preprocessing._augment import random_augment

        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        out = random_augment(X[:, 0].numpy(), self._rng, **self.options)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))[:, None]


class _PickleModuleOnce:
    """Pickles hold the module once (not as both ``module`` and ``module_``) and
    load on any device."""

    def __getstate__(self):
        module = self.__dict__.get("module")
        if isinstance(module, nn.Module):  # the same object as module_: pickle it once
            self.__dict__["module"] = None
            try:
                state = super().__getstate__()
            finally:
                self.__dict__["module"] = module
            state["_module_is_module_"] = True
            return state
        return super().__getstate__()

    def __setstate__(self, state):
        same = state.pop("_module_is_module_", False)
        super().__setstate__(state)
        if same:
            self.module = self.module_


class _Net(_PickleModuleOnce, NeuralNetClassifier):
    """skorch classifier (softmax over classes) of a single-label fit."""


class _MultiLabelNet(_PickleModuleOnce, NeuralNet):
    """skorch net of a multi-label fit: one sigmoid output per label.

    ``predict_proba`` returns the ``(n, n_labels)`` probabilities of the
    positive class of every label.
    """


class SmoothedBCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    """``BCEWithLogitsLoss`` whose 0/1 targets are smoothed towards 1/2.

    A target ``t`` becomes ``t * (1 - label_smoothing) + label_smoothing / 2``,
    which is what ``CrossEntropyLoss(label_smoothing=...)`` does to a two-class
    problem.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._transfer_net import SmoothedBCEWithLogitsLoss
    >>> logits, target = torch.zeros(2, 3), torch.ones(2, 3)
    >>> plain = torch.nn.BCEWithLogitsLoss()(logits, target)
    >>> bool(SmoothedBCEWithLogitsLoss(label_smoothing=0.1)(logits, target) == plain)
    True
    """

    def __init__(self, *, label_smoothing=0.0, **kwargs):
        super().__init__(**kwargs)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        target = target.to(input.dtype)
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + self.label_smoothing / 2
        return super().forward(input, target)


class HoldoutSplit:
    """skorch ``train_split``: a hold-out of ``fraction`` of the samples.

    :func:`skcxr.utils._split.holdout_split` chooses the rows: stratified on a
    1-D ``y`` when every class can be represented on both sides, plain random
    for a 2-D multi-label ``y``; ``groups`` (patient ids), when skorch passes
    them, keep a patient's images on one side.

    Examples
    --------
    >>> import numpy as np
    >>> from skorch.dataset import Dataset
    >>> from skcxr.nn._transfer_net import HoldoutSplit
    >>> X, y = np.zeros((10, 2), np.float32), np.array([0, 1] * 5)
    >>> train, valid = HoldoutSplit(0.2, random_state=0)(Dataset(X, y), y)
    >>> len(train), len(valid), sorted(y[valid.indices].tolist())
    (8, 2, [0, 1])
    """

    def __init__(self, fraction, random_state=None):
        self.fraction = fraction
        self.random_state = random_state

    def __call__(self, dataset, y=None, groups=None):
        labels = np.zeros(len(dataset)) if y is None else np.asarray(y)
        train, valid = holdout_split(
            labels,
            test_size=self.fraction,
            groups=groups,
            random_state=self.random_state,
        )
        return (
            torch.utils.data.Subset(dataset, train),
            torch.utils.data.Subset(dataset, valid),
        )


class BackboneWarmup(Callback):
    """Keep the backbone parameters ``param_names`` frozen for the first
    ``epochs`` epochs, so that the new head is trained before the gradients of
    a random head reach the pretrained layers (linear probing then fine-tuning,
    Kumar et al. 2022).

    While frozen, their batch-norm layers stay in eval mode (see
    :class:`TransferNet`); they are trainable again afterwards and at the end
    of training, whatever happened.
    """

    def __init__(self, epochs, param_names):
        self.epochs = epochs
        self.param_names = param_names

    def _set(self, net, trainable):
        params = dict(net.module_.named_parameters())
        for name in self.param_names:
            params[name].requires_grad_(trainable)

    def on_epoch_begin(self, net, **kwargs):
        self._set(net, len(net.history) > self.epochs)

    def on_train_end(self, net, **kwargs):
        self._set(net, True)


_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


def make_net(
    module,
    *,
    n_classes,
    multilabel=False,
    class_weight=None,
    pos_weight=None,
    label_smoothing=0.0,
    optimizer,
    lr,
    backbone_lr=1.0,
    lr_schedule,
    lr_gamma,
    max_epochs,
    warmup_epochs=0,
    warmup_params=(),
    batch_size,
    validation_fraction,
    early_stopping,
    augment,
    seed,
    device,
    verbose,
    generator,
):
    """The skorch net of a TransferClassifier fit.

    Single-label: softmax cross-entropy over ``n_classes`` (``class_weight``).
    Multi-label: one sigmoid output per label and binary cross-entropy
    (``pos_weight`` per label). ``backbone_lr`` multiplies the learning rate of
    the parameters under ``backbone.``; ``warmup_params`` (parameter names)
    stay frozen for the first ``warmup_epochs`` epochs.
    """
    split = HoldoutSplit(validation_fraction, seed) if validation_fraction else None
    monitor = "valid_loss" if split is not None else "train_loss"
    callbacks = []
    if warmup_epochs and warmup_params:
        callbacks.append(
            ("warmup", BackboneWarmup(int(warmup_epochs), list(warmup_params)))
        )
    if lr_schedule == "exponential":
        callbacks.append(("lr_schedule", LRScheduler("ExponentialLR", gamma=lr_gamma)))
    elif lr_schedule == "cosine":
        callbacks.append(
            ("lr_schedule", LRScheduler("CosineAnnealingLR", T_max=max_epochs))
        )
    elif lr_schedule == "plateau":
        callbacks.append(
            (
                "lr_schedule",
                LRScheduler(
                    "ReduceLROnPlateau", monitor=monitor, factor=lr_gamma, patience=2
                ),
            )
        )
    if early_stopping is not None:
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(monitor=monitor, patience=early_stopping, load_best=True),
            )
        )
    kwargs = {"optimizer__momentum": 0.9} if optimizer == "sgd" else {}
    if backbone_lr != 1.0 and any(
        name.startswith("backbone.") for name, _ in module.named_parameters()
    ):
        kwargs["optimizer__param_groups"] = [("backbone.*", {"lr": lr * backbone_lr})]
    if multilabel:
        cls = _MultiLabelNet
        kwargs.update(
            criterion=SmoothedBCEWithLogitsLoss,
            criterion__pos_weight=pos_weight,
            criterion__label_smoothing=label_smoothing,
            predict_nonlinearity=torch.sigmoid,
        )
    else:
        cls = _Net
        kwargs.update(
            criterion=nn.CrossEntropyLoss,
            criterion__weight=class_weight,
            criterion__label_smoothing=label_smoothing,
            classes=list(range(n_classes)),
        )
    return cls(
        module,
        optimizer=_OPTIMIZERS[optimizer],
        lr=lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=split,
        callbacks=callbacks,
        iterator_train=TensorBatches,
        iterator_train__shuffle=True,
        iterator_train__generator=generator,
        iterator_train__transform=(
            None if not augment else AugmentBatches(augment, seed)
        ),
        iterator_valid=TensorBatches,
        device=device,
        verbose=verbose,
        **kwargs,
    )


def fit_net(net, X, y):
    """``net.fit(X, y)``, then drop training-only state that need not be pickled."""
    net.fit(X, y)
    for _, callback in net.callbacks_:
        if isinstance(callback, LRScheduler):
            callback.lr_scheduler_ = None
        if isinstance(callback, EarlyStopping):
            callback.best_model_weights_ = None
    return net
