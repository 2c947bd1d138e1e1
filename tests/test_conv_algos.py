"""Every convolution algorithm, forced, against the float64 loop reference of
tests/test_conv2d.py (cpp/conv2d/conv2d.h, winograd.h).

The algorithms: im2col + GEMM (any geometry) and Winograd F(2x2,3x3) /
F(4x4,3x3) (3x3, stride 1, dilation 1, one group). Each is forced with
``set_conv_algo`` and must report itself through ``conv2d_algorithm`` (a
forced algorithm that does not apply to a geometry falls back to im2col, and
says so). Covered for each: forward, backward-data, backward-weights in
float64 (1e-12) and float32 (the tolerance measured below), odd sizes, batch 1,
C_in of 1, 3 and 17, paddings 0..2, every SIMD level this CPU has, 1 and 2
threads, central finite differences of every pass, and bit-identical repeats.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import natverk._core as core
from reference import central_difference_inplace
from test_conv2d import Geo, _cast, _check, _inputs, _scales, ref_conv2d_backward, ref_conv2d_forward
from tolerances import FINITE_DIFFERENCE, assert_close

ALGOS = ["im2col", "winograd2", "winograd4"]
WINOGRAD = ["winograd2", "winograd4"]

# 3x3 stride-1 geometries, where every algorithm applies.
GEOS = [
    Geo(2, 3, 8, 9, 4, 3, 3, padding=(1, 1)),     # C_in 3, odd width
    Geo(1, 1, 7, 7, 5, 3, 3, padding=(1, 1)),     # C_in 1, batch 1
    Geo(3, 17, 6, 5, 3, 3, 3, padding=(1, 1)),    # C_in 17, odd sizes, output not a multiple of 2 or 4
    Geo(2, 4, 9, 11, 6, 3, 3),                    # no padding
    Geo(1, 3, 5, 6, 2, 3, 3, padding=(2, 2)),     # padding 2: the border rows see only padding
    Geo(2, 2, 11, 4, 3, 3, 3, padding=(1, 0)),    # non-square padding
    Geo(1, 2, 3, 3, 2, 3, 3),                     # a 1x1 output (one partial tile)
    Geo(2, 5, 13, 14, 7, 3, 3, padding=(1, 1), bias=False),  # several bands, no bias
    Geo(1, 16, 8, 8, 16, 3, 3, padding=(1, 1)),   # the auto rule's Winograd range
    Geo(2, 3, 1, 9, 2, 3, 3, padding=(1, 1)),     # height 1
]
GEO_IDS = [g.id for g in GEOS]


@pytest.fixture
def algo(request):
    """Force request.param for the test, restore 'auto' after."""
    core.set_conv_algo(request.param)
    yield request.param
    core.set_conv_algo("auto")


def _seed(geo) -> int:
    return 20_000 + (GEOS + WIDE_ROWS + MANY_CHANNELS).index(geo)


def _run_all(geo, dtype, seed):
    x, w, b, dy = _inputs(geo, seed)
    (xk, wk, bk, dyk), (xr, wr, br, dyr) = _cast(dtype, x, w, b, dy)
    y = core.conv2d_forward(xk, wk, bk, **geo.kwargs)
    dx, dw, db = core.conv2d_backward(dyk, xk, wk, **geo.kwargs)
    return (xk, wk, bk, dyk), (xr, wr, br, dyr), (y, dx, dw, db)


# float32: the measured error of each algorithm, in float32 epsilons (1.19e-7) times the
# size of the terms summed into one result element (sqrt(#terms) max|a| max|b|, as
# test_conv2d._scales), on uniform [-1, 1] data, over test_f32_error_growth_is_bounded's
# sweep (C = 1..256, K = 8 and 64, 8..17 pixels), worst case:
#   im2col     y 6.3, dx 7.3, dw 6.6
#   winograd2  y 8.3, dx 4.4, dw 4.9
#   winograd4  y 53 (growing with C: 13 at C = 1, 19 at 17, 30 at 64, 53 at 256), dx 25, dw 16
# F(4x4, 3x3)'s transforms hold entries up to 5/2 (B^T) and 8 (A^T), applied before and after
# the float32 GEMM, so its rounding is that much larger; on Lavin & Gray's points
# (0, +-1, +-2) it was 134, 50 and 38 (winograd_matrices.h). The bounds are 2.4-3x the worst
# measured. Every algorithm stays inside the float32 default of 1e-5 (84 eps) relative to
# the same scale at every channel count swept, so the value tests use that default at
# every geometry, the 64- to 256-channel ones included.
F32_BOUND_EPS = {"im2col": 20.0, "winograd2": 20.0, "winograd4": 160.0}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("geo", GEOS, ids=GEO_IDS)
@pytest.mark.parametrize("algo", ALGOS, indirect=True)
def test_every_algorithm_matches_the_loop_reference(algo, geo, dtype):
    seed = _seed(geo)
    (xk, wk, bk, dyk), (xr, wr, br, dyr), (y, dx, dw, db) = _run_all(geo, dtype, seed)
    assert core.conv2d_algorithm(xk, wk, **geo.kwargs) == algo
    sc = _scales(geo, xr, wr, br, dyr)
    _check(y, ref_conv2d_forward(xr, wr, br, **geo.kwargs), dtype, f"{algo} y [{geo.id}]", sc["y"])
    e_dx, e_dw, e_db = ref_conv2d_backward(dyr, xr, wr, **geo.kwargs)
    _check(dx, e_dx, dtype, f"{algo} dx [{geo.id}]", sc["dx"])
    _check(dw, e_dw, dtype, f"{algo} dw [{geo.id}]", sc["dw"])
    _check(db, e_db, dtype, f"{algo} db [{geo.id}]", sc["db"])


# Rows longer than the transposes' blocks of pixels (8 floats / 4 doubles a register,
# cpp/conv2d/winograd_tiles.inc), so that a block of pixels spans rows and a plane ends
# in a ragged rest, with padding 0 and 2 at both ends; and a row of more tiles than a
# block holds (kTileBlock = 128: 150 tiles of 2 or 75 of 4 at 300 pixels), one band a block.
WIDE_ROWS = [
    Geo(1, 3, 5, 37, 2, 3, 3, padding=(2, 2)),
    Geo(2, 2, 6, 35, 3, 3, 3),
    Geo(1, 2, 3, 300, 3, 3, 3, padding=(1, 1)),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("algo", WINOGRAD, indirect=True)
def test_winograd_at_every_simd_level_and_thread_count(algo, simd, threads):
    core.set_num_threads(threads)
    for geo in (GEOS[2], GEOS[7], *WIDE_ROWS):
        for dtype in (np.float64, np.float32):
            _, (xr, wr, br, dyr), (y, dx, dw, db) = _run_all(geo, dtype, _seed(geo))
            sc = _scales(geo, xr, wr, br, dyr)
            tag = f"{algo} {simd} {threads}t [{geo.id}]"
            _check(y, ref_conv2d_forward(xr, wr, br, **geo.kwargs), dtype, f"y {tag}", sc["y"])
            e_dx, e_dw, _ = ref_conv2d_backward(dyr, xr, wr, **geo.kwargs)
            _check(dx, e_dx, dtype, f"dx {tag}", sc["dx"])
            _check(dw, e_dw, dtype, f"dw {tag}", sc["dw"])


# Many channels: several channel groups a tile (cpp/conv2d/winograd_tiles.inc), 65 of
# them (a ragged last group, its lanes past C zero), output channels fewer than one group;
# tiles a band (F(2x2) / F(4x4)): 1 / 1, 7 / 4, 19 / 10 and 4 / 2; batch 1, blocks of
# several images, and blocks that end inside an image (19 tiles a band, 6 bands a block).
# The last two have planes longer than the transposes' chunks of pixels (kChunkPix = 256),
# with channel groups whole and ragged on both sides: 23 x 19 = 437 pixels (a full chunk, a
# shorter one and a rest of pixels under one register), 17 inputs and 9 outputs; 40 x 40 =
# 1600 pixels, 16 and 16.
MANY_CHANNELS = [
    Geo(1, 64, 5, 2, 3, 3, 3, padding=(1, 1)),
    Geo(5, 65, 9, 14, 5, 3, 3, padding=(1, 1)),
    Geo(1, 64, 4, 37, 2, 3, 3, padding=(2, 2)),
    Geo(40, 64, 8, 8, 3, 3, 3, padding=(1, 1), bias=False),
    Geo(2, 17, 23, 19, 9, 3, 3, padding=(1, 1)),
    Geo(1, 16, 40, 40, 16, 3, 3, padding=(1, 1)),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("algo", WINOGRAD, indirect=True)
def test_channel_groups_at_every_simd_level_and_thread_count(algo, simd, threads):
    core.set_num_threads(threads)
    for geo in MANY_CHANNELS:
        for dtype in (np.float64, np.float32):
            (xk, wk, _, _), (xr, wr, br, dyr), (y, dx, dw, db) = _run_all(geo, dtype, _seed(geo))
            assert core.conv2d_algorithm(xk, wk, **geo.kwargs) == algo
            sc = _scales(geo, xr, wr, br, dyr)
            tag = f"{algo} {simd} {threads}t [{geo.id}]"
            # the tensordot reference (checked against the loop one in
            # test_f32_error_growth_is_bounded): the loops take seconds at 64 channels
            e_y, e_dx, e_dw = _fast_reference(xr, wr, np.zeros(geo.K) if br is None else br, dyr,
                                              geo.kwargs["padding"][0])
            for name, got, ref in (("y", y, e_y), ("dx", dx, e_dx), ("dw", dw, e_dw)):
                _check(got, ref, dtype, f"{name} {tag}", sc[name])


# NaN confinement through the transposes and the padded channel-last buffers
# (winograd_tiles.inc): a block of pixels runs across row ends, so a NaN column next to a
# row end must not reach the tiles whose patches do not hold it (the other image, too,
# stays NaN-free). Widths 7 (the Table 4 CNN's 64 -> 128 @7, F(4x4): tiles of columns
# -1..4 and 3..8), 14 and 9; 64 channels, 8 groups of channels a tile.
NAN_GEOS = [Geo(2, 3, 7, 7, 4, 3, 3, padding=(1, 1)), Geo(2, 64, 5, 7, 3, 3, 3, padding=(1, 1)),
            Geo(3, 2, 4, 14, 2, 3, 3, padding=(1, 1)), Geo(2, 5, 6, 9, 3, 3, 3)]


def _tile_cols(ox: int, m: int, pw: int, W: int) -> set:
    """The input columns of the patch under output column ox's tile."""
    t = ox // m
    return set(range(max(0, t * m - pw), min(W, t * m - pw + m + 2)))


