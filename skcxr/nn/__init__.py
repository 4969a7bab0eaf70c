"""Torch networks behind the estimators: the backbone registry, from-scratch
networks of the reproduced studies, heads and torch helpers."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "build_backbone": "._backbones",
    },
)
