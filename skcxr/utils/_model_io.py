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

import contextlib
import os
import sys
import zipfile

__all__ = ["TRUSTED_TYPES", "save_model", "load_model"]

# every skcxr type a saved model may contain, by its full name; nothing else
# outside numpy / scipy / scikit-learn is ever built from a file
TRUSTED_TYPES = [
    "skcxr.preprocessing._loader.ImageLoader",
    "skcxr.preprocessing._masker.OtsuMasker",
    "skcxr.preprocessing._equalize.HistogramEqualizer",
    "skcxr.preprocessing._balancer.AugmentBalancer",
    "skcxr.models._transfer.TransferClassifier",
    "skcxr.models._embedder.CNNEmbedder",
    "skcxr.models._anomaly.ReconstructionAnomalyDetector",
    "skcxr.models._voter.GAWeightedVoter",
    "skcxr.models._segmenter.LungSegmenter",
    # scikit-learn's neighbour search trees (KNN on embeddings), pure data
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    # a dict with attribute access (a voting ensemble's named_estimators_)
    "sklearn.utils._bunch.Bunch",
    # temperature scaling of CalibratedClassifierCV: a model and one number
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._TemperatureScaling",
]


#: Largest total of the arrays a model file may declare (a ViT-Large is 1.2 GB).
MAX_ARRAY_BYTES = 4 * 2**30
#: Largest JSON description of a model file.
MAX_SCHEMA_BYTES = 256 * 2**20

_MAGIC = {  # what a file that is not a model file usually is
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"{": "a JSON or text file",
}


def _describe(path):
    """What the file at ``path`` is when it is clearly no model file, else None
    (a pickle or joblib file, or something unknown)."""
    with open(path, "rb") as fh:
        head = fh.read(132)
    if not head:
        return "an empty file"
    if head[128:132] == b"DICM":
        return "a DICOM file"
    if head.startswith(b"PK"):
        return "a damaged or truncated zip archive"
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what
    return None


def _check_regular_file(path):
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a model file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if not os.path.isfile(path):  # a FIFO or a device such as /dev/zero
        raise ValueError(f"{path} is not a regular file (a pipe or a device)")


def _check_members(archive, path):
    """Refuse a skops archive whose members inflate beyond what they declare.

    Each array member is a ``.npy`` file: its header declares the dtype and
    shape, so its uncompressed size (``ZipInfo.file_size``, read from the
    archive's directory without inflating anything) must be the header plus
    the array's bytes. A crafted member that inflates far beyond that (a zip
    bomb) is refused before it is read, as is a model that declares more
    than :data:`MAX_ARRAY_BYTES` of arrays.
    """
    import numpy as np

    declared = 0
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            if info.file_size > MAX_SCHEMA_BYTES:
                raise ValueError(
                    f"{path}: its member {info.filename!r} inflates to "
                    f"{info.file_size / 2**20:.0f} MiB, more than a model file holds"
                )
            continue
        with archive.open(info) as member:
            try:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(member)
            except (ValueError, OSError, SyntaxError) as exc:
                raise ValueError(
                    f"{path}: its array {info.filename!r} is damaged ({exc})"
                ) from None
            header = member.tell()
        if dtype.hasobject:
            raise ValueError(
                f"{path}: its array {info.filename!r} holds Python objects, which "
                "a safe model file never does"
            )
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if info.file_size != header + nbytes:
            raise ValueError(
                f"{path}: its array {info.filename!r} declares {nbytes} bytes but "
                f"inflates to {info.file_size - header}; the file is damaged or "
                "crafted and was not loaded"
            )
        declared += nbytes
    if declared > MAX_ARRAY_BYTES:
        raise ValueError(
            f"{path}: its arrays declare {declared / 2**30:.1f} GiB, more than "
            f"the {MAX_ARRAY_BYTES / 2**30:.0f} GiB a model file may hold"
        )


def _is_skops_file(path):
    """Whether ``path`` is a skops archive; its members are checked on the way."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            if "schema.json" not in archive.namelist():
                return False
            _check_members(archive, path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path} is a damaged zip archive ({exc})") from None
    return True


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


@contextlib.contextmanager
def _callbacks_left_out(model):
    """While in the context, the ``callbacks`` parameter of every skcxr
    estimator in ``model`` (itself, its steps, its parameters) is None.

    Training callbacks (loggers, progress bars, user code) act only while a
    network trains; a model file holds what predicts."""
    found, seen = [], set()

    def visit(obj):
        if id(obj) in seen or isinstance(obj, (str, bytes, type)):
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple, dict)):
            for item in obj.values() if isinstance(obj, dict) else obj:
                visit(item)
        elif callable(getattr(obj, "get_params", None)):
            try:
                params = obj.get_params(deep=False)
            except (AttributeError, TypeError):
                return
            if type(obj).__module__.startswith("skcxr.") and params.get("callbacks"):
                found.append((obj, params["callbacks"]))
            for value in params.values():
                visit(value)

    visit(model)
    try:
        for obj, _ in found:
            obj.callbacks = None
        yield
    finally:
        for obj, callbacks in found:
            obj.callbacks = callbacks


def save_model(model, path):
    """Save a fitted model in the safe ``skops`` format.

    The file holds data only: parameters, arrays and, for the torch-backed
    skcxr estimators, their networks' weights as arrays (the networks are
    rebuilt from the estimator's parameters when loaded). :func:`load_model`
    reads it without running code from it. Training callbacks (the
    ``callbacks`` parameter of the torch-backed estimators) are left out of
    the file: the loaded model has ``callbacks=None``.

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
    path = os.fspath(path)
    with _callbacks_left_out(model):
        _save(model, path)


def _save(model, path):
    import skops.io

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
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot save {path}: the folder {folder} does not exist"
        )
    # written beside the target, then renamed over it (no half-written model);
    # created with the usual mode of a new file (0666 less the umask), where
    # tempfile.mkstemp would make it private (0600)
    partial = os.path.join(folder, f".{os.path.basename(path)}.{os.urandom(6).hex()}")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
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
    _check_regular_file(path)
    if not _is_skops_file(path):
        what = _describe(path)
        if what is not None:
            raise ValueError(
                f"{path} is {what}, not a model file: 'skcxr study' writes models "
                "in the safe .skops format (a zip archive)"
            )
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
