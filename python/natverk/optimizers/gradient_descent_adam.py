"""Mirror of MATLAB ``gradient_descent_adam.m``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from .. import _core
from ._update import for_each_parameter, state


def gradient_descent_adam(
    gradients: Mapping[str, np.ndarray],
    parameters: dict,
    learning_rate: float,
    beta1: float = 0.9,
    beta2: float = 0.99,
    t: int = 1,
    eps: float = 1e-8,
) -> dict:
    """Mirror of MATLAB ``gradient_descent_adam(gradients, parameters, learning_rate, beta1, beta2, t)``.

    Adam step ``t`` (1, 2, ...; the caller counts, as the MATLAB main does
    with ``adam_iterations``)::

        v = beta1 v + (1 - beta1) dw            (momentum, v_dW<l>)
        s = beta2 s + (1 - beta2) dw^2          (RMSprop, s_dW<l>)
        w -= lr * (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps)

    The MATLAB defaults are beta1 = 0.9, beta2 = 0.99, eps = 1e-8. Updated in
    place; returns ``parameters``.
    """
    # int(t) alone raised for None, NaN and Inf with messages naming nothing
    # (type(t) is int first: the ABC checks below cost a microsecond a call in the MATLAB-style loop)
    whole = (type(t) is int or isinstance(t, numbers.Integral)
             or (isinstance(t, numbers.Real) and math.isfinite(t) and int(t) == t))
    if isinstance(t, bool) or not whole:
        raise TypeError(f"t must be an integer step count, got {t!r}")

    def update(name: str, w: np.ndarray, g: np.ndarray) -> None:
        _core.adam_update(
            w,
            state(parameters, f"v_d{name}", w),
            state(parameters, f"s_d{name}", w),
            g,
            learning_rate,
            beta1,
            beta2,
            int(t),
            eps,
        )

    return for_each_parameter(gradients, parameters, update)
