"""activation_forward / activation_backward / softmax against the float64
reference (cpp/activations/activations.h): values in both dtypes, odd sizes
and sizes above the 2**15-element parallel split, NaN propagation,
saturation, stability, finite-difference gradients and argument checking."""

from __future__ import annotations

import numpy as np
import pytest

import natverk._core as core
import reference as ref
from tolerances import FINITE_DIFFERENCE, assert_close, check_op, tol

KINDS = ["relu", "sigmoid", "tanh", "linear"]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
SPLIT = 1 << 15  # kElementwiseGrain: arrays larger than this are split between threads
SHAPES = [(1,), (7,), (3, 5), (31, 17), (4, 5, 6), (SPLIT + 3,), (300, 257), (2 * SPLIT + 1,)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def _logits(rng, shape, scale=3.0):
    return rng.normal(0.0, scale, size=shape)


# ---------------------------------------------------------------------------
# values against the reference


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_reference(kind, shape, dtype, threads):
    rng = np.random.default_rng(100 + len(shape) + shape[0])
    z = _logits(rng, shape).astype(dtype)
    z_before = z.copy()
    out = check_op(f"activation_forward[{kind}]", core.activation_forward, ref.activation_forward,
                   [z, kind], dtype)
    assert out.shape == shape
    assert not np.shares_memory(out, z)
    np.testing.assert_array_equal(z, z_before, err_msg="the input was modified")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_backward_matches_reference(kind, shape, dtype, threads):
    rng = np.random.default_rng(200 + len(shape) + shape[0])
    h = ref.activation_forward(_logits(rng, shape), kind).astype(dtype)
    dh = rng.normal(size=shape).astype(dtype)
    out = check_op(f"activation_backward[{kind}]", core.activation_backward,
                   ref.activation_backward, [dh, h, kind], dtype)
    assert out.shape == shape


@pytest.mark.parametrize("kind", KINDS)
def test_one_and_two_threads_identical(kind):
    rng = np.random.default_rng(7)
    z = _logits(rng, (3 * SPLIT + 11,))
    dh = rng.normal(size=z.shape)
    core.set_num_threads(1)
    f1 = core.activation_forward(z, kind)
    b1 = core.activation_backward(dh, f1, kind)
    core.set_num_threads(2)
    f2 = core.activation_forward(z, kind)
    b2 = core.activation_backward(dh, f2, kind)
    assert f1.tobytes() == f2.tobytes() and b1.tobytes() == b2.tobytes()
    assert_close(f2, ref.activation_forward(z, kind), np.float64, kind)


# ---------------------------------------------------------------------------
# special values


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [9, 2 * SPLIT + 5])
@pytest.mark.parametrize("kind", KINDS)
def test_nan_propagates(kind, n, dtype, threads):
    rng = np.random.default_rng(300)
    z = _logits(rng, (n,)).astype(dtype)
    nan_at = np.unique(np.r_[0, n // 2, n - 1, rng.integers(0, n, size=5)])
    z[nan_at] = np.nan
    out = core.activation_forward(z, kind)
    assert np.isnan(out[nan_at]).all(), f"{kind}(NaN) must be NaN"
    others = np.ones(n, dtype=bool)
    others[nan_at] = False
    assert not np.isnan(out[others]).any()
    assert_close(out, ref.activation_forward(z, kind), dtype, kind)  # NaN where NaN expected


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_relu_special_values(dtype):
    z = np.array([np.nan, -np.inf, -1.0, -0.0, 0.0, 1e-30, 2.5, np.inf], dtype=dtype)
    out = core.activation_forward(z, "relu")
    expected = np.array([np.nan, 0.0, 0.0, 0.0, 0.0, 1e-30, 2.5, np.inf], dtype=dtype)
    np.testing.assert_array_equal(out, expected)  # NaN == NaN for assert_array_equal
    # backward: the gradient passes exactly where h > 0
    dh = np.arange(1, z.size + 1, dtype=dtype)
    h = np.array([0.0, 0.0, 3.0, 1e-30, 0.0, 7.0, 0.5, np.inf], dtype=dtype)
    np.testing.assert_array_equal(core.activation_backward(dh, h, "relu"),
                                  np.where(h > 0, dh, 0).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sigmoid_and_tanh_saturate_exactly(dtype):
    # e^-800 underflows to exactly 0 in both dtypes (float64's smallest subnormal is e^-745)
    z = np.array([-np.inf, -1e30, -1000.0, -800.0, 0.0, 800.0, 1000.0, 1e30, np.inf], dtype=dtype)
    s = core.activation_forward(z, "sigmoid")
    assert np.isfinite(s).all()
    np.testing.assert_array_equal(s[[0, 1, 2, 3]], 0.0)
    assert s[4] == 0.5
    np.testing.assert_array_equal(s[[5, 6, 7, 8]], 1.0)
    t = core.activation_forward(z, "tanh")
    np.testing.assert_array_equal(t, np.array([-1, -1, -1, -1, 0, 1, 1, 1, 1], dtype=dtype))
    # the saturated gradient is exactly 0, not NaN
    dh = np.ones_like(z)
    saturated = [0, 1, 2, 3, 5, 6, 7, 8]
    np.testing.assert_array_equal(core.activation_backward(dh, s, "sigmoid")[saturated], 0.0)
    np.testing.assert_array_equal(core.activation_backward(dh, t, "tanh")[saturated], 0.0)
    assert core.activation_backward(dh, s, "sigmoid")[4] == 0.25
    assert core.activation_backward(dh, t, "tanh")[4] == 1.0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sigmoid_moderate_negative_is_accurate(dtype):
    # e^z / (1 + e^z) for z < 0 keeps relative accuracy where 1 - 1/(1+e^-z) would not.
    z = np.array([-5.0, -20.0, -40.0, -80.0], dtype=dtype)
    out = core.activation_forward(z, "sigmoid")
    expected = ref.sigmoid(z)
    assert_close(out, expected, dtype, "sigmoid", atol=0.0, rtol=tol(dtype).rtol)


# ---------------------------------------------------------------------------
# softmax

SOFTMAX_SHAPES = [(1, 1), (1, 7), (3, 5), (64, 10), (5000, 10), (7, 1031)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=["x".join(map(str, s)) for s in SOFTMAX_SHAPES])
def test_softmax_matches_reference_and_rows_sum_to_one(shape, dtype, threads):
    rng = np.random.default_rng(400 + shape[1])
    z = _logits(rng, shape).astype(dtype)
    p = check_op("softmax", core.softmax, ref.softmax, [z], dtype, **tol(dtype, "softmax")._asdict())
    assert p.shape == shape
    assert (p >= 0).all() and (p <= 1).all()
    assert_close(p.astype(np.float64).sum(axis=1), np.ones(shape[0]), dtype, "row sums")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_stable_for_huge_logits(dtype):
    z = np.array([[1e4, 1e4 - 1.0, 1e4 - 2.0, -1e4],
                  [-1e4, -1e4 + 3.0, -1e4, -1e4],
                  [1e4, 1e4, 1e4, 1e4],
                  [1e4, -1e4, 0.0, 5e3]], dtype=dtype)
    p = core.softmax(z)
    assert np.isfinite(p).all()
    assert_close(p, ref.softmax(z), dtype, "softmax(1e4)")
    assert_close(p.sum(axis=1), np.ones(4), dtype, "row sums")
    np.testing.assert_array_equal(p[2], np.full(4, 0.25, dtype=dtype))
    assert p[3, 0] == 1.0 and p[3, 1] == 0.0
    # shift invariance: softmax(z + 1e4) is softmax(z) (the max is subtracted first)
    rng = np.random.default_rng(5)
    base = _logits(rng, (6, 9))
    shifted_in = (base + 1e4).astype(dtype)
    shifted = core.softmax(shifted_in)
    assert_close(shifted, ref.softmax(shifted_in), dtype, "softmax(z + 1e4)")
    if dtype == np.float64:  # the shift itself only rounds the logits by ~1e4 * eps = 2e-12
        assert_close(shifted, ref.softmax(base), dtype, "softmax(z + 1e4) vs softmax(z)", rtol=1e-10)


# ---------------------------------------------------------------------------
# gradients against central differences (float64)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_matches_finite_differences(kind):
    rng = np.random.default_rng(500)
    shape = (4, 5)
    # keep |z| >= 0.1 so relu's kink at 0 is never inside the h = 1e-6 stencil
    z = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)
    dh = rng.normal(size=shape)

    def scalar(zz):
        return float(np.sum(dh * core.activation_forward(zz, kind)))

    numeric = ref.central_difference(scalar, z)
    analytic = core.activation_backward(dh, core.activation_forward(z, kind), kind)
    assert_close(analytic, numeric, np.float64, f"d/dz sum(dh * {kind}(z))", *FINITE_DIFFERENCE)


# ---------------------------------------------------------------------------
# argument checking


def _x(shape=(3, 4), dtype=np.float64):
    return np.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape).astype(dtype)


@pytest.mark.parametrize("kind", ["softplus", "ReLU", "", "sigmoid "])
def test_unknown_kind(kind):
    with pytest.raises(ValueError, match="activation must be"):
        core.activation_forward(_x(), kind)
    with pytest.raises(ValueError, match="activation must be"):
        core.activation_backward(_x(), _x(), kind)


@pytest.mark.parametrize(
    "call",
    [
        lambda: core.activation_forward(_x((3, 8))[:, ::2], "relu"),
        lambda: core.activation_forward(_x((4, 3)).T, "tanh"),
        lambda: core.activation_forward(_x((12,))[::-1], "sigmoid"),
        lambda: core.activation_backward(_x((3, 8))[:, ::2], _x(), "relu"),
        lambda: core.activation_backward(_x(), _x((4, 3)).T, "relu"),
        lambda: core.softmax(_x((3, 8))[:, ::2]),
    ],
    ids=["x-step", "x-transposed", "x-reversed", "dh-step", "h-transposed", "softmax-step"],
)
def test_non_contiguous_is_rejected(call):
    with pytest.raises(ValueError, match="C-contiguous"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: core.activation_forward(np.arange(12).reshape(3, 4), "relu"),
        lambda: core.activation_forward(_x(dtype=np.float16), "relu"),
        lambda: core.activation_forward(np.ones((3, 4), dtype=bool), "linear"),
        lambda: core.activation_backward(np.ones((3, 4), dtype=np.int32), _x(), "relu"),
        lambda: core.activation_backward(_x(), np.ones((3, 4), dtype=np.int64), "relu"),
        lambda: core.activation_backward(_x(dtype=np.float32), _x(), "tanh"),
        lambda: core.activation_backward(_x(), _x(dtype=np.float32), "tanh"),
        lambda: core.softmax(np.ones((2, 3), dtype=np.int64)),
    ],
    ids=["x-int", "x-f16", "x-bool", "dh-int", "h-int", "f32-dh-f64-h", "f64-dh-f32-h", "softmax-int"],
)
def test_wrong_dtype_is_type_error(call):
    with pytest.raises(TypeError):
        call()


@pytest.mark.parametrize(
    "dh_shape,h_shape", [((3, 4), (4, 3)), ((12,), (3, 4)), ((3, 4), (3, 4, 1)), ((3, 4), (3, 5))]
)
def test_backward_shape_mismatch(dh_shape, h_shape):
    with pytest.raises(ValueError, match="same shape"):
        core.activation_backward(_x(dh_shape), _x(h_shape), "sigmoid")


@pytest.mark.parametrize("z", [_x((6,)), _x((2, 3, 4)), np.ones((3, 0))], ids=["1-D", "3-D", "no-columns"])
def test_softmax_bad_shapes(z):
    with pytest.raises(ValueError):
        core.softmax(z)
