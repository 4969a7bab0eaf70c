"""Read image files (PNG, JPEG, TIFF, DICOM) into the image data contract."""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ..utils._validation import restore_layout

__all__ = ["ImageLoader"]

_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_PIL_SUFFIXES = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp")
_BICUBIC = Image.Resampling.BICUBIC


class _ReadError(ValueError):
    """A file that could not be read; its message names the file."""


def _as_paths(X):
    """Validate ``X`` as a 1-D sequence of paths and return a list of str."""
    if isinstance(X, (str, bytes, os.PathLike)):
        raise ValueError(
            "X must be a 1-D array-like of file paths, got a single path "
            f"{os.fsdecode(X)!r}; wrap it in a list."
        )
    if hasattr(X, "to_numpy"):  # pandas Series / DataFrame
        X = X.to_numpy()
    try:
        arr = np.asarray(X, dtype=object)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be a 1-D array-like of file paths ({exc}).") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            "X must be a 1-D array-like of file paths (or one column of paths), "
            f"got an array of shape {arr.shape}. ImageLoader reads files; images "
            "already in memory go straight to the next estimator."
        )
    if arr.shape[0] == 0:
        raise ValueError("X must contain at least one file path, got 0.")
    paths = []
    for item in arr:
        if not isinstance(item, (str, bytes, os.PathLike)):
            raise ValueError(
                "X must contain file paths (str or os.PathLike), got an element of "
                f"type {type(item).__name__}: {item!r}."
            )
        paths.append(os.fsdecode(os.fspath(item)))
    return paths


def _is_dicom(path):
    lower = path.lower()
    if lower.endswith(_DICOM_SUFFIXES):
        return True
    if lower.endswith(_PIL_SUFFIXES):  # no extra open() for the common formats
        return False
    with open(path, "rb") as fh:
        head = fh.read(132)
    return head[128:132] == b"DICM"


def _check_pixels(n_pixels, max_pixels, what):
    if max_pixels is not None and n_pixels > max_pixels:
        raise _ReadError(
            f"{what} has {n_pixels} pixels, more than max_pixels={max_pixels} "
            "(a possible decompression bomb); raise max_pixels to read it."
        )


def _modality_range(ds):
    """Range of the values after the modality transform (as pydicom's windowing)."""
    if ds.get("ModalityLUTSequence"):
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = (
            low * float(slope) + float(intercept),
            high * float(slope) + float(intercept),
        )
    return min(low, high), max(low, high)


