"""
===================================================================
ChestX-ray14 style: No Finding, Effusion, Infiltration, Atelectasis
===================================================================

A study of the NIH ChestX-ray14 images (Wang et al. 2017) trained a classifier
on four of its classes: images with no finding, and images with an effusion, an
infiltration or an atelectasis. With imbalanced, partly similar classes,
accuracy says little; the study reported the F1 score of each class, their mean
(macro F1) and the one-vs-rest ROC AUC. :func:`skcxr.datasets.make_chest_xrays`
draws synthetic images of the three findings, and the healthy class "normal" is
shown as "No Finding", as in ChestX-ray14.
"""

# %%
# Data and a frozen pretrained backbone
# -------------------------------------
import matplotlib.pyplot as plt
from sklearn.metrics import RocCurveDisplay, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import label_binarize

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays

classes = ["normal", "effusion", "infiltration", "atelectasis"]
names = {
    "normal": "No Finding",
    "effusion": "Effusion",
    "infiltration": "Infiltration",
    "atelectasis": "Atelectasis",
}
X, y = make_chest_xrays(
    300,
    classes=classes,
    weights=[0.4, 0.2, 0.2, 0.2],
    size=64,
    difficulty=0.3,
    random_state=0,
)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
clf = TransferClassifier(
    backbone="efficientnet_lite0",
    weights="imagenet",
    trainable="head",
    head_sizes=(128,),
    lr=1e-3,
    max_epochs=30,
    early_stopping=8,
    class_weight="balanced",
    validation_fraction=0.2,
    device="cpu",
    random_state=0,
).fit(X_train, y_train)

# %%
# Per-class F1, macro F1 and one-vs-rest ROC AUC
# ----------------------------------------------
y_pred = clf.predict(X_test)
proba = clf.predict_proba(X_test)
f1 = f1_score(y_test, y_pred, labels=classes, average=None)
auc = roc_auc_score(y_test, proba, multi_class="ovr", average=None, labels=clf.classes_)
auc = dict(zip(clf.classes_, auc))
print(f"{'class':<14}{'F1':>6}{'ROC AUC':>9}")
for label, score in zip(classes, f1):
    print(f"{names[label]:<14}{score:>6.2f}{auc[label]:>9.2f}")
print(
    f"{'macro':<14}{f1.mean():>6.2f}"
    f"{roc_auc_score(y_test, proba, multi_class='ovr', labels=clf.classes_):>9.2f}"
)

# %%
# One-vs-rest ROC curves
# ----------------------
onehot = label_binarize(y_test, classes=clf.classes_)
fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
for k, label in enumerate(clf.classes_):
    RocCurveDisplay.from_predictions(
        onehot[:, k], proba[:, k], name=names[label], ax=ax, plot_chance_level=(k == 0)
    )
ax.set(
    title="One-vs-rest ROC, frozen EfficientNet-Lite0",
    xlabel="false positive rate",
    ylabel="true positive rate",
)
plt.show()
