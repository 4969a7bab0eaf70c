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
:func:`grad_cam` and :func:`~skcxr.inspection.intermediate_activations` work
for any fitted estimator that exposes

* ``module_``: a :class:`torch.nn.Module` mapping a float tensor
  ``(n, 1, H, W)`` with values in [0, 1] to class scores (logits)
  ``(n, n_classes)``, columns ordered as ``classes_`` (a skorch-style
  ``net_.module_`` is used when ``module_`` is missing);
* ``classes_``: the class labels;
* optionally ``module_.backbone.gradcam_layer``: the dotted name (inside
  ``module_.backbone``) of the default Grad-CAM layer, as set by
  :func:`skcxr.nn._backbones.build_backbone`. Without it the last
  :class:`torch.nn.Conv2d` of ``module_`` is used.

A fitted :class:`~skcxr.TransferClassifier` follows it.
"""

import contextlib
import difflib

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..nn._torch_utils import resolve_device
from ..utils._validation import check_images, validate_images

__all__ = ["grad_cam"]


def torch_module(estimator):
    """The fitted :class:`torch.nn.Module` behind ``estimator`` (the protocol above)."""
    module = getattr(estimator, "module_", None)
    if module is None:
        module = getattr(getattr(estimator, "net_", None), "module_", None)
    if not isinstance(module, torch.nn.Module):
        if isinstance(estimator, BaseEstimator):
            check_is_fitted(estimator)  # NotFittedError for an unfitted estimator
        raise TypeError(
            f"{type(estimator).__name__} does not expose a fitted torch module as "
            "`module_` (or `net_.module_`); Grad-CAM and activations need a "
            "torch-backed classifier such as a fitted TransferClassifier. "
            "occlusion_sensitivity works with any estimator with predict_proba."
        )
    return module


def resolve_layer(module, layer):
    """Return ``(name, submodule)`` for ``layer`` (None, a dotted name or a module)."""
    names = dict(module.named_modules())
    if layer is None:
        backbone = getattr(module, "backbone", None)
        default = getattr(backbone, "gradcam_layer", None)
        if default is not None:
            name = f"backbone.{default}" if default else "backbone"
            return name, module.get_submodule(name)
        convs = [n for n, m in names.items() if isinstance(m, torch.nn.Conv2d)]
        if not convs:
            raise ValueError(
                "layer=None: the module has no `backbone.gradcam_layer` and no "
                "Conv2d layer; pass layer= the dotted name of a layer."
            )
        return convs[-1], names[convs[-1]]
    if isinstance(layer, torch.nn.Module):
        for name, sub in names.items():
            if sub is layer:
                return name, sub
        raise ValueError(
            "layer: the given module is not part of the estimator's module_."
        )
    if isinstance(layer, str) and layer in names and layer != "":
        return layer, names[layer]
    close = difflib.get_close_matches(str(layer), [n for n in names if n], n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"layer={layer!r} is not a submodule name of module_.{hint}")


def target_indices(classes, target, n, predicted):
    """Column index of the target class per image (``predicted`` when None)."""
    classes = np.asarray(classes)
    if target is None:
        return np.asarray(predicted, dtype=np.intp)
    targets = np.asarray(target, dtype=object)
    if targets.ndim == 0:
        targets = np.repeat(targets[None], n)
    if targets.shape != (n,):
        raise ValueError(
            f"target must be None, one class label or an array of {n} labels; got "
            f"shape {targets.shape}."
        )
    index = {c: i for i, c in enumerate(classes.tolist())}
    try:
        return np.array([index[t] for t in targets.tolist()], dtype=np.intp)
    except KeyError as exc:
        raise ValueError(
            f"target {exc.args[0]!r} is not a class label; classes_ are "
            f"{classes.tolist()}."
        ) from None


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}.")
    return int(value)


def check_model_images(estimator, X):
    """Images per the contract; the fitted size is checked when there is one."""
    if hasattr(estimator, "image_shape_") and isinstance(estimator, BaseEstimator):
        return validate_images(estimator, X, reset=False)[0]
    return check_images(X)[0]


def _first_tensor(output):
    if isinstance(output, (tuple, list)):
        output = output[0]
    return output


@contextlib.contextmanager
def hooked_layer(estimator, layer, device, keep=lambda output: output):
    """Run the estimator's module with a forward hook on ``layer``.

    Yields ``(module, run_on, captured)``: the module in eval mode on ``run_on``
    and the list the hook appends ``keep(output)`` to. On exit, also on error,
    the hook is removed and the module's device and train/eval mode restored.
    """
    module = torch_module(estimator)
    _, submodule = resolve_layer(module, layer)
    first = next(module.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    run_on = home if device is None else torch.device(resolve_device(device))
    was_training = module.training
    captured = []
    handle = submodule.register_forward_hook(
        lambda mod, args, output: captured.append(keep(_first_tensor(output)))
    )
    try:
        module.to(run_on).eval()
        yield module, run_on, captured
    finally:
        handle.remove()
        captured.clear()
        module.to(home).train(was_training)


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
        ``None`` uses the module's current device; ``"auto"``, ``"cpu"``,
        ``"cuda"`` move the module there for the call and back afterwards.

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
    images = check_model_images(estimator, X)
    batch_size = check_positive_int(batch_size, "batch_size")
    n, height, width = images.shape
    out = np.empty((n, height, width), dtype=np.float32)
    with hooked_layer(estimator, layer, device) as (module, run_on, captured):
        target_indices(estimator.classes_, target, n, np.zeros(n))  # validate early
        with torch.enable_grad():
            for start in range(0, n, batch_size):
                batch = torch.from_numpy(images[start : start + batch_size]).to(run_on)
                batch = batch[:, None].requires_grad_(True)
                captured.clear()
                logits = module(batch)
                if not captured:
                    raise ValueError(
                        "layer: the chosen layer was not used in the forward pass."
                    )
                acts = captured[-1]
                if acts.ndim != 4:
                    raise ValueError(
                        f"layer: Grad-CAM needs a (n, C, h, w) feature map; the layer "
                        f"returned shape {tuple(acts.shape)}."
                    )
                predicted = logits.argmax(1).cpu().numpy()
                idx = target_indices(
                    estimator.classes_,
                    _batch(target, start, batch_size),
                    len(batch),
                    predicted,
                )
                score = logits.gather(
                    1, torch.from_numpy(idx).to(run_on)[:, None]
                ).sum()
                (grads,) = torch.autograd.grad(score, acts)
                weights = grads.mean(dim=(2, 3), keepdim=True)
                cam = F.relu((weights * acts).sum(1, keepdim=True)).detach()
                cam = F.interpolate(
                    cam, size=(height, width), mode="bilinear", align_corners=False
                )
                cam = cam[:, 0].clamp_min(0)
                peak = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
                out[start : start + len(batch)] = (cam / peak).cpu().numpy()

    return out


def _batch(target, start, batch_size):
    """Slice an array-like target along with the batch; a scalar stays as is."""
    if target is None or np.ndim(target) == 0:
        return target
    return np.asarray(target, dtype=object)[start : start + batch_size]
