"""PyTorch weights in and out of a natverk :class:`~natverk.models.Sequential`.

The thesis' transfer learning (appendix B.1: VGG16 initialised from pretrained weights) starts
from a PyTorch ``state_dict``. :func:`from_torch` copies one into a natverk network of the same
architecture and :func:`to_torch_state_dict` goes the other way. PyTorch itself is not needed:
a ``.pt``/``.pth`` file is read by :func:`natverk.interop.read_pth`, which never runs the
pickle inside it.

How a state dict maps onto a natverk model
------------------------------------------
PyTorch names parameters by module path (``features.0.weight``); natverk by layer index
(``0.W``). Rather than guess one from the other, the two are matched **in order**: the state
dict's modules (its keys grouped by the part before the last dot, in the order the file lists
them, which is the order the modules were registered) against the natverk model's layers that
hold parameters (:class:`~natverk.layers.Dense`, :class:`~natverk.layers.Conv2D`,
:class:`~natverk.layers.BatchNorm1D`/``2D``, nested containers included), and every pair must
agree in kind and shape. Layouts:

==================  =====================================  ====================================
PyTorch             natverk                                conversion
==================  =====================================  ====================================
Linear.weight       Dense.W (in_features x out_features)   transposed ((out, in) in PyTorch)
Linear.bias         Dense.b                                as is
Conv2d.weight       Conv2D.W (out, in / groups, kH, kW)    as is
Conv2d.bias         Conv2D.b                               as is
BatchNorm.weight    gamma                                  as is
BatchNorm.bias      beta                                   as is
running_mean/var    running_mean / running_var             as is
num_batches_tracked (not kept: natverk always uses         ignored on import; exported as 0
                    ``momentum``)
==================  =====================================  ====================================

Both libraries flatten NCHW activations in C order, so a ``Linear`` after ``Flatten`` maps
with a plain transpose. Layers without parameters (ReLU, pooling, Flatten, Dropout) are not in
a state dict and need no matching, but the natverk model must apply the same ones in the same
places for the outputs to agree (``BatchNorm``'s ``eps`` and ``momentum`` are constructor
arguments on both sides, 1e-5 and 0.1 by default, and are not in a state dict either).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._validation import as_float_dtype

from ..layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Layer
from ._pth import read_pth

__all__ = ["from_torch", "load_torch_state_dict", "to_torch_state_dict"]

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``state_dict`` in a ``.pt``/``.pth`` file, as ``{name: read-only ndarray}``.

    Read without PyTorch and without unpickling (:func:`natverk.interop.read_pth`): a file that
    asks for anything but tensors and containers raises
    :class:`~natverk.interop.UnsafeCheckpointError` and nothing in it runs. The file must hold a
    state dict (a mapping of names to tensors); a training checkpoint that nests one (``{"model":
    ..., "optimizer": ..., "epoch": ...}``) raises a ``ValueError`` that lists its keys: pick the
    state dict with :func:`natverk.interop.read_pth` (``read_pth(path)["model"]``).
    """
    obj = read_pth(path)
    return _as_state_dict(obj, f"the file {os.fspath(path)!r}")


def _as_state_dict(obj: Any, what: str) -> dict[str, np.ndarray]:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{what} holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors)")
    out: dict[str, np.ndarray] = {}
    nested = [k for k, v in obj.items() if isinstance(v, Mapping)]
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ValueError(f"{what}: key {key!r:.100} is not a string")
        if isinstance(value, Mapping):
            raise ValueError(
                f"{what} is not a state_dict: entry {key!r} is itself a mapping (keys {sorted(map(str, obj))[:10]}); "
                f"pass the state dict inside it, e.g. natverk.interop.read_pth(path)[{nested[0]!r}]"
            )
        out[key] = _as_array(value, f"{what}[{key!r}]")
    return out


def _as_array(value: Any, what: str) -> np.ndarray:
    """A NumPy array of a tensor-like value: an ndarray (from a file), or a torch.Tensor when the
    caller passes an in-memory state dict (duck-typed, so this module never imports torch)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()  # NumPy has no bfloat16; widening is exact
        return np.asarray(t.numpy())
    raise ValueError(f"{what} is a {type(value).__name__}, not a tensor or array")


def _leaves(layer: Layer, path: str = ""):
    kids = layer.children()
    if not kids:
        yield path.rstrip("."), layer
    for prefix, child in kids:
        yield from _leaves(child, path + prefix)


def _mapped_layers(model: Layer) -> list[tuple[str, Layer]]:
    """(index path, layer) of every layer with parameters, in order; a kind with no PyTorch
    counterpart known here is an error rather than silently left at its initial weights."""
    out = []
    for path, layer in _leaves(model):
        if isinstance(layer, (Dense, Conv2D, BatchNorm1D, BatchNorm2D)):
            out.append((path, layer))
        elif layer.parameters():
            raise ValueError(f"model layer {path} ({layer.name}) has parameters but no known PyTorch counterpart")
    return out


def _modules(state: dict[str, np.ndarray]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The state dict's keys grouped by module (the part before the last dot), in file order."""
    groups: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        groups.setdefault(module, {})[leaf] = value
    return list(groups.items())


