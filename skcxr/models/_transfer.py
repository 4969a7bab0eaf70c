"""Transfer learning on chest X-rays: a CNN backbone + an MLP head, skorch inside."""

import os
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
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
from ..nn._callbacks import check_callbacks
from ..nn._engines import (
    ENGINES,
    PRECISIONS,
    Probabilities,
    check_engine,
    engine_pooled_features,
    engine_runner,
    keep_calibration,
    pooled_features_network,
    run_batched,
)
from ..nn._networks import LearnableResizer
from ..nn._precision import TRAIN_PRECISIONS
from ..nn._streaming import (
    as_files,
    load_images,
    stream_map,
    streamed_pooled_features,
    weights_key,
)
from ..nn._torch_utils import check_device, resolve_device, torch_generator
from ..nn._transfer_net import (
    Head,
    TransferNet,
    feature_maps,
    fit_net,
    make_net,
    parameter_table,
    pooled_features,
)
from ..utils._param_validation import IntInterval
from ..utils._random import seed_from
from ..utils._validation import check_class_labels, validate_images

__all__ = ["TransferClassifier"]

_MAX_POS_WEIGHT = 100.0


class TransferClassifier(ClassifierMixin, BaseEstimator):
    """A CNN backbone with an MLP head on gray images, trained with skorch.

    The backbone (pretrained or not, see :func:`skcxr.nn._backbones.build_backbone`)
    turns ``(n, H, W)`` images in [0, 1] into feature maps, which are globally
    pooled and fed to a head of dense layers. With ``trainable="head"`` the
    backbone is frozen: its pooled features are computed once per ``fit`` (and
    shared across fits through ``memory``), so training the head costs what an
    MLP costs (with ``head_convs``, what a few convolutions on the cached
    feature maps cost).

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
    backbone : str or torch.nn.Module, default="efficientnet_lite0"
        A name from :func:`skcxr.nn.list_backbones`: "vgg16", "vgg19",
        "resnet50", "resnet101", "resnet152", "densenet121", "inception_v3",
        "efficientnet_b0" .. "efficientnet_b4", "efficientnet_lite0",
        "small_cnn", "fused_cnn", "separable_cnn", any timm model as
        ``"timm:<name>"``; or a network object such as
        ``skcxr.nn.FusedCNN(levels=3)`` or a :class:`skcxr.nn.UserBackbone`
        (deep-copied at fit: the given one is never trained).
    weights : "imagenet", str, os.PathLike or None, default="imagenet"
        Pretrained ImageNet weights (offline for "efficientnet_lite0"; the
        torchvision ones are downloaded once into the torch hub cache), None
        for a random initialisation, a path to a state dict in the
        torchvision, CheXNet or torchxrayvision layout, or
        ``"xrv:<name>"`` for torchxrayvision's chest X-ray weights (see the
        backbones page of the user guide).
    head_sizes : tuple of int, default=(128,)
        Widths of the dense ReLU layers between pooling and the output layer.
    head_convs : tuple of int, default=()
        Output channels of extra convolution blocks (3x3 ``Conv2d``, batch
        norm, ReLU; stride 1, so the map keeps its size) put on the
        backbone's feature map before the global pooling, and trained with
        the head, such as the Conv2D layers some studies add on top of a
        ResNet50 or VGG16 (``head_convs=(256, 128)``). Empty: the feature
        map is pooled directly. The convolutions need the feature map, not
        its pooled features: with a frozen backbone the feature cache holds
        the whole maps of in-memory images (``n * C * h * w`` floats, e.g.
        100 kB an image for VGG16's 512 x 7 x 7 at 224 pixels), computed in
        torch; for file paths as ``X`` the frozen backbone runs every epoch.
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
    optimizer : {"adam", "adamw", "rmsprop", "sgd"}, default="adam"
        SGD uses momentum 0.9. "adamw" is Adam with decoupled weight decay
        (Loshchilov & Hutter 2019; see ``weight_decay``).
    lr : float, default=1e-3
        Learning rate of the head (and of the backbone, times ``backbone_lr``).
    backbone_lr : float, default=1.0
        Multiplier of ``lr`` for the trained backbone parameters (a separate
        optimizer parameter group): values below 1 change pretrained layers
        more gently than the new head (discriminative learning rates,
        Howard & Ruder 2018). No effect with ``trainable="head"``.
    lr_schedule : {"exponential", "step", "plateau", "cosine"} or None, default=None
        Per-epoch exponential decay by ``lr_gamma``; step decay (times
        ``lr_gamma`` every ``lr_step_size`` epochs, torch's ``StepLR``);
        reduce-on-plateau of the validation loss (training loss without a
        validation split; factor ``lr_gamma`` after ``lr_patience`` epochs
        without improvement, down to ``min_lr``); cosine annealing over
        ``max_epochs`` down to ``min_lr``. The learning rate of each epoch is
        recorded in ``history_`` as ``event_lr``.
    lr_gamma : float, default=0.9
        Decay factor of the "exponential", "step" and "plateau" schedules.
    lr_step_size : int, default=10
        Epochs between two decays of ``lr_schedule="step"``.
    lr_patience : int, default=2
        Epochs without improvement of the monitored loss before
        ``lr_schedule="plateau"`` lowers the learning rate.
    min_lr : float, default=0.0
        Floor of the learning rate of the "plateau" and "cosine" schedules.
    weight_decay : float, default=0.0
        Weight decay of all trained parameters, applied by the optimizer
        (``weight_decay=`` of the torch optimizer): an L2 penalty
        ``weight_decay / 2 * ||w||^2`` added to the loss for "adam", "rmsprop"
        and "sgd" (what Keras' ``l2(weight_decay / 2)`` regulariser adds,
        here on every parameter), decoupled from the gradient step for "adamw".
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
        Share of the training data held out to report the ``valid_*``
        scores of ``history_`` and for early stopping; 0
        disables. Stratified on single-label ``y`` when every class can be
        represented on both sides; a random hold-out for multi-label ``y``.
    early_stopping : int or None, default=None
        Patience in epochs; the best epoch's weights are restored.
    checkpoint : str, os.PathLike or None, default=None
        A folder (created if missing) where skorch's ``Checkpoint`` saves the
        best model so far (lowest validation loss, or training loss without a
        validation split): ``params.pt``, ``optimizer.pt``, ``criterion.pt``
        and ``history.json``. Nothing is written outside that folder. When the
        folder already holds a checkpoint, ``fit`` resumes from it (skorch's
        ``LoadInitState``): the saved weights, optimizer state and history are
        loaded and only the ``max_epochs - len(history)`` remaining epochs are
        trained; the LR schedule continues from the saved epoch. Use a new
        folder (or empty it) to train from scratch; the checkpoint must come
        from the same estimator settings and data, so do not share one folder
        between the fits of a grid search. The fitted estimator ends
        with the weights of the best checkpoint. With ``trainable="head"`` and
        the feature cache, only the head is saved.
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
        keyword arguments, e.g. ``{"vflip": True}`` to add vertical flips or
        ``{"policy": "one_of"}`` for one randomly chosen transform per image.
        Disables the feature cache.
    loader : ImageLoader, Pipeline or None, default=None
        How file paths given as ``X`` are read (arrays are used as they are):
        an :class:`~skcxr.ImageLoader`, or a
        :class:`~sklearn.pipeline.Pipeline` whose first step is one, followed
        by per-image transformers applied to every batch (e.g.
        ``make_pipeline(ImageLoader(size=224), OtsuMasker())``). None reads
        with ``ImageLoader(size=224)`` in ``fit`` and at the fitted size
        afterwards. Files are decoded one batch at a time in the loader's
        ``n_jobs`` background worker processes; with the frozen backbone only
        its pooled features are kept (cached in ``memory``, keyed by the
        files' paths, times and sizes and the loader), otherwise the
        training images are loaded into memory. Unreadable files follow the
        loader's ``on_error`` in ``fit`` ("skip" drops their ``y`` rows);
        :meth:`predict` and :meth:`predict_proba` return one row per path or
        raise.
    memory : str, joblib.Memory or None, default=None
        Cache of the frozen backbone's pooled features (feature maps with
        ``head_convs``), keyed by backbone, weights and images, so that a
        grid search over head parameters reuses them.
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}, default="auto"
        "auto" uses CUDA when available.
    engine : {"torch", "onnxruntime", "openvino"}, default="torch"
        Runs the frozen backbone's feature extraction in ``fit`` (the feature
        cache, for in-memory images) and :meth:`predict` /
        :meth:`predict_proba`: torch, or the network exported once to ONNX and
        run on the CPU by ONNX Runtime (``pip install skcxr[onnx]``) or
        OpenVINO (``pip install skcxr[openvino]``) in 32-bit floats, usually
        faster than torch on a CPU (outputs equal to torch's within 1e-4
        relative to their scale). Training always runs in torch. With an
        engine, ``device`` must be ``"cpu"`` or ``"auto"`` (which then means
        the CPU for these steps). See :ref:`inference_engines`.
    precision : {"fp32", "bf16", "int8"}, default="fp32"
        Arithmetic of the engine (``engine="torch"`` takes only ``"fp32"``):
        32-bit floats; bfloat16 (OpenVINO on a CPU with bf16 instructions);
        or, with ONNX Runtime, 8-bit integers after post-training static
        quantisation calibrated on 32 training images drawn at ``fit`` and
        kept in ``calibration_images_``, so in a saved model too (faster,
        outputs a few percent off: measure the change on held-out data
        first). See :ref:`reduced_precision`.
    train_precision : {"32", "bf16-mixed", "16-mixed"}, default="32"
        Arithmetic of training (``precision`` is that of the inference
        engine): float32; or mixed precision, the forward passes of training
        under ``torch.autocast`` in bfloat16 (CPU and CUDA) or float16 (CUDA
        only, with loss scaling by ``torch.amp.GradScaler``), with float32
        weights, optimizer and loss (Micikevicius et al. 2018). Faster and
        lighter on GPUs with 16-bit tensor cores (and CPUs with bf16
        instructions) at about the same accuracy; ``predict`` runs in
        float32. Convolutional backbones run in the channels-last memory
        format on every device. See :ref:`training`.
    accelerator : accelerate.Accelerator or None, default=None
        Train data-parallel with Hugging Face Accelerate (skorch's
        :class:`~skorch.hf.AccelerateMixin`; ``pip install
        'skcxr[accelerate]'``): started by ``accelerate launch`` or
        ``torchrun`` on several GPUs, machines or CPU processes, every
        process fits the same estimator on the same data, trains on its share
        of each epoch's batches, and the gradients are averaged, so all
        processes end with the same network. The accelerator chooses the
        device (``device`` is then ignored) and the mixed precision
        (``Accelerator(mixed_precision="bf16")``; ``train_precision`` must
        stay "32"); ``augment`` is not available. The per-epoch training and
        validation scores are those of each process's share. See
        :ref:`scaling_up`.
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        More skorch callbacks (:mod:`skorch.callbacks`), run every epoch after
        skcxr's own, so they see the epoch's complete ``history_`` row: e.g.
        :class:`skcxr.nn.TensorBoardLogger` or skorch's
        :class:`~skorch.callbacks.MlflowLogger`,
        :class:`~skorch.callbacks.EpochScoring` or
        :class:`~skorch.callbacks.GradientNormClipping`. Each ``fit`` trains
        with fresh copies (:func:`sklearn.base.clone`), so the parameter is
        never changed (a callback that cannot be cloned is used as given);
        the fitted ones are in ``net_.callbacks_``. They act during training
        only: :func:`skcxr.utils.save_model` stores the model without them.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the split, the shuffling, dropout and
        augmentation (reproducible on CPU); global random state is restored.
    verbose : int, default=0
        1 prints skorch's epoch table and, when standard error is a terminal,
        a progress bar over each epoch's batches (skorch's
        :class:`~skorch.callbacks.ProgressBar`).

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
        One row per epoch (``history_[:, "valid_auc"]`` reads a column;
        :class:`~skcxr.inspection.TrainingCurveDisplay` draws them), with the
        keys:

        - ``epoch``, ``dur`` (seconds), ``batches`` (per-batch losses);
        - ``train_loss``, ``valid_loss``: the mean loss of the epoch;
        - ``train_acc``, ``train_auc``: accuracy and ROC AUC of the
          predictions the epoch made on its training batches (in train mode:
          with dropout and augmentation, and while the weights change, as
          Keras reports training accuracy; no second pass over the data);
        - ``valid_acc``, ``valid_auc``, ``valid_f1``: accuracy, ROC AUC and
          macro F1 on the validation split;
        - ``event_lr`` (with ``lr_schedule``), ``event_cp`` (with
          ``checkpoint``);
        - ``<key>_best`` for each loss and score: whether the epoch is the
          best so far.

        Accuracy is the share of correct classes (multi-label: of correct
        labels at probability 0.5); ROC AUC is one-vs-rest and macro-averaged
        over the classes for more than two classes, the AUC of the positive
        class for two; multi-label scores are computed per finding over its
        known (non-NaN) labels and averaged over the findings. A class or
        finding without both positive and negative samples is left out of the
        AUC (NaN if none has both). Without a validation split
        (``validation_fraction=0``) there is no ``valid_*`` key.
    used_feature_cache_ : bool
        Whether the head was trained on cached backbone features (the feature
        maps, with ``head_convs``).
    n_trainable_blocks_ : int
        How many of ``module_.backbone.blocks`` were trained.
    parameter_table_ : list of dict
        One row per top-level block of ``module_``: ``"block"`` (``"resizer"``,
        ``"backbone"`` for the backbone parameters outside its blocks, then
        ``"backbone.<block>"`` for each of ``module_.backbone.blocks``, then
        ``"head"``), ``"trainable"`` and ``"non_trainable"`` parameter counts as
        set by ``trainable`` (Keras' ``model.summary()`` counts, without the
        batch-norm running statistics, which are buffers);
        ``pandas.DataFrame(clf.parameter_table_)`` shows it as a table.
    n_features_in_ : int
    image_shape_ : tuple of int
    calibration_images_ : ndarray of shape (n_calibration, H, W) or None
        The training images the INT8 engine is calibrated on (with
        ``precision="int8"``; None otherwise).

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

    Two 3x3 convolution blocks on the backbone's feature map before pooling:

    >>> clf = TransferClassifier(backbone="small_cnn", weights=None, max_epochs=1,
    ...                          head_convs=(16, 8), random_state=0).fit(X, y)
    >>> [m.out_channels for m in clf.module_.head.convs if hasattr(m, "out_channels")]
    [16, 8]

    Multi-label: one column per finding, several findings per image.

    >>> Y = rng.integers(0, 2, size=(20, 3))
    >>> clf = TransferClassifier(backbone="small_cnn", weights=None, max_epochs=2,
    ...                          pos_weight="balanced", random_state=0).fit(X, Y)
    >>> clf.predict_proba(X[:3]).shape, clf.predict(X[:3]).shape, clf.classes_.tolist()
    ((3, 3), (3, 3), [0, 1, 2])
    """

    _parameter_constraints: dict = {
        "backbone": [str, torch.nn.Module],
        "weights": [StrOptions({"imagenet"}), str, os.PathLike, None],
        "head_sizes": ["array-like"],
        "head_convs": ["array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "pooling": [StrOptions({"avg", "max"})],
        "trainable": [
            StrOptions({"head", "all"}),
            IntInterval(0, None, closed="left"),
        ],
        "resizer": [None, IntInterval(4, None, closed="left")],
        "optimizer": [StrOptions({"adam", "adamw", "rmsprop", "sgd"})],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "backbone_lr": [Interval(Real, 0, None, closed="left")],
        "lr_schedule": [
            None,
            StrOptions({"exponential", "step", "plateau", "cosine"}),
        ],
        "lr_gamma": [Interval(Real, 0, 1, closed="right")],
        "lr_step_size": [IntInterval(1, None, closed="left")],
        "lr_patience": [IntInterval(0, None, closed="left")],
        "min_lr": [Interval(Real, 0, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_epochs": [IntInterval(1, None, closed="left")],
        "warmup_epochs": [IntInterval(0, None, closed="left")],
        "batch_size": [IntInterval(1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": [None, IntInterval(1, None, closed="left")],
        "checkpoint": [None, str, os.PathLike],
        "class_weight": [None, StrOptions({"balanced"}), dict],
        "pos_weight": [None, StrOptions({"balanced"}), "array-like"],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "augment": [None, "boolean", dict],
        "loader": [None, HasMethods(["transform"])],
        "memory": [None, str, HasMethods(["cache"])],
        "device": [str],
        "engine": [StrOptions(set(ENGINES))],
        "precision": [StrOptions(set(PRECISIONS))],
        "train_precision": [StrOptions(set(TRAIN_PRECISIONS))],
        "accelerator": [None, HasMethods(["prepare", "backward"])],
        "callbacks": [None, list, tuple],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        backbone="efficientnet_lite0",
        weights="imagenet",
        head_sizes=(128,),
        head_convs=(),
        dropout=0.2,
        pooling="avg",
        trainable="head",
        resizer=None,
        optimizer="adam",
        lr=1e-3,
        backbone_lr=1.0,
        lr_schedule=None,
        lr_gamma=0.9,
        lr_step_size=10,
        lr_patience=2,
        min_lr=0.0,
        weight_decay=0.0,
        max_epochs=10,
        warmup_epochs=0,
        batch_size=32,
        validation_fraction=0.1,
        early_stopping=None,
        checkpoint=None,
        class_weight=None,
        pos_weight=None,
        label_smoothing=0.0,
        augment=None,
        loader=None,
        memory=None,
        device="auto",
        engine="torch",
        precision="fp32",
        train_precision="32",
        accelerator=None,
        callbacks=None,
        random_state=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.head_sizes = head_sizes
        self.head_convs = head_convs
        self.dropout = dropout
        self.pooling = pooling
        self.trainable = trainable
        self.resizer = resizer
        self.optimizer = optimizer
        self.lr = lr
        self.backbone_lr = backbone_lr
        self.lr_schedule = lr_schedule
        self.lr_gamma = lr_gamma
        self.lr_step_size = lr_step_size
        self.lr_patience = lr_patience
        self.min_lr = min_lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.checkpoint = checkpoint
        self.class_weight = class_weight
        self.pos_weight = pos_weight
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.loader = loader
        self.memory = memory
        self.device = device
        self.engine = engine
        self.precision = precision
        self.train_precision = train_precision
        self.accelerator = accelerator
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_params(self):
        check_backbone_name(self.backbone)
        check_device(self.device)
        sizes = _positive_ints(self.head_sizes, "head_sizes")
        _positive_ints(self.head_convs, "head_convs")
        if self.lr_schedule in ("plateau", "cosine") and self.min_lr >= self.lr:
            raise ValueError(
                f"min_lr={self.min_lr} must be below lr={self.lr}: it is the floor "
                f"the {self.lr_schedule!r} schedule lowers the learning rate to."
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
            bad = {
                c: w
                for c, w in self.class_weight.items()
                if not isinstance(w, Real)
                or isinstance(w, bool)
                or not (np.isfinite(w) and w > 0)
            }
            if bad:
                raise ValueError(
                    f"class_weight must map classes to finite positive numbers; got "
                    f"{bad}."
                )
        return sizes

    def _check_targets(self, y):
        """Validate ``y``; sets ``classes_`` and ``multilabel_``, returns the
        encoded targets (int64 class indices, or a float32 indicator matrix)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y_arr = None if sp.issparse(y) else np.asarray(y)
        if y_arr is not None and y_arr.ndim == 2 and y_arr.shape[1] > 1:
            return self._check_indicator(y_arr)
        if y_arr is not None and y_arr.ndim == 1:
            check_class_labels(y_arr)
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
            return self._check_indicator(y.toarray() if hasattr(y, "toarray") else y)
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

    def _check_indicator(self, Y):
        """A 2-D ``y``: a 0/1 indicator matrix, NaN where a label is unknown."""
        if Y.dtype.kind == "O":  # numbers and None, e.g. from a DataFrame
            try:
                Y = Y.astype(np.float64)
            except (TypeError, ValueError):
                pass
        if Y.dtype.kind not in "biuf":
            raise ValueError(
                f"y is a 2-D array of {'strings' if Y.dtype.kind in 'US' else Y.dtype}; a multi-label y is a 0/1 "
                "indicator matrix, one column per finding (scikit-learn's "
                "MultiLabelBinarizer turns lists of labels into one)."
            )
        Y = Y.astype(np.float32)
        known = Y[~np.isnan(Y)]
        values = np.unique(known)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(
                "y is a multi-label indicator matrix but holds the values "
                f"{values[~np.isin(values, (0, 1))][:5].tolist()}; use 1 for a "
                "finding present, 0 for absent and NaN for unknown."
            )
        if not known.size:
            raise ValueError("y is a multi-label indicator matrix with no known label.")
        self.multilabel_ = True
        self.classes_ = np.arange(Y.shape[1])
        return Y

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on images ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or (n_samples, H*W)
            Gray images in [0, 1], or a 1-D list of image file paths (read
            through ``loader``).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multi-label indicator matrix (one 0/1 column per
            finding).

        Returns
        -------
        self
        """
        y_enc = self._check_targets(y)
        files = as_files(self, X, reset=True)  # file paths: (reader, paths)
        if files is None:
            images, _ = validate_images(self, X, reset=True)
        check_consistent_length(images if files is None else files[1], y_enc)
        head_sizes = self._check_params()
        callbacks = check_callbacks(self.callbacks)
        seed = seed_from(self.random_state)
        device = resolve_device(self.device)
        if self.train_precision == "16-mixed" and not device.startswith("cuda"):
            raise ValueError(
                f"train_precision='16-mixed' (float16 with loss scaling) trains on "
                f"a CUDA GPU; the device is {device!r}. Use "
                "train_precision='bf16-mixed' on a CPU."
            )
        if self.accelerator is not None:
            if self.train_precision != "32":
                raise ValueError(
                    "With an accelerator, set mixed precision on it "
                    "(Accelerator(mixed_precision='bf16')), not with "
                    f"train_precision={self.train_precision!r}."
                )
            if self.augment:
                raise ValueError(
                    "augment is not available with an accelerator: its "
                    "DataLoaders feed the images as they are."
                )
            device = str(self.accelerator.device)
        cache = self._use_cache(files)
        if files is not None and not cache:  # trained through the backbone
            images, rows = load_images(*files, batch_size=max(self.batch_size, 64))
            y_enc = y_enc[rows]
        check_engine(self.engine, self.device, self.precision)
        if files is not None and cache:  # features are streamed: read the drawn files
            keep_calibration(self, files=files)
        else:
            keep_calibration(self, images)

        with torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.manual_seed(seed)
            backbone = build_backbone(self.backbone, weights=self.weights)
            n_blocks = self._freeze(backbone)
            resizer = None if self.resizer is None else LearnableResizer(self.resizer)
            head = Head(
                backbone.out_channels,
                head_sizes,
                self.dropout,
                len(self.classes_),
                convs=_positive_ints(self.head_convs, "head_convs"),
            )
            full = TransferNet(backbone, head, pooling=self.pooling, resizer=resizer)
            full = full.to(memory_format=torch.channels_last)
            warmup = []
            if cache:
                try:
                    if files is None:
                        inputs = self._cached_features(full, images, device, seed)
                    else:
                        inputs, y_enc = self._streamed_features(
                            full, files, device, seed, y_enc
                        )
                except RuntimeError as exc:
                    self._check_image_size(backbone, self.image_shape_, exc)
                    raise
                # cached maps go through the head's convolutions and the pooling
                module = (
                    TransferNet(torch.nn.Identity(), head, pooling=self.pooling)
                    if len(self.head_convs)
                    else head
                )
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
                lr_step_size=self.lr_step_size,
                lr_patience=self.lr_patience,
                min_lr=self.min_lr,
                weight_decay=self.weight_decay,
                max_epochs=self.max_epochs,
                warmup_epochs=self.warmup_epochs,
                warmup_params=warmup,
                batch_size=self.batch_size,
                validation_fraction=self.validation_fraction,
                early_stopping=self.early_stopping,
                checkpoint=self.checkpoint,
                augment=None if cache else self.augment,
                seed=seed,
                device=device,
                verbose=self.verbose,
                generator=torch_generator(seed),
                callbacks=callbacks,
                train_precision=self.train_precision,
                accelerator=self.accelerator,
            )
            try:
                fit_net(net, inputs, y_enc)
            except RuntimeError as exc:
                self._check_image_size(backbone, self.image_shape_, exc)
                raise
        if self.accelerator is not None:  # predictions: in this process, on
            net.device = device  # the accelerator's device
        if cache:  # the trained head goes back onto its backbone
            net.module_ = full.to(net.device)
            net.module = net.module_
        net.module_.eval()
        self.net_ = net
        self.used_feature_cache_ = cache
        self.n_trainable_blocks_ = n_blocks
        self.parameter_table_ = parameter_table(
            net.module_, [f"backbone.{b}".rstrip(".") for b in backbone.blocks]
        )
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

    def _use_cache(self, files=None):
        frozen = self.trainable == "head" or (
            not isinstance(self.trainable, str) and self.trainable == 0
        )
        # the head's convolutions need feature maps: cached for arrays only, as
        # streaming keeps no more than pooled features of files in memory
        return (
            frozen
            and not self.augment
            and self.resizer is None
            and (not len(self.head_convs) or files is None)
        )

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
        if isinstance(self.pos_weight, str):  # "balanced", over the known labels
            n_pos = np.nansum(Y, axis=0, dtype=np.float64)
            n_known = (~np.isnan(Y)).sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                weights = np.nan_to_num((n_known - n_pos) / n_pos, nan=1.0)
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

    def _cached_features(self, network, images, device, seed):
        key = weights_key(self.backbone, self.weights, seed)
        if len(self.head_convs):  # whole maps, in torch, for the head's convolutions
            compute = check_memory(self.memory).cache(
                feature_maps, ignore=["backbone", "device", "batch_size"]
            )
            return compute(
                network.backbone,
                key,
                images,
                device=device,
                batch_size=max(self.batch_size, 64),
            )
        if self.engine != "torch":  # keyed by engine and precision: outputs differ
            compute = check_memory(self.memory).cache(
                engine_pooled_features, ignore=["runner", "batch_size"]
            )
            return compute(
                lambda: self._features_runner(network),
                key,
                images,
                engine_key=self._engine_features_key(),
                batch_size=max(self.batch_size, 64),
            )
        compute = check_memory(self.memory).cache(
            pooled_features, ignore=["backbone", "device", "batch_size"]
        )
        features = compute(
            network.backbone,
            key,
            images,
            device=device,
            batch_size=max(self.batch_size, 64),
        )
        return features[self.pooling]

    def _streamed_features(self, network, files, device, seed, y_enc):
        """Pooled features of image files (cached) and the targets of those read."""
        engine = self.engine != "torch"
        features, rows = streamed_pooled_features(
            network.backbone,
            weights_key(self.backbone, self.weights, seed),
            *files,
            device=device,
            batch_size=max(self.batch_size, 64),
            memory=self.memory,
            runner=(lambda: self._features_runner(network)) if engine else None,
            engine_key=self._engine_features_key() if engine else None,
            pooling=self.pooling,
        )
        return features[self.pooling], y_enc[rows]

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
            Images of the size seen in ``fit``, or a 1-D list of image file
            paths (read through ``loader``, batch by batch).

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
        files = as_files(self, X, reset=False)  # file paths: read batch by batch
        if files is not None:
            return stream_map(self.predict_proba, *files, self.batch_size)
        images = self._images(X)
        check_engine(self.engine, self.device, self.precision)
        if (
            self.engine != "torch"
            and self.used_feature_cache_
            and not len(self.head_convs)  # pooled features skip the convolutions
        ):
            proba = self._frozen_engine_proba(images[:, 0])
        elif self.engine != "torch":  # exported once per fitted module_ and engine
            module = self.net_.module_
            runner = engine_runner(
                self,
                module,
                (1, *self.image_shape_),
                key=(self.multilabel_,),
                build=lambda: Probabilities(module, multilabel=self.multilabel_),
            )
            proba = run_batched(runner, images[:, 0], self.batch_size)
        else:
            proba = self.net_.predict_proba(images)
        proba = proba.astype(np.float64)
        if self.multilabel_:
            return proba
        return proba / proba.sum(axis=1, keepdims=True)

    def _features_runner(self, network):
        """The engine's runner of ``network``'s pooled backbone features: built
        once per fitted network (``fit`` computes the training features with
        it, ``predict_proba`` the test features) and shared with the other
        estimators holding the same backbone (see ``shared_runner``)."""
        input_shape = (1, *self.image_shape_)
        return engine_runner(
            self,
            network,
            input_shape,
            key=("features",),
            build=lambda: pooled_features_network(
                network.backbone, self.pooling, input_shape
            ),
        )

    def _engine_features_key(self):
        """What identifies the engine's pooled features in a feature cache
        (outputs differ by engine and precision); the pooling comes last."""
        return (self.engine, self.precision, self.calibration_images_, self.pooling)

    def _frozen_engine_proba(self, images):
        """Probabilities of a frozen-backbone fit: the engine computes the pooled
        features, the small head runs in torch."""
        module = self.net_.module_
        runner = self._features_runner(module)
        features = torch.from_numpy(run_batched(runner, images, self.batch_size))
        head = Probabilities(module.head, multilabel=self.multilabel_)
        with torch.inference_mode():
            # the head stays where it was trained (a GPU with device="auto")
            proba = head(features.to(next(module.head.parameters()).device))
        return proba.cpu().numpy()

    def predict(self, X):
        """Predicted labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or (n_samples, H*W)
            Images of the size seen in ``fit``, or a 1-D list of image file
            paths (read through ``loader``, batch by batch).

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

    # ------------------------------------------------------------ pickling
    # One path for pickle, copy.deepcopy and skcxr.utils.save_model: the fitted
    # net is stored as plain data (the network's arrays, the frozen parameter
    # names, the loss weights and the history) and rebuilt from the parameters
    # when loaded; cache attributes (_engine*, _device_*) are not kept.
    def __getstate__(self):
        from ..nn._state import (
            drop_caches,
            frozen_parameters,
            history_to_data,
            module_to_arrays,
        )

        state = drop_caches(super().__getstate__())
        net = state.pop("net_", None)
        if net is not None:
            weights = {}
            for name in ("criterion__weight", "criterion__pos_weight"):
                value = getattr(net, name, None)
                if value is not None:
                    weights[name] = np.asarray(torch.as_tensor(value).cpu())
            state["net_"] = {
                "module": module_to_arrays(net.module_),
                "frozen": frozen_parameters(net.module_),
                "loss_weights": weights,
                "history": history_to_data(net.history),
                "device": str(net.device),
            }
        return state

    def __setstate__(self, state):
        state = dict(state)
        net = state.pop("net_", None)
        super().__setstate__(state)
        if net is not None:  # a pickle of an older version holds the net itself
            self.net_ = self._rebuild_net(net) if isinstance(net, dict) else net

    def _rebuild_net(self, data):
        """The skorch net of ``fit``, rebuilt from the parameters and ``data``.

        The network is built with random weights (nothing is downloaded or
        read), the saved arrays are loaded into it, and the net comes from
        the same factory as in ``fit`` (:func:`~skcxr.nn._transfer_net.make_net`),
        initialised, on the device it was on (the CPU, with a warning, when
        this machine lacks it). The
        optimizer state (e.g. Adam's moments) is not saved: training the
        loaded net further starts with a fresh optimizer.
        """
        import inspect
        import warnings

        from ..nn._state import (
            arrays_to_module,
            available_device,
            data_to_history,
            rebuild_quietly,
        )

        def build():
            backbone = build_backbone(self.backbone, weights=None)
            resizer = None if self.resizer is None else LearnableResizer(self.resizer)
            sizes = tuple(int(s) for s in self.head_sizes)
            convs = tuple(int(c) for c in self.head_convs)
            head = Head(
                backbone.out_channels,
                sizes,
                self.dropout,
                len(self.classes_),
                convs=convs,
            )
            return TransferNet(backbone, head, pooling=self.pooling, resizer=resizer)

        full = arrays_to_module(
            rebuild_quietly(build),
            data["module"],
            frozen=data["frozen"],
            what=f"TransferClassifier network (backbone={self.backbone!r})",
        )
        full = full.to(memory_format=torch.channels_last)  # once, after loading
        saved = data.get("device", resolve_device(self.device))
        device = available_device(saved)
        if device != saved:
            from skorch.exceptions import DeviceWarning

            warnings.warn(
                f"The model was on device {saved!r}, which this machine "
                "does not have; it is loaded on the CPU.",
                DeviceWarning,
                stacklevel=2,
            )
        weights = {k: torch.as_tensor(v) for k, v in data["loss_weights"].items()}
        seed = seed_from(self.random_state)
        # every make_net option that is an estimator parameter, as fit passes it
        params = self.get_params(deep=False)
        options = {
            name: params[name]
            for name in inspect.signature(make_net).parameters
            if name in params
        }
        options.update(
            n_classes=len(self.classes_),
            multilabel=self.multilabel_,
            class_weight=weights.get("criterion__weight"),
            pos_weight=weights.get("criterion__pos_weight"),
            warmup_params=(
                []
                if self.used_feature_cache_
                else [
                    name
                    for name, p in full.named_parameters()
                    if name.startswith("backbone.") and p.requires_grad
                ]
            ),
            augment=None if self.used_feature_cache_ else self.augment,
            # loading never touches the file system (skorch's Checkpoint would
            # create its folder); further training does not resume from it
            checkpoint=None,
            # nor runs the training callbacks (a logger would open its files)
            # or joins a process group
            callbacks=(),
            accelerator=None,
            seed=seed,
            device=device,
            generator=torch_generator(seed),
        )
        net = make_net(full, **options).initialize()
        net.history = data_to_history(data["history"])
        net.module_.eval()
        return net


def _positive_ints(values, name):
    """``values`` as a tuple of positive ints, else a ValueError naming ``name``."""
    if isinstance(values, (str, bytes)) or not all(
        isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(f"{name} must be a sequence of positive ints; got {values!r}.")
    return tuple(int(v) for v in values)


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
