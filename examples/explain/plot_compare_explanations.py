"""
=========================================================
Which explanation finds the lesion? Five methods compared
=========================================================

The synthetic X-rays of :func:`skcxr.datasets.make_chest_xrays` come with
the mask of each lesion, so heatmaps can be scored rather than only looked at.
:func:`skcxr.inspection.evaluate_explanations` computes, for each method, the
heatmaps of the same images and scores them side by side, each score next to
its chance level:

* **pointing game** (Zhang et al. 2018): is the heatmap's maximum inside the
  lesion? Chance: the lesion's share of the lung fields;
* **mass in lesion** (the energy-based pointing game of Wang et al. 2020):
  the share of the heatmap's mass inside the lesion; chance: the same share
  for a uniform map;
* **deletion / insertion AUC** (Petsiuk et al. 2018): the class probability
  as the most salient pixels are removed first (lower is better) or put back
  first into a blurred image (higher is better); chance: a random order;
* **time per image**.

The methods: Grad-CAM (Selvaraju et al. 2017), Grad-CAM++ (Chattopadhay et
al. 2018), vanilla gradient saliency (Simonyan et al. 2014), SmoothGrad
(Smilkov et al. 2017) and occlusion (Zeiler and Fergus 2014).
"""

# %%
# A small CNN on synthetic X-rays with lesion masks
# -------------------------------------------------
import time

import matplotlib.pyplot as plt
import numpy as np

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import (
    evaluate_explanations,
    intermediate_activations,
    saliency,
    silhouette_region,
)

start = time.perf_counter()
X, y, masks = make_chest_xrays(
    320,
    classes=("normal", "bacteria"),
    size=64,
    difficulty=0.3,
    return_masks=True,
    random_state=0,
)
clf = TransferClassifier(
    backbone="small_cnn",
    weights=None,
    trainable="all",
    max_epochs=14,
    lr=3e-3,
    validation_fraction=0.0,
    random_state=0,
).fit(X[:240], y[:240])
X_test, y_test, masks_test = X[240:], y[240:], masks[240:]
pred = clf.predict(X_test)
print(f"test accuracy: {np.mean(pred == y_test):.2f}")

# %%
# The comparison table
# --------------------
# Only correctly classified pneumonia images are scored, each explaining the
# "bacteria" class. Lesions are drawn inside the lungs, so the union of all
# masks outlines the lung fields, where the chance levels are counted. Grad-CAM
# is upsampled from a coarse grid, so the pointing game's tolerance is a
# quarter of one grid cell.
hit = (pred == y_test) & (y_test == "bacteria")
X_hit, masks_hit = X_test[hit], masks_test[hit]
lungs = masks.any(axis=0)
grid = intermediate_activations(clf, X_hit[:1], None).shape[-1]
result = evaluate_explanations(
    clf,
    X_hit,
    masks_hit,
    target="bacteria",
    region=lungs,
    tolerance=X.shape[2] / grid / 4,
    method_params={"smoothgrad": {"n_samples": 10}},
    batch_size=256,
    random_state=0,
)
print(f"{result.n_images} images\n{result.text}")

# %%
# The heatmaps of one image
# -------------------------
# Each method's map with the lesion outlined in cyan, and the thresholded
# saliency maps (weights at or above 0.5 and 0.7 of the maximum) that an
# upload interface shows next to the X-ray.
methods = list(result.heatmaps)
thresholded = {
    f"saliency >= {t}": saliency(clf, X_hit[:1], target="bacteria", threshold=t)
    for t in (0.5, 0.7)
}
panels = [(m, result.heatmaps[m][0]) for m in methods]
panels += [(name, maps[0]) for name, maps in thresholded.items()]
fig, axes = plt.subplots(1, len(panels), figsize=(1.8 * len(panels), 2.3))
for ax, (name, heatmap) in zip(axes, panels):
    ax.imshow(X_hit[0], cmap="gray", vmin=0, vmax=1)
    ax.imshow(np.clip(heatmap, 0, None), cmap="jet", alpha=0.45)
    ax.contour(masks_hit[0], levels=[0.5], colors="cyan", linewidths=0.8)
    ax.set_title(name.replace("_", " "), fontsize=7)
    ax.set_axis_off()
fig.tight_layout()

# %%
# Scores against chance
# ---------------------
fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
rows = result.rows
y_pos = np.arange(len(rows))
for ax, score in zip(axes, ("pointing_game", "mass_in_lesion")):
    ax.barh(y_pos, [row[score] for row in rows], color="tab:blue")
    ax.axvline(rows[0][f"{score}_chance"], color="k", ls="--", label="chance")
    ax.set_yticks(y_pos, [row["method"].replace("_", " ") for row in rows])
    ax.set_xlabel(score.replace("_", " "))
    ax.legend(loc="lower right", fontsize=7)
fig.tight_layout()

# %%
# The silhouette rule as a model-free baseline
# --------------------------------------------
# The brighter half, then its brighter quadrant, then a "lobe box" (rows
# 20-110 of a 224 px image, scaled): how often does the box touch the lesion?
boxes = silhouette_region(X_hit)
touch = np.mean([(box & mask).any() for box, mask in zip(boxes.masks, masks_hit)])
print(f"silhouette lobe box overlaps the lesion in {touch:.2f} of the images")
print(f"example run time: {time.perf_counter() - start:.0f} s")
