"""Utilities: mirrors the MATLAB folder ``utils/``."""

from __future__ import annotations

from .check_accuracy import check_accuracy
from .decision_boundary import decision_boundary
from .exponential_decay import exponential_decay
from .gradient_checking import gradient_checking
from .normalization import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD, normalization, normalize_channels
from .st_logspace import st_logspace

__all__ = [
    "check_accuracy",
    "gradient_checking",
    "decision_boundary",
    "exponential_decay",
    "normalization",
    "normalize_channels",
    "MNIST_MEAN",
    "MNIST_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "st_logspace",
]
