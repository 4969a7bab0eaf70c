"""
=====================================
Segment the lungs with a U-Net
=====================================

Otsu's threshold (Otsu 1979) keeps the dark pixels of a radiograph; it has
no idea what a lung looks like, so it loses a consolidated lobe and keeps
dark air elsewhere. :class:`~skcxr.LungSegmenter` learns the lung fields from
radiographs and their masks: a U-Net (Ronneberger, Fischer, Brox 2015)
trained on soft Dice + binary cross-entropy. Here both are compared on
generated radiographs whose true lung fields are known.
"""

# %%
# Radiographs and their lung fields
# ---------------------------------
# :func:`~skcxr.datasets.make_chest_xrays` returns the lung fields it drew
# with ``return_lung_masks=True``: 150 radiographs to train on, 40 held out.
import matplotlib.pyplot as plt
import numpy as np

from skcxr import LungSegmenter, OtsuMasker
from skcxr.datasets import make_chest_xrays
from skcxr.metrics import dice_score, hausdorff_distance_95

X, y, lungs = make_chest_xrays(190, size=64, return_lung_masks=True, random_state=0)
X_train, lungs_train = X[:150], lungs[:150]
X_test, lungs_test, y_test = X[150:], lungs[150:], y[150:]

# %%
# Train the U-Net
# ---------------
# The small U-Net built into skcxr, from scratch: three pooling levels, 16
# channels at the top, five epochs of batches of 8 images (about 20 seconds
# of one CPU core).
segmenter = LungSegmenter(depth=3, width=16, max_epochs=5, batch_size=8, random_state=0)
segmenter.fit(X_train, lungs_train)
print("training loss by epoch:", np.round(segmenter.history_[:, "train_loss"], 3))

# %%
# Held-out masks: U-Net against Otsu
# ----------------------------------
# Otsu's masks with its best clean-up: the dark side of the threshold, the
# air outside the body dropped, the two largest regions kept, holes filled.
unet_masks = segmenter.predict(X_test)
otsu = OtsuMasker(sigma=1.0, clear_border=True, n_regions=2, fill_holes=True)
otsu_masks = otsu.fit(X_test).compute_masks(X_test)[0]
for name, masks in [("U-Net", unet_masks), ("Otsu", otsu_masks)]:
    print(
        f"{name:6s} Dice {dice_score(lungs_test, masks):.3f}  "
        f"95% Hausdorff {hausdorff_distance_95(lungs_test, masks):.2f} px"
    )

# %%
# Pictures: the radiograph, the true lung fields, and each method's masks
# with its Dice coefficient on that image. The first row is the image where
# Otsu's masks are worst: a bacterial pneumonia consolidates part of a lung,
# Otsu's threshold loses that part, the U-Net keeps most of it.
dice_unet = dice_score(lungs_test, unet_masks, average=None)
dice_otsu = dice_score(lungs_test, otsu_masks, average=None)
show = [int(np.argmin(dice_otsu)), *np.flatnonzero(y_test == "normal")[:2]]
fig, axes = plt.subplots(len(show), 4, figsize=(8, 2.2 * len(show)))
for row, i in zip(axes, show):
    row[0].imshow(X_test[i], cmap="gray", vmin=0, vmax=1)
    row[0].set_title(y_test[i], fontsize=9)
    row[1].imshow(lungs_test[i], cmap="gray")
    row[1].set_title("true lung fields", fontsize=9)
    row[2].imshow(unet_masks[i], cmap="gray")
    row[2].set_title(f"U-Net, Dice {dice_unet[i]:.2f}", fontsize=9)
    row[3].imshow(otsu_masks[i], cmap="gray")
    row[3].set_title(f"Otsu, Dice {dice_otsu[i]:.2f}", fontsize=9)
    for ax in row:
        ax.axis("off")
fig.tight_layout()

# %%
# The segmenter as a preprocessing step
# -------------------------------------
# ``transform`` masks the images to the lungs (``output="masked"``) or crops
# them to the lungs' bounding box and resizes back (``output="crop"``). In a
# classification pipeline, wrap the fitted segmenter in
# :class:`sklearn.frozen.FrozenEstimator` so that the pipeline's ``fit`` does
# not refit it on the class labels.
cropped = segmenter.set_params(output="crop").transform(X_test[show[:1]])
masked = segmenter.set_params(output="masked").transform(X_test[show[:1]])
fig, axes = plt.subplots(1, 3, figsize=(6, 2.2))
for ax, image, title in zip(
    axes, [X_test[show[0]], masked[0], cropped[0]], ["image", "masked", "crop"]
):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()
