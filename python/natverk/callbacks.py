"""Callbacks for :meth:`natverk.models.Sequential.fit`: early stopping and checkpoints.

``fit(..., callbacks=[...])`` calls every callback at three points:

* ``on_train_begin(model, history)`` before the first epoch; ``history`` is
  the dict ``fit`` will return, already holding its (empty) per-epoch lists,
  so a callback can check that the value it monitors will exist;
* ``on_epoch_end(model, logs)`` after every epoch, with ``logs`` the epoch's
  numbers: ``epoch`` (1-based, counting earlier fits, = ``model.epoch``),
  ``loss``, ``accuracy``, ``val_loss`` / ``val_accuracy`` with validation
  data and ``lr`` with a learning-rate schedule. All callbacks get the same
  dict, in order, so a callback may add a number (say ``val_f1``) that a
  later one monitors; the history ``fit`` returns is not affected. Setting
  ``model.stop_training = True`` ends ``fit`` after this epoch;
* ``on_train_end(model, history)`` once training stops (also after an early
  stop), before ``fit`` returns ``history``; it may add entries to it.

Subclass :class:`Callback` and override the hooks you need.

Early stopping (thesis §2.4.3, digest §2): "when training no longer gives a
generalisable improvement on validation data the model has begun to overfit
and training should end" -- :class:`EarlyStopping` watches a validation
number and stops after ``patience`` epochs without improvement, restoring the
best weights. :class:`ModelCheckpoint` saves the model (atomically, with its
optimizer, schedule and epoch count: digest §2 "Checkpoints") so that training
can be resumed bit-identically with ``natverk.load(path).fit(...)``.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import numpy as np

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint"]


class Callback:
    """Base class: every hook does nothing. See the module docstring for when each is called."""

    def on_train_begin(self, model, history: dict) -> None:
        pass

    def on_epoch_end(self, model, logs: dict) -> None:
        pass

    def on_train_end(self, model, history: dict) -> None:
        pass


# ------------------------------------------------------------------ shared helpers


def _mode(monitor: str, mode: str) -> str:
    """"min" or "max": losses improve downwards, everything else (accuracy, ...) upwards."""
    if mode == "auto":
        return "min" if "loss" in monitor else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


def _monitor_name(monitor: Any) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"monitor must be the name of a logged value such as 'val_loss', got {monitor!r}")
    return monitor


# What fit itself logs (with validation data and a schedule).
_FIT_LOGS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


def _check_monitored(who: str, monitor: str, history: dict) -> None:
    # Checked before the first epoch, so that missing validation data fails at
    # once instead of after an epoch of training. Other names may be added to
    # the logs by an earlier callback; they are checked at the epoch's end.
    if monitor in _FIT_LOGS and monitor not in history:
        hint = " (pass validation_data to fit)" if monitor.startswith("val_") else " (pass lr_schedule to fit)"
        raise ValueError(f"{who} monitors {monitor!r}, but this fit logs only {sorted(history)}{hint}")


def _value(who: str, monitor: str, logs: dict) -> float:
    if monitor not in logs:
        raise ValueError(f"{who} monitors {monitor!r}, but the epoch's logs hold only {sorted(logs)}")
    value = float(logs[monitor])
    if math.isnan(value):
        raise ValueError(f"{who}: the monitored {monitor!r} is NaN in epoch {logs.get('epoch')}")
    return value


class _Best:
    """Tracks the best value of a monitored number ("min" or "max" mode, with ``min_delta``)."""

    def __init__(self, mode: str, min_delta: float):
        self.mode, self.min_delta = mode, min_delta
        self.reset()

    def reset(self) -> None:
        self.value = math.inf if self.mode == "min" else -math.inf
        self.epoch: int | None = None

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if self.mode == "min":
            return value < self.value - self.min_delta
        return value > self.value + self.min_delta


# ------------------------------------------------------------------ early stopping


class EarlyStopping(Callback):
    """Stop ``fit`` when ``monitor`` has not improved for ``patience`` epochs (thesis §2.4.3).

    Parameters
    ----------
    monitor : str
        A key of the epoch logs: "val_loss" (default), "val_accuracy",
        "loss", "accuracy", ...
    patience : int
        Training stops after ``patience`` consecutive epochs without
        improvement (>= 1), i.e. at epoch ``best_epoch + patience``.
    min_delta : float
        An epoch improves only if it beats the best value by more than this.
    restore_best : bool
        When training ends (stopped early or not), put back the parameters and
        running statistics of the best epoch. The optimizer state, the dropout
        counters (so later training draws fresh masks) and ``model.epoch``
        are left as they are.
    mode : "auto", "min" or "max"
        Whether smaller or larger is better; "auto" picks "min" for names
        containing "loss" and "max" otherwise.

    Notes
    -----
    After ``fit``, ``history["best_epoch"]`` is the (1-based, absolute) epoch
    with the best value and ``history["stopped_epoch"]`` the epoch after
    which training stopped early, or None if it ran all its epochs. The same
    numbers are the attributes ``best_epoch``, ``stopped_epoch`` and
    ``best_value``. State is reset at the start of every ``fit``.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True, mode: str = "auto"):
        self.monitor = _monitor_name(monitor)
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not 0 <= min_delta < math.inf:
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)
        self.mode = _mode(self.monitor, mode)
        self._best = _Best(self.mode, self.min_delta)
        self._reset()

    def _reset(self) -> None:
        self._best.reset()
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._weights: dict[str, np.ndarray] | None = None

    @property
    def best_epoch(self) -> int | None:
        return self._best.epoch

    @property
    def best_value(self) -> float:
        return self._best.value

    def __repr__(self) -> str:
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best}, mode={self.mode!r})")

    def on_train_begin(self, model, history):
        _check_monitored("EarlyStopping", self.monitor, history)
        self._reset()

    def on_epoch_end(self, model, logs):
        value = _value("EarlyStopping", self.monitor, logs)
        if self._best.improved(value):
            self._best.value, self._best.epoch = value, int(logs["epoch"])
            self.wait = 0
            if self.restore_best:
                self._weights = _snapshot(model)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = int(logs["epoch"])
                model.stop_training = True

    def on_train_end(self, model, history):
        if self.restore_best and self._weights is not None:
            _restore(model, self._weights)
        history["best_epoch"] = self.best_epoch
        history["stopped_epoch"] = self.stopped_epoch


