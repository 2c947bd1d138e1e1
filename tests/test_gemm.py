"""natverk._core.gemm against the float64 reference (cpp/gemm/gemm.h).

C = alpha * op(A) op(B) + beta * C for every transpose combination, shapes
around and across the micro-tile (mr x nr) and cache blocks (mc, kc, nc),
both dtypes, 1 and 2 threads and every SIMD level this CPU can run; strided,
transposed, reversed and embedded views; BLAS beta == 0 semantics; argument
checking; empty dimensions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import natverk._core as core
import reference as ref
from conftest import SIMD_LEVELS, SIMD_ORDER
from tolerances import assert_close, gemm_atol, tol

DTYPES = [np.float32, np.float64]
GARBAGE = 1e30  # fills memory around views: any out-of-bounds read shows up as huge/inf

# (m, n, k); op(A) is m x k, op(B) is k x n, C is m x n.
SMALL_SHAPES = [
    (1, 1, 1),
    (1, 17, 9),       # batch-1 row
    (9, 1, 13),       # a single column
    (5, 7, 1),        # k = 1
    (7, 13, 5),       # smaller than one tile in n, ragged in m
    (6, 16, 8),       # exactly one avx2 float32 tile
    (31, 17, 33),
    (97, 101, 103),
    (20, 50, 7),      # ragged tiles run narrower kernels: 8 rows, and a last panel of 18 or 2
    (64, 100, 33),    # a batch of 64 (a 4-row edge), n = 100 (a one-vector last panel)
    (2, 250, 128),    # the spiral net's first-layer dW: 2 rows
    (128, 4, 50),     # its last layer: 4 columns
]
LARGE_SHAPES = [
    (300, 301, 302),   # several mc blocks, k crosses kc = 256
    (64, 784, 500),    # the MLP layer shape (splits along n); k crosses kc
    (1030, 257, 130),  # m crosses mc = 96/128/144 many times
    (10, 20, 600),     # k crosses kc twice
    (9, 3100, 21),     # n crosses every nc (1024, 1536, 2048, 3072)
    (1030, 64, 600),   # narrow C: A read in place (m ragged, k crosses kc twice)
    (301, 129, 70),    # just past the in-place-A width: A packed again
    (20, 2003, 300),   # many B panels packed row by row, a ragged last one
    (50, 1000, 64),    # a one-vector last panel after 31 full ones (float32)
]
TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]
ALPHA_BETA = [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 2.0), (0.0, 1.5), (1.0, -1.0), (0.0, 0.0)]


def _random(rng, shape, dtype):
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def _operands(rng, m, n, k, trans_a, trans_b, dtype):
    """A stored (k, m) when trans_a else (m, k); likewise B."""
    A = _random(rng, (k, m) if trans_a else (m, k), dtype)
    B = _random(rng, (n, k) if trans_b else (k, n), dtype)
    return A, B


def _amax(x) -> float:
    """Largest finite magnitude (NaN/inf are checked separately by assert_close)."""
    finite = np.abs(x[np.isfinite(x)])
    return float(np.max(finite)) if finite.size else 0.0


def check_gemm(A, B, C=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, name="gemm"):
    """Run the kernel and the float64 reference on the same inputs, compare,
    and return the kernel's result. C (when given) is updated in place and
    must be the returned object; the reference sees C's values before the call."""
    dtype = A.dtype
    C_before = None if C is None else C.copy()
    out = core.gemm(A, B, C, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    expected = ref.gemm(A, B, C_before, alpha, beta, trans_a, trans_b)
    if C is not None:
        assert out is C, "gemm must update C in place and return it"
    assert out.dtype == dtype
    k = A.shape[0] if trans_a else A.shape[1]
    cmax = _amax(C_before) if (C_before is not None and beta != 0.0) else 0.0
    atol = gemm_atol(dtype, k, _amax(A), _amax(B), alpha, beta, cmax)
    assert_close(out, expected, dtype, name, rtol=tol(dtype, "gemm").rtol, atol=atol)
    return out


# ---------------------------------------------------------------------------
# values


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("m,n,k", SMALL_SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SMALL_SHAPES])
def test_small_shapes(m, n, k, trans_a, trans_b, dtype, simd, threads):
    rng = np.random.default_rng(1000 + m * 7 + n * 3 + k)
    A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    out = check_gemm(A, B, trans_a=trans_a, trans_b=trans_b)
    assert out.shape == (m, n)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("m,n,k", LARGE_SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in LARGE_SHAPES])
