"""Subgroup gaps and operating thresholds on simulated test sets of known truth.

Scores are simulated directly (no network): a binormal model, in which the
score of an image is ``d_g * y + noise`` with unit-variance noise, so that the
ROC AUC of group ``g`` is ``Phi(d_g / sqrt(2))`` and, at a threshold ``t``,
the sensitivity is ``Phi(d_g - t)`` and the specificity ``Phi(t)``. Two groups
("F" and "M", even odds) share a prevalence; in the *gap* scenario group F's
AUC is lower than M's by ``--gap`` (their mean is ``--auc``), in the *null*
scenario both have AUC ``--auc``. Optionally the images come in patients
(``--images-per-patient k``): a patient has one label and one sex, and their
images share a patient effect holding ``--patient-correlation`` of the noise
variance (the AUC over images of different patients stays as above).

Over ``--repeats`` simulated test sets of ``--n-images`` images, the script
calls :func:`skcxr.metrics.subgroup_metrics` (``--n-resamples`` resamples,
95% intervals, patient-level resampling when patients are simulated, and also
image-level resampling to show what ignoring them costs) and reports:

* ``gap found``: the share of repetitions whose gap is called (the gap's
  interval excludes 0) in the gap scenario, the detection rate (goal >= 95%);
* ``false call``: the same share in the null scenario (goal <= 5%);
* ``coverage``: the share of the group intervals (both groups, both
  scenarios) that contain the group's true value, and of the gap intervals
  that contain the true gap (goal: about 95%);
* the median seconds of one ``subgroup_metrics`` call.

Each share comes with the half-width of its 95% binomial interval (normal
approximation): with 200 repetitions a false-call rate of 5% is known to
about +-3 points, so use ``--repeats 1000`` to check the 5% goal.

Operating point: a threshold chosen with
:func:`skcxr.metrics.threshold_for_sensitivity` for 95% sensitivity on a
simulated validation set of ``--n-validation`` images, then the sensitivity
at that threshold on a large simulated test set (``--n-test`` images, same
distribution), over the repetitions: mean, 5th and 95th percentiles, and the
share of repetitions within 3 points of 0.95.

Run::

    python benchmarks/bench_subgroups.py
    python benchmarks/bench_subgroups.py --images-per-patient 4
    python benchmarks/bench_subgroups.py --gap 0.05 --n-images 4000
"""

import argparse
import time

import numpy as np
from scipy.stats import norm

from skcxr.metrics import subgroup_metrics, threshold_for_sensitivity


