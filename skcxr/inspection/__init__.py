"""Explanations (Grad-CAM, occlusion, region attribution), their scores, error
overlap across models, and sklearn-style ``*Display`` plot helpers."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "grad_cam": "._gradcam",
        "occlusion_sensitivity": "._occlusion",
        "region_attribution": "._regions",
        "silhouette_side": "._regions",
        "intermediate_activations": "._activations",
        "pointing_game": "._scores",
        "deletion_curve": "._scores",
        "error_overlap": "._error_overlap",
        "ErrorOverlapDisplay": "._error_overlap",
        "HeatmapDisplay": "._displays",
        "EmbeddingDisplay": "._displays",
        "ReconstructionErrorDisplay": "._displays",
        "TrainingCurveDisplay": "._displays",
        "ImageGridDisplay": "._displays",
    },
)