def test_large_shapes(m, n, k, trans_a, trans_b, dtype, simd):
    # Two threads (when it splits at all, the work is split; see the bitwise
    # test below for 1 vs 2 threads).
    core.set_num_threads(2)
    rng = np.random.default_rng(2000 + m + n + k)
    A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    check_gemm(A, B, trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
@pytest.mark.parametrize("m,n,k", [(7, 13, 5), (97, 101, 103), (300, 301, 302)])
def test_alpha_beta(m, n, k, alpha, beta, dtype, simd):
    rng = np.random.default_rng(3000 + int(10 * alpha) + int(10 * beta))
    A, B = _operands(rng, m, n, k, False, False, dtype)
    C = _random(rng, (m, n), dtype)
    check_gemm(A, B, C, alpha=alpha, beta=beta)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("alpha", [1.0, -2.0, 0.0])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 13, 5), (300, 301, 302), (64, 784, 500),
                                   (301, 40, 600)])
def test_beta_zero_ignores_nan_and_inf_in_c(m, n, k, alpha, dtype, simd, threads):
    rng = np.random.default_rng(4000 + m)
    A, B = _operands(rng, m, n, k, False, False, dtype)
    C = np.full((m, n), np.nan, dtype=dtype)
    C[::2, ::3] = np.inf
    out = check_gemm(A, B, C, alpha=alpha, beta=0.0)
    assert np.isfinite(out).all(), "beta == 0 must overwrite C without reading it"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["A", "B"])
def test_nan_and_inf_in_inputs_propagate(where, bad, dtype, simd):
    m, n, k = 13, 21, 300  # ragged tiles, k crosses kc
    rng = np.random.default_rng(5000)
    A, B = _operands(rng, m, n, k, False, False, dtype)
    # Positive operands so an inf can't be cancelled into NaN by another inf.
    A, B = np.abs(A) + dtype(0.5), np.abs(B) + dtype(0.5)
    if where == "A":
        A[11, 270] = bad   # row 11 of C
        sel = (slice(11, 12), slice(None))
    else:
        B[3, 17] = bad     # column 17 of C
        sel = (slice(None), slice(17, 18))
    out = check_gemm(A, B)
    hit = np.zeros(out.shape, dtype=bool)
    hit[sel] = True
    if np.isnan(bad):
        assert np.isnan(out[hit]).all()
    else:
        assert (out[hit] == bad).all()
    assert np.isfinite(out[~hit]).all()


# ---------------------------------------------------------------------------
# threads and SIMD levels


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)], ids=["NN", "TT"])
@pytest.mark.parametrize("m,n,k", [(300, 301, 302), (64, 784, 500), (1030, 257, 130), (97, 101, 103)])
def test_one_and_two_threads_bitwise_identical(m, n, k, trans_a, trans_b, dtype, simd):
    rng = np.random.default_rng(6000 + m)
    A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    core.set_num_threads(1)
    one = core.gemm(A, B, trans_a=trans_a, trans_b=trans_b)
    core.set_num_threads(2)
    two = core.gemm(A, B, trans_a=trans_a, trans_b=trans_b)
    assert one.tobytes() == two.tobytes(), (
        f"1 and 2 threads differ in {int(np.sum(one != two))} elements, "
        f"max |diff| {np.max(np.abs(one.astype(float) - two))}")
    check_gemm(A, B, trans_a=trans_a, trans_b=trans_b)  # and both are right


def test_simd_levels_are_ordered_and_settable():
    best = core.best_simd_level()
    assert best in SIMD_ORDER
    for level in SIMD_LEVELS:
        core.set_simd_level(level)
        assert core.simd_level() == level
        blk = core.gemm_blocking("float64")
        assert blk["mc"] % blk["mr"] == 0 and blk["nc"] % blk["nr"] == 0
    for above in SIMD_ORDER[SIMD_ORDER.index(best) + 1:]:
        with pytest.raises(ValueError):
            core.set_simd_level(above)
    with pytest.raises(ValueError):
        core.set_simd_level("sse9")
    core.set_simd_level(best)
    assert core.simd_level() == best


# ---------------------------------------------------------------------------
# non-contiguous and embedded operands


def _embedded(x, pad=(3, 5), step=(1, 1), fill=GARBAGE):
    """x as a view inside a larger buffer full of `fill`, with the given steps."""
    m, n = x.shape
    sr, sc = step
    buf = np.full((pad[0] * 2 + (m - 1) * sr + 1, pad[1] * 2 + (n - 1) * sc + 1), fill, dtype=x.dtype)
    view = buf[pad[0]: pad[0] + (m - 1) * sr + 1: sr, pad[1]: pad[1] + (n - 1) * sc + 1: sc]
    view[...] = x
    assert view.base is buf
    return view


