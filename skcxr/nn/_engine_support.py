"""Which CPU inference engines can run, and on which device and precision.

The engines (ONNX Runtime, OpenVINO) are optional extras: their packages are
imported only when an estimator asks for them, with an error naming the extra
to install when one is missing.
"""

import functools

__all__ = ["ENGINES", "PRECISIONS", "check_engine", "import_engine"]

ENGINES = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")

# engine -> (module imported, pip extra)
_PACKAGES = {
    "onnxruntime": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "openvino"),
}


def import_engine(engine):
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
    >>> from skcxr.nn._engine_support import check_engine
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
    import_engine(engine)
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
