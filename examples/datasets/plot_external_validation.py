"""
=================================================
Train on one data set, validate on another
=================================================

A chest X-ray model that scores well on its own hospital's test split may do
worse on another hospital's images: other scanners, exposures, patients and
labelling rules. External validation measures that drop. Here a multi-label
network is trained on a folder in the NIH ChestX-ray14 layout (Wang et al.
2017) and scored on a folder in the CheXpert layout (Irvin et al. 2019)
whose images are darker and noisier (another "hospital"). The findings are
matched through the loaders' common names: ChestX-ray14's ``Effusion`` is
CheXpert's ``Pleural Effusion``. ``skcxr study --data A --layout chestxray14
--external B --external-layout chexpert`` runs the same comparison for a
whole study.

The images are synthetic (:func:`~skcxr.datasets.make_chest_xrays`), written
at the file names and label rows of each layout, so the example needs no
download.
"""

# %%
# Two folders in the real layouts
# --------------------------------
# The internal set: synthetic radiographs with effusion and atelectasis
# patterns, in ChestX-ray14's layout. The external set: other patients, drawn
# with a darker exposure and more noise, in CheXpert's layout (its
# ``train.csv``: 1 positive, 0 negative, blank not mentioned).
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from skcxr.datasets import make_chest_xrays, write_chest_xrays

root = Path(tempfile.mkdtemp())
findings = ("normal", "effusion", "atelectasis")
X, y = make_chest_xrays(240, classes=findings, size=64, random_state=0)
write_chest_xrays(root / "nih", X, y, layout="chestxray14", random_state=0)

X_ext, y_ext = make_chest_xrays(160, classes=findings, size=64, random_state=1)
noise = np.random.default_rng(1).normal(0, 0.04, X_ext.shape)
X_ext = np.clip(X_ext**1.4 + noise, 0, 1)  # another scanner: darker, noisier
folder = root / "CheXpert-v1.0-small"
lines = ["Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Atelectasis,Pleural Effusion"]
for k, (image, label) in enumerate(zip(X_ext, y_ext)):
    relative = f"train/patient{k:05d}/study1/view1_frontal.jpg"
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((image * 255).astype(np.uint8)).save(folder / relative)
    marks = {"normal": "1.0,0.0,0.0", "atelectasis": ",1.0,0.0", "effusion": ",0.0,1.0"}
    lines.append(f"CheXpert-v1.0-small/{relative},Female,60,Frontal,PA,{marks[label]}")
(folder / "train.csv").write_text("\n".join(lines) + "\n")

# %%
# Load both through one label space
# ---------------------------------
# ``classes=`` takes the common names; each loader returns its own data set's
# labels under them.
from skcxr import ImageLoader
from skcxr.datasets import load_chestxray14, load_chexpert

classes = ["Atelectasis", "Effusion"]
nih = load_chestxray14(root / "nih", classes=classes)
chexpert = load_chexpert(root, classes=classes)
loader = ImageLoader(size=64)
X_nih, X_chex = loader.fit_transform(nih.paths), loader.transform(chexpert.paths)
print(f"internal: {len(nih.paths)} images; external: {len(chexpert.paths)} images")

# %%
# Train on the internal set, with a patient-grouped test split
# ------------------------------------------------------------
from sklearn.model_selection import GroupShuffleSplit

from skcxr import TransferClassifier

train, test = next(
    GroupShuffleSplit(test_size=0.3, random_state=0).split(
        X_nih, groups=nih.patient_ids
    )
)
model = TransferClassifier(
    backbone="small_cnn",
    weights=None,
    trainable="all",
    max_epochs=12,
    lr=2e-3,
    pos_weight="balanced",
    random_state=0,
).fit(X_nih[train], nih.labels[train])

# %%
# Internal against external, with patient-level bootstrap intervals
# -----------------------------------------------------------------
# The per-finding ROC AUC on the internal test split and on every external
# image, each with a 95% interval resampled by patient, and the drop.
from skcxr.metrics import bootstrap_ci, roc_auc_per_finding


def finding_auc(y_true, score):
    """One finding's ROC AUC over its known labels (NaN: unknown)."""
    return roc_auc_per_finding(y_true[:, None], score[:, None])[0]


rows = []
for j, finding in enumerate(classes):
    internal = bootstrap_ci(
        nih.labels[test, j],
        model.predict_proba(X_nih[test])[:, j],
        finding_auc,
        groups=nih.patient_ids[test],
        n_resamples=300,
        random_state=0,
    )
    external = bootstrap_ci(
        chexpert.labels[:, j],
        model.predict_proba(X_chex)[:, j],
        finding_auc,
        groups=chexpert.patient_ids,
        n_resamples=300,
        random_state=0,
    )
    rows.append((finding, internal, external))
    print(
        f"{finding:12s} internal {internal.estimate:.3f} [{internal.low:.3f}, "
        f"{internal.high:.3f}]  external {external.estimate:.3f} "
        f"[{external.low:.3f}, {external.high:.3f}]  drop "
        f"{external.estimate - internal.estimate:+.3f}"
    )

fig, ax = plt.subplots(figsize=(6, 3))
for k, (_, internal, external) in enumerate(rows):
    for shift, result, color, name in (
        (-0.1, internal, "tab:blue", "internal (ChestX-ray14 layout)"),
        (0.1, external, "tab:orange", "external (CheXpert layout)"),
    ):
        ax.errorbar(
            result.estimate,
            k + shift,
            xerr=[[result.estimate - result.low], [result.high - result.estimate]],
            fmt="o",
            color=color,
            label=name if k == 0 else None,
        )
ax.set_yticks(range(len(rows)), [r[0] for r in rows])
ax.axvline(0.5, color="gray", linestyle=":")
ax.set_xlabel("ROC AUC (95% CI, patient-level bootstrap)")
ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
