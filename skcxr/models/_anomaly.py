"""Anomaly detection from healthy chest X-rays only, with per-pixel anomaly maps.

:class:`ReconstructionAnomalyDetector` is fitted on healthy images only and
flags images unlike them. Three methods share one estimator:

- ``"padim"`` (Defard et al. 2020): a Gaussian per image location of the
  patch features of a frozen ImageNet-pretrained CNN; the anomaly of a patch
  is its Mahalanobis distance.
- ``"patchcore"`` (Roth et al. 2022): a coreset-subsampled memory bank of
  healthy patch features; the anomaly of a patch is its distance to the
  nearest one.
- ``"autoencoder"``: a small convolutional (variational) autoencoder trained
  on the pixels; the anomaly is the reconstruction error.

It follows scikit-learn's outlier-detector conventions (``score_samples``
higher = more normal, ``decision_function = score_samples - offset_``,
``predict`` +1 inlier / -1 outlier, as ``IsolationForest``) and pyod's
score -> threshold -> labels contract, and it is a transformer whose
``transform`` returns image features, so "detector features -> classifier" is
a :class:`~sklearn.pipeline.Pipeline`. The image layouts it accepts are the
data contract of the user guide.
"""

import functools
import os
import warnings
from numbers import Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    OutlierMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.metrics import roc_curve
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..nn._autoencoder import LOSSES
from ..nn._engines import ENGINES, PRECISIONS
from ..nn._streaming import as_files, load_images, stream_map
from ..nn._torch_utils import check_device
from ..preprocessing._otsu import atlas_lung_mask
from ..utils._param_validation import IntInterval
from ..utils._random import seed_from
from ..utils._validation import restore_layout, validate_images
from ._anomaly_autoencoder import AutoencoderMethod
from ._anomaly_patches import PaDiMMethod, PatchCoreMethod, PatchMethod

__all__ = ["ReconstructionAnomalyDetector"]

_ERRORS = ("mse", "ssim", "masked_mse")

# One small class per method, as scikit-learn's NearestNeighbors delegates to
# its tree classes: the estimator validates, thresholds and scores once; each
# method class fits and runs its own model (fitted state on the estimator).
_METHODS = {
    "padim": PaDiMMethod,
    "patchcore": PatchCoreMethod,
    "autoencoder": AutoencoderMethod,
}


def _method_parameters(method):
    """The estimator parameters read by ``method`` alone (none of the others)."""
    cls = _METHODS[method]
    if issubclass(cls, PatchMethod):
        return set(cls.parameters) | set(PatchMethod.patch_parameters)
    return set(cls.parameters)


def _is_autoencoder(estimator):
    return estimator.method == "autoencoder"


