"""Loss functions for the layer API, on the C++ loss kernels.

Each loss has ``forward(outputs, targets) -> float`` (which keeps what the
gradient needs) and ``backward() -> d loss / d outputs``, plus
``accuracy(outputs, targets)`` used by :meth:`natverk.models.Sequential.fit`
and ``evaluate``. All take the network's raw outputs (logits) of shape
(N, K); the targets are converted to the outputs' dtype.

* :class:`CrossEntropy` -- softmax + cross-entropy on logits, integer labels
  0..K-1 (optionally class-weighted: sum_i w[y_i] nll_i / sum_i w[y_i]).
* :class:`MSE` -- 1/2 sum (out - target)^2 / N.
* :class:`BCE` -- binary cross-entropy of sigmoid(logits), float targets in [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .._validation import first_non_finite

__all__ = ["BCE", "LOSSES", "MSE", "CrossEntropy", "Loss", "get_loss", "loss_name"]


def _outputs(outputs, name: str) -> np.ndarray:
    z = np.asarray(outputs)
    if z.dtype.kind not in "fiu":
        raise TypeError(f"{name}: outputs must be a real numeric array, got dtype {z.dtype}")
    z = np.ascontiguousarray(z, dtype=np.float32 if z.dtype == np.float32 else np.float64)
    if z.ndim != 2 or z.size == 0:
        raise ValueError(f"{name}: outputs must be a non-empty 2-D (N, K) array, got shape {z.shape}")
    if first_non_finite(z) is not None:
        raise ValueError(f"{name}: outputs contain NaN or Inf")
    return z


def _float_targets(targets, shape: tuple, name: str, dtype=np.float64, argument: str | None = None) -> np.ndarray:
    """``argument`` (e.g. "y") is what the messages call the targets; "<name>: targets" without it."""
    who = argument or f"{name}: targets"
    t = np.asarray(targets)
    if t.dtype.kind not in "fiub":
        raise TypeError(f"{who} must be a real numeric array, got dtype {t.dtype}")
    shape = tuple(shape)
    if t.shape != shape:
        if t.size == int(np.prod(shape)) and t.shape[:1] == shape[:1]:
            t = t.reshape(shape)  # e.g. (N,) targets for (N, 1) outputs
        else:
            outputs = "the model's outputs" if argument else "the outputs"
            raise ValueError(f"{who} has shape {t.shape} but {outputs} have shape {shape}")
    t = np.ascontiguousarray(t, dtype=dtype)
    if first_non_finite(t) is not None:
        raise ValueError(f"{who} contains NaN or Inf")
    return t


def _one_hot(y: np.ndarray) -> bool:
    """Whether ``y`` is (N, K >= 2) of zeros and ones with exactly one 1 per row."""
    if y.ndim != 2 or y.shape[1] < 2 or y.shape[0] == 0 or y.dtype.kind not in "biuf":
        return False
    with np.errstate(invalid="ignore"):
        return bool(((y == 0) | (y == 1)).all() and (y.sum(axis=1) == 1).all())


class Loss:
    """Base class: ``forward(outputs, targets) -> float``, ``backward() -> dlogits``."""

    def forward(self, outputs, targets) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def forward_trusted(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """:meth:`forward` without validation, for callers that validated once at their
        own boundary: ``outputs`` a C-contiguous float32/float64 (N, K) array (a network's
        own output), ``targets`` as :meth:`check_targets` returned them. Per-batch
        re-checks (a scan of the targets, a NaN scan of the outputs) are what this
        saves: ``Sequential.fit`` checks the targets once, and a NaN output shows up as
        a NaN loss, which fit reports as a divergence. Subclasses that don't override
        it are simply validated every time."""
        return self.forward(outputs, targets)

    def __call__(self, outputs, targets) -> float:
        return self.forward(outputs, targets)

    def accuracy(self, outputs, targets) -> float:
        """Fraction of correct predictions (NaN where the loss defines none)."""
        return float("nan")

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Class indices from outputs: argmax over K, or (logit > 0) for K = 1."""
        outputs = np.asarray(outputs)
        if outputs.ndim == 2 and outputs.shape[1] == 1:
            return (outputs[:, 0] > 0).astype(np.int64)
        return np.argmax(outputs, axis=-1)

    def config(self) -> dict:
        return {}

    def check_targets(self, targets, shape: tuple, argument: str | None = None) -> np.ndarray:
        """Validate ``targets`` for outputs of ``shape`` (N, K); returns them as an array.
        ``argument`` is the name the messages give the targets (``fit`` passes "y")."""
        return _float_targets(targets, shape, type(self).__name__, argument=argument)

    def _need_forward(self) -> None:
        if getattr(self, "_cache", None) is None:
            raise RuntimeError(f"{type(self).__name__}: backward() called before forward()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits (N, K) with integer labels y (N,) in 0..K-1.

    ``class_weights`` (K,) weights each example by its class:
    loss = sum_i w[y_i] * -log softmax(z_i)[y_i] / sum_i w[y_i].
    """

    def __init__(self, class_weights=None):
        if class_weights is not None:
            w = np.asarray(class_weights)
            if w.dtype.kind not in "biuf":  # complex lost its imaginary part, strings were parsed
                raise TypeError(f"class_weights must be a 1-D array of real numbers, got dtype {w.dtype}")
            w = w.astype(np.float64)
            if w.ndim != 1 or w.size == 0 or not np.isfinite(w).all() or (w < 0).any():
                raise ValueError(f"class_weights must be a 1-D array of finite, non-negative numbers, got {class_weights!r}")
            class_weights = w
        self.class_weights = class_weights
        self._cache = None

    def config(self) -> dict:
        return {"class_weights": None if self.class_weights is None else self.class_weights.tolist()}

    def check_targets(self, targets, shape: tuple, argument: str | None = None) -> np.ndarray:
        """Integer labels, one per row of (N, K) outputs, each in 0..K-1, as int64. ``argument``
        is the name the messages give the targets (``fit`` passes "y"; "CrossEntropy: targets"
        without it)."""
        who = argument or "CrossEntropy: targets"
        n, K = int(shape[0]), int(shape[1]) if len(shape) > 1 else 1
        y = np.asarray(targets)
        if _one_hot(y):
            raise ValueError(f"{who} looks one-hot encoded (shape {y.shape}); cross-entropy takes integer class "
                             f"labels 0..K-1: pass {argument or 'targets'}.argmax(axis=1)")
        if y.dtype.kind == "f" and y.size and np.isfinite(y).all() and (y == np.round(y)).all():
            y = y.astype(np.int64)  # whole-number float labels
        if y.dtype.kind not in "iu":
            raise TypeError(f"{who} must be integer class labels, got dtype {y.dtype}")
        if y.ndim == 2 and 1 in y.shape:
            y = y.reshape(-1)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"{who} must be a vector of {n} labels, got shape {y.shape}")
        bad = (y < 0) | (y >= K)
        if bad.any():
            i = int(np.argmax(bad))
            outputs = f" (the model has {K} outputs)" if argument else ""
            raise ValueError(f"{who}[{i}] = {y[i]} is not a class label in 0..{K - 1}{outputs}")
        return np.ascontiguousarray(y, dtype=np.int64)

    def _weights(self, z: np.ndarray) -> np.ndarray | None:
        if self.class_weights is None:
            return None
        if self.class_weights.shape[0] != z.shape[1]:
            raise ValueError(
                f"CrossEntropy: {self.class_weights.shape[0]} class_weights for outputs with {z.shape[1]} classes"
            )
        return self.class_weights.astype(z.dtype)

    def forward(self, outputs, targets) -> float:
        z = _outputs(outputs, "CrossEntropy")
        return self.forward_trusted(z, self.check_targets(targets, z.shape))

    def forward_trusted(self, z, y) -> float:
        w = self._weights(z)
        loss, probs = _core.softmax_cross_entropy(z, y, w)
        self._cache = (probs, y, w)
        return float(loss)

    def backward(self) -> np.ndarray:
        self._need_forward()
        probs, y, w = self._cache
        return _core.softmax_cross_entropy_backward(probs, y, w)

    def accuracy(self, outputs, targets) -> float:
        z = np.asarray(outputs)
        return float(np.mean(np.argmax(z, axis=1) == np.asarray(targets).reshape(-1)))


class MSE(Loss):
    """Mean squared error 1/2 sum (outputs - targets)^2 / N (the kernels' convention).

    Its accuracy compares argmaxes when K > 1 (one-hot targets), NaN for K = 1.
    """

    def __init__(self):
        self._cache = None

    def forward(self, outputs, targets) -> float:
        z = _outputs(outputs, "MSE")
        return self.forward_trusted(z, _float_targets(targets, z.shape, "MSE", z.dtype))

    def forward_trusted(self, z, t) -> float:
        t = np.ascontiguousarray(t, dtype=z.dtype)  # check_targets gives float64; a float32 net needs float32
        self._cache = (z, t)
        return float(_core.mse(z, t))

    def backward(self) -> np.ndarray:
        self._need_forward()
        return _core.mse_backward(*self._cache)

    def accuracy(self, outputs, targets) -> float:
        z = np.asarray(outputs)
        t = np.asarray(targets).reshape(z.shape)
        if z.shape[1] == 1:
            return float("nan")
        return float(np.mean(np.argmax(z, axis=1) == np.argmax(t, axis=1)))


class BCE(Loss):
    """Binary cross-entropy on logits (stable): mean over rows of
    -sum [t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))]; targets in [0, 1].

    Its accuracy is the fraction of elements with (z > 0) == (t >= 0.5).
    """

    def __init__(self):
        self._cache = None

    @staticmethod
    def _check_range(t: np.ndarray, argument: str | None = None) -> None:
        if ((t < 0) | (t > 1)).any():
            raise ValueError(f"{argument or 'BCE: targets'} must lie in [0, 1] for the bce loss")

    def check_targets(self, targets, shape: tuple, argument: str | None = None) -> np.ndarray:
        t = _float_targets(targets, shape, "BCE", argument=argument)
        self._check_range(t, argument)
        return t

    def forward(self, outputs, targets) -> float:
        z = _outputs(outputs, "BCE")
        t = _float_targets(targets, z.shape, "BCE", z.dtype)
        self._check_range(t)
        return self.forward_trusted(z, t)

    def forward_trusted(self, z, t) -> float:
        t = np.ascontiguousarray(t, dtype=z.dtype)
        self._cache = (z, t)
        return float(_core.binary_cross_entropy_with_logits(z, t))

    def backward(self) -> np.ndarray:
        self._need_forward()
        return _core.binary_cross_entropy_with_logits_backward(*self._cache)

    def accuracy(self, outputs, targets) -> float:
        z = np.asarray(outputs)
        t = np.asarray(targets).reshape(z.shape)
        return float(np.mean((z > 0) == (t >= 0.5)))


LOSSES: dict[str, type[Loss]] = {"cross_entropy": CrossEntropy, "mse": MSE, "bce": BCE}
_BY_CLASS = {cls.__name__: cls for cls in LOSSES.values()}
# Other spellings of the same losses, read case-insensitively with "-" and " " as "_" (as the
# optimizer table reads "Adam"): the class names and Keras' / scikit-learn's words.
_ALIASES: dict[str, str] = {
    "crossentropy": "cross_entropy", "categorical_crossentropy": "cross_entropy",
    "sparse_categorical_crossentropy": "cross_entropy", "log_loss": "cross_entropy",
    "mean_squared_error": "mse", "squared_error": "mse",
    "binary_crossentropy": "bce", "binary_cross_entropy": "bce",
}


def loss_name(name: Any) -> str | None:
    """The canonical name ("cross_entropy", "mse", "bce") for a spelling of it, else None."""
    if not isinstance(name, str):
        return None
    key = name.lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    return key if key in LOSSES else None


def get_loss(name_or_obj: Any) -> Loss:
    """A loss object from a name or a :class:`Loss` (returned as is). Names are read
    case-insensitively: ``"cross_entropy"`` (also ``"CrossEntropy"``,
    ``"categorical_crossentropy"``), ``"mse"`` (``"MSE"``, ``"mean_squared_error"``),
    ``"bce"`` (``"BCE"``, ``"binary_crossentropy"``)."""
    if isinstance(name_or_obj, Loss):
        return name_or_obj
    if isinstance(name_or_obj, str):
        key = loss_name(name_or_obj)
        if key is not None:
            return LOSSES[key]()
        raise ValueError(f"unknown loss {name_or_obj!r}; choose one of {sorted(LOSSES)} (any case) or pass a "
                         "Loss object")
    raise TypeError(f"loss must be a name {sorted(LOSSES)} or a Loss object, got {type(name_or_obj).__name__}")


def loss_to_spec(loss: Loss) -> dict:
    return {"class": type(loss).__name__, "config": loss.config()}


def loss_from_spec(spec: Any) -> Loss:
    if not isinstance(spec, dict) or set(spec) != {"class", "config"} or spec["class"] not in _BY_CLASS:
        raise ValueError(f"invalid loss spec {spec!r:.200}; known losses: {sorted(_BY_CLASS)}")
    if not isinstance(spec["config"], dict):
        raise ValueError(f"invalid loss config {spec['config']!r:.200}")
    try:
        return _BY_CLASS[spec["class"]](**spec["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build loss {spec['class']}: {err}") from None
