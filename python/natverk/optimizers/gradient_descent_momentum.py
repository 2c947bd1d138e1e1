"""Mirror of MATLAB ``gradient_descent_momentum.m``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _core
from ._update import for_each_parameter, state


def gradient_descent_momentum(
    gradients: Mapping[str, np.ndarray], parameters: dict, learning_rate: float, beta: float = 0.9
) -> dict:
    """Mirror of MATLAB ``gradient_descent_momentum(gradients, parameters, learning_rate, beta)``.

    ``v = beta v + (1 - beta) dw; w -= learning_rate v`` with ``v`` kept in
    ``parameters['v_dW<l>']`` / ``['v_db<l>']``. Updated in place; returns
    ``parameters``.
    """

    def update(name: str, w: np.ndarray, g: np.ndarray) -> None:
        _core.momentum_update(w, state(parameters, f"v_d{name}", w), g, learning_rate, beta)

    return for_each_parameter(gradients, parameters, update)
