"""The patch methods of :class:`~skcxr.ReconstructionAnomalyDetector`.

PaDiM (Defard et al. 2020) and PatchCore (Roth et al. 2022) describe every
image location by the multi-stage features of a frozen pretrained CNN
(:class:`~skcxr.nn._patch_features.PatchFeatures`) and score a patch by how
unlike the healthy patches it is: a Gaussian per location (Mahalanobis
distance) or a memory bank (nearest-neighbour distance). Both share the image
preparation (exposure, blur, alignment onto the healthy atlas), the feature
extraction (torch or an inference engine), and turning patch grids into
smoothed per-pixel maps and per-image anomalies; they differ only in the
model of the healthy patches (:meth:`PatchMethod.fit_model`).
"""

import copy
from numbers import Integral

import numpy as np
import torch
from scipy import ndimage
from sklearn.model_selection import KFold
from torch.nn import functional as F

from ..nn._engines import check_engine, engine_runner, keep_calibration, run_batched
from ..nn._torch_utils import resolve_device
from ..preprocessing._otsu import atlas_lung_mask

__all__ = ["PaDiMMethod", "PatchCoreMethod", "translations"]

_DEFAULT_STRIDES = (4, 8)


def translations(reference, images):
    """Integer (row, column) shifts that best align each image with ``reference``.

    The peak of the FFT cross-correlation, as
    ``skimage.registration.phase_cross_correlation(reference, image,
    normalization=None)`` (a shift larger than half the side wraps to a
    negative one).
    """
    from scipy import fft

    product = fft.fft2(reference)[None] * np.conj(fft.fft2(images))
    correlation = np.abs(fft.ifft2(product))
    n, height, width = images.shape
    flat = correlation.reshape(n, -1).argmax(1)
    rows, cols = np.divmod(flat, width)
    rows = np.where(rows > height // 2, rows - height, rows)
    cols = np.where(cols > width // 2, cols - width, cols)
    return np.stack([rows, cols], axis=1).astype(np.float64)


def _all_channels(extractor):
    """A copy of a PatchFeatures extractor that keeps all its channels."""
    extractor = copy.deepcopy(extractor)
    extractor.channels = None
    return extractor


class PatchMethod:
    """What PaDiM and PatchCore share, for a detector ``estimator``.

    Fitted state lives on the estimator: ``feature_extractor_``,
    ``patch_model_``, ``atlas_``, ``mask_``.
    """

    #: The estimator parameters only this method reads (besides the shared
    #: patch parameters).
    parameters = ()
    #: The estimator parameters both patch methods read.
    patch_parameters = (
        "backbone",
        "input_size",
        "stages",
        "sigma",
        "aggregation",
        "region",
        "align",
        "input_sigma",
        "normalize",
        "engine",
        "precision",
    )

    def __init__(self, estimator):
        self.est = estimator

    # ------------------------------------------------------------------ fitting
    def fit(self, images, rng):
        """Fit the healthy patch model; returns the images' out-of-sample
        anomalies."""
        est = self.est
        if len(images) < 2:
            raise ValueError(
                f"method={est.method!r} models the variation of healthy images "
                f"and needs at least 2 of them (got n_samples={len(images)}); "
                "tens to hundreds give a useful model."
            )
        extractor = self._build_extractor(rng)
        est.feature_extractor_ = extractor
        est._device_extractor = None
        est.atlas_ = None
        prepared, _ = self.prepare(images)
        if est.align:
            est.atlas_ = prepared.mean(0)
            prepared, _ = self.prepare(images)
        est.mask_ = atlas_lung_mask(prepared)
        keep_calibration(est, prepared)
        features = self.patch_features(prepared)
        features = self.select_channels(features, rng)
        est._n_features_out = features.shape[1]
        return self._aggregate(self._upsample(self.fit_model(features, rng)))

    def select_channels(self, features, rng):
        """The channels of ``features`` the model uses (all of them)."""
        return features

    def fit_model(self, features, rng):
        """Fit ``patch_model_`` on the training features ``(n, d, h, w)``;
        returns the training images' out-of-sample patch anomalies
        ``(n, h, w)``."""
        raise NotImplementedError

    def _build_extractor(self, rng):
        from ..nn._backbones import build_backbone, check_backbone_name
        from ..nn._patch_features import PatchFeatures, stage_blocks

        est = self.est
        check_backbone_name(est.backbone)
        strides = _DEFAULT_STRIDES if est.stages is None else est.stages
        if not (
            len(strides) > 0
            and all(isinstance(s, Integral) and s >= 1 for s in strides)
        ):
            raise ValueError(
                f"stages must be a non-empty tuple of output strides such as "
                f"(4, 8, 16); got {est.stages!r}."
            )
        if est.weights is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(2**31 - 1)))
                network = build_backbone(est.backbone, weights=None)
        else:
            network = build_backbone(est.backbone, weights=est.weights)
        network.eval()
        for param in network.parameters():
            param.requires_grad_(False)
        size = self._input_size(network)
        blocks = stage_blocks(network, tuple(int(s) for s in strides), size)
        return PatchFeatures(network, blocks, size).eval()

    def _input_size(self, network):
        from ..nn._patch_features import resized_input

        est = self.est
        if est.input_size is None:  # the size the backbone resizes to, if any
            fixed = resized_input(network)
            return fixed or max(32, int(est.image_shape_[0]))
        return int(est.input_size)

    # ---------------------------------------------------------------- inference
    def prepare(self, images):
        """Blur, normalise and align images for the patch features.

        Returns the prepared images and the (row, column) shift applied to each
        (``None`` without alignment).
        """
        est = self.est
        out = images
        if est.normalize == "percentile":
            low, high = np.percentile(out, [1, 99], axis=(1, 2), keepdims=True)
            out = np.clip((out - low) / np.maximum(high - low, 1e-6), 0, 1)
        if est.input_sigma > 0:
            sigma = (0, est.input_sigma, est.input_sigma)
            out = ndimage.gaussian_filter(out, sigma=sigma, mode="nearest")
        out = out.astype(np.float32, copy=False)
        if not est.align or getattr(est, "atlas_", None) is None:
            return out, None
        shifts = translations(est.atlas_, out)
        aligned = np.stack(
            [
                ndimage.shift(image, shift, order=1, mode="nearest")
                for image, shift in zip(out, shifts)
            ]
        )
        return aligned.astype(np.float32, copy=False), shifts

    def _extractor_on(self, device):
        est = self.est
        if device == "cpu":
            return est.feature_extractor_
        cached = getattr(est, "_device_extractor", None)
        if cached is None or cached[0] != device:
            cached = (device, copy.deepcopy(est.feature_extractor_).to(device))
            est._device_extractor = cached
        return cached[1]

    def patch_features(self, images):
        """Patch features ``(n, d, h, w)`` of prepared images."""
        est = self.est
        check_engine(est.engine, est.device, est.precision)
        if est.engine != "torch":
            # exported once per fitted extractor and engine, without the channel
            # subset (chosen after the training features): applied here
            extractor = est.feature_extractor_
            runner = engine_runner(
                est,
                extractor,
                (1, *images.shape[1:]),
                build=lambda: _all_channels(extractor),
            )
            features = torch.from_numpy(run_batched(runner, images, est.batch_size))
            if extractor.channels is not None:
                features = features.index_select(1, extractor.channels)
            return features
        device = resolve_device(est.device)
        extractor = self._extractor_on(device)
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), est.batch_size):
                x = torch.tensor(images[start : start + est.batch_size])[:, None]
                out.append(extractor(x.to(device)).float().cpu())
        return torch.cat(out)

    def _sigma(self):
        est = self.est
        if est.sigma == "auto":
            return 4.0 * est.image_shape_[0] / 224
        return float(est.sigma)

    def _upsample(self, grids):
        """Patch-grid anomalies -> smoothed per-pixel maps ``(n, H, W)``."""
        maps = F.interpolate(
            grids[:, None],
            size=self.est.image_shape_,
            mode="bilinear",
            align_corners=False,
        )[:, 0].numpy()
        sigma = self._sigma()
        if sigma > 0:
            maps = ndimage.gaussian_filter(
                maps, sigma=(0, sigma, sigma), mode="nearest"
            )
        return maps.astype(np.float32, copy=False)

    def _aggregate(self, maps):
        est = self.est
        region = est.mask_ if est.region == "lungs" else None
        values = maps[:, region] if region is not None else maps.reshape(len(maps), -1)
        if est.aggregation == "max":
            return values.max(1).astype(np.float64)
        return np.quantile(values, est.aggregation, axis=1).astype(np.float64)

    def maps(self, images, own_coordinates=True):
        """Per-pixel anomaly maps; with ``own_coordinates``, shifted back from
        the atlas to each image's own position."""
        prepared, shifts = self.prepare(images)
        patches = self.est.patch_model_.score(self.patch_features(prepared))
        maps = self._upsample(patches)
        if own_coordinates and shifts is not None:
            maps = np.stack(
                [
                    ndimage.shift(m, -shift, order=1, mode="nearest")
                    for m, shift in zip(maps, shifts)
                ]
            )
        return maps

    def anomalies(self, images):
        return self._aggregate(self.maps(images, own_coordinates=False))

    def features(self, images):
        """The patch features averaged over the image."""
        prepared, _ = self.prepare(images)
        return self.patch_features(prepared).mean((2, 3)).numpy()

    # ----------------------------------------------------------------- loading
    def rebuild_extractor(self, data):
        """The patch feature extractor of ``fit``: the backbone built with
        random weights (nothing is downloaded or read), then the saved arrays."""
        from ..nn._backbones import build_backbone
        from ..nn._patch_features import PatchFeatures
        from ..nn._state import arrays_to_module, rebuild_quietly

        backbone = self.est.backbone
        network = rebuild_quietly(lambda: build_backbone(backbone, weights=None))
        arrays = data["arrays"]
        extractor = PatchFeatures(
            network,
            data["blocks"],
            data["input_size"],
            data["neighbourhood"],
            channels=arrays.get("channels"),
        )
        arrays_to_module(
            extractor,
            arrays,
            frozen=[name for name, _ in extractor.named_parameters()],
            what=f"patch feature extractor (backbone={backbone!r})",
        )
        return extractor.eval()

    def rebuild_model(self, data):
        from ..nn._state import data_to_tensors

        return data_to_tensors(self.model_class(), data)


