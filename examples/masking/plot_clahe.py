"""
=============================================
Raise local contrast with CLAHE
=============================================

Contrast-limited adaptive histogram equalisation (CLAHE, Zuiderveld 1994)
equalises the histogram of each small region of a radiograph, clipped so
that noise is not amplified, and blends the regions' mappings smoothly.
:class:`~skcxr.HistogramEqualizer` computes it for a batch of images at once
(the result of ``skimage.exposure.equalize_adapthist``), or the global
histogram equalisation with ``method="global"``.
"""

# %%
# Real radiographs
# ----------------
# Four of the real chest X-rays shipped with skcxr (from the Kermany
# pediatric pneumonia data set), at 256 x 256.
import matplotlib.pyplot as plt
import numpy as np

from skcxr import HistogramEqualizer, ImageLoader
from skcxr.datasets import load_sample_images

paths, y = load_sample_images()
X = ImageLoader(size=256).fit_transform(paths[[0, 1, 8, 9]])

# %%
# Global and adaptive equalisation
# --------------------------------
# ``clip_limit`` bounds each region's histogram (a fraction of its pixels):
# higher values give more contrast, 0 gives plain adaptive equalisation.
# ``kernel_size`` is the region's size (1/8 of the image by default).
methods = {
    "original": X,
    "global": HistogramEqualizer(method="global").fit_transform(X),
    "CLAHE clip 0.01": HistogramEqualizer(clip_limit=0.01).fit_transform(X),
    "CLAHE clip 0.03": HistogramEqualizer(clip_limit=0.03).fit_transform(X),
}
fig, axes = plt.subplots(2, len(methods), figsize=(11, 5.5))
for column, (name, images) in enumerate(methods.items()):
    axes[0, column].imshow(images[0], cmap="gray", vmin=0, vmax=1)
    axes[0, column].set_title(name, fontsize=10)
    axes[0, column].axis("off")
    axes[1, column].hist(images[0].ravel(), bins=64, range=(0, 1), color="0.3")
    axes[1, column].set_yticks([])
    axes[1, column].set_xlabel("intensity")
fig.suptitle("One radiograph and its histogram, before and after")
fig.tight_layout()

# %%
# Local contrast
# --------------
# The standard deviation of intensities in 16 x 16 windows, averaged over
# the image, measures local contrast: CLAHE raises it most.
from scipy import ndimage


def local_contrast(images, size=16):
    mean = ndimage.uniform_filter(images, (1, size, size))
    square = ndimage.uniform_filter(images**2, (1, size, size))
    return np.sqrt(np.clip(square - mean**2, 0, None)).mean()


for name, images in methods.items():
    print(f"{name:16s} local contrast {local_contrast(images):.3f}")

# %%
# In a pipeline
# -------------
# The transformer is stateless (``fit`` records the image size only), so it
# goes first in any pipeline, e.g.
# ``make_pipeline(HistogramEqualizer(), TransferClassifier())``.
plt.show()
