"""The C++ step plan (natverk._core.Plan, cpp/plan/plan.h; issue 11, one training engine).

N steps through the plan must leave the weights, gradients, batch-norm running statistics,
dropout counters and optimizer state bit-identical (np.array_equal) to N steps of the Python
layer loop (forward / loss / backward / Optimizer.step, exactly as Sequential.fit runs it),
for every supported op and their combinations, float32 and float64, every optimizer, with and
without weight decay and dropout, batch size 1, odd sizes and a last partial batch; fit with
the plan must give the layer loop's history and state; a central-difference gradient check
runs through the plan; bad input gives clear Python exceptions.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import natverk
from natverk import DivergenceError, _core
from natverk.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
    Stack,
    Tanh,
)
from natverk.losses import BCE, MSE, CrossEntropy
from natverk.models import _plan
from natverk.optimizers import SGD, Adam, Momentum, RMSprop
from reference import central_difference_inplace
from tolerances import FINITE_DIFFERENCE


def test_fit_trains_conv_nets_through_the_plan_by_default():
    """_plan.FIT_CONV_NETS: on since the Winograd engine made the plan the faster path."""
    assert _plan.FIT_CONV_NETS is True
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 1, 6, 6)); y = rng.integers(0, 2, 8)
    cnn = natverk.Sequential(Conv2D(1, 2, 3, seed=0), ReLU(), Flatten(), Dense(2 * 4 * 4, 2, seed=1))
    assert _plan.plan_for_fit(cnn, SGD(0.1), CrossEntropy(), X, y, 4, X.shape[1:], None) is not None


def test_fit_can_keep_conv_nets_on_the_layer_loop(monkeypatch):
    monkeypatch.setattr(_plan, "FIT_CONV_NETS", False)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 1, 6, 6)); y = rng.integers(0, 2, 8)
    cnn = natverk.Sequential(Conv2D(1, 2, 3, seed=0), ReLU(), Flatten(), Dense(2 * 4 * 4, 2, seed=1))
    mlp = natverk.Sequential(Flatten(), Dense(36, 4, seed=0), ReLU(), Dense(4, 2, seed=1))
    assert _plan.plan_for_fit(cnn, SGD(0.1), CrossEntropy(), X, y, 4, X.shape[1:], None) is None
    assert _plan.plan_for_fit(mlp, SGD(0.1), CrossEntropy(), X, y, 4, X.shape[1:], None) is not None

DTYPES = [np.float32, np.float64]


# ------------------------------------------------------------------ the models


def _mlp(seed=0):
    return natverk.Sequential(Dense(6, 9, seed=seed), ReLU(), Dense(9, 7, seed=seed + 1), Sigmoid(),
                              Dense(7, 5, bias=False, seed=seed + 2), Tanh(), Dense(5, 3, seed=seed + 3))


def _mlp_dropout(seed=0):
    return natverk.Sequential(Dropout(0.1, seed=seed + 7), Dense(6, 9, seed=seed), ReLU(), Dropout(0.4, seed=seed + 8),
                              Dense(9, 7, seed=seed + 1), Tanh(), Dropout(0.0, seed=1), Dense(7, 3, seed=seed + 2))


def _mlp_batchnorm(seed=0):
    return natverk.Sequential(Dense(6, 8, seed=seed), BatchNorm1D(8, momentum=0.2), ReLU(), Dense(8, 8, seed=seed + 1),
                              BatchNorm1D(8, eps=1e-3), Tanh(), Dense(8, 3, seed=seed + 2))


def _mlp_residual(seed=0):
    return natverk.Sequential(
        Dense(6, 8, seed=seed),
        Residual(Dense(8, 8, seed=seed + 1), ReLU(), Dropout(0.25, seed=seed + 9), Dense(8, 8, seed=seed + 2)),
        ReLU(),
        Stack(Dense(8, 8, seed=seed + 3), Tanh()),
        Residual(Residual(Dense(8, 8, seed=seed + 4)), Sigmoid()),
        Residual(),
        Dense(8, 3, seed=seed + 5),
    )


def _cnn(seed=0):
    return natverk.Sequential(
        Conv2D(2, 4, 3, padding=1, seed=seed), BatchNorm2D(4), ReLU(), MaxPool2D(2),
        Conv2D(4, 6, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2, bias=False, seed=seed + 1),
        Tanh(), AvgPool2D(2, stride=1, padding=1), Flatten(), Dropout(0.3, seed=seed + 5),
        Dense(6 * 3 * 4, 3, seed=seed + 2),
    )


def _cnn_residual(seed=0):
    return natverk.Sequential(
        Conv2D(2, 4, 3, padding=1, seed=seed), ReLU(),
        Residual(Conv2D(4, 4, 3, padding=1, seed=seed + 1), BatchNorm2D(4), ReLU()),
        MaxPool2D(3, stride=2, padding=1), GlobalAvgPool2D(), Dense(4, 3, seed=seed + 2),
    )


def _flatten_first(seed=0):
    return natverk.Sequential(Flatten(), Dense(2 * 6 * 6, 5, seed=seed), ReLU(), Dense(5, 3, seed=seed + 1))


MODELS = {  # name -> (factory, per-example input shape, smallest batch the layers accept)
    "mlp": (_mlp, (6,), 1),
    "mlp_dropout": (_mlp_dropout, (6,), 1),
    "mlp_batchnorm": (_mlp_batchnorm, (6,), 2),
    "mlp_residual": (_mlp_residual, (6,), 1),
    "cnn": (_cnn, (2, 6, 6), 1),
    "cnn_residual": (_cnn_residual, (2, 6, 6), 1),
    "flatten_first": (_flatten_first, (2, 6, 6), 1),
}

OPTIMIZERS = {
    "sgd": lambda wd: SGD(0.05, weight_decay=wd),
    "momentum": lambda wd: Momentum(0.05, beta=0.8, weight_decay=wd),
    "rmsprop": lambda wd: RMSprop(0.01, beta2=0.95, weight_decay=wd),
    "adam": lambda wd: Adam(0.01, beta1=0.85, beta2=0.97, weight_decay=wd),
}


def _data(shape, n=20, classes=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, *shape)).astype(dtype)
    y = rng.integers(0, classes, n)
    return X, y


def _batches(n, min_batch, seed=0):
    """A batch of 1 (where allowed), odd sizes and a last partial batch, in shuffled order."""
    order = np.random.default_rng(seed).permutation(n)
    sizes = [min_batch, 7, 7, n - min_batch - 14]
    cuts = np.cumsum([0] + sizes)
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


# ------------------------------------------------------------------ the reference and the checks


def layer_loop(model, opt, loss_fn, X, T, batches):
    """Sequential.fit's per-batch work, written out: what the plan must reproduce."""
    out_rows = []
    for idx in batches:
        out = model.forward(X[idx], training=True)
        with np.errstate(invalid="ignore", over="ignore"):
            loss = loss_fn.forward_trusted(np.ascontiguousarray(out), T[idx])
        penalty = opt.penalty(model.parameters())
        model.backward(loss_fn.backward(), need_input_grad=False)
        opt.step(model.parameters())
        out_rows.append((loss, penalty, loss_fn.accuracy(out, T[idx])))
    return out_rows


def snapshot(model, opt) -> dict[str, np.ndarray]:
    """Everything a step changes: parameters, gradients, buffers, optimizer state and count."""
    out = {}
    for name, value, grad in model.parameters():
        out[f"param/{name}"] = value.copy()
        out[f"grad/{name}"] = None if grad is None else grad.copy()
    for name, value in model.buffers():
        out[f"buffer/{name}"] = np.array(value, copy=True)
    for name, st in opt.state.items():
        for k, a in st.items():
            out[f"opt/{name}/{k}"] = a.copy()
    out["iterations"] = np.array(opt.iterations)
    return out


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    for k in a:
        if a[k] is None or b[k] is None:
            assert a[k] is None and b[k] is None, k
            continue
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        if not np.array_equal(a[k], b[k]):
            diff = np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))
            where = np.unravel_index(np.argmax(diff), diff.shape)
            raise AssertionError(f"{k}: not bit-identical, largest difference {diff.max():.3g} at {where}")


def assert_identical_but_stale(plan_state: dict, loop_state: dict) -> list[str]:
    """assert_identical, except for the dense weights' gradients of a plan epoch that stopped after
    a batch whose weight updates ran inside the dW GEMM (Plan.epoch's stale_gradients): those are
    None on the plan's side. Returns their keys."""
    stale = [k for k in plan_state if plan_state[k] is None and loop_state.get(k) is not None]
    assert stale and all(k.startswith("grad/") and k.endswith(".W") for k in stale), stale
    assert_identical({k: v for k, v in plan_state.items() if k not in stale},
                     {k: v for k, v in loop_state.items() if k not in stale})
    return stale


