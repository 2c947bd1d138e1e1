"""The direct forward convolution for few taps a channel (cpp/conv2d/conv_direct.h): the im2col
algorithm's forward for layers with at most 27 taps per output channel (a first layer on 1-3
channels), with no im2col buffer.

Its contract is bit-level: the bits of im2col + GEMM, i.e. of natverk's own GEMM on the image's
columns with C filled with the bias and beta = 1, which this file builds from a NumPy im2col. So
it is held to exactly those bits, at every SIMD level it runs at and on 1 and 2 threads, on odd
shapes, batch 1, rows narrower than a vector and ragged last vectors, zero padding wider than the
kernel, asymmetric padding, no bias, and -0, NaN and +-Inf; through them, to the float64
reference (1e-12) and the float32 one. Where it does not apply (conv_direct_applies) the binding
answers None, and conv2d_forward runs im2col + GEMM.
"""

from __future__ import annotations

import numpy as np
import pytest

import natverk._core as core
import reference as ref
from conftest import SIMD_LEVELS
from natverk.layers import Conv2D
from tolerances import assert_close

# (N, C, K, H, W, kH, kW, padding, bias): the MNIST first layer, VGG's 3 -> 64 at 32x32 (whole
# vectors), odd sides (a ragged last vector a row), a row narrower than one vector (W = 3), 2x3
# and 5x5 (25 taps) and 1x1 (3 taps) kernels, asymmetric padding, padding past the kernel's reach
# (rows and columns of pure zeros), K not a multiple of any register block, and no bias.
SHAPES = [
    (3, 1, 32, 28, 28, 3, 3, (1, 1), True),
    (2, 3, 64, 32, 32, 3, 3, (1, 1), True),
    (1, 3, 17, 13, 37, 3, 3, (1, 1), True),
    (2, 2, 5, 17, 3, 3, 3, (1, 1), False),
    (1, 2, 7, 9, 11, 2, 3, (0, 2), True),
    (2, 1, 11, 6, 7, 5, 5, (2, 2), True),
    (2, 3, 4, 8, 9, 1, 1, (0, 0), True),
    (1, 1, 3, 4, 5, 3, 3, (3, 2), True),
    (1, 3, 9, 5, 4, 3, 3, (0, 0), False),
]
IDS = [f"{s[1]}->{s[2]}@{s[3]}x{s[4]}k{s[5]}{s[6]}p{s[7][0]}{s[7][1]}" for s in SHAPES]


def _data(shape, dtype, seed, special=False):
    N, C, K, H, W, kH, kW, pad, bias = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, kH, kW)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    if special:
        # products and sums that are -0 (the bias must not turn into +0), and NaN / Inf
        x.reshape(-1)[::5] = -0.0
        w.reshape(-1)[::4] = 0.0
        if b is not None:
            b[::2] = -0.0
        x.reshape(-1)[3::97] = np.nan
        x.reshape(-1)[5::89] = np.inf
        x.reshape(-1)[11::83] = -np.inf
    return x, w, b


def _im2col_gemm(x, w, b, pad):
    """conv2d_forward's im2col + GEMM, one image at a time: natverk's GEMM of W (K x C kH kW) and
    the image's columns, into C filled with the bias (zeros without), beta = 1."""
    N, C, H, W = x.shape
    K, _, kH, kW = w.shape
    ph, pw = pad
    Ho, Wo = H + 2 * ph - kH + 1, W + 2 * pw - kW + 1
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    cols = np.empty((N, C * kH * kW, Ho * Wo), x.dtype)
    for c in range(C):
        for i in range(kH):
            for j in range(kW):
                cols[:, (c * kH + i) * kW + j] = xp[:, c, i:i + Ho, j:j + Wo].reshape(N, -1)
    y = np.empty((N, K, Ho * Wo), x.dtype)
    for n in range(N):
        c0 = np.zeros((K, Ho * Wo), x.dtype) if b is None else np.repeat(b[:, None], Ho * Wo, axis=1)
        y[n] = core.gemm(np.ascontiguousarray(w.reshape(K, -1)), cols[n], c0, alpha=1.0, beta=1.0)
    return y.reshape(N, K, Ho, Wo)