def _assert_nan_within(a, allowed, what):
    """NaN somewhere (the NaN went in), and only where allowed: how far inside a patch it
    spreads depends on the zeros of the transforms, so the test asks no more than that."""
    got = np.isnan(a)
    assert got.any(), f"{what}: no NaN came out"
    assert not (got & ~allowed).any(), f"{what}: NaN outside the patches that hold it at {np.argwhere(got & ~allowed)[:5].tolist()}"


@pytest.mark.parametrize("geo", NAN_GEOS, ids=[g.id for g in NAN_GEOS])
@pytest.mark.parametrize("algo", WINOGRAD, indirect=True)
def test_nan_stays_in_the_tiles_whose_patch_holds_it(algo, geo, simd):
    m = 2 if algo == "winograd2" else 4
    pw = geo.kwargs.get("padding", (0, 0))[1]
    x, w, b, dy = _cast(np.float32, *_inputs(geo, 31))[0]
    Ho, Wo = geo.out_hw
    for col in (0, geo.W - 1):  # the first column, next to the row before's end, and the last
        xn = x.copy()
        xn[0, :, :, col] = np.nan  # image 0 only
        y = core.conv2d_forward(xn, w, b, **geo.kwargs)
        want_nan = np.zeros(y.shape, bool)
        for ox in range(Wo):
            if col in _tile_cols(ox, m, pw, geo.W):
                want_nan[0, :, :, ox] = True
        _assert_nan_within(y, want_nan, f"{algo} {simd} y, NaN in column {col}")
    for oc in (0, Wo - 1):  # the same through backward-data's transpose of dY
        dyn = dy.copy()
        dyn[0, :, :, oc] = np.nan
        dx, _, _ = core.conv2d_backward(dyn, x, w, **geo.kwargs)
        cols = _tile_cols(oc, m, pw, geo.W)
        want_nan = np.zeros(dx.shape, bool)
        want_nan[0, :, :, sorted(cols)] = True
        _assert_nan_within(dx, want_nan, f"{algo} {simd} dx, NaN in dY column {oc}")


