"""Read image files (PNG, JPEG, TIFF, DICOM) into the image data contract."""

import io
import os
import re
import stat
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions

from ..utils._parallel import resolve_n_jobs
from ..utils._param_validation import IntInterval
from ..utils._validation import restore_layout

__all__ = ["ImageLoader"]

_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_BICUBIC = Image.Resampling.BICUBIC
# Large images are first shrunk by an integer box filter (Image.reduce) while
# at least 2x the target remains, then resized with bicubic: about 2x faster
# than one bicubic resize from 1024 px, within ~1e-3 (mean) of it on radiographs.
_REDUCING_GAP = 2.0
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# PNG chunks that change no pixel value for Pillow or OpenCV (both ignore
# gamma, chromaticity and ICC data). Text chunks are fine too, except those
# Pillow reads an orientation from (eXIf is the EXIF chunk itself): those stay
# with Pillow when exif_transpose=True.
_PIXEL_NEUTRAL_CHUNKS = frozenset(
    (b"IHDR", b"IDAT", b"IEND", b"pHYs", b"tIME", b"gAMA", b"cHRM", b"sRGB", b"iCCP")
)
_TEXT_CHUNKS = frozenset((b"tEXt", b"zTXt", b"iTXt"))
_ORIENTATION_KEYWORDS = frozenset(
    (b"exif", b"Raw profile type exif", b"XML:com.adobe.xmp")
)
_NOT_IMPORTED = object()
_cv2 = _NOT_IMPORTED  # OpenCV, imported on first use; None when not installed
_ORIENTATION = ExifTags.Base.Orientation
_TURNS_90 = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# elements pydicom needs to decode pixel data
_DICOM_REQUIRED = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
)
# what a file is, from its first bytes: (magic number at offset 0, description)
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"II+\x00", "a BigTIFF image"),
    (b"MM\x00+", "a BigTIFF image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
)
_OTHER_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
)
_SPECIAL_FILES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_PIP_NAMES = {"gdcm": "python-gdcm"}  # pydicom names plugins by import name


class _ReadError(ValueError):
    """Why a file could not be read (internal: re-raised as a plain ValueError)."""


class _Failure(NamedTuple):
    """A file that could not be read, and why."""

    path: str
    reason: str
    cause: BaseException | None  # a foreign exception worth chaining, or None

    @property
    def message(self):
        return f"Could not read image file {self.path!r}: {self.reason}"


def _listing(failures, limit=5):
    """The failed files and their reasons, for [(row, _Failure), ...], on one line."""
    listed = "; ".join(f"{f.path!r} ({f.reason})" for _, f in failures[:limit])
    if len(failures) > limit:
        listed += f"; and {len(failures) - limit} more"
    return listed


def _one_line(exc):
    """A foreign exception as one short line, without object addresses."""
    text = " ".join(str(exc).split())
    return re.sub(r" ?<[\w.]+ object at 0x[0-9a-fA-F]+>", "", text)


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
    for i, item in enumerate(arr):
        if not isinstance(item, (str, bytes, os.PathLike)):
            raise ValueError(
                "X must contain file paths (str or os.PathLike), got an element of "
                f"type {type(item).__name__}: {_one_line(repr(item))[:80]}."
            )
        if isinstance(item, bytes) and (b"\0" in item or len(item) > 4096):
            raise ValueError(
                f"X[{i}] is {len(item)} bytes of data (the content of a file?), "
                "not a file path: write it to a file and pass its path."
            )
        paths.append(os.fsdecode(os.fspath(item)))
    return paths


