"""Layers for the object-oriented (PyTorch/Keras-like) API, on the C++ kernels.

Every layer has ``forward(x, training=None)``, ``backward(grad)``,
``parameters()`` (``(name, value, gradient)`` triples, :class:`Param`, whose
``decay`` flag says whether L2 / weight decay applies: weights yes, biases and
batch-norm gamma/beta no), ``buffers()`` and
``config()``; see :mod:`natverk.layers._base` for the conventions, the dtype
policy (parameters start float64; the first forward with a float32 input
casts them to float32) and the error messages.

Inputs are NCHW for the 2-D layers and (N, features) for :class:`Dense` and
:class:`BatchNorm1D`. Weights are Kaiming-normal (std sqrt(2 / fan_in)),
seedable with ``seed``.
"""

from __future__ import annotations

from ._base import Layer, Param, ParameterLayer, layer_class, layer_from_spec, layer_to_spec, register
from .activations import ReLU, Sigmoid, Tanh
from .container import Residual, Stack
from .conv import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNorm1D, BatchNorm2D
from .shape import Flatten

__all__ = [
    "Layer",
    "ParameterLayer",
    "Param",
    "Dense",
    "Conv2D",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Dropout",
    "Flatten",
    "Residual",
    "Stack",
    "register",
    "layer_class",
    "layer_from_spec",
    "layer_to_spec",
]
