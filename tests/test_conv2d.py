"""natverk._core.conv2d_forward / conv2d_backward against a direct loop
reference (cpp/conv2d/conv2d.h; thesis eq. 14/15, seed 001 eq. 39, 42, 43).

The reference below is written from the formulas, element by element, in
float64 and never calls natverk:

  Y[n, k, oh, ow] = b[k] + sum_{c in group(k), i, j}
                    Xpad[n, c, oh*sh + i*dh, ow*sw + j*dw] * W[k, c - c0, i, j]
  Ho = floor((H + 2 ph - dh (kH - 1) - 1) / sh) + 1
  dW[k, c, i, j] = sum_{n, oh, ow} Xpad[n, c0 + c, oh*sh + i*dh, ow*sw + j*dw] dY[n, k, oh, ow]
  db[k]          = sum_{n, oh, ow} dY[n, k, oh, ow]
  dXpad          = scatter of W[k, c, i, j] dY[n, k, oh, ow] onto the same positions,
  dX             = dXpad with the padding cropped.

Covered: many geometries (kernel, stride, padding, dilation, groups,
depthwise, bias / no bias, batch 1, non-square and odd sizes) in float64 and
float32; central finite differences; need_dx/dw/db; 1 vs 2 threads and every
SIMD level; argument checking.
"""

from __future__ import annotations

import itertools
import math
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
class Geo:
    N: int
    C: int
    H: int
    W: int
    K: int
    kH: int
    kW: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = True

    @property
    def out_hw(self) -> tuple[int, int]:
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        Ho = (self.H + 2 * ph - dh * (self.kH - 1) - 1) // sh + 1
        Wo = (self.W + 2 * pw - dw * (self.kW - 1) - 1) // sw + 1
        return Ho, Wo

    @property
    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    @property
    def id(self) -> str:
        s = (f"N{self.N}C{self.C}x{self.H}x{self.W}-K{self.K}k{self.kH}x{self.kW}"
             f"-s{self.stride[0]}{self.stride[1]}-p{self.padding[0]}{self.padding[1]}"
             f"-d{self.dilation[0]}{self.dilation[1]}-g{self.groups}")
        return s + ("" if self.bias else "-nobias")


GEOMETRIES = [
    Geo(2, 3, 8, 9, 4, 3, 3),                                               # plain 3x3
    Geo(2, 5, 6, 7, 3, 1, 1),                                               # 1x1
    Geo(2, 4, 7, 7, 6, 1, 1, stride=(2, 2), bias=False),                    # 1x1 stride 2
    Geo(1, 2, 9, 10, 3, 5, 5, padding=(2, 2)),                              # 5x5, "same"
    Geo(2, 3, 7, 11, 4, 3, 2, padding=(1, 1)),                              # non-square kernel and input
    Geo(2, 3, 9, 8, 5, 3, 3, stride=(2, 2), padding=(1, 1)),                # stride 2
    Geo(2, 2, 7, 11, 3, 3, 3, stride=(2, 1), padding=(2, 0)),               # stride (2,1), pad (2,0)
    Geo(1, 3, 9, 9, 2, 3, 3, padding=(1, 1), dilation=(2, 2)),              # dilation 2
    Geo(2, 2, 7, 13, 3, 3, 3, padding=(1, 2), dilation=(1, 3)),             # dilation (1,3)
    Geo(2, 4, 6, 7, 6, 3, 3, padding=(1, 1), groups=2),                     # groups 2
    Geo(2, 6, 7, 6, 3, 3, 2, groups=3),                                     # groups 3, one out/group
    Geo(2, 6, 11, 9, 6, 3, 3, stride=(2, 2), padding=(1, 1), dilation=(2, 2), groups=3),
    Geo(2, 4, 8, 7, 4, 3, 3, padding=(1, 1), groups=4),                     # depthwise
    Geo(1, 5, 9, 11, 5, 3, 3, stride=(2, 2), padding=(1, 1), groups=5, bias=False),  # depthwise s2
    Geo(1, 3, 5, 5, 2, 5, 5),                                               # batch 1, 1x1 output
    Geo(1, 2, 3, 4, 3, 5, 6, padding=(1, 1)),                               # kernel == padded input
    Geo(3, 4, 10, 9, 4, 3, 2, stride=(1, 2), padding=(0, 1), dilation=(2, 1), groups=2, bias=False),
    Geo(5, 3, 12, 13, 8, 3, 3, padding=(1, 1)),                             # several images
    Geo(2, 2, 10, 11, 3, 2, 3, stride=(3, 3), padding=(1, 1)),              # stride 3 with remainder
    Geo(1, 2, 4, 5, 2, 3, 3, padding=(2, 2)),                               # windows entirely in padding
    Geo(2, 3, 6, 6, 17, 3, 3, padding=(1, 1)),                              # K crosses SIMD tiles
    Geo(1, 32, 6, 6, 8, 3, 3, padding=(1, 1)),                              # C*kH*kW = 288 > kc
    Geo(1, 2, 20, 23, 3, 3, 3, stride=(1, 1), padding=(1, 0)),              # long Ho*Wo
    Geo(2, 4, 5, 1, 2, 3, 1, padding=(1, 0)),                               # width 1
]
GEO_IDS = [g.id for g in GEOMETRIES]


