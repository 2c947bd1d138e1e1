"""Optimizer classes for the layer API.

``optimizer.step(model.parameters())`` updates every ``(name, value,
gradient)`` triple in place with the same C++ kernels as the functional
``gradient_descent_*`` API (``sgd_update``, ``momentum_update``,
``rmsprop_update``, ``adam_update``). The per-parameter state (momentum
``v``, second moment ``s``) is kept by parameter name and created as zeros on
first use; Adam's step count ``t`` is ``iterations``, the number of
``step`` calls. ``weight_decay`` adds ``weight_decay * w`` to every gradient
(biases and batch-norm parameters included).

``state_dict()`` / ``load_state_dict()`` save and restore the whole state
(a dict of plain values and NumPy arrays); :meth:`natverk.models.Sequential.save`
stores it in the model file.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np

from .. import _core

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "get_optimizer", "OPTIMIZER_CLASSES"]


def _rate(value: Any, name: str, lo: float, hi: float, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < lo or v > hi or (hi_open and v == hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {value!r}")
    return v


class Optimizer:
    """Base class. Subclasses set ``slots`` (the state arrays per parameter) and ``_update``."""

    slots: ClassVar[tuple[str, ...]] = ()

    def __init__(self, learning_rate: float, weight_decay: float = 0.0):
        self.learning_rate = _rate(learning_rate, "learning_rate", 0.0, np.inf, hi_open=True)
        self.weight_decay = _rate(weight_decay, "weight_decay", 0.0, np.inf, hi_open=True)
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay}

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

    def _update(self, w: np.ndarray, g: np.ndarray, slots: list[np.ndarray]) -> None:
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
        for name, w, g in params:
            g = np.ascontiguousarray(g, dtype=w.dtype)
            try:
                self._update(w, g, self._slots_for(name, w))
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


class SGD(Optimizer):
    """Plain gradient descent: w -= lr (g + weight_decay w)."""

    def __init__(self, learning_rate: float = 0.01, weight_decay: float = 0.0):
        super().__init__(learning_rate, weight_decay)

    def _update(self, w, g, slots):
        _core.sgd_update(w, g, self.learning_rate, self.weight_decay)


class Momentum(Optimizer):
    """Momentum as in the thesis: v = beta v + (1 - beta) g; w -= lr v."""

    slots = ("v",)

    def __init__(self, learning_rate: float = 0.01, beta: float = 0.9, weight_decay: float = 0.0):
        super().__init__(learning_rate, weight_decay)
        self.beta = _rate(beta, "beta", 0.0, 1.0, hi_open=True)

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate, "beta": self.beta, "weight_decay": self.weight_decay}

    def _update(self, w, g, slots):
        _core.momentum_update(w, slots[0], g, self.learning_rate, self.beta, self.weight_decay)


class RMSprop(Optimizer):
    """s = beta2 s + (1 - beta2) g^2; w -= lr g / (sqrt(s) + eps)."""

    slots = ("s",)

    def __init__(self, learning_rate: float = 0.001, beta2: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(learning_rate, weight_decay)
        self.beta2 = _rate(beta2, "beta2", 0.0, 1.0, hi_open=True)
        self.eps = _rate(eps, "eps", 0.0, np.inf, hi_open=True)

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate, "beta2": self.beta2, "eps": self.eps, "weight_decay": self.weight_decay}

    def _update(self, w, g, slots):
        _core.rmsprop_update(w, slots[0], g, self.learning_rate, self.beta2, self.eps, self.weight_decay)


class Adam(Optimizer):
    """Adam with bias correction; step t = ``iterations`` (1, 2, ...)."""

    slots = ("v", "s")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(learning_rate, weight_decay)
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
        }

    def _update(self, w, g, slots):
        _core.adam_update(
            w, slots[0], slots[1], g, self.learning_rate, self.beta1, self.beta2, self.iterations, self.eps, self.weight_decay
        )


OPTIMIZER_CLASSES: dict[str, type[Optimizer]] = {c.__name__: c for c in (SGD, Momentum, RMSprop, Adam)}
_NAMES = {"sgd": SGD, "vanilla": SGD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}


def get_optimizer(name_or_obj: Any) -> Optimizer:
    """An optimizer from a name (``"sgd"``, ``"momentum"``, ``"rmsprop"``, ``"adam"``;
    default hyper-parameters) or an :class:`Optimizer` (returned as is)."""
    if isinstance(name_or_obj, Optimizer):
        return name_or_obj
    if isinstance(name_or_obj, str) and name_or_obj.lower() in _NAMES:
        return _NAMES[name_or_obj.lower()]()
    raise ValueError(f"optimizer must be an Optimizer or one of {sorted(_NAMES)}, got {name_or_obj!r}")
