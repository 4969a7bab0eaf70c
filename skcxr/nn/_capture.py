"""Outputs of inner layers of a network, captured safely from several threads.

A forward hook registered and removed around every call is not safe on a
fitted network that serves several threads (a web server, a Dask worker): a
hook one thread adds also records the other threads' passes, and the network
changes while it runs. Here a layer gets one permanent hook, installed the
first time its output is asked for; the hook records only in a thread that is
inside :func:`capturing` for that layer, and does nothing anywhere else
(other threads, training, export).
"""

import contextlib
import threading

__all__ = ["StopForward", "capturing"]

_state = threading.local()  # .frames: this thread's active captures, innermost last
_install_lock = threading.Lock()


class StopForward(Exception):
    """Raised by the hook of the ``stop_at`` layer: the rest of the network is
    not computed."""


def _capture_hook(module, args, output):
    frames = getattr(_state, "frames", ())
    for by_id, outputs, _ in frames:  # nested captures of one layer all record it
        name = by_id.get(id(module))
        if name is not None:
            outputs[name] = output  # a layer called twice keeps its last output
    if frames:  # only the innermost block's caller is ready to catch the stop
        by_id, _, stop_at = frames[-1]
        if stop_at is not None and by_id.get(id(module)) == stop_at:
            raise StopForward


def _install(module):
    """Give ``module`` the capture hook, once (copies of a network keep it)."""
    if _capture_hook in module._forward_hooks.values():
        return
    with _install_lock:
        if _capture_hook not in module._forward_hooks.values():
            module.register_forward_hook(_capture_hook)


@contextlib.contextmanager
def capturing(layers, *, stop_at=None):
    """Capture the outputs of ``layers`` in forward passes run in this thread.

    Parameters
    ----------
    layers : dict of str to torch.nn.Module
        Name -> layer whose output to capture.
    stop_at : str or None, default=None
        The name of a layer after which the forward pass stops (raising
        :class:`StopForward`, which the caller catches): the deeper layers are
        not computed.

    Yields
    ------
    outputs : dict of str to torch.Tensor
        Filled by each forward pass with the latest output of each layer
        (autograd graph included); the caller may clear it between passes.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skcxr.nn._capture import StopForward, capturing
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> with capturing({"hidden": net[0]}, stop_at="hidden") as outputs:
    ...     try:
    ...         net(torch.zeros(4, 2))
    ...     except StopForward:
    ...         pass
    >>> tuple(outputs["hidden"].shape)
    (4, 3)
    >>> net(torch.zeros(4, 2)).shape  # outside the block: a plain forward
    torch.Size([4, 1])
    """
    for module in layers.values():
        _install(module)
    outputs = {}
    frame = ({id(m): name for name, m in layers.items()}, outputs, stop_at)
    frames = getattr(_state, "frames", None)
    if frames is None:
        frames = _state.frames = []
    frames.append(frame)
    try:
        yield outputs
    finally:  # by identity: a generator may hold its block open across others
        del frames[next(i for i, f in enumerate(frames) if f is frame)]
