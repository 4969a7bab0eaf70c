"""Runners of exported networks on ONNX Runtime or OpenVINO, shared by content.

An :class:`EngineRunner` holds one compiled network and is safe to call from
several threads. The estimators keep their runners in an :class:`EngineCache`
stored in an attribute whose name starts with ``_engine``: the cache pickles
and deep-copies as an empty cache, so a runner is rebuilt on demand after
unpickling, and every entry remembers the network it was exported from, so a
refit network (or a changed ``engine``) never reuses a stale one. Behind those
caches, runners are shared by content (:func:`shared_runner`): estimators alive
at the same time whose networks have the same structure and weights, such as a
frozen pretrained backbone in several classifiers and in an embedder, export
and compile it once.
"""

import hashlib
import threading
import weakref

import numpy as np
import torch

from ..utils._parallel import available_cpus
from ._engine_support import _PACKAGES, check_engine, import_engine
from ._export import export_onnx, quantize_int8

__all__ = [
    "EngineCache",
    "EngineRunner",
    "network_fingerprint",
    "run_batched",
    "shared_runner",
]


class EngineRunner:
    """Run a torch network with ONNX Runtime or OpenVINO on the CPU.

    The network is exported once, when the runner is built.

    Parameters
    ----------
    module : torch.nn.Module
        A network in eval mode mapping ``(n, *input_shape)`` float32 tensors
        to one output tensor ``(n, ...)``; it is copied, not changed.
    engine : {"onnxruntime", "openvino"}
    input_shape : tuple of int
        The shape of one input, e.g. ``(1, H, W)``: the exported graph takes
        only this size (any batch size).
    n_threads : int or None, default=None
        Threads of one inference; ``None``: the CPUs of the process's
        affinity mask.
    precision : {"fp32", "bf16", "int8"}, default="fp32"
        Arithmetic of the engine: 32-bit floats (OpenVINO is told so with
        ``INFERENCE_PRECISION_HINT="f32"``; it would otherwise pick bf16 on
        CPUs that support it); bfloat16 (OpenVINO on CPUs with bf16
        instructions); or 8-bit integers (:func:`quantize_int8`, calibrated on
        ``calibration``). See
        :func:`~skcxr.nn._engine_support.check_engine`.
    calibration : ndarray of shape (n, *input_shape) or None, default=None
        Calibration inputs; required with ``precision="int8"``.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skcxr.nn._runners import EngineRunner
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten())
    >>> runner = EngineRunner(net.eval(), "onnxruntime", input_shape=(1, 8, 8))
    >>> runner(np.zeros((3, 1, 8, 8), np.float32)).shape  # doctest: +SKIP
    (3, 144)
    """

    def __init__(
        self,
        module,
        engine,
        *,
        input_shape,
        n_threads=None,
        precision="fp32",
        calibration=None,
    ):
        if engine not in _PACKAGES:
            raise ValueError(
                f"engine must be 'onnxruntime' or 'openvino'; got {engine!r}."
            )
        check_engine(engine, "cpu", precision)
        if precision == "int8" and calibration is None:
            raise ValueError("precision='int8' needs calibration images.")
        package = import_engine(engine)
        self.engine = engine
        self.precision = precision
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_threads = available_cpus() if n_threads is None else int(n_threads)
        model = export_onnx(module, self.input_shape)
        if precision == "int8":
            calibration = np.asarray(calibration, dtype=np.float32)
            calibration = calibration.reshape(-1, *self.input_shape)
            model = quantize_int8(model, calibration, engine)
        if engine == "onnxruntime":
            options = package.SessionOptions()
            options.intra_op_num_threads = self.n_threads
            options.log_severity_level = 3  # errors only, not graph clean-up notes
            options.inter_op_num_threads = 1
            options.execution_mode = package.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = (
                package.GraphOptimizationLevel.ORT_ENABLE_ALL
            )
            self._session = package.InferenceSession(
                model, options, providers=["CPUExecutionProvider"]
            )
        else:
            core = package.Core()
            if isinstance(model, bytes):
                model = core.read_model(model)
            self._compiled = core.compile_model(
                model,
                "CPU",
                {
                    # int8 layers are set by the quantised graph, the rest f32
                    "INFERENCE_PRECISION_HINT": (
                        "bf16" if precision == "bf16" else "f32"
                    ),
                    "INFERENCE_NUM_THREADS": self.n_threads,
                    "PERFORMANCE_HINT": "LATENCY",
                },
            )
            self._requests = []  # idle infer requests, one per concurrent caller
            self._lock = threading.Lock()

    def __call__(self, batch):
        """The network's output on ``batch``, a ``(n, *input_shape)`` array.

        Returns
        -------
        ndarray of dtype float32
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape[1:] != self.input_shape:
            raise ValueError(
                f"The {self.engine} engine was built for inputs of shape "
                f"{self.input_shape}; got {batch.shape[1:]}."
            )
        if self.engine == "onnxruntime":
            return self._session.run(None, {"images": batch})[0]
        with self._lock:
            request = (
                self._requests.pop()
                if self._requests
                else self._compiled.create_infer_request()
            )
        try:
            out = request.infer({0: batch})[0]
            out = np.array(out, dtype=np.float32, copy=True)
        finally:
            with self._lock:
                self._requests.append(request)
        return out

    def __reduce__(self):
        raise TypeError(
            "An EngineRunner holds a compiled engine and cannot be pickled; the "
            "estimators rebuild theirs after unpickling."
        )


class EngineCache:
    """Runners of an estimator, rebuilt on demand; pickles as an empty cache.

    ``get(key, source, build)`` returns the runner stored under ``key`` if it
    was built from the very object ``source`` (the fitted network), else
    ``build()``'s, which it stores. The cache keeps ``source`` alive, so a
    refit network (a new object) is never mistaken for the old one.

    Examples
    --------
    >>> import pickle
    >>> from skcxr.nn._runners import EngineCache
    >>> cache = EngineCache()
    >>> net = object()
    >>> cache.get("k", net, lambda: 1), cache.get("k", net, lambda: 2)
    (1, 1)
    >>> pickle.loads(pickle.dumps(cache)).get("k", net, lambda: 3)
    3
    """

    def __init__(self):
        self._entries = {}
        self._lock = threading.Lock()

    def get(self, key, source, build):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] is not source:
                entry = (source, build())
                self._entries[key] = entry
            return entry[1]

    def clear(self):
        with self._lock:
            self._entries.clear()

    def __len__(self):
        return len(self._entries)

    def __reduce__(self):
        return (EngineCache, ())

    def __deepcopy__(self, memo):
        return EngineCache()


def network_fingerprint(module):
    """A digest of a network's structure and weights.

    Two networks with the same digest compute the same function: it covers
    every submodule's name, class and plain settings (numbers, strings,
    tuples, tensors kept as attributes, such as ``pooling`` or ``inplace``)
    and every parameter and buffer (name, dtype, shape and bytes; the memory
    format does not count). Hashing efficientnet_lite0's 3.4 million weights
    takes about 25 ms on one CPU core.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    str

    Examples
    --------
    >>> import copy
    >>> from torch import nn
    >>> from skcxr.nn._runners import network_fingerprint
    >>> net = nn.Conv2d(1, 2, 3)
    >>> network_fingerprint(net) == network_fingerprint(copy.deepcopy(net))
    True
    >>> network_fingerprint(net) == network_fingerprint(nn.Conv2d(1, 2, 3))
    False
    """
    digest = hashlib.blake2b(digest_size=20)

    def add_tensor(name, tensor):
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(repr((name, str(tensor.dtype), tuple(tensor.shape))).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())

    plain = (bool, int, float, str, tuple, type(None))
    for name, mod in module.named_modules(remove_duplicate=False):
        settings = []
        for attr, value in sorted(vars(mod).items()):
            if attr.startswith("_") or attr == "training":
                continue
            if isinstance(value, torch.Tensor):
                add_tensor(f"{name}.{attr}", value)
            elif isinstance(value, plain):
                settings.append((attr, value))
        kind = f"{type(mod).__module__}.{type(mod).__qualname__}"
        digest.update(repr((name, kind, settings)).encode())
    for name, tensor in module.state_dict().items():
        add_tensor(name, tensor)
    return digest.hexdigest()


class _SharedRunners:
    """Runners keyed on their content, kept while an estimator holds them.

    Only weak references are kept: a runner lives exactly as long as the
    estimators using it (their :class:`EngineCache`), as if it were not shared.
    """

    def __init__(self):
        self._runners = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def get(self, key, build):
        with self._lock:  # one build at a time: concurrent callers share it
            runner = self._runners.get(key)
            if runner is None:
                runner = build()
                self._runners[key] = runner
            return runner

    def __len__(self):
        return len(self._runners)


_SHARED_RUNNERS = _SharedRunners()


def shared_runner(module, engine, *, input_shape, precision="fp32", calibration=None):
    """An :class:`EngineRunner` of ``module``, shared by identical networks.

    Runners are keyed on the engine, the precision, the input shape, the
    thread count, the calibration images and :func:`network_fingerprint` of
    ``module``. A runner is found here while some estimator still holds it
    (in its :class:`EngineCache`), so estimators alive at the same time share
    one compiled network; nothing is kept beyond them. A runner is safe to
    call from several threads.

    Parameters
    ----------
    module : torch.nn.Module
        The network to run, in eval mode; copied when exported, not changed.
    engine : {"onnxruntime", "openvino"}
    input_shape : tuple of int
    precision : {"fp32", "bf16", "int8"}, default="fp32"
    calibration : ndarray or None, default=None
        Calibration inputs of ``precision="int8"``.

    Returns
    -------
    EngineRunner

    Examples
    --------
    >>> import copy
    >>> from torch import nn
    >>> from skcxr.nn._runners import shared_runner
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()).eval()
    >>> held = shared_runner(net, "onnxruntime", input_shape=(1, 8, 8))  # doctest: +SKIP
    >>> held is shared_runner(  # doctest: +SKIP
    ...     copy.deepcopy(net), "onnxruntime", input_shape=(1, 8, 8)
    ... )
    True
    """
    input_shape = tuple(int(s) for s in input_shape)
    calibration_digest = None
    if calibration is not None:
        calibration = np.ascontiguousarray(calibration, dtype=np.float32)
        calibration_digest = hashlib.blake2b(calibration, digest_size=20).hexdigest()
    key = (
        engine,
        precision,
        input_shape,
        available_cpus(),
        calibration_digest,
        network_fingerprint(module),
    )
    return _SHARED_RUNNERS.get(
        key,
        lambda: EngineRunner(
            module,
            engine,
            input_shape=input_shape,
            precision=precision,
            calibration=calibration,
        ),
    )


def run_batched(runner, images, batch_size, progress=None):
    """``runner`` over ``(n, H, W)`` images in batches -> ``(n, ...)`` float32.

    ``progress``: a description for a progress bar over batches, or None.
    """
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=progress, unit="batch")
    out = None
    for start in starts:
        batch = images[start : start + batch_size][:, None]
        result = runner(batch)
        if out is None:
            out = np.empty((len(images), *result.shape[1:]), np.float32)
        out[start : start + len(batch)] = result
    if out is None:
        raise ValueError("No images to run.")
    return out
