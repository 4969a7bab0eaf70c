"""The autoencoder method of :class:`~skcxr.ReconstructionAnomalyDetector`.

A convolutional (variational) autoencoder trained on the pixels of healthy
images; an image's anomaly is its reconstruction error. The estimator keeps
the parameters, the thresholds and the fitted attributes; this class trains
and runs the network (``module_``, ``history_``).
"""

import math

import numpy as np
import torch
from skorch.callbacks import EarlyStopping
from skorch.dataset import ValidSplit
from torch import nn

from ..nn._autoencoder import AutoencoderNet, ConvAutoencoder, reset_parameters
from ..nn._callbacks import DivergenceGuard, check_callbacks, progress_callbacks
from ..nn._ssim import ssim_error, ssim_map
from ..nn._torch_utils import resolve_device

__all__ = ["AutoencoderMethod"]


class AutoencoderMethod:
    """Train and run the autoencoder of a detector ``estimator``."""

    #: The estimator parameters only this method reads.
    parameters = (
        "latent_dim",
        "depth",
        "width",
        "variational",
        "encoder",
        "encoder_trainable",
        "decoder",
        "loss",
        "beta",
        "error",
        "max_epochs",
        "lr",
        "early_stopping",
        "validation_fraction",
        "n_iter_no_change",
        "callbacks",
    )

    def __init__(self, estimator):
        self.est = estimator

    # ------------------------------------------------------------------ fitting
    def fit(self, images, rng):
        """Train ``module_`` on ``images``; returns their reconstruction errors."""
        est = self.est
        n = images.shape[0]
        device = resolve_device(est.device)
        init_seed, shuffle_seed, noise_seed, split_seed = (
            int(s) for s in rng.integers(0, 2**31 - 1, size=4)
        )
        train_split, callbacks = None, [DivergenceGuard()]
        if est.early_stopping:
            n_valid = int(math.floor(n * est.validation_fraction))
            if n_valid < 1 or n - n_valid < 1:
                raise ValueError(
                    f"validation_fraction={est.validation_fraction} leaves no "
                    f"validation or training image out of {n}; use more images or "
                    "early_stopping=False."
                )
            train_split = ValidSplit(
                cv=est.validation_fraction, stratified=False, random_state=split_seed
            )
            callbacks.append(
                EarlyStopping(
                    monitor="valid_loss",
                    patience=est.n_iter_no_change,
                    load_best=True,
                    sink=print if est.verbose else (lambda *a, **k: None),
                )
            )
        callbacks += [
            *progress_callbacks(est.verbose),
            *check_callbacks(est.callbacks),
        ]
        # Construction draws default inits from the global RNG: fork it so the
        # caller's state is untouched, then re-draw from our own generator.
        encoder = self.encoder(est.weights, init_seed)
        with torch.random.fork_rng(devices=[]):
            module = self._network(encoder)
        reset_parameters(
            module,
            torch.Generator().manual_seed(init_seed),
            keep=encoder,  # pretrained: trained from its weights, never re-drawn
        )
        module.generator = torch.Generator(device=device).manual_seed(noise_seed)
        net = AutoencoderNet(
            module,
            beta=est.beta,
            loss=est.loss,
            criterion=nn.MSELoss,  # unused: get_loss compares with X
            optimizer=torch.optim.Adam,
            lr=est.lr,
            max_epochs=est.max_epochs,
            batch_size=min(est.batch_size, n),
            iterator_train__shuffle=True,
            iterator_train__generator=torch.Generator().manual_seed(shuffle_seed),
            train_split=train_split,
            callbacks=callbacks,
            device=device,
            verbose=int(est.verbose),
        )
        net.fit(images[:, None], None)
        module = net.module_
        module.generator = None
        module.eval()
        est.module_ = module
        est.history_ = net.history
        est._n_features_out = est.latent_dim
        return self.errors(images, est.error)

    def _network(self, encoder):
        est = self.est
        return ConvAutoencoder(
            est.image_shape_,
            est.latent_dim,
            est.depth,
            est.width,
            est.variational,
            encoder=encoder,
            encoder_trainable=est.encoder_trainable,
            decoder=est.decoder,
        )

    def encoder(self, weights, seed=0):
        """The backbone encoder of ``encoder`` (None: the convolutional one).

        ``weights=None`` draws its random weights from ``seed`` (torch's global
        generator is left as it was).
        """
        if self.est.encoder is None:
            if self.est.encoder_trainable != 0:
                raise ValueError(
                    f"encoder_trainable={self.est.encoder_trainable!r} applies to a "
                    "pretrained backbone encoder; with encoder=None the "
                    "convolutional encoder is always trained. Set encoder= "
                    "(e.g. 'efficientnet_b4') or leave encoder_trainable=0."
                )
            return None
        from ..nn._backbones import build_backbone, check_backbone_name

        check_backbone_name(self.est.encoder, "encoder")
        if weights is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                return build_backbone(self.est.encoder, weights=None).eval()
        return build_backbone(self.est.encoder, weights=weights).eval()

    # ---------------------------------------------------------------- inference
    def _batches(self, images):
        """Yield ``(x_on_device, module)`` batches of the autoencoder."""
        est = self.est
        module = est.module_
        device = resolve_device(est.device)
        if next(module.parameters()).device != torch.device(device):
            try:
                module.to(device)
            except (RuntimeError, AssertionError):  # e.g. CUDA model on a CPU host
                module.to("cpu")
                device = "cpu"
        for start in range(0, images.shape[0], est.batch_size):
            x = torch.tensor(images[start : start + est.batch_size, None])
            yield x.to(device), module

    def errors(self, images, error):
        """Per-image reconstruction error of kind ``error``."""
        mask = self.est.mask_ if error == "masked_mse" else None
        out = []
        with torch.inference_mode():
            for x, module in self._batches(images):
                recon = module(x)[0]
                if error == "ssim":
                    e = ssim_error(recon, x)
                else:
                    sq = (recon - x) ** 2
                    if mask is not None:
                        m = torch.from_numpy(mask).to(sq.device)
                        e = sq[:, 0, m].mean(1)
                    else:
                        e = sq.flatten(1).mean(1)
                out.append(e.float().cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def anomalies(self, images):
        return self.errors(images, self.est.error)

    def maps(self, images):
        """Per-pixel squared error (``1 - SSIM`` for ``error="ssim"``)."""
        est = self.est
        out = []
        with torch.inference_mode():
            for x, module in self._batches(images):
                recon = module(x)[0]
                if est.error == "ssim":
                    m = 1.0 - ssim_map(recon, x, pad=True)
                else:
                    m = (recon - x) ** 2
                out.append(m[:, 0].float().cpu().numpy())
        maps = np.concatenate(out)
        if est.error == "masked_mse":
            maps = maps * est.mask_
        return maps.astype(np.float32, copy=False)

    def features(self, images):
        """The latent codes (the encoder mean)."""
        with torch.inference_mode():
            codes = [
                m.encode(x)[0].float().cpu().numpy() for x, m in self._batches(images)
            ]
        return np.concatenate(codes).astype(np.float32, copy=False)

    def reconstruct(self, images):
        with torch.inference_mode():
            out = [
                m(x)[0][:, 0].float().cpu().numpy() for x, m in self._batches(images)
            ]
        return np.concatenate(out)

    # ----------------------------------------------------------------- loading
    def rebuild(self, data):
        """The autoencoder of ``fit`` rebuilt from the parameters (a backbone
        ``encoder`` with random weights: nothing is downloaded or read), with
        the saved arrays, on the CPU in eval mode."""
        from ..nn._state import arrays_to_module, rebuild_quietly

        module = rebuild_quietly(lambda: self._network(self.encoder(None)))
        arrays_to_module(
            module, data["arrays"], frozen=data["frozen"], what="autoencoder"
        )
        return module.eval()
