"""Reading rules shared by the loaders of the public chest X-ray data sets.

Each rule lives here once: reading a label file (``.csv``, ``.csv.gz`` or a
``.zip`` holding one CSV; see ``_table``), counting unreadable rows, finding which listed
images are on disk, the common vocabularies of views, sex and age, labels from
label lists and from the CheXpert labeler's 1 / 0 / -1 / blank columns, and
the Bunch every loader returns.
"""

import os
import re
import stat
import warnings

import numpy as np
from sklearn.utils import Bunch

from ._labels import DATASET_NAMES, source_labels
from ._table import _word, common_prefix, hashes, map_values, read_table

#: The value of ``views`` and ``sex`` when the label files do not say.
UNKNOWN = "unknown"

#: Summary counts of what a loader read (keys of every returned Bunch).
COUNT_KEYS = ("n_rows", "n_unreadable", "n_excluded", "n_missing")


def read_csv(path, *, required=()):
    """Header, table, unreadable rows and row count of a CSV label file.

    Parameters
    ----------
    path : path-like
    required : sequence of str
        Columns that must be in the header (a ValueError names those missing).

    Returns
    -------
    header : list of str
        Column names, stripped of surrounding spaces.
    table : ndarray of shape (n_rows, n_columns), dtype=object
        The cells (str) of every row that has as many fields as the header.
    bad : list of (int, list of str)
        The 1-based data-row number and fields of every other row.
    n_rows : int
        Data rows read (blank lines are not rows).

    See Also
    --------
    skcxr.datasets._table.read_table : The rows of a large file, as needed.
    """
    table = read_table(path, required=required)
    return table.header, table.rows(), table.bad, table.n_rows


def warn_unreadable(n, source, first, reason):
    """Warn once that ``n`` rows of ``source`` were left out, naming the first."""
    if n:
        warnings.warn(
            f"{n} row(s) of {source} could not be read and are left out "
            f"(n_unreadable counts them); the first, {first}: {reason}.",
            UserWarning,
            stacklevel=4,
        )


def present(root, paths, *, strip=0):
    """Which of ``root/path`` are files, listing folders where that is cheaper.

    A ``stat`` per file costs a few microseconds, and so does listing a
    folder, which answers for every file and folder in it. The paths are
    followed down from their deepest common folder, one folder level at a
    time: while the folders of a level are few next to the paths still
    possible (a quarter or less), those folders are listed and the paths
    whose next folder or file is not there are dropped; the remaining paths
    are then checked with a ``stat`` each. For a partial download most paths
    go at the first listings (CheXpert's patient folders), and a folder of
    thousands of images takes one listing.

    Parameters
    ----------
    root : str
    paths : list of str
        Paths relative to ``root`` with ``/`` separators, from their
        ``strip``-th character on.
    strip : int, default=0
        Leading characters of the paths that are not part of them (a folder
        name the label file puts before every path).

    Returns
    -------
    ndarray of shape (len(paths),), dtype=bool
    """
    n = len(paths)
    found = np.zeros(n, dtype=bool)
    if n == 0:
        return found
    top = os.path.commonprefix([min(paths), max(paths)])
    if len(top) < strip:  # the leading characters differ: drop them one by one
        return present(root, [p[strip:] for p in paths])
    top = top[: max(top.rfind("/") + 1, strip)]
    if len(top) > strip and not os.path.isdir(os.path.join(root, top[strip:])):
        return found
    pending, hits, to_stat = {top: range(n)}, [], []
    while pending and 4 * len(pending) <= sum(map(len, pending.values())):
        deeper = {}
        for folder, indices in pending.items():
            files, folders = _listing(os.path.join(root, folder[strip:]))
            _descend(paths, indices, len(folder), files, folders, deeper, hits, to_stat)
        pending = deeper
    for indices in pending.values():
        to_stat.extend(indices)
    hits.extend(_files(root, [paths[i][strip:] for i in to_stat], to_stat))
    found[hits] = True
    return found


