"""
=========================================
Public data sets under one label space
=========================================

Each public chest X-ray collection names its findings its own way: NIH
ChestX-ray14 ``Effusion`` (Wang et al. 2017), CheXpert ``Pleural Effusion``
(Irvin et al. 2019), PadChest ``pleural effusion`` (Bustos et al. 2020),
VinDr-CXR ``Pleural effusion`` (Nguyen et al. 2022). The loaders of
:mod:`skcxr.datasets` map them onto one set of common names,
:data:`~skcxr.datasets.LABEL_TABLE`, and mark a finding a data set does not
label as unknown (NaN), never as absent.

This example needs no download: it writes two tiny folders in the real
layouts of ChestX-ray14 and CheXpert, loads them, and pools them with
:func:`~skcxr.datasets.concat_datasets`.
"""

# %%
# Which data set labels which finding
# -----------------------------------
# One row per common name, one column per data set; the number is how many of
# the data set's own labels mean that finding (PadChest's label vocabulary is
# finer: seven kinds of atelectasis are "Atelectasis").
import matplotlib.pyplot as plt
import numpy as np

from skcxr.datasets import DATASET_NAMES, LABEL_TABLE

sets = list(DATASET_NAMES)
coverage = np.array(
    [[len(LABEL_TABLE[c].get(s, ())) for s in sets] for c in LABEL_TABLE]
)
fig, ax = plt.subplots(figsize=(8, 7))
ax.imshow(np.minimum(coverage, 3), cmap="Blues", vmin=0, vmax=3)
for (i, j), n in np.ndenumerate(coverage):
    if n:
        color = "white" if n >= 3 else "black"
        ax.text(j, i, n, ha="center", va="center", fontsize=8, color=color)
ax.set_xticks(
    range(len(sets)),
    [DATASET_NAMES[s] for s in sets],
    rotation=35,
    ha="right",
    fontsize=8,
)
ax.set_yticks(range(len(LABEL_TABLE)), list(LABEL_TABLE), fontsize=8)
ax.set_title("Labels per common finding (blank: not labelled, NaN)")
fig.tight_layout()

# %%
# Two small folders in the real layouts
# -------------------------------------
# ChestX-ray14: :func:`~skcxr.datasets.write_chest_xrays` writes synthetic
# images with the data set's file names, ``Data_Entry_2017.csv`` and its
# official patient-wise split. CheXpert: a ``train.csv`` written here in the
# labeler's format (1 positive, 0 negative, -1 uncertain, blank not
# mentioned), with one image left out, as in a partial download.
import tempfile
import warnings
from pathlib import Path

from PIL import Image

from skcxr.datasets import (
    load_chestxray14,
    load_chexpert,
    make_chest_xrays,
    write_chest_xrays,
)

root = Path(tempfile.mkdtemp())
X, y = make_chest_xrays(
    24, classes=("normal", "effusion", "atelectasis"), size=64, random_state=0
)
write_chest_xrays(root / "nih", X, y, layout="chestxray14", random_state=0)

folder = root / "CheXpert-v1.0-small"
rows = [
    # patient, study, sex, age, view, No Finding, Atelectasis, Pleural Effusion
    ("00001", 1, "Female", 68, "AP", "1.0", "", ""),
    ("00002", 1, "Male", 87, "PA", "", "-1.0", "1.0"),
    ("00002", 2, "Male", 87, "PA", "", "1.0", "1.0"),
    ("00003", 1, "Female", 41, "AP", "", "", "0.0"),
    ("00004", 1, "Male", 55, "PA", "", "1.0", "-1.0"),
]
lines = ["Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Atelectasis,Pleural Effusion"]
for k, (patient, study, sex, age, view, *labels) in enumerate(rows):
    relative = f"train/patient{patient}/study{study}/view1_frontal.jpg"
    lines.append(
        f"CheXpert-v1.0-small/{relative},{sex},{age},Frontal,{view}," + ",".join(labels)
    )
    if k != 3:  # patient00003's image was not downloaded
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((X[k] * 255).astype(np.uint8)).save(folder / relative)
(folder / "train.csv").write_text("\n".join(lines) + "\n")

# %%
# Load both, then pool them
# -------------------------
# ``classes=`` takes common names on every loader. CheXpert does not label
# Infiltration: its column is NaN. The missing CheXpert image is counted and
# reported, not silently dropped.
classes = ["Atelectasis", "Effusion", "Infiltration"]
nih = load_chestxray14(root / "nih", classes=classes)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    chexpert = load_chexpert(root, classes=classes, on_missing="skip")
print(caught[0].message)
print(
    f"CheXpert: {chexpert.n_rows} rows, {len(chexpert.paths)} images, "
    f"n_missing={chexpert.n_missing}"
)

from skcxr.datasets import concat_datasets

pooled = concat_datasets(nih, chexpert)
sources, counts = np.unique(pooled.source, return_counts=True)
print(pooled.classes.tolist(), dict(zip(sources.tolist(), counts.tolist())))

fig, ax = plt.subplots(figsize=(8, 2.8))
shown = np.ma.masked_invalid(pooled.labels.T)
cmap = plt.get_cmap("viridis").with_extremes(bad="lightgray")
ax.imshow(shown, cmap=cmap, aspect="auto", interpolation="nearest")
ax.set_yticks(range(len(pooled.classes)), pooled.classes)
ax.set_xlabel("image (ChestX-ray14 first, then CheXpert); gray: unknown (NaN)")
ax.axvline(len(nih.paths) - 0.5, color="white", linewidth=2)
fig.tight_layout()

# %%
# A patient-grouped split of the pooled set
# -----------------------------------------
# Patient ids carry their source (``chestxray14:1``, ``chexpert:patient00002``),
# so a grouped split never puts one patient's images on both sides.
from sklearn.model_selection import GroupShuffleSplit

train, test = next(
    GroupShuffleSplit(test_size=0.3, random_state=0).split(
        pooled.paths, groups=pooled.patient_ids
    )
)
print(sorted(set(pooled.patient_ids[test].tolist())))
assert not set(pooled.patient_ids[train]) & set(pooled.patient_ids[test])
