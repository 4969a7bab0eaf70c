"""CPU inference engines (ONNX Runtime, OpenVINO) for the fitted estimators.

What the estimators call: :func:`check_engine` validates ``engine``, ``device``
and ``precision``; :func:`engine_runner` gives an estimator its runner of a
network (exported once, :mod:`skcxr.nn._export`; run and shared by content,
:mod:`skcxr.nn._runners`); :func:`keep_calibration` keeps the training images
an 8-bit engine is calibrated on; :func:`set_engine` switches every step of a
pipeline. Training never goes through here: autograd stays in torch.
"""

import copy

import torch
from torch import nn

from ._engine_support import ENGINES, PRECISIONS, check_engine
from ._export import calibration_images, calibration_rows
from ._runners import EngineCache, run_batched, shared_runner
from ._streaming import load_images

__all__ = [
    "ENGINES",
    "PRECISIONS",
    "Probabilities",
    "check_engine",
    "engine_pooled_features",
    "engine_runner",
    "keep_calibration",
    "pooled_features_network",
    "run_batched",
    "set_engine",
]


def keep_calibration(estimator, images=None, files=None):
    """Set a fitting estimator's ``calibration_images_`` from its training data.

    :func:`~skcxr.nn._export.calibration_images` of ``images`` (or of the ``(reader, paths)``
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
    reader, paths = files
    rows = calibration_rows(len(paths), estimator.random_state)
    estimator.calibration_images_ = load_images(reader, [paths[i] for i in rows])[0]


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

    Stored in ``estimator.<attribute>`` (an :class:`~skcxr.nn._runners.EngineCache`), keyed on
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
    :func:`~skcxr.nn._runners.shared_runner` exports it once for both.

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
    ``runner`` returns the :class:`~skcxr.nn._runners.EngineRunner` of
    :func:`pooled_features_network`; it is called only when the features are
    computed, not when a joblib cache (which ignores it) already has them.
    ``key`` (the backbone and its weights) and ``engine_key`` (the engine,
    precision, calibration images and pooling) identify the features in that
    cache, as in :func:`~skcxr.nn._streaming.streamed_pooled_features`.
    """
    del engine_key  # the cache key only
    return run_batched(runner(), images, batch_size)


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
