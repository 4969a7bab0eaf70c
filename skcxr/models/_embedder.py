"""CNN embeddings of images as a scikit-learn transformer."""

import copy
import os
import warnings

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import HasMethods, Hidden, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..nn._engines import (
    ENGINES,
    PRECISIONS,
    check_engine,
    engine_runner,
    keep_calibration,
    run_batched,
)
from ..nn._features import PooledFeatures, inference_network
from ..nn._streaming import as_files, load_images, stream_map
from ..nn._torch_utils import check_device, resolve_device
from ..utils._param_validation import IntInterval
from ..utils._random import seed_from
from ..utils._validation import validate_images

__all__ = ["CNNEmbedder"]


class CNNEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Embed images with a convolutional network: images -> ``(n, d)`` float32.

    The embedding is the globally pooled last feature map of a backbone from
    the registry (``backbone="efficientnet_lite0"``, ImageNet weights
    offline) or of a network of your own (:class:`skcxr.nn.UserBackbone`),
    or the penultimate layer of a fitted :class:`~skcxr.TransferClassifier`
    (the input of its final linear layer: "remove the last layer"). Its
    output feeds any scikit-learn estimator, such as
    :class:`~sklearn.neighbors.KNeighborsClassifier` or :class:`~skcxr.TSNE`.

    Inference is batched, runs under :func:`torch.inference_mode` in the
    channels-last memory format (faster convolutions on CPU), with batch
    norms folded into the convolutions that feed them and in-place
    activations (checked to give the same output at ``fit``), and is
    deterministic for given images and ``batch_size``.

    Parameters
    ----------
    backbone : str, torch.nn.Module or fitted TransferClassifier, \
            default="efficientnet_lite0"
        A backbone name (see :func:`skcxr.nn.list_backbones`), as for
        :class:`~skcxr.TransferClassifier`; a torch module taking
        ``(n, 1, H, W)`` float images in [0, 1] and returning ``(n, d)``
        embeddings or ``(n, C, h, w)`` feature maps, or any network wrapped
        in :class:`skcxr.nn.UserBackbone` (which says which layer is the
        feature layer and how many input channels it takes); the module is
        copied at ``fit``. Or a fitted :class:`~skcxr.TransferClassifier`:
        its ``module_.embed`` is used and the module is copied at ``fit``,
        so refitting the classifier later does not change this embedder;
        wrap it in :class:`sklearn.frozen.FrozenEstimator` when the embedder
        is cloned, as in ``cross_validate`` or ``GridSearchCV``, because
        ``clone`` returns an unfitted classifier.
    weights : "imagenet", str, path or None, default="imagenet"
        Weights of a backbone given by name: ``"imagenet"``, a local file
        (loaded with ``torch.load(weights_only=True)``) or ``None`` (random
        initialisation from ``random_state``). For a torch module, a file is
        loaded into (a copy of) it, and ``"imagenet"`` or ``None`` keep its
        own weights. Ignored for a TransferClassifier.
    pooling : {"avg", "max", "avgmax"}, default="avg"
        Global pooling of a feature map; ``"avgmax"`` concatenates both
        (twice the dimension). Ignored when the model returns ``(n, d)``.
    batch_size : int, default=32
        Images per forward pass.
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    engine : {"torch", "onnxruntime", "openvino"}, default="torch"
        Runs :meth:`transform`: torch, or the network exported once to ONNX
        (at ``fit``, or on first use after unpickling or ``set_params``) and
        run on the CPU by ONNX Runtime (``pip install skcxr[onnx]``) or
        OpenVINO (``pip install skcxr[openvino]``) in 32-bit floats, usually
        faster than torch on a CPU (embeddings equal to torch's within 1e-4
        relative to their scale). With an engine, ``device`` must be
        ``"cpu"`` or ``"auto"`` (which then means the CPU). See
        :ref:`inference_engines`.
    precision : {"fp32", "bf16", "int8"}, default="fp32"
        Arithmetic of the engine (``engine="torch"`` takes only ``"fp32"``):
        32-bit floats; bfloat16 (OpenVINO on a CPU with bf16 instructions);
        or, with ONNX Runtime, 8-bit integers after post-training static
        quantisation calibrated on 32 training images drawn at ``fit`` and
        kept in ``calibration_images_``, so in a saved model too (faster,
        outputs a few percent off: measure the change on held-out data
        first). See :ref:`reduced_precision`.
    verbose : bool, default=False
        Show a progress bar over batches.
    channels_last : bool, default=True
        Run convolutions in the channels-last memory format.
    loader : ImageLoader, Pipeline or None, default=None
        How file paths given as ``X`` are read (arrays are used as they are):
        an :class:`~skcxr.ImageLoader`, or a
        :class:`~sklearn.pipeline.Pipeline` whose first step is one, followed
        by per-image transformers applied to every batch (e.g.
        ``make_pipeline(ImageLoader(size=224), OtsuMasker())``). None reads
        with ``ImageLoader(size=224)`` in ``fit`` and at the fitted size
        afterwards. :meth:`transform` decodes one batch at a time in the
        loader's ``n_jobs`` background worker processes, so memory holds a
        few batches of images, and returns one row per path (an unreadable
        file raises); ``fit`` reads only the first readable files.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights when ``weights=None``.
    model : str, torch.nn.Module or fitted TransferClassifier
        Deprecated alias of ``backbone``.

        .. deprecated:: 0.1
            ``model`` was renamed to ``backbone`` in 0.1 and will be removed
            in 0.2.

    Attributes
    ----------
    module_ : torch.nn.Module
        The embedding network on the CPU, in eval mode.
    n_features_out_ : int
        Embedding dimension ``d``.
    n_features_in_ : int
        Pixels per image seen during ``fit``.
    image_shape_ : tuple of int
        ``(H, W)`` of the images seen during ``fit``. :meth:`transform` needs
        images of this size: an embedding depends on the resolution, so
        embeddings of different sizes are not comparable (resize with
        :class:`~skcxr.ImageLoader` first).
    calibration_images_ : ndarray of shape (n_calibration, H, W) or None
        The training images the INT8 engine is calibrated on (with
        ``precision="int8"``; None otherwise).

    See Also
    --------
    skcxr.TransferClassifier : Trains the network whose penultimate layer
        this can embed with.
    skcxr.TSNE : A map of the embeddings.

    Notes
    -----
    ``fit`` learns nothing from the data: it builds (or copies) the network,
    records the image size and runs the first images through it to prepare
    the inference graph and find ``d``. ``module_`` is the prepared network.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skcxr import CNNEmbedder
    >>> X = np.random.default_rng(0).random((4, 16, 16), dtype=np.float32)
    >>> net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU())
    >>> embedder = CNNEmbedder(backbone=net, device="cpu").fit(X)
    >>> embedder.transform(X).shape
    (4, 8)
    """

    _parameter_constraints: dict = {
        "backbone": [str, HasMethods(["fit", "predict"]), nn.Module],
        "weights": [str, os.PathLike, None],
        "pooling": [StrOptions({"avg", "max", "avgmax"})],
        "batch_size": [IntInterval(1, None, closed="left")],
        "device": [str, torch.device],
        "engine": [StrOptions(set(ENGINES))],
        "precision": [StrOptions(set(PRECISIONS))],
        "verbose": ["verbose"],
        "channels_last": ["boolean"],
        "loader": [None, HasMethods(["transform"])],
        "random_state": ["random_state"],
        "model": [
            Hidden(StrOptions({"deprecated"})),
            str,
            HasMethods(["fit", "predict"]),
            nn.Module,
        ],
    }

    def __init__(
        self,
        *,
        backbone="efficientnet_lite0",
        weights="imagenet",
        pooling="avg",
        batch_size=32,
        device="auto",
        engine="torch",
        precision="fp32",
        verbose=False,
        channels_last=True,
        loader=None,
        random_state=None,
        model="deprecated",
    ):
        self.backbone = backbone
        self.weights = weights
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device
        self.engine = engine
        self.precision = precision
        self.verbose = verbose
        self.channels_last = channels_last
        self.loader = loader
        self.random_state = random_state
        self.model = model

    def _backbone(self):
        """``backbone``, or the deprecated ``model`` when it is given."""
        if isinstance(self.model, str) and self.model == "deprecated":
            return self.backbone
        if not (
            isinstance(self.backbone, str) and self.backbone == "efficientnet_lite0"
        ):
            raise ValueError(
                "Both `backbone` and the deprecated `model` were set; only set "
                "`backbone`."
            )
        warnings.warn(
            "Parameter `model` was renamed to `backbone` in version 0.1 and will be "
            "removed in 0.2; use CNNEmbedder(backbone=...).",
            FutureWarning,
            stacklevel=2,
        )
        return self.model

    def _build_network(self):
        from ..nn._backbones import build_backbone, load_weights_into

        backbone = self._backbone()
        if isinstance(backbone, str):
            if self.weights is not None:
                return PooledFeatures(
                    build_backbone(backbone, weights=self.weights), self.pooling
                )
            # random initial weights from random_state; fork_rng restores torch's
            # global generator afterwards, so its state is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed_from(self.random_state))
                network = build_backbone(backbone, weights=None)
            return PooledFeatures(network, self.pooling)
        if isinstance(backbone, nn.Module):
            network = copy.deepcopy(backbone).cpu()
            if self.weights not in (None, "imagenet"):
                load_weights_into(network, self.weights)
            return PooledFeatures(network, self.pooling)
        # a fitted TransferClassifier (or anything exposing module_.embed)
        check_is_fitted(backbone)
        module = getattr(backbone, "module_", None)
        if not callable(getattr(module, "embed", None)):
            raise ValueError(
                f"backbone={type(backbone).__name__} has no fitted `module_.embed`; "
                "pass a fitted skcxr.TransferClassifier, a backbone name or a torch "
                "module."
            )
        return PooledFeatures(copy.deepcopy(module).cpu(), self.pooling, "embed")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the network and record the image size.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or \
                (n_samples, H*W)
            Images in [0, 1], or a 1-D list of image file paths (read through
            ``loader``); only their size (and the first image) is used.
        y : None
            Ignored.

        Returns
        -------
        self : CNNEmbedder
        """
        check_device(self.device)
        check_engine(self.engine, self.device, self.precision)
        files = as_files(self, X, reset=True)  # file paths: the first ones suffice
        if files is not None:
            X = load_images(files[0], files[1][: self.batch_size])[0]
        images, _ = validate_images(self, X, reset=True)
        keep_calibration(self, images, files)
        probe = torch.tensor(images[:2])[:, None]
        try:
            module = inference_network(self._build_network(), probe)
        except RuntimeError as exc:  # e.g. an image too small for the network
            raise ValueError(
                f"The network could not embed images of size {images.shape[1:]}: {exc}"
            ) from exc
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module_ = module
        self._device_module = None
        try:
            self.n_features_out_ = self._embed(images[:1]).shape[1]
        except RuntimeError as exc:  # e.g. an image too small for the network
            raise ValueError(
                f"The network could not embed images of size {images.shape[1:]}: {exc}"
            ) from exc
        return self

    def transform(self, X):
        """Embed images.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or \
                (n_samples, H*W)
            Images in [0, 1] of the size seen in ``fit``, or a 1-D list of
            image file paths (read through ``loader``, batch by batch).

        Returns
        -------
        embeddings : ndarray of shape (n_samples, n_features_out), dtype float32
        """
        check_is_fitted(self)
        files = as_files(self, X, reset=False)  # file paths: read batch by batch
        if files is not None:
            return stream_map(self.transform, *files, self.batch_size)
        images, _ = validate_images(self, X, reset=False)
        return self._embed(images, progress=bool(self.verbose))

    def _network_on(self, device):
        if device == "cpu":
            return self.module_
        cached = getattr(self, "_device_module", None)
        if cached is None or cached[0] != device:
            cached = (device, copy.deepcopy(self.module_).to(device))
            self._device_module = cached
        return cached[1]

    def _embed(self, images, progress=False):
        check_engine(self.engine, self.device, self.precision)
        if self.engine != "torch":
            # exported once per fitted module_ and engine (see EngineCache)
            runner = engine_runner(self, self.module_, (1, *self.image_shape_))
            return run_batched(
                runner,
                images,
                self.batch_size,
                progress="CNNEmbedder" if progress else None,
            )
        device = resolve_device(self.device)
        network = self._network_on(device)
        memory_format = (
            torch.channels_last if self.channels_last else torch.contiguous_format
        )
        starts = range(0, len(images), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="CNNEmbedder", unit="batch")
        out = None
        with torch.inference_mode():
            for start in starts:
                # a copy: the network may compute in place, never on the caller's data
                batch = torch.tensor(images[start : start + self.batch_size])[:, None]
                batch = batch.to(device).contiguous(memory_format=memory_format)
                features = network(batch)
                if out is None:
                    out = np.empty((len(images), features.shape[1]), np.float32)
                out[start : start + len(batch)] = features.float().cpu().numpy()
        return out

    # One path for pickle, copy.deepcopy and skcxr.utils.save_model: module_ is
    # stored as plain data (its arrays, and what folding the batch norms
    # changed in its structure) and rebuilt from the parameters when loaded;
    # cache attributes (_engine*, _device_*) are not kept.
    def __getstate__(self):
        from ..nn._state import drop_caches, module_to_arrays, structure_of

        state = drop_caches(super().__getstate__())
        module = state.pop("module_", None)
        if module is not None:
            state["module_"] = {
                "arrays": module_to_arrays(module),
                "structure": structure_of(module),
                "method": module.method,
            }
        return state

    def __setstate__(self, state):
        state = dict(state)
        module = state.pop("module_", None)
        super().__setstate__(state)
        if module is not None:  # an older version's pickle holds the module itself
            self.module_ = (
                self._rebuild_module(module) if isinstance(module, dict) else module
            )

    def _rebuild_module(self, data):
        """``module_`` rebuilt from the parameters, with the saved arrays.

        A backbone name is built with random weights (nothing is downloaded
        or read), a torch module or a TransferClassifier's network is copied;
        the batch norms folded at ``fit`` are folded again in the structure,
        then the saved arrays are loaded. On the CPU, in eval mode.
        """
        from ..nn._backbones import build_backbone
        from ..nn._state import arrays_to_module, rebuild_quietly, restore_structure

        backbone = self.backbone
        if not (isinstance(self.model, str) and self.model == "deprecated"):
            backbone = self.model
        if isinstance(backbone, str):
            network = rebuild_quietly(lambda: build_backbone(backbone, weights=None))
        elif isinstance(backbone, nn.Module):
            network = copy.deepcopy(backbone).cpu()
        else:  # a fitted TransferClassifier
            network = copy.deepcopy(backbone.module_).cpu()
        module = PooledFeatures(network, self.pooling, data["method"])
        restore_structure(module, data["structure"])
        arrays_to_module(
            module,
            data["arrays"],
            frozen=[name for name, _ in module.named_parameters()],
            what="CNNEmbedder network",
        )
        module.eval()
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = False
        return tags
