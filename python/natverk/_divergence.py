"""One divergence guard for every training API (``train``, ``Sequential.fit``,
the balance principle, the lambda-search trials).

A diverged run shows itself as a loss that stops being finite -- or, with the
adaptive optimizers at absurd learning rates, as one that stays finite while it
explodes (Adam at lr 1e3 reaches 5e25 without a single NaN). Every API raises
the same :class:`DivergenceError`, naming the epoch and step and the learning
rate to lower; ``max_loss`` turns the second kind into an error too.
"""

from __future__ import annotations

import math

__all__ = ["DivergenceError", "as_max_loss", "check_loss"]


class DivergenceError(FloatingPointError):
    """Training diverged: the loss became NaN or Inf, or rose above ``max_loss``.

    A ``FloatingPointError``, so code that caught the old errors still does.
    ``epoch`` and ``step`` (both 1-based; step counts minibatches within the
    epoch) and ``loss`` say where."""

    def __init__(self, message: str, *, epoch: int, step: int, loss: float):
        super().__init__(message)
        self.epoch, self.step, self.loss = epoch, step, loss


def as_max_loss(max_loss) -> float | None:
    """Validate the public ``max_loss`` argument: None, or a positive number."""
    if max_loss is None:
        return None
    if isinstance(max_loss, bool) or not isinstance(max_loss, (int, float)) and not hasattr(max_loss, "__float__"):
        raise TypeError(f"max_loss must be a positive number or None, got {type(max_loss).__name__}")
    value = float(max_loss)
    if not value > 0:  # also rejects NaN
        raise ValueError(f"max_loss must be a positive number or None, got {max_loss!r}")
    return value


def check_loss(loss: float, *, epoch: int, step: int, learning_rate=None, max_loss: float | None = None,
               what: str = "the loss") -> None:
    """Raise :class:`DivergenceError` when ``loss`` is not finite or exceeds ``max_loss``."""
    if math.isfinite(loss) and (max_loss is None or loss <= max_loss):
        return
    reason = f"{what} became {loss:.6g}" if not math.isfinite(loss) else f"{what} {loss:.6g} exceeds max_loss={max_loss:g}"
    lr = "" if learning_rate is None else f" (now {float(learning_rate):g})"
    raise DivergenceError(
        f"training diverged in epoch {epoch}, step {step}: {reason}; lower the learning rate{lr}",
        epoch=epoch, step=step, loss=float(loss),
    )
