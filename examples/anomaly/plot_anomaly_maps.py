"""
=====================================================================
Anomaly maps and thresholds with PaDiM features (healthy images only)
=====================================================================

:class:`~skcxr.ReconstructionAnomalyDetector` is fitted on **healthy**
synthetic chest X-rays only. Its default method, PaDiM (Defard et al. 2020),
models the ImageNet-pretrained ``efficientnet_lite0`` features of every image
location by a Gaussian; a patch far from its healthy Gaussian (Mahalanobis
distance) is anomalous. We compare it with the baseline a user would write
(``CNNEmbedder`` + Ledoit-Wolf Mahalanobis distance), draw the anomaly maps of
correctly and wrongly flagged images with the true lesions outlined, score
the maps with the pointing game, and choose a threshold on a small labelled
validation set.
"""

# %%
# Data: healthy images to fit on, a labelled mix to test on
# ---------------------------------------------------------
import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from skcxr import CNNEmbedder, ReconstructionAnomalyDetector
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import AnomalyMapDisplay, pointing_game

X_train, _ = make_chest_xrays(
    100, classes=("normal",), size=64, difficulty=0.5, random_state=0
)
X_test, y_test, masks = make_chest_xrays(
    120, size=64, difficulty=0.5, return_masks=True, random_state=1
)
sick = y_test != "normal"

# a small labelled validation set: +1 healthy, -1 abnormal (predict's convention)
X_val, y_val_names = make_chest_xrays(30, size=64, difficulty=0.5, random_state=2)
y_val = np.where(y_val_names == "normal", 1, -1)

# %%
# Fit and compare with the embedding baseline
# -------------------------------------------
# ``threshold="youden"`` picks the threshold maximising sensitivity +
# specificity on the validation set; the sensitivity and specificity there
# are kept as fitted attributes.
detector = ReconstructionAnomalyDetector(threshold="youden", random_state=0)
detector.fit(X_train, X_val=X_val, y_val=y_val)
auc = roc_auc_score(sick, -detector.score_samples(X_test))

embedder = CNNEmbedder().fit(X_train)
baseline = LedoitWolf().fit(embedder.transform(X_train))
auc_baseline = roc_auc_score(sick, baseline.mahalanobis(embedder.transform(X_test)))
print(
    f"ROC AUC healthy vs pneumonia: PaDiM {auc:.3f}, embedding baseline {auc_baseline:.3f}"
)
print(
    f"validation: sensitivity {detector.sensitivity_:.2f}, "
    f"specificity {detector.specificity_:.2f} at threshold {detector.threshold_:.2f}"
)

# %%
# Thresholds on the test set
# --------------------------
# The historical rule (mean training anomaly), a 5 % contamination and the
# validated Youden threshold, on the same fitted Gaussians.
anomaly = -detector.score_samples(X_test)
training = -detector.decision_scores_
for name, threshold in [
    ("mean", training.mean()),
    ("contamination 0.05", np.quantile(training, 0.95)),
    ("youden (validation)", detector.threshold_),
]:
    flagged = anomaly > threshold
    print(
        f"{name:>20}: sensitivity {flagged[sick].mean():.2f}, "
        f"specificity {(~flagged[~sick]).mean():.2f}"
    )

# %%
# Where: the pointing game
# ------------------------
# The share of sick images whose map maximum falls inside the lesion (within
# 2 pixels), against the chance rate of a random point in the lungs.
game = pointing_game(
    detector.anomaly_map(X_test[sick]), masks[sick], region=detector.mask_
)
print(f"pointing game {game.score:.2f} (chance in the lungs {game.chance:.2f})")

# %%
# Maps of correctly and wrongly flagged images
# --------------------------------------------
# White: the true lesion; cross: the map's maximum; dashed: where the map
# exceeds the threshold (the per-image anomaly is the map's maximum in the
# lungs, so any dashed region inside the lungs flags the image).
pred = detector.predict(X_test)
picks = np.r_[
    np.flatnonzero(sick & (pred == -1))[:3],  # sick, flagged
    np.flatnonzero(sick & (pred == 1))[:1],  # sick, missed
    np.flatnonzero(~sick & (pred == 1))[:2],  # healthy, passed
    np.flatnonzero(~sick & (pred == -1))[:2],  # healthy, false alarm
]
AnomalyMapDisplay.from_estimator(
    detector, X_test[picks], y_test[picks], masks=masks[picks]
)
