"""A small convolutional (variational) autoencoder for gray images, and its skorch net.

The encoder is either trained with the decoder (Conv2d + MaxPool levels) or a
pretrained backbone (any network of :func:`skcxr.nn.build_backbone`, e.g.
EfficientNet-B4), frozen or fine-tuned from its last blocks, whose globally
pooled feature map feeds the bottleneck. The decoder upsamples (nearest) and
convolves with ReLUs, or uses transposed convolutions with SELUs (Klambauer
et al. 2017).
"""

import math

import numpy as np
import torch
from skorch import NeuralNet
from torch import nn
from torch.nn import functional as F

from ._torch_utils import freeze_batch_norm_statistics

__all__ = ["ConvAutoencoder", "AutoencoderNet", "reset_parameters", "LOSSES"]

#: Pixel reconstruction losses of :class:`AutoencoderNet`, by name.
LOSSES = {
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "bce": F.binary_cross_entropy,
}


class ConvAutoencoder(nn.Module):
    """Conv2d+MaxPool (or backbone) encoder, Linear bottleneck, 2x-upsampling decoder.

    Input ``(n, 1, H, W)`` in [0, 1]; it is padded (replicate) on the bottom and
    right to the next multiple of ``2**depth`` and the output is cropped back.
    ``forward`` returns ``(reconstruction, mu, logvar)`` (``logvar`` is None for
    a plain autoencoder); a VAE samples ``mu + sigma * eps`` in train mode only,
    with ``eps`` from ``self.generator`` (set during fit), and uses ``mu`` in
    eval mode.

    With ``encoder`` (a backbone: ``(n, 1, H, W)`` in [0, 1] to a feature map
    with ``encoder.out_channels`` channels), the code is computed from its
    globally averaged feature map instead of the convolutional encoder; its
    weights are kept (left out of :func:`reset_parameters`).
    ``encoder_trainable`` says what of it learns, in the vocabulary of
    :class:`~skcxr.TransferClassifier`'s ``trainable``: 0 nothing (frozen: no
    gradient, always in eval mode, so only the bottleneck and the decoder
    learn), an int ``k`` its last ``k`` blocks (``encoder.blocks``), "all"
    every layer; in training mode its frozen batch norms stay in eval mode.

    ``decoder="upsample"``: each level is a nearest-neighbour 2x upsampling
    and a 3x3 convolution with ReLU. ``decoder="transposed"``: each level is a
    3x3 transposed convolution of stride 2 with SELU (Klambauer et al. 2017),
    as is the bottleneck's output. Both end in a 3x3 convolution and a
    sigmoid.

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
    >>> net = ConvAutoencoder((18, 18), 4, 2, 4, False, decoder="transposed").eval()
    >>> tuple(net(torch.rand(2, 1, 18, 18))[0].shape)
    (2, 1, 18, 18)
    """

    def __init__(
        self,
        image_shape,
        latent_dim,
        depth,
        width,
        variational,
        encoder=None,
        *,
        encoder_trainable=0,
        decoder="upsample",
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
        self.backbone_encoder = encoder is not None
        if self.backbone_encoder:
            _freeze_but_last_blocks(encoder, encoder_trainable)
            self.encoder = encoder.eval()
            encoded = int(encoder.out_channels)
        else:
            self.encoder = nn.Sequential(*enc)
            encoded = flat
        self.to_mu = nn.Linear(encoded, latent_dim)
        self.to_logvar = nn.Linear(encoded, latent_dim) if variational else None
        self.from_code = nn.Linear(latent_dim, flat)
        self.transposed = decoder == "transposed"
        dec = []
        for level in reversed(range(depth)):
            out = width * 2 ** max(level - 1, 0)
            if self.transposed:  # output_padding=1: exactly twice the input side
                dec += [
                    nn.ConvTranspose2d(
                        channels, out, 3, stride=2, padding=1, output_padding=1
                    ),
                    nn.SELU(),
                ]
            else:
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
        if not self.backbone_encoder or not mode:
            return self
        if any(p.requires_grad for p in self.encoder.parameters()):
            freeze_batch_norm_statistics(self.encoder)
        else:
            self.encoder.eval()  # frozen: batch-norm statistics never move
        return self

    def encode(self, x):
        if self.backbone_encoder:
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
        h = self.from_code(z)
        h = (F.selu(h) if self.transposed else F.relu(h)).view(-1, *self.code_shape)
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


def _freeze_but_last_blocks(encoder, trainable):
    """Freeze ``encoder`` but its last ``trainable`` blocks (int, or "all")."""
    if trainable == "all":
        return
    blocks = list(getattr(encoder, "blocks", ()))
    if int(trainable) > len(blocks):
        raise ValueError(
            f"encoder_trainable={trainable} asks for more blocks than the encoder "
            f"has ({len(blocks)}); use encoder_trainable='all' or at most "
            f"{len(blocks)}."
        )
    for param in encoder.parameters():
        param.requires_grad_(False)
    for name in blocks[len(blocks) - int(trainable) :]:
        for param in encoder.get_submodule(name).parameters():
            param.requires_grad_(True)


def reset_parameters(module, generator, *, keep=None):
    """Re-draw every Conv2d/ConvTranspose2d/Linear parameter (PyTorch's default
    scheme) from ``generator``.

    Frozen layers (weights with ``requires_grad=False``) and the layers of
    ``keep`` (a submodule, e.g. a pretrained encoder being fine-tuned) are
    left as they are.

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
    kept = set() if keep is None else set(map(id, keep.modules()))
    for layer in module.modules():
        if id(layer) in kept:
            continue
        if (
            isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
            and layer.weight.requires_grad
        ):
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

    The loss is the pixel ``loss`` of :data:`LOSSES` (mean squared or absolute
    error, or binary cross-entropy of the intensities in [0, 1] as
    probabilities), plus ``beta * KL / (H * W)`` for a VAE (the KL summed over
    the latent dimensions, divided by the pixels the mean loss averages over).
    """

    def __init__(self, *args, beta=1.0, loss="mse", **kwargs):
        super().__init__(*args, **kwargs)
        self.beta = beta
        self.loss = loss

    def get_loss(self, y_pred, y_true, X=None, training=False):
        recon, mu, logvar = y_pred
        X = X.to(recon.device)
        loss = LOSSES[self.loss](recon, X)
        if logvar is not None:
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1).mean()
            loss = loss + self.beta * kl / X[0].numel()
        return loss
