"""Fit a TransferClassifier with an Accelerate accelerator and write what it
learned as JSON: run once per process by ``accelerate launch`` (or alone)."""

import json
import sys

import numpy as np
import torch
from accelerate import Accelerator
from sklearn.model_selection import train_test_split

from skcxr import TransferClassifier
from skcxr.datasets import make_chest_xrays


def main(out):
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    X, y = make_chest_xrays(
        96, classes=("normal", "bacteria"), size=32, difficulty=0.3, random_state=0
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    clf = TransferClassifier(
        backbone="efficientnet_lite0",
        trainable="head",
        head_sizes=(32,),
        batch_size=8,
        lr=3e-3,
        max_epochs=10,
        accelerator=accelerator,
        random_state=0,
    ).fit(X_train, y_train)
    weights = torch.cat([p.detach().flatten() for p in clf.module_.parameters()])
    # every process ends with the same network: compare a digest of it
    digest = float(weights.double().abs().sum())
    digests = accelerator.gather(torch.tensor([digest], dtype=torch.float64))
    if accelerator.is_main_process:
        with open(out, "w") as f:
            json.dump(
                {
                    "processes": accelerator.num_processes,
                    "digests": digests.tolist(),
                    "accuracy": float(clf.score(X_test, y_test)),
                    "train_batches": int(clf.history_[-1, "train_batch_count"]),
                    "train_loss": [float(v) for v in clf.history_[:, "train_loss"]],
                    "finite": bool(np.isfinite(weights.numpy()).all()),
                },
                f,
            )


if __name__ == "__main__":
    main(sys.argv[1])
