"""The fully connected layer against the float64 reference (cpp/dense/dense.h):
dense_forward for every activation, dense_backward with and without the L2
term and dX, bias_add and bias_grad, b as (n,) and MATLAB-style (1, n), and
dense_backward against central differences of a scalar loss."""

from __future__ import annotations

import numpy as np
import pytest

import natverk._core as core
import reference as ref
from tolerances import FINITE_DIFFERENCE, assert_close, check_op, gemm_atol, tol

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh"]
# (m, n_in, n_out)
SHAPES = [(1, 1, 1), (1, 13, 7), (5, 3, 4), (33, 17, 9), (64, 784, 100), (300, 70, 257)]
SHAPE_IDS = [f"{m}x{i}x{o}" for m, i, o in SHAPES]


def _layer(seed, m, n_in, n_out, bias_2d=False):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(m, n_in))
    W = rng.uniform(-1.0, 1.0, size=(n_in, n_out))
    b = rng.uniform(-1.0, 1.0, size=(1, n_out) if bias_2d else (n_out,))
    return rng, X, W, b


def _gemm_tol(dtype, k, extra=0.0):
    """GEMM-based outputs: the gemm atol for a k-term product of O(1) data (see tolerances)."""
    return dict(rtol=tol(dtype, "gemm").rtol, atol=gemm_atol(dtype, k, 1.0, 1.0, beta=1.0, cmax=extra))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("bias_2d", [False, True], ids=["b(n,)", "b(1,n)"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("m,n_in,n_out", SHAPES, ids=SHAPE_IDS)
def test_dense_forward_matches_reference(m, n_in, n_out, activation, bias_2d, dtype, threads):
    _, X, W, b = _layer(10 + m + n_in, m, n_in, n_out, bias_2d)
    H = check_op(f"dense_forward[{activation}]", core.dense_forward, ref.dense_forward,
                 [X, W, b, activation], dtype, **_gemm_tol(dtype, n_in, extra=1.0))
    assert H.shape == (m, n_out)


def test_dense_forward_default_activation_is_linear():
    _, X, W, b = _layer(1, 6, 5, 4)
    np.testing.assert_array_equal(core.dense_forward(X, W, b), core.dense_forward(X, W, b, "linear"))
    assert_close(core.dense_forward(X, W, b), X @ W + b, np.float64, "linear layer")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("need_dX", [True, False], ids=["dX", "no-dX"])
@pytest.mark.parametrize("lambda_", [0.0, 0.01, 2.5])
@pytest.mark.parametrize("m,n_in,n_out", SHAPES, ids=SHAPE_IDS)
def test_dense_backward_matches_reference(m, n_in, n_out, lambda_, need_dX, dtype, threads):
    rng, X, W, _ = _layer(20 + m + n_in, m, n_in, n_out)
    dZ = rng.uniform(-1.0, 1.0, size=(m, n_out))
    dX, dW, db = check_op("dense_backward", core.dense_backward, ref.dense_backward, [dZ, X, W], dtype,
                          kwargs={"lambda_": lambda_, "need_dX": need_dX},
                          **_gemm_tol(dtype, max(m, n_out), extra=lambda_))
    if need_dX:
        assert dX.shape == (m, n_in)
    else:
        assert dX is None
    assert dW.shape == (n_in, n_out) and db.shape == (n_out,)


def test_dense_backward_lambda_adds_exactly_lambda_w():
    rng, X, W, _ = _layer(3, 11, 6, 5)
    dZ = rng.normal(size=(11, 5))
    _, dW0, db0 = core.dense_backward(dZ, X, W)
    _, dW1, db1 = core.dense_backward(dZ, X, W, lambda_=0.3)
    assert_close(dW1 - dW0, 0.3 * W, np.float64, "dW(lambda) - dW(0)")
    np.testing.assert_array_equal(db0, db1)  # the bias is not regularised


# ---------------------------------------------------------------------------
# bias helpers


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("bias_2d", [False, True], ids=["b(n,)", "b(1,n)"])
@pytest.mark.parametrize("m,n", [(1, 1), (7, 5), (3, 200), (2000, 150)])
def test_bias_add_in_place(m, n, bias_2d, dtype, threads):
    rng = np.random.default_rng(30 + m)
    Z = rng.normal(size=(m, n)).astype(dtype)
    b = rng.normal(size=(1, n) if bias_2d else (n,)).astype(dtype)
    Z_before = Z.copy()
    out = core.bias_add(Z, b)
    assert out is Z, "bias_add must update Z in place and return it"
    np.testing.assert_array_equal(Z, Z_before + b.reshape(1, n))  # one rounding: exact
    assert_close(Z, ref.bias_add(Z_before, b), dtype, "bias_add")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("m,n", [(1, 1), (1, 9), (1000, 1), (7, 5), (3, 200), (2000, 150), (300, 64)])
def test_bias_grad_matches_reference(m, n, dtype, threads):
    rng = np.random.default_rng(40 + m + n)
    dZ = rng.normal(size=(m, n))
    if dtype == np.float64:
        rtol, atol = tol(dtype, "double_accumulated")
    else:
        # Accumulated in double and rounded once to float32: within one float32
        # ulp (2**-23 relative) of the float64 sum of the same values. A float32
        # accumulator over 2000 rows would be off by many ulps.
        rtol, atol = 2.0**-23, 1e-30
    db = check_op("bias_grad", core.bias_grad, ref.bias_grad, [dZ], dtype, rtol=rtol, atol=atol)
    assert db.shape == (n,)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("m,n", [(1, 1), (128, 250), (3, 63), (5, 64), (300, 65), (2, 130), (40, 7)])
def test_bias_grad_is_the_row_order_double_sum_bit_for_bit(m, n, dtype, simd, threads):
    # Each SIMD level's copy runs its lanes across columns: every column is still one double sum
    # in row order, rounded once to the dtype (the copy per level must not change a bit).
    rng = np.random.default_rng(m * 7 + n)
    dZ = (rng.normal(size=(m, n)) * np.exp(rng.uniform(-20, 20, size=(m, n)))).astype(dtype)
    acc = np.zeros(n)
    for row in dZ:
        acc = acc + row.astype(np.float64)
    np.testing.assert_array_equal(core.bias_grad(dZ).view(np.uint8), acc.astype(dtype).view(np.uint8))


# ---------------------------------------------------------------------------
# gradients against central differences (float64)


@pytest.mark.parametrize("lambda_", [0.0, 0.7])
@pytest.mark.parametrize("bias_2d", [False, True], ids=["b(n,)", "b(1,n)"])
@pytest.mark.parametrize("m,n_in,n_out", [(1, 3, 2), (4, 5, 3)])
def test_dense_backward_matches_finite_differences(m, n_in, n_out, bias_2d, lambda_):
    rng, X, W, b = _layer(50 + m, m, n_in, n_out, bias_2d)
    G = rng.normal(size=(m, n_out))

    # L = sum(G * (X W + b)) + lambda / 2 * sum(W^2): dL/dZ = G
    def loss(X_, W_, b_):
        return float(np.sum(G * core.dense_forward(X_, W_, b_, "linear"))) + 0.5 * lambda_ * core.sum_of_squares(W_)

    dX, dW, db = core.dense_backward(G, X, W, lambda_=lambda_)
    fd = FINITE_DIFFERENCE
    assert_close(dX, ref.central_difference(lambda x: loss(x, W, b), X), np.float64, "dL/dX", *fd)
    assert_close(dW, ref.central_difference(lambda w: loss(X, w, b), W), np.float64, "dL/dW", *fd)
    assert_close(db, ref.central_difference(lambda bb: loss(X, W, bb), b).reshape(-1), np.float64, "dL/db", *fd)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "linear"])
