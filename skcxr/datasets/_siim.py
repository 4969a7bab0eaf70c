"""SIIM-ACR Pneumothorax Segmentation (Zawacki et al. 2019): masks as run lengths."""

import os
import re
from collections.abc import Sequence
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._common import (
    DICOM_TAGS,
    age_years,
    file_headers,
    finding_labels,
    images_on_disk,
    make_bunch,
    map_values,
    read_csv,
    sex_name,
    source_name,
    take,
    view_name,
    views_keep,
    warn_unreadable,
)
from ._labels import resolve_classes
from ._table import gc_paused

__all__ = ["load_siim_pneumothorax", "rle_decode", "rle_encode", "RunLengthMasks"]

#: Side of the SIIM-ACR images, in pixels.
SIDE = 1024
_EMPTY = "-1"
_RLE = re.compile(r"^\s*(?:-1|\d+(?:\s+\d+)*)?\s*$")


def _runs(text, size):
    """Start and end offsets in the flat (column-major) image of one RLE string."""
    text = str(text).strip()
    if not text or text == _EMPTY:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if _RLE.match(text) is None:
        raise ValueError(
            f"Not a run-length encoding: {text[:60]!r} (expected 'offset length "
            "offset length ...' of non-negative integers, or '-1')."
        )
    values = np.asarray(text.split(), dtype=np.int64)
    if values.size % 2:
        raise ValueError(
            f"A run-length encoding holds pairs of numbers; {text[:60]!r} has "
            f"{values.size}."
        )
    offsets, lengths = values[0::2], values[1::2]
    ends = np.cumsum(offsets + lengths)
    starts = ends - lengths
    if ends.size and ends[-1] > size:
        raise ValueError(
            f"The run-length encoding {text[:60]!r} runs to pixel {ends[-1]}, past "
            f"the {size} pixels of the image."
        )
    return starts, ends


@validate_params(
    {
        "rle": [str, "array-like"],
        "shape": [tuple],
    },
    prefer_skip_nested_validation=True,
)
def rle_decode(rle, shape=(SIDE, SIDE)):
    """Boolean mask of SIIM-ACR run-length encodings (one, or the union of several).

    The encoding of the SIIM-ACR Pneumothorax challenge: pairs ``offset
    length`` over the pixels in column-major order (down the first column,
    then the next), each offset counted from the end of the previous run (the
    first from pixel 0); ``"-1"`` is an empty mask. It is the ``rle2mask``
    of the challenge's ``mask_functions.py`` followed by the transpose its
    users apply. Several encodings of one image (several rows of
    ``train-rle.csv``) are united.

    Parameters
    ----------
    rle : str or list of str
        One encoding, or several to unite.
    shape : tuple of (int, int), default=(1024, 1024)
        ``(height, width)`` of the image.

    Returns
    -------
    mask : ndarray of shape ``shape``, dtype=bool

    Raises
    ------
    ValueError
        When a string is not such an encoding or runs past the image.

    See Also
    --------
    rle_encode : The inverse.

    Examples
    --------
    >>> from skcxr.datasets import rle_decode
    >>> rle_decode("1 2 3 1", shape=(4, 2)).astype(int)
    array([[0, 0],
           [1, 0],
           [1, 1],
           [0, 0]])
    >>> rle_decode(["0 1", "7 1"], shape=(4, 2)).astype(int)
    array([[1, 0],
           [0, 0],
           [0, 0],
           [0, 1]])
    """
    height, width = _shape(shape)
    size = height * width
    marks = np.zeros(size + 1, dtype=np.int32)
    for text in [rle] if isinstance(rle, str) else list(rle):
        starts, ends = _runs(text, size)
        np.add.at(marks, starts, 1)
        np.add.at(marks, ends, -1)
    flat = np.cumsum(marks[:-1]) > 0
    return flat.reshape(width, height).T


