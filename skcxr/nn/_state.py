"""Torch networks as plain data, and back: the state of saved estimators.

A fitted torch-backed estimator stores its networks as dicts of numpy arrays
(their state dicts, buffers included) and its training history as lists and
dicts of numbers and strings. Loading rebuilds each network from the
estimator's own parameters, with random weights that nothing is downloaded or
read for, then loads the arrays. Pickle and :func:`skcxr.utils.save_model`
share this one path, so a model file never holds a torch object and loads on
a CPU whatever device the model was fitted on.
"""

import contextlib
import contextvars
import numbers

import numpy as np
import torch
from torch import nn

__all__ = [
    "module_to_arrays",
    "arrays_to_module",
    "frozen_parameters",
    "structure_of",
    "restore_structure",
    "history_to_data",
    "data_to_history",
    "tensors_to_data",
    "data_to_tensors",
    "rebuild_quietly",
    "drop_caches",
    "network_to_data",
    "available_device",
    "shared_arrays",
]

# attributes holding caches that are rebuilt on demand: never saved
_CACHE_PREFIXES = ("_engine", "_device_")


def drop_caches(state):
    """``state`` without the cache attributes (``_engine*``, ``_device_*``).

    Examples
    --------
    >>> from skcxr.nn._state import drop_caches
    >>> drop_caches({"module_": 1, "_device_module": 2, "_engine_session": 3})
    {'module_': 1}
    """
    return {k: v for k, v in state.items() if not k.startswith(_CACHE_PREFIXES)}


def _to_numpy(tensor):
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16) and tensor.is_floating_point():
        # bfloat16 has no numpy dtype; float32 holds both exactly, and loading
        # casts back to the parameter's own dtype
        tensor = tensor.float()
    return tensor.numpy().copy()


# while a model is saved: id(object) -> (object, its data), so that a network
# the model refers to several times (an ensemble's estimators_ and
# named_estimators_) is converted once and its arrays are stored once
_SHARED = contextvars.ContextVar("skcxr_shared_arrays", default=None)


@contextlib.contextmanager
def shared_arrays():
    """Within this context, converting the same object again returns the same arrays.

    ``skops.io`` stores an array once however often it is referenced, but
    :func:`module_to_arrays` makes new arrays at every call: inside this
    context its results are remembered (and released at the end).

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._state import module_to_arrays, shared_arrays
    >>> net = nn.Linear(2, 2)
    >>> with shared_arrays():
    ...     same = module_to_arrays(net)["weight"] is module_to_arrays(net)["weight"]
    >>> same, module_to_arrays(net)["weight"] is module_to_arrays(net)["weight"]
    (True, False)
    """
    token = _SHARED.set({}) if _SHARED.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _SHARED.reset(token)


def _shared(obj, convert):
    memo = _SHARED.get()
    if memo is None:
        return convert(obj)
    if id(obj) not in memo:
        memo[id(obj)] = (obj, convert(obj))  # obj kept alive: its id stays unique
    return memo[id(obj)][1]


def module_to_arrays(module):
    """The state dict of ``module`` (parameters and buffers) as numpy arrays.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    dict of str to ndarray
        Copies on the CPU, keyed like :meth:`torch.nn.Module.state_dict`.

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._state import module_to_arrays
    >>> arrays = module_to_arrays(nn.BatchNorm1d(3))
    >>> sorted(arrays), arrays["weight"].tolist()
    (['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight'], [1.0, 1.0, 1.0])
    """
    return _shared(
        module,
        lambda m: {name: _to_numpy(value) for name, value in m.state_dict().items()},
    )


