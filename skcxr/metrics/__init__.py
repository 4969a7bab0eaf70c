"""Chest X-ray metrics, scorers and bootstrap confidence intervals.

FNFR, sensitivity / specificity and per-class F1 (every scorer here works as
``GridSearchCV(scoring=...)``, alone or in the dict returned by
:func:`cxr_scoring`), and percentile bootstrap intervals of any metric, per
image or per patient (:func:`bootstrap_ci`, :func:`paired_bootstrap`).
Importing this module does not import torch.
"""

from ._bootstrap import *  # noqa: F401,F403
from ._bootstrap import __all__ as _bootstrap_all
from ._classification import *  # noqa: F401,F403
from ._classification import __all__ as _classification_all
from ._multilabel import *  # noqa: F401,F403
from ._multilabel import __all__ as _multilabel_all

__all__ = _classification_all + _bootstrap_all + _multilabel_all
