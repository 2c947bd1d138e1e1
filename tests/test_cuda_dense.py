"""The CUDA dense layer (dense.cu, on the GEMM engine) against its CPU twin (issue 15)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cuda_twin import check_twin, requires_gpu
from test_cuda_gemm import _gemm_scale

pytestmark = requires_gpu
DTYPES = [np.float64, np.float32]


DENSE_SHAPES = [(1, 3, 2), (64, 784, 500), (33, 17, 5), (130, 129, 1), (300, 2, 250)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("m,n_in,n_out", DENSE_SHAPES)
def test_dense_forward_matches_cpu(m, n_in, n_out, activation, dtype):
    rng = np.random.default_rng(m + n_in + n_out)
    X = rng.uniform(-1, 1, (m, n_in)).astype(dtype)
    W = (rng.uniform(-1, 1, (n_in, n_out)) / math.sqrt(n_in)).astype(dtype)
    b = rng.uniform(-1, 1, n_out).astype(dtype)
    check_twin("dense_forward", X, W, b, activation, dtype=dtype, op="gemm",
               scale=_gemm_scale(dtype, n_in, 1, 1 / math.sqrt(n_in)) + 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lambda_", [0.0, 0.01])
@pytest.mark.parametrize("m,n_in,n_out", DENSE_SHAPES)
def test_dense_backward_matches_cpu(m, n_in, n_out, lambda_, dtype):
    rng = np.random.default_rng(m * 3 + n_in + n_out)
    dZ = rng.uniform(-1, 1, (m, n_out)).astype(dtype)
    X = rng.uniform(-1, 1, (m, n_in)).astype(dtype)
    W = rng.uniform(-1, 1, (n_in, n_out)).astype(dtype)
    check_twin("dense_backward", dZ, X, W, lambda_, dtype=dtype, op="gemm",
               scale=_gemm_scale(dtype, max(m, n_out), 1, 1) + lambda_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_without_dx_and_bias_helpers(dtype):
    rng = np.random.default_rng(3)
    dZ = rng.uniform(-1, 1, (1000, 7)).astype(dtype)  # several row chunks in bias_grad
    X = rng.uniform(-1, 1, (1000, 5)).astype(dtype)
    W = rng.uniform(-1, 1, (5, 7)).astype(dtype)
    check_twin("dense_backward", dZ, X, W, 0.0, False, dtype=dtype, op="gemm", scale=_gemm_scale(dtype, 1000, 1, 1))
    check_twin("bias_grad", dZ, dtype=dtype, op="double_accumulated")
    Z = rng.uniform(-1, 1, (9, 7)).astype(dtype)
    check_twin("bias_add", Z, W[0], dtype=dtype, inplace=(0,))