def _descend(paths, indices, start, files, folders, deeper, hits, to_stat):
    """One folder level of :func:`present` (the hot loop: names bound locally)."""
    find = str.find
    for i in indices:
        path = paths[i]
        end = find(path, "/", start)
        if end < 0:
            name = path[start:]
            if name in files:
                hits.append(i)
                continue
        else:
            name = path[start:end]
            if name in folders:
                key = path[: end + 1]
                if key in deeper:
                    deeper[key].append(i)
                else:
                    deeper[key] = [i]
                continue
        if name in _SPECIAL:  # "a//b", "./a": left to stat
            to_stat.append(i)


def _files(root, relpaths, indices):
    """The ``indices`` whose ``root/relpath`` is a file, a ``stat`` each."""
    if os.stat not in os.supports_dir_fd:
        return [
            i
            for i, p in zip(indices, relpaths)
            if os.path.isfile(os.path.join(root, p))
        ]
    found = []
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        return found
    try:
        for i, p in zip(indices, relpaths):
            try:
                if stat.S_ISREG(os.stat(p, dir_fd=fd).st_mode):
                    found.append(i)
            except (OSError, ValueError):
                continue
    finally:
        os.close(fd)
    return found


_SPECIAL = frozenset({"", ".", ".."})


def present_in(root, table, name, *, strip=0, index=None, common=None):
    """:func:`present` of the paths in a column of a label table.

    ``index`` picks rows (all by default). Where the table knows where its
    cells lie in the file's bytes, the first folder level below the paths'
    common folder is checked with numpy on those bytes (its listing against
    every path's next name), and only the paths that may be there become
    Python strings for :func:`present`: for a partial download, a tenth.
    ``common``, when known, is the prefix (bytes) of every path past
    ``strip``.
    """
    found = []
    index = np.arange(len(table)) if index is None else np.asarray(index)
    parts = table.parts()
    for part, offset in parts:
        local = index[(index >= offset) & (index < offset + len(part))] - offset
        shared = common if len(parts) == 1 else None
        found.append(_present_part(root, part, name, strip, local, shared))
    found = np.concatenate(found) if found else np.zeros(0, dtype=bool)
    order = np.argsort(index, kind="stable")
    out = np.empty(len(index), dtype=bool)
    out[order] = found
    return out


def _present_part(root, table, name, strip, index, common):
    index = index if (np.diff(index) >= 0).all() else np.sort(index)
    spans = table.spans(name, index)
    if spans is None:
        return present(root, table.cells(name, index).tolist(), strip=strip)
    starts, ends = spans
    maybe, folders = _next_names_listed(
        root, table.buffer, starts + strip, ends, common
    )
    found = np.zeros(len(starts), dtype=bool)
    rows = np.flatnonzero(maybe)
    if len(rows):
        paths = table.cells(name, index[rows]).tolist()
        if 4 * len(np.unique(folders[rows])) > len(rows):  # a stat each
            found[_files(root, [p[strip:] for p in paths], rows)] = True
        else:  # the next folders are worth listing
            found[rows] = present(root, paths, strip=strip)
    return found


def _next_names_listed(root, buf, starts, ends, common=None):
    """Which paths (bytes ``buf[starts:ends]``) may be files under ``root``.

    The name after the paths' common folder must be in that folder's
    listing: a folder's name if more path follows, a file's if not ("",
    "." and ".." are left to :func:`present`). Vectorised over the paths,
    with names compared by a hash of their bytes: two names with one hash
    keep a path that :func:`present` then checks, never drop one. Returns
    that mask and the hash of each path's next folder (0 for a file).
    """
    keep = np.ones(len(starts), dtype=bool)
    if not len(starts):
        return keep, np.zeros(0, dtype=np.uint64)
    if common is None:
        common = common_prefix(buf, starts, ends)
    top = common[: common.rfind(b"/") + 1]
    try:
        folder = os.path.join(root, top.decode("utf-8"))
    except UnicodeDecodeError:
        return keep, np.arange(len(starts), dtype=np.uint64)  # each its own
    if top and not os.path.isdir(folder):
        return ~keep, np.zeros(len(starts), dtype=np.uint64)
    files, folders = _listing(folder)
    begin = starts + len(top)
    stop = _next_slash(buf, begin, ends)
    last = stop >= ends
    names = hashes(buf, begin, np.minimum(stop, ends))
    kind = _among(names, {**dict.fromkeys(files, 1), **dict.fromkeys(folders, 2)})
    # a file's name ends the path, a folder's is followed by more
    listed = (kind & np.where(last, 1, 2)) > 0
    listed |= _among(names, dict.fromkeys(_SPECIAL, 1)) > 0
    return listed, np.where(last, np.uint64(0), names)


