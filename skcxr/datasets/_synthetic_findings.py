"""Class-specific findings for :func:`skcxr.datasets.make_chest_xrays`.

Each drawer takes ``(rng, geo, difficulty)`` where ``geo`` holds the patient
frame (``xp``, ``yp``) and per-lung coordinates of the images of that class,
and returns ``(opacity, mask)``: the fraction of lung air replaced by
fluid/tissue (float in [0, 1]) and where the finding is (bool; the caller
restricts it to the lungs). Lung coordinates: ``u`` runs from -1 (medial) to
+1 (lateral), ``v`` from -1 (apex) to about +1 (costophrenic angle); ``lx`` is
the lateral distance from the lung centre in image units.
"""

import numpy as np
from scipy import fft as sp_fft

__all__ = ["FINDINGS"]

_F = np.float32


def _sig(z):
    return (0.5 + 0.5 * np.tanh(0.5 * z)).astype(_F, copy=False)


def _col(v):
    return np.asarray(v, dtype=_F)[:, None, None]


def _noise(rng, n, size, sigma_px, highpass_px=None):
    """Unit-variance smooth (or band-pass) Gaussian random fields."""
    white = rng.standard_normal((n, size, size), dtype=_F)
    fy = sp_fft.fftfreq(size).astype(_F)[:, None]
    fx = sp_fft.rfftfreq(size).astype(_F)[None, :]
    f2 = fx**2 + fy**2
    transfer = np.exp(-2 * np.pi**2 * sigma_px**2 * f2)
    if highpass_px is not None:
        transfer = transfer - np.exp(-2 * np.pi**2 * highpass_px**2 * f2)
    field = sp_fft.irfft2(sp_fft.rfft2(white) * transfer.astype(_F), s=(size, size))
    field -= field.mean(axis=(1, 2), keepdims=True)
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-6
    return field.astype(_F, copy=False)


def _pick(geo, k, key):
    """Per-image choice between the two lungs (k = 0: image left, 1: image right)."""
    s0, s1 = geo["sides"]
    a, b = s0[key], s1[key]
    cond = k == 0
    return np.where(_col(cond) if np.ndim(a) == 3 else cond, a, b)


def _strength(rng, m, d):
    """Lesion contrast and size factors: both shrink as difficulty grows."""
    amp = (1 - 0.72 * d) * rng.uniform(0.75, 1.15, m)
    return _col(np.clip(amp, 0, 1)), 1 - 0.45 * d


def _bacteria(rng, geo, d):
    m, size, eps = len(geo["xp"]), geo["size"], geo["eps"]
    amp, sz = _strength(rng, m, d)
    k = rng.integers(0, 2, m)
    lx, v, lung = _pick(geo, k, "lx"), _pick(geo, k, "v"), _pick(geo, k, "lung")
    a, b = _col(_pick(geo, k, "a")), _col(_pick(geo, k, "b"))
    lower = rng.random(m) < 0.65
    v_c = np.where(lower, rng.uniform(0.2, 0.6, m), rng.uniform(-0.55, 0.1, m))
    u_c = rng.uniform(-0.4, 0.5, m)
    rx = a * _col(rng.uniform(0.35, 0.6, m) * sz)
    ry = b * _col(rng.uniform(0.22, 0.38, m) * sz)
    field = _noise(rng, m, size, 0.05 * size)
    du = (lx - _col(u_c) * a) / rx
    dv = (v - _col(v_c)) * b / ry
    shape = _sig((1 - du**2 - dv**2 + 0.45 * field) / 0.15)
    # Lobar variant: an upper lobe filled down to a sharp horizontal fissure.
    lobar = _col((rng.random(m) < 0.3) & ~lower)
    v_f = _col(rng.uniform(-0.2, 0.05, m))
    lobe = _sig((v_f - v) * b / eps) * _sig((v + 0.85) / 0.1) * (0.85 + 0.15 * field)
    shape = np.where(lobar, np.maximum(shape, lobe), shape) * lung
    # Air bronchograms: dark branching lines radiating from the hilum.
    sgn = _col(np.where(k == 0, -1.0, 1.0))
    ddx, ddy = sgn * geo["xp"] - 0.15, geo["yp"] + 0.02
    theta = np.arctan2(ddy, np.abs(ddx) + 1e-3)
    lines = np.exp(-8 * (1 - np.cos(16 * theta + 1.2 * field))) * _sig(
        (shape - 0.7) / 0.1
    )
    has_ab = _col(rng.random(m) < 0.45)
    op = amp * _col(rng.uniform(0.85, 1.0, m)) * shape * (1 - 0.6 * has_ab * lines)
    return op, shape > 0.5