@pytest.mark.parametrize("need", [(True, False), (False, True)], ids=["dx only", "dW only"])
@pytest.mark.parametrize("algo", WINOGRAD, indirect=True)
def test_winograd_backward_with_one_gradient(algo, need, simd):
    """Backward-data alone (a frozen layer) and backward-weights alone (a first layer: the
    plan never asks for its dx) take their own workspace layouts (winograd_tiles.inc): each
    must equal the reference, and the same pass with both asked for."""
    need_dx, need_dw = need
    for threads in (1, 2):
        core.set_num_threads(threads)
        for geo in (GEOS[2], MANY_CHANNELS[1]):
            for dtype in (np.float64, np.float32):
                x, w, b, dy = _inputs(geo, _seed(geo))
                (xk, wk, _, dyk), (xr, wr, br, dyr) = _cast(dtype, x, w, b, dy)
                full = core.conv2d_backward(dyk, xk, wk, **geo.kwargs)
                part = core.conv2d_backward(dyk, xk, wk, **geo.kwargs, need_dx=need_dx, need_dw=need_dw)
                # the tensordot reference (see MANY_CHANNELS): the loops take seconds at 65 channels
                _, e_dx, e_dw = _fast_reference(xr, wr, np.zeros(geo.K), dyr, geo.kwargs["padding"][0])
                sc = _scales(geo, xr, wr, br, dyr)
                tag = f"{algo} {simd} {threads}t [{geo.id}]"
                for name, wanted, got, whole, ref in (("dx", need_dx, part[0], full[0], e_dx),
                                                      ("dw", need_dw, part[1], full[1], e_dw)):
                    if not wanted:
                        assert got is None, f"{name} {tag}: not asked for"
                        continue
                    _check(got, ref, dtype, f"{name} alone {tag}", sc[name])
                    assert np.array_equal(got, whole), f"{name} alone {tag}: not the bits of the full pass"