def twins(factory, dtype, opt_factory):
    """Two identical models with identical fresh optimizers."""
    a, b = factory().astype(dtype), factory().astype(dtype)
    return a, opt_factory(), b, opt_factory()


def plan_steps(model, opt, loss_fn, X, T, batches):
    mp = _plan.build_plan(model, opt, loss_fn, X.shape[1:], np.dtype(X.dtype))
    assert mp is not None, "the model should be supported"
    Y, acc = mp.targets(T)
    rows = []
    for idx in batches:
        loss, penalty, correct, updated = mp.step(np.ascontiguousarray(X[idx]), Y[idx],
                                                  None if acc is None else acc[idx])
        assert updated
        rows.append((loss, penalty, mp.accuracy(correct, len(idx))))
    return rows


def _same_rows(a, b):
    for (la, pa, aa), (lb, pb, ab) in zip(a, b, strict=True):
        assert la == lb and pa == pb, (la, lb, pa, pb)
        assert aa == ab or (np.isnan(aa) and np.isnan(ab)), (aa, ab)


# ------------------------------------------------------------------ bit-identity: steps


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("weight_decay", [0.0, 0.03])
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_plan_steps_are_bit_identical_to_the_layer_loop(model_name, opt_name, weight_decay, dtype):
    factory, shape, min_batch = MODELS[model_name]
    X, y = _data(shape, dtype=dtype)
    a, oa, b, ob = twins(factory, dtype, lambda: OPTIMIZERS[opt_name](weight_decay))
    batches = _batches(len(X), min_batch) * 2  # twice: the optimizer state and counters carry over
    ref = layer_loop(a, oa, CrossEntropy(), X, y, batches)
    got = plan_steps(b, ob, CrossEntropy(), X, y, batches)
    _same_rows(ref, got)
    assert_identical(snapshot(a, oa), snapshot(b, ob))


def _relu_pools(seed=0):
    """Every ReLU -> max-pool pairing the plan fuses: overlapping padded windows, and one inside a
    residual branch; the first conv is 1x1 with integer weights, so quantized inputs give ties and
    windows with no positive value, the cases where the fused order could pick another winner."""
    conv = Conv2D(2, 3, 1, seed=seed)
    conv.W[...] = np.random.default_rng(seed).integers(-1, 2, conv.W.shape)
    conv.b[...] = [-0.5, 0.0, 0.5]
    return natverk.Sequential(
        conv, ReLU(), MaxPool2D(3, stride=2, padding=1),
        Residual(Conv2D(3, 3, 3, padding=1, seed=seed + 1), ReLU(), MaxPool2D(3, stride=1, padding=1)),
        Flatten(), Dense(3 * 3 * 3, 3, seed=seed + 2),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_relu_then_maxpool_fuses_bit_identically_with_ties_and_non_positive_windows(opt_name, dtype):
    rng = np.random.default_rng(3)
    X = (rng.integers(-2, 3, (20, 2, 6, 6)) * 0.5).astype(dtype)
    X[0, :, :2, :2] = -0.0  # signed zeros meet the ReLU too
    y = rng.integers(0, 3, 20)
    # the data must reach the cases the fusion argues about, or this test proves nothing
    h = np.maximum(_relu_pools().astype(dtype).layers[0].forward(X), 0)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)),
                                                              constant_values=-np.inf), (3, 3), axis=(2, 3))
    windows = windows[:, :, ::2, ::2].reshape(*windows.shape[:2], 3, 3, 9)
    top = windows.max(axis=-1, keepdims=True)
    assert (top == 0).sum() > 20 and ((windows == top).sum(axis=-1) > 1).sum() > 50
    tag = "[applied to the next op's pooled output]"
    _fusion_matches_the_layer_loop(_relu_pools, X, y, opt_name, dtype, tag, 2)


def _fusion_matches_the_layer_loop(factory, X, y, opt_name, dtype, tag, fused):
    """Two steps over every batch through the plan and through the layer loop give the same bits,
    the plan's description shows `tag` `fused` times, and its evaluation forward is the model's."""
    a, oa, b, ob = twins(factory, dtype, lambda: OPTIMIZERS[opt_name](0.01))
    batches = _batches(len(X), 1) * 2
    ref = layer_loop(a, oa, CrossEntropy(), X, y, batches)
    got = plan_steps(b, ob, CrossEntropy(), X, y, batches)
    _same_rows(ref, got)
    assert_identical(snapshot(a, oa), snapshot(b, ob))
    mp = _plan.build_plan(b, ob, CrossEntropy(), X.shape[1:], np.dtype(dtype))
    mp.plan.forward(np.ascontiguousarray(X[:2]))  # the first run fuses
    assert repr(mp.plan).count(tag) == fused
    np.testing.assert_array_equal(mp.plan.forward(np.ascontiguousarray(X)), a.forward(X, training=False))


