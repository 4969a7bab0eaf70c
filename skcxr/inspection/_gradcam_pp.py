"""Grad-CAM++ for the torch-backed classifiers of skcxr.

Implementation choice
---------------------
Written here (about 20 lines on top of the hook helpers that
:func:`~skcxr.inspection.grad_cam` uses) rather than taken from the
``grad-cam`` package (``pytorch_grad_cam.GradCAMPlusPlus``, version 1.5.7),
after measuring that package on a tiny two-layer conv net:

* it imports OpenCV at module level, so it needs ``opencv-python`` (153 MB
  installed, for a bilinear resize torch already does);
* its hooks are removed only by ``__exit__``, ``__del__`` or
  ``activations_and_grads.release()``:
  after a forward pass that raises, an explainer created without ``with``
  leaves both of its forward hooks on the layer (2 hooks measured) until it
  is garbage collected; here the hook lives in a ``try``/``finally`` block;
* its maps match the formula below to 2e-7 once its two conventions are
  applied (1e-6 added to the denominator of the alphas, and maps scaled by
  min-max instead of divided by their maximum); without them the largest
  difference is 0.06 (0.006 after min-max scaling alone). Nothing is gained
  in accuracy; dividing by the maximum keeps a map's zero meaning "no
  evidence", as in :func:`~skcxr.inspection.grad_cam`.

captum (0.9.0) has no Grad-CAM++.

The torch protocol is the one of :func:`~skcxr.inspection.grad_cam`, spelled
out in :mod:`skcxr.inspection._common`.

Reference: Chattopadhay et al. 2018, "Grad-CAM++: Generalized Gradient-Based
Visual Explanations for Deep Convolutional Networks", WACV.
"""

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import validate_params

from ._common import POSITIVE_INT, class_activation_maps

__all__ = ["grad_cam_plus_plus"]


def _plus_plus_weights(acts, grads):
    """Channel weights of Grad-CAM++ (equation 19 of Chattopadhay et al. 2018,
    with the class score passed through exp so that the higher derivatives are
    powers of the first)."""
    g2 = grads.pow(2)
    g3 = g2 * grads
    total = acts.sum(dim=(2, 3), keepdim=True)
    denom = 2 * g2 + total * g3
    alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    return (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)


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
def grad_cam_plus_plus(
    estimator, X, *, target=None, layer=None, batch_size=32, device=None
):
    """Grad-CAM++ heatmaps of a fitted torch-backed classifier.

    Like :func:`~skcxr.inspection.grad_cam`, but each channel's weight is a
    weighted sum of the positive gradients, with per-location weights
    ``alpha = g**2 / (2 g**2 + sum(A) g**3)`` (``g`` the gradient of the target
    logit with respect to the activations ``A``), so that several separate
    regions of evidence (e.g. lesions in both lungs) all show up rather than
    only the largest (Chattopadhay et al. 2018).

    Parameters
    ----------
    estimator : fitted classifier
        Exposes ``module_`` and ``classes_``, e.g. a fitted
        :class:`~skcxr.TransferClassifier`.
    X : array-like
        Images per the data contract: ``(n, H, W)``, ``(n, 1, H, W)`` or flat.
    target : None, class label or array-like of shape (n_samples,), default=None
        ``None`` explains the predicted class of each image; a label (an
        element of ``classes_``) explains that class for every image.
    layer : None, str or torch.nn.Module, default=None
        The layer whose activations are used; ``None``: the backbone's
        ``gradcam_layer`` (its last convolutional block).
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

    See Also
    --------
    grad_cam : the plain gradient-mean weighting.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skcxr.inspection import grad_cam_plus_plus
    >>> class Tiny:  # anything with module_ and classes_ follows the protocol
    ...     classes_ = np.array(["normal", "pneumonia"])
    ...     module_ = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1),
    ...         torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(),
    ...         torch.nn.Linear(4, 2))
    >>> X = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    >>> heatmaps = grad_cam_plus_plus(Tiny(), X, target="pneumonia")
    >>> heatmaps.shape, bool(heatmaps.min() >= 0), bool(heatmaps.max() <= 1)
    ((3, 16, 16), True, True)
    """
    return class_activation_maps(
        estimator,
        X,
        _plus_plus_weights,
        target=target,
        layer=layer,
        batch_size=batch_size,
        device=device,
    )
