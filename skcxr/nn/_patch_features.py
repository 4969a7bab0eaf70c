"""Multi-scale patch features of a frozen backbone (PaDiM / PatchCore inputs).

Defard et al. 2020 (PaDiM) and Roth et al. 2022 (PatchCore) describe every
image location by the activations of a few intermediate stages of an
ImageNet-pretrained CNN, the deeper (coarser) stages upsampled to the grid of
the first one. :class:`PatchFeatures` does that for any backbone of the
registry: a stage is the last block whose output has a given stride.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ._capture import StopForward, capturing

__all__ = ["PatchFeatures", "resized_input", "stage_blocks"]


def resized_input(backbone):
    """The side ``backbone`` resizes its images to, or None.

    Weights trained at one resolution (torchxrayvision's) and timm models
    built for one input size resize every image inside the backbone
    (:class:`~skcxr.nn._backbones.SquareResize`); output strides are relative
    to that size.

    Examples
    --------
    >>> from skcxr.nn._backbones import build_backbone
    >>> from skcxr.nn._patch_features import resized_input
    >>> resized_input(build_backbone("small_cnn")) is None
    True
    """
    from ._backbones import SquareResize

    sizes = [m.size for m in backbone.modules() if isinstance(m, SquareResize)]
    return next((size for size in sizes if size), None)


def _as_map(out, backbone):
    """A block's output as an ``(n, C, h, w)`` map (channels-last timm stages,
    such as Swin's ``(n, h, w, C)``, are permuted)."""
    from ._timm_backbones import _TimmFeatures

    features = getattr(backbone, "features", None)
    return features.channels_first(out) if isinstance(features, _TimmFeatures) else out


def stage_blocks(backbone, strides, input_size):
    """Names of the last block of ``backbone`` at each of the given output ``strides``.

    Parameters
    ----------
    backbone : skcxr.nn._backbones.Backbone
    strides : sequence of int
        Input side / feature-map side, e.g. ``(4, 8, 16)``.
    input_size : int
        Side of the square input used to probe the network.

    Returns
    -------
    list of str
        One block name per stride, in the order given.

    Raises
    ------
    ValueError
        When no block has one of the strides (naming the strides available).

    Examples
    --------
    >>> from skcxr.nn._backbones import build_backbone
    >>> from skcxr.nn._patch_features import stage_blocks
    >>> stage_blocks(build_backbone("small_cnn"), (4, 8), 64)
    ['features.features.block1', 'features.features.block2']
    """
    outputs, handles = {}, []
    for name in backbone.blocks:
        module = backbone.get_submodule(name)
        handles.append(
            module.register_forward_hook(
                lambda mod, args, out, name=name: outputs.__setitem__(name, out)
            )
        )
    was_training = backbone.training
    try:
        backbone.eval()
        with torch.inference_mode():
            backbone(torch.zeros(1, 1, input_size, input_size))
    finally:
        for handle in handles:
            handle.remove()
        backbone.train(was_training)
    if any(out.ndim != 4 for out in outputs.values()):
        raise ValueError(
            f"stages: the blocks of backbone {backbone.name!r} return tokens (a "
            "vision transformer), not feature maps of several strides; the patch "
            "methods need a CNN or a hierarchical transformer such as Swin."
        )
    reference = resized_input(backbone) or input_size
    by_stride = {}
    for name in backbone.blocks:  # input side first: the last block of a stride wins
        if name in outputs:
            side = _as_map(outputs[name], backbone).shape[-1]
            by_stride[round(reference / side)] = name
    missing = [s for s in strides if s not in by_stride]
    if missing:
        raise ValueError(
            f"stages: backbone {backbone.name!r} has no block of stride {missing} at "
            f"input size {reference}; available strides: {sorted(by_stride)}."
        )
    return [by_stride[s] for s in strides]


class PatchFeatures(nn.Module):
    """Concatenated, locally averaged multi-stage feature maps of a frozen backbone.

    ``forward(x)`` takes ``(n, 1, H, W)`` images in [0, 1], resizes them
    (bilinear) to ``input_size``, runs the backbone up to the deepest needed
    block, averages each stage map over a ``neighbourhood`` x ``neighbourhood``
    window (stride 1; the local patch aggregation of Roth et al. 2022),
    upsamples every stage bilinearly to the grid of the first and concatenates
    them: ``(n, C, h, w)``. ``channels`` (optional) keeps a subset of the
    concatenated channels (the random dimensionality reduction of Defard et
    al. 2020).

    Parameters
    ----------
    backbone : skcxr.nn._backbones.Backbone
        Frozen (the caller sets eval mode and ``requires_grad=False``).
    blocks : list of str
        Dotted block names (see :func:`stage_blocks`), input side first.
    input_size : int
    neighbourhood : int, default=3
    channels : torch.Tensor of int or None, default=None

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._backbones import build_backbone
    >>> from skcxr.nn._patch_features import PatchFeatures, stage_blocks
    >>> net = build_backbone("small_cnn").eval()
    >>> feats = PatchFeatures(net, stage_blocks(net, (4, 8), 64), 64)
    >>> tuple(feats(torch.rand(2, 1, 32, 32)).shape)
    (2, 96, 16, 16)
    """

    def __init__(self, backbone, blocks, input_size, neighbourhood=3, channels=None):
        super().__init__()
        self.backbone = backbone
        self.blocks = list(blocks)
        self.input_size = int(input_size)
        self.neighbourhood = int(neighbourhood)
        if channels is not None:
            channels = torch.as_tensor(channels, dtype=torch.long)
        self.register_buffer("channels", channels)

    def forward(self, x):
        size = (self.input_size, self.input_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        layers = {name: self.backbone.get_submodule(name) for name in self.blocks}
        with capturing(layers, stop_at=self.blocks[-1]) as outputs:
            try:
                self.backbone(x)
            except StopForward:  # the deeper blocks are not needed
                pass
        maps = []
        grid = None
        k = self.neighbourhood
        for name in self.blocks:
            out = _as_map(outputs[name], self.backbone)
            if k > 1:
                out = F.avg_pool2d(
                    out, k, stride=1, padding=k // 2, count_include_pad=False
                )
            if grid is None:
                grid = out.shape[-2:]
            elif out.shape[-2:] != grid:
                out = F.interpolate(
                    out, size=grid, mode="bilinear", align_corners=False
                )
            maps.append(out)
        features = torch.cat(maps, dim=1)
        if self.channels is not None:
            features = features.index_select(1, self.channels)
        return features
