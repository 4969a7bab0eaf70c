"""
=====================================
Chest-X-ray-pretrained backbones
=====================================

ImageNet features are a weak start for radiographs. Networks pretrained on chest
X-rays are published in several key layouts: torchvision's own
(``features.conv0.weight`` ...), the CheXNet re-implementations of Rajpurkar
et al. 2017 (``module.densenet121.features...``, wrapped as
``{"state_dict": ..., "epoch": ...}``, with a 14-way ``classifier.0``) and
torchxrayvision (Cohen et al. 2022: one input channel in [-1024, 1024] at 224
pixels, an 18-way classifier). ``weights=PATH`` recognises each layout, says
which one it found and applies that network's own input convention, so the
images are given in [0, 1] as always.

This example builds a state dict in each layout from the architecture (random
values: nothing is downloaded), saves it to a temporary folder and loads it.
Real weights come from the publishers' files:

* torchxrayvision: ``weights="xrv:densenet121-res224-all"`` (or ``"xrv:nih"``,
  ``"xrv:pc"``, ``"xrv:chex"``, ``"xrv:rsna"``, ``"xrv:mimic_nb"``,
  ``"xrv:mimic_ch"``, and ``"xrv:resnet50-res512-all"`` with
  ``backbone="resnet50"``) reads its file from
  ``~/.torchxrayvision/models_data/``, where ``torchxrayvision`` downloads it
  (without it, the error names the file, its URL and that folder);
* a CheXNet checkpoint (e.g. ``model.pth.tar``): ``weights="model.pth.tar"``;
* timm networks (``backbone="timm:inception_resnet_v2"``): ``weights="imagenet"``
  reads timm's Hugging Face cache, or pass ``weights=`` the downloaded file.
"""

# %%
# State dicts in three layouts
# ----------------------------
import os
import shutil
import tempfile

import matplotlib.pyplot as plt
import torch
import torchvision
from torch import nn

from skcxr import CNNEmbedder
from skcxr.datasets import make_chest_xrays

X, y = make_chest_xrays(6, size=64, random_state=0)
torch.manual_seed(0)
rgb = torchvision.models.densenet121(weights=None)  # any values: the layout matters
torchvision_state = rgb.state_dict()

chexnet_state = {
    f"module.densenet121.{key}": value
    for key, value in torchvision_state.items()
    if not key.startswith("classifier.")
}
chexnet_state["module.densenet121.classifier.0.weight"] = torch.zeros(14, 1024)
chexnet_state["module.densenet121.classifier.0.bias"] = torch.zeros(14)

gray = torchvision.models.densenet121(weights=None, num_classes=18)
gray.features.conv0 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
xrv_state = gray.state_dict()  # what torchxrayvision's DenseNet121 holds

folder = tempfile.mkdtemp()
files = {
    "torchvision": os.path.join(folder, "densenet121.pth"),
    "CheXNet": os.path.join(folder, "model.pth.tar"),
    "torchxrayvision": os.path.join(folder, "xrv-densenet121.pt"),
}
torch.save(torchvision_state, files["torchvision"])
torch.save({"epoch": 5, "state_dict": chexnet_state}, files["CheXNet"])
torch.save(xrv_state, files["torchxrayvision"])

# %%
# Loading each file
# -----------------
# :class:`~skcxr.CNNEmbedder` (like :class:`~skcxr.TransferClassifier` and
# :func:`skcxr.nn.build_backbone`) takes ``weights=PATH``; the images stay in
# [0, 1]. The layout found is kept in the backbone's ``weights_layout`` (and
# logged at the INFO level by the ``skcxr.nn`` logger). The first convolution
# takes one gray channel whatever the layout (the three RGB channels, or
# torchxrayvision's [-1024, 1024] scaling, are folded into it) and
# torchxrayvision's weights get their 224-pixel input size.
for source, path in files.items():
    embedder = CNNEmbedder(backbone="densenet121", weights=path, batch_size=8)
    features = embedder.fit_transform(X)
    backbone = embedder.module_.network
    stem = backbone.features.conv0
    print(
        f"{source:<16} layout={backbone.weights_layout:<16} "
        f"features {features.shape}, first convolution "
        f"{tuple(stem.conv.weight.shape)}, input size {stem.resize.size or 'any'}"
    )
shutil.rmtree(folder)

# %%
# What each network receives
# --------------------------
# The same image in each convention: ImageNet-normalised RGB (one of the three
# equal channels) for torchvision and CheXNet, ``(2 x - 1) * 1024`` at 224
# pixels for torchxrayvision. The backbone computes this itself.
image = torch.from_numpy(X[:1, None])
imagenet = (image - 0.485) / 0.229
xrv = torch.nn.functional.interpolate(
    (2 * image - 1) * 1024, size=(224, 224), mode="bilinear", antialias=True
)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, (title, shown) in zip(
    axes,
    (
        ("given: [0, 1], 64 px", image),
        ("torchvision / CheXNet", imagenet),
        ("torchxrayvision, 224 px", xrv),
    ),
):
    im = ax.imshow(shown[0, 0], cmap="gray")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
plt.show()
