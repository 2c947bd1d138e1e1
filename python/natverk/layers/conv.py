"""2-D convolution and pooling layers on NCHW arrays (C++ conv2d / pool2d kernels)."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._base import INT64_MAX, Layer, ParameterLayer, as_int, as_pair, as_seed, kaiming_normal, register


def _spatial_check(layer: Layer, x: np.ndarray, kernel: tuple[int, int], padding: tuple[int, int],
                   dilation: tuple[int, int] = (1, 1)) -> None:
    eff = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    # Python ints never overflow, but the kernels compute these sizes in int64
    # (cpp/common/shape.h): say so here, in the layer's words, with the same wording.
    if max(eff) > INT64_MAX:
        raise layer._error(f"dilation {dilation} makes the effective kernel size overflow int64"
                           f" (dilation * (kernel - 1) + 1 with kernel {kernel})")
    if max(padded) > INT64_MAX:
        raise layer._error(f"padding {padding} makes the padded input size overflow int64"
                           f" (input + 2 * padding with input {x.shape[2:]})")
    if padded[0] < eff[0] or padded[1] < eff[1]:
        raise layer._error(
            f"kernel {eff[0]}x{eff[1]} (after dilation) is larger than the input {x.shape[2]}x{x.shape[3]}"
            f" (padded: {padded[0]}x{padded[1]})"
        )


@register
class Conv2D(ParameterLayer):
    """2-D convolution (cross-correlation, as every deep-learning library) on
    (N, in_channels, H, W) inputs.

    ``W`` is (out_channels, in_channels / groups, kH, kW), Kaiming-normal with
    fan_in = in_channels / groups * kH * kW; ``b`` is (out_channels,) zeros or
    None. ``kernel_size``, ``stride``, ``padding`` (zeros) and ``dilation``
    take an int or an (h, w) pair. Gradients: ``dW``, ``db``. Output
    (N, out_channels, Ho, Wo) with Ho = (H + 2 ph - dh (kH - 1) - 1) // sh + 1.
    """

    _param_attrs = (("W", "dW"), ("b", "db"))
    _decay_attrs = ("W",)  # the thesis' L2 decays weights, not biases

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        seed: int | None = None,
    ):
        super().__init__()
        self.in_channels = as_int(in_channels, "in_channels", 1)
        self.out_channels = as_int(out_channels, "out_channels", 1)
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(stride, "stride", 1)
        self.padding = as_pair(padding, "padding", 0)
        self.dilation = as_pair(dilation, "dilation", 1)
        self.groups = as_int(groups, "groups", 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide in_channels={self.in_channels} and out_channels={self.out_channels}"
            )
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bool(bias)
        self.seed = as_seed(seed)
        cin = self.in_channels // self.groups
        kh, kw = self.kernel_size
        self.W = kaiming_normal((self.out_channels, cin, kh, kw), cin * kh * kw, self.seed,
                                f"{self.name}: the weight W for kernel_size {self.kernel_size}")
        self.b = np.zeros(self.out_channels) if self.use_bias else None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None
        self._x: np.ndarray | None = None

    @property
    def name(self) -> str:
        return f"Conv2D({self.in_channels}->{self.out_channels})"

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.use_bias,
            "seed": self.seed,
        }

    def _geometry(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._input(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise self._error(f"input has {x.shape[1]} channels, expected in_channels={self.in_channels}")
        _spatial_check(self, x, self.kernel_size, self.padding, self.dilation)
        try:
            y = _core.conv2d_forward(x, self.W, self.b, **self._geometry())
        except (TypeError, ValueError) as err:
            raise self._wrap_kernel_error(err) from None
        self._x = x
        return self._remember_output(y)

    def backward(self, grad) -> np.ndarray:
        return self._backward(grad, need_dx=True)

    def backward_parameters(self, grad) -> None:
        self._backward(grad, need_dx=False)  # dW and db only: no transposed convolution

    def _backward(self, grad, need_dx: bool):
        g = self._grad(grad)
        dx, self.dW, self.db = _core.conv2d_backward(g, self._x, self.W, **self._geometry(), need_dx=need_dx,
                                                     need_db=self.use_bias)
        return dx


class _Pool2D(Layer):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", 1)
        self.padding = as_pair(padding, "padding", 0)
        if 2 * self.padding[0] > self.kernel_size[0] or 2 * self.padding[1] > self.kernel_size[1]:
            raise ValueError(f"padding {self.padding} must be at most half the kernel size {self.kernel_size}")
        self._x: np.ndarray | None = None

    def config(self) -> dict:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def _prepare(self, x) -> np.ndarray:
        x = self._input(x, 4, "(N, C, H, W)")
        _spatial_check(self, x, self.kernel_size, self.padding)
        self._x = x
        return x

    def _args(self) -> tuple:
        return (self.kernel_size, self.stride, self.padding)


@register
class MaxPool2D(_Pool2D):
    """Max over kH x kW windows (stride defaults to the kernel size; padding is
    -inf, at most half the kernel)."""

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._prepare(x)
        y, self._argmax = _core.maxpool2d_forward(x, *self._args())
        return self._remember_output(y)

    def backward(self, grad) -> np.ndarray:
        return _core.maxpool2d_backward(self._grad(grad), self._argmax, self._x, *self._args())


@register
class AvgPool2D(_Pool2D):
    """Mean over kH x kW windows (stride defaults to the kernel size; zero
    padding counts in the divisor)."""

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._prepare(x)
        return self._remember_output(_core.avgpool2d_forward(x, *self._args()))

    def backward(self, grad) -> np.ndarray:
        return _core.avgpool2d_backward(self._grad(grad), self._x, *self._args())


@register
class GlobalAvgPool2D(Layer):
    """Mean over each channel's plane: (N, C, H, W) -> (N, C)."""

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._input(x, 4, "(N, C, H, W)")
        self._x = x
        return self._remember_output(_core.global_avgpool_forward(x))

    def backward(self, grad) -> np.ndarray:
        return _core.global_avgpool_backward(self._grad(grad), self._x)
