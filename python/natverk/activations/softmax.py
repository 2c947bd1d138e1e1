"""Softmax, the output layer of the MATLAB ``forward_propogation``."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validation import as_float_array


def softmax(z) -> np.ndarray:
    """Row-wise softmax of a 2-D array ``z`` (examples x classes).

    Stable: the row maximum is subtracted before ``exp`` (the seed's
    ``exp(z) ./ sum(exp(z), 2)`` overflows to NaN for logits in the hundreds).
    """
    return _core.softmax(as_float_array(z, "z"))
