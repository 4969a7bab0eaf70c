"""A fitted torch network as ONNX, in 32-bit floats or quantised to 8 bits.

A network in eval mode is exported once to ONNX (in memory, with the
TorchScript-based :func:`torch.onnx.export`, a dynamic batch axis and a fixed
image size) after two graph rewrites that the exporter needs: the folded
first convolution's normalisation offset becomes a constant, and the
antialiased resize of weights trained at one resolution becomes the two
matrix products it is. 8-bit integer models come from post-training static
quantisation on calibration images (ONNX Runtime's tool; Jacob et al. 2018).
"""

import copy
import io
import logging
import os
import tempfile
import threading
import warnings

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import nn
from torch.nn import functional as F

__all__ = [
    "N_CALIBRATION_IMAGES",
    "calibration_images",
    "calibration_rows",
    "export_onnx",
    "quantize_int8",
]

# images kept at fit to calibrate the 8-bit activation ranges (min/max)
N_CALIBRATION_IMAGES = 32


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
    >>> from skcxr.nn._export import calibration_images
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
        estimators do not run them: see
        :func:`~skcxr.nn._engine_support.check_engine`).

    Returns
    -------
    bytes

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skcxr.nn._export import export_onnx, quantize_int8
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
    >>> from skcxr.nn._export import export_onnx
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
