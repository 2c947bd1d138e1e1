"""The MATLAB network's fused steps against the MATLAB-structured step-by-step calls: the same
weights, bit for bit, for every optimizer, activation and dtype, and clear errors for bad input.
``natverk.train`` runs the step plan (``natverk.models._plan.matlab_plan``; tests/test_plan.py
has its own checks, past one GEMM k-block too); ``_core.mlp_train_step`` is the older one-step
kernel, still bound for the kernel-boundary tests."""

from __future__ import annotations

import numpy as np
import pytest

import natverk
from natverk import _core
from natverk.optimizers.table import resolve
from natverk.train import train_step_by_step

OPTIMIZERS = ["vanilla", "momentum", "rmsprop", "adam"]


def _problem(dtype, nodes=(7, 13, 5, 3), m=37, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, nodes[0])).astype(dtype)
    y = rng.integers(0, nodes[-1], m)
    return X, y, natverk.initialize_weights(list(nodes), seed=seed, dtype=dtype)


def _copy(params):
    return {k: v.copy() for k, v in params.items()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_fused_step_is_bit_identical_to_the_step_by_step_calls(dtype, optimizer, activation):
    X, y, params = _problem(dtype)
    a, b = _copy(params), _copy(params)
    batches = [np.arange(0, 16), np.arange(16, 37), np.arange(5, 6)]  # batch of 1 too
    for t, idx in enumerate(batches * 2, start=1):
        loss_ref = train_step_by_step(a, X[idx], y[idx], 0.05, 0.01, activation, optimizer, t=t)
        W = [b[f"W{l}"] for l in (1, 2, 3)]
        B = [b[f"b{l}"] for l in (1, 2, 3)]
        state = {}
        if optimizer in ("momentum", "adam"):
            state["v_weights"] = [b.setdefault(f"v_dW{l}", np.zeros_like(b[f"W{l}"])) for l in (1, 2, 3)]
            state["v_biases"] = [b.setdefault(f"v_db{l}", np.zeros_like(b[f"b{l}"])) for l in (1, 2, 3)]
        if optimizer in ("rmsprop", "adam"):
            state["s_weights"] = [b.setdefault(f"s_dW{l}", np.zeros_like(b[f"W{l}"])) for l in (1, 2, 3)]
            state["s_biases"] = [b.setdefault(f"s_db{l}", np.zeros_like(b[f"b{l}"])) for l in (1, 2, 3)]
        loss, data_loss, psi = _core.mlp_train_step(X[idx], y[idx], W, B, activation, 0.01, resolve(optimizer).name, 0.05,
                                                    t=t, **state)
        assert loss == loss_ref
        assert loss == pytest.approx(data_loss + 0.5 * 0.01 * psi, rel=1e-12)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_train_runs_the_step_plan_and_matches_the_matlab_loop(optimizer):
    X, y, params = _problem(np.float64, m=50)
    a, b = _copy(params), _copy(params)
    natverk.train(a, X, y, epochs=3, learning_rate=0.01, minibatch_size=16, lambda_=0.003,
                  optimizer=optimizer, seed=4, verbose=0)
    rng, t = np.random.default_rng(4), 0
    for _ in range(3):
        for idx in natverk.minibatches(50, 16, rng):
            t += optimizer == "adam"
            train_step_by_step(b, X[idx], y[idx], 0.01, 0.003, "relu", optimizer, t=max(t, 1))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_bad_input_raises_clear_errors():
    X, y, p = _problem(np.float64)
    W = [p["W1"], p["W2"], p["W3"]]
    B = [p["b1"], p["b2"], p["b3"]]
    with pytest.raises(ValueError, match="optimizer"):
        _core.mlp_train_step(X, y, W, B, "relu", 0.0, "lbfgs", 0.1)
    with pytest.raises(ValueError, match="v_weights is required"):
        _core.mlp_train_step(X, y, W, B, "relu", 0.0, "momentum", 0.1)
    with pytest.raises(ValueError, match="weights\\[1\\]"):
        _core.mlp_train_step(X, y, [W[0], W[2], W[1]], B, "relu", 0.0, "sgd", 0.1)
    with pytest.raises(ValueError, match="biases\\[0\\]"):
        _core.mlp_train_step(X, y, W, [B[1], B[1], B[2]], "relu", 0.0, "sgd", 0.1)
    with pytest.raises(TypeError, match="weights\\[0\\]"):
        _core.mlp_train_step(X, y, [W[0].astype(np.float32), W[1], W[2]], B, "relu", 0.0, "sgd", 0.1)
    with pytest.raises(ValueError, match="label"):
        _core.mlp_train_step(X, np.full(len(y), 3), W, B, "relu", 0.0, "sgd", 0.1)
    with pytest.raises(ValueError, match="one label per row"):
        _core.mlp_train_step(X, y[:-1], W, B, "relu", 0.0, "sgd", 0.1)
    with pytest.raises(ValueError, match="lambda_"):
        _core.mlp_train_step(X, y, W, B, "relu", -1.0, "sgd", 0.1)
    with pytest.raises(ValueError, match="t \\(the Adam"):
        _core.mlp_train_step(X, y, W, B, "relu", 0.0, "adam", 0.1, t=0, v_weights=W, v_biases=B,
                             s_weights=W, s_biases=B)
    frozen = W[0].copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.mlp_train_step(X, y, [frozen, W[1], W[2]], B, "relu", 0.0, "sgd", 0.1)
    with pytest.raises(ValueError, match="empty"):
        _core.mlp_train_step(X[:0], y[:0], W, B, "relu", 0.0, "sgd", 0.1)
