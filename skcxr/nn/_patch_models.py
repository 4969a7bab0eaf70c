"""Models of healthy patch features: PaDiM Gaussians and a PatchCore memory bank.

Both take feature maps ``(n, d, h, w)`` of healthy images (see
:class:`skcxr.nn._patch_features.PatchFeatures`) and score the patches of new
images, higher = more anomalous, on the same ``(h, w)`` grid.

- :class:`GaussianPatchModel` (Defard et al. 2020, PaDiM): one Gaussian per
  grid location, with a Ledoit-Wolf shrunk covariance (Ledoit & Wolf 2004);
  the score is the Mahalanobis distance.
- :class:`PatchMemory` (Roth et al. 2022, PatchCore): all healthy patches,
  subsampled by a greedy k-center coreset; the score is the distance to the
  nearest patch of the memory bank.
"""

import torch

__all__ = ["ledoit_wolf_batch", "GaussianPatchModel", "PatchMemory", "greedy_coreset"]


def ledoit_wolf_batch(X):
    """Ledoit-Wolf shrunk covariances of a batch of data sets, vectorised.

    Equal to :func:`sklearn.covariance.ledoit_wolf` applied to each ``X[l]``
    (``assume_centered=False``).

    Parameters
    ----------
    X : torch.Tensor of shape (L, n, d)
        ``L`` data sets of ``n`` samples of dimension ``d``.

    Returns
    -------
    covariances : torch.Tensor of shape (L, d, d)
    shrinkage : torch.Tensor of shape (L,)

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn.covariance import ledoit_wolf
    >>> from skcxr.nn._patch_models import ledoit_wolf_batch
    >>> X = np.random.default_rng(0).normal(size=(3, 10, 4))
    >>> cov, s = ledoit_wolf_batch(torch.from_numpy(X))
    >>> bool(np.allclose(cov[1].numpy(), ledoit_wolf(X[1])[0]))
    True
    """
    L, n, d = X.shape
    X = X - X.mean(1, keepdim=True)
    emp = X.transpose(1, 2) @ X / n
    trace = torch.diagonal(emp, dim1=1, dim2=2).sum(1)
    mu = trace / d
    beta_ = ((X**2).sum(2) ** 2).sum(1)  # sum of the entries of X2.T @ X2
    delta_ = (emp**2).sum((1, 2))  # sum of the squared entries of X.T @ X / n**2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace + d * mu**2) / d
    beta = torch.minimum(beta, delta)
    shrinkage = torch.where(beta == 0, torch.zeros_like(beta), beta / delta)
    eye = torch.eye(d, dtype=X.dtype, device=X.device)
    cov = (1.0 - shrinkage)[:, None, None] * emp + (shrinkage * mu)[:, None, None] * eye
    return cov, shrinkage


class GaussianPatchModel:
    """A Gaussian per grid location (PaDiM, Defard et al. 2020).

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._patch_models import GaussianPatchModel
    >>> feats = torch.randn(20, 5, 3, 3, generator=torch.Generator().manual_seed(0))
    >>> model = GaussianPatchModel().fit(feats)
    >>> model.score(feats).shape, bool(model.score(feats + 10).min() > model.score(feats).max())
    (torch.Size([20, 3, 3]), True)
    """

    def fit(self, features):
        n, d, h, w = features.shape
        x = features.double().permute(2, 3, 0, 1).reshape(h * w, n, d)
        self.mean_ = x.mean(1)  # (L, d)
        cov, self.shrinkage_ = ledoit_wolf_batch(x)
        if n < 2:  # a single image: the identity (Euclidean distance)
            cov = torch.eye(d, dtype=cov.dtype).expand(h * w, d, d).clone()
        factor, info = torch.linalg.cholesky_ex(cov)
        singular = info > 0  # locations whose features do not vary over the images
        if singular.any():
            # PaDiM's regularisation, cov + eps I (Defard et al. 2020 add 0.01 I),
            # with eps relative to the location's variance, or to the features'
            # own magnitude where they never vary; the other locations are kept
            variance = torch.diagonal(cov[singular], dim1=1, dim2=2).mean(1)
            magnitude = (x[singular] ** 2).mean((1, 2))
            scale = torch.where(variance > 0, variance, magnitude)
            eps = 0.01 * torch.where(scale > 0, scale, torch.ones_like(scale))
            eye = torch.eye(d, dtype=cov.dtype)
            factor[singular] = torch.linalg.cholesky(
                cov[singular] + eps[:, None, None] * eye
            )
        self.precision_ = torch.cholesky_inverse(factor).float()
        self.mean_ = self.mean_.float()
        self.grid_ = (h, w)
        return self

    def score(self, features):
        n, d, h, w = features.shape
        x = features.float().permute(2, 3, 0, 1).reshape(h * w, n, d)
        diff = x - self.mean_[:, None, :]
        sq = (torch.bmm(diff, self.precision_) * diff).sum(2)
        return sq.clamp_min(0).sqrt().reshape(h, w, n).permute(2, 0, 1)


