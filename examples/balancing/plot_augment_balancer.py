"""
==============================================
Balance classes with augmented minority images
==============================================

A three-class study of the Kermany pediatric images (Kermany et al. 2018)
balanced its normal / bacterial / viral training images to a 2:1:2 ratio by
adding augmented copies (rotations of up to 20 degrees, brightness x1.2-1.5,
flips, zoom and shifts) of the images of the smaller classes.
:class:`~skcxr.AugmentBalancer` does this as an imbalanced-learn sampler:
``fit_resample(X, y)`` returns the original images first, unchanged, followed
by the new ones, and ``sample_indices_`` says which image each output image was
made from.
"""

# %%
# An imbalanced synthetic data set
# --------------------------------
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np

from skcxr import AugmentBalancer
from skcxr.datasets import make_chest_xrays

X, y = make_chest_xrays(
    60,
    classes=("normal", "bacteria", "virus"),
    weights=[0.6, 0.28, 0.12],
    size=64,
    random_state=0,
)
classes = ["normal", "bacteria", "virus"]
print("before:", Counter(y.tolist()))

# %%
# Balance to the majority, or to a 2:1:2 ratio
# --------------------------------------------
# ``sampling_strategy`` takes imbalanced-learn's values: ``"auto"`` brings every
# class up to the majority count, a dict gives target counts. Ratios are a
# separate parameter, because ``{"normal": 2, "bacteria": 1, "virus": 2}`` would
# otherwise read as counts: each class gets the smallest count in those
# proportions that removes no image.
balancer = AugmentBalancer(random_state=0)
X_auto, y_auto = balancer.fit_resample(X, y)
ratio = AugmentBalancer(ratios={"normal": 2, "bacteria": 1, "virus": 2}, random_state=0)
X_ratio, y_ratio = ratio.fit_resample(X, y)
print("auto:  ", Counter(y_auto.tolist()))
print("2:1:2: ", Counter(y_ratio.tolist()))

counts = {
    "before": Counter(y.tolist()),
    'sampling_strategy="auto"': Counter(y_auto.tolist()),
    "ratios 2:1:2": Counter(y_ratio.tolist()),
}
fig, ax = plt.subplots(figsize=(7, 3.5))
width = 0.27
for k, (name, count) in enumerate(counts.items()):
    positions = np.arange(len(classes)) + (k - 1) * width
    bars = ax.bar(positions, [count[c] for c in classes], width, label=name)
    ax.bar_label(bars, fontsize=8)
ax.set_xticks(np.arange(len(classes)), classes)
ax.set_ylabel("images")
ax.set_title("Class counts before and after balancing")
ax.set_ylim(0, 1.35 * max(count.most_common(1)[0][1] for count in counts.values()))
ax.legend(ncols=3, loc="upper center", fontsize=8)
fig.tight_layout()

# %%
# What the copies look like
# -------------------------
# The originals come first and unchanged; every later image is a random
# augmentation of ``X[sample_indices_[i]]``. Here is the viral image that was
# copied most, followed by its copies.
n = len(X)
sources = ratio.sample_indices_[n:]
source = np.bincount(sources).argmax()
copies = np.flatnonzero(ratio.sample_indices_ == source)
copies = copies[copies >= n][:7]
fig, axes = plt.subplots(1, 1 + len(copies), figsize=(1.6 * (1 + len(copies)), 2.1))
axes[0].imshow(X[source], cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"original\n{y[source]}", fontsize=9)
for ax, i in zip(axes[1:], copies):
    ax.imshow(X_ratio[i], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"copy {i}", fontsize=9)
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()

# %%
# Inside a pipeline, tuned by a grid search
# -----------------------------------------
# In an :class:`imblearn.pipeline.Pipeline` the sampler runs during ``fit``
# only: each training fold is balanced, each validation fold is scored as it
# is. So the grid search can tune the augmentation like any other parameter,
# and compare it with no balancing at all (``"passthrough"``). The classifier
# is a deliberately small PCA + logistic regression on 60 tiny images, so the
# scores are low and noisy: the point here is the mechanics.
from imblearn.pipeline import Pipeline
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold

# 32 x 32 images, flattened: the balancer returns the layout it is given
X_small = X.reshape(len(X), 32, 2, 32, 2).mean(axis=(2, 4))
X_flat = X_small.reshape(len(X), -1)
pipe = Pipeline(
    [
        ("balance", AugmentBalancer(random_state=0)),
        ("pca", PCA(n_components=16, random_state=0)),
        ("clf", LogisticRegression(max_iter=1000)),
    ]
)
search = GridSearchCV(
    pipe,
    [
        {
            "balance__sampling_strategy": ["auto", "minority"],
            "balance__rotation": [5.0, 20.0],
        },
        {"balance": ["passthrough"]},
    ],
    scoring="balanced_accuracy",
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
)
search.fit(X_flat, y)
print("best:", search.best_params_, f"balanced accuracy {search.best_score_:.2f}")
for params, score in zip(
    search.cv_results_["params"], search.cv_results_["mean_test_score"]
):
    print(f"  {params}: {score:.2f}")
plt.show()