def _describe(module: str, entries: dict[str, np.ndarray]) -> str:
    return f"'{module}' ({', '.join(f'{k} {tuple(v.shape)}' for k, v in entries.items())})"


def _torch_kind(entries: dict[str, np.ndarray]) -> str:
    keys = set(entries)
    if {"running_mean", "running_var"} <= keys:
        return "batchnorm"
    if "weight" in keys and keys <= {"weight", "bias"}:
        return {2: "linear", 4: "conv2d"}.get(entries["weight"].ndim, f"{entries['weight'].ndim}-D weight")
    return "unknown"


_KIND = {Dense: "linear", Conv2D: "conv2d", BatchNorm1D: "batchnorm", BatchNorm2D: "batchnorm"}
_TORCH_NAME = {"linear": "Linear", "conv2d": "Conv2d", "batchnorm": "BatchNorm"}


def _float(value: np.ndarray, what: str) -> np.ndarray:
    if value.dtype.kind != "f":
        raise ValueError(f"{what} has dtype {value.dtype}; weights must be floating point")
    if not np.isfinite(value).all():
        raise ValueError(f"{what} contains NaN or Inf")
    return value


def _expect(value: np.ndarray, shape: tuple, what: str, layer_what: str) -> np.ndarray:
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(value.shape)}, but {layer_what} needs {tuple(shape)}")
    return value


