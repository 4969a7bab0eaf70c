"""CPU inference engines (ONNX Runtime, OpenVINO) for fitted torch networks.

A fitted network in eval mode is exported once to ONNX (in memory, with the
TorchScript-based :func:`torch.onnx.export`, a dynamic batch axis and a fixed
image size) and run by the chosen engine in 32-bit floats, or, on request, in
reduced precision: bfloat16 (OpenVINO, on CPUs with bf16 instructions) or 8-bit
integers after post-training static quantisation on calibration images (ONNX
Runtime's tool; Jacob et al. 2018). Training never goes through
here: autograd stays in torch.

The estimators keep their runners in an :class:`EngineCache` stored in an
attribute whose name starts with ``_engine``: the cache pickles and deep-copies
as an empty cache, so a runner is rebuilt on demand after unpickling, and every
entry remembers the network it was exported from, so a refit network (or a
changed ``engine``) never reuses a stale one. Behind those caches, runners are
shared by content (:func:`shared_runner`): estimators alive at the same time
whose networks have the same structure and weights, such as a frozen pretrained
backbone in several classifiers and in an embedder, export and compile it once.
"""

import copy
import functools
import hashlib
import io
import logging
import os
import tempfile
import threading
import warnings
import weakref

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import nn
from torch.nn import functional as F

from ..utils._parallel import available_cpus

__all__ = [
    "ENGINES",
    "N_CALIBRATION_IMAGES",
    "PRECISIONS",
    "EngineCache",
    "EngineRunner",
    "Probabilities",
    "calibration_images",
    "calibration_rows",
    "check_engine",
    "engine_pooled_features",
    "engine_runner",
    "export_onnx",
    "keep_calibration",
    "network_fingerprint",
    "pooled_features_network",
    "quantize_int8",
    "run_batched",
    "set_engine",
    "shared_runner",
]

ENGINES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
# images kept at fit to calibrate the 8-bit activation ranges (min/max)
N_CALIBRATION_IMAGES = 32

# engine -> (module imported, pip extra)
_PACKAGES = {
    "onnxruntime": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "openvino"),
}


def _import(engine):
    """Import the engine's package (and ``onnx``, which the export needs)."""
    package, extra = _PACKAGES[engine]
    hint = f"pip install skcxr[{extra}]"
    try:
        module = __import__(package)
    except ImportError as exc:
        raise ImportError(
            f"engine={engine!r} needs the {package!r} package, which is not "
            f"installed: {hint} (or use engine='torch')."
        ) from exc
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
    except ImportError as exc:
        raise ImportError(
            f"engine={engine!r} exports the network with torch.onnx.export, which "
            f"needs the 'onnx' package: {hint} (or use engine='torch')."
        ) from exc
    return module


