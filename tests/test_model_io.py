"""Model files load without running code unless the user trusts them."""

import os
import pickle

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.preprocessing import FunctionTransformer

from skcxr.utils._model_io import load_model, save_model


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_payload_is_not_run_without_trust(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match="run code while they load"):
        load_model(evil)
    assert not marker.exists()


def test_trust_reads_a_pickle_made_here(tmp_path):
    import joblib

    model = DummyClassifier().fit([[0], [1]], [0, 1])
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = load_model(tmp_path / "model.joblib", trust=True)
    assert loaded.predict([[1]]).tolist() == model.predict([[1]]).tolist()


def test_a_safe_file_naming_an_untrusted_function_is_refused(tmp_path):
    path = tmp_path / "evil.skops"
    save_model(FunctionTransformer(func=os.system, kw_args={"command": "true"}), path)
    with pytest.raises(ValueError, match="types that skcxr does not trust") as info:
        load_model(path)
    assert "system" in str(info.value)


def test_safe_round_trip_of_a_sklearn_pipeline(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X, y = rng.random((30, 4)), np.array(["a", "b", "c"] * 10)
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(3)).fit(X, y)
    save_model(model, tmp_path / "m.skops")
    loaded = load_model(tmp_path / "m.skops")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda d: d, IsADirectoryError, "is a folder, not a model file"),
        (lambda d: d / "none.skops", FileNotFoundError, "model file not found"),
    ],
)
def test_bad_paths_are_named(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        load_model(make(tmp_path))


def test_a_corrupt_safe_file_gets_a_readable_error(tmp_path):
    import zipfile

    path = tmp_path / "broken.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "{not json")
    with pytest.raises(ValueError, match="not a readable model file"):
        load_model(path)
