"""Batch normalisation on the C++ ``batchnorm_forward`` / ``batchnorm_backward`` kernels."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._base import ParameterLayer, as_float, as_int, register


class _BatchNorm(ParameterLayer):
    _param_attrs = (("gamma", "dgamma"), ("beta", "dbeta"))
    _buffer_attrs = ("running_mean", "running_var")
    _ndim = 2
    _what = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = as_int(num_features, "num_features", 1)
        self.eps = as_float(eps, "eps", 0.0, np.inf, lo_open=True, hi_open=True)
        self.momentum = as_float(momentum, "momentum", 0.0, 1.0)
        self.gamma = np.ones(self.num_features)
        self.beta = np.zeros(self.num_features)
        self.running_mean = np.zeros(self.num_features)
        self.running_var = np.ones(self.num_features)
        self.dgamma: np.ndarray | None = None
        self.dbeta: np.ndarray | None = None
        self._cache: tuple | None = None

    @property
    def name(self) -> str:
        return f"{type(self).__name__}({self.num_features})"

    def config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        training = self._mode(training)
        x = self._input(x, self._ndim, self._what)
        if x.shape[1] != self.num_features:
            raise self._error(f"input has {x.shape[1]} features/channels, expected num_features={self.num_features}")
        if training and x.size // x.shape[1] < 2:
            raise self._error(
                f"training needs more than one value per channel to estimate a variance, got input shape {x.shape}"
                " (use a larger batch, or eval mode)"
            )
        y, mean, invstd = _core.batchnorm_forward(
            x, self.gamma, self.beta, self.running_mean, self.running_var, training, self.eps, self.momentum
        )
        self._cache = (x, mean, invstd, training)
        return self._remember_output(y)

    def backward(self, grad) -> np.ndarray:
        g = self._grad(grad)
        x, mean, invstd, training = self._cache
        dx, self.dgamma, self.dbeta = _core.batchnorm_backward(g, x, mean, invstd, self.gamma, training)
        return dx


@register
class BatchNorm1D(_BatchNorm):
    """Batch normalisation of (N, num_features) inputs over the batch.

    Training mode normalises with the batch mean and (biased) variance and
    updates ``running_mean`` / ``running_var`` (unbiased variance) with
    ``momentum``; evaluation mode uses the running statistics. Parameters
    ``gamma`` (ones) and ``beta`` (zeros); gradients ``dgamma``, ``dbeta``.
    """

    _ndim = 2
    _what = "(N, num_features)"


@register
class BatchNorm2D(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs per channel over (N, H, W);
    otherwise as :class:`BatchNorm1D`."""

    _ndim = 4
    _what = "(N, C, H, W)"