def _conv_pools(seed=0):
    """Both first-layer pairings the plan fuses into one pass (fuse_conv_maxpool, conv_pool.h):
    conv -> ReLU -> 2x2 max-pool and conv -> 2x2 max-pool, the first with integer weights (ties,
    windows with no positive value), both on odd sides the pooling drops a row and column of;
    then a 5-channel conv (45 taps) that the pooling after it does not fuse with."""
    conv = Conv2D(1, 4, 3, padding=1, seed=seed)
    conv.W[...] = np.random.default_rng(seed).integers(-1, 2, conv.W.shape)
    conv.b[...] = [-0.5, 0.0, 0.5, 0.0]
    return natverk.Sequential(
        conv, ReLU(), MaxPool2D(2),
        Conv2D(4, 5, 1, seed=seed + 1), MaxPool2D(2),
        Conv2D(5, 3, 3, padding=1, seed=seed + 2), ReLU(), MaxPool2D(2),
        Flatten(), Dense(3, 3, seed=seed + 3),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_conv_then_maxpool_fuses_bit_identically(opt_name, dtype, simd):
    """The fused pass gives the layer loop's bits at every SIMD level: where it runs (AVX2,
    AVX-512) and where the plan runs the three kernels instead (scalar)."""
    rng = np.random.default_rng(4)
    X = (rng.integers(-2, 3, (20, 1, 11, 9)) * 0.5).astype(dtype)
    X[0, :, :2, :2] = -0.0
    y = rng.integers(0, 3, 20)
    h = _conv_pools().astype(dtype).layers[0].forward(X)[:, :, :10, :8].reshape(20, 4, 5, 2, 4, 2)
    top = h.max(axis=(3, 5), keepdims=True)
    assert (top <= 0).sum() > 20 and ((h == top).sum(axis=(3, 5)) > 1).sum() > 50
    tag = "[with the max-pooling below in one pass"
    _fusion_matches_the_layer_loop(_conv_pools, X, y, opt_name, dtype, tag, 2)


def _conv_bns(seed=0):
    """Every pairing the evaluation epilogue takes (fuse_conv_bn_eval): conv -> BN -> ReLU on 3
    channels (im2col) and on 8 (Winograd), in a residual branch, conv -> BN alone, and conv -> BN
    -> ReLU -> max-pool, whose ReLU stays with the pooling (the epilogue applies the BN only)."""
    return natverk.Sequential(
        Conv2D(3, 8, 3, padding=1, seed=seed), BatchNorm2D(8), ReLU(),
        Residual(Conv2D(8, 8, 3, padding=1, seed=seed + 1), BatchNorm2D(8), ReLU()),
        Conv2D(8, 8, 3, padding=1, seed=seed + 2), BatchNorm2D(8),
        Conv2D(8, 4, 1, seed=seed + 3), BatchNorm2D(4), ReLU(), MaxPool2D(2),
        Flatten(), Dense(4 * 3 * 4, 3, seed=seed + 4),
    )


@pytest.mark.parametrize("algo", ["auto", "im2col", "winograd2", "winograd4"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_bn_relu_evaluation_epilogue_is_bit_identical(algo, dtype, simd):
    """In evaluation the conv's epilogue applies the batch norm (and ReLU) after it: the layer
    loop's bits for every algorithm and SIMD level, -0 in the input included; training is
    untouched (the batch statistics run apart)."""
    _core.set_conv_algo(algo)
    rng = np.random.default_rng(6)
    X = rng.standard_normal((20, 3, 7, 9)).astype(dtype)
    X[0, :, :2, :2] = -0.0
    y = rng.integers(0, 3, 20)
    _fusion_matches_the_layer_loop(_conv_bns, X, y, "adam", dtype, "in its epilogue]", 4)


def _dense_relus(seed=0):
    return natverk.Sequential(Dense(6, 9, seed=seed), ReLU(), Residual(Dense(9, 9, seed=seed + 1), ReLU()),
                              Dense(9, 300, seed=seed + 2), ReLU(), Dense(300, 3, seed=seed + 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_dense_then_relu_fuses_bit_identically(opt_name, dtype):
    """A ReLU after a dense layer runs in its GEMM epilogue (plan.cpp, fuse_dense_relu), also in a
    residual branch: the layer loop's bits, with inputs holding -0, exact zeros and a 300-wide
    layer whose columns end past the last full GEMM panel."""
    rng = np.random.default_rng(5)
    X = (rng.integers(-2, 3, (20, 6)) * 0.5).astype(dtype)
    X[0, :3] = -0.0
    y = rng.integers(0, 3, 20)
    tag = "[applied in the previous op's GEMM epilogue]"
    _fusion_matches_the_layer_loop(_dense_relus, X, y, opt_name, dtype, tag, 3)


def _relu_denses(seed=0):
    """Every ReLU -> Dense pairing whose ReLU backward the plan applies in the dense layer's dX GEMM
    (fuse_relu_dense), three of them: after a dense layer (whose forward epilogue applied the ReLU)
    with a dX product of 290-deep sums (more than one k block of the GEMM), inside a residual
    branch, and after a Tanh (the ReLU's own output buffer). Not fused: the first ReLU (the first
    dense layer computes no dX) and the ReLU before the residual."""
    return natverk.Sequential(
        ReLU(), Dense(6, 300, seed=seed), ReLU(), Dense(300, 290, seed=seed + 1), ReLU(),
        Residual(Dense(290, 9, seed=seed + 2), ReLU(), Dense(9, 290, seed=seed + 3)),
        Dense(290, 7, seed=seed + 4), Tanh(), ReLU(), Dense(7, 3, seed=seed + 5),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_relu_then_dense_backward_fuses_bit_identically(opt_name, dtype):
    """The ReLU's backward in the next dense layer's dX GEMM epilogue gives the layer loop's bits,
    with inputs holding -0 and exact zeros, so that some ReLU inputs are 0 and their gradient
    must be masked."""
    rng = np.random.default_rng(7)
    X = (rng.integers(-2, 3, (21, 6)) * 0.5).astype(dtype)
    X[0, :3] = -0.0
    y = rng.integers(0, 3, 21)
    _fusion_matches_the_layer_loop(_relu_denses, X, y, opt_name, dtype,
                                   "[its backward applied in the next op's dX GEMM epilogue]", 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss_name", ["class_weights", "mse", "mse_one_output", "bce"])
def test_every_loss_is_bit_identical(loss_name, dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 6)).astype(dtype)
    if loss_name == "class_weights":
        loss, T, K = (lambda: CrossEntropy(class_weights=[0.5, 2.0, 1.0])), rng.integers(0, 3, 20), 3
    elif loss_name == "mse":
        loss, T, K = MSE, rng.standard_normal((20, 3)), 3
    elif loss_name == "mse_one_output":
        loss, T, K = MSE, rng.standard_normal((20, 1)), 1
    else:
        loss, T, K = BCE, rng.uniform(0, 1, (20, 3)).round(1), 3  # 0.5 exactly: the accuracy's edge
    factory = lambda: natverk.Sequential(Dense(6, 8, seed=0), Tanh(), Dropout(0.2, seed=4), Dense(8, K, seed=1))  # noqa: E731
    for opt_name in sorted(OPTIMIZERS):
        a, oa, b, ob = twins(factory, dtype, lambda: OPTIMIZERS[opt_name](0.01))
        la, lb = loss(), loss()
        Ta = la.check_targets(T, (20, K))
        batches = _batches(20, 1)
        _same_rows(layer_loop(a, oa, la, X, Ta, batches), plan_steps(b, ob, lb, X, Ta, batches))
        assert_identical(snapshot(a, oa), snapshot(b, ob))


def test_decay_all_and_weights_only_are_bit_identical():
    X, y = _data((6,))
    for mode in ("weights", "all"):
        a, oa, b, ob = twins(_mlp_batchnorm, np.float64, lambda: Adam(0.01, weight_decay=0.1, decay=mode))
        batches = _batches(20, 2)
        _same_rows(layer_loop(a, oa, CrossEntropy(), X, y, batches), plan_steps(b, ob, CrossEntropy(), X, y, batches))
        assert_identical(snapshot(a, oa), snapshot(b, ob))


# ------------------------------------------------------------------ bit-identity: epochs and fit


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("fuse_min_bytes", [None, 0], ids=["default", "all-fused"])
def test_plan_epoch_equals_the_layer_loop(model_name, dtype, fuse_min_bytes, monkeypatch):
    # with every dense weight's update fused into its dW GEMM (Plan.epoch) too: inside residual
    # branches, after batch norm and dropout, behind convolutions
    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", fuse_min_bytes)
    factory, shape, min_batch = MODELS[model_name]
    X, y = _data(shape, n=23, dtype=dtype)
    for bs in sorted({min_batch, 5, 23, 64}):  # batch size 1 (where allowed), a partial last batch, one batch
        if 23 % bs and 23 % bs < min_batch:
            continue
        a, oa, b, ob = twins(factory, dtype, lambda: Adam(0.01, weight_decay=0.02))
        order = np.random.default_rng(bs).permutation(23)
        batches = [order[i:i + bs] for i in range(0, 23, bs)]
        ref = layer_loop(a, oa, CrossEntropy(), X, y, batches)
        mp = _plan.plan_for_fit(b, ob, CrossEntropy(), X, y, bs, X.shape[1:], None)
        assert mp is not None
        r = mp.epoch(order, bs)
        assert r["steps"] == len(batches) and r["stopped"] is None and r["error"] is None
        got = [(r["data_loss"][i], r["penalty"][i], mp.accuracy(int(r["correct"][i]), int(r["rows"][i])))
               for i in range(len(batches))]
        _same_rows(ref, got)
        assert_identical(snapshot(a, oa), snapshot(b, ob))


def _ragged_mlp(seed=0):
    # widths that leave ragged tiles at every SIMD level (MR x NR of 12 x 32 / 6 x 16 / 4 x 8 floats),
    # a rest past one vector and one within it, and a layer without a bias
    return natverk.Sequential(Dense(37, 45, seed=seed), ReLU(), Dense(45, 57, bias=False, seed=seed + 1), Tanh(),
                              Dense(57, 130, seed=seed + 2), Sigmoid(), Dense(130, 3, seed=seed + 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.03])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_epoch_fuses_the_dense_updates_bit_identically(opt_name, weight_decay, dtype, simd, threads, monkeypatch):
    # Every batch of an epoch but the last updates the dense weights inside the dW GEMM, tile by
    # tile (Plan.epoch, gemm_update): batches of 29 rows (one GEMM k block) and of 300 (two, so the
    # partial sums go through the scratch), a partial last batch each time, 2 threads splitting C.
    # These weights are below the size the plan fuses by default: every one is fused here.
    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", 0)
    X, y = _data((37,), n=607, dtype=dtype)
    for bs in (29, 300):
        a, oa, b, ob = twins(_ragged_mlp, dtype, lambda: OPTIMIZERS[opt_name](weight_decay))
        order = np.random.default_rng(bs).permutation(607)
        batches = [order[i:i + bs] for i in range(0, 607, bs)]
        ref = layer_loop(a, oa, CrossEntropy(), X, y, batches)
        mp = _plan.plan_for_fit(b, ob, CrossEntropy(), X, y, bs, X.shape[1:], None)
        r = mp.epoch(order, bs)
        assert r["steps"] == len(batches) and r["stopped"] is None and len(r["stale_gradients"]) == 0
        got = [(r["data_loss"][i], r["penalty"][i], mp.accuracy(int(r["correct"][i]), int(r["rows"][i])))
               for i in range(len(batches))]
        _same_rows(ref, got)
        assert_identical(snapshot(a, oa), snapshot(b, ob))  # the gradients too: the last batch is not fused


def _row_local_mlp(seed=0):
    """Every op the row split takes (plan.h, row_split): a Flatten, a first ReLU (no dX below it),
    dense layers with and without a bias, ReLU (fused both ways), Tanh and Sigmoid; widths that
    leave ragged tiles, and a 300-deep dX product (two GEMM k blocks)."""
    return natverk.Sequential(Flatten(), ReLU(), Dense(36, 40, seed=seed), ReLU(), Dense(40, 300, bias=False, seed=seed + 1),
                              Tanh(), Dense(300, 25, seed=seed + 2), Sigmoid(), Dense(25, 130, seed=seed + 3), ReLU(),
                              Dense(130, 3, seed=seed + 4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fuse_min_bytes", [None, 0], ids=["default", "all-fused"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_the_row_split_gives_the_bits_of_the_op_by_op_run(opt_name, fuse_min_bytes, dtype, threads, monkeypatch):
    """With 2 threads a plan of dense layers and activations splits each batch's rows between the
    threads (Plan.row_split); it must give the op-by-op run's bits (and the layer loop's): losses,
    accuracy, weights, optimizer state and the last batch's gradients, with weight decay, batches of
    1 and 2 rows (one chunk) and of 57 and 203 (split, unevenly) and an odd last batch."""
    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", fuse_min_bytes)
    X, y = _data((1, 6, 6), n=203, dtype=dtype)
    for bs in (1, 2, 57, 203):
        runs = []
        for split in (True, False):
            model, opt = _row_local_mlp().astype(dtype), OPTIMIZERS[opt_name](0.02)
            mp = _plan.plan_for_fit(model, opt, CrossEntropy(), X, y, bs, X.shape[1:], None)
            mp.plan.row_split = split
            order = np.random.default_rng(bs).permutation(203)
            r = mp.epoch(order, bs)
            assert r["stopped"] is None and r["error"] is None
            # (a chunk takes at least ~2^17 multiply-adds, 6 rows of this net, so 2 rows stay whole;
            # its 24.6k weights are within the split's 256 KiB in float64 too)
            assert mp.plan._uses_row_split(bs) == (split and threads > 1 and bs > 2), (split, threads, bs)
            runs.append((r, snapshot(model, opt)))
        (r1, s1), (r2, s2) = runs
        for key in ("data_loss", "penalty", "correct", "rows"):
            np.testing.assert_array_equal(np.asarray(r1[key]), np.asarray(r2[key]), err_msg=key)
        assert_identical(s1, s2)
    a, oa = _row_local_mlp().astype(dtype), OPTIMIZERS[opt_name](0.02)  # and the layer loop's
    order = np.random.default_rng(57).permutation(203)
    batches = [order[i:i + 57] for i in range(0, 203, 57)]
    ref = layer_loop(a, oa, CrossEntropy(), X, y, batches)
    b, ob = _row_local_mlp().astype(dtype), OPTIMIZERS[opt_name](0.02)
    mp = _plan.plan_for_fit(b, ob, CrossEntropy(), X, y, 57, X.shape[1:], None)
    r = mp.epoch(order, 57)
    got = [(r["data_loss"][i], r["penalty"][i], mp.accuracy(int(r["correct"][i]), int(r["rows"][i])))
           for i in range(len(batches))]
    _same_rows(ref, got)
    assert_identical(snapshot(a, oa), snapshot(b, ob))


def test_the_row_split_leaves_large_weights_op_by_op():
    """Each thread of a row split packs every weight (plan.h, kRowSplitMaxBytes): a net whose dense
    weights pass 256 KiB (here 784 x 100 float32, 314 KB) runs op by op at any thread count, one
    just under it splits at 2 threads."""
    natverk.set_num_threads(2)
    for n_in, split in ((784, False), (600, True)):  # 314 KB, 240 KB
        model = natverk.Sequential(Dense(n_in, 100, seed=0), ReLU(), Dense(100, 3, seed=1)).astype(np.float32)
        opt = SGD(0.1)
        X, y = _data((n_in,), n=64, dtype=np.float32)
        mp = _plan.plan_for_fit(model, opt, CrossEntropy(), X, y, 64, X.shape[1:], None)
        mp.epoch(np.arange(64), 64)
        assert mp.plan._uses_row_split(64) == split, n_in


def test_an_epoch_that_stops_early_names_the_fused_gradients_it_did_not_store(monkeypatch):
    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", 0)
    X, y = _data((37,), n=100)
    # an epoch that runs to its end: its last batch is not fused, every gradient is that batch's
    model = _ragged_mlp()
    mp = _plan.plan_for_fit(model, SGD(0.01), CrossEntropy(), X, y, 10, (37,), None)
    r = mp.epoch(np.arange(100), 10)
    assert r["steps"] == 10 and len(r["stale_gradients"]) == 0
    assert all(layer.dW is not None for layer in model.layers if isinstance(layer, Dense))
    # batch 5's inputs blown up: its loss exceeds max_loss, the epoch stops before its update, and
    # batch 4, the last update, was fused: the dense weights' gradient arrays were not written by
    # it, so they are published as None (indices into the parameters W, b, W, W, b)
    X[50:60] *= 1e4
    model = natverk.Sequential(Dense(37, 45, seed=0), ReLU(), Dense(45, 57, bias=False, seed=1), ReLU(),
                               Dense(57, 3, seed=2))
    mp = _plan.plan_for_fit(model, SGD(0.01), CrossEntropy(), X, y, 10, (37,), None)
    r = mp.epoch(np.arange(100), 10, max_loss=50.0)
    assert r["stopped"] == 5 and r["steps"] == 5 and r["data_loss"][5] > 50.0
    assert list(r["stale_gradients"]) == [0, 2, 3]
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert all(layer.dW is None for layer in dense)
    assert all((layer.db is not None) == layer.use_bias for layer in dense)  # biases update apart, as before


def test_the_fused_update_is_on_from_256_kib_and_can_be_turned_off():
    X, y = _data((300,), n=40)
    model = natverk.Sequential(Dense(300, 256, seed=0), ReLU(), Dense(256, 3, seed=1))  # 300 KiB, 3 KiB (float32)
    model = model.astype(np.float32)
    X[32:] *= 1e4  # batch 4 stops the epoch: only the large weight was fused before it
    mp = _plan.plan_for_fit(model, SGD(0.01), CrossEntropy(), X, y, 8, (300,), None)
    assert mp.plan.fuse_updates and mp.plan.fuse_min_bytes == 256 * 1024
    r = mp.epoch(np.arange(40), 8, max_loss=50.0)
    assert r["stopped"] == 4 and list(r["stale_gradients"]) == [0]
    assert model.layers[0].dW is None and model.layers[2].dW is not None
    # unfused, the same epoch gives the same bits and stores every gradient
    twin = natverk.Sequential(Dense(300, 256, seed=0), ReLU(), Dense(256, 3, seed=1)).astype(np.float32)
    tp = _plan.plan_for_fit(twin, SGD(0.01), CrossEntropy(), X, y, 8, (300,), None)
    tp.plan.fuse_updates = False
    r2 = tp.epoch(np.arange(40), 8, max_loss=50.0)
    assert r2["stopped"] == 4 and len(r2["stale_gradients"]) == 0 and twin.layers[0].dW is not None
    assert_identical_but_stale(snapshot(model, mp.optimizer), snapshot(twin, tp.optimizer))
    with pytest.raises(ValueError, match="fuse_min_bytes must be >= 0, got -1"):
        mp.plan.fuse_min_bytes = -1


def _fit_both(factory, X, y, dtype=np.float64, **kwargs):
    """fit with the plan and with the layer loop (plan disabled): (histories, snapshots)."""
    out = []
    for enabled in (True, False):
        model = factory().astype(dtype)
        _plan.ENABLED = enabled
        try:
            h = model.fit(X, y, verbose=0, **{k: (v() if callable(v) and k == "optimizer" else v)
                                             for k, v in kwargs.items()})
        finally:
            _plan.ENABLED = True
        out.append((h, snapshot(model, model.optimizer)))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("fuse_min_bytes", [None, 0], ids=["default", "all-fused"])
def test_fit_with_the_plan_equals_fit_with_the_layer_loop(model_name, dtype, fuse_min_bytes, monkeypatch):
    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", fuse_min_bytes)
    factory, shape, _ = MODELS[model_name]
    X, y = _data(shape, n=26, dtype=dtype)
    Xv, yv = _data(shape, n=9, seed=1, dtype=dtype)
    from natverk.schedules import ExponentialDecay

    (ha, sa), (hb, sb) = _fit_both(factory, X, y, dtype, epochs=3, batch_size=8, seed=5,
                                   optimizer=lambda: Momentum(0.05, weight_decay=0.01),
                                   validation_data=(Xv, yv), lr_schedule=ExponentialDecay(0.05))
    assert ha == hb
    assert_identical(sa, sb)


def test_fit_uses_the_plan_and_advances_what_the_layer_loop_advances(monkeypatch):
    calls = []
    real = _plan.ModelPlan.epoch

    def spy(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_plan.ModelPlan, "epoch", spy)
    X, y = _data((6,), n=30)
    model = _mlp_dropout()
    opt = Adam(0.01)
    model.fit(X, y, epochs=2, batch_size=7, optimizer=opt, seed=0, verbose=0)
    assert len(calls) == 2  # one call per epoch
    assert opt.iterations == 2 * 5 and int(model.layers[0].counter) == 10
    # the plan's gradients are published on the layers, as a backward pass leaves them
    assert all(g is not None for _, _, g in model.parameters())


def test_fit_resumed_with_the_plan_is_bit_identical_to_one_run():
    X, y = _data((2, 6, 6), n=24)
    one = _cnn()
    one.fit(X, y, epochs=4, batch_size=5, optimizer=Adam(0.01, weight_decay=0.01), seed=3, verbose=0)
    two = _cnn()
    two.fit(X, y, epochs=2, batch_size=5, optimizer=Adam(0.01, weight_decay=0.01), seed=3, verbose=0)
    _plan.ENABLED = False
    try:
        two.fit(X, y, epochs=1, batch_size=5, seed=3, verbose=0)  # the layer loop in between
    finally:
        _plan.ENABLED = True
    two.fit(X, y, epochs=1, batch_size=5, seed=3, verbose=0)
    assert_identical(snapshot(one, one.optimizer), snapshot(two, two.optimizer))


def test_the_next_fit_reuses_the_plan_until_something_it_holds_changes():
    import gc

    X, y = _data((2, 6, 6), n=24)
    once = _cnn()
    once.fit(X, y, epochs=3, batch_size=5, optimizer=Adam(0.01), seed=3, verbose=0)
    model, opt = _cnn(), Adam(0.01)
    model.fit(X, y, epochs=1, batch_size=5, optimizer=opt, seed=3, verbose=0)
    first = _plan._last_fit[2]
    assert first.X is None and first.y is None and first.acc is None  # the data is not kept
    model.fit(X, y, epochs=1, batch_size=5, optimizer=opt, seed=3, verbose=0)
    assert _plan._last_fit[2] is first  # the same model, optimizer and loss settings
    model.fit(X, y, epochs=1, batch_size=5, seed=3, verbose=0)  # the model's own optimizer: opt
    assert _plan._last_fit[2] is first
    # three fits of one epoch through one plan are one fit of three epochs, bit for bit
    assert_identical(snapshot(once, once.optimizer), snapshot(model, opt))
    model.fit(X, y, epochs=1, batch_size=5, optimizer=Adam(0.01), seed=3, verbose=0)
    second = _plan._last_fit[2]
    assert second is not first  # another optimizer
    model.layers[0].W = model.layers[0].W.copy()
    model.fit(X, y, epochs=1, batch_size=5, optimizer=second.optimizer, seed=3, verbose=0)
    third = _plan._last_fit[2]
    assert third is not second  # a replaced weight
    model.fit(X, y, epochs=1, batch_size=5, loss=CrossEntropy(class_weights=np.arange(1.0, 4.0)), seed=3, verbose=0)
    assert _plan._last_fit[2] is not third  # another loss setting
    other = _cnn()
    other.fit(X, y, epochs=1, batch_size=5, optimizer=_plan._last_fit[2].optimizer, seed=3, verbose=0)
    assert _plan._last_fit[0]() is other  # another model
    del other
    gc.collect()
    assert _plan._last_fit[0]() is None  # the kept plan does not keep its model alive


def test_fit_with_augmentation_steps_through_the_plan(monkeypatch):
    steps = []
    real = _plan.ModelPlan.step
    monkeypatch.setattr(_plan.ModelPlan, "step", lambda self, *a, **k: steps.append(1) or real(self, *a, **k))

    def augment(xb, rng):
        return xb[..., ::-1] * rng.uniform(0.5, 1.5)  # flips and scales; float64 out of float32 in

    X, y = _data((2, 6, 6), n=21, dtype=np.float32)
    (ha, sa), (hb, sb) = _fit_both(_cnn_residual, X, y, np.float32, epochs=2, batch_size=6, seed=1,
                                   optimizer=lambda: RMSprop(0.01), augment=augment)
    assert steps and ha == hb
    assert_identical(sa, sb)


class Doubler(Layer):
    """A layer of the user's own: the plan cannot run it."""

    def forward(self, x, training=None):
        x = self._input(x, None, "")
        return self._remember_output(2 * x)

    def backward(self, grad):
        return 2 * self._grad(grad)


class MyDense(Dense):
    """A subclass of a built-in layer may override anything: not planned either."""


@pytest.mark.parametrize("make", [
    lambda: natverk.Sequential(Dense(6, 4, seed=0), Doubler(), Dense(4, 3, seed=1)),
    lambda: natverk.Sequential(MyDense(6, 4, seed=0), ReLU(), Dense(4, 3, seed=1)),
    lambda: (lambda r: natverk.Sequential(Dense(6, 4, seed=0), r, Dense(4, 4, seed=1), r, Dense(4, 3, seed=2)))(ReLU()),
])
def test_unsupported_layers_fall_back_to_the_layer_loop(make):
    X, y = _data((6,))
    model = make()
    assert _plan.build_plan(model, SGD(0.1), CrossEntropy(), (6,), np.dtype(np.float64)) is None
    (ha, sa), (hb, sb) = _fit_both(make, X, y, epochs=2, batch_size=6, seed=0, optimizer=lambda: SGD(0.1))
    assert ha == hb
    assert_identical(sa, sb)


def test_custom_losses_and_optimizers_fall_back():
    class MyLoss(CrossEntropy):
        pass

    class MySGD(SGD):
        pass

    model = _mlp()
    assert _plan.build_plan(model, SGD(0.1), MyLoss(), (6,), np.dtype(np.float64)) is None
    assert _plan.build_plan(model, MySGD(0.1), CrossEntropy(), (6,), np.dtype(np.float64)) is None


def test_a_callback_that_replaces_a_weight_makes_fit_plan_again():
    from natverk.callbacks import Callback

    class Reinit(Callback):
        def on_epoch_end(self, model, logs):
            if logs["epoch"] == 1:
                model.layers[0].W = model.layers[0].W * 0.5  # a new array: the old plan is stale

    X, y = _data((6,))
    (ha, sa), (hb, sb) = _fit_both(_mlp, X, y, epochs=3, batch_size=6, seed=0, optimizer=lambda: Momentum(0.1),
                                   callbacks=[Reinit()])
    assert ha == hb
    assert_identical(sa, sb)


def test_float64_data_into_a_float32_model():
    X, y = _data((2, 6, 6), n=14)  # float64 data; the model is float32: its first layer converts
    (ha, sa), (hb, sb) = _fit_both(_flatten_first, X, y, np.float32, epochs=2, batch_size=4, seed=0,
                                   optimizer=lambda: SGD(0.1))
    assert ha == hb
    assert_identical(sa, sb)
    # a first layer that computes before converting: the layer loop runs (its rounding)
    model = natverk.Sequential(Sigmoid(), Dense(6, 3, seed=0)).astype(np.float32)
    assert _plan.plan_for_fit(model, SGD(0.1), CrossEntropy(), _data((6,))[0], _data((6,))[1], 4, (6,), None) is None


# ------------------------------------------------------------------ stopping


def test_divergence_stops_before_the_update_as_the_layer_loop_does(monkeypatch):
    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", 0)  # fused however small: the stale gradients
    X, y = _data((6,), n=40)
    errors, states = [], []
    for enabled in (True, False):
        model = natverk.Sequential(Dense(6, 16, seed=0), ReLU(), Dropout(0.2, seed=1), Dense(16, 3, seed=2))
        _plan.ENABLED = enabled
        try:
            with pytest.raises(DivergenceError) as info:
                model.fit(X, y, epochs=3, batch_size=8, optimizer=SGD(1e30), seed=0, verbose=0)
        finally:
            _plan.ENABLED = True
        errors.append((str(info.value), info.value.epoch, info.value.step))
        states.append(snapshot(model, model.optimizer))
    assert errors[0] == errors[1]
    # it diverged after fused batches: both dense weights' gradients are stale, the rest identical
    assert len(assert_identical_but_stale(*states)) == 2


def test_max_loss_and_kernel_errors_stop_the_epoch_where_the_layer_loop_stops(monkeypatch):
    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", 0)  # fused however small: the stale gradients
    X, y = _data((6,), n=40)
    for kwargs in (dict(optimizer=lambda: Adam(1e4), max_loss=2.0),):
        out = []
        for enabled in (True, False):
            model = _mlp()
            _plan.ENABLED = enabled
            try:
                with pytest.raises(DivergenceError, match="exceeds max_loss") as info:
                    model.fit(X, y, epochs=5, batch_size=8, seed=0, verbose=0,
                              **{k: v() if k == "optimizer" else v for k, v in kwargs.items()})
            finally:
                _plan.ENABLED = True
            out.append((str(info.value), snapshot(model, model.optimizer)))
        assert out[0][0] == out[1][0]
        assert len(assert_identical_but_stale(out[0][1], out[1][1])) == 4
    # class weights of only-zero-weight labels in a batch: the loss kernel's ValueError, same text
    y0 = np.where(np.arange(40) < 8, 0, y)
    msgs = []
    for enabled in (True, False):
        _plan.ENABLED = enabled
        try:
            with pytest.raises(ValueError) as info:
                _mlp().fit(X, y0, epochs=1, batch_size=8, shuffle=False, optimizer=SGD(0.1), verbose=0,
                           loss=CrossEntropy(class_weights=[0.0, 1.0, 1.0]))
        finally:
            _plan.ENABLED = True
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1] and "sum to zero" in msgs[0]


def test_inputs_the_layers_reject_leave_the_error_to_them():
    X, y = _data((6,), n=21)
    # batch norm on a last batch of one example
    with pytest.raises(ValueError, match="training needs more than one value per channel"):
        _mlp_batchnorm().fit(X, y, epochs=1, batch_size=10, optimizer=SGD(0.1), verbose=0)
    X[17, 2] = np.nan
    msgs = []
    for enabled in (True, False):
        _plan.ENABLED = enabled
        try:
            with pytest.raises(ValueError, match="contains NaN or Inf") as info:
                _mlp().fit(X, y, epochs=1, batch_size=10, optimizer=SGD(0.1), verbose=0)
        finally:
            _plan.ENABLED = True
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1]


@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
                    reason="SIGINT is ignored in this process (a background job of a shell without job "
                           "control), so Ctrl-C cannot be delivered to test")
def test_the_epoch_hands_back_a_keyboard_interrupt(monkeypatch):
    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", 0)  # fused however small: the stale gradients
    # A long epoch (1e6 one-example steps, about a second alone): on a loaded machine the
    # sender thread may wait a while for a core, and the epoch must still be running then.
    n = 1_000_000
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((n, 2)), rng.integers(0, 2, n)
    model = natverk.Sequential(Dense(2, 2, seed=0))
    opt = SGD(0.01)
    mp = _plan.plan_for_fit(model, opt, CrossEntropy(), X, y, 1, (2,), None)
    epoch_over = threading.Event()

    def interrupt_once_running():
        # Ctrl-C while the epoch runs in C++ (a signal before that would hit the test itself):
        # the plan's lock says when it does; an evaluation forward changes no state
        while not epoch_over.is_set():
            try:
                mp.plan.forward(X[:1])
            except RuntimeError:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.0005)

    sender = threading.Thread(target=interrupt_once_running)
    sender.start()
    try:
        r = mp.epoch(np.arange(n), 1)
    finally:
        epoch_over.set()
        sender.join()
    assert isinstance(r["interrupt"], KeyboardInterrupt)
    assert 0 < r["steps"] < n and opt.iterations == r["steps"]
    # what it did is exactly the first `steps` batches (the plan against the layer loop: above)
    twin, topt = natverk.Sequential(Dense(2, 2, seed=0)), SGD(0.01)
    _plan.plan_for_fit(twin, topt, CrossEntropy(), X, y, 1, (2,), None).epoch(np.arange(int(r["steps"])), 1)
    assert list(r["stale_gradients"]) == [0] and model.layers[0].dW is None  # the fused W's
    assert_identical_but_stale(snapshot(model, opt), snapshot(twin, topt))


def test_a_second_thread_is_told_the_plan_is_busy():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50_000, 2)), rng.integers(0, 2, 50_000)
    mp = _plan.plan_for_fit(natverk.Sequential(Dense(2, 2, seed=0)), SGD(0.01), CrossEntropy(), X, y, 1, (2,), None)
    worker = threading.Thread(target=mp.epoch, args=(np.arange(50_000), 1))
    worker.start()
    seen = False
    while worker.is_alive() and not seen:
        try:
            mp.step(X[:2], y[:2], None)
        except RuntimeError as err:
            seen = "already running in another thread" in str(err)
        time.sleep(0.001)
    worker.join()
    assert seen


# ------------------------------------------------------------------ forward, gradients, the dropout seed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_predict_runs_the_plan_in_chunks_bit_identical_to_the_layer_loop(model_name, dtype, monkeypatch):
    factory, shape, min_batch = MODELS[model_name]
    X, y = _data(shape, n=40, dtype=dtype)
    model = factory().astype(dtype)
    model.fit(X, y, epochs=1, batch_size=4 if min_batch == 1 else 5, optimizer=SGD(0.05), seed=0, verbose=0)
    ref = model.forward(X, training=False)  # the layer loop, every row in one call
    counters = [np.array(v) for _, v in model.buffers()]
    chunks = []
    forward = _plan.ModelPlan.forward
    monkeypatch.setattr(_plan.ModelPlan, "forward", lambda self, xb: chunks.append(len(xb)) or forward(self, xb))
    monkeypatch.setattr(_plan, "EVAL_ROWS", 16)
    monkeypatch.setattr(_plan, "EVAL_MIN_ROWS", 40)
    np.testing.assert_array_equal(model.predict_logits(X[:39]), ref[:39])
    assert chunks == []  # below EVAL_MIN_ROWS: the layer loop
    for batch_size, expected in ((1, [1] * 40), (7, [7] * 5 + [5]), (1000, [16, 16, 8])):
        chunks.clear()
        out = model.predict_logits(X, batch_size=batch_size)
        assert chunks == expected  # the plan ran, at most EVAL_ROWS rows at a time
        assert out.dtype == ref.dtype
        np.testing.assert_array_equal(out, ref)
    chunks.clear()
    loss, acc = model.evaluate(X, y)
    assert chunks == [16, 16, 8] and (loss, acc) == (model.loss.forward(ref, y), model.loss.accuracy(ref, y))
    for before, (_, after) in zip(counters, model.buffers()):
        np.testing.assert_array_equal(before, after)  # evaluation changes no state


def test_predict_leaves_the_layer_loop_what_only_it_does(monkeypatch):
    monkeypatch.setattr(_plan, "EVAL_MIN_ROWS", 1)  # so that only what is tested keeps the layer loop
    fresh = natverk.Sequential(Dense(6, 3, seed=0))  # its first input still fixes its dtype
    fresh.weights_ready = True
    assert fresh.predict_logits(np.ones((2, 6), np.float32)).dtype == np.float32 and fresh.dtype == np.float32
    conv_out = natverk.Sequential(Conv2D(1, 2, 3, seed=0)).astype(np.float64)  # outputs not (N, K)
    conv_out.weights_ready = True
    assert conv_out.predict_logits(np.ones((2, 1, 5, 5))).shape == (2, 2, 3, 3)
    model = natverk.Sequential(Dense(6, 3, seed=0)).astype(np.float64)
    model.weights_ready = True
    with pytest.raises(ValueError, match="NaN or Inf"):  # the first layer's own error
        model.predict_logits(np.full((2, 6), np.nan))


def test_gradient_check_through_the_plan():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, 2, 5, 5))
    y = rng.integers(0, 3, 5)
    model = natverk.Sequential(
        Conv2D(2, 3, 3, padding=1, seed=0), BatchNorm2D(3), Tanh(),
        Residual(Conv2D(3, 3, 3, padding=1, seed=1), Sigmoid()), AvgPool2D(2), Flatten(),
        Dropout(0.3, seed=2), Dense(12, 6, seed=3), BatchNorm1D(6), ReLU(), Dense(6, 3, seed=4),
    )
    model.astype(np.float64)
    mp = _plan.build_plan(model, SGD(0.0), CrossEntropy(), X.shape[1:], np.dtype(np.float64))
    counter = model.layers[6].counter
    wd = 0.05

    def loss() -> float:
        counter[...] = 0  # the same dropout mask at every evaluation
        data, penalty, _ = mp.plan.gradients(X, y, weight_decay=wd)
        return data + penalty

    loss()
    grads = {name: g.copy() for (name, _, _), (_, _, g) in zip(model.parameters(), mp._grads) if g is not None}
    for (name, value, _), p in zip(model.parameters(), model.parameters()):
        numeric = central_difference_inplace(loss, value)
        expected = grads[name] + (wd * value if p.decay else 0.0)  # the penalty's gradient is the update's
        np.testing.assert_allclose(expected, numeric, rtol=FINITE_DIFFERENCE.rtol, atol=FINITE_DIFFERENCE.atol,
                                   err_msg=name)