def check_engine(engine, device, precision="fp32"):
    """Validate ``engine`` against ``device`` and ``precision``; import its package.

    Parameters
    ----------
    engine : {"torch", "onnxruntime", "openvino"}
    device : str or torch.device
        The estimator's ``device``. The engines run on the CPU: a CUDA or MPS
        device with an engine other than ``"torch"`` is refused (``"auto"``
        means the CPU when an engine is chosen).
    precision : {"fp32", "bf16", "int8"}, default="fp32"
        Reduced precision needs an engine: ``"bf16"`` OpenVINO on a CPU with
        bfloat16 instructions, ``"int8"`` ONNX Runtime.

    Raises
    ------
    ValueError
        An unknown engine or precision, an engine on a GPU device, or a
        precision the engine or the CPU cannot run.
    ImportError
        A package the engine or precision needs is missing (names the extra
        to install).

    Examples
    --------
    >>> from skcxr.nn._engines import check_engine
    >>> check_engine("torch", "cuda")
    >>> check_engine("torch", "cpu", precision="int8")
    Traceback (most recent call last):
    ...
    ValueError: precision='int8' is run by an inference engine: use it with \
engine='onnxruntime' or engine='openvino', or keep precision='fp32' with \
engine='torch'.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    if engine == "torch":
        if precision != "fp32":
            raise ValueError(
                f"precision={precision!r} is run by an inference engine: use it "
                "with engine='onnxruntime' or engine='openvino', or keep "
                "precision='fp32' with engine='torch'."
            )
        return
    device = str(device)
    if device not in ("auto", "cpu"):
        raise ValueError(
            f"engine={engine!r} runs on the CPU, but device={device!r}: use "
            f"engine='torch' for inference on {device!r}, or device='cpu' with "
            f"engine={engine!r}."
        )
    _import(engine)
    if precision == "int8" and engine == "openvino":
        # OpenVINO's CPU plugin ran INT8 graphs here, but the process then
        # crashed later (a segmentation fault at the next fork) in our tests
        raise ValueError(
            "precision='int8' runs on ONNX Runtime (engine='onnxruntime'); "
            "OpenVINO's INT8 execution is not supported by skcxr yet. Use "
            "engine='openvino' with precision='fp32'."
        )
    if precision == "bf16":
        if engine != "openvino":
            raise ValueError(
                "precision='bf16' is run by OpenVINO (engine='openvino'); ONNX "
                "Runtime has no bfloat16 convolutions on the CPU. Use "
                "precision='int8' or 'fp32' with engine='onnxruntime'."
            )
        capabilities = _openvino_cpu_capabilities()
        if "BF16" not in capabilities:
            raise ValueError(
                "precision='bf16' needs a CPU with bfloat16 instructions "
                "(AVX512-BF16 or AMX); this CPU offers "
                f"{', '.join(capabilities)}. Use precision='int8' or 'fp32'."
            )


@functools.lru_cache(maxsize=1)
def _openvino_cpu_capabilities():
    """OpenVINO's CPU capabilities, asked once (each estimator call checks them)."""
    import openvino

    return tuple(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def calibration_images(images, random_state, n=N_CALIBRATION_IMAGES):
    """Up to ``n`` images drawn at random, in their order, for INT8 calibration.

    Parameters
    ----------
    images : ndarray of shape (n_samples, H, W)
    random_state : int, RandomState instance or None
    n : int, default=N_CALIBRATION_IMAGES

    Returns
    -------
    ndarray of shape (min(n, n_samples), H, W), dtype float32
        A copy.

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.nn._engines import calibration_images
    >>> calibration_images(np.zeros((100, 8, 8)), random_state=0).shape
    (32, 8, 8)
    """
    rows = calibration_rows(len(images), random_state, n)
    return np.array(images[rows], dtype=np.float32)


def calibration_rows(n_samples, random_state, n=N_CALIBRATION_IMAGES):
    """Sorted row indices of :func:`calibration_images` (to read only those files)."""
    rng = check_random_state(random_state)
    if n_samples <= n:
        return np.arange(n_samples)
    return np.sort(rng.choice(n_samples, n, replace=False))


def keep_calibration(estimator, images=None, files=None):
    """Set a fitting estimator's ``calibration_images_`` from its training data.

    :func:`calibration_images` of ``images`` (or of the ``(reader, paths)``
    ``files``, reading only the files drawn) when ``estimator.precision`` is
    ``"int8"``, else None: the engine is calibrated on them whenever it is
    built, after unpickling too.
    """
    estimator.calibration_images_ = None
    if estimator.precision != "int8":
        return
    if files is None:
        estimator.calibration_images_ = calibration_images(
            images, estimator.random_state
        )
        return
    from ._streaming import load_images

    reader, paths = files
    rows = calibration_rows(len(paths), estimator.random_state)
    estimator.calibration_images_ = load_images(reader, [paths[i] for i in rows])[0]


def quantize_int8(onnx_bytes, calibration, engine):
    """The 8-bit version of an exported network, calibrated on ``calibration``.

    Post-training static quantisation (Jacob et al. 2018) with ONNX Runtime's
    :func:`~onnxruntime.quantization.quantize_static`: per-channel int8
    weights, uint8 activations whose ranges are the minimum and maximum seen on
    the calibration images. Weights use 7 bits (``reduce_range``): CPUs
    without VNNI instructions sum pairs of 8-bit products in 16 bits, which
    saturates at full range (a relative error of 0.29 on efficientnet_lite0
    embeddings, against 0.03 with 7 bits).

    Parameters
    ----------
    onnx_bytes : bytes
        From :func:`export_onnx`.
    calibration : ndarray of shape (n, *input_shape), dtype float32
        Inputs representative of the data (e.g. training images).
    engine : {"onnxruntime", "openvino"}
        ONNX Runtime gets fused ``QLinearConv`` operators (its
        QuantizeLinear / DequantizeLinear format ran efficientnet_lite0 no
        faster than 32-bit floats here); ``"openvino"`` gives the
        QuantizeLinear / DequantizeLinear pairs OpenVINO reads (the
        estimators do not run them: see :func:`check_engine`).

    Returns
    -------
    bytes

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skcxr.nn._engines import export_onnx, quantize_int8
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten()).eval()
    >>> calibration = np.random.default_rng(0).random((4, 1, 8, 8), np.float32)
    >>> int8 = quantize_int8(export_onnx(net, (1, 8, 8)), calibration, "onnxruntime")
    >>> b"QLinearConv" in int8
    True
    """
    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    if len(calibration) == 0:
        raise ValueError("INT8 quantisation needs at least one calibration image.")
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load_from_string(onnx_bytes)
    name = model.graph.input[0].name

    class Batches(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(
                [{name: calibration[i : i + 8]} for i in range(0, len(calibration), 8)]
            )

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="skcxr-int8-") as folder:
        path = os.path.join(folder, "int8.onnx")
        # the tool logs advice to run its shape pre-processing on the root
        # logger, which would change nothing here (the exported shapes are
        # static): this thread's root records are dropped while it runs, other
        # threads' pass
        quantizing = threading.get_ident()

        def advice(record):
            return record.thread != quantizing

        logging.getLogger().addFilter(advice)
        try:
            quantize_static(
                model,
                path,
                Batches(),
                quant_format=(
                    QuantFormat.QOperator
                    if engine == "onnxruntime"
                    else QuantFormat.QDQ
                ),
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        finally:
            logging.getLogger().removeFilter(advice)
        with open(path, "rb") as file:
            return file.read()


class _ConstantOffsetConv(nn.Module):
    """A :class:`~skcxr.nn._backbones.FoldedConv` for one input size.

    The folded normalisation adds an offset map that depends only on the input
    size; computed once, it is a constant of the exported graph instead of a
    convolution of an all-ones image at every run.
    """

    def __init__(self, resize, conv, offset):
        super().__init__()
        self.resize = resize
        self.conv = conv
        self.register_buffer("offset", offset)

    def forward(self, x):
        return self.conv(self.resize(x)) + self.offset


class _MatrixResize(nn.Module):
    """A :class:`~skcxr.nn._backbones.SquareResize` for one input size, as the
    two matrix products it is: antialiased bilinear resizing is linear and
    separable, ``out = rows @ x @ cols.T`` (ONNX has no antialiased Resize
    before opset 18, and torch's exporter none at all)."""

    def __init__(self, in_size, size):
        super().__init__()

        def matrix(n):  # column p: the resize of the unit impulse at p
            # two columns: torch's antialiased resize of a 1-pixel-wide image
            # is not the 1-D resize
            impulses = torch.eye(n).view(n, 1, n, 1).expand(n, 1, n, 2)
            out = F.interpolate(
                impulses,
                size=(size, 2),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            return out[..., 0].reshape(n, size).T.contiguous()

        self.register_buffer("rows", matrix(in_size[0]))
        self.register_buffer("cols", matrix(in_size[1]))

    def forward(self, x):
        return self.rows @ x @ self.cols.T


def _exportable(module, probe):
    """A copy of ``module`` (eval mode) that ``torch.onnx.export`` can trace."""
    from ._backbones import FoldedConv, SquareResize

    module = copy.deepcopy(module).cpu().eval()
    for param in module.parameters():
        param.requires_grad_(False)
    sizes = {}

    def record(mod, args):
        sizes.setdefault(mod, tuple(args[0].shape[-2:]))

    handles = [
        mod.register_forward_pre_hook(record)
        for mod in module.modules()
        if isinstance(mod, (FoldedConv, SquareResize))
    ]
    try:
        if handles:
            with torch.inference_mode():
                module(probe.clone())
    finally:
        for handle in handles:
            handle.remove()
    names = {mod: name for name, mod in module.named_modules(remove_duplicate=False)}
    with torch.no_grad():
        for mod, size in sizes.items():  # resizes first: a FoldedConv holds one
            if isinstance(mod, SquareResize):
                unchanged = mod.size is None or size == (mod.size, mod.size)
                exportable = (
                    nn.Identity() if unchanged else _MatrixResize(size, mod.size)
                )
                module.set_submodule(names[mod], exportable)
        for mod, size in sizes.items():
            if isinstance(mod, FoldedConv):
                resized = mod.resize(torch.empty(1, 1, *size)).shape[-2:]
                replacement = _ConstantOffsetConv(
                    mod.resize, mod.conv, mod.offset(resized)
                )
                module.set_submodule(names[mod], replacement)
    return module


def export_onnx(module, input_shape):
    """ONNX bytes of ``module`` for ``(batch, *input_shape)`` float32 inputs.

    The batch axis is dynamic; the other axes are those of ``input_shape``.

    Parameters
    ----------
    module : torch.nn.Module
        Mapping one float32 tensor to one tensor; copied, not changed.
    input_shape : tuple of int
        The shape of one input, e.g. ``(1, H, W)``.

    Returns
    -------
    bytes

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._engines import export_onnx
    >>> onnx_bytes = export_onnx(nn.Conv2d(1, 2, 3), (1, 8, 8))
    >>> len(onnx_bytes) > 0
    True
    """
    probe = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0))
    module = _exportable(module, probe)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # shapes are traced as constants: fine for a fixed image size
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (probe,),
            buffer,
            dynamo=False,
            input_names=["images"],
            output_names=["output"],
            dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}},
            opset_version=17,
        )
    return buffer.getvalue()


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
        ``calibration``). See :func:`check_engine`.
    calibration : ndarray of shape (n, *input_shape) or None, default=None
        Calibration inputs; required with ``precision="int8"``.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skcxr.nn._engines import EngineRunner
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
        package = _import(engine)
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
    >>> from skcxr.nn._engines import EngineCache
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
    >>> from skcxr.nn._engines import network_fingerprint
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
    >>> from skcxr.nn._engines import shared_runner
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


