"""
======================================================
Reconstruction-error anomaly detection on chest X-rays
======================================================

A convolutional autoencoder (``method="autoencoder"``) is trained on
**healthy** synthetic chest X-rays only. An image it reconstructs badly is flagged as abnormal (``predict`` gives
-1, scikit-learn's outlier convention). We compare three reconstruction errors
(pixel MSE, ``1 - SSIM`` and MSE inside a lung-field mask), draw the error
histograms of healthy vs pneumonia images with the fitted threshold, and use
the latent codes as features for a classifier. The detector's default, PaDiM
on pretrained patch features, does far better: see
:ref:`sphx_glr_auto_examples_anomaly_plot_anomaly_maps.py`.
"""

# %%
# Data: healthy images to train on, a labelled mix to test on
# -----------------------------------------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from skcxr import ReconstructionAnomalyDetector
from skcxr.datasets import make_chest_xrays

start = time.perf_counter()
X_train, _ = make_chest_xrays(
    160, classes=("normal",), size=64, difficulty=0.3, random_state=0
)
X_test, y_test = make_chest_xrays(150, size=64, difficulty=0.3, random_state=1)
sick = y_test != "normal"

# %%
# Fit on healthy images only
# --------------------------
# ``error="masked_mse"`` scores the squared error inside a lung mask fitted on
# the mean training image; ``threshold="mean"`` is the historical rule
# (outlier when the error exceeds the mean training error).
detector = ReconstructionAnomalyDetector(
    method="autoencoder",
    width=8,
    latent_dim=16,
    max_epochs=6,
    error="masked_mse",
    threshold="mean",
    random_state=0,
    verbose=1,
).fit(X_train)

# %%
# ROC AUC of each error type, from the same fitted network
# --------------------------------------------------------
errors = {
    e: detector.reconstruction_error(X_test, error=e)
    for e in ("mse", "ssim", "masked_mse")
}
for name, err in errors.items():
    per_class = {
        c: roc_auc_score(
            y_test[np.isin(y_test, ["normal", c])] == c,
            err[np.isin(y_test, ["normal", c])],
        )
        for c in ("bacteria", "virus")
    }
    print(
        f"{name:>10}: ROC AUC healthy vs pneumonia {roc_auc_score(sick, err):.3f} "
        f"(bacteria {per_class['bacteria']:.3f}, virus {per_class['virus']:.3f})"
    )

# %%
# Error histograms with the threshold
# -----------------------------------
try:
    from skcxr.inspection import ReconstructionErrorDisplay
except ImportError:  # pragma: no cover
    ReconstructionErrorDisplay = None

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
groups = np.where(sick, "pneumonia", "normal")
for ax, name in zip(axes, ("mse", "masked_mse")):
    if ReconstructionErrorDisplay is not None:
        ReconstructionErrorDisplay.from_predictions(
            errors[name],
            groups,
            threshold=detector.threshold_ if name == detector.error else None,
            ax=ax,
        )
    else:
        for g in ("normal", "pneumonia"):
            ax.hist(errors[name][groups == g], bins=30, alpha=0.5, label=g)
        ax.legend()
    ax.set_title(f"error = {name!r}")
pred = detector.predict(X_test)
print(
    f"threshold_ = {detector.threshold_:.5f}; flagged: "
    f"{np.mean(pred[sick] == -1):.0%} of pneumonia, {np.mean(pred[~sick] == -1):.0%} of normal"
)

# %%
# Originals and reconstructions
# -----------------------------
idx = np.r_[
    np.flatnonzero(~sick)[:3],
    np.flatnonzero(y_test == "bacteria")[:3],
    np.flatnonzero(y_test == "virus")[:2],
]
recon = detector.reconstruct(X_test[idx])
fig, axes = plt.subplots(3, len(idx), figsize=(2 * len(idx), 6.3))
for j, i in enumerate(idx):
    axes[0, j].imshow(X_test[i], cmap="gray", vmin=0, vmax=1)
    axes[0, j].set_title(y_test[i], fontsize=9)
    axes[1, j].imshow(recon[j], cmap="gray", vmin=0, vmax=1)
    axes[2, j].imshow((X_test[i] - recon[j]) ** 2 * detector.mask_, cmap="magma")
for ax, label in zip(axes[:, 0], ("input", "reconstruction", "masked sq. error")):
    ax.set_ylabel(label)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])

# %%
# Autoencoder features -> classifier
# ----------------------------------
# ``transform`` returns the latent codes, so the detector is a Pipeline step.
# ``FrozenEstimator`` keeps the healthy-trained encoder as it is; only the
# logistic regression is fitted on labelled images.
pipe = make_pipeline(FrozenEstimator(detector), LogisticRegression(max_iter=2000))
acc = cross_val_score(pipe, X_test, sick, cv=5, scoring="roc_auc")
print(
    f"latent codes -> LogisticRegression, 5-fold ROC AUC: {acc.mean():.3f} +/- {acc.std():.3f}"
)
print(f"total run time {time.perf_counter() - start:.1f} s")

# %%
# Does it separate?
# -----------------
# Honestly: only partly, and only with the right error. Whole-image pixel MSE
# and ``1 - SSIM`` stay close to chance (about 0.51-0.58 here). The
# autoencoder blurs every image, so most of the error comes from ribs, lung
# edges and the body outline, which healthy and sick images share; and the
# diffuse viral haze is smooth, so viral images are reconstructed about as well
# as (sometimes better than) healthy ones (virus-only MSE AUC ~0.5) -- the
# failure reported for this approach. Restricting the error to a lung mask
# fitted on the healthy atlas raises the ROC AUC to about 0.75 (bacterial
# consolidation ~0.8, viral haze ~0.7) on these fairly easy images
# (``difficulty=0.3``); harder, fainter findings bring it towards chance.
# The "mean" threshold flags many healthy images too (about 30 % here, against
# about 70 % of pneumonia images): pick the threshold on validation data (a
# contamination quantile) for a usable operating point. The latent codes of
# this small healthy-trained autoencoder are poor features for a classifier
# (cross-validated ROC AUC ~0.57 with 150 labelled images): the code encodes
# global anatomy and exposure, which is what a healthy-only model learns, not
# the findings.
