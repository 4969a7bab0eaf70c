"""Synthetic chest X-rays, loaders of the real data sets' layouts, a real sample.

The loaders of the public data sets (:func:`load_chexpert`,
:func:`load_mimic_cxr`, :func:`load_padchest`, :func:`load_rsna_pneumonia`,
:func:`load_vindr_cxr`, :func:`load_siim_pneumothorax`, :func:`load_chestxray14`)
return one Bunch shape whose ``labels`` columns are common finding names of
:data:`LABEL_TABLE`; :func:`concat_datasets` pools them, and
:func:`describe_dataset` summarises a folder of any of their layouts.
"""

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
        "load_chexpert": "._chexpert",
        "load_mimic_cxr": "._mimic",
        "load_padchest": "._padchest",
        "load_rsna_pneumonia": "._rsna",
        "load_vindr_cxr": "._vindr",
        "load_siim_pneumothorax": "._siim",
        "rle_decode": "._siim",
        "rle_encode": "._siim",
        "RunLengthMasks": "._siim",
        "concat_datasets": "._concat",
        "LABEL_TABLE": "._labels",
        "UNMAPPED_LABELS": "._labels",
        "COMMON_CLASSES": "._labels",
        "DATASET_NAMES": "._labels",
        "describe_dataset": "._describe",
        "format_description": "._describe",
    },
)
