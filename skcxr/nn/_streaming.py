"""Image files as ``X``: batches decoded in background DataLoader workers.

:class:`~skcxr.TransferClassifier`, :class:`~skcxr.CNNEmbedder` and
:class:`~skcxr.ReconstructionAnomalyDetector` accept a 1-D list of file paths
as ``X``. The files are read through the estimator's ``loader`` (an
:class:`~skcxr.ImageLoader`, or a :class:`~sklearn.pipeline.Pipeline` whose
first step is one and whose other steps are per-image transformers such as
:class:`~skcxr.OtsuMasker`) one batch at a time, in ``torch.utils.data``
worker processes, so that decoding overlaps the network's compute and memory
holds a few batches of images, not the data set.

Everything here is internal; the estimators document the behaviour.
"""

import multiprocessing
import os
import sys
import warnings

import joblib
import numpy as np
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_memory

from ..utils._parallel import resolve_n_jobs

__all__ = [
    "PathReader",
    "is_paths",
    "iter_batches",
    "load_images",
    "stream_map",
    "streamed_pooled_features",
]

_DEFAULT_SIZE = 224


def is_paths(X):
    """Whether ``X`` is a 1-D sequence of file paths (str or os.PathLike).

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.nn._streaming import is_paths
    >>> is_paths(["a.png", "b.png"]), is_paths(np.zeros((2, 8, 8)))
    (True, False)
    """
    if isinstance(X, (str, bytes, os.PathLike)):
        return False
    if hasattr(X, "to_numpy"):  # pandas Series / one-column DataFrame
        X = X.to_numpy()
    if isinstance(X, np.ndarray):
        if X.dtype.kind not in "OUS":
            return False
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1 or len(X) == 0:
            return False
        return isinstance(X[0], (str, bytes, os.PathLike, np.str_))
    if isinstance(X, (list, tuple)) and len(X) > 0:
        return isinstance(X[0], (str, bytes, os.PathLike))
    return False


def _init_worker(worker_id):
    """DataLoader ``worker_init_fn``: one torch thread per decoding process."""
    torch.set_num_threads(1)


def _no_collate(batch):
    return batch


def _context():
    """Fork where it is safe and cheap (Linux); the platform default elsewhere."""
    if sys.platform.startswith("linux"):
        return "fork"
    return None


class PathReader:
    """The estimator's ``loader`` resolved: read a batch of paths into images.

    Parameters
    ----------
    loader : ImageLoader, Pipeline or None
        None: ``ImageLoader(size=size)``. A Pipeline: its first step is an
        ImageLoader, the other steps are applied to each decoded batch.
    size : int or None
        Side used when ``loader`` is None (default 224).
    estimator_name : str
        For error messages.

    Examples
    --------
    >>> from skcxr.nn._streaming import PathReader
    >>> reader = PathReader(None, size=32)
    >>> reader.size, reader.on_error, reader.num_workers
    (32, 'raise', 1)
    """

    def __init__(self, loader=None, size=None, estimator_name="estimator"):
        from ..preprocessing._loader import ImageLoader

        if loader is None:
            image_loader, steps = ImageLoader(size=size or _DEFAULT_SIZE), []
        elif isinstance(loader, ImageLoader):
            image_loader, steps = loader, []
        elif isinstance(loader, Pipeline) and isinstance(
            loader.steps[0][1], ImageLoader
        ):
            image_loader = loader.steps[0][1]
            steps = [step for _, step in loader.steps[1:] if step != "passthrough"]
        else:
            raise ValueError(
                f"{estimator_name}: loader must be None, an ImageLoader or a Pipeline "
                "whose first step is an ImageLoader (e.g. make_pipeline(ImageLoader("
                f"size=224), OtsuMasker())); got {type(loader).__name__}."
            )
        image_loader._validate_params()
        self.on_error = image_loader.on_error
        self.num_workers = resolve_n_jobs(image_loader.n_jobs)
        # one decoding thread per worker process; the output is always (n, H, W)
        self.image_loader = clone(image_loader).set_params(n_jobs=1, layout="nhw")
        self.steps = [clone(step) for step in steps]
        self.size = int(image_loader.size)
        self._fitted = not self.steps
        params = self.image_loader.get_params()
        params.pop("n_jobs")
        params.pop("on_error")
        self.key = joblib.hash(
            (params, [(type(s).__name__, s.get_params()) for s in self.steps])
        )

    def fit_steps(self, images):
        """Fit the per-batch steps on a batch of decoded images (stateless ones
        only record the image size)."""
        for step in self.steps:
            images = step.fit_transform(images)
        self._fitted = True
        return self

    def read(self, paths, steps=True):
        """Decode ``paths``: ``(images, kept, errors)``.

        ``images`` holds the readable files (rows ``kept`` of ``paths``) after
        the steps; ``errors`` the messages of the others. Never raises for an
        unreadable file: the caller applies ``on_error``.
        """
        images, failures = self.image_loader._read_all(paths, stop_at_first=False)
        failed = {i for i, _ in failures}
        kept = np.array([i for i in range(len(paths)) if i not in failed], np.intp)
        if len(kept) < len(paths):
            images = images[kept]
        if len(kept) and steps:
            for step in self.steps:
                images = step.transform(images)
        images = np.ascontiguousarray(images, dtype=np.float32)
        return images, kept, [failure.message for _, failure in failures]