# ---------------------------------------------------------------------------
# loop reference (float64, never natverk)


def _pad(x, ph, pw):
    N, C, H, W = x.shape
    xpad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=np.float64)
    xpad[:, :, ph:ph + H, pw:pw + W] = x
    return xpad


def ref_conv2d_forward(x, w, b, stride, padding, dilation, groups):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    N, C, H, W = x.shape
    K, Cg, kH, kW = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho = (H + 2 * ph - dh * (kH - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kW - 1) - 1) // sw + 1
    Kg = K // groups
    xpad = _pad(x, ph, pw)
    y = np.empty((N, K, Ho, Wo), dtype=np.float64)
    for n in range(N):
        for k in range(K):
            c0 = (k // Kg) * Cg
            for oh in range(Ho):
                for ow in range(Wo):
                    acc = 0.0 if b is None else float(b[k])
                    for c in range(Cg):
                        for i in range(kH):
                            for j in range(kW):
                                acc += (xpad[n, c0 + c, oh * sh + i * dh, ow * sw + j * dw]
                                        * w[k, c, i, j])
                    y[n, k, oh, ow] = acc
    return y


def ref_conv2d_backward(dy, x, w, stride, padding, dilation, groups):
    """(dx, dw, db) from the formulas, by loops over every (n, k, oh, ow, c, i, j)."""
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    N, C, H, W = x.shape
    K, Cg, kH, kW = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    _, _, Ho, Wo = dy.shape
    Kg = K // groups
    xpad = _pad(x, ph, pw)
    dxpad = np.zeros_like(xpad)
    dW = np.zeros_like(w)
    db = np.zeros(K, dtype=np.float64)
    for n in range(N):
        for k in range(K):
            c0 = (k // Kg) * Cg
            for oh in range(Ho):
                for ow in range(Wo):
                    g = dy[n, k, oh, ow]
                    db[k] += g
                    for c in range(Cg):
                        for i in range(kH):
                            for j in range(kW):
                                h, v = oh * sh + i * dh, ow * sw + j * dw
                                dxpad[n, c0 + c, h, v] += w[k, c, i, j] * g
                                dW[k, c, i, j] += xpad[n, c0 + c, h, v] * g
    dx = dxpad[:, :, ph:ph + H, pw:pw + W].copy()
    return dx, dW, db


# ---------------------------------------------------------------------------
# helpers


def _inputs(geo: Geo, seed: int):
    """float64 x, w, b (or None), dy for ``geo`` from a fixed-seed generator."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(geo.N, geo.C, geo.H, geo.W))
    w = rng.uniform(-1.0, 1.0, size=(geo.K, geo.C // geo.groups, geo.kH, geo.kW))
    b = rng.uniform(-1.0, 1.0, size=geo.K) if geo.bias else None
    Ho, Wo = geo.out_hw
    dy = rng.uniform(-1.0, 1.0, size=(geo.N, geo.K, Ho, Wo))
    return x, w, b, dy


def _cast(dtype, *arrays):
    """Kernel copies in ``dtype`` and the SAME (rounded) values in float64."""
    k_arrs, r_arrs = [], []
    for a in arrays:
        if a is None:
            k_arrs.append(None)
            r_arrs.append(None)
        else:
            ak = np.ascontiguousarray(a, dtype=dtype)
            k_arrs.append(ak)
            r_arrs.append(ak.astype(np.float64))
    return k_arrs, r_arrs


def _amax(a) -> float:
    return 0.0 if a is None or a.size == 0 else float(np.max(np.abs(a)))


def _scales(geo: Geo, x, w, b, dy) -> dict[str, float]:
    """Size of the terms summed into one element of each result: an element
    that is a sum of m products of magnitude <= A * B can cancel to ~0 with a
    rounding error ~ sqrt(m) eps A B, so atol is scaled by sqrt(m) A B."""
    Ho, Wo = geo.out_hw
    Cg, Kg = geo.C // geo.groups, geo.K // geo.groups
    taps = geo.kH * geo.kW
    return {
        "y": math.sqrt(Cg * taps) * _amax(x) * _amax(w) + _amax(b),
        "dx": math.sqrt(Kg * taps) * _amax(w) * _amax(dy),
        "dw": math.sqrt(geo.N * Ho * Wo) * _amax(x) * _amax(dy),
        "db": math.sqrt(geo.N * Ho * Wo) * _amax(dy),
    }


def _check(actual, expected, dtype, name, scale, rtol=None, atol=None):
    """Compare with the dtype's tolerance, atol scaled by ``scale``; the
    failure message (assert_close) gives the worst index and both values."""
    assert isinstance(actual, np.ndarray), f"{name}: expected an ndarray, got {type(actual)}"
    assert actual.dtype == np.dtype(dtype), f"{name}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    t = tol(dtype, scale=scale)
    assert_close(actual, expected, dtype, name,
                 rtol=t.rtol if rtol is None else rtol,
                 atol=t.atol if atol is None else atol)


def check_forward(geo: Geo, dtype, seed: int, name: str = "conv2d_forward"):
    x, w, b, dy = _inputs(geo, seed)
    (xk, wk, bk), (xr, wr, br) = _cast(dtype, x, w, b)
    y = core.conv2d_forward(xk, wk, bk, **geo.kwargs)
    expected = ref_conv2d_forward(xr, wr, br, **geo.kwargs)
    assert y.shape == (geo.N, geo.K, *geo.out_hw)
    _check(y, expected, dtype, f"{name} y [{geo.id}]", _scales(geo, xr, wr, br, dy)["y"])
    return y


def check_backward(geo: Geo, dtype, seed: int, name: str = "conv2d_backward"):
    x, w, b, dy = _inputs(geo, seed)
    (xk, wk, dyk), (xr, wr, dyr) = _cast(dtype, x, w, dy)
    dx, dw, db = core.conv2d_backward(dyk, xk, wk, **geo.kwargs)
    e_dx, e_dw, e_db = ref_conv2d_backward(dyr, xr, wr, **geo.kwargs)
    sc = _scales(geo, xr, wr, None, dyr)
    _check(dx, e_dx, dtype, f"{name} dx [{geo.id}]", sc["dx"])
    _check(dw, e_dw, dtype, f"{name} dw [{geo.id}]", sc["dw"])
    _check(db, e_db, dtype, f"{name} db [{geo.id}]", sc["db"])
    return dx, dw, db


def _seed(geo: Geo) -> int:
    return 10_000 + GEOMETRIES.index(geo) if geo in GEOMETRIES else 99


# ---------------------------------------------------------------------------
# the reference itself (so a wrong reference can't pass silently)


def test_reference_matches_hand_computed_example():
    # 1 image, 1 channel, 3x3 input, 2x2 kernel, stride 1, padding 1: corners
    # see a single input element.
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    b = np.array([0.5])
    y = ref_conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 0, 0] == 0.5 + 4.0 * 1.0          # only w[1,1] * x[0,0]
    assert y[0, 0, 3, 3] == 0.5 + 1.0 * 9.0          # only w[0,0] * x[2,2]
    assert y[0, 0, 1, 1] == 0.5 + 1 * 1 + 2 * 2 + 3 * 4 + 4 * 5
    # Dilation 2, no padding, 5x5 input, 2x2 kernel -> 3x3 output, taps 2 apart.
    x5 = np.arange(25.0).reshape(1, 1, 5, 5)
    y5 = ref_conv2d_forward(x5, w, None, (1, 1), (0, 0), (2, 2), 1)
    assert y5.shape == (1, 1, 3, 3)
    assert y5[0, 0, 0, 0] == 1 * 0 + 2 * 2 + 3 * 10 + 4 * 12
    # Backward of sum(y): db = number of outputs, dw = sum of inputs seen by each tap.
    dx, dw, db = ref_conv2d_backward(np.ones_like(y5), x5, w, (1, 1), (0, 0), (2, 2), 1)
    assert db[0] == 9.0
    assert dw[0, 0, 0, 0] == x5[0, 0, 0:3, 0:3].sum()
    assert dw[0, 0, 1, 1] == x5[0, 0, 2:5, 2:5].sum()
    assert dx[0, 0, 2, 2] == w.sum()                  # the centre is hit by every tap once


def test_reference_groups_use_their_own_channels():
    # groups=2: output channel 0 sees only input channel 0, channel 1 only channel 1.
    x = np.zeros((1, 2, 3, 3))
    x[0, 1] = 1.0
    w = np.ones((2, 1, 1, 1))
    y = ref_conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 2)
    assert np.all(y[0, 0] == 0.0) and np.all(y[0, 1] == 1.0)


# ---------------------------------------------------------------------------
# values against the reference


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geo", GEOMETRIES, ids=GEO_IDS)
def test_forward_matches_reference(geo, dtype):
    check_forward(geo, dtype, _seed(geo))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geo", GEOMETRIES, ids=GEO_IDS)
def test_backward_matches_reference(geo, dtype):
    check_backward(geo, dtype, _seed(geo))


def test_bias_none_equals_zero_bias():
    geo = Geo(2, 3, 7, 8, 4, 3, 3, stride=(2, 1), padding=(1, 1))
    x, w, b, _ = _inputs(geo, 7)
    y0 = core.conv2d_forward(x, w, None, **geo.kwargs)
    yz = core.conv2d_forward(x, w, np.zeros(geo.K), **geo.kwargs)
    yb = core.conv2d_forward(x, w, b, **geo.kwargs)
    assert_close(y0, yz, np.float64, "bias None vs zeros")
    assert_close(yb - y0, np.broadcast_to(b[None, :, None, None], y0.shape), np.float64,
                 "bias adds b[k] to channel k", atol=1e-12 * 10)


def test_scratch_reuse_between_geometries():
    """A big call then a small one then the big one again: the per-thread
    im2col buffer reused across calls must not leak stale values."""
    big, small = GEOMETRIES[21], GEOMETRIES[14]
    for dtype in DTYPES:
        y1 = check_forward(big, dtype, 1)
        check_backward(small, dtype, 2)
        check_forward(small, dtype, 3)
        y2 = check_forward(big, dtype, 1)
        assert np.array_equal(y1, y2), "the same call twice gave different results"


# ---------------------------------------------------------------------------
# finite differences (float64)

FD_GEOMETRIES = [
    Geo(2, 3, 6, 7, 4, 3, 3, padding=(1, 1)),
    Geo(2, 4, 9, 8, 4, 3, 3, stride=(2, 2), padding=(1, 1), dilation=(2, 2), groups=2),
    Geo(1, 3, 7, 6, 3, 3, 2, stride=(2, 1), padding=(2, 0), groups=3),      # depthwise
    Geo(2, 2, 5, 9, 2, 2, 3, padding=(0, 2), dilation=(1, 3)),
]




@pytest.mark.parametrize("geo", FD_GEOMETRIES, ids=[g.id for g in FD_GEOMETRIES])
def test_backward_matches_finite_differences(geo):
    x, w, b, G = _inputs(geo, 500 + FD_GEOMETRIES.index(geo))

    def loss():
        return float(np.sum(G * core.conv2d_forward(x, w, b, **geo.kwargs)))

    dx, dw, db = core.conv2d_backward(G, x, w, **geo.kwargs)
    fd = FINITE_DIFFERENCE
    assert_close(dx, central_difference_inplace(loss, x), np.float64, f"dx vs FD [{geo.id}]", rtol=fd.rtol, atol=fd.atol)
    assert_close(dw, central_difference_inplace(loss, w), np.float64, f"dw vs FD [{geo.id}]", rtol=fd.rtol, atol=fd.atol)
    assert_close(db, central_difference_inplace(loss, b), np.float64, f"db vs FD [{geo.id}]", rtol=fd.rtol, atol=fd.atol)
    # The inputs were restored exactly after each step.
    x2, w2, b2, _ = _inputs(geo, 500 + FD_GEOMETRIES.index(geo))
    assert np.array_equal(x, x2) and np.array_equal(w, w2) and np.array_equal(b, b2)


# ---------------------------------------------------------------------------
# need_dx / need_dw / need_db

NEED_GEO = Geo(3, 4, 8, 7, 6, 3, 2, stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("need", list(itertools.product([True, False], repeat=3)),
                         ids=lambda n: "+".join(nm for nm, on in zip(["dx", "dw", "db"], n) if on) or "none")
def test_need_flags(need, dtype):
    need_dx, need_dw, need_db = need
    geo = NEED_GEO
    x, w, _, dy = _inputs(geo, 77)
    (xk, wk, dyk), (xr, wr, dyr) = _cast(dtype, x, w, dy)
    full = core.conv2d_backward(dyk, xk, wk, **geo.kwargs)
    part = core.conv2d_backward(dyk, xk, wk, **geo.kwargs, need_dx=need_dx, need_dw=need_dw,
                                need_db=need_db)
    assert isinstance(part, tuple) and len(part) == 3
    expected = ref_conv2d_backward(dyr, xr, wr, **geo.kwargs)
    sc = _scales(geo, xr, wr, None, dyr)
    for name, wanted, got, whole, exp in zip(["dx", "dw", "db"], need, part, full, expected):
        if not wanted:
            assert got is None, f"{name} was not asked for but came back as {type(got)}"
            continue
        _check(got, exp, dtype, f"{name} (need={need})", sc[name])
        # Unchanged by what else was (not) asked for.
        _check(got, whole, dtype, f"{name} (need={need}) vs all needed", sc[name],
               rtol=1e-12 if dtype == np.float64 else None,
               atol=1e-12 * max(sc[name], 1.0) if dtype == np.float64 else None)


# ---------------------------------------------------------------------------
# threads and SIMD levels

RUNTIME_GEOMETRIES = [
    Geo(5, 3, 12, 13, 8, 3, 3, padding=(1, 1)),
    Geo(4, 6, 11, 9, 6, 3, 3, stride=(2, 2), padding=(1, 1), dilation=(2, 2), groups=3),
    Geo(3, 5, 9, 11, 5, 3, 3, stride=(2, 1), padding=(1, 1), groups=5, bias=False),
    Geo(3, 32, 6, 7, 17, 3, 3, padding=(1, 1)),
]


@pytest.mark.parametrize("geo", RUNTIME_GEOMETRIES, ids=[g.id for g in RUNTIME_GEOMETRIES])
def test_threads_and_simd_levels_agree(geo):
    x, w, b, dy = _inputs(geo, 900 + RUNTIME_GEOMETRIES.index(geo))
    core.set_simd_level("scalar")
    core.set_num_threads(1)
    y_base = core.conv2d_forward(x, w, b, **geo.kwargs)
    g_base = core.conv2d_backward(dy, x, w, **geo.kwargs)
    sc = _scales(geo, x, w, b, dy)
    # The baseline itself is right.
    assert_close(y_base, ref_conv2d_forward(x, w, b, **geo.kwargs), np.float64, "y scalar/1",
                 atol=1e-12 * max(sc["y"], 1.0))
    for level, nthreads in itertools.product(SIMD_LEVELS, [1, 2]):
        core.set_simd_level(level)
        core.set_num_threads(nthreads)
        assert core.simd_level() == level and core.get_num_threads() == nthreads
        tag = f"{level}/{nthreads} threads vs scalar/1 [{geo.id}]"
        y = core.conv2d_forward(x, w, b, **geo.kwargs)
        assert_close(y, y_base, np.float64, "y " + tag, rtol=1e-12, atol=1e-12 * max(sc["y"], 1.0))
        for name, got, base in zip(["dx", "dw", "db"], core.conv2d_backward(dy, x, w, **geo.kwargs),
                                   g_base):
            assert_close(got, base, np.float64, f"{name} " + tag, rtol=1e-12,
                         atol=1e-12 * max(sc[name], 1.0))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geo", RUNTIME_GEOMETRIES[:3], ids=[g.id for g in RUNTIME_GEOMETRIES[:3]])
def test_every_simd_level_and_thread_count_matches_reference(geo, dtype, simd, threads):
    check_forward(geo, dtype, 950 + RUNTIME_GEOMETRIES.index(geo), name=f"forward {simd}/{threads}")
    check_backward(geo, dtype, 950 + RUNTIME_GEOMETRIES.index(geo), name=f"backward {simd}/{threads}")


# Backward-weights with few taps per output channel (C/groups * kH * kW <= 27) runs as dot
# products along the pixels (cpp/conv2d/dw_dot.h): blocks of dY rows and im2col rows,
# zero rows past the last channel or tap, and a scalar tail past the last whole vector.
FEW_TAP_GEOMETRIES = [
    Geo(2, 1, 28, 28, 32, 3, 3, padding=(1, 1)),   # MNIST's first layer: 784 pixels, 32 = 10 x 3 + 2
    Geo(1, 3, 9, 7, 7, 3, 3, padding=(1, 1)),      # 27 taps, 63 pixels (a tail at every width), batch 1
    Geo(3, 1, 5, 5, 4, 5, 5, padding=(2, 2)),      # 25 taps
    Geo(2, 3, 4, 3, 5, 3, 3),                      # 2 pixels: no whole vector, all tail
    Geo(2, 4, 10, 9, 6, 3, 3, stride=(2, 2), padding=(1, 1), groups=2),  # 18 taps a group
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_few_tap_weight_gradient_at_every_simd_level_and_thread_count(dtype, simd, threads):
    for i, geo in enumerate(FEW_TAP_GEOMETRIES):
        check_backward(geo, dtype, 970 + i, name=f"few-tap backward {simd}/{threads}")
        x, w, _, dy = _inputs(geo, 970 + i)
        x, w, dy = (a.astype(dtype) for a in (x, w, dy))
        first = core.conv2d_backward(dy, x, w, **geo.kwargs, need_dx=False, need_db=False)[1]
        again = core.conv2d_backward(dy, x, w, **geo.kwargs, need_dx=False, need_db=False)[1]
        np.testing.assert_array_equal(first, again, err_msg=f"dW not repeatable [{geo.id}]")


# ---------------------------------------------------------------------------
# argument checking: a clear Python exception, never a crash


def _arrs(N=2, C=3, H=6, W=6, K=4, Cw=None, kH=3, kW=3, dtype=np.float64):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C if Cw is None else Cw, kH, kW)).astype(dtype)
    return x, w


def _dy_for(x, w, **kw):
    return np.ones_like(core.conv2d_forward(x, w, **kw))


X64, W64 = _arrs()
DY64 = _dy_for(X64, W64)

BAD_CALLS = [
    ("channel mismatch",
     lambda: core.conv2d_forward(*_arrs(C=3, Cw=4)), ValueError, "channel"),
    ("channel mismatch backward",
     lambda: core.conv2d_backward(DY64, X64, _arrs(C=3, Cw=4)[1]), ValueError, "channel"),
    ("kernel larger than padded input",
     lambda: core.conv2d_forward(*_arrs(H=4, W=4, kH=5, kW=5)), ValueError, "larger"),
    ("dilated kernel larger than padded input",
     lambda: core.conv2d_forward(*_arrs(H=6, W=6), padding=(0, 0), dilation=(3, 1)), ValueError, "larger"),
    ("kernel larger, backward",
     lambda: core.conv2d_backward(np.ones((2, 4, 1, 1)), *_arrs(H=4, W=4, kH=5, kW=5)), ValueError,
     "larger"),
    ("stride 0", lambda: core.conv2d_forward(X64, W64, stride=(0, 1)), ValueError, "stride"),
    ("stride 0 in w", lambda: core.conv2d_forward(X64, W64, stride=(1, 0)), ValueError, "stride"),
    ("negative stride", lambda: core.conv2d_forward(X64, W64, stride=(-1, 1)), ValueError, "stride"),
    ("stride 0 backward", lambda: core.conv2d_backward(DY64, X64, W64, stride=(0, 0)), ValueError,
     "stride"),
    ("negative padding", lambda: core.conv2d_forward(X64, W64, padding=(-1, 0)), ValueError, "padding"),
    ("negative padding w", lambda: core.conv2d_forward(X64, W64, padding=(0, -1)), ValueError, "padding"),
    ("dilation 0", lambda: core.conv2d_forward(X64, W64, dilation=(0, 1)), ValueError, "dilation"),
    ("groups 0", lambda: core.conv2d_forward(*_arrs(C=4, K=4, Cw=4), groups=0), ValueError, "groups"),
    ("groups not dividing C",
     lambda: core.conv2d_forward(*_arrs(C=3, K=4, Cw=1), groups=2), ValueError, "groups"),
    ("groups not dividing K",
     lambda: core.conv2d_forward(*_arrs(C=4, K=3, Cw=2), groups=2), ValueError, "groups"),
    ("3-D x", lambda: core.conv2d_forward(X64[0], W64), ValueError, "x"),
    ("5-D x", lambda: core.conv2d_forward(X64[None], W64), ValueError, "x"),
    ("3-D weight", lambda: core.conv2d_forward(X64, W64[0]), ValueError, "weight"),
    ("3-D x backward", lambda: core.conv2d_backward(DY64, X64[0], W64), ValueError, "x"),
    ("x float32, weight float64",
     lambda: core.conv2d_forward(X64.astype(np.float32), W64), TypeError, "weight"),
    ("x float64, weight float32",
     lambda: core.conv2d_forward(X64, W64.astype(np.float32)), TypeError, "weight"),
    ("bias float32 with float64 x",
     lambda: core.conv2d_forward(X64, W64, np.zeros(4, np.float32)), TypeError, "bias"),
    ("bias a list", lambda: core.conv2d_forward(X64, W64, [0.0] * 4), TypeError, "bias"),
    ("dy float32 with float64 x",
     lambda: core.conv2d_backward(DY64.astype(np.float32), X64, W64), TypeError, "dy"),
    ("int x and weight",
     lambda: core.conv2d_forward(np.ones((1, 3, 5, 5), np.int64), np.ones((2, 3, 3, 3), np.int64)),
     TypeError, "x"),
    ("int x", lambda: core.conv2d_forward(X64.astype(np.int32), W64), TypeError, "x"),
    ("int weight", lambda: core.conv2d_forward(X64, W64.astype(np.int64)), TypeError, "weight"),
    ("int x backward", lambda: core.conv2d_backward(DY64, X64.astype(np.int64), W64), TypeError, "x"),
    ("non-contiguous x",
     lambda: core.conv2d_forward(np.random.default_rng(0).standard_normal((2, 3, 6, 12))[..., ::2], W64),
     ValueError, "contiguous"),
    ("transposed x",
     lambda: core.conv2d_forward(np.random.default_rng(0).standard_normal((2, 3, 6, 6)).transpose(0, 1, 3, 2),
                                 W64), ValueError, "contiguous"),
    ("non-contiguous weight",
     lambda: core.conv2d_forward(X64, np.ones((4, 3, 3, 6))[..., ::2]), ValueError, "contiguous"),
    ("non-contiguous x backward",
     lambda: core.conv2d_backward(DY64, np.ones((2, 3, 6, 12))[..., ::2], W64), ValueError, "contiguous"),
    ("non-contiguous dy",
     lambda: core.conv2d_backward(np.ones((2, 4, 4, 8))[..., ::2], X64, W64), ValueError, "contiguous"),
    ("dy wrong spatial shape",
     lambda: core.conv2d_backward(np.ones((2, 4, 5, 4)), X64, W64), ValueError, "dy"),
    ("dy wrong channels", lambda: core.conv2d_backward(np.ones((2, 3, 4, 4)), X64, W64), ValueError, "dy"),
    ("dy wrong batch", lambda: core.conv2d_backward(np.ones((1, 4, 4, 4)), X64, W64), ValueError, "dy"),
    ("dy 3-D", lambda: core.conv2d_backward(np.ones((4, 4, 4)), X64, W64), ValueError, "dy"),
    ("bias too short", lambda: core.conv2d_forward(X64, W64, np.zeros(3)), ValueError, "bias"),
    ("bias too long", lambda: core.conv2d_forward(X64, W64, np.zeros(5)), ValueError, "bias"),
    ("bias 2-D", lambda: core.conv2d_forward(X64, W64, np.zeros((1, 4))), ValueError, "bias"),
    ("empty x", lambda: core.conv2d_forward(np.ones((0, 3, 6, 6)), W64), ValueError, "empty"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_valid_call_next_to_bad_ones_works():
    """The baseline every bad call above deviates from is itself accepted."""
    y = core.conv2d_forward(X64, W64, np.zeros(4))
    assert y.shape == (2, 4, 4, 4)
    dx, dw, db = core.conv2d_backward(DY64, X64, W64)
    assert dx.shape == X64.shape and dw.shape == W64.shape and db.shape == (4,)


def _bias_grad_in_lanes(dy):
    # conv2d_backward's db, its exact order (cpp/common/lanes.h): for each channel, element p of
    # every (n, k) row into double lane p % 8, the rows in image order, each lane a running sum
    # from 0 (np.cumsum adds in sequence), then ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
    N, K = dy.shape[:2]
    rows = dy.reshape(N, K, -1).astype(np.float64)
    S = rows.shape[2]
    lane_of = np.arange(S) % 8
    db = np.empty(K, dtype=dy.dtype)
    for k in range(K):
        lanes = [0.0] * 8
        for lane in range(8):
            values = rows[:, k, lane_of == lane].ravel()  # image by image, p increasing
            if values.size:
                lanes[lane] = np.cumsum(np.concatenate(([0.0], values)))[-1]
        l = lanes
        db[k] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
    return db


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("N,K,H,W", [(1, 1, 1, 1), (3, 5, 7, 9), (2, 70, 4, 4), (4, 3, 14, 14), (2, 2, 3, 5)])
def test_bias_gradient_is_the_lane_sum_bit_for_bit(N, K, H, W, dtype, simd, threads):
    # The bias gradient's summation order is fixed (8 double lanes, rows in image order), so it
    # gives the same bits at every SIMD level and thread count, and channel blocks (K = 70 spans
    # two blocks of 64) do not change it. Rows of 1, 9, 15, 16 and 196 elements cover the tail.
    rng = np.random.default_rng(N * 100 + K)
    x = rng.standard_normal((N, 2, H, W)).astype(dtype)
    w = rng.standard_normal((K, 2, 3, 3)).astype(dtype)
    dy = (rng.standard_normal((N, K, H, W)) * np.exp(rng.uniform(-20, 20, (N, K, H, W)))).astype(dtype)
    _, _, db = core.conv2d_backward(dy, x, w, padding=(1, 1), need_dx=False, need_dw=False, need_db=True)
    expected = _bias_grad_in_lanes(dy)
    assert db.tobytes() == expected.tobytes()
