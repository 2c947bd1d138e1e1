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
    "add",
    "avgpool2d_backward",
    "avgpool2d_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "bce",
    "bce_backward",
    "bce_with_logits",
    "bce_with_logits_backward",
    "bias_add",
    "bias_grad",
    "central_difference",
    "conv2d_backward",
    "conv2d_forward",
    "conv_out_size",
    "dense_backward",
    "dense_forward",
    "dropout_backward",
    "dropout_forward",
    "dropout_mask",
    "gemm",
    "global_avgpool_backward",
    "global_avgpool_forward",
    "linear",
    "linear_backward",
    "logsumexp",
    "maxpool2d_backward",
    "maxpool2d_forward",
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


def dense_backward(dZ, X, W, lambda_=0.0, need_dX=True, relu_mask=False):
    """(dX, dW, db): dW = X^T dZ + lambda W, db = column sums of dZ, dX = dZ W^T; relu_mask: X is
    a ReLU's output and dX = dZ W^T where X > 0, else 0."""
    dZ, X, W = _f64(dZ), _f64(X), _f64(W)
    dW = X.T @ dZ + lambda_ * W
    db = bias_grad(dZ)
    dX = dZ @ W.T if need_dX else None
    if relu_mask:
        dX = np.where(X > 0, dX, 0.0)
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


# ---------------------------------------------------------------------------
# convolution and pooling (cpp/conv2d/conv2d.h, cpp/pool2d/pool2d.h), NCHW.
#
# Written with index arithmetic on Python ints rather than a padded copy of the
# input, so that geometry far beyond any real input (padding, stride, dilation
# or a pooling kernel of 2**62) costs nothing as long as the OUTPUT is small:
# only the rows and columns a window really covers are read.


