"""A direct float64 NumPy version of the thesis' MATLAB network (the seeds'
own textbook style), with the seed's layer-1 L2 bug fixed. The MATLAB-API
tests compare natverk against it."""

from __future__ import annotations

import numpy as np


def _act(z, activation):
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-z))
    return np.tanh(z)


def _act_grad_from_output(h, activation):
    if activation == "relu":
        return (h > 0).astype(h.dtype)
    if activation == "sigmoid":
        return h * (1 - h)
    return 1 - h * h


def forward(X, y, params, lambda_, activation):
    """Returns probs, loss, hs (h0..h_{L-1}) in float64."""
    L = sum(1 for k in params if k.startswith("W"))
    h = np.asarray(X, dtype=np.float64)
    hs = [h]
    psi = 0.0
    for l in range(1, L + 1):
        W = params[f"W{l}"].astype(np.float64)
        b = params[f"b{l}"].astype(np.float64)
        psi += np.sum(W * W)
        z = h @ W + b
        if l < L:
            h = _act(z, activation)
            hs.append(h)
    z = z - z.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    m = X.shape[0]
    loss = -np.mean(np.log(probs[np.arange(m), y])) + 0.5 * lambda_ * psi
    return probs, loss, hs


def backward(X, y, params, lambda_, activation):
    probs, _, hs = forward(X, y, params, lambda_, activation)
    L = len(hs)
    m = X.shape[0]
    dz = probs.copy()
    dz[np.arange(m), y] -= 1
    dz /= m
    grads = {}
    for l in range(L, 0, -1):
        W = params[f"W{l}"].astype(np.float64)
        grads[f"dW{l}"] = hs[l - 1].T @ dz + lambda_ * W
        grads[f"db{l}"] = dz.sum(axis=0, keepdims=True)
        if l > 1:
            dz = (dz @ W.T) * _act_grad_from_output(hs[l - 1], activation)
    return grads
