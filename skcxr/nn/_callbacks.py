"""skorch callbacks that every skcxr network trains with."""

import math
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback

__all__ = ["DivergenceGuard"]

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
