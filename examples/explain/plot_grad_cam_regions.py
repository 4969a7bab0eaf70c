"""
=====================================================================
Grad-CAM, occlusion and region attribution scored on known lesions
=====================================================================

The synthetic X-rays of :func:`skcxr.datasets.make_chest_xrays` come with the
mask of each lesion, so an explanation can be checked, not only looked at:

* the **pointing game**: is the Grad-CAM maximum inside the (slightly
  dilated) lesion? Chance is the lesion's share of the lung fields;
* the **deletion curve**: removing the most salient pixels first should make
  the class probability fall faster than removing random pixels;
* **region attribution**: occluding the lung that holds the lesion should hurt
  the "bacteria" probability most. The intensity-sum "silhouette" rule of a
  three-class study of the Kermany images (which half is brighter) is shown as
  a baseline.

Images follow the radiological convention: the patient's right lung is on the
image's left, so regions are named by both sides.
"""

# %%
# Data and a small CNN
# --------------------
import time

import matplotlib.pyplot as plt
import numpy as np

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import (
    HeatmapDisplay,
    deletion_curve,
    grad_cam,
    intermediate_activations,
    pointing_game,
    region_attribution,
    silhouette_side,
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
X_train, y_train = X[:240], y[:240]
X_test, y_test, masks_test = X[240:], y[240:], masks[240:]
clf = TransferClassifier(
    backbone="small_cnn",
    weights=None,
    trainable="all",
    max_epochs=14,
    lr=3e-3,
    validation_fraction=0.0,
    random_state=0,
).fit(X_train, y_train)
pred = clf.predict(X_test)
print(f"test accuracy: {np.mean(pred == y_test):.2f}")

# %%
# Grad-CAM and occlusion for correct and wrong predictions
# --------------------------------------------------------
# Each map explains the predicted class. The base image is drawn in grey and
# the heatmap on top with a colour map and an alpha.
correct = np.flatnonzero((pred == y_test) & (y_test == "bacteria"))[:3]
wrong = np.flatnonzero(pred != y_test)[:3]
shown = np.r_[correct, wrong]
titles = [f"true {t}\npred {p}" for t, p in zip(y_test[shown], pred[shown])]
fig, axes = plt.subplots(2, len(shown), figsize=(2.2 * len(shown), 5))
HeatmapDisplay.from_estimator(
    clf, X_test[shown], method="grad_cam", titles=titles, ax=axes[0]
)
HeatmapDisplay.from_estimator(
    clf,
    X_test[shown],
    method="occlusion",
    titles=titles,
    ax=axes[1],
    method_kwargs={"patch_size": 8, "stride": 4, "baseline": "blur"},
)
axes[0, 0].text(-8, 32, "Grad-CAM", rotation=90, va="center")
axes[1, 0].text(-8, 32, "occlusion", rotation=90, va="center")
fig.tight_layout()

# %%
# Pointing game against chance
# ----------------------------
# Lesions are drawn inside the lungs, so the union of all lesion masks outlines
# the lung fields; a random point in them lands in the (dilated) lesion with
# probability ``chance``. Grad-CAM is upsampled from the coarse grid of the
# explained layer, so the tolerance is a quarter of one grid cell.
hit = (pred == y_test) & (y_test == "bacteria")
heatmaps = grad_cam(clf, X_test[hit])
lungs = masks.any(axis=0)
grid = intermediate_activations(clf, X_test[:1], None).shape[-1]
tolerance = X.shape[2] / grid / 4
game = pointing_game(heatmaps, masks_test[hit], tolerance=tolerance, region=lungs)
print(
    f"pointing game on {hit.sum()} correctly classified pneumonia images "
    f"(tolerance {tolerance:g} px): {game.score:.2f} (chance {game.chance:.2f})"
)

# %%
# Deletion curve
# --------------
# Removed pixels are replaced by a blurred copy of the image.
curve = deletion_curve(
    clf,
    X_test[hit],
    heatmaps,
    target="bacteria",
    steps=10,
    baseline="blur",
    random_state=0,
)
print(
    f"deletion AUC: Grad-CAM order {curve.auc_salient:.3f}, "
    f"random order {curve.auc_random:.3f}"
)
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(curve.fractions, curve.salient, "o-", label="most salient first (Grad-CAM)")
ax.plot(curve.fractions, curve.random, "s--", label="random pixels")
ax.set_xlabel("fraction of pixels removed")
ax.set_ylabel("p(bacteria)")
ax.legend()
fig.tight_layout()

# %%
# Region attribution against the silhouette rule
# ----------------------------------------------
# The lesion's side comes from its mask's centroid (image left = patient
# right).
regions = region_attribution(clf, X_test[hit], target="bacteria", baseline="blur")
centroid_col = np.array([np.nonzero(m)[1].mean() for m in masks_test[hit]])
lesion_side = np.where(centroid_col < X.shape[2] / 2, "right", "left")
silhouette = silhouette_side(X_test[hit])
silhouette_patient = np.where(
    np.char.find(silhouette.astype(str), "patient right") >= 0, "right", "left"
)
majority = max(np.mean(lesion_side == "right"), np.mean(lesion_side == "left"))
print(
    "region attribution names the lesion's side: "
    f"{np.mean(regions.top_side == lesion_side):.2f}"
)
print(
    f"silhouette rule: {np.mean(silhouette_patient == lesion_side):.2f} "
    f"(always guessing the commoner side: {majority:.2f})"
)
first = {
    str(name): round(float(v), 3)
    for name, v in zip(regions.region_names, regions.scores[0])
}
print("first image, probability drop per occluded half:", first)

zones = region_attribution(
    clf, X_test[hit][:1], regions="zones", target="bacteria", baseline="blur"
)
fig, ax = plt.subplots(figsize=(3, 3))
ax.imshow(X_test[hit][0], cmap="gray", vmin=0, vmax=1)
score_map = np.tensordot(zones.scores[0], zones.masks.astype(float), axes=1)
ax.imshow(score_map, cmap="Reds", alpha=0.4)
ax.contour(masks_test[hit][0], levels=[0.5], colors="cyan")
ax.set_title(f"zones: {zones.top_region[0]}", fontsize=7)
ax.set_axis_off()
print(f"example run time: {time.perf_counter() - start:.0f} s")
