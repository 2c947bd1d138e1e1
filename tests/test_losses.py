"""Losses and their gradients against the float64 reference
(cpp/losses/losses.h): softmax cross-entropy (with class weights), MSE,
binary cross-entropy on probabilities and on logits, sum_of_squares. Values
in both dtypes and both reductions, gradients against central differences,
numerical stability, edge values and argument checking."""

from __future__ import annotations

import numpy as np
import pytest

import natverk._core as core
import reference as ref
from tolerances import FINITE_DIFFERENCE, assert_close, check_op, tol

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
REDUCTIONS = ["mean", "sum"]
SPLIT = 1 << 15  # kElementwiseGrain: reductions over more elements are split between threads


def _ids(shapes):
    return ["x".join(map(str, s)) for s in shapes]


# ---------------------------------------------------------------------------
# softmax cross-entropy

CE_SHAPES = [(1, 1), (1, 4), (5, 3), (64, 10), (4000, 10), (3, 257)]


def _ce_data(seed, m, K, weighted, scale=3.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, scale, size=(m, K))
    y = rng.integers(0, K, size=m)
    w = rng.uniform(0.5, 10.0, size=K) if weighted else None
    return z, y, w


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("m,K", CE_SHAPES, ids=_ids(CE_SHAPES))
def test_softmax_cross_entropy_matches_reference(m, K, weighted, dtype, threads):
    z, y, w = _ce_data(10 + m + K, m, K, weighted)
    loss, probs = check_op("softmax_cross_entropy", core.softmax_cross_entropy,
                           ref.softmax_cross_entropy, [z, y, w], dtype)
    assert probs.shape == (m, K)
    assert np.isfinite(loss) and loss >= 0.0
    if K == 1:
        assert loss == 0.0 and (probs == 1.0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("m,K", CE_SHAPES, ids=_ids(CE_SHAPES))
def test_softmax_cross_entropy_backward_matches_reference(m, K, weighted, dtype, threads):
    z, y, w = _ce_data(20 + m + K, m, K, weighted)
    probs = ref.softmax(z)
    dz = check_op("softmax_cross_entropy_backward", core.softmax_cross_entropy_backward,
                  ref.softmax_cross_entropy_backward, [probs, y, w], dtype)
    assert dz.shape == (m, K)


def test_softmax_cross_entropy_weights_are_a_weighted_mean():
    # Two examples, weights [1, 3]: the loss is (1 * nll_0 + 3 * nll_1) / 4, by hand.
    z = np.array([[2.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 1])
    nll = np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))
    loss, _ = core.softmax_cross_entropy(z, y, np.array([1.0, 3.0]))
    assert loss == pytest.approx((nll[0] + 3 * nll[1]) / 4, rel=1e-14)
    loss_unweighted, _ = core.softmax_cross_entropy(z, y)
    assert loss_unweighted == pytest.approx((nll[0] + nll[1]) / 2, rel=1e-14)
    # Uniform weights of any size give the plain mean.
    loss_uniform, _ = core.softmax_cross_entropy(z, y, np.array([7.0, 7.0]))
    assert loss_uniform == pytest.approx(loss_unweighted, rel=1e-14)
    # A zero-weight class drops out of numerator and denominator alike.
    loss_zero, _ = core.softmax_cross_entropy(z, y, np.array([0.0, 1.0]))
    assert loss_zero == pytest.approx(nll[1], rel=1e-14)
    dz = core.softmax_cross_entropy_backward(ref.softmax(z), y, np.array([0.0, 1.0]))
    np.testing.assert_array_equal(dz[0], 0.0)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_softmax_cross_entropy_gradient_matches_finite_differences(weighted):
    z, y, w = _ce_data(30, 6, 4, weighted)

    def loss(zz):
        return core.softmax_cross_entropy(zz, y, w)[0]

    _, probs = core.softmax_cross_entropy(z, y, w)
    analytic = core.softmax_cross_entropy_backward(probs, y, w)
    numeric = ref.central_difference(loss, z)
    assert_close(analytic, numeric, np.float64, "d softmax_cross_entropy / dz", *FINITE_DIFFERENCE)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_softmax_cross_entropy_stable_for_huge_logits(dtype):
    z, y, w = _ce_data(40, 50, 7, True, scale=1e3)
    loss, probs = core.softmax_cross_entropy(z.astype(dtype), y, w.astype(dtype))
    z64 = z.astype(dtype).astype(np.float64)
    # the reference's -log p is logsumexp(z) - z_y, never log of an underflowed p
    expected = ref.softmax_cross_entropy(z64, y, w.astype(dtype))[0]
    assert np.isfinite(loss) and np.isfinite(probs).all()
    assert_close(loss, expected, dtype, "loss(1e3 logits)")
    # the true class has probability e^-2000 (0 in any float): the loss is still exactly 2000
    for zz, yy, want in [([[1000.0, -1000.0]], [1], 2000.0), ([[-1000.0, 1000.0]], [1], 0.0),
                         ([[1e4, 1e4, 1e4, 1e4]], [2], np.log(4.0))]:
        loss, probs = core.softmax_cross_entropy(np.array(zz, dtype=dtype), np.array(yy))
        assert np.isfinite(loss)
        assert_close(loss, want, dtype, f"loss({zz}, {yy})")
        dz = core.softmax_cross_entropy_backward(probs, np.array(yy))
        assert np.isfinite(dz).all()