@pytest.mark.parametrize("algo", ALGOS, indirect=True)
def test_repeats_are_bit_identical_for_a_thread_count(algo):
    geo = Geo(5, 6, 10, 9, 7, 3, 3, padding=(1, 1))
    x, w, b, dy = _inputs(geo, 3)
    for threads in (1, 2):
        core.set_num_threads(threads)
        first = (core.conv2d_forward(x, w, b, **geo.kwargs),) + core.conv2d_backward(dy, x, w, **geo.kwargs)
        for _ in range(3):
            again = (core.conv2d_forward(x, w, b, **geo.kwargs),) + core.conv2d_backward(dy, x, w, **geo.kwargs)
            for a, c in zip(first, again):
                assert np.array_equal(a, c)


# 3 input channels (one ragged group of lanes), and 64 (several groups)
FD_GEOS = [Geo(2, 3, 6, 7, 4, 3, 3, padding=(1, 1)), Geo(1, 64, 3, 6, 1, 3, 3, padding=(1, 1))]


@pytest.mark.parametrize("geo", FD_GEOS, ids=[g.id for g in FD_GEOS])
@pytest.mark.parametrize("algo", ALGOS, indirect=True)
def test_central_differences_of_every_pass(algo, geo):
    """d/dx, d/dW, d/db of L = sum(y * R) by central differences, float64."""
    x, w, b, _ = _inputs(geo, 5)
    R = np.random.default_rng(6).uniform(-1, 1, size=(geo.N, geo.K, *geo.out_hw))

    def loss():
        return float(np.sum(core.conv2d_forward(x, w, b, **geo.kwargs) * R))

    dx, dw, db = core.conv2d_backward(R, x, w, **geo.kwargs)
    t = FINITE_DIFFERENCE
    assert_close(dx, central_difference_inplace(loss, x), np.float64, f"{algo} dx vs finite differences",
                 rtol=t.rtol, atol=t.atol)
    assert_close(dw, central_difference_inplace(loss, w), np.float64, f"{algo} dw vs finite differences",
                 rtol=t.rtol, atol=t.atol)
    assert_close(db, central_difference_inplace(loss, b), np.float64, f"{algo} db vs finite differences",
                 rtol=t.rtol, atol=t.atol)


