"""U-Net segmentation networks, their soft Dice + BCE loss and skorch net.

Two networks share one interface, ``(n, 1, H, W)`` images in [0, 1] to
``(n, 1, H, W)`` logits:

- :class:`UNet`, a small U-Net (Ronneberger, Fischer, Brox 2015): ``depth``
  levels of two 3x3 convolutions with batch normalisation and ReLU, max
  pooling down, bilinear upsampling and skip concatenation up. Written here
  so the default segmenter needs no other package.
- :func:`smp_unet`, the U-Net of ``segmentation_models_pytorch`` around one
  of its encoders (``resnet18``, ``mobilenet_v2``, ``efficientnet-b0``...),
  for larger images and pretrained encoders (``pip install skcxr[segment]``).

Inputs of any size are padded (replicating the last row and column) to a
multiple of ``2**depth`` and the output is cropped back.
"""

import math

import torch
from skorch import NeuralNet
from torch import nn
from torch.nn import functional as F

__all__ = ["UNet", "smp_unet", "DiceBCELoss", "soft_dice_loss", "SegmentationNet"]

_SMP_HINT = "pip install 'skcxr[segment]' (segmentation-models-pytorch)"


def _block(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _Padded(nn.Module):
    """Pad the input to a multiple of ``2**depth``, crop the output back."""

    def __init__(self, depth):
        super().__init__()
        self.step = 2**depth

    def padded(self, x):
        h, w = x.shape[-2:]
        pad_h = self.step * math.ceil(h / self.step) - h
        pad_w = self.step * math.ceil(w / self.step) - w
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x, (h, w)


class UNet(_Padded):
    """A small U-Net for one-channel images (Ronneberger et al. 2015).

    Parameters
    ----------
    depth : int, default=4
        Pooling levels; the input is padded to a multiple of ``2**depth``.
    width : int, default=16
        Channels of the first level, doubled at each level below.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._unet import UNet
    >>> net = UNet(depth=2, width=4).eval()
    >>> tuple(net(torch.rand(2, 1, 18, 18)).shape)
    (2, 1, 18, 18)
    """

    def __init__(self, depth=4, width=16):
        super().__init__(depth)
        channels = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        in_channels = 1
        for out in channels[:-1]:
            self.down.append(_block(in_channels, out))
            in_channels = out
        self.bottom = _block(channels[-2], channels[-1])
        self.up = nn.ModuleList(
            _block(channels[level + 1] + channels[level], channels[level])
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward(self, x):
        x, (h, w) = self.padded(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)[..., :h, :w]


class _SmpUNet(_Padded):
    """A ``segmentation_models_pytorch.Unet`` with the padding of :class:`UNet`."""

    def __init__(self, network, depth):
        super().__init__(depth)
        self.network = network

    def forward(self, x):
        x, (h, w) = self.padded(x)
        return self.network(x)[..., :h, :w]


def smp_unet(encoder, *, depth=4, width=16, encoder_weights=None):
    """The U-Net of ``segmentation_models_pytorch`` for one-channel images.

    Parameters
    ----------
    encoder : str
        An encoder name of ``segmentation_models_pytorch`` (``"resnet18"``,
        ``"mobilenet_v2"``, ``"efficientnet-b0"``...).
    depth : int, default=4
        Encoder stages (3 to 5); the input is padded to ``2**depth``.
    width : int, default=16
        Channels of the last decoder stage, doubled at each stage above.
    encoder_weights : str or None, default=None
        ``None`` trains from scratch; ``"imagenet"`` downloads the encoder's
        weights once (the package's own cache).

    Returns
    -------
    torch.nn.Module
        ``(n, 1, H, W)`` in, ``(n, 1, H, W)`` logits out.

    Raises
    ------
    ImportError
        When ``segmentation_models_pytorch`` is not installed, naming the extra.
    ValueError
        For an encoder name the package does not know.
    """
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise ImportError(
            f"encoder={encoder!r} builds the U-Net of segmentation_models_pytorch, "
            f"which is not installed: {_SMP_HINT}; or use encoder=None for the "
            "built-in U-Net."
        ) from None
    known = smp.encoders.get_encoder_names()
    if encoder not in known:
        raise ValueError(
            f"encoder={encoder!r} is not an encoder of segmentation_models_pytorch; "
            f"for example {', '.join(sorted(known)[:8])}..., or None for the "
            "built-in U-Net."
        )
    decoder = tuple(width * 2**level for level in reversed(range(depth)))
    network = smp.Unet(
        encoder_name=encoder,
        encoder_depth=depth,
        encoder_weights=encoder_weights,
        decoder_channels=decoder,
        in_channels=1,
        classes=1,
    )
    return _SmpUNet(network, depth)


def soft_dice_loss(logits, target, smooth=1.0):
    """``1 - soft Dice`` of sigmoid probabilities against binary targets.

    Computed over the whole batch, ``(sum(p t) + s) / ((sum p + sum t) / 2 +
    s)``: the binary Dice loss of ``segmentation_models_pytorch`` with the
    same smoothing ``s`` (Milletari, Navab, Ahmadi 2016 for the soft Dice
    loss).

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._unet import soft_dice_loss
    >>> target = torch.zeros(1, 1, 4, 4); target[..., :2, :] = 1
    >>> float(soft_dice_loss(20 * (2 * target - 1), target)) < 1e-3
    True
    """
    probs = torch.sigmoid(logits).flatten()
    target = target.flatten()
    intersection = (probs * target).sum()
    half_total = (probs.sum() + target.sum()) / 2
    return 1.0 - (intersection + smooth) / (half_total + smooth)


class DiceBCELoss(nn.Module):
    """Soft Dice loss plus binary cross-entropy, on logits.

    Parameters
    ----------
    dice_weight : float, default=1.0
        Weight of the Dice term (the cross-entropy has weight 1).
    """

    def __init__(self, dice_weight=1.0):
        super().__init__()
        self.dice_weight = dice_weight

    def forward(self, logits, target):
        target = target.to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        return bce + self.dice_weight * soft_dice_loss(logits, target)


class SegmentationNet(NeuralNet):
    """skorch net of a segmentation network: masks as targets, no predict.

    ``y`` holds the masks as ``(n, 1, H, W)`` float32 arrays.
    """

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = y_true.to(y_pred.device)
        return self.criterion_(y_pred, y_true)
