"""Small synthetic datasets shared by the model and training tests."""

from __future__ import annotations

import numpy as np


def bars(n: int, seed: int, noise: float = 0.5):
    """8x8 one-channel images of a horizontal (class 0) or vertical (class 1) bar plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(0.0, noise, (n, 1, 8, 8))
    pos = rng.integers(0, 8, n)
    rows = np.arange(n)
    X[rows[y == 0], 0, pos[y == 0], :] += 2.0
    X[rows[y == 1], 0, :, pos[y == 1]] += 2.0
    return X, y
