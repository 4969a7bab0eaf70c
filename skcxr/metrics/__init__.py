"""Chest X-ray metrics and scorers: FNFR, sensitivity / specificity, per-class F1.

Every scorer here works as ``GridSearchCV(scoring=...)`` (alone or in the dict
returned by :func:`cxr_scoring`). Importing this module does not import torch.
"""

from ._classification import *  # noqa: F401,F403
from ._classification import __all__  # noqa: F401