def _plan(path: str, layer: Layer, module: str, entries: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """The (attribute, value) assignments that load ``entries`` into ``layer``, all checked."""
    kind, torch_kind = _KIND[type(layer)], _torch_kind(entries)
    here = f"model layer {path} ({layer.name})"
    if kind in ("linear", "conv2d") and getattr(layer, "W", None) is None:
        raise ValueError(f"{here} has no weights yet (its input size is found on the first call): run the model "
                         f"once on an input of the right shape before loading weights into it")
    if kind != torch_kind:
        raise ValueError(f"state_dict module {_describe(module, entries)} is a {torch_kind} module, but the matching "
                         f"{here} is a {kind} layer: the two networks' layers with parameters differ")

    def key(leaf: str) -> str:
        return f"{module}.{leaf}" if module else leaf

    if kind in ("linear", "conv2d"):
        has_bias = "bias" in entries
        if has_bias != (layer.b is not None):
            fix = "bias=True" if has_bias else "bias=False"
            raise ValueError(f"state_dict module '{module}' {'has' if has_bias else 'has no'} bias, but {here} "
                             f"{'has none' if has_bias else 'has one'}: build it with {fix}")
        W = _float(entries["weight"], f"state_dict[{key('weight')!r}]")
        if kind == "linear":
            # PyTorch's Linear weight is (out, in); natverk's Dense W is (in, out), as the MATLAB code
            W = _expect(W, (layer.out_features, layer.in_features), f"state_dict[{key('weight')!r}]", here).T
        else:
            W = _expect(W, layer.W.shape, f"state_dict[{key('weight')!r}]", here)
        plan = [("W", W)]
        if has_bias:
            plan.append(("b", _expect(_float(entries["bias"], f"state_dict[{key('bias')!r}]"), layer.b.shape,
                                      f"state_dict[{key('bias')!r}]", here)))
        return plan
    missing = [k for k in _BN_KEYS if k not in entries]
    if missing:
        raise ValueError(f"state_dict module '{module}' lacks {missing}: natverk's batch norm is affine "
                         f"(PyTorch's affine=True) and tracks running statistics")
    extra = set(entries) - set(_BN_KEYS) - {"num_batches_tracked"}
    if extra:
        raise ValueError(f"state_dict module '{module}' has unexpected entries {sorted(extra)}")
    if "num_batches_tracked" in entries and entries["num_batches_tracked"].dtype.kind not in "iu":
        raise ValueError(f"state_dict[{key('num_batches_tracked')!r}] must be an integer count")
    plan = []
    for leaf, attr in zip(_BN_KEYS, ("gamma", "beta", "running_mean", "running_var")):
        what = f"state_dict[{key(leaf)!r}]"
        plan.append((attr, _expect(_float(entries[leaf], what), (layer.num_features,), what, here)))
    if (plan[3][1] < 0).any():
        raise ValueError(f"state_dict[{key('running_var')!r}] holds negative variances")
    return plan


def from_torch(state_dict_or_path: Any, model: Layer, dtype: Any = None) -> Layer:
    """Load a PyTorch ``state_dict`` into ``model``, a natverk network of the same architecture.

    Parameters
    ----------
    state_dict_or_path : str, os.PathLike or mapping
        A ``.pt``/``.pth`` file written by ``torch.save(module.state_dict(), path)`` (read
        without PyTorch, never unpickled: see :func:`load_torch_state_dict`), or the state dict
        itself: a mapping of names to ``torch.Tensor`` or NumPy arrays.
    model : natverk.models.Sequential (or any natverk Layer)
        Receives the weights in place. Its layers with parameters are matched with the state
        dict's modules in order (see the module notes): ``Linear`` to :class:`Dense`
        (transposed), ``Conv2d`` to :class:`Conv2D`, ``BatchNorm1d/2d`` to
        :class:`BatchNorm1D`/``2D``, with the same shapes and the same bias choice.
    dtype : {None, "float32", "float64"}
        The dtype the model computes in afterwards (see the layers' dtype policy). None: the
        state dict's (float32 for PyTorch's default float32, float16 and bfloat16 weights; float64
        for float64 ones).

    Returns
    -------
    model, with its weights replaced. Nothing is changed unless every entry matched: a wrong
    architecture raises ``ValueError`` naming the state-dict key and the model layer.
    """
    from ..layers import Layer as _Layer

    if not isinstance(model, _Layer):
        raise TypeError(f"model must be a natverk model or layer (e.g. natverk.Sequential), got {type(model).__name__}")
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        state = load_torch_state_dict(state_dict_or_path)
    elif isinstance(state_dict_or_path, Mapping):
        state = _as_state_dict(state_dict_or_path, "state_dict_or_path")
    else:
        raise TypeError(f"state_dict_or_path must be a path to a .pt/.pth file or a state_dict mapping, got "
                        f"{type(state_dict_or_path).__name__}")
    layers = _mapped_layers(model)
    modules = _modules(state)
    if len(layers) != len(modules):
        raise ValueError(
            f"the state_dict has {len(modules)} modules with weights ({', '.join(repr(m) for m, _ in modules[:12])}"
            f"{', ...' if len(modules) > 12 else ''}) but the model has {len(layers)} layers with parameters "
            f"({', '.join(f'{p}: {layer.name}' for p, layer in layers[:12])}{', ...' if len(layers) > 12 else ''})"
        )
    plans = [(layer, _plan(path, layer, module, entries)) for (path, layer), (module, entries) in zip(layers, modules)]
    if dtype is None:
        widest = max((v.dtype.itemsize for _, plan in plans for _, v in plan), default=4)
        dtype = np.float64 if widest >= 8 else np.float32
    dtype = as_float_dtype(dtype)
    # Every entry checked: only now is the model changed (all or nothing).
    for layer, plan in plans:
        layer.astype(dtype)
        for attr, value in plan:
            setattr(layer, attr, np.array(value, dtype=dtype, order="C"))
    if hasattr(model, "weights_ready"):
        model.weights_ready = True  # loaded weights are meant to be used: predict needs no fit first
    return model


def to_torch_state_dict(model: Layer, tensors: bool = False) -> OrderedDict:
    """``model``'s weights as a PyTorch ``state_dict`` (the inverse of :func:`from_torch`).

    Keys are ``<natverk layer index>.<torch name>`` (``"0.weight"``, ``"1.running_mean"``,
    ``"7.bias"``): those of an ``nn.Sequential`` whose modules sit at the same indices, the
    usual case when the natverk model was written layer for layer (``nn.Flatten`` and
    ``nn.ReLU`` take an index in both). Values are NumPy arrays in the layers' dtype, in
    PyTorch's layouts (Dense weights transposed to (out, in)); batch norms get
    ``num_batches_tracked`` = 0, since natverk does not count batches (PyTorch reads it only
    with ``momentum=None``). With ``tensors=True`` (needs PyTorch) they are ``torch.Tensor``,
    ready for ``module.load_state_dict``; otherwise ``{k: torch.from_numpy(v) for k, v in
    sd.items()}`` does the same.
    """
    from ..layers import Layer as _Layer

    if not isinstance(model, _Layer):
        raise TypeError(f"model must be a natverk model or layer (e.g. natverk.Sequential), got {type(model).__name__}")
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for path, layer in _mapped_layers(model):
        prefix = f"{path}." if path else ""
        if isinstance(layer, (Dense, Conv2D)):
            out[prefix + "weight"] = np.ascontiguousarray(layer.W.T if isinstance(layer, Dense) else layer.W)
            if layer.b is not None:
                out[prefix + "bias"] = layer.b.copy()
        else:
            for leaf, attr in zip(_BN_KEYS, ("gamma", "beta", "running_mean", "running_var")):
                out[prefix + leaf] = getattr(layer, attr).copy()
            out[prefix + "num_batches_tracked"] = np.array(0, dtype=np.int64)
    if tensors:
        try:
            import torch
        except ImportError as err:
            raise ImportError("to_torch_state_dict(model, tensors=True) needs PyTorch; without it, keep "
                              "tensors=False (NumPy arrays)") from err
        return OrderedDict((k, torch.from_numpy(v)) for k, v in out.items())
    return out
