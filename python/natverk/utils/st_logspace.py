"""Mirror of MATLAB `st_logspace.m`: sorted random samples, log-uniform on [lo, hi].

Thesis appendix C, section 7.8::

    points = sort(10 .^ ((log10(max) - log10(min)) .* rand([1, N]) + log10(min)))

Used to draw hyper-parameter candidates (learning rates, lambdas) for a
random search, where a uniform draw on a log scale is the right prior.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["st_logspace"]


def st_logspace(
    lo: float,
    hi: float,
    n: int,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
) -> np.ndarray:
    """Mirror of MATLAB `st_logspace.m`: ``n`` sorted log-uniform samples in [lo, hi].

    Parameters
    ----------
    lo, hi : float
        Range of the samples, ``0 < lo <= hi`` (MATLAB ``min``, ``max``;
        renamed so as not to shadow the built-ins).
    n : int
        Number of samples, ``n >= 1``.
    seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
        Anything :func:`numpy.random.default_rng` accepts.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        ``sort(10 ** ((log10(hi) - log10(lo)) * U + log10(lo)))`` with ``U``
        uniform in [0, 1), so ``log10`` of the samples is uniform in
        ``[log10(lo), log10(hi))``.

    Notes
    -----
    ``10 ** log10(lo)`` can round to just below ``lo`` (and the top end to
    just above ``hi``), so the result is clipped to [lo, hi] to keep the
    documented range exact.
    """
    lo = _positive_real(lo, "lo")
    hi = _positive_real(hi, "hi")
    if lo > hi:
        raise ValueError(f"lo must be <= hi, got lo={lo} and hi={hi}")
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be a positive integer, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    try:
        rng = np.random.default_rng(seed)
    except TypeError as exc:
        raise TypeError(
            f"seed must be None, an integer or a Generator, got {seed!r}"
        ) from exc
    except ValueError as exc:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}") from exc

    log_lo = np.log10(lo)
    log_hi = np.log10(hi)
    points = 10.0 ** ((log_hi - log_lo) * rng.random(int(n)) + log_lo)
    points.sort()
    return np.clip(points, lo, hi)


def _positive_real(value: Any, name: str) -> float:
    """Return ``value`` as a float, requiring a finite number > 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value