def _read_dicom(path, max_pixels):
    """DICOM -> float32 (H, W) in [0, 1]: modality, VOI, presentation steps."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

    ds = pydicom.dcmread(path, force=True)
    if "PixelData" not in ds:
        raise _ReadError("the DICOM file has no pixel data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    _check_pixels(
        int(ds.Rows) * int(ds.Columns) * frames, max_pixels, "the DICOM image"
    )
    if frames > 1:
        raise _ReadError(f"multi-frame DICOM ({frames} frames) is not supported")
    arr = ds.pixel_array
    if arr.ndim == 3:  # colour (pydicom converts YBR to RGB): ITU-R 601 luma
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(arr / (2 ** int(ds.BitsStored) - 1), 0, 1).astype(np.float32)
    if int(ds.get("PixelRepresentation", 0)) == 0:  # drop bits above BitsStored
        arr = arr & np.asarray(2 ** int(ds.BitsStored) - 1, dtype=arr.dtype)
    arr = apply_modality_lut(arr, ds)
    low, high = _modality_range(ds)
    if ds.get("VOILUTSequence"):
        arr = apply_voi(arr, ds)
        low, high = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        arr = apply_windowing(arr, ds)
    arr = (np.asarray(arr, dtype=np.float64) - low) / max(high - low, 1e-12)
    arr = np.clip(arr, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = 1.0 - arr  # MONOCHROME1: low values are bright
    return arr.astype(np.float32)


def _open_pil(path, max_pixels, draft_size):
    """Open with PIL -> an "L" (8-bit) or "F" (float in [0, 1]) image.

    ``draft_size(width, height)`` gives the smallest decoded size the resize needs.
    """
    with Image.open(path) as im:
        _check_pixels(im.width * im.height, max_pixels, "the image")
        if draft_size is not None and im.format == "JPEG":
            im.draft("L", draft_size(*im.size))  # DCT-domain downscaling while decoding
        mode = im.mode
        if mode == "L":
            im.load()
            return im.copy()  # the opened image is closed when the block ends
        if (mode == "P" and "transparency" in im.info) or mode == "PA":
            im, mode = im.convert("RGBA"), "RGBA"
        if mode in ("LA", "La", "RGBA", "RGBa"):
            rgba = im.convert("LA") if mode in ("LA", "La") else im.convert("RGBA")
            luma = (
                rgba.getchannel("L")
                if rgba.mode == "LA"
                else rgba.convert("RGB").convert("L")
            )
            black = Image.new("L", rgba.size, 0)
            return Image.composite(luma, black, rgba.getchannel("A"))
        if mode.startswith("I;16"):
            arr = np.asarray(im).astype(np.float32) / 65535.0
            return Image.fromarray(arr, mode="F")
        if mode in ("I", "F"):
            arr = np.asarray(im).astype(np.float64)
            high = 1.0 if mode == "F" else 65535.0
            low_v, high_v = float(arr.min()), float(arr.max())
            if not (np.isfinite(arr).all() and low_v >= 0 and high_v <= high):
                raise _ReadError(
                    f"{mode!r}-mode pixels range over [{low_v:g}, {high_v:g}]; "
                    f"expected [0, {high:g}]"
                )
            return Image.fromarray((arr / high).astype(np.float32), mode="F")
        return im.convert("L")  # "1", "P", "RGB", "CMYK", "YCbCr", ...


class ImageLoader(TransformerMixin, BaseEstimator):
    """Read image files into grayscale float32 images in [0, 1].

    The first step of a pipeline that starts from files: ``X`` is a 1-D
    array-like of paths (str or :class:`os.PathLike`; a one-column 2-D array or
    DataFrame also works) and :meth:`transform` returns images of shape
    ``(n_files, size, size)`` in the data contract of every other estimator.
    The loader is stateless: :meth:`fit` only validates the parameters.

    Formats and intensities:

    * PNG, JPEG, TIFF, BMP, ... through Pillow. 8-bit values are divided by 255,
      16-bit grayscale (``I;16`` modes) by 65535, 32-bit integer images must lie in
      [0, 65535] and float images in [0, 1]. Colour (RGB, CMYK, palette) becomes
      ITU-R 601 luminance. An alpha channel (RGBA, LA, palette with transparency)
      is composited over black: transparent pixels read as 0 (air), opaque ones
      keep their luminance. Multi-page files give their first page.
    * DICOM through pydicom: the bits above ``BitsStored`` are dropped, the
      modality transform (``RescaleSlope``/``RescaleIntercept`` or a modality
      LUT) and the VOI transform (a VOI LUT, else the first window
      ``WindowCenter``/``WindowWidth``) are applied when present, values are
      scaled by the full range the file can hold (not per image), and
      ``MONOCHROME1`` images are inverted so that bone is always bright.

    Parameters
    ----------
    size : int, default=224
        Side of the square output images.
    resize : {"square", "pad", "crop", "region"}, default="square"
        How an image becomes ``size x size``: ``"square"`` resizes the whole
        image (aspect ratio not kept); ``"pad"`` keeps the aspect ratio and pads
        the short side with black; ``"crop"`` keeps the aspect ratio and takes
        the centred square; ``"region"`` takes the part of the image named by
        ``region`` and resizes it to the square.
    region : tuple of 4 floats (top, bottom, left, right), default=None
        Fractions of the image height (top, bottom) and width (left, right)
        kept by ``resize="region"``, e.g. ``(0.5, 1.0, 0.0, 1.0)`` for the
        lower half of the chest (the lower lung fields). Required by
        ``resize="region"``, ignored otherwise.
    layout : {"nhw", "n1hw", "flat"}, default="nhw"
        Output layout: ``(n, size, size)``, ``(n, 1, size, size)`` or
        ``(n, size * size)``.
    draft : bool, default=True
        Let the JPEG decoder downscale by 1/2, 1/4 or 1/8 in the DCT domain
        to the smallest size still at least as large as needed, before the
        final resize. Several times faster on large JPEGs; results differ
        slightly from decoding at full size (mean absolute difference ~3e-3 on
        real radiographs).
    n_jobs : int, default=None
        Threads decoding files at once (Pillow and pydicom's decoders release
        the GIL). ``None`` means 1, ``-1`` all CPU cores.
    on_error : {"raise", "warn", "skip"}, default="raise"
        What to do with a file that cannot be read (missing, corrupt,
        truncated, not an image, too large). ``"raise"`` raises a
        :class:`ValueError` naming the file. ``"skip"`` leaves the file out
        and ``"warn"`` does the same with a warning naming the files. A skip
        never shifts rows silently: after :meth:`transform` the attributes
        ``kept_indices_`` and ``failed_paths_`` say which rows came out (index
        ``y`` with ``kept_indices_``, or use :meth:`load` which returns the
        matching targets), and ``fit_transform(X, y)`` with targets, which is
        what a :class:`~sklearn.pipeline.Pipeline` calls during ``fit``,
        raises instead of returning fewer rows than ``y``.
    max_pixels : int or None, default=50_000_000
        Refuse (as an unreadable file) an image whose header declares more
        pixels than this, before decoding it: a guard against decompression
        bombs. The largest radiography detectors give ~4300 x 4300 = 18.5 M
        pixels, so the default leaves more than 2x headroom while bounding the
        memory of one decode (~200 MB as float32). ``None`` disables the check
        (Pillow's own global limit still applies; this class never changes it).

    Attributes
    ----------
    kept_indices_ : ndarray of shape (n_kept,)
        Set by :meth:`transform`: the rows of the last ``X`` that were read, in
        order. All rows unless ``on_error`` skipped some.
    failed_paths_ : list of str
        Set by :meth:`transform`: the files of the last ``X`` that could not be read.
    errors_ : list of str
        Set by :meth:`transform`: why each of ``failed_paths_`` could not be read.

    See Also
    --------
    skcxr.datasets.load_kermany : Paths and labels of the Kermany folder layout.
    skcxr.datasets.load_sample_images : The real sample shipped with skcxr.

    Notes
    -----
    ``n_features_in_`` is not set: the input is one path per sample, not
    numeric features. The output of :meth:`transform` is float32 whatever the
    file's bit depth.

    Examples
    --------
    >>> from skcxr import ImageLoader
    >>> from skcxr.datasets import load_sample_images
    >>> paths, y = load_sample_images()
    >>> images = ImageLoader(size=64).fit_transform(paths[:2])
    >>> images.shape, images.dtype, float(images.min()) >= 0, float(images.max()) <= 1
    ((2, 64, 64), dtype('float32'), True, True)
    >>> lower = ImageLoader(size=32, resize="region", region=(0.5, 1.0, 0.0, 1.0))
    >>> lower.transform(paths[:2]).shape
    (2, 32, 32)
    """

    _parameter_constraints = {
        "size": [Interval(Integral, 1, None, closed="left")],
        "resize": [StrOptions({"square", "pad", "crop", "region"})],
        "region": [tuple, list, np.ndarray, None],
        "layout": [StrOptions({"nhw", "n1hw", "flat"})],
        "draft": ["boolean"],
        "n_jobs": [Integral, None],
        "on_error": [StrOptions({"raise", "warn", "skip"})],
        "max_pixels": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        *,
        size=224,
        resize="square",
        region=None,
        layout="nhw",
        draft=True,
        n_jobs=None,
        on_error="raise",
        max_pixels=50_000_000,
    ):
        self.size = size
        self.resize = resize
        self.region = region
        self.layout = layout
        self.draft = draft
        self.n_jobs = n_jobs
        self.on_error = on_error
        self.max_pixels = max_pixels

    def _check_region(self):
        if self.resize != "region":
            return None
        if self.region is None:
            raise ValueError(
                "resize='region' needs region=(top, bottom, left, right) as fractions "
                "of the image, e.g. (0.5, 1.0, 0.0, 1.0) for the lower half."
            )
        region = tuple(self.region)
        ok = len(region) == 4 and all(isinstance(v, Real) for v in region)
        if ok:
            top, bottom, left, right = (float(v) for v in region)
            ok = 0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0
        if not ok:
            raise ValueError(
                "region must be (top, bottom, left, right) fractions with 0 <= top < "
                f"bottom <= 1 and 0 <= left < right <= 1, got {self.region!r}."
            )
        return top, bottom, left, right

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameters and ``X``; no file is read.

        Parameters
        ----------
        X : array-like of shape (n_samples,) of str or os.PathLike
            Image file paths.
        y : None
            Ignored.

        Returns
        -------
        self : ImageLoader
        """
        self._check_region()
        _as_paths(X)
        return self

    def __sklearn_is_fitted__(self):
        return True  # stateless

    def _draft_size(self, region):
        """(width, height) -> the smallest decoded size giving full resolution."""
        size = self.size
        if self.resize == "pad":  # only the longest side must reach size
            return lambda w, h: (
                max(1, int(np.ceil(size * w / max(w, h)))),
                max(1, int(np.ceil(size * h / max(w, h)))),
            )
        top, bottom, left, right = region or (0.0, 1.0, 0.0, 1.0)
        need = (
            int(np.ceil(size / (right - left))),
            int(np.ceil(size / (bottom - top))),
        )
        return lambda w, h: need

    def _read_one(self, path, region):
        size = self.size
        try:
            if _is_dicom(path):
                im = Image.fromarray(_read_dicom(path, self.max_pixels), mode="F")
            else:
                im = _open_pil(
                    path,
                    self.max_pixels,
                    self._draft_size(region) if self.draft else None,
                )
            width, height = im.size
            if self.resize == "pad":
                scale = size / max(width, height)
                new = (max(1, round(width * scale)), max(1, round(height * scale)))
                canvas = Image.new(im.mode, (size, size), 0)
                small = im.resize(new, _BICUBIC, reducing_gap=3.0)
                canvas.paste(small, ((size - new[0]) // 2, (size - new[1]) // 2))
                im = canvas
            else:
                # crop first (whole pixels), so no pixel outside the box leaks in
                if self.resize == "crop":
                    side = min(width, height)
                    x0, y0 = (width - side) // 2, (height - side) // 2
                    im = im.crop((x0, y0, x0 + side, y0 + side))
                elif self.resize == "region":
                    top, bottom, left, right = region
                    x0 = min(round(left * width), width - 1)
                    y0 = min(round(top * height), height - 1)
                    x1 = max(round(right * width), x0 + 1)
                    y1 = max(round(bottom * height), y0 + 1)
                    im = im.crop((x0, y0, x1, y1))
                im = im.resize((size, size), _BICUBIC, reducing_gap=3.0)
            if im.mode == "L":
                return np.asarray(im).astype(np.float32) * np.float32(1 / 255)
            return np.clip(
                np.asarray(im, dtype=np.float32), 0.0, 1.0
            )  # bicubic overshoot
        except MemoryError:
            raise
        except Exception as exc:  # any decoder failure becomes an error naming the file
            if isinstance(exc, FileNotFoundError):
                reason = "no such file"
            elif isinstance(exc, IsADirectoryError):
                reason = "is a directory"
            elif isinstance(exc, Image.UnidentifiedImageError):
                reason = "not an image file Pillow or pydicom can read"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            error = _ReadError(f"Could not read image file {path!r}: {reason}")
            error.__cause__ = exc
            return error

    def _read_all(self, paths):
        region = self._check_region()
        n = len(paths)
        n_jobs = 1 if self.n_jobs is None else self.n_jobs
        if n_jobs < 0:
            n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
        n_jobs = max(1, min(n_jobs, n))
        out = np.empty((n, self.size, self.size), dtype=np.float32)
        failures = []

        def handle(i, result):
            if isinstance(result, _ReadError):
                if self.on_error == "raise":
                    raise result
                failures.append((i, str(result)))
            else:
                out[i] = result

        if n_jobs == 1:
            for i, path in enumerate(paths):
                handle(i, self._read_one(path, region))
        else:
            executor = ThreadPoolExecutor(max_workers=n_jobs)
            try:
                results = executor.map(self._read_one, paths, [region] * n)
                for i, result in enumerate(results):
                    handle(i, result)
            finally:
                executor.shutdown(wait=True, cancel_futures=True)
        return out, failures

    def transform(self, X):
        """Read the files.

        Parameters
        ----------
        X : array-like of shape (n_samples,) of str or os.PathLike
            Image file paths.

        Returns
        -------
        images : ndarray of shape (n_kept, size, size), dtype float32
            Values in [0, 1], in the ``layout`` asked for. ``n_kept`` is
            ``n_samples`` unless ``on_error`` skipped files; the rows kept are
            ``kept_indices_``.
        """
        self._validate_params()
        paths = _as_paths(X)
        for name in ("kept_indices_", "failed_paths_", "errors_"):
            self.__dict__.pop(name, None)  # no stale record if this call raises
        out, failures = self._read_all(paths)
        failed = {i for i, _ in failures}
        self.kept_indices_ = np.array(
            [i for i in range(len(paths)) if i not in failed], dtype=np.intp
        )
        self.failed_paths_ = [paths[i] for i, _ in failures]
        self.errors_ = [message for _, message in failures]
        if failures:
            listed = "; ".join(self.errors_[:5]) + (" ..." if len(failures) > 5 else "")
            if len(failures) == len(paths):
                raise ValueError(
                    f"None of the {len(paths)} files could be read: {listed}"
                )
            if self.on_error == "warn":
                warnings.warn(
                    f"ImageLoader skipped {len(failures)} of {len(paths)} files that "
                    f"could not be read (see kept_indices_, failed_paths_): {listed}",
                    UserWarning,
                    stacklevel=2,
                )
            out = out[self.kept_indices_]
        return restore_layout(out, self.layout)

    def fit_transform(self, X, y=None):
        """Validate the parameters and read the files.

        Parameters
        ----------
        X : array-like of shape (n_samples,) of str or os.PathLike
            Image file paths.
        y : array-like of shape (n_samples,), default=None
            Targets. When given and a file is skipped (``on_error`` "skip" or
            "warn"), a :class:`ValueError` is raised instead of returning fewer
            images than targets; use :meth:`load` to drop the matching targets.

        Returns
        -------
        images : ndarray of shape (n_kept, size, size), dtype float32
        """
        images = self.fit(X).transform(X)
        if y is not None and len(self.failed_paths_):
            raise ValueError(
                f"ImageLoader(on_error={self.on_error!r}) could not read "
                f"{len(self.failed_paths_)} file(s) ({self.failed_paths_[:3]}) while "
                "fitting with targets y; returning fewer images than targets would "
                "misalign X and y. Use `images, y = loader.load(X, y)` before the "
                "pipeline, or remove the unreadable files."
            )
        return images

    def load(self, X, y=None):
        """Read the files and return the targets of the images kept.

        The safe way to skip unreadable files with ``on_error="skip"`` or
        ``"warn"``: the targets of skipped files are dropped with them. (This is
        not named ``fit_resample`` on purpose: imbalanced-learn's pipeline
        refuses a step that has both ``transform`` and ``fit_resample`` and
        would skip a sampler at predict time.)

        Parameters
        ----------
        X : array-like of shape (n_samples,) of str or os.PathLike
            Image file paths.
        y : array-like of shape (n_samples,), default=None
            Targets (any indexable: ndarray, list, pandas Series / DataFrame).

        Returns
        -------
        images : ndarray of shape (n_kept, size, size), dtype float32
        y_kept : array-like of shape (n_kept,) or None
            ``y`` at ``kept_indices_``; None when ``y`` is None.

        Examples
        --------
        >>> from skcxr import ImageLoader
        >>> from skcxr.datasets import load_sample_images
        >>> paths, y = load_sample_images()
        >>> images, y_kept = ImageLoader(size=32, on_error="skip").load(
        ...     list(paths[:2]) + ["missing.png"], list(y[:2]) + ["virus"])
        >>> images.shape, [str(label) for label in y_kept]
        ((2, 32, 32), ['normal', 'normal'])
        """
        from sklearn.utils import _safe_indexing

        if y is not None and len(y) != len(X):
            raise ValueError(f"X has {len(X)} paths but y has {len(y)} targets.")
        images = self.fit(X).transform(X)
        y_kept = None if y is None else _safe_indexing(y, self.kept_indices_)
        return images, y_kept

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False  # one path per sample, not numeric features
        tags.input_tags.string = True
        tags.requires_fit = False
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = []
        return tags
