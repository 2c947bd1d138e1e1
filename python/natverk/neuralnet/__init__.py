"""The network itself: mirrors the MATLAB folder ``neuralnet/``."""

from __future__ import annotations

from .back_propagation import back_propagation
from .forward_propagation import forward_propagation
from .initialize_weights import initialize_weights

__all__ = ["initialize_weights", "forward_propagation", "back_propagation"]
