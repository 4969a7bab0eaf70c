"""Synthetic chest X-rays, loaders for the real data sets' layouts, and a real sample."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "make_chest_xrays": "._synthetic",
        "write_chest_xrays": "._writers",
        "load_kermany": "._real",
        "load_chestxray14": "._real",
        "load_sample_images": "._sample",
    },
)
