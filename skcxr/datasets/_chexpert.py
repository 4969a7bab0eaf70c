"""CheXpert (Irvin et al. 2019): Stanford's 224,316 radiographs of 65,240 patients."""

import os
from pathlib import Path

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

from ._common import (
    BAD_CODE,
    UNCERTAIN,
    age_years,
    check_missing,
    labeler_code,
    labeler_labels,
    make_bunch,
    map_values,
    present,
    present_in,
    sex_name,
    source_name,
    take,
    view_name,
    views_keep,
    warn_unreadable,
)
from ._labels import resolve_classes
from ._table import common_prefix, concat_tables, gc_paused, read_table

__all__ = ["load_chexpert"]

_FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")
_CSV = {"train": "train.csv", "val": "valid.csv"}
_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
_PER_ROW = ("Path", "Frontal/Lateral", "AP/PA")
_SUBSETS = ("train/", "valid/", "test/")


def _data_folder(root):
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a folder.")
    for folder in (root, *(root / name for name in _FOLDERS)):
        if any((folder / name).is_file() for name in _CSV.values()):
            return folder
    raise ValueError(
        f"No CheXpert layout under root={str(root)!r}: expected "
        "CheXpert-v1.0-small/train.csv (or CheXpert-v1.0/train.csv; root may "
        "be that folder or its parent)."
    )


