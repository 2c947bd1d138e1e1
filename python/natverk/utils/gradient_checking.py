"""Mirror of MATLAB ``gradient_checking.m``: central finite differences."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._validation import network_layout


def gradient_checking(
    parameters: Mapping[str, np.ndarray],
    gradients: Mapping[str, np.ndarray],
    X,
    y,
    lambda_: float = 0.0,
    activation: str = "relu",
    h: float = 1e-7,
    class_weights=None,
) -> float:
    """Mirror of MATLAB ``gradient_checking(parameters, gradients, X, y, m, lambda, activation)``.

    Every entry of every ``W_l`` and ``b_l`` is moved by ``+h`` and ``-h`` and
    the loss recomputed: ``approx = (loss(+h) - loss(-h)) / 2h``. Returns

        ||approx - analytic|| / (||approx|| + ||analytic||)

    over all of them (about 1e-9 or less for correct float64 gradients; a
    wrong layer gives 1e-2 or more). Unlike the seed it visits only the
    weights and biases, never the optimizer state ``v_dW*``/``s_dW*`` (where
    the seed crashes), works on a float64 copy whatever the parameters'
    dtype (``h = 1e-7`` is below float32's resolution), and leaves
    ``parameters`` untouched. Costs two forward passes per parameter: use a
    small network and batch.
    """
    from ..neuralnet.forward_propagation import forward_propagation

    _, L = network_layout(parameters)
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h must be a positive step, got {h}")
    names = [f"{p}{l}" for l in range(1, L + 1) for p in ("W", "b")]
    params64 = {k: np.array(parameters[k], dtype=np.float64) for k in names}
    X64 = np.asarray(X, dtype=np.float64)

    approx, analytic = [], []
    for name in names:
        grad = gradients.get(f"d{name}")
        if grad is None:
            raise KeyError(f"gradients lacks d{name}")
        grad = np.asarray(grad, dtype=np.float64)
        if grad.size != params64[name].size:
            raise ValueError(f"gradients['d{name}'] has shape {grad.shape}, {name} has {params64[name].shape}")
        theta = params64[name].reshape(-1)  # a view: perturbing it perturbs the network
        for i in range(theta.size):
            original = theta[i]
            theta[i] = original + h
            _, loss_plus, _ = forward_propagation(X64, y, params64, lambda_, activation, class_weights)
            theta[i] = original - h
            _, loss_minus, _ = forward_propagation(X64, y, params64, lambda_, activation, class_weights)
            theta[i] = original
            approx.append((loss_plus - loss_minus) / (2 * h))
        analytic.append(grad.reshape(-1))
    approx_v = np.asarray(approx)
    analytic_v = np.concatenate(analytic)
    denom = np.linalg.norm(approx_v) + np.linalg.norm(analytic_v)
    if denom == 0:
        return 0.0
    return float(np.linalg.norm(approx_v - analytic_v) / denom)
