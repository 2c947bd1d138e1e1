"""Mirror of MATLAB ``sigmoid.m``: elementwise 1 / (1 + exp(-z))."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validation import as_float_array as _float_array


def sigmoid(z) -> np.ndarray:
    """Mirror of MATLAB ``sigmoid(z)``: 1 / (1 + exp(-z)), elementwise, any shape.

    float32 stays float32; other inputs are computed in float64. NaN propagates.
    """
    return _core.activation_forward(_float_array(z, "z"), "sigmoid")


def sigmoid_backward(dh, h) -> np.ndarray:
    """``dh * f'(z)`` from the output ``h = sigmoid(z)``: f' = h (1 - h)."""
    return _core.activation_backward(_float_array(dh, "dh"), _float_array(h, "h"), "sigmoid")
