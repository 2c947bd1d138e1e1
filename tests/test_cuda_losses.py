"""The CUDA twins of the losses (cpp/losses/losses.cu) against their CPU kernels, with
tests/test_losses.py's shapes and edge cases: softmax cross-entropy with and without class
weights (one row, one class, odd and wide K, huge logits, int64 / uint8 / row / column labels),
MSE, BCE and BCE with logits in both reductions and both dtypes (one element, odd sizes, sizes
that need many reduction blocks), exact 0/1 probabilities, sum_of_squares, the double
accumulation, bitwise determinism of the two-pass reductions, and the argument errors (the CPU
binding's exception types and messages, the label and [0, 1] checks done on the device).

Skipped without a CUDA build or a GPU (cuda_twin.requires_gpu)."""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from cuda_twin import check_twin, compare, requires_gpu, to_dev, twin
from natverk import _core
from natverk import cuda as nvcuda
from tolerances import assert_close

pytestmark = requires_gpu

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
REDUCTIONS = ["mean", "sum"]
SPLIT = 1 << 15


def _ops():
    return nvcuda.ops


def _ids(shapes):
    return ["x".join(map(str, s)) for s in shapes]


# ---------------------------------------------------------------------------
# softmax cross-entropy

# one row, one class, odd K, warp rows (K > 32), block rows (K > 2048), many rows
CE_SHAPES = [(1, 1), (1, 4), (5, 3), (64, 10), (4000, 10), (3, 257), (7, 33), (2, 3000), (SPLIT + 5, 3)]


