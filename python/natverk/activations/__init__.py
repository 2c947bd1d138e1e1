"""Activation functions: mirrors the MATLAB folder ``activations/``.

Each is a thin call into the C++ kernels; ``*_backward(dh, h)`` gives
``dh * f'(z)`` from the activation's output ``h`` (as back_propogation uses it).

:func:`activation_name` is the one place a user's activation name is read:
case-insensitively (``"ReLU"``, ``"relu"``), with scikit-learn's ``"logistic"``
for the sigmoid, as the optimizer table reads optimizer names.
"""

from __future__ import annotations

from .._validation import ACTIVATION_KERNELS
from .relu import relu, relu_backward
from .sigmoid import sigmoid, sigmoid_backward
from .softmax import softmax
from .tanh import tanh, tanh_backward

__all__ = [
    "ACTIVATIONS",
    "activation_name",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "tanh",
    "tanh_backward",
]

#: The hidden-layer activations the kernels implement (their names in ``natverk._core``).
ACTIVATIONS = ACTIVATION_KERNELS

# every accepted spelling (lower case) -> the kernels' name; None is "no activation"
_ALIASES = {"relu": "relu", "sigmoid": "sigmoid", "logistic": "sigmoid", "tanh": "tanh"}
_NONE_ALIASES = ("linear", "identity", "none")


def activation_name(name, argument: str = "activation", allow_none: bool = False) -> str | None:
    """The kernels' name (``"relu"``, ``"sigmoid"``, ``"tanh"``) for a user's ``name``.

    Case-insensitive; ``"logistic"`` (scikit-learn's word) is the sigmoid. With
    ``allow_none``, None, ``"linear"``, ``"identity"`` and ``"none"`` mean no
    activation and give None. Anything else raises ValueError naming ``argument``
    and the accepted names."""
    if allow_none and name is None:
        return None
    if isinstance(name, str):
        key = name.lower()
        if key in _ALIASES:
            return _ALIASES[key]
        if allow_none and key in _NONE_ALIASES:
            return None
    accepted = sorted(_ALIASES) + (sorted(_NONE_ALIASES) + ["None"] if allow_none else [])
    raise ValueError(f"{argument} must be one of {accepted} (any case), got {name!r}")