def _kept_calibration(estimator):
    """The calibration images a fitted estimator kept for INT8, or an error."""
    calibration = getattr(estimator, "calibration_images_", None)
    if calibration is None:
        raise ValueError(
            "precision='int8' calibrates the engine on training images kept at "
            f"fit, but this {type(estimator).__name__} was fitted with another "
            "precision: fit it again with precision='int8'."
        )
    return calibration


def engine_runner(
    estimator, module, input_shape, *, key=(), build=None, attribute="_engine_cache"
):
    """The estimator's runner of ``module`` for its ``engine``, built once.

    Stored in ``estimator.<attribute>`` (an :class:`EngineCache`), keyed on
    ``engine``, ``precision``, ``key`` and the identity of ``module``.
    ``build`` (a callable returning the network to export, default ``module``
    itself) wraps the network, e.g. in :class:`Probabilities`. INT8 calibrates
    on the estimator's ``calibration_images_``, kept at fit.
    """
    cache = getattr(estimator, attribute, None)
    if not isinstance(cache, EngineCache):
        cache = EngineCache()
        setattr(estimator, attribute, cache)
    engine, precision = estimator.engine, estimator.precision
    calibration = _kept_calibration(estimator) if precision == "int8" else None

    def make():
        network = module if build is None else build()
        return shared_runner(
            network,
            engine,
            input_shape=input_shape,
            precision=precision,
            calibration=calibration,
        )

    return cache.get((engine, precision, *key), module, make)