class PaDiMMethod(PatchMethod):
    """A Gaussian per grid location (Defard et al. 2020); training anomalies
    are cross-fitted (5 folds) so that thresholds are not optimistic."""

    parameters = ("n_features",)

    @staticmethod
    def model_class():
        from ..nn._patch_models import GaussianPatchModel

        return GaussianPatchModel

    def select_channels(self, features, rng):
        """A random subset of ``n_features`` channels (Defard et al. 2020)."""
        n_features, n_channels = self.est.n_features, features.shape[1]
        if n_features is None or n_features >= n_channels:
            return features
        keep = np.sort(rng.choice(n_channels, n_features, replace=False))
        self.est.feature_extractor_.channels = torch.as_tensor(keep, dtype=torch.long)
        return features[:, torch.as_tensor(keep)]

    def fit_model(self, features, rng):
        model = self.model_class()
        self.est.patch_model_ = model().fit(features)
        n = len(features)
        if n < 4:
            return self.est.patch_model_.score(features)
        grids = torch.empty(n, *features.shape[2:])
        folds = KFold(
            n_splits=min(5, n), shuffle=True, random_state=int(rng.integers(2**31 - 1))
        )
        for train, test in folds.split(np.arange(n)):
            grids[test] = model().fit(features[train]).score(features[test])
        return grids


class PatchCoreMethod(PatchMethod):
    """A coreset memory bank of healthy patches (Roth et al. 2022); training
    anomalies are leave-one-image-out."""

    parameters = ("coreset_ratio",)

    @staticmethod
    def model_class():
        from ..nn._patch_models import PatchMemory

        return PatchMemory

    def fit_model(self, features, rng):
        est = self.est
        generator = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
        est.patch_model_ = self.model_class()(est.coreset_ratio, generator)
        est.patch_model_.fit(features)
        return est.patch_model_.score(features, exclude=torch.arange(len(features)))