def test_layer_chain_rule_matches_finite_differences(activation):
    # L = sum(G * f(X W + b)): dZ = activation_backward(G, H), then dense_backward.
    rng, X, W, b = _layer(60, 4, 5, 3)
    G = rng.normal(size=(4, 3))

    def loss(X_, W_, b_):
        return float(np.sum(G * core.dense_forward(X_, W_, b_, activation)))

    H = core.dense_forward(X, W, b, activation)
    dZ = core.activation_backward(G, H, activation)
    dX, dW, db = core.dense_backward(dZ, X, W)
    fd = FINITE_DIFFERENCE
    assert_close(dX, ref.central_difference(lambda x: loss(x, W, b), X), np.float64, "dL/dX", *fd)
    assert_close(dW, ref.central_difference(lambda w: loss(X, w, b), W), np.float64, "dL/dW", *fd)
    assert_close(db, ref.central_difference(lambda bb: loss(X, W, bb), b), np.float64, "dL/db", *fd)


# ---------------------------------------------------------------------------
# argument checking


def _ones(*shape, dtype=np.float64):
    return np.ones(shape, dtype=dtype)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: core.dense_forward(_ones(4, 3), _ones(5, 2), _ones(2)), ValueError, "columns"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 2), _ones(3)), ValueError, "b must have shape"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 2), _ones(2, 1)), ValueError, "b must have shape"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 2), _ones(4, 2)), ValueError, "b must have shape"),
        (lambda: core.dense_forward(_ones(3), _ones(3, 2), _ones(2)), ValueError, "X must be 2-D"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 2, 1), _ones(2)), ValueError, "W must be 2-D"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 2), _ones(2), "softmax"), ValueError, "activation"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 2, dtype=np.float32), _ones(2)), TypeError, "W"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 2), _ones(2, dtype=np.float32)), TypeError, "b"),
        (lambda: core.dense_forward(_ones(4, 3, dtype=np.int64), _ones(3, 2), _ones(2)), TypeError, "X"),
        (lambda: core.dense_forward(_ones(3, 4).T, _ones(3, 2), _ones(2)), ValueError, "C-contiguous"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 4)[:, ::2], _ones(2)), ValueError, "C-contiguous"),
        (lambda: core.dense_forward(_ones(4, 3), _ones(3, 2), _ones(4)[::2]), ValueError, "C-contiguous"),
        (lambda: core.dense_backward(_ones(4, 3), _ones(4, 5), _ones(5, 2)), ValueError, "do not chain"),
        (lambda: core.dense_backward(_ones(3, 2), _ones(4, 5), _ones(5, 2)), ValueError, "do not chain"),
        (lambda: core.dense_backward(_ones(4, 2), _ones(4, 5), _ones(4, 2)), ValueError, "do not chain"),
        (lambda: core.dense_backward(_ones(4, 2), _ones(4, 5), _ones(5, 2), np.nan), ValueError, "lambda_"),
        (lambda: core.dense_backward(_ones(8), _ones(4, 5), _ones(5, 2)), ValueError, "dZ must be 2-D"),
        (lambda: core.dense_backward(_ones(4, 2), _ones(4, 5, dtype=np.float32), _ones(5, 2)), TypeError, "X"),
        (lambda: core.dense_backward(_ones(4, 2, dtype=np.int32), _ones(4, 5), _ones(5, 2)), TypeError, "dZ"),
        (lambda: core.dense_backward(_ones(2, 4).T, _ones(4, 5), _ones(5, 2)), ValueError, "C-contiguous"),
        (lambda: core.bias_add(_ones(4, 3), _ones(4)), ValueError, "b must have shape"),
        (lambda: core.bias_add(_ones(4, 3), _ones(3, dtype=np.float32)), TypeError, "b"),
        (lambda: core.bias_add(_ones(12), _ones(3)), ValueError, "Z must be 2-D"),
        (lambda: core.bias_add(_ones(3, 4).T, _ones(3)), ValueError, "C-contiguous"),
        (lambda: core.bias_grad(_ones(12)), ValueError, "dZ must be 2-D"),
        (lambda: core.bias_grad(_ones(4, 3, dtype=np.int64)), TypeError, "dZ"),
        (lambda: core.bias_grad(_ones(3, 8)[:, ::2]), ValueError, "C-contiguous"),
    ],
    ids=["fwd-inner", "fwd-b-len", "fwd-b-col", "fwd-b-rows", "fwd-X-1d", "fwd-W-3d", "fwd-activation",
         "fwd-W-dtype", "fwd-b-dtype", "fwd-X-int", "fwd-X-transposed", "fwd-W-strided", "fwd-b-strided",
         "bwd-dZ-cols", "bwd-dZ-rows", "bwd-W-rows", "bwd-lambda-nan", "bwd-dZ-1d", "bwd-X-dtype",
         "bwd-dZ-int", "bwd-dZ-transposed", "add-b-len", "add-b-dtype", "add-Z-1d", "add-Z-transposed",
         "grad-1d", "grad-int", "grad-strided"],
)
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_bias_add_read_only_z_is_rejected_and_untouched():
    Z = np.zeros((3, 2))
    Z.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        core.bias_add(Z, np.ones(2))
    np.testing.assert_array_equal(Z, 0.0)


