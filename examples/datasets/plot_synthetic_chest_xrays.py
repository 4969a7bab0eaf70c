"""
=========================
Synthetic chest X-rays
=========================

:func:`skcxr.datasets.make_chest_xrays` draws posteroanterior (PA) chest
radiographs: dark air-filled lungs, the bright spine, mediastinum and heart in
the middle, ribs, clavicles and the diaphragm domes. The radiological display
convention holds: the patient's right lung is on the image's *left*, so the
heart bulges towards the image's *right*.

Each class has its own finding, and ``return_masks=True`` returns where it is
(red contours), which lets you score explanations such as Grad-CAM. The
``difficulty`` knob shrinks the findings and increases the patient-to-patient
variation, noise and blur, so that the classes overlap.
"""

# %%
# One image per class at two difficulty levels
# --------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

from skcxr.datasets import make_chest_xrays

classes = ("normal", "bacteria", "virus", "effusion", "atelectasis", "infiltration")
fig, axes = plt.subplots(2, len(classes), figsize=(13, 5))
for row, difficulty in zip(axes, (0.1, 0.6)):
    X, y, masks = make_chest_xrays(
        len(classes) * 3,
        classes=classes,
        size=128,
        difficulty=difficulty,
        return_masks=True,
        random_state=0,
    )
    for ax, name in zip(row, classes):
        i = np.flatnonzero(y == name)[0]
        ax.imshow(X[i], cmap="gray", vmin=0, vmax=1)
        if masks[i].any():
            ax.contour(masks[i], levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{name}\ndifficulty={difficulty}", fontsize=9)
        ax.axis("off")
fig.tight_layout()

# %%
# How hard is it? A pixel baseline against difficulty
# ---------------------------------------------------
# A logistic regression on 16x16 downsampled pixels, 3-fold cross-validated, on
# the three Kermany-style classes. Chance is 1/3.
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

difficulties = [0.0, 0.25, 0.5, 0.75, 1.0]
scores = []
for difficulty in difficulties:
    X, y = make_chest_xrays(240, size=48, difficulty=difficulty, random_state=0)
    X16 = X.reshape(len(X), 16, 3, 16, 3).mean(axis=(2, 4)).reshape(len(X), -1)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    scores.append(cross_val_score(model, X16, y, cv=3).mean())
    print(f"difficulty={difficulty:.2f}: accuracy={scores[-1]:.3f}")

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(difficulties, scores, "o-", label="logistic regression, 16x16 pixels")
ax.axhline(1 / 3, color="gray", linestyle="--", label="chance")
ax.set(xlabel="difficulty", ylabel="3-fold CV accuracy", ylim=(0, 1.05))
ax.legend()
fig.tight_layout()
plt.show()