def _snapshot(model) -> dict[str, np.ndarray]:
    """Copies of the parameters and the floating-point buffers (batch-norm running statistics).

    Integer buffers are dropout's call counters: not part of what the network
    computes, and rewinding them would replay old dropout masks.
    """
    out = {f"param/{n}": v.copy() for n, v, _ in model.parameters()}
    out.update({f"buffer/{n}": v.copy() for n, v in model.buffers() if v.dtype.kind == "f"})
    return out


def _restore(model, weights: dict[str, np.ndarray]) -> None:
    current = {f"param/{n}": v for n, v, _ in model.parameters()}
    current.update({f"buffer/{n}": v for n, v in model.buffers()})
    for key, saved in weights.items():
        current[key][...] = saved  # in place: the optimizer's state stays keyed to the same arrays


# ------------------------------------------------------------------ checkpoints


class ModelCheckpoint(Callback):
    """Save the model with :meth:`~natverk.models.Sequential.save` during ``fit``.

    Parameters
    ----------
    path : str or PathLike
        The file to write. It may hold ``str.format`` fields filled from the
        epoch's logs, e.g. ``"ckpt-{epoch:03d}.npz"`` or
        ``"best-{val_accuracy:.3f}.npz"``; without fields the same file is
        overwritten (atomically: it always holds a complete model).
    every : int
        Save after every ``every``-th epoch (absolute epoch number divisible
        by ``every``).
    save_best_only : bool
        At those epochs, save only if ``monitor`` improved on the best value
        seen at earlier saves of this ``fit`` call.
    monitor, mode : as for :class:`EarlyStopping` (used with ``save_best_only``).

    Notes
    -----
    Each file holds everything needed to resume: parameters, buffers, the
    optimizer with its state and learning rate, the learning-rate schedule,
    the epoch count and the shuffling seed. ``natverk.load(path).fit(X, y,
    more_epochs, augment=...)`` continues exactly where the saved epoch
    ended. ``saved`` lists the paths written, in order.
    """

    def __init__(self, path: str | os.PathLike, every: int = 1, save_best_only: bool = False,
                 monitor: str = "val_loss", mode: str = "auto"):
        self.path = os.fspath(path)
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every = int(every)
        self.save_best_only = bool(save_best_only)
        self.monitor = _monitor_name(monitor)
        self.mode = _mode(self.monitor, mode)
        self._best = _Best(self.mode, 0.0)
        self.saved: list[str] = []

    def __repr__(self) -> str:
        return (f"ModelCheckpoint({self.path!r}, every={self.every}, save_best_only={self.save_best_only}, "
                f"monitor={self.monitor!r}, mode={self.mode!r})")

    def on_train_begin(self, model, history):
        if self.save_best_only:
            _check_monitored("ModelCheckpoint", self.monitor, history)
        self._best.reset()

    def on_epoch_end(self, model, logs):
        epoch = int(logs["epoch"])
        if epoch % self.every:
            return
        if self.save_best_only:
            value = _value("ModelCheckpoint", self.monitor, logs)
            if not self._best.improved(value):
                return
            self._best.value, self._best.epoch = value, epoch
        try:
            path = self.path.format(**logs)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"ModelCheckpoint path {self.path!r} cannot be filled from the logs {sorted(logs)}: {err}") from None
        model.save(path)
        self.saved.append(path)