# (m, n_in, n_out): edge tiles in both directions (rows not a multiple of MR = 6, columns past
# the last full panel by less and by more than one vector), k = 0, and k past KC = 256, where
# the bias must enter in the first k block only and the ReLU after the last.
EPILOGUE_SHAPES = [(1, 1, 1), (7, 3, 5), (13, 2, 250), (64, 784, 100), (130, 600, 33), (3, 300, 17), (9, 0, 12)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("m,n_in,n_out", EPILOGUE_SHAPES, ids=[f"{m}x{i}x{o}" for m, i, o in EPILOGUE_SHAPES])
def test_dense_forward_epilogue_gives_the_bits_of_the_three_passes(m, n_in, n_out, activation, dtype, threads, simd):
    """dense_forward adds the bias and applies a ReLU in the GEMM's epilogue (gemm_bias_act): the
    result must be bit for bit that of filling H with b, gemm with beta = 1 and activation_forward,
    including NaN (kept by the ReLU), -0 and exact zeros (to +0), and Inf."""
    rng = np.random.default_rng(m * 1000 + n_in * 10 + n_out)
    X = rng.uniform(-1.0, 1.0, size=(m, n_in)).astype(dtype)
    W = rng.uniform(-1.0, 1.0, size=(n_in, n_out)).astype(dtype)
    b = rng.uniform(-1.0, 1.0, size=n_out).astype(dtype)
    if n_out >= 3:
        b[0], b[1], b[2] = -0.0, np.inf, 0.0  # -0 + 0 sums, an Inf column
    if n_in and m >= 2 and n_out >= 4:
        X[1, 0] = np.nan  # a NaN row: kept by the ReLU
        W[:, 3] = 0.0  # column 3 is exactly b[3] (or -0 when b[3] is -0)
    H = core.dense_forward(X, W, b, activation)
    three = core.gemm(X, W, np.tile(b, (m, 1)), beta=1.0)
    three = core.activation_forward(three, activation)
    assert H.dtype == three.dtype and H.shape == three.shape
    np.testing.assert_array_equal(H.view(np.uint8), three.view(np.uint8),
                                  err_msg="the epilogue rounds differently from the three passes")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("lambda_", [0.0, 0.5])
@pytest.mark.parametrize("m,n_in,n_out", EPILOGUE_SHAPES, ids=[f"{m}x{i}x{o}" for m, i, o in EPILOGUE_SHAPES])
def test_dense_backward_relu_mask_gives_the_bits_of_the_two_passes(m, n_in, n_out, lambda_, dtype, threads, simd):
    """relu_mask=True applies ReLU's backward, where(X > 0, dX, 0), in the epilogue of the dX GEMM
    (gemm_relu_mask): bit for bit dense_backward and then activation_backward(dX, X, "relu"),
    with X holding NaN (masked to 0), -0 and exact zeros (masked), Inf (kept), rows past the last
    full row tile, columns past the last full panel, and products more than one k block deep
    (n_out = 250 .. 600 over 100-784 rows); dW and db are those of relu_mask=False. Close to the
    float64 reference too."""
    rng = np.random.default_rng(m * 1000 + n_in * 10 + n_out + 7)
    X = rng.uniform(-1.0, 1.0, size=(m, n_in)).astype(dtype)
    W = rng.uniform(-1.0, 1.0, size=(n_in, n_out)).astype(dtype)
    dZ = rng.uniform(-1.0, 1.0, size=(m, n_out)).astype(dtype)
    if n_in >= 4 and m >= 2:
        X[0, :4] = [-0.0, 0.0, np.nan, np.inf]
        X[1, 1] = -np.inf
    dX, dW, db = core.dense_backward(dZ, X, W, lambda_, True, relu_mask=True)
    dX2, dW2, db2 = core.dense_backward(dZ, X, W, lambda_, True)
    two = core.activation_backward(dX2, X, "relu")
    for got, want, what in [(dX, two, "dX"), (dW, dW2, "dW"), (db, db2, "db")]:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8),
                                      err_msg=f"{what}: the masked epilogue differs from the two passes")
    ref_dX = ref.dense_backward(dZ, X, W, lambda_, True, True)[0]
    assert_close(dX, ref_dX, dtype, "masked dX", **_gemm_tol(dtype, n_out))


def test_dense_backward_relu_mask_needs_dx():
    _, X, W, _ = _layer(4, 5, 3, 2)
    with pytest.raises(ValueError, match="relu_mask=True masks dX: it needs need_dX=True"):
        core.dense_backward(np.ones((5, 2)), X, W, 0.0, False, relu_mask=True)
