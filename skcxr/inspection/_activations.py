"""Feature maps of a named layer of a torch-backed classifier, for display."""

import torch
from sklearn.utils._param_validation import validate_params

from ._common import POSITIVE_INT, check_model_images, hooked_layer, layer_output

__all__ = ["intermediate_activations"]


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "layer": [None, str, torch.nn.Module],
        "batch_size": POSITIVE_INT,
        "device": [None, str, torch.device],
    },
    prefer_skip_nested_validation=True,
)
def intermediate_activations(estimator, X, layer, *, batch_size=32, device=None):
    """Output of ``layer`` for each image (e.g. the feature maps of a conv block).

    Parameters
    ----------
    estimator : fitted torch-backed classifier
        Exposes ``module_`` (the protocol is in :mod:`skcxr.inspection._common`).
    X : array-like
        Images per the data contract.
    layer : str, torch.nn.Module or None
        Dotted name inside ``module_`` (``"backbone.features.3"``), the
        submodule itself, or ``None`` for the default Grad-CAM layer.
    batch_size : int, default=32
    device : None or str, default=None
        ``None``: the module's device; otherwise a copy of the module on that
        device runs (the fitted module stays where it is).

    Returns
    -------
    activations : ndarray of shape (n_samples, C, h, w), dtype float32
        (or the layer's output shape for layers that do not return feature maps).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skcxr.inspection import intermediate_activations
    >>> class Tiny:
    ...     classes_ = np.array([0, 1])
    ...     module_ = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(),
    ...         torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...         torch.nn.Linear(4, 2))
    >>> X = np.zeros((2, 10, 10), dtype=np.float32)
    >>> intermediate_activations(Tiny(), X, "1").shape
    (2, 4, 8, 8)
    """
    images = check_model_images(estimator, X)
    batches = []
    with hooked_layer(estimator, layer, device) as (module, run_on, outputs):
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                outputs.clear()
                batch = torch.from_numpy(images[start : start + batch_size])
                module(batch.to(run_on)[:, None])
                batches.append(layer_output(outputs).detach().float().cpu())
    return torch.cat(batches).numpy()