def _next_slash(buf, starts, ends):
    """Position of the first "/" at or after each start (``ends`` if none)."""
    lengths = ends - starts
    head = np.stack([_word(buf, starts, lengths, 8 * k) for k in range(2)], axis=1)
    head = head.view(np.uint8).reshape(len(starts), 16) == ord("/")
    stop = np.where(head.any(axis=1), starts + head.argmax(axis=1), ends)
    far = np.flatnonzero(~head.any(axis=1) & (lengths > 16))  # long names
    if len(far):
        slashes = np.flatnonzero(buf == ord("/"))
        after = np.append(slashes, len(buf))[np.searchsorted(slashes, starts[far])]
        stop[far] = np.minimum(after, ends[far])
    return stop


def _among(keys, names):
    """The flags in ``names`` (str -> int bit flags) of each hashed name of
    ``keys`` (0 for none); a hash shared by two names has both's flags."""
    kinds = np.zeros(len(keys), dtype=np.int8)
    if not names:
        return kinds
    encoded = [n.encode("utf-8", "surrogateescape") for n in names]
    lengths = np.array([len(e) for e in encoded])
    text = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    ends = np.cumsum(lengths)
    listed = hashes(text, ends - lengths, ends)
    values = np.fromiter(names.values(), dtype=np.int8, count=len(names))
    order = np.argsort(listed, kind="stable")
    listed, values = listed[order], values[order]
    first = np.flatnonzero(np.append(True, listed[1:] != listed[:-1]))
    listed, values = listed[first], np.bitwise_or.reduceat(values, first)
    at = np.minimum(np.searchsorted(listed, keys), len(listed) - 1)
    hit = listed[at] == keys
    kinds[hit] = values[at[hit]]
    return kinds


def _listing(folder):
    """Names of the files and of the folders in ``folder`` (none if unreadable)."""
    files, folders = set(), set()
    try:
        entries = os.scandir(folder)
    except OSError:
        return files, folders
    with entries:
        for entry in entries:
            try:
                if entry.is_dir():
                    folders.add(entry.name)
                elif entry.is_file():
                    files.add(entry.name)
            except OSError:
                continue
    return files, folders


def _walk(folder, prefix):
    """Relative paths (``prefix`` + name) of the files under ``folder``."""
    found, stack, seen = set(), [(folder, prefix)], set()
    while stack:
        here, rel = stack.pop()
        try:
            entries = os.scandir(here)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    continue
                if not is_dir:
                    found.add(rel + entry.name)
                    continue
                if entry.is_symlink():  # never walk a folder twice (link loops)
                    key = os.path.realpath(entry.path)
                    if key in seen:
                        continue
                    seen.add(key)
                stack.append((entry.path, rel + entry.name + "/"))
    return found


def index_images(folder, suffixes, *, recursive=False):
    """File stem -> path relative to ``folder`` of its files ending in ``suffixes``.

    One listing of ``folder`` (or one walk of it with ``recursive=True``);
    a folder that does not exist has no files.
    """
    if recursive:
        names = sorted(_walk(str(folder), ""))
    else:
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if not e.is_dir())
        except OSError:
            names = []
    index = {}
    for rel in names:
        name = rel.rpartition("/")[2]
        lower = name.lower()
        for suffix in suffixes:
            if lower.endswith(suffix):
                index.setdefault(name[: -len(suffix)], rel)
                break
    return index


DICOM_TAGS = ("PatientID", "PatientSex", "PatientAge", "ViewPosition")


