"""Structural similarity (SSIM, Wang et al. 2004) of image batches in torch."""

import torch
from torch.nn import functional as F

__all__ = ["ssim_map", "ssim_error"]


def _gaussian_window(size, sigma, device, dtype=torch.float32):
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(x, y, *, window=11, sigma=1.5, pad=False):
    """Local SSIM of two image batches with a Gaussian window (Wang et al. 2004).

    Parameters
    ----------
    x, y : torch.Tensor of shape (n, 1, H, W)
        Images in [0, 1] (the constants are ``(0.01, 0.03)`` of a unit range).
    window : int, default=11
        Side of the Gaussian window; reduced to the largest odd size that fits
        the images.
    sigma : float, default=1.5
        Standard deviation of the window.
    pad : bool, default=False
        ``False``: "valid" windows only (the map is smaller than the images,
        as in the reference implementation). ``True``: reflect-pad so the map
        has the images' size (for per-pixel anomaly maps).

    Returns
    -------
    torch.Tensor of shape (n, 1, H', W')
        1 where the images are locally identical.

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._ssim import ssim_map
    >>> x = torch.rand(2, 1, 16, 16)
    >>> ssim_map(x, x, pad=True).shape
    torch.Size([2, 1, 16, 16])
    >>> bool(torch.allclose(ssim_map(x, x), torch.ones(1)))
    True
    """
    side = min(x.shape[-2:])
    size = max(min(window, side if side % 2 else side - 1), 1)
    g = _gaussian_window(size, sigma, x.device, x.dtype)
    wx, wy = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)
    if pad and size > 1:
        half = size // 2
        mode = "reflect" if half < side else "replicate"
        x = F.pad(x, (half, half, half, half), mode=mode)
        y = F.pad(y, (half, half, half, half), mode=mode)

    def blur(t):
        return F.conv2d(F.conv2d(t, wx), wy)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx**2
    vy = blur(y * y) - my**2
    cxy = blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / (
        (mx**2 + my**2 + c1) * (vx + vy + c2)
    )


def ssim_error(x, y):
    """Per-image ``1 - mean SSIM`` (window 11, sigma 1.5, as Wang et al. 2004).

    Parameters
    ----------
    x, y : torch.Tensor of shape (n, 1, H, W)

    Returns
    -------
    torch.Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._ssim import ssim_error
    >>> x = torch.rand(3, 1, 16, 16)
    >>> ssim_error(x, x).abs().max().item() < 1e-5
    True
    """
    return 1.0 - ssim_map(x, y).flatten(1).mean(1)