def test_dropout_call_seed_is_numpys_seed_sequence():
    rng = np.random.default_rng(1)
    seeds = [0, 1, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1, *rng.integers(0, 2**63 - 1, 40).tolist()]
    calls = [0, 1, 2, 1000, 2**31, 2**32 - 1, 2**32, 2**32 + 5, 2**62]
    for seed in seeds:
        layer = Dropout(0.5, seed=seed)
        for call in calls:
            assert _core.dropout_call_seed(seed, call) == layer.call_seed(call), (seed, call)


# ------------------------------------------------------------------ the MATLAB network


def _matlab_problem(dtype, nodes=(7, 13, 5, 3), m=37, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, nodes[0])).astype(dtype)
    y = rng.integers(0, nodes[-1], m)
    return X, y, natverk.initialize_weights(list(nodes), seed=seed, dtype=dtype)


@pytest.mark.parametrize("halves", [False, True], ids=["step", "forward_loss+backward_update"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["vanilla", "momentum", "rmsprop", "adam"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_matlab_plan_steps_are_bit_identical_to_the_step_by_step_calls(activation, optimizer, dtype, halves):
    """The plan of the MATLAB network (what train(), the balance principle and the lambda
    searches run), a step at a time, whole or in two halves, against forward_propagation +
    back_propagation + gradient_descent_*: the same loss and weights, bit for bit, for every
    optimizer (by its MATLAB name), activation and dtype, a batch of one row included."""
    from natverk.train import train_step_by_step

    X, y, params = _matlab_problem(dtype)
    a, b = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
    plan = _plan.matlab_plan(b, activation, optimizer)
    batches = [np.arange(0, 16), np.arange(16, 37), np.arange(5, 6)]
    for t, idx in enumerate(batches * 2, start=1):
        loss_ref = train_step_by_step(a, X[idx], y[idx], 0.05, 0.01, activation, optimizer, t=t)
        if halves:
            data_loss, psi, _ = plan.forward_loss(X, y, rows=idx)
            penalty = 0.5 * 0.01 * psi
            plan.backward_update(0.05, t=t, weight_decay=0.01)
        else:
            data_loss, penalty, _, updated = plan.step(X[idx], y[idx], 0.05, t=t, weight_decay=0.01)
            assert updated
        assert data_loss + penalty == loss_ref
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_matlab_plan_refuses_bad_networks_and_copies_read_only_arrays():
    X, y, p = _matlab_problem(np.float64)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        _plan.matlab_plan(dict(p), "relu", "lbfgs")
    with pytest.raises(ValueError, match=r"op 2 \(dense 5->3\): expects inputs of shape \(5,\), got \(13,\)"):
        _plan.matlab_plan(dict(p, W2=p["W3"], b2=p["b3"], W3=p["W2"], b3=p["b2"]), "relu", "sgd")
    with pytest.raises(ValueError, match=r"^b must have shape \(13,\) or \(1, 13\), got \(1, 5\)$"):
        _plan.matlab_plan(dict(p, b1=p["b2"]), "relu", "sgd")
    with pytest.raises(TypeError, match=r"^W must have the same dtype as the plan \(float64\), got float32$"):
        _plan.matlab_plan(dict(p, W2=p["W2"].astype(np.float32)), "relu", "sgd")
    # a read-only (or non-contiguous) weight is replaced in the dict by a copy the plan updates,
    # as the gradient_descent_* functions replace it
    frozen = dict(p, W1=p["W1"].copy(), b2=np.asfortranarray(np.repeat(p["b2"], 2, axis=0))[:1])
    frozen["W1"].flags.writeable = False
    old_W1 = frozen["W1"]
    plan = _plan.matlab_plan(frozen, "relu", "sgd")
    assert frozen["W1"] is not old_W1 and frozen["W1"].flags.writeable and frozen["b2"].flags.c_contiguous
    plan.step(X, y, 0.1)
    assert not np.array_equal(frozen["W1"], old_W1)


def test_the_two_halves_of_a_step_refuse_bad_input():
    X, y, p = _matlab_problem(np.float64)
    plan = _plan.matlab_plan(p, "relu", "adam")
    with pytest.raises(RuntimeError, match="there is none pending"):
        plan.backward_update(0.1)
    with pytest.raises(ValueError, match=r"^rows\[1\] = 37 is not a row of X \(0..36\)$"):
        plan.forward_loss(X, y, rows=np.array([0, 37]))
    with pytest.raises(ValueError, match=r"^rows\[0\] = -1 is not a row of X"):
        plan.forward_loss(X, y, rows=np.array([-1]))
    with pytest.raises(ValueError, match=r"^rows is empty"):
        plan.forward_loss(X, y, rows=np.array([], np.int64))
    with pytest.raises(TypeError, match=r"^rows must be an integer array of row indices, got dtype float64$"):
        plan.forward_loss(X, y, rows=np.array([0.0]))
    with pytest.raises(TypeError, match=r"^rows must be a NumPy array or None, got list$"):
        plan.forward_loss(X, y, rows=[0, 1])
    with pytest.raises(ValueError, match=r"^rows must be 1-D"):
        plan.forward_loss(X, y, rows=np.zeros((1, 1), np.int64))
    with pytest.raises(ValueError, match="is not a class label in 0..2"):
        plan.forward_loss(X, np.full(len(y), 3))
    with pytest.raises(ValueError, match=r"one label per row \(37\)"):
        plan.forward_loss(X, y[:-1])
    with pytest.raises(ValueError, match="X is empty"):
        plan.forward_loss(X[:0], y[:0])
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at row 3\)"):
        plan.forward_loss(np.where(np.arange(X.size).reshape(X.shape) == 3 * 7, np.nan, X), y)
    before = {k: v.copy() for k, v in p.items()}
    plan.forward_loss(X, y, rows=np.arange(5))
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        plan.backward_update(0.1, weight_decay=-1.0)
    with pytest.raises(ValueError, match=r"t \(the Adam step count\) must be >= 1"):
        plan.backward_update(0.1, t=0)
    with pytest.raises(ValueError, match=r"^learning_rate = 1e\+300 overflows"):
        _plan.matlab_plan(_matlab_problem(np.float32)[2], "relu", "adam").backward_update(1e300)
    for k in p:  # refused arguments change nothing
        np.testing.assert_array_equal(p[k], before[k], err_msg=k)
    plan.forward(X)  # another run discards the pending half-step
    with pytest.raises(RuntimeError, match="there is none pending"):
        plan.backward_update(0.1)
    plan.forward_loss(X, y, rows=np.arange(5))
    plan.backward_update(0.1)
    with pytest.raises(RuntimeError, match="there is none pending"):  # one update per forward_loss
        plan.backward_update(0.1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [300, 64])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_train_runs_the_plan_bit_identical_to_the_matlab_calls_past_one_gemm_block(optimizer, batch, dtype,
                                                                                    monkeypatch):
    # batches of 300 rows span two GEMM k-blocks (256): lambda must enter where back_propagation
    # puts it (dW = h^T dz + lambda W) for the roundings to agree. All but the last batch of an
    # epoch update the weights inside the dW GEMM: with 300 rows lambda W is filled into its scratch
    # first, with 64 the epilogue adds it to the one k block's sums (every weight fused, however small).
    from natverk.train import train_step_by_step

    monkeypatch.setattr(_plan, "FUSE_MIN_BYTES", 0)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 5)).astype(dtype)
    y = rng.integers(0, 3, 600)
    params = natverk.initialize_weights([5, 12, 7, 3], seed=0, dtype=dtype)
    a, b = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
    h = natverk.train(a, X, y, epochs=2, learning_rate=0.01, minibatch_size=batch, lambda_=0.02, optimizer=optimizer,
                      seed=3, verbose=0, eval_every=1)
    rng_b, t, losses = np.random.default_rng(3), 0, []
    for _ in range(2):
        epoch_losses = []
        for idx in natverk.minibatches(600, batch, rng_b):
            t += optimizer == "adam"
            epoch_losses.append(train_step_by_step(b, X[idx], y[idx], 0.01, 0.02, "relu", optimizer, t=max(t, 1)))
        losses.append(float(np.mean(epoch_losses)))
    assert h["loss"] == losses
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_reports_check_accuracy_through_the_plan(dtype):
    # train() takes the accuracies it records from its plan's forward, EVAL_ROWS rows a call;
    # they must be check_accuracy's own numbers on the same parameters (700 and 300 rows: two
    # whole chunks and a ragged one, and one ragged chunk)
    from natverk.utils.check_accuracy import check_accuracy

    assert _plan.EVAL_ROWS < 300
    rng = np.random.default_rng(5)
    X, Xv = rng.standard_normal((700, 6)).astype(dtype), rng.standard_normal((300, 6)).astype(dtype)
    y, yv = rng.integers(0, 4, 700), rng.integers(0, 4, 300)
    params = natverk.initialize_weights([6, 16, 9, 4], seed=1, dtype=dtype)
    for epoch in range(3):
        h = natverk.train(params, X, y, epochs=1, learning_rate=0.05, minibatch_size=64, seed=epoch, verbose=0,
                          X_val=Xv, y_val=yv)
        assert h["train_accuracy"] == [check_accuracy(X, y, params)[0]]
        assert h["val_accuracy"] == [check_accuracy(Xv, yv, params)[0]]