@pytest.mark.parametrize("algo", WINOGRAD, indirect=True)
def test_forced_winograd_falls_back_where_it_does_not_apply(algo):
    x = np.zeros((1, 4, 9, 9))
    for w_shape, kw in [((2, 4, 3, 3), dict(stride=(2, 2))), ((2, 4, 5, 5), {}),
                        ((2, 4, 3, 3), dict(dilation=(2, 2))), ((2, 2, 3, 3), dict(groups=2)),
                        ((2, 4, 1, 1), {})]:
        assert core.conv2d_algorithm(x, np.zeros(w_shape), **kw) == "im2col", (w_shape, kw)
    # ... and the fallback computes the right thing
    geo = Geo(2, 4, 9, 8, 3, 3, 3, stride=(2, 2), padding=(1, 1))
    _, (xr, wr, br, dyr), (y, dx, dw, db) = _run_all(geo, np.float64, 8)
    _check(y, ref_conv2d_forward(xr, wr, br, **geo.kwargs), np.float64, "fallback y", 1.0)


def test_scratch_reuse_between_shapes_and_algorithms():
    """Big, then small, then big again, switching algorithms: per-thread workspaces
    reused across calls must not leak stale values."""
    big, small = Geo(2, 8, 17, 15, 6, 3, 3, padding=(1, 1)), Geo(1, 2, 5, 4, 3, 3, 3, padding=(2, 2))
    try:
        for algo in ["winograd4", "winograd2", "im2col", "winograd4"]:
            core.set_conv_algo(algo)
            for geo in (big, small, big):
                _, (xr, wr, br, dyr), (y, dx, dw, db) = _run_all(geo, np.float64, 9)
                e_dx, e_dw, _ = ref_conv2d_backward(dyr, xr, wr, **geo.kwargs)
                _check(y, ref_conv2d_forward(xr, wr, br, **geo.kwargs), np.float64, f"{algo} y", 1.0)
                _check(dx, e_dx, np.float64, f"{algo} dx", 1.0)
                _check(dw, e_dw, np.float64, f"{algo} dw", 1.0)
    finally:
        core.set_conv_algo("auto")


def _fast_reference(x, w, b, dy, pad):
    """float64 (y, dx, dW) by tensordot over sliding windows: the loop reference's
    maths, fast enough for the channel sweep (checked against it in the test)."""
    from numpy.lib.stride_tricks import sliding_window_view

    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2) + b[None, :, None, None]
    dW = np.tensordot(dy, win, axes=([0, 2, 3], [0, 2, 3]))
    Ho, Wo = dy.shape[2:]
    dxp = np.zeros_like(xp)
    for i in range(3):
        for j in range(3):
            dxp[:, :, i:i + Ho, j:j + Wo] += np.tensordot(dy, w[:, :, i, j], axes=([1], [0])).transpose(0, 3, 1, 2)
    return y, dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]], dW


