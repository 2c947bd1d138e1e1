"""Mirror of MATLAB ``relu.m``: elementwise max(0, z)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validation import as_float_array as _float_array


def relu(z) -> np.ndarray:
    """Mirror of MATLAB ``relu(z)``: max(0, z), elementwise, any shape.

    float32 stays float32; other inputs are computed in float64. NaN propagates.
    """
    return _core.activation_forward(_float_array(z, "z"), "relu")


def relu_backward(dh, h) -> np.ndarray:
    """``dh * f'(z)`` from the output ``h = relu(z)``: f' = [h > 0]."""
    return _core.activation_backward(_float_array(dh, "dh"), _float_array(h, "h"), "relu")
