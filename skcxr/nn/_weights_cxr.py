"""Chest X-ray weights: torchxrayvision's models and CheXNet.

The key layouts of CheXNet's DenseNet-121 (Rajpurkar et al. 2017) and of
torchxrayvision's DenseNet and ResNet (Cohen et al. 2022), with their input
convention (one channel, ``(2 x - 1) * 1024``, resized to the resolution they
were trained at), and ``weights="xrv:<name>"``, read from torchxrayvision's
cache folder (never downloaded here).
"""

import os
import warnings

import torch
from torch import nn

from ._backbone_modules import IMAGENET_MEAN, IMAGENET_STD, XRV_MEAN, XRV_STD
from ._weights import WeightsLayout, _read_state, _xrv_folder

CHEXNET_LAYOUT = WeightsLayout(
    name="chexnet",
    prefixes=("densenet121.",),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    description="CheXNet re-implementations (Rajpurkar et al. 2017), ImageNet-"
    "normalised RGB, a 14-way classifier.0",
)


XRV_DENSENET_LAYOUT = WeightsLayout(
    name="torchxrayvision",
    in_channels=1,
    mean=XRV_MEAN,
    std=XRV_STD,
    input_size=224,
    ignore=("op_threshs",),
    description="torchxrayvision's DenseNet121 (Cohen et al. 2022), one channel "
    "in [-1024, 1024] at 224 px",
)


XRV_RESNET_LAYOUT = WeightsLayout(
    name="torchxrayvision",
    prefixes=("", "model."),
    in_channels=1,
    mean=XRV_MEAN,
    std=XRV_STD,
    input_size=512,
    ignore=("op_threshs",),
    description="torchxrayvision's ResNet50 (Cohen et al. 2022), one channel in "
    "[-1024, 1024] at 512 px",
)


_XRV_URL = "https://github.com/mlmed/torchxrayvision/releases/download/v1/"


_XRV_DENSENET_FILE = "densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"


#: torchxrayvision's published weights: name -> (backbone, file name), as in its
#: ``models.model_urls``; the files are downloaded from ``_XRV_URL + file``.
XRV_WEIGHTS = {
    **{
        f"densenet121-res224-{key}": ("densenet121", f"{prefix}-{_XRV_DENSENET_FILE}")
        for key, prefix in (
            ("all", "nih-pc-chex-mimic_ch-google-openi-kaggle"),
            ("nih", "nih"),
            ("pc", "pc"),
            ("chex", "chex"),
            ("rsna", "kaggle"),
            ("mimic_nb", "mimic_nb"),
            ("mimic_ch", "mimic_ch"),
        )
    },
    "resnet50-res512-all": (
        "resnet50",
        "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt",
    ),
}


def _xrv_name(weights):
    """``"xrv:all"`` or ``"xrv:densenet121-res224-all"`` -> the full name."""
    key = weights[len("xrv:") :]
    if key in XRV_WEIGHTS:
        return key
    full = f"densenet121-res224-{key}"
    if full in XRV_WEIGHTS:
        return full
    raise ValueError(
        f"Unknown torchxrayvision weights {weights!r}; known: "
        f"{', '.join('xrv:' + n for n in XRV_WEIGHTS)}."
    )


def _xrv_state(weights, backbone_name):
    """The state dict of ``weights="xrv:<name>"`` from torchxrayvision's folder."""
    name = _xrv_name(weights)
    arch, filename = XRV_WEIGHTS[name]
    if backbone_name != arch:
        raise ValueError(
            f"weights={weights!r} are torchxrayvision's {arch} weights; use "
            f"backbone={arch!r} (got {backbone_name!r})."
        )
    folder = _xrv_folder()
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights={weights!r} needs torchxrayvision's file {filename!r}, which "
            f"is not in its folder {folder!r}. Download {_XRV_URL + filename} on a "
            "machine with internet access (torchxrayvision.models.get_model("
            f"{name!r}) does it) and put it in that folder, or pass "
            "weights=<path to the file>."
        )
    try:
        return _read_state(path)
    except ValueError:
        pass  # a whole pickled torchxrayvision model (the DenseNet files)
    try:
        with warnings.catch_warnings():  # importing it silences all warnings
            import torchxrayvision  # noqa: F401  (its classes unpickle the file)
    except ImportError as exc:
        raise ImportError(
            f"{path!r} is a pickled torchxrayvision model; reading it needs the "
            "torchxrayvision package (pip install torchxrayvision)."
        ) from exc
    # the publisher's own file, in its own folder, read as torchxrayvision does
    model = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(model, nn.Module):
        for module in model.modules():  # models pickled by older torch versions
            if not hasattr(module, "_non_persistent_buffers_set"):
                module._non_persistent_buffers_set = set()
        model = model.state_dict()
    if not isinstance(model, dict):
        raise ValueError(f"{path!r} holds a {type(model).__name__}, not a model.")
    return model
