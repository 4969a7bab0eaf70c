"""Mixed-precision training of the skorch nets: ``torch.autocast`` and, for
float16, loss scaling (Micikevicius et al. 2018)."""

import contextlib

import torch
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator

__all__ = ["TRAIN_PRECISIONS", "MixedPrecision"]

#: ``train_precision`` values: full precision, bfloat16 or float16 autocast.
TRAIN_PRECISIONS = ("32", "bf16-mixed", "16-mixed")


class MixedPrecision:
    """skorch net mixin: the forward passes of training run under
    ``torch.autocast``.

    ``train_precision="32"`` trains in float32 (skorch's own steps).
    ``"bf16-mixed"`` and ``"16-mixed"`` run the module's forward pass of each
    training and validation batch under ``torch.autocast`` in bfloat16 or
    float16: convolutions and matrix products in 16 bits, while the weights,
    the optimizer and the loss (computed from float32 logits) stay in float32,
    the mixed-precision recipe of Micikevicius et al. (2018). With float16
    the loss is scaled before the backward pass and the gradients unscaled
    before the optimizer step (``torch.amp.GradScaler``), so that small
    gradients do not underflow; bfloat16 has float32's exponent range and
    needs no scaling. Callbacks that read gradients (``on_grad_computed``,
    e.g. gradient clipping) see unscaled gradients. Predictions after
    ``fit`` run in float32.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skorch import NeuralNetClassifier
    >>> from skcxr.nn._precision import MixedPrecision
    >>> class Net(MixedPrecision, NeuralNetClassifier):
    ...     pass
    >>> X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = Net(torch.nn.Linear(4, 2), criterion=torch.nn.CrossEntropyLoss,
    ...           train_precision="bf16-mixed", max_epochs=2, verbose=0).fit(X, y)
    >>> net.predict_proba(X).dtype
    dtype('float32')
    """

    def __init__(self, *args, train_precision="32", **kwargs):
        super().__init__(*args, **kwargs)
        self.train_precision = train_precision

    def initialize(self):
        super().initialize()
        self.grad_scaler_ = None
        if self.train_precision == "16-mixed":
            self.grad_scaler_ = torch.amp.GradScaler(self._device_type())
        return self

    def _device_type(self):
        return torch.device(self.device or "cpu").type

    def autocast(self):
        """The autocast context of ``train_precision`` (none for "32")."""
        if self.train_precision not in TRAIN_PRECISIONS:
            raise ValueError(
                f"train_precision must be one of {TRAIN_PRECISIONS}; got "
                f"{self.train_precision!r}."
            )
        if self.train_precision == "32":
            return contextlib.nullcontext()
        dtype = (
            torch.bfloat16 if self.train_precision == "bf16-mixed" else torch.float16
        )
        return torch.autocast(device_type=self._device_type(), dtype=dtype)

    def _infer_mixed(self, Xi, **fit_params):
        with self.autocast():
            y_pred = self.infer(Xi, **fit_params)
        if isinstance(y_pred, tuple):
            return tuple(p.float() if torch.is_tensor(p) else p for p in y_pred)
        return y_pred.float()

    def train_step_single(self, batch, **fit_params):
        if self.train_precision == "32":
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self._infer_mixed(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler = getattr(self, "grad_scaler_", None)
        (loss if scaler is None else scaler.scale(loss)).backward()
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        if self.train_precision == "32":
            return super().validation_step(batch, **fit_params)
        self._set_training(False)
        Xi, yi = unpack_data(batch)
        with torch.no_grad():
            y_pred = self._infer_mixed(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super().train_step(batch, **fit_params)
        # GradScaler takes no optimizer closure: one plain step
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        optimizers = [getattr(self, name + "_") for name in self._optimizers]
        for optimizer in optimizers:
            scaler.unscale_(optimizer)
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        for optimizer in optimizers:
            scaler.step(optimizer)  # skipped when a gradient is inf / NaN
        scaler.update()
        return step
