"""The loop every MATLAB optimizer shares: walk the layers, update in place."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np

from .._validation import network_layout


def state(parameters: dict, key: str, like: np.ndarray) -> np.ndarray:
    """The optimizer state array ``key`` (created as zeros if the map lacks it)."""
    arr = parameters.get(key)
    if arr is None:
        arr = parameters[key] = np.zeros_like(like)
    return arr


def for_each_parameter(
    gradients: Mapping[str, np.ndarray],
    parameters: dict,
    update: Callable[[str, np.ndarray, np.ndarray], None],
) -> dict:
    """Call ``update(name, w, g)`` for every ``W_l``/``b_l`` and its gradient.

    A failure names the parameter: the kernels' own messages say ``w``/``g``.
    """
    _, L = network_layout(parameters)
    for name, grad_name in _names(L):
        g = gradients.get(grad_name)
        if g is None:
            raise KeyError(f"gradients lacks {grad_name}")
        try:
            update(name, parameters[name], g if type(g) is np.ndarray else np.asarray(g))
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name}: {err}") from None
    return parameters


@functools.lru_cache(maxsize=64)
def _names(L: int) -> tuple[tuple[str, str], ...]:
    """``(("W1", "dW1"), ("b1", "db1"), ...)``: made once per depth, not per call (the MATLAB-style
    step's per-call overhead, issue 11)."""
    return tuple((name, f"d{name}") for l in range(1, L + 1) for name in (f"W{l}", f"b{l}"))
