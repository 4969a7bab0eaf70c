"""Memory arithmetic: whether a data set fits in memory or should be streamed.

Torch-free, so deciding how to read a data set does not load torch.
"""

__all__ = ["available_memory", "should_stream"]


def available_memory():
    """Bytes of memory available to new allocations (psutil when installed,
    else ``/proc/meminfo``'s MemAvailable, else None)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def should_stream(n_images, size, *, mode="auto", fraction=0.25, available=None):
    """Whether to read ``n_images`` files of ``size`` px by streaming.

    ``mode="auto"`` streams when their float32 array (``n * size**2 * 4``
    bytes) would exceed ``fraction`` of the available memory; "always" and
    "never" decide by themselves. Returns ``(stream, array_bytes,
    available_bytes)``.

    Examples
    --------
    >>> from skcxr.utils._memory import should_stream
    >>> should_stream(112_120, 224, available=24 * 2**30)[:2]
    (True, 22502932480)
    >>> should_stream(5_000, 224, available=24 * 2**30)[0]
    False
    >>> should_stream(10, 32, mode="always")[0]
    True
    """
    array = int(n_images) * int(size) ** 2 * 4
    if available is None:
        available = available_memory()
    if mode == "always":
        return True, array, available
    if mode == "never" or available is None:
        return False, array, available
    return array > fraction * available, array, available
