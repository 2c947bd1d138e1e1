"""Mirror of MATLAB ``forward_propogation.m``: logits, softmax, loss."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _core
from .._validation import (
    as_activation,
    as_class_weights,
    as_inputs,
    as_labels,
    as_lambda,
    network_layout,
)


def forward_propagation(
    X,
    y,
    parameters: Mapping[str, np.ndarray],
    lambda_: float = 0.0,
    activation: str = "relu",
    class_weights=None,
) -> tuple[np.ndarray, float | None, dict]:
    """Mirror of MATLAB ``forward_propogation(h0, t, parameters, m, lambda, activation)``.

    Rows are examples: ``z_l = h_{l-1} W_l + b_l``, ``h_l = f(z_l)`` for the
    hidden layers, ``probs = softmax(z_L)`` and

        loss = mean_i(-log probs[i, y_i]) + lambda/2 * sum_l ||W_l||_F^2.

    Every number comes from natverk's C++ kernels (GEMM with the bias and the
    activation fused after it, a stable softmax, the loss accumulated in
    double). ``m`` is not an argument: it is ``X.shape[0]``.

    Parameters
    ----------
    X : array (m x n0)
        Inputs; converted to the parameters' dtype. NaN/Inf raise ValueError.
    y : int array (m,) or None
        Labels 0..K-1. ``None`` skips the loss (``loss`` is then None), as
        prediction needs only ``probs``.
    parameters : dict
        ``W1..WL``, ``b1..bL`` as made by :func:`initialize_weights`.
    lambda_ : float
        L2 strength (``lambda`` is a Python keyword).
    activation : {"relu", "sigmoid", "tanh"}
        Hidden-layer activation.
    class_weights : array (K,) or None
        Optional per-class weights of the cross-entropy (weighted mean).

    Returns
    -------
    probs : array (m x K)
    loss : float or None
        Data loss plus the L2 penalty.
    cache : dict
        ``h0..hL`` (``hL`` = f(z_L) as the MATLAB code stores it; ``zL`` is
        kept too), ``probs``, ``psi`` (sum of squared weights, for the
        balance principle) and ``no_reg_loss`` (the data loss).
    """
    dtype, L = network_layout(parameters)
    activation = as_activation(activation)
    lambda_ = as_lambda(lambda_)
    X = as_inputs(X, dtype, parameters["W1"].shape[0])
    n_classes = parameters[f"W{L}"].shape[1]

    cache: dict[str, object] = {"h0": X}
    h = X
    psi = 0.0
    for l in range(1, L + 1):
        W, b = parameters[f"W{l}"], parameters[f"b{l}"]
        psi += _core.sum_of_squares(W)
        if l < L:
            h = _core.dense_forward(h, W, b, activation)
            cache[f"h{l}"] = h
    z = _core.dense_forward(h, parameters[f"W{L}"], parameters[f"b{L}"], "linear")
    cache[f"z{L}"] = z
    cache[f"h{L}"] = _core.activation_forward(z, activation)

    if y is None:
        probs = _core.softmax(z)
        no_reg_loss = loss = None
    else:
        y = as_labels(y, X.shape[0], n_classes)
        weights = as_class_weights(class_weights, dtype)
        no_reg_loss, probs = _core.softmax_cross_entropy(z, y, weights)
        loss = no_reg_loss + 0.5 * lambda_ * psi
    cache["probs"] = probs
    cache["psi"] = psi
    cache["no_reg_loss"] = no_reg_loss
    return probs, loss, cache
