"""How many threads or workers to use: one rule for every ``n_jobs`` parameter."""

import os

__all__ = ["available_cpus", "resolve_n_jobs"]


def available_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one).

    Examples
    --------
    >>> from skcxr.utils._parallel import available_cpus
    >>> available_cpus() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def resolve_n_jobs(n_jobs, n_tasks=None):
    """Turn an sklearn-style ``n_jobs`` into a useful number of workers.

    ``None`` means 1; a negative value counts back from the available CPUs as
    in joblib (``-1`` = all of them). The result is capped at the available
    CPUs and at ``n_tasks``, so ``n_jobs=10000`` never starts 10,000 threads.

    Parameters
    ----------
    n_jobs : int or None
    n_tasks : int, default=None
        Number of independent pieces of work; ``None`` means unbounded.

    Returns
    -------
    int
        At least 1.

    Examples
    --------
    >>> from skcxr.utils._parallel import resolve_n_jobs
    >>> resolve_n_jobs(None)
    1
    >>> resolve_n_jobs(10_000, n_tasks=3) <= 3
    True
    """
    cpus = available_cpus()
    n_jobs = 1 if n_jobs is None else int(n_jobs)
    if n_jobs < 0:
        n_jobs = cpus + 1 + n_jobs
    n_jobs = min(n_jobs, cpus)
    if n_tasks is not None:
        n_jobs = min(n_jobs, n_tasks)
    return max(1, n_jobs)