def _content(head):
    """What the first 132 bytes of a file say it holds, as a phrase."""
    if not head:
        return "the file is empty (0 bytes)"
    if head[128:132] == b"DICM":
        return "its content is a DICOM file"
    for magic, what in _IMAGE_SIGNATURES + _OTHER_SIGNATURES:
        if head.startswith(magic):
            return f"its content is {what}"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "its content is a WebP image"
    if head.lstrip()[:14].lower().startswith((b"<!doctype html", b"<html")):
        return "its content is an HTML page"
    printable = sum(32 <= b < 127 or b in b"\t\n\r" for b in head)
    if b"\x00" not in head and printable >= 0.95 * len(head):
        return "its content is text"
    return f"its content is not a known image format (first bytes {head[:8].hex(' ')})"


def _is_image_magic(head):
    return any(head.startswith(magic) for magic, _ in _IMAGE_SIGNATURES) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )


def _is_dicom(path, head):
    """DICOM by content (the 'DICM' marker); by name only for content no image has."""
    if head[128:132] == b"DICM":
        return True
    return path.lower().endswith(_DICOM_SUFFIXES) and not _is_image_magic(head)


def _check_regular_file(path):
    """Refuse directories, FIFOs, sockets and devices before opening (a FIFO blocks)."""
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        return
    kind = next((what for test, what in _SPECIAL_FILES if test(mode)), "a special file")
    raise _ReadError(f"it is {kind}, not a regular file")


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


def _install_hint(decoder):
    """'pip install pylibjpeg pylibjpeg-libjpeg (or instead: python-gdcm)'."""
    options = []
    for entry in decoder.missing_dependencies:  # "gdcm - requires gdcm>=3.0.10"
        needs = entry.partition(" - requires ")[2].split(" and ")
        names = [re.match(r"[\w.-]*", need.strip()).group() for need in needs]
        names = [_PIP_NAMES.get(n, n) for n in names if n and n != "numpy"]
        if names:
            options.append(" ".join(names))
    if not options:
        return "a pixel data plugin for pydicom"
    options.sort(key=lambda names: not names.startswith("pylibjpeg"))
    others = f" (or instead: {'; '.join(options[1:])})" if len(options) > 1 else ""
    return f"pip install {options[0]}{others}"


def _decode_pixels(ds):
    """``ds.pixel_array``; a missing decoder plugin gives one line naming it."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None or not uid.is_transfer_syntax or not uid.is_compressed:
        return ds.pixel_array
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise _ReadError(f"pydicom cannot decode {uid.name} pixel data") from None
    if not decoder.is_available:
        raise _ReadError(
            f"its pixel data is compressed as {uid.name} and no installed package "
            f"can decode it: {_install_hint(decoder)}"
        )
    try:
        return ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - several plugins, several types
        raise _ReadError(
            f"its {uid.name} pixel data could not be decoded ({_one_line(exc)})"
        ) from None


def _dicom_int(ds, keyword, default):
    """An integer attribute of the DICOM header, or a read error naming it."""
    value = ds.get(keyword, default)
    try:
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError):
        raise _ReadError(
            f"its DICOM attribute {keyword} is {str(value)!r}, not an integer"
        ) from None


def _read_dicom(fh, head, max_pixels):
    """DICOM -> float32 (H, W) in [0, 1]: modality, VOI, presentation steps."""
    import pydicom
    from pydicom.pixels import (
        apply_color_lut,
        apply_modality_lut,
        apply_voi,
        apply_windowing,
    )

    marked = head[128:132] == b"DICM"
    not_dicom = f"not a DICOM file (no 'DICM' marker at byte 128): {_content(head)}"
    try:
        ds = pydicom.dcmread(fh, force=True)
    except Exception:
        if marked:
            raise
        raise _ReadError(not_dicom) from None
    if "PixelData" not in ds:
        if not marked:
            raise _ReadError(not_dicom)
        sop = ds.get("SOPClassUID")
        what = f" (it is a {sop.name} object)" if sop is not None else ""
        raise _ReadError(f"the DICOM file has no pixel data{what}")
    missing = [keyword for keyword in _DICOM_REQUIRED if keyword not in ds]
    if missing:
        raise _ReadError(
            f"the DICOM header lacks {', '.join(missing)}, needed to decode its "
            "pixel data"
        )
    frames = _dicom_int(ds, "NumberOfFrames", 1)
    _check_pixels(
        int(ds.Rows) * int(ds.Columns) * frames, max_pixels, "the DICOM image"
    )
    if frames > 1:
        raise _ReadError(f"multi-frame DICOM ({frames} frames) is not supported")
    arr = _decode_pixels(ds)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    bits = 2 ** _dicom_int(ds, "BitsStored", 8) - 1
    if photometric == "PALETTE COLOR":  # the pixels index a colour lookup table
        arr = apply_color_lut(arr, ds)
        bits = 2 ** int(ds.RedPaletteColorLookupTableDescriptor[2]) - 1
    if arr.ndim == 3:  # colour (pydicom converts YBR to RGB): ITU-R 601 luma
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(arr / bits, 0, 1).astype(np.float32)
    if ds.get("RescaleSlope") is not None and float(ds.RescaleSlope) == 0:
        raise _ReadError(
            "its RescaleSlope is 0, which maps every pixel to the same value"
        )
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
    if photometric == "MONOCHROME1":
        arr = 1.0 - arr  # MONOCHROME1: low values are bright
    return arr.astype(np.float32)


def _png_decoder():
    """OpenCV's ``cv2`` module if it can be imported (an optional extra), else None."""
    global _cv2
    if _cv2 is _NOT_IMPORTED:
        try:
            import cv2
        except ImportError:
            cv2 = None
        _cv2 = cv2
    return _cv2


