"""
=============================================
Grid search over backbones and learning rates
=============================================

Chest X-ray studies often tune their networks by hand or with Hyperband
(Li et al. 2018). Because
:class:`~skcxr.TransferClassifier` is a scikit-learn classifier, scikit-learn's
searches work as they are: here :class:`~sklearn.model_selection.GridSearchCV`
compares a frozen pretrained EfficientNet-Lite0 with a small CNN trained from
scratch, each at two learning rates, by 3-fold cross-validated macro F1. A list
of grids keeps the parameters that belong together (the small CNN has no
pretrained weights and must be trained whole). The frozen backbone's features
are cached with ``memory``, so the folds and learning rates that share images
reuse them. The grid is tiny so that the example runs quickly; the same code
runs a real study on more images and values.
"""

# %%
# The search
# ----------
import shutil
from tempfile import mkdtemp

import matplotlib.pyplot as plt
from sklearn.model_selection import GridSearchCV, train_test_split

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays

X, y = make_chest_xrays(
    180,
    classes=("normal", "bacteria", "virus"),
    size=64,
    difficulty=0.3,
    random_state=0,
)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
cache_dir = mkdtemp(prefix="skcxr-features-")
base = TransferClassifier(
    head_sizes=(64,),
    max_epochs=8,
    batch_size=32,
    validation_fraction=0.0,
    memory=cache_dir,
    device="cpu",
    random_state=0,
)
grid = [
    {
        "backbone": ["efficientnet_lite0"],
        "weights": ["imagenet"],
        "trainable": ["head"],
        "lr": [1e-3, 1e-2],
    },
    {
        "backbone": ["small_cnn"],
        "weights": [None],
        "trainable": ["all"],
        "lr": [1e-3, 1e-2],
    },
]
search = GridSearchCV(base, grid, scoring="f1_macro", cv=3).fit(X_train, y_train)

# %%
# Results
# -------
res = search.cv_results_
print(f"{'backbone':<20}{'lr':>7}{'macro F1':>10}{'+/-':>7}{'fit s':>7}")
for i in res["rank_test_score"].argsort():
    print(
        f"{res['param_backbone'][i]:<20}{res['param_lr'][i]:>7g}"
        f"{res['mean_test_score'][i]:>10.3f}{res['std_test_score'][i]:>7.3f}"
        f"{res['mean_fit_time'][i]:>7.1f}"
    )
print(f"\nbest: {search.best_params_}")
print(f"test macro F1 of the refitted best model: {search.score(X_test, y_test):.2f}")

# %%
# Cross-validated macro F1 of each setting
# ----------------------------------------
labels = [f"{b}\nlr={lr:g}" for b, lr in zip(res["param_backbone"], res["param_lr"])]
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
ax.bar(
    labels,
    res["mean_test_score"],
    yerr=res["std_test_score"],
    capsize=4,
    color=["tab:blue"] * 2 + ["tab:orange"] * 2,
)
ax.set_ylabel("macro F1 (3-fold CV)")
ax.set_ylim(0, 1)
plt.show()

shutil.rmtree(cache_dir)  # the feature cache of this example