def simulate(rng, n, auc_f, auc_m, prevalence, per_patient, correlation):
    """``(y, score, sex, patient_ids)`` of ``n`` simulated images."""
    n_patients = -(-n // per_patient)
    patient = np.repeat(np.arange(n_patients), per_patient)[:n]
    y = (rng.random(n_patients) < prevalence).astype(int)[patient]
    sex = np.where(rng.random(n_patients) < 0.5, "F", "M")[patient]
    shift = np.sqrt(2) * norm.ppf(np.where(sex == "F", auc_f, auc_m))
    shared = rng.normal(size=n_patients)[patient]
    own = rng.normal(size=n)
    noise = np.sqrt(correlation) * shared + np.sqrt(1 - correlation) * own
    return y, shift * y + noise, sex, patient


def true_values(metric, auc, threshold):
    d = np.sqrt(2) * norm.ppf(auc)
    return {
        "roc_auc": auc,
        "sensitivity": norm.cdf(d - threshold),
        "fnfr": norm.cdf(threshold - d),
        "specificity": norm.cdf(threshold),
    }[metric]


def run_scenario(args, rng, auc_f, auc_m, patient_level):
    truth = {
        "F": true_values(args.metric, auc_f, args.threshold),
        "M": true_values(args.metric, auc_m, args.threshold),
    }
    true_gap = truth["F"] - truth["M"]
    called = covered = covered_gap = n_intervals = not_estimable = 0
    seconds = []
    for rep in range(args.repeats):
        y, score, sex, patient = simulate(
            rng,
            args.n_images,
            auc_f,
            auc_m,
            args.prevalence,
            args.images_per_patient,
            args.patient_correlation,
        )
        start = time.perf_counter()
        res = subgroup_metrics(
            y,
            score,
            sex,
            metric=args.metric,
            threshold=args.threshold,
            n_resamples=args.n_resamples,
            random_state=rep,
            patient_ids=patient if patient_level else None,
        )
        seconds.append(time.perf_counter() - start)
        if not res.estimable.all():
            not_estimable += 1
            continue
        called += bool(res.gap_called[0])
        for j, group in enumerate(res.groups):
            covered += res.ci_low[j] <= truth[group] <= res.ci_high[j]
            n_intervals += 1
        covered_gap += res.gap_ci_low[0] <= true_gap <= res.gap_ci_high[0]
    n_used = args.repeats - not_estimable
    return {
        "called": called / max(n_used, 1),
        "covered": covered,
        "n_intervals": n_intervals,
        "covered_gap": covered_gap,
        "n_used": n_used,
        "not_estimable": not_estimable,
        "seconds": float(np.median(seconds)),
    }


def operating_point(args, rng):
    sensitivities = []
    for _ in range(args.repeats):
        y_val, s_val, *_ = simulate(
            rng, args.n_validation, args.auc, args.auc, args.prevalence, 1, 0.0
        )
        t = threshold_for_sensitivity(y_val, s_val, 0.95)
        y_test, s_test, *_ = simulate(
            rng, args.n_test, args.auc, args.auc, args.prevalence, 1, 0.0
        )
        sensitivities.append(np.mean(s_test[y_test == 1] >= t))
    return np.asarray(sensitivities)


def rate(p, n):
    """``p`` as a percentage with the half-width of its 95% binomial interval."""
    half = 1.96 * np.sqrt(p * (1 - p) / max(n, 1))
    return f"{p:9.1%} ±{half:4.1%}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--auc", type=float, default=0.80, help="mean group AUC")
    parser.add_argument("--gap", type=float, default=0.10, help="planted AUC gap")
    parser.add_argument("--prevalence", type=float, default=0.5)
    parser.add_argument(
        "--metric",
        default="roc_auc",
        choices=["roc_auc", "sensitivity", "specificity", "fnfr"],
    )
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--images-per-patient", type=int, default=1)
    parser.add_argument("--patient-correlation", type=float, default=0.5)
    parser.add_argument("--n-validation", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    auc_f, auc_m = args.auc - args.gap / 2, args.auc + args.gap / 2
    clustered = args.images_per_patient > 1
    print(
        f"{args.repeats} simulated test sets of {args.n_images} images "
        f"(prevalence {args.prevalence}, groups F/M at even odds"
        + (
            f", {args.images_per_patient} images per patient, patient correlation "
            f"{args.patient_correlation}"
            if clustered
            else ", one image per patient"
        )
        + f"), {args.metric}, {args.n_resamples} bootstrap resamples, 95% intervals"
    )
    print(
        f"planted gap: AUC F {auc_f:.3f} vs M {auc_m:.3f} "
        f"(gap {-args.gap:+.3f}); null: both {args.auc:.3f}"
    )
    header = (
        f"{'resampling':12s}{'gap found':>16s}{'false call':>16s}"
        f"{'group CI cov.':>16s}{'gap CI cov.':>16s}{'s/call':>9s}"
    )
    print(header)
    print("-" * len(header))
    levels = [True, False] if clustered else [False]
    for patient_level in levels:
        rng = np.random.default_rng(args.seed)
        gap = run_scenario(args, rng, auc_f, auc_m, patient_level)
        null = run_scenario(args, rng, args.auc, args.auc, patient_level)
        group_cov = (gap["covered"] + null["covered"]) / max(
            gap["n_intervals"] + null["n_intervals"], 1
        )
        gap_cov = (gap["covered_gap"] + null["covered_gap"]) / max(
            gap["n_used"] + null["n_used"], 1
        )
        name = "patients" if patient_level else "images"
        n_groups = gap["n_intervals"] + null["n_intervals"]
        n_gaps = gap["n_used"] + null["n_used"]
        print(
            f"{name:12s}{rate(gap['called'], gap['n_used'])}"
            f"{rate(null['called'], null['n_used'])}"
            f"{rate(group_cov, n_groups)}{rate(gap_cov, n_gaps)}"
            f"{(gap['seconds'] + null['seconds']) / 2:9.3f}"
        )
        skipped = gap["not_estimable"] + null["not_estimable"]
        if skipped:
            print(f"  ({skipped} repetitions with a group not estimable, left out)")

    rng = np.random.default_rng(args.seed + 1)
    sens = operating_point(args, rng)
    low, high = np.percentile(sens, [5, 95])
    print()
    print(
        f"threshold for 95% sensitivity chosen on {args.n_validation} validation "
        f"images (AUC {args.auc}), applied to {args.n_test} test images, "
        f"{args.repeats} repetitions:"
    )
    print(
        f"test sensitivity mean {sens.mean():.3f}, 5th-95th percentile "
        f"{low:.3f}-{high:.3f}, within 3 points of 0.95 in "
        f"{np.mean(np.abs(sens - 0.95) <= 0.03):.1%} of repetitions"
    )


if __name__ == "__main__":
    main()
