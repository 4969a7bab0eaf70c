"""The study's building blocks: settings, patient-disjoint splits and metrics."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from skcxr.metrics import false_no_finding_rate
from skcxr.study._data import load_study_data
from skcxr.study._metrics import (
    _accuracy,
    _f1_of,
    _false_no_finding_rate,
    _macro_f1,
    _roc_auc,
    binary_roc_auc,
)
from skcxr.study._render import ci_table
from skcxr.study._settings import StudySettings


def test_fast_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    classes = np.array(["normal", "bacteria", "virus"])
    y, pred = rng.choice(classes, 200), rng.choice(classes, 200)
    assert _accuracy(y, pred) == pytest.approx(accuracy_score(y, pred))
    assert _macro_f1(classes)(y, pred) == pytest.approx(
        f1_score(y, pred, labels=classes, average="macro")
    )
    for label, score in zip(classes, f1_score(y, pred, labels=classes, average=None)):
        assert _f1_of(label)(y, pred) == pytest.approx(score)
    assert _false_no_finding_rate("normal")(y, pred) == pytest.approx(
        false_no_finding_rate(y, pred, healthy_label="normal")
    )


def test_fast_roc_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    classes = np.array(["bacteria", "normal", "virus"])
    y = rng.choice(classes, 200)
    # rounded probabilities: many tied scores, which count half
    proba = np.round(rng.dirichlet(np.ones(3), 200), 1)
    proba /= proba.sum(axis=1, keepdims=True)
    assert _roc_auc(classes)(y, proba) == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", labels=classes)
    )
    binary = classes[:2]
    y_binary = rng.choice(binary, 200)
    assert _roc_auc(binary)(y_binary, proba) == pytest.approx(
        roc_auc_score(y_binary == binary[1], proba[:, 1])
    )
    sick, score = y != "normal", proba[:, 0]
    assert binary_roc_auc(sick, score) == pytest.approx(roc_auc_score(sick, score))


def test_fast_metrics_are_undefined_without_both_classes():
    # nan marks a bootstrap resample as undefined (skipped), as the ValueError
    # of scikit-learn's roc_auc_score does
    assert np.isnan(binary_roc_auc([True, True], [0.1, 0.9]))
    classes = np.array(["bacteria", "normal", "virus"])
    y = np.array(["normal", "virus", "normal"])
    assert np.isnan(_roc_auc(classes)(y, np.full((3, 3), 1 / 3)))
    assert np.isnan(_false_no_finding_rate("normal")(y[[0, 2]], y[[0, 2]]))


def test_ci_table_shows_each_metric_with_its_interval():
    row = {
        "model": "m",
        "accuracy": 0.8,
        "accuracy CI low": 0.7,
        "accuracy CI high": 0.9,
    }
    assert ci_table([row]) == [{"model": "m", "accuracy": "0.800 [0.700, 0.900]"}]


def test_settings_round_trip_through_toml(tmp_path):
    settings = StudySettings.quick().updated(
        {"backbone": "resnet50", "size": 96}, source="test"
    )
    path = tmp_path / "settings.toml"
    path.write_text(settings.to_toml())
    assert StudySettings.from_toml(path) == settings


@pytest.mark.parametrize(
    "values, message",
    [
        ({"sizes": 3}, "unknown setting 'sizes'"),
        ({"size": "large"}, "setting 'size' must be int"),
    ],
)
def test_bad_settings_name_the_setting(values, message):
    with pytest.raises(ValueError, match=message):
        StudySettings().updated(values, source="settings.toml")


def test_the_backbone_weights_reach_every_pretrained_model():
    """``--weights`` (or ``weights`` in the settings file) is what the frozen
    and fine-tuned classifiers, the multi-label model and the embedder load."""
    from types import SimpleNamespace

    from skcxr._cli import _parser, _study_settings
    from skcxr.study._tasks import _pretrained_embedder, classifier_configs

    assert StudySettings().weights == "imagenet"
    argv = ["study", "--quick", "--backbone", "densenet121", "--weights", "xrv:all"]
    settings = _study_settings(_parser().parse_args(argv))
    assert (settings.backbone, settings.weights) == ("densenet121", "xrv:all")
    configs = classifier_configs(settings, random_state=0)
    assert {name: model.weights for name, model in configs.items()} == {
        "frozen densenet121": "xrv:all",
        "fine-tuned densenet121": "xrv:all",
        "small CNN from scratch": None,
    }
    embedder = _pretrained_embedder(settings, SimpleNamespace(loader=None))
    assert embedder.weights == "xrv:all"
    assert 'weights = "xrv:all"' in settings.to_toml()


def test_real_data_uses_the_backbone_native_size():
    assert StudySettings().for_real_data().size == 224
    inception = StudySettings().updated({"backbone": "inception_v3"}, source="t")
    assert inception.for_real_data().size == 299


def _split_owners(data):
    owners = {}
    for patient, split in zip(data.patients, data.split):
        owners.setdefault(patient, set()).add(split)
    return owners


@pytest.mark.parametrize(
    "layout, classes",
    [
        ("kermany", ("normal", "bacteria", "virus")),
        ("chestxray14", ("normal", "effusion", "atelectasis")),
    ],
)
def test_real_layouts_split_by_patient(tmp_path, layout, classes):
    from skcxr.datasets import make_chest_xrays, write_chest_xrays

    X, y = make_chest_xrays(120, classes=classes, size=32, random_state=0)
    # patients own several images (follow-ups), as in both real data sets
    patients = np.repeat(np.arange(40), 3)
    write_chest_xrays(
        tmp_path, X, y, layout=layout, patient_ids=patients, random_state=0
    )
    settings = StudySettings.quick().updated({"size": 32}, source="test")
    data = load_study_data(settings, data=tmp_path, layout=layout, random_state=0)
    assert data.patients_disjoint()
    assert all(len(splits) == 1 for splits in _split_owners(data).values())
    assert set(data.split) == {"train", "validation", "test"}
    rows = data.split_rows()
    assert sum(r["images"] for r in rows) == len(data.y)
    data.write_splits_csv(tmp_path / "splits.csv")
    lines = (tmp_path / "splits.csv").read_text().splitlines()
    assert lines[0] == "path,patient,label,split" and len(lines) == len(data.y) + 1


def test_max_images_subsamples_whole_patients(tmp_path):
    from skcxr.datasets import load_kermany, make_chest_xrays, write_chest_xrays

    X, y = make_chest_xrays(120, size=32, random_state=0)
    write_chest_xrays(
        tmp_path, X, y, patient_ids=np.repeat(np.arange(40), 3), random_state=0
    )
    settings = StudySettings.quick().updated(
        {"size": 32, "max_images": 60}, source="test"
    )
    data = load_study_data(settings, data=tmp_path, layout="kermany", random_state=0)
    assert 45 <= len(data.y) <= 75
    full = load_kermany(tmp_path, return_X_y=False)
    images_of = dict(zip(*np.unique(full.patient_ids, return_counts=True)))
    kept, per_patient = np.unique(data.patients, return_counts=True)
    # whole patients, never part of one
    assert all(images_of[p] == n for p, n in zip(kept, per_patient))


def test_explanations_are_scored_against_the_synthetic_lesions():
    from skcxr import TransferClassifier
    from skcxr.study._render import _score_with_chance
    from skcxr.study._tasks import Task, _explanation_scores

    settings = StudySettings(n_samples=60, size=32, n_scored_explanations=4)
    study = load_study_data(settings, random_state=0)
    assert study.lesion_masks.shape == study.X.shape
    X_test, y_test, _ = study.subset("test")
    masks = study.lesions("test")
    assert len(masks) == len(X_test)
    # the generator draws a lesion on every diseased image and none on healthy ones
    assert not masks[y_test == "normal"].any()
    assert all(m.any() for m in masks[y_test != "normal"])
    X_train, y_train, _ = study.subset("train")
    model = TransferClassifier(
        backbone="small_cnn", weights=None, max_epochs=2, random_state=0
    ).fit(X_train, y_train)
    # score every diseased test image, as if each one were predicted correctly
    task = Task("three-class", np.asarray)
    scores = _explanation_scores(study, task, model, X_test, y_test, y_test, settings)
    assert scores["n_images"] == 4 and scores["tolerance"] == 2
    methods = [row["method"] for row in scores["rows"]]
    assert {"grad_cam", "occlusion", "smoothgrad"} <= set(methods)
    shown = _score_with_chance(scores["rows"])
    assert len(shown) == len(methods)
    assert "pointing game" in shown[0] and "(" in shown[0]["pointing game"]
    assert not any(key.endswith("chance") for key in shown[0])


def test_real_data_has_no_lesions_to_score():
    from skcxr.study._tasks import Task, _explanation_scores

    study = load_study_data(StudySettings(n_samples=30, size=32), random_state=0)
    study.lesion_masks = None
    X_test, y_test, _ = study.subset("test")
    task = Task("three-class", np.asarray)
    assert _explanation_scores(study, task, None, X_test, y_test, y_test, None) is None


@pytest.mark.parametrize("streaming", ["always", "never"])
def test_a_folder_is_streamed_from_its_files_when_asked(tmp_path, streaming):
    from skcxr.datasets import make_chest_xrays, write_chest_xrays

    X, y = make_chest_xrays(40, size=32, random_state=0)
    write_chest_xrays(tmp_path, X, y, random_state=0)
    settings = StudySettings.quick().updated(
        {"size": 32, "streaming": streaming}, source="test"
    )
    said = []
    data = load_study_data(settings, data=tmp_path, random_state=0, log=said.append)
    X_train, y_train, _ = data.subset("train")
    if streaming == "always":
        # the models get the file paths and read them through the study's loader
        assert X_train.dtype.kind == "U" and data.loader is not None
        assert any("streaming from files" in line for line in said)
        images = data.pixels(X_train[:3])
        assert images.shape == (3, 32, 32) and images.dtype == np.float32
    else:
        assert data.loader is None and not said
        np.testing.assert_array_equal(data.pixels(X_train[:3]), X_train[:3])


def test_streaming_setting_is_checked():
    with pytest.raises(ValueError, match="streaming"):
        StudySettings().updated({"streaming": "sometimes"}, source="test")


# ------------------------------------------------------- readers and rare classes
def test_single_label_targets_of_a_finding_matrix():
    from skcxr.study._readers import NO_FINDING, SEVERAL_FINDINGS, _single_label

    classes = ["Effusion", "Support Devices", "Atelectasis"]
    labels = np.array(
        [
            [0, 1, 0],  # a device is not a finding
            [1, 0, np.nan],  # an unknown label is not positive
            [1, 0, 1],
            [np.nan, np.nan, 1],
        ]
    )
    assert _single_label(labels, classes).tolist() == [
        NO_FINDING,
        "Effusion",
        SEVERAL_FINDINGS,
        "Atelectasis",
    ]


def test_finding_targets_match_by_common_name():
    from skcxr.study._readers import Source, finding_target

    kermany = Source(
        paths=np.array(["a", "b"]),
        y=np.array(["normal", "virus"]),
        patients=np.array(["1", "2"]),
        healthy="normal",
        description="",
        positive="Pneumonia",
    )
    assert finding_target(kermany, "Pneumonia").tolist() == [0.0, 1.0]
    assert finding_target(kermany, "Effusion") is None
    nih = Source(
        paths=np.array(["a", "b", "c"]),
        y=np.array(["No Finding", "Effusion", "No Finding"]),
        patients=np.array(["1", "2", "3"]),
        healthy="No Finding",
        description="",
        multilabel=np.array([[0.0, 0.0], [1.0, 0.0], [0.0, np.nan]]),
        finding_names=["Effusion", "Edema"],
    )
    assert finding_target(nih, "Effusion").tolist() == [0.0, 1.0, 0.0]
    np.testing.assert_array_equal(finding_target(nih, "any finding"), [0, 1, np.nan])
    assert finding_target(nih, "Pneumonia") is None


def test_rare_classes_leave_the_single_label_tasks_with_their_counts():
    from skcxr.study._data import RARE, _set_rare_classes

    y = np.array(["ok"] * 12 + ["common"] * 12 + ["rare"] * 4)
    split = np.array(["train", "validation", "test"] * 9 + ["train"])
    labels, notes = _set_rare_classes(y, split, "ok", minimum=3)
    assert (labels[y == "rare"] == RARE).all() and (
        labels[y == "common"] == "common"
    ).all()
    assert len(notes) == 1 and notes[0].startswith("rare: too few images")
    assert "2 train, 1 validation, 1 test" in notes[0]
    with pytest.raises(ValueError, match="No image of the healthy class 'ok'"):
        _set_rare_classes(np.array(["x"] * 9), split[:9], "ok", minimum=1)


def test_a_metric_that_cannot_be_estimated_is_said_so():
    from skcxr.study._metrics import finding_auc_row, with_ci

    row = with_ci(
        {},
        "ROC AUC",
        np.array([True, True]),
        np.array([0.2, 0.3]),
        binary_roc_auc,
        groups=None,
        n_resamples=20,
        random_state=0,
    )
    assert np.isnan(row["ROC AUC"]) and "ROC AUC not estimable" in row["notes"]
    row = finding_auc_row(
        "Hernia",
        np.array([1, 0, 0, np.nan]),
        np.array([0.9, 0.1, 0.2, 0.5]),
        None,
        minimum=2,
        n_resamples=20,
        random_state=0,
    )
    assert (row["positives"], row["negatives"]) == (1, 2)
    assert np.isnan(row["ROC AUC"]) and "not estimable: 1 positive" in row["notes"]


# ---------------------------------------------------------- clinical evaluation
def test_the_fast_ece_equals_the_metric():
    from skcxr.metrics import expected_calibration_error
    from skcxr.study._clinical import ece_metric

    rng = np.random.default_rng(0)
    classes = np.array(["bacteria", "normal", "virus"])
    proba = rng.dirichlet(np.ones(3) * 0.5, 300)
    y = rng.choice(classes, 300)
    assert ece_metric(classes)(y, proba) == pytest.approx(
        expected_calibration_error(y, proba, labels=classes)
    )


def test_a_calibration_moved_to_the_model_from_files_keeps_its_temperature(tmp_path):
    from sklearn.pipeline import Pipeline

    from skcxr import ImageLoader, TransferClassifier
    from skcxr.datasets import make_chest_xrays, write_chest_xrays
    from skcxr.study._clinical import calibrate, calibrate_like

    X, y = make_chest_xrays(60, size=32, random_state=0)
    paths = write_chest_xrays(tmp_path, X, y, fmt="png", random_state=0)
    X = ImageLoader(size=32).fit_transform(paths)  # the pixels the files hold
    model = TransferClassifier(
        backbone="small_cnn", weights=None, max_epochs=2, random_state=0
    ).fit(X[:30], y[:30])
    calibrated = calibrate(model, X[30:50], y[30:50])
    from_files = calibrate_like(
        calibrated, Pipeline([("load", ImageLoader(size=32)), ("model", model)])
    )
    np.testing.assert_allclose(
        from_files.predict_proba(paths[32:]),
        calibrated.predict_proba(X[32:]),
        atol=1e-6,
    )
    assert not np.allclose(
        calibrated.predict_proba(X[32:]), model.predict_proba(X[32:])
    )


def test_age_bands():
    from skcxr.study._clinical import age_bands

    assert age_bands([5, 39.9, 40, 79, 80, np.nan]).tolist() == [
        "0-39",
        "0-39",
        "40-59",
        "60-79",
        "80+",
        "",
    ]
