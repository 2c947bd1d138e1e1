"""The MATLAB-style optimizer functions: every layer updated, state kept, in place."""

from __future__ import annotations

import numpy as np
import pytest

import natverk


def _setup(dtype=np.float64):
    params = natverk.initialize_weights([3, 4, 2], seed=0, dtype=dtype)
    rng = np.random.default_rng(1)
    grads = {f"d{k}": rng.standard_normal(params[k].shape).astype(dtype) for k in ("W1", "b1", "W2", "b2")}
    return params, grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_several_steps_match_numpy(dtype):
    params, grads = _setup(dtype)
    ref = {k: v.astype(np.float64) for k, v in params.items()}
    W1_obj = params["W1"]
    lr, b1, b2, eps = 1e-2, 0.9, 0.99, 1e-8
    for t in range(1, 6):
        natverk.gradient_descent_adam(grads, params, lr, b1, b2, t)
        for k in ("W1", "b1", "W2", "b2"):
            g = grads[f"d{k}"].astype(np.float64)
            ref[f"v_d{k}"] = b1 * ref[f"v_d{k}"] + (1 - b1) * g
            ref[f"s_d{k}"] = b2 * ref[f"s_d{k}"] + (1 - b2) * g * g
            vh = ref[f"v_d{k}"] / (1 - b1**t)
            sh = ref[f"s_d{k}"] / (1 - b2**t)
            ref[k] = ref[k] - lr * vh / (np.sqrt(sh) + eps)
    assert params["W1"] is W1_obj  # in place
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k in ref:
        np.testing.assert_allclose(params[k], ref[k], rtol=tol, atol=tol, err_msg=k)


def test_vanilla_momentum_rmsprop_match_numpy():
    for name in ("vanilla", "momentum", "rmsprop"):
        params, grads = _setup()
        ref = {k: v.copy() for k, v in params.items()}
        for _ in range(3):
            if name == "vanilla":
                natverk.gradient_descent_vanilla(grads, params, 0.1)
            elif name == "momentum":
                natverk.gradient_descent_momentum(grads, params, 0.1, 0.8)
            else:
                natverk.gradient_descent_rmsprop(grads, params, 0.1, 0.9)
            for k in ("W1", "b1", "W2", "b2"):
                g = grads[f"d{k}"]
                if name == "vanilla":
                    ref[k] = ref[k] - 0.1 * g
                elif name == "momentum":
                    ref[f"v_d{k}"] = 0.8 * ref[f"v_d{k}"] + 0.2 * g
                    ref[k] = ref[k] - 0.1 * ref[f"v_d{k}"]
                else:
                    ref[f"s_d{k}"] = 0.9 * ref[f"s_d{k}"] + 0.1 * g * g
                    ref[k] = ref[k] - 0.1 * g / (np.sqrt(ref[f"s_d{k}"]) + 1e-8)
        for k in ref:
            np.testing.assert_allclose(params[k], ref[k], rtol=1e-12, atol=1e-14, err_msg=f"{name} {k}")


def test_missing_state_is_created_and_errors_name_the_parameter():
    params, grads = _setup()
    bare = {k: params[k] for k in ("W1", "b1", "W2", "b2")}
    natverk.gradient_descent_adam(grads, bare, 1e-3, t=1)
    assert "v_dW1" in bare and "s_db2" in bare
    with pytest.raises(KeyError, match="db2"):
        natverk.gradient_descent_vanilla({k: v for k, v in grads.items() if k != "db2"}, params, 0.1)
    bad = dict(grads, dW2=np.zeros((5, 5)))
    with pytest.raises(ValueError, match="W2"):
        natverk.gradient_descent_momentum(bad, params, 0.1)
    with pytest.raises(ValueError, match="t"):
        natverk.gradient_descent_adam(grads, params, 0.1, t=0)
    with pytest.raises(TypeError, match="W1"):
        natverk.gradient_descent_vanilla(dict(grads, dW1=grads["dW1"].astype(np.float32)), params, 0.1)