@pytest.mark.parametrize(
    "y",
    [
        np.array([2, 0, 1, 1, 2], dtype=np.int64),
        np.array([2, 0, 1, 1, 2], dtype=np.int32),
        np.array([2, 0, 1, 1, 2], dtype=np.uint8),
        np.array([[2, 0, 1, 1, 2]], dtype=np.int64),     # MATLAB row, 1 x m
        np.array([[2], [0], [1], [1], [2]], dtype=np.int16),  # column, m x 1
        np.array([9, 2, 9, 0, 9, 1, 9, 1, 9, 2])[1::2],  # non-contiguous view
    ],
    ids=["int64", "int32", "uint8", "row", "column", "strided"],
)
def test_label_formats(y):
    rng = np.random.default_rng(50)
    z = rng.normal(size=(5, 3))
    expected_loss, expected_probs = ref.softmax_cross_entropy(z, np.array([2, 0, 1, 1, 2]))
    loss, probs = core.softmax_cross_entropy(z, y)
    assert_close(loss, expected_loss, np.float64, "loss")
    dz = core.softmax_cross_entropy_backward(probs, y)
    assert_close(dz, ref.softmax_cross_entropy_backward(expected_probs, np.array([2, 0, 1, 1, 2])),
                 np.float64, "dz")


Z53 = np.zeros((5, 3))
Y5 = np.array([0, 1, 2, 1, 0])


@pytest.mark.parametrize("which", ["forward", "backward"])
@pytest.mark.parametrize(
    "args,exc,match",
    [
        ((Z53, np.array([0, 1, 3, 1, 0])), ValueError, r"y\[2\] = 3"),
        ((Z53, np.array([0, 1, 2, -1, 0])), ValueError, r"y\[3\] = -1"),
        ((Z53, np.array([0, 1, 2, 1, 200], dtype=np.uint8)), ValueError, r"y\[4\]"),
        ((Z53, Y5.astype(np.float64)), TypeError, "y must hold integer"),
        ((Z53, Y5.astype(np.float32)), TypeError, "y must hold integer"),
        ((Z53, Y5.astype(bool)), TypeError, "y"),
        ((Z53, Y5[:4]), ValueError, "y must hold one label per row"),
        ((Z53, np.zeros((5, 2), dtype=np.int64)), ValueError, "y must hold one label per row"),
        ((Z53, Y5, np.ones(2)), ValueError, "class_weights must have shape"),
        ((Z53, Y5, np.ones(4)), ValueError, "class_weights must have shape"),
        ((Z53, Y5, np.ones((1, 3))), ValueError, "class_weights must have shape"),
        ((Z53, Y5, np.ones(3, dtype=np.float32)), TypeError, "class_weights"),
        ((Z53, Y5, [1.0, 1.0, 1.0]), TypeError, "class_weights"),
        ((Z53, Y5, np.array([1.0, -1.0, 1.0])), ValueError, "class_weights"),
        ((Z53, Y5, np.array([1.0, np.nan, 1.0])), ValueError, "class_weights"),
        ((Z53, np.array([0, 1, 1, 0, 0]), np.array([0.0, 0.0, 5.0])), ValueError, "sum to zero"),
        ((np.zeros((0, 3)), np.zeros(0, dtype=np.int64)), ValueError, "empty"),
        ((np.zeros((5, 0)), Y5), ValueError, "empty"),
        ((np.zeros(5), Y5), ValueError, "2-D"),
        ((np.zeros((5, 3), dtype=np.int64), Y5), TypeError, "float32 or float64"),
        ((np.zeros((3, 5)).T, Y5), ValueError, "C-contiguous"),
    ],
    ids=["y-too-big", "y-negative", "y-uint8-too-big", "y-float64", "y-float32", "y-bool",
         "y-short", "y-2d", "w-short", "w-long", "w-2d", "w-dtype", "w-list", "w-negative",
         "w-nan", "w-zero-sum", "empty-rows", "no-classes", "z-1d", "z-int", "z-transposed"],
)
def test_softmax_cross_entropy_bad_arguments(which, args, exc, match):
    fn = core.softmax_cross_entropy if which == "forward" else core.softmax_cross_entropy_backward
    with pytest.raises(exc, match=match):
        fn(*args)


