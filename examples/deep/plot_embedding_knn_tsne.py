"""
========================================================
CNN embeddings, a nearest-neighbour classifier and t-SNE
========================================================

A study of the Kermany pediatric images (Kermany et al. 2018) removed the last
layer of a trained network, used the output of the penultimate layer as an
embedding of each X-ray, and classified the embeddings with k nearest
neighbours (k=7 for normal vs pneumonia, k=5 for normal / bacterial / viral); a
t-SNE map of the embeddings showed how the classes separate.
:class:`~skcxr.CNNEmbedder` turns images into such embeddings (from a
pretrained backbone, or from the penultimate layer of a fitted
:class:`~skcxr.TransferClassifier`), so the classifier is a plain scikit-learn
``Pipeline``. :class:`~skcxr.TSNE` keeps its map, so a new image can be placed
on it without recomputing the map.
"""

# %%
# Embeddings + k nearest neighbours
# ---------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcxr import TSNE, CNNEmbedder
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import EmbeddingDisplay

X, y = make_chest_xrays(
    240,
    classes=("normal", "bacteria", "virus"),
    size=64,
    difficulty=0.3,
    random_state=0,
)
y_binary = np.where(y == "normal", "normal", "pneumonia")

# ``fit`` only builds the network, so the embeddings can be computed once and
# reused by both classifiers (inside a pipeline they are recomputed per fold).
embedder = CNNEmbedder(backbone="efficientnet_lite0", weights="imagenet", batch_size=64)
Z = embedder.fit_transform(X)
print(f"embeddings: {Z.shape} ({Z.dtype})")
for name, target, k in (("binary", y_binary, 7), ("three-class", y, 5)):
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
    scores = cross_val_score(knn, Z, target, cv=5)
    print(
        f"{name:<12} k={k}: accuracy {scores.mean():.2f} +/- {scores.std():.2f} (5-fold)"
    )

# %%
# The same classifier as one pipeline from images
# -----------------------------------------------
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
pipe = make_pipeline(
    CNNEmbedder(backbone="efficientnet_lite0", batch_size=64),
    StandardScaler(),
    KNeighborsClassifier(n_neighbors=5),
).fit(X_train, y_train)
print(f"three-class pipeline, test accuracy: {pipe.score(X_test, y_test):.2f}")

# %%
# A t-SNE map, and a new image placed on it
# -----------------------------------------
# The map is fitted on the training images; ``transform`` places the first
# test image on it (the star) without moving the training points.
# ``EmbeddingDisplay.from_estimator`` draws the training points where the fit
# put them (the map's ``embedding_``) and places ``X_new`` with ``transform``.
tsne_pipe = make_pipeline(
    CNNEmbedder(backbone="efficientnet_lite0", batch_size=64),
    StandardScaler(),
    TSNE(perplexity=30, random_state=0),
).fit(X_train)
new_image = X_test[:1]
placed = tsne_pipe.transform(new_image)
print(f"new image ({y_test[0]}) placed at {placed[0].round(1)}")

fig, (ax_img, ax_map) = plt.subplots(
    1, 2, figsize=(10, 4.5), width_ratios=[1, 2.2], constrained_layout=True
)
ax_img.imshow(new_image[0], cmap="gray", vmin=0, vmax=1)
ax_img.set_title(f"new image (true class: {y_test[0]})")
ax_img.axis("off")
EmbeddingDisplay.from_estimator(tsne_pipe, X_train, y_train, X_new=new_image, ax=ax_map)
ax_map.set_title("t-SNE of EfficientNet-Lite0 embeddings (training images)")
plt.show()