def _reversed(x):
    """x as a view with negative strides in both dimensions."""
    r = np.ascontiguousarray(x[::-1, ::-1])
    return r[::-1, ::-1]


def _transposed_view(x):
    """x (same values) as a column-major view: the transpose of a C-ordered array."""
    return np.ascontiguousarray(x.T).T


def _reversed_embedded(x):
    """x as a negative-stride, step-2 view inside a garbage-filled buffer."""
    return _embedded(x[::-1, ::-1], step=(2, 2))[::-1, ::-1]


LAYOUTS = {
    "contiguous": lambda x: x,
    "embedded": _embedded,
    "step2x3": lambda x: _embedded(x, pad=(2, 1), step=(2, 3)),
    "transposed": _transposed_view,
    "reversed": _reversed,
    "reversed_embedded": _reversed_embedded,
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("layout_b", ["contiguous", "step2x3", "reversed"])
@pytest.mark.parametrize("layout_a", list(LAYOUTS))
@pytest.mark.parametrize("m,n,k", [(31, 17, 33), (150, 40, 270)])
def test_strided_views(m, n, k, layout_a, layout_b, trans_a, trans_b, dtype, simd):
    rng = np.random.default_rng(7000 + m)
    A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    Av, Bv = LAYOUTS[layout_a](A), LAYOUTS[layout_b](B)
    np.testing.assert_array_equal(Av, A)
    np.testing.assert_array_equal(Bv, B)
    if layout_a != "contiguous":
        assert not Av.flags.c_contiguous
    out = core.gemm(Av, Bv, trans_a=trans_a, trans_b=trans_b)
    assert out.shape == (m, n) and out.dtype == dtype
    assert_close(out, ref.gemm(A, B, None, 1.0, 0.0, trans_a, trans_b), dtype, "gemm(view)",
                 rtol=tol(dtype, "gemm").rtol, atol=gemm_atol(dtype, k, 1.0, 1.0))
    assert (np.abs(out) < 1e20).all(), "a read outside the view picked up the 1e30 garbage"


def test_negative_strides_read_the_right_elements():
    # Integer-valued float64 data: the product is exact, so compare bitwise.
    rng = np.random.default_rng(8)
    A = rng.integers(-5, 6, size=(40, 23)).astype(np.float64)
    B = rng.integers(-5, 6, size=(23, 19)).astype(np.float64)
    for Av, Bv in [(A[::-1], B), (A, B[:, ::-1]), (A[::-1, ::-1], B[::-1, ::-1].copy()[::-1, ::-1]),
                   (A[::-2, ::3], B[::3, ::-2])]:
        out = core.gemm(Av, Bv)
        np.testing.assert_array_equal(out, np.asarray(Av) @ np.asarray(Bv))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("beta", [0.0, 0.5])
@pytest.mark.parametrize("m,n,k", [(1, 9, 4), (31, 17, 33), (200, 70, 260)])
def test_c_as_view_inside_larger_array(m, n, k, beta, dtype, simd, threads):
    rng = np.random.default_rng(9000 + m)
    A, B = _operands(rng, m, n, k, False, False, dtype)
    big = _random(rng, (m + 5, n + 11), dtype)
    big[:, :4] = np.nan  # left of the view
    C = big[2: 2 + m, 4: 4 + n]
    assert C.flags.writeable and (m == 1 or not C.flags.c_contiguous)
    big_before = big.copy()
    check_gemm(A, B, C, alpha=1.5, beta=beta)
    outside = np.ones(big.shape, dtype=bool)
    outside[2: 2 + m, 4: 4 + n] = False
    np.testing.assert_array_equal(big[outside], big_before[outside],
                                  err_msg="gemm wrote outside the C view")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("k", [3, 300])  # one k block, and two (the second adds onto C)
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_an_element_does_not_depend_on_where_the_tile_edges_fall(k, beta, dtype, simd, threads):
    # Row i, column j of C is the same sum whether (i, j) lies in a full register tile or in a
    # ragged edge one: the rows of a batch get the same outputs whatever the batch size, which
    # chunked inference (Sequential.predict through the plan) relies on.
    rng = np.random.default_rng(77 + k)
    A, B = _random(rng, (40, k), dtype), _random(rng, (k, 70), dtype)
    C0 = _random(rng, (40, 70), dtype)
    full = core.gemm(A, B, C0.copy(), alpha=1.3, beta=beta)
    for m in (1, 5, 13, 20, 27, 30, 40):
        for n in (1, 9, 33, 50, 70):
            part = core.gemm(A[:m], B[:, :n], C0[:m, :n].copy(), alpha=1.3, beta=beta)
            np.testing.assert_array_equal(part, full[:m, :n], err_msg=f"{m} x {n}")


@pytest.fixture(params=["always", "never", "auto"])
def b_in_place(request):
    core._set_gemm_b_in_place(request.param)
    yield request.param
    core._set_gemm_b_in_place("auto")


def test_b_in_place_mode_is_settable_and_checked():
    try:
        core._set_gemm_b_in_place("always")
        assert core._gemm_b_in_place() == ("always", True)
        core._set_gemm_b_in_place("never")
        assert core._gemm_b_in_place() == ("never", False)
        with pytest.raises(ValueError, match="mode must be 'auto', 'always' or 'never', got 'sometimes'"):
            core._set_gemm_b_in_place("sometimes")
        assert core._gemm_b_in_place() == ("never", False)  # a bad mode changes nothing
    finally:
        core._set_gemm_b_in_place("auto")
    assert core._gemm_b_in_place()[0] == "auto"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("k", [3, 300])  # one k block, and two
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_b_read_in_place_gives_the_packed_bits(k, beta, dtype, simd, threads, b_in_place):
    # With AVX-512 and b_in_place active ('always', or 'auto' on an AMD CPU), a C of at most one
    # MC block of rows (mc = 144 float32 / 96 float64) reads the whole NR-wide panels of a B with
    # contiguous rows in place instead of packing them (gemm_kernel.inc, direct_b), unless A is
    # read in place (contiguous rows and n <= 128). A tall product (300 rows, several MC blocks)
    # packs B, so its rows are the packed path's bits; the short products must give the same
    # bits, also for a B that is a window of a wider array (rows further apart than n) with
    # garbage around it.
    rng = np.random.default_rng(88 + k)
    n_max = 200
    wide = np.full((k, n_max + 23), GARBAGE, dtype=dtype)
    B = wide[:, 5: 5 + n_max]
    B[...] = _random(rng, (k, n_max), dtype)
    assert B.strides[1] == B.itemsize and B.strides[0] > n_max * B.itemsize
    A = _random(rng, (300, k), dtype)
    At = np.ascontiguousarray(A.T).T  # the same values with strided rows: A is packed whatever n is
    C0 = _random(rng, (300, n_max), dtype)
    tall = core.gemm(A, B, C0.copy(), alpha=1.3, beta=beta)
    for a, widths in ((A, (129, 150, 200)), (At, (32, 33, 64, 100, 200))):
        for m in (1, 5, 12, 13, 64, 96, 144):
            for n in widths:
                part = core.gemm(a[:m], B[:, :n], C0[:m, :n].copy(), alpha=1.3, beta=beta)
                np.testing.assert_array_equal(part, tall[:m, :n], err_msg=f"{m} x {n}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_c_with_row_stride_in_strided_rows(dtype):
    rng = np.random.default_rng(10)
    A, B = _operands(rng, 12, 10, 7, False, False, dtype)
    big = np.full((24, 10), 7.0, dtype=dtype)
    C = big[::2]  # every other row
    check_gemm(A, B, C)
    np.testing.assert_array_equal(big[1::2], 7.0)


# ---------------------------------------------------------------------------
# empty dimensions


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)], ids=["NN", "TT"])
@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (4, 0, 3), (0, 0, 0), (4, 5, 0), (1, 1, 0)])
def test_empty_dimensions(m, n, k, trans_a, trans_b, dtype):
    rng = np.random.default_rng(11)
    A, B = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    out = core.gemm(A, B, trans_a=trans_a, trans_b=trans_b)
    assert out.shape == (m, n) and out.dtype == dtype
    np.testing.assert_array_equal(out, np.zeros((m, n)))  # k == 0: an empty sum is 0
    C = _random(rng, (m, n), dtype)
    out = check_gemm(A, B, C.copy(), alpha=2.0, beta=0.5, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_array_equal(out, (dtype(0.5) * C))  # k == 0 gives beta * C exactly
    C_nan = np.full((m, n), np.nan, dtype=dtype)
    out = core.gemm(A, B, C_nan, beta=0.0, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_array_equal(out, np.zeros((m, n)))


# ---------------------------------------------------------------------------
# argument checking


def _f64(*shape):
    return np.ones(shape, dtype=np.float64)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((_f64(3, 4), _f64(5, 2)), {}, ValueError, "inner dimensions"),
        ((_f64(3, 4), _f64(3, 2)), {"trans_a": False}, ValueError, "inner dimensions"),
        ((_f64(3, 4), _f64(4, 2)), {"trans_a": True}, ValueError, "inner dimensions"),
        ((_f64(3, 4), _f64(4, 2)), {"trans_b": True}, ValueError, "inner dimensions"),
        ((_f64(4), _f64(4, 2)), {}, ValueError, "A must be 2-D"),
        ((_f64(3, 4), _f64(4)), {}, ValueError, "B must be 2-D"),
        ((_f64(2, 3, 4), _f64(4, 2)), {}, ValueError, "A must be 2-D"),
        ((_f64(3, 4), _f64(2, 4, 2)), {}, ValueError, "B must be 2-D"),
        ((_f64(3, 4).astype(np.float32), _f64(4, 2)), {}, TypeError, "B must have the same dtype"),
        ((_f64(3, 4), _f64(4, 2).astype(np.float32)), {}, TypeError, "B must have the same dtype"),
        ((np.ones((3, 4), dtype=np.int64), np.ones((4, 2), dtype=np.int64)), {}, TypeError, "A"),
        ((np.ones((3, 4), dtype=np.int32), _f64(4, 2)), {}, TypeError, "A"),
        ((_f64(3, 4), np.ones((4, 2), dtype=np.int64)), {}, TypeError, "B"),
        ((_f64(3, 4).astype(np.float16), _f64(4, 2).astype(np.float16)), {}, TypeError, "A"),
        ((_f64(3, 4), _f64(4, 2)), {"C": _f64(3, 3)}, ValueError, "C must have shape"),
        ((_f64(3, 4), _f64(4, 2)), {"C": _f64(2, 3)}, ValueError, "C must have shape"),
        ((_f64(3, 4), _f64(4, 2)), {"C": _f64(6)}, ValueError, "C must be 2-D"),
        ((_f64(3, 4), _f64(4, 2)), {"C": _f64(3, 2).astype(np.float32)}, TypeError, "C"),
        ((_f64(3, 4), _f64(4, 2)), {"C": [[0.0, 0.0]] * 3}, TypeError, "C"),
        ((_f64(3, 4), _f64(4, 2)), {"beta": 1.0}, ValueError, "beta"),
        ((_f64(3, 4), _f64(4, 2)), {"beta": -0.5}, ValueError, "beta"),
        ((_f64(3, 4), _f64(4, 2)), {"alpha": np.nan}, ValueError, "alpha"),
        ((_f64(3, 4), _f64(4, 2)), {"C": _f64(3, 2), "beta": np.inf}, ValueError, "beta"),
        ((_f64(3, 4), _f64(4, 2)), {"C": np.ones((2, 3)).T}, ValueError, "unit column stride"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        core.gemm(*args, **kwargs)


def test_read_only_c_is_rejected_and_untouched():
    A, B = _f64(3, 4), _f64(4, 2)
    C = np.full((3, 2), 5.0)
    C.flags.writeable = False
    with pytest.raises(ValueError, match="C"):
        core.gemm(A, B, C)
    np.testing.assert_array_equal(C, 5.0)


def test_c_sharing_memory_with_an_input_is_rejected():
    buf = np.ones((4, 4))
    with pytest.raises(ValueError, match="share memory"):
        core.gemm(buf, buf[:, :4], buf)
    with pytest.raises(ValueError, match="share memory"):
        core.gemm(np.ones((4, 4)), buf, buf)


def test_c_interleaved_with_an_input_is_accepted():
    """C and A as the even and odd rows of one buffer: their byte ranges overlap, their elements
    do not, so the product is computed (the binding's quick bounds test only decides when
    numpy.shares_memory must be asked) and A is left as it was."""
    rng = np.random.default_rng(11)
    buf = rng.standard_normal((10, 3))
    A, C = buf[1::2], buf[0::2]
    B = rng.standard_normal((3, 3))
    A_before = A.copy()
    out = core.gemm(A, B, C)
    assert out is C
    assert_close(C, A_before @ B, np.float64, "C interleaved with A")
    np.testing.assert_array_equal(buf[1::2], A_before)
    with pytest.raises(ValueError, match="share memory"):  # and a C that does share rows with A
        core.gemm(buf[1:6:2], B, buf[3:8:2])


def test_misaligned_strides_are_rejected():
    raw = np.zeros(8 * 13 + 4, dtype=np.uint8)[4:]  # byte offset 4 for float64
    A = np.ndarray((3, 4), dtype=np.float64, buffer=raw, strides=(36, 8))  # 36 % 8 != 0
    with pytest.raises(ValueError, match="strides"):
        core.gemm(A, _f64(4, 2))