def _virus(rng, geo, d):
    m, size = len(geo["xp"]), geo["size"]
    amp, sz = _strength(rng, m, d)
    low = _noise(rng, m, size, 0.08 * size)
    reticular = np.exp(
        -((_noise(rng, m, size, 0.012 * size, 0.035 * size) / 0.45) ** 2)
    )
    zone = np.zeros_like(low)
    for s in geo["sides"]:  # bilateral, perihilar and basal
        z = 0.45 * np.exp(-(((s["u"] + 0.6) / 0.7) ** 2)) + 0.55 * _sig(
            (s["v"] - 0.0) / 0.25
        )
        zone = np.maximum(zone, z * s["lung"])
    zone = np.clip(zone * (1 + 0.35 * low), 0, 1)
    op = amp * 0.75 * zone * (0.45 + 0.55 * reticular) * (0.6 + 0.4 * sz)
    return op, zone > 0.5


def _effusion(rng, geo, d):
    m, eps = len(geo["xp"]), geo["eps"]
    amp, sz = _strength(rng, m, d)
    side = rng.integers(0, 3, m)  # 0 / 1: one side, 2: bilateral
    side = np.where(rng.random(m) < 0.7, side % 2, 2)
    op = np.zeros_like(geo["xp"])
    mask = np.zeros(op.shape, dtype=bool)
    for k, s in enumerate(geo["sides"]):
        on = _col((side == k) | (side == 2))
        h = _col(rng.uniform(0.2, 0.55, m) * sz)
        lat = np.clip((s["u"] + 1) / 2, 0, 1)
        v_m = 1.0 - h * (0.3 + 0.7 * lat**1.5)  # meniscus rises towards the chest wall
        fluid = _sig((s["v"] - v_m) * _col(s["b"]) / (1.5 * eps)) * s["lung"]
        grad = 0.85 + 0.15 * _sig((s["v"] - v_m - 0.1) / 0.05)
        op = np.maximum(op, on * fluid * grad)
        mask |= on.astype(bool) & (fluid > 0.5)
    return amp * op, mask


def _atelectasis(rng, geo, d):
    m, eps = len(geo["xp"]), geo["eps"]
    amp, sz = _strength(rng, m, d)
    k = (geo["atel_side"] > 0).astype(int)
    lx, v, u, lung = (_pick(geo, k, key) for key in ("lx", "v", "u", "lung"))
    b = _col(_pick(geo, k, "b"))
    # Plate-like (discoid) linear opacity in the lower zone.
    v0, slope = _col(rng.uniform(0.2, 0.6, m)), _col(rng.uniform(-0.25, 0.25, m))
    half = _col(rng.uniform(0.014, 0.028, m) * (0.6 + 0.4 * sz))
    u0, length = _col(rng.uniform(-0.3, 0.3, m)), _col(rng.uniform(0.4, 0.8, m))
    off = (v - v0) * b - slope * (lx - u0 * b)
    band = (
        _sig((half - np.abs(off)) / eps) * _sig((length - np.abs(u - u0)) / 0.05) * lung
    )
    # Collapsed lower lobe: a triangular medial opacity (the "sail").
    has_wedge = _col(rng.random(m) < 0.5)
    edge = -0.95 + 0.8 * np.clip(v - 0.05, 0, 1)
    wedge = _sig((edge - u) / 0.06) * _sig((v - 0.05) / 0.05) * lung * has_wedge
    # Fissure pulled up towards the collapsed lobe: a thin line.
    v_f = _col(rng.uniform(-0.5, -0.3, m))
    fiss = (
        _sig((0.6 * eps - np.abs((v - v_f) * b - 0.15 * (lx - u0 * b))) / (0.5 * eps))
        * lung
    )
    op = amp * np.maximum(np.maximum(0.9 * band, 0.7 * wedge), 0.5 * fiss)
    return op, (band > 0.5) | (wedge > 0.5) | (fiss > 0.5)


def _infiltration(rng, geo, d):
    m, size = len(geo["xp"]), geo["size"]
    amp, sz = _strength(rng, m, d)
    field = _noise(rng, m, size, 0.04 * size)
    n_patch = rng.integers(2, 6, m)
    total = np.zeros_like(geo["xp"])
    for j in range(5):
        k = rng.integers(0, 2, m)
        lx, v, lung = _pick(geo, k, "lx"), _pick(geo, k, "v"), _pick(geo, k, "lung")
        a, b = _col(_pick(geo, k, "a")), _col(_pick(geo, k, "b"))
        u_c, v_c = _col(rng.uniform(-0.5, 0.6, m)), _col(rng.uniform(-0.5, 0.65, m))
        r = _col(rng.uniform(0.06, 0.12, m) * sz)
        dist2 = (lx - u_c * a) ** 2 + ((v - v_c) * b) ** 2
        patch = np.exp(-dist2 / (2 * r**2)) * lung * _col(j < n_patch)
        total = np.maximum(total, patch)
    shape = np.clip(total * (1 + 0.45 * field), 0, 1)
    return amp * 0.6 * shape, shape > 0.45


FINDINGS = {
    "bacteria": _bacteria,
    "virus": _virus,
    "effusion": _effusion,
    "atelectasis": _atelectasis,
    "infiltration": _infiltration,
}
