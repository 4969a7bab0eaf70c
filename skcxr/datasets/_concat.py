"""Pool loaded data sets on the common label space."""

import numpy as np
from sklearn.utils._param_validation import validate_params

from ._common import COUNT_KEYS, make_bunch

__all__ = ["concat_datasets"]

_PER_IMAGE = ("paths", "labels", "patient_ids", "study_ids", "views", "sex", "age")


@validate_params(
    {"names": ["array-like", None], "as_frame": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def concat_datasets(*bunches, names=None, as_frame=False):
    """Pool data sets loaded by the skcxr loaders on the union of their classes.

    The ``labels`` of the pooled set have one column per class of any input
    (in first-seen order); a data set that lacks a class has NaN there, never
    0, so multi-label losses and metrics mask it out finding by finding.
    Patient and study ids are prefixed with the source name, so two data
    sets' patient ``1`` stay two patients in a grouped split; give the same
    name to two parts of one data set (its train and validation files) to
    keep its patients shared.

    Parameters
    ----------
    *bunches : Bunch
        Returned by the loaders (:func:`load_chexpert`,
        :func:`load_chestxray14`, ...).
    names : list of str, default=None
        A source name per Bunch; default each Bunch's ``dataset``.
    as_frame : bool, default=False
        Also return ``frame``, a pandas DataFrame of one row per image.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``paths``, ``labels``, ``classes``, ``patient_ids`` and ``study_ids``
        (``"source:id"``), ``split`` (``"unassigned"`` where a set has no
        official split), ``views``, ``sex``, ``age``, ``source`` (n,) str;
        ``metadata`` with ``source`` and ``index`` (the row in its own Bunch,
        to reach its metadata, boxes or masks); ``frame``; ``dataset``
        ``"pooled"``; the counts summed.

    Raises
    ------
    ValueError
        When no Bunch is given, ``names`` has another length, or a Bunch
        lacks a key of the loaders' shape.

    Notes
    -----
    RSNA Pneumonia and SIIM-ACR Pneumothorax images are ChestX-ray14 images
    under other names; pooling them with ChestX-ray14 can count one
    radiograph twice and put one patient on both sides of a split.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.utils import Bunch
    >>> from skcxr.datasets import concat_datasets
    >>> def toy(dataset, classes, labels, patients):
    ...     n = len(patients)
    ...     return Bunch(dataset=dataset, paths=np.array([f"{dataset}{i}.png"
    ...         for i in range(n)]), labels=np.array(labels, float),
    ...         classes=np.array(classes), patient_ids=np.array(patients),
    ...         study_ids=np.array(patients), split=None, views=np.full(n, "PA"),
    ...         sex=np.full(n, "F"), age=np.full(n, 40.0))
    >>> pooled = concat_datasets(
    ...     toy("chestxray14", ["Effusion", "Hernia"], [[1, 0]], ["1"]),
    ...     toy("chexpert", ["Effusion", "Edema"], [[0, 1], [1, np.nan]],
    ...         ["1", "2"]))
    >>> pooled.classes.tolist()
    ['Effusion', 'Hernia', 'Edema']
    >>> pooled.labels
    array([[ 1.,  0., nan],
           [ 0., nan,  1.],
           [ 1., nan, nan]])
    >>> pooled.patient_ids.tolist(), pooled.source.tolist()
    (['chestxray14:1', 'chexpert:1', 'chexpert:2'], ['chestxray14', 'chexpert', 'chexpert'])
    """
    if not bunches:
        raise ValueError("concat_datasets needs at least one Bunch.")
    for k, bunch in enumerate(bunches):
        lacking = [key for key in (*_PER_IMAGE, "classes") if key not in bunch]
        if lacking:
            raise ValueError(
                f"Bunch {k} lacks {lacking}: pass what a skcxr loader returns."
            )
    if names is None:
        names = [str(b.get("dataset") or f"set{k}") for k, b in enumerate(bunches)]
    names = [str(n) for n in names]
    if len(names) != len(bunches):
        raise ValueError(
            f"names has {len(names)} entries for {len(bunches)} Bunch(es)."
        )
    classes = list(dict.fromkeys(str(c) for b in bunches for c in b.classes))
    column = {c: j for j, c in enumerate(classes)}
    parts = {key: [] for key in ("paths", "patient_ids", "study_ids", "views")}
    parts.update(sex=[], age=[], split=[], source=[], index=[], labels=[])
    for name, bunch in zip(names, bunches):
        n = len(bunch.paths)
        labels = np.full((n, len(classes)), np.nan)
        labels[:, [column[str(c)] for c in bunch.classes]] = bunch.labels
        parts["labels"].append(labels)
        parts["paths"].append(np.asarray(bunch.paths, dtype=str))
        for key in ("patient_ids", "study_ids"):
            ids = np.asarray(bunch[key]).astype(str)
            parts[key].append(np.char.add(f"{name}:", ids))
        parts["views"].append(np.asarray(bunch.views, dtype=str))
        parts["sex"].append(np.asarray(bunch.sex, dtype=str))
        parts["age"].append(np.asarray(bunch.age, dtype=float))
        split = bunch.get("split")
        parts["split"].append(
            np.full(n, "unassigned") if split is None else np.asarray(split, str)
        )
        parts["source"].append(np.full(n, name))
        parts["index"].append(np.arange(n))
    pooled = {key: np.concatenate(values) for key, values in parts.items()}
    counts = {key: sum(int(b.get(key, 0) or 0) for b in bunches) for key in COUNT_KEYS}
    return make_bunch(
        "pooled",
        paths=pooled["paths"],
        labels=pooled["labels"],
        classes=classes,
        patient_ids=pooled["patient_ids"],
        study_ids=pooled["study_ids"],
        split=pooled["split"],
        views=pooled["views"],
        sex=pooled["sex"],
        age=pooled["age"],
        metadata={"source": pooled["source"], "index": pooled["index"]},
        counts=counts,
        as_frame=as_frame,
        source=pooled["source"],
    )
