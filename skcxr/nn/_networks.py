"""From-scratch CNNs for chest X-rays, and a learnable resizer.

Every network takes ``(n, 1, H, W)`` float images in [0, 1] and returns a feature
map ``(n, C, h, w)``; like the backbones of :mod:`skcxr.nn._backbones` it exposes
``out_channels``, ``gradcam_layer`` (dotted name of the submodule a Grad-CAM hooks)
and ``blocks`` (ordered names of its trainable blocks, input side first).

* :class:`SmallCNN`: a few conv-BN-ReLU-max-pool blocks (widths and depth).
* :class:`FusedCNN`: the feature maps of two or more levels (shallow to deep),
  adaptively pooled to one size and concatenated (the fused multi-level CNN;
  three levels in the 4-class ChestX-ray14 study).
* :class:`SeparableCNN`: VGG16's first block, or first two blocks, of regular
  3x3 convolutions (which can start from VGG16's ImageNet weights) followed by
  depthwise-separable blocks.
* :class:`LearnableResizer`: Talebi & Milanfar's learnable resizer (bilinear
  resize plus a learned residual), to put in front of any backbone.

Each network object is accepted as ``backbone=`` by the estimators (and by
:func:`skcxr.nn.build_backbone`), which read its ``blocks``, ``gradcam_layer``
and ``out_channels``.
"""

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SmallCNN", "FusedCNN", "SeparableCNN", "LearnableResizer"]


def _check_channels(channels):
    """``channels`` as a non-empty tuple of positive ints (else a ValueError)."""
    try:
        out = tuple(int(c) for c in channels)
    except TypeError:
        out = ()
    if not out or min(out) < 1:
        raise ValueError(
            f"channels must be a non-empty sequence of positive ints; got {channels!r}."
        )
    return out


def _conv_block(in_channels, out_channels, *, pool=True):
    layers = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


