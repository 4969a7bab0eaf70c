"""
=====================================================================
Calibration, an operating threshold and subgroup gaps of a classifier
=====================================================================

A chest X-ray classifier is used through its probabilities and one
threshold, on patients of every sex, age and radiographic view. This example
evaluates a small CNN on those three counts:

* **calibration**: the top-label expected calibration error (ECE, Guo et al.
  2017) before and after temperature scaling, fitted on a validation split
  with scikit-learn's :class:`~sklearn.calibration.CalibratedClassifierCV`
  around the frozen model;
* **an operating point**: the threshold that reaches 95% sensitivity on the
  validation split, reported on the test split;
* **subgroups**: the ROC AUC and the false "no finding" rate per sex, age band
  and view, with bootstrap intervals and the gap of each group
  to the rest of the data (under-diagnosis, Seyyed-Kalantari et al. 2021).

The synthetic images carry patient metadata, and a subgroup effect of known
size is planted: findings on women's images are drawn fainter (at a higher
difficulty), so the model should be found worse on them and on no other
group.
"""

# %%
# Data with metadata and a planted subgroup effect
# ------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import FixedThresholdClassifier

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import ReliabilityDisplay, SubgroupDisplay
from skcxr.metrics import (
    expected_calibration_error,
    sensitivity_specificity,
    subgroup_metrics,
    threshold_for_sensitivity,
)

X, y, meta = make_chest_xrays(
    900,
    classes=("normal", "bacteria"),
    size=32,
    difficulty=0.3,
    return_metadata=True,
    subgroup_difficulty={"sex": {"F": 0.8}},
    random_state=0,
)
y = np.where(y == "normal", "normal", "pneumonia")
age_band = np.select([meta.age < 40, meta.age < 65], ["18-39", "40-64"], "65+")
train, val, test = np.split(np.arange(len(y)), [300, 550])
print(f"train {len(train)}, validation {len(val)}, test {len(test)} images")

# %%
# A small CNN trained from scratch
# --------------------------------
clf = TransferClassifier(
    backbone="small_cnn",
    weights=None,
    trainable="all",
    dropout=0.0,
    max_epochs=15,
    batch_size=16,
    validation_fraction=0.0,
    device="cpu",
    random_state=0,
).fit(X[train], y[train])

# %%
# Temperature scaling, fitted on the validation split
# ---------------------------------------------------
# :class:`~sklearn.frozen.FrozenEstimator` keeps the trained network as it
# is; only the temperature is fitted, on images the network has not seen.
# One temperature divides all logits, so the predicted classes (and the ROC
# AUC of a binary model) do not change; the probabilities become less (or
# more) confident. The test images are used for reporting only.
calibrated = CalibratedClassifierCV(FrozenEstimator(clf), method="temperature")
calibrated.fit(X[val], y[val])
temperature = 1 / calibrated.calibrated_classifiers_[0].calibrators[0].beta_
for name, model in (("network", clf), ("temperature-scaled", calibrated)):
    proba = model.predict_proba(X[test])
    ece = expected_calibration_error(y[test], proba, labels=model.classes_)
    brier = brier_score_loss(y[test], proba[:, 1], pos_label="pneumonia")
    print(f"{name:20s} ECE {ece:.3f}   Brier {brier:.3f}")
print(f"fitted temperature: {temperature:.2f}")

display = ReliabilityDisplay.from_estimator(
    clf, X[test], y[test], n_bins=10, name="network"
)
ReliabilityDisplay.from_estimator(
    calibrated, X[test], y[test], n_bins=10, name="temperature-scaled", ax=display.ax_
)
plt.show()

# %%
# An operating threshold for 95% sensitivity
# ------------------------------------------
# Chosen on the validation split, then fixed: the test sensitivity shows
# how close to the target the model lands on new patients (with about 125
# positive validation images, a few points either way).
score_val = calibrated.predict_proba(X[val])[:, 1]
threshold = threshold_for_sensitivity(y[val], score_val, 0.95, pos_label="pneumonia")
screen = FixedThresholdClassifier(
    FrozenEstimator(calibrated), threshold=threshold, pos_label="pneumonia"
).fit(X[val], y[val])
sens, spec = sensitivity_specificity(
    y[test], screen.predict(X[test]), positive_label="pneumonia"
)
print(f"threshold {threshold:.3f}: test sensitivity {sens:.3f}, specificity {spec:.3f}")

# %%
# Subgroups: ROC AUC and under-diagnosis
# --------------------------------------
# Each group is compared with the rest of the test images on the same
# bootstrap resamples; a gap is called only when its interval excludes 0.
# Seven groups are looked at, so each interval is widened to
# ``1 - 0.05 / 7`` (Bonferroni): otherwise a gap would be called by chance
# for one group or another more often than one time in twenty.
groups = {"sex": meta.sex[test], "age": age_band[test], "view": meta.view[test]}
confidence_level = 1 - 0.05 / 7
auc = subgroup_metrics(
    y[test],
    calibrated.predict_proba(X[test])[:, 1],
    groups,
    pos_label="pneumonia",
    confidence_level=confidence_level,
    random_state=0,
)
for j in range(len(auc.groups)):
    print(
        f"{auc.attribute[j]:5s}{auc.groups[j]:7s} AUC {auc.value[j]:.3f} "
        f"gap {auc.gap[j]:+.3f} [{auc.gap_ci_low[j]:+.3f}, {auc.gap_ci_high[j]:+.3f}]"
        + ("  called" if auc.gap_called[j] else "")
    )

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
SubgroupDisplay.from_result(auc, ax=axes[0])
SubgroupDisplay.from_estimator(
    calibrated,
    X[test],
    y[test],
    groups,
    metric="fnfr",
    threshold=threshold,
    confidence_level=confidence_level,
    random_state=0,
    ax=axes[1],
)
plt.show()

# %%
# The planted effect shows on women's images as a lower ROC AUC, whose gap to
# the rest of the images is called, and as a higher false "no finding" rate,
# whose interval is wider: at a threshold chosen for 95% sensitivity few
# findings are missed, so the rate rests on few images. Age and view, where
# nothing was planted, differ only by sampling noise, which the widened
# intervals keep from being called.