def conv_out_size(n: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """(n + 2 pad - dilation (kernel - 1) - 1) // stride + 1, in Python ints (no overflow)."""
    return (n + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _taps(n: int, out: int, stride: int, pad: int, offset: int):
    """Input indices o * stride - pad + offset for o in range(out), clipped into 0..n-1, and
    whether each really lies inside the input (False: a zero-padding position)."""
    idx = [o * stride - pad + offset for o in range(out)]
    inside = np.array([0 <= i < n for i in idx], dtype=bool)
    return np.array([min(max(i, 0), n - 1) for i in idx], dtype=np.int64), inside


def conv2d_forward(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """y[n, k, oh, ow] = bias[k] + sum_{c, i, j} xpad[n, g C/G + c, oh sh + i dh, ow sw + j dw] w[k, c, i, j]
    (g = k's group), xpad = x with `padding` zeros around; padded positions multiply as 0.0."""
    x, w = _f64(x), _f64(weight)
    N, C, H, W = x.shape
    K, Cg, kH, kW = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    G = groups
    Kg = K // G
    Ho, Wo = conv_out_size(H, kH, sh, ph, dh), conv_out_size(W, kW, sw, pw, dw)
    xg = x.reshape(N, G, Cg, H, W)
    wg = w.reshape(G, Kg, Cg, kH, kW)
    y = np.zeros((N, G, Kg, Ho, Wo))
    for i in range(kH):
        rows, rin = _taps(H, Ho, sh, ph, i * dh)
        for j in range(kW):
            cols, cin = _taps(W, Wo, sw, pw, j * dw)
            patch = np.where(rin[:, None] & cin[None, :], xg[:, :, :, rows[:, None], cols[None, :]], 0.0)
            y += np.einsum("ngchw,gkc->ngkhw", patch, wg[:, :, :, i, j])
    y = y.reshape(N, K, Ho, Wo)
    if bias is not None:
        y = y + _f64(bias)[None, :, None, None]
    return y


def conv2d_backward(dy, x, weight, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """(dx, dweight, dbias) of conv2d_forward: dx scatters w * dy back to the input positions the
    windows read (padding positions dropped), dw = sum xpad * dy, db = sum dy over (n, oh, ow)."""
    dy, x, w = _f64(dy), _f64(x), _f64(weight)
    N, C, H, W = x.shape
    K, Cg, kH, kW = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    G = groups
    Kg = K // G
    Ho, Wo = dy.shape[2], dy.shape[3]
    xg = x.reshape(N, G, Cg, H, W)
    wg = w.reshape(G, Kg, Cg, kH, kW)
    dyg = dy.reshape(N, G, Kg, Ho, Wo)
    dx = np.zeros((N, G, Cg, H, W))
    dW = np.zeros((G, Kg, Cg, kH, kW))
    for i in range(kH):
        rows, rin = _taps(H, Ho, sh, ph, i * dh)
        for j in range(kW):
            cols, cin = _taps(W, Wo, sw, pw, j * dw)
            patch = np.where(rin[:, None] & cin[None, :], xg[:, :, :, rows[:, None], cols[None, :]], 0.0)
            dW[:, :, :, i, j] = np.einsum("ngchw,ngkhw->gkc", patch, dyg)
            contrib = np.einsum("gkc,ngkhw->ngchw", wg[:, :, :, i, j], dyg)[..., rin, :][..., cin]
            np.add.at(dx, (slice(None), slice(None), slice(None), rows[rin][:, None], cols[cin][None, :]), contrib)
    return dx.reshape(N, C, H, W), dW.reshape(K, Cg, kH, kW), dy.sum(axis=(0, 2, 3))


def _windows(n: int, kernel: int, stride: int, pad: int, out: int):
    """[lo, hi) of the input positions window o covers, for o in range(out) (never empty when
    pad <= kernel / 2)."""
    return [(max(o * stride - pad, 0), min(o * stride - pad + kernel, n)) for o in range(out)]


def _pool_geometry(x, kernel_size, stride, padding):
    N, C, H, W = x.shape
    (kH, kW), (sh, sw), (ph, pw) = kernel_size, stride, padding
    Ho, Wo = conv_out_size(H, kH, sh, ph), conv_out_size(W, kW, sw, pw)
    return _windows(H, kH, sh, ph, Ho), _windows(W, kW, sw, pw, Wo), float(kH) * float(kW)


def maxpool2d_forward(x, kernel_size, stride, padding=(0, 0)):
    """(y, argmax): the maximum of each window's real (non-padding) elements, the FIRST maximum
    in row-major window order, a NaN beating any number (numpy.argmax's rule); argmax is the
    winner's flat index h * W + w in its (H, W) plane."""
    x = _f64(x)
    N, C, H, W = x.shape
    rows, cols, _ = _pool_geometry(x, kernel_size, stride, padding)
    y = np.empty((N, C, len(rows), len(cols)))
    am = np.empty((N, C, len(rows), len(cols)), dtype=np.int64)
    for oh, (r0, r1) in enumerate(rows):
        for ow, (c0, c1) in enumerate(cols):
            win = x[:, :, r0:r1, c0:c1].reshape(N, C, -1)
            k = np.argmax(win, axis=-1)
            y[:, :, oh, ow] = np.take_along_axis(win, k[..., None], axis=-1)[..., 0]
            am[:, :, oh, ow] = (r0 + k // (c1 - c0)) * W + c0 + k % (c1 - c0)
    return y, am


def maxpool2d_backward(dy, argmax, x_shape):
    """dx: dy added at each window's argmax (overlapping windows add up)."""
    dy = _f64(dy)
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W))
    n, c = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
    for oh in range(dy.shape[2]):
        for ow in range(dy.shape[3]):
            np.add.at(dx, (n, c, np.asarray(argmax)[:, :, oh, ow]), dy[:, :, oh, ow])
    return dx.reshape(N, C, H, W)


def avgpool2d_forward(x, kernel_size, stride, padding=(0, 0)):
    """Window sums of the real elements divided by kH * kW (zero padding counts in the divisor)."""
    x = _f64(x)
    N, C, H, W = x.shape
    rows, cols, div = _pool_geometry(x, kernel_size, stride, padding)
    y = np.empty((N, C, len(rows), len(cols)))
    for oh, (r0, r1) in enumerate(rows):
        for ow, (c0, c1) in enumerate(cols):
            y[:, :, oh, ow] = x[:, :, r0:r1, c0:c1].sum(axis=(2, 3)) / div
    return y


def avgpool2d_backward(dy, x_shape, kernel_size, stride, padding=(0, 0)):
    dy = _f64(dy)
    dx = np.zeros(x_shape)
    rows, cols, div = _pool_geometry(dx, kernel_size, stride, padding)
    for oh, (r0, r1) in enumerate(rows):
        for ow, (c0, c1) in enumerate(cols):
            dx[:, :, r0:r1, c0:c1] += (dy[:, :, oh, ow] / div)[:, :, None, None]
    return dx


def global_avgpool_forward(x) -> np.ndarray:
    return _f64(x).mean(axis=(2, 3))


def global_avgpool_backward(dy, x_shape) -> np.ndarray:
    N, C, H, W = x_shape
    return np.broadcast_to((_f64(dy) / (H * W))[:, :, None, None], x_shape).copy()


# ---------------------------------------------------------------------------
# batch normalisation (cpp/batchnorm/batchnorm.h), (N, F) or (N, C, H, W)


def _bn_axes(x: np.ndarray):
    return ((0,), (1, -1)) if x.ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, eps=1e-5, momentum=0.1):
    """(y, mean, invstd, new_running_mean, new_running_var), the header's formulas: training
    normalises with the batch mean and biased variance and moves the running statistics
    (running_var with the unbiased variance, M / (M - 1), M = values per channel; the biased one
    when M == 1); evaluation uses the running statistics and leaves them alone."""
    x = _f64(x)
    axes, shape = _bn_axes(x)
    rm, rv = _f64(running_mean), _f64(running_var)
    if training:
        M = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
        unbiased = var * M / (M - 1) if M > 1 else var
        rm = (1 - momentum) * rm + momentum * mean
        rv = (1 - momentum) * rv + momentum * unbiased
    else:
        mean, var = rm, rv
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    y = _f64(gamma).reshape(shape) * xhat + _f64(beta).reshape(shape)
    return y, mean, invstd, rm, rv


def batchnorm_backward(dy, x, mean, invstd, gamma, training):
    """(dx, dgamma, dbeta): dbeta = sum dy, dgamma = sum dy x_hat; training
    dx = gamma invstd / M (M dy - dbeta - x_hat dgamma), evaluation dx = dy gamma invstd."""
    dy, x = _f64(dy), _f64(x)
    axes, shape = _bn_axes(x)
    M = x.size // x.shape[1]
    inv = _f64(invstd).reshape(shape)
    g = _f64(gamma).reshape(shape)
    xhat = (x - _f64(mean).reshape(shape)) * inv
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    if training:
        dx = g * inv / M * (M * dy - dbeta.reshape(shape) - xhat * dgamma.reshape(shape))
    else:
        dx = dy * g * inv
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# dropout (cpp/dropout/dropout.h): mask[i] = u(seed, i) >= p with the counter-based uniform
# u = SplitMix64(SplitMix64(seed) ^ i * 0xD1B54A32D192ED03) >> 11 / 2^53; a kept element is
# scaled by 1 / (1 - p), a dropped one is exactly 0 (also where x is NaN or Inf).


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_mask(n: int, p: float, seed: int) -> np.ndarray:
    """The uint8 keep-mask of n elements (uint64 arithmetic wraps, as in C++)."""
    counter = np.arange(n, dtype=np.uint64)
    s = _splitmix64(np.full(n, seed, dtype=np.uint64))
    bits = _splitmix64(s ^ (counter * np.uint64(0xD1B54A32D192ED03)))
    u = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (u >= p).astype(np.uint8)


def dropout_forward(x, p: float, seed: int):
    """(y, mask): y = x / (1 - p) where kept, 0 where dropped."""
    x = _f64(x)
    mask = dropout_mask(x.size, p, seed).reshape(x.shape)
    return np.where(mask == 1, x * (1.0 / (1.0 - p)), 0.0), mask


def dropout_backward(dy, mask, p: float) -> np.ndarray:
    return np.where(np.asarray(mask) == 1, _f64(dy) * (1.0 / (1.0 - p)), 0.0)


def add(a, b) -> np.ndarray:
    return _f64(a) + _f64(b)