def dicom_headers(paths, *, source):
    """``{tag: (n,) object array of str}`` of :data:`DICOM_TAGS` read from files.

    Only the header is read (pydicom, ``stop_before_pixels``), and the values
    are taken as stored, not validated: public sets store ages such as
    ``"43"`` where DICOM asks for ``"043Y"``, which :func:`age_years` reads
    alike. A file whose header cannot be read gets blank values and is
    counted in one warning.
    """
    import pydicom

    values = {tag: [] for tag in DICOM_TAGS}
    failed, first = 0, None
    for path in paths:
        try:
            ds = pydicom.dcmread(
                path, stop_before_pixels=True, specific_tags=list(DICOM_TAGS)
            )
        except Exception as exc:  # any unreadable header: counted, not fatal
            failed += 1
            first = first or f"{path!r}: {exc}"
            ds = None
        for tag in DICOM_TAGS:
            values[tag].append(_raw_value(ds, tag))
    if failed:
        warnings.warn(
            f"The DICOM header of {failed} image(s) of {source} could not be "
            f"read; their view, sex and age are unknown (the first, {first}).",
            UserWarning,
            stacklevel=4,
        )
    return {tag: np.asarray(v, dtype=object) for tag, v in values.items()}


def _raw_value(ds, tag):
    """The stored text of a header element ("" when absent)."""
    item = None if ds is None else ds.get_item(tag)
    value = "" if item is None else item.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip(" \x00")


def check_missing(on_disk, shown, on_missing, *, source, root, stacklevel=4):
    """Raise on missing images (``on_missing="raise"``) or warn how many are left.

    ``shown[i]`` (or ``shown(i)``) names image ``i`` in the message.
    """
    n_missing = int(on_disk.size - np.count_nonzero(on_disk))
    if not n_missing:
        return 0
    first = int(np.argmin(on_disk))
    first = shown(first) if callable(shown) else shown[first]
    if on_missing == "raise":
        raise ValueError(
            f"{n_missing} image(s) listed in {source} are not under {str(root)!r} "
            f"(the first: {first!r}); pass on_missing='skip' to use the images "
            "present."
        )
    warnings.warn(
        f"{n_missing} of the {on_disk.size} image(s) listed in {source} are not "
        f"under {str(root)!r} and are left out (n_missing counts them; the "
        f"first: {first!r}).",
        UserWarning,
        stacklevel=stacklevel,
    )
    return n_missing


def images_on_disk(ids, folder, suffixes, listed, *, on_missing, source, **index):
    """Which of the image ``ids`` are files in ``folder`` (any of
    ``suffixes``), and the paths of those: ``(on_disk, paths, n_missing)``.

    A missing image is named by the path its label file implies
    (``<folder>/<id><listed>``); none on disk at all is an error.
    ``index`` goes to :func:`index_images` (``recursive``).
    """
    files = index_images(folder, suffixes, **index)
    on_disk = np.fromiter((i in files for i in ids), bool, len(ids))
    n_missing = check_missing(
        on_disk,
        [str(folder / f"{i}{listed}") for i in ids],
        on_missing,
        source=source,
        root=folder,
        stacklevel=5,
    )
    if not on_disk.any():
        raise ValueError(f"None of the images listed in {source} is on disk.")
    paths = [os.path.join(str(folder), files[i]) for i in np.asarray(ids)[on_disk]]
    return on_disk, paths, n_missing


def file_headers(paths, dicom_suffixes, *, source):
    """``{tag: (n,) str}`` of :data:`DICOM_TAGS` read from the files of
    ``paths`` that end in ``dicom_suffixes`` ("" for the other files)."""
    found = {tag: np.full(len(paths), "", dtype=object) for tag in DICOM_TAGS}
    dicom = np.asarray([p.lower().endswith(dicom_suffixes) for p in paths], bool)
    if dicom.any():
        read = dicom_headers([p for p, d in zip(paths, dicom) if d], source=source)
        for tag in DICOM_TAGS:
            found[tag][dicom] = read[tag]
    return found


_VIEWS = {
    "PA": "PA",
    "POSTEROANTERIOR": "PA",
    "AP": "AP",
    "ANTEROPOSTERIOR": "AP",
    "AP_HORIZONTAL": "AP supine",
    "AP SUPINE": "AP supine",
    "L": "LATERAL",
    "LAT": "LATERAL",
    "LATERAL": "LATERAL",
    "": UNKNOWN,
    "UNK": UNKNOWN,
    "UNKNOWN": UNKNOWN,
    "NAN": UNKNOWN,
    "NONE": UNKNOWN,
}