@pytest.mark.parametrize("algo", ALGOS, indirect=True)
def test_f32_error_growth_is_bounded(algo):
    """float32 error, in epsilons times sqrt(#terms) max|a| max|b|, stays under
    F32_BOUND_EPS from 1 to 256 channels (the sweep the bounds were measured on)."""
    geo0 = Geo(1, 2, 6, 6, 3, 3, 3, padding=(1, 1))
    x, w, b, dy = _inputs(geo0, 1)
    for got, ref in zip(_fast_reference(x, w, b, dy, 1), (ref_conv2d_forward(x, w, b, **geo0.kwargs),
                                                        *ref_conv2d_backward(dy, x, w, **geo0.kwargs)[:2])):
        assert_close(got, ref, np.float64, "fast reference vs loop reference")
    eps = float(np.finfo(np.float32).eps)
    for C in (1, 3, 16, 17, 64, 128, 256):
        for K in (8, 64):
            for hw in (8, 12, 17):
                rng = np.random.default_rng(1000 * C + 10 * K + hw)
                N = 2
                x = rng.uniform(-1, 1, (N, C, hw, hw)).astype(np.float32)
                w = rng.uniform(-1, 1, (K, C, 3, 3)).astype(np.float32)
                b = rng.uniform(-1, 1, K).astype(np.float32)
                dy = rng.uniform(-1, 1, (N, K, hw, hw)).astype(np.float32)
                y = core.conv2d_forward(x, w, b, padding=(1, 1))
                dx, dw, _ = core.conv2d_backward(dy, x, w, padding=(1, 1))
                ry, rdx, rdw = _fast_reference(*(a.astype(np.float64) for a in (x, w, b, dy)), 1)
                for name, got, ref, terms in (("y", y, ry, C * 9), ("dx", dx, rdx, K * 9),
                                              ("dw", dw, rdw, N * hw * hw)):
                    err = float(np.max(np.abs(got - ref))) / math.sqrt(terms) / eps
                    assert err <= F32_BOUND_EPS[algo], \
                        f"{algo} C={C} K={K} {hw}x{hw} {name}: error {err:.1f} eps > {F32_BOUND_EPS[algo]}"


def _header_matrices(m: int) -> dict:
    """BT, G and AT of Wino<m> as exact fractions, read from cpp/conv2d/winograd_matrices.h."""
    src = (Path(__file__).resolve().parents[1] / "cpp" / "conv2d" / "winograd_matrices.h").read_text()
    body = src[src.index(f"struct Wino<{m}> {{"):]
    body = body[:body.index("\n};")]
    out = {}
    for name, rows, cols, init in re.findall(r"double (\w+)\[(\d+)\]\[(\d+)\] = \{(.*?)\};", body, re.S):
        mat = []
        for row in re.findall(r"\{([^{}]*)\}", init):
            entries = []
            for e in row.split(","):
                num, _, den = e.partition("/")
                entries.append(Fraction(num.strip()) / Fraction(den.strip() or "1"))
            mat.append(entries)
        assert (len(mat), len(mat[0])) == (int(rows), int(cols)), name
        out[name] = mat
    return out


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_matrices_are_exact_minimal_filtering(m):
    """Each 1-D F(m, 3) computes the correlation exactly (the 2-D one nests it):
    sum_j AT[i][j] G[j][k] BT[j][l] = [l == i + k], in rational arithmetic, so no test
    tolerance hides a wrong coefficient. F(4x4)'s points are 0, 1, -1, 1/2, -2 and inf:
    AT's columns are their powers (winograd_matrices.h says why these points)."""
    M = _header_matrices(m)
    AT, G, BT = M["AT"], M["G"], M["BT"]
    n = m + 2
    for i in range(m):
        for k in range(3):
            for col in range(n):
                got = sum(AT[i][j] * G[j][k] * BT[j][col] for j in range(n))
                assert got == (1 if col == i + k else 0), (m, i, k, col, got)
    if m == 4:
        points = [Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2), Fraction(-2)]
        assert [[AT[i][j] for j in range(5)] for i in range(4)] == [[p ** i for p in points] for i in range(4)]
        assert [AT[i][5] for i in range(4)] == [0, 0, 0, 1]  # the point at infinity


