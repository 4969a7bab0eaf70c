"""skorch callbacks that every skcxr network trains with."""

import math
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback, TensorBoard

__all__ = [
    "DivergenceGuard",
    "TensorBoardLogger",
    "check_callbacks",
    "check_tensorboard",
    "progress_callbacks",
]

#: A final training loss this many times the first epoch's means divergence.
DIVERGED_RATIO = 100.0


class DivergenceGuard(Callback):
    """Stop training on a non-finite loss; warn when the loss ran away.

    A learning rate far too high (or a broken loss weight) makes the loss
    overflow to inf or NaN, after which every weight is NaN and the network
    predicts one class for everything, silently. The guard raises a
    ``ValueError`` at the first non-finite training or validation loss (or
    non-finite weights at the end of an epoch), naming the epoch, the batch
    and the likely cause; a final epoch loss more than
    :data:`DIVERGED_RATIO` times the first epoch's gives a
    :class:`~sklearn.exceptions.ConvergenceWarning`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skorch import NeuralNetRegressor
    >>> from skcxr.nn._callbacks import DivergenceGuard
    >>> X = np.ones((8, 1), np.float32); y = 1e20 * X
    >>> net = NeuralNetRegressor(torch.nn.Linear(1, 1), lr=1e10, max_epochs=3,
    ...     train_split=None, callbacks=[DivergenceGuard()], verbose=0)
    >>> try:
    ...     net.fit(X, y)
    ... except ValueError as exc:
    ...     print(str(exc)[:44])
    Training diverged: the training loss is inf
    """

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if loss is None:
            return
        value = loss.item() if hasattr(loss, "item") else float(loss)
        if not math.isfinite(value):
            which = "training" if training else "validation"
            self._diverged(net, f"the {which} loss is {value}")

    def on_epoch_end(self, net, **kwargs):
        # the last step of an epoch can break the weights without a loss to show it
        for name, param in net.module_.named_parameters():
            if not bool(torch.isfinite(param).all()):
                self._diverged(net, f"the weights of {name!r} are not finite")

    def _diverged(self, net, what):
        epoch = len(net.history)
        batch = len(net.history[-1, "batches"])
        raise ValueError(
            f"Training diverged: {what} at epoch {epoch}, batch {batch}. "
            f"{_likely_cause(net)}"
        )

    def on_train_end(self, net, **kwargs):
        losses = [row["train_loss"] for row in net.history if "train_loss" in row]
        if len(losses) > 1 and losses[-1] > DIVERGED_RATIO * max(losses[0], 1e-12):
            warnings.warn(
                f"The training loss grew from {losses[0]:.4g} (epoch 1) to "
                f"{losses[-1]:.4g} (epoch {len(losses)}): training diverged. "
                f"{_likely_cause(net)}",
                ConvergenceWarning,
                stacklevel=2,
            )


def _likely_cause(net):
    optimizer = getattr(net.optimizer, "__name__", str(net.optimizer))
    return (
        f"The likely cause is a learning rate too high for the {optimizer} "
        f"optimizer (lr={net.lr:g}); try a 10 to 100 times smaller lr."
    )


def check_callbacks(callbacks, param="callbacks"):
    """Fresh copies of the skorch callbacks of the ``param`` parameter.

    ``callbacks`` is None or a list of skorch callbacks and ``(name,
    callback)`` pairs. Each callback is cloned (:func:`sklearn.base.clone`:
    a new, unfitted callback with the same parameters), so that fitting never
    changes the parameter and every fit starts afresh; a callback that
    cannot be cloned (one holding an open file, such as skorch's
    ``TensorBoard`` with its ``SummaryWriter``) is used as given.

    Examples
    --------
    >>> from skorch.callbacks import EpochScoring
    >>> from skcxr.nn._callbacks import check_callbacks
    >>> scoring = EpochScoring("accuracy", name="train_acc", on_train=True)
    >>> [(name, type(cb).__name__, cb is scoring)
    ...  for name, cb in check_callbacks([("acc", scoring)])]
    [('acc', 'EpochScoring', False)]
    >>> check_callbacks(["accuracy"])
    Traceback (most recent call last):
    ...
    TypeError: callbacks[0] must be a skorch callback (skorch.callbacks.Callback) or a (name, callback) pair; got the str 'accuracy'.
    """
    from sklearn.base import clone

    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes, Callback)) or not isinstance(
        callbacks, (list, tuple)
    ):
        raise TypeError(
            f"{param} must be a list of skorch callbacks or (name, callback) pairs; "
            f"got {type(callbacks).__name__} {callbacks!r}."
        )
    checked = []
    for i, item in enumerate(callbacks):
        name, callback = (None, item)
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, callback = item
        if not isinstance(callback, Callback):
            raise TypeError(
                f"{param}[{i}] must be a skorch callback (skorch.callbacks.Callback) "
                f"or a (name, callback) pair; got the {type(item).__name__} "
                f"{item!r}."
            )
        try:
            callback = clone(callback)
        except (TypeError, RuntimeError, AttributeError):
            pass  # e.g. a callback holding an open file: used as given
        checked.append(callback if name is None else (name, callback))
    return checked