class ReconstructionAnomalyDetector(
    ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin, BaseEstimator
):
    """Anomaly detector for chest X-rays fitted on healthy images only.

    Fit it on healthy images (``y`` is ignored); an image whose anomaly score
    exceeds ``threshold_`` is an outlier (-1). :meth:`anomaly_map` shows
    where an image differs from the healthy ones.

    Parameters
    ----------
    method : {"padim", "patchcore", "autoencoder"}, default="padim"
        ``"padim"`` (Defard et al. 2020): the patch features of a frozen
        pretrained ``backbone`` at every location of a grid are modelled by a
        Gaussian per location (mean and Ledoit-Wolf shrunk covariance of a
        random subset of ``n_features`` channels); a patch's anomaly is its
        Mahalanobis distance. ``"patchcore"`` (Roth et al. 2022): all healthy
        patch features, subsampled to a ``coreset_ratio`` fraction by a greedy
        k-center coreset, form a memory bank; a patch's anomaly is its distance
        to the nearest bank patch. ``"autoencoder"``: a convolutional
        (variational) autoencoder on the pixels, scored by its reconstruction
        ``error``. The pretrained patch methods need no training and separate
        healthy from sick images far better (see the user guide's table).
    backbone : str, default="efficientnet_lite0"
        Used when ``method`` is ``"padim"`` or ``"patchcore"`` (the patch
        methods): the registry name of the frozen CNN.
    weights : "imagenet", str, path or None, default="imagenet"
        The weights of ``backbone`` (patch methods) or of a backbone
        ``encoder`` (autoencoder); ``None``: random, from ``random_state``.
    input_size : int or None, default=None
        Used by the patch methods: the side the images are resized to
        (bilinear) before the backbone; ``None``: the size the backbone
        resizes to itself (torchxrayvision's 224 px, a timm model built for
        one size), else their own size (at least 32). Memory grows with the
        number of grid locations, ``(input_size / stages[0])**2``.
    stages : tuple of int or None, default=None
        Used by the patch methods: the output strides of the backbone stages
        whose features are used (the last block of each stride); ``None``:
        ``(4, 8)``. The grid is that of the first stride (16 x 16 patches at
        64 pixels).
    n_features : int or None, default=100
        Used when ``method="padim"``: a random subset of feature channels kept
        (``None``: all).
    coreset_ratio : float in (0, 1], default=0.1
        Used when ``method="patchcore"``: the fraction of the healthy patches
        kept in the bank.
    sigma : float or "auto", default="auto"
        Used by the patch methods: the standard deviation, in input pixels, of
        the Gaussian that smooths the anomaly maps; ``"auto"``:
        ``4 * H / 224`` (sigma 4 at 224 pixels, as both papers).
    aggregation : "max" or float in (0, 1), default="max"
        Used by the patch methods: the per-image anomaly is the maximum of the
        smoothed anomaly map over ``region``, or that quantile of it.
    region : {"lungs", "image"}, default="lungs"
        Used by the patch methods: where the per-image anomaly is taken, the
        lung-field mask ``mask_`` of the healthy atlas (the mean aligned
        training image) or the whole image.
    align : bool, default=True
        Used by the patch methods: translate every image onto the healthy
        atlas (phase cross-correlation of the FFTs) before its features are
        computed, so patient position matters less; :meth:`anomaly_map` is
        shifted back to the image's own coordinates.
    input_sigma : float, default=1.0
        Used by the patch methods: the Gaussian blur (in image pixels) applied
        before the backbone, so pixel noise does not dominate the fine-scale
        features.
    normalize : {"percentile"} or None, default=None
        Used by the patch methods: ``"percentile"`` rescales each image so its
        1st and 99th percentiles map to 0 and 1 (exposure normalisation);
        ``None`` keeps the intensities.
    latent_dim : int, default=32
        Used when ``method="autoencoder"``: the size of the bottleneck code
        returned by :meth:`transform`.
    depth : int, default=3
        Used when ``method="autoencoder"``: the number of Conv2d+MaxPool(2)
        encoder levels (and Upsample+Conv2d decoder levels). Sides that are
        not a multiple of ``2**depth`` are padded (replicating the last
        row/column) inside the network and the reconstruction is cropped back.
    width : int, default=16
        Used when ``method="autoencoder"``: the channels of the first level,
        doubled at each level.
    variational : bool, default=False
        Used when ``method="autoencoder"``: train a VAE (reparameterisation
        trick in training, the mean at inference).
    encoder : str, torch.nn.Module or None, default=None
        Used when ``method="autoencoder"``: None trains the convolutional
        encoder with the decoder. A backbone (a registry name such as
        ``"efficientnet_b4"``, ``"timm:<name>"`` or a network object, see
        :func:`skcxr.nn.build_backbone`) is instead used as a frozen encoder,
        built with ``weights``: the code (and :meth:`transform`) comes from
        its globally averaged last feature map (autoencoder features of a
        frozen EfficientNet-B4, say); only the bottleneck and the decoder are
        trained, unless ``encoder_trainable`` says otherwise.
    encoder_trainable : {"all"} or int, default=0
        Used when ``method="autoencoder"`` with a backbone ``encoder``: what of
        the pretrained encoder is trained with the decoder, as
        :class:`~skcxr.TransferClassifier`'s ``trainable`` says it of a
        backbone: 0 nothing (a frozen encoder), ``k`` its last ``k`` blocks
        (the blocks of :func:`skcxr.nn.build_backbone`), ``"all"`` every
        layer (fine-tuning from the pretrained weights, which are kept as
        the starting point). Frozen batch-norm layers stay in eval mode.
    decoder : {"upsample", "transposed"}, default="upsample"
        Used when ``method="autoencoder"``: each of the ``depth`` decoder
        levels doubles the resolution by nearest-neighbour upsampling and a
        3x3 convolution with ReLU (``"upsample"``), or by a 3x3 transposed
        convolution of stride 2 with SELU activations (``"transposed"``;
        self-normalising units, Klambauer et al. 2017). Both end in a 3x3
        convolution and a sigmoid.
    loss : {"mse", "mae", "bce"}, default="mse"
        Used when ``method="autoencoder"``: the pixel reconstruction loss
        minimised in training: mean squared error, mean absolute error (L1,
        less swayed by a few badly reconstructed pixels), or the binary
        cross-entropy of the intensities in [0, 1] read as probabilities. A
        VAE adds ``beta * KL / (H * W)`` to it.
    beta : float, default=1.0
        Used when ``method="autoencoder"``: the weight of the VAE's KL term
        ``loss + beta * KL / (H * W)``.
    error : {"mse", "ssim", "masked_mse"}, default="mse"
        Used when ``method="autoencoder"``: the per-image reconstruction error
        used for scoring (training minimises ``loss``): the mean squared
        pixel error; ``1 - SSIM`` (Wang et al. 2004; 11-pixel Gaussian window,
        sigma 1.5); or the MSE inside the lung-field mask ``mask_`` of the
        mean training image (a per-image mask would cut a bright
        consolidation out).
    threshold : "mean", "youden" or float in (0, 0.5], default="mean"
        ``"mean"``: an image is an outlier when its anomaly exceeds the mean
        anomaly of the training images (the historical rule). A float ``q``:
        the ``1 - q`` quantile of the training anomalies (a contamination).
        ``"youden"``: the threshold maximising sensitivity + specificity (the
        Youden index) on the labelled validation set ``X_val, y_val`` of
        :meth:`fit`, which it requires. Training anomalies of the patch
        methods are out-of-sample (see ``decision_scores_``).
    max_epochs : int, default=20
        Used when ``method="autoencoder"``: the training epochs.
    batch_size : int, default=32
        Images per batch, for training and inference.
    loader : ImageLoader, Pipeline or None, default=None
        How file paths given as ``X`` (or ``X_val``) are read (arrays are used
        as they are): an :class:`~skcxr.ImageLoader`, or a
        :class:`~sklearn.pipeline.Pipeline` whose first step is one, followed
        by per-image transformers applied to every batch (e.g.
        ``make_pipeline(ImageLoader(size=224), OtsuMasker())``). None reads
        with ``ImageLoader(size=224)`` in ``fit`` and at the fitted size
        afterwards. Files are decoded in the loader's ``n_jobs`` background
        worker processes. ``fit`` loads the (healthy) training images into
        memory, leaving out unreadable ones when the loader's ``on_error`` is
        "skip" or "warn"; scoring, :meth:`anomaly_map`, :meth:`transform` and
        :meth:`reconstruct` read one batch at a time and return one row per
        path (an unreadable file raises).
    lr : float, default=1e-3
        Used when ``method="autoencoder"``: the Adam learning rate.
    early_stopping : bool, default=False
        Used when ``method="autoencoder"``: hold out ``validation_fraction``
        of the images, stop when their loss has not improved for
        ``n_iter_no_change`` epochs and restore the best weights.
    validation_fraction : float in (0, 1), default=0.1
        Used when ``method="autoencoder"`` with ``early_stopping``.
    n_iter_no_change : int, default=5
        Used when ``method="autoencoder"`` with ``early_stopping``.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present. Networks are pickled on the CPU.
    engine : {"torch", "onnxruntime", "openvino"}, default="torch"
        Used by the patch methods: runs the feature extraction (in ``fit`` and
        when scoring) in torch, or exports ``feature_extractor_`` once to ONNX
        and runs it on the CPU with ONNX Runtime (``pip install skcxr[onnx]``)
        or OpenVINO (``pip install skcxr[openvino]``) in 32-bit floats,
        usually faster than torch on a CPU (features equal to torch's within
        1e-4 relative to their scale). With an engine, ``device`` must be
        ``"cpu"`` or ``"auto"`` (which then means the CPU for the feature
        extraction). See :ref:`inference_engines`.
    precision : {"fp32", "bf16", "int8"}, default="fp32"
        Used by the patch methods: the arithmetic of the engine
        (``engine="torch"`` takes only ``"fp32"``): 32-bit floats; bfloat16
        (OpenVINO on a CPU with bf16 instructions); or, with ONNX Runtime,
        8-bit integers after post-training static quantisation calibrated on
        32 training images drawn at ``fit`` and kept in
        ``calibration_images_``, so in a saved model too (faster, outputs a
        few percent off: measure the change on held-out data first). See
        :ref:`reduced_precision`.
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        ``method="autoencoder"`` only: more skorch callbacks run every epoch
        after skcxr's own (e.g. :class:`skcxr.nn.TensorBoardLogger`), cloned
        at each ``fit`` as in :class:`~skcxr.TransferClassifier`; the history
        records ``train_loss`` (and ``valid_loss`` with ``early_stopping``).
    verbose : int, default=0
        Print skorch's epoch table when positive, and a progress bar over each
        epoch's batches when standard error is a terminal.
    random_state : int, RandomState instance or None, default=None
        Seeds the channel subset, the coreset, the folds of the training
        anomalies and the autoencoder's initialisation, shuffling, split and
        noise (through ``numpy``/``torch`` generators; the global RNGs are
        neither read nor changed).

    Attributes
    ----------
    decision_scores_ : ndarray of shape (n_samples,)
        :meth:`score_samples` of the training images (minus their anomaly).
        For ``"padim"`` they are out-of-fold (5-fold: each image scored by the
        Gaussians of the other folds) and for ``"patchcore"``
        leave-one-image-out (the bank patches of the image itself ignored), so
        they are as large as those of new healthy images and the thresholds
        derived from them are not optimistic.
    threshold_ : float
        Anomaly above which an image is an outlier.
    offset_ : float
        ``-threshold_``: ``decision_function = score_samples - offset_``.
    sensitivity_, specificity_ : float
        Only when ``X_val, y_val`` were given: the share of validation outliers
        flagged and of validation inliers not flagged at ``threshold_`` (NaN
        when the validation set has no image of that kind).
    mask_ : ndarray of shape (H, W), bool
        Lung-field mask of the mean (aligned, for the patch methods) training
        image (Otsu 1979).
    atlas_ : ndarray of shape (H, W) or None
        Patch methods with ``align=True``: the mean prepared training image,
        onto which every image is translated.
    feature_extractor_ : torch.nn.Module
        The patch methods' frozen feature network
        (:class:`skcxr.nn._patch_features.PatchFeatures`), on the CPU.
    patch_model_ : object
        The patch methods' fitted Gaussians or memory bank.
    module_ : torch.nn.Module
        ``"autoencoder"``: the fitted network, in eval mode.
    history_ : skorch.History
        ``"autoencoder"``: per-epoch ``train_loss`` (and ``valid_loss``).
    n_features_in_ : int
        Pixels per image.
    image_shape_ : tuple of int
        ``(H, W)`` of the training images.
    calibration_images_ : ndarray of shape (n_calibration, H, W) or None
        The training images the INT8 engine is calibrated on (with
        ``precision="int8"``; None otherwise).

    See Also
    --------
    sklearn.ensemble.IsolationForest : The same score/offset/predict conventions.
    skcxr.inspection.AnomalyMapDisplay : Draws :meth:`anomaly_map`.

    Notes
    -----
    Defard, Setkov, Loesch, Audigier (2020), "PaDiM: a Patch Distribution
    Modeling Framework for Anomaly Detection and Localization". Roth, Pemula,
    Zepeda, Schoelkopf, Brox, Gehler (2022), "Towards Total Recall in
    Industrial Anomaly Detection" (PatchCore).

    A parameter that only another method reads, set away from its default,
    gives a warning at ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr import ReconstructionAnomalyDetector
    >>> X = np.random.default_rng(0).random((8, 16, 16), dtype=np.float32)
    >>> det = ReconstructionAnomalyDetector(input_size=32, random_state=0).fit(X)
    >>> det.predict(X).shape, det.anomaly_map(X).shape
    ((8,), (8, 16, 16))
    >>> ae = ReconstructionAnomalyDetector(method="autoencoder", latent_dim=4,
    ...     depth=2, width=4, max_epochs=1, random_state=0).fit(X)
    >>> ae.transform(X).shape, ae.reconstruct(X).shape
    ((8, 4), (8, 16, 16))
    >>> bool(np.all((ae.decision_function(X) < 0) == (ae.predict(X) == -1)))
    True

    A transposed-convolution decoder with SELUs, trained with the L1 loss:

    >>> ae = ReconstructionAnomalyDetector(method="autoencoder", latent_dim=4,
    ...     depth=2, width=4, decoder="transposed", loss="mae", max_epochs=1,
    ...     random_state=0).fit(X)
    >>> ae.score_samples(X).shape
    (8,)
    """

    _parameter_constraints = {
        "method": [StrOptions({"padim", "patchcore", "autoencoder"})],
        "backbone": [str],
        "weights": [str, os.PathLike, None],
        "input_size": [IntInterval(16, None, closed="left"), None],
        "stages": [tuple, list, None],
        "n_features": [IntInterval(1, None, closed="left"), None],
        "coreset_ratio": [Interval(Real, 0, 1, closed="right")],
        "sigma": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "aggregation": [StrOptions({"max"}), Interval(Real, 0, 1, closed="neither")],
        "region": [StrOptions({"image", "lungs"})],
        "align": ["boolean"],
        "input_sigma": [Interval(Real, 0, None, closed="left")],
        "normalize": [StrOptions({"percentile"}), None],
        "latent_dim": [IntInterval(1, None, closed="left")],
        "depth": [IntInterval(1, 6, closed="both")],
        "width": [IntInterval(1, None, closed="left")],
        "variational": ["boolean"],
        "encoder": [str, nn.Module, None],
        "encoder_trainable": [
            StrOptions({"all"}),
            IntInterval(0, None, closed="left"),
        ],
        "decoder": [StrOptions({"upsample", "transposed"})],
        "loss": [StrOptions(set(LOSSES))],
        "beta": [Interval(Real, 0, None, closed="left")],
        "error": [StrOptions(set(_ERRORS))],
        "threshold": [
            StrOptions({"mean", "youden"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
        "max_epochs": [IntInterval(1, None, closed="left")],
        "batch_size": [IntInterval(1, None, closed="left")],
        "loader": [None, HasMethods(["transform"])],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [IntInterval(1, None, closed="left")],
        "device": [str, torch.device],
        "engine": [StrOptions(set(ENGINES))],
        "precision": [StrOptions(set(PRECISIONS))],
        "callbacks": [None, list, tuple],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        method="padim",
        backbone="efficientnet_lite0",
        weights="imagenet",
        input_size=None,
        stages=None,
        n_features=100,
        coreset_ratio=0.1,
        sigma="auto",
        aggregation="max",
        region="lungs",
        align=True,
        input_sigma=1.0,
        normalize=None,
        latent_dim=32,
        depth=3,
        width=16,
        variational=False,
        encoder=None,
        encoder_trainable=0,
        decoder="upsample",
        loss="mse",
        beta=1.0,
        error="mse",
        threshold="mean",
        max_epochs=20,
        batch_size=32,
        loader=None,
        lr=1e-3,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        device="auto",
        engine="torch",
        precision="fp32",
        callbacks=None,
        verbose=0,
        random_state=None,
    ):
        self.method = method
        self.backbone = backbone
        self.weights = weights
        self.input_size = input_size
        self.stages = stages
        self.n_features = n_features
        self.coreset_ratio = coreset_ratio
        self.sigma = sigma
        self.aggregation = aggregation
        self.region = region
        self.align = align
        self.input_sigma = input_sigma
        self.normalize = normalize
        self.latent_dim = latent_dim
        self.depth = depth
        self.width = width
        self.variational = variational
        self.encoder = encoder
        self.encoder_trainable = encoder_trainable
        self.decoder = decoder
        self.loss = loss
        self.beta = beta
        self.error = error
        self.threshold = threshold
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.loader = loader
        self.lr = lr
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.engine = engine
        self.precision = precision
        self.callbacks = callbacks
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, X_val=None, y_val=None):
        """Model the healthy images, then set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or \
                (n_samples, H*W)
            Images in [0, 1], healthy ones only.
        y : Ignored
            Not used, present for API consistency.
        X_val : array-like of images, default=None
            A small labelled validation set, for ``threshold="youden"`` and for
            ``sensitivity_`` / ``specificity_``.
        y_val : array-like of shape (n_val,), default=None
            Labels of ``X_val`` in :meth:`predict`'s convention: +1 healthy
            (inlier), -1 abnormal (outlier); e.g.
            ``np.where(y == "normal", 1, -1)``.

        Returns
        -------
        self : ReconstructionAnomalyDetector
        """
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together.")
        if self.threshold == "youden" and X_val is None:
            raise ValueError(
                "threshold='youden' chooses the threshold on a labelled validation "
                "set: pass fit(X, X_val=..., y_val=...) (y_val: +1 healthy, "
                "-1 abnormal), or use threshold='mean' or a contamination."
            )
        files = as_files(self, X, reset=True)  # file paths: loaded in workers
        if files is not None:
            X = load_images(*files, batch_size=self.batch_size)[0]
        images, _ = validate_images(self, X, reset=True)
        check_device(self.device)
        self._warn_unused_parameters()
        rng = np.random.default_rng(seed_from(self.random_state))
        self.calibration_images_ = None
        if self.method == "autoencoder":
            self.mask_ = atlas_lung_mask(images)
        anomalies = self._method().fit(images, rng)
        self.decision_scores_ = -anomalies

        if X_val is not None:
            val_files = as_files(self, X_val, reset=False)  # one row per y_val
            if val_files is not None:
                X_val = stream_map(np.asarray, *val_files, self.batch_size)
            val_images, _ = validate_images(self, X_val, reset=False)
            outlier = self._check_y_val(y_val, len(val_images))
            val_anomalies = self._method().anomalies(val_images)
        if self.threshold == "mean":
            self.threshold_ = float(anomalies.mean())
        elif self.threshold == "youden":
            self.threshold_ = self._youden(val_anomalies, outlier)
        else:
            self.threshold_ = float(np.quantile(anomalies, 1.0 - self.threshold))
        self.offset_ = -self.threshold_
        if X_val is not None:
            flagged = val_anomalies > self.threshold_
            with np.errstate(invalid="ignore"):
                self.sensitivity_ = float(np.mean(flagged[outlier]))
                self.specificity_ = float(np.mean(~flagged[~outlier]))
        return self

    @staticmethod
    def _check_y_val(y_val, n):
        y_val = np.asarray(y_val)
        if y_val.shape != (n,):
            raise ValueError(
                f"y_val has shape {y_val.shape}; expected ({n},), one label per "
                "X_val image."
            )
        if not np.isin(y_val, (-1, 1)).all():
            raise ValueError(
                "y_val must hold +1 (healthy, inlier) and -1 (abnormal, outlier) "
                f"labels; got values {np.unique(y_val)[:5].tolist()}. Convert class "
                "labels with np.where(y == 'normal', 1, -1)."
            )
        return y_val == -1

    def _youden(self, anomalies, outlier):
        if outlier.all() or not outlier.any():
            raise ValueError(
                "threshold='youden' needs healthy (+1) and abnormal (-1) images in "
                "y_val."
            )
        fpr, tpr, thresholds = roc_curve(outlier, anomalies)
        best = thresholds[1:][np.argmax((tpr - fpr)[1:])]  # drop the +inf point
        # flagged when anomaly > threshold_: midway to the next lower anomaly
        lower = anomalies[anomalies < best]
        return float((best + lower.max()) / 2 if len(lower) else best - 1e-12)

    def _method(self):
        """The object that fits and runs this detector's method."""
        return _METHODS[self.method](self)

    def _warn_unused_parameters(self):
        """Warn about parameters set away from their defaults that only another
        method reads (they would be silently ignored)."""
        defaults = type(self)().get_params()
        params = self.get_params(deep=False)
        used = _method_parameters(self.method)
        ignored = sorted(
            name
            for other in _METHODS
            if other != self.method
            for name in _method_parameters(other) - used
            if params[name] is not defaults[name] and params[name] != defaults[name]
        )
        if ignored:
            warnings.warn(
                f"{', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} not "
                f"used by method={self.method!r} and ignored (see each "
                "parameter's 'used when method=...').",
                UserWarning,
                stacklevel=3,
            )

    def anomaly_map(self, X):
        """Per-pixel anomaly at the input resolution (higher = more anomalous).

        Patch methods: the patch anomalies (Mahalanobis or nearest-neighbour
        distances) upsampled bilinearly and smoothed with a Gaussian of
        ``sigma`` pixels; the per-image anomaly is their maximum (or
        ``aggregation`` quantile) over ``region``. Autoencoder: the squared
        reconstruction error per pixel (``error="ssim"``: ``1 - SSIM``
        per pixel; ``"masked_mse"``: zero outside ``mask_``).

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (n_samples, H, W), float32
        """
        check_is_fitted(self)
        files = as_files(self, X, reset=False)  # file paths: read batch by batch
        if files is not None:
            return stream_map(self.anomaly_map, *files, self.batch_size)
        images, _ = validate_images(self, X, reset=False)
        return self._method().maps(images)

    def reconstruction_error(self, X, *, error=None):
        """Per-image anomaly (higher = more abnormal), the scale of ``threshold_``.

        Parameters
        ----------
        X : array-like of images
        error : {"mse", "ssim", "masked_mse"} or None, default=None
            ``"autoencoder"`` only: ``None`` uses the fitted ``error``; another
            value compares error types on one fitted network (``mask_`` is
            fitted whatever the error). The patch methods accept ``None`` only.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        if error is not None and error not in _ERRORS:
            raise ValueError(
                f"error must be 'mse', 'ssim' or 'masked_mse', got {error!r}."
            )
        if error is not None and self.method != "autoencoder":
            raise ValueError(
                f"error={error!r} is a reconstruction error of method='autoencoder'; "
                f"this detector uses method={self.method!r}: call with error=None."
            )
        files = as_files(self, X, reset=False)  # file paths: read batch by batch
        if files is not None:
            score = functools.partial(self.reconstruction_error, error=error)
            return stream_map(score, *files, self.batch_size)
        images, _ = validate_images(self, X, reset=False)
        if error is not None:
            return self._method().errors(images, error)
        return self._method().anomalies(images)

    def score_samples(self, X):
        """Opposite of the per-image anomaly: higher means more normal.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return -self.reconstruction_error(X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for inliers (normal), -1 for outliers (anomaly above ``threshold_``).

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (n_samples,), dtype int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def transform(self, X):
        """Image features for a downstream estimator.

        ``"autoencoder"``: the latent codes (the encoder mean). Patch methods:
        the patch features averaged over the image (the pretrained encoder's
        pooled multi-stage features; for ``"padim"`` the kept channels).

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (n_samples, n_features_out), dtype float32
        """
        check_is_fitted(self)
        files = as_files(self, X, reset=False)  # file paths: read batch by batch
        if files is not None:
            return stream_map(self.transform, *files, self.batch_size)
        images, _ = validate_images(self, X, reset=False)
        return self._method().features(images)

    @available_if(_is_autoencoder)
    def reconstruct(self, X):
        """Reconstructed images, in the layout of ``X`` (``"autoencoder"`` only).

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray, float32 in [0, 1], same layout as ``X``
        """
        check_is_fitted(self)
        files = as_files(self, X, reset=False)  # file paths: read batch by batch
        if files is not None:
            return stream_map(self.reconstruct, *files, self.batch_size)
        images, layout = validate_images(self, X, reset=False)
        return restore_layout(self._method().reconstruct(images), layout)

    # ------------------------------------------------------------------- pickling
    # One path for pickle, copy.deepcopy and skcxr.utils.save_model: networks
    # are stored as plain data (arrays), the patch model as arrays, the
    # training history as numbers; all are rebuilt from the parameters when
    # loaded, on the CPU. Cache attributes (_engine*, _device_*) are not kept.
    def __getstate__(self):
        from ..nn._state import module_to_arrays, network_to_data, tensors_to_data

        state = network_to_data(super().__getstate__())
        extractor = state.pop("feature_extractor_", None)
        if extractor is not None:
            state["feature_extractor_"] = {
                "arrays": module_to_arrays(extractor),
                "blocks": list(extractor.blocks),
                "input_size": int(extractor.input_size),
                "neighbourhood": int(extractor.neighbourhood),
            }
        patch_model = state.pop("patch_model_", None)
        if patch_model is not None:
            state["patch_model_"] = tensors_to_data(patch_model)
        return state

    def __setstate__(self, state):
        from ..nn._state import data_to_history

        state = dict(state)
        if not isinstance(state.get("module_", state.get("feature_extractor_")), dict):
            super().__setstate__(state)  # an older version's pickle: torch objects
            return
        module = state.pop("module_", None)
        history = state.pop("history_", None)
        extractor = state.pop("feature_extractor_", None)
        patch_model = state.pop("patch_model_", None)
        super().__setstate__(state)
        if module is not None:
            self.module_ = self._method().rebuild(module)
        if history is not None:
            self.history_ = data_to_history(history)
        if extractor is not None:
            self.feature_extractor_ = self._method().rebuild_extractor(extractor)
        if patch_model is not None:
            self.patch_model_ = self._method().rebuild_model(patch_model)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # features are float32
        return tags