def test_train_stops_before_the_diverging_update():
    from natverk.train import train_step_by_step

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), rng.integers(0, 3, 64)
    params = natverk.initialize_weights([4, 8, 3], seed=0)
    twin = {k: v.copy() for k, v in params.items()}
    with pytest.raises(DivergenceError) as info:
        natverk.train(params, X, y, epochs=5, learning_rate=1e30, minibatch_size=16, optimizer="sgd", seed=0,
                      verbose=0)
    # the MATLAB loop up to the batch whose loss diverged, without that batch's update
    shuffle, done = np.random.default_rng(0), False
    for epoch in range(1, 6):
        for step, idx in enumerate(natverk.minibatches(64, 16, shuffle), start=1):
            before = {k: v.copy() for k, v in twin.items()}
            if not np.isfinite(train_step_by_step(twin, X[idx], y[idx], 1e30, 0.0, "relu", "sgd")):
                twin, done = before, True
                assert (epoch, step) == (info.value.epoch, info.value.step)
                break
        if done:
            break
    assert done
    for k in params:
        np.testing.assert_array_equal(params[k], twin[k], err_msg=k)


# ------------------------------------------------------------------ bad input


def _small_plan(dtype=np.float64, optimizer="momentum"):
    W, b = np.ones((3, 2), dtype), np.zeros(2, dtype)
    p = _core.Plan(dtype, (3,))
    p.dense(W, b, np.zeros_like(W), np.zeros_like(b))
    p.set_loss("cross_entropy")
    state = [np.zeros_like(W), np.zeros_like(b)]
    p.set_optimizer(optimizer, state, state, [True, False])
    return p


