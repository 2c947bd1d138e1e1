"""The fused few-channel conv + bias [+ ReLU] + 2x2 max-pooling (cpp/conv2d/conv_pool.h), the pass
the step plan runs for a first layer such as the MNIST CNN's conv 1->32 -> ReLU -> max-pool.

Its contract is bit-level: the pooled values and arg-max of conv2d_forward, then
maxpool2d_forward (2x2, stride 2), then activation_forward's ReLU, the three kernels the layer
loop runs. So it is held to exactly those bits, at every SIMD level it runs at and on 1 and 2
threads, on odd shapes, batch 1, zero padding, no bias, ties, NaN, +-Inf and -0; and, through
them, to the float64 reference (1e-12) and the float32 one. Where it does not apply
(conv_maxpool_applies) the binding answers None, and the plan runs the three kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

import natverk._core as core
import reference as ref
from conftest import SIMD_LEVELS
from tolerances import assert_close, tol

FUSED_LEVELS = [lvl for lvl in SIMD_LEVELS if lvl != "scalar"]

# (N, C, K, H, W, kH, kW, padding, bias): the MNIST first layer, three channels (VGG's), odd
# sides (a ragged last column and row the pooling drops), sides that fill exactly one and more
# than one vector of pooled outputs, 2x2 and 5x5 kernels, 1x1 (im2col reads x directly),
# asymmetric padding, the smallest conv output (2x2), and no bias.
SHAPES = [
    (3, 1, 32, 28, 28, 3, 3, (1, 1), True),
    (1, 3, 8, 32, 32, 3, 3, (1, 1), True),
    (2, 2, 5, 17, 13, 3, 3, (1, 1), False),
    (2, 1, 3, 67, 35, 3, 3, (1, 1), True),
    (1, 2, 7, 9, 11, 2, 3, (0, 2), True),
    (2, 1, 3, 6, 7, 5, 5, (2, 2), True),
    (2, 3, 4, 8, 9, 1, 1, (0, 0), True),
    (1, 1, 2, 2, 2, 3, 3, (1, 1), True),
    (1, 3, 9, 5, 4, 3, 3, (0, 0), False),
]


def _data(shape, dtype, seed, special=False):
    N, C, K, H, W, kH, kW, pad, bias = shape
    rng = np.random.default_rng(seed)
    if special:
        # quantized values: exact ties inside windows, windows whose max is 0 or negative, -0
        x = (rng.integers(-2, 3, (N, C, H, W)) * 0.5).astype(dtype)
        w = rng.integers(-1, 2, (K, C, kH, kW)).astype(dtype)
        x.reshape(-1)[::7] = -0.0
        x.reshape(-1)[3::97] = np.nan
        x.reshape(-1)[5::89] = np.inf
        x.reshape(-1)[11::83] = -np.inf
    else:
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((K, C, kH, kW)).astype(dtype)
    b = (rng.integers(-1, 2, K) * 0.5).astype(dtype) if bias else None
    return x, w, b


def _three_kernels(x, w, b, pad, relu):
    y = core.conv2d_forward(x, w, b, padding=pad)
    pooled, argmax = core.maxpool2d_forward(y, (2, 2), (2, 2))
    return (core.activation_forward(pooled, "relu") if relu else pooled), argmax


def _assert_same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no_relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[1]}->{s[2]}@{s[3]}x{s[4]}k{s[5]}{s[6]}" for s in SHAPES])
def test_bits_of_the_three_kernels(shape, dtype, relu, simd, threads):
    for special in (False, True):
        x, w, b = _data(shape, dtype, seed=sum(shape[:7]), special=special)
        got = core._conv2d_maxpool(x, w, b, padding=shape[7], relu=relu)
        if simd == "scalar":
            assert got is None  # the scalar GEMM does not fuse its multiply-adds: three kernels there
            continue
        assert got is not None
        pooled, argmax = got
        want_pooled, want_argmax = _three_kernels(x, w, b, shape[7], relu)
        _assert_same_bits(pooled, want_pooled)
        np.testing.assert_array_equal(argmax, want_argmax)
        if special and shape[0] * shape[3] * shape[4] > 1000:  # the data reach the cases it argues about
            assert np.isnan(pooled).any() and np.isposinf(pooled).any() and (pooled == 0).any()
            windows = core.conv2d_forward(x, w, b, padding=shape[7])[:, :, :pooled.shape[2] * 2, :pooled.shape[3] * 2]
            windows = windows.reshape(*pooled.shape[:2], pooled.shape[2], 2, pooled.shape[3], 2)
            top = windows.max(axis=(3, 5), keepdims=True)
            assert ((windows == top).sum(axis=(3, 5)) > 1).any()  # ties: the first maximum wins


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES[:5])
def test_matches_the_float64_reference(shape, dtype):
    x, w, b = _data(shape, dtype, seed=7)
    got = core._conv2d_maxpool(x, w, b, padding=shape[7], relu=True)
    if not FUSED_LEVELS:
        pytest.skip("this CPU has neither AVX2 nor AVX-512: the fused kernel does not run here")
    y = ref.conv2d_forward(x, w, b, padding=shape[7])
    pooled, argmax = ref.maxpool2d_forward(y, (2, 2), (2, 2))
    t = tol(dtype, scale=np.abs(y).max())  # sums of 9-27 terms of this size may cancel
    assert_close(got[0], ref.relu(pooled), dtype, "conv + max-pool + ReLU", rtol=t.rtol, atol=t.atol)
    if dtype == np.float64:  # float32's rounding may pick another winner among near-ties
        np.testing.assert_array_equal(got[1], argmax)


def test_non_contiguous_input_is_refused_as_conv2d_forward_refuses_it():
    x, w, b = _data(SHAPES[2], np.float32, seed=3)
    wide = np.zeros(x.shape[:3] + (2 * x.shape[3],), np.float32)
    view = wide[..., ::2]
    for fn in (core._conv2d_maxpool, core.conv2d_forward):
        with pytest.raises(ValueError, match="x must be C-contiguous"):
            fn(view, w, b, padding=(1, 1))


def test_shapes_it_leaves_to_the_three_kernels():
    """None (the plan then runs conv, pooling and ReLU apart) past 27 taps, under a forced
    Winograd algorithm, and for a conv output smaller than one 2x2 window."""
    if not FUSED_LEVELS:
        pytest.skip("this CPU has neither AVX2 nor AVX-512: the fused kernel does not run here")
    f = np.float32
    assert core._conv2d_maxpool(np.zeros((1, 4, 8, 8), f), np.zeros((8, 4, 3, 3), f), padding=(1, 1)) is None
    assert core._conv2d_maxpool(np.zeros((1, 3, 8, 8), f), np.zeros((8, 3, 3, 3), f), padding=(1, 1)) is not None
    core.set_conv_algo("winograd4")
    assert core._conv2d_maxpool(np.zeros((1, 3, 8, 8), f), np.zeros((8, 3, 3, 3), f), padding=(1, 1)) is None
    core.set_conv_algo("im2col")
    assert core._conv2d_maxpool(np.zeros((1, 3, 8, 8), f), np.zeros((8, 3, 3, 3), f), padding=(1, 1)) is not None
    core.set_conv_algo("auto")
    assert core._conv2d_maxpool(np.zeros((1, 1, 3, 1), f), np.zeros((2, 1, 3, 3), f), padding=(1, 1)) is None


def test_bad_arguments_name_themselves():
    f = np.float32
    x, w = np.zeros((1, 1, 6, 6), f), np.zeros((2, 1, 3, 3), f)
    with pytest.raises(ValueError, match="bias"):
        core._conv2d_maxpool(x, w, np.zeros(3, f))
    with pytest.raises(TypeError, match="weight"):
        core._conv2d_maxpool(x, w.astype(np.float64))
    with pytest.raises(ValueError, match="padding"):
        core._conv2d_maxpool(x, w, padding=(-1, 0))