@validate_params(
    {
        "root": [str, os.PathLike],
        "split": [StrOptions(set(_CSV)), None],
        "uncertain": [StrOptions(set(UNCERTAIN))],
        "views": [str, "array-like", None],
        "on_missing": [StrOptions({"raise", "skip"})],
        "classes": ["array-like", None],
        "as_frame": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
@gc_paused()  # row lists hold no cycles: no collection while they are built
def load_chexpert(
    root,
    *,
    split="train",
    uncertain="ignore",
    views=None,
    on_missing="raise",
    classes=None,
    as_frame=False,
):
    """File paths, findings, patients and official split of CheXpert.

    CheXpert (Irvin et al. 2019): 224,316 chest radiographs (frontal and
    lateral) of 65,240 patients of Stanford Hospital, labelled for 14
    observations by the CheXpert labeler from the radiology reports: 1
    positive, 0 negative, -1 uncertain, blank not mentioned. The official
    validation set (234 images of 200 patients) is labelled by the consensus
    of three radiologists.

    Download from https://stanfordmlgroup.github.io/competitions/chexpert/
    (the 11 GB ``CheXpert-v1.0-small`` with downscaled JPEGs or the full
    ``CheXpert-v1.0``), under the Stanford University School of Medicine
    CheXpert Dataset Research Use Agreement (non-commercial research use; no
    redistribution). Expected layout::

        root/CheXpert-v1.0-small/train.csv
        root/CheXpert-v1.0-small/valid.csv
        root/CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg
        root/CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg

    The ``Path`` column names each image from ``root``; its first folder may
    differ from the folder's real name (the rest of the path is used).

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds ``CheXpert-v1.0-small`` (or ``CheXpert-v1.0``),
        or that folder itself.
    split : {"train", "val"} or None, default="train"
        ``"train"`` reads ``train.csv``, ``"val"`` the official validation
        set ``valid.csv``, None both.
    uncertain : {"ignore", "ones", "zeros"}, default="ignore"
        Uncertain (-1) labels: unknown (NaN, U-Ignore), positive (U-Ones) or
        negative (U-Zeros), the policies of Irvin et al. 2019.
    views : str or list of str, default=None
        Keep only these views (``"PA"``, ``"AP"``, ``"LATERAL"``, ``"LL"``,
        ``"RL"``, ``"unknown"``); None keeps every image.
    on_missing : {"raise", "skip"}, default="raise"
        An image of the CSV not on disk: raise a ValueError naming the first
        and how many, or leave them out with one warning (``n_missing``).
    classes : list of str, default=None
        Common finding names (:data:`~skcxr.datasets.LABEL_TABLE`) that get a
        column of ``labels``, in that order; a finding CheXpert does not label
        is NaN. Default: CheXpert's 13 findings (``"No Finding"`` on request).
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of one row per image.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths`` (n,) str; ``labels`` (n, n_classes) float: 1 positive, 0
        negative, NaN unknown: not mentioned, or uncertain with
        ``uncertain="ignore"``. The labeler marks "No Finding" only when no
        finding is positive or uncertain, so in an image with "No Finding"
        every blank finding but "Support Devices" is 0, and a blank "No
        Finding" is 0. ``classes`` (n_classes,) str; ``patient_ids`` (n,) str
        (``"patient00001"``); ``study_ids`` (n,) str
        (``"patient00001/study1"``); ``split`` (n,) str, ``"train"`` or
        ``"val"``; ``views`` (n,) str, AP/PA of a frontal image, else
        ``"LATERAL"``; ``sex`` (n,) str ``"M"``, ``"F"`` or ``"unknown"``;
        ``age`` (n,) float years (NaN when unknown, and for the placeholder
        age 0); ``metadata`` dict of CSV column -> (n,) object array of str;
        ``frame`` DataFrame or None; ``dataset`` ``"chexpert"``; the counts
        ``n_rows`` (CSV rows read), ``n_unreadable``, ``n_excluded`` (by
        ``views``) and ``n_missing``.

    Raises
    ------
    ValueError
        On a missing layout or column, a missing image (``on_missing="raise"``),
        an unknown finding name in ``classes``, or no image left.
    ImportError
        With ``as_frame=True`` when pandas is not installed.

    See Also
    --------
    load_mimic_cxr : MIMIC-CXR, labelled by the same labeler.
    concat_datasets : Pool data sets on the common label space.

    References
    ----------
    .. [1] Irvin J, Rajpurkar P, Ko M, et al. CheXpert: A large chest
       radiograph dataset with uncertainty labels and expert comparison.
       AAAI 2019. https://arxiv.org/abs/1901.07031

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skcxr.datasets import load_chexpert
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> folder = root / "CheXpert-v1.0-small"
    >>> folder.mkdir()
    >>> _ = (folder / "train.csv").write_text(
    ...     "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Cardiomegaly,"
    ...     "Pleural Effusion\\n"
    ...     "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,"
    ...     "Female,68,Frontal,AP,1.0,,\\n"
    ...     "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,"
    ...     "Male,87,Frontal,PA,,-1.0,1.0\\n"
    ...     "CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,"
    ...     "Male,87,Lateral,,,-1.0,1.0\\n")
    >>> for name in ("patient00001/study1/view1_frontal.jpg",
    ...              "patient00002/study1/view1_frontal.jpg"):
    ...     image = folder / "train" / name
    ...     image.parent.mkdir(parents=True, exist_ok=True)
    ...     _ = image.write_bytes(b"")
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     data = load_chexpert(root, classes=["Cardiomegaly", "Effusion", "Mass"],
    ...                          on_missing="skip")
    >>> print(caught[0].message)  # doctest: +ELLIPSIS
    1 of the 3 image(s) listed in CheXpert file ... are left out ...
    >>> data.labels  # uncertain is unknown; CheXpert does not label Mass
    array([[ 0.,  0., nan],
           [nan,  1., nan]])
    >>> data.patient_ids.tolist(), data.views.tolist(), data.n_missing
    (['patient00001', 'patient00002'], ['AP', 'PA'], 1)
    >>> load_chexpert(root, uncertain="ones", views=["PA"],
    ...               classes=["Cardiomegaly", "Effusion"]).labels
    array([[1., 1.]])
    """
    folder = _data_folder(root)
    classes = resolve_classes(classes, "chexpert")
    tables, names, sources = [], [], []
    counts = {"n_rows": 0, "n_unreadable": 0}
    first_bad = None
    for name in list(_CSV) if split is None else [split]:
        path = folder / _CSV[name]
        if not path.is_file():
            if split is None:
                continue
            raise ValueError(f"split={name!r}: no {_CSV[name]} in {str(folder)!r}.")
        # the columns every row needs; the others are read for the rows kept
        table = read_table(path, required=_COLUMNS, columns=_PER_ROW)
        if tables and table.header != tables[0].header:
            raise ValueError(
                f"{str(path)!r} has other columns than {str(sources[0])!r}: "
                f"{table.header}."
            )
        if table.bad and first_bad is None:
            first_bad = (
                source_name("chexpert", path),
                f"data row {table.bad[0][0]}",
                "not as many fields as the header",
            )
        counts["n_unreadable"] += len(table.bad)
        counts["n_rows"] += table.n_rows
        tables.append(table)
        names.append(name)
        sources.append(path)
    source = " and ".join(source_name("chexpert", p) for p in sources)
    table = concat_tables(tables)
    header = table.header
    col = {name: j for j, name in enumerate(header)}
    observations = [j for j, name in enumerate(header) if name not in _COLUMNS]
    rows = {
        "index": np.arange(len(table)),
        "split": np.repeat(names, [len(t) for t in tables]),
        "views": table.map("AP/PA", view_name),
    }
    lateral = table.map(
        "Frontal/Lateral", lambda v: v.strip().lower() == "lateral", bool
    )
    rows["views"][lateral] = "LATERAL"
    keep = views_keep(rows["views"], views, source=source)
    counts["n_excluded"] = int(keep.size - np.count_nonzero(keep))
    if counts["n_excluded"]:
        rows = take(rows, keep)

    strip, common = _strip(table, rows["index"])
    if strip is None:  # paths of several forms: made relative one by one
        shown = _relative(table.cells("Path", rows["index"]).tolist())
        on_disk = present(str(folder), shown)
    else:
        on_disk = present_in(
            str(folder), table, "Path", strip=strip, index=rows["index"], common=common
        )

        def shown(i):
            return table.cells("Path", rows["index"][i : i + 1])[0][strip:]

    counts["n_missing"] = check_missing(
        on_disk,
        shown,
        on_missing,
        source=source,
        root=folder,
    )
    if counts["n_missing"]:
        rows = take(rows, on_disk)
    cells = table.rows(rows["index"])
    paths = cells[:, col["Path"]].tolist()
    relpaths = _relative(paths) if strip is None else [p[strip:] for p in paths]

    # labels are read for the images kept: one that is none of 1, 0, -1 or
    # blank makes its row unreadable
    codes = np.empty((len(cells), len(observations)))
    for k, j in enumerate(observations):
        codes[:, k] = table.map(j, labeler_code, float, rows["index"])
    wrong = (codes == BAD_CODE).any(axis=1)
    if wrong.any():
        counts["n_unreadable"] += int(wrong.sum())
        first_bad = first_bad or (
            source,
            f"image {relpaths[int(np.argmax(wrong))]!r}",
            "a label that is not 1, 0, -1 or blank",
        )
        rows = take(rows, ~wrong)
        cells, codes = cells[~wrong], codes[~wrong]
        relpaths = [p for p, bad in zip(relpaths, wrong) if not bad]
    if first_bad is not None:
        warn_unreadable(counts["n_unreadable"], *first_bad)
    if not relpaths:
        raise ValueError(f"None of the images listed in {source} is on disk.")

    labels = labeler_labels(
        codes,
        [header[j] for j in observations],
        classes,
        "chexpert",
        uncertain,
    )
    base = os.path.join(str(folder), "")
    patient_ids, study_ids = _ids(relpaths)
    return make_bunch(
        "chexpert",
        paths=[base + p for p in relpaths],
        labels=labels,
        classes=classes,
        patient_ids=patient_ids,
        study_ids=study_ids,
        split=rows["split"],
        views=rows["views"],
        sex=map_values(cells[:, col["Sex"]], sex_name),
        age=map_values(cells[:, col["Age"]], _chexpert_age, float),
        metadata={name: cells[:, j] for j, name in enumerate(header) if name},
        counts=counts,
        as_frame=as_frame,
    )


def _ids(relpaths):
    """Patient (``patient00001``) and study (``patient00001/study1``) of each
    ``.../patient00001/study1/view1_frontal.jpg`` ("" for a shorter path)."""
    patients, studies = [], []
    for path in relpaths:
        image = path.rfind("/")
        study = path.rfind("/", 0, image) if image > 0 else -1
        if study < 0:
            patients.append("")
            studies.append("")
            continue
        patient = path.rfind("/", 0, study) + 1
        patients.append(path[patient:study])
        studies.append(path[patient:image])
    return patients, studies


def _chexpert_age(value):
    age = age_years(value)
    return np.nan if age == 0 else age  # 0 is CheXpert's placeholder


def _strip(table, index):
    """How many leading characters of every path to drop to make it relative.

    The CSV names each image from the data folder's parent; its first folder
    is dropped (whatever its name). Returns ``(strip, common)``: None when
    the paths do not all start alike (see :func:`_relative`), and the prefix
    every path has past ``strip`` (bytes, or None when not known).
    """
    if not len(index):
        return 0, None
    spans = table.spans("Path", index)
    if spans is None:
        paths = table.cells("Path", index).tolist()
        common = os.path.commonprefix([min(paths), max(paths)])
        shared = None
    else:
        shared = common_prefix(table.buffer, *spans)
        common = shared.decode("utf-8", "replace")
    first = table.cells("Path", index[:1])[0].partition("/")[0] + "/"
    if not common.startswith(first):
        return None, None
    strip = 0 if first in _SUBSETS else len(first)
    return strip, (
        None if shared is None else shared[len(first.encode()) if strip else 0 :]
    )


def _relative(paths):
    """CSV paths relative to the data folder, one by one."""
    return [p if p.startswith(_SUBSETS) else p.partition("/")[2] for p in paths]
