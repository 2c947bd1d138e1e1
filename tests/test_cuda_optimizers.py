"""The CUDA twins of the in-place optimizer updates (cpp/optimizers/optimizers.cu) against the
CPU kernels: SGD, momentum, RMSprop and Adam over several consecutive steps (the state carried
from step to step on both sides, Adam's t = 1..5), weight decay off and on, odd and empty sizes,
both dtypes; the updated w, v, s are compared in place after every step. Argument errors must
raise the CPU binding's exception types.

The GPU kernels do the CPU's arithmetic operation by operation (no FMA contraction), so the
results should agree bit for bit; the tolerance asked of them is the "optimizer" row of
tests/tolerances.py (float64 1e-12, float32 1e-5).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from cuda_twin import check_twin, compare, requires_gpu, to_dev
from natverk import _core
from natverk import cuda as nvcuda

pytestmark = requires_gpu

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
STEPS = 5
SIZES = [(0,), (1,), (7,), (1001,), (33, 65), (4, 3, 5, 7), (257 * 256 + 3,)]
SIZE_IDS = ["empty", "one", "7", "1001", "33x65", "4x3x5x7", "65795"]

# Every term matters: beta2 = 0.999 makes Adam's bias correction a factor ~30 at t = 1.
HYPER = {
    "sgd": dict(learning_rate=0.05),
    "momentum": dict(learning_rate=0.05, beta=0.8),
    "rmsprop": dict(learning_rate=0.01, beta2=0.9, eps=1e-8),
    "adam": dict(learning_rate=0.01, beta1=0.9, beta2=0.999, eps=1e-8),
}
STATE = {"sgd": [], "momentum": ["v"], "rmsprop": ["s"], "adam": ["v", "s"]}
OPTIMIZERS = list(HYPER)


def _args(name: str, w, state: dict, g, t: int) -> tuple[list, dict]:
    """Positional arrays (w, state..., g) and keyword hyper-parameters of one step."""
    kwargs = dict(HYPER[name])
    if name == "adam":
        kwargs["t"] = t
    return [w, *(state[k] for k in STATE[name]), g], kwargs


def _run_steps(name: str, shape, dtype, weight_decay: float, seed: int, steps: int = STEPS,
               g_hook=None) -> None:
    rng = np.random.default_rng(seed)
    w_cpu = rng.standard_normal(shape).astype(dtype)
    # Non-zero starting moments (s >= 0) so that the state's own term is exercised at step 1.
    state_cpu = {"v": (0.1 * rng.standard_normal(shape)).astype(dtype),
                 "s": (0.01 * rng.random(shape)).astype(dtype)}
    w_gpu = to_dev(w_cpu)
    state_gpu = {k: to_dev(a) for k, a in state_cpu.items()}
    for t in range(1, steps + 1):
        g = rng.standard_normal(shape).astype(dtype)
        if g_hook is not None:
            g = g_hook(g, t)
        cpu_args, kwargs = _args(name, w_cpu, state_cpu, g, t)
        gpu_args, _ = _args(name, w_gpu, state_gpu, to_dev(g), t)
        assert getattr(_core, f"{name}_update")(*cpu_args, weight_decay=weight_decay, **kwargs) is None
        assert getattr(nvcuda.ops, f"{name}_update")(*gpu_args, weight_decay=weight_decay, **kwargs) is None
        compare(w_gpu.numpy(), w_cpu, dtype, f"{name} w after step {t}", op="optimizer")
        for k in STATE[name]:
            compare(state_gpu[k].numpy(), state_cpu[k], dtype, f"{name} {k} after step {t}", op="optimizer")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2], ids=["nowd", "wd"])
@pytest.mark.parametrize("shape", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_steps_match_cpu(name, shape, weight_decay, dtype):
    _run_steps(name, shape, dtype, weight_decay, seed=zlib.crc32(repr((name, shape, weight_decay)).encode()))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_long_adam_like_run(name, dtype):
    """Twenty steps in a row: the state compounds and t grows (Adam's corrections approach 1)."""
    _run_steps(name, (517,), dtype, 1e-3, seed=7, steps=20)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_nan_and_zero_gradients(name, dtype):
    """NaN in g propagates into w (and the state) as on the CPU; g = 0 leaves SGD's w alone and
    exercises sqrt(s) + eps near 0 for RMSprop/Adam."""
    def hook(g, t):
        g[::5] = 0
        if t == 3:
            g[7] = np.nan
        return g
    _run_steps(name, (101,), dtype, 0.0, seed=11, g_hook=hook)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_single_step_with_harness(name, dtype):
    """One step through check_twin (the in-place arguments compared), with default eps and
    weight_decay (the keyword defaults of the CPU binding)."""
    rng = np.random.default_rng(3)
    shape = (19, 3)
    w = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    state = {"v": np.zeros(shape, dtype), "s": np.zeros(shape, dtype)}
    args, kwargs = _args(name, w, state, g, t=1)
    kwargs.pop("eps", None)
    check_twin(f"{name}_update", *args, dtype=dtype, inplace=tuple(range(len(args) - 1)), op="optimizer",
               **kwargs)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_adam_large_t(dtype):
    """t far beyond where beta^t underflows: the corrections are exactly 1 on both sides."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal(64).astype(dtype)
    v = (0.1 * rng.standard_normal(64)).astype(dtype)
    s = (0.01 * rng.random(64)).astype(dtype)
    g = rng.standard_normal(64).astype(dtype)
    check_twin("adam_update", w, v, s, g, dtype=dtype, inplace=(0, 1, 2), op="optimizer",
               learning_rate=1e-3, beta1=0.9, beta2=0.999, t=100000, eps=1e-7, weight_decay=0.5)


# ---- argument errors: the CPU binding's exception types --------------------------------------

def _both_raise(name: str, cpu_args: list, kwargs: dict, exc) -> None:
    """The CPU kernel on NumPy arrays and the GPU twin on Tensors raise the same type."""
    with pytest.raises(exc):
        getattr(_core, name)(*[a.copy() if isinstance(a, np.ndarray) else a for a in cpu_args], **kwargs)
    with pytest.raises(exc):
        getattr(nvcuda.ops, name)(*[to_dev(a) for a in cpu_args], **kwargs)


def test_errors_match_cpu():
    w = np.ones(6)
    g = np.ones(6)
    v = np.zeros(6)
    s = np.zeros(6)
    adam = dict(learning_rate=0.1, beta1=0.9, beta2=0.999, t=1)
    _both_raise("sgd_update", [w, g], dict(learning_rate=-1.0), ValueError)
    _both_raise("sgd_update", [w, g], dict(learning_rate=float("nan")), ValueError)
    _both_raise("sgd_update", [w, g], dict(learning_rate=0.1, weight_decay=-1.0), ValueError)
    _both_raise("sgd_update", [w, g.astype(np.float32)], dict(learning_rate=0.1), TypeError)
    _both_raise("sgd_update", [w, np.ones(5)], dict(learning_rate=0.1), ValueError)
    _both_raise("sgd_update", [w.astype(np.int64), g.astype(np.int64)], dict(learning_rate=0.1), TypeError)
    _both_raise("sgd_update", [w.astype(np.float32), g.astype(np.float32)], dict(learning_rate=1e300), ValueError)
    _both_raise("momentum_update", [w, v, g], dict(learning_rate=0.1, beta=1.0), ValueError)
    _both_raise("momentum_update", [w, np.zeros(7), g], dict(learning_rate=0.1, beta=0.9), ValueError)
    _both_raise("rmsprop_update", [w, s, g], dict(learning_rate=0.1, beta2=0.9, eps=0.0), ValueError)
    _both_raise("rmsprop_update", [w.astype(np.float32), s.astype(np.float32), g.astype(np.float32)],
                dict(learning_rate=0.1, beta2=0.9, eps=1e-50), ValueError)
    _both_raise("adam_update", [w, v, s, g], dict(adam, t=0), ValueError)
    _both_raise("adam_update", [w, v, s.astype(np.float32), g], adam, TypeError)
    _both_raise("adam_update", [w, v, s, g], dict(adam, beta1=-0.1), ValueError)
    _both_raise("adam_update", [w, v, s, g], dict(adam, t="1"), TypeError)
    # A NumPy array where a Tensor is expected: a TypeError naming the argument.
    with pytest.raises(TypeError, match="w must be a natverk.cuda.Tensor"):
        nvcuda.ops.sgd_update(w, to_dev(g), learning_rate=0.1)
    with pytest.raises(TypeError, match="g must be a natverk.cuda.Tensor"):
        nvcuda.ops.sgd_update(to_dev(w), g, learning_rate=0.1)


def test_error_leaves_state_untouched():
    """Validation runs before any kernel: a rejected call changes nothing on the device."""
    w = np.arange(6, dtype=np.float64)
    w_gpu, v_gpu, g_gpu = to_dev(w), to_dev(np.ones(6)), to_dev(np.ones(6))
    with pytest.raises(ValueError):
        nvcuda.ops.momentum_update(w_gpu, v_gpu, g_gpu, learning_rate=0.1, beta=2.0)
    np.testing.assert_array_equal(w_gpu.numpy(), w)
    np.testing.assert_array_equal(v_gpu.numpy(), np.ones(6))
