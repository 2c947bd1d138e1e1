"""natverk._core max / average / global average pooling against direct loop
references (cpp/pool2d/pool2d.h; seed 001 §4.2.6, thesis §2.7).

References (float64, never natverk), Ho = floor((H + 2 ph - kH) / sh) + 1:
  max:  Y = max over the window, padded positions never win (-inf); the
        arg-max is the FIRST maximum in row-major window order, stored as the
        flat index h*W + w in the (H, W) plane; backward adds dY at the arg-max
        (overlapping windows add up).
  avg:  Y = window sum / (kH kW) (zero padding counted); backward spreads
        dY / (kH kW) over the window's in-bounds positions.
  global avg: Y[n, c] = mean over (H, W); backward dY / (H W) everywhere.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

import natverk._core as core
from conftest import SIMD_LEVELS
from reference import central_difference_inplace
from tolerances import FINITE_DIFFERENCE, assert_close, tol

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


# ---------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class Pool:
    N: int
    C: int
    H: int
    W: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)

    @property
    def out_hw(self) -> tuple[int, int]:
        (kH, kW), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (self.H + 2 * ph - kH) // sh + 1, (self.W + 2 * pw - kW) // sw + 1

    @property
    def args(self) -> tuple:
        return self.kernel, self.stride, self.padding

    @property
    def id(self) -> str:
        (kH, kW), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return f"N{self.N}C{self.C}x{self.H}x{self.W}-k{kH}{kW}-s{sh}{sw}-p{ph}{pw}"


POOLS = [
    Pool(2, 3, 6, 7, (1, 1), (1, 1)),                 # kernel 1: identity
    Pool(2, 2, 5, 7, (1, 1), (2, 3)),                 # kernel 1, subsampling
    Pool(3, 4, 4, 4, (2, 2), (2, 2)),                 # the classic 2x2/2
    Pool(2, 3, 7, 9, (2, 2), (2, 2)),                 # odd sizes, ragged edge dropped
    Pool(2, 3, 6, 23, (2, 2), (2, 2)),                # 2x2/2, 11 outputs a row: SIMD steps + a tail
    Pool(1, 2, 28, 28, (2, 2), (2, 2)),               # 2x2/2 at MNIST size
    Pool(2, 2, 7, 9, (2, 2), (1, 1), (1, 1)),         # kernel 2, padding 1
    Pool(2, 3, 7, 8, (3, 3), (1, 1), (1, 1)),         # overlapping, stride 1
    Pool(2, 2, 9, 7, (3, 3), (2, 2), (1, 1)),         # overlapping, stride 2
    Pool(2, 2, 8, 11, (3, 3), (2, 2)),                # overlapping, no padding
    Pool(1, 3, 10, 11, (3, 3), (3, 3)),               # stride 3, batch 1
    Pool(1, 2, 7, 7, (3, 3), (3, 3), (1, 1)),         # stride 3, padding 1
    Pool(2, 2, 7, 10, (2, 3), (1, 2), (1, 1)),        # non-square kernel
    Pool(1, 1, 5, 5, (2, 3), (3, 3), (0, 1)),
    Pool(2, 3, 5, 13, (3, 3), (2, 3), (1, 0)),        # non-square stride
    Pool(1, 2, 3, 3, (3, 3), (1, 1), (1, 1)),
    Pool(2, 2, 4, 5, (3, 2), (3, 1), (1, 1)),
    Pool(1, 2, 4, 5, (4, 5), (1, 1)),                 # kernel == input: 1x1 output
    Pool(1, 1, 1, 1, (1, 1), (1, 1)),                 # a single element
    Pool(3, 1, 1, 9, (1, 3), (1, 2), (0, 1)),         # height 1
]
POOL_IDS = [p.id for p in POOLS]
OVERLAPPING = [p for p in POOLS if p.stride[0] < p.kernel[0] or p.stride[1] < p.kernel[1]]
GLOBAL_SHAPES = [(2, 3, 5, 7), (1, 1, 1, 1), (1, 4, 3, 3), (3, 2, 8, 1), (2, 5, 13, 11), (1, 2, 1, 17)]
GLOBAL_IDS = ["x".join(map(str, s)) for s in GLOBAL_SHAPES]


# ---------------------------------------------------------------------------
# loop references (float64)


def _windows(p: Pool):
    """Yield (oh, ow, [(h, w) in-bounds positions of the window in row-major
    window order, with None for a padded position])."""
    (kH, kW), (sh, sw), (ph, pw) = p.kernel, p.stride, p.padding
    Ho, Wo = p.out_hw
    for oh in range(Ho):
        for ow in range(Wo):
            pos = []
            for i in range(kH):
                for j in range(kW):
                    h, w = oh * sh - ph + i, ow * sw - pw + j
                    pos.append((h, w) if 0 <= h < p.H and 0 <= w < p.W else None)
            yield oh, ow, pos


def ref_maxpool_forward(x, p: Pool):
    x = np.asarray(x, dtype=np.float64)
    Ho, Wo = p.out_hw
    y = np.empty((p.N, p.C, Ho, Wo))
    am = np.empty((p.N, p.C, Ho, Wo), dtype=np.int64)
    for n in range(p.N):
        for c in range(p.C):
            for oh, ow, pos in _windows(p):
                best, arg = -np.inf, -1
                for hw in pos:
                    if hw is None:               # padding counts as -inf: never wins
                        continue
                    v = x[n, c, hw[0], hw[1]]
                    # first maximum wins (strict >); a NaN wins over any number
                    if arg == -1 or v > best or (np.isnan(v) and not np.isnan(best)):
                        best, arg = v, hw[0] * p.W + hw[1]
                y[n, c, oh, ow] = best
                am[n, c, oh, ow] = arg
    return y, am


def ref_maxpool_backward(dy, argmax, p: Pool):
    dx = np.zeros((p.N, p.C, p.H, p.W))
    Ho, Wo = p.out_hw
    for n in range(p.N):
        for c in range(p.C):
            for oh in range(Ho):
                for ow in range(Wo):
                    a = int(argmax[n, c, oh, ow])
                    dx[n, c, a // p.W, a % p.W] += dy[n, c, oh, ow]
    return dx


def ref_avgpool_forward(x, p: Pool):
    x = np.asarray(x, dtype=np.float64)
    Ho, Wo = p.out_hw
    div = p.kernel[0] * p.kernel[1]
    y = np.empty((p.N, p.C, Ho, Wo))
    for n in range(p.N):
        for c in range(p.C):
            for oh, ow, pos in _windows(p):
                s = 0.0
                for hw in pos:
                    if hw is not None:           # padding contributes 0 but counts in div
                        s += x[n, c, hw[0], hw[1]]
                y[n, c, oh, ow] = s / div
    return y


def ref_avgpool_backward(dy, p: Pool):
    div = p.kernel[0] * p.kernel[1]
    dx = np.zeros((p.N, p.C, p.H, p.W))
    for n in range(p.N):
        for c in range(p.C):
            for oh, ow, pos in _windows(p):
                for hw in pos:
                    if hw is not None:
                        dx[n, c, hw[0], hw[1]] += dy[n, c, oh, ow] / div
    return dx


def ref_global_avgpool_forward(x):
    x = np.asarray(x, dtype=np.float64)
    N, C, H, W = x.shape
    y = np.empty((N, C))
    for n in range(N):
        for c in range(C):
            s = 0.0
            for h in range(H):
                for w in range(W):
                    s += x[n, c, h, w]
            y[n, c] = s / (H * W)
    return y


def ref_global_avgpool_backward(dy, shape):
    N, C, H, W = shape
    dx = np.empty(shape)
    for n in range(N):
        for c in range(C):
            dx[n, c, :, :] = dy[n, c] / (H * W)
    return dx


# ---------------------------------------------------------------------------
# helpers


def _x(p_or_shape, seed: int, kind: str = "uniform"):
    shape = (p_or_shape.N, p_or_shape.C, p_or_shape.H, p_or_shape.W) if isinstance(p_or_shape, Pool) \
        else tuple(p_or_shape)
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if kind == "uniform":
        return rng.uniform(-1.0, 1.0, size=shape)
    if kind == "distinct":       # all values distinct, 2/size apart (exact in float32 for small sizes)
        return (rng.permutation(size).reshape(shape) * (2.0 / size) - 1.0)
    if kind == "negative":       # all below zero: a zero padding would win a max
        return rng.uniform(-3.0, -1.0, size=shape)
    if kind == "ties":           # many equal values: tests the first-maximum rule
        return rng.integers(0, 3, size=shape).astype(np.float64)
    raise ValueError(kind)


def _dy(p: Pool, seed: int):
    return np.random.default_rng(seed + 1).uniform(-1.0, 1.0, size=(p.N, p.C, *p.out_hw))


def _cast(dtype, a):
    ak = np.ascontiguousarray(a, dtype=dtype)
    return ak, ak.astype(np.float64)


def _check(actual, expected, dtype, name):
    assert isinstance(actual, np.ndarray), f"{name}: expected an ndarray, got {type(actual)}"
    assert actual.dtype == np.dtype(dtype), f"{name}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert_close(actual, expected, dtype, name)


def _check_argmax(actual, expected, name):
    assert isinstance(actual, np.ndarray) and actual.dtype == np.int64, (
        f"{name}: argmax must be an int64 array, got {getattr(actual, 'dtype', type(actual))}")
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    bad = actual != expected
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{name}: {int(bad.sum())} of {bad.size} arg-max indices differ; first at "
                             f"{idx}: actual {actual[idx]}, expected {expected[idx]}")


def check_maxpool(p: Pool, dtype, seed: int, kind: str = "uniform", name: str = "maxpool2d"):
    xk, xr = _cast(dtype, _x(p, seed, kind))
    dyk, dyr = _cast(dtype, _dy(p, seed))
    y, am = core.maxpool2d_forward(xk, *p.args)
    e_y, e_am = ref_maxpool_forward(xr, p)
    _check(y, e_y, dtype, f"{name} y [{p.id}, {kind}]")
    _check_argmax(am, e_am, f"{name} argmax [{p.id}, {kind}]")
    dx = core.maxpool2d_backward(dyk, am, xk, *p.args)
    _check(dx, ref_maxpool_backward(dyr, e_am, p), dtype, f"{name} dx [{p.id}, {kind}]")
    return y, am, dx


def check_avgpool(p: Pool, dtype, seed: int, name: str = "avgpool2d"):
    xk, xr = _cast(dtype, _x(p, seed))
    dyk, dyr = _cast(dtype, _dy(p, seed))
    y = core.avgpool2d_forward(xk, *p.args)
    _check(y, ref_avgpool_forward(xr, p), dtype, f"{name} y [{p.id}]")
    dx = core.avgpool2d_backward(dyk, xk, *p.args)
    _check(dx, ref_avgpool_backward(dyr, p), dtype, f"{name} dx [{p.id}]")
    return y, dx


# ---------------------------------------------------------------------------
# the references themselves


def test_references_on_a_hand_computed_example():
    x = np.array([[[[1.0, 5.0, 2.0],
                    [4.0, 3.0, 5.0],
                    [0.0, 6.0, -1.0]]]])
    p = Pool(1, 1, 3, 3, (2, 2), (1, 1))
    y, am = ref_maxpool_forward(x, p)
    assert y[0, 0].tolist() == [[5.0, 5.0], [6.0, 6.0]]
    assert am[0, 0].tolist() == [[1, 1], [7, 7]]     # the 5 at (0,1) is first in window (0,1)
    dx = ref_maxpool_backward(np.ones((1, 1, 2, 2)), am, p)
    assert dx[0, 0, 0, 1] == 2.0 and dx[0, 0, 2, 1] == 2.0 and dx.sum() == 4.0
    assert ref_avgpool_forward(x, p)[0, 0, 0, 0] == (1 + 5 + 4 + 3) / 4
    pp = Pool(1, 1, 3, 3, (2, 2), (2, 2), (1, 1))    # corner window holds only x[0, 0]
    assert ref_avgpool_forward(x, pp)[0, 0, 0, 0] == 1.0 / 4
    assert ref_maxpool_forward(-x - 10, pp)[0][0, 0, 0, 0] == -11.0
    assert ref_global_avgpool_forward(x)[0, 0] == x.sum() / 9


# ---------------------------------------------------------------------------
# values against the references


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", POOLS, ids=POOL_IDS)
def test_maxpool_matches_reference(p, dtype):
    check_maxpool(p, dtype, 100 + POOLS.index(p))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", ["negative", "ties", "distinct"])
@pytest.mark.parametrize("p", POOLS, ids=POOL_IDS)
def test_maxpool_padding_ties_and_distinct_values(p, kind, dtype):
    # negative: a padded zero must never win; ties: the FIRST maximum in
    # row-major window order is the arg-max.
    y, am, _ = check_maxpool(p, dtype, 200 + POOLS.index(p), kind)
    if kind == "negative":
        assert (y < 0).all(), "a padded position won the max"


@pytest.mark.parametrize("p", OVERLAPPING, ids=[q.id for q in OVERLAPPING])
def test_maxpool_backward_overlapping_windows_add_up(p):
    # A constant plane: every window's arg-max is its first in-bounds element,
    # so with stride < kernel several windows share a winner.
    x = np.zeros((p.N, p.C, p.H, p.W))
    y, am = core.maxpool2d_forward(x, *p.args)
    dy = np.ones_like(y)
    dx = core.maxpool2d_backward(dy, am, x, *p.args)
    expected = ref_maxpool_backward(dy, ref_maxpool_forward(x, p)[1], p)
    assert_close(dx, expected, np.float64, f"maxpool dx overlapping [{p.id}]")
    assert dx.sum() == dy.size, "every dy must be routed somewhere exactly once"
    # Distinct values: one peak wins many windows.
    x = _x(p, 5, "distinct")
    y, am, dx = check_maxpool(p, np.float64, 5, "distinct")
    counts = np.bincount(am.reshape(p.N * p.C, -1)[0], minlength=p.H * p.W)
    if counts.max() > 1:
        dyo = np.ones_like(y)
        dxo = core.maxpool2d_backward(dyo, am, x, *p.args)
        assert dxo[0, 0].reshape(-1).max() == counts.max()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", POOLS, ids=POOL_IDS)
def test_avgpool_matches_reference(p, dtype):
    check_avgpool(p, dtype, 300 + POOLS.index(p))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=GLOBAL_IDS)
def test_global_avgpool_matches_reference(shape, dtype):
    seed = 400 + GLOBAL_SHAPES.index(shape)
    xk, xr = _cast(dtype, _x(shape, seed))
    dyk, dyr = _cast(dtype, np.random.default_rng(seed + 1).uniform(-1, 1, size=shape[:2]))
    y = core.global_avgpool_forward(xk)
    assert y.shape == shape[:2]
    _check(y, ref_global_avgpool_forward(xr), dtype, f"global_avgpool y [{shape}]")
    dx = core.global_avgpool_backward(dyk, xk)
    assert dx.shape == shape
    _check(dx, ref_global_avgpool_backward(dyr, shape), dtype, f"global_avgpool dx [{shape}]")


def test_avgpool_counts_zero_padding_in_the_divisor():
    p = Pool(1, 1, 2, 2, (2, 2), (2, 2), (1, 1))
    y = core.avgpool2d_forward(np.ones((1, 1, 2, 2)), *p.args)
    # Each of the 4 windows holds one real 1 and three padded zeros.
    assert_close(y, np.full((1, 1, 2, 2), 0.25), np.float64, "avgpool count_include_pad")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_threads_and_simd_levels_agree(dtype):
    p = Pool(6, 5, 13, 11, (3, 3), (2, 2), (1, 1))
    x = _x(p, 600).astype(dtype)
    dy = _dy(p, 600).astype(dtype)
    runs = {}
    for level, nthreads in itertools.product(SIMD_LEVELS, [1, 2]):
        core.set_simd_level(level)
        core.set_num_threads(nthreads)
        y, am = core.maxpool2d_forward(x, *p.args)
        runs[(level, nthreads)] = (y, am, core.maxpool2d_backward(dy, am, x, *p.args),
                                   core.avgpool2d_forward(x, *p.args),
                                   core.avgpool2d_backward(dy, x, *p.args),
                                   core.global_avgpool_forward(x))
    base = runs[("scalar", 1)]
    check_maxpool(p, dtype, 600)
    for key, res in runs.items():
        assert np.array_equal(res[0], base[0]) and np.array_equal(res[1], base[1]), f"maxpool {key}"
        for name, a, b in zip(["max dx", "avg y", "avg dx", "global y"], res[2:], base[2:]):
            assert_close(a, b, dtype, f"{name} {key} vs scalar/1",
                         rtol=1e-12 if dtype == np.float64 else None)


# 2x2 / stride 2 rows of 7, 14, 35 and 1 windows: one masked AVX-512 step (the MNIST
# CNN's pools), two full steps and a ragged one, and a row shorter than any vector (AVX2:
# 7 windows take the SSE2 steps, 14 two overlapping steps of 8, 35 five); rows of
# 3 and 2 windows (the Table 4 CNN's 7x7 -> 3x3 pool) take SSE2's short-row step, whose
# loads stop at the row's 2 Wo columns (odd W: the last column is in no window).
FAST_2X2 = [Pool(2, 3, 14, 14, (2, 2), (2, 2)), Pool(1, 2, 28, 28, (2, 2), (2, 2)),
            Pool(2, 2, 6, 71, (2, 2), (2, 2)), Pool(1, 2, 4, 3, (2, 2), (2, 2)),
            Pool(3, 5, 7, 7, (2, 2), (2, 2)), Pool(2, 3, 5, 4, (2, 2), (2, 2))]


@pytest.mark.parametrize("kind", ["uniform", "ties", "negative"])
@pytest.mark.parametrize("p", FAST_2X2, ids=lambda q: q.id)
def test_2x2_fast_path_at_every_simd_level_gives_the_scalar_levels_bits(p, kind, simd):
    """The unpadded 2x2 / stride-2 window has SSE2, AVX2 and AVX-512 float paths
    (pool2d.cpp); every level must keep the first-maximum and NaN rules, bit for bit."""
    x = _x(p, 700, kind).astype(np.float32)
    x[0, 0, 0, 1] = np.nan   # a NaN in the second candidate of the first window,
    x[-1, -1, -1, -1] = np.nan  # and in the last candidate of a window in the last row
    core.set_simd_level("scalar")
    want = core.maxpool2d_forward(x, *p.args)
    core.set_simd_level(simd)
    got = core.maxpool2d_forward(x, *p.args)
    np.testing.assert_array_equal(got[1], want[1], err_msg=f"argmax at {simd}")
    np.testing.assert_array_equal(got[0], want[0], err_msg=f"y at {simd}")
    # and the reference's rules themselves (the scalar level runs the SSE2 steps too)
    e_y, e_am = ref_maxpool_forward(x.astype(np.float64), p)
    np.testing.assert_array_equal(got[1], e_am, err_msg=f"argmax with NaN at {simd} vs the reference")
    np.testing.assert_array_equal(got[0], e_y.astype(np.float32), err_msg=f"y with NaN at {simd} vs the reference")
    clean = _x(p, 700, kind).astype(np.float32)
    y, am = core.maxpool2d_forward(clean, *p.args)
    e_y, e_am = ref_maxpool_forward(clean.astype(np.float64), p)
    _check(y, e_y, np.float32, f"2x2 y at {simd} [{p.id}, {kind}]")
    _check_argmax(am, e_am, f"2x2 argmax at {simd} [{p.id}, {kind}]")


def _scatter_reference(dy, am, relu_output, p: Pool):
    """The general loop's rule in NumPy: the mask relu_output > 0 ? dy : 0, then each value
    added, in output order, onto a zeroed plane at its arg-max (so -0 arrives as +0)."""
    g = dy if relu_output is None else np.where(relu_output > 0, dy, np.zeros_like(dy))
    dx = np.zeros((p.N * p.C, p.H * p.W), dy.dtype)
    for plane, (gp, ap) in enumerate(zip(g.reshape(p.N * p.C, -1), am.reshape(p.N * p.C, -1))):
        for v, a in zip(gp, ap):
            dx[plane, a] += v
    return dx.reshape(p.N, p.C, p.H, p.W)


def _same_bits(a, b, what):
    assert a.dtype == b.dtype and a.shape == b.shape, what
    ints = np.uint32 if a.dtype == np.float32 else np.uint64
    bad = np.flatnonzero(a.view(ints) != b.view(ints))
    assert bad.size == 0, f"{what}: {bad.size} elements differ, first at {bad[:5]}: {a.flat[bad[:5]]} vs {b.flat[bad[:5]]}"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("relu", [False, True], ids=["plain", "relu"])
@pytest.mark.parametrize("p", FAST_2X2 + [Pool(1, 1, 2, 2, (2, 2), (2, 2)), Pool(2, 2, 9, 33, (2, 2), (2, 2))],
                         ids=lambda q: q.id)
def test_2x2_backward_writes_the_scatters_bits(p, relu, dtype, simd, threads):
    """The 2x2 / stride-2 backward writes each window's four positions directly (pool2d.cpp;
    AVX2 and AVX-512 rows for float, with masked or overlapping row ends); it must give the
    zeroed-plane scatter's bits, with the ReLU mask, -0, NaN and inf in dy, ties in x, and the
    odd last row and column (in no window) zeroed."""
    rng = np.random.default_rng(11)
    x = _x(p, 701, "ties").astype(dtype)
    y, am = core.maxpool2d_forward(x, *p.args)
    dy = rng.standard_normal(y.shape).astype(dtype)
    flat = dy.reshape(-1)
    flat[:: 5] = -0.0
    flat[1:: 7] = np.nan
    flat[2:: 11] = -np.inf
    relu_output = np.maximum(y, 0) if relu else None
    if relu:  # some pooled values exactly 0 and NaN: the mask keeps neither, as ReLU's backward
        relu_output.reshape(-1)[3:: 4] = 0
        relu_output.reshape(-1)[:: 9] = np.nan
    got = core.maxpool2d_backward(dy, am, x, *p.args, relu_output=relu_output)
    _same_bits(got, _scatter_reference(dy, am, relu_output, p), f"{simd}, relu={relu}")


@pytest.mark.parametrize("p", OVERLAPPING[:3] + [Pool(1, 2, 40, 41, (3, 3), (1, 1), (1, 1))], ids=lambda q: q.id)
def test_general_backward_with_relu_output_gives_the_scatters_bits(p, simd, threads):
    """Any other window takes the general loop: the ReLU mask in 256-output chunks (the last
    pool has 1640 outputs a plane), then the scatter, overlapping windows adding up."""
    x = _x(p, 703, "ties")
    y, am = core.maxpool2d_forward(x, *p.args)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    dy.reshape(-1)[::5] = -0.0
    relu_output = np.maximum(y, 0)
    got = core.maxpool2d_backward(dy, am, x, *p.args, relu_output=relu_output)
    _same_bits(got, _scatter_reference(dy, am, relu_output, p), simd)


@pytest.mark.parametrize("relu", [False, True], ids=["plain", "relu"])
def test_2x2_backward_falls_back_to_the_scatter_for_a_foreign_argmax(relu, simd):
    """An argmax that maxpool2d_forward did not write may name a position in another window of
    its plane; the plane then takes the general scatter (two windows adding into one position),
    at every SIMD level, and the planes around it keep the direct path."""
    p = Pool(2, 3, 6, 36, (2, 2), (2, 2))
    x = _x(p, 702).astype(np.float32)
    y, am = core.maxpool2d_forward(x, *p.args)
    am = am.copy()
    am[1, 1, 2, 17] = am[1, 1, 0, 3]   # the last window of a 16-wide step, onto another window
    am[0, 2, 1, 0] = am[0, 2, 1, 1] + 1  # a window's right neighbour, one column out
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    relu_output = np.maximum(y, 0) if relu else None
    got = core.maxpool2d_backward(dy, am, x, *p.args, relu_output=relu_output)
    _same_bits(got, _scatter_reference(dy, am, relu_output, p), f"{simd}, relu={relu}")


def test_maxpool_backward_relu_output_is_checked():
    p = Pool(1, 2, 4, 4, (2, 2), (2, 2))
    x = np.zeros((1, 2, 4, 4), np.float32)
    y, am = core.maxpool2d_forward(x, *p.args)
    with pytest.raises(TypeError, match="relu_output must have the same dtype as dy"):
        core.maxpool2d_backward(y, am, x, *p.args, relu_output=y.astype(np.float64))
    with pytest.raises(ValueError, match="relu_output and dy must have the same shape"):
        core.maxpool2d_backward(y, am, x, *p.args, relu_output=y[:, :1])
    with pytest.raises(ValueError, match="relu_output"):
        core.maxpool2d_backward(y, am, x, *p.args, relu_output=np.zeros((1, 2, 2, 4), np.float32)[:, :, :, ::2])


# ---------------------------------------------------------------------------
# finite differences (float64)

FD_H = 1e-6
FD_POOLS = [
    Pool(2, 2, 7, 8, (3, 3), (1, 1), (1, 1)),
    Pool(1, 3, 9, 7, (3, 3), (2, 2), (1, 1)),
    Pool(2, 2, 6, 9, (2, 3), (2, 1), (1, 1)),
    Pool(1, 2, 7, 7, (2, 2), (2, 2)),
]




def _assert_fd(actual, fd, name):
    t = FINITE_DIFFERENCE
    assert_close(actual, fd, np.float64, name, rtol=t.rtol, atol=t.atol)


@pytest.mark.parametrize("p", FD_POOLS, ids=[q.id for q in FD_POOLS])
def test_avgpool_backward_matches_finite_differences(p):
    x = _x(p, 700)
    G = _dy(p, 700)
    dx = core.avgpool2d_backward(G, x, *p.args)
    fd = central_difference_inplace(lambda: float(np.sum(G * core.avgpool2d_forward(x, *p.args))), x, FD_H)
    _assert_fd(dx, fd, f"avgpool dx vs FD [{p.id}]")


@pytest.mark.parametrize("p", FD_POOLS, ids=[q.id for q in FD_POOLS])
def test_maxpool_backward_matches_finite_differences(p):
    # Distinct values 2/size apart >> FD_H: the arg-max cannot change under the step.
    x = _x(p, 800, "distinct")
    G = _dy(p, 800)
    _, am = core.maxpool2d_forward(x, *p.args)
    dx = core.maxpool2d_backward(G, am, x, *p.args)
    fd = central_difference_inplace(lambda: float(np.sum(G * core.maxpool2d_forward(x, *p.args)[0])), x, FD_H)
    _assert_fd(dx, fd, f"maxpool dx vs FD [{p.id}]")
    assert np.count_nonzero(fd) > 0


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 7, 3)], ids=["2x3x4x5", "1x2x7x3"])
def test_global_avgpool_backward_matches_finite_differences(shape):
    x = _x(shape, 900)
    G = np.random.default_rng(901).uniform(-1, 1, size=shape[:2])
    dx = core.global_avgpool_backward(G, x)
    fd = central_difference_inplace(lambda: float(np.sum(G * core.global_avgpool_forward(x))), x, FD_H)
    _assert_fd(dx, fd, f"global_avgpool dx vs FD [{shape}]")


# ---------------------------------------------------------------------------
# NaN


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [Pool(1, 2, 7, 8, (3, 3), (2, 2), (1, 1)), Pool(2, 1, 6, 6, (2, 2), (2, 2)),
                               Pool(1, 1, 4, 19, (2, 2), (2, 2)),
                               Pool(1, 1, 5, 7, (3, 2), (1, 1))], ids=lambda q: q.id)
def test_maxpool_nan_in_a_window_gives_nan(p, dtype):
    x = _x(p, 1000).astype(dtype)
    # NaN at a window's first element, in a middle, at a last element, and at
    # a corner; only in plane (0, 0) so the other planes stay NaN-free.
    nan_at = [(0, 0), (p.H // 2, p.W // 2), (p.H - 1, p.W - 1), (1, p.W - 2)]
    for h, w in nan_at:
        x[0, 0, h, w] = np.nan
    y, am = core.maxpool2d_forward(x, *p.args)
    e_y, _ = ref_maxpool_forward(x.astype(np.float64), p)
    hit = np.zeros(y.shape, dtype=bool)
    for oh, ow, pos in _windows(p):
        for n in range(p.N):
            for c in range(p.C):
                hit[n, c, oh, ow] = any(hw is not None and np.isnan(x[n, c, hw[0], hw[1]]) for hw in pos)
                if hit[n, c, oh, ow]:
                    a = int(am[n, c, oh, ow])
                    assert (a // p.W, a % p.W) in pos, f"argmax {a} outside window {(n, c, oh, ow)}"
                    assert np.isnan(x[n, c, a // p.W, a % p.W]), (
                        f"window {(n, c, oh, ow)} holds a NaN but its arg-max {a} is not a NaN")
    assert hit.any()
    assert np.isnan(y[hit]).all(), f"{int((~np.isnan(y[hit])).sum())} NaN windows gave a number"
    assert not np.isnan(y[~hit]).any(), "a window without NaN gave NaN"
    assert_close(y, e_y, dtype, f"maxpool y with NaN [{p.id}]")


# ---------------------------------------------------------------------------
# argument checking

X = np.random.default_rng(0).standard_normal((2, 3, 6, 7))
P = Pool(2, 3, 6, 7, (2, 2), (2, 2))
Y_MAX, AM = core.maxpool2d_forward(X, *P.args)
DY = np.ones_like(Y_MAX)
MAX_FWD = core.maxpool2d_forward
AVG_FWD = core.avgpool2d_forward


def _am_with(value):
    a = AM.copy()
    a[1, 2, 0, 1] = value
    return a


BAD_CALLS = [
    # geometry, for both forward ops
    *[(f"{op.__name__}: kernel larger than padded input",
       (lambda op=op: op(np.ones((1, 1, 2, 2)), (5, 5), (1, 1), (1, 1))), ValueError, None)
      for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: kernel wider than input",
       (lambda op=op: op(X, (2, 8), (1, 1))), ValueError, None) for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: padding > kernel/2",
       (lambda op=op: op(X, (3, 3), (1, 1), (2, 0))), ValueError, "padding") for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: padding > kernel/2 in w",
       (lambda op=op: op(X, (2, 2), (1, 1), (0, 2))), ValueError, "padding") for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: kernel 1 with padding 1",
       (lambda op=op: op(X, (1, 1), (1, 1), (1, 1))), ValueError, "padding") for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: negative padding",
       (lambda op=op: op(X, (2, 2), (1, 1), (-1, 0))), ValueError, "padding") for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: stride 0",
       (lambda op=op: op(X, (2, 2), (0, 1))), ValueError, "stride") for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: stride 0 in w",
       (lambda op=op: op(X, (2, 2), (1, 0))), ValueError, "stride") for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: kernel 0",
       (lambda op=op: op(X, (0, 2), (1, 1))), ValueError, None) for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: 3-D x", (lambda op=op: op(X[0], (2, 2), (2, 2))), ValueError, "x")
      for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: int x", (lambda op=op: op(X.astype(np.int64), (2, 2), (2, 2))), TypeError, "x")
      for op in (MAX_FWD, AVG_FWD)],
    *[(f"{op.__name__}: non-contiguous x",
       (lambda op=op: op(np.ones((2, 3, 6, 14))[..., ::2], (2, 2), (2, 2))), ValueError, "contiguous")
      for op in (MAX_FWD, AVG_FWD)],
    ("global_avgpool_forward: 3-D x", lambda: core.global_avgpool_forward(X[0]), ValueError, "x"),
    ("global_avgpool_forward: 2-D x", lambda: core.global_avgpool_forward(X[0, 0]), ValueError, "x"),
    ("global_avgpool_forward: int x",
     lambda: core.global_avgpool_forward(X.astype(np.int32)), TypeError, "x"),
    ("global_avgpool_forward: empty x",
     lambda: core.global_avgpool_forward(np.ones((1, 2, 0, 3))), ValueError, "empty"),
    ("global_avgpool_forward: non-contiguous x",
     lambda: core.global_avgpool_forward(X[..., ::2]), ValueError, "contiguous"),
    # maxpool backward
    ("maxpool2d_backward: argmax int32",
     lambda: core.maxpool2d_backward(DY, AM.astype(np.int32), X, *P.args), TypeError, "argmax"),
    ("maxpool2d_backward: argmax float",
     lambda: core.maxpool2d_backward(DY, AM.astype(np.float64), X, *P.args), TypeError, "argmax"),
    ("maxpool2d_backward: argmax -1",
     lambda: core.maxpool2d_backward(DY, _am_with(-1), X, *P.args), ValueError, "argmax"),
    ("maxpool2d_backward: argmax H*W",
     lambda: core.maxpool2d_backward(DY, _am_with(6 * 7), X, *P.args), ValueError, "argmax"),
    ("maxpool2d_backward: argmax huge",
     lambda: core.maxpool2d_backward(DY, _am_with(2**40), X, *P.args), ValueError, "argmax"),
    ("maxpool2d_backward: argmax wrong shape",
     lambda: core.maxpool2d_backward(DY, AM[:, :, :2], X, *P.args), ValueError, "argmax"),
    ("maxpool2d_backward: dy wrong shape",
     lambda: core.maxpool2d_backward(np.ones((2, 3, 3, 4)), AM, X, *P.args), ValueError, "dy"),
    ("maxpool2d_backward: dy wrong channels",
     lambda: core.maxpool2d_backward(np.ones((2, 2, 3, 3)), AM[:, :2], X, *P.args), ValueError, "dy"),
    ("maxpool2d_backward: dy 3-D",
     lambda: core.maxpool2d_backward(DY[0], AM[0], X, *P.args), ValueError, "dy"),
    ("maxpool2d_backward: int dy",
     lambda: core.maxpool2d_backward(DY.astype(np.int64), AM, X, *P.args), TypeError, "dy"),
    ("maxpool2d_backward: padding > kernel/2",
     lambda: core.maxpool2d_backward(DY, AM, X, (2, 2), (2, 2), (2, 2)), ValueError, "padding"),
    ("maxpool2d_backward: stride 0",
     lambda: core.maxpool2d_backward(DY, AM, X, (2, 2), (0, 2)), ValueError, "stride"),
    ("maxpool2d_backward: 3-D x",
     lambda: core.maxpool2d_backward(DY, AM, X[0], *P.args), ValueError, "x"),
    ("maxpool2d_backward: non-contiguous dy",
     lambda: core.maxpool2d_backward(np.ones((2, 3, 3, 6))[..., ::2], AM, X, *P.args), ValueError,
     "contiguous"),
    # avgpool backward
    ("avgpool2d_backward: dy wrong shape",
     lambda: core.avgpool2d_backward(np.ones((2, 3, 3, 4)), X, *P.args), ValueError, "dy"),
    ("avgpool2d_backward: dy wrong batch",
     lambda: core.avgpool2d_backward(np.ones((1, 3, 3, 3)), X, *P.args), ValueError, "dy"),
    ("avgpool2d_backward: kernel larger than padded input",
     lambda: core.avgpool2d_backward(np.ones((1, 1, 1, 1)), np.ones((1, 1, 2, 2)), (5, 5), (1, 1), (1, 1)),
     ValueError, None),
    ("avgpool2d_backward: padding > kernel/2",
     lambda: core.avgpool2d_backward(DY, X, (2, 2), (2, 2), (0, 2)), ValueError, "padding"),
    ("avgpool2d_backward: stride 0",
     lambda: core.avgpool2d_backward(DY, X, (2, 2), (2, 0)), ValueError, "stride"),
    ("avgpool2d_backward: 3-D x", lambda: core.avgpool2d_backward(DY, X[0], *P.args), ValueError, "x"),
    ("avgpool2d_backward: int dy",
     lambda: core.avgpool2d_backward(DY.astype(np.int32), X, *P.args), TypeError, "dy"),
    # global avgpool backward
    ("global_avgpool_backward: dy wrong shape",
     lambda: core.global_avgpool_backward(np.ones((2, 4)), X), ValueError, "dy"),
    ("global_avgpool_backward: dy 4-D",
     lambda: core.global_avgpool_backward(np.ones((2, 3, 1, 1)), X), ValueError, "dy"),
    ("global_avgpool_backward: 3-D x",
     lambda: core.global_avgpool_backward(np.ones((2, 3)), X[0]), ValueError, "x"),
    ("global_avgpool_backward: int dy",
     lambda: core.global_avgpool_backward(np.ones((2, 3), np.int64), X), TypeError, "dy"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_the_valid_baseline_of_the_bad_calls_works():
    assert Y_MAX.shape == (2, 3, 3, 3) and AM.dtype == np.int64
    assert_close(Y_MAX, ref_maxpool_forward(X, P)[0], np.float64, "baseline maxpool")
    dx = core.maxpool2d_backward(DY, _am_with(6 * 7 - 1), X, *P.args)   # the largest valid index
    assert dx[1, 2, 5, 6] >= 1.0
    assert core.avgpool2d_backward(DY, X, *P.args).shape == X.shape
    assert core.global_avgpool_backward(np.ones((2, 3)), X).shape == X.shape
    # padding == kernel/2 is allowed
    assert core.maxpool2d_forward(X, (2, 2), (1, 1), (1, 1))[0].shape == (2, 3, 7, 8)
    assert core.avgpool2d_forward(X, (3, 3), (1, 1), (1, 1)).shape == (2, 3, 6, 7)


@pytest.mark.parametrize("bad", [-1, 16, 2**40, -(2**62)])
def test_maxpool_backward_rejects_an_argmax_outside_the_plane(bad):
    # a hostile or stale argmax must raise, never write outside dx
    x = np.zeros((2, 3, 4, 4), np.float32)
    y, am = core.maxpool2d_forward(x, (2, 2), (2, 2))
    am = am.copy()
    am[1, 2, 1, 0] = bad
    with pytest.raises(ValueError, match="outside the input plane"):
        core.maxpool2d_backward(np.ones_like(y), am, x, (2, 2), (2, 2))
    am[1, 2, 1, 0] = 15  # the last position of the 4x4 plane is fine
    assert core.maxpool2d_backward(np.ones_like(y), am, x, (2, 2), (2, 2))[1, 2, 3, 3] == 1.0
