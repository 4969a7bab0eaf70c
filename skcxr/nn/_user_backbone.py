"""Any torch module as a backbone the estimators accept (:class:`UserBackbone`)."""

import difflib

import torch
from torch import nn

from ._backbone_modules import IMAGENET_MEAN, IMAGENET_STD, _upsample_to
from ._capture import StopForward, capturing


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
