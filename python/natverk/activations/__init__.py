"""Activation functions: mirrors the MATLAB folder ``activations/``.

Each is a thin call into the C++ kernels; ``*_backward(dh, h)`` gives
``dh * f'(z)`` from the activation's output ``h`` (as back_propogation uses it).
"""

from __future__ import annotations

from .relu import relu, relu_backward
from .sigmoid import sigmoid, sigmoid_backward
from .softmax import softmax
from .tanh import tanh, tanh_backward

__all__ = ["relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "softmax"]