def _ce_data(seed, m, K, weighted, scale=3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, scale, size=(m, K))
    y = rng.integers(0, K, size=m)
    w = rng.uniform(0.5, 10.0, size=K) if weighted else None
    return z, y, w


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("m,K", CE_SHAPES, ids=_ids(CE_SHAPES))
def test_softmax_cross_entropy_twin(m, K, weighted, dtype):
    z, y, w = _ce_data(10 + m + K, m, K, weighted)
    z = z.astype(dtype)
    w = None if w is None else w.astype(dtype)
    cpu, gpu, _, _ = twin("softmax_cross_entropy", z, y, w)
    assert isinstance(gpu, tuple) and len(gpu) == 2
    assert type(gpu[0]) is float, "the loss must come back as a Python float"
    compare(gpu, cpu, dtype, "softmax_cross_entropy")
    if K == 1:
        assert gpu[0] == 0.0 and (gpu[1] == 1.0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("m,K", CE_SHAPES, ids=_ids(CE_SHAPES))
def test_softmax_cross_entropy_backward_twin(m, K, weighted, dtype):
    z, y, w = _ce_data(20 + m + K, m, K, weighted)
    probs = ref.softmax(z).astype(dtype)
    w = None if w is None else w.astype(dtype)
    check_twin("softmax_cross_entropy_backward", probs, y, w, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_cross_entropy_probs_equal_softmax(dtype):
    # one row kernel serves both: the probabilities agree bit for bit
    z, y, _ = _ce_data(25, 50, 7, False)
    zd = to_dev(z.astype(dtype))
    _, probs = _ops().softmax_cross_entropy(zd, to_dev(y))
    assert probs.numpy().tobytes() == _ops().softmax(zd).numpy().tobytes()


def test_softmax_cross_entropy_weights_are_a_weighted_mean():
    z = np.array([[2.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 1])
    nll = np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))
    ce = _ops().softmax_cross_entropy
    loss, _ = ce(to_dev(z), to_dev(y), to_dev(np.array([1.0, 3.0])))
    assert loss == pytest.approx((nll[0] + 3 * nll[1]) / 4, rel=1e-14)
    loss_unweighted, _ = ce(to_dev(z), to_dev(y))
    assert loss_unweighted == pytest.approx((nll[0] + nll[1]) / 2, rel=1e-14)
    loss_uniform, _ = ce(to_dev(z), to_dev(y), to_dev(np.array([7.0, 7.0])))
    assert loss_uniform == pytest.approx(loss_unweighted, rel=1e-14)
    loss_zero, _ = ce(to_dev(z), to_dev(y), to_dev(np.array([0.0, 1.0])))
    assert loss_zero == pytest.approx(nll[1], rel=1e-14)
    dz = _ops().softmax_cross_entropy_backward(to_dev(ref.softmax(z)), to_dev(y), to_dev(np.array([0.0, 1.0])))
    np.testing.assert_array_equal(dz.numpy()[0], 0.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_cross_entropy_huge_logits(dtype):
    z, y, w = _ce_data(40, 50, 7, True, scale=1e3)
    z, w = z.astype(dtype), w.astype(dtype)
    loss, probs = check_twin("softmax_cross_entropy", z, y, w, dtype=dtype)
    assert np.isfinite(loss) and np.isfinite(probs).all()
    check_twin("softmax_cross_entropy_backward", probs, y, w, dtype=dtype)
    for zz, yy, want in [([[1000.0, -1000.0]], [1], 2000.0), ([[-1000.0, 1000.0]], [1], 0.0),
                         ([[1e4, 1e4, 1e4, 1e4]], [2], np.log(4.0))]:
        zz, yy = np.array(zz, dtype=dtype), np.array(yy)
        gl, gp = _ops().softmax_cross_entropy(to_dev(zz), to_dev(yy))
        assert np.isfinite(gl)
        assert_close(gl, want, dtype, f"loss({zz.tolist()}, {yy.tolist()})")
        check_twin("softmax_cross_entropy", zz, yy, dtype=dtype)
        assert np.isfinite(_ops().softmax_cross_entropy_backward(gp, to_dev(yy)).numpy()).all()


@pytest.mark.parametrize(
    "y",
    [
        np.array([2, 0, 1, 1, 2], dtype=np.int64),
        np.array([2, 0, 1, 1, 2], dtype=np.uint8),
        np.array([[2, 0, 1, 1, 2]], dtype=np.int64),      # MATLAB row, 1 x m
        np.array([[2], [0], [1], [1], [2]], dtype=np.int64),  # column, m x 1
        np.array([[2], [0], [1], [1], [2]], dtype=np.uint8),
    ],
    ids=["int64", "uint8", "row", "column", "uint8-column"],
)
def test_label_formats(y):
    rng = np.random.default_rng(50)
    z = rng.normal(size=(5, 3))
    w = np.array([1.0, 2.0, 3.0])
    check_twin("softmax_cross_entropy", z, y, dtype=np.float64)
    check_twin("softmax_cross_entropy", z, y, w, dtype=np.float64)
    check_twin("softmax_cross_entropy_backward", ref.softmax(z), y, w, dtype=np.float64)


Z53 = np.zeros((5, 3))
Y5 = np.array([0, 1, 2, 1, 0])


@pytest.mark.parametrize("which", ["forward", "backward"])
@pytest.mark.parametrize(
    "args,exc,match",
    [
        ((Z53, np.array([0, 1, 3, 1, 0])), ValueError, r"y\[2\] = 3 is not a class label in 0\.\.2"),
        ((Z53, np.array([0, 1, 2, -1, 0])), ValueError, r"y\[3\] = -1"),
        ((Z53, np.array([0, 5, 2, -1, 0])), ValueError, r"y\[1\] = 5"),  # the first bad label
        ((Z53, np.array([0, 1, 2, 1, 200], dtype=np.uint8)), ValueError, r"y\[4\] = 200"),
        ((Z53, Y5.astype(np.float64)), TypeError, "y must hold integer"),
        ((Z53, Y5.astype(np.float32)), TypeError, "y must hold integer"),
        ((Z53, Y5[:4]), ValueError, "y must hold one label per row"),
        ((Z53, np.zeros((5, 2), dtype=np.int64)), ValueError, "y must hold one label per row"),
        ((Z53, Y5, np.ones(2)), ValueError, "class_weights must have shape"),
        ((Z53, Y5, np.ones(4)), ValueError, "class_weights must have shape"),
        ((Z53, Y5, np.ones((1, 3))), ValueError, "class_weights must have shape"),
        ((Z53, Y5, np.ones(3, dtype=np.float32)), TypeError, "class_weights"),
        ((Z53, Y5, np.array([1.0, -1.0, 1.0])), ValueError, "class_weights must be finite"),
        ((Z53, Y5, np.array([1.0, np.nan, 1.0])), ValueError, "class_weights must be finite"),
        ((Z53, Y5, np.array([1.0, np.inf, 1.0])), ValueError, "class_weights must be finite"),
        ((Z53, np.array([0, 1, 1, 0, 0]), np.array([0.0, 0.0, 5.0])), ValueError, "sum to zero"),
        ((np.zeros((0, 3)), np.zeros(0, dtype=np.int64)), ValueError, "empty"),
        ((np.zeros((5, 0)), Y5), ValueError, "empty"),
        ((np.zeros(5), Y5), ValueError, "2-D"),
        ((np.zeros((5, 3), dtype=np.int64), Y5), TypeError, "float32 or float64"),
    ],
    ids=["y-too-big", "y-negative", "y-first-bad", "y-uint8-too-big", "y-float64", "y-float32",
         "y-short", "y-2d", "w-short", "w-long", "w-2d", "w-dtype", "w-negative", "w-nan", "w-inf",
         "w-zero-sum", "empty-rows", "no-classes", "z-1d", "z-int"],
)
def test_softmax_cross_entropy_bad_arguments(which, args, exc, match):
    name = "softmax_cross_entropy" if which == "forward" else "softmax_cross_entropy_backward"
    # the CPU raises the same exception with the same message
    with pytest.raises(exc, match=match):
        getattr(_core, name)(*args)
    with pytest.raises(exc, match=match):
        getattr(_ops(), name)(*[to_dev(a) for a in args])


@pytest.mark.parametrize("which", ["forward", "backward"])
def test_softmax_cross_entropy_not_tensors(which):
    fn = getattr(_ops(), "softmax_cross_entropy" if which == "forward" else "softmax_cross_entropy_backward")
    with pytest.raises(TypeError, match="natverk.cuda.Tensor"):
        fn(Z53, to_dev(Y5))
    with pytest.raises(TypeError, match="natverk.cuda.Tensor"):
        fn(to_dev(Z53), Y5)
    with pytest.raises(TypeError, match="class_weights"):
        fn(to_dev(Z53), to_dev(Y5), [1.0, 1.0, 1.0])


def test_bad_label_then_good_call_works():
    # an error leaves nothing behind: the next call on the stream is right
    with pytest.raises(ValueError, match=r"y\[0\]"):
        _ops().softmax_cross_entropy(to_dev(Z53), to_dev(np.array([7, 0, 0, 0, 0])))
    check_twin("softmax_cross_entropy", np.arange(15.0).reshape(5, 3), Y5, dtype=np.float64)


# ---------------------------------------------------------------------------
# MSE, BCE, BCE with logits

# one element, odd, 2-D, one reduction block (<= 2048 terms) and several, the 1024-block cap
PAIR_SHAPES = [(1,), (7,), (5, 3), (64, 10), (300, 150), (SPLIT + 7,), (2048,), (2049,), (1500, 1500)]


def _pair_data(loss: str, shape, seed):
    rng = np.random.default_rng(seed)
    if loss == "mse":
        return rng.normal(size=shape), rng.normal(size=shape)
    if loss == "bce":
        p = rng.uniform(0.01, 0.99, size=shape)
        t = rng.uniform(0.0, 1.0, size=shape)
        hard = rng.random(size=shape) < 0.5
        t[hard] = rng.integers(0, 2, size=int(hard.sum()))
        return p, t
    z = rng.normal(0.0, 4.0, size=shape)
    t = rng.integers(0, 2, size=shape).astype(np.float64)
    t.reshape(-1)[::3] = 0.3
    return z, t


PAIR_NAMES = {"mse": "mse", "bce": "binary_cross_entropy", "bce_with_logits": "binary_cross_entropy_with_logits"}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", PAIR_SHAPES, ids=_ids(PAIR_SHAPES))
@pytest.mark.parametrize("loss", list(PAIR_NAMES))
def test_pair_loss_twin(loss, shape, reduction, dtype):
    x, t = _pair_data(loss, shape, 60 + shape[0])
    x, t = x.astype(dtype), t.astype(dtype)
    cpu, gpu, _, _ = twin(PAIR_NAMES[loss], x, t, reduction=reduction)
    assert type(gpu) is float
    # both accumulate in double: the float32 twin agrees to double precision too
    compare(gpu, cpu, dtype, PAIR_NAMES[loss], op="double_accumulated")
    if reduction == "mean":  # the default
        check_twin(PAIR_NAMES[loss], x, t, dtype=dtype, op="double_accumulated")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", PAIR_SHAPES, ids=_ids(PAIR_SHAPES))
@pytest.mark.parametrize("loss", list(PAIR_NAMES))
def test_pair_loss_backward_twin(loss, shape, reduction, dtype):
    x, t = _pair_data(loss, shape, 70 + shape[0])
    x, t = x.astype(dtype), t.astype(dtype)
    check_twin(PAIR_NAMES[loss] + "_backward", x, t, dtype=dtype, reduction=reduction)


def test_mean_divides_by_rows_not_elements():
    pred, target = to_dev(np.ones((4, 5))), to_dev(np.zeros((4, 5)))
    assert _ops().mse(pred, target, "sum") == 10.0
    assert _ops().mse(pred, target, "mean") == 2.5
    np.testing.assert_array_equal(_ops().mse_backward(pred, target, "mean").numpy(), 0.25)
    assert _ops().mse(to_dev(np.ones(20)), to_dev(np.zeros(20)), "mean") == 0.5


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bce_at_exact_zero_and_one(dtype):
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5], dtype=dtype)
    t = np.array([1.0, 0.0, 1.0, 0.0, 0.5, 0.25, 1.0], dtype=dtype)
    loss = check_twin("binary_cross_entropy", p, t, "sum", dtype=dtype, op="double_accumulated")
    assert_close(loss, 100 + 0 + 0 + 100 + 50 + 75 + np.log(2.0), np.float64, "bce(0/1)")
    grad = check_twin("binary_cross_entropy_backward", p, t, "sum", dtype=dtype, exact=True)
    assert grad[0] == dtype(-1e12) and grad[3] == dtype(1e12)


