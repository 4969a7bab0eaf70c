"""Reconstruction-error anomaly detection with a convolutional autoencoder.

The detector is trained on healthy images only; an image it reconstructs badly
is flagged as abnormal. It follows scikit-learn's outlier-detector conventions
(``score_samples`` higher = more normal, ``decision_function = score_samples -
offset_``, ``predict`` +1 inlier / -1 outlier, as ``IsolationForest``) and
pyod's score -> threshold -> labels contract, and it is a transformer whose
``transform`` returns the latent codes, so "autoencoder features -> classifier"
is a :class:`~sklearn.pipeline.Pipeline`.
"""

import math
from numbers import Integral, Real

import numpy as np
import torch
from scipy import ndimage
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    OutlierMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.dataset import ValidSplit
from torch import nn
from torch.nn import functional as F

from ..nn._torch_utils import resolve_device
from ..utils._random import seed_from
from ..utils._validation import restore_layout, validate_images

__all__ = ["ReconstructionAnomalyDetector"]


# ----------------------------------------------------------------------------- network
class _ConvAutoencoder(nn.Module):
    """Conv2d+MaxPool encoder, Linear bottleneck, Upsample+Conv2d decoder.

    Input ``(n, 1, H, W)`` in [0, 1]; it is padded (replicate) on the bottom and
    right to the next multiple of ``2**depth`` and the output is cropped back.
    ``forward`` returns ``(reconstruction, mu, logvar)`` (``logvar`` is None for
    a plain autoencoder); a VAE samples ``mu + sigma * eps`` in train mode only,
    with ``eps`` from ``self.generator`` (set during fit), and uses ``mu`` in
    eval mode.
    """

    def __init__(self, image_shape, latent_dim, depth, width, variational):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.depth = depth
        self.variational = variational
        self.generator = None
        step = 2**depth
        self.padded = tuple(step * math.ceil(s / step) for s in self.image_shape)
        self.code_shape = (
            width * 2 ** (depth - 1),
            self.padded[0] // step,
            self.padded[1] // step,
        )
        enc, channels = [], 1
        for level in range(depth):
            out = width * 2**level
            enc += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        self.encoder = nn.Sequential(*enc)
        flat = int(np.prod(self.code_shape))
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim) if variational else None
        self.from_code = nn.Linear(latent_dim, flat)
        dec = []
        for level in reversed(range(depth)):
            out = width * 2 ** max(level - 1, 0)
            dec += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(channels, out, 3, padding=1),
                nn.ReLU(),
            ]
            channels = out
        dec += [nn.Conv2d(channels, 1, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x):
        pad_h = self.padded[0] - x.shape[-2]
        pad_w = self.padded[1] - x.shape[-1]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        h = self.encoder(x).flatten(1)
        logvar = self.to_logvar(h) if self.variational else None
        return self.to_mu(h), logvar

    def decode(self, z):
        h = F.relu(self.from_code(z)).view(-1, *self.code_shape)
        out = self.decoder(h)
        return out[..., : self.image_shape[0], : self.image_shape[1]]

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu
        if self.variational and self.training:
            eps = torch.randn(
                mu.shape, generator=self.generator, device=mu.device, dtype=mu.dtype
            )
            z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar


def _reset_parameters(module, generator):
    """Re-draw every Conv2d/Linear parameter (PyTorch's default scheme) from ``generator``."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            fan_in = layer.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class _AutoencoderNet(NeuralNet):
    """skorch net whose loss compares the reconstruction with the input X."""

    def __init__(self, *args, beta=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.beta = beta

    def get_loss(self, y_pred, y_true, X=None, training=False):
        recon, mu, logvar = y_pred
        X = X.to(recon.device)
        loss = F.mse_loss(recon, X)
        if logvar is not None:
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1).mean()
            loss = loss + self.beta * kl / X[0].numel()
        return loss


# ------------------------------------------------------------------ reconstruction errors
def _gaussian_window(size, sigma, device):
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_error(x, y):
    """Per-image ``1 - mean SSIM`` (Gaussian window 11, sigma 1.5, as Wang et al. 2004)."""
    side = min(x.shape[-2:])
    size = min(11, side if side % 2 else side - 1)
    g = _gaussian_window(max(size, 1), 1.5, x.device)
    wx, wy = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, wx), wy)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx**2
    vy = blur(y * y) - my**2
    cxy = blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / (
        (mx**2 + my**2 + c1) * (vx + vy + c2)
    )
    return 1.0 - ssim.flatten(1).mean(1)


def _otsu_threshold(values, bins=256):
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(centers[np.argmax(between)])


def _lung_mask(images):
    """Lung-field mask of the healthy atlas (mean training image).

    The lungs are the dark (air-filled) region inside the bright body: blur the
    mean image, keep pixels below its Otsu threshold, drop dark regions that
    touch the image border (air outside the patient) and keep the two largest
    remaining regions. Falls back to the whole image when that leaves less
    than 5 % of it.
    """
    atlas = ndimage.gaussian_filter(
        images.mean(0), sigma=max(images.shape[1] / 64, 0.5)
    )
    dark = atlas < _otsu_threshold(atlas.ravel())
    labels, n = ndimage.label(dark)
    border = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    sizes = ndimage.sum(dark, labels, index=np.arange(1, n + 1))
    keep = [i + 1 for i in np.argsort(sizes)[::-1] if i + 1 not in border][:2]
    mask = np.isin(labels, keep)
    if mask.mean() < 0.05:
        mask = np.ones_like(dark)
    return mask


# -------------------------------------------------------------------------- estimator
class ReconstructionAnomalyDetector(
    ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin, BaseEstimator
):
    """Convolutional (variational) autoencoder anomaly detector for chest X-rays.

    Fit it on healthy images only (``y`` is ignored); an image whose
    reconstruction error exceeds ``threshold_`` is an outlier (-1).

    Parameters
    ----------
    latent_dim : int, default=32
        Size of the bottleneck code returned by :meth:`transform`.
    depth : int, default=3
        Number of Conv2d+MaxPool(2) encoder levels (and Upsample+Conv2d decoder
        levels). Images whose side is not a multiple of ``2**depth`` are padded
        (replicating the last row/column) on the bottom/right inside the network
        and the reconstruction is cropped back, so any size works; errors are
        computed on the original pixels only.
    width : int, default=16
        Channels of the first level; each further level doubles them.
    variational : bool, default=False
        Train a VAE: the encoder gives a mean and a log-variance, the code is
        sampled with the reparameterisation trick during training and the mean
        is used at inference.
    beta : float, default=1.0
        Weight of the KL term of the VAE loss ``MSE + beta * KL / (H * W)``
        (the KL is summed over the latent dimensions, the MSE averaged over
        pixels). Ignored unless ``variational=True``.
    error : {"mse", "ssim", "masked_mse"}, default="mse"
        Per-image reconstruction error used for scoring (training always
        minimises pixel MSE): ``"mse"`` the mean squared pixel error (the
        seeds); ``"ssim"`` ``1 - SSIM`` with an 11-pixel Gaussian window
        (sigma 1.5), which compares local structure and contrast rather than
        absolute intensity; ``"masked_mse"`` the MSE inside a lung-field mask
        ``mask_`` fitted once on the mean training image (Otsu), so the error is
        not dominated by the edges of the body, the diaphragm and the image
        border. A per-image mask is deliberately not used: a consolidation is
        bright, so an intensity mask of a sick image would cut the lesion out.
    threshold : "mean" or float in (0, 0.5], default="mean"
        ``"mean"``: an image is an outlier when its error exceeds the mean
        training error (the first seed's rule). A float ``q``: the ``1 - q``
        quantile of the training errors, so about a fraction ``q`` of the
        training images are outliers (a contamination).
    max_epochs : int, default=20
    batch_size : int, default=32
        Used for training and inference.
    lr : float, default=1e-3
        Adam learning rate.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the images, stop when the
        validation loss has not improved for ``n_iter_no_change`` epochs and
        restore the best weights.
    validation_fraction : float in (0, 1), default=0.1
        Used only when ``early_stopping=True``.
    n_iter_no_change : int, default=5
        Patience of early stopping.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present. Fitted weights are kept on that
        device and pickled on the CPU.
    verbose : int, default=0
        Print skorch's epoch table when positive.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, batch shuffling, the validation split and
        the VAE noise (through ``torch.Generator`` objects; the global RNGs are
        neither read nor changed).

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted autoencoder, in eval mode.
    history_ : skorch.History
        Per-epoch ``train_loss`` (and ``valid_loss``) of the fit.
    decision_scores_ : ndarray of shape (n_samples,)
        :meth:`score_samples` of the training images (``-error``; higher is
        more normal).
    threshold_ : float
        Error above which an image is an outlier.
    offset_ : float
        ``-threshold_``: ``decision_function = score_samples - offset_``.
    mask_ : ndarray of shape (H, W), bool
        Lung-field mask used by ``error="masked_mse"`` (fitted in any case).
    n_features_in_ : int
        Pixels per image.
    image_shape_ : tuple of int
        ``(H, W)`` of the training images.

    See Also
    --------
    sklearn.ensemble.IsolationForest : The same score/offset/predict conventions.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr import ReconstructionAnomalyDetector
    >>> X = np.random.default_rng(0).random((8, 16, 16), dtype=np.float32)
    >>> det = ReconstructionAnomalyDetector(latent_dim=4, depth=2, width=4,
    ...                                     max_epochs=1, random_state=0).fit(X)
    >>> det.predict(X).shape, det.transform(X).shape, det.reconstruct(X).shape
    ((8,), (8, 4), (8, 16, 16))
    >>> bool(np.all((det.decision_function(X) < 0) == (det.predict(X) == -1)))
    True
    """

    _parameter_constraints = {
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "depth": [Interval(Integral, 1, 6, closed="both")],
        "width": [Interval(Integral, 1, None, closed="left")],
        "variational": ["boolean"],
        "beta": [Interval(Real, 0, None, closed="left")],
        "error": [StrOptions({"mse", "ssim", "masked_mse"})],
        "threshold": [StrOptions({"mean"}), Interval(Real, 0, 0.5, closed="right")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        latent_dim=32,
        depth=3,
        width=16,
        variational=False,
        beta=1.0,
        error="mse",
        threshold="mean",
        max_epochs=20,
        batch_size=32,
        lr=1e-3,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        device="auto",
        verbose=0,
        random_state=None,
    ):
        self.latent_dim = latent_dim
        self.depth = depth
        self.width = width
        self.variational = variational
        self.beta = beta
        self.error = error
        self.threshold = threshold
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder on (healthy) images and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W), (n_samples, 1, H, W) or (n_samples, H*W)
            Images in [0, 1] (the data contract), healthy ones only.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : ReconstructionAnomalyDetector
        """
        images, _ = validate_images(self, X, reset=True)
        n = images.shape[0]
        device = resolve_device(self.device)
        rng = np.random.default_rng(seed_from(self.random_state))
        init_seed, shuffle_seed, noise_seed, split_seed = (
            int(s) for s in rng.integers(0, 2**31 - 1, size=4)
        )

        train_split, callbacks = None, []
        if self.early_stopping:
            n_valid = int(math.floor(n * self.validation_fraction))
            if n_valid < 1 or n - n_valid < 1:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no "
                    f"validation or training image out of {n}; use more images or "
                    "early_stopping=False."
                )
            train_split = ValidSplit(
                cv=self.validation_fraction, stratified=False, random_state=split_seed
            )
            callbacks.append(
                EarlyStopping(
                    monitor="valid_loss",
                    patience=self.n_iter_no_change,
                    load_best=True,
                    sink=print if self.verbose else (lambda *a, **k: None),
                )
            )

        # Construction draws default inits from the global RNG: fork it so the
        # caller's state is untouched, then re-draw from our own generator.
        with torch.random.fork_rng(devices=[]):
            module = _ConvAutoencoder(
                self.image_shape_,
                self.latent_dim,
                self.depth,
                self.width,
                self.variational,
            )
        _reset_parameters(module, torch.Generator().manual_seed(init_seed))
        module.generator = torch.Generator(device=device).manual_seed(noise_seed)

        net = _AutoencoderNet(
            module,
            beta=self.beta,
            criterion=nn.MSELoss,  # unused: get_loss compares with X
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=min(self.batch_size, n),
            iterator_train__shuffle=True,
            iterator_train__generator=torch.Generator().manual_seed(shuffle_seed),
            train_split=train_split,
            callbacks=callbacks,
            device=device,
            verbose=int(self.verbose),
        )
        net.fit(images[:, None], None)

        module = net.module_
        module.generator = None
        module.eval()
        self.module_ = module
        self.history_ = net.history
        self._n_features_out = self.latent_dim
        self.mask_ = _lung_mask(images)
        errors = self._errors(images, self.error)
        if self.threshold == "mean":
            self.threshold_ = float(errors.mean())
        else:
            self.threshold_ = float(np.quantile(errors, 1.0 - self.threshold))
        self.offset_ = -self.threshold_
        self.decision_scores_ = -errors
        return self

    # ---------------------------------------------------------------- inference
    def _batches(self, images):
        """Yield ``(x_on_device, module)`` batches under inference mode."""
        module = self.module_
        device = resolve_device(self.device)
        if next(module.parameters()).device != torch.device(device):
            try:
                module.to(device)
            except (RuntimeError, AssertionError):  # e.g. CUDA model on a CPU host
                module.to("cpu")
                device = "cpu"
        for start in range(0, images.shape[0], self.batch_size):
            x = torch.from_numpy(images[start : start + self.batch_size, None])
            yield x.to(device), module

    def _errors(self, images, error):
        mask = self.mask_ if error == "masked_mse" else None
        out = []
        with torch.inference_mode():
            for x, module in self._batches(images):
                recon = module(x)[0]
                if error == "ssim":
                    e = _ssim_error(recon, x)
                else:
                    sq = (recon - x) ** 2
                    if mask is not None:
                        m = torch.from_numpy(mask).to(sq.device)
                        e = sq[:, 0, m].mean(1)
                    else:
                        e = sq.flatten(1).mean(1)
                out.append(e.float().cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def reconstruction_error(self, X, *, error=None):
        """Per-image reconstruction error (higher = more abnormal).

        Parameters
        ----------
        X : array-like of images
        error : {"mse", "ssim", "masked_mse"} or None, default=None
            ``None`` uses the fitted ``error`` (the scale of ``threshold_``);
            another value is for comparing error types on one fitted model
            (``mask_`` is fitted whatever the error).

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        error = self.error if error is None else error
        if error not in ("mse", "ssim", "masked_mse"):
            raise ValueError(
                f"error must be 'mse', 'ssim' or 'masked_mse', got {error!r}."
            )
        images, _ = validate_images(self, X, reset=False)
        return self._errors(images, error)

    def score_samples(self, X):
        """Opposite of the reconstruction error: higher means more normal.

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
        """+1 for inliers (normal), -1 for outliers (error above ``threshold_``).

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (n_samples,), dtype int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def transform(self, X):
        """Latent codes (the encoder mean), for a downstream estimator.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray of shape (n_samples, latent_dim), dtype float32
        """
        check_is_fitted(self)
        images, _ = validate_images(self, X, reset=False)
        with torch.inference_mode():
            codes = [
                m.encode(x)[0].float().cpu().numpy() for x, m in self._batches(images)
            ]
        return np.concatenate(codes).astype(np.float32, copy=False)

    def reconstruct(self, X):
        """Reconstructed images, in the layout of ``X``.

        Parameters
        ----------
        X : array-like of images

        Returns
        -------
        ndarray, float32 in [0, 1], same layout as ``X``
        """
        check_is_fitted(self)
        images, layout = validate_images(self, X, reset=False)
        with torch.inference_mode():
            out = [
                m(x)[0][:, 0].float().cpu().numpy() for x, m in self._batches(images)
            ]
        return restore_layout(np.concatenate(out), layout)

    # ------------------------------------------------------------------- pickling
    def __getstate__(self):
        state = super().__getstate__()
        if "module_" in state and next(state["module_"].parameters()).is_cuda:
            module = state["module_"]
            state["module_"] = _copy_to_cpu(module)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # codes are float32
        return tags


def _copy_to_cpu(module):
    import copy

    clone = copy.deepcopy(module)
    return clone.to("cpu")
