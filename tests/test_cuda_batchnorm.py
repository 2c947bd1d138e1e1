"""The CUDA twins of the batch-normalisation kernels (cpp/batchnorm/batchnorm.cu) against their
CPU kernels (cpp/batchnorm/batchnorm.cpp, whose reference tests are in test_batchnorm_dropout.py).

Shapes as the CPU tests (2-D (N, F) and 4-D (N, C, H, W), batch 1, a single value per channel)
plus GPU-sized ones: more values per channel than a block has threads, S below and above the
block size (the two ways a thread walks its channel), and more channels than a few blocks.
Training updates running_mean / running_var in place on both backends, and they must agree;
evaluation leaves them alone. Statistics are accumulated in double on both sides, in a
different order, so the comparisons use the usual 1e-12 / 1e-5 tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_twin import check_twin, requires_gpu, to_dev, to_host
from natverk import _core
from natverk import cuda as nvcuda

DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["f64", "f32"]

SHAPES = [
    (1, 1, 1, 2),        # one value pair
    (5, 3),              # 2-D, S = 1
    (7, 4, 5, 6),
    (2, 3, 1, 9),
    (33, 17),
    (1, 3),              # batch 1, 2-D: M = 1 (running_var keeps the biased variance)
    (1, 2, 3, 3),        # batch 1, 4-D
    (300, 5),            # M > the block size, S = 1
    (3, 7, 5, 7),        # S = 35 < block size: a thread steps across rows
    (4, 3, 17, 19),      # S = 323 > block size: a thread stays in a row
    (64, 130),           # many channels
    (9, 33, 8, 8),
]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def _inputs(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    gamma = rng.standard_normal(C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    rm = rng.standard_normal(C).astype(dtype)
    rv = (rng.random(C) + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, rm, rv, dy


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_training_forward_and_running_stats_in_place(shape, dtype):
    x, gamma, beta, rm, rv, _ = _inputs(shape, dtype, len(shape) * 100 + shape[0])
    # inplace=(3, 4): running_mean and running_var after the call, CPU array vs GPU Tensor.
    y, mean, invstd = check_twin("batchnorm_forward", x, gamma, beta, rm, rv, True, 1e-5, 0.2,
                                 dtype=dtype, inplace=(3, 4))
    assert y.shape == shape and mean.shape == invstd.shape == (shape[1],)


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_running_stats_are_updated_in_place_on_the_device(dtype):
    x, gamma, beta, rm, rv, _ = _inputs((6, 4, 3, 5), dtype, 11)
    ops = nvcuda.ops
    rmd, rvd = to_dev(rm), to_dev(rv)
    cpu_rm, cpu_rv = rm.copy(), rv.copy()
    for step in range(3):                  # the running statistics compound over steps
        xs = (x + step).astype(dtype)
        ops.batchnorm_forward(to_dev(xs), to_dev(gamma), to_dev(beta), rmd, rvd, True, 1e-5, 0.1)
        _core.batchnorm_forward(xs, gamma, beta, cpu_rm, cpu_rv, True, 1e-5, 0.1)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_host(rmd), cpu_rm, **tol)
    np.testing.assert_allclose(to_host(rvd), cpu_rv, **tol)
    assert not np.allclose(cpu_rm, rm)     # they did move


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_eval_forward_uses_running_statistics(shape, dtype):
    x, gamma, beta, rm, rv, _ = _inputs(shape, dtype, 1)
    # Evaluation never updates running_mean/running_var: both backends leave them as they were.
    _, mean, invstd = check_twin("batchnorm_forward", x, gamma, beta, rm, rv, False, dtype=dtype, inplace=(3, 4))
    np.testing.assert_array_equal(mean, rm)


@requires_gpu
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backward_matches_cpu(shape, dtype, training):
    x, gamma, beta, rm, rv, dy = _inputs(shape, dtype, 2)
    _, mean, invstd = _core.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), training)
    # dgamma / dbeta are sums over M = N*S values: scale atol by sqrt(M) for the summation order.
    M = x.size // shape[1]
    check_twin("batchnorm_backward", dy, x, mean, invstd, gamma, training, dtype=dtype, scale=np.sqrt(M))


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_forward_and_backward_are_deterministic(dtype):
    x, gamma, beta, rm, rv, dy = _inputs((32, 16, 9, 9), dtype, 3)
    ops = nvcuda.ops
    xd, gd, bd, dyd = to_dev(x), to_dev(gamma), to_dev(beta), to_dev(dy)
    runs = []
    for _ in range(3):
        y, mean, invstd = ops.batchnorm_forward(xd, gd, bd, to_dev(rm), to_dev(rv), True)
        grads = ops.batchnorm_backward(dyd, xd, mean, invstd, gd, True)
        runs.append([to_host(t).tobytes() for t in (y, mean, invstd, *grads)])
    assert runs[0] == runs[1] == runs[2], "batch norm results changed between runs"


@requires_gpu
def test_keyword_arguments_and_defaults():
    x, gamma, beta, rm, rv, dy = _inputs((4, 3, 2, 2), np.float64, 4)
    check_twin("batchnorm_forward", x, gamma, beta, rm, rv, training=True, dtype=np.float64, inplace=(3, 4))
    check_twin("batchnorm_forward", x, gamma, beta, rm, rv, training=True, eps=1e-3, momentum=0.5,
               dtype=np.float64, inplace=(3, 4))


@requires_gpu
def test_bad_input_matches_cpu():
    ops = nvcuda.ops
    x = np.zeros((4, 3))
    ok = (np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    xd, okd = to_dev(x), tuple(to_dev(a) for a in ok)
    with pytest.raises(TypeError, match="x must be a natverk.cuda.Tensor"):
        ops.batchnorm_forward(x, *okd, True)
    with pytest.raises(ValueError, match="gamma must have shape"):
        ops.batchnorm_forward(xd, to_dev(np.ones(2)), *okd[1:], True)
    with pytest.raises(ValueError, match="2-D .* or 4-D"):
        ops.batchnorm_forward(to_dev(np.zeros((2, 3, 4))), *okd, True)
    with pytest.raises(TypeError):
        ops.batchnorm_forward(to_dev(x.astype(np.float32)), *okd, True)
    with pytest.raises(ValueError, match="empty"):
        ops.batchnorm_forward(to_dev(np.zeros((0, 3))), *okd, True)
    with pytest.raises(ValueError, match="momentum"):
        ops.batchnorm_forward(xd, *okd, True, 1e-5, 1.5)
    with pytest.raises(ValueError, match="eps"):
        ops.batchnorm_forward(xd, *okd, True, 0.0)
    with pytest.raises(TypeError, match="training must be True or False"):
        ops.batchnorm_forward(xd, *okd, None)
    with pytest.raises(ValueError, match="running_var must be >= 0"):
        ops.batchnorm_forward(xd, *okd[:3], to_dev(np.array([1.0, -1.0, 1.0])), False)
    with pytest.raises(ValueError, match="running_var must be >= 0"):
        _core.batchnorm_forward(x, *ok[:3], np.array([1.0, -1.0, 1.0]), False)
    with pytest.raises(ValueError, match="dy must have the shape of x"):
        ops.batchnorm_backward(to_dev(np.zeros((4, 2))), xd, okd[2], okd[3], okd[0], True)
    with pytest.raises(TypeError, match="dy must have the same dtype as x"):
        ops.batchnorm_backward(to_dev(x.astype(np.float32)), xd, okd[2], okd[3], okd[0], True)
    with pytest.raises(ValueError, match="invstd must have shape"):
        ops.batchnorm_backward(xd, xd, okd[2], to_dev(np.ones(4)), okd[0], True)
