"""The :class:`Layer` base class and the checks every layer shares.

Conventions (every layer follows them):

* ``forward(x, training=None)`` returns the output and keeps what backward
  needs; ``training=None`` means "the layer's own mode" (``layer.training``,
  True for a new layer, switched by :meth:`Layer.train` / :meth:`Layer.eval`),
  so ``forward(x)`` on a fresh layer is ``forward(x, training=True)``.
* ``backward(grad)`` takes dL/d(output of the last forward) and returns
  dL/d(input); parameter gradients are stored on the layer (``dW``, ``db``,
  ...), overwritten by each call.
* ``parameters()`` lists ``(name, value, gradient)`` triples (the gradient is
  None until the first backward); ``buffers()`` lists ``(name, array)`` pairs
  of state that is saved but not trained (batch-norm running statistics,
  dropout's call counter).
* ``config()`` is a JSON-able dict of constructor arguments:
  ``type(layer).from_config(layer.config())`` builds an equivalent layer.

dtype policy
------------
Parameters are created in float64. The first ``forward`` fixes a layer's
dtype from its input: a float32 input casts the parameters to float32 once
and for all, any other input (float64, integers, float16) makes the layer
float64. Later inputs of the other dtype are converted to the layer's dtype,
so a model never flips its parameters back and forth and its optimizer state
keeps one dtype. :meth:`Layer.astype` sets the dtype explicitly. Layers
without parameters simply compute in float32 for float32 inputs and in
float64 otherwise.

Errors
------
A wrong input raises ``ValueError`` (wrong rank, channel count, spatial size,
NaN/Inf) or ``TypeError`` (non-numeric) whose message starts with the layer,
e.g. ``"Conv2D(3->8): input has 1 channels, expected in_channels=3"``. Inside
a :class:`~natverk.models.Sequential` the message is prefixed with the layer's
index as well.
"""

from __future__ import annotations

import contextvars
import numbers
from typing import Any, ClassVar

import numpy as np

