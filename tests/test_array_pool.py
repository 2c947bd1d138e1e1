"""The pool large output arrays come from (cpp/bindings/array_pool.h).

A freed output's block is handed to the next output of its size class, with whatever the last
owner left in it. So:
1. a block is reused (the MATLAB-style loop allocates nothing after its first step);
2. every function that returns a pooled array writes all of it: each call below runs once,
   its outputs are filled with NaN and freed, and the call again gives the first call's bits;
3. pooled arrays behave as NumPy's own (writeable, contiguous, pickled and saved by value,
   views keep the block alive);
4. the pool's limits hold (small arrays bypass it; array_pool_clear empties it).
"""

from __future__ import annotations

import gc
import io
import pickle

import numpy as np
import pytest

import natverk
import natverk._core as core

RNG = np.random.default_rng(7)


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def big_calls(dtype):
    """Calls whose outputs (every one 32 KiB or more, odd sizes) come from the pool."""
    X, W, b = rand(129, 67, dtype=dtype), rand(67, 251, dtype=dtype), rand(251, dtype=dtype)
    dZ = rand(129, 251, dtype=dtype)
    x4, w4 = rand(3, 9, 29, 27, dtype=dtype), rand(7, 9, 3, 3, dtype=dtype)
    dy4 = rand(3, 7, 27, 25, dtype=dtype)
    labels = RNG.integers(0, 251, 129)
    return {
        "gemm": lambda: core.gemm(X, W),
        "dense_forward": lambda: core.dense_forward(X, W, b, "relu"),
        "dense_backward": lambda: core.dense_backward(dZ, X, W, 0.1, True),
        "activation_forward": lambda: core.activation_forward(dZ, "tanh"),
        "activation_backward": lambda: core.activation_backward(dZ, np.abs(dZ), "relu"),
        "softmax": lambda: core.softmax(dZ),
        "softmax_cross_entropy": lambda: core.softmax_cross_entropy(dZ, labels, None),
        "conv2d_forward": lambda: core.conv2d_forward(x4, w4, None),
        "conv2d_backward": lambda: core.conv2d_backward(dy4, x4, w4),
        "maxpool2d_forward": lambda: core.maxpool2d_forward(x4, (2, 2), (2, 2)),
    }


def arrays_in(result):
    items = result if isinstance(result, tuple) else (result,)
    return [a for a in items if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(big_calls(np.float64)))
def test_outputs_fully_written_over_a_poisoned_block(name, dtype):
    call = big_calls(dtype)[name]
    first = [a.copy() for a in arrays_in(call())]
    assert any(a.nbytes >= core._array_pool_stats()["min_pooled_bytes"] for a in first), "no pooled output"
    for _ in range(2):
        out = arrays_in(call())
        for a in out:
            if a.dtype.kind == "f":
                a.fill(np.nan)
            else:
                a.fill(-1)
        del out, a
        gc.collect()
        hits = core._array_pool_stats()["hits"]
        again = arrays_in(call())
        assert core._array_pool_stats()["hits"] > hits, f"{name}: the freed blocks were not reused"
        for a, b in zip(first, again):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(b, a, err_msg=f"{name}: a reused block left stale values")
        del again


def test_matlab_loop_reuses_its_blocks():
    params = natverk.initialize_weights([2, 250, 100, 50, 4], seed=0, dtype=np.float64)
    X, y = rand(128, 2), np.arange(128) % 4

    def step(t):
        _, _, cache = natverk.forward_propagation(X, y, params, 0.0, "relu")
        grads = natverk.back_propagation(cache, y, params, 0.0, "relu")
        natverk.gradient_descent_adam(grads, params, 1e-3, 0.9, 0.99, t)

    step(1)
    step(2)
    before = core._array_pool_stats()
    for t in range(3, 8):
        step(t)
    after = core._array_pool_stats()
    assert after["misses"] == before["misses"], "steps after the second took new memory"
    assert after["hits"] > before["hits"]


def test_pooled_arrays_behave_as_numpy_arrays(tmp_path):
    X, W = rand(200, 100), rand(100, 300)
    C = core.gemm(X, W)
    assert C.nbytes >= core._array_pool_stats()["min_pooled_bytes"]
    assert C.flags.writeable and C.flags.c_contiguous and C.flags.aligned
    assert C.ctypes.data % 64 == 0
    ref = X @ W
    np.testing.assert_allclose(C, ref, rtol=1e-12, atol=1e-12)
    C[0, 0] = 5.0
    assert C[0, 0] == 5.0
    view = C[10:20, ::3]
    saved = C.copy()
    del C
    gc.collect()
    core.gemm(X, W)  # may take a freed block: must not be C's, which the view keeps alive
    np.testing.assert_array_equal(view, saved[10:20, ::3])
    assert np.array_equal(pickle.loads(pickle.dumps(view)), saved[10:20, ::3])
    buf = io.BytesIO()
    np.save(buf, saved)
    buf.seek(0)
    np.testing.assert_array_equal(np.load(buf, allow_pickle=False), saved)


def test_small_outputs_bypass_the_pool_and_clear_empties_it():
    gc.collect()  # arrays of earlier tests caught in reference cycles go back first, not mid-test
    core._array_pool_clear()
    stats = core._array_pool_stats()
    assert stats["cached_blocks"] == 0 and stats["cached_bytes"] == 0
    small = core.gemm(rand(8, 8), rand(8, 8))  # 512 bytes
    assert small.nbytes < stats["min_pooled_bytes"]
    del small
    gc.collect()
    assert core._array_pool_stats()["cached_blocks"] == 0
    big = core.gemm(rand(64, 8), rand(8, 128))  # 64 KiB
    del big
    gc.collect()
    stats = core._array_pool_stats()
    assert stats["cached_blocks"] == 1 and stats["cached_bytes"] == 64 * 1024
    assert stats["cached_bytes"] <= stats["max_cached_bytes"]
    core._array_pool_clear()
    assert core._array_pool_stats()["cached_bytes"] == 0


def test_large_blocks_go_back_to_the_system():
    gc.collect()
    core._array_pool_clear()
    limits = core._array_pool_stats()
    assert limits["max_block_bytes"] <= limits["max_cached_bytes"]
    # one output just over the block limit is not kept
    rows = limits["max_block_bytes"] // (4 * 4096) + 1
    huge = core.gemm(np.ones((rows, 1), np.float32), np.ones((1, 4096), np.float32))
    assert huge.nbytes > limits["max_block_bytes"] and float(huge[-1, -1]) == 1.0
    del huge
    gc.collect()
    assert core._array_pool_stats()["cached_bytes"] == 0
    # blocks under it are kept until their sum passes the total limit; then the oldest go first
    size = limits["max_block_bytes"] * 3 // 4  # three of these pass max_cached_bytes, two do not
    outs = [core.gemm(np.ones((size // 4096 + i, 1), np.float32), np.ones((1, 1024), np.float32)) for i in range(3)]
    sizes = [a.nbytes for a in outs]
    assert 3 * size > limits["max_cached_bytes"] >= 2 * (size + 8192)
    while outs:
        del outs[0]  # freed in order: the first is the oldest in the pool
    gc.collect()
    stats = core._array_pool_stats()
    assert stats["cached_bytes"] <= limits["max_cached_bytes"]
    assert stats["cached_blocks"] == 2 and stats["cached_bytes"] == sum(sizes[1:])
    core._array_pool_clear()
