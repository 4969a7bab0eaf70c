"""What the web app does with an uploaded image: predict, explain, score anomaly.

The model is any classifier that reads image files: a pipeline whose first
step is an :class:`~skcxr.ImageLoader` (every model ``skcxr study`` saves), or
such a pipeline wrapped by scikit-learn's calibration
(``CalibratedClassifierCV(FrozenEstimator(pipeline))``) and operating-point
(``FixedThresholdClassifier``) wrappers. Probabilities and the decision come
from the whole model (calibrated, at its operating point); explanations come
from the network inside (the pipeline's last step). Every call is safe from
several threads at once: nothing here or in the explanations changes the
fitted model.
"""

import numpy as np
from sklearn.pipeline import Pipeline

__all__ = ["EXPLANATIONS", "Predictor", "RequestError"]


class RequestError(Exception):
    """A request the app answers with ``status`` and a JSON error."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _grad_cam(estimator, images):
    from ..inspection import grad_cam

    return grad_cam(estimator, images)


def _grad_cam_plus_plus(estimator, images):
    from ..inspection import grad_cam_plus_plus

    return grad_cam_plus_plus(estimator, images)


def _occlusion(estimator, images):
    from ..inspection import occlusion_sensitivity

    return occlusion_sensitivity(estimator, images)


def _saliency(estimator, images):
    from ..inspection import saliency

    return saliency(
        estimator, images, method="smoothgrad", threshold=0.5, random_state=0
    )


def _lung_region(estimator, images):
    from ..inspection import silhouette_region

    return silhouette_region(images).masks.astype(np.float32)


# name -> (label on the page, needs a torch network, function, citation)
EXPLANATIONS = {
    "grad_cam": ("Grad-CAM", True, _grad_cam, "Selvaraju et al. 2017"),
    "grad_cam_plus_plus": (
        "Grad-CAM++",
        True,
        _grad_cam_plus_plus,
        "Chattopadhay et al. 2018",
    ),
    "occlusion": ("Occlusion", False, _occlusion, "Zeiler and Fergus 2014"),
    "saliency": (
        "SmoothGrad saliency (thresholded at 0.5)",
        True,
        _saliency,
        "Smilkov et al. 2017",
    ),
    "lung_region": (
        "Lung-region box (silhouette rule, no model)",
        False,
        _lung_region,
        "the brighter half and quadrant of the image",
    ),
}


def classifier_pipeline(model):
    """The pipeline from files inside ``model`` (through the calibration and
    operating-point wrappers of scikit-learn), or None."""
    while not isinstance(model, Pipeline):
        inner = getattr(model, "estimator", None)
        if inner is None:
            inner = getattr(model, "estimator_", None)
        if inner is None or inner is model:
            return None
        model = inner
    return model


def is_detector(estimator):
    return hasattr(estimator, "score_samples") and not hasattr(estimator, "classes_")


class Predictor:
    """The loaded model (and optional detector) behind the app's routes."""

    def __init__(self, model, detector=None):
        pipeline = classifier_pipeline(model)
        if pipeline is None or not hasattr(model, "predict_proba"):
            what = type(model if pipeline is None else pipeline[-1]).__name__
            hint = " (an anomaly detector goes in --detector)"
            raise ValueError(
                f"the model is a {what}, not a classifier from image files with "
                "predict_proba such as the models 'skcxr study' saves"
                + (hint if pipeline is not None and is_detector(pipeline[-1]) else "")
            )
        if detector is not None:
            detector_pipeline = classifier_pipeline(detector)
            if detector_pipeline is None or not is_detector(detector_pipeline[-1]):
                raise ValueError(
                    f"--detector must be an anomaly detector pipeline (such as "
                    f"models/anomaly.skops); got a {type(detector[-1]).__name__}"
                    if isinstance(detector, Pipeline)
                    else "--detector must be an anomaly detector pipeline"
                )
        self.model = model
        self.pipeline = pipeline
        self.estimator = pipeline[-1]
        self.detector = detector
        self.classes = [str(c) for c in model.classes_]
        self.multilabel = bool(getattr(self.estimator, "multilabel_", False))
        self.threshold = _operating_threshold(model)
        self.calibrated = _is_calibrated(model)
        torch_network = hasattr(self.estimator, "module_")
        self.explanations = {
            name: entry
            for name, entry in EXPLANATIONS.items()
            if torch_network or not entry[1]
        }

    def describe(self):
        """The model as ``/healthz`` reports it."""
        return {
            "model": type(self.estimator).__name__,
            "classes": self.classes,
            "multilabel": self.multilabel,
            "calibrated": self.calibrated,
            "operating_threshold": self.threshold,
            "detector": (
                None if self.detector is None else type(self.detector[-1]).__name__
            ),
            "explanations": [
                {"name": name, "label": entry[0], "source": entry[3]}
                for name, entry in self.explanations.items()
            ],
        }

    def images(self, pipeline, path):
        """The upload at ``path`` as ``pipeline``'s estimator takes it."""
        return pipeline[:-1].transform([path])

    def predict(self, path, filename):
        images = self.images(self.pipeline, path)
        if self.model is self.pipeline:  # the network on the images read once
            proba = self.estimator.predict_proba(images)[0]
            decision = self.classes[int(np.argmax(proba))]
        else:  # the calibrated model at its operating point, from the file
            proba = self.model.predict_proba([path])[0]
            decision = str(np.asarray(self.model.predict([path]))[0])
        proba = np.asarray(proba, dtype=np.float64)
        if self.multilabel:
            predicted = [c for c, p in zip(self.classes, proba) if p >= 0.5]
        else:
            predicted = decision
        result = {
            "filename": filename,
            "predicted": predicted,
            "probabilities": {c: float(p) for c, p in zip(self.classes, proba)},
        }
        if not self.multilabel:
            result["regions"] = self._regions(images)
        if self.detector is not None:
            codes = self.images(self.detector, path)
            result["anomaly_score"] = float(-self.detector[-1].score_samples(codes)[0])
        return result

    def _regions(self, images):
        """Which half of the chest drives the prediction (occlusion)."""
        from ..inspection import region_attribution

        regions = region_attribution(self.estimator, images, regions="halves")
        return {
            "scores": {
                str(name): float(s)
                for name, s in zip(regions.region_names, regions.scores[0])
            },
            "top_region": str(regions.top_region[0]),
        }

    def check_method(self, method):
        """Refuse an explanation ``method`` this model does not offer."""
        if method == "anomaly":
            if self.detector is None:
                raise RequestError(400, "no anomaly detector is loaded (--detector)")
            return
        if method not in self.explanations:
            if method in EXPLANATIONS:
                raise RequestError(
                    400,
                    f"{type(self.estimator).__name__} is not a torch network, so "
                    f"{EXPLANATIONS[method][0]} is not available; use "
                    f"{' or '.join(self.explanations)}",
                )
            raise RequestError(
                400,
                f"method must be one of {', '.join(self.explanations)} (or anomaly "
                "with a detector)",
            )

    def heatmap(self, path, method):
        """``(image, heatmap)`` of one upload by explanation ``method``."""
        self.check_method(method)
        images = self.images(self.pipeline, path)
        maps = np.asarray(self.explanations[method][2](self.estimator, images))
        image = np.asarray(images, dtype=np.float32).reshape(maps.shape)[0]
        return image, maps.astype(np.float32)[0]

    def anomaly_map(self, path):
        estimator = self.detector[-1]
        if not hasattr(estimator, "anomaly_map"):
            raise RequestError(400, "the detector does not produce anomaly maps")
        images = self.images(self.detector, path)
        amap = np.asarray(estimator.anomaly_map(images), dtype=np.float32)[0]
        span = float(amap.max() - amap.min()) or 1.0
        image = np.asarray(images, dtype=np.float32).reshape(amap.shape[-2:])
        return image, (amap - amap.min()) / span


def _operating_threshold(model):
    """The decision threshold of a ``FixedThresholdClassifier`` (or a tuned
    one) in ``model``, else None."""
    for attribute in ("threshold", "best_threshold_"):
        value = getattr(model, attribute, None)
        if isinstance(value, (int, float, np.floating)):
            return float(value)
    return None


def _is_calibrated(model):
    """Whether ``model`` holds a fitted ``CalibratedClassifierCV``."""
    from sklearn.calibration import CalibratedClassifierCV

    while model is not None:
        if isinstance(model, CalibratedClassifierCV):
            return hasattr(model, "calibrated_classifiers_")
        if isinstance(model, Pipeline):
            return False
        model = getattr(model, "estimator", None)
    return False
