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
from skorch.hf import AccelerateMixin
from skorch.history import History
from torch import nn
from torch.nn import functional as F

from ..metrics._multilabel import f1_per_finding, roc_auc_per_finding
from ..utils._split import holdout_split
from ._callbacks import DivergenceGuard, progress_callbacks
from ._precision import MixedPrecision
from ._torch_utils import freeze_batch_norm_statistics

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
    "scoring_callbacks",
    "lr_schedule_callbacks",
    "training_callbacks",
    "optimizer_kwargs",
    "criterion_kwargs",
    "make_net",
    "fit_net",
    "pooled_features",
    "feature_maps",
]


class Head(nn.Module):
    """Optional 3x3 convolutions on the feature map, then pooled features
    ``(n, C)`` -> dense ReLU layers with dropout -> logits.

    ``convs`` gives the output channels of Conv2d(3x3)-BatchNorm-ReLU blocks
    that :class:`TransferNet` applies to the backbone's feature map
    ``(n, in_features, h, w)`` before its global pooling (the extra
    convolution layers some studies put on a ResNet50 or VGG16 backbone);
    ``forward`` and ``embed`` take the pooled features.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._transfer_net import Head
    >>> head = Head(8, (4,), 0.1, 3)
    >>> head(torch.rand(2, 8)).shape, head.embed(torch.rand(2, 8)).shape
    (torch.Size([2, 3]), torch.Size([2, 4]))
    >>> conv_head = Head(8, (4,), 0.1, 3, convs=(16,))
    >>> conv_head.convs(torch.rand(2, 8, 5, 5)).shape, conv_head.out.in_features
    (torch.Size([2, 16, 5, 5]), 4)
    """

    def __init__(self, in_features, sizes, dropout, n_classes, *, convs=()):
        super().__init__()
        blocks, width = [], in_features
        for channels in convs:
            blocks += [
                # no bias: the batch norm that follows has its own shift
                nn.Conv2d(width, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            width = channels
        # empty without convs: an identity with no parameter, so the state
        # dict of a head without convolutions is unchanged
        self.convs = nn.Sequential(*blocks)
        layers = []
        if not sizes and dropout:  # no dense layer: drop pooled features instead
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
    """(resizer ->) backbone (-> head convolutions) -> global pooling -> head;
    input ``(n, 1, H, W)`` in [0, 1].

    Batches enter the backbone in channels-last memory format (faster
    convolutions on CPU); :class:`~skcxr.TransferClassifier` converts the
    weights too.

    ``embed(x)`` returns the penultimate layer (the input of ``head.out``),
    ``features(x)`` the pooled features (of the backbone's feature map, after
    the head's convolutions when it has any), ``forward(x)`` the logits.
    In training mode, batch-norm layers whose parameters are all frozen stay in
    eval mode (their running statistics are part of the frozen backbone).
    With ``torch.nn.Identity()`` as backbone it takes feature maps: the head
    trained on a frozen backbone's cached maps.
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
        return _pool(self.head.convs(self.backbone(x)), self.pooling)

    def embed(self, x):
        return self.head.embed(self.features(x))

    def forward(self, x):
        return self.head(self.features(x))

    def train(self, mode=True):
        super().train(mode)
        if mode:
            freeze_batch_norm_statistics(self.backbone)
        return self


def feature_maps(backbone, key, images, *, device, batch_size):
    """Feature maps ``(n, C, h, w)`` (float32) of a frozen backbone, for a head
    with convolutions; ``key`` as in :func:`pooled_features`.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.nn import SmallCNN
    >>> from skcxr.nn._transfer_net import feature_maps
    >>> images = np.zeros((3, 16, 16), np.float32)
    >>> feature_maps(SmallCNN((4, 8)), "key", images, device="cpu", batch_size=2).shape
    (3, 8, 4, 4)
    """
    backbone = backbone.to(device)
    was_training = backbone.training
    backbone.eval()
    out = None
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            # a writable contiguous batch: read-only memmaps are copied per batch
            batch = images[start : start + batch_size]
            x = torch.from_numpy(np.require(batch, requirements=("C", "W")))
            x = x[:, None].to(device).contiguous(memory_format=torch.channels_last)
            fmap = backbone(x)
            if out is None:  # filled in place: maps are large, a join would copy them
                out = np.empty((len(images), *fmap.shape[1:]), np.float32)
            out[start : start + len(x)] = fmap.float().cpu().numpy()
    backbone.train(was_training)
    return out


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


class _Net(_PickleModuleOnce, MixedPrecision, NeuralNetClassifier):
    """skorch classifier (softmax over classes) of a single-label fit."""


class _MultiLabelNet(_PickleModuleOnce, MixedPrecision, NeuralNet):
    """skorch net of a multi-label fit: one sigmoid output per label.

    ``predict_proba`` returns the ``(n, n_labels)`` probabilities of the
    positive class of every label.
    """


class _AcceleratedTraining:
    """Before ``AccelerateMixin``: the accelerator trains, predictions after
    ``fit`` stay in the calling process.

    During ``fit`` the data loaders are sharded across the processes; after
    it, ``predict_proba`` runs on the data it is given, in the process that
    calls it (no gathering across processes, which would wait for the others).
    A loss with nothing to train is moved to the accelerator's device, not
    prepared (``DistributedDataParallel`` refuses a module without a trainable
    parameter).
    """

    def fit(self, *args, **kwargs):
        self._in_fit = True
        try:
            return super().fit(*args, **kwargs)
        finally:
            self._in_fit = False

    def get_iterator(self, dataset, training=False):
        if getattr(self, "_in_fit", False):
            return super().get_iterator(dataset, training=training)
        return super(AccelerateMixin, self).get_iterator(dataset, training=training)

    def evaluation_step(self, batch, training=False):
        if getattr(self, "_in_fit", False):
            return super().evaluation_step(batch, training=training)
        return super(AccelerateMixin, self).evaluation_step(batch, training=training)

    def _initialize_accelerator(self):
        criteria = list(self._criteria)
        kept = []
        for name in criteria:
            criterion = getattr(self, name + "_")
            if isinstance(criterion, nn.Module) and not any(
                p.requires_grad for p in criterion.parameters()
            ):
                setattr(self, name + "_", criterion.to(self.accelerator.device))
            else:
                kept.append(name)
        self._criteria = kept
        try:
            return super()._initialize_accelerator()
        finally:
            self._criteria = criteria


class _AcceleratedNet(_AcceleratedTraining, AccelerateMixin, _Net):
    """skorch classifier trained data-parallel by Accelerate."""


class _AcceleratedMultiLabelNet(_AcceleratedTraining, AccelerateMixin, _MultiLabelNet):
    """Multi-label skorch net trained data-parallel by Accelerate."""


_ACCELERATED = {_Net: _AcceleratedNet, _MultiLabelNet: _AcceleratedMultiLabelNet}


def _quiet(*args, **kwargs):
    """A print sink that prints nothing."""


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
    """Scoring function of an ``EpochScoring`` (validation or training predictions).

    ``metric="auc"``: ROC AUC, one-vs-rest and macro-averaged over the classes
    (or labels) that have both positive and negative samples (NaN when none
    has); for two classes, the AUC of the positive class. ``metric="f1"``:
    macro F1 of the predicted classes (multi-label: of the labels predicted with
    probability > 0.5). ``metric="accuracy"``: the share of correctly predicted
    classes (multi-label: of correct labels at probability 0.5). Multi-label
    scores are computed per finding over its known labels (NaN targets are
    unknown) and averaged over the findings.

    With skorch's ``EpochScoring(use_caching=True)`` (its default), the
    predictions are the ones the epoch already made: those of the validation
    pass, or, with ``on_train=True``, those of the training batches (in train
    mode, so with dropout and augmentation, as Keras reports training
    accuracy), with no second pass over the data.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.nn._transfer_net import ValidationScore
    >>> class Net:
    ...     def predict_proba(self, X):
    ...         return np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> y = np.array([0, 1, 1])
    >>> [round(ValidationScore(m, 2, False)(Net(), None, y), 3)
    ...  for m in ("accuracy", "auc", "f1")]
    [0.667, 1.0, 0.667]
    """

    def __init__(self, metric, n_classes, multilabel):
        self.metric = metric
        self.n_classes = n_classes
        self.multilabel = multilabel

    def __call__(self, net, X, y):
        proba = np.asarray(net.predict_proba(X), dtype=np.float64)
        y = np.asarray(_arrays(X)[1] if y is None else y)
        if self.multilabel:  # per finding over its known (non-NaN) labels
            if self.metric == "f1":
                per_finding = f1_per_finding(y, proba > 0.5)
            elif self.metric == "accuracy":
                known = ~np.isnan(y)
                correct = ((proba > 0.5) == (y > 0.5)) & known
                with np.errstate(invalid="ignore", divide="ignore"):
                    per_finding = correct.sum(axis=0) / known.sum(axis=0)
            else:
                per_finding = roc_auc_per_finding(y, proba)
            if np.isnan(per_finding).all():
                return float("nan")
            return float(np.nanmean(per_finding))
        if self.metric == "f1":
            pred = proba.argmax(axis=1)
            return float(f1_score(y, pred, average="macro", zero_division=0))
        if self.metric == "accuracy":
            return float(np.mean(proba.argmax(axis=1) == y))
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


#: Scores recorded every epoch: ``(history key, ValidationScore metric)``
#: on the training predictions and on the validation split.
TRAIN_SCORES = (("train_acc", "accuracy"), ("train_auc", "auc"))
VALID_SCORES = (("valid_auc", "auc"), ("valid_f1", "f1"))


def scoring_callbacks(*, n_classes, multilabel, validation):
    """The per-epoch scores: ``(name, EpochScoring)`` pairs.

    ``train_acc`` and ``train_auc`` on the predictions of the epoch's
    training batches; with a validation split, ``valid_auc`` and ``valid_f1``
    (and ``valid_acc`` for multi-label, skorch's classifier records it for
    single-label) on the validation predictions. Every score reads the
    predictions skorch cached during the epoch (``use_caching=True``): no
    second pass over the data (see :class:`ValidationScore`).
    """
    scores = [(name, metric, True) for name, metric in TRAIN_SCORES]
    if validation:
        if multilabel:
            scores.append(("valid_acc", "accuracy", False))
        scores += [(name, metric, False) for name, metric in VALID_SCORES]
    return [
        (
            name,
            EpochScoring(
                ValidationScore(metric, n_classes, multilabel),
                lower_is_better=False,
                on_train=on_train,
                use_caching=True,
                name=name,
            ),
        )
        for name, metric, on_train in scores
    ]


def lr_schedule_callbacks(
    lr_schedule, *, monitor, lr_gamma, lr_step_size, lr_patience, min_lr, max_epochs
):
    """The ``("lr_schedule", LRScheduler)`` pair of ``lr_schedule`` (none for None).

    "exponential" decays by ``lr_gamma`` every epoch, "step" every
    ``lr_step_size`` epochs, "cosine" anneals to ``min_lr`` over ``max_epochs``
    and "plateau" multiplies by ``lr_gamma`` after ``lr_patience`` epochs
    without improvement of ``monitor``.
    """
    if lr_schedule is None:
        return []
    if lr_schedule == "exponential":
        scheduler = LRScheduler("ExponentialLR", gamma=lr_gamma)
    elif lr_schedule == "step":
        scheduler = LRScheduler("StepLR", step_size=lr_step_size, gamma=lr_gamma)
    elif lr_schedule == "cosine":
        scheduler = LRScheduler("CosineAnnealingLR", T_max=max_epochs, eta_min=min_lr)
    elif lr_schedule == "plateau":
        scheduler = LRScheduler(
            "ReduceLROnPlateau",
            monitor=monitor,
            factor=lr_gamma,
            patience=lr_patience,
            min_lr=min_lr,
        )
    else:
        raise ValueError(f"Unknown lr_schedule {lr_schedule!r}.")
    return [("lr_schedule", scheduler)]


def training_callbacks(
    *,
    scoring,
    lr_schedule,
    monitor,
    checkpoint=None,
    warmup_epochs=0,
    warmup_params=(),
    early_stopping=None,
):
    """skcxr's callbacks in the order they must run.

    The divergence guard, the ``scoring`` callbacks, the checkpoint loader
    (before the LR schedule reads the history), the backbone warm-up, the
    ``lr_schedule`` callbacks, the checkpoint saver (once the epoch's history
    row is complete) and early stopping on ``monitor``.
    """
    callbacks = [("divergence_guard", DivergenceGuard()), *scoring]
    saver = None
    if checkpoint is not None:
        saver = BestCheckpoint(monitor=f"{monitor}_best", dirname=os.fspath(checkpoint))
        callbacks.append(("resume", ResumeFromCheckpoint(saver)))
    if warmup_epochs and warmup_params:
        callbacks.append(
            ("warmup", BackboneWarmup(int(warmup_epochs), list(warmup_params)))
        )
    callbacks += lr_schedule
    if saver is not None:
        callbacks.append(("checkpoint", saver))
    if early_stopping is not None:
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(monitor=monitor, patience=early_stopping, load_best=True),
            )
        )
    return callbacks


def optimizer_kwargs(module, *, optimizer, lr, backbone_lr, weight_decay):
    """skorch ``optimizer__*`` arguments: weight decay, SGD momentum 0.9, and a
    parameter group of the ``backbone.`` parameters at ``lr * backbone_lr``."""
    kwargs = {"optimizer__weight_decay": weight_decay}
    if optimizer == "sgd":
        kwargs["optimizer__momentum"] = 0.9
    if backbone_lr != 1.0 and any(
        name.startswith("backbone.") for name, _ in module.named_parameters()
    ):
        kwargs["optimizer__param_groups"] = [("backbone.*", {"lr": lr * backbone_lr})]
    return kwargs


def criterion_kwargs(
    *, n_classes, multilabel, class_weight, pos_weight, label_smoothing
):
    """``(net class, skorch keyword arguments)`` of the kind of network.

    Single-label: softmax cross-entropy over ``n_classes`` (``class_weight``).
    Multi-label: one sigmoid output per label and masked binary cross-entropy
    (``pos_weight`` per label, :class:`SmoothedBCEWithLogitsLoss`).
    """
    if multilabel:
        return _MultiLabelNet, dict(
            criterion=SmoothedBCEWithLogitsLoss,
            criterion__pos_weight=pos_weight,
            criterion__label_smoothing=label_smoothing,
            predict_nonlinearity=torch.sigmoid,
        )
    return _Net, dict(
        criterion=nn.CrossEntropyLoss,
        criterion__weight=class_weight,
        criterion__label_smoothing=label_smoothing,
        classes=list(range(n_classes)),
    )


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
    callbacks=(),
    train_precision="32",
    accelerator=None,
):
    """The skorch net of a TransferClassifier fit.

    The loss by kind of network: see :func:`criterion_kwargs`.
    ``backbone_lr`` multiplies the learning rate of the parameters under
    ``backbone.``; ``warmup_params`` (parameter names) stay frozen for the
    first ``warmup_epochs`` epochs. The scores of :func:`scoring_callbacks`
    are recorded every epoch.
    ``checkpoint`` (a folder): the best model by the monitored loss is saved
    there and training resumes from it (:class:`ResumeFromCheckpoint`); see
    :func:`fit_net` for the number of epochs then trained. ``verbose``
    prints skorch's epoch table, and a progress bar on a terminal
    (:func:`~skcxr.nn._callbacks.progress_callbacks`); ``callbacks`` (skorch
    callbacks or ``(name, callback)`` pairs) run after skcxr's own.
    ``train_precision``: see :class:`~skcxr.nn._precision.MixedPrecision`.
    With an ``accelerator`` (``accelerate.Accelerator``) the net is skorch's
    ``AccelerateMixin`` one: the accelerator places the module, wraps it for
    data-parallel training and gives each process its share of every
    epoch's batches through a torch ``DataLoader``.
    """
    split = HoldoutSplit(validation_fraction, seed) if validation_fraction else None
    monitor = "valid_loss" if split is not None else "train_loss"
    training = training_callbacks(
        scoring=scoring_callbacks(
            n_classes=n_classes, multilabel=multilabel, validation=split is not None
        ),
        lr_schedule=lr_schedule_callbacks(
            lr_schedule,
            monitor=monitor,
            lr_gamma=lr_gamma,
            lr_step_size=lr_step_size,
            lr_patience=lr_patience,
            min_lr=min_lr,
            max_epochs=max_epochs,
        ),
        monitor=monitor,
        checkpoint=checkpoint,
        warmup_epochs=warmup_epochs,
        warmup_params=warmup_params,
        early_stopping=early_stopping,
    )
    callbacks = [*training, *progress_callbacks(verbose), *callbacks]
    cls, kwargs = criterion_kwargs(
        n_classes=n_classes,
        multilabel=multilabel,
        class_weight=class_weight,
        pos_weight=pos_weight,
        label_smoothing=label_smoothing,
    )
    kwargs.update(
        optimizer_kwargs(
            module,
            optimizer=optimizer,
            lr=lr,
            backbone_lr=backbone_lr,
            weight_decay=weight_decay,
        )
    )
    iterators = dict(
        iterator_train=TensorBatches,
        iterator_train__shuffle=True,
        iterator_train__generator=generator,
        iterator_train__transform=(
            None if not augment else AugmentBatches(augment, seed)
        ),
        iterator_valid=TensorBatches,
    )
    if accelerator is not None:
        cls = _ACCELERATED[cls]
        # Accelerate shards torch DataLoaders across the processes
        iterators = dict(
            iterator_train__shuffle=True,
            iterator_train__generator=generator,
            iterator_train__drop_last=True,
        )
        kwargs["accelerator"] = accelerator
        # the epoch table once (from the main process), and only when verbose
        kwargs["callbacks__print_log__sink"] = accelerator.print if verbose else _quiet
        device = None
    return cls(
        module,
        optimizer=_OPTIMIZERS[optimizer],
        lr=lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=split,
        callbacks=callbacks,
        **iterators,
        device=device,
        verbose=verbose,
        train_precision=train_precision,
        **kwargs,
    )


def fit_net(net, X, y):
    """``net.fit(X, y)``, then drop training-only state that need not be pickled.

    With a checkpoint callback whose folder holds a checkpoint, only the epochs
    left of ``net.max_epochs`` after the saved history are trained.
    """
    epochs = net.max_epochs
    for item in net.callbacks or ():
        callback = item[1] if isinstance(item, tuple) else item
        if isinstance(callback, BestCheckpoint):
            epochs = max(epochs - checkpoint_epochs(callback.dirname), 0)
    net.fit(X, y, epochs=epochs)
    for _, callback in net.callbacks_:
        if isinstance(callback, LRScheduler):
            callback.lr_scheduler_ = None
        if isinstance(callback, EarlyStopping):
            callback.best_model_weights_ = None
    return net