def _separable_block(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(
            in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False
        ),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class SmallCNN(nn.Module):
    """Conv-BN-ReLU-max-pool blocks, ``channels`` giving their widths.

    Parameters
    ----------
    channels : tuple of int, default=(16, 32, 64, 128)
        Output channels of each block: ``len(channels)`` is the depth. Every
        block halves the resolution (3x3 convolution, batch norm, ReLU, 2x2
        max pooling).

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._networks import SmallCNN
    >>> net = SmallCNN(channels=(8, 16))
    >>> net(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 16, 8, 8])
    """

    def __init__(self, channels=(16, 32, 64, 128)):
        super().__init__()
        channels = _check_channels(channels)
        widths = (1, *channels)
        self.features = nn.Sequential(
            OrderedDict(
                (f"block{i}", _conv_block(widths[i], widths[i + 1]))
                for i in range(len(channels))
            )
        )
        self.out_channels = int(channels[-1])
        self.gradcam_layer = "features"
        self.blocks = [f"features.block{i}" for i in range(len(channels))]

    def forward(self, x):
        return self.features(x)


class FusedCNN(nn.Module):
    """Feature maps of several levels pooled to ``fused_size`` and concatenated.

    The blocks (as in :class:`SmallCNN`) are split into ``levels`` consecutive
    groups, shallow to deep; the output of every group is adaptively
    average-pooled to ``fused_size x fused_size`` and the maps are
    concatenated, so the head sees low-level texture and high-level shape
    together (the fused multi-level CNN; three levels in the 4-class
    ChestX-ray14 study).

    Parameters
    ----------
    channels : tuple of int, default=(16, 32, 64, 128)
        Output channels of each block (at least ``levels`` blocks).
    fused_size : int, default=4
        Side of the pooled maps.
    levels : int, default=2
        Number of fused levels. With 2 the groups are named ``shallow`` and
        ``deep``; otherwise ``level0``, ``level1``, ...

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._networks import FusedCNN
    >>> net = FusedCNN(channels=(8, 16, 32), fused_size=2)
    >>> tuple(net(torch.rand(2, 1, 32, 32)).shape), net.out_channels
    ((2, 40, 2, 2), 40)
    >>> three = FusedCNN(channels=(8, 16, 32), levels=3)
    >>> three.out_channels, three.gradcam_layer
    (56, 'level2')
    """

    def __init__(self, channels=(16, 32, 64, 128), fused_size=4, *, levels=2):
        super().__init__()
        channels = _check_channels(channels)
        levels = int(levels)
        if not 2 <= levels <= max(2, len(channels)):
            raise ValueError(
                f"levels must be between 2 and len(channels)={len(channels)}; "
                f"got {levels}."
            )
        if levels == 2:  # the historical split: first half, second half
            half = max(1, len(channels) // 2)
            groups = [channels[:half], channels[half:] or channels[-1:]]
            names = ["shallow", "deep"]
        else:
            bounds = [round(i * len(channels) / levels) for i in range(levels + 1)]
            groups = [channels[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            names = [f"level{i}" for i in range(levels)]
        self.levels = names
        self.blocks = []
        previous = 1
        for name, group in zip(names, groups):
            widths = (previous, *group)
            self.add_module(
                name,
                nn.Sequential(
                    OrderedDict(
                        (f"block{i}", _conv_block(widths[i], widths[i + 1]))
                        for i in range(len(group))
                    )
                ),
            )
            self.blocks += [f"{name}.block{i}" for i in range(len(group))]
            previous = group[-1]
        self.fused_size = int(fused_size)
        self.out_channels = int(sum(group[-1] for group in groups))
        self.gradcam_layer = names[-1]

    def forward(self, x):
        size = self.fused_size
        maps = []
        for name in self.levels:
            x = getattr(self, name)(x)
            maps.append(F.adaptive_avg_pool2d(x, size))
        return torch.cat(maps, dim=1)


class SeparableCNN(nn.Module):
    """VGG16's first block(s) of 3x3 convolutions, then depthwise-separable blocks.

    The stem mirrors VGG16's ``features``: block 1 (two 3x3 convolutions with
    64 channels, ReLU, 2x2 max pooling) and, with ``vgg_blocks=2``, block 2 (two
    3x3 convolutions with 128 channels, ReLU, pooling), so it can start from
    VGG16's ImageNet weights (``build_backbone("separable_cnn",
    weights="imagenet")``, or this object with ``weights="imagenet"``). Each
    following block is a 3x3 depthwise convolution, a 1x1 pointwise one,
    batch norm, ReLU and 2x2 max pooling.

    Parameters
    ----------
    channels : tuple of int, default=(64, 128, 256)
        Output channels of each depthwise-separable block.
    vgg_blocks : {1, 2}, default=1
        VGG16 blocks in the stem.
    in_channels : int, default=1
        Input channels of the first convolution (3 for the RGB network whose
        state dict VGG16's weights fit).

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._networks import SeparableCNN
    >>> net = SeparableCNN(channels=(16, 32))
    >>> net(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 32, 4, 4])
    >>> SeparableCNN(channels=(16,), vgg_blocks=2)(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 16, 4, 4])
    """

    def __init__(self, channels=(64, 128, 256), *, vgg_blocks=1, in_channels=1):
        super().__init__()
        channels = _check_channels(channels)
        if vgg_blocks not in (1, 2):
            raise ValueError(f"vgg_blocks must be 1 or 2; got {vgg_blocks!r}.")
        self.vgg_blocks = int(vgg_blocks)
        # VGG16's features[0..4] (block 1) and features[5..9] (block 2)
        layers = [
            ("conv1", nn.Conv2d(in_channels, 64, 3, padding=1)),
            ("relu1", nn.ReLU(inplace=True)),
            ("conv2", nn.Conv2d(64, 64, 3, padding=1)),
            ("relu2", nn.ReLU(inplace=True)),
            ("pool", nn.MaxPool2d(2, ceil_mode=True)),
        ]
        if self.vgg_blocks == 2:
            layers += [
                ("conv3", nn.Conv2d(64, 128, 3, padding=1)),
                ("relu3", nn.ReLU(inplace=True)),
                ("conv4", nn.Conv2d(128, 128, 3, padding=1)),
                ("relu4", nn.ReLU(inplace=True)),
                ("pool2", nn.MaxPool2d(2, ceil_mode=True)),
            ]
        self.stem = nn.Sequential(OrderedDict(layers))
        widths = (64 * self.vgg_blocks, *channels)
        self.features = nn.Sequential(
            OrderedDict(
                (f"block{i}", _separable_block(widths[i], widths[i + 1]))
                for i in range(len(channels))
            )
        )
        self.out_channels = int(channels[-1])
        self.gradcam_layer = "features"
        self.blocks = ["stem"] + [f"features.block{i}" for i in range(len(channels))]

    def forward(self, x):
        return self.features(self.stem(x))


class _ResBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x):
        return x + self.body(x)


class LearnableResizer(nn.Module):
    """Learnable resizer (Talebi & Milanfar, 2021): bilinear resize + learned residual.

    Maps ``(n, 1, H, W)`` to ``(n, 1, size, size)``. The output is the bilinear
    resize of the input plus a correction computed by a small CNN on features
    resized the same way, so at initialisation it is close to plain resizing.

    Parameters
    ----------
    size : int
        Output side length.
    width : int, default=16
        Channels of the inner convolutions.
    n_res_blocks : int, default=1
        Residual blocks (two 3x3 convolutions with batch norm) at the output
        size; Talebi & Milanfar use up to 2.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._networks import LearnableResizer
    >>> LearnableResizer(24)(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 1, 24, 24])
    """

    def __init__(self, size, *, width=16, n_res_blocks=1):
        super().__init__()
        if int(n_res_blocks) < 0:
            raise ValueError(f"n_res_blocks must be >= 0; got {n_res_blocks!r}.")
        self.size = int(size)
        self.head = nn.Sequential(
            nn.Conv2d(1, width, 7, padding=3),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 1),
            nn.LeakyReLU(0.2),
            nn.BatchNorm2d(width),
        )
        self.res_blocks = nn.Sequential(
            *(_ResBlock(width) for _ in range(n_res_blocks))
        )
        self.merge = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        )
        self.tail = nn.Conv2d(width, 1, 7, padding=3)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def _resize(self, x):
        return F.interpolate(
            x, size=(self.size, self.size), mode="bilinear", align_corners=False
        )

    def forward(self, x):
        skip = self._resize(x)
        h = self._resize(self.head(x))
        h = self.merge(self.res_blocks(h)) + h
        return skip + self.tail(h)