def test_bad_building_raises_clear_errors():
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        _core.Plan(np.int32, (3,))
    with pytest.raises(ValueError, match="input shape"):
        _core.Plan(np.float64, ())
    p = _core.Plan(np.float32, (3,))
    W = np.ones((3, 2))
    with pytest.raises(TypeError, match=r"W must have the same dtype as the plan \(float32\)"):
        p.dense(W, None, np.zeros_like(W), None)
    frozen = np.ones((3, 2), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="W is read-only"):
        p.dense(frozen, None, np.zeros_like(frozen), None)
    with pytest.raises(ValueError, match=r"dW and W must have the same shape"):
        p.dense(np.ones((3, 2), np.float32), None, np.zeros((2, 3), np.float32), None)
    with pytest.raises(ValueError, match=r"op 0 \(dense 4->2\): expects inputs of shape \(4,\), got \(3,\)"):
        p.dense(np.ones((4, 2), np.float32), None, np.zeros((4, 2), np.float32), None)
    with pytest.raises(TypeError, match="W must be a NumPy array, got list"):
        p.dense([[1.0]], None, np.zeros((1, 1), np.float32), None)
    with pytest.raises(ValueError, match="activation must be"):
        p.activation("swish")
    c = _core.Plan(np.float64, (2, 5, 5))
    with pytest.raises(ValueError, match="put a flatten before it"):
        c.dense(np.ones((50, 2)), None, np.zeros((50, 2)), None)
    with pytest.raises(ValueError, match=r"conv2d.*larger than the padded input"):
        c.conv2d(np.ones((3, 2, 7, 7)), None, np.zeros((3, 2, 7, 7)), None)
    with pytest.raises(ValueError, match="weight has 1 input channels per group"):
        c.conv2d(np.ones((3, 1, 3, 3)), None, np.zeros((3, 1, 3, 3)), None)
    c.begin_residual()
    c.maxpool2d((2, 2), (2, 2))
    with pytest.raises(ValueError, match="must keep the shape"):
        c.end_residual()
    with pytest.raises(RuntimeError, match="without begin_residual"):
        _core.Plan(np.float64, (3,)).end_residual()
    with pytest.raises(TypeError, match="counter must be the layer's int64 call counter"):
        _core.Plan(np.float64, (3,)).dropout(0.5, 1, np.zeros((), np.float64))
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        _core.Plan(np.float64, (3,)).dropout(1.0, 1, np.zeros((), np.int64))
    q = _core.Plan(np.float64, (3,))
    q.dense(np.ones((3, 2)), np.zeros(2), np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="one entry per parameter"):
        q.set_optimizer("sgd", [None], [None], [True])
    with pytest.raises(TypeError, match=r"^v\[0\] must be a NumPy array \(optimizer 'adam' uses it\), got None$"):
        q.set_optimizer("adam", [None, None], [None, None], [True, False])
    with pytest.raises(TypeError, match=r"^decay must be a list of bools, one per parameter, got numpy.ndarray$"):
        q.set_optimizer("sgd", [None, None], [None, None], np.array([True, False]))
    with pytest.raises(ValueError, match="optimizer must be 'sgd'"):
        q.set_optimizer("lbfgs", [None, None], [None, None], [True, False])
    with pytest.raises(ValueError, match=r"class_weights must have shape \(2,\)"):
        q.set_loss("cross_entropy", np.ones(3))
    with pytest.raises(ValueError, match="loss must be"):
        q.set_loss("hinge")
    conv = _core.Plan(np.float64, (1, 4, 4))
    conv.conv2d(np.ones((2, 1, 3, 3)), None, np.zeros((2, 1, 3, 3)), None)
    conv.flatten()
    conv.set_loss("mse")
    with pytest.raises(ValueError, match=r"decay\[0\] \(op 0 \(conv2d ->2\).W\): with l2_in_backward only dense "
                                         r"weights can be decayed"):
        conv.set_optimizer("sgd", [None], [None], [True], l2_in_backward=True)


