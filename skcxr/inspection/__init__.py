"""Explanations (Grad-CAM, Grad-CAM++, saliency, occlusion, region attribution),
their scores against known lesions, error
overlap across models, and sklearn-style ``*Display`` plot helpers (including
reliability diagrams and subgroup forest plots)."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "grad_cam": "._gradcam",
        "grad_cam_plus_plus": "._gradcam_pp",
        "saliency": "._saliency",
        "occlusion_sensitivity": "._occlusion",
        "region_attribution": "._regions",
        "silhouette_side": "._regions",
        "silhouette_region": "._regions",
        "mask_region": "._regions",
        "intermediate_activations": "._activations",
        "pointing_game": "._scores",
        "deletion_curve": "._scores",
        "insertion_curve": "._scores",
        "energy_pointing_game": "._scores",
        "evaluate_explanations": "._evaluate",
        "error_overlap": "._error_overlap",
        "ErrorOverlapDisplay": "._error_overlap",
        "HeatmapDisplay": "._displays",
        "EmbeddingDisplay": "._displays",
        "ReconstructionErrorDisplay": "._displays",
        "AnomalyMapDisplay": "._anomaly_map",
        "TrainingCurveDisplay": "._displays",
        "ImageGridDisplay": "._displays",
        "ReliabilityDisplay": "._clinical_displays",
        "SubgroupDisplay": "._clinical_displays",
    },
)
