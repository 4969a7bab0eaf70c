"""Parameter constraints beyond scikit-learn's own (``_parameter_constraints``)."""

from numbers import Integral

from sklearn.utils._param_validation import Interval

__all__ = ["IntInterval"]


class IntInterval(Interval):
    """scikit-learn's ``Interval(Integral, left, right)`` without the booleans.

    ``True`` is an ``int`` to Python but never a size, a count or a number of
    epochs: ``ImageLoader(size=True)`` is refused with the parameter named,
    instead of failing later with "an integer is required".

    Examples
    --------
    >>> from skcxr.utils._param_validation import IntInterval
    >>> sizes = IntInterval(1, None, closed="left")
    >>> sizes.is_satisfied_by(224), sizes.is_satisfied_by(True)
    (True, False)
    >>> str(sizes)
    'an int in the range [1, inf)'
    """

    def __init__(self, left, right, *, closed):
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)