class Probabilities(nn.Module):
    """Softmax (or, ``multilabel``, sigmoid) of a classifier network's logits."""

    def __init__(self, network, *, multilabel=False):
        super().__init__()
        self.network = network
        self.multilabel = multilabel

    def forward(self, x):
        logits = self.network(x)
        if self.multilabel:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)


def pooled_features_network(backbone, pooling, input_shape):
    """The pooled-feature network of a frozen ``backbone``, ready to export.

    :class:`~skcxr.nn._features.PooledFeatures` of a copy of ``backbone``,
    prepared by :func:`~skcxr.nn._features.inference_network`: the very network
    :class:`~skcxr.CNNEmbedder` builds from the same backbone, so that
    :func:`shared_runner` exports it once for both.

    Parameters
    ----------
    backbone : torch.nn.Module
        Mapping ``(n, 1, H, W)`` images to feature maps; not changed.
    pooling : {"avg", "max", "avgmax"}
    input_shape : tuple of int
        The shape of one input, ``(1, H, W)``.

    Returns
    -------
    torch.nn.Module
    """
    from ._features import PooledFeatures, inference_network

    probe = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0))
    return inference_network(
        PooledFeatures(copy.deepcopy(backbone).cpu(), pooling), probe
    )


def engine_pooled_features(runner, key, images, *, engine_key, batch_size):
    """:func:`~skcxr.nn._transfer_net.pooled_features` run by an engine.

    The ``(n, C)`` features of a frozen backbone pooled by one pooling.
    ``runner`` returns the :class:`EngineRunner` of
    :func:`pooled_features_network`; it is called only when the features are
    computed, not when a joblib cache (which ignores it) already has them.
    ``key`` (the backbone and its weights) and ``engine_key`` (the engine,
    precision, calibration images and pooling) identify the features in that
    cache, as in :func:`~skcxr.nn._streaming.streamed_pooled_features`.
    """
    del engine_key  # the cache key only
    return run_batched(runner(), images, batch_size)


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


