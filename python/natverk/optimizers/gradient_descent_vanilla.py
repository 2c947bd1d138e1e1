"""Mirror of MATLAB ``gradient_descent_vanilla.m``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _core
from ._update import for_each_parameter


def gradient_descent_vanilla(
    gradients: Mapping[str, np.ndarray], parameters: dict, learning_rate: float
) -> dict:
    """Mirror of MATLAB ``gradient_descent_vanilla(gradients, parameters, learning_rate)``.

    ``w -= learning_rate * dw`` for every ``W_l``, ``b_l``. The arrays in
    ``parameters`` are updated in place by the C++ kernel; the same dict is
    returned so the MATLAB idiom ``parameters = ...(...)`` reads the same.
    """
    return for_each_parameter(
        gradients, parameters, lambda name, w, g: _core.sgd_update(w, g, learning_rate)
    )