def view_name(value):
    """Common view name: PA, AP, AP supine, LATERAL, other codes upper-cased."""
    key = str(value).strip().upper()
    return _VIEWS.get(key, key)


def sex_name(value):
    """``"M"``, ``"F"``, ``"O"`` (other) or ``"unknown"``."""
    key = str(value).strip().upper()
    return {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O"}.get(key, UNKNOWN)


_AGE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([YMWD]?)\s*$", re.IGNORECASE)
_AGE_UNIT = {"": 1.0, "Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}
MAX_AGE = 120.0


def age_years(value):
    """Age in years of ``"58"``, ``"58.0"`` or a DICOM age ``"058Y"``/``"06M"``.

    Blank, unparsable and implausible (over 120 years) ages are NaN.
    """
    match = _AGE.match(str(value))
    if match is None:
        return np.nan
    years = float(match.group(1)) / _AGE_UNIT[match.group(2).upper()]
    return years if years <= MAX_AGE else np.nan


def year_of(value):
    """The year of ``"1930.0"``, ``"2180"`` or a date ``"20140915"``; NaN if none."""
    text = str(value).strip()[:4]
    return float(text) if len(text) == 4 and text.isdigit() else np.nan


def views_keep(views, wanted, *, source):
    """Mask of the images whose view is in ``wanted`` (None: every image)."""
    if wanted is None:
        return np.ones(len(views), dtype=bool)
    wanted = [wanted] if isinstance(wanted, str) else [str(v) for v in wanted]
    keep = np.isin(views, wanted)
    if not keep.any():
        present_views = sorted(set(np.asarray(views).tolist()))
        raise ValueError(
            f"No image of {source} has a view in views={wanted}; the views "
            f"present are {present_views}."
        )
    return keep


def finding_labels(findings, classes, dataset):
    """``(n, k)`` float labels from per-image lists of the data set's labels.

    A class is 1 when the image has any of the data set's labels for it
    (:data:`~skcxr.datasets.LABEL_TABLE`), else 0; NaN for every image when
    the data set does not label it.
    """
    own = source_labels(dataset)
    vocabulary = {}
    rows, cols = [], []
    for i, found in enumerate(findings):
        for name in found:
            rows.append(i)
            cols.append(vocabulary.setdefault(name, len(vocabulary)))
    has = np.zeros((len(findings), len(vocabulary) + 1), dtype=bool)
    has[rows, cols] = True
    labels = np.full((len(findings), len(classes)), np.nan)
    for j, common in enumerate(classes):
        if common in own:
            idx = [vocabulary[n] for n in own[common] if n in vocabulary]
            labels[:, j] = has[:, idx].any(axis=1) if idx else 0.0
    return labels


UNCERTAIN = {"ignore": np.nan, "ones": 1.0, "zeros": 0.0}
#: The code of a labeler cell that is none of 1, 0, -1 or blank.
BAD_CODE = 9.0


def labeler_code(value):
    """1, 0, -1 or NaN (blank) of one CheXpert-labeler cell; else :data:`BAD_CODE`."""
    value = value.strip()
    if not value:
        return np.nan
    try:
        code = float(value)
    except ValueError:
        return BAD_CODE
    return code if code in (1.0, 0.0, -1.0) else BAD_CODE


def labeler_codes(cells):
    """Floats 1 / 0 / -1 / NaN (blank) of a CheXpert-labeler column block.

    A cell that is none of these is 9; :func:`labeler_unreadable` finds them.
    """
    cells = np.asarray(cells, dtype=object)
    codes = map_values(cells.ravel().tolist(), labeler_code, float)
    return codes.reshape(cells.shape)


def labeler_unreadable(cells):
    """Row mask of a labeler column block: a cell not 1, 0, -1 or blank.

    Each column's distinct values are checked once, so the codes themselves
    need only be made for the rows a loader keeps.
    """
    cells = np.asarray(cells, dtype=object)
    bad = np.zeros(len(cells), dtype=bool)
    for j in range(cells.shape[1]):
        column = cells[:, j].tolist()
        wrong = {v for v in set(column) if labeler_code(v) == BAD_CODE}
        if wrong:
            bad |= np.fromiter((v in wrong for v in column), bool, len(column))
    return bad


def labeler_labels(codes, header_cols, classes, dataset, uncertain):
    """Labels in ``classes`` from the CheXpert labeler's codes.

    ``codes`` is ``(n, m)``, its columns named by ``header_cols`` (the data
    set's observation names). Positive 1, negative 0, uncertain -1 per
    ``uncertain`` (U-Ignore NaN, U-Ones 1, U-Zeros 0; Irvin et al. 2019), not
    mentioned (blank) NaN; except that the labeler marks "No Finding" only
    when no finding is positive or uncertain, so in an image with "No Finding"
    1 every blank finding but "Support Devices" is 0, and a blank "No Finding"
    is 0.
    """
    own = source_labels(dataset)
    position = {name: j for j, name in enumerate(header_cols)}
    codes = codes.copy()
    if "No Finding" in position:
        j_none = position["No Finding"]
        healthy = codes[:, j_none] == 1.0
        for name, j in position.items():
            if name not in ("No Finding", "Support Devices"):
                column = codes[:, j]
                column[healthy & np.isnan(column)] = 0.0
        column = codes[:, j_none]
        column[np.isnan(column)] = 0.0
    codes[codes == -1.0] = UNCERTAIN[uncertain]
    labels = np.full((len(codes), len(classes)), np.nan)
    for j, common in enumerate(classes):
        names = own.get(common, ())
        if len(names) == 1 and names[0] in position:
            labels[:, j] = codes[:, position[names[0]]]
    return labels


def object_array(items):
    """(n,) object array holding ``items`` (arrays of any shapes) as they are."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def take(arrays, keep):
    """Every array of a dict indexed by ``keep``."""
    return {name: values[keep] for name, values in arrays.items()}


def import_pandas():
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            "as_frame=True needs pandas: pip install pandas (or pip install "
            "'skcxr[pandas]')."
        ) from exc
    return pandas


def make_bunch(
    dataset,
    *,
    paths,
    labels,
    classes,
    patient_ids,
    study_ids,
    split,
    views,
    sex,
    age,
    metadata,
    counts,
    as_frame=False,
    **extras,
):
    """The Bunch every loader returns (see the user guide's "Data sets" page)."""
    paths = np.asarray(paths, dtype=str)
    classes = np.asarray(classes, dtype=str)
    bunch = Bunch(
        dataset=dataset,
        paths=paths,
        labels=np.asarray(labels, dtype=float).reshape(len(paths), len(classes)),
        classes=classes,
        patient_ids=np.asarray(patient_ids),
        study_ids=np.asarray(study_ids, dtype=str),
        split=None if split is None else np.asarray(split, dtype=str),
        views=np.asarray(views, dtype=str),
        sex=np.asarray(sex, dtype=str),
        age=np.asarray(age, dtype=float),
        metadata=metadata,
        frame=None,
        **{key: int(counts.get(key, 0)) for key in COUNT_KEYS},
        **extras,
    )
    if as_frame:
        bunch.frame = to_frame(bunch)
    return bunch


def to_frame(bunch):
    """DataFrame of a loader's Bunch: one row per image.

    Columns: ``path``, ``patient_id``, ``study_id``, ``split``, ``view``,
    ``sex``, ``age``, one per class, then the label file's columns (a label
    file column named like one before gets the suffix ``" (raw)"``).
    """
    pandas = import_pandas()
    columns = {
        "path": bunch.paths,
        "patient_id": bunch.patient_ids,
        "study_id": bunch.study_ids,
        "split": bunch.split,
        "view": bunch.views,
        "sex": bunch.sex,
        "age": bunch.age,
    }
    for j, name in enumerate(bunch.classes):
        columns[str(name)] = bunch.labels[:, j]
    for name, values in bunch.metadata.items():
        columns[f"{name} (raw)" if name in columns else name] = values
    return pandas.DataFrame(columns)


def source_name(dataset, path):
    return f"{DATASET_NAMES.get(dataset, dataset)} file {str(path)!r}"
