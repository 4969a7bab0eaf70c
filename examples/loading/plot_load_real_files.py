"""
=====================================
Load real chest X-rays from the files
=====================================

skcxr ships 16 real radiographs of the Kermany pediatric pneumonia data set
(downscaled, CC BY 4.0), in the data set's own folder layout.
:func:`~skcxr.datasets.load_sample_images` lists their paths and labels, and
:class:`~skcxr.ImageLoader` reads them into a ``(n_images, size, size)``
float32 array in [0, 1], the input of every other skcxr estimator.
"""

# %%
# Paths and labels
# ----------------
# The labels come from the folder and file names
# (``PNEUMONIA/person1946_bacteria_4875.jpeg``); ``labels="binary"`` gives the
# folder names instead.
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from skcxr import ImageLoader
from skcxr.datasets import load_sample_images

paths, y = load_sample_images()
print(Counter(y.tolist()))
print(Path(paths[-1]).relative_to(Path(paths[-1]).parents[3]))

# %%
# Two resize policies
# -------------------
# ``resize="pad"`` keeps the whole image and its aspect ratio; ``"region"``
# keeps a part of it, here the lower half of the chest (the lower lung
# fields), resized to the square. JPEGs are decoded at a reduced size in the
# DCT domain (``draft=True``) and ``n_jobs`` threads decode files at once.
show = np.r_[0:4, 8:12]
policies = {
    "pad": ImageLoader(size=224, resize="pad", n_jobs=2),
    "lower lung fields": ImageLoader(
        size=224, resize="region", region=(0.5, 1.0, 0.0, 1.0), n_jobs=2
    ),
}
fig, axes = plt.subplots(2, len(show), figsize=(12, 3.6))
for row, (name, loader) in zip(axes, policies.items()):
    images = loader.fit_transform(paths[show])
    print(
        f"{name}: {images.shape} {images.dtype} "
        f"[{images.min():.2f}, {images.max():.2f}]"
    )
    for ax, image, label in zip(row, images, y[show]):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(name, fontsize=9)
fig.tight_layout()

# %%
# 16-bit PNG and DICOM round trips
# --------------------------------
# Synthetic pixels written as a 16-bit PNG and as a 12-bit MONOCHROME1 DICOM
# (where low stored values are *bright*, so the loader inverts them) come back
# with the intensities they were written with.
import tempfile

from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

yy, xx = np.mgrid[-1:1:128j, -1:1:128j]
truth = np.clip(0.15 + 0.7 * np.exp(-(xx**2 / 0.3 + yy**2 / 0.6)), 0, 1).astype(
    np.float32
)


def write_dicom_monochrome1(path, image, bits=12):
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        SecondaryCaptureImageStorage,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (
        16,
        bits,
        bits - 1,
        0,
    )
    stored = np.round((1 - image) * (2**bits - 1)).astype("<u2")  # inverted on disk
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


with tempfile.TemporaryDirectory() as folder:
    png = Path(folder) / "synthetic16.png"
    Image.fromarray(np.round(truth * 65535).astype(np.uint16)).save(png)
    dcm = Path(folder) / "synthetic.dcm"
    write_dicom_monochrome1(dcm, truth)
    loaded = ImageLoader(size=128).fit_transform([png, dcm])

fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, image, title in zip(
    axes, [truth, *loaded], ["pixels written", "16-bit PNG", "MONOCHROME1 DICOM"]
):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
for name, image in zip(["16-bit PNG", "12-bit DICOM"], loaded):
    print(f"{name}: max |loaded - written| = {np.abs(image - truth).max():.1e}")
plt.show()
