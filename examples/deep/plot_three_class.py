"""
=====================================
Normal, bacterial and viral pneumonia
=====================================

A study of the Kermany pediatric images (Kermany et al. 2018), whose file names
say which pneumonia is bacterial and which viral, split pneumonia into the two
kinds, a harder, three-class problem: bacterial pneumonia tends to show a dense
consolidation of one lobe, viral pneumonia a diffuse, bilateral haze. Here a
frozen, pretrained EfficientNet-Lite0 with a small dense head
(:class:`~skcxr.TransferClassifier`) is trained on synthetic X-rays with those
patterns, and the confusion matrix shows which classes it mixes up.
"""

# %%
# Data and model
# --------------
import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay, classification_report
from sklearn.model_selection import train_test_split

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays

classes = ["normal", "bacteria", "virus"]
X, y = make_chest_xrays(300, classes=classes, size=64, difficulty=0.3, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
clf = TransferClassifier(
    backbone="efficientnet_lite0",
    weights="imagenet",
    trainable="head",
    head_sizes=(128,),
    dropout=0.2,
    lr=1e-3,
    max_epochs=30,
    batch_size=32,
    class_weight="balanced",
    early_stopping=8,
    validation_fraction=0.2,
    device="cpu",
    random_state=0,
).fit(X_train, y_train)
print(f"trained {len(clf.history_)} epochs")
print(classification_report(y_test, clf.predict(X_test), labels=classes, digits=2))

# %%
# Confusion matrix
# ----------------
# Rows are the true classes, columns the predicted ones. In that study, too,
# most errors were between the two kinds of pneumonia.
disp = ConfusionMatrixDisplay.from_estimator(
    clf, X_test, y_test, labels=classes, cmap="Blues", colorbar=False
)
disp.ax_.set_title("Frozen EfficientNet-Lite0, test images")
plt.show()
