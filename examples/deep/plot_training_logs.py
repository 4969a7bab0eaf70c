"""
=========================================
Watching training: curves, MLflow, epochs
=========================================

Every epoch, :class:`~skcxr.TransferClassifier` records the loss, accuracy
and ROC AUC on its training batches and on its validation split in
``history_``. :class:`~skcxr.inspection.TrainingCurveDisplay` draws any of
them, training beside validation. To keep the runs of a whole project, pass a
logger through ``callbacks``: here skorch's
:class:`~skorch.callbacks.MlflowLogger` writes each epoch's numbers to an
MLflow tracking store, here a SQLite file in a temporary folder
(``pip install mlflow``). skcxr's own
:class:`~skcxr.nn.TensorBoardLogger` does the same for TensorBoard.
"""

# %%
# Train with a logger
# -------------------
import logging
import os
import shutil
import warnings
from tempfile import mkdtemp

import matplotlib.pyplot as plt

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays
from skcxr.inspection import TrainingCurveDisplay

X, y = make_chest_xrays(
    160, classes=("normal", "bacteria"), size=32, difficulty=0.3, random_state=0
)

import mlflow  # noqa: E402
from skorch.callbacks import MlflowLogger  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)
store = mkdtemp()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # MLflow's own notices
    mlflow.set_tracking_uri("sqlite:///" + os.path.join(store, "mlflow.db"))
    mlflow.set_experiment("small-cnn")
    with mlflow.start_run(run_name="small CNN, cosine schedule") as run:
        clf = TransferClassifier(
            backbone="small_cnn",
            weights=None,
            trainable="all",
            lr=2e-3,
            lr_schedule="cosine",
            validation_fraction=0.25,
            max_epochs=8,
            callbacks=[MlflowLogger(create_artifact=False)],
            random_state=0,
        ).fit(X, y)

# %%
# What the tracking store holds
# -----------------------------
# One MLflow run with a metric per history key, one value per epoch.
client = mlflow.MlflowClient()
auc = client.get_metric_history(run.info.run_id, "valid_auc")
print(f"{len(auc)} epochs logged; last validation AUC {auc[-1].value:.3f}")
print(sorted(client.get_run(run.info.run_id).data.metrics))

# %%
# The same history, drawn
# -----------------------
# Loss on the left axis; accuracy and ROC AUC on the right; training batches
# dashed, the validation split solid.
fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
TrainingCurveDisplay.from_estimator(clf, metrics=("loss", "acc", "auc"), ax=ax)
plt.show()

shutil.rmtree(store)
