"""Elementwise activation layers on ``activation_forward`` / ``activation_backward``."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._base import Layer, register


class _Activation(Layer):
    _kind = ""

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._input(x, None, "")
        self._h = _core.activation_forward(x, self._kind)
        return self._remember_output(self._h)

    def backward(self, grad) -> np.ndarray:
        # The kernel computes f'(z) from the output h = f(z).
        return _core.activation_backward(self._grad(grad), self._h, self._kind)


@register
class ReLU(_Activation):
    """max(0, x), elementwise, any shape."""

    _kind = "relu"


@register
class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), elementwise, any shape."""

    _kind = "sigmoid"


@register
class Tanh(_Activation):
    """tanh(x), elementwise, any shape."""

    _kind = "tanh"
