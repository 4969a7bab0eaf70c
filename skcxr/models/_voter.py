"""Soft-voting ensemble whose weights are found by a genetic algorithm."""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassifierMixin, _fit_context, clone
from sklearn.ensemble._base import _BaseHeterogeneousEnsemble
from sklearn.exceptions import NotFittedError
from sklearn.metrics import check_scoring
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import (
    Bunch,
    _safe_indexing,
    check_consistent_length,
    check_random_state,
)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _num_samples, check_is_fitted, column_or_1d

from ..utils._param_validation import IntInterval
from ..utils._split import holdout_split
from ..utils._validation import check_class_labels
from ._genetic import (
    VECTORISED_SCORERS,
    evolve_weights,
    scorer_fitness,
    vectorised_fitness,
)

__all__ = ["GAWeightedVoter"]


class GAWeightedVoter(ClassifierMixin, _BaseHeterogeneousEnsemble):
    """Soft-voting ensemble with weights found by a genetic algorithm.

    The ensemble predicts ``sum_m w_m * P_m(X)`` where ``P_m`` is the
    ``predict_proba`` of model ``m`` (columns aligned on ``classes_``) and the
    weights ``w`` lie on the simplex (non-negative, sum 1). The weights are
    chosen by a real-coded genetic algorithm that maximises ``scoring`` on a
    validation set: random initial population (Dirichlet; its first individual
    is the uniform weighting, so with elitism the result never scores below
    uniform averaging on the validation set), k-tournament selection, average
    crossover (child = mean of two parents), single-gene mutation (one weight
    replaced by a uniform draw in [0, 1]), every chromosome renormalised to sum
    1, and elitism.

    Parameters
    ----------
    estimators : list of (str, estimator) tuples
        The classifiers, each with ``predict_proba``. Any sklearn classifier
        works. An entry can be set to ``"drop"`` with ``set_params``.

    weights : {"ga", "uniform"} or array-like of shape (n_estimators,), default="ga"
        ``"ga"`` runs the genetic algorithm; ``"uniform"`` gives every model
        the same weight (plain average voting); an array gives fixed weights
        (normalised to sum 1). The data split is the same for every choice, so
        ``GAWeightedVoter(estimators, weights="uniform")`` is the one-line
        baseline to compare the GA against.

    prefit : bool, default=False
        If False, ``fit(X, y)`` fits clones of the estimators on a training
        split (stratified when every class has enough samples) and keeps
        ``validation_fraction`` of ``(X, y)`` for the GA (or uses ``X_val,
        y_val`` when given, then fitting on all of ``X``).
        If True, the estimators are already fitted: they are used as they are
        (not cloned) and ``fit(X, y)`` treats ``(X, y)`` as the validation set.
        Their ``classes_`` must be labels of ``y`` (same values and type), else
        ``fit`` raises a ``ValueError`` naming the estimator.

    validation_fraction : float in (0, 1), default=0.2
        Share of ``(X, y)`` held out for the GA when ``prefit=False`` and no
        ``X_val`` is given.

    population_size : int, default=50
        Number of chromosomes (weight vectors) per generation.

    n_generations : int, default=50
        Number of generations. ``0`` keeps the best of the initial population.

    tournament_size : int, default=3
        Number of individuals drawn (with replacement) per tournament.

    crossover_rate : float in [0, 1], default=0.9
        Probability that a child is the average of its two parents (else it is
        a copy of the first parent).

    mutation_rate : float in [0, 1], default=0.2
        Probability that a child has one gene replaced by a uniform draw in [0, 1].

    elite_fraction : float in [0, 1), default=0.1
        Share of the best individuals copied unchanged into the next
        generation (rounded up, so any positive value keeps at least one).

    scoring : str or callable, default="f1_macro"
        Fitness. Any sklearn scorer name or scorer object. The names
        ``"accuracy"``, ``"balanced_accuracy"``, ``"f1_macro"``, ``"f1_micro"``,
        ``"f1_weighted"``, ``"precision_macro"`` and ``"recall_macro"`` are
        computed for the whole population at once from batched confusion
        matrices (numpy only). Other scorers (``"roc_auc_ovr"``,
        ``"neg_log_loss"``, custom ones...) are called once per individual on
        the blended probabilities: correct but slower.

    random_state : int, RandomState instance or None, default=None
        Controls the validation split and the genetic algorithm.

    verbose : bool, default=False
        Print the best and mean fitness of every generation.

    Attributes
    ----------
    estimators_ : list of classifiers
        The fitted classifiers that are not ``"drop"``.
    named_estimators_ : :class:`~sklearn.utils.Bunch`
        The fitted classifiers by name.
    weights_ : ndarray of shape (n_estimators,)
        Weight of each model in ``estimators_``; non-negative, sum 1.
    best_score_ : float
        Validation ``scoring`` of ``weights_``.
    fitness_history_ : dict of ndarray
        ``"best"`` and ``"mean"`` fitness per generation, shape
        ``(n_generations + 1,)`` (entry 0 is the initial population). Empty
        arrays when ``weights`` is not ``"ga"``.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    le_ : :class:`~sklearn.preprocessing.LabelEncoder`
        Encoder of ``classes_`` (the sub-estimators keep the original labels).
    n_features_in_ : int
        Taken from the first fitted estimator, when it has it.

    See Also
    --------
    sklearn.ensemble.VotingClassifier : Fixed-weight voting.

    Notes
    -----
    ``X_val`` and ``y_val`` are consumed by the voter itself (they are not
    routed to the sub-estimators). With metadata routing enabled, request them
    with ``voter.set_fit_request(X_val=True, y_val=True)``; without routing,
    ``GridSearchCV.fit(X, y, X_val=..., y_val=...)`` passes them through as
    long as ``X_val`` does not have the same length as ``X`` (a fit param of the
    same length as ``X`` would be split by the CV).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from skcxr import GAWeightedVoter
    >>> X, y = make_classification(n_samples=200, n_classes=3, n_informative=4,
    ...                            random_state=0)
    >>> models = [("lr", LogisticRegression()), ("nb", GaussianNB()),
    ...           ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]
    >>> voter = GAWeightedVoter(models, population_size=20, n_generations=10,
    ...                         random_state=0).fit(X, y)
    >>> float(round(voter.weights_.sum(), 6))
    1.0
    >>> voter.predict_proba(X[:2]).shape
    (2, 3)
    >>> uniform = GAWeightedVoter(models, weights="uniform", random_state=0).fit(X, y)
    >>> uniform.weights_
    array([0.333..., 0.333..., 0.333...])
    """

    _parameter_constraints: dict = {
        "estimators": [list],
        "weights": [StrOptions({"ga", "uniform"}), "array-like"],
        "prefit": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "population_size": [IntInterval(2, None, closed="left")],
        "n_generations": [IntInterval(0, None, closed="left")],
        "tournament_size": [IntInterval(1, None, closed="left")],
        "crossover_rate": [Interval(Real, 0, 1, closed="both")],
        "mutation_rate": [Interval(Real, 0, 1, closed="both")],
        "elite_fraction": [Interval(Real, 0, 1, closed="left")],
        "scoring": [str, callable],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        estimators,
        *,
        weights="ga",
        prefit=False,
        validation_fraction=0.2,
        population_size=50,
        n_generations=50,
        tournament_size=3,
        crossover_rate=0.9,
        mutation_rate=0.2,
        elite_fraction=0.1,
        scoring="f1_macro",
        random_state=None,
        verbose=False,
    ):
        super().__init__(estimators=estimators)
        self.weights = weights
        self.prefit = prefit
        self.validation_fraction = validation_fraction
        self.population_size = population_size
        self.n_generations = n_generations
        self.tournament_size = tournament_size
        self.crossover_rate = crossover_rate
        self.mutation_rate = mutation_rate
        self.elite_fraction = elite_fraction
        self.scoring = scoring
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, X_val=None, y_val=None):
        """Fit (or take) the estimators, then choose the weights.

        Parameters
        ----------
        X : array-like
            Training samples in any layout the estimators accept (images,
            feature matrices, paths...). Only indexed, never converted. With
            ``prefit=True`` this is the validation set.
        y : array-like of shape (n_samples,)
            Class labels.
        X_val, y_val : array-like, default=None
            Explicit validation set for the GA (``prefit=False`` only). When
            given, the estimators are fitted on all of ``X``.

        Returns
        -------
        self : GAWeightedVoter
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        names, estimators = self._validate_estimators()
        active = [(n, e) for n, e in zip(names, estimators) if not _is_drop(e)]
        for name, est in active:
            if not hasattr(est, "predict_proba"):
                raise ValueError(
                    f"estimators: {name!r} ({type(est).__name__}) has no predict_proba;"
                    " soft voting needs probabilities."
                )
        if not isinstance(self.weights, str):
            weights = np.asarray(self.weights)
            if weights.dtype.kind not in "biuf" or weights.dtype == bool:
                raise ValueError(
                    f"weights must be numbers, one per estimator; got {self.weights!r}."
                )
            if len(weights) != len(estimators):
                raise ValueError(
                    f"weights: got {len(weights)} weights for {len(estimators)} "
                    "estimators."
                )
        y = check_class_labels(column_or_1d(y, warn=True))
        check_classification_targets(y)
        check_consistent_length(X, y)
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together.")
        if X_val is not None:
            check_consistent_length(X_val, y_val)
        rng = check_random_state(self.random_state)
        split_seed = rng.randint(np.iinfo(np.int32).max)
        ga_seed = rng.randint(np.iinfo(np.int32).max)

        if self.prefit:
            if X_val is not None:
                raise ValueError(
                    "X_val: with prefit=True, fit(X, y) already uses (X, y) as the "
                    "validation set; do not pass X_val/y_val."
                )
            for name, est in active:
                try:
                    check_is_fitted(est)
                except NotFittedError as exc:
                    raise ValueError(
                        f"prefit: estimator {name!r} is not fitted; fit it first or "
                        "use prefit=False."
                    ) from exc
            _check_classes_in_y(active, y)
            fitted = [est for _, est in active]
            X_val, y_val = X, y
            all_labels = [y]
        else:
            if X_val is None:
                X_fit, y_fit, X_val, y_val = self._split(X, y, split_seed)
            else:
                X_fit, y_fit = X, y
                y_val = column_or_1d(y_val)
                if _is_text(y_val) != _is_text(y):
                    raise ValueError(
                        f"y_val: labels of dtype {y_val.dtype} do not match the "
                        f"labels of y (dtype {y.dtype}); give both as strings or "
                        "both as numbers."
                    )
            fitted = []
            for i, (name, est) in enumerate(active):
                if self.verbose:
                    print(
                        f"[GAWeightedVoter] ({i + 1} of {len(active)}) fitting {name}"
                    )
                fitted.append(clone(est).fit(X_fit, y_fit))
            all_labels = [y, y_val]
        self.le_ = LabelEncoder().fit(
            np.concatenate([np.asarray(a) for a in all_labels])
        )
        self.classes_ = self.le_.classes_
        self.estimators_ = fitted
        self.named_estimators_ = Bunch()
        fitted_iter = iter(fitted)
        for name, est in zip(names, estimators):
            self.named_estimators_[name] = est if _is_drop(est) else next(fitted_iter)

        self._fit_weights(X_val, y_val, active, ga_seed)
        return self

    def _split(self, X, y, seed):
        """Hold out ``validation_fraction`` of ``(X, y)``, stratified when possible."""
        X = _indexable(X)
        idx_fit, idx_val = holdout_split(
            y, test_size=self.validation_fraction, random_state=seed
        )
        return (
            _safe_indexing(X, idx_fit),
            y[idx_fit],
            _safe_indexing(X, idx_val),
            y[idx_val],
        )

    def _fit_weights(self, X_val, y_val, active, seed):
        n_models = len(self.estimators_)
        self.fitness_history_ = {"best": np.empty(0), "mean": np.empty(0)}
        if isinstance(self.weights, str) and self.weights == "ga":
            P = self._collect_probas(X_val)
            self.weights_, self.best_score_, self.fitness_history_ = self._run_ga(
                P, y_val, np.random.default_rng(seed)
            )
            return
        if isinstance(self.weights, str):  # "uniform"
            w = np.full(n_models, 1.0 / n_models)
        else:
            w_all = np.asarray(self.weights, dtype=np.float64)
            keep = [not _is_drop(e) for _, e in self.estimators]
            w = w_all[keep]
            if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
                raise ValueError("weights: must be finite, non-negative, not all zero.")
            w = w / w.sum()
        self.weights_ = w
        P = self._collect_probas(X_val)
        self.best_score_ = float(self._fitness_function(y_val, P)(w[None, :])[0])

    # ------------------------------------------------------------------ GA
    def _fitness_function(self, y_val, P):
        """Return ``f(W (pop, m)) -> (pop,)``: fitness of weights on probabilities ``P (m, n, c)``."""
        if isinstance(self.scoring, str) and self.scoring in VECTORISED_SCORERS:
            return vectorised_fitness(self.le_.transform(y_val), P, self.scoring)
        scorer = check_scoring(self, scoring=self.scoring)
        return scorer_fitness(scorer, self.classes_, y_val, P)

    def _run_ga(self, P, y_val, rng):
        return evolve_weights(
            self._fitness_function(y_val, P),
            P.shape[0],
            rng,
            population_size=self.population_size,
            n_generations=self.n_generations,
            tournament_size=self.tournament_size,
            crossover_rate=self.crossover_rate,
            mutation_rate=self.mutation_rate,
            elite_fraction=self.elite_fraction,
            verbose=self.verbose,
        )

    # ------------------------------------------------------------------ predict
    def _collect_probas(self, X):
        """Stack ``predict_proba`` of every model, columns aligned on ``classes_``."""
        probas = np.zeros((len(self.estimators_), _num_samples(X), len(self.classes_)))
        for m, est in enumerate(self.estimators_):
            cols = np.searchsorted(self.classes_, np.asarray(est.classes_))
            probas[m][:, cols] = est.predict_proba(X)
        return probas

    def predict_proba(self, X):
        """Weighted average of the models' class probabilities.

        Parameters
        ----------
        X : array-like
            Samples in any layout the estimators accept.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return np.tensordot(self.weights_, self._collect_probas(X), axes=(0, 0))

    def predict(self, X):
        """Class with the highest weighted-average probability.

        Parameters
        ----------
        X : array-like
            Samples in any layout the estimators accept.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def n_features_in_(self):
        """Number of features seen by the first fitted estimator."""
        try:
            check_is_fitted(self)
        except NotFittedError as exc:
            raise AttributeError(
                f"{type(self).__name__} object has no n_features_in_ attribute."
            ) from exc
        return self.estimators_[0].n_features_in_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


def _check_classes_in_y(named_estimators, y):
    """Every prefit estimator must predict labels of ``y`` only."""
    labels = set(np.unique(y).tolist())
    for name, est in named_estimators:
        classes = np.asarray(est.classes_).tolist()
        unknown = [c for c in classes if c not in labels]
        if unknown:
            raise ValueError(
                f"estimators: the classes_ of {name!r} ({type(est).__name__}) "
                f"include {unknown}, which are not labels of y "
                f"({sorted(labels, key=str)}); a prefit estimator must be trained "
                "on the same labels (same values and type) as y."
            )


def _is_text(y):
    return np.asarray(y).dtype.kind in "OUS"


def _indexable(X):
    """X in a form ``_safe_indexing`` can split (never converts image arrays)."""
    if sp.issparse(X):
        return X if X.format in ("csr", "csc") else X.tocsr()
    if hasattr(X, "iloc") or isinstance(X, (list, tuple, np.ndarray)):
        return X
    return np.asarray(X)


def _is_drop(est):
    return isinstance(est, str) and est == "drop"
