"""From-scratch CNNs for chest X-rays, and a learnable resizer.

Every network takes ``(n, 1, H, W)`` float images in [0, 1] and returns a feature
map ``(n, C, h, w)``; like the backbones of :mod:`skcxr.nn._backbones` it exposes
``out_channels``, ``gradcam_layer`` (dotted name of the submodule a Grad-CAM hooks)
and ``blocks`` (ordered names of its trainable blocks, input side first).

* :class:`SmallCNN`: a few conv-BN-ReLU-max-pool blocks.
* :class:`FusedCNN`: a shallow and a deep feature map, adaptively pooled to one
  size and concatenated (the fused multi-level CNN).
* :class:`SeparableCNN`: two regular 3x3 convolutions (which can start from
  VGG16's first two) followed by depthwise-separable blocks.
* :class:`LearnableResizer`: Talebi & Milanfar's learnable resizer (bilinear
  resize plus a learned residual), to put in front of any backbone.
"""

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SmallCNN", "FusedCNN", "SeparableCNN", "LearnableResizer"]


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
    """Shallow and deep feature maps pooled to ``fused_size`` and concatenated.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._networks import FusedCNN
    >>> net = FusedCNN(channels=(8, 16, 32), fused_size=2)
    >>> tuple(net(torch.rand(2, 1, 32, 32)).shape), net.out_channels
    ((2, 40, 2, 2), 40)
    """

    def __init__(self, channels=(16, 32, 64, 128), fused_size=4):
        super().__init__()
        half = max(1, len(channels) // 2)
        shallow, deep = channels[:half], channels[half:] or channels[-1:]
        widths = (1, *shallow)
        self.shallow = nn.Sequential(
            OrderedDict(
                (f"block{i}", _conv_block(widths[i], widths[i + 1]))
                for i in range(len(shallow))
            )
        )
        widths = (shallow[-1], *deep)
        self.deep = nn.Sequential(
            OrderedDict(
                (f"block{i}", _conv_block(widths[i], widths[i + 1]))
                for i in range(len(deep))
            )
        )
        self.fused_size = int(fused_size)
        self.out_channels = int(shallow[-1] + deep[-1])
        self.gradcam_layer = "deep"
        self.blocks = [f"shallow.block{i}" for i in range(len(shallow))] + [
            f"deep.block{i}" for i in range(len(deep))
        ]

    def forward(self, x):
        low = self.shallow(x)
        high = self.deep(low)
        size = self.fused_size
        return torch.cat(
            [F.adaptive_avg_pool2d(low, size), F.adaptive_avg_pool2d(high, size)], dim=1
        )


class SeparableCNN(nn.Module):
    """Two 3x3 convolutions (VGG16's first two when pretrained) + separable blocks.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._networks import SeparableCNN
    >>> net = SeparableCNN(channels=(16, 32))
    >>> net(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 32, 4, 4])
    """

    def __init__(self, channels=(64, 128, 256)):
        super().__init__()
        # the stem mirrors VGG16's features[0..3] (conv 3x3 64, ReLU, conv 3x3 64, ReLU)
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(1, 64, 3, padding=1),
                relu1=nn.ReLU(inplace=True),
                conv2=nn.Conv2d(64, 64, 3, padding=1),
                relu2=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(2, ceil_mode=True),
            )
        )
        widths = (64, *channels)
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

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._networks import LearnableResizer
    >>> LearnableResizer(24)(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 1, 24, 24])
    """

    def __init__(self, size, *, width=16, n_res_blocks=1):
        super().__init__()
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