def _fast_png_header(head):
    """(width, height, bit depth) of a PNG the fast path can read, else None.

    Only non-interlaced 8- and 16-bit grayscale PNGs (the format of NIH
    ChestX-ray14), read from the IHDR chunk in the first bytes of the file.
    """
    if len(head) < 33 or not head.startswith(_PNG_MAGIC) or head[12:16] != b"IHDR":
        return None
    width, height, depth, color, _, _, interlace = struct.unpack(
        ">IIBBBBB", head[16:29]
    )
    if color != 0 or depth not in (8, 16) or interlace != 0:
        return None
    return width, height, depth


def _png_chunks_allowed(data, exif_transpose):
    """True if ``data`` is a whole PNG with no chunk the fast path must leave.

    That is a chunk that may change the pixels Pillow gives (transparency,
    palette, significant bits, ...) or, with ``exif_transpose``, one that may
    carry an orientation.
    """
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind in _TEXT_CHUNKS:  # the keyword ends at the first NUL byte
            keyword = data[pos + 8 : pos + 8 + min(length, 80)].split(b"\0", 1)[0]
            if exif_transpose and keyword in _ORIENTATION_KEYWORDS:
                return False
        elif kind == b"eXIf":
            if exif_transpose:
                return False
        elif kind not in _PIXEL_NEUTRAL_CHUNKS:
            return False
        pos += 12 + length
        if kind == b"IEND":
            return pos <= end
    return False  # truncated: Pillow says what is wrong


def _decode_png_fast(data, header, max_pixels, exif_transpose):
    """Decode a grayscale PNG with OpenCV -> an "L" or "F" image, or None.

    None means "use Pillow": OpenCV is not installed, or the file has a chunk
    that could change what Pillow reads, or OpenCV cannot decode it (Pillow's
    error then names the problem). The pixels are those Pillow reads: PNG is
    lossless and both libraries ignore gamma and colour-profile chunks.
    """
    cv2 = _png_decoder()
    if cv2 is None:
        return None
    width, height, depth = header
    if not _png_chunks_allowed(data, exif_transpose):
        return None
    _check_pixels(width * height, max_pixels, "the image")
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        return None  # Pillow's own decompression-bomb warning or error applies
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if arr is None or arr.shape != (height, width):
        return None
    if depth == 8:
        return Image.fromarray(arr, "L")
    return Image.fromarray(arr.astype(np.float32) / 65535.0, "F")