def progress_callbacks(verbose, stream=None):
    """``[("progress_bar", ProgressBar())]`` when ``verbose`` and ``stream``
    (default: standard error) is a terminal, else ``[]``.

    skorch's :class:`~skorch.callbacks.ProgressBar` draws a tqdm bar over the
    batches of each epoch; a log file or a notebook's captured output gets
    no bar (``verbose`` still prints the epoch table).

    Examples
    --------
    >>> import io
    >>> from skcxr.nn._callbacks import progress_callbacks
    >>> progress_callbacks(1, io.StringIO())
    []
    """
    import sys

    from skorch.callbacks import ProgressBar

    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if not verbose or isatty is None or not isatty():
        return []
    return [("progress_bar", ProgressBar())]


def check_tensorboard():
    """torch's ``SummaryWriter`` class; a clear error when tensorboard is missing."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            "Logging to TensorBoard needs the tensorboard package: "
            "pip install 'skcxr[tensorboard]'."
        ) from exc
    return SummaryWriter


_TAG_GROUPS = {"loss": "Loss", "acc": "Accuracy", "auc": "ROC AUC", "f1": "F1"}


def tensorboard_tag(key):
    """TensorBoard tag of a history key: a metric's training and validation
    curves share a group (``train_auc`` -> ``ROC AUC/train_auc``).

    Examples
    --------
    >>> from skcxr.nn._callbacks import tensorboard_tag
    >>> tensorboard_tag("valid_loss"), tensorboard_tag("train_acc"), tensorboard_tag("dur")
    ('Loss/valid_loss', 'Accuracy/train_acc', 'dur')
    """
    if key.startswith(("train_", "valid_")):
        metric = key.split("_", 1)[1]
        return f"{_TAG_GROUPS.get(metric, metric)}/{key}"
    return key


class TensorBoardLogger(TensorBoard):
    """skorch's TensorBoard callback writing to a folder: one run per fit.

    Every number of the net's history (losses, the ``train_*`` and
    ``valid_*`` scores, the learning rate) is written per epoch as a
    TensorBoard scalar, a metric's training and validation curves in one
    group (:func:`tensorboard_tag`: ``Loss/train_loss``, ``ROC AUC/valid_auc``),
    into event files under ``log_dir`` (``tensorboard --logdir DIR`` shows
    them). Unlike skorch's :class:`~skorch.callbacks.TensorBoard`, which
    takes an open ``SummaryWriter``, it holds only the folder's name: the
    writer is opened when training begins and closed when it ends, so an
    estimator with this callback clones, pickles and fits in other processes.
    Needs ``pip install 'skcxr[tensorboard]'``.

    Parameters
    ----------
    log_dir : str or os.PathLike
        The run's folder (created if missing). Several fits into the same
        folder add event files to the same run; give each network its own
        folder to compare them side by side.
    keys_ignored : str or list of str, default=None
        History keys not to log (``batches`` is never logged).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skcxr import TransferClassifier
    >>> from skcxr.nn import TensorBoardLogger
    >>> X = np.random.default_rng(0).random((16, 32, 32), dtype=np.float32)
    >>> y = np.array([0, 1] * 8)
    >>> log_dir = os.path.join(tempfile.mkdtemp(), "small_cnn")
    >>> clf = TransferClassifier(backbone="small_cnn", weights=None, max_epochs=2,
    ...                          callbacks=[TensorBoardLogger(log_dir)],
    ...                          random_state=0).fit(X, y)
    >>> any(f.startswith("events.out.tfevents") for f in os.listdir(log_dir))
    True
    """

    def __init__(self, log_dir, *, keys_ignored=None):
        self.log_dir = log_dir
        super().__init__(
            writer=None,
            close_after_train=True,
            keys_ignored=keys_ignored,
            key_mapper=tensorboard_tag,
        )

    def get_params(self, deep=True):
        return {"log_dir": self.log_dir, "keys_ignored": self.keys_ignored}

    def initialize(self):
        check_tensorboard()  # fail before training when tensorboard is missing
        return super().initialize()

    def on_train_begin(self, net, **kwargs):
        import os

        self.writer = check_tensorboard()(log_dir=os.fspath(self.log_dir))

    def on_train_end(self, net, **kwargs):
        if self.writer is not None:
            self.writer.close()
        self.writer = None
