"""Model estimators: transfer learning, CNN embeddings, t-SNE maps, anomaly
detection, the genetic-algorithm weighted ensemble and U-Net lung segmentation."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "TransferClassifier": "._transfer",
        "CNNEmbedder": "._embedder",
        "TSNE": "._tsne",
        "ReconstructionAnomalyDetector": "._anomaly",
        "GAWeightedVoter": "._voter",
        "LungSegmenter": "._segmenter",
    },
)
