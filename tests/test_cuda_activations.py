"""The CUDA twins of activation_forward / activation_backward / softmax (cpp/activations/activations.cu)
against their CPU kernels, with tests/test_activations.py's shapes and edge cases: both dtypes,
empty, one element, odd sizes, sizes past one grid's worth of blocks, NaN propagation,
saturation, huge logits, each of softmax's three row mappings (8 lanes, a warp, a block per row),
determinism and the argument errors (same exception types and messages as the CPU binding).

Skipped without a CUDA build or a GPU (cuda_twin.requires_gpu)."""

from __future__ import annotations

import numpy as np
import pytest

from cuda_twin import check_twin, requires_gpu, to_dev, twin
from natverk import cuda as nvcuda
from tolerances import assert_close

pytestmark = requires_gpu

KINDS = ["relu", "sigmoid", "tanh", "linear"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
SPLIT = 1 << 15
SHAPES = [(0,), (2, 0), (1,), (7,), (3, 5), (31, 17), (4, 5, 6), (SPLIT + 3,), (300, 257), (2 * SPLIT + 1,)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def _ops():
    return nvcuda.ops


def _logits(rng, shape, scale=3.0):
    return rng.normal(0.0, scale, size=shape)


# ---------------------------------------------------------------------------
# values against the CPU kernel


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_twin(kind, shape, dtype):
    rng = np.random.default_rng(100 + len(shape) + shape[0])
    z = _logits(rng, shape).astype(dtype)
    check_twin("activation_forward", z, kind, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_backward_twin(kind, shape, dtype):
    rng = np.random.default_rng(200 + len(shape) + shape[0])
    h = _ops().activation_forward(to_dev(_logits(rng, shape).astype(dtype)), kind).numpy()
    h[..., ::5] = 0.0  # relu's exact zeros (its gradient mask is h > 0)
    dh = rng.normal(size=shape).astype(dtype)
    check_twin("activation_backward", dh, h, kind, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_does_not_touch_input(kind, dtype):
    rng = np.random.default_rng(3)
    z = _logits(rng, (5, 9)).astype(dtype)
    x = to_dev(z)
    _ops().activation_forward(x, kind)
    np.testing.assert_array_equal(x.numpy(), z)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_output_is_a_new_tensor(kind, dtype):
    x = to_dev(np.ones((3, 4), dtype=dtype))
    out = _ops().activation_forward(x, kind)
    assert isinstance(out, nvcuda.ops.Tensor)
    assert out.shape == (3, 4) and out.dtype == np.dtype(dtype)


# ---------------------------------------------------------------------------
# special values


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [9, 2 * SPLIT + 5])
@pytest.mark.parametrize("kind", KINDS)
def test_nan_propagates(kind, n, dtype):
    rng = np.random.default_rng(300)
    z = _logits(rng, (n,)).astype(dtype)
    nan_at = np.unique(np.r_[0, n // 2, n - 1, rng.integers(0, n, size=5)])
    z[nan_at] = np.nan
    cpu = check_twin("activation_forward", z, kind, dtype=dtype)  # NaN must sit where the CPU's does
    assert np.isnan(cpu[nan_at]).all()
    dh = np.ones(n, dtype=dtype)
    dh[nan_at] = np.nan
    check_twin("activation_backward", dh, np.where(np.isnan(cpu), 0.5, cpu).astype(dtype), kind, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_relu_special_values(dtype):
    z = np.array([np.nan, -np.inf, -1.0, -0.0, 0.0, 1e-30, 2.5, np.inf], dtype=dtype)
    out = _ops().activation_forward(to_dev(z), "relu").numpy()
    expected = np.array([np.nan, 0.0, 0.0, 0.0, 0.0, 1e-30, 2.5, np.inf], dtype=dtype)
    np.testing.assert_array_equal(out, expected)
    dh = np.arange(1, z.size + 1, dtype=dtype)
    h = np.array([0.0, 0.0, 3.0, 1e-30, 0.0, 7.0, 0.5, np.inf], dtype=dtype)
    np.testing.assert_array_equal(_ops().activation_backward(to_dev(dh), to_dev(h), "relu").numpy(),
                                  np.where(h > 0, dh, 0).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sigmoid_and_tanh_saturate_exactly(dtype):
    z = np.array([-np.inf, -1e30, -1000.0, -800.0, 0.0, 800.0, 1000.0, 1e30, np.inf], dtype=dtype)
    s = _ops().activation_forward(to_dev(z), "sigmoid").numpy()
    assert np.isfinite(s).all()
    np.testing.assert_array_equal(s[[0, 1, 2, 3]], 0.0)
    assert s[4] == 0.5
    np.testing.assert_array_equal(s[[5, 6, 7, 8]], 1.0)
    t = _ops().activation_forward(to_dev(z), "tanh").numpy()
    np.testing.assert_array_equal(t, np.array([-1, -1, -1, -1, 0, 1, 1, 1, 1], dtype=dtype))
    dh = to_dev(np.ones_like(z))
    saturated = [0, 1, 2, 3, 5, 6, 7, 8]
    ds = _ops().activation_backward(dh, to_dev(s), "sigmoid").numpy()
    dt = _ops().activation_backward(dh, to_dev(t), "tanh").numpy()
    np.testing.assert_array_equal(ds[saturated], 0.0)
    np.testing.assert_array_equal(dt[saturated], 0.0)
    assert ds[4] == 0.25 and dt[4] == 1.0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sigmoid_moderate_negative_is_accurate(dtype):
    z = np.array([-5.0, -20.0, -40.0, -80.0], dtype=dtype)
    cpu, gpu, _, _ = twin("activation_forward", z, "sigmoid")
    # relative accuracy where 1 - 1/(1 + e^-z) would have none
    assert_close(gpu, cpu, dtype, "sigmoid", atol=0.0, rtol=1e-5 if dtype == np.float32 else 1e-12)


# ---------------------------------------------------------------------------
# softmax: rows of <= 32 columns go to 8 lanes, <= 2048 to a warp, longer rows to a block

SOFTMAX_SHAPES = [(0, 5), (1, 1), (1, 7), (3, 5), (64, 10), (5000, 10), (9, 32), (9, 33), (7, 1031),
                  (5, 2048), (5, 2049), (3, 5000), (1, 70001), (70001, 3)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=["x".join(map(str, s)) for s in SOFTMAX_SHAPES])
def test_softmax_twin(shape, dtype):
    rng = np.random.default_rng(400 + shape[1])
    z = _logits(rng, shape).astype(dtype)
    cpu = check_twin("softmax", z, dtype=dtype, op="softmax")
    assert cpu.shape == shape


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_huge_logits(dtype):
    z = np.array([[1e4, 1e4 - 1.0, 1e4 - 2.0, -1e4],
                  [-1e4, -1e4 + 3.0, -1e4, -1e4],
                  [1e4, 1e4, 1e4, 1e4],
                  [1e4, -1e4, 0.0, 5e3]], dtype=dtype)
    cpu = check_twin("softmax", z, dtype=dtype, op="softmax")
    p = _ops().softmax(to_dev(z)).numpy()
    assert np.isfinite(p).all()
    np.testing.assert_array_equal(p[2], np.full(4, 0.25, dtype=dtype))
    assert p[3, 0] == 1.0 and p[3, 1] == 0.0
    np.testing.assert_array_equal(p[2:], cpu[2:])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cols", [5, 100, 3000])
def test_softmax_nan_row(cols, dtype):
    # a NaN anywhere in a row makes the whole row NaN, on both sides; other rows are untouched
    rng = np.random.default_rng(410)
    z = _logits(rng, (4, cols)).astype(dtype)
    z[1, cols // 2] = np.nan
    z[2, 0] = np.nan
    cpu = check_twin("softmax", z, dtype=dtype, op="softmax")
    assert np.isnan(cpu[1:3]).all() and not np.isnan(cpu[[0, 3]]).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_and_activations_deterministic(dtype):
    rng = np.random.default_rng(420)
    for shape in [(300, 10), (40, 1000), (4, 9000)]:
        z = to_dev(_logits(rng, shape).astype(dtype))
        first = _ops().softmax(z).numpy()
        for _ in range(3):
            assert _ops().softmax(z).numpy().tobytes() == first.tobytes()


# ---------------------------------------------------------------------------
# argument checking: the CPU binding's exception types and messages


def _t(shape=(3, 4), dtype=np.float64):
    return to_dev(np.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape).astype(dtype))


@pytest.mark.parametrize("kind", ["softplus", "ReLU", "", "sigmoid "])
def test_unknown_kind(kind):
    with pytest.raises(ValueError, match="activation must be"):
        _ops().activation_forward(_t(), kind)
    with pytest.raises(ValueError, match="activation must be"):
        _ops().activation_backward(_t(), _t(), kind)


def test_kind_must_be_str():
    with pytest.raises(TypeError, match="kind"):
        _ops().activation_forward(_t(), None)


@pytest.mark.parametrize(
    "call",
    [
        lambda: _ops().activation_forward(np.zeros((3, 4)), "relu"),
        lambda: _ops().activation_backward(np.zeros((3, 4)), _t(), "relu"),
        lambda: _ops().activation_backward(_t(), [1.0], "relu"),
        lambda: _ops().softmax(np.zeros((3, 4))),
    ],
    ids=["x-numpy", "dh-numpy", "h-list", "softmax-numpy"],
)
def test_not_a_tensor_is_type_error(call):
    with pytest.raises(TypeError, match="natverk.cuda.Tensor"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: _ops().activation_forward(to_dev(np.arange(12).reshape(3, 4)), "relu"),
        lambda: _ops().activation_forward(to_dev(np.ones((3, 4), dtype=np.uint8)), "linear"),
        lambda: _ops().activation_backward(to_dev(np.ones((3, 4), dtype=np.int64)), _t(), "relu"),
        lambda: _ops().activation_backward(_t(), to_dev(np.ones((3, 4), dtype=np.int64)), "relu"),
        lambda: _ops().activation_backward(_t(dtype=np.float32), _t(), "tanh"),
        lambda: _ops().activation_backward(_t(), _t(dtype=np.float32), "tanh"),
        lambda: _ops().softmax(to_dev(np.ones((2, 3), dtype=np.int64))),
    ],
    ids=["x-int", "x-uint8", "dh-int", "h-int", "f32-dh-f64-h", "f64-dh-f32-h", "softmax-int"],
)
def test_wrong_dtype_is_type_error(call):
    with pytest.raises(TypeError):
        call()


@pytest.mark.parametrize(
    "dh_shape,h_shape", [((3, 4), (4, 3)), ((12,), (3, 4)), ((3, 4), (3, 4, 1)), ((3, 4), (3, 5))]
)
def test_backward_shape_mismatch(dh_shape, h_shape):
    with pytest.raises(ValueError, match="same shape"):
        _ops().activation_backward(_t(dh_shape), _t(h_shape), "sigmoid")


@pytest.mark.parametrize("shape", [(6,), (2, 3, 4), (3, 0)], ids=["1-D", "3-D", "no-columns"])
def test_softmax_bad_shapes(shape):
    with pytest.raises(ValueError):
        _ops().softmax(to_dev(np.ones(shape)))
