"""A small convolutional (variational) autoencoder for gray images, and its skorch net.

The encoder is either trained with the decoder (Conv2d + MaxPool levels) or a
frozen pretrained backbone (any network of :func:`skcxr.nn.build_backbone`,
e.g. EfficientNet-B4) whose globally pooled feature map feeds the bottleneck.
"""

import math

import numpy as np
import torch
from skorch import NeuralNet
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvAutoencoder", "AutoencoderNet", "reset_parameters"]


class ConvAutoencoder(nn.Module):
    """Conv2d+MaxPool encoder, Linear bottleneck, Upsample+Conv2d decoder.

    Input ``(n, 1, H, W)`` in [0, 1]; it is padded (replicate) on the bottom and
    right to the next multiple of ``2**depth`` and the output is cropped back.
    ``forward`` returns ``(reconstruction, mu, logvar)`` (``logvar`` is None for
    a plain autoencoder); a VAE samples ``mu + sigma * eps`` in train mode only,
    with ``eps`` from ``self.generator`` (set during fit), and uses ``mu`` in
    eval mode.

    With ``encoder`` (a backbone: ``(n, 1, H, W)`` in [0, 1] to a feature map
    with ``encoder.out_channels`` channels), the code is computed from its
    globally averaged feature map instead of the convolutional encoder; the
    backbone is frozen (no gradient, always in eval mode, its parameters left
    out of :func:`reset_parameters`), so only the bottleneck and the decoder
    learn.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._autoencoder import ConvAutoencoder
    >>> net = ConvAutoencoder((18, 18), latent_dim=4, depth=2, width=4,
    ...                       variational=False).eval()
    >>> recon, mu, logvar = net(torch.rand(2, 1, 18, 18))
    >>> tuple(recon.shape), tuple(mu.shape), logvar is None
    ((2, 1, 18, 18), (2, 4), True)
    >>> from skcxr.nn import SmallCNN, build_backbone
    >>> frozen = build_backbone(SmallCNN(channels=(4, 8)))
    >>> net = ConvAutoencoder((18, 18), 4, 2, 4, False, encoder=frozen).eval()
    >>> tuple(net(torch.rand(2, 1, 18, 18))[0].shape)
    (2, 1, 18, 18)
    """

    def __init__(
        self, image_shape, latent_dim, depth, width, variational, encoder=None
    ):
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
        flat = int(np.prod(self.code_shape))
        self.frozen_encoder = encoder is not None
        if self.frozen_encoder:
            for param in encoder.parameters():
                param.requires_grad_(False)
            self.encoder = encoder.eval()
            encoded = int(encoder.out_channels)
        else:
            self.encoder = nn.Sequential(*enc)
            encoded = flat
        self.to_mu = nn.Linear(encoded, latent_dim)
        self.to_logvar = nn.Linear(encoded, latent_dim) if variational else None
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

    def train(self, mode=True):
        super().train(mode)
        if self.frozen_encoder:
            self.encoder.eval()  # frozen: batch-norm statistics never move
        return self

    def encode(self, x):
        if self.frozen_encoder:
            h = self.encoder(x)
            h = h.mean(dim=(2, 3)) if h.ndim == 4 else h.flatten(1)
            logvar = self.to_logvar(h) if self.variational else None
            return self.to_mu(h), logvar
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


def reset_parameters(module, generator):
    """Re-draw every Conv2d/Linear parameter (PyTorch's default scheme) from ``generator``.

    Frozen layers (weights with ``requires_grad=False``, e.g. a pretrained
    encoder) are left as they are.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skcxr.nn._autoencoder import reset_parameters
    >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    >>> reset_parameters(a, torch.Generator().manual_seed(0))
    >>> reset_parameters(b, torch.Generator().manual_seed(0))
    >>> torch.equal(a.weight, b.weight)
    True
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.weight.requires_grad:
            with torch.no_grad():
                nn.init.kaiming_uniform_(
                    layer.weight, a=math.sqrt(5), generator=generator
                )
                if layer.bias is not None:
                    fan_in = layer.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in)
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class AutoencoderNet(NeuralNet):
    """skorch net whose loss compares the reconstruction with the input X.

    The loss is the pixel MSE, plus ``beta * KL / (H * W)`` for a VAE (the KL
    summed over the latent dimensions).
    """

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
