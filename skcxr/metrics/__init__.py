"""Chest X-ray metrics, scorers, bootstrap confidence intervals and clinical
evaluation.

FNFR, sensitivity / specificity and per-class F1 (every scorer here works as
``GridSearchCV(scoring=...)``, alone or in the dict returned by
:func:`cxr_scoring`); percentile bootstrap intervals of any metric, per image
or per patient (:func:`bootstrap_ci`, :func:`paired_bootstrap`); multi-label
metrics over the known labels of each finding; the top-label expected
calibration error (:func:`expected_calibration_error`), operating thresholds
for a target sensitivity or specificity (:func:`threshold_for_sensitivity`,
:func:`threshold_for_specificity`) and per-subgroup values with their gaps
(:func:`subgroup_metrics`); overlap and boundary metrics of segmentation
masks (:func:`dice_score`, :func:`jaccard_score`, which takes masks, unlike
:func:`sklearn.metrics.jaccard_score`, and :func:`hausdorff_distance_95`).
Importing this module does not import torch.
"""

from ._bootstrap import *  # noqa: F401,F403
from ._bootstrap import __all__ as _bootstrap_all
from ._calibration import *  # noqa: F401,F403
from ._calibration import __all__ as _calibration_all
from ._classification import *  # noqa: F401,F403
from ._classification import __all__ as _classification_all
from ._multilabel import *  # noqa: F401,F403
from ._multilabel import __all__ as _multilabel_all
from ._operating_point import *  # noqa: F401,F403
from ._operating_point import __all__ as _operating_point_all
from ._segmentation import *  # noqa: F401,F403
from ._segmentation import __all__ as _segmentation_all
from ._subgroups import *  # noqa: F401,F403
from ._subgroups import __all__ as _subgroups_all

__all__ = (
    _classification_all
    + _bootstrap_all
    + _multilabel_all
    + _calibration_all
    + _operating_point_all
    + _subgroups_all
    + _segmentation_all
)
