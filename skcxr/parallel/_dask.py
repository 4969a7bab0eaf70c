"""Batch inference in chunks, locally or on a Dask cluster, and torch threads per worker.

Dask is optional (``pip install skcxr[dask]``): this module imports without
it, and only the cluster paths need it.
"""

import socket
import sys
import uuid
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import HasMethods, validate_params
from sklearn.utils.validation import _num_samples, check_is_fitted

from ..utils._param_validation import IntInterval

try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # the optional extra is not installed
    _WorkerPlugin = object

__all__ = ["connect", "map_in_chunks", "TorchThreads"]

_INSTALL = "pip install skcxr[dask]"
_CHUNK_KEY = "skcxr-chunk"


def _import_distributed(what):
    """``distributed``, or an ImportError saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"{what} needs Dask's distributed scheduler, which is not installed; "
            f"install it with: {_INSTALL}"
        ) from exc
    return distributed


class TorchThreads(_WorkerPlugin):
    """Dask worker plugin: ``torch.set_num_threads`` from the worker's resources.

    A Dask worker process runs ``nthreads`` tasks at a time, and its nanny
    starts it with ``OMP_NUM_THREADS=1``, so torch uses one thread whatever
    the worker was given. This plugin sets torch's intra-op threads on every
    worker (present and future) to ``n_threads``, by default the worker's
    ``nthreads``.

    It is meant for workers that run one task at a time (``--nthreads 1``,
    ``threads_per_worker=1``): one such worker per core gives every fit of a
    grid search a core and one torch thread; for fewer, larger tasks (chunked
    inference with a large backbone) start one such worker per ``K`` cores
    and pass ``n_threads=K``. torch's setting is per process, so a worker that
    runs ``K`` tasks at once with ``K`` torch threads each oversubscribes its
    cores ``K`` times over: give such workers ``n_threads=1``.

    :func:`map_in_chunks` registers ``TorchThreads()`` on its cluster unless
    a plugin of this name is already registered. For grid searches through
    joblib's Dask backend, register it yourself right after the cluster
    starts (a thread that has already run torch code keeps its old setting).

    Parameters
    ----------
    n_threads : int or None, default=None
        Torch threads per worker process; None uses the worker's ``nthreads``.

    Attributes
    ----------
    name : str
        ``"skcxr-torch-threads"``: registering another ``TorchThreads``
        replaces this one on every worker.

    Examples
    --------
    >>> from skcxr.parallel import TorchThreads
    >>> TorchThreads(n_threads=4).n_threads
    4

    On a cluster (``client`` a ``distributed.Client``):

    >>> client.register_plugin(TorchThreads())  # doctest: +SKIP
    """

    name = "skcxr-torch-threads"

    def __init__(self, n_threads=None):
        _import_distributed("TorchThreads")
        if n_threads is not None and (
            not isinstance(n_threads, Integral)
            or isinstance(n_threads, bool)
            or n_threads < 1
        ):
            raise ValueError(
                f"n_threads must be a positive int or None, got {n_threads!r}."
            )
        self.n_threads = n_threads

    def threads_for(self, worker):
        """Torch threads for ``worker`` (a ``distributed.Worker``)."""
        return int(self.n_threads or worker.state.nthreads)

    def setup(self, worker):
        import torch

        torch.set_num_threads(self.threads_for(worker))


def _method_name(method):
    return method if isinstance(method, str) else getattr(method, "__name__", "method")


def _apply(estimator, chunk, method):
    """``estimator.<method>(chunk)`` or ``method(estimator, chunk)``, one output
    row per input row."""
    if isinstance(method, str):
        out = getattr(estimator, method)(chunk)
        what = f"{type(estimator).__name__}.{method}"
    else:
        out, what = method(estimator, chunk), _method_name(method)
    if _num_samples(out) != len(chunk):
        raise ValueError(
            f"{what} returned {_num_samples(out)} rows for a chunk of {len(chunk)} "
            "inputs; map_in_chunks needs one row per input to keep the results "
            "aligned with X."
        )
    return out


def _apply_on_worker(estimator, chunk, method):
    """:func:`_apply` in a Dask task, with the worker's torch threads.

    torch's thread setting reaches the threads that have not run torch code
    yet; this applies the worker's :class:`TorchThreads` to the executor
    thread that runs this task, whatever it ran before.
    """
    from distributed import get_worker

    worker = get_worker()
    plugin = worker.plugins.get(TorchThreads.name)
    if plugin is not None:
        import torch

        n_threads = plugin.threads_for(worker)
        if torch.get_num_threads() != n_threads:
            torch.set_num_threads(n_threads)
    return _apply(estimator, chunk, method)


def _as_indexable(X):
    """``X`` as an array sliceable along its first axis (paths or images)."""
    if hasattr(X, "to_numpy"):  # pandas Series or DataFrame
        X = X.to_numpy()
    if not isinstance(X, np.ndarray):  # memmaps and other arrays stay as they are
        items = list(X)
        try:
            X = np.asarray(items)
        except ValueError:  # ragged
            X = np.empty(len(items), dtype=object)
            X[:] = items
        if X.dtype.kind == "U":  # paths: avoid fixed-width copies of long names
            X = X.astype(object)
    if X.ndim == 0 or len(X) == 0:
        raise ValueError("X must hold at least one file path or image, got none.")
    return X


def _concatenate(parts):
    if all(sp.issparse(part) for part in parts):
        return sp.vstack(parts, format=parts[0].format)
    return np.concatenate([np.asarray(part) for part in parts], axis=0)


#: Seconds to wait for a scheduler given by its address.
CONNECT_TIMEOUT = 5


def _as_client(client, distributed):
    """``(client, owned)``: a ``distributed.Client`` and whether we opened it."""
    if isinstance(client, str):
        return connect(client), True
    return client, False


def connect(address):
    """A ``distributed.Client`` of the Dask scheduler at ``address``, checked first.

    An address that is not ``[tcp://]HOST:PORT``, or where nothing answers
    within :data:`CONNECT_TIMEOUT` seconds, is a ``ValueError`` at once (a
    client made for it would retry for half a minute, then fail again while it
    closes). Needs ``pip install skcxr[dask]``.

    Parameters
    ----------
    address : str
        Such as ``"tcp://10.0.0.5:8786"`` (``"10.0.0.5:8786"`` means tcp).

    Returns
    -------
    distributed.Client
        Close it when done (it is a context manager).

    Examples
    --------
    >>> from skcxr.parallel import connect
    >>> connect("no-port-here")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    ValueError: scheduler address 'no-port-here' is not like tcp://HOST:PORT ...
    """
    distributed = _import_distributed("connect")
    client = address
    address = client if "://" in client else f"tcp://{client}"
    try:
        scheme, location = distributed.comm.parse_address(address, strict=True)
        host, port = distributed.comm.parse_host_port(location)
    except (ValueError, TypeError):
        raise ValueError(
            f"scheduler address {client!r} is not like tcp://HOST:PORT (e.g. "
            "tcp://10.0.0.5:8786)"
        ) from None
    if scheme in ("tcp", "tls"):
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
        except OSError as exc:
            raise ValueError(
                f"no Dask scheduler answers at {address} ({exc.strerror or exc}); "
                "start one with 'dask scheduler' or check the address"
            ) from None
    return distributed.Client(
        address, set_as_default=False, timeout=f"{CONNECT_TIMEOUT}s"
    )


def _in_flight(client):
    """How many chunks to keep on the cluster: two per worker thread (at least 2)."""
    return max(2, 2 * sum(client.nthreads().values()))


def _map_on_cluster(client, estimator, X, bounds, method, done_rows=None):
    """The outputs of every chunk, in order, computed by the cluster's workers.

    The estimator is scattered once to every worker; at most two chunks per
    worker thread are on the cluster at a time, and every result is fetched
    and released as soon as it is done, so that worker memory stays bounded
    by the chunk size whatever the length of ``X``.
    """
    distributed = _import_distributed("map_in_chunks(client=...)")
    client, owned = _as_client(client, distributed)
    plugin = TorchThreads()
    plugin.idempotent = True  # keep a TorchThreads the user registered
    token = uuid.uuid4().hex
    outputs, pending = [None] * len(bounds), iter(enumerate(bounds))
    running, remote = {}, None  # future key -> (chunk index, future)
    try:
        done = distributed.as_completed(loop=client.loop)
        client.register_plugin(plugin)
        remote = client.scatter(estimator, broadcast=True, hash=False)

        def fill_up():
            """Submit chunks until ``_in_flight`` of them are on the cluster."""
            limit = _in_flight(client)
            while len(running) < limit:
                i, (start, stop) = next(pending, (None, (0, 0)))
                if i is None:
                    return
                future = client.submit(
                    _apply_on_worker,
                    remote,
                    X[start:stop],
                    method,
                    key=f"{_CHUNK_KEY}-{_method_name(method)}-{token}-{i}",
                )
                running[future.key] = (i, future)
                done.add(future)

        fill_up()
        for future in done:
            i, _ = running.pop(future.key)
            outputs[i] = future.result()  # raises a chunk's error here
            future.release()
            if done_rows is not None:
                done_rows(bounds[i][1] - bounds[i][0])
            fill_up()
    finally:
        if running:  # a chunk failed: stop the others
            client.cancel([future for _, future in running.values()])
        if remote is not None:
            remote.release()
        if owned:
            client.close()
    return outputs


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "method": [str, callable],
        "client": [None, str, HasMethods(["submit", "scatter"])],
        "chunk_size": [IntInterval(1, None, closed="left")],
        "progress": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def map_in_chunks(
    estimator,
    X,
    *,
    method="predict_proba",
    client=None,
    chunk_size=256,
    progress=False,
):
    """Apply a fitted estimator's method to ``X`` chunk by chunk, in input order.

    ``X`` is cut into consecutive chunks of ``chunk_size`` rows; each chunk
    goes through ``estimator.<method>`` on its own, and the outputs are
    concatenated in the order of ``X``. Typical use: predict or embed a long
    list of image files with a pipeline whose first step is an
    :class:`~skcxr.ImageLoader`, so that at most a chunk of images is decoded
    in memory at a time, however long the list.

    With a Dask ``client`` the chunks run on the cluster's workers: the
    estimator is sent once to every worker, at most two chunks per worker
    thread are queued at a time, and each result comes back to this process as
    soon as it is done, so a worker holds about one chunk of images per
    thread. The workers read the files themselves: paths must name the same
    files on every worker (shared storage). :class:`TorchThreads` is
    registered on the cluster unless a plugin of that name already is.

    Parameters
    ----------
    estimator : estimator
        A fitted estimator or pipeline that has ``method``.
    X : array-like of shape (n_samples,) or (n_samples, ...)
        File paths (for a pipeline that starts with an ``ImageLoader``) or
        images (any layout ``estimator`` takes), sliced along the first axis.
    method : str or callable, default="predict_proba"
        The method to apply, e.g. ``"predict"``, ``"predict_proba"``,
        ``"decision_function"``, ``"score_samples"`` or ``"transform"``
        (embeddings), or a function ``method(estimator, X_chunk)`` (defined
        at module level, so that workers can import it). It must return one
        row per input row.
    client : distributed.Client, str or None, default=None
        None runs the chunks one after the other in this process. A
        ``distributed.Client``, or the address of a Dask scheduler (such as
        ``"tcp://10.0.0.5:8786"``, connected to and closed again here), runs
        them on that cluster. Needs ``pip install skcxr[dask]``.
    chunk_size : int, default=256
        Rows per chunk: the memory per task is what the estimator needs for
        that many inputs (256 images of 224 x 224 take 51 MB as float32).
    progress : bool, default=False
        Show a tqdm progress bar of the rows done on standard error, advanced
        as each chunk's result arrives.

    Returns
    -------
    out : ndarray or sparse matrix of shape (n_samples, ...)
        The chunk outputs concatenated along the first axis, aligned with ``X``.

    Raises
    ------
    ImportError
        If ``client`` is given and Dask's distributed scheduler is not
        installed.
    ValueError
        If ``estimator`` has no ``method``, or a chunk's output does not have
        one row per input.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from skcxr import ImageLoader
    >>> from skcxr.datasets import make_chest_xrays, write_chest_xrays
    >>> from skcxr.parallel import map_in_chunks
    >>> X, y = make_chest_xrays(30, size=32, random_state=0)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     paths = write_chest_xrays(root, X, y, fmt="png", random_state=0)
    ...     model = make_pipeline(
    ...         ImageLoader(size=16, layout="flat"), LogisticRegression(max_iter=500)
    ...     ).fit(paths, y)
    ...     proba = map_in_chunks(model, paths, chunk_size=8)
    ...     same = np.allclose(proba, model.predict_proba(paths), rtol=1e-5)
    >>> proba.shape, same
    ((30, 3), True)

    On a Dask cluster, by scheduler address or ``distributed.Client``:

    >>> proba = map_in_chunks(model, paths, client="tcp://10.0.0.5:8786")  # doctest: +SKIP
    """
    if isinstance(method, str) and not callable(getattr(estimator, method, None)):
        raise ValueError(
            f"method={method!r}: {type(estimator).__name__} has no method {method!r}."
        )
    check_is_fitted(estimator)
    X = _as_indexable(X)
    n = len(X)
    bounds = [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]
    from tqdm.auto import tqdm

    with tqdm(total=n, disable=not progress, unit="row", file=sys.stderr) as bar:
        if client is None:
            outputs = []
            for start, stop in bounds:
                outputs.append(_apply(estimator, X[start:stop], method))
                bar.update(stop - start)
        else:
            outputs = _map_on_cluster(
                client, estimator, X, bounds, method, done_rows=bar.update
            )
    return _concatenate(outputs)
