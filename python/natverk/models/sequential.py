"""The :class:`Sequential` model: a layer stack with fit / predict / evaluate / save."""

from __future__ import annotations

import inspect
import math
import os
import sys
import time

import numpy as np

from .. import _core
from .._divergence import as_max_loss, check_loss
from .._validation import first_non_finite
from ..callbacks import Callback, EarlyStopping
from ..layers._base import Layer, as_int, as_seed, fresh_seed, register
from ..layers.container import Residual, Stack
from ..losses import BCE, MSE, Loss, get_loss
from ..optimizers.classes import Adam, Optimizer, _rate, get_optimizer
from ..schedules import Schedule
from . import _plan


def _as_inputs(X, name: str) -> np.ndarray:
    try:
        X = np.asarray(X)
    except ValueError as err:  # a ragged list
        raise TypeError(f"{name} must be a real numeric array: {err}") from None
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {X.dtype}")
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example along axis 0, got shape {X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return X


def _check_finite(X: np.ndarray, name: str) -> None:
    """fit checks its inputs up front: found by the first layer, a NaN in a late batch stopped
    training after the earlier batches had already changed the weights and optimizer state."""
    bad = first_non_finite(X)
    if bad is not None:
        raise ValueError(f"{name} contains NaN or Inf (first at index {bad})")


def _as_batch_size(batch_size) -> int:
    return as_int(batch_size, "batch_size", 1)


def _as_targets(y, n: int, x_name: str, y_name: str) -> np.ndarray:
    """``y`` as an array with one target per example of the ``n`` in ``x_name``; the message names
    both arguments (the loss checks the values afterwards)."""
    if y is None:
        raise TypeError(f"{y_name} must be given: the targets of {x_name}, one per example")
    try:
        y = np.asarray(y)
    except ValueError as err:  # a ragged list
        raise TypeError(f"{y_name} must be a numeric array: {err}") from None
    if y.ndim == 0:
        raise ValueError(f"{y_name} must hold one target per example of {x_name}, got the scalar {y!r:.40}")
    if y.ndim == 2 and y.shape[0] == 1 and y.shape[1] == n and n != 1:
        y = y.reshape(-1)  # a row vector of labels
    if y.shape[0] != n:
        raise ValueError(f"{x_name} and {y_name} have different lengths: {x_name} has {n} examples, "
                         f"{y_name} has {y.shape[0]}")
    return y


def _check_targets(loss_fn: Loss, y, shape: tuple, argument: str) -> np.ndarray:
    """``loss_fn.check_targets`` with the messages naming ``argument``; a Loss of one's own whose
    ``check_targets(targets, shape)`` predates that argument is called as it was."""
    try:
        takes_argument = "argument" in inspect.signature(loss_fn.check_targets).parameters
    except (TypeError, ValueError):  # no signature to read
        takes_argument = False
    if takes_argument:
        return loss_fn.check_targets(y, shape, argument=argument)
    return loss_fn.check_targets(y, shape)


def _first_layer(layers) -> Layer | None:
    """The first layer that sees the model's input (inside nested stacks and residual branches)."""
    for layer in layers:
        if isinstance(layer, Stack):
            inner = _first_layer(layer.layers)
            if inner is not None:
                return inner
            continue
        if isinstance(layer, Residual):
            return _first_layer(layer.f.layers)
        return layer
    return None


def _check_input_shape(layers, X: np.ndarray, name: str) -> None:
    """The mistakes in ``X``'s shape the first layer would report with an internal shape (a one-example
    probe, a chunk), named here with the user's argument and shape, with the fix."""
    from ..layers import (
        AvgPool2D,
        BatchNorm2D,
        Conv2D,
        Dense,
        GlobalAvgPool2D,
        MaxPool2D,
    )
    from ..layers.conv import channels_last_hint

    first = _first_layer(layers)
    # "layer 0: <layer>: ..." as the layers' own errors read inside a model (a nested first layer
    # is inside layer 0 too), but with the user's argument and its whole shape
    where = f"layer 0: {first.name}: " if first is not None else ""
    if isinstance(first, Dense):
        if X.ndim != 2:
            raise ValueError(f"{where}{name} has shape {X.shape}, but Dense takes (N, features): flatten the "
                             f"examples with {name}.reshape(len({name}), -1) or start the model with Flatten()")
        if first.in_features is not None and X.shape[1] != first.in_features:
            raise ValueError(f"{where}{name} has {X.shape[1]} features per example (shape {X.shape}), expected "
                             f"in_features={first.in_features}")
    elif isinstance(first, (Conv2D, MaxPool2D, AvgPool2D, BatchNorm2D, GlobalAvgPool2D)):
        if X.ndim == 3:
            raise ValueError(f"{where}{name} has shape {X.shape}, but {type(first).__name__} takes 4-D images "
                             f"(N, C, H, W): for one channel pass {name}[:, None] (shape {(X.shape[0], 1) + X.shape[1:]})")
        if X.ndim != 4:
            raise ValueError(f"{where}{name} has shape {X.shape}, but {type(first).__name__} takes 4-D images "
                             f"(N, C, H, W)" + (f"; flattened images need {name}.reshape(N, C, H, W)" if X.ndim == 2 else ""))
        if isinstance(first, Conv2D) and first.in_channels is not None and X.shape[1] != first.in_channels:
            raise ValueError(f"{where}{name} has shape {X.shape}: {X.shape[1]} channels on axis 1, expected "
                             f"in_channels={first.in_channels}" + channels_last_hint(X.shape, first.in_channels, name))


def _interactive() -> bool:
    """Whether a progress bar is welcome: stdout and stderr (tqdm's stream) are terminals, or we
    run in a Jupyter kernel (whose streams are not terminals, but tqdm draws a widget there)."""
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        shell = getattr(ipython, "get_ipython", lambda: None)()
        if type(shell).__name__ == "ZMQInteractiveShell":
            return True
    try:
        return bool(sys.stdout.isatty() and sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def _as_verbose(verbose) -> int:
    if verbose == "auto" or verbose is None:
        return 1 if _interactive() else 2
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if isinstance(verbose, (int, np.integer)) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"verbose must be 0 (silent), 1 (a progress bar), 2 (one line per epoch) or 'auto', "
                     f"got {verbose!r}")


def _epoch_line(logs: dict, last_epoch: int, seconds: float) -> str:
    """verbose=2's line for an epoch, Keras' style: ``Epoch 3/10 - 0.4s - loss: 0.1234 - ...``."""
    parts = [f"Epoch {logs['epoch']}/{last_epoch}", f"{seconds:.1f}s"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs and not math.isnan(logs[key]):
            parts.append(f"{key}: {logs[key]:.4f}")
    if "lr" in logs:
        parts.append(f"lr: {logs['lr']:.3g}")
    return " - ".join(parts)


def _split(X: np.ndarray, y: np.ndarray, validation_split, shuffle: bool, seed: int):
    """``(X_train, y_train, X_val, y_val)``: the last ``validation_split`` of the examples held out
    (Keras' rule, before any shuffling), or a seeded random draw with ``shuffle``."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(f"validation_split must be a fraction in [0, 1), got {validation_split!r}")
    N = X.shape[0]
    n_train = int(N * (1.0 - float(validation_split)))
    if n_train < 1 or n_train == N:
        raise ValueError(f"validation_split={validation_split} of {N} examples leaves "
                         f"{'no example to train on' if n_train < 1 else 'no example for validation'}")
    if shuffle:
        # its own stream: not the epochs' shuffles default_rng([seed, e])
        order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_STREAM,))).permutation(N)
        tr, va = np.sort(order[:n_train]), np.sort(order[n_train:])
        return X[tr], y[tr], X[va], y[va]
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _as_callbacks(callbacks, early_stopping) -> list[Callback]:
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}] must be a natverk.callbacks.Callback, got {type(cb).__name__}")
    if early_stopping is not None:
        if isinstance(early_stopping, EarlyStopping):
            callbacks.append(early_stopping)
        elif isinstance(early_stopping, (int, np.integer)) and not isinstance(early_stopping, bool):
            callbacks.append(EarlyStopping(patience=int(early_stopping)))
        else:
            raise TypeError(f"early_stopping must be an EarlyStopping, a patience (int) or None, got {early_stopping!r}")
    return callbacks


def _as_learning_rate(lr, schedule, epoch: int) -> float:
    try:
        return _rate(lr, "learning rate", 0.0, np.inf, hi_open=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{schedule!r} gave an invalid learning rate for epoch {epoch}: {err}") from None


# Tags the augmentation stream so that it never coincides with the shuffling
# stream default_rng([seed, epoch]) (SeedSequence pads short entropy with zeros).
_AUGMENT_STREAM = 1
_SPLIT_STREAM = 2  # validation_split's seeded draw


def _batch_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
    """The generator that augments batch ``batch`` of epoch ``epoch``.

    It depends only on these three numbers -- not on how many batches came
    before in this process -- so a run resumed from a checkpoint draws exactly
    the augmentations the uninterrupted run would have drawn.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_AUGMENT_STREAM, epoch, batch)))


