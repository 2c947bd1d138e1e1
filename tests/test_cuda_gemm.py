"""The CUDA GEMM against its CPU twin (issue 15).

Every shape runs through ``natverk._core.<name>`` and ``natverk._core.cuda.<name>`` on the same
inputs (tests/cuda_twin.py). The shapes cover one tile and many, ragged edges, all four
transpose forms, K = 0, and products thin enough for the engine's split-K path (few C tiles,
long K). The dense layer and the convolution run on the same engine (test_cuda_dense.py,
test_cuda_conv2d.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from cuda_twin import check_twin, requires_gpu, to_dev
from natverk import cuda as nvcuda
from tolerances import gemm_atol, tol

pytestmark = requires_gpu
DTYPES = [np.float64, np.float32]

GEMM_SHAPES = [  # (m, n, k)
    (1, 1, 1), (3, 5, 7), (64, 64, 64), (129, 130, 131), (7, 300, 9), (300, 7, 9),
    (64, 64, 4096),       # 1 tile, long K: split-K
    (33, 257, 2000),      # ragged tiles, split-K with a short last range
    (5, 6, 0),            # K = 0: C = beta C
]


def _gemm_scale(dtype, k, amax, bmax, alpha=1.0, beta=0.0, cmax=0.0):
    """The gemm_atol of tests/tolerances.py as a multiple of the gemm row's atol."""
    return gemm_atol(dtype, k, amax, bmax, alpha, beta, cmax) / tol(dtype, "gemm").atol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
def test_gemm_matches_cpu(m, n, k, trans_a, trans_b, dtype):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    A = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(dtype)
    check_twin("gemm", A, B, dtype=dtype, op="gemm", scale=_gemm_scale(dtype, k, 1, 1),
               trans_a=trans_a, trans_b=trans_b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25), (0.0, 1.0)])
def test_gemm_alpha_beta_in_place(alpha, beta, dtype):
    rng = np.random.default_rng(7)
    A = rng.uniform(-1, 1, (37, 53)).astype(dtype)
    B = rng.uniform(-1, 1, (53, 41)).astype(dtype)
    C = rng.uniform(-1, 1, (37, 41)).astype(dtype)
    check_twin("gemm", A, B, C, alpha, beta, dtype=dtype, inplace=(2,), op="gemm",
               scale=_gemm_scale(dtype, 53, 1, 1, alpha, beta, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_beta_zero_ignores_nan_in_c_and_nan_in_a_propagates(dtype):
    A = np.ones((3, 4), dtype)
    A[1, 2] = np.nan
    B = np.ones((4, 5), dtype)
    C = np.full((3, 5), np.nan, dtype)
    out = nvcuda.ops.gemm(to_dev(A), to_dev(B), to_dev(C), 0.0, 0.0).numpy()
    assert np.isnan(out[1]).all() and (out[[0, 2]] == 0).all()


def test_gemm_argument_errors_name_the_argument():
    a = nvcuda.to_device(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="inner dimensions"):
        nvcuda.ops.gemm(a, a)
    with pytest.raises(TypeError, match="B must have the same dtype as A"):
        nvcuda.ops.gemm(a, nvcuda.to_device(np.ones((3, 2))))
    with pytest.raises(TypeError, match="A must be a natverk.cuda.Tensor"):
        nvcuda.ops.gemm(np.ones((2, 3), np.float32), a)
    with pytest.raises(ValueError, match="share memory"):
        nvcuda.ops.gemm(a, nvcuda.to_device(np.ones((3, 3), np.float32)), a, beta=1.0)
