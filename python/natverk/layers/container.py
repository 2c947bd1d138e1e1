"""Containers: :class:`Stack` (layers applied in order) and :class:`Residual`.

:class:`natverk.models.Sequential` is a :class:`Stack` with training,
prediction and saving on top.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ._base import _INPUT_TRUSTED, Layer, Param, layer_from_spec, layer_to_spec, prefixed, register


@register
class Stack(Layer):
    """Layers applied one after the other; itself a :class:`Layer`.

    Parameter and buffer names are prefixed with the layer's index
    (``"0.W"``, ``"2.running_mean"``; nested containers nest: ``"3.0.W"``).
    A layer's error is re-raised with its index: ``"layer 2: Conv2D(...): ..."``.
    """

    def __init__(self, *layers: Layer):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a natverk Layer, got {type(layer).__name__}")
        self.layers: list[Layer] = list(layers)

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        if set(config) != {"layers"} or not isinstance(config["layers"], list):
            raise ValueError(f"{cls.__name__} config must be {{'layers': [...]}}, got keys {sorted(config)}")
        return cls(*(layer_from_spec(spec) for spec in config["layers"]))

    def config(self) -> dict:
        return {"layers": [layer_to_spec(layer) for layer in self.layers]}

    def __repr__(self) -> str:
        inner = "".join("\n  " + f"({i}) {layer!r}".replace("\n", "\n  ") for i, layer in enumerate(self.layers))
        return f"{type(self).__name__}({inner}\n)" if self.layers else f"{type(self).__name__}()"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def children(self) -> list[tuple[str, Layer]]:
        return [(f"{i}.", layer) for i, layer in enumerate(self.layers)]

    # -- modes and dtype -----------------------------------------------------------
    @property
    def has_parameters(self) -> bool:  # type: ignore[override]
        return any(layer.has_parameters for layer in self.layers)

    @property
    def dtype(self) -> np.dtype | None:
        for layer in self.layers:
            if layer.dtype is not None:
                return layer.dtype
        return None

    def astype(self, dtype) -> Stack:
        for layer in self.layers:
            layer.astype(dtype)
        self._dtype = np.dtype(dtype)
        return self

    def train(self) -> Stack:
        self.training = True
        for layer in self.layers:
            layer.train()
        return self

    def eval(self) -> Stack:
        self.training = False
        for layer in self.layers:
            layer.eval()
        return self

    # -- computation ---------------------------------------------------------------
    def forward(self, x, training: bool | None = None) -> np.ndarray:
        training = self._mode(training)
        for i, layer in enumerate(self.layers):
            # layers after the first get our own kernels' output: no NaN/Inf re-scan
            token = _INPUT_TRUSTED.set(True) if i > 0 else None
            try:
                x = layer.forward(x, training)
            except (TypeError, ValueError) as err:
                raise prefixed(err, f"layer {i}: ") from None
            finally:
                if token is not None:
                    _INPUT_TRUSTED.reset(token)
        return x

    def backward(self, grad, need_input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate ``grad`` through every layer; returns the input gradient. Training
        passes ``need_input_grad=False``: the first layer then computes its parameter
        gradients only (returns None), which saves a whole GEMM or transposed convolution."""
        for i in range(len(self.layers) - 1, -1, -1):
            try:
                if i == 0 and not need_input_grad:
                    self.layers[0].backward_parameters(grad)
                    return None
                grad = self.layers[i].backward(grad)
            except (TypeError, ValueError, RuntimeError) as err:
                raise prefixed(err, f"layer {i}: ") from None
        return grad

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
        return [param.renamed(p + param[0]) if isinstance(param, Param) else (p + param[0], *param[1:])
                for p, layer in self.children() for param in layer.parameters()]

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        return [(p + n, v) for p, layer in self.children() for n, v in layer.buffers()]


@register
class Residual(Layer):
    """``y = x + f(x)`` with ``f = Stack(*layers)``; f must keep the shape.

    Backward adds the identity path: ``dx = grad + f.backward(grad)``.
    Parameter names are f's (``"0.W"``, ...), prefixed by the enclosing
    container's index.
    """

    def __init__(self, *layers: Layer):
        super().__init__()
        self.f = Stack(*layers)

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(*Stack.from_config(config).layers)

    def config(self) -> dict:
        return self.f.config()

    def __repr__(self) -> str:
        return "Residual" + repr(self.f)[len("Stack"):]

    def children(self) -> list[tuple[str, Layer]]:
        return self.f.children()

    @property
    def has_parameters(self) -> bool:  # type: ignore[override]
        return self.f.has_parameters

    @property
    def dtype(self) -> np.dtype | None:
        return self.f.dtype

    def astype(self, dtype) -> Residual:
        self.f.astype(dtype)
        self._dtype = np.dtype(dtype)
        return self

    def train(self) -> Residual:
        self.training = True
        self.f.train()
        return self

    def eval(self) -> Residual:
        self.training = False
        self.f.eval()
        return self

    def forward(self, x, training: bool | None = None) -> np.ndarray:
        x = self._input(x, None, "")
        fx = self.f.forward(x, self._mode(training))
        if fx.shape != x.shape:
            raise self._error(f"the residual branch maps shape {x.shape} to {fx.shape}; it must keep the shape")
        # The skip connection's sum, by the residual kernel (cpp/residual).
        return self._remember_output(
            _core.add(np.ascontiguousarray(x, dtype=fx.dtype), np.ascontiguousarray(fx))
        )

    def backward(self, grad) -> np.ndarray:
        g = self._grad(grad)
        dfx = np.ascontiguousarray(self.f.backward(g))
        return _core.add(np.ascontiguousarray(g, dtype=dfx.dtype), dfx)

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
        return self.f.parameters()

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        return self.f.buffers()
