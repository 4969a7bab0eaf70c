"""Real lung masks for tests: the 517 v7labs lung annotations that
torchxrayvision's wheel ships (``torchxrayvision/data/``), read without
importing torchxrayvision; tests that use them skip when it is absent."""

import functools
import importlib.util
import io
import os
import zipfile

import numpy as np
import pytest

_ARCHIVE = "semantic_masks_v7labs_lungs.zip"


def _archive_path():
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or spec.origin is None:
        pytest.skip(
            "torchxrayvision is not installed (its wheel ships real lung masks)"
        )
    path = os.path.join(os.path.dirname(spec.origin), "data", _ARCHIVE)
    if not os.path.exists(path):
        pytest.skip(f"this torchxrayvision has no {_ARCHIVE}")
    return path


@functools.lru_cache(maxsize=4)
def _masks(n, size):
    from PIL import Image

    out = []
    with zipfile.ZipFile(_archive_path()) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith("/"):
                continue
            image = Image.open(io.BytesIO(archive.read(name))).convert("L")
            resized = image.resize((size, size), Image.BILINEAR)
            mask = np.asarray(resized) >= 128
            if 0.1 < mask.mean() < 0.6:  # a few files are empty or inverted
                out.append(mask)
            if len(out) == n:
                break
    masks = np.stack(out)
    masks.setflags(write=False)
    return masks


def real_lung_masks(n, size):
    """The first ``n`` usable real lung masks (sorted by file name), resized to
    ``size`` x ``size`` (bilinear, then halved), as a boolean array."""
    return _masks(n, size).copy()


def radiographs_around(masks, seed=0):
    """Crude radiographs drawn around lung masks: a bright body, dark smoothed
    lung fields, noise; values in [0, 1]."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    n, size, _ = masks.shape
    lungs = ndimage.gaussian_filter(masks.astype(np.float32), (0, 1, 1))
    body = 0.75 + 0.1 * rng.standard_normal((n, 1, 1))
    images = body - 0.4 * lungs + 0.03 * rng.standard_normal(masks.shape)
    return np.clip(images, 0, 1).astype(np.float32)
