"""Grad-CAM for the torch-backed classifiers of skcxr.

Implementation choice
---------------------
Grad-CAM is written here with one forward hook and :func:`torch.autograd.grad`
rather than taken from captum (``LayerGradCam``) or the ``pytorch-grad-cam``
package, because:

* it is about 60 lines, and adds no dependency to a library that already
  pulls in torch, torchvision and skorch;
* the hook lives only inside a ``try``/``finally`` block, so it is removed
  also when the forward pass raises (leaked hooks and the memory they pin are
  the most common complaint against the popular Grad-CAM package), and the
  module's train/eval mode and device are restored too;
* no backward hook is needed: the gradient with respect to the hooked
  activation comes from ``torch.autograd.grad``, which works with in-place
  activations and with frozen backbones (the input requires grad instead);
* upsampling to the input size, per-image normalisation and batching follow
  the image data contract of skcxr directly.

The torch protocol
------------------
:func:`grad_cam` works for any fitted estimator that exposes ``module_`` (a
:class:`torch.nn.Module` from images ``(n, 1, H, W)`` in [0, 1] to logits
``(n, n_classes)``) and ``classes_``; the default layer is the backbone's
``gradcam_layer`` or the last :class:`torch.nn.Conv2d`. The protocol is
spelled out in :mod:`skcxr.inspection._common`. A fitted
:class:`~skcxr.TransferClassifier` follows it.

Reference: Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization", ICCV.
"""

import torch
from sklearn.utils._param_validation import validate_params

from ._common import POSITIVE_INT, class_activation_maps

__all__ = ["grad_cam"]


def _mean_gradient_weights(acts, grads):
    """Channel weights of Grad-CAM: the spatial mean of the gradients."""
    return grads.mean(dim=(2, 3), keepdim=True)


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "target": "no_validation",
        "layer": [None, str, torch.nn.Module],
        "batch_size": POSITIVE_INT,
        "device": [None, str, torch.device],
    },
    prefer_skip_nested_validation=True,
)
def grad_cam(estimator, X, *, target=None, layer=None, batch_size=32, device=None):
    """Grad-CAM heatmaps of a fitted torch-backed classifier.

    The activations ``A`` of ``layer`` are weighted by the spatial mean of the
    gradient of the target class score (logit) with respect to them; the
    weighted sum over channels goes through a ReLU, is upsampled (bilinear) to
    the input size and divided by its maximum per image.

    Parameters
    ----------
    estimator : fitted classifier
        Exposes ``module_`` and ``classes_`` (see the module docstring), e.g. a
        fitted :class:`~skcxr.TransferClassifier`.
    X : array-like
        Images per the data contract: ``(n, H, W)``, ``(n, 1, H, W)`` or flat.
    target : None, class label or array-like of shape (n_samples,), default=None
        The class to explain: ``None`` explains the predicted class of each
        image; a label (an element of ``classes_``, not a column index)
        explains that class for every image.
    layer : None, str or torch.nn.Module, default=None
        The layer whose activations are used. ``None``: the backbone's
        ``gradcam_layer`` (its last convolutional block); a str: a dotted
        name inside ``module_`` such as ``"backbone.features.6"``.
    batch_size : int, default=32
        Images per forward/backward pass.
    device : None or str, default=None
        ``None`` uses the module's current device; with ``"auto"``, ``"cpu"``
        or ``"cuda"`` a copy of the module on that device runs (the fitted
        module stays where it is, so other threads can go on using it).

    Returns
    -------
    heatmaps : ndarray of shape (n_samples, H, W), dtype float32
        Values in [0, 1]; an all-zero map where no location raised the score.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skcxr.inspection import grad_cam
    >>> class Tiny:  # anything with module_ and classes_ follows the protocol
    ...     classes_ = np.array(["normal", "pneumonia"])
    ...     module_ = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1),
    ...         torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...         torch.nn.Linear(4, 2))
    >>> X = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    >>> heatmaps = grad_cam(Tiny(), X, target="pneumonia")
    >>> heatmaps.shape, bool(heatmaps.min() >= 0), bool(heatmaps.max() <= 1)
    ((3, 16, 16), True, True)
    """
    return class_activation_maps(
        estimator,
        X,
        _mean_gradient_weights,
        target=target,
        layer=layer,
        batch_size=batch_size,
        device=device,
    )
