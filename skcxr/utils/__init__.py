"""Utilities for image estimators: the image data contract, the image-native
estimator checks and model files.

:func:`check_images`, :func:`validate_images` and :func:`restore_layout`
implement the image data contract (see the user guide's data contract page);
:mod:`skcxr.utils.estimator_checks` checks that an estimator honours it;
:func:`save_model` and :func:`load_model` write and read fitted models.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "check_images": "._validation",
        "restore_layout": "._validation",
        "validate_images": "._validation",
        "estimator_checks": ".estimator_checks",
        "save_model": "._model_io",
        "load_model": "._model_io",
    },
)
