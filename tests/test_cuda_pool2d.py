"""The CUDA twins of the pooling kernels (cpp/pool2d/pool2d.cu) against their CPU kernels
(cpp/pool2d/pool2d.cpp, whose own reference tests are tests/test_pool2d.py).

Same geometries and edge cases as test_pool2d.py (kernel 1, the classic 2x2/2, odd sizes with a
ragged edge, padding, overlapping windows, non-square kernels and strides, batch 1, a single
element, height 1) plus GPU-sized ones (more outputs than one block, a huge mostly padded
kernel). The max-pool arg-max must equal the CPU's exactly (first maximum in row-major window
order, padding never wins, NaN wins); the max-pool backward adds the same values in the same
order as the CPU, so it must be bit-identical, and it must be deterministic run to run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from cuda_twin import check_twin, requires_gpu, to_dev, to_host
from natverk import _core
from natverk import cuda as nvcuda

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


@dataclass(frozen=True)
class Pool:
    N: int
    C: int
    H: int
    W: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def out_hw(self) -> tuple[int, int]:
        (kH, kW), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (self.H + 2 * ph - kH) // sh + 1, (self.W + 2 * pw - kW) // sw + 1

    @property
    def args(self) -> tuple:
        return self.kernel, self.stride, self.padding

    @property
    def id(self) -> str:
        (kH, kW), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return f"N{self.N}C{self.C}x{self.H}x{self.W}-k{kH}x{kW}-s{sh}x{sw}-p{ph}x{pw}"


HUGE = 2 ** 40
POOLS = [
    Pool(2, 3, 6, 7, (1, 1), (1, 1)),                 # kernel 1: identity
    Pool(2, 2, 5, 7, (1, 1), (2, 3)),                 # kernel 1, subsampling
    Pool(3, 4, 4, 4, (2, 2), (2, 2)),                 # the classic 2x2/2
    Pool(2, 3, 7, 9, (2, 2), (2, 2)),                 # odd sizes, ragged edge dropped
    Pool(2, 3, 6, 23, (2, 2), (2, 2)),                # 2x2/2, the CPU's SIMD steps + a tail
    Pool(1, 2, 28, 28, (2, 2), (2, 2)),               # 2x2/2 at MNIST size
    Pool(2, 2, 7, 9, (2, 2), (1, 1), (1, 1)),         # kernel 2, padding 1
    Pool(2, 3, 7, 8, (3, 3), (1, 1), (1, 1)),         # overlapping, stride 1
    Pool(2, 2, 9, 7, (3, 3), (2, 2), (1, 1)),         # overlapping, stride 2
    Pool(2, 2, 8, 11, (3, 3), (2, 2)),                # overlapping, no padding
    Pool(1, 3, 10, 11, (3, 3), (3, 3)),               # stride 3, batch 1
    Pool(1, 2, 7, 7, (3, 3), (3, 3), (1, 1)),         # stride 3, padding 1
    Pool(2, 2, 7, 10, (2, 3), (1, 2), (1, 1)),        # non-square kernel
    Pool(1, 1, 5, 5, (2, 3), (3, 3), (0, 1)),
    Pool(2, 3, 5, 13, (3, 3), (2, 3), (1, 0)),        # non-square stride
    Pool(1, 2, 3, 3, (3, 3), (1, 1), (1, 1)),
    Pool(2, 2, 4, 5, (3, 2), (3, 1), (1, 1)),
    Pool(1, 2, 4, 5, (4, 5), (1, 1)),                 # kernel == input: 1x1 output
    Pool(1, 1, 1, 1, (1, 1), (1, 1)),                 # a single element
    Pool(3, 1, 1, 9, (1, 3), (1, 2), (0, 1)),         # height 1
    Pool(2, 2, 9, 9, (5, 5), (1, 1), (2, 2)),         # 25 overlapping windows per position
    Pool(8, 16, 33, 35, (3, 3), (2, 2), (1, 1)),      # many blocks: the grid-stride loops
    Pool(4, 32, 32, 32, (2, 2), (2, 2)),              # a VGG-style layer
    Pool(2, 3, 5, 7, (HUGE, HUGE + 1), (1, 3), (HUGE // 2, HUGE // 2)),  # huge, mostly padded windows
]
POOL_IDS = [p.id for p in POOLS]
OVERLAPPING = [p for p in POOLS if p.stride[0] < p.kernel[0] or p.stride[1] < p.kernel[1]]
GLOBAL_SHAPES = [(2, 3, 5, 7), (1, 1, 1, 1), (1, 4, 3, 3), (3, 2, 8, 1), (2, 5, 13, 11), (1, 2, 1, 17),
                 (16, 64, 7, 7), (2, 3, 33, 31)]
GLOBAL_IDS = ["x".join(map(str, s)) for s in GLOBAL_SHAPES]


def _x(shape, seed: int, kind: str = "uniform", dtype=np.float64):
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if kind == "uniform":
        x = rng.uniform(-1.0, 1.0, size=shape)
    elif kind == "distinct":      # all values distinct
        x = rng.permutation(size).reshape(shape) * (2.0 / size) - 1.0
    elif kind == "negative":      # all below zero: a zero padding would win a max
        x = rng.uniform(-3.0, -1.0, size=shape)
    elif kind == "ties":          # many equal values: the first-maximum rule
        x = rng.integers(0, 3, size=shape).astype(np.float64)
    elif kind == "nan":           # NaNs scattered among numbers: a NaN wins its window
        x = rng.uniform(-1.0, 1.0, size=shape)
        x[rng.random(shape) < 0.15] = np.nan
    else:
        raise ValueError(kind)
    return np.ascontiguousarray(x, dtype=dtype)


def _dy(p: Pool, seed: int, dtype):
    return np.random.default_rng(seed + 1).uniform(-1.0, 1.0, size=(p.N, p.C, *p.out_hw)).astype(dtype)


# ---------------------------------------------------------------------------
# max pooling


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", ["uniform", "negative", "ties", "distinct", "nan"])
@pytest.mark.parametrize("p", POOLS, ids=POOL_IDS)
def test_maxpool_forward_backward_match_cpu(p, kind, dtype):
    seed = 100 + POOLS.index(p)
    x = _x(p.shape, seed, kind, dtype)
    y, am = check_twin("maxpool2d_forward", x, *p.args, dtype=dtype)  # argmax compared exactly
    if kind == "negative":
        assert (y < 0).all(), "a padded position won the max"
    dy = _dy(p, seed, dtype)
    # The same additions in the same order as the CPU: bit for bit.
    check_twin("maxpool2d_backward", dy, am, x, *p.args, dtype=dtype, exact=True)


@requires_gpu
@pytest.mark.parametrize("p", OVERLAPPING, ids=[q.id for q in OVERLAPPING])
def test_maxpool_backward_overlapping_windows_add_up(p):
    # A constant plane: each window's arg-max is its first in-bounds element, so with
    # stride < kernel several windows route to the same position.
    x = np.zeros(p.shape)
    _, am = check_twin("maxpool2d_forward", x, *p.args, dtype=np.float64)
    dy = np.ones((p.N, p.C, *p.out_hw))
    dx = check_twin("maxpool2d_backward", dy, am, x, *p.args, dtype=np.float64, exact=True)
    assert dx.sum() == dy.size, "every dy must be routed somewhere exactly once"


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_maxpool_backward_is_deterministic(dtype):
    p = Pool(8, 16, 33, 35, (3, 3), (1, 1), (1, 1))
    x = _x(p.shape, 7, "ties", dtype)       # ties: many windows share a winner
    dy = _dy(p, 7, dtype)
    ops = nvcuda.ops
    xd, dyd = to_dev(x), to_dev(dy)
    _, amd = ops.maxpool2d_forward(xd, *p.args)
    first = to_host(ops.maxpool2d_backward(dyd, amd, xd, *p.args))
    for _ in range(3):
        again = to_host(ops.maxpool2d_backward(dyd, amd, xd, *p.args))
        assert np.array_equal(first.view(np.uint8), again.view(np.uint8)), "maxpool dx changed between runs"


# ---------------------------------------------------------------------------
# average pooling


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", POOLS, ids=POOL_IDS)
def test_avgpool_forward_backward_match_cpu(p, dtype):
    seed = 300 + POOLS.index(p)
    x = _x(p.shape, seed, "uniform", dtype)
    check_twin("avgpool2d_forward", x, *p.args, dtype=dtype)
    check_twin("avgpool2d_backward", _dy(p, seed, dtype), x, *p.args, dtype=dtype)


@requires_gpu
def test_avgpool_counts_zero_padding_in_the_divisor():
    y = check_twin("avgpool2d_forward", np.ones((1, 1, 2, 2)), (2, 2), (2, 2), (1, 1), dtype=np.float64)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 0.25))


@requires_gpu
def test_avgpool_default_padding():
    x = _x((2, 3, 6, 7), 5)
    check_twin("avgpool2d_forward", x, (2, 2), (2, 2), dtype=np.float64)
    check_twin("avgpool2d_backward", _dy(Pool(2, 3, 6, 7, (2, 2), (2, 2)), 5, np.float64), x,
               kernel_size=(2, 2), stride=(2, 2), dtype=np.float64)


# ---------------------------------------------------------------------------
# global average pooling


@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=GLOBAL_IDS)
def test_global_avgpool_match_cpu(shape, dtype):
    seed = 400 + GLOBAL_SHAPES.index(shape)
    x = _x(shape, seed, "uniform", dtype)
    y = check_twin("global_avgpool_forward", x, dtype=dtype)
    assert y.shape == shape[:2]
    dy = np.random.default_rng(seed + 1).uniform(-1, 1, size=shape[:2]).astype(dtype)
    dx = check_twin("global_avgpool_backward", dy, x, dtype=dtype)
    assert dx.shape == shape


# ---------------------------------------------------------------------------
# argument errors: the CPU's exception types and messages


@requires_gpu
def test_argument_errors_match_cpu():
    ops = nvcuda.ops
    x = np.zeros((1, 2, 5, 5))
    xd = to_dev(x)
    with pytest.raises(TypeError, match="x must be a natverk.cuda.Tensor"):
        ops.maxpool2d_forward(x, (2, 2), (2, 2))
    for bad, match in [(dict(kernel_size=(2, 2), stride=(2, 2), padding=(2, 0)), "padding must be between"),
                       (dict(kernel_size=(0, 2), stride=(2, 2)), "kernel_size must be >= 1"),
                       (dict(kernel_size=(2, 2), stride=(0, 1)), "stride must be >= 1")]:
        for fn in (ops.maxpool2d_forward, ops.avgpool2d_forward):
            with pytest.raises(ValueError, match=match):
                fn(xd, **bad)
        with pytest.raises(ValueError, match=match):
            _core.maxpool2d_forward(x, **bad)
    with pytest.raises(TypeError, match="stride must be a pair"):
        ops.maxpool2d_forward(xd, (2, 2), None)
    with pytest.raises(ValueError, match="x must be 4-D"):
        ops.maxpool2d_forward(to_dev(np.zeros((2, 5, 5))), (2, 2), (2, 2))
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.avgpool2d_forward(to_dev(np.zeros((1, 1, 4, 4), np.int64)), (2, 2), (2, 2))
    y, am = ops.maxpool2d_forward(xd, (2, 2), (2, 2))
    with pytest.raises(ValueError, match=r"dy must have shape \(1, 2, 2, 2\)"):
        ops.maxpool2d_backward(to_dev(np.zeros((1, 2, 3, 2))), am, xd, (2, 2), (2, 2))
    with pytest.raises(TypeError, match="argmax must be the int64"):
        ops.maxpool2d_backward(y, y, xd, (2, 2), (2, 2))
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.avgpool2d_backward(to_dev(np.zeros((1, 2, 3, 2))), xd, (2, 2), (2, 2))
    with pytest.raises(ValueError, match="x is empty"):
        ops.global_avgpool_forward(to_dev(np.zeros((0, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"dy must have shape \(N, C\)"):
        ops.global_avgpool_backward(to_dev(np.zeros((1, 3))), xd)


@requires_gpu
def test_maxpool_backward_rejects_a_bad_argmax():
    ops = nvcuda.ops
    x = _x((1, 2, 5, 5), 9)
    xd = to_dev(x)
    y, am = _core.maxpool2d_forward(x, (2, 2), (2, 2))
    dy = np.ones_like(y)
    for value in (25, -1, 2 ** 62):          # outside the plane: both backends refuse
        bad = am.copy()
        bad[0, 1, 1, 0] = value
        with pytest.raises(ValueError, match="argmax holds an index outside the input plane"):
            _core.maxpool2d_backward(dy, bad, x, (2, 2), (2, 2))
        with pytest.raises(ValueError, match="argmax holds an index outside the input plane"):
            ops.maxpool2d_backward(to_dev(dy), to_dev(bad), xd, (2, 2), (2, 2))
    # Inside the plane but outside its own window: the GPU gathers over the windows containing
    # each position, so it cannot route such an index; it refuses it (the CPU scatters it).
    bad = am.copy()
    bad[0, 0, 0, 0] = 24
    with pytest.raises(ValueError, match="outside its pooling window"):
        ops.maxpool2d_backward(to_dev(dy), to_dev(bad), xd, (2, 2), (2, 2))