from .._validation import first_non_finite

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Registry of layer classes by name, used to rebuild saved models.
_REGISTRY: dict[str, type[Layer]] = {}


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make ``cls`` loadable by name from a saved model."""
    _REGISTRY[cls.__name__] = cls
    return cls


def layer_class(name: str) -> type[Layer]:
    """The registered layer class called ``name`` (ValueError if unknown)."""
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown layer class {name!r}; known: {sorted(_REGISTRY)}")
    return cls


def layer_to_spec(layer: Layer) -> dict:
    """``{"class": name, "config": {...}}``: what a saved model stores per layer."""
    return {"class": type(layer).__name__, "config": layer.config()}


def layer_from_spec(spec: Any) -> Layer:
    """Rebuild a layer from :func:`layer_to_spec`'s dict, validating it (ValueError)."""
    if not isinstance(spec, dict) or set(spec) != {"class", "config"}:
        raise ValueError(f"a layer spec must be a dict with keys 'class' and 'config', got {spec!r:.200}")
    cls = layer_class(spec["class"])
    config = spec["config"]
    if not isinstance(config, dict):
        raise ValueError(f"{spec['class']}: config must be a dict, got {type(config).__name__}")
    try:
        return cls.from_config(config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build {spec['class']} from config {config!r:.300}: {err}") from None


def prefixed(err: Exception, prefix: str) -> Exception:
    """``err`` again, of the same type, with ``prefix`` before its message."""
    try:
        return type(err)(f"{prefix}{err}")
    except Exception:  # an exception type with a special constructor
        return err


# ---------------------------------------------------------------- argument checks


class _Unset:
    """The default of a size argument left out (``Dense(units)``, ``Conv2D(filters, kernel_size)``):
    not None, so that an explicit ``Dense(None, 3)`` is still refused as the bad size it is."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self):
        return (_Unset, ())


UNSET = _Unset()


def as_layer_activation(activation: Any) -> str | None:
    """A layer's ``activation=``: the kernels' name, or None for none (any case; see
    :func:`natverk.activations.activation_name`)."""
    from ..activations import activation_name

    return activation_name(activation, "activation", allow_none=True)


INT64_MAX = 2**63 - 1


def as_int(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def as_pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints -> (h, w), each >= minimum and <= 2**63 - 1.

    The upper bound is the kernels' int64: a larger Python int would otherwise only
    fail inside natverk._core, with pybind11's "incompatible function arguments"."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        return (as_int(value[0], name, minimum, INT64_MAX), as_int(value[1], name, minimum, INT64_MAX))
    v = as_int(value, name, minimum, INT64_MAX)
    return (v, v)


def as_float(value: Any, name: str, lo: float, hi: float, hi_open: bool = False, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    bad = not np.isfinite(v) or v < lo or v > hi or (hi_open and v == hi) or (lo_open and v == lo)
    if bad:
        interval = ("(" if lo_open else "[") + f"{lo}, {hi}" + (")" if hi_open else "]")
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def as_seed(seed: Any, name: str = "seed") -> int | None:
    if seed is None:
        return None
    return as_int(seed, name, 0)


# True while a container runs its second and later layers: their input is the previous
# layer's output, made by our own kernels from an input the container already checked, so the
# NaN/Inf scan (a full pass over every activation) is skipped there. A NaN born inside the
# network (an overflow) still propagates to the output, and fit() stops on a non-finite loss.
_INPUT_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("natverk_input_trusted", default=False)


def fresh_seed() -> int:
    """A random 63-bit seed from the OS entropy pool."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))


def kaiming_normal(shape: tuple[int, ...], fan_in: int, seed: int | None, what: str = "the weight") -> np.ndarray:
    """He/Kaiming-normal initial weights: N(0, 2 / fan_in), float64.

    A shape whose byte count exceeds what NumPy can index raises ValueError naming ``what``
    (NumPy's own "array is too big" / "Maximum allowed dimension exceeded" named nothing);
    one that fits but exceeds memory raises NumPy's MemoryError ("Unable to allocate ...")."""
    nbytes = 8
    for side in shape:
        nbytes *= side
    if nbytes > INT64_MAX:
        raise ValueError(f"{what}: an array of shape {tuple(shape)} would need {nbytes} bytes, more than an array "
                         f"can hold (2**63 - 1)")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    w *= np.sqrt(2.0 / fan_in)  # in place: no second array of the layer's size (bit-identical)
    return w


def float_dtype_of(dtype: np.dtype) -> np.dtype:
    """The compute dtype for an input dtype: float32 stays, everything else float64."""
    return FLOAT_DTYPES[0] if dtype == FLOAT_DTYPES[0] else FLOAT_DTYPES[1]


# ---------------------------------------------------------------- the base class


class Layer:
    """Base class of all layers; see the module docstring for the conventions."""

    #: Whether the layer has trainable parameters (and so a fixed dtype).
    has_parameters: ClassVar[bool] = False

    def __init__(self) -> None:
        self.training = True
        self._dtype: np.dtype | None = None  # fixed by the first forward (layers with parameters)
        self._out_shape: tuple[int, ...] | None = None
        self._out_dtype: np.dtype | None = None

    # -- to override -------------------------------------------------------------
    def forward(self, x, training: bool | None = None) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad) -> np.ndarray:
        raise NotImplementedError

    def backward_parameters(self, grad) -> None:
        """Backward for the network's first layer during training: the parameter gradients
        only, when nobody needs the input gradient. Layers whose input gradient costs real
        work (Dense, Conv2D) skip it; the rest run their full backward."""
        self.backward(grad)

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
        return []

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        return []

    def config(self) -> dict:
        return {}

    def _cast(self, dtype: np.dtype) -> None:
        """Convert parameters, buffers and gradients to ``dtype`` (layers with parameters)."""

    def children(self) -> list[tuple[str, Layer]]:
        """Sub-layers with the prefix their parameter names get (containers only)."""
        return []

    # -- shared machinery --------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(**config)

    @property
    def name(self) -> str:
        """A short description used in error messages."""
        return type(self).__name__

    @property
    def dtype(self) -> np.dtype | None:
        """The parameters' dtype once fixed (None before the first forward / astype)."""
        if not self.has_parameters:
            return None
        if self._dtype is not None:
            return self._dtype
        params = self.parameters()
        return params[0][1].dtype if params else None

    def astype(self, dtype) -> Layer:
        """Fix the layer's dtype (float32 or float64), converting its parameters; returns self."""
        dt = np.dtype(dtype)
        if dt not in FLOAT_DTYPES:
            raise TypeError(f"{self.name}: dtype must be float32 or float64, got {dt}")
        self._cast(dt)
        self._dtype = dt
        return self

    def train(self) -> Layer:
        """Training mode (the default): batch statistics, dropout active."""
        self.training = True
        return self

    def eval(self) -> Layer:
        """Evaluation mode: running statistics, dropout off."""
        self.training = False
        return self

    def _mode(self, training: bool | None) -> bool:
        return self.training if training is None else bool(training)

    def _error(self, message: str) -> ValueError:
        return ValueError(f"{self.name}: {message}")

    def _input(self, x, ndim: int | tuple[int, ...] | None, what: str) -> np.ndarray:
        """Validate and convert a forward input: numeric, rank ``ndim``, finite,
        C-contiguous, in the layer's dtype (fixing it on first use)."""
        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except Exception as err:  # ragged lists and the like
                raise TypeError(f"{self.name}: input must be a numeric array: {err}") from None
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{self.name}: input must be a real numeric array, got dtype {x.dtype}")
        ndims = (ndim,) if isinstance(ndim, int) else ndim
        if ndims is not None and x.ndim not in ndims:
            raise self._error(f"expected a {' or '.join(f'{d}-D' for d in ndims)} input {what}, got shape {x.shape}")
        if x.ndim == 0:
            raise self._error("input must have a batch axis, got a scalar")
        if x.size == 0:
            raise self._error(f"input is empty (shape {x.shape})")
        if self.has_parameters:
            if self._dtype is None:
                self.astype(float_dtype_of(x.dtype))
            dtype = self._dtype
        else:
            dtype = float_dtype_of(x.dtype)
        x = np.ascontiguousarray(x, dtype=dtype)
        if not _INPUT_TRUSTED.get():
            bad = first_non_finite(x)
            if bad is not None:
                raise self._error(f"input contains NaN or Inf (first at index {bad})")
        return x

    def _wrap_kernel_error(self, err: Exception) -> Exception:
        return prefixed(err, f"{self.name}: ")

    def _remember_output(self, y: np.ndarray) -> np.ndarray:
        self._out_shape, self._out_dtype = y.shape, y.dtype
        return y

    def _grad(self, grad) -> np.ndarray:
        """Validate a backward input against the last forward's output."""
        if self._out_shape is None:
            raise RuntimeError(f"{self.name}: backward() called before forward()")
        g = np.asarray(grad)
        if g.dtype.kind not in "fiu":
            raise TypeError(f"{self.name}: grad must be a real numeric array, got dtype {g.dtype}")
        if g.shape != self._out_shape:
            raise self._error(f"grad has shape {g.shape} but the last forward's output has shape {self._out_shape}")
        return np.ascontiguousarray(g, dtype=self._out_dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def set_param(layer: Layer, attr: str, value: np.ndarray) -> None:
    """Overwrite parameter/buffer ``attr`` of ``layer`` in place (shape and dtype kept)."""
    current = getattr(layer, attr)
    value = np.asarray(value)
    if value.shape != current.shape:
        raise ValueError(f"{layer.name}: {attr} must have shape {current.shape}, got {value.shape}")
    current[...] = value


class Param(tuple):
    """A ``(name, value, gradient)`` triple that also carries ``decay``: whether weight
    decay (the thesis' L2, eq. 9) applies to it. A plain 3-tuple in every other way,
    so ``for name, w, g in model.parameters()`` keeps working."""

    def __new__(cls, name: str, value, grad, decay: bool):
        self = super().__new__(cls, (name, value, grad))
        self.decay = bool(decay)
        return self

    def renamed(self, name: str) -> Param:
        """The same parameter under ``name`` (a container adds its prefix)."""
        return Param(name, self[1], self[2], self.decay)


class ParameterLayer(Layer):
    """A layer with trainable parameters, listed in ``_param_attrs`` as
    ``(attribute, gradient attribute)`` pairs (an attribute may be None, e.g.
    a disabled bias) and non-trained state in ``_buffer_attrs``. The
    parameters in ``_decay_attrs`` are weights in the thesis' sense: L2 /
    weight decay applies to them, to no other (biases, gamma, beta)."""

    has_parameters = True
    _param_attrs: ClassVar[tuple[tuple[str, str], ...]] = ()
    _buffer_attrs: ClassVar[tuple[str, ...]] = ()
    _decay_attrs: ClassVar[tuple[str, ...]] = ()

    def parameters(self) -> list[Param]:
        return [Param(a, getattr(self, a), getattr(self, g), a in self._decay_attrs)
                for a, g in self._param_attrs if getattr(self, a) is not None]

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        return [(a, getattr(self, a)) for a in self._buffer_attrs]

    def _cast(self, dtype: np.dtype) -> None:
        for a, g in self._param_attrs:
            for attr in (a, g):
                v = getattr(self, attr)
                if v is not None and v.dtype != dtype:
                    setattr(self, attr, np.ascontiguousarray(v, dtype=dtype))
        for attr in self._buffer_attrs:
            v = getattr(self, attr)
            if v.dtype.kind == "f" and v.dtype != dtype:
                setattr(self, attr, np.ascontiguousarray(v, dtype=dtype))
