"""The study's lung masking (``--mask``): the masker fitted on the training
split, its masks scored against the known lung fields, and one classifier
trained on the images of each masking choice, side by side."""

import dataclasses

import numpy as np
from sklearn.base import clone

from ._metrics import evaluate, with_ci

__all__ = ["check_masking", "lung_masker", "masking_task"]

# Otsu's threshold as a lung-field mask: the dark regions, the two largest not
# touching the border, holes filled (lungs are darker than the mediastinum)
_OTSU_LUNGS = dict(keep="below", clear_border=True, n_regions=2, fill_holes=True)


def _mean_of_first(values, _):
    # the interval of a per-image mean: the bootstrap resamples the values
    return float(np.mean(values))


def lung_masker(choice, settings, random_state):
    """An unfitted transformer that masks images to the lungs by ``choice``
    (one of :data:`skcxr.study._settings.MASKS` except ``"none"``)."""
    from sklearn.pipeline import make_pipeline

    from ..models import LungSegmenter
    from ..preprocessing import HistogramEqualizer, OtsuMasker

    if choice == "otsu":
        return OtsuMasker(**_OTSU_LUNGS)
    segmenter = LungSegmenter(
        max_epochs=settings.segmenter_epochs,
        batch_size=settings.batch_size,
        device=settings.device,
        random_state=random_state,
    )
    if choice == "segmenter":
        return segmenter
    # CLAHE (Zuiderveld 1994) evens the contrast the segmenter then sees
    return make_pipeline(HistogramEqualizer(method="clahe"), segmenter)


def check_masking(settings, data):
    """A ``ValueError`` before any work when ``settings.mask`` cannot run on
    ``data`` (a real folder has no lung masks to train the segmenter on)."""
    if "segmenter" in settings.mask and data is not None:
        raise ValueError(
            f"--mask {settings.mask} trains a U-Net on lung masks, which only the "
            "synthetic data carries; on a real folder use --mask otsu or none."
        )
    if settings.mask != "none" and settings.streaming == "always":
        raise ValueError(
            f"--mask {settings.mask} masks the images in memory; it cannot run "
            "with --streaming always."
        )


def _lung_masks(masker, X):
    """Boolean lung masks of ``X`` by a fitted masker of :func:`lung_masker`."""
    if hasattr(masker, "compute_masks"):
        return masker.compute_masks(X)[0]
    if hasattr(masker, "steps"):
        return masker[-1].predict(masker[:-1].transform(X))
    return masker.predict(X)


def masking_task(study, task, settings, random_state, log):
    """Fit the chosen masker and compare the masking choices.

    Each choice's masker (Otsu's threshold; the U-Net, trained on the
    training split's lung masks) masks every image; on the test split its
    masks are scored against the known lung fields (Dice, patient-level
    interval), and the study's frozen-backbone classifier of ``task``,
    trained on each choice's images, is scored as the study scores its
    classifiers. Returns ``{"masker": the chosen fitted masker, "masked":
    the study's images masked by it, "rows": metric rows, "choices",
    "examples": four test images as each choice masks them}``.
    """
    from ..metrics import dice_score
    from ._tasks import classifier_configs

    if study.loader is not None:
        raise ValueError(
            f"--mask {settings.mask} masks the images in memory, and these "
            "images are too many to hold there: study fewer (--max-images)."
        )
    choices = ["none", "otsu", settings.mask]
    if settings.mask == "clahe+segmenter":
        choices.insert(2, "segmenter")
    choices = list(dict.fromkeys(choices))
    train, test = study.part("train"), study.part("test")
    lungs = study.lung_masks
    maskers, masked = {}, {"none": study.X}
    for choice in choices[1:]:
        log(f"lung masking: fitting {_NAMES[choice]}")
        masker = lung_masker(choice, settings, random_state)
        if choice == "otsu":
            masker.fit(study.X[train])
        else:
            masker.fit(study.X[train], lungs[train])
        maskers[choice] = masker
        masked[choice] = masker.transform(study.X)
    name, classifier = next(iter(classifier_configs(settings, random_state).items()))
    rows = []
    for choice in choices:
        images = dataclasses.replace(study, X=masked[choice])
        X_train, y_train, _ = task.subset(images, "train")
        X_test, y_test, groups = task.subset(images, "test")
        model = clone(classifier).fit(X_train, y_train)
        row = evaluate(
            f"{name}, {_NAMES[choice]}",
            "lung masking",
            model,
            X_test,
            y_test,
            groups,
            healthy=study.healthy,
            n_resamples=settings.n_resamples,
            random_state=random_state,
        )
        if choice != "none" and lungs is not None:
            per_image = dice_score(
                lungs[test], _lung_masks(maskers[choice], study.X[test]), average=None
            )
            with_ci(
                row,
                "lung Dice",
                per_image,
                per_image,
                _mean_of_first,
                groups=study.patients[test],
                n_resamples=settings.n_resamples,
                random_state=random_state,
            )
        rows.append(row)
    shown = np.flatnonzero(test)[:4]
    return {
        "examples": {_NAMES[c]: masked[c][shown] for c in choices},
        "masker": maskers[settings.mask],
        "masked": masked[settings.mask],
        "rows": rows,
        "choices": choices,
    }


_NAMES = {
    "none": "no mask",
    "otsu": "Otsu's threshold",
    "segmenter": "U-Net segmenter",
    "clahe+segmenter": "CLAHE + U-Net segmenter",
}
