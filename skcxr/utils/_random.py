"""Random-state helpers that need numpy only (no torch import)."""

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["seed_from"]


def seed_from(random_state):
    """Draw a 31-bit integer seed from ``random_state`` (int, None or RandomState).

    Examples
    --------
    >>> from skcxr.utils._random import seed_from
    >>> seed_from(0) == seed_from(0)
    True
    """
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