def test_bad_running_input_raises_clear_errors():
    p = _small_plan()
    X, y = np.ones((4, 3)), np.array([0, 1, 1, 0])
    with pytest.raises(RuntimeError, match="needs set_loss"):
        _core.Plan(np.float64, (3,)).step(X, y, 0.1)
    with pytest.raises(TypeError, match=r"X must have the same dtype as the plan \(float64\)"):
        p.step(X.astype(np.float32), y, 0.1)
    with pytest.raises(ValueError, match=r"X must have shape \(m, 3\) for this plan, got \(4, 2\)"):
        p.step(np.ones((4, 2)), y, 0.1)
    with pytest.raises(ValueError, match="X is empty"):
        p.step(np.ones((0, 3)), y[:0], 0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        p.step(np.ones((3, 4)).T, y, 0.1)
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at row 2\)"):
        p.step(np.where(np.arange(12).reshape(4, 3) == 7, np.nan, 1.0), y, 0.1)
    with pytest.raises(ValueError, match="is not a class label in 0..1"):
        p.step(X, np.array([0, 1, 2, 0]), 0.1)
    with pytest.raises(ValueError, match=r"one label per row \(4\)"):
        p.step(X, y[:3], 0.1)
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        p.step(X, y, -0.1)
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\)"):
        p.step(X, y, 0.1, beta=1.0)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        p.step(X, y, 0.1, weight_decay=-1.0)
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        p.step(X, y, "fast")
    with pytest.raises(ValueError, match="max_loss must be a positive number"):
        p.step(X, y, 0.1, max_loss=0.0)
    with pytest.raises(ValueError, match=r"t \(the Adam step count\) must be >= 1"):
        _small_plan(optimizer="adam").step(X, y, 0.1, t=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        p.epoch(X, y, np.arange(4), 0, 0.1)
    with pytest.raises(ValueError, match=r"order\[1\] = 9 is not a row of X"):
        p.epoch(X, y, np.array([0, 9]), 2, 0.1)
    with pytest.raises(TypeError, match="order must be an integer array"):
        p.epoch(X, y, np.arange(4.0), 2, 0.1)
    p.step(X, y, 0.1)
    with pytest.raises(RuntimeError, match="ops cannot be added any more"):
        p.flatten()
    m = _core.Plan(np.float64, (3,))
    m.dense(np.ones((3, 2)), None, np.zeros((3, 2)), None)
    m.set_loss("bce_with_logits")
    m.set_optimizer("sgd", [None], [None], [True])
    with pytest.raises(ValueError, match=r"y must have shape \(4, 2\)"):
        m.step(X, np.ones((4, 3)), 0.1)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 1\]"):
        m.step(X, np.full((4, 2), 2.0), 0.1)
    with pytest.raises(TypeError, match="y must have the same dtype as the plan"):
        m.step(X, np.ones((4, 2), np.float32), 0.1)


