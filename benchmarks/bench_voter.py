"""GAWeightedVoter: vectorised GA fitness vs a per-individual ``f1_score`` loop.

Setting of the issue: 6 models, 1,000 validation images, 4 classes, population
100, 100 generations. Both fitness functions score the same populations
(interleaved repeats, median). The loop is timed on ``LOOP_GENERATIONS`` of the
100 generations and scaled (it is ~100 populations x 100 individuals of
``f1_score`` otherwise); the vectorised version is timed on all 100.

Also reported: the wall time of a full default GA run (population 50, 50
generations) on the same data, next to the time of one ``f1_score`` call on
1,000 labels, as a ratio.

Run: ``python benchmarks/bench_voter.py``
"""

import time

import numpy as np
from sklearn.metrics import f1_score
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import LabelEncoder

from skcxr import GAWeightedVoter

N_MODELS, N_VAL, N_CLASSES, POP, GENERATIONS = 6, 1000, 4, 100, 100
LOOP_GENERATIONS = 5
REPEATS = 5


def main():
    rng = np.random.default_rng(0)
    y = rng.integers(0, N_CLASSES, N_VAL)
    # models of varying quality: probabilities tilted towards the true class
    logits = rng.normal(size=(N_MODELS, N_VAL, N_CLASSES))
    logits[:, np.arange(N_VAL), y] += np.linspace(0.3, 1.5, N_MODELS)[:, None]
    P = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    populations = rng.dirichlet(np.ones(N_MODELS), size=(GENERATIONS, POP))

    voter = GAWeightedVoter([(f"m{i}", GaussianNB()) for i in range(N_MODELS)])
    voter.le_ = LabelEncoder().fit(y)
    voter.classes_ = voter.le_.classes_
    vectorised = voter._fitness_function(y, P)

    def run_vectorised():
        return np.concatenate([vectorised(W) for W in populations])

    def run_loop(n_gen=LOOP_GENERATIONS):
        out = []
        for W in populations[:n_gen]:
            for w in W:
                pred = np.tensordot(w, P, axes=(0, 0)).argmax(axis=1)
                out.append(f1_score(y, pred, average="macro"))
        return np.asarray(out)

    # same numbers first
    n_check = LOOP_GENERATIONS * POP
    np.testing.assert_allclose(run_vectorised()[:n_check], run_loop())

    t_vec, t_loop = [], []
    for _ in range(REPEATS):  # interleaved
        t = time.perf_counter()
        run_vectorised()
        t_vec.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_loop()
        t_loop.append((time.perf_counter() - t) * GENERATIONS / LOOP_GENERATIONS)
    vec, loop = np.median(t_vec), np.median(t_loop)

    # a full default GA run, next to one f1_score call
    t_ga, t_f1 = [], []
    for seed in range(REPEATS):
        t = time.perf_counter()
        voter.random_state = seed
        voter._run_ga(P, y, y, np.random.default_rng(seed))
        t_ga.append(time.perf_counter() - t)
        t = time.perf_counter()
        f1_score(y, y, average="macro")
        t_f1.append(time.perf_counter() - t)
    ga, f1 = np.median(t_ga), np.median(t_f1)

    print(
        f"{N_MODELS} models, {N_VAL} validation images, {N_CLASSES} classes, "
        f"population {POP}, {GENERATIONS} generations (median of {REPEATS})"
    )
    print(f"{'fitness of 100 x 100 individuals':40s}{'seconds':>10s}{'ratio':>10s}")
    print(
        f"{'per-individual f1_score loop (scaled)':40s}{loop:10.3f}{loop / vec:10.1f}x"
    )
    print(f"{'vectorised (batched confusion)':40s}{vec:10.3f}{1.0:10.1f}x")
    print(
        f"full default GA run (pop 50, 50 generations): {ga:.3f} s "
        f"= {ga / f1:.0f} x one f1_score call ({f1 * 1e3:.2f} ms)"
    )


if __name__ == "__main__":
    main()
