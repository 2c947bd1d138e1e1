"""Input checks shared by the MATLAB-style API.

Every public function validates its arguments here, once, and raises a
``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape
or value) whose message names the argument. The C++ kernels validate again at
the binding boundary, so nothing malformed ever reaches them.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping

import numpy as np

from . import _core

_WEIGHT_KEY = re.compile(r"^W(\d+)$")


def num_layers(parameters: Mapping[str, np.ndarray]) -> int:
    """Number of layers L of a parameter map holding ``W1..WL`` and ``b1..bL``."""
    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a dict of arrays, got {type(parameters).__name__}")
    indices = sorted(int(m.group(1)) for k in parameters if (m := _WEIGHT_KEY.match(str(k))))
    if not indices:
        raise ValueError("parameters holds no weight matrices (keys W1, W2, ...)")
    L = len(indices)
    if indices != list(range(1, L + 1)):
        raise ValueError(f"parameters must hold W1..W{L} without gaps, found {['W%d' % i for i in indices]}")
    return L


def network_layout(parameters: Mapping[str, np.ndarray]) -> tuple[np.dtype, int]:
    """``(dtype, L)``: check that W_l, b_l (l = 1..L) chain into a network and share one float
    dtype. The one network check of every MATLAB-style function, run once per call.

    ``_core._network_layout`` answers for a valid dict in about a microsecond (this check in
    Python took 10 us on a 4-layer net with Adam's state, issue 11's per-call overhead); anything
    it does not accept comes here, where the message is made."""
    fast = _core._network_layout(parameters)
    if fast is not None:
        return fast
    L = num_layers(parameters)
    dtype = None
    prev_out = None
    for l in range(1, L + 1):
        W = parameters[f"W{l}"]
        b = parameters.get(f"b{l}")
        if b is None:
            raise ValueError(f"parameters has W{l} but no b{l}")
        for name, arr in ((f"W{l}", W), (f"b{l}", b)):
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"parameters['{name}'] must be a NumPy array, got {type(arr).__name__}")
            if arr.dtype not in (np.float32, np.float64):
                raise TypeError(f"parameters['{name}'] must be float32 or float64, got {arr.dtype}")
            if dtype is None:
                dtype = arr.dtype
            elif arr.dtype != dtype:
                raise TypeError(f"parameters['{name}'] is {arr.dtype} but W1 is {dtype}: use one dtype")
        if W.ndim != 2:
            raise ValueError(f"parameters['W{l}'] must be 2-D (n_{l - 1} x n_{l}), got shape {W.shape}")
        if b.shape not in ((W.shape[1],), (1, W.shape[1])):
            raise ValueError(f"parameters['b{l}'] must have shape (1, {W.shape[1]}), got {b.shape}")
        if prev_out is not None and W.shape[0] != prev_out:
            raise ValueError(f"parameters['W{l}'] has {W.shape[0]} rows but layer {l - 1} has {prev_out} outputs")
        prev_out = W.shape[1]
    return np.dtype(dtype), L


@functools.lru_cache(maxsize=64)
def parameter_names(L: int) -> tuple[tuple[str, str], ...]:
    """``(("W1", "dW1"), ("b1", "db1"), ...)`` in the MATLAB order, made once per depth (the
    MATLAB-style step's per-call overhead, issue 11)."""
    return tuple((name, f"d{name}") for l in range(1, L + 1) for name in (f"W{l}", f"b{l}"))


def network_dtype(parameters: Mapping[str, np.ndarray]) -> np.dtype:
    """Check that W_l, b_l chain into a network and share one float dtype; return it."""
    return network_layout(parameters)[0]


def as_float_dtype(dtype) -> np.dtype:
    """``dtype`` as np.float32 or np.float64, or a TypeError naming it."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def as_inputs(X, dtype: np.dtype, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """X as a C-contiguous 2-D array of `dtype` (rows are examples), finite, non-empty.

    Integer and other float inputs are converted (as MATLAB would); views are
    copied to contiguous memory.
    """
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (examples x features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no examples (shape {X.shape})")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the network's first layer expects {n_features}")
    X = np.ascontiguousarray(X, dtype=dtype)
    bad = first_non_finite(X)
    if bad is not None:
        raise ValueError(f"{name} contains NaN or Inf (first at index {bad})")
    return X


def first_non_finite(X: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN or +-Inf of ``X`` in C order, or None when every value is finite
    (or ``X`` is not a floating-point array). The public entry points' one check of their inputs.

    A C-contiguous float32 / float64 array is scanned in one pass in C++
    (``_core._first_non_finite``), without ``np.isfinite``'s temporary mask the size of X: the
    MATLAB-style step checks its minibatch on every call (issue 11's per-call overhead), and for
    ``fit``'s 12,800 x 784 float32 X the mask was 10 MB of fresh pages on every call.
    """
    if X.dtype.kind != "f":
        return None
    if X.flags.c_contiguous and X.dtype in (np.float32, np.float64):
        first = _core._first_non_finite(X)
        return None if first < 0 else tuple(int(i) for i in np.unravel_index(first, X.shape))
    finite = np.isfinite(X)
    return None if finite.all() else tuple(int(i) for i in np.argwhere(~finite)[0])


def as_labels(y, m: int, n_classes: int, name: str = "y") -> np.ndarray:
    """Integer labels 0..K-1, one per example, as a contiguous int64 vector.

    Accepts a vector, or a MATLAB-style 1 x m row / m x 1 column.
    """
    if type(y) is np.ndarray and y.dtype == np.int64 and y.ndim == 1 and y.flags.c_contiguous:
        pass  # already the kernels' form (the MATLAB-style step's every call): no conversions
    else:
        y = _labels_as_int64(y, name, n_classes)
    if y.shape[0] != m:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {m} examples")
    # one reduction: as unsigned, a negative label is larger than any class count
    if m and y.view(np.uint64).max() >= n_classes:
        i = int(np.argmax((y < 0) | (y >= n_classes)))
        raise ValueError(f"{name}[{i}] = {y[i]} is not a class label in 0..{n_classes - 1}")
    return y


def _labels_as_int64(y, name: str, n_classes: int) -> np.ndarray:
    """``y`` as a contiguous int64 vector, or the TypeError / ValueError of :func:`as_labels`."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)  # whole-number floats, as MATLAB labels often are
        else:
            raise TypeError(f"{name} must hold integer class labels 0..{n_classes - 1}, got dtype {y.dtype}")
    if not (y.ndim == 1 or (y.ndim == 2 and 1 in y.shape)):
        raise ValueError(f"{name} must be a vector of labels, got shape {y.shape}")
    return np.ascontiguousarray(y.reshape(-1), dtype=np.int64)


#: The hidden-layer activations the kernels implement (their names in ``natverk._core``;
#: ``natverk.activations.ACTIVATIONS``): activation_name returns each of them as it is.
ACTIVATION_KERNELS = ("relu", "sigmoid", "tanh")


def as_activation(activation: str) -> str:
    """The kernels' name for ``activation`` (case-insensitive: "ReLU" is "relu"; see
    :func:`natverk.activations.activation_name`, the one place names are read)."""
    if type(activation) is str and activation in ACTIVATION_KERNELS:
        return activation  # the common call, without the import below (a third of this check's time)
    from .activations import activation_name

    return activation_name(activation)


def as_lambda(lambda_: float) -> float:
    if type(lambda_) is float and 0.0 <= lambda_ < math.inf:
        return lambda_  # a finite, non-negative Python float: the common call, checked in two compares
    # float() alone parsed strings ("0.1"), took True as 1.0 and raised OverflowError for 10**400
    if isinstance(lambda_, (str, bytes, bool, np.bool_)) or (isinstance(lambda_, np.ndarray) and lambda_.ndim):
        raise TypeError(f"lambda_ must be a number, got {type(lambda_).__name__}")
    try:
        value = float(lambda_)
    except (TypeError, ValueError):
        raise TypeError(f"lambda_ must be a number, got {type(lambda_).__name__}") from None
    except OverflowError:
        raise ValueError(f"lambda_ = {lambda_!r:.60} is too large for a float") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"lambda_ must be finite and >= 0, got {lambda_}")
    return value


def as_float_array(a, name: str) -> np.ndarray:
    """``a`` as a C-contiguous float array of the same shape (0-d included), for the elementwise
    functions (relu, sigmoid, tanh, softmax): float32 stays float32, any other real dtype
    (integers, bool, float16, lists of numbers) becomes float64.

    Complex, string and object data raise TypeError naming ``name``: numpy's own conversion
    silently dropped imaginary parts (a ComplexWarning at most), parsed numeric strings
    ("1.5" -> 1.5) and failed on others with a message that named nothing.
    """
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as err:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a real numeric array: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    # not np.ascontiguousarray: it turns a 0-d array into shape (1,)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def as_class_weights(class_weights, dtype: np.dtype, name: str = "class_weights") -> np.ndarray | None:
    """Optional per-class weights as a contiguous array of ``dtype`` (None stays None). Their
    shape and values are checked by the kernel; here only that they are real numbers: NumPy's
    conversion dropped imaginary parts with a warning and parsed strings, or failed with
    "could not convert string to float", naming nothing."""
    if class_weights is None:
        return None
    try:
        w = np.asarray(class_weights)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a 1-D array of real numbers: {err}") from None
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a 1-D array of real numbers, got dtype {w.dtype}")
    return np.ascontiguousarray(w, dtype=dtype)