def greedy_coreset(points, n_select, generator, projection_dim=128):
    """Indices of a greedy k-center coreset (Sener & Savarese 2018, as in PatchCore).

    The points are first projected to ``projection_dim`` random Gaussian
    directions (Johnson-Lindenstrauss) when they have more dimensions.

    Parameters
    ----------
    points : torch.Tensor of shape (N, d)
    n_select : int
    generator : torch.Generator
    projection_dim : int, default=128

    Returns
    -------
    torch.Tensor of int64, shape (n_select,)
        Fewer indices when the points have fewer than ``n_select`` distinct
        values (no point is selected twice).

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._patch_models import greedy_coreset
    >>> pts = torch.tensor([[0.0], [0.1], [5.0], [10.0]])
    >>> sorted(greedy_coreset(pts, 3, torch.Generator().manual_seed(0)).tolist())
    [0, 2, 3]
    """
    N, d = points.shape
    if d > projection_dim:
        proj = torch.randn(d, projection_dim, generator=generator) / projection_dim**0.5
        points = points @ proj
    start = int(torch.randint(N, (1,), generator=generator))
    selected = [start]
    min_dist = ((points - points[start]) ** 2).sum(1)
    for _ in range(n_select - 1):
        idx = int(torch.argmax(min_dist))
        if min_dist[idx] == 0:  # every point is already in the coreset
            break
        selected.append(idx)
        min_dist = torch.minimum(min_dist, ((points - points[idx]) ** 2).sum(1))
    return torch.tensor(selected, dtype=torch.long)


class PatchMemory:
    """Nearest-neighbour distance to a memory bank of healthy patches (PatchCore).

    Examples
    --------
    >>> import torch
    >>> from skcxr.nn._patch_models import PatchMemory
    >>> feats = torch.randn(10, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    >>> mem = PatchMemory(0.5, torch.Generator().manual_seed(0)).fit(feats)
    >>> mem.bank_.shape, mem.score(feats).shape
    (torch.Size([45, 4]), torch.Size([10, 3, 3]))
    """

    def __init__(self, coreset_ratio, generator):
        self.coreset_ratio = coreset_ratio
        self.generator = generator

    def fit(self, features):
        n, d, h, w = features.shape
        patches = features.float().permute(0, 2, 3, 1).reshape(-1, d)
        owner = torch.arange(n).repeat_interleave(h * w)
        n_select = max(1, int(round(self.coreset_ratio * len(patches))))
        if n_select < len(patches):
            keep = greedy_coreset(patches, n_select, self.generator)
            patches, owner = patches[keep], owner[keep]
        self.bank_ = patches.contiguous()
        self.owner_ = owner
        self.generator = None  # not needed any more; keeps the model picklable
        return self

    def score(self, features, exclude=None, chunk=4096):
        """Distance of each patch to its nearest bank patch, ``(n, h, w)``.

        ``exclude`` (n,) int: bank patches of that training image are ignored
        (leave-one-image-out scores of the training images), unless the bank
        holds no other patch.
        """
        n, d, h, w = features.shape
        patches = features.float().permute(0, 2, 3, 1).reshape(-1, d)
        owner = None if exclude is None else exclude.repeat_interleave(h * w)
        out = torch.empty(len(patches))
        bank = self.bank_
        for start in range(0, len(patches), chunk):
            dist = torch.cdist(patches[start : start + chunk], bank)
            nearest = dist.min(1).values
            if owner is not None:
                same = owner[start : start + chunk, None] == self.owner_[None, :]
                others = dist.masked_fill(same, float("inf")).min(1).values
                # a patch that only its own image holds in the bank (identical
                # training images leave one copy) is scored against itself
                nearest = torch.where(torch.isinf(others), nearest, others)
            out[start : start + chunk] = nearest
        return out.reshape(n, h, w)