@validate_params({"mask": ["array-like"]}, prefer_skip_nested_validation=True)
def rle_encode(mask):
    """SIIM-ACR run-length encoding of a 2-D mask (``"-1"`` when it is empty).

    Runs of nonzero pixels in column-major order, each as ``offset length``
    with the offset counted from the end of the previous run; the inverse of
    :func:`rle_decode`.

    Parameters
    ----------
    mask : array-like of shape (height, width)
        Nonzero pixels are in the mask.

    Returns
    -------
    rle : str

    Examples
    --------
    >>> import numpy as np
    >>> from skcxr.datasets import rle_decode, rle_encode
    >>> mask = np.zeros((4, 2), dtype=bool)
    >>> mask[1:3, 0] = mask[2, 1] = True
    >>> rle_encode(mask)
    '1 2 3 1'
    >>> bool((rle_decode(rle_encode(mask), shape=mask.shape) == mask).all())
    True
    >>> rle_encode(np.zeros((4, 4)))
    '-1'
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (height, width), got shape {mask.shape}.")
    flat = np.concatenate([[False], mask.T.ravel() != 0, [False]])
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    if not edges.size:
        return _EMPTY
    starts, ends = edges[0::2], edges[1::2]
    offsets = starts - np.concatenate([[0], ends[:-1]])
    pairs = np.column_stack([offsets, ends - starts]).ravel()
    return " ".join(map(str, pairs.tolist()))


def _shape(shape):
    if len(shape) != 2 or not all(
        isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(
            f"shape must be (height, width) of positive ints, got {shape}."
        )
    return int(shape[0]), int(shape[1])


class RunLengthMasks(Sequence):
    """Masks kept as run-length encodings, decoded when they are indexed.

    The masks of :func:`load_siim_pneumothorax`: 12,047 masks of 1024 x 1024
    would take 12.6 GB as booleans; their encodings take a few MB.
    ``masks[i]`` decodes one mask, ``masks[indices]`` or ``masks[a:b]`` give
    the masks of those images (still encoded), ``masks.decode(indices)`` and
    ``np.asarray(masks)`` decode several into one array.

    Parameters
    ----------
    rles : sequence of sequence of str
        The encodings of each image (a union when there are several; ``"-1"``
        or none for an empty mask).
    shape : tuple of (int, int), default=(1024, 1024)
        ``(height, width)`` of every mask.

    Attributes
    ----------
    rles : tuple of tuple of str
    shape : tuple of (int, int, int)
        ``(n_masks, height, width)``.
    dtype : numpy.dtype
        ``bool``.

    Examples
    --------
    >>> from skcxr.datasets import RunLengthMasks
    >>> masks = RunLengthMasks([["1 2"], ["-1"], ["0 1", "7 1"]], shape=(4, 2))
    >>> masks.shape, int(masks[0].sum()), int(masks[1].sum())
    ((3, 4, 2), 2, 0)
    >>> masks[[0, 2]].decode().shape
    (2, 4, 2)
    """

    dtype = np.dtype(bool)

    def __init__(self, rles, shape=(SIDE, SIDE)):
        self.rles = tuple(
            (r,) if isinstance(r, str) else tuple(str(x) for x in r) for r in rles
        )
        self._size = _shape(shape)

    @property
    def shape(self):
        return (len(self.rles), *self._size)

    @property
    def ndim(self):
        return 3

    def __len__(self):
        return len(self.rles)

    def __getitem__(self, index):
        if isinstance(index, Integral) and not isinstance(index, bool):
            return rle_decode(self.rles[index], shape=self._size)
        if isinstance(index, slice):
            return RunLengthMasks(self.rles[index], shape=self._size)
        picked = np.arange(len(self.rles))[np.asarray(index)]
        return RunLengthMasks([self.rles[i] for i in picked], shape=self._size)

    def decode(self, indices=None):
        """``(n, height, width)`` bool array of the masks at ``indices`` (all)."""
        picked = range(len(self)) if indices is None else np.atleast_1d(indices)
        out = np.zeros((len(picked), *self._size), dtype=bool)
        for k, i in enumerate(picked):
            out[k] = rle_decode(self.rles[int(i)], shape=self._size)
        return out

    def __array__(self, dtype=None, copy=None):
        out = self.decode()
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        return f"RunLengthMasks(<{len(self)} masks of {self._size[0]}x{self._size[1]}>)"


def _find_csv(root):
    for name in ("train-rle.csv", "siim-pneumothorax-train-rle.csv"):
        for suffix in ("", ".gz", ".zip"):
            if (root / (name + suffix)).is_file():
                return root / (name + suffix)
    return None


@validate_params(
    {
        "root": [str, os.PathLike],
        "csv": [str, os.PathLike, None],
        "headers": [StrOptions({"auto"}), None],
        "views": [str, "array-like", None],
        "on_missing": [StrOptions({"raise", "skip"})],
        "classes": ["array-like", None],
        "as_frame": ["boolean"],
        "mask_side": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
@gc_paused()  # row lists hold no cycles: no collection while they are built
def load_siim_pneumothorax(
    root,
    csv=None,
    *,
    headers="auto",
    views=None,
    on_missing="raise",
    classes=None,
    as_frame=False,
    mask_side=SIDE,
):
    """File paths, pneumothorax labels and masks of SIIM-ACR Pneumothorax.

    The SIIM-ACR Pneumothorax Segmentation challenge (2019): 12,047 DICOM
    radiographs of NIH ChestX-ray14 (1024 x 1024) on which radiologists of
    the Society for Imaging Informatics in Medicine, the American College of
    Radiology and the Society of Thoracic Radiology drew each pneumothorax.
    ``train-rle.csv`` has one row per drawn region as a run-length encoding
    (see :func:`rle_decode`), ``-1`` for an image without pneumothorax.

    Download from https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation
    (accept the competition's rules; the images come from NIH ChestX-ray14).
    Expected layout (the study and series folders of the download)::

        root/train-rle.csv
        root/dicom-images-train/<study>/<series>/<ImageId>.dcm

    Parameters
    ----------
    root : str or os.PathLike
        The competition folder.
    csv : str or os.PathLike, default=None
        The label file (``ImageId``, ``EncodedPixels``); by default
        ``root/train-rle.csv``.
    headers : "auto" or None, default="auto"
        ``"auto"`` reads view, sex, age and patient id from the header of
        each DICOM image (pixels are not read); None reads nothing.
    views : str or list of str, default=None
        Keep only these views (``"PA"``, ``"AP"``); None keeps every image.
    on_missing : {"raise", "skip"}, default="raise"
        An image of the CSV not on disk: raise a ValueError naming the first
        and how many, or leave them out with one warning.
    classes : list of str, default=None
        Common finding names; default ``["Pneumothorax"]``, any other is NaN.
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of one row per image.
    mask_side : int, default=1024
        Side of the square images the encodings index.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        One entry per image: ``paths`` (n,) str; ``labels`` (n, n_classes)
        float, Pneumothorax 1 when any row of the image has a region;
        ``classes``; ``masks`` a :class:`RunLengthMasks` of shape (n, 1024,
        1024), decoded on indexing (the union of the image's regions);
        ``patient_ids`` (n,) str, the DICOM ``PatientID`` (the ``ImageId``
        without headers); ``study_ids`` (n,) str, the ``ImageId``; ``split``
        None; ``views``, ``sex``, ``age`` from the headers; ``metadata`` dict
        of ``ImageId``, ``EncodedPixels`` (the image's encodings joined by
        ``|``) and the header values; ``frame``; ``dataset``
        ``"siim_pneumothorax"``; the counts ``n_rows``, ``n_unreadable``
        (images with an encoding that is not one, left out), ``n_excluded``
        and ``n_missing``.

    Raises
    ------
    ValueError
        On a missing CSV or column, a missing image (``on_missing="raise"``),
        an unknown finding name, or no image left.

    Notes
    -----
    The images are a subset of ChestX-ray14: pooling this set with
    :func:`load_chestxray14` or :func:`load_rsna_pneumonia` can hold the same
    radiograph twice under different names.

    References
    ----------
    .. [1] Zawacki A, Wu C, Shih G, et al. SIIM-ACR Pneumothorax
       Segmentation. Kaggle (2019).
       https://kaggle.com/competitions/siim-acr-pneumothorax-segmentation

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skcxr.datasets import load_siim_pneumothorax
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "train-rle.csv").write_text(
    ...     "ImageId, EncodedPixels\\n1.2.3, 5 3\\n1.2.3, 20 2\\n1.2.4, -1\\n")
    >>> for uid in ("1.2.3", "1.2.4"):
    ...     folder = root / "dicom-images-train" / "study" / uid
    ...     folder.mkdir(parents=True)
    ...     _ = (folder / f"{uid}.dcm").write_bytes(b"")
    >>> data = load_siim_pneumothorax(root, headers=None, mask_side=8)
    >>> data.labels.ravel(), data.masks.shape
    (array([1., 0.]), (2, 8, 8))
    >>> int(data.masks[0].sum()), int(data.masks[1].sum())
    (5, 0)
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    csv = _find_csv(root) if csv is None else Path(csv)
    if csv is None:
        raise ValueError(f"No train-rle.csv in root={str(root)!r}; pass csv=path.")
    classes = resolve_classes(classes, "siim_pneumothorax")
    source = source_name("siim_pneumothorax", csv)
    header, table, bad, n_rows = read_csv(csv, required=("ImageId", "EncodedPixels"))
    col = {name: j for j, name in enumerate(header)}
    size = mask_side * mask_side
    images, unreadable = {}, {}
    for uid, rle in table[:, [col["ImageId"], col["EncodedPixels"]]].tolist():
        uid, rle = uid.strip(), rle.strip()
        try:
            _runs(rle, size)
        except ValueError as exc:
            unreadable.setdefault(uid, str(exc))
        images.setdefault(uid, []).append(rle)
    for uid in unreadable:
        del images[uid]
    counts = {"n_rows": n_rows, "n_unreadable": len(unreadable) + len(bad)}
    if bad:
        warn_unreadable(
            counts["n_unreadable"], source, f"data row {bad[0][0]}", "wrong width"
        )
    elif unreadable:
        uid, why = next(iter(unreadable.items()))
        warn_unreadable(counts["n_unreadable"], source, f"ImageId {uid!r}", why)
    ids = np.asarray(list(images), dtype=object)

    folder = root / "dicom-images-train"
    folder = folder if folder.is_dir() else root
    on_disk, paths, counts["n_missing"] = images_on_disk(
        ids,
        folder,
        (".dcm", ".png", ".jpg", ".jpeg"),
        ".dcm",
        on_missing=on_missing,
        source=source,
        recursive=True,
    )
    ids = ids[on_disk]
    # headers=None: no DICOM file is opened, every tag stays blank
    read_from = ".dcm" if headers == "auto" else ()
    found = file_headers(paths, read_from, source=source)
    rows = {"ids": ids, "paths": np.asarray(paths, dtype=object), **found}
    rows["views"] = map_values(found["ViewPosition"].tolist(), view_name)
    keep = views_keep(rows["views"], views, source=source)
    counts["n_excluded"] = int(keep.size - np.count_nonzero(keep))
    rows = take(rows, keep)
    ids = rows["ids"]

    rles = [tuple(images[i]) for i in ids]
    findings = [
        ("Pneumothorax",) if any(r != _EMPTY for r in rle) else () for rle in rles
    ]
    patients = [p.strip() or i for p, i in zip(rows["PatientID"].tolist(), ids)]
    return make_bunch(
        "siim_pneumothorax",
        paths=rows["paths"],
        labels=finding_labels(findings, classes, "siim_pneumothorax"),
        classes=classes,
        patient_ids=np.asarray(patients, dtype=str),
        study_ids=np.asarray(ids.tolist(), dtype=str),
        split=None,
        views=rows["views"],
        sex=map_values(rows["PatientSex"].tolist(), sex_name),
        age=map_values(rows["PatientAge"].tolist(), age_years, float),
        metadata={
            "ImageId": ids,
            "EncodedPixels": np.asarray(["|".join(r) for r in rles], dtype=object),
            **{tag: rows[tag] for tag in DICOM_TAGS},
        },
        counts=counts,
        as_frame=as_frame,
        masks=RunLengthMasks(rles, shape=(mask_side, mask_side)),
    )
