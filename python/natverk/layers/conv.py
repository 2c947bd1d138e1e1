"""2-D convolution and pooling layers on NCHW arrays (C++ conv2d / pool2d kernels)."""

from __future__ import annotations

import numpy as np

from .. import _core
from ._base import (
    INT64_MAX,
    UNSET,
    Layer,
    ParameterLayer,
    as_int,
    as_layer_activation,
    as_pair,
    as_seed,
    kaiming_normal,
    register,
)


def channels_last_hint(shape: tuple, channels: int, name: str) -> str:
    """A hint for a 4-D ``shape`` that looks channels-last (N, H, W, C): its last axis has the
    expected channel count and its second does not. Empty otherwise."""
    if len(shape) == 4 and shape[3] == channels and shape[1] != channels:
        return (f"; {name} of shape {tuple(shape)} looks channels-last (N, H, W, C), but natverk's layers take "
                f"NCHW (N, C, H, W): pass {name}.transpose(0, 3, 1, 2)")
    return ""


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
    (N, in_channels, H, W) inputs, optionally followed by an activation.

    ``W`` is (out_channels, in_channels / groups, kH, kW), Kaiming-normal with
    fan_in = in_channels / groups * kH * kW; ``b`` is (out_channels,) zeros or
    None. ``kernel_size``, ``stride``, ``padding`` (zeros) and ``dilation``
    take an int or an (h, w) pair. Gradients: ``dW``, ``db``. Output
    (N, out_channels, Ho, Wo) with Ho = (H + 2 ph - dh (kH - 1) - 1) // sh + 1.

    Two ways to build one:

    * ``Conv2D(in_channels, out_channels, kernel_size, ...)``: the weights exist at once;
    * ``Conv2D(filters, kernel_size, ...)`` (Keras' shorthand: two positional sizes) or
      ``Conv2D(filters=..., kernel_size=...)``: ``in_channels`` is read from the first
      input and the weights are made then -- the same weights the full form with that
      ``in_channels`` and ``seed`` would have had.

    ``activation`` ("relu", "sigmoid", "tanh", any case; None or "linear" for none)
    applies that function to the output: ``Conv2D(16, 3, activation="relu")`` computes
    what ``Conv2D(..., 16, 3)`` followed by ``ReLU()`` computes, bit for bit.
    Inputs are NCHW; channels-last images (N, H, W, C) need ``x.transpose(0, 3, 1, 2)``.
    """

    _param_attrs = (("W", "dW"), ("b", "db"))
    _decay_attrs = ("W",)  # the thesis' L2 decays weights, not biases

    def __init__(
        self,
        in_channels=UNSET,
        out_channels=UNSET,
        kernel_size=UNSET,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        seed: int | None = None,
        *,
        filters: int | None = None,
        activation: str | None = None,
    ):
        super().__init__()
        if filters is not None:
            if out_channels is not UNSET:
                raise TypeError("give out_channels or filters, not both")
            out_channels = filters
        elif kernel_size is UNSET and out_channels is not UNSET:
            # Conv2D(filters, kernel_size): two positional sizes are Keras' (filters, kernel_size)
            in_channels, out_channels, kernel_size = UNSET, in_channels, out_channels
        if out_channels is UNSET or kernel_size is UNSET:
            raise TypeError("Conv2D needs its sizes: Conv2D(in_channels, out_channels, kernel_size) or "
                            "Conv2D(filters, kernel_size)")
        self.in_channels: int | None = None if in_channels is UNSET else as_int(in_channels, "in_channels", 1)
        self.out_channels = as_int(out_channels, "filters" if filters is not None else "out_channels", 1)
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(stride, "stride", 1)
        self.padding = as_pair(padding, "padding", 0)
        self.dilation = as_pair(dilation, "dilation", 1)
        self.groups = as_int(groups, "groups", 1)
        if self.in_channels is not None and (self.in_channels % self.groups or self.out_channels % self.groups):
            raise ValueError(
                f"groups={self.groups} must divide in_channels={self.in_channels} and out_channels={self.out_channels}"
            )
        if self.out_channels % self.groups:  # in_channels is checked when the first input gives it
            raise ValueError(f"groups={self.groups} must divide out_channels={self.out_channels}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bool(bias)
        self.seed = as_seed(seed)
        self.activation = as_layer_activation(activation)
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None
        self._x: np.ndarray | None = None
        self._h: np.ndarray | None = None
        if self.in_channels is not None:
            self._build(self.in_channels)

    def _build(self, in_channels: int) -> None:
        """Make W and b for ``in_channels`` input channels (at construction or at the first forward)."""
        if in_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide in_channels={in_channels} and out_channels={self.out_channels}"
            )
        self.in_channels = in_channels
        cin = self.in_channels // self.groups
        kh, kw = self.kernel_size
        self.W = kaiming_normal((self.out_channels, cin, kh, kw), cin * kh * kw, self.seed,
                                f"{self.name}: the weight W for kernel_size {self.kernel_size}")
        self.b = np.zeros(self.out_channels) if self.use_bias else None
        if self._dtype is not None:  # astype() was called before the sizes were known
            self._cast(self._dtype)

    @property
    def built(self) -> bool:
        """Whether the weights exist (False for ``Conv2D(filters, kernel_size)`` until its first input)."""
        return self.W is not None

    @property
    def name(self) -> str:
        act = f", {self.activation}" if self.activation else ""
        return f"Conv2D({self.in_channels if self.in_channels is not None else '?'}->{self.out_channels}{act})"

    def config(self) -> dict:
        out = {
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
        if self.in_channels is None:  # not built yet: the shorthand's form
            del out["in_channels"], out["out_channels"]
            out = {"filters": self.out_channels, **out}
        if self.activation is not None:  # absent when None: older files and configs stay the same
            out["activation"] = self.activation
        return out

    def _geometry(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        if self.W is None:
            shape = np.shape(x)
            if len(shape) != 4:
                raise self._error(f"expected a 4-D input (N, C, H, W), got shape {shape}")
            self._build(as_int(shape[1], "in_channels", 1))
        x = self._input(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise self._error(f"input has {x.shape[1]} channels, expected in_channels={self.in_channels}"
                              f"{channels_last_hint(x.shape, self.in_channels, 'x')}")
        _spatial_check(self, x, self.kernel_size, self.padding, self.dilation)
        try:
            y = _core.conv2d_forward(x, self.W, self.b, **self._geometry())
        except (TypeError, ValueError) as err:
            raise self._wrap_kernel_error(err) from None
        self._x = x
        if self.activation is not None:
            # the activation layers' kernel, on the convolution's output: what Conv2D + ReLU() computes
            y = self._h = _core.activation_forward(y, self.activation)
        return self._remember_output(y)

    def backward(self, grad) -> np.ndarray:
        return self._backward(grad, need_dx=True)

    def backward_parameters(self, grad) -> None:
        self._backward(grad, need_dx=False)  # dW and db only: no transposed convolution

    def _backward(self, grad, need_dx: bool):
        g = self._grad(grad)
        if self.activation is not None:
            g = _core.activation_backward(g, self._h, self.activation)
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
