"""Synthetic chest X-rays, loaders of the real data sets' layouts, a real sample."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "make_chest_xrays": "._synthetic",
        "write_chest_xrays": "._writers",
        "load_kermany": "._real",
        "kermany_patient_id": "._real",
        "load_chestxray14": "._real",
        "CHESTXRAY14_FINDINGS": "._real",
        "CHESTXRAY14_NO_FINDING": "._real",
        "load_sample_images": "._sample",
    },
)
