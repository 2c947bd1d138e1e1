"""The CUDA twin of inverted dropout (cpp/dropout/dropout.cu) against the CPU kernel.

The mask must be bit for bit the CPU's for the same seed: both compute the counter-based
SplitMix64 uniform of cpp/dropout/counter_rng.h and compare it with p in double. Masks are
compared exactly for several seeds (0, small, beyond 2^32, 2^64 - 1) and p values (0, usual
ones, values a hair below 1), odd and empty sizes, both dtypes; y and dx to the dtype's
tolerance (they too should be identical: one rounded multiply by the same scale).
"""

from __future__ import annotations

import numpy as np
import pytest

from cuda_twin import check_twin, compare, requires_gpu, to_dev
from natverk import _core
from natverk import cuda as nvcuda

pytestmark = requires_gpu

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
SEEDS = [0, 1, 42, 2**32 + 7, 2**63 + 12345, 2**64 - 1]
PS = [0.0, 1e-9, 0.1, 0.5, 0.9, 0.999, 1 - 2**-40, float(np.nextafter(1.0, 0.0))]
SIZES = [(0,), (1,), (7,), (1001,), (3, 5, 17), (2, 0, 3), (64, 257), ((1 << 17) + 3,)]
SIZE_IDS = ["empty", "one", "7", "1001", "3x5x17", "2x0x3", "64x257", "131075"]


def _x(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("seed", SEEDS)
def test_forward_mask_bit_identical(seed, p, dtype):
    x = _x(4099, dtype, seed % 1000)
    y_cpu, m_cpu = check_twin("dropout_forward", x, dtype=dtype, p=p, seed=seed)
    y_gpu, m_gpu = nvcuda.ops.dropout_forward(to_dev(x), p=p, seed=seed)
    m_gpu = m_gpu.numpy()
    assert m_gpu.dtype == np.uint8 and m_gpu.shape == x.shape
    np.testing.assert_array_equal(m_gpu, m_cpu)
    if p == 0.0:
        assert m_gpu.all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
def test_forward_backward_sizes(shape, dtype):
    x = _x(shape, dtype, 1)
    for seed, p in [(3, 0.5), (2**40 + 1, 0.25), (99, 0.0), (5, 0.999)]:
        _, mask = check_twin("dropout_forward", x, dtype=dtype, p=p, seed=seed)
        dy = _x(shape, dtype, 2)
        # Backward from the CPU's mask; then from the GPU's own mask: the same dx.
        check_twin("dropout_backward", dy, mask, dtype=dtype, p=p)
        _, m_gpu = nvcuda.ops.dropout_forward(to_dev(x), p, seed)
        dx_gpu = nvcuda.ops.dropout_backward(to_dev(dy), m_gpu, p).numpy()
        compare(dx_gpu, _core.dropout_backward(dy, mask, p), dtype, f"dropout_backward p={p} seed={seed}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_special_values(dtype):
    """NaN and inf in x: kept ones are scaled (NaN stays NaN), dropped ones are exactly 0,
    as on the CPU."""
    x = _x(515, dtype, 4)
    x[::3] = np.nan
    x[1::7] = np.inf
    x[2::11] = -np.inf
    check_twin("dropout_forward", x, dtype=dtype, p=0.4, seed=17)
    dy = x.copy()
    _, mask = _core.dropout_forward(x, 0.4, 17)
    check_twin("dropout_backward", dy, mask, dtype=dtype, p=0.4)


def test_deterministic_and_seed_dependent():
    x = to_dev(np.ones(10007))
    _, m1 = nvcuda.ops.dropout_forward(x, 0.5, 123)
    _, m2 = nvcuda.ops.dropout_forward(x, 0.5, 123)
    _, m3 = nvcuda.ops.dropout_forward(x, 0.5, 124)
    m1, m2, m3 = m1.numpy(), m2.numpy(), m3.numpy()
    np.testing.assert_array_equal(m1, m2)
    assert (m1 != m3).any()
    # The mask depends on the element index only, not on the array's length.
    _, m_short = nvcuda.ops.dropout_forward(to_dev(np.ones(1001)), 0.5, 123)
    np.testing.assert_array_equal(m_short.numpy(), m1[:1001])


def test_return_structure():
    y, mask = nvcuda.ops.dropout_forward(to_dev(np.ones((4, 5), np.float32)), 0.5, 0)
    assert isinstance(y, nvcuda.ops.Tensor) and isinstance(mask, nvcuda.ops.Tensor)
    assert y.dtype == np.float32 and mask.dtype == np.uint8 and y.shape == mask.shape == (4, 5)
    dx = nvcuda.ops.dropout_backward(y, mask, 0.5)
    assert isinstance(dx, nvcuda.ops.Tensor) and dx.dtype == np.float32 and dx.shape == (4, 5)


# ---- argument errors: the CPU binding's exception types --------------------------------------

def _both_raise(name: str, args: list, kwargs: dict, exc) -> None:
    with pytest.raises(exc):
        getattr(_core, name)(*args, **kwargs)
    with pytest.raises(exc):
        getattr(nvcuda.ops, name)(*[to_dev(a) for a in args], **kwargs)


def test_errors_match_cpu():
    x = np.ones(8)
    mask = np.ones(8, np.uint8)
    _both_raise("dropout_forward", [x], dict(p=1.0, seed=0), ValueError)
    _both_raise("dropout_forward", [x], dict(p=-0.1, seed=0), ValueError)
    _both_raise("dropout_forward", [x], dict(p=float("nan"), seed=0), ValueError)
    _both_raise("dropout_forward", [x], dict(p=0.5, seed=-1), ValueError)
    _both_raise("dropout_forward", [x], dict(p=0.5, seed=2**64), ValueError)
    _both_raise("dropout_forward", [x], dict(p=0.5, seed=0.5), TypeError)
    _both_raise("dropout_forward", [x.astype(np.int64)], dict(p=0.5, seed=0), TypeError)
    _both_raise("dropout_backward", [x, mask.astype(np.float64)], dict(p=0.5), TypeError)
    _both_raise("dropout_backward", [x, np.ones(7, np.uint8)], dict(p=0.5), ValueError)
    _both_raise("dropout_backward", [x, mask], dict(p=1.0), ValueError)
    with pytest.raises(TypeError, match="x must be a natverk.cuda.Tensor"):
        nvcuda.ops.dropout_forward(x, 0.5, 0)
    with pytest.raises(TypeError, match="mask must be a natverk.cuda.Tensor"):
        nvcuda.ops.dropout_backward(to_dev(x), mask, 0.5)
