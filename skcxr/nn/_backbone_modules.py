"""The torch modules of a backbone for grayscale chest X-rays.

:class:`Backbone` wraps a network's feature extractor: ``(n, 1, H, W)`` float
images in [0, 1] -> a feature map ``(n, C, h, w)``. Its first convolution is a
:class:`FoldedConv` and weights trained at one resolution resize every image
first (:class:`SquareResize`).

Grayscale input. A pretrained first convolution expects three normalised RGB
channels ``u_c = (x - m_c) / s_c``. Feeding the gray image ``x`` three times is
folded into one input channel, exactly (borders included):

``conv(u) = conv_0(x; sum_c W_c / s_c) + conv_0(1; -sum_c W_c m_c / s_c)``

where ``conv_0`` zero-pads like the original convolution. The second term does
not depend on the images; it is one convolution of a single all-ones image. So the
backbone applies its weights' normalisation itself at a third of the cost of the
first RGB convolution.
"""

import copy

import torch
from torch import nn
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)


IMAGENET_STD = (0.229, 0.224, 0.225)


# Google's TF checkpoints (Inception-v3, EfficientNet-Lite): (x - 0.5) / 0.5 and
# (255 x - 127) / 128.
HALF_MEAN, HALF_STD = (0.5,) * 3, (0.5,) * 3


LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3


# torchxrayvision: one channel, (2 x - 1) * 1024, i.e. (x - 0.5) / (1 / 2048)
XRV_MEAN, XRV_STD = (0.5,), (1 / 2048,)


class SquareResize(nn.Module):
    """Resize images to ``size x size`` (bilinear, antialiased); None: unchanged.

    The input convention of weights trained at one resolution (torchxrayvision
    resizes this way) or of a network built for one input size. The size is
    part of the state dict (``<prefix>_extra_state``, 0 for none), so a
    network rebuilt without its weights file and given its saved state
    resizes as the original did; a state dict without the entry (an older
    file) leaves the size as built.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._backbones import SquareResize
    >>> SquareResize(16)(torch.rand(2, 1, 40, 30)).shape
    torch.Size([2, 1, 16, 16])
    >>> SquareResize(None).state_dict()["_extra_state"]
    tensor(0)
    """

    def __init__(self, size=None):
        super().__init__()
        self.size = None if size is None else int(size)

    def get_extra_state(self):
        return torch.tensor(self.size or 0)

    def set_extra_state(self, state):
        self.size = int(state) or None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "_extra_state", self.get_extra_state())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        size = self.size
        if size is None or tuple(x.shape[-2:]) == (size, size):
            return x
        return F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )


class FoldedConv(nn.Module):
    """A 3-channel first convolution folded to one gray channel, normalisation included.

    ``conv`` itself is left unchanged (a folded copy is kept).
    ``FoldedConv(conv, mean, std)(x)`` equals ``conv((x.repeat(1, 3, 1, 1) - mean) / std)``
    for ``x`` of shape ``(n, 1, H, W)`` (see the module docstring). A one-channel
    ``conv`` folds the same way (``mean``/``std`` of one value). With
    ``input_size``, images of another size are first resized to
    ``input_size x input_size`` (:class:`SquareResize`, as torchxrayvision
    does).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skcxr.nn._backbones import FoldedConv
    >>> conv = nn.Conv2d(3, 4, 3, padding=1)
    >>> x = torch.rand(2, 1, 8, 8)
    >>> mean, std = torch.tensor([.4, .5, .6]), torch.tensor([.2, .3, .4])
    >>> rgb = (x.repeat(1, 3, 1, 1) - mean[:, None, None]) / std[:, None, None]
    >>> torch.allclose(FoldedConv(conv, mean, std)(x), conv(rgb), atol=1e-5)
    True
    """

    def __init__(self, conv, mean, std, input_size=None):
        super().__init__()
        self.resize = SquareResize(input_size)
        conv = copy.deepcopy(conv)  # the given convolution stays as it was
        weight = conv.weight.detach()
        mean = torch.as_tensor(mean, dtype=weight.dtype).view(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=weight.dtype).view(1, -1, 1, 1)
        conv.weight = nn.Parameter((weight / std).sum(1, keepdim=True))
        conv.in_channels = 1
        self.conv = conv
        self.offset_weight = nn.Parameter((-weight * mean / std).sum(1, keepdim=True))

    def offset(self, size):
        """The normalisation's contribution, an image-independent map, for
        inputs of ``size`` (height, width) after the resize."""
        weight = self.offset_weight
        ones = torch.ones((1, 1, *size), dtype=weight.dtype, device=weight.device)
        # The convolution's own forward (its padding rule) with the offset weight
        # and no bias, run on a shallow copy holding its own parameter dict:
        # ``self.conv`` is never modified, so concurrent forwards stay correct
        # (torch.func.functional_call would swap ``conv.weight`` in place).
        conv = copy.copy(self.conv)
        conv._parameters = {"weight": weight, "bias": None}
        return conv(ones)

    def forward(self, x):
        x = self.resize(x)
        return self.conv(x) + self.offset(x.shape[-2:])


def _upsample_to(x, min_size):
    """Bilinearly upsample ``x`` so that its smaller side is at least ``min_size``."""
    if min(x.shape[-2:]) >= min_size:
        return x
    height, width = x.shape[-2:]
    scale = min_size / min(height, width)
    size = (
        max(min_size, round(height * scale)),
        max(min_size, round(width * scale)),
    )
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Backbone(nn.Module):
    """A feature extractor: ``(n, 1, H, W)`` in [0, 1] -> ``(n, C, h, w)``.

    Attributes
    ----------
    name : str
    features : nn.Module
        The network (its first convolution already folded to one channel).
    out_channels : int
    gradcam_layer : str
        Dotted name (relative to this module) of the submodule a Grad-CAM hooks.
    blocks : list of str
        Dotted names of the trainable blocks, input side first ("last N blocks").
    min_size : int
        Smaller inputs are bilinearly upsampled to this side length first.
    weights_layout : str or None
        The key layout of the weights file it was built from
        (``"torchvision"``, ``"chexnet"``, ``"torchxrayvision"``, ``"timm"``, ...,
        or ``"skcxr"`` for a state dict of a backbone), None otherwise.
    """

    def __init__(
        self,
        name,
        features,
        *,
        out_channels,
        blocks,
        gradcam_layer="features",
        min_size=1,
        final_relu=False,
    ):
        super().__init__()
        self.name = name
        self.features = features
        self.out_channels = int(out_channels)
        self.gradcam_layer = gradcam_layer
        self.blocks = list(blocks)
        self.min_size = int(min_size)
        self.final_relu = final_relu
        self.weights_layout = None

    def forward(self, x):
        x = _upsample_to(x, self.min_size)
        out = self.features(x)  # through __call__, so forward hooks (Grad-CAM) fire
        return F.relu(out) if self.final_relu else out
