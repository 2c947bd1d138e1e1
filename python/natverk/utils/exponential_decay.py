"""Mirror of MATLAB `exponential_decay.m`: exponentially decayed learning rate.

Thesis appendix C, section 7.4: ``learning_rate = 0.99999^epoch * learning_rate``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["exponential_decay"]


def exponential_decay(
    learning_rate: float, epoch: int, decay: float = 0.99999
) -> float:
    """Mirror of MATLAB `exponential_decay.m`: ``decay**epoch * learning_rate``.

    Parameters
    ----------
    learning_rate : float
        The initial (epoch 0) learning rate; finite and ``>= 0``.
    epoch : int
        Epoch number, ``>= 0`` (MATLAB ``epoch_num``).
    decay : float, default 0.99999
        Per-epoch factor, in (0, 1] for a decay; the MATLAB code hard-codes
        0.99999. Values above 1 are accepted (a warm-up schedule) but must be
        finite and positive.

    Returns
    -------
    float
        The decayed learning rate. Call it with the *initial* rate each
        epoch, as the MATLAB main script does; feeding the previous epoch's
        output back in would compound the decay.
    """
    if isinstance(learning_rate, (bool, np.bool_)) or not isinstance(
        learning_rate, numbers.Real
    ):
        raise TypeError(f"learning_rate must be a real number, got {learning_rate!r}")
    if not (math.isfinite(learning_rate) and learning_rate >= 0):
        raise ValueError(f"learning_rate must be finite and >= 0, got {learning_rate}")
    if isinstance(epoch, (bool, np.bool_)) or not isinstance(epoch, numbers.Integral):
        raise TypeError(f"epoch must be a non-negative integer, got {epoch!r}")
    if epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch}")
    if isinstance(decay, (bool, np.bool_)) or not isinstance(decay, numbers.Real):
        raise TypeError(f"decay must be a real number, got {decay!r}")
    if not (math.isfinite(decay) and decay > 0):
        raise ValueError(f"decay must be finite and > 0, got {decay}")
    return float(decay) ** int(epoch) * float(learning_rate)
