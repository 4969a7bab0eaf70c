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
        "ImageLoader": ".preprocessing._loader",
        "OtsuMasker": ".preprocessing._masker",
        "HistogramEqualizer": ".preprocessing._equalize",
        "AugmentBalancer": ".preprocessing._balancer",
        "TransferClassifier": ".models._transfer",
        "CNNEmbedder": ".models._embedder",
        "TSNE": ".models._tsne",
        "ReconstructionAnomalyDetector": ".models._anomaly",
        "GAWeightedVoter": ".models._voter",
        "LungSegmenter": ".models._segmenter",
        "datasets": ".datasets",
        "metrics": ".metrics",
        "inspection": ".inspection",
        "preprocessing": ".preprocessing",
        "models": ".models",
        "nn": ".nn",
        "utils": ".utils",
        "study": ".study",
        "serve": ".serve",
        "parallel": ".parallel",
        "model_selection": ".model_selection",
    },
)
