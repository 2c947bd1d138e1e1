"""Shape-only layers."""

from __future__ import annotations

import numpy as np

from ._base import Layer, register


@register
class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...): a reshape (a view of contiguous input)."""

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._input(x, None, "")
        self._in_shape = x.shape
        return self._remember_output(x.reshape(x.shape[0], -1))

    def backward(self, grad) -> np.ndarray:
        return self._grad(grad).reshape(self._in_shape)
