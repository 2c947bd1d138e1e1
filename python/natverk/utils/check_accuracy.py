"""Mirror of MATLAB ``check_accuracy.m``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._validation import as_labels


def check_accuracy(
    X, y, parameters: Mapping[str, np.ndarray], lambda_: float = 0.0, activation: str = "relu"
) -> tuple[float, np.ndarray]:
    """Mirror of MATLAB ``check_accuracy(X, y, parameters, lambda, activation)``.

    Returns ``(accuracy, predictions)``: the fraction of rows whose arg-max
    class equals ``y``, and the predicted classes (int64, 0-based). ``lambda_``
    does not change predictions; it is accepted so calls read like MATLAB's.
    NaN inputs raise ValueError instead of silently predicting class 0.
    """
    from ..neuralnet.forward_propagation import forward_propagation

    probs, _, _ = forward_propagation(X, None, parameters, lambda_, activation)
    predictions = np.argmax(probs, axis=1).astype(np.int64)
    labels = as_labels(y, probs.shape[0], probs.shape[1])
    return float(np.mean(predictions == labels)), predictions
