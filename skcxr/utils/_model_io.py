"""Model files that load without running code.

``save_model`` writes the ``skops.io`` format: a zip of a JSON description of
the objects and their arrays. ``load_model`` first lists every type the file
would build and refuses the file unless each one is on an explicit list of
trusted types (skcxr's estimators, and what ``skops`` already trusts: numpy,
scipy and scikit-learn types), so loading a shared file cannot import or call
anything else. No torch type is ever built: the torch-backed skcxr
estimators store each network as a dict of arrays (its weights and buffers)
and their training history as numbers, and rebuild the network from their
own parameters when loaded (see ``skcxr.nn._state``), on the CPU when the
device they were fitted on is missing. A network given as a parameter (a
torch module of your own as ``backbone``) is code, not data: ``save_model``
refuses it, and such a model is saved with joblib and loaded with trust.

A pickle or joblib file can run arbitrary code while it loads; ``load_model``
reads one only with ``trust=True`` (``--trust`` on the command line), for
files you made yourself.
"""

import os
import sys
import tempfile
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
    # a dict with attribute access (a voting ensemble's named_estimators_)
    "sklearn.utils._bunch.Bunch",
]


def _is_skops_file(path):
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "schema.json" in archive.namelist()


def _torch_module_params(model):
    """Where ``model`` (or an estimator inside it) has a torch module as a
    parameter, e.g. ``["TransferClassifier(backbone=...)"]``."""
    torch = sys.modules.get("torch")
    if torch is None:  # no torch module can exist
        return []
    found, seen = [], set()

    def visit(obj, where):
        if isinstance(obj, torch.nn.Module):
            found.append(where)
        elif id(obj) in seen or isinstance(obj, (str, bytes, type)):
            return
        elif isinstance(obj, (list, tuple, dict)):
            seen.add(id(obj))
            for item in obj.values() if isinstance(obj, dict) else obj:
                visit(item, where)
        elif callable(getattr(obj, "get_params", None)):
            seen.add(id(obj))
            try:
                params = obj.get_params(deep=False)
            except AttributeError:  # e.g. made by another version: skops decides
                return
            for name, value in params.items():
                visit(value, f"{type(obj).__name__}({name}=...)")

    visit(model, "the model")
    return found


def save_model(model, path):
    """Save a fitted model in the safe ``skops`` format.

    The file holds data only: parameters, arrays and, for the torch-backed
    skcxr estimators, their networks' weights as arrays (the networks are
    rebuilt from the estimator's parameters when loaded). :func:`load_model`
    reads it without running code from it.

    Parameters
    ----------
    model : estimator
        A fitted estimator or pipeline (for example from ``skcxr study``).
    path : str or os.PathLike
        The file to write; ``.skops`` is the customary extension.

    Raises
    ------
    ValueError
        When the model holds something a safe file cannot store, which
        :func:`load_model` would refuse: a torch module given as a parameter
        (e.g. ``backbone=`` a network of your own) or a type outside
        ``TRUSTED_TYPES`` (e.g. a function). The message names it; save
        such a model with :func:`joblib.dump` and load it with ``trust=True``.

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

    path = os.fspath(path)
    modules = _torch_module_params(model)
    if modules:
        raise ValueError(
            f"{modules[0]} is a torch module, which a safe model file cannot "
            "store (it is code, not data; only backbones given by name are "
            "rebuilt from their weights). Save this model with joblib.dump and "
            "load it with load_model(path, trust=True) (--trust on the command "
            "line)."
        )
    folder = os.path.dirname(os.path.abspath(path))
    handle, partial = tempfile.mkstemp(suffix=".skops", dir=folder)
    os.close(handle)
    try:
        if "torch" in sys.modules:  # a network referred to twice is stored once
            from ..nn._state import shared_arrays

            with shared_arrays():
                skops.io.dump(model, partial)
        else:
            skops.io.dump(model, partial)
        refused = sorted(
            set(skops.io.get_untrusted_types(file=partial)) - set(TRUSTED_TYPES)
        )
        if refused:
            raise ValueError(
                f"The model holds types that a safe model file does not load: "
                f"{refused}. Save it with joblib.dump and load it with "
                "load_model(path, trust=True) (--trust on the command line)."
            )
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


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