def _open_pil(fh, head, max_pixels, draft_size, exif_transpose):
    """Open with PIL -> an "L" (8-bit) or "F" (float in [0, 1]) image.

    ``draft_size(width, height)`` gives the smallest decoded size the resize
    needs, in the orientation of the output.
    """
    try:
        opened = Image.open(fh)
    except Image.UnidentifiedImageError:
        raise _ReadError(
            f"not an image file Pillow or pydicom can read: {_content(head)}"
        ) from None
    with opened as im:
        _check_pixels(im.width * im.height, max_pixels, "the image")
        orientation = im.getexif().get(_ORIENTATION, 1) if exif_transpose else 1
        if draft_size is not None and im.format == "JPEG":
            if orientation in _TURNS_90:  # the decoded width becomes the height
                width, height = draft_size(im.height, im.width)
                request = (height, width)
            else:
                request = draft_size(im.width, im.height)
            im.draft("L", request)  # DCT-domain downscaling while decoding
        im.load()
        if orientation != 1 and im.getexif().get(_ORIENTATION, 1) != 1:
            # asked again after decoding: Pillow applies a TIFF file's tag itself
            im = ImageOps.exif_transpose(im)  # the picture as a viewer shows it
        mode = im.mode
        if mode == "L":
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
            if not np.isfinite(arr).all():
                n_bad = int((~np.isfinite(arr)).sum())
                raise _ReadError(
                    f"{n_bad} of its {arr.size} {mode!r}-mode pixels are NaN or "
                    "infinite"
                )
            low_v, high_v = float(arr.min()), float(arr.max())
            if not (low_v >= 0 and high_v <= high):
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

    * The format comes from the file's content, not its name: a DICOM file is
      recognised by the ``DICM`` marker at byte 128 (or, lacking it, by a
      ``.dcm``/``.dicom``/``.dic`` name), anything else goes to Pillow.
    * PNG, JPEG, TIFF, BMP, ... through Pillow. 8-bit values are divided by 255,
      16-bit grayscale (``I;16`` modes) by 65535, 32-bit integer images must lie in
      [0, 65535] and float images in [0, 1]. Colour (RGB, CMYK, palette) becomes
      ITU-R 601 luminance. An alpha channel (RGBA, LA, palette with transparency)
      is composited over black: transparent pixels read as 0 (air), opaque ones
      keep their luminance. Multi-page files give their first page. An EXIF
      ``Orientation`` tag (a phone or camera photo of a film) is applied, so
      the image comes out as a viewer shows it (see ``exif_transpose``).
    * DICOM through pydicom: the bits above ``BitsStored`` are dropped, the
      modality transform (``RescaleSlope``/``RescaleIntercept`` or a modality
      LUT) and the VOI transform (a VOI LUT, else the first window
      ``WindowCenter``/``WindowWidth``) are applied when present, values are
      scaled by the full range the file can hold (not per image), and
      ``MONOCHROME1`` images are inverted so that bone is always bright.
      Compressed pixel data needs pydicom's decoder plugins (e.g.
      ``pip install pylibjpeg pylibjpeg-libjpeg``); the error says which.

    Unreadable files: a file that cannot be read (missing, corrupt,
    truncated, not an image, too large, or not a regular file: a directory,
    named pipe, socket or device is refused before it is opened) gives a
    :class:`ValueError` naming the file. The rows never shift:

    * :meth:`transform` and :meth:`fit_transform`, hence every
      :class:`~sklearn.pipeline.Pipeline` ``fit``, ``predict``, ``score`` and
      ``transform``, return exactly one image per path or raise; they never
      return fewer rows, whatever ``on_error`` says.
    * ``on_error="skip"`` or ``"warn"`` drops unreadable files only in
      :meth:`load`, which returns the targets of the kept images with them and
      records the rows kept in ``kept_indices_``. Clean a file list there,
      then fit or predict on ``X[loader.kept_indices_]``.

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
    exif_transpose : bool, default=True
        Rotate or flip a Pillow-read image as its EXIF ``Orientation`` tag says
        (:func:`PIL.ImageOps.exif_transpose`), as image viewers do. ``False``
        keeps the stored pixel order of JPEG, PNG and WebP files (recent Pillow
        versions apply a TIFF file's tag themselves while decoding). DICOM
        files have no such tag.
    n_jobs : int, default=None
        Threads decoding files at once (Pillow and pydicom's decoders release
        the GIL). ``None`` means 1, ``-1`` all available CPUs; never more
        threads than available CPUs or files.
    on_error : {"raise", "warn", "skip"}, default="raise"
        What :meth:`load` does with a file that cannot be read. ``"raise"``
        raises a :class:`ValueError` naming the file. ``"skip"`` leaves the
        file and its target out, and ``"warn"`` does the same with a warning
        naming the files. :meth:`transform` never drops a file: with
        ``"skip"`` or ``"warn"`` it reads all the files, then raises naming
        every file it could not read.
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
        Set by :meth:`load`: the rows of its ``X`` that were read, in order.
        All rows unless ``on_error`` skipped some.
    failed_paths_ : list of str
        Set by :meth:`load`: the files of its ``X`` that could not be read.
    errors_ : list of str
        Set by :meth:`load`: why each of ``failed_paths_`` could not be read.

    See Also
    --------
    skcxr.datasets.load_kermany : Paths and labels of the Kermany folder layout.
    skcxr.datasets.load_sample_images : The real sample shipped with skcxr.

    Notes
    -----
    ``n_features_in_`` is not set: the input is one path per sample, not
    numeric features. The output of :meth:`transform` is float32 whatever the
    file's bit depth.

    Resizing: an image more than twice as large as the output is first shrunk
    by a whole factor with a box filter (``Image.reduce``, as Pillow's
    ``reducing_gap=2.0`` does), then resized with bicubic interpolation.
    From 1024 px to 224 px this halves the resize time; the result differs
    from one bicubic resize of the full image by about 1e-3 on average (a
    quarter of a gray level) on radiographs, and by a few gray levels at most,
    at sharp edges.

    Faster PNG decoding: if OpenCV is installed (``pip install
    opencv-python-headless``; optional, Pillow is used without it),
    non-interlaced 8- and 16-bit grayscale PNGs, the format of NIH
    ChestX-ray14 (Wang et al. 2017), are decoded with ``cv2.imdecode``,
    which gives exactly Pillow's pixels (PNG is lossless) and releases the GIL
    for the whole decode. Other PNGs (colour, transparency, a chunk that may
    carry an EXIF or XMP orientation while ``exif_transpose=True``) and files
    OpenCV cannot decode go to Pillow, so results and error messages do not
    depend on whether OpenCV is installed. Reading 1024 x 1024 8-bit PNGs at
    ``size=224`` then takes about 0.75x the CPU time per file of a plain
    Pillow ``open``/``convert``/``resize`` loop (0.85x without OpenCV), and
    ``n_jobs`` threads decode that many files at once, as far as cores are
    free.

    In :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate` and the like, pass
    ``error_score="raise"``: with scikit-learn's default ``error_score=np.nan``
    an unreadable file in one fold only turns that fold's score into NaN, with
    the file named in a ``FitFailedWarning`` or ``UserWarning`` that is easy
    to miss.

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
        "size": [IntInterval(1, None, closed="left")],
        "resize": [StrOptions({"square", "pad", "crop", "region"})],
        "region": [tuple, list, np.ndarray, None],
        "layout": [StrOptions({"nhw", "n1hw", "flat"})],
        "draft": ["boolean"],
        "exif_transpose": ["boolean"],
        "n_jobs": [Integral, None],
        "on_error": [StrOptions({"raise", "warn", "skip"})],
        "max_pixels": [IntInterval(1, None, closed="left"), None],
    }

    def __init__(
        self,
        *,
        size=224,
        resize="square",
        region=None,
        layout="nhw",
        draft=True,
        exif_transpose=True,
        n_jobs=None,
        on_error="raise",
        max_pixels=50_000_000,
    ):
        self.size = size
        self.resize = resize
        self.region = region
        self.layout = layout
        self.draft = draft
        self.exif_transpose = exif_transpose
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

    def _decode(self, path, region):
        """One file -> a PIL "L" or "F" image, before the resize."""
        _check_regular_file(path)
        with open(path, "rb") as fh:
            head = fh.read(132)
            fh.seek(0)
            if _is_dicom(path, head):
                return Image.fromarray(_read_dicom(fh, head, self.max_pixels), "F")
            header = _fast_png_header(head)
            if header is not None and _png_decoder() is not None:
                data = fh.read()  # from the start: seek(0) above
                im = _decode_png_fast(
                    data, header, self.max_pixels, self.exif_transpose
                )
                if im is not None:
                    return im
                fh = io.BytesIO(data)  # Pillow reads the bytes already in memory
            return _open_pil(
                fh,
                head,
                self.max_pixels,
                self._draft_size(region) if self.draft else None,
                self.exif_transpose,
            )

    def _read_one(self, path, region):
        """One file -> a (size, size) float32 array, or the message saying why not."""
        size = self.size
        try:
            im = self._decode(path, region)
            width, height = im.size
            if self.resize == "pad":
                scale = size / max(width, height)
                new = (max(1, round(width * scale)), max(1, round(height * scale)))
                canvas = Image.new(im.mode, (size, size), 0)
                small = im.resize(new, _BICUBIC, reducing_gap=_REDUCING_GAP)
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
                im = im.resize((size, size), _BICUBIC, reducing_gap=_REDUCING_GAP)
            if im.mode == "L":
                return np.asarray(im).astype(np.float32) * np.float32(1 / 255)
            return np.clip(
                np.asarray(im, dtype=np.float32), 0.0, 1.0
            )  # bicubic overshoot
        except MemoryError:
            raise
        except Exception as exc:  # any decoder failure becomes an error naming the file
            if isinstance(exc, _ReadError):
                reason, cause = str(exc), None
            elif isinstance(exc, FileNotFoundError):
                reason, cause = "no such file", None
            elif isinstance(exc, PermissionError):
                reason, cause = "permission denied", None
            else:
                reason, cause = f"{type(exc).__name__}: {_one_line(exc)}", exc
            return _Failure(path, reason.rstrip("."), cause)

    def _read_all(self, paths, *, stop_at_first):
        """Read every file: (images, [(row, failure), ...]); failed rows are junk."""
        region = self._check_region()
        n = len(paths)
        n_jobs = resolve_n_jobs(self.n_jobs, n_tasks=n)
        out = np.empty((n, self.size, self.size), dtype=np.float32)
        failures = []

        def handle(i, result):
            if isinstance(result, _Failure):
                if stop_at_first:
                    raise ValueError(result.message) from result.cause
                failures.append((i, result))
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
        """Read the files: one image per path, or an error naming the files.

        Parameters
        ----------
        X : array-like of shape (n_samples,) of str or os.PathLike
            Image file paths.

        Returns
        -------
        images : ndarray of shape (n_samples, size, size), dtype float32
            Values in [0, 1], in the ``layout`` asked for, row ``i`` read from
            ``X[i]``.

        Raises
        ------
        ValueError
            If a file cannot be read. ``on_error`` does not apply here (it
            would make the rows stop matching ``X``); it applies to :meth:`load`.
        """
        self._validate_params()
        paths = _as_paths(X)
        out, failures = self._read_all(paths, stop_at_first=self.on_error == "raise")
        if failures:
            if len(failures) == 1:
                what = failures[0][1].message
            else:
                what = (
                    f"Could not read {len(failures)} of {len(paths)} image files: "
                    f"{_listing(failures)}"
                )
            raise ValueError(
                f"{what}. on_error={self.on_error!r} applies to ImageLoader.load(X, "
                "y) only, which drops the targets with the files; transform (so any "
                "Pipeline fit, predict, score or transform) returns one image per "
                "path or raises, so rows never misalign with their files. Remove the "
                "file(s), or filter first: loader.load(X, y), then "
                "X[loader.kept_indices_]."
            ) from failures[0][1].cause
        return restore_layout(out, self.layout)

    def fit_transform(self, X, y=None):
        """Validate the parameters and read the files: one image per path.

        Like :meth:`transform`, this never drops a file, whatever
        ``on_error`` says: an unreadable file raises a :class:`ValueError`
        naming it. Use :meth:`load` to drop unreadable files with their targets.

        Parameters
        ----------
        X : array-like of shape (n_samples,) of str or os.PathLike
            Image file paths.
        y : array-like of shape (n_samples,), default=None
            Ignored.

        Returns
        -------
        images : ndarray of shape (n_samples, size, size), dtype float32
        """
        return self.fit(X, y).transform(X)

    def load(self, X, y=None):
        """Read the files, dropping unreadable ones with their targets.

        The one place where ``on_error="skip"`` or ``"warn"`` leaves files out:
        the targets of the skipped files are dropped with them, and
        ``kept_indices_``, ``failed_paths_`` and ``errors_`` record what
        happened. With ``on_error="raise"`` the first unreadable file raises.
        (This is not named ``fit_resample`` on purpose: imbalanced-learn's
        pipeline refuses a step that has both ``transform`` and
        ``fit_resample`` and would skip a sampler at predict time.)

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
        >>> loader = ImageLoader(size=32, on_error="skip")
        >>> images, y_kept = loader.load(
        ...     list(paths[:2]) + ["missing.png"], list(y[:2]) + ["virus"])
        >>> images.shape, [str(label) for label in y_kept]
        ((2, 32, 32), ['normal', 'normal'])
        >>> loader.kept_indices_.tolist(), loader.errors_
        ([0, 1], ["Could not read image file 'missing.png': no such file"])
        """
        from sklearn.utils import _safe_indexing

        for name in ("kept_indices_", "failed_paths_", "errors_"):
            self.__dict__.pop(name, None)  # no stale record if this call raises
        self.fit(X)
        paths = _as_paths(X)
        if y is not None and len(y) != len(paths):
            raise ValueError(f"X has {len(paths)} paths but y has {len(y)} targets.")
        out, failures = self._read_all(paths, stop_at_first=self.on_error == "raise")
        failed = [i for i, _ in failures]
        self.kept_indices_ = np.setdiff1d(np.arange(len(paths)), failed).astype(np.intp)
        self.failed_paths_ = [paths[i] for i in failed]
        self.errors_ = [failure.message for _, failure in failures]
        if failures:
            listed = _listing(failures)
            if len(failures) == len(paths):
                raise ValueError(
                    f"None of the {len(paths)} files could be read: {listed}"
                ) from failures[0][1].cause
            if self.on_error == "warn":
                warnings.warn(
                    f"ImageLoader skipped {len(failures)} of {len(paths)} files that "
                    f"could not be read (see kept_indices_, failed_paths_): {listed}",
                    UserWarning,
                    stacklevel=2,
                )
            out = out[self.kept_indices_]
        y_kept = None if y is None else _safe_indexing(y, self.kept_indices_)
        return restore_layout(out, self.layout), y_kept

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False  # one path per sample, not numeric features
        tags.input_tags.string = True
        tags.requires_fit = False
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = []
        return tags