def _assert_same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_bits_of_im2col_and_gemm(shape, dtype, simd, threads):
    pad = shape[7]
    for special in (False, True):
        x, w, b = _data(shape, dtype, seed=sum(shape[:7]), special=special)
        got = core._conv2d_direct(x, w, b, padding=pad)
        if simd == "scalar":
            assert got is None  # the scalar GEMM does not fuse its multiply-adds: im2col + GEMM there
            continue
        assert got is not None
        want = _im2col_gemm(x, w, b, pad)
        _assert_same_bits(got, want)
        # the public forward runs it: the same bits
        _assert_same_bits(core.conv2d_forward(x, w, b, padding=pad), got)
        if not special:
            expect = ref.conv2d_forward(x, w, b, padding=pad)
            assert_close(got, expect.astype(dtype) if dtype == np.float32 else expect, dtype,
                         f"direct conv {IDS[SHAPES.index(shape)]}")


@pytest.mark.parametrize("shape", SHAPES[:3], ids=IDS[:3])
def test_float64_within_1e_12_of_the_reference(shape, simd):
    x, w, b = _data(shape, np.float64, seed=7)
    got = core.conv2d_forward(x, w, b, padding=shape[7])
    expect = ref.conv2d_forward(x, w, b, padding=shape[7])
    assert_close(got, expect, np.float64, "direct conv float64", rtol=1e-12, atol=1e-12)


def test_non_contiguous_and_batch_one_inputs():
    """The Conv2D layer hands a strided batch of one image to the kernel: the bits of the same
    values contiguous, and of im2col + GEMM."""
    rng = np.random.default_rng(3)
    big = rng.standard_normal((2, 6, 15, 22)).astype(np.float32)
    x = big[:1, ::2, :, ::2]  # (1, 3, 15, 11), strided in channels and columns
    assert not x.flags.c_contiguous
    layer = Conv2D(3, 5, 3, padding=1, seed=4).astype(np.float32)
    got = layer.forward(x)
    _assert_same_bits(got, layer.forward(np.ascontiguousarray(x)))
    _assert_same_bits(got, _im2col_gemm(np.ascontiguousarray(x), layer.W, layer.b, (1, 1)))


def test_more_taps_than_27_take_im2col_and_gemm(simd):
    """Four channels of 3x3 are 36 taps a channel: the binding answers None, conv2d_forward runs
    im2col + GEMM and still matches the reference."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 9, 10))
    w = rng.standard_normal((5, 4, 3, 3))
    assert core._conv2d_direct(x, w, None, padding=(1, 1)) is None
    got = core.conv2d_forward(x, w, None, padding=(1, 1))
    assert_close(got, ref.conv2d_forward(x, w, None, padding=(1, 1)), np.float64, "36 taps", rtol=1e-12, atol=1e-12)
    # one channel fewer (27 taps) is direct
    x3, w3 = np.ascontiguousarray(x[:, :3]), np.ascontiguousarray(w[:, :3])
    assert (core._conv2d_direct(x3, w3, None, padding=(1, 1)) is None) == (simd == "scalar")


@pytest.mark.parametrize("kwargs", [{"stride": (2, 2)}, {"dilation": (2, 2)}, {"stride": (1, 2)}],
                         ids=["stride2", "dilation2", "stride1x2"])
def test_strides_and_dilations_keep_im2col_and_gemm(kwargs, simd, threads):
    """The direct kernel is stride and dilation 1 only; other geometries with few taps still give
    the reference's values (through im2col + GEMM)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 11, 10))
    w = rng.standard_normal((5, 3, 3, 3))
    got = core.conv2d_forward(x, w, None, padding=(1, 1), **kwargs)
    expect = ref.conv2d_forward(x, w, None, padding=(1, 1), **kwargs)
    assert_close(got, expect, np.float64, f"few taps {kwargs}", rtol=1e-12, atol=1e-12)


def test_applies_at_the_vector_levels_only():
    x = np.zeros((1, 1, 5, 5), np.float32)
    w = np.zeros((2, 1, 3, 3), np.float32)
    for level in SIMD_LEVELS:
        core.set_simd_level(level)
        assert (core._conv2d_direct(x, w, None, padding=(1, 1)) is None) == (level == "scalar")
