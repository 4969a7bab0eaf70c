"""Preprocessing estimators: load image files, mask the lung fields, equalise
contrast, augment and balance classes. Every transformer here works on the image data contract
described in the user guide."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "ImageLoader": "._loader",
        "OtsuMasker": "._masker",
        "HistogramEqualizer": "._equalize",
        "AugmentBalancer": "._balancer",
        "otsu_thresholds": "._otsu",
        "random_augment": "._augment",
    },
)