def test_set_conv_algo_names_the_argument():
    with pytest.raises(ValueError, match="conv algorithm must be one of auto, im2col, winograd2, winograd4"):
        core.set_conv_algo("fft")
    with pytest.raises(TypeError, match="algorithm must be a str"):
        core.set_conv_algo(2)
    assert core.get_conv_algo() == "auto"


def test_bad_environment_variable_is_named():
    code = ("import numpy as np, natverk._core as c\n"
            "try:\n    c.conv2d_forward(np.zeros((1,1,3,3)), np.zeros((1,1,3,3)))\n"
            "except ValueError as e:\n    print('ERR', e)\n")
    env = {**os.environ, "NATVERK_CONV_ALGO": "winograd9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "ERR NATVERK_CONV_ALGO='winograd9' is not one of auto, im2col, winograd2, winograd4" in out.stdout, out
    env["NATVERK_CONV_ALGO"] = "winograd2"
    code = ("import numpy as np, natverk._core as c\n"
            "print(c.get_conv_algo(), c.conv2d_algorithm(np.zeros((1,1,5,5)), np.zeros((1,1,3,3))))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["winograd2", "winograd2"], out


def test_auto_rule(simd):
    """The measured rule (conv2d.cpp, benchmarks/README.md), at each SIMD level: below 16x16
    outputs, AVX-512 takes F(4x4) further than AVX2 and the scalar level do."""
    assert core.get_conv_algo() == "auto"
    wide = simd == "avx512"
    pick = lambda C, K, hw, **kw: core.conv2d_algorithm(np.zeros((1, C, hw, hw), np.float32),  # noqa: E731
                                                        np.zeros((K, C, 3, 3), np.float32), padding=(1, 1), **kw)
    assert pick(1, 32, 28) == "im2col"
    assert pick(3, 64, 32) == "im2col"
    assert pick(64, 64, 32, stride=(2, 2)) == "im2col"
    assert pick(64, 64, 32) == "winograd4"
    assert pick(128, 128, 16) == "winograd4"
    assert pick(256, 256, 32) == "winograd4"    # no channel limit: F(4x4)'s float32 error is
    assert pick(256, 256, 8) == "winograd4"     # inside 1e-5 up to 256 (F32_BOUND_EPS above)
    assert pick(128, 256, 8) == "winograd4"     # under 16x16: where 4x4 tiles pad no further
    assert pick(64, 128, 7) == "winograd4"      # than 2x2 ones (sides 4k and 4k - 1) ...
    assert pick(64, 64, 4) == "winograd4"
    # ... and F(2x2) where they would (4k + 1, 4k + 2); with AVX-512 F(4x4) still, while its
    # tiles take at most 3/4 of F(2x2)'s multiplications (3 t4 <= t2: 14 and 13, not 10, 9, 6, 5)
    assert pick(32, 64, 14) == ("winograd4" if wide else "winograd2")
    assert pick(64, 64, 13) == ("winograd4" if wide else "winograd2")
    assert pick(64, 64, 10) == "winograd2"
    assert pick(64, 64, 9) == "winograd2"
    assert pick(64, 64, 6) == "winograd2"
    assert pick(64, 64, 5) == "winograd2"
    assert pick(64, 64, 30) == "winograd4"      # from 16x16 on F(4x4) whatever the padding
    rect = lambda h, w: core.conv2d_algorithm(np.zeros((1, 64, h, w), np.float32),  # noqa: E731
                                              np.zeros((64, 64, 3, 3), np.float32), padding=(1, 1))
    assert rect(8, 14) == ("winograd4" if wide else "winograd2")  # both sides must fit (AVX2) ...
    assert rect(6, 14) == "winograd2"                # ... or their tiles (AVX-512: 3 x 8 > 21)
    assert rect(14, 6) == "winograd2"
    assert pick(16, 16, 28) == "winograd4"
    assert pick(8, 32, 28) == "winograd4"       # from 8 channels in and out
    assert pick(32, 8, 14) == ("winograd4" if wide else "winograd2")
    assert pick(7, 64, 28) == "im2col"
    assert pick(64, 7, 28) == "im2col"
