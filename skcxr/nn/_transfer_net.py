"""The torch modules and the skorch plumbing behind :class:`skcxr.TransferClassifier`."""

import os
import warnings

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.preprocessing import label_binarize
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    LoadInitState,
    LRScheduler,
)
from skorch.callbacks.scoring import PassthroughScoring, ScoringBase
from skorch.history import History
from torch import nn
from torch.nn import functional as F

from ..metrics._multilabel import f1_per_finding, roc_auc_per_finding
from ..utils._split import holdout_split
from ._callbacks import DivergenceGuard

__all__ = [
    "Head",
    "TransferNet",
    "TensorBatches",
    "AugmentBatches",
    "HoldoutSplit",
    "BackboneWarmup",
    "SmoothedBCEWithLogitsLoss",
    "BestCheckpoint",
    "ResumeFromCheckpoint",
    "ValidationScore",
    "parameter_table",
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
    out = {}
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            # a writable contiguous batch: read-only memmaps are copied per batch
            batch = images[start : start + batch_size]
            x = torch.from_numpy(np.require(batch, requirements=("C", "W")))
            x = x[:, None].to(device).contiguous(memory_format=torch.channels_last)
            fmap = backbone(x)
            for pooling in ("avg", "max"):
                if pooling not in out:  # (n, C) float32 once: no per-batch list to join
                    out[pooling] = np.empty((len(images), fmap.shape[1]), np.float32)
                rows = torch.from_numpy(out[pooling][start : start + len(x)])
                rows.copy_(_pool(fmap, pooling))
    backbone.train(was_training)
    return out


def _arrays(dataset):
    """(X, y) arrays of a skorch Dataset or a Subset of one (from HoldoutSplit)."""
    indices = None
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, np.asarray(dataset.indices)
    X, y = dataset.X, dataset.y
    if indices is not None:
        X, y = X[indices], (None if y is None else y[indices])
    with warnings.catch_warnings():
        # a read-only input (e.g. a memmap) is shared, not copied: batches are
        # only ever read from it
        warnings.filterwarnings("ignore", message="The given NumPy array is not")
        X = torch.as_tensor(np.ascontiguousarray(X))
    y = None if y is None else torch.as_tensor(np.asarray(y))
    return X, y


class TensorBatches:
    """A DataLoader stand-in slicing in-memory arrays (no per-sample indexing).

    Yields ``(X_batch, y_batch)``; the order is reshuffled each epoch from
    ``generator`` when ``shuffle`` (training), and a last training batch of
    one image joins the batch before it. ``transform`` (a callable on X
    batches) is applied to every batch.
    """

    def __init__(
        self, dataset, batch_size=32, shuffle=False, generator=None, transform=None
    ):
        self.X, self.y = _arrays(dataset)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform

    def _bounds(self):
        """Batch boundaries; a training batch of one image (batch norms cannot
        train on it) joins the batch before it."""
        n = len(self.X)
        starts = list(range(0, n, self.batch_size))
        if self.shuffle and len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        return list(zip(starts, [*starts[1:], n]))

    def __len__(self):
        return len(self._bounds())

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start, stop in self._bounds():
            idx = slice(start, stop) if order is None else order[start:stop]
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
    load on any device.

    For a net pickled on its own: :class:`~skcxr.TransferClassifier` stores
    its net as plain data instead (see :mod:`skcxr.nn._state`)."""

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
    """``BCEWithLogitsLoss`` with unknown targets masked out and 0/1 targets
    smoothed towards 1/2.

    A NaN target (a finding the image's data set does not label) adds nothing
    to the loss, which is the mean over the known targets; so data sets that
    label different findings train one network together. A target ``t``
    becomes ``t * (1 - label_smoothing) + label_smoothing / 2``, which is what
    ``CrossEntropyLoss(label_smoothing=...)`` does to a two-class problem.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._transfer_net import SmoothedBCEWithLogitsLoss
    >>> logits, target = torch.zeros(2, 3), torch.ones(2, 3)
    >>> plain = torch.nn.BCEWithLogitsLoss()(logits, target)
    >>> bool(SmoothedBCEWithLogitsLoss(label_smoothing=0.1)(logits, target) == plain)
    True
    >>> partial = torch.tensor([[1.0, float("nan"), 0.0]])
    >>> float(SmoothedBCEWithLogitsLoss()(torch.zeros(1, 3), partial)) == float(plain)
    True
    """

    def __init__(self, *, label_smoothing=0.0, **kwargs):
        super().__init__(**kwargs)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        target = target.to(input.dtype)
        known = ~torch.isnan(target)
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + self.label_smoothing / 2
        if bool(known.all()):
            return super().forward(input, target)
        losses = F.binary_cross_entropy_with_logits(
            input,
            torch.where(known, target, torch.zeros_like(target)),
            weight=self.weight,
            pos_weight=self.pos_weight,
            reduction="none",
        )
        return (losses * known).sum() / known.sum().clamp_min(1)


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


class BestCheckpoint(Checkpoint):
    """skorch ``Checkpoint`` into ``dirname`` that puts the best saved weights
    back into the net when training ends (keeping the whole history).

    skorch's own ``load_best=True`` would also load the saved history, which
    stops at the best epoch.
    """

    def on_train_end(self, net, **kwargs):
        params = self.get_formatted_files(net)["f_params"]
        if os.path.exists(params):
            net.load_params(f_params=params)


class ResumeFromCheckpoint(LoadInitState):
    """skorch ``LoadInitState``: start from the checkpoint when its folder has one.

    After loading the weights, optimizer state and history:

    - the "best so far" scores of the scoring callbacks are recomputed from the
      loaded history (skorch's default loss scorers, notified before this
      callback, would otherwise take the first resumed epoch for the best one
      and overwrite the best checkpoint);
    - for an epoch-indexed LR schedule (anything but reduce-on-plateau), the
      learning rates go back to the ones of the last saved epoch (its
      ``event_lr``), since the schedule, rebuilt by skorch at the saved epoch,
      takes that epoch's step again. Put this callback before the
      ``LRScheduler`` one.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if not len(net.history):
            return
        self._rewind_lr(net)
        for _, callback in net.callbacks_:
            name = getattr(callback, "name_", getattr(callback, "name", None))
            lower = getattr(callback, "lower_is_better", None)
            if not isinstance(callback, (ScoringBase, PassthroughScoring)):
                continue
            if lower is None:
                continue
            try:
                scores = [s for s in net.history[:, name] if np.isfinite(s)]
            except (KeyError, TypeError):
                continue
            if scores:
                callback.best_score_ = min(scores) if lower else max(scores)

    @staticmethod
    def _rewind_lr(net):
        last_lr = net.history[-1].get("event_lr")
        stepped = any(
            isinstance(cb, LRScheduler)
            and cb.policy_ is not torch.optim.lr_scheduler.ReduceLROnPlateau
            for _, cb in net.callbacks_
        )
        groups = net.optimizer_.param_groups
        if not stepped or last_lr is None or not groups[0]["lr"]:
            return
        factor = last_lr / groups[0]["lr"]
        for group in groups:
            group["lr"] *= factor


def checkpoint_epochs(folder):
    """How many epochs the checkpoint in ``folder`` has trained (0 if none)."""
    path = os.path.join(os.fspath(folder), "history.json")
    if not os.path.exists(path):
        return 0
    return len(History.from_file(path))


class ValidationScore:
    """Scoring function of an ``EpochScoring`` on the validation split.

    ``metric="auc"``: ROC AUC, one-vs-rest and macro-averaged over the classes
    (or labels) that have both positive and negative validation samples (NaN when
    none has); for two classes, the AUC of the positive class. ``metric="f1"``:
    macro F1 of the predicted classes (multi-label: of the labels predicted with
    probability > 0.5). Multi-label scores are computed per finding over its
    known labels (NaN targets are unknown) and averaged over the findings.
    """

    def __init__(self, metric, n_classes, multilabel):
        self.metric = metric
        self.n_classes = n_classes
        self.multilabel = multilabel

    def __call__(self, net, X, y):
        proba = np.asarray(net.predict_proba(X), dtype=np.float64)
        y = np.asarray(_arrays(X)[1] if y is None else y)
        if self.multilabel:  # per finding over its known (non-NaN) labels
            per_finding = (
                f1_per_finding(y, proba > 0.5)
                if self.metric == "f1"
                else roc_auc_per_finding(y, proba)
            )
            if np.isnan(per_finding).all():
                return float("nan")
            return float(np.nanmean(per_finding))
        if self.metric == "f1":
            pred = proba.argmax(axis=1)
            return float(f1_score(y, pred, average="macro", zero_division=0))
        Y = label_binarize(y, classes=np.arange(self.n_classes))
        P = proba[:, 1:] if self.n_classes == 2 else proba
        keep = (Y.min(axis=0) == 0) & (Y.max(axis=0) == 1)
        if not keep.any():
            return float("nan")
        return float(roc_auc_score(Y[:, keep], P[:, keep], average="macro"))


def parameter_table(module, blocks=()):
    """Trainable and non-trainable parameter counts per top-level block of ``module``.

    ``blocks`` are dotted names of submodules counted as rows of their own (e.g.
    ``backbone.blocks``, prefixed ``"backbone."``); every other parameter is
    counted in the row of its top-level child (``"backbone"`` holds the backbone
    parameters outside ``blocks``, such as a stem). A parameter is trainable when
    it has ``requires_grad``. Batch-norm running statistics are buffers, not
    parameters, and are not counted. Rows with no parameter are left out.

    Returns
    -------
    rows : list of dict
        ``{"block", "trainable", "non_trainable"}`` in module order; a list
        :class:`pandas.DataFrame` reads.

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._transfer_net import parameter_table
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    >>> net[0].requires_grad_(False)
    Linear(in_features=2, out_features=3, bias=True)
    >>> parameter_table(net)
    [{'block': '0', 'trainable': 0, 'non_trainable': 9}, {'block': '1', 'trainable': 4, 'non_trainable': 0}]
    """
    blocks = sorted(blocks, key=len, reverse=True)  # the most specific first
    rows = {}
    for name, param in module.named_parameters():
        block = next(
            (b for b in blocks if name == b or name.startswith(b + ".")),
            name.split(".", 1)[0],
        )
        row = rows.setdefault(
            block, {"block": block, "trainable": 0, "non_trainable": 0}
        )
        row["trainable" if param.requires_grad else "non_trainable"] += param.numel()
    return list(rows.values())


_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
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
    lr_step_size=10,
    lr_patience=2,
    min_lr=0.0,
    weight_decay=0.0,
    max_epochs,
    warmup_epochs=0,
    warmup_params=(),
    batch_size,
    validation_fraction,
    early_stopping,
    checkpoint=None,
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
    stay frozen for the first ``warmup_epochs`` epochs. With a validation split,
    ``valid_auc`` and ``valid_f1`` (:class:`ValidationScore`) are recorded every
    epoch. ``checkpoint`` (a folder): the best model by the monitored loss is
    saved there and training resumes from it (:class:`ResumeFromCheckpoint`);
    see :func:`fit_net` for the number of epochs then trained.
    """
    split = HoldoutSplit(validation_fraction, seed) if validation_fraction else None
    monitor = "valid_loss" if split is not None else "train_loss"
    callbacks = [("divergence_guard", DivergenceGuard())]
    if split is not None:
        for metric in ("auc", "f1"):
            callbacks.append(
                (
                    f"valid_{metric}",
                    EpochScoring(
                        ValidationScore(metric, n_classes, multilabel),
                        lower_is_better=False,
                        on_train=False,
                        name=f"valid_{metric}",
                    ),
                )
            )
    saver = None
    if checkpoint is not None:  # loads before the LR schedule reads the history
        saver = BestCheckpoint(monitor=f"{monitor}_best", dirname=os.fspath(checkpoint))
        callbacks.append(("resume", ResumeFromCheckpoint(saver)))
    if warmup_epochs and warmup_params:
        callbacks.append(
            ("warmup", BackboneWarmup(int(warmup_epochs), list(warmup_params)))
        )
    if lr_schedule == "exponential":
        callbacks.append(("lr_schedule", LRScheduler("ExponentialLR", gamma=lr_gamma)))
    elif lr_schedule == "step":
        callbacks.append(
            (
                "lr_schedule",
                LRScheduler("StepLR", step_size=lr_step_size, gamma=lr_gamma),
            )
        )
    elif lr_schedule == "cosine":
        callbacks.append(
            (
                "lr_schedule",
                LRScheduler("CosineAnnealingLR", T_max=max_epochs, eta_min=min_lr),
            )
        )
    elif lr_schedule == "plateau":
        callbacks.append(
            (
                "lr_schedule",
                LRScheduler(
                    "ReduceLROnPlateau",
                    monitor=monitor,
                    factor=lr_gamma,
                    patience=lr_patience,
                    min_lr=min_lr,
                ),
            )
        )
    if saver is not None:  # saves once the epoch's history row is complete
        callbacks.append(("checkpoint", saver))
    if early_stopping is not None:
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(monitor=monitor, patience=early_stopping, load_best=True),
            )
        )
    kwargs = {"optimizer__weight_decay": weight_decay}
    if optimizer == "sgd":
        kwargs["optimizer__momentum"] = 0.9
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
    """``net.fit(X, y)``, then drop training-only state that need not be pickled.

    With a checkpoint callback whose folder holds a checkpoint, only the epochs
    left of ``net.max_epochs`` after the saved history are trained.
    """
    epochs = net.max_epochs
    for _, callback in net.callbacks or ():
        if isinstance(callback, BestCheckpoint):
            epochs = max(epochs - checkpoint_epochs(callback.dirname), 0)
    net.fit(X, y, epochs=epochs)
    for _, callback in net.callbacks_:
        if isinstance(callback, LRScheduler):
            callback.lr_scheduler_ = None
        if isinstance(callback, EarlyStopping):
            callback.best_model_weights_ = None
    return net
