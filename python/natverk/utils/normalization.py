"""Mirror of MATLAB `normalization.m`: z-score both sets with the training statistics.

Thesis appendix C, section 7.5::

    mu    = mean(X_train, 1)
    sigma = sqrt(mean((X_train - mu).^2, 1))      % population std
    X     = (X - mu) ./ (sigma + 1e-6)            % for X_train and X_test

Examples are along axis 0; every other axis is a feature axis, so an
(N, C, H, W) image batch is normalised per pixel and channel.

For images the thesis' PyTorch scripts (thesis §2 digest, "Normalisation
constants") instead normalise per *channel* with fixed published statistics:
:func:`normalize_channels` with :data:`MNIST_MEAN` / :data:`MNIST_STD` or
:data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "normalization",
    "normalize_channels",
    "MNIST_MEAN",
    "MNIST_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
]

# Per-channel statistics of the training images scaled to [0, 1], as used by
# the thesis' PyTorch scripts (transforms.Normalize); thesis §2 digest.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.247, 0.243, 0.261)

# Added to the standard deviation (not the variance), as the MATLAB code does,
# so constant features map to 0 instead of dividing by zero.
EPSILON = 1e-6

# Rows per block when accumulating statistics: bounds the float64 temporaries
# to about 32 MiB whatever the size of the data set.
_BLOCK_ELEMENTS = 1 << 22


def normalization(X_train: Any, X_test: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mirror of MATLAB `normalization.m`: z-score with the training mean and std.

    Parameters
    ----------
    X_train : array_like, shape (m_train, ...)
        Training examples along axis 0. Must be non-empty and finite.
    X_test : array_like, shape (m_test, ...)
        Test examples along axis 0, with the same feature shape
        (``X_test.shape[1:] == X_train.shape[1:]``); may have zero rows.

    Returns
    -------
    X_train_n, X_test_n : numpy.ndarray
        ``(X - mu) / (sigma + 1e-6)`` with ``mu`` and ``sigma`` (population
        standard deviation) computed per feature over the training rows.
        Each keeps its input's floating dtype; integer input becomes float64.
        New arrays: the inputs are never modified.

    Raises
    ------
    TypeError
        If an input is not real numeric (complex, object, string or bool).
    ValueError
        If ``X_train`` is empty or 0-d, the feature shapes differ, or either
        input holds NaN or infinity.

    Notes
    -----
    The statistics are accumulated in float64 (or wider) block by block, so
    float32 data get accurate means without a full float64 copy; the
    normalisation itself is carried out in the data's own dtype. The MATLAB
    code also prints sizes and "Data normalized"; this function is silent.
    """
    X_train = _as_real_array(X_train, "X_train")
    X_test = _as_real_array(X_test, "X_test")
    if X_train.ndim == 0 or X_train.shape[0] == 0 or X_train.size == 0:
        raise ValueError(
            f"X_train must be non-empty with examples along axis 0, got shape {X_train.shape}"
        )
    if X_test.ndim == 0:
        raise ValueError("X_test must have examples along axis 0, got a 0-d array")
    if X_test.shape[1:] != X_train.shape[1:]:
        raise ValueError(
            "X_train and X_test must have the same feature shape, got "
            f"{X_train.shape[1:]} and {X_test.shape[1:]}"
        )
    for X, name in ((X_train, "X_train"), (X_test, "X_test")):
        if not all(np.isfinite(block).all() for block in _row_blocks(X)):
            raise ValueError(f"{name} must be finite, but it contains NaN or infinity")

    acc = np.result_type(X_train.dtype, np.float64)
    m = X_train.shape[0]
    mu = np.zeros(X_train.shape[1:], dtype=acc)
    for block in _row_blocks(X_train):
        mu += block.sum(axis=0, dtype=acc)
    mu /= m
    # Two passes (mean first, then squared deviations) rather than
    # E[x^2] - E[x]^2, which cancels catastrophically for large offsets.
    sq = np.zeros_like(mu)
    for block in _row_blocks(X_train):
        dev = block.astype(acc) - mu
        sq += np.einsum("i...,i...->...", dev, dev)
    denom = np.sqrt(sq / m) + EPSILON

    return _apply(X_train, mu, denom), _apply(X_test, mu, denom)


def _as_real_array(X: Any, name: str) -> np.ndarray:
    """Return ``X`` as an ndarray of a floating dtype (integers -> float64)."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a real numeric array: {exc}") from exc
    if arr.dtype.kind in "iu":
        return arr.astype(np.float64)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a real numeric array (float or integer), got dtype {arr.dtype}"
        )
    return arr


def _row_blocks(X: np.ndarray) -> Iterator[np.ndarray]:
    """Yield consecutive row slices of ``X`` holding about _BLOCK_ELEMENTS values."""
    row_size = max(1, int(np.prod(X.shape[1:], dtype=np.int64)))
    rows = max(1, _BLOCK_ELEMENTS // row_size)
    for start in range(0, X.shape[0], rows):
        yield X[start : start + rows]


def _apply(X: np.ndarray, mu: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """Return ``(X - mu) / denom`` as a new array of X's dtype."""
    out = np.subtract(X, mu.astype(X.dtype), dtype=X.dtype)
    out /= denom.astype(X.dtype)
    return out


def normalize_channels(X: Any, mean: Any, std: Any) -> np.ndarray:
    """Per-channel normalisation ``(X[:, c] - mean[c]) / std[c]`` of an (N, C, ...) batch.

    The thesis' image pipelines (thesis §2 digest; ``transforms.Normalize`` in
    its PyTorch scripts) normalise each colour channel with fixed statistics
    instead of per-pixel z-scores, e.g.
    ``normalize_channels(X, CIFAR10_MEAN, CIFAR10_STD)`` for CIFAR-10 images
    scaled to [0, 1].

    Parameters
    ----------
    X : array_like, shape (N, C, ...)
        Examples along axis 0, channels along axis 1 (NCHW for images).
    mean, std : float or sequence of C floats
        A scalar applies to every channel. ``std`` must be > 0; both finite.

    Returns
    -------
    numpy.ndarray
        A new array in X's floating dtype (integer input becomes float64);
        ``X`` is not modified.

    Raises
    ------
    TypeError
        If ``X`` is not real numeric.
    ValueError
        If ``X`` has fewer than 2 axes, ``mean`` / ``std`` have the wrong
        length, are not finite, or ``std`` is not positive.
    """
    X = _as_real_array(X, "X")
    if X.ndim < 2:
        raise ValueError(f"X must be an (N, C, ...) batch with channels on axis 1, got shape {X.shape}")
    C = X.shape[1]
    stats = []
    for name, value in (("mean", mean), ("std", std)):
        try:
            v = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number or a sequence of numbers, got {value!r}") from None
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != C):
            raise ValueError(f"{name} must be a scalar or hold one value per channel ({C}), got shape {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite, got {value!r}")
        stats.append(np.broadcast_to(v, (C,)))
    mu, sigma = stats
    if (sigma <= 0).any():
        raise ValueError(f"std must be > 0 for every channel, got {std!r}")
    # Reshape to (C, 1, 1, ...) so the statistics broadcast along axis 1.
    shape = (C,) + (1,) * (X.ndim - 2)
    out = np.subtract(X, mu.astype(X.dtype).reshape(shape), dtype=X.dtype)
    out /= sigma.astype(X.dtype).reshape(shape)
    return out
