"""Learning-rate schedules: the learning rate as a function of the epoch.

The thesis' MATLAB main script decays the learning rate every epoch with
``exponential_decay(lr, epoch) = 0.99999^epoch * lr`` (digest §1, appendix C
§7.4); its PyTorch scripts (digest §2) train with a fixed rate. These classes
package such rules for :meth:`natverk.models.Sequential.fit`::

    model.fit(X, y, epochs=30, optimizer=nv.optimizers.SGD(0.1),
              lr_schedule=nv.schedules.StepDecay(0.1, step_size=10))

At the start of every epoch ``fit`` sets ``optimizer.learning_rate =
schedule(model.epoch)``, where ``model.epoch`` is the number of epochs the
model has trained so far, over all ``fit`` calls (0 for the first epoch).

A schedule is a pure function of that epoch number: it keeps no state that
changes during training. That is what makes resuming exact: a model saved
after epoch 3 and loaded again asks its schedule for epoch 3 next, exactly as
the uninterrupted run would. ``to_config()`` / ``from_config()`` (and
:func:`schedule_to_spec` / :func:`schedule_from_spec`) turn a schedule into
JSON-able data and back; :meth:`Sequential.save` stores it in the model file.

Write your own by subclassing :class:`Schedule` and implementing
``__call__`` and ``to_config`` (subclasses register themselves by class name,
so a saved model finds them again once their module is imported).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy as np

from .utils.exponential_decay import exponential_decay

__all__ = [
    "Schedule",
    "Constant",
    "ExponentialDecay",
    "StepDecay",
    "CosineDecay",
    "SCHEDULE_CLASSES",
    "schedule_to_spec",
    "schedule_from_spec",
]

#: Schedule classes by name (filled by :meth:`Schedule.__init_subclass__`).
SCHEDULE_CLASSES: dict[str, type[Schedule]] = {}


def _number(value: Any, name: str, lo: float, lo_open: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < lo or (lo_open and v == lo):
        raise ValueError(f"{name} must be finite and {'>' if lo_open else '>='} {lo}, got {value!r}")
    return v


def _epoch(epoch: Any) -> int:
    if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    return int(epoch)


class Schedule:
    """Base class: ``schedule(epoch) -> learning rate`` for epoch 0, 1, 2, ..."""

    _config_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        SCHEDULE_CLASSES[cls.__name__] = cls

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def to_config(self) -> dict:
        """The constructor arguments as a JSON-able dict: ``type(s).from_config(s.to_config())`` rebuilds ``s``."""
        return {k: getattr(self, k) for k in self._config_keys}

    @classmethod
    def from_config(cls, config: dict) -> Schedule:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.to_config().items())})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_config() == other.to_config()  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]  # mutable attributes: not hashable


class Constant(Schedule):
    """The same learning rate every epoch (the thesis' PyTorch runs: SGD at 1e-3)."""

    _config_keys = ("learning_rate",)

    def __init__(self, learning_rate: float):
        self.learning_rate = _number(learning_rate, "learning_rate", 0.0)

    def __call__(self, epoch: int) -> float:
        _epoch(epoch)
        return self.learning_rate


class ExponentialDecay(Schedule):
    """``rate**epoch * learning_rate``: the MATLAB main script's ``exponential_decay`` (thesis appendix C §7.4).

    ``rate`` defaults to the thesis' 0.99999 (per epoch). Computed by
    :func:`natverk.utils.exponential_decay`, always from the *initial* rate,
    so the decay never compounds.
    """

    _config_keys = ("learning_rate", "rate")

    def __init__(self, learning_rate: float, rate: float = 0.99999):
        self.learning_rate = _number(learning_rate, "learning_rate", 0.0)
        self.rate = _number(rate, "rate", 0.0, lo_open=True)

    def __call__(self, epoch: int) -> float:
        return exponential_decay(self.learning_rate, _epoch(epoch), self.rate)


class StepDecay(Schedule):
    """``learning_rate * gamma ** (epoch // step_size)``: multiply by ``gamma`` every ``step_size`` epochs."""

    _config_keys = ("learning_rate", "step_size", "gamma")

    def __init__(self, learning_rate: float, step_size: int, gamma: float = 0.1):
        self.learning_rate = _number(learning_rate, "learning_rate", 0.0)
        if isinstance(step_size, (bool, np.bool_)) or not isinstance(step_size, numbers.Integral) or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = _number(gamma, "gamma", 0.0, lo_open=True)

    def __call__(self, epoch: int) -> float:
        return self.learning_rate * self.gamma ** (_epoch(epoch) // self.step_size)


class CosineDecay(Schedule):
    """Half a cosine from ``learning_rate`` down to ``min_lr`` over ``total_epochs`` epochs.

    ``min_lr + (learning_rate - min_lr) * (1 + cos(pi * e / total_epochs)) / 2``
    for ``e = min(epoch, total_epochs)``: epoch 0 gets ``learning_rate``, and
    from ``total_epochs`` on the rate stays at ``min_lr``.
    """

    _config_keys = ("learning_rate", "total_epochs", "min_lr")

    def __init__(self, learning_rate: float, total_epochs: int, min_lr: float = 0.0):
        self.learning_rate = _number(learning_rate, "learning_rate", 0.0)
        if isinstance(total_epochs, (bool, np.bool_)) or not isinstance(total_epochs, numbers.Integral) or total_epochs < 1:
            raise ValueError(f"total_epochs must be a positive integer, got {total_epochs!r}")
        self.total_epochs = int(total_epochs)
        self.min_lr = _number(min_lr, "min_lr", 0.0)
        if self.min_lr > self.learning_rate:
            raise ValueError(f"min_lr ({min_lr}) must not exceed learning_rate ({learning_rate})")

    def __call__(self, epoch: int) -> float:
        e = min(_epoch(epoch), self.total_epochs)
        return self.min_lr + (self.learning_rate - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * e / self.total_epochs))


def schedule_to_spec(schedule: Schedule) -> dict:
    """``{"class": name, "config": {...}}``: how a saved model stores its schedule."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"expected a natverk.schedules.Schedule, got {type(schedule).__name__}")
    return {"class": type(schedule).__name__, "config": schedule.to_config()}


def schedule_from_spec(spec: Any) -> Schedule:
    """Rebuild a schedule from :func:`schedule_to_spec`'s dict (ValueError if it is malformed)."""
    if not isinstance(spec, dict) or set(spec) != {"class", "config"}:
        raise ValueError(f"a schedule spec must be a dict with keys 'class' and 'config', got {spec!r:.200}")
    cls = SCHEDULE_CLASSES.get(spec["class"]) if isinstance(spec["class"], str) else None
    if cls is None:
        raise ValueError(f"unknown schedule class {spec['class']!r}; known: {sorted(SCHEDULE_CLASSES)}")
    if not isinstance(spec["config"], dict):
        raise ValueError(f"schedule {spec['class']}: config must be a dict")
    try:
        return cls.from_config(spec["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build schedule {spec['class']} from {spec['config']!r:.200}: {err}") from None
