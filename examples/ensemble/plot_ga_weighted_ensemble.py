"""
=====================================================
Train, freeze, ensemble: GA weights vs uniform voting
=====================================================

Six differently configured classifiers are trained on synthetic three-class
chest X-rays (normal / bacterial / viral pneumonia from
:func:`skcxr.datasets.make_chest_xrays`), then frozen. They are combined two
ways on a separate validation split:

- uniform soft voting (``GAWeightedVoter(..., weights="uniform")``), and
- :class:`skcxr.GAWeightedVoter` with ``prefit=True``: a genetic algorithm picks
  the weights that maximise macro F1 on the validation split.

Both ensembles and every single model are scored on a held-out test split.

The models: every image is embedded once by a frozen ImageNet
``efficientnet_lite0`` (:class:`skcxr.CNNEmbedder`) and also reduced to 16 x 16
block-averaged pixels; six scikit-learn classifiers are trained on one of these
two feature sets (logistic regression, k-nearest neighbours and a small MLP on
the CNN embedding; logistic regression, Gaussian naive Bayes and a random forest
on the pixels). Computing the frozen CNN features once keeps the example fast on
a laptop CPU; any classifier with ``predict_proba``, such as a fitted
:class:`skcxr.TransferClassifier`, can join the ensemble the same way.
"""

# %%
# Data: train / validation / test splits
# --------------------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skcxr import CNNEmbedder, GAWeightedVoter
from skcxr.datasets import make_chest_xrays
from skcxr.metrics import false_no_finding_rate

start = time.perf_counter()
X, y = make_chest_xrays(900, size=48, difficulty=0.6, random_state=0)
X_train, X_rest, y_train, y_rest = train_test_split(
    X, y, train_size=450, stratify=y, random_state=0
)
X_val, X_test, y_val, y_test = train_test_split(
    X_rest, y_rest, train_size=200, stratify=y_rest, random_state=0
)
print(f"train {len(y_train)}, validation {len(y_val)}, test {len(y_test)} images")


# %%
# Frozen features, then six models trained once
# ---------------------------------------------
# Each model sees a feature matrix whose first columns are the CNN embedding and
# whose last 256 columns are the block-averaged pixels, and picks its columns.
def block_mean(images, block=3):
    """(n, 48, 48) images -> (n, 256) features: 3 x 3 block averages."""
    n, h, w = images.shape
    pooled = images.reshape(n, h // block, block, w // block, block).mean(axis=(2, 4))
    return pooled.reshape(n, -1).astype(np.float64)


t = time.perf_counter()
embedder = CNNEmbedder(backbone="efficientnet_lite0", device="cpu").fit(X_train)
features = {
    name: np.hstack([embedder.transform(images), block_mean(images)])
    for name, images in [("train", X_train), ("val", X_val), ("test", X_test)]
}
n_cnn = features["train"].shape[1] - 256
print(
    f"CNN embedding ({n_cnn} features) of all images in {time.perf_counter() - t:.1f} s"
)


def cnn_columns(F):
    return F[:, :n_cnn]


def pixel_columns(F):
    return F[:, n_cnn:]


def on_cnn(clf):
    return make_pipeline(FunctionTransformer(cnn_columns), StandardScaler(), clf)


def on_pixels(clf):
    return make_pipeline(FunctionTransformer(pixel_columns), StandardScaler(), clf)


models = {
    "cnn_logreg": on_cnn(LogisticRegression(C=0.05, max_iter=500)),
    "cnn_knn": on_cnn(KNeighborsClassifier(n_neighbors=9)),
    "cnn_mlp": on_cnn(
        MLPClassifier((32,), alpha=1e-2, early_stopping=True, random_state=0)
    ),
    "pix_logreg": on_pixels(LogisticRegression(C=0.05, max_iter=500)),
    "pix_bayes": on_pixels(GaussianNB()),
    "pix_forest": on_pixels(
        RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0)
    ),
}
for name, model in models.items():
    t = time.perf_counter()
    model.fit(features["train"], y_train)
    print(f"fitted {name:12s} in {time.perf_counter() - t:5.1f} s")

# %%
# Uniform voting vs GA weights (both on the same frozen models)
# -------------------------------------------------------------
estimators = list(models.items())
uniform = GAWeightedVoter(estimators, prefit=True, weights="uniform").fit(
    features["val"], y_val
)
ga = GAWeightedVoter(estimators, prefit=True, random_state=0).fit(
    features["val"], y_val
)
print("GA weights:", {n: round(float(w), 3) for n, w in zip(models, ga.weights_)})
print(
    f"validation macro F1: uniform {uniform.best_score_:.3f}, GA {ga.best_score_:.3f}"
)

# %%
# Held-out test table
# -------------------
columns = ["accuracy", "f1_macro", "roc_auc_ovr", "fnfr"]
rows = {**models, "uniform voting": uniform, "GA voting": ga}
print(f"{'model':16s}" + "".join(f"{c:>13s}" for c in columns))
table = {}
for name, model in rows.items():
    proba = model.predict_proba(
        features["test"]
    )  # one pass per model; columns in classes_ order
    pred = model.classes_[proba.argmax(axis=1)]
    table[name] = [
        accuracy_score(y_test, pred),
        f1_score(y_test, pred, average="macro"),
        roc_auc_score(y_test, proba, multi_class="ovr", labels=model.classes_),
        false_no_finding_rate(y_test, pred, healthy_label="normal"),
    ]
    print(f"{name:16s}" + "".join(f"{v:13.3f}" for v in table[name]))

# %%
# Fitness curve of the genetic algorithm
# --------------------------------------
fig, ax = plt.subplots(figsize=(5, 3))
generations = np.arange(len(ga.fitness_history_["best"]))
ax.plot(generations, ga.fitness_history_["best"], label="best")
ax.plot(generations, ga.fitness_history_["mean"], label="population mean")
ax.axhline(uniform.best_score_, color="gray", linestyle="--", label="uniform weights")
ax.set_xlabel("generation")
ax.set_ylabel("validation macro F1")
ax.legend()
fig.tight_layout()

# %%
# The GA weights are chosen on 200 validation images, so their gain on the test
# split is smaller than on the validation split and can vanish: a paired
# bootstrap of the test images shows whether the difference is beyond noise.
pred_uniform, pred_ga = uniform.predict(features["test"]), ga.predict(features["test"])
boot_rng = np.random.default_rng(0)
diffs = []
for _ in range(500):
    idx = boot_rng.integers(0, len(y_test), len(y_test))
    diffs.append(
        f1_score(y_test[idx], pred_ga[idx], average="macro")
        - f1_score(y_test[idx], pred_uniform[idx], average="macro")
    )
low, high = np.percentile(diffs, [2.5, 97.5])
print(
    f"test macro F1: uniform {table['uniform voting'][1]:.3f}, GA {table['GA voting'][1]:.3f}; "
    f"GA - uniform 95% bootstrap interval [{low:+.3f}, {high:+.3f}]"
)
print(f"total time {time.perf_counter() - start:.1f} s")
