"""Any model of the optional ``timm`` package as a backbone (``"timm:<name>"``).

Built from its ``pretrained_cfg`` (first convolution, normalisation,
classifier, input size) with its ``forward_features`` as the feature map: a
vision transformer's patch tokens laid back on their grid, channels-last maps
permuted, and images resized to the input size of a model built for one.
"""

import difflib
import functools
import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from ._backbone_modules import IMAGENET_MEAN, IMAGENET_STD, SquareResize
from ._registry import BackboneSpec
from ._weights import _cache_file, _read_state

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


def _timm_installed():
    try:
        _timm()
    except ImportError:
        return False
    return True
