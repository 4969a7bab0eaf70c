"""Scale out over a Dask cluster: chunked batch inference and torch threads per worker.

:func:`map_in_chunks` predicts, scores or embeds a long list of image files
chunk by chunk, on this machine or on a ``dask.distributed`` cluster, with the
results in input order. :class:`TorchThreads` is a Dask worker plugin that
gives torch as many threads as the worker has. Grid searches and
cross-validation need nothing from here: scikit-learn fans them out through
joblib's Dask backend (``joblib.parallel_config(backend="dask")``).

Dask is an optional dependency: ``pip install skcxr[dask]``.
"""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "connect": "._dask",
        "map_in_chunks": "._dask",
        "TorchThreads": "._dask",
    },
)
