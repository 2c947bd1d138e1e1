"""RMSprop (thesis eq. 33-36; in the MATLAB code only inside the Adam function)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _core
from ._update import for_each_parameter, state


def gradient_descent_rmsprop(
    gradients: Mapping[str, np.ndarray],
    parameters: dict,
    learning_rate: float,
    beta2: float = 0.99,
    eps: float = 1e-8,
) -> dict:
    """RMSprop, the half of MATLAB ``gradient_descent_adam`` that scales by ``s``.

    ``s = beta2 s + (1 - beta2) dw^2; w -= learning_rate dw / (sqrt(s) + eps)``
    with ``s`` kept in ``parameters['s_dW<l>']`` / ``['s_db<l>']``. Updated in
    place; returns ``parameters``.
    """

    def update(name: str, w: np.ndarray, g: np.ndarray) -> None:
        _core.rmsprop_update(w, state(parameters, f"s_d{name}", w), g, learning_rate, beta2, eps)

    return for_each_parameter(gradients, parameters, update)