def test_bce_log_clamp_for_tiny_probabilities():
    p = np.array([1e-50, 1e-30, 1.0 - 1e-15])
    t = np.array([1.0, 1.0, 0.0])
    check_twin("binary_cross_entropy", p, t, "sum", dtype=np.float64)
    check_twin("binary_cross_entropy_backward", p, t, "sum", dtype=np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bce_with_logits_huge_logits(dtype):
    z = np.array([1e3, -1e3, 1e3, -1e3, 1e4, -1e4, 0.0], dtype=dtype)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 1.0], dtype=dtype)
    loss = check_twin("binary_cross_entropy_with_logits", z, t, "sum", dtype=dtype, op="double_accumulated")
    assert np.isfinite(loss)
    grad = _ops().binary_cross_entropy_with_logits_backward(to_dev(z), to_dev(t), "sum").numpy()
    np.testing.assert_array_equal(grad, np.array([1, -1, 0, 0, 1, -0.5, -0.5], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("loss", ["mse", "bce_with_logits"])
def test_nan_inputs(loss, dtype):
    # MSE and the logits' z propagate NaN like the CPU (BCE rejects a NaN probability, below)
    x, t = _pair_data(loss, (6, 4), 75)
    x, t = x.astype(dtype), t.astype(dtype)
    x[2, 1] = np.nan
    check_twin(PAIR_NAMES[loss], x, t, dtype=dtype, op="double_accumulated")
    check_twin(PAIR_NAMES[loss] + "_backward", x, t, dtype=dtype)


BCE_NAMES = ["binary_cross_entropy", "binary_cross_entropy_backward"]
BCEWL_NAMES = ["binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward"]
PAIR_FUNC_NAMES = [n + s for n in PAIR_NAMES.values() for s in ("", "_backward")]


@pytest.mark.parametrize("name", BCE_NAMES)
@pytest.mark.parametrize("bad", [1.0000001, -1e-9, 2.0, np.nan, np.inf])
def test_bce_rejects_pred_outside_unit_interval(name, bad):
    p = np.full((3, 4), 0.5)
    p[1, 2] = bad
    p[2, 3] = bad  # the first offender is named
    with pytest.raises(ValueError, match=r"pred\[6\] is not in \[0, 1\]"):
        getattr(_ops(), name)(to_dev(p), to_dev(np.full((3, 4), 0.5)), "mean")


@pytest.mark.parametrize("name", BCE_NAMES + BCEWL_NAMES)
@pytest.mark.parametrize("bad", [1.5, -0.5, np.nan])
def test_bce_rejects_target_outside_unit_interval(name, bad):
    t = np.full(5, 0.5)
    t[3] = bad
    with pytest.raises(ValueError, match=r"target\[3\] is not in \[0, 1\]"):
        getattr(_ops(), name)(to_dev(np.full(5, 0.5)), to_dev(t), "sum")


@pytest.mark.parametrize("name", BCE_NAMES)
def test_bce_pred_is_reported_before_target(name):
    p, t = np.full(5, 0.5), np.full(5, 0.5)
    p[4], t[0] = 3.0, 3.0
    with pytest.raises(ValueError, match=r"pred\[4\]"):
        getattr(_ops(), name)(to_dev(p), to_dev(t), "sum")


def test_bce_check_in_a_large_input():
    # the offender sits in a late reduction block
    n = 3 * SPLIT + 11
    p = np.full(n, 0.5)
    p[n - 2] = -1.0
    p[n - 1] = -1.0
    with pytest.raises(ValueError, match=rf"pred\[{n - 2}\]"):
        _ops().binary_cross_entropy(to_dev(p), to_dev(np.full(n, 0.5)))


@pytest.mark.parametrize("name", PAIR_FUNC_NAMES)
@pytest.mark.parametrize(
    "x,t,kwargs,exc,match",
    [
        (np.zeros(0), np.zeros(0), {}, ValueError, "empty"),
        (np.zeros((0, 3)), np.zeros((0, 3)), {}, ValueError, "empty"),
        (np.zeros((3, 0)), np.zeros((3, 0)), {}, ValueError, "empty"),
        (np.full((3, 2), 0.5), np.full((2, 3), 0.5), {}, ValueError, "same shape"),
        (np.full(6, 0.5), np.full((6, 1), 0.5), {}, ValueError, "same shape"),
        (np.full((2, 3, 2), 0.5), np.full((2, 3, 2), 0.5), {}, ValueError, "1-D or 2-D"),
        (np.full((3, 2), 0.5), np.full((3, 2), 0.5, dtype=np.float32), {}, TypeError, "target"),
        (np.full((3, 2), 0.5, dtype=np.float32), np.full((3, 2), 0.5), {}, TypeError, "target"),
        (np.ones((3, 2), dtype=np.int64), np.ones((3, 2), dtype=np.int64), {}, TypeError, "float32 or float64"),
        (np.full((3, 2), 0.5), np.full((3, 2), 0.5), {"reduction": "avg"}, ValueError, "reduction"),
        (np.full((3, 2), 0.5), np.full((3, 2), 0.5), {"reduction": "none"}, ValueError, "reduction"),
        (np.full((3, 2), 0.5), np.full((3, 2), 0.5), {"reduction": None}, TypeError, "reduction"),
    ],
    ids=["empty-1d", "empty-rows", "empty-cols", "shapes", "1d-vs-2d", "3d", "target-dtype",
         "pred-f32-target-f64", "int", "avg", "none", "reduction-None"],
)
def test_pair_loss_bad_arguments(name, x, t, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(_ops(), name)(to_dev(x), to_dev(t), **kwargs)


@pytest.mark.parametrize("name", PAIR_FUNC_NAMES)
def test_pair_loss_not_tensors(name):
    with pytest.raises(TypeError, match="natverk.cuda.Tensor"):
        getattr(_ops(), name)(np.full(3, 0.5), to_dev(np.full(3, 0.5)))
    with pytest.raises(TypeError, match="natverk.cuda.Tensor"):
        getattr(_ops(), name)(to_dev(np.full(3, 0.5)), np.full(3, 0.5))


# ---------------------------------------------------------------------------
# sum_of_squares

SOS_SHAPES = [(0,), (1,), (7,), (3, 4, 5), (300, 150), (2 * SPLIT + 3,), (3_000_001,)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SOS_SHAPES, ids=_ids(SOS_SHAPES))
def test_sum_of_squares_twin(shape, dtype):
    rng = np.random.default_rng(100 + shape[0])
    w = rng.normal(0.0, 2.0, size=shape).astype(dtype)
    cpu, gpu, _, _ = twin("sum_of_squares", w)
    assert type(gpu) is float
    compare(gpu, cpu, dtype, "sum_of_squares", op="double_accumulated")
    if w.size == 0:
        assert gpu == 0.0


def test_sum_of_squares_float32_accumulates_in_double():
    w = np.full(1_000_000, 0.1, dtype=np.float32)
    expected = 1_000_000 * float(np.float32(0.1)) ** 2
    assert_close(_ops().sum_of_squares(to_dev(w)), expected, np.float64, "sum_of_squares(0.1f x 1e6)", rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8], ids=["int", "uint8"])
def test_sum_of_squares_wrong_dtype(dtype):
    with pytest.raises(TypeError, match="float32 or float64"):
        _ops().sum_of_squares(to_dev(np.ones((3, 4), dtype=dtype)))


def test_sum_of_squares_not_a_tensor():
    with pytest.raises(TypeError, match="natverk.cuda.Tensor"):
        _ops().sum_of_squares(np.ones((3, 4)))


# ---------------------------------------------------------------------------
# determinism: the two-pass reductions give the same bits on every call


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_losses_are_deterministic(dtype):
    rng = np.random.default_rng(120)
    n = 5 * SPLIT + 17
    x = to_dev(rng.uniform(0.01, 0.99, size=n).astype(dtype))
    t = to_dev(rng.uniform(0.0, 1.0, size=n).astype(dtype))
    z, y, w = _ce_data(121, 20_000, 10, True)
    zd, yd, wd = to_dev(z.astype(dtype)), to_dev(y), to_dev(w.astype(dtype))
    calls = [
        lambda: _ops().mse(x, t),
        lambda: _ops().binary_cross_entropy(x, t, "sum"),
        lambda: _ops().binary_cross_entropy_with_logits(x, t),
        lambda: _ops().sum_of_squares(x),
        lambda: _ops().softmax_cross_entropy(zd, yd, wd)[0],
        lambda: _ops().softmax_cross_entropy_backward(_ops().softmax(zd), yd, wd).numpy().tobytes(),
    ]
    for call in calls:
        first = call()
        for _ in range(3):
            assert call() == first
