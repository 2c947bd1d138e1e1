"""Batch normalisation and dropout kernels against NumPy and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from natverk import _core
import reference as ref
from reference import central_difference_inplace

TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


def _axes(x):
    return ((0,), (1, -1)) if x.ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


def bn_reference(x, gamma, beta, eps=1e-5):
    axes, shape = _axes(x)
    mu = x.mean(axis=axes)
    var = x.var(axis=axes)
    x_hat = (x - mu.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return gamma.reshape(shape) * x_hat + beta.reshape(shape), mu, var


SHAPES = [(1, 1, 1, 2), (5, 3), (7, 4, 5, 6), (2, 3, 1, 9), (33, 17)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_training_forward_and_running_stats(dtype, shape):
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    gamma = rng.standard_normal(C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    rm = rng.standard_normal(C).astype(dtype)
    rv = rng.random(C).astype(dtype) + 0.5
    rm0, rv0 = rm.astype(np.float64), rv.astype(np.float64)
    y, mean, invstd = _core.batchnorm_forward(x, gamma, beta, rm, rv, True, 1e-5, 0.2)
    ref, mu, var = bn_reference(x.astype(np.float64), gamma.astype(np.float64), beta.astype(np.float64))
    M = x.size // C
    np.testing.assert_allclose(y, ref, **TOL[dtype])
    np.testing.assert_allclose(mean, mu, **TOL[dtype])
    np.testing.assert_allclose(invstd, 1 / np.sqrt(var + 1e-5), **TOL[dtype])
    unbiased = var * M / (M - 1) if M > 1 else var
    np.testing.assert_allclose(rm, 0.8 * rm0 + 0.2 * mu, **TOL[dtype])
    np.testing.assert_allclose(rv, 0.8 * rv0 + 0.2 * unbiased, **TOL[dtype])


@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_eval_uses_running_statistics(shape):
    rng = np.random.default_rng(1)
    C = shape[1]
    x = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.random(C) + 0.1
    rm_before, rv_before = rm.copy(), rv.copy()
    y, _, _ = _core.batchnorm_forward(x, gamma, beta, rm, rv, False)
    _, shp = _axes(x)
    ref = (x - rm.reshape(shp)) / np.sqrt(rv.reshape(shp) + 1e-5) * gamma.reshape(shp) + beta.reshape(shp)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rm, rm_before)  # evaluation never updates them
    np.testing.assert_array_equal(rv, rv_before)




# Rows of S = H * W values per (n, c) below and from the length at which the backward pass
# takes its two channel sums in one pass (kFuseRow = 128, cpp/batchnorm/batchnorm.cpp): 63,
# 128, 143 and 1056, ragged tails (S not a multiple of the 8 partial sums) included.
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(3, 4, 9, 7), (2, 3, 8, 16), (2, 3, 11, 13), (1, 2, 32, 33)])
def test_batchnorm_backward_matches_the_reference_on_short_and_long_rows(dtype, training, shape):
    rng = np.random.default_rng(shape[2] * 100 + shape[3])
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma = rng.standard_normal(C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    _, mean, invstd = _core.batchnorm_forward(x, gamma, beta, np.zeros(C, dtype), np.ones(C, dtype), True)
    got = _core.batchnorm_backward(dy, x, mean, invstd, gamma, training)
    want = ref.batchnorm_backward(dy, x, mean, invstd, gamma, training)
    for name, g, w in zip(("dx", "dgamma", "dbeta"), got, want):
        np.testing.assert_allclose(g, w, **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_every_simd_level_gives_the_scalar_levels_bits(dtype, simd):
    """Each SIMD level runs its own copy of the channel loops (batchnorm.cpp) with the same
    eight partial sums and no fused multiply-adds: forward (training and evaluation), running
    statistics and backward must all have the scalar level's bits, on short, long and
    ragged rows."""
    def run(level):
        core_level = _core.simd_level()
        _core.set_simd_level(level)
        try:
            rng = np.random.default_rng(77)
            out = []
            for shape in [(3, 4, 9, 7), (2, 3, 11, 13), (1, 2, 32, 33), (33, 17)]:
                C = shape[1]
                x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
                dy = rng.standard_normal(shape).astype(dtype)
                gamma, beta = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
                rm, rv = rng.standard_normal(C).astype(dtype), rng.random(C).astype(dtype) + 0.5
                y, mean, invstd = _core.batchnorm_forward(x, gamma, beta, rm, rv, True, 1e-5, 0.2)
                out += [y, mean, invstd, rm, rv,
                        _core.batchnorm_forward(x, gamma, beta, rm, rv, False)[0]]
                for training in (True, False):
                    out += list(_core.batchnorm_backward(dy, x, mean, invstd, gamma, training))
            return out
        finally:
            _core.set_simd_level(core_level)

    for a, b in zip(run(simd), run("scalar")):
        np.testing.assert_array_equal(a, b, err_msg=f"batch norm at SIMD level {simd}")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 4), (1, 2, 2, 3)])
def test_batchnorm_backward_matches_finite_differences(training, shape):
    rng = np.random.default_rng(2)
    C = shape[1]
    x = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
    G = rng.standard_normal(shape)

    def loss():
        return float(np.sum(G * _core.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), training)[0]))

    _, mean, invstd = _core.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), training)
    dx, dgamma, dbeta = _core.batchnorm_backward(G, x, mean, invstd, gamma, training)
    for name, arr, grad in (("x", x, dx), ("gamma", gamma, dgamma), ("beta", beta, dbeta)):
        np.testing.assert_allclose(grad, central_difference_inplace(loss, arr), rtol=1e-6, atol=1e-7, err_msg=name)


def test_batchnorm_bad_input():
    x = np.zeros((4, 3))
    ok = (np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="gamma must have shape"):
        _core.batchnorm_forward(x, np.ones(2), *ok[1:], True)
    with pytest.raises(ValueError, match="2-D .* or 4-D"):
        _core.batchnorm_forward(np.zeros((2, 3, 4)), *ok, True)
    with pytest.raises(TypeError):
        _core.batchnorm_forward(x.astype(np.float32), *ok, True)
    with pytest.raises(ValueError, match="empty"):
        _core.batchnorm_forward(np.zeros((0, 3)), *ok, True)
    with pytest.raises(ValueError, match="momentum"):
        _core.batchnorm_forward(x, *ok, True, 1e-5, 1.5)
    with pytest.raises(ValueError, match="eps"):
        _core.batchnorm_forward(x, *ok, True, 0.0)
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean is read-only"):
        _core.batchnorm_forward(x, ok[0], ok[1], ro, ok[3], True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_dropout_forward_backward(dtype, p):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((301, 257)).astype(dtype)
    y, mask = _core.dropout_forward(x, p, 1234)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    keep = mask.astype(bool)
    np.testing.assert_allclose(y[keep], x[keep] / (1 - p), **TOL[dtype])
    assert not y[~keep].any()
    # the kept fraction is 1 - p within 5 standard deviations
    n = x.size
    assert abs(keep.mean() - (1 - p)) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = _core.dropout_backward(dy, mask, p)
    np.testing.assert_allclose(dx, np.where(keep, dy / (1 - p), 0), **TOL[dtype])


def test_dropout_reproducible_and_thread_independent(threads):
    x = np.ones((513, 129))
    masks = []
    for t in (1, 2, 1):
        _core.set_num_threads(t)
        masks.append(_core.dropout_forward(x, 0.5, 7)[1])
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], masks[2])
    other = _core.dropout_forward(x, 0.5, 8)[1]
    assert (other != masks[0]).mean() > 0.4  # another seed, another mask
    # the mask does not depend on the dtype either
    np.testing.assert_array_equal(_core.dropout_forward(x.astype(np.float32), 0.5, 7)[1], masks[0])


def test_dropout_bad_input():
    with pytest.raises(ValueError, match="p must be in"):
        _core.dropout_forward(np.ones(3), 1.0, 0)
    with pytest.raises(ValueError, match="p must be in"):
        _core.dropout_forward(np.ones(3), -0.1, 0)
    with pytest.raises(TypeError, match="mask must be the uint8"):
        _core.dropout_backward(np.ones(3), np.ones(3), 0.5)
    with pytest.raises(ValueError, match="same shape"):
        _core.dropout_backward(np.ones(3), np.ones(4, dtype=np.uint8), 0.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1,), (5, 3), (70001,), (2, 3, 4, 5)])
def test_residual_add(dtype, shape):
    rng = np.random.default_rng(5)
    a = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(_core.add(a, b), a + b)  # one rounding, exactly NumPy's


def test_residual_add_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        _core.add(np.ones(3), np.ones(4))
    with pytest.raises(TypeError):
        _core.add(np.ones(3), np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.add(np.ones(6)[::2], np.ones(3))
