"""The MATLAB-structured network API against a NumPy reference and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import natverk
from reference import central_difference_inplace
from reference_mlp import backward as ref_backward
from reference_mlp import forward as ref_forward

TOL = {np.float64: dict(rtol=1e-11, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}

ARCHS = [
    [2, 4],  # no hidden layer
    [3, 7, 5],
    [2, 250, 100, 50, 4],  # the thesis' spiral net
    [5, 9, 17, 3, 11, 3],  # 4 hidden layers, odd widths
    [4, 6, 6, 6, 6, 6, 2],  # 5 hidden layers
]


def _data(rng, m, n0, K, dtype):
    X = rng.standard_normal((m, n0)).astype(dtype)
    y = rng.integers(0, K, size=m)
    return X, y


def _assert_close(actual, expected, dtype, what):
    tol = TOL[dtype]
    actual = np.asarray(actual, dtype=np.float64)
    diff = np.abs(actual - expected)
    bound = tol["atol"] + tol["rtol"] * np.abs(expected)
    if not np.all(diff <= bound):
        i = np.unravel_index(np.argmax(diff - bound), diff.shape) if diff.ndim else ()
        pytest.fail(f"{what}: max excess at {i}: natverk {actual[i]!r} vs reference {expected[i]!r}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("nodes", ARCHS, ids=lambda n: "-".join(map(str, n)))
@pytest.mark.parametrize("m", [1, 37])
@pytest.mark.parametrize("lambda_", [0.0, 0.3])
def test_forward_and_backward_match_numpy(dtype, activation, nodes, m, lambda_):
    rng = np.random.default_rng(hash((str(dtype), activation, len(nodes), m)) % 2**32)
    params = natverk.initialize_weights(nodes, seed=rng, dtype=dtype)
    for l in range(1, len(nodes)):  # non-zero biases so bias bugs show
        params[f"b{l}"][...] = rng.standard_normal(params[f"b{l}"].shape)
    X, y = _data(rng, m, nodes[0], nodes[-1], dtype)
    ref_params = {k: v.astype(np.float64) for k, v in params.items()}

    probs, loss, cache = natverk.forward_propagation(X, y, params, lambda_, activation)
    r_probs, r_loss, r_hs = ref_forward(X.astype(np.float64), y, ref_params, lambda_, activation)
    assert probs.dtype == dtype and probs.shape == (m, nodes[-1])
    _assert_close(probs, r_probs, dtype, "probs")
    _assert_close(loss, r_loss, dtype, "loss")
    for l, h in enumerate(r_hs):
        _assert_close(cache[f"h{l}"], h, dtype, f"h{l}")
    psi = sum(float(np.sum(ref_params[f"W{l}"] ** 2)) for l in range(1, len(nodes)))
    _assert_close(cache["psi"], psi, dtype, "psi")
    _assert_close(cache["no_reg_loss"], r_loss - 0.5 * lambda_ * psi, dtype, "no_reg_loss")

    grads = natverk.back_propagation(cache, y, params, lambda_, activation)
    r_grads = ref_backward(X.astype(np.float64), y, ref_params, lambda_, activation)
    assert set(grads) == set(r_grads)
    for key, g in r_grads.items():
        assert grads[key].shape == params[key[1:]].shape and grads[key].dtype == dtype
        _assert_close(grads[key], g, dtype, key)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("lambda_", [0.0, 0.7])
def test_gradients_match_central_differences(activation, lambda_):
    rng = np.random.default_rng(7)
    nodes = [3, 6, 5, 4]
    params = natverk.initialize_weights(nodes, seed=1)
    for l in range(1, len(nodes)):
        params[f"b{l}"][...] = 0.1 * rng.standard_normal(params[f"b{l}"].shape)
    X, y = _data(rng, 9, 3, 4, np.float64)
    _, _, cache = natverk.forward_propagation(X, y, params, lambda_, activation)
    grads = natverk.back_propagation(cache, y, params, lambda_, activation)
    def loss():
        return natverk.forward_propagation(X, y, params, lambda_, activation)[1]

    for key in [k for k in params if k[0] in "Wb"]:
        approx = central_difference_inplace(loss, params[key], 1e-6)
        np.testing.assert_allclose(grads[f"d{key}"], approx, rtol=1e-6, atol=1e-8, err_msg=key)


def test_gradient_checking_accepts_ours_and_flags_the_seed_bug():
    rng = np.random.default_rng(3)
    nodes = [2, 5, 4, 3]
    lambda_ = 0.5
    params = natverk.initialize_weights(nodes, seed=2)
    X, y = _data(rng, 11, 2, 3, np.float64)
    _, _, cache = natverk.forward_propagation(X, y, params, lambda_, "relu")
    grads = natverk.back_propagation(cache, y, params, lambda_, "relu")
    before = {k: v.copy() for k, v in params.items()}
    assert natverk.gradient_checking(params, grads, X, y, lambda_, "relu") < 1e-7
    for k, v in before.items():  # parameters untouched, optimizer state skipped
        np.testing.assert_array_equal(params[k], v)
    # The seed's back_propogation forgets lambda * W1 for the first layer.
    seed_bug = dict(grads, dW1=grads["dW1"] - lambda_ * params["W1"])
    assert natverk.gradient_checking(params, seed_bug, X, y, lambda_, "relu") > 1e-3


def test_gradient_checking_works_for_float32_parameters():
    rng = np.random.default_rng(4)
    params = natverk.initialize_weights([3, 4, 2], seed=5, dtype=np.float32)
    X, y = _data(rng, 6, 3, 2, np.float32)
    _, _, cache = natverk.forward_propagation(X, y, params, 0.1, "tanh")
    grads = natverk.back_propagation(cache, y, params, 0.1, "tanh")
    assert natverk.gradient_checking(params, grads, X, y, 0.1, "tanh") < 1e-5


def test_initialize_weights_is_kaiming_and_reproducible():
    p1 = natverk.initialize_weights([400, 300, 10], seed=0)
    p2 = natverk.initialize_weights([400, 300, 10], seed=0)
    p3 = natverk.initialize_weights([400, 300, 10], seed=1)
    expected = {"W1", "b1", "v_dW1", "v_db1", "s_dW1", "s_db1", "W2", "b2", "v_dW2", "v_db2", "s_dW2", "s_db2"}
    assert set(p1) == expected
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    assert not np.array_equal(p1["W1"], p3["W1"])
    assert p1["W1"].shape == (400, 300) and p1["b1"].shape == (1, 300)
    assert abs(p1["W1"].std() - np.sqrt(2 / 400)) < 0.01 * np.sqrt(2 / 400) * 10
    assert abs(p1["W1"].mean()) < 0.002
    assert not p1["b1"].any() and not p1["v_dW1"].any() and not p1["s_db2"].any()
    p32 = natverk.initialize_weights([400, 300, 10], seed=0, dtype=np.float32)
    assert p32["W1"].dtype == np.float32
    np.testing.assert_allclose(p32["W1"], p1["W1"], rtol=1e-6)


def test_stable_softmax_where_the_seed_gives_nan():
    params = natverk.initialize_weights([2, 3], seed=0)
    params["W1"][...] = [[400.0, -300.0, 0.0], [0.0, 0.0, 900.0]]
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    probs, loss, _ = natverk.forward_propagation(X, np.array([0, 1]), params)
    assert np.all(np.isfinite(probs)) and np.isfinite(loss)
    # -log p for row 2, class 1: logsumexp(0, 0, 900) - 0 = 900
    assert loss == pytest.approx((0.0 + 900.0) / 2, rel=1e-12)
    acc, pred = natverk.check_accuracy(X, np.array([0, 2]), params)
    assert acc == 1.0 and pred.tolist() == [0, 2]


def test_check_accuracy_matches_argmax():
    rng = np.random.default_rng(9)
    params = natverk.initialize_weights([4, 8, 3], seed=9)
    X = rng.standard_normal((50, 4))
    probs, _, _ = natverk.forward_propagation(X, None, params)
    y = rng.integers(0, 3, 50)
    acc, pred = natverk.check_accuracy(X, y, params, 0.0, "relu")
    np.testing.assert_array_equal(pred, probs.argmax(1))
    assert acc == pytest.approx(np.mean(probs.argmax(1) == y))
    acc_row, _ = natverk.check_accuracy(X, y.reshape(1, -1), params)  # MATLAB row vector
    assert acc_row == acc


def test_class_weights_weight_the_loss():
    rng = np.random.default_rng(10)
    params = natverk.initialize_weights([3, 5, 2], seed=3)
    X, y = _data(rng, 20, 3, 2, np.float64)
    w = np.array([1.0, 10.0])
    probs, loss, cache = natverk.forward_propagation(X, y, params, class_weights=w)
    nll = -np.log(probs[np.arange(20), y])
    assert loss == pytest.approx(np.sum(w[y] * nll) / np.sum(w[y]), rel=1e-12)
    grads = natverk.back_propagation(cache, y, params, class_weights=w)
    assert natverk.gradient_checking(params, grads, X, y, 0.0, "relu", class_weights=w) < 1e-7
