"""
=====================================
Mask chest X-rays with Otsu's method
=====================================

A study of pediatric pneumonia on the Kermany images (Kermany et al. 2018)
masked each radiograph before classifying it: blur the image with a Gaussian,
compute Otsu's threshold (Otsu 1979) of the blurred image, and keep the pixels
*below* it (the dark, air-filled lung fields). :class:`~skcxr.OtsuMasker`
does this for a whole batch at once and makes the side, the clean-up (largest
regions, hole filling) and the fill value parameters.
"""

# %%
# Real radiographs
# ----------------
# skcxr ships 16 real chest X-rays (downscaled, from the Kermany pediatric
# pneumonia data set). We load four of them at 256 x 256.
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

from skcxr import ImageLoader, OtsuMasker
from skcxr.datasets import load_sample_images

paths, y = load_sample_images()
pick = [0, 1, 8, 9]
X = ImageLoader(size=256).fit_transform(paths[pick])
y = y[pick]
print(X.shape, X.dtype, y)

# %%
# Blur, threshold, mask
# ---------------------
# ``sigma`` is the Gaussian's standard deviation in pixels. ``keep="below"``
# keeps ``blurred <= threshold``; everything else becomes ``fill_value``.
# ``compute_masks`` returns the boolean masks and the per-image thresholds.
masker = OtsuMasker(sigma=2.0, keep="below", fill_value=0.0)
X_masked = masker.fit_transform(X)
masks, thresholds = masker.compute_masks(X)
print("Otsu thresholds:", np.round(thresholds, 3))

fig, axes = plt.subplots(2, 4, figsize=(10, 5.4))
for i in range(4):
    axes[0, i].imshow(X[i], cmap="gray", vmin=0, vmax=1)
    axes[0, i].set_title(y[i])
    axes[1, i].imshow(X_masked[i], cmap="gray", vmin=0, vmax=1)
    axes[1, i].set_title(f"kept <= {thresholds[i]:.2f}")
for ax in axes.ravel():
    ax.set_axis_off()
fig.suptitle("Before (top) and after (bottom) masking")
fig.tight_layout()

# %%
# The histogram and the threshold
# -------------------------------
# Otsu's method picks the threshold that maximises the variance between the
# two classes of the intensity histogram of the *blurred* image. The masker
# blurs with :func:`scipy.ndimage.gaussian_filter` (``mode="nearest"``,
# ``truncate=4.0``), so we can redo the blur here and look at what it sees.
blurred = ndimage.gaussian_filter(X[0], sigma=2.0, mode="nearest", truncate=4.0)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.hist(blurred.ravel(), bins=256, color="0.4")
ax.axvline(thresholds[0], color="tab:red", label=f"Otsu threshold {thresholds[0]:.3f}")
ax.set_xlabel("blurred intensity")
ax.set_ylabel("pixels")
ax.set_title(f"Image 0 ({y[0]}): kept pixels lie left of the line")
ax.legend()
fig.tight_layout()

# %%
# Cleaning the mask up
# --------------------
# On these radiographs the dark side is mostly the air around the body, with
# speckles in the lungs. ``keep="above"`` takes the other side (the complement
# of the raw mask: the body). ``n_regions`` keeps the largest 4-connected
# regions of each mask and ``fill_holes`` fills what they enclose, which turns
# the bright side into one solid silhouette of the thorax.
variants = {
    "keep below": OtsuMasker(sigma=2.0),
    "keep above": OtsuMasker(sigma=2.0, keep="above"),
    "above, largest region": OtsuMasker(sigma=2.0, keep="above", n_regions=1),
    "+ holes filled": OtsuMasker(sigma=2.0, keep="above", n_regions=1, fill_holes=True),
}
fig, axes = plt.subplots(2, len(variants), figsize=(10, 5.4))
for col, (name, variant) in enumerate(variants.items()):
    mask, _ = variant.fit(X).compute_masks(X[[0, 2]])
    for row in range(2):
        axes[row, col].imshow(mask[row], cmap="gray")
        axes[row, col].set_axis_off()
    axes[0, col].set_title(name)
fig.tight_layout()

# %%
# Lung fields of synthetic radiographs
# ------------------------------------
# :func:`~skcxr.datasets.make_chest_xrays` draws adult PA radiographs whose
# lungs are the darkest part of the chest. Keeping the dark side, dropping the
# regions that touch the border (``clear_border``: the air at the image edges),
# keeping the two largest regions and filling their holes leaves the two lung
# fields.
from skcxr.datasets import make_chest_xrays

X_syn, y_syn = make_chest_xrays(4, size=128, random_state=0)
lungs = OtsuMasker(sigma=2.0, clear_border=True, n_regions=2, fill_holes=True)
X_lungs = lungs.fit_transform(X_syn)
fig, axes = plt.subplots(2, 4, figsize=(10, 5.4))
for i in range(4):
    axes[0, i].imshow(X_syn[i], cmap="gray", vmin=0, vmax=1)
    axes[0, i].set_title(y_syn[i])
    axes[1, i].imshow(X_lungs[i], cmap="gray", vmin=0, vmax=1)
for ax in axes.ravel():
    ax.set_axis_off()
fig.suptitle("Synthetic images and their two largest inner dark regions")
fig.tight_layout()

# %%
# In a pipeline
# -------------
# The masker is a stateless scikit-learn transformer that returns the layout
# it was given, so flat images go straight into any scikit-learn estimator.
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

X_all = ImageLoader(size=64).fit_transform(paths)
y_all = load_sample_images()[1]
X_flat = X_all.reshape(len(X_all), -1)
pipe = make_pipeline(OtsuMasker(sigma=1.0), LogisticRegression(max_iter=500))
pipe.fit(X_flat, y_all)
print("masked output shape:", pipe[0].transform(X_flat).shape)
print("training accuracy:", pipe.score(X_flat, y_all))
plt.show()
