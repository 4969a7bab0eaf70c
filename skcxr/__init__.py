"""skcxr: scikit-learn compatible estimators for chest X-ray classification studies.

Every step of a study (load, mask, balance, transfer-learn, embed, detect anomalies,
ensemble, explain) is an estimator, so a whole study is a ``Pipeline``.

Public names are imported on first access, so ``import skcxr`` stays fast and does
not import torch until a deep-learning estimator is used.
"""

from ._lazy import attach

__version__ = "0.1.0.dev0"

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "ImageLoader": "._loader",
        "OtsuMasker": "._masker",
        "AugmentBalancer": "._balancer",
        "TransferClassifier": "._transfer",
        "CNNEmbedder": "._embedder",
        "TSNE": "._tsne",
        "ReconstructionAnomalyDetector": "._anomaly",
        "GAWeightedVoter": "._voter",
        "datasets": ".datasets",
        "metrics": ".metrics",
        "inspection": ".inspection",
    },
)
