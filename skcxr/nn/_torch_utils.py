"""Small torch helpers shared by the deep-learning estimators.

Nothing here touches process-wide state: no global seeding, no thread settings.
"""

import os
import re

import torch

from ..utils._random import seed_from

__all__ = [
    "check_device",
    "resolve_device",
    "torch_generator",
    "load_state_dict",
    "freeze_batch_norm_statistics",
]

_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(device, param="device"):
    """Refuse a ``device`` this machine does not have, naming the parameter.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    param : str, default="device"

    Raises
    ------
    ValueError
        An unknown device, or CUDA / MPS when torch cannot use them here.

    Examples
    --------
    >>> from skcxr.nn._torch_utils import check_device
    >>> check_device("cpu")
    >>> check_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: device='tpu' is not supported; use 'auto', 'cpu', 'cuda', \
'cuda:N' (N a GPU index) or 'mps'.
    """
    name = str(device)
    if not _DEVICE_PATTERN.fullmatch(name):
        raise ValueError(
            f"{param}={name!r} is not supported; use 'auto', 'cpu', 'cuda', "
            "'cuda:N' (N a GPU index) or 'mps'."
        )
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"{param}={name!r} but CUDA is not available; use {param}='auto' or "
            "'cpu'."
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"{param}='mps' but this PyTorch cannot use Apple's MPS here; use "
            f"{param}='auto' or 'cpu'."
        )


def resolve_device(device):
    """Turn ``"auto"`` into ``"cuda"`` when a GPU is present, else ``"cpu"``.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Returns
    -------
    str

    Examples
    --------
    >>> from skcxr.nn._torch_utils import resolve_device
    >>> resolve_device("cpu")
    'cpu'
    """
    if str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def torch_generator(random_state, device="cpu"):
    """A ``torch.Generator`` seeded from ``random_state``, never the global one.

    Examples
    --------
    >>> from skcxr.nn._torch_utils import torch_generator
    >>> a = torch_generator(0); b = torch_generator(0)
    >>> bool((torch.rand(3, generator=a) == torch.rand(3, generator=b)).all())
    True
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(seed_from(random_state))
    return generator


def load_state_dict(path, *, map_location="cpu"):
    """Load a state dict from ``path`` without executing code.

    Uses ``torch.load(..., weights_only=True)``; a checkpoint that wraps the
    state dict under ``"state_dict"`` or ``"model"`` is unwrapped.

    Parameters
    ----------
    path : str or os.PathLike
    map_location : str, default="cpu"

    Returns
    -------
    dict of str to torch.Tensor

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If ``path`` does not exist or is a folder, naming it.
    ValueError
        If the file is not a torch weights file or not a loadable state dict,
        naming it.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder, not a weights file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Weights file not found: {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a regular file (a pipe or a device)")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head not in (b"PK", b"\x80\x02"):  # a torch zip archive, a legacy pickle
        raise ValueError(
            f"{path!r} is not a torch weights file (a zip archive written by "
            "torch.save, or a .safetensors file)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and unsafe-global errors alike
        raise ValueError(
            f"Could not load weights from {path!r} with torch.load(weights_only=True): "
            f"{exc}"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(
            f"{path!r} holds a {type(state).__name__}, not a state dict of tensors."
        )
    return state


def freeze_batch_norm_statistics(module):
    """Put the batch-norm layers of ``module`` whose parameters are all frozen
    in eval mode.

    In train mode a batch norm normalises with the batch statistics and updates
    its running ones, which are buffers, not parameters: freezing its
    parameters alone would still change the frozen layer. Call it after
    ``module.train()``.

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._torch_utils import freeze_batch_norm_statistics
    >>> net = nn.Sequential(nn.BatchNorm2d(2), nn.BatchNorm2d(2)).train()
    >>> _ = net[0].requires_grad_(False)
    >>> freeze_batch_norm_statistics(net)
    >>> net[0].training, net[1].training
    (False, True)
    """
    for layer in module.modules():
        params = list(layer.parameters(recurse=False))
        if (
            isinstance(layer, torch.nn.modules.batchnorm._BatchNorm)
            and params
            and not any(p.requires_grad for p in params)
        ):
            layer.eval()