# ---------------------------------------------------------------------------
# MSE, BCE, BCE with logits: (pred, target, reduction) pairs

PAIR_SHAPES = [(1,), (7,), (5, 3), (64, 10), (300, 150), (SPLIT + 7,)]


def _pair_data(loss: str, shape, seed):
    rng = np.random.default_rng(seed)
    if loss == "mse":
        return rng.normal(size=shape), rng.normal(size=shape)
    if loss == "bce":
        p = rng.uniform(0.01, 0.99, size=shape)
        t = rng.uniform(0.0, 1.0, size=shape)  # soft labels ...
        hard = rng.random(size=shape) < 0.5    # ... and hard 0/1 ones
        t[hard] = rng.integers(0, 2, size=int(hard.sum()))
        return p, t
    z = rng.normal(0.0, 4.0, size=shape)      # bce_with_logits
    t = rng.integers(0, 2, size=shape).astype(np.float64)
    t.reshape(-1)[::3] = 0.3
    return z, t


# name -> (forward kernel, backward kernel, forward reference, backward reference)
PAIR_LOSSES = {
    "mse": (core.mse, core.mse_backward, ref.mse, ref.mse_backward),
    "bce": (core.binary_cross_entropy, core.binary_cross_entropy_backward, ref.bce, ref.bce_backward),
    "bce_with_logits": (core.binary_cross_entropy_with_logits,
                        core.binary_cross_entropy_with_logits_backward,
                        ref.bce_with_logits, ref.bce_with_logits_backward),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", PAIR_SHAPES, ids=_ids(PAIR_SHAPES))
@pytest.mark.parametrize("loss", list(PAIR_LOSSES))
def test_pair_loss_matches_reference(loss, shape, reduction, dtype, threads):
    fwd, _, ref_fwd, _ = PAIR_LOSSES[loss]
    x, t = _pair_data(loss, shape, 60 + shape[0])
    # The losses accumulate in double whatever the dtype: a float32 input must
    # give the float64 reference's value of the same (rounded) numbers.
    value = check_op(loss, fwd, ref_fwd, [x, t], dtype, kwargs={"reduction": reduction},
                     **tol(dtype, "double_accumulated")._asdict())
    assert value >= 0.0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", PAIR_SHAPES, ids=_ids(PAIR_SHAPES))
@pytest.mark.parametrize("loss", list(PAIR_LOSSES))
def test_pair_loss_backward_matches_reference(loss, shape, reduction, dtype, threads):
    _, bwd, _, ref_bwd = PAIR_LOSSES[loss]
    x, t = _pair_data(loss, shape, 70 + shape[0])
    grad = check_op(f"{loss}_backward", bwd, ref_bwd, [x, t], dtype, kwargs={"reduction": reduction})
    assert grad.shape == shape


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6,), (4, 3)], ids=["1d", "2d"])
@pytest.mark.parametrize("loss", list(PAIR_LOSSES))
def test_pair_loss_gradient_matches_finite_differences(loss, shape, reduction):
    fwd, bwd, _, _ = PAIR_LOSSES[loss]
    x, t = _pair_data(loss, shape, 80)
    if loss == "bce":
        x = np.clip(x, 0.05, 0.95)  # keep p +- h inside (0, 1), away from the clamps
    analytic = bwd(x, t, reduction)
    numeric = ref.central_difference(lambda xx: fwd(xx, t, reduction), x)
    assert_close(analytic, numeric, np.float64, f"d {loss} / dx ({reduction})", *FINITE_DIFFERENCE)