def arrays_to_module(module, arrays, *, frozen=(), what="network"):
    """Load the arrays of :func:`module_to_arrays` into ``module``, in place.

    Parameters
    ----------
    module : torch.nn.Module
        The rebuilt network, of the same architecture.
    arrays : dict of str to ndarray
    frozen : sequence of str, default=()
        Names of the parameters that get ``requires_grad=False`` (the others
        get True), as :func:`frozen_parameters` recorded them.
    what : str, default="network"
        How the error message names the network.

    Returns
    -------
    module

    Raises
    ------
    ValueError
        When the arrays do not fit the architecture (a file written by another
        version of the network).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skcxr.nn._state import arrays_to_module, module_to_arrays
    >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    >>> _ = arrays_to_module(b, module_to_arrays(a), frozen=["bias"])
    >>> torch.equal(a.weight, b.weight), b.bias.requires_grad
    (True, False)
    """
    state = {
        name: torch.from_numpy(np.asarray(value)) for name, value in arrays.items()
    }
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"The saved weights do not fit the {what} rebuilt from the "
            f"estimator's parameters: {exc}"
        ) from None
    frozen = set(frozen)
    for name, param in module.named_parameters():
        param.requires_grad_(name not in frozen)
    return module


def frozen_parameters(module):
    """Names of the parameters of ``module`` that do not require gradients.

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._state import frozen_parameters
    >>> net = nn.Linear(2, 2)
    >>> _ = net.bias.requires_grad_(False)
    >>> frozen_parameters(net)
    ['bias']
    """
    return [name for name, p in module.named_parameters() if not p.requires_grad]


_INPLACE = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.Hardswish)


def structure_of(module):
    """What inference optimisation changed in ``module``'s structure, as data.

    Folding a batch norm into the convolution that feeds it replaces the batch
    norm by an ``nn.Identity`` and gives the convolution a bias; activations
    may compute in place. :func:`restore_structure` redoes these changes on a
    network rebuilt from its parameters, so that the saved arrays fit it.

    Returns
    -------
    dict
        ``{"identity": [names], "bias": [conv names], "inplace": [names]}``.

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._state import structure_of
    >>> structure_of(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Identity(), nn.ReLU(True)))
    {'identity': ['1'], 'bias': ['0'], 'inplace': ['2']}
    """
    out = {"identity": [], "bias": [], "inplace": []}
    for name, mod in module.named_modules():
        if isinstance(mod, nn.Identity):
            out["identity"].append(name)
        elif isinstance(mod, nn.Conv2d) and mod.bias is not None:
            out["bias"].append(name)
        elif isinstance(mod, _INPLACE) and mod.inplace:
            out["inplace"].append(name)
    return out


def restore_structure(module, structure):
    """Redo the changes :func:`structure_of` recorded on a rebuilt ``module``.

    Batch norms named in ``"identity"`` become ``nn.Identity``; convolutions
    named in ``"bias"`` get a (zero) bias if they have none; activations named
    in ``"inplace"`` compute in place. Returns ``module``.

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._state import restore_structure
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2))
    >>> net = restore_structure(net, {"identity": ["1"], "bias": ["0"], "inplace": []})
    >>> type(net[1]).__name__, net[0].bias.shape
    ('Identity', torch.Size([2]))
    """
    for name in structure.get("identity", ()):
        if isinstance(module.get_submodule(name), nn.modules.batchnorm._BatchNorm):
            module.set_submodule(name, nn.Identity())
    for name in structure.get("bias", ()):
        conv = module.get_submodule(name)
        if conv.bias is None:
            conv.bias = nn.Parameter(
                torch.zeros(conv.out_channels, dtype=conv.weight.dtype)
            )
    for name in structure.get("inplace", ()):
        module.get_submodule(name).inplace = True
    return module


