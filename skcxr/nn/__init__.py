"""Torch networks behind the estimators: the backbone registry, user networks as
backbones, from-scratch networks, heads and torch helpers."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "build_backbone": "._backbones",
        "list_backbones": "._backbones",
        "UserBackbone": "._backbones",
        "WeightsLayout": "._backbones",
        "SmallCNN": "._networks",
        "FusedCNN": "._networks",
        "SeparableCNN": "._networks",
        "LearnableResizer": "._networks",
        "TensorBoardLogger": "._callbacks",
    },
)
