"""Helpers shared by the inspection modules.

The feature modules (Grad-CAM, Grad-CAM++, saliency, activations, occlusion,
region attribution, scores, the method comparison, displays) import their
shared pieces from here only, never from one another's modules (the method
comparison calls the others through the package's public names). torch is imported inside the functions that need it, so the
model-agnostic explanations (occlusion, regions, scores) load without it.

The torch protocol
------------------
:func:`~skcxr.inspection.grad_cam`,
:func:`~skcxr.inspection.grad_cam_plus_plus`, :func:`~skcxr.inspection.saliency`
and :func:`~skcxr.inspection.intermediate_activations` work for any fitted
estimator that exposes

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
from numbers import Real

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..utils._param_validation import IntInterval
from ..utils._validation import check_images, restore_layout, validate_images

# parameter constraints shared by the public functions (validate_params)
POSITIVE_INT = [IntInterval(1, None, closed="left")]
BASELINE = [Interval(Real, 0, 1, closed="both"), StrOptions({"mean", "blur"})]

# --------------------------------------------------------------------------
# images and targets


def check_model_images(estimator, X):
    """Images per the contract; the fitted size is checked when there is one."""
    if hasattr(estimator, "image_shape_") and isinstance(estimator, BaseEstimator):
        return validate_images(estimator, X, reset=False)[0]
    return check_images(X)[0]


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


def batch_slice(target, start, batch_size):
    """Slice an array-like target along with the batch; a scalar stays as is."""
    if target is None or np.ndim(target) == 0:
        return target
    return np.asarray(target, dtype=object)[start : start + batch_size]


def check_maps(heatmaps, name, n=None, shape=None):
    """``(n, H, W)`` maps (a ``(n, 1, H, W)`` stack is squeezed), finite, and
    of ``n`` images of ``shape`` when given."""
    maps = np.asarray(heatmaps)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.ndim != 3:
        raise ValueError(f"{name} must have shape (n_samples, H, W); got {maps.shape}.")
    if n is not None and (len(maps), maps.shape[1:]) != (n, tuple(shape)):
        raise ValueError(
            f"{name} has shape {maps.shape}; expected "
            f"({n}, {shape[0]}, {shape[1]}) to match."
        )
    if maps.dtype != bool and not np.isfinite(maps).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return maps


# --------------------------------------------------------------------------
# perturbation: baselines and predict_proba in batches


def baseline_values(images, baseline):
    """Fill images ``(n, H, W)`` for a float, ``"mean"`` or ``"blur"`` baseline.

    ``"mean"``: each image's mean intensity; ``"blur"``: the image blurred by a
    Gaussian of sigma = 1/8 of its side (removes detail but stays an X-ray).
    """
    message = f"baseline must be a float in [0, 1], 'mean' or 'blur'; got {baseline!r}."
    if isinstance(baseline, str):
        if baseline == "mean":
            values = images.mean(axis=(1, 2), keepdims=True, dtype=np.float32)
            return np.broadcast_to(values, images.shape)
        if baseline == "blur":
            sigma = max(images.shape[1:]) / 8
            return ndimage.gaussian_filter(
                images, sigma=(0, sigma, sigma), mode="nearest"
            )
        raise ValueError(message)
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, np.number)):
        raise ValueError(message)
    if not 0.0 <= float(baseline) <= 1.0:
        raise ValueError(message)
    return np.broadcast_to(np.float32(baseline), images.shape)


def predict_proba_images(estimator, images, layout, batch_size):
    """``estimator.predict_proba`` over ``(n, H, W)`` images in batches, each
    batch sent in ``layout`` (the layout the caller's ``X`` came in)."""
    if not hasattr(estimator, "predict_proba"):
        raise TypeError(
            f"estimator: {type(estimator).__name__} has no predict_proba; the "
            "perturbation explanations need class probabilities."
        )
    parts = [
        np.asarray(
            estimator.predict_proba(restore_layout(images[i : i + batch_size], layout))
        )
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts)


def reference_proba(estimator, images, layout, target, batch_size):
    """Target column per image (predicted class when ``target`` is None) and its
    probability on the unmodified images."""
    proba = predict_proba_images(estimator, images, layout, batch_size)
    classes = getattr(estimator, "classes_", np.arange(proba.shape[1]))
    idx = target_indices(classes, target, len(images), proba.argmax(1))
    return idx, proba[np.arange(len(images)), idx]


# --------------------------------------------------------------------------
# torch-backed classifiers (the protocol in the module docstring)


def torch_module(estimator):
    """The fitted :class:`torch.nn.Module` behind ``estimator``."""
    import torch

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
    import torch

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


def _first_tensor(output):
    if isinstance(output, (tuple, list)):
        output = output[0]
    return output


def inference_module(estimator, device):
    """``(module, run_on)``: the estimator's module in eval mode on ``run_on``.

    The fitted module itself when it is in eval mode on ``run_on`` already
    (a fitted estimator's is); otherwise an eval-mode copy on ``run_on``.
    Explaining never moves or switches the fitted module, which other
    threads may be running at the same time.
    """
    import copy

    import torch

    from ..nn._torch_utils import resolve_device

    module = torch_module(estimator)
    first = next(module.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    run_on = home if device is None else torch.device(resolve_device(device))
    if run_on == home and not module.training:
        return module, run_on
    return copy.deepcopy(module).to(run_on).eval(), run_on


@contextlib.contextmanager
def hooked_layer(estimator, layer, device):
    """Yield ``(module, run_on, outputs)``: the module of
    :func:`inference_module` and a dict whose ``"layer"`` entry every forward
    pass run in this thread sets to the output of ``layer``
    (:func:`skcxr.nn._capture.capturing`; other threads are not recorded)."""
    from ..nn._capture import capturing

    name, _ = resolve_layer(torch_module(estimator), layer)
    module, run_on = inference_module(estimator, device)
    with capturing({"layer": module.get_submodule(name)}) as outputs:
        yield module, run_on, outputs


def layer_output(outputs):
    """The captured output of the hooked layer (the first tensor of a tuple)."""
    if "layer" not in outputs:
        raise ValueError("layer: the chosen layer was not used in the forward pass.")
    return _first_tensor(outputs["layer"])


def target_score(estimator, logits, target, start, batch_size):
    """Sum over the batch of each image's target logit (predicted class when
    ``target`` is None), and the target column indices."""
    import torch

    predicted = logits.argmax(1).detach().cpu().numpy()
    idx = target_indices(
        estimator.classes_,
        batch_slice(target, start, batch_size),
        len(logits),
        predicted,
    )
    column = torch.from_numpy(idx).to(logits.device)[:, None]
    return logits.gather(1, column).sum(), idx


def layer_gradients(estimator, images, *, target, layer, batch_size, device):
    """Yield ``(start, acts, grads)`` per batch of ``images`` ``(n, H, W)``: the
    activations ``(b, C, h, w)`` of ``layer`` and the gradient of each image's
    target logit with respect to them. The hook lives only while iterating."""
    import torch

    n = len(images)
    with hooked_layer(estimator, layer, device) as (module, run_on, outputs):
        target_indices(estimator.classes_, target, n, np.zeros(n))  # validate early
        with torch.enable_grad():
            for start in range(0, n, batch_size):
                batch = torch.from_numpy(images[start : start + batch_size]).to(run_on)
                batch = batch[:, None].requires_grad_(True)
                outputs.clear()
                logits = module(batch)
                acts = layer_output(outputs)
                if acts.ndim != 4:
                    raise ValueError(
                        "layer: a class activation map needs a (n, C, h, w) feature "
                        f"map; the layer returned shape {tuple(acts.shape)}."
                    )
                score, _ = target_score(estimator, logits, target, start, batch_size)
                (grads,) = torch.autograd.grad(score, acts)
                yield start, acts.detach(), grads.detach()


def class_activation_maps(
    estimator, X, channel_weights, *, target, layer, batch_size, device
):
    """Class activation maps of ``X``, ``(n, H, W)`` float32 in [0, 1]: the
    ReLU of the layer's activations summed over channels with the weights
    ``channel_weights(acts, grads)`` (``(b, C, 1, 1)``) gives, upsampled to
    the image size and divided by each map's maximum."""
    import torch.nn.functional as F

    images = check_model_images(estimator, X)
    n, height, width = images.shape
    out = np.empty((n, height, width), dtype=np.float32)
    batches = layer_gradients(
        estimator,
        images,
        target=target,
        layer=layer,
        batch_size=batch_size,
        device=device,
    )
    for start, acts, grads in batches:
        weights = channel_weights(acts, grads)
        cam = F.relu((weights * acts).sum(1, keepdim=True))
        out[start : start + len(acts)] = upsample_maps(cam, (height, width))
    return out


def upsample_maps(cam, size):
    """Bilinear upsampling of ``(b, 1, h, w)`` maps to ``size``, clipped at 0 and
    divided by each map's maximum: a float32 array ``(b, H, W)`` in [0, 1]."""
    import torch.nn.functional as F

    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    cam = cam[:, 0].clamp_min(0)
    peak = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).cpu().numpy().astype(np.float32)


def normalise_maps(maps):
    """Divide each ``(H, W)`` map of a non-negative stack by its maximum (an
    all-zero map stays zero)."""
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def check_fitted(estimator):
    """sklearn's fitted check for sklearn estimators; duck-typed objects pass."""
    if isinstance(estimator, BaseEstimator):
        check_is_fitted(estimator)
