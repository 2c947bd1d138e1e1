"""Mirror of MATLAB ``relu.m``: elementwise max(0, z)."""

from __future__ import annotations

import numpy as np

from .. import _core


def _float_array(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return np.ascontiguousarray(a)


def relu(z) -> np.ndarray:
    """Mirror of MATLAB ``relu(z)``: max(0, z), elementwise, any shape.

    float32 stays float32; other inputs are computed in float64. NaN propagates.
    """
    return _core.activation_forward(_float_array(z, "z"), "relu")


def relu_backward(dh, h) -> np.ndarray:
    """``dh * f'(z)`` from the output ``h = relu(z)``: f' = [h > 0]."""
    return _core.activation_backward(_float_array(dh, "dh"), _float_array(h, "h"), "relu")
