"""Fully connected layer on the C++ ``dense_forward`` / ``dense_backward`` kernels."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._base import (
    UNSET,
    ParameterLayer,
    as_int,
    as_layer_activation,
    as_seed,
    kaiming_normal,
    register,
)


@register
class Dense(ParameterLayer):
    """``z = x @ W + b`` for inputs of shape (N, in_features), optionally followed by an activation.

    ``W`` is (in_features x out_features), as in the MATLAB code, initialised
    Kaiming-normal (std sqrt(2 / in_features)) from ``seed``; ``b`` is
    (out_features,) zeros, or None with ``bias=False``. Gradients: ``dW``, ``db``.

    Two ways to build one:

    * ``Dense(in_features, out_features)``: both sizes given, the weights exist at once;
    * ``Dense(units)`` or ``Dense(units=...)`` (Keras' shorthand): ``in_features`` is
      read from the first input, and the weights are made then -- the same weights
      ``Dense(in_features, units, seed=seed)`` would have had.

    ``activation`` ("relu", "sigmoid", "tanh", any case; None or "linear" for none)
    applies that function to ``z``: ``Dense(64, activation="relu")`` computes what
    ``Dense(64)`` followed by ``ReLU()`` computes, bit for bit.
    """

    _param_attrs = (("W", "dW"), ("b", "db"))
    _decay_attrs = ("W",)  # the thesis' L2 decays weights, not biases

    def __init__(self, in_features=UNSET, out_features=UNSET, bias: bool = True, seed: int | None = None, *,
                 units: int | None = None, activation: str | None = None):
        super().__init__()
        if isinstance(out_features, str):  # Keras' Dense(10, "relu")
            raise TypeError(f"out_features must be an integer, got {out_features!r}; for an activation write "
                            f"Dense(..., activation={out_features!r})")
        if units is not None:
            if out_features is not UNSET:
                raise TypeError("give out_features or units, not both")
            out_features = units
        elif out_features is UNSET:
            if in_features is UNSET:
                raise TypeError("Dense needs its size: Dense(units) or Dense(in_features, out_features)")
            in_features, out_features = UNSET, in_features  # Dense(units): the one size is the output's
        self.out_features = as_int(out_features, "units" if units is not None else "out_features", 1)
        self.in_features: int | None = None if in_features is UNSET else as_int(in_features, "in_features", 1)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bool(bias)
        self.seed = as_seed(seed)
        self.activation = as_layer_activation(activation)
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None
        self._x: np.ndarray | None = None
        self._h: np.ndarray | None = None
        if self.in_features is not None:
            self._build(self.in_features)

    def _build(self, in_features: int) -> None:
        """Make W and b for ``in_features`` inputs (at construction, or at the first forward)."""
        self.in_features = in_features
        self.W = kaiming_normal((self.in_features, self.out_features), self.in_features, self.seed,
                                f"{self.name}: the weight W (in_features x out_features)")
        self.b = np.zeros(self.out_features) if self.use_bias else None
        if self._dtype is not None:  # astype() was called before the sizes were known
            self._cast(self._dtype)

    @property
    def built(self) -> bool:
        """Whether the weights exist (False for ``Dense(units)`` until its first input)."""
        return self.W is not None

    @property
    def name(self) -> str:
        act = f", {self.activation}" if self.activation else ""
        return f"Dense({self.in_features if self.in_features is not None else '?'}->{self.out_features}{act})"

    def config(self) -> dict:
        if self.in_features is None:
            out = {"units": self.out_features, "bias": self.use_bias, "seed": self.seed}
        else:
            out = {"in_features": self.in_features, "out_features": self.out_features, "bias": self.use_bias,
                   "seed": self.seed}
        if self.activation is not None:  # absent when None: older files and configs stay the same
            out["activation"] = self.activation
        return out

    def _bias(self) -> np.ndarray:
        # dense_forward always adds a bias: a zero one stands in for bias=False.
        if self.b is not None:
            return self.b
        return np.zeros(self.out_features, dtype=self.W.dtype)

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        if self.W is None:
            shape = np.shape(x)
            if len(shape) != 2:
                raise self._error(f"expected a 2-D input (N, in_features), got shape {shape}; put a Flatten() "
                                  "before Dense")
            self._build(as_int(shape[1], "in_features", 1))
        x = self._input(x, 2, "(N, in_features); put a Flatten() before Dense")
        if x.shape[1] != self.in_features:
            raise self._error(f"input has {x.shape[1]} features, expected in_features={self.in_features}")
        self._x = x
        z = _core.dense_forward(x, self.W, self._bias())
        if self.activation is not None:
            # the activation layers' kernel, on the dense output: what Dense + ReLU() computes
            z = self._h = _core.activation_forward(z, self.activation)
        return self._remember_output(z)

    def backward(self, grad) -> np.ndarray:
        return self._backward(grad, need_dx=True)

    def backward_parameters(self, grad) -> None:
        self._backward(grad, need_dx=False)  # dW and db only: no dZ W^T

    def _backward(self, grad, need_dx: bool):
        g = self._grad(grad)
        if self.activation is not None:
            g = _core.activation_backward(g, self._h, self.activation)
        dx, self.dW, db = _core.dense_backward(g, self._x, self.W, 0.0, need_dx)
        self.db = db if self.use_bias else None
        return dx