def _augment(augment, xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.asarray(augment(xb, rng))
    if out.ndim < 1 or out.shape[0] != xb.shape[0]:
        raise ValueError(f"augment turned a batch of shape {xb.shape} into shape {out.shape}: it must keep the batch size")
    return out


def _postfix(logs: dict) -> dict:
    """The progress bar's summary of an epoch."""
    out = {"epoch": logs["epoch"], "loss": f"{logs['loss']:.4f}", "acc": f"{logs['accuracy']:.3f}"}
    if "val_loss" in logs:
        out.update(val_loss=f"{logs['val_loss']:.4f}", val_acc=f"{logs['val_accuracy']:.3f}")
    if "lr" in logs:
        out["lr"] = f"{logs['lr']:.3g}"
    return out


@register
class Sequential(Stack):
    """Layers applied in order, with training and saving.

    >>> from natverk.layers import Conv2D, ReLU, MaxPool2D, Flatten, Dense
    >>> model = Sequential(Conv2D(1, 8, 3, padding=1, seed=0), ReLU(), MaxPool2D(2),
    ...                    Flatten(), Dense(8 * 4 * 4, 2, seed=1))
    >>> history = model.fit(X, y, epochs=5, batch_size=32, optimizer=Adam(1e-2), seed=0)  # doctest: +SKIP

    Parameter names are prefixed with the layer index (``"0.W"``, ``"0.b"``,
    ``"4.W"``...). ``train()`` / ``eval()`` set the mode ``forward`` uses when
    its ``training`` argument is None; ``fit`` always trains in training mode
    and ``predict`` / ``evaluate`` always run in evaluation mode, whatever the
    current mode.

    Attributes kept between ``fit`` calls and saved by :meth:`save`:
    ``optimizer`` (with its state and learning rate), ``lr_schedule``,
    ``loss``, ``epoch`` (epochs trained so far) and ``seed`` (the shuffling
    seed). Epoch ``e``'s shuffle is a permutation drawn from
    ``numpy.random.default_rng([seed, e])``, its learning rate is
    ``lr_schedule(e)`` and batch ``b``'s augmentation draws from a generator
    seeded by ``(seed, e, b)``, so calling ``fit`` for 3 epochs and then 2
    more -- or saving after 3 (:class:`~natverk.callbacks.ModelCheckpoint`),
    loading and fitting 2 more -- gives bit-identical weights to fitting 5
    epochs at once.
    """

    def __init__(self, *layers):
        super().__init__(*layers)
        self.optimizer: Optimizer | None = None
        self.loss: Loss | None = None
        self.epoch = 0
        self.seed: int | None = None
        self.lr_schedule: Schedule | None = None
        self.stop_training = False  # set by a callback to end fit after the current epoch
        #: Whether the weights are meant to be used: True once ``fit`` ran, after :func:`natverk.load`
        #: or :meth:`set_weights`. ``predict`` refuses a model whose weights are still the random
        #: initial ones (a forgotten ``fit``); set it True to predict with those on purpose.
        self.weights_ready = False
        self._input_shape: tuple[int, ...] | None = None  # one example's shape, seen by fit (for summary)

    def add(self, layer: Layer) -> Sequential:
        """Append ``layer`` (Keras' ``model.add``); returns the model."""
        if not isinstance(layer, Layer):
            raise TypeError(f"add() takes a natverk Layer, got {type(layer).__name__}")
        self.layers.append(layer)
        return self

    def _need_layers(self, what: str) -> None:
        if not self.layers:
            raise ValueError(f"{what}: this Sequential has no layers; pass them to Sequential(...) or add them "
                             "with model.add(layer)")

    def _need_weights(self, what: str) -> None:
        self._need_layers(what)
        if not getattr(self, "weights_ready", True):
            raise RuntimeError(
                f"{what} before any training: the weights are still the random initial ones. Train with "
                "model.fit(X, y, epochs) first, load a trained model with natverk.load(path), or set weights with "
                "model.set_weights(...); set model.weights_ready = True to use the initial weights on purpose"
            )

    # -- inference -----------------------------------------------------------------
    def predict_logits(self, X, batch_size: int = 1000) -> np.ndarray:
        """The network's outputs for ``X`` in evaluation mode, computed at most ``batch_size`` rows
        at a time. A network the step plan supports runs through it from
        ``natverk.models._plan.EVAL_MIN_ROWS`` rows up, in chunks of at most ``EVAL_ROWS`` rows
        into buffers it reuses; every row's outputs are the bits the layers give, whatever the
        chunk."""
        self._need_weights("predict")
        return self._outputs(X, batch_size, "X")

    def _outputs(self, X, batch_size, name: str) -> np.ndarray:
        X = _as_inputs(X, name)
        bs = _as_batch_size(batch_size)
        _check_input_shape(self.layers, X, name)
        mp = _plan.plan_for_inference(self, X)
        if mp is not None:
            # the plan's buffers, reused chunk after chunk, give the layer loop's bits
            out = np.empty((X.shape[0], *mp.plan.output_shape), dtype=mp.dtype)
            step = min(bs, _plan.EVAL_ROWS)
            for i in range(0, X.shape[0], step):
                out[i : i + step] = mp.forward(np.ascontiguousarray(X[i : i + step], dtype=mp.dtype))
            return out
        outs = [self.forward(X[i : i + bs], training=False) for i in range(0, X.shape[0], bs)]
        return np.concatenate(outs, axis=0)

    def predict(self, X, batch_size: int = 1000) -> np.ndarray:
        """Class indices (int64): the argmax of the outputs, or ``output > 0`` for a single output."""
        return Loss().predict(self.predict_logits(X, batch_size))

    def predict_proba(self, X, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities (N, K): the softmax of the outputs, as cross-entropy reads them; for a
        model trained with "bce" (or, before any loss is set, a single output) the sigmoid of each
        output, as binary cross-entropy reads them. A model trained with "mse" has no probabilities
        (ValueError: use :meth:`predict_logits`)."""
        z = self.predict_logits(X, batch_size)
        if isinstance(self.loss, MSE):
            raise ValueError("predict_proba: this model was trained with the mse loss, whose outputs are not "
                             "probabilities; use predict_logits(X) for its outputs")
        z = np.ascontiguousarray(z.reshape(z.shape[0], -1))
        if isinstance(self.loss, BCE) or (self.loss is None and z.shape[1] == 1):
            return _core.activation_forward(z, "sigmoid")
        return _core.softmax(z)

    def evaluate(self, X, y, loss="cross_entropy", batch_size: int = 1000) -> tuple[float, float]:
        """``(loss, accuracy)`` on (X, y) in evaluation mode (accuracy as the loss defines it)."""
        self._need_weights("evaluate")
        return self._evaluate(X, y, get_loss(loss), batch_size, "X", "y")

    def _evaluate(self, X, y, loss_fn: Loss, batch_size, x_name: str, y_name: str) -> tuple[float, float]:
        X = _as_inputs(X, x_name)
        y = _as_targets(y, X.shape[0], x_name, y_name)
        out = self._outputs(X, batch_size, x_name)
        targets = _check_targets(loss_fn, y, out.shape, y_name)
        return loss_fn.forward(out, targets), loss_fn.accuracy(out, targets)

    # -- Keras habits --------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of the parameters and the floating-point buffers (batch-norm running statistics),
        by name (``"0.W"``, ``"2.running_mean"``), for :meth:`set_weights`."""
        out = {n: v.copy() for n, v, _ in self.parameters()}
        out.update({n: v.copy() for n, v in self.buffers() if v.dtype.kind == "f"})
        return out

    def set_weights(self, weights: dict) -> Sequential:
        """Overwrite the parameters and floating-point buffers with ``weights`` (a dict as
        :meth:`get_weights` gives: every name, each array of its shape, finite), in place and in
        the layers' dtype, and mark the weights as ready for ``predict``. Returns the model."""
        if not isinstance(weights, dict):
            raise TypeError(f"weights must be a dict of arrays by name, as get_weights() gives, got "
                            f"{type(weights).__name__}")
        current = {n: v for n, v, _ in self.parameters()}
        current.update({n: v for n, v in self.buffers() if v.dtype.kind == "f"})
        missing, unexpected = sorted(set(current) - set(weights)), sorted(set(weights) - set(current))
        if missing or unexpected:
            raise ValueError(f"weights must hold exactly the model's arrays {sorted(current)}"
                             + (f"; missing {missing}" if missing else "") + (f"; unexpected {unexpected}" if unexpected else "")
                             + ("; a layer that reads its in-size from its first input has no weights until then "
                                "(run summary(input_shape=...) or fit first)" if missing == [] and unexpected else ""))
        new = {}
        for name, value in weights.items():
            a = np.asarray(value)
            if a.dtype.kind not in "fiu":
                raise TypeError(f"weights[{name!r}] must be a real numeric array, got dtype {a.dtype}")
            if a.shape != current[name].shape:
                raise ValueError(f"weights[{name!r}] has shape {a.shape}, the model's has {current[name].shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"weights[{name!r}] contains NaN or Inf")
            new[name] = a
        for name, a in new.items():  # all checked first: a refused call changes nothing
            current[name][...] = a
        self.weights_ready = True
        return self

    def summary(self, input_shape=None, print_fn=print) -> None:
        """Print the layers, their output shapes and parameter counts (Keras' ``model.summary()``).

        ``input_shape`` is one example's shape, e.g. ``(1, 28, 28)``; without it the shape
        ``fit`` last trained on is used, and without either the output shapes show as "?".
        Shapes are found by running one example of zeros through the layers in evaluation mode:
        no state changes, and the layers' dtype is left as it was (a first ``fit`` still fixes
        it). Layers that read their in-size from the input are built by it. ``print_fn`` gets
        each line (``print`` by default)."""
        self._need_layers("summary")
        if input_shape is None:
            input_shape = self._input_shape
        shapes: list = [None] * len(self.layers)
        if input_shape is not None:
            if isinstance(input_shape, (int, np.integer)):
                input_shape = (input_shape,)
            try:
                input_shape = tuple(as_int(d, "input_shape", 1) for d in input_shape)
            except TypeError:
                raise TypeError(f"input_shape must be one example's shape, a tuple of positive ints such as "
                                f"(1, 28, 28), got {input_shape!r}") from None
            shapes = self._probe_shapes(input_shape)
        rows = [("#", "Layer", "Output shape", "Params")]
        total = decayed = 0
        for i, layer in enumerate(self.layers):
            params = layer.parameters()
            n = sum(int(p[1].size) for p in params)
            total += n
            decayed += sum(int(p[1].size) for p in params if getattr(p, "decay", False))
            unbuilt = getattr(layer, "built", True) is False
            shape = "?" if shapes[i] is None else "(N, " + ", ".join(str(d) for d in shapes[i]) + ")"
            rows.append((str(i), layer.name, shape, "? (built by the first input)" if unbuilt else f"{n:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = lambda r: "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
        rule = "-" * len(line(rows[0]))
        print_fn(f"{type(self).__name__}: {len(self.layers)} layers"
                 + (f", input (N, {', '.join(str(d) for d in input_shape)})" if input_shape is not None else ""))
        print_fn(rule)
        print_fn(line(rows[0]))
        print_fn(rule)
        for r in rows[1:]:
            print_fn(line(r))
        print_fn(rule)
        print_fn(f"Total params: {total:,} ({decayed:,} weights that weight_decay (L2) decays, "
                 f"{total - decayed:,} biases and batch-norm parameters)")

    def _probe_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Each layer's output shape (without N) for one example of ``input_shape``."""
        everything = [self]
        for layer in everything:  # grows as it walks: every layer in the tree
            everything.extend(child for _, child in layer.children())
        dtypes = [(layer, layer._dtype) for layer in everything]
        x = np.zeros((1,) + tuple(input_shape), dtype=self.dtype or np.float64)
        _check_input_shape(self.layers, x, "an example of input_shape")
        shapes = []
        try:
            for i, layer in enumerate(self.layers):
                try:
                    x = layer.forward(x, training=False)
                except (TypeError, ValueError) as err:
                    raise type(err)(f"summary: input_shape {tuple(input_shape)} does not fit layer {i}: {err}") from None
                shapes.append(x.shape[1:])
        finally:
            for layer, dt in dtypes:  # the dtype is the first fit's to fix, not a probe's
                layer._dtype = dt
        return shapes

    # -- training ------------------------------------------------------------------
    def fit(
        self,
        X,
        y,
        epochs: int,
        batch_size: int = 32,
        optimizer: Optimizer | str | None = None,
        loss="cross_entropy",
        validation_data=None,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: int | str = "auto",
        *,
        validation_split: float = 0.0,
        validation_shuffle: bool = False,
        lr_schedule: Schedule | None = None,
        augment=None,
        callbacks=(),
        early_stopping: EarlyStopping | int | None = None,
        max_loss: float | None = None,
    ) -> dict[str, list]:
        """Train for ``epochs`` more epochs of minibatch gradient descent.

        Every epoch walks a permutation of the examples (identity order with
        ``shuffle=False``) in minibatches of ``batch_size``; every example is
        used exactly once per epoch, the last batch holds the remainder.

        Parameters
        ----------
        X, y : arrays
            Inputs (N, ...) and targets: integer labels for cross-entropy,
            float arrays shaped like the outputs for "mse" / "bce".
        optimizer : Optimizer, name or None
            None continues with ``self.optimizer`` (e.g. after :func:`load`),
            or a fresh ``Adam()`` if there is none. Kept as ``self.optimizer``.
        loss : name or Loss
            "cross_entropy", "mse", "bce" or a :class:`~natverk.losses.Loss`.
        validation_data : (X_val, y_val) or None
            Evaluated after every epoch (evaluation mode).
        seed : int or None
            The shuffling seed; None reuses ``self.seed`` or draws a new one.
        verbose : 0, 1, 2 or "auto"
            0 silent, 1 a tqdm progress bar, 2 one line per epoch (Keras' format).
            "auto" (the default) is 1 in a terminal or a notebook and 2 otherwise
            (output to a file or a pipe), so no progress bar floods a log.
        validation_split : float
            Hold out this fraction of (X, y) as validation data instead of passing
            ``validation_data``: the last examples, before any shuffling, as Keras
            does; with ``validation_shuffle=True`` a random draw seeded by ``seed``
            (the same examples in every ``fit`` with that seed).
        lr_schedule : natverk.schedules.Schedule or None
            Sets ``optimizer.learning_rate = lr_schedule(self.epoch)`` at the
            start of every epoch, ``self.epoch`` counting every epoch trained
            so far (thesis' ``exponential_decay``: digest §1). None continues
            with ``self.lr_schedule`` (e.g. after :func:`load`), if any; set
            ``model.lr_schedule = None`` to train without one again. Kept as
            ``self.lr_schedule`` and saved with the model.
        augment : callable or None
            ``augment(X_batch, rng)`` transforms every training batch, e.g. a
            :mod:`natverk.augmentation` transform (thesis §2.4.4). ``rng`` is
            a generator seeded by ``(seed, epoch, batch index)``, so training
            is reproducible and a resumed run draws the same augmentations.
            Validation data is never augmented. Like ``X`` and ``y``, pass it
            to every ``fit`` call (it is not saved with the model).
        callbacks : sequence of natverk.callbacks.Callback
            Called after every epoch (see :mod:`natverk.callbacks`); a
            callback ends training by setting ``model.stop_training = True``.
        early_stopping : EarlyStopping, int or None
            Shorthand for adding an :class:`~natverk.callbacks.EarlyStopping`
            to ``callbacks``; an int is its patience (monitoring "val_loss").
        max_loss : float or None
            Stop with :class:`~natverk.DivergenceError` when a batch's loss
            exceeds this, even while it is finite. A NaN or Inf loss always
            stops training with that error, naming the epoch and step.

        Returns
        -------
        dict
            Per-epoch lists: ``epoch`` (1-based, counting earlier fits),
            ``data_loss`` (the loss function's value), ``penalty`` (the
            optimizer's L2 penalty ``weight_decay / 2 * sum ||W||^2`` over the
            decayed weights, thesis eq. 9; 0 without weight decay), ``loss``
            (their sum, what the gradient descends) and ``accuracy`` (means over
            the epoch's training batches, in training mode, each batch's penalty
            at the weights before its update), ``val_loss`` (the data loss:
            no penalty) / ``val_accuracy`` with
            validation data and ``lr`` with a schedule; callbacks may add more
            (``EarlyStopping``: ``best_epoch`` and ``stopped_epoch``).
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        bs = _as_batch_size(batch_size)
        opt = get_optimizer(optimizer) if optimizer is not None else (self.optimizer or Adam())
        loss_fn = get_loss(loss)
        seed = as_seed(seed)
        if seed is None:
            seed = self.seed if self.seed is not None else fresh_seed()
        verbose = _as_verbose(verbose)
        schedule = self.lr_schedule if lr_schedule is None else lr_schedule
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(
                f"lr_schedule must be a natverk.schedules.Schedule (so that it can be saved), got {schedule!r:.100}"
            )
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be callable as augment(X_batch, rng), got {augment!r:.100}")
        callbacks = _as_callbacks(callbacks, early_stopping)
        max_loss = as_max_loss(max_loss)
        self._need_layers("fit")
        X = _as_inputs(X, "X")
        _check_finite(X, "X")
        y = _as_targets(y, X.shape[0], "X", "y")
        if validation_split:
            if validation_data is not None:
                raise ValueError("give validation_data or validation_split, not both")
            X, y, Xv, yv = _split(X, y, validation_split, bool(validation_shuffle), seed)
            validation_data = (Xv, yv)
        N = X.shape[0]
        _check_input_shape(self.layers, X, "X")
        # Probe the output shape (evaluation mode: no state changes) so the
        # targets are checked once, up front, rather than batch by batch. The
        # probe is augmented too, in case augmentation changes the image size
        # (a crop); its generator is a throw-away one, not the training one.
        probe = X[:1] if augment is None else _augment(augment, X[:1], np.random.default_rng(0))
        try:
            out_shape = (N,) + self.forward(probe, training=False).shape[1:]
        except (TypeError, ValueError) as err:
            # a message about the one-example probe names the user's shape instead
            msg = str(err).replace(str(probe.shape), str(X.shape)) if augment is None else str(err)
            raise type(err)(msg) from None
        targets = _check_targets(loss_fn, y, out_shape, "y")
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError(f"validation_data must be a pair (X_val, y_val), got {type(validation_data).__name__}"
                                 + (f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list))
                                    else ""))
            try:
                Xv = _as_inputs(validation_data[0], "X_val")
                _check_finite(Xv, "X_val")
                yv = _as_targets(validation_data[1], Xv.shape[0], "X_val", "y_val")
                if Xv.shape[1:] != probe.shape[1:]:
                    raise ValueError(f"X_val has examples of shape {Xv.shape[1:]}, but the model trains on examples "
                                     f"of shape {probe.shape[1:]} (X has shape {X.shape})")
                _check_targets(loss_fn, yv, (Xv.shape[0],) + out_shape[1:], "y_val")
            except (TypeError, ValueError) as err:
                raise type(err)(f"validation_data: {err}") from None
            val = (Xv, yv)

        self.optimizer, self.loss, self.seed, self.lr_schedule = opt, loss_fn, seed, schedule
        history: dict[str, list] = {"epoch": [], "loss": [], "data_loss": [], "penalty": [], "accuracy": []}
        if val is not None:
            history["val_loss"], history["val_accuracy"] = [], []
        if schedule is not None:
            history["lr"] = []
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin(self, history)
        # The C++ step plan (issue 11): every layer's kernels in one call per step, and without
        # augmentation one call per epoch; bit-identical to the layer loop below, which stays
        # for what the plan does not run (a layer class of one's own, a custom loss, ...).
        plan = _plan.plan_for_fit(self, opt, loss_fn, X, targets, bs, probe.shape[1:], augment)
        n_batches = -(-N // bs)
        bar = None
        if verbose == 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=int(epochs) * n_batches, desc="fit", unit="batch", leave=True)
        self._input_shape = tuple(int(d) for d in X.shape[1:])
        last_epoch = self.epoch + int(epochs)
        try:
            for _ in range(int(epochs)):
                e = self.epoch
                started = time.perf_counter()
                self.weights_ready = True  # from the first update on, the weights are trained ones
                if schedule is not None:
                    opt.learning_rate = _as_learning_rate(schedule(e), schedule, e)
                order = np.random.default_rng([seed, e]).permutation(N) if shuffle else np.arange(N)
                total_loss = total_penalty = total_correct = 0.0
                if plan is not None and not plan.valid():  # a callback replaced an array: plan again
                    plan = _plan.plan_for_fit(self, opt, loss_fn, X, targets, bs, probe.shape[1:], augment)
                if plan is not None and augment is None:
                    # the whole epoch in one call; it stops before the update of a batch whose loss
                    # fails the check, which check_loss then reports as the layer loop would
                    r = plan.epoch(order, bs, max_loss)
                    if bar is not None:
                        bar.update(int(r["steps"]))
                    if r["interrupt"] is not None:
                        raise r["interrupt"]
                    for b in range(int(r["steps"])):
                        rows = int(r["rows"][b])
                        total_loss += float(r["data_loss"][b]) * rows
                        total_penalty += float(r["penalty"][b]) * rows
                        total_correct += plan.accuracy(int(r["correct"][b]), rows) * rows
                    if r["stopped"] is not None:
                        if r["error"] is not None:
                            raise ValueError(r["error"])
                        b = int(r["stopped"])
                        check_loss(float(r["data_loss"][b] + r["penalty"][b]), epoch=e + 1, step=b + 1,
                                   learning_rate=opt.learning_rate, max_loss=max_loss)
                for b, start in enumerate(range(0, N, bs) if plan is None or augment is not None else ()):
                    idx = order[start : start + bs]
                    xb, tb = X[idx], targets[idx]
                    if augment is not None:
                        xb = _augment(augment, xb, _batch_rng(seed, e, b))
                    if plan is not None and plan.accepts(xb):
                        # one step through the plan (the augmentation needs Python per batch)
                        batch_loss, batch_penalty, correct, updated = plan.step(
                            np.ascontiguousarray(xb, dtype=plan.dtype), plan.y[idx],
                            None if plan.acc is None else plan.acc[idx], max_loss)
                        if not updated:
                            check_loss(batch_loss + batch_penalty, epoch=e + 1, step=b + 1,
                                       learning_rate=opt.learning_rate, max_loss=max_loss)
                        batch_accuracy = plan.accuracy(correct, len(idx))
                    else:
                        if plan is not None:
                            plan.commit_state()  # the layer loop's optimizer step uses the plan's arrays
                        out = self.forward(xb, training=True)
                        # targets were checked once above; a NaN/Inf output gives a NaN loss,
                        # which check_loss reports as the divergence it is
                        with np.errstate(invalid="ignore", over="ignore"):
                            batch_loss = loss_fn.forward_trusted(np.ascontiguousarray(out), tb)
                        params = self.parameters()
                        # the thesis' L2 penalty (eq. 9) at the weights this batch's gradient is taken at
                        batch_penalty = opt.penalty(params)
                        check_loss(batch_loss + batch_penalty, epoch=e + 1, step=b + 1,
                                   learning_rate=opt.learning_rate, max_loss=max_loss)
                        self.backward(loss_fn.backward(), need_input_grad=False)
                        opt.step(self.parameters())
                        batch_accuracy = loss_fn.accuracy(out, tb)
                    total_loss += batch_loss * len(idx)
                    total_penalty += batch_penalty * len(idx)
                    total_correct += batch_accuracy * len(idx)
                    if bar is not None:
                        bar.update(1)
                self.epoch = e + 1
                logs = {"epoch": self.epoch, "loss": (total_loss + total_penalty) / N, "data_loss": total_loss / N,
                        "penalty": total_penalty / N, "accuracy": total_correct / N}
                if val is not None:
                    # validation_data was checked before training, in its own words; evaluate (which a
                    # subclass or a test may wrap) runs on it every epoch
                    logs["val_loss"], logs["val_accuracy"] = self.evaluate(val[0], val[1], loss_fn)
                if schedule is not None:
                    logs["lr"] = opt.learning_rate
                for key, value in logs.items():
                    history[key].append(value)
                if bar is not None:
                    bar.set_postfix(_postfix(logs))
                if verbose == 2:
                    print(_epoch_line(logs, last_epoch, time.perf_counter() - started), flush=True)
                cb_logs = dict(logs)  # one copy for the callbacks: they may add to it, not alter the history
                for cb in callbacks:
                    cb.on_epoch_end(self, cb_logs)
                if self.stop_training:
                    break
        finally:
            if bar is not None:
                bar.close()
            if plan is not None:  # the plan may be kept for the next fit; the data is not
                plan.X = plan.y = plan.acc = None
        for cb in callbacks:
            cb.on_train_end(self, history)
        self.weights_ready = True  # fit ran (also for epochs=0: the user chose these weights)
        return history

    # -- saving --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write the model to ONE ``.npz`` file at ``path`` (exactly; no suffix is added).

        The file holds the architecture (layer class names and configs, as
        JSON), all parameters and buffers (running statistics, dropout
        counters), the optimizer and its state, the learning-rate schedule,
        the loss, ``epoch`` and ``seed``. It is written to a temporary file in the same folder and
        moved into place with ``os.replace``, so ``path`` always holds either
        the old or the new complete file. Returns ``path``. Load with
        :func:`natverk.load`.
        """
        from ._io import save_model

        return save_model(self, path)
