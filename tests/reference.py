"""Plain float64 NumPy reference implementations of natverk's C++ kernels.

Every function here is a direct transcription of the formula in the matching
C++ header (cpp/*/*.h), which is the contract the kernels are tested against.
Inputs are converted to float64 and every result is float64, whatever dtype
the kernel under test ran in. Nothing here imports natverk.

Conventions (as in the headers): rows are examples, m = number of rows
(``x.shape[0]``), reductions 'mean' divide by m (not by the element count).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "activation_backward",
    "activation_forward",
    "adam",
    "bce",
    "bce_backward",
    "bce_with_logits",
    "bce_with_logits_backward",
    "bias_add",
    "bias_grad",
    "central_difference",
    "dense_backward",
    "dense_forward",
    "gemm",
    "linear",
    "linear_backward",
    "logsumexp",
    "momentum",
    "mse",
    "mse_backward",
    "relu",
    "relu_backward",
    "rmsprop",
    "sgd",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "sum_of_squares",
    "tanh",
    "tanh_backward",
]


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _rows(x: np.ndarray) -> int:
    """m, the number of rows (examples) of a 1-D or 2-D array."""
    return x.shape[0]


def _divisor(x: np.ndarray, reduction: str) -> float:
    if reduction == "mean":
        return float(_rows(x))
    if reduction == "sum":
        return 1.0
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


# ---------------------------------------------------------------------------
# GEMM (cpp/gemm/gemm.h): C = alpha * op(A) op(B) + beta * C


def gemm(A, B, C=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False) -> np.ndarray:
    """alpha * op(A) @ op(B) + beta * C in float64.

    BLAS semantics: when beta == 0, C is not read at all (NaN in C does not
    leak into the result), and C may be None.
    """
    opA = _f64(A).T if trans_a else _f64(A)
    opB = _f64(B).T if trans_b else _f64(B)
    if opA.shape[1] != opB.shape[0]:
        raise ValueError(f"inner dimensions differ: {opA.shape} @ {opB.shape}")
    if np.isfinite(opA).all() and np.isfinite(opB).all():
        product = opA @ opB  # (m, k) @ (k, n); k == 0 gives zeros
    else:
        # Not through BLAS: an optimised BLAS may multiply an inf by the zero
        # padding of its own tiles and return NaN where the exact product is
        # inf (OpenBLAS's SkylakeX kernel does). Row by row, exactly as written.
        product = np.empty((opA.shape[0], opB.shape[1]))
        for i in range(opA.shape[0]):
            product[i] = (opA[i][:, None] * opB).sum(axis=0)
    out = alpha * product
    if beta != 0.0:
        if C is None:
            raise ValueError("beta != 0 needs C")
        out = out + beta * _f64(C)
    return out


# ---------------------------------------------------------------------------
# activations (cpp/activations/activations.h); backward passes take the
# OUTPUT h = f(z), as the kernels do.


def relu(z) -> np.ndarray:
    """max(0, z); NaN propagates (np.maximum propagates NaN)."""
    return np.maximum(_f64(z), 0.0)


def relu_backward(dh, h) -> np.ndarray:
    """dh * [h > 0] (written with where so that inf * 0 does not become NaN)."""
    return np.where(_f64(h) > 0.0, _f64(dh), 0.0)


def sigmoid(z) -> np.ndarray:
    """1 / (1 + e^-z), evaluated without ever exponentiating a large positive number."""
    z = _f64(z)
    e = np.exp(-np.abs(z))  # in (0, 1]; never overflows
    return np.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(dh, h) -> np.ndarray:
    h = _f64(h)
    return _f64(dh) * h * (1.0 - h)


def tanh(z) -> np.ndarray:
    return np.tanh(_f64(z))


def tanh_backward(dh, h) -> np.ndarray:
    h = _f64(h)
    return _f64(dh) * (1.0 - h * h)


def linear(z) -> np.ndarray:
    return _f64(z).copy()


def linear_backward(dh, h) -> np.ndarray:
    return _f64(dh).copy()


ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "relu": (relu, relu_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "tanh": (tanh, tanh_backward),
    "linear": (linear, linear_backward),
}


def activation_forward(x, kind: str) -> np.ndarray:
    return ACTIVATIONS[kind][0](x)


def activation_backward(dh, h, kind: str) -> np.ndarray:
    return ACTIVATIONS[kind][1](dh, h)


def logsumexp(z, axis: int = -1) -> np.ndarray:
    """log(sum(exp(z))) along axis, with the maximum subtracted first."""
    z = _f64(z)
    mx = np.max(z, axis=axis, keepdims=True)
    return np.squeeze(mx, axis=axis) + np.log(np.sum(np.exp(z - mx), axis=axis))


def softmax(z) -> np.ndarray:
    """Row-wise softmax, stable: e^(z - max z) / sum e^(z - max z)."""
    z = _f64(z)
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# losses (cpp/losses/losses.h)


def _label_weights(y: np.ndarray, K: int, class_weights) -> np.ndarray:
    w = np.ones(K) if class_weights is None else _f64(class_weights)
    return w[y]


def softmax_cross_entropy(z, y, class_weights=None) -> tuple[float, np.ndarray]:
    """(loss, probs): loss = sum_i w[y_i] * (logsumexp(z_i) - z_i[y_i]) / sum_i w[y_i]."""
    z = _f64(z)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    m, K = z.shape
    nll = logsumexp(z, axis=1) - z[np.arange(m), y]
    wy = _label_weights(y, K, class_weights)
    return float(np.sum(wy * nll) / np.sum(wy)), softmax(z)


def softmax_cross_entropy_backward(probs, y, class_weights=None) -> np.ndarray:
    """dz_i = w[y_i] * (probs_i - onehot(y_i)) / sum_i w[y_i]."""
    probs = _f64(probs)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    m, K = probs.shape
    onehot = np.zeros((m, K))
    onehot[np.arange(m), y] = 1.0
    wy = _label_weights(y, K, class_weights)
    return wy[:, None] * (probs - onehot) / np.sum(wy)


def mse(pred, target, reduction: str = "mean") -> float:
    """1/2 sum (p - t)^2, divided by the number of rows when reduction='mean'."""
    pred, target = _f64(pred), _f64(target)
    return float(0.5 * np.sum((pred - target) ** 2) / _divisor(pred, reduction))


def mse_backward(pred, target, reduction: str = "mean") -> np.ndarray:
    pred, target = _f64(pred), _f64(target)
    return (pred - target) / _divisor(pred, reduction)


def bce(pred, target, reduction: str = "mean") -> float:
    """-sum [t log p + (1 - t) log(1 - p)], each log clamped at -100 (PyTorch BCELoss)."""
    p, t = _f64(pred), _f64(target)
    with np.errstate(divide="ignore"):  # log(0) = -inf, then clamped to -100
        log_p = np.maximum(np.log(p), -100.0)
        log_1mp = np.maximum(np.log1p(-p), -100.0)
    return float(-np.sum(t * log_p + (1.0 - t) * log_1mp) / _divisor(p, reduction))


def bce_backward(pred, target, reduction: str = "mean") -> np.ndarray:
    """(p - t) / max(p (1 - p), 1e-12), divided by the number of rows when 'mean'."""
    p, t = _f64(pred), _f64(target)
    return (p - t) / np.maximum(p * (1.0 - p), 1e-12) / _divisor(p, reduction)


def bce_with_logits(z, target, reduction: str = "mean") -> float:
    """sum max(z, 0) - z t + log(1 + e^-|z|): BCE of sigmoid(z), stable for any z."""
    z, t = _f64(z), _f64(target)
    terms = np.maximum(z, 0.0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return float(np.sum(terms) / _divisor(z, reduction))


def bce_with_logits_backward(z, target, reduction: str = "mean") -> np.ndarray:
    z, t = _f64(z), _f64(target)
    return (sigmoid(z) - t) / _divisor(z, reduction)


def sum_of_squares(w) -> float:
    w = _f64(w)
    return float(np.sum(w * w))


# ---------------------------------------------------------------------------
# dense layer (cpp/dense/dense.h): z = X W + b, h = f(z)


def bias_add(Z, b) -> np.ndarray:
    return _f64(Z) + _f64(b).reshape(1, -1)


def bias_grad(dZ) -> np.ndarray:
    """Column sums of dZ, shape (n,)."""
    return np.sum(_f64(dZ), axis=0)


def dense_forward(X, W, b, activation: str = "linear") -> np.ndarray:
    Z = _f64(X) @ _f64(W) + _f64(b).reshape(1, -1)
    return activation_forward(Z, activation)


def dense_backward(dZ, X, W, lambda_=0.0, need_dX=True):
    """(dX, dW, db): dW = X^T dZ + lambda W, db = column sums of dZ, dX = dZ W^T."""
    dZ, X, W = _f64(dZ), _f64(X), _f64(W)
    dW = X.T @ dZ + lambda_ * W
    db = bias_grad(dZ)
    dX = dZ @ W.T if need_dX else None
    return dX, dW, db


# ---------------------------------------------------------------------------
# optimizers (cpp/optimizers/optimizers.h). Each returns the NEW arrays and
# leaves its inputs alone; with weight_decay the L2 gradient is added first:
# g <- g + wd * w.


def _decayed(w: np.ndarray, g, weight_decay: float) -> np.ndarray:
    return _f64(g) + weight_decay * w


def sgd(w, g, learning_rate, weight_decay=0.0) -> np.ndarray:
    """w - lr * (g + wd * w)."""
    w = _f64(w)
    g = _decayed(w, g, weight_decay)
    return w - learning_rate * g


def momentum(w, v, g, learning_rate, beta, weight_decay=0.0) -> tuple[np.ndarray, np.ndarray]:
    """v = beta v + (1 - beta) g;  w -= lr v.  Returns (w, v)."""
    w, v = _f64(w), _f64(v)
    g = _decayed(w, g, weight_decay)
    v = beta * v + (1.0 - beta) * g
    return w - learning_rate * v, v


def rmsprop(w, s, g, learning_rate, beta2, eps=1e-8, weight_decay=0.0):
    """s = beta2 s + (1 - beta2) g^2;  w -= lr g / (sqrt(s) + eps).  Returns (w, s)."""
    w, s = _f64(w), _f64(s)
    g = _decayed(w, g, weight_decay)
    s = beta2 * s + (1.0 - beta2) * g * g
    return w - learning_rate * g / (np.sqrt(s) + eps), s


def adam(w, v, s, g, learning_rate, beta1, beta2, t, eps=1e-8, weight_decay=0.0):
    """Adam step t >= 1 with bias correction.  Returns (w, v, s).

    v = beta1 v + (1 - beta1) g;  s = beta2 s + (1 - beta2) g^2
    w -= lr (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps)
    """
    w, v, s = _f64(w), _f64(v), _f64(s)
    g = _decayed(w, g, weight_decay)
    v = beta1 * v + (1.0 - beta1) * g
    s = beta2 * s + (1.0 - beta2) * g * g
    v_hat = v / (1.0 - beta1**t)
    s_hat = s / (1.0 - beta2**t)
    return w - learning_rate * v_hat / (np.sqrt(s_hat) + eps), v, s


# ---------------------------------------------------------------------------
# numerical differentiation


def central_difference_inplace(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Numerical gradient of the scalar f() with respect to the array x, which f
    reads and which is perturbed in place one element at a time (and restored
    exactly): (f(x + h e_i) - f(x - h e_i)) / 2h. For arrays held by someone
    else, such as a layer's weights.
    """
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous so that its elements can be perturbed"
    grad = np.empty(x.shape, dtype=np.float64)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + h
        f_plus = float(f())
        flat[i] = saved - h
        f_minus = float(f())
        flat[i] = saved
        gflat[i] = (f_plus - f_minus) / (2.0 * h)
    return grad


def central_difference(f: Callable[[np.ndarray], float], x, h: float = 1e-6) -> np.ndarray:
    """Numerical gradient of the scalar function f at x: (f(x + h e_i) - f(x - h e_i)) / 2h.

    x is copied to float64; f is called with an array of x's shape. The error
    is O(h^2 f''') + O(eps |f| / h), about 1e-10 relative for smooth f and
    h = 1e-6.
    """
    x = np.array(x, dtype=np.float64)  # a private copy
    return central_difference_inplace(lambda: f(x), x, h)
