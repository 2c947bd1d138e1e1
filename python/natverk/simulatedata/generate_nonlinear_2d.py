"""Mirror of MATLAB `generate_nonlinear_2d.m`: K interleaved spiral arms in 2-D.

Thesis appendix C, section 4.2. Class ``j`` (``j = 0..K-1``) is the arm
``(r sin t, r cos t) + 1`` with ``r = linspace(0, 1, N)`` and
``t = linspace(4j, 4(j+1), N)``; the second coordinate then gets
multiplicative noise and a fraction of the labels is re-drawn at random.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .generate_linear_2d import _finite_real, _float_dtype, _positive_int, _rng

__all__ = ["generate_nonlinear_2d"]


def generate_nonlinear_2d(
    n_per_class: int,
    dims: int = 2,
    n_classes: int = 4,
    noise_rate: float = 0.1,
    label_noise: float = 0.2,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    dtype: Any = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror of MATLAB `generate_nonlinear_2d.m`: spiral data with K classes.

    Parameters
    ----------
    n_per_class : int
        Points per class, ``N >= 1`` (MATLAB ``N``).
    dims : int, default 2
        Dimension of the points (MATLAB ``D``). Only 2 is supported: the
        spiral is defined in the plane, and the MATLAB code also only ever
        fills two columns.
    n_classes : int, default 4
        Number of spiral arms / classes, ``K >= 1`` (MATLAB ``K``).
    noise_rate : float, default 0.1
        Multiplicative noise on the second coordinate (``>= 0``):
        ``x2 <- x2 + x2 * alpha * noise_rate``, ``alpha`` uniform in [-1, 1].
    label_noise : float, default 0.2
        Probability, in [0, 1], that a label is replaced by a class drawn
        uniformly from ``0..K-1`` (which may be the original one). The
        MATLAB code hard-codes 0.2 (``addnoise``).
    seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
        Anything :func:`numpy.random.default_rng` accepts; an existing
        ``Generator`` is used and advanced in place.
    dtype : numpy floating dtype, default float64
        dtype of the returned ``X``.

    Returns
    -------
    X : numpy.ndarray, shape (N*K, 2), dtype ``dtype``
        Class ``j`` occupies rows ``j*N .. (j+1)*N - 1``.
    y : numpy.ndarray, shape (N*K,), int64
        Labels in ``0..K-1`` after label noise.

    Notes
    -----
    Because a re-drawn label equals the original with probability ``1/K``,
    the expected fraction of changed labels is ``label_noise * (K-1)/K``.

    The MATLAB per-label loop is vectorised: one uniform per label decides
    whether it is re-drawn and one random class per label is drawn for all
    of them, so the stream consumed (coordinate noise, then the flip mask,
    then the replacement classes) does not depend on the data.
    """
    n = _positive_int(n_per_class, "n_per_class")
    d = _positive_int(dims, "dims")
    if d != 2:
        raise ValueError(f"dims must be 2: only 2-D spirals are supported, got {d}")
    k = _positive_int(n_classes, "n_classes")
    noise_rate = _finite_real(noise_rate, "noise_rate", nonnegative=True)
    label_noise = _finite_real(label_noise, "label_noise", nonnegative=True)
    if label_noise > 1:
        raise ValueError(
            f"label_noise must be a probability in [0, 1], got {label_noise}"
        )
    out_dtype = _float_dtype(dtype)
    rng = _rng(seed)

    classes = np.arange(k)
    # Row j of r and t is the MATLAB linspace for class j; flattening row by
    # row puts class j in rows j*N .. (j+1)*N - 1, as the seed's indices do.
    r = np.broadcast_to(np.linspace(0.0, 1.0, n), (k, n)).reshape(-1)
    t = np.linspace(4.0 * classes, 4.0 * (classes + 1), n, axis=1).reshape(-1)
    X = np.empty((n * k, 2), dtype=np.float64)
    X[:, 0] = r * np.sin(t) + 1.0
    X[:, 1] = r * np.cos(t) + 1.0
    y = np.repeat(classes.astype(np.int64), n)

    alpha = rng.random(n * k) * 2.0 - 1.0
    X[:, 1] += X[:, 1] * alpha * noise_rate

    # MATLAB: `if addnoise >= rand, y(i) = randi(K) - 1`.
    flip = rng.random(n * k) < label_noise
    replacement = rng.integers(0, k, size=n * k, dtype=np.int64)
    y = np.where(flip, replacement, y)

    return X.astype(out_dtype, copy=False), y
