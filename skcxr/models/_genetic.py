"""The genetic algorithm behind :class:`~skcxr.GAWeightedVoter`.

A real-coded GA over weight vectors on the simplex, with a fitness computed
for the whole population at once from batched confusion matrices when the
scorer allows it.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

__all__ = [
    "VECTORISED_SCORERS",
    "evolve_weights",
    "scorer_fitness",
    "vectorised_fitness",
]

# Scorer names whose fitness is computed for the whole population at once from
# batched confusion matrices. Any other scorer is evaluated one individual at a time.
VECTORISED_SCORERS = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
)


def _batched_confusion(y_true, y_pred, n_classes):
    """Confusion matrices ``(pop, n_classes, n_classes)`` of every row of ``y_pred``."""
    pop = y_pred.shape[0]
    index = (np.arange(pop)[:, None] * n_classes + y_true[None, :]) * n_classes + y_pred
    counts = np.bincount(index.ravel(), minlength=pop * n_classes * n_classes)
    return counts.reshape(pop, n_classes, n_classes)


def _safe_divide(num, den):
    """``num / den`` with 0 where ``den == 0`` (sklearn's ``zero_division=0``)."""
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _score_from_confusion(cm, name):
    """Vectorised sklearn metrics from batched confusion matrices.

    As in sklearn, the labels of each individual are those present in ``y_true``
    or in its ``y_pred``; undefined precision / recall / F1 count as 0.
    """
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    support = cm.sum(axis=2)  # true counts
    predicted = cm.sum(axis=1)
    n_samples = support.sum(axis=1)
    if name in ("accuracy", "f1_micro"):
        return tp.sum(axis=1) / n_samples
    present = (support > 0) | (predicted > 0)
    n_present = present.sum(axis=1)
    if name == "balanced_accuracy":
        # sklearn averages the recall of the classes present in y_true only
        has_true = support > 0
        recall = _safe_divide(tp, support)
        return (recall * has_true).sum(axis=1) / has_true.sum(axis=1)
    if name == "recall_macro":
        return _safe_divide(tp, support).sum(axis=1) / n_present
    if name == "precision_macro":
        return _safe_divide(tp, predicted).sum(axis=1) / n_present
    f1 = _safe_divide(2 * tp, support + predicted)
    if name == "f1_weighted":
        return (f1 * support).sum(axis=1) / n_samples
    return f1.sum(axis=1) / n_present  # f1_macro


def vectorised_fitness(y_enc, P, name):
    """Return ``f(W (pop, m)) -> (pop,)``: the ``name`` score of every weighting.

    Parameters
    ----------
    y_enc : ndarray of shape (n_samples,)
        Encoded true labels (0 .. n_classes - 1).
    P : ndarray of shape (n_models, n_samples, n_classes)
        Class probabilities of every model.
    name : str
        One of :data:`VECTORISED_SCORERS`.

    Returns
    -------
    callable

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.models._genetic import vectorised_fitness
    >>> P = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.1, 0.9], [0.9, 0.1]]])
    >>> fitness = vectorised_fitness(np.array([0, 1]), P, "accuracy")
    >>> fitness(np.array([[1.0, 0.0], [0.0, 1.0]])).tolist()
    [1.0, 0.0]
    """
    n_classes = P.shape[2]
    # one contiguous (n_models, n_samples) slab per class: a small matmul per
    # class gives the blended score of every (individual, sample), and the
    # argmax over the few classes is a running comparison (strict >, so the
    # first maximum wins, as np.argmax).
    P_k = [np.ascontiguousarray(P[:, :, k]) for k in range(n_classes)]

    def fitness(W):
        best = W @ P_k[0]
        pred = np.zeros(best.shape, dtype=np.intp)
        for k in range(1, n_classes):
            blended = W @ P_k[k]
            np.copyto(pred, k, where=blended > best)
            np.maximum(best, blended, out=best)
        cm = _batched_confusion(y_enc, pred, n_classes)
        return _score_from_confusion(cm, name)

    return fitness


class _FixedProbaClassifier(ClassifierMixin, BaseEstimator):
    """Stand-in classifier returning stored probabilities, for any sklearn scorer."""

    def __init__(self, classes, proba):
        self.classes = classes
        self.proba = proba

    def fit(self, X=None, y=None):  # pragma: no cover - never fitted by scorers
        return self

    @property
    def classes_(self):
        return self.classes

    def predict_proba(self, X):
        return self.proba

    def predict(self, X):
        return self.classes[np.argmax(self.proba, axis=1)]


def scorer_fitness(scorer, classes, y_val, P):
    """Return ``f(W (pop, m)) -> (pop,)`` calling ``scorer`` once per weighting."""
    y_val = np.asarray(y_val)
    dummy_X = np.zeros((P.shape[1], 1))

    def fitness(W):
        blended = np.tensordot(W, P, axes=(1, 0))
        out = np.empty(W.shape[0])
        for i, proba in enumerate(blended):
            out[i] = scorer(_FixedProbaClassifier(classes, proba), dummy_X, y_val)
        return out

    return fitness


def _normalise(W):
    """Rows scaled to sum 1; an all-zero row becomes uniform."""
    sums = W.sum(axis=1, keepdims=True)
    zero = sums[:, 0] <= 0
    W = W / np.where(sums > 0, sums, 1.0)
    W[zero] = 1.0 / W.shape[1]
    return W


def evolve_weights(
    fitness,
    n_models,
    rng,
    *,
    population_size,
    n_generations,
    tournament_size,
    crossover_rate,
    mutation_rate,
    elite_fraction,
    verbose=False,
):
    """Maximise ``fitness`` over weight vectors on the simplex.

    Random initial population (Dirichlet; its first individual is the uniform
    weighting), k-tournament selection, average crossover, single-gene
    mutation (one weight replaced by a uniform draw in [0, 1]), every
    chromosome renormalised to sum 1, and elitism.

    Parameters
    ----------
    fitness : callable
        ``W (pop, n_models) -> scores (pop,)``.
    n_models : int
        Genes per chromosome.
    rng : numpy.random.Generator
    population_size, n_generations, tournament_size : int
    crossover_rate, mutation_rate, elite_fraction : float
    verbose : bool, default=False
        Print the best and mean fitness of every generation.

    Returns
    -------
    weights : ndarray of shape (n_models,)
        The best chromosome ever seen.
    best_score : float
    history : dict of ndarray
        ``"best"`` and ``"mean"`` fitness per generation (entry 0 is the
        initial population).

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.models._genetic import evolve_weights
    >>> target = np.array([0.7, 0.2, 0.1])
    >>> w, best, history = evolve_weights(
    ...     lambda W: -np.abs(W - target).sum(axis=1), 3, np.random.default_rng(0),
    ...     population_size=30, n_generations=40, tournament_size=3,
    ...     crossover_rate=0.9, mutation_rate=0.3, elite_fraction=0.1)
    >>> bool(best > history["best"][0]), float(round(w.sum(), 6))
    (True, 1.0)
    """
    pop_size = population_size
    n_elite = int(np.ceil(elite_fraction * pop_size))
    n_children = pop_size - n_elite
    population = rng.dirichlet(np.ones(n_models), size=pop_size)
    population[0] = 1.0 / n_models  # the uniform weighting competes too
    scores = fitness(population)
    best, mean = [scores.max()], [scores.mean()]
    best_w, best_s = population[np.argmax(scores)].copy(), scores.max()
    for gen in range(n_generations):
        order = np.argsort(-scores, kind="stable")
        elite = population[order[:n_elite]]
        # k-tournament selection of two parents per child
        draws = rng.integers(0, pop_size, size=(n_children, 2, tournament_size))
        winners = np.take_along_axis(
            draws, np.argmax(scores[draws], axis=2)[..., None], axis=2
        )[..., 0]
        parents1, parents2 = population[winners[:, 0]], population[winners[:, 1]]
        cross = rng.random(n_children) < crossover_rate
        children = np.where(cross[:, None], (parents1 + parents2) / 2.0, parents1)
        mutate = np.flatnonzero(rng.random(n_children) < mutation_rate)
        genes = rng.integers(0, n_models, size=len(mutate))
        children[mutate, genes] = rng.random(len(mutate))
        population = np.vstack([elite, _normalise(children)])
        scores = fitness(population)
        best.append(scores.max())
        mean.append(scores.mean())
        if scores.max() > best_s:
            best_w, best_s = population[np.argmax(scores)].copy(), scores.max()
        if verbose:
            print(
                f"[GAWeightedVoter] generation {gen + 1}: best={best[-1]:.4f} "
                f"mean={mean[-1]:.4f}"
            )
    history = {"best": np.asarray(best), "mean": np.asarray(mean)}
    return best_w, float(best_s), history
