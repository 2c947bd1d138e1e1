"""The CUDA convolution (conv2d.cu: implicit GEMM, every geometry) against its CPU twin
(issue 15), on the geometries of tests/test_conv2d.py."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_twin import check_twin, requires_gpu, to_dev
from natverk import _core
from natverk import cuda as nvcuda
from test_conv2d import GEO_IDS, GEOMETRIES
from test_cuda_gemm import _gemm_scale

pytestmark = requires_gpu
DTYPES = [np.float64, np.float32]


@pytest.fixture
def cpu_im2col():
    """The CPU twin of the implicit GEMM is im2col + GEMM (Winograd rounds differently)."""
    before = _core.get_conv_algo()
    _core.set_conv_algo("im2col")
    yield
    _core.set_conv_algo(before)


def _conv_inputs(g, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (g.N, g.C, g.H, g.W)).astype(dtype)
    w = rng.uniform(-1, 1, (g.K, g.C // g.groups, g.kH, g.kW)).astype(dtype)
    b = rng.uniform(-1, 1, g.K).astype(dtype) if g.bias else None
    Ho, Wo = g.out_hw
    dy = rng.uniform(-1, 1, (g.N, g.K, Ho, Wo)).astype(dtype)
    return x, w, b, dy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("g", GEOMETRIES, ids=GEO_IDS)
def test_conv2d_forward_and_backward_match_cpu(g, dtype, cpu_im2col):
    x, w, b, dy = _conv_inputs(g, dtype, hash(g.id) % 2**32)
    depth = (g.C // g.groups) * g.kH * g.kW
    check_twin("conv2d_forward", x, w, b, dtype=dtype, op="gemm", scale=_gemm_scale(dtype, depth, 1, 1) + 1,
               **g.kwargs)
    Ho, Wo = g.out_hw
    check_twin("conv2d_backward", dy, x, w, dtype=dtype, op="gemm",
               scale=_gemm_scale(dtype, max(g.N * Ho * Wo, depth, g.K * g.kH * g.kW), 1, 1), **g.kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_weight_gradient_split_k(dtype, cpu_im2col):
    """A long N·Ho·Wo (4 x 32 x 32) with few weight tiles: the weight gradient runs split-K."""
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (4, 3, 32, 32)).astype(dtype)
    w = rng.uniform(-1, 1, (16, 3, 3, 3)).astype(dtype)
    dy = rng.uniform(-1, 1, (4, 16, 32, 32)).astype(dtype)
    check_twin("conv2d_backward", dy, x, w, (1, 1), (1, 1), dtype=dtype, op="gemm",
               scale=_gemm_scale(dtype, 4 * 32 * 32, 1, 1))


@pytest.mark.parametrize("need", [(True, False, False), (False, True, False), (False, False, True)])
def test_conv2d_backward_returns_only_what_is_asked(need):
    x, w, _, dy = _conv_inputs(GEOMETRIES[0], np.float64, 1)
    out = nvcuda.ops.conv2d_backward(to_dev(dy), to_dev(x), to_dev(w), need_dx=need[0], need_dw=need[1],
                                     need_db=need[2])
    assert [o is not None for o in out] == list(need)
