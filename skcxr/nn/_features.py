"""A network's pooled features, and the network made faster for inference.

:class:`PooledFeatures` reduces a backbone's feature map to ``(n, d)``;
:func:`optimize_for_inference` folds batch norms into the convolutions that feed
them. :class:`~skcxr.CNNEmbedder` and the frozen-backbone features of
:class:`~skcxr.TransferClassifier` run with an inference engine build the same
network from the same backbone this way, so one exported graph serves both
(see :func:`skcxr.nn._runners.shared_runner`).
"""

import copy

import torch
from torch import nn

__all__ = ["PooledFeatures", "inference_network", "optimize_for_inference"]


class PooledFeatures(nn.Module):
    """A network plus the reduction of its output to ``(n, d)``.

    ``method="forward"`` calls the network; ``"embed"`` calls its ``embed``
    (the penultimate layer of a TransferClassifier's module). A 4-D output
    (a feature map) is pooled over its spatial axes; a 2-D one is kept.
    """

    def __init__(self, network, pooling="avg", method="forward"):
        super().__init__()
        self.network = network
        self.pooling = pooling
        self.method = method

    def forward(self, x):
        out = self.network.embed(x) if self.method == "embed" else self.network(x)
        if out.ndim == 4:
            if self.pooling == "avg":
                out = out.mean(dim=(2, 3))
            elif self.pooling == "max":
                out = out.amax(dim=(2, 3))
            else:  # "avgmax": both, concatenated
                out = torch.cat([out.mean(dim=(2, 3)), out.amax(dim=(2, 3))], dim=1)
        elif out.ndim != 2:
            raise ValueError(
                f"The network returned an output of shape {tuple(out.shape)}; "
                "CNNEmbedder needs (n, d) embeddings or (n, C, h, w) feature maps."
            )
        return out


_INPLACE_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.Hardswish)


def _fuse(conv, bn, fuse_conv_bn_eval):
    """``bn(conv(x))`` as one module (``conv`` a Conv2d or a FoldedConv)."""
    if isinstance(conv, nn.Conv2d):
        return fuse_conv_bn_eval(conv, bn)
    # FoldedConv: bn(conv(x) + offset) = fused_conv(x) + scale * offset
    fused = copy.deepcopy(conv)
    fused.conv = fuse_conv_bn_eval(conv.conv, bn)
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    fused.offset_weight.mul_(scale.view(-1, 1, 1, 1))
    return fused


def optimize_for_inference(module, probe):
    """Fold batch norms into the convolutions feeding them; in-place activations.

    Forward hooks on a probe pass find every ``BatchNorm2d`` whose input is the
    output of a ``Conv2d`` (each called once); the pair is replaced by one
    convolution (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`), and ReLU-like
    activations compute in place. This removes one full pass over (and one
    allocation of) most feature maps. The result is checked against the original
    network on ``probe``; if it differs (a convolution output used elsewhere,
    say), the original is returned.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from ._backbones import FoldedConv

    names = {mod: name for name, mod in module.named_modules(remove_duplicate=False)}
    conv_of, bn_input, calls, keep = {}, {}, {}, []

    def count(mod):
        calls[mod] = calls.get(mod, 0) + 1

    def conv_hook(mod, args, out):
        count(mod)
        keep.append(out)  # keeps ids unique during the pass
        conv_of[id(out)] = mod

    def bn_hook(mod, args):
        count(mod)
        keep.append(args[0])
        bn_input[mod] = id(args[0])

    handles = []
    for mod in module.modules():
        if isinstance(mod, (nn.Conv2d, FoldedConv)):
            handles.append(mod.register_forward_hook(conv_hook))
        elif type(mod) is nn.BatchNorm2d and mod.running_mean is not None:
            handles.append(mod.register_forward_pre_hook(bn_hook))
    try:
        with torch.inference_mode():
            expected = module(probe.clone())
    finally:
        for handle in handles:
            handle.remove()
    keep.clear()
    pairs = [
        (conv_of[key], bn)
        for bn, key in bn_input.items()
        if key in conv_of and calls[bn] == 1 and calls[conv_of[key]] == 1
    ]
    optimized = copy.deepcopy(module)
    with torch.no_grad():
        for conv, bn in pairs:
            optimized.set_submodule(names[conv], _fuse(conv, bn, fuse_conv_bn_eval))
            optimized.set_submodule(names[bn], nn.Identity())
    for mod in optimized.modules():
        if isinstance(mod, _INPLACE_ACTIVATIONS):
            mod.inplace = True
    given = probe.clone()
    with torch.inference_mode():
        got = optimized(given)
    scale = float(expected.abs().max()) + 1.0
    if (
        got.shape == expected.shape
        and torch.equal(given, probe)
        and float((got - expected).abs().max()) <= 1e-4 * scale
    ):
        return optimized
    return module


def inference_network(module, probe):
    """``module`` ready for inference: eval mode, no gradients, batch norms folded.

    Sets ``module`` to eval mode and its parameters to ``requires_grad=False``
    in place (pass a copy), then returns :func:`optimize_for_inference` of it.
    :class:`~skcxr.CNNEmbedder` and
    :func:`~skcxr.nn._engines.pooled_features_network` both prepare their
    networks here, so that the same backbone gives the same network and one
    shared export.
    """
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return optimize_for_inference(module, probe)
