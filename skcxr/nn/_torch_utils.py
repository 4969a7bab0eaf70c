"""Small torch helpers shared by the deep-learning estimators.

Nothing here touches process-wide state: no global seeding, no thread settings.
"""

import os

import torch

from ..utils._random import seed_from

__all__ = ["resolve_device", "torch_generator", "load_state_dict"]


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
    FileNotFoundError
        If ``path`` does not exist, naming it.
    ValueError
        If the file is not a loadable state dict, naming it.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: {path!r}")
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
