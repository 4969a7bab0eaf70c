"""Expert labels of ChestX-ray14 images by Google (Majkowska et al. 2020).

Four findings (fracture, pneumothorax, airspace opacity, nodule or mass) of
4,376 ChestX-ray14 images, each adjudicated by a panel of US board-certified
radiologists, split into a validation set (2,414 images) and a test set
(1,962 images drawn from ChestX-ray14's official test split). Read by
:func:`skcxr.datasets.load_chestxray14` with ``labels="google2019"``.
"""

from pathlib import Path

import numpy as np

from ._common import source_name
from ._table import concat_tables, read_table

#: The four expert-labelled findings, as the label files name them.
FINDINGS = ("Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass")
#: Label files looked for, first found first: the combined file (with a
#: ``Set Id`` column) as torchxrayvision ships it, then Google's two files.
COMBINED = (
    "google2019_nih-chest-xray-labels.csv",
    "google2019_nih-chest-xray-labels.csv.gz",
)
RELEASE = {
    "test": "four_findings_expert_labels_test_labels.csv",
    "val": "four_findings_expert_labels_validation_labels.csv",
}
_SET = {"test": "test", "val": "val", "validation": "val", "valid": "val"}


def find_files(folders):
    """The expert label files in the first of ``folders`` that has them."""
    for folder in folders:
        for name in COMBINED:
            if (folder / name).is_file():
                return [folder / name]
        found = [
            folder / name for name in RELEASE.values() if (folder / name).is_file()
        ]
        if found:
            return found
    return []


def read(paths):
    """Table, official split and source of one or more expert label files.

    The files must share their columns. The split is the ``Set Id`` column
    when there is one, else ``"test"`` or ``"val"`` from the file name
    (``..._test_labels.csv``, ``..._validation_labels.csv``), else
    ``"unassigned"``.

    Returns
    -------
    table : LabelTable
        The rows of every file in turn.
    split : ndarray of str
    source : str
    """
    tables, split = [], []
    for path in map(Path, paths):
        table = read_table(path, required=("Image Index", *FINDINGS))
        if tables and table.header != tables[0].header:
            raise ValueError(
                f"{str(path)!r} has other columns than {str(paths[0])!r}: "
                f"{table.header}."
            )
        if "Set Id" in table.header:
            side = [
                _SET.get(s.strip().lower(), "unassigned")
                for s in table.column("Set Id").tolist()
            ]
        else:
            name = path.name.lower()
            side = [
                "test" if "test" in name else "val" if "valid" in name else "unassigned"
            ] * len(table)
        tables.append(table)
        split.extend(side)
    source = " and ".join(source_name("nih_google2019", p) for p in paths)
    return concat_tables(tables), np.asarray(split, dtype=str), source


def expert_findings(table, header):
    """Per row: the findings the panel called present, and those it left blank.

    A cell ``YES`` is present, ``NO`` absent; anything else is unknown.
    """
    cols = [header.index(name) for name in FINDINGS]
    present, unknown = [], []
    for row in table[:, cols].tolist():
        answers = [cell.strip().upper() for cell in row]
        present.append([f for f, a in zip(FINDINGS, answers) if a == "YES"])
        unknown.append([f for f, a in zip(FINDINGS, answers) if a not in ("YES", "NO")])
    return present, unknown
