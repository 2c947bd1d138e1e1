"""Optimizers: mirrors the MATLAB folder ``optimizers/``.

The functional, MATLAB-style updates live here; they run the same C++
update kernels as the optimizer classes of the layer API.
"""

from __future__ import annotations

from .classes import OPTIMIZER_CLASSES, SGD, Adam, Momentum, Optimizer, RMSprop, get_optimizer
from .gradient_descent_adam import gradient_descent_adam
from .gradient_descent_momentum import gradient_descent_momentum
from .gradient_descent_rmsprop import gradient_descent_rmsprop
from .gradient_descent_vanilla import gradient_descent_vanilla

__all__ = [
    "gradient_descent_vanilla",
    "gradient_descent_momentum",
    "gradient_descent_rmsprop",
    "gradient_descent_adam",
    "Optimizer",
    "SGD",
    "Momentum",
    "RMSprop",
    "Adam",
    "get_optimizer",
    "OPTIMIZER_CLASSES",
]
