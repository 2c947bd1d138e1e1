"""Mirror of MATLAB `generate_linear_2d.m`: two classes split by a straight line.

Thesis appendix C, section 4.1. Points are drawn uniformly in the square
[-1, 1]^2, labelled by which side of the line ``a*x + b*y + c = 0`` they lie
on, and then the second coordinate is perturbed multiplicatively.

The small validation helpers at the bottom of this module are shared with
:mod:`natverk.simulatedata.generate_nonlinear_2d`.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["generate_linear_2d"]


def generate_linear_2d(
    points: int,
    a: float,
    b: float,
    c: float,
    noise_rate: float,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    dtype: Any = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror of MATLAB `generate_linear_2d.m`: linearly separable 2-D data.

    Parameters
    ----------
    points : int
        Number of examples to draw (``points >= 1``).
    a, b, c : float
        Coefficients of the separating line ``a*x + b*y + c = 0``. The
        thesis used the boundary ``f(x) = -x``, i.e. ``a = b = 1, c = 0``.
    noise_rate : float
        Strength of the multiplicative noise on the second coordinate
        (``>= 0``): ``y <- y + y * alpha * noise_rate`` with ``alpha``
        uniform in [-1, 1] per point.
    seed : int, numpy.random.Generator, numpy.random.SeedSequence or None
        Anything :func:`numpy.random.default_rng` accepts. An existing
        ``Generator`` is used (and advanced) in place, so several calls can
        share one stream.
    dtype : numpy floating dtype, default float64
        dtype of the returned ``X``.

    Returns
    -------
    X : numpy.ndarray, shape (points, 2), dtype ``dtype``
        The examples, one per row.
    y : numpy.ndarray, shape (points,), int64
        Label 1 where ``a*x + b*y + c > 0`` and 0 elsewhere.

    Notes
    -----
    As in the MATLAB code the labels are assigned *before* the noise is
    added, so with ``noise_rate > 0`` some points end up on the "wrong" side
    of the line: that is the label noise the experiment wants.

    The random stream is consumed in a fixed order (coordinates, then
    ``alpha``) and ``alpha`` is drawn even when ``noise_rate == 0``, so the
    noise-free points for a given seed are exactly the noisy points' origins.
    The data are generated in float64 and cast to ``dtype`` at the end, so
    the float32 output is the float64 output rounded.
    """
    points = _positive_int(points, "points")
    a = _finite_real(a, "a")
    b = _finite_real(b, "b")
    c = _finite_real(c, "c")
    noise_rate = _finite_real(noise_rate, "noise_rate", nonnegative=True)
    out_dtype = _float_dtype(dtype)
    rng = _rng(seed)

    # rand([points, 2]) * 2 - 1 in MATLAB: uniform in [-1, 1).
    states = rng.random((points, 2)) * 2.0 - 1.0
    # Labels from the clean coordinates, exactly as the seed's loop does.
    labels = (a * states[:, 0] + b * states[:, 1] + c > 0).astype(np.int64)

    alpha = rng.random(points) * 2.0 - 1.0
    states[:, 1] += states[:, 1] * alpha * noise_rate

    return states.astype(out_dtype, copy=False), labels


# ---------------------------------------------------------------------------
# Validation helpers (shared with generate_nonlinear_2d)


def _positive_int(value: Any, name: str) -> int:
    """Return ``value`` as a Python int, requiring an integer >= 1."""
    # bool is an Integral subclass, but True as a point count is a bug.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _finite_real(value: Any, name: str, *, nonnegative: bool = False) -> float:
    """Return ``value`` as a Python float, requiring a finite real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return value


def _float_dtype(dtype: Any) -> np.dtype:
    """Return ``dtype`` as a numpy floating dtype or raise TypeError."""
    try:
        out = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a numpy floating dtype, got {dtype!r}") from exc
    if not np.issubdtype(out, np.floating):
        raise TypeError(f"dtype must be a numpy floating dtype, got {out}")
    return out


def _rng(seed: Any) -> np.random.Generator:
    """Wrap :func:`numpy.random.default_rng`, naming the argument on failure."""
    # default_rng returns an existing Generator unchanged, which is what lets
    # the import_* functions draw train and test sets from one stream.
    try:
        return np.random.default_rng(seed)
    except TypeError as exc:
        raise TypeError(
            "seed must be None, a non-negative integer, a SeedSequence or a "
            f"numpy.random.Generator, got {seed!r}"
        ) from exc
    except ValueError as exc:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}") from exc
