"""Comparison tolerances for the kernel tests, in one table, plus the helpers
that apply them: ``assert_close`` (a numpy.testing-style check whose failure
message says where the worst element is) and ``check_op`` (run a kernel in a
dtype and its float64 reference on the same values, then compare).

An element passes when |actual - expected| <= atol + rtol * |expected|
(numpy.isclose's rule); NaN matches NaN and +-inf must match exactly.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

__all__ = [
    "FINITE_DIFFERENCE",
    "TOLERANCES",
    "Tol",
    "assert_close",
    "check_op",
    "gemm_atol",
    "tol",
]


class Tol(NamedTuple):
    rtol: float
    atol: float


# The table. Keys are (dtype name, op); op None is the default for the dtype.
#
# Defaults: float64 kernels are compared with a float64 reference at 1e-12,
# about 10^4 ulps (1 ulp = 2.2e-16): room for a different but correct order of
# operations, far below any formula mistake. float32 kernels are compared
# with a float64 reference computed from the SAME float32 inputs at 1e-5,
# about 80 float32 ulps (1 ulp = 1.2e-7). The atol of 1e-12 / 1e-5 is meant for
# O(1) data; ops whose results can cancel to ~0 out of large terms scale atol
# by the size of those terms (see gemm_atol and the ``scale`` argument of tol).
TOLERANCES: dict[tuple[str, str | None], Tol] = {
    ("float64", None): Tol(1e-12, 1e-12),
    ("float32", None): Tol(1e-5, 1e-5),
    # GEMM: a C element is a k-term dot product whose terms are up to
    # max|A| max|B| in size, so the rounding error grows like sqrt(k) (random
    # signs; worst case k) times eps times that size, and a result near zero
    # may be the difference of large terms. The rtol/atol below are therefore
    # multiplied by sqrt(k) * (|alpha| max|A| max|B| + |beta| max|C|) in
    # gemm_atol. float32 GEMM accumulates in float32 (as every BLAS does), so
    # its floor is the float32 default. Observed on the test shapes (uniform
    # [-1, 1] data, scalar and avx2 kernels): worst float32 error <= 0.09 of
    # this atol (e.g. 1.6e-5 vs 2.2e-4 for 64 x 784 x 500), worst float64
    # error <= 0.003 of it, while one dropped or doubled k-term (~|a||b|) or a
    # wrong alpha/beta is orders of magnitude above it.
    ("float64", "gemm"): Tol(1e-12, 1e-12),
    ("float32", "gemm"): Tol(1e-5, 1e-5),
    # Reductions that the contract says accumulate in double WHATEVER the input
    # dtype (mse, bce, bce_with_logits, sum_of_squares, bias_grad before its
    # final cast): the float64 reference on the same float32 inputs must agree
    # to double precision. 1e-10 leaves room for a different summation order
    # over up to ~1e5 terms (n * eps = 2e-11 worst case) and still catches any
    # float32 accumulation (errors of 1e-7 relative and up).
    ("float32", "double_accumulated"): Tol(1e-10, 1e-12),
    ("float64", "double_accumulated"): Tol(1e-10, 1e-12),
    # Softmax-family outputs are probabilities in [0, 1] computed with exp in
    # the kernel's dtype; the defaults already fit. Listed for completeness.
    ("float64", "softmax"): Tol(1e-12, 1e-14),
    ("float32", "softmax"): Tol(1e-5, 1e-7),
    # Optimizer states after several steps: float32 arithmetic inside the
    # kernel (hyper-parameters cast to float32) against a float64 reference
    # run on the same float32 starting values; errors compound for 5 steps,
    # still well inside the default.
    ("float32", "optimizer"): Tol(1e-5, 1e-6),
    ("float64", "optimizer"): Tol(1e-12, 1e-13),
}

# Central differences with h = 1e-6 in float64: truncation error h^2 |f'''| ~
# 1e-12 and rounding error eps |f| / h ~ 2e-10 |f|. rtol 1e-6 / atol 1e-7 is
# ~500x that for O(1)..O(10) losses, and a wrong gradient (a missing factor,
# sign, transpose or term) is off by O(1).
FINITE_DIFFERENCE = Tol(1e-6, 1e-7)


def _dtype_name(dtype) -> str:
    return np.dtype(dtype).name


def tol(dtype, op: str | None = None, scale: float = 1.0) -> Tol:
    """Tolerance for ``op`` in ``dtype`` (the dtype's default when op has no
    entry). ``scale`` multiplies atol: pass the magnitude of the terms that
    were combined when the result can cancel to ~0 from large values."""
    name = _dtype_name(dtype)
    base = TOLERANCES.get((name, op), TOLERANCES[(name, None)])
    return Tol(base.rtol, base.atol * max(float(scale), 1.0))


def gemm_atol(dtype, k: int, amax: float, bmax: float, alpha: float = 1.0,
              beta: float = 0.0, cmax: float = 0.0) -> float:
    """Absolute tolerance for one element of alpha * op(A) op(B) + beta * C."""
    size = abs(alpha) * amax * bmax * math.sqrt(max(k, 1)) + abs(beta) * cmax
    return tol(dtype, "gemm").atol * max(size, 1.0)


def _fmt(v) -> str:
    return np.format_float_scientific(v, precision=10) if np.isfinite(v) else str(v)


def assert_close(actual, expected, dtype, name: str, rtol: float | None = None,
                 atol: float | None = None) -> None:
    """Assert |actual - expected| <= atol + rtol |expected| elementwise.

    rtol/atol default to ``tol(dtype)``. Shapes must match exactly (scalars
    compare as 0-d arrays). NaN must sit where the expected NaN sits, infinities
    must be equal. On failure the message gives the number of mismatches, the
    largest absolute and relative differences, the index of the worst element
    and both values there.
    """
    default = tol(dtype)
    rtol = default.rtol if rtol is None else rtol
    atol = default.atol if atol is None else atol
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {a.shape} != expected shape {e.shape}")
    if a.size == 0:
        return

    nan_a, nan_e = np.isnan(a), np.isnan(e)
    inf_e = np.isinf(e)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
        ok = diff <= atol + rtol * np.abs(e)
    ok = np.where(nan_e, nan_a, ok)                # NaN only where NaN is expected
    ok = np.where(inf_e, a == e, ok)               # inf must be the same inf
    ok &= ~(nan_a & ~nan_e)                        # no NaN where a number is expected
    if ok.all():
        return

    bad = ~ok
    # The worst offender: a NaN/inf mismatch first, otherwise the largest excess.
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        excess = np.where(bad, diff - (atol + rtol * np.abs(e)), -np.inf)
        excess = np.where(bad & ~np.isfinite(excess), np.inf, excess)
        rel = np.where(bad, diff / np.abs(e), 0.0)
    flat = int(np.argmax(excess))
    idx = np.unravel_index(flat, a.shape) if a.ndim else ()
    finite_diff = np.where(bad & np.isfinite(diff), diff, 0.0)
    finite_rel = np.where(bad & np.isfinite(rel), rel, 0.0)
    raise AssertionError(
        f"{name} ({_dtype_name(dtype)}): {int(bad.sum())} of {a.size} elements differ beyond "
        f"rtol={rtol:g}, atol={atol:g}\n"
        f"  worst at index {tuple(int(i) for i in idx)}: actual {_fmt(a[idx])}, "
        f"expected {_fmt(e[idx])}, |diff| {_fmt(diff[idx])}\n"
        f"  largest |diff| {_fmt(finite_diff.max())}, largest relative diff {_fmt(finite_rel.max())}"
    )


def _cast_inputs(inputs: Sequence[Any], dtype) -> tuple[list, list]:
    """Float arrays -> C-contiguous ``dtype`` for the kernel and the SAME
    (already rounded) values in float64 for the reference; anything else
    (labels, strings, numbers) is passed to both unchanged."""
    k_in, r_in = [], []
    for x in inputs:
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            xk = np.ascontiguousarray(x, dtype=dtype)
            k_in.append(xk)
            r_in.append(xk.astype(np.float64))
        else:
            k_in.append(x)
            r_in.append(x)
    return k_in, r_in


def _compare(actual, expected, dtype, name: str, rtol, atol) -> None:
    if expected is None:
        assert actual is None, f"{name}: expected None, got {type(actual).__name__}"
        return
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), (
            f"{name}: expected a tuple of {len(expected)}, got {actual!r:.200}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, dtype, f"{name}[{i}]", rtol, atol)
        return
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), f"{name}: expected an ndarray, got {type(actual)}"
        assert actual.dtype == np.dtype(dtype), f"{name}: dtype {actual.dtype}, expected {dtype}"
    else:
        assert isinstance(actual, float), f"{name}: expected a Python float, got {type(actual)}"
    assert_close(actual, expected, dtype, name, rtol=rtol, atol=atol)


def check_op(name: str, kernel: Callable, reference: Callable, inputs: Sequence[Any], dtype, *,
             kwargs: dict | None = None, rtol: float | None = None, atol: float | None = None):
    """Run ``kernel(*inputs, **kwargs)`` with its float arrays cast to ``dtype``
    and ``reference`` on the same values in float64; compare the results
    (arrays, Python floats, None, or tuples of those) and return the kernel's.
    Array results must come back in ``dtype``."""
    kwargs = kwargs or {}
    k_in, r_in = _cast_inputs(inputs, dtype)
    actual = kernel(*k_in, **kwargs)
    expected = reference(*r_in, **kwargs)
    _compare(actual, expected, dtype, name, rtol, atol)
    return actual