def test_the_plan_describes_itself():
    model = _mlp_residual()
    mp = _plan.build_plan(model, SGD(0.1), CrossEntropy(), (6,), np.dtype(np.float64))
    text = repr(mp.plan)
    assert "op 1 (residual)" in text and "op 0 of a residual branch (dense 8->8)" in text
    assert mp.plan.input_shape == (6,) and mp.plan.output_shape == (3,) and mp.plan.loss == "cross_entropy"
    assert mp.plan.num_parameters == len(model.parameters())


def test_a_callback_that_changes_a_setting_makes_fit_plan_again():
    from natverk.callbacks import Callback

    class Anneal(Callback):
        def on_epoch_end(self, model, logs):
            model.layers[3].p = 0.1 * logs["epoch"]  # the dropout rate the plan copied
            model.layers[1].momentum = 0.5

    factory = lambda: natverk.Sequential(Dense(6, 8, seed=0), BatchNorm1D(8), ReLU(), Dropout(0.4, seed=1),  # noqa: E731
                                         Dense(8, 3, seed=2))
    X, y = _data((6,))
    (ha, sa), (hb, sb) = _fit_both(factory, X, y, epochs=3, batch_size=6, seed=0, optimizer=lambda: SGD(0.1),
                                   callbacks=[Anneal()])
    assert ha == hb
    assert_identical(sa, sb)