def set_engine(model, engine, precision=None):
    """Set ``engine`` on every estimator in ``model`` that has the parameter.

    ``model`` (an estimator or a :class:`~sklearn.pipeline.Pipeline`, nested
    estimators included) is changed in place; each engine's package is
    imported and its device and precision checked at once, so a missing
    package is reported here rather than at the first prediction.

    Parameters
    ----------
    model : estimator
    engine : {"torch", "onnxruntime", "openvino"}
    precision : {"fp32", "bf16", "int8"} or None, default=None
        Set as well when given (``"int8"`` needs estimators fitted with it,
        which keep calibration images); None keeps each estimator's own.

    Returns
    -------
    list of str
        The ``engine`` parameter names set (``"engine"``, ``"step__engine"``,
        ...); empty when no step runs a network.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skcxr import CNNEmbedder
    >>> from skcxr.nn._engines import set_engine
    >>> model = make_pipeline(StandardScaler(), CNNEmbedder())
    >>> set_engine(model, "torch")
    ['cnnembedder__engine']
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}.")
    params = model.get_params(deep=True)
    names = [n for n in params if n == "engine" or n.endswith("__engine")]
    updates = {}
    for name in names:
        prefix = name[: -len("engine")]
        owner = model if not prefix else params[prefix[:-2]]
        owner_precision = getattr(owner, "precision", "fp32")
        if precision is not None:
            owner_precision = precision
            updates[prefix + "precision"] = precision
        check_engine(engine, getattr(owner, "device", "cpu"), owner_precision)
        if owner_precision == "int8" and hasattr(owner, "n_features_in_"):
            _kept_calibration(owner)
        updates[name] = engine
    if updates:
        model.set_params(**updates)
    return names