def _plain(value):
    """``value`` with numpy / torch scalars and arrays as Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _plain(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def history_to_data(history):
    """A skorch ``History`` as a list of dicts of numbers and strings.

    Examples
    --------
    >>> import numpy as np
    >>> from skorch.history import History
    >>> from skcxr.nn._state import history_to_data
    >>> history = History()
    >>> history.new_epoch(); history.record("train_loss", np.float32(0.5))
    >>> history_to_data(history)
    [{'batches': [], 'train_loss': 0.5}]
    """
    return _plain(list(history))


def data_to_history(data):
    """The skorch ``History`` of the data :func:`history_to_data` made.

    Examples
    --------
    >>> from skcxr.nn._state import data_to_history
    >>> data_to_history([{"epoch": 1, "train_loss": 0.5}])[:, "train_loss"]
    [0.5]
    """
    from skorch.history import History

    return History(_plain(list(data)))


def tensors_to_data(obj):
    """The attributes of a plain object, its tensors as numpy arrays.

    Returns ``{"tensors": {name: ndarray}, "values": {name: value}}``; a
    ``torch.Generator`` attribute (a fitting aid) is not kept.

    Examples
    --------
    >>> import torch
    >>> from types import SimpleNamespace
    >>> from skcxr.nn._state import tensors_to_data
    >>> tensors_to_data(SimpleNamespace(mean_=torch.ones(2), grid_=(3, 3)))
    {'tensors': {'mean_': array([1., 1.], dtype=float32)}, 'values': {'grid_': (3, 3)}}
    """
    return _shared(obj, _tensors_to_data)


def _tensors_to_data(obj):
    data = {"tensors": {}, "values": {}}
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor):
            data["tensors"][name] = _to_numpy(value)
        elif isinstance(value, torch.Generator):
            data["values"][name] = None
        else:
            data["values"][name] = value
    return data


def data_to_tensors(cls, data):
    """An instance of ``cls`` with the attributes :func:`tensors_to_data` recorded.

    ``cls.__init__`` is not called.

    Examples
    --------
    >>> import torch
    >>> from types import SimpleNamespace
    >>> from skcxr.nn._state import data_to_tensors, tensors_to_data
    >>> obj = data_to_tensors(SimpleNamespace, tensors_to_data(
    ...     SimpleNamespace(mean_=torch.ones(2), grid_=(3, 3))))
    >>> obj.mean_, obj.grid_
    (tensor([1., 1.]), (3, 3))
    """
    obj = cls.__new__(cls)
    for name, value in data["values"].items():
        setattr(obj, name, value)
    for name, value in data["tensors"].items():
        setattr(obj, name, torch.from_numpy(np.array(value)))
    return obj


def rebuild_quietly(build):
    """``build()`` under a forked, fixed torch random state.

    Building a network draws its random initial weights from torch's global
    generator; they are overwritten by the saved ones, and the caller's
    random state is left as it was.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from skcxr.nn._state import rebuild_quietly
    >>> before = torch.random.get_rng_state()
    >>> net = rebuild_quietly(lambda: nn.Linear(3, 2))
    >>> torch.equal(before, torch.random.get_rng_state())
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def available_device(device):
    """``device`` resolved (``"auto"``), or ``"cpu"`` when this machine lacks it.

    A model fitted on a GPU loads on a machine without one.

    Examples
    --------
    >>> from skcxr.nn._state import available_device
    >>> available_device("cpu")
    'cpu'
    """
    from ._torch_utils import resolve_device

    device = resolve_device(device)
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return "cpu"
    if device == "mps" and not torch.backends.mps.is_available():
        return "cpu"
    return device


def network_to_data(state):
    """A fitted estimator's ``__getstate__`` dict with its network
    (``module_``: arrays and frozen parameter names) and training history
    (``history_``) as data, its caches dropped; the rest is left as it is.

    Examples
    --------
    >>> from torch import nn
    >>> from skcxr.nn._state import network_to_data
    >>> state = network_to_data({"module_": nn.Linear(2, 1), "lr": 0.1})
    >>> sorted(state["module_"]), state["lr"]
    (['arrays', 'frozen'], 0.1)
    """
    state = drop_caches(state)
    module = state.pop("module_", None)
    if module is not None:
        state["module_"] = {
            "arrays": module_to_arrays(module),
            "frozen": frozen_parameters(module),
        }
    history = state.pop("history_", None)
    if history is not None:
        state["history_"] = history_to_data(history)
    return state