def test_mean_divides_by_rows_not_elements():
    pred, target = np.ones((4, 5)), np.zeros((4, 5))
    assert core.mse(pred, target, "sum") == 10.0
    assert core.mse(pred, target, "mean") == 2.5  # 0.5 * 20 / 4 rows
    np.testing.assert_array_equal(core.mse_backward(pred, target, "mean"), 0.25)
    assert core.mse(pred.reshape(-1), target.reshape(-1), "mean") == 0.5  # 1-D: m = 20 rows


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bce_at_exact_zero_and_one(dtype):
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5], dtype=dtype)
    t = np.array([1.0, 0.0, 1.0, 0.0, 0.5, 0.25, 1.0], dtype=dtype)
    # each log clamped at -100: terms 100, 0, 0, 100, 50, 75, log 2
    expected = 100 + 0 + 0 + 100 + 50 + 75 + np.log(2.0)
    loss = core.binary_cross_entropy(p, t, "sum")
    assert np.isfinite(loss)
    assert_close(loss, expected, np.float64, "bce(0/1)")
    assert_close(loss, ref.bce(p, t, "sum"), np.float64, "bce(0/1) vs reference")
    grad = core.binary_cross_entropy_backward(p, t, "sum")
    assert np.isfinite(grad).all()
    assert_close(grad, ref.bce_backward(p, t, "sum"), dtype, "bce_backward(0/1)")
    assert grad[0] == dtype(-1e12) and grad[3] == dtype(1e12) and grad[1] == 0 and grad[2] == 0


def test_bce_log_clamp_for_tiny_probabilities():
    p = np.array([1e-50, 1e-30, 1.0 - 1e-15])
    t = np.array([1.0, 1.0, 0.0])
    # log(1e-50) = -115 is clamped to -100; log(1e-30) = -69 is not
    expected = 100.0 + 30 * np.log(10.0) - np.log1p(-(1.0 - 1e-15))
    assert_close(core.binary_cross_entropy(p, t, "sum"), expected, np.float64, "bce(tiny p)")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bce_with_logits_stable_for_huge_logits(dtype):
    z = np.array([1e3, -1e3, 1e3, -1e3, 1e4, -1e4, 0.0], dtype=dtype)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 1.0], dtype=dtype)
    expected = 1e3 + 1e3 + 0 + 0 + 1e4 + 5e3 + np.log(2.0)
    loss = core.binary_cross_entropy_with_logits(z, t, "sum")
    assert np.isfinite(loss)
    assert_close(loss, expected, np.float64, "bce_with_logits(1e3)")
    assert_close(loss, ref.bce_with_logits(z, t, "sum"), np.float64, "vs reference")
    grad = core.binary_cross_entropy_with_logits_backward(z, t, "sum")
    np.testing.assert_array_equal(grad, np.array([1, -1, 0, 0, 1, -0.5, -0.5], dtype=dtype))


def test_bce_with_logits_equals_bce_of_sigmoid():
    rng = np.random.default_rng(90)
    z = rng.uniform(-5, 5, size=(20, 3))
    t = rng.uniform(0, 1, size=(20, 3))
    p = core.activation_forward(z, "sigmoid")
    for reduction in REDUCTIONS:
        assert_close(core.binary_cross_entropy_with_logits(z, t, reduction),
                     core.binary_cross_entropy(p, t, reduction), np.float64, "bcewl vs bce", rtol=1e-10)
        # d/dz bce(sigmoid(z)) = bce'(p) * p (1 - p) = p - t
        assert_close(core.binary_cross_entropy_with_logits_backward(z, t, reduction),
                     core.binary_cross_entropy_backward(p, t, reduction) * p * (1 - p),
                     np.float64, "bcewl' vs bce' sigmoid'", rtol=1e-10)


BCE_FUNCS = [core.binary_cross_entropy, core.binary_cross_entropy_backward]
BCE_FUNC_IDS = ["bce", "bce_backward"]
PAIR_FUNCS = [f for fwd, bwd, _, _ in PAIR_LOSSES.values() for f in (fwd, bwd)]
PAIR_FUNC_IDS = [n + s for n in PAIR_LOSSES for s in ("", "_backward")]


