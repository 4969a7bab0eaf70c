"""Lung-field segmentation of chest X-rays with a U-Net, as a transformer.

:class:`LungSegmenter` learns the lung fields from images and their masks
(a U-Net, Ronneberger et al. 2015, trained on soft Dice + binary
cross-entropy), predicts boolean masks, and masks or crops images to the
lungs, so a fitted segmenter takes the place of
:class:`~skcxr.OtsuMasker` in a classification pipeline. The image layouts
it accepts are the data contract of the user guide.
"""

from numbers import Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch.nn import functional as F

from ..nn._engine_support import ENGINES, PRECISIONS, check_engine
from ..nn._streaming import as_files, load_images, stream_map
from ..nn._torch_utils import check_device, resolve_device
from ..preprocessing._masker import _fill_holes, _regions
from ..utils._param_validation import IntInterval
from ..utils._random import seed_from
from ..utils._validation import restore_layout, validate_images

__all__ = ["LungSegmenter"]


class LungSegmenter(TransformerMixin, BaseEstimator):
    """Segment the lung fields of chest X-rays with a U-Net.

    ``fit(X, masks)`` trains a U-Net (Ronneberger, Fischer, Brox 2015) on
    images and their lung masks with the sum of the soft Dice loss
    (Milletari et al. 2016) and binary cross-entropy (Adam, shuffled
    mini-batches). :meth:`predict` returns boolean masks (the pixels whose
    probability reaches ``threshold``, cleaned up: the ``n_components``
    largest connected regions kept, holes filled); :meth:`predict_proba` the
    per-pixel probabilities; :meth:`transform` the images masked to the lungs,
    cropped to them, or the masks themselves (``output``).

    A fitted segmenter wrapped in :class:`sklearn.frozen.FrozenEstimator`
    replaces :class:`~skcxr.OtsuMasker` in a classification
    :class:`~sklearn.pipeline.Pipeline` (it is not refitted on the class
    labels).

    Parameters
    ----------
    encoder : str or None, default=None
        ``None``: the small U-Net built in (``depth`` levels of two 3x3
        convolutions with batch normalisation, ``width`` channels at the top
        level), fastest on a CPU at small sizes. An encoder name of
        ``segmentation_models_pytorch`` (``"resnet18"``, ``"mobilenet_v2"``,
        ...): that package's U-Net around it (``pip install
        skcxr[segment]``).
    encoder_weights : {"imagenet"} or None, default=None
        Used with an ``encoder`` name: ``None`` trains it from scratch;
        ``"imagenet"`` starts from its ImageNet weights (downloaded once by
        ``segmentation_models_pytorch``).
    depth : int, default=4
        Pooling levels of the U-Net (stages of an ``encoder``: 3 to 5). The
        images are padded to a multiple of ``2**depth`` inside the network.
    width : int, default=16
        Channels of the top level (of the last decoder stage with an
        ``encoder``), doubled at each level below.
    max_epochs : int, default=20
        Training epochs.
    lr : float, default=1e-2
        Adam learning rate (batch normalisation makes the U-Net train well
        at this rate; 5 epochs on 200 generated 64-pixel radiographs reach a
        held-out Dice of 0.97).
    batch_size : int, default=16
        Images per training batch; file paths are also read in batches of
        this size.
    threshold : float in (0, 1), default=0.5
        A pixel is lung when its probability reaches it.
    n_components : int or None, default=2
        Keep the largest 4-connected regions of each predicted mask (2: the
        two lungs); ``None`` keeps every region.
    fill_holes : bool, default=True
        Fill the holes of each predicted mask.
    output : {"masked", "crop", "mask"}, default="masked"
        What :meth:`transform` returns: the images with ``fill_value``
        outside the lungs; the images cropped to the bounding box of the
        lungs (widened by ``margin``) and resized back to their size
        (bilinear); or the masks as 0/1 float32 images.
    fill_value : float in [0, 1], default=0.0
        Value of the pixels outside the lungs with ``output="masked"``.
    margin : float, default=0.05
        With ``output="crop"``: the box is widened by this fraction of its
        height and width on each side (clipped to the image).
    loader : ImageLoader, Pipeline or None, default=None
        How file paths given as ``X`` are read (arrays are used as they
        are): an :class:`~skcxr.ImageLoader`, or a Pipeline whose first step
        is one. None reads with ``ImageLoader(size=224)`` in ``fit`` and at
        the fitted size afterwards. The masks given to ``fit`` must have the
        size the loader reads; with ``on_error="skip"`` or ``"warn"`` the
        masks of unreadable files are dropped with them.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present. The fitted network is kept on the
        CPU (and pickled there).
    engine : {"torch", "onnxruntime", "openvino"}, default="torch"
        Runs inference (:meth:`predict_proba`, :meth:`predict`,
        :meth:`transform`) in torch, or exports the fitted U-Net once to
        ONNX and runs it on the CPU with ONNX Runtime (``pip install
        skcxr[onnx]``) or OpenVINO (``pip install skcxr[openvino]``);
        probabilities equal to torch's within 1e-4. With an engine,
        ``device`` must be ``"cpu"`` or ``"auto"``. See
        :ref:`inference_engines`.
    precision : {"fp32", "bf16", "int8"}, default="fp32"
        The arithmetic of the engine (``engine="torch"`` takes only
        ``"fp32"``); ``"int8"`` (ONNX Runtime) is calibrated on 32 training
        images kept at ``fit`` in ``calibration_images_``.
    verbose : int, default=0
        Print skorch's epoch table when positive.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights and the shuffling (through ``torch``
        generators of its own; the global random state is left as it was).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained U-Net, on the CPU in eval mode (logits out).
    history_ : skorch.History
        Per-epoch ``train_loss`` (soft Dice + BCE).
    calibration_images_ : ndarray of shape (n_calibration, H, W) or None
        The training images an INT8 engine is calibrated on (with
        ``precision="int8"``; None otherwise).
    n_features_in_ : int
        Pixels per image.
    image_shape_ : tuple of int
        ``(H, W)`` of the training images.

    See Also
    --------
    skcxr.OtsuMasker : Masks from Otsu's threshold, without training.
    skcxr.metrics.dice_score : Scores predicted masks against reference ones.

    Notes
    -----
    Each image goes through the network on its own, so its mask never
    depends on the other images of a batch. Inference never changes the
    fitted network, so one segmenter can serve several threads.

    Ronneberger, Fischer, Brox (2015), "U-Net: Convolutional Networks for
    Biomedical Image Segmentation", MICCAI. Milletari, Navab, Ahmadi (2016),
    "V-Net", 3DV (the soft Dice loss).

    Examples
    --------
    >>> from skcxr import LungSegmenter
    >>> from skcxr.datasets import make_chest_xrays
    >>> from skcxr.metrics import dice_score
    >>> X, _, lungs = make_chest_xrays(16, size=32, return_lung_masks=True,
    ...                                random_state=0)
    >>> seg = LungSegmenter(depth=2, width=4, max_epochs=2, random_state=0)
    >>> seg = seg.fit(X, lungs)
    >>> masks = seg.predict(X)
    >>> masks.shape, masks.dtype
    ((16, 32, 32), dtype('bool'))
    >>> 0.0 <= dice_score(lungs, masks) <= 1.0
    True
    >>> seg.set_params(output="crop").transform(X).shape
    (16, 32, 32)
    """

    _parameter_constraints = {
        "encoder": [str, None],
        "encoder_weights": [StrOptions({"imagenet"}), None],
        "depth": [IntInterval(1, 6, closed="both")],
        "width": [IntInterval(1, None, closed="left")],
        "max_epochs": [IntInterval(1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [IntInterval(1, None, closed="left")],
        "threshold": [Interval(Real, 0, 1, closed="neither")],
        "n_components": [IntInterval(1, None, closed="left"), None],
        "fill_holes": ["boolean"],
        "output": [StrOptions({"masked", "crop", "mask"})],
        "fill_value": [Interval(Real, 0, 1, closed="both")],
        "margin": [Interval(Real, 0, None, closed="left")],
        "loader": [None, HasMethods(["transform"])],
        "device": [str, torch.device],
        "engine": [StrOptions(set(ENGINES))],
        "precision": [StrOptions(set(PRECISIONS))],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    #: What ``fit`` takes as ``y``: one boolean mask per image.
    _image_target = "masks"

    def __init__(
        self,
        *,
        encoder=None,
        encoder_weights=None,
        depth=4,
        width=16,
        max_epochs=20,
        lr=1e-2,
        batch_size=16,
        threshold=0.5,
        n_components=2,
        fill_holes=True,
        output="masked",
        fill_value=0.0,
        margin=0.05,
        loader=None,
        device="auto",
        engine="torch",
        precision="fp32",
        verbose=0,
        random_state=None,
    ):
        self.encoder = encoder
        self.encoder_weights = encoder_weights
        self.depth = depth
        self.width = width
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.threshold = threshold
        self.n_components = n_components
        self.fill_holes = fill_holes
        self.output = output
        self.fill_value = fill_value
        self.margin = margin
        self.loader = loader
        self.device = device
        self.engine = engine
        self.precision = precision
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _network(self, encoder_weights=None):
        from ..nn._unet import UNet, smp_unet

        if self.encoder is None:
            return UNet(depth=self.depth, width=self.width)
        if not 3 <= self.depth <= 5:
            raise ValueError(
                f"depth={self.depth}: the U-Net of an encoder has 3 to 5 stages."
            )
        return smp_unet(
            self.encoder,
            depth=self.depth,
            width=self.width,
            encoder_weights=encoder_weights,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the U-Net on images and their lung masks.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or \
                (n_samples, H*W), or a 1-D array of file paths
            Images in [0, 1], or files read through ``loader``.
        y : array-like of shape (n_samples, H, W), or a list of (H, W) masks
            The lung masks, boolean (or 0/1), one per image and of its size
            (a flat ``(n_samples, H*W)`` array is taken as square masks, as
            ``X``).

        Returns
        -------
        self : LungSegmenter
        """
        from ..nn._autoencoder import reset_parameters
        from ..nn._callbacks import DivergenceGuard
        from ..nn._unet import DiceBCELoss, SegmentationNet

        if y is None:
            raise ValueError(
                "LungSegmenter requires y to be passed, but the target y is None: "
                "fit(X, masks) takes one lung mask per image."
            )
        files = as_files(self, X, reset=True)
        names, rows = None, None
        if files is not None:
            names = [str(p) for p in files[1]]
            X, rows = load_images(*files, batch_size=self.batch_size)
        images, _ = validate_images(self, X, reset=True)
        masks = _check_masks(y, images, rows=rows, names=names)
        check_device(self.device)
        check_engine(self.engine, self.device, self.precision)
        device = resolve_device(self.device)
        rng = np.random.default_rng(seed_from(self.random_state))
        init_seed, shuffle_seed = (int(s) for s in rng.integers(0, 2**31 - 1, 2))
        # Construction draws from torch's global generator: fork it, so the
        # caller's state is untouched, and re-draw the weights from our own.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            module = self._network(self.encoder_weights)
        if self.encoder_weights is None:
            reset_parameters(module, torch.Generator().manual_seed(init_seed))
        n = images.shape[0]
        callbacks = [DivergenceGuard()]
        net = SegmentationNet(
            module,
            criterion=DiceBCELoss,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=min(self.batch_size, n),
            iterator_train__shuffle=True,
            iterator_train__generator=torch.Generator().manual_seed(shuffle_seed),
            train_split=None,
            callbacks=callbacks,
            device=device,
            verbose=int(self.verbose),
        )
        # a writable copy where X is read-only (a memmap): torch needs one
        inputs = images[:, None] if images.flags.writeable else images[:, None].copy()
        net.fit(inputs, masks[:, None].astype(np.float32))
        self.module_ = net.module_.cpu().eval()
        self.history_ = net.history
        from ..nn._engines import keep_calibration

        keep_calibration(self, images)
        return self

    # ---------------------------------------------------------------- inference
    def _inference_module(self):
        """The fitted network on the inference device (a cached copy off the CPU)."""
        device = resolve_device(self.device)
        if device == "cpu":
            return self.module_, "cpu"
        cached = getattr(self, "_device_module", None)
        if cached is None or cached[0] is not self.module_:
            import copy

            try:
                moved = copy.deepcopy(self.module_).to(device).eval()
            except (RuntimeError, AssertionError):  # e.g. no such GPU here
                return self.module_, "cpu"
            cached = (self.module_, moved)
            self._device_module = cached
        return cached[1], device

    def _probabilities(self, images):
        if self.engine != "torch":
            return self._engine_probabilities(images)
        module, device = self._inference_module()
        out = np.empty(images.shape, dtype=np.float32)
        with torch.inference_mode():
            for i in range(images.shape[0]):
                x = torch.tensor(images[i : i + 1, None], device=device)
                out[i] = torch.sigmoid(module(x))[0, 0].float().cpu().numpy()
        return out

    def _engine_probabilities(self, images):
        """:meth:`_probabilities` through the inference engine (CPU)."""
        from ..nn._engines import engine_runner

        check_engine(self.engine, self.device, self.precision)
        runner = engine_runner(
            self,
            self.module_,
            (1, *self.image_shape_),
            build=lambda: _Sigmoid(self.module_),
        )
        out = np.empty(images.shape, dtype=np.float32)
        for i in range(images.shape[0]):
            out[i] = runner(images[i : i + 1, None])[0, 0]
        return out

    def _masks(self, images):
        masks = self._probabilities(images) >= self.threshold
        if self.n_components is not None:
            masks = _regions(masks, self.n_components, clear_border=False)
        if self.fill_holes:
            masks = _fill_holes(masks)
        return masks

    def _images(self, X):
        """``(images, layout)`` of image arrays of the fitted size."""
        check_is_fitted(self)
        return validate_images(self, X, reset=False)

    def predict_proba(self, X):
        """Per-pixel probability of lung.

        Parameters
        ----------
        X : array-like of images, or a 1-D array of file paths

        Returns
        -------
        ndarray of shape (n_samples, H, W), float32 in [0, 1]
        """
        check_is_fitted(self)
        files = as_files(self, X, reset=False)
        if files is not None:
            return stream_map(self.predict_proba, *files, self.batch_size)
        images, _ = self._images(X)
        return self._probabilities(images)

    def predict(self, X):
        """Boolean lung masks: thresholded, largest regions kept, holes filled.

        Parameters
        ----------
        X : array-like of images, or a 1-D array of file paths

        Returns
        -------
        ndarray of shape (n_samples, H, W), bool
        """
        check_is_fitted(self)
        files = as_files(self, X, reset=False)
        if files is not None:
            return stream_map(self.predict, *files, self.batch_size)
        images, _ = self._images(X)
        return self._masks(images)

    def transform(self, X):
        """The images masked to the lungs, cropped to them, or the masks.

        Parameters
        ----------
        X : array-like of images, or a 1-D array of file paths

        Returns
        -------
        ndarray, float32, in the layout of ``X`` (``(n_samples, H, W)`` for
        file paths)
            See ``output``.
        """
        check_is_fitted(self)
        files = as_files(self, X, reset=False)
        if files is not None:
            return stream_map(self.transform, *files, self.batch_size)
        images, layout = self._images(X)
        masks = self._masks(images)
        if self.output == "mask":
            out = masks.astype(np.float32)
        elif self.output == "masked":
            out = np.where(masks, images, np.float32(self.fill_value))
        else:
            out = _crop(images, masks, self.margin)
        return restore_layout(out.astype(np.float32, copy=False), layout)

    def score(self, X, y):
        """Mean Dice coefficient of :meth:`predict` against the masks ``y``.

        Parameters
        ----------
        X : array-like of images, or a 1-D array of file paths
        y : array-like of shape (n_samples, H, W)
            Reference lung masks.

        Returns
        -------
        float
        """
        from ..metrics._segmentation import dice_score

        pred = self.predict(X)
        return dice_score(_check_masks(y, pred), pred)

    # ------------------------------------------------------------------- pickling
    # The network is stored as arrays and rebuilt from the parameters (no
    # torch object in a pickle or a model file); caches are not kept.
    def __getstate__(self):
        from ..nn._state import network_to_data

        state = network_to_data(super().__getstate__())
        return state

    def __setstate__(self, state):
        from ..nn._state import arrays_to_module, data_to_history, rebuild_quietly

        state = dict(state)
        module = state.pop("module_", None)
        history = state.pop("history_", None)
        super().__setstate__(state)
        if module is not None:
            rebuilt = rebuild_quietly(self._network)
            arrays_to_module(
                rebuilt, module["arrays"], frozen=module["frozen"], what="U-Net"
            )
            self.module_ = rebuilt.eval()
        if history is not None:
            self.history_ = data_to_history(history)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class _Sigmoid(torch.nn.Module):
    """The U-Net's probabilities, for export to an inference engine."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x):
        return torch.sigmoid(self.network(x))


def _check_masks(y, images, *, rows=None, names=None):
    """The masks ``y`` as a boolean ``(n, H, W)`` array matching ``images``.

    ``rows``: the rows of ``y`` whose images were read (files skipped by the
    loader drop their masks); ``names``: the file of each row of ``y``, for
    the messages.
    """
    n, height, width = images.shape
    if isinstance(y, (list, tuple)):
        masks = list(y)
    else:
        masks = np.asarray(y)
        if masks.ndim == 0:
            raise ValueError(
                "y must hold one lung mask per image, shape (n_samples, H, W); "
                f"got {masks!r}."
            )
        if masks.ndim == 2 and masks.shape[1] == height * width:
            masks = masks.reshape(len(masks), height, width)  # flat square masks
        elif masks.ndim == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]
    n_given = len(masks)
    expected = n if rows is None else len(names)
    if n_given != expected:
        raise ValueError(
            f"y holds {n_given} masks but X has {expected} images; give one lung "
            "mask per image."
        )
    keep = range(n) if rows is None else rows
    out = np.empty((n, height, width), dtype=bool)
    for i, row in enumerate(keep):
        mask = np.asarray(masks[row])
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.shape != (height, width):
            what = f"mask {row}" + (f" (of {names[row]!r})" if names else "")
            raise ValueError(
                f"{what} has shape {mask.shape} but its image is "
                f"{height}x{width}; each mask must have the size of its image."
            )
        if mask.dtype != bool:
            if not (
                np.issubdtype(mask.dtype, np.number) and np.isin(mask, (0, 1)).all()
            ):
                raise ValueError(
                    f"mask {row} must be boolean (or 0/1); got dtype {mask.dtype} "
                    "with other values."
                )
        out[i] = mask
    return out


def _crop(images, masks, margin):
    """Each image cropped to its mask's bounding box (widened by ``margin``)
    and resized back to its size (bilinear); the whole image where the mask
    is empty."""
    n, height, width = images.shape
    out = np.empty_like(images)
    for i in range(n):
        rows = np.flatnonzero(masks[i].any(axis=1))
        cols = np.flatnonzero(masks[i].any(axis=0))
        if rows.size == 0:
            out[i] = images[i]
            continue
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        dh = int(round(margin * (bottom - top)))
        dw = int(round(margin * (right - left)))
        top, bottom = max(top - dh, 0), min(bottom + dh, height)
        left, right = max(left - dw, 0), min(right + dw, width)
        box = torch.from_numpy(np.ascontiguousarray(images[i, top:bottom, left:right]))
        resized = F.interpolate(
            box[None, None],
            size=(height, width),
            mode="bilinear",
            align_corners=False,
        )
        out[i] = resized[0, 0].numpy().clip(0.0, 1.0)
    return out
