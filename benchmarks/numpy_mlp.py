"""A textbook vectorised NumPy MLP, the baseline of the training benchmark.

What one would write by hand (and what the thesis' MATLAB code does): rows are
examples, ``h = max(0, h W + b)`` for the hidden layers, a softmax
cross-entropy on the last layer's logits, backpropagation with ``h^T dz`` and
``dz W^T``, and an in-place SGD or Adam update. The dtype of the parameters
(float32 in the benchmark) is kept throughout. Parameters use natverk's MATLAB
layout: ``W<l>`` is (n_{l-1}, n_l), ``b<l>`` is (1, n_l).
"""

from __future__ import annotations

import _env  # noqa: F401  (before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in benchmark processes)
import numpy as np


class NumpyMLP:
    """ReLU MLP with softmax cross-entropy, trained by SGD or Adam (thesis' Adam: beta2 = 0.99)."""

    def __init__(self, parameters: dict, optimizer: str = "sgd", learning_rate: float = 0.01,
                 beta1: float = 0.9, beta2: float = 0.99, eps: float = 1e-8):
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        self.L = sum(1 for k in parameters if k.startswith("W"))
        self.W = [np.array(parameters[f"W{l}"]) for l in range(1, self.L + 1)]
        self.b = [np.array(parameters[f"b{l}"]).reshape(1, -1) for l in range(1, self.L + 1)]
        self.optimizer = optimizer
        self.lr, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.t = 0
        if optimizer == "adam":
            self.v = [np.zeros_like(p) for p in self.W + self.b]
            self.s = [np.zeros_like(p) for p in self.W + self.b]

    def forward(self, X: np.ndarray, y: np.ndarray | None = None):
        """(loss or None, probs, hs): hs[l] is the input of layer l + 1."""
        hs = [X]
        h = X
        for l in range(self.L - 1):
            h = np.maximum(h @ self.W[l] + self.b[l], 0)
            hs.append(h)
        z = h @ self.W[-1] + self.b[-1]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs = e / e.sum(axis=1, keepdims=True)
        loss = None
        if y is not None:
            loss = float(-np.mean(np.log(probs[np.arange(len(y)), y])))
        return loss, probs, hs

    def backward(self, probs: np.ndarray, hs: list, y: np.ndarray):
        """Gradients (dWs, dbs) of the mean cross-entropy."""
        m = probs.shape[0]
        dz = probs.copy()
        dz[np.arange(m), y] -= 1
        dz /= m
        dWs, dbs = [None] * self.L, [None] * self.L
        for l in range(self.L - 1, -1, -1):
            dWs[l] = hs[l].T @ dz
            dbs[l] = dz.sum(axis=0, keepdims=True)
            if l > 0:
                dz = (dz @ self.W[l].T) * (hs[l] > 0)
        return dWs, dbs

    def update(self, dWs, dbs) -> None:
        params, grads = self.W + self.b, dWs + dbs
        if self.optimizer == "sgd":
            for p, g in zip(params, grads):
                p -= self.lr * g
            return
        self.t += 1
        c1, c2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        for p, g, v, s in zip(params, grads, self.v, self.s):
            v *= self.beta1
            v += (1 - self.beta1) * g
            s *= self.beta2
            s += (1 - self.beta2) * g * g
            p -= self.lr * (v / c1) / (np.sqrt(s / c2) + self.eps)

    def train_step(self, X: np.ndarray, y: np.ndarray) -> float:
        """Forward, backward and update on one minibatch; returns the loss before the update."""
        loss, probs, hs = self.forward(X, y)
        self.update(*self.backward(probs, hs, y))
        return loss

    def logits(self, X: np.ndarray) -> np.ndarray:
        h = X
        for l in range(self.L - 1):
            h = np.maximum(h @ self.W[l] + self.b[l], 0)
        return h @ self.W[-1] + self.b[-1]