@pytest.mark.parametrize("fn", BCE_FUNCS, ids=BCE_FUNC_IDS)
@pytest.mark.parametrize("bad", [1.0000001, -1e-9, 2.0, np.nan, np.inf])
def test_bce_rejects_pred_outside_unit_interval(fn, bad):
    p = np.full((3, 4), 0.5)
    p[1, 2] = bad
    with pytest.raises(ValueError, match=r"pred\[6\]"):
        fn(p, np.full((3, 4), 0.5), "mean")


@pytest.mark.parametrize("fn", BCE_FUNCS + [core.binary_cross_entropy_with_logits,
                                            core.binary_cross_entropy_with_logits_backward],
                         ids=BCE_FUNC_IDS + ["bcewl", "bcewl_backward"])
@pytest.mark.parametrize("bad", [1.5, -0.5, np.nan])
def test_bce_rejects_target_outside_unit_interval(fn, bad):
    t = np.full(5, 0.5)
    t[3] = bad
    with pytest.raises(ValueError, match=r"target\[3\]"):
        fn(np.full(5, 0.5), t, "sum")


@pytest.mark.parametrize("fn", PAIR_FUNCS, ids=PAIR_FUNC_IDS)
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
        (np.full((2, 6), 0.5)[:, ::2], np.full((2, 3), 0.5), {}, ValueError, "C-contiguous"),
        (np.full((3, 2), 0.5), np.full((2, 3), 0.5).T, {}, ValueError, "C-contiguous"),
        (np.full((3, 2), 0.5), np.full((3, 2), 0.5), {"reduction": "avg"}, ValueError, "reduction"),
        (np.full((3, 2), 0.5), np.full((3, 2), 0.5), {"reduction": "none"}, ValueError, "reduction"),
    ],
    ids=["empty-1d", "empty-rows", "empty-cols", "shapes", "1d-vs-2d", "3d", "target-dtype",
         "pred-f32-target-f64", "int", "pred-strided", "target-transposed", "avg", "none"],
)
def test_pair_loss_bad_arguments(fn, x, t, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(x, t, **kwargs)


# ---------------------------------------------------------------------------
# sum_of_squares (the L2 penalty is lambda / 2 * sum_of_squares(W))

SOS_SHAPES = [(1,), (7,), (3, 4, 5), (300, 150), (2 * SPLIT + 3,)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", SOS_SHAPES, ids=_ids(SOS_SHAPES))
def test_sum_of_squares_matches_reference(shape, dtype, threads):
    rng = np.random.default_rng(100 + shape[0])
    w = rng.normal(0.0, 2.0, size=shape)
    # accumulated in double: float32 input must match the float64 sum of its values
    check_op("sum_of_squares", core.sum_of_squares, ref.sum_of_squares, [w], dtype,
             **tol(dtype, "double_accumulated")._asdict())


def test_sum_of_squares_float32_accumulates_in_double():
    # 1e6 squares of 0.1f: a float32 running sum (even one split in two) is off
    # by ~1e-4 relative or more; a double one agrees with the exact value to ~1e-13.
    w = np.full(1_000_000, 0.1, dtype=np.float32)
    expected = 1_000_000 * float(np.float32(0.1)) ** 2
    assert_close(core.sum_of_squares(w), expected, np.float64, "sum_of_squares(0.1f x 1e6)", rtol=1e-10)


def test_sum_of_squares_gradient_matches_finite_differences():
    rng = np.random.default_rng(110)
    w = rng.normal(size=(3, 5))
    numeric = ref.central_difference(core.sum_of_squares, w)
    assert_close(2.0 * w, numeric, np.float64, "d sum_of_squares / dw", *FINITE_DIFFERENCE)


@pytest.mark.parametrize(
    "w,exc",
    [(np.ones((3, 4), dtype=np.int64), TypeError), (np.ones((3, 4), dtype=np.float16), TypeError),
     (np.ones((3, 8))[:, ::2], ValueError), (np.ones((4, 3)).T, ValueError)],
    ids=["int", "f16", "strided", "transposed"],
)
def test_sum_of_squares_bad_arguments(w, exc):
    with pytest.raises(exc):
        core.sum_of_squares(w)
