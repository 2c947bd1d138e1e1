"""Fully connected layer on the C++ ``dense_forward`` / ``dense_backward`` kernels."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._base import ParameterLayer, as_int, as_seed, kaiming_normal, register


@register
class Dense(ParameterLayer):
    """``z = x @ W + b`` for inputs of shape (N, in_features).

    ``W`` is (in_features x out_features), as in the MATLAB code, initialised
    Kaiming-normal (std sqrt(2 / in_features)) from ``seed``; ``b`` is
    (out_features,) zeros, or None with ``bias=False``. Gradients: ``dW``, ``db``.
    """

    _param_attrs = (("W", "dW"), ("b", "db"))
    _decay_attrs = ("W",)  # the thesis' L2 decays weights, not biases

    def __init__(self, in_features: int, out_features: int, bias: bool = True, seed: int | None = None):
        super().__init__()
        self.in_features = as_int(in_features, "in_features", 1)
        self.out_features = as_int(out_features, "out_features", 1)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bool(bias)
        self.seed = as_seed(seed)
        self.W = kaiming_normal((self.in_features, self.out_features), self.in_features, self.seed,
                                f"{self.name}: the weight W (in_features x out_features)")
        self.b = np.zeros(self.out_features) if self.use_bias else None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None
        self._x: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"Dense({self.in_features}->{self.out_features})"

    def config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.use_bias, "seed": self.seed}

    def _bias(self) -> np.ndarray:
        # dense_forward always adds a bias: a zero one stands in for bias=False.
        if self.b is not None:
            return self.b
        return np.zeros(self.out_features, dtype=self.W.dtype)

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._input(x, 2, "(N, in_features); put a Flatten() before Dense")
        if x.shape[1] != self.in_features:
            raise self._error(f"input has {x.shape[1]} features, expected in_features={self.in_features}")
        self._x = x
        return self._remember_output(_core.dense_forward(x, self.W, self._bias()))

    def backward(self, grad) -> np.ndarray:
        return self._backward(grad, need_dx=True)

    def backward_parameters(self, grad) -> None:
        self._backward(grad, need_dx=False)  # dW and db only: no dZ W^T

    def _backward(self, grad, need_dx: bool):
        g = self._grad(grad)
        dx, self.dW, db = _core.dense_backward(g, self._x, self.W, 0.0, need_dx)
        self.db = db if self.use_bias else None
        return dx
