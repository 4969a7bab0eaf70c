"""Hyperband (Li et al. 2018) on scikit-learn's successive halving."""

import math
import time
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingRandomSearchCV
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

__all__ = ["HyperbandSearchCV", "hyperband_brackets"]


def hyperband_brackets(max_resources, min_resources=1, factor=3):
    """The brackets of Hyperband: ``[(n_candidates, min_resources), ...]``.

    Bracket ``s`` (from ``s_max = floor(log_factor(max / min))`` down to 0)
    starts ``ceil((s_max + 1) / (s + 1) * factor**s)`` random candidates at
    ``max_resources / factor**s`` and keeps the best ``1 / factor`` of them
    at each step until ``max_resources``: the first bracket explores many
    candidates on a small budget, the last trains a few with the whole budget
    (Li et al. 2018, Algorithm 1).

    Examples
    --------
    >>> from skcxr.model_selection._hyperband import hyperband_brackets
    >>> hyperband_brackets(9, 1, 3)
    [(9, 1), (5, 3), (3, 9)]
    """
    s_max = int(math.floor(math.log(max_resources / min_resources, factor) + 1e-9))
    return [
        (
            int(math.ceil((s_max + 1) / (s + 1) * factor**s)),
            max(min_resources, int(max_resources // factor**s)),
        )
        for s in range(s_max, -1, -1)
    ]


def _best_has(name):
    def check(self):
        check_is_fitted(self, "best_estimator_")
        return hasattr(self.best_estimator_, name)

    return check


class HyperbandSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Hyperband search over a training budget such as the number of epochs.

    Hyperband (Li et al. 2018) hedges successive halving's one choice, how
    many candidates to start and how small a budget to judge them on, by
    running several brackets: each is a
    :class:`~sklearn.model_selection.HalvingRandomSearchCV` over
    ``resource`` (see :func:`hyperband_brackets`), from many candidates
    trained briefly to a few trained with ``max_resources``. The best
    candidate of all brackets, scored by cross-validation at
    ``max_resources``, is refitted on the whole data.

    For :class:`~skcxr.TransferClassifier` the resource is ``max_epochs``: a
    candidate at 3 epochs is trained anew for 9 (fits do not resume), which
    costs little with a frozen backbone's cached features.

    Parameters
    ----------
    estimator : estimator
        Has ``resource`` as a parameter.
    param_distributions : dict or list of dict
        As for :class:`~sklearn.model_selection.RandomizedSearchCV`: lists or
        scipy distributions to sample candidates from.
    resource : str, default="max_epochs"
        The integer parameter that sets the training budget.
    max_resources : int, default=27
        The budget of a fully trained candidate (``R`` in Li et al.).
    min_resources : int, default=1
        The smallest budget a candidate is judged on.
    factor : int, default=3
        Successive halving keeps ``1 / factor`` of the candidates and
        multiplies the budget by ``factor`` at each step (``eta``).
    scoring : str, callable or None, default=None
        One scorer (the estimator's ``score`` when None).
    cv : int, cross-validation generator or iterable, default=5
    refit : bool, default=True
        Refit the best candidate on the whole data (``best_estimator_``).
    n_jobs : int or None, default=None
    random_state : int, RandomState instance or None, default=None
        Draws the candidates of every bracket.
    error_score : "raise" or float, default=np.nan
    verbose : int, default=0

    Attributes
    ----------
    brackets_ : list of HalvingRandomSearchCV
        The fitted search of each bracket, most exploratory first.
    cv_results_ : dict of arrays
        Every bracket's ``cv_results_`` one after the other, with a
        ``bracket`` column (its index in ``brackets_``).
    best_index_ : int
        The row of the best candidate in ``cv_results_``.
    best_params_ : dict
        Its parameters, ``resource`` included (``max_resources``).
    best_score_ : float
        Its mean cross-validated score.
    best_estimator_ : estimator
        It, refitted on the whole data (with ``refit=True``).
    refit_time_ : float
        Seconds spent refitting it.

    Examples
    --------
    >>> from scipy.stats import randint
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from skcxr.model_selection import HyperbandSearchCV
    >>> X, y = make_classification(120, random_state=0)
    >>> search = HyperbandSearchCV(
    ...     RandomForestClassifier(random_state=0), {"max_depth": randint(1, 20)},
    ...     resource="n_estimators", max_resources=9, cv=3, random_state=0,
    ... ).fit(X, y)
    >>> [b.n_resources_ for b in search.brackets_]
    [[1, 3, 9], [3, 9], [9]]
    >>> [b.n_candidates_ for b in search.brackets_]
    [[9, 3, 1], [5, 2], [3]]
    >>> search.best_params_["n_estimators"], search.best_estimator_.n_estimators
    (9, 9)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"])],
        "param_distributions": [dict, list],
        "resource": [str],
        "max_resources": [Interval(Integral, 1, None, closed="left")],
        "min_resources": [Interval(Integral, 1, None, closed="left")],
        "factor": [Interval(Integral, 2, None, closed="left")],
        "scoring": [None, str, callable],
        "cv": ["cv_object"],
        "refit": ["boolean"],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
        "error_score": [StrOptions({"raise"}), float],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        resource="max_epochs",
        max_resources=27,
        min_resources=1,
        factor=3,
        scoring=None,
        cv=5,
        refit=True,
        n_jobs=None,
        random_state=None,
        error_score=np.nan,
        verbose=0,
    ):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.resource = resource
        self.max_resources = max_resources
        self.min_resources = min_resources
        self.factor = factor
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.error_score = error_score
        self.verbose = verbose

    def fit(self, X, y=None, **fit_params):
        """Run every bracket, then refit the best candidate.

        Parameters
        ----------
        X : array-like
        y : array-like, default=None
        **fit_params
            Passed to the estimator's ``fit``.

        Returns
        -------
        self
        """
        self._validate_params()
        if self.min_resources > self.max_resources:
            raise ValueError(
                f"min_resources={self.min_resources} exceeds "
                f"max_resources={self.max_resources}."
            )
        if self.resource not in self.estimator.get_params():
            raise ValueError(
                f"resource={self.resource!r} is not a parameter of "
                f"{type(self.estimator).__name__}."
            )
        rng = check_random_state(self.random_state)
        self.brackets_ = []
        for n_candidates, min_resources in hyperband_brackets(
            self.max_resources, self.min_resources, self.factor
        ):
            search = HalvingRandomSearchCV(
                clone(self.estimator),
                self.param_distributions,
                n_candidates=n_candidates,
                resource=self.resource,
                min_resources=min_resources,
                max_resources=self.max_resources,
                factor=self.factor,
                scoring=self.scoring,
                cv=self.cv,
                refit=False,
                n_jobs=self.n_jobs,
                random_state=int(rng.randint(2**31 - 1)),
                error_score=self.error_score,
                verbose=self.verbose,
            )
            self.brackets_.append(search.fit(X, y, **fit_params))
        self.cv_results_ = _concatenate_results([b.cv_results_ for b in self.brackets_])
        best = int(np.argmax([b.best_score_ for b in self.brackets_]))
        offset = sum(len(b.cv_results_["params"]) for b in self.brackets_[:best])
        self.best_index_ = offset + int(self.brackets_[best].best_index_)
        self.best_params_ = self.brackets_[best].best_params_
        self.best_score_ = float(self.brackets_[best].best_score_)
        if self.refit:
            start = time.perf_counter()
            self.best_estimator_ = (
                clone(self.estimator)
                .set_params(**self.best_params_)
                .fit(X, y, **fit_params)
            )
            self.refit_time_ = time.perf_counter() - start
        return self

    @property
    def classes_(self):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.classes_

    @available_if(_best_has("predict"))
    def predict(self, X):
        """``best_estimator_.predict(X)``."""
        return self.best_estimator_.predict(X)

    @available_if(_best_has("predict_proba"))
    def predict_proba(self, X):
        """``best_estimator_.predict_proba(X)``."""
        return self.best_estimator_.predict_proba(X)

    @available_if(_best_has("score"))
    def score(self, X, y=None):
        """``best_estimator_.score(X, y)``."""
        return self.best_estimator_.score(X, y)


def _concatenate_results(results):
    """One ``cv_results_`` dict from several, with a ``bracket`` column."""
    keys = [k for k in results[0] if all(k in r for r in results)]
    out = {}
    for key in keys:
        values = [r[key] for r in results]
        if isinstance(values[0], np.ma.MaskedArray):
            out[key] = np.ma.concatenate(values)
        elif isinstance(values[0], np.ndarray):
            out[key] = np.concatenate(values)
        else:
            out[key] = [v for value in values for v in value]
    out["bracket"] = np.concatenate(
        [np.full(len(r["params"]), i) for i, r in enumerate(results)]
    )
    return out