class _BatchDataset(torch.utils.data.Dataset):
    """One item per batch of paths (a worker decodes a whole batch)."""

    def __init__(self, reader, paths, batches):
        self.reader = reader
        self.paths = paths
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        idx = self.batches[i]
        images, kept, errors = self.reader.read([self.paths[j] for j in idx])
        return idx, torch.from_numpy(images), kept, errors


_READ_ERROR_HINT = {
    "fit": "Remove the file(s), or give the loader on_error='skip' to leave "
    "unreadable files out of fit (with their targets).",
    "predict": "Every file given for prediction needs an output row, whatever the "
    "loader's on_error (which applies to fit): remove or replace the file(s).",
}


def _raise_read_error(errors, n_paths, what):
    listed = "; ".join(errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    raise ValueError(f"{listed}{more}. {what}")


def iter_batches(
    reader,
    paths,
    batch_size,
    *,
    order=None,
    on_error="raise",
    pin_memory=False,
    hint="fit",
):
    """Yield ``(rows, images)`` batches of decoded files, in order.

    ``rows`` are the positions in ``paths`` of the images (unreadable files
    are left out when ``on_error`` is "skip" or "warn"; "raise" raises a
    ValueError naming the file). ``order`` (an index array) gives the order
    of the paths to read, default all of them. ``hint`` ("fit" or "predict")
    says what the error of an unreadable file advises. Decoding runs in
    ``reader.num_workers`` DataLoader worker processes, shut down when the
    iteration ends or is abandoned.
    """
    order = np.arange(len(paths)) if order is None else np.asarray(order)
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if not batches:
        return
    if not reader._fitted:  # fit the steps on the first readable images
        for batch in batches:
            first, _, _ = reader.read([paths[j] for j in batch], steps=False)
            if len(first):
                reader.fit_steps(first)
                break
    workers = min(reader.num_workers, len(batches))
    if multiprocessing.current_process().daemon:  # e.g. a Dask worker: no children
        workers = 0
    dataset = _BatchDataset(reader, list(paths), batches)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_no_collate,
        pin_memory=pin_memory,
        worker_init_fn=_init_worker if workers else None,
        multiprocessing_context=_context() if workers else None,
        prefetch_factor=2 if workers else None,
        # its own generator: the loader's seed draw leaves torch's global one as is
        generator=torch.Generator().manual_seed(0),
    )
    iterator = iter(loader)
    n_failed, first_errors = 0, []
    try:
        for idx, images, kept, errors in iterator:
            if errors:
                if on_error == "raise":
                    _raise_read_error(errors, len(paths), _READ_ERROR_HINT[hint])
                n_failed += len(errors)
                first_errors.extend(errors[: max(0, 5 - len(first_errors))])
            yield idx[kept], images
    finally:
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        del iterator
    if n_failed and on_error == "warn":
        warnings.warn(
            f"Skipped {n_failed} of {len(order)} files that could not be read: "
            + "; ".join(first_errors),
            UserWarning,
            stacklevel=3,
        )


def stream_map(func, reader, paths, batch_size, pin_memory=False):
    """``func`` applied to the decoded images of each batch, concatenated.

    One output row per path: an unreadable file raises (as
    ``ImageLoader.transform`` does), whatever ``on_error`` says.
    """
    out = None
    batches = iter_batches(
        reader, paths, batch_size, pin_memory=pin_memory, hint="predict"
    )
    for rows, images in batches:
        result = func(images.numpy())
        if out is None:  # every path has a row: allocate once, not a list to join
            out = np.empty((len(paths), *result.shape[1:]), result.dtype)
        out[rows] = result
    if out is None:
        raise ValueError("X must contain at least one file path, got 0.")
    return out


def load_images(reader, paths, batch_size=64):
    """All readable files as one ``(n_kept, H, W)`` float32 array, and their rows.

    For the fits that need every image in memory; decoding still runs in the
    workers. ``reader.on_error`` applies: "skip"/"warn" leave files out.
    """
    out, rows, filled = None, [], 0
    for idx, images in iter_batches(
        reader, paths, batch_size, on_error=reader.on_error
    ):
        if out is None:
            out = np.empty((len(paths), *images.shape[1:]), np.float32)
        out[filled : filled + len(idx)] = images.numpy()
        filled += len(idx)
        rows.append(idx)
    if not filled:
        raise ValueError(f"None of the {len(paths)} files could be read.")
    rows = np.concatenate(rows)
    return (out if filled == len(paths) else out[:filled].copy()), rows


def fingerprint(paths):
    """``(path, mtime_ns, size)`` of every file (None, None when missing): the
    feature cache is invalidated when a file changes."""
    out = []
    for path in paths:
        path = os.path.abspath(os.fsdecode(os.fspath(path)))
        try:
            st = os.stat(path)
            out.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((path, None, None))
    return out


