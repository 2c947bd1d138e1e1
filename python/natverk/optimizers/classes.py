"""Optimizer classes for the layer API.

``optimizer.step(model.parameters())`` updates every ``(name, value,
gradient)`` triple in place with the same C++ kernels as the functional
``gradient_descent_*`` API (``sgd_update``, ``momentum_update``,
``rmsprop_update``, ``adam_update``). The per-parameter state (momentum
``v``, second moment ``s``) is kept by parameter name and created as zeros on
first use; Adam's step count ``t`` is ``iterations``, the number of
``step`` calls.

``weight_decay`` is the thesis' L2 (eq. 9): it adds ``weight_decay * w`` to
the gradient of every parameter whose ``decay`` flag is set -- dense and
convolution weights, never biases or batch-norm gamma/beta (``decay="all"``
decays every parameter, as PyTorch's ``weight_decay`` does). Names, slots,
defaults and aliases come from the one table, :mod:`natverk.optimizers.table`.

``state_dict()`` / ``load_state_dict()`` save and restore the whole state
(a dict of plain values and NumPy arrays); :meth:`natverk.models.Sequential.save`
stores it in the model file.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np

from .. import _core
from .table import DECAY_MODES, OPTIMIZERS, OptimizerSpec, resolve

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "get_optimizer", "OPTIMIZER_CLASSES"]


def _rate(value: Any, name: str, lo: float, hi: float, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < lo or v > hi or (hi_open and v == hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {value!r}")
    return v


def decays(param, mode: str) -> bool:
    """Whether weight decay applies to ``param``, a ``(name, value, gradient)`` triple.

    Layers mark their weights (``param.decay``, see :class:`natverk.layers.Param`);
    a plain tuple from user code counts as a weight when its value has two or
    more dimensions (a matrix or a kernel), never a vector (a bias, gamma, beta)."""
    if mode == "all":
        return True
    flag = getattr(param, "decay", None)
    return bool(flag) if flag is not None else np.ndim(param[1]) >= 2


class Optimizer:
    """Base class. Each subclass is one row of :data:`natverk.optimizers.table.OPTIMIZERS`
    (``spec``), which gives its state ``slots``; subclasses implement ``_update``."""

    spec: ClassVar[OptimizerSpec]
    slots: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.slots = cls.spec.slots

    def __init__(self, learning_rate: float, weight_decay: float = 0.0, decay: str = "weights"):
        self.learning_rate = _rate(learning_rate, "learning_rate", 0.0, np.inf, hi_open=True)
        self.weight_decay = _rate(weight_decay, "weight_decay", 0.0, np.inf, hi_open=True)
        if decay not in DECAY_MODES:
            raise ValueError(f"decay must be one of {DECAY_MODES}, got {decay!r}")
        self.decay = decay
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def penalty(self, parameters) -> float:
        """The L2 penalty ``weight_decay / 2 * sum ||w||^2`` over the decayed parameters
        (thesis eq. 9; its gradient is what :meth:`step` adds). 0 without weight decay."""
        if self.weight_decay == 0.0:
            return 0.0
        # A plain left-to-right loop, as the C++ step plan adds them: the builtin sum()
        # of Python >= 3.12 is compensated and could differ in the last bit.
        psi = 0.0
        for p in parameters:
            if decays(p, self.decay):
                psi += _core.sum_of_squares(np.ascontiguousarray(p[1]))
        return 0.5 * self.weight_decay * psi

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay, "decay": self.decay}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"

    def _slots_for(self, name: str, w: np.ndarray) -> list[np.ndarray]:
        st = self.state.get(name)
        if st is None:
            st = self.state[name] = {k: np.zeros_like(w) for k in self.slots}
        out = []
        for k in self.slots:
            a = st[k]
            if a.shape != w.shape:
                raise ValueError(f"optimizer state {name}.{k} has shape {a.shape} but the parameter has {w.shape}")
            if a.dtype != w.dtype:  # the model changed dtype (astype): follow it
                a = st[k] = np.ascontiguousarray(a, dtype=w.dtype)
            out.append(a)
        return out

    def _update(self, w: np.ndarray, g: np.ndarray, slots: list[np.ndarray], weight_decay: float) -> None:
        raise NotImplementedError

    def step(self, parameters) -> None:
        """One update of every ``(name, value, gradient)`` triple, in place."""
        params = list(parameters)
        seen = set()
        for triple in params:
            if not (isinstance(triple, tuple) and len(triple) == 3):
                raise TypeError("step() takes (name, value, gradient) triples, e.g. model.parameters()")
            name, w, g = triple
            if name in seen:
                raise ValueError(f"parameter name {name!r} appears twice")
            seen.add(name)
            if g is None:
                raise ValueError(f"parameter {name!r} has no gradient: run forward and backward before step()")
            if not isinstance(w, np.ndarray) or not isinstance(g, np.ndarray):
                raise TypeError(f"parameter {name!r}: value and gradient must be NumPy arrays")
            if g.shape != w.shape:
                raise ValueError(f"parameter {name!r} has shape {w.shape} but its gradient {g.shape}")
        self.iterations += 1
        for p in params:
            name, w, g = p
            g = np.ascontiguousarray(g, dtype=w.dtype)
            wd = self.weight_decay if decays(p, self.decay) else 0.0
            try:
                self._update(w, g, self._slots_for(name, w), wd)
            except (TypeError, ValueError) as err:
                raise type(err)(f"parameter {name!r}: {err}") from None

    # -- saving --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"class", "config", "iterations", "state": {param: {slot: array}}}`` (arrays copied)."""
        return {
            "class": type(self).__name__,
            "config": self.config(),
            "iterations": self.iterations,
            "state": {n: {k: a.copy() for k, a in st.items()} for n, st in self.state.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (the config too). ValueError if it does not fit."""
        if not isinstance(state, dict) or not {"iterations", "state"} <= set(state):
            raise ValueError("optimizer state must be a dict with 'iterations' and 'state'")
        if state.get("class", type(self).__name__) != type(self).__name__:
            raise ValueError(f"optimizer state is for {state['class']}, not {type(self).__name__}")
        it = state["iterations"]
        if isinstance(it, bool) or not isinstance(it, numbers.Integral) or it < 0:
            raise ValueError(f"optimizer iterations must be a non-negative integer, got {it!r}")
        new_state: dict[str, dict[str, np.ndarray]] = {}
        if not isinstance(state["state"], dict):
            raise ValueError("optimizer 'state' must be a dict of per-parameter dicts")
        for name, st in state["state"].items():
            if not isinstance(st, dict) or set(st) != set(self.slots):
                raise ValueError(
                    f"optimizer state for {name!r} must hold {sorted(self.slots)}, got "
                    f"{sorted(st) if isinstance(st, dict) else type(st).__name__}"
                )
            arrays = {}
            for k, a in st.items():
                if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
                    raise ValueError(f"optimizer state {name}.{k} must be a float32/float64 array")
                if not np.isfinite(a).all():
                    raise ValueError(f"optimizer state {name}.{k} contains NaN or Inf")
                arrays[k] = np.array(a, order="C", copy=True)
            if len({a.shape for a in arrays.values()}) > 1:
                raise ValueError(f"optimizer state arrays of {name!r} differ in shape")
            new_state[name] = arrays
        if "config" in state:
            fresh = type(self)(**state["config"])  # validates the values
            self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k not in ("state", "iterations")})
        self.iterations = int(it)
        self.state = new_state


_D = {name: spec.defaults for name, spec in OPTIMIZERS.items()}


class SGD(Optimizer):
    """Plain gradient descent: w -= lr (g + weight_decay w)."""

    spec = OPTIMIZERS["sgd"]

    def __init__(self, learning_rate: float = _D["sgd"]["learning_rate"], weight_decay: float = 0.0,
                 decay: str = "weights"):
        super().__init__(learning_rate, weight_decay, decay)

    def _update(self, w, g, slots, weight_decay):
        _core.sgd_update(w, g, self.learning_rate, weight_decay)


class Momentum(Optimizer):
    """Momentum as in the thesis: v = beta v + (1 - beta) g; w -= lr v."""

    spec = OPTIMIZERS["momentum"]

    def __init__(self, learning_rate: float = _D["momentum"]["learning_rate"], beta: float = _D["momentum"]["beta"],
                 weight_decay: float = 0.0, decay: str = "weights"):
        super().__init__(learning_rate, weight_decay, decay)
        self.beta = _rate(beta, "beta", 0.0, 1.0, hi_open=True)

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate, "beta": self.beta, "weight_decay": self.weight_decay,
                "decay": self.decay}

    def _update(self, w, g, slots, weight_decay):
        _core.momentum_update(w, slots[0], g, self.learning_rate, self.beta, weight_decay)


class RMSprop(Optimizer):
    """s = beta2 s + (1 - beta2) g^2; w -= lr g / (sqrt(s) + eps)."""

    spec = OPTIMIZERS["rmsprop"]

    def __init__(self, learning_rate: float = _D["rmsprop"]["learning_rate"], beta2: float = _D["rmsprop"]["beta2"],
                 eps: float = _D["rmsprop"]["eps"], weight_decay: float = 0.0, decay: str = "weights"):
        super().__init__(learning_rate, weight_decay, decay)
        self.beta2 = _rate(beta2, "beta2", 0.0, 1.0, hi_open=True)
        self.eps = _rate(eps, "eps", 0.0, np.inf, hi_open=True)

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay, "decay": self.decay}

    def _update(self, w, g, slots, weight_decay):
        _core.rmsprop_update(w, slots[0], g, self.learning_rate, self.beta2, self.eps, weight_decay)


class Adam(Optimizer):
    """Adam with bias correction; step t = ``iterations`` (1, 2, ...)."""

    spec = OPTIMIZERS["adam"]

    def __init__(
        self,
        learning_rate: float = _D["adam"]["learning_rate"],
        beta1: float = _D["adam"]["beta1"],
        beta2: float = _D["adam"]["beta2"],
        eps: float = _D["adam"]["eps"],
        weight_decay: float = 0.0,
        decay: str = "weights",
    ):
        super().__init__(learning_rate, weight_decay, decay)
        self.beta1 = _rate(beta1, "beta1", 0.0, 1.0, hi_open=True)
        self.beta2 = _rate(beta2, "beta2", 0.0, 1.0, hi_open=True)
        self.eps = _rate(eps, "eps", 0.0, np.inf, hi_open=True)

    def config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "decay": self.decay,
        }

    def _update(self, w, g, slots, weight_decay):
        _core.adam_update(
            w, slots[0], slots[1], g, self.learning_rate, self.beta1, self.beta2, self.iterations, self.eps, weight_decay
        )


OPTIMIZER_CLASSES: dict[str, type[Optimizer]] = {c.__name__: c for c in (SGD, Momentum, RMSprop, Adam)}
# the table's canonical name -> class (every row has exactly one class)
_BY_NAME: dict[str, type[Optimizer]] = {c.spec.name: c for c in OPTIMIZER_CLASSES.values()}
assert set(_BY_NAME) == set(OPTIMIZERS), "every row of the optimizer table needs its class"


def get_optimizer(name_or_obj: Any) -> Optimizer:
    """An optimizer from a name (any spelling :func:`natverk.optimizers.table.resolve`
    accepts: ``"sgd"``/``"vanilla"``, ``"momentum"``, ``"rmsprop"``, ``"adam"``, or the
    class name; default hyper-parameters) or an :class:`Optimizer` (returned as is)."""
    if isinstance(name_or_obj, Optimizer):
        return name_or_obj
    try:
        return _BY_NAME[resolve(name_or_obj).name]()
    except ValueError:
        raise ValueError(
            f"optimizer must be an Optimizer or one of {sorted(set(a for s in OPTIMIZERS.values() for a in s.accepted))}, "
            f"got {name_or_obj!r}"
        ) from None
