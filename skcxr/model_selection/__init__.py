"""Hyper-parameter search for networks whose training budget is a parameter.

:class:`HyperbandSearchCV` runs Hyperband (Li et al. 2018): several brackets
of scikit-learn's successive halving over a resource such as ``max_epochs``.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {"HyperbandSearchCV": "._hyperband"},
)
