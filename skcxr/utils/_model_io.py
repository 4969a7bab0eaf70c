"""Model files that load without running code.

``save_model`` writes the ``skops.io`` format: a zip of a JSON description of
the objects and their arrays. ``load_model`` first lists every type the file
would build and refuses the file unless each one is on an explicit list of
trusted types (skcxr's estimators, and what ``skops`` already trusts: numpy,
scipy and scikit-learn types), so loading a shared file cannot import or call
anything else. Network weights are stored as arrays; each torch-backed skcxr
estimator rebuilds its network from its parameters when loaded.

A pickle or joblib file can run arbitrary code while it loads; ``load_model``
reads one only with ``trust=True`` (``--trust`` on the command line), for
files you made yourself.
"""

import os
import zipfile

__all__ = ["TRUSTED_TYPES", "save_model", "load_model"]

# every skcxr type a saved model may contain, by its full name; nothing else
# outside numpy / scipy / scikit-learn is ever built from a file
TRUSTED_TYPES = [
    "skcxr.preprocessing._loader.ImageLoader",
    "skcxr.preprocessing._masker.OtsuMasker",
    "skcxr.preprocessing._balancer.AugmentBalancer",
    "skcxr.models._transfer.TransferClassifier",
    "skcxr.models._embedder.CNNEmbedder",
    "skcxr.models._anomaly.ReconstructionAnomalyDetector",
    "skcxr.models._voter.GAWeightedVoter",
    # scikit-learn's neighbour search trees (KNN on embeddings), pure data
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
]


def _is_skops_file(path):
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "schema.json" in archive.namelist()


def save_model(model, path):
    """Save a fitted model in the safe ``skops`` format.

    Parameters
    ----------
    model : estimator
        A fitted estimator or pipeline (for example from ``skcxr study``).
    path : str or os.PathLike
        The file to write; ``.skops`` is the customary extension.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.dummy import DummyClassifier
    >>> from skcxr.utils import load_model, save_model
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skops")
    >>> save_model(DummyClassifier().fit([[0], [1]], [0, 1]), path)
    >>> load_model(path).predict([[0]])
    array([0])
    """
    import skops.io

    skops.io.dump(model, os.fspath(path))


def load_model(path, *, trust=False):
    """Load a model file without running code from it.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model` (``skcxr study`` writes them), or,
        with ``trust=True``, a pickle / joblib file.
    trust : bool, default=False
        Also read pickle and joblib files, which execute code while they load:
        only for files you made yourself.

    Returns
    -------
    model : estimator

    Raises
    ------
    ValueError
        When the file is not in the safe format (and ``trust`` is False), or
        when it would build a type that is not trusted (the message lists them).
    FileNotFoundError, IsADirectoryError
        When ``path`` is not a file.
    """
    import skops.io

    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a model file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if not _is_skops_file(path):
        if not trust:
            raise ValueError(
                f"{path} is not in the safe model format that 'skcxr study' writes "
                "(.skops). Pickle and joblib files run code while they load: read one "
                "only if you made it yourself, with trust=True (--trust)"
            )
        import joblib

        try:
            return joblib.load(path)
        except Exception as exc:  # truncated, corrupt or not a pickle at all
            reason = str(exc) or type(exc).__name__
            raise ValueError(f"{path} is not a readable model file ({reason})") from exc
    try:
        needed = skops.io.get_untrusted_types(file=path)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable model file ({exc})") from exc
    refused = sorted(set(needed) - set(TRUSTED_TYPES))
    if refused:
        raise ValueError(
            f"{path} would build types that skcxr does not trust: {refused}; it was "
            "not loaded"
        )
    try:
        return skops.io.load(path, trusted=needed)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable model file ({exc})") from exc