def _features(backbone_key, files, reader_key, batch_size, engine_key, *, backbone,
              runner, reader, paths, device, on_error, keep=None):  # fmt: skip
    from ._transfer_net import pooled_features

    if runner is None:

        def features_of(images):
            return pooled_features(
                backbone, backbone_key, images, device=device, batch_size=batch_size
            )

    else:  # the engine computes the one pooling engine_key names
        from ._runners import run_batched

        engine_runner, pooling = runner(), engine_key[-1]

        def features_of(images):
            return {pooling: run_batched(engine_runner, images, batch_size)}

    out, rows, filled = {}, np.empty(len(paths), np.intp), 0
    for idx, images in iter_batches(
        reader,
        paths,
        batch_size,
        on_error="raise" if on_error == "raise" else "skip",
        pin_memory=str(device).startswith("cuda"),
    ):
        if not len(idx):
            continue
        for pooling, feats in features_of(images.numpy()).items():
            if keep is not None and pooling != keep:
                continue
            if pooling not in out:  # one (n, C) float32 buffer, not a list to join
                out[pooling] = np.empty((len(paths), *feats.shape[1:]), np.float32)
            out[pooling][filled : filled + len(idx)] = feats
        rows[filled : filled + len(idx)] = idx
        filled += len(idx)
    if not filled:
        raise ValueError(f"None of the {len(paths)} files could be read.")
    # views: skipped files leave unused rows rather than a second copy
    return {k: v[:filled] for k, v in out.items()}, rows[:filled]


def streamed_pooled_features(
    backbone,
    backbone_key,
    reader,
    paths,
    *,
    device,
    batch_size,
    memory,
    runner=None,
    engine_key=None,
    pooling=None,
):
    """Pooled features of a frozen backbone on files, and the rows read.

    ``{"avg": (n, C), "max": (n, C)}`` from torch on ``device``; with
    ``runner`` (a callable returning the inference engine's runner of the
    pooled features, called only when the features are computed) and
    ``engine_key`` (its engine, precision, calibration images and pooling,
    the last of which names the one entry returned), from the engine.

    Cached in ``memory`` (a joblib.Memory or folder) keyed by ``backbone_key``,
    the files' paths, modification times and sizes, the loader's parameters,
    the batch size and ``engine_key``: a second fit on the same files decodes
    nothing. Files that cannot be read follow ``reader.on_error``.

    ``pooling`` ("avg" or "max"): without a cache location only that entry is
    kept (half the memory); a cache keeps both, so that either pooling hits it.
    """
    memory = check_memory(memory)
    no_cache = pooling is not None and getattr(memory, "location", "") is None
    compute = memory.cache(
        _features,
        ignore=["backbone", "runner", "reader", "paths", "device", "on_error", "keep"],
    )
    features, rows = compute(
        backbone_key,
        fingerprint(paths),
        reader.key,
        batch_size,
        engine_key,
        backbone=backbone,
        runner=runner,
        reader=reader,
        paths=list(paths),
        device=device,
        on_error=reader.on_error,
        keep=pooling if no_cache else None,
    )
    if reader.on_error == "warn" and len(rows) < len(paths):
        warnings.warn(
            f"Skipped {len(paths) - len(rows)} of {len(paths)} files that could "
            "not be read.",
            UserWarning,
            stacklevel=3,
        )
    return features, rows


def as_files(estimator, X, *, reset):
    """``(reader, paths)`` when ``X`` is a list of file paths, else None.

    With ``reset`` (in ``fit``) sets ``n_features_in_`` and ``image_shape_``
    from the loader's size; otherwise checks them. ``loader=None`` reads at
    the fitted image size (224 in ``fit``).
    """
    if not is_paths(X):
        return None
    from sklearn.utils.validation import check_is_fitted

    from ..preprocessing._loader import _as_paths

    paths = _as_paths(X)
    name = type(estimator).__name__
    if reset:
        reader = PathReader(estimator.loader, estimator_name=name)
        estimator.image_shape_ = (reader.size, reader.size)
        estimator.n_features_in_ = reader.size * reader.size
        return reader, paths
    check_is_fitted(estimator)
    fitted = tuple(estimator.image_shape_)
    reader = PathReader(estimator.loader, size=fitted[0], estimator_name=name)
    if (reader.size, reader.size) != fitted:
        raise ValueError(
            f"loader reads images of size {reader.size}x{reader.size}, but {name} "
            f"was fitted on images of size {fitted[0]}x{fitted[1]}."
        )
    return reader, paths


def weights_key(name, weights, seed):
    """What identifies a registry backbone's weights, for the feature cache."""
    if weights is None:
        return (name, "random", seed)
    if isinstance(weights, str) and weights == "imagenet":
        import torchvision

        return (name, "imagenet", torchvision.__version__)
    st = os.stat(weights)
    return (name, os.path.abspath(os.fspath(weights)), st.st_mtime_ns, st.st_size)
