"""The loop every MATLAB optimizer shares: walk the layers, update in place."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .._validation import network_layout, parameter_names


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
    for name, grad_name in parameter_names(L):
        g = gradients.get(grad_name)
        if g is None:
            raise KeyError(f"gradients lacks {grad_name}")
        try:
            update(name, parameters[name], g if type(g) is np.ndarray else np.asarray(g))
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name}: {err}") from None
    return parameters

