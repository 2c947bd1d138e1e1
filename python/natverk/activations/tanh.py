"""Mirror of MATLAB ``tanh.m``: elementwise tanh(z)."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validation import as_float_array as _float_array


def tanh(z) -> np.ndarray:
    """Mirror of MATLAB ``tanh(z)``: tanh(z), elementwise, any shape.

    float32 stays float32; other inputs are computed in float64. NaN propagates.
    """
    return _core.activation_forward(_float_array(z, "z"), "tanh")


def tanh_backward(dh, h) -> np.ndarray:
    """``dh * f'(z)`` from the output ``h = tanh(z)``: f' = 1 - h^2."""
    return _core.activation_backward(_float_array(dh, "dh"), _float_array(h, "h"), "tanh")
