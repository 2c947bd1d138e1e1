"""In-place optimizer updates against the float64 reference
(cpp/optimizers/optimizers.h): SGD, momentum, RMSprop and Adam over several
consecutive steps (Adam's bias correction for t = 1..5), with and without
weight decay, both dtypes, and argument checking that leaves every array
untouched on failure."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import natverk._core as core
import reference as ref
from tolerances import assert_close, tol

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
SPLIT = 1 << 15
STEPS = 5

# Hyper-parameters chosen so that every term matters: beta2 = 0.999 makes
# Adam's bias correction a factor ~30 at t = 1 (an uncorrected step is 3x off).
HYPER = {
    "sgd": dict(learning_rate=0.05),
    "momentum": dict(learning_rate=0.05, beta=0.8),
    "rmsprop": dict(learning_rate=0.01, beta2=0.9, eps=1e-8),
    "adam": dict(learning_rate=0.01, beta1=0.9, beta2=0.999, eps=1e-8),
}
STATE = {"sgd": [], "momentum": ["v"], "rmsprop": ["s"], "adam": ["v", "s"]}
OPTIMIZERS = list(HYPER)


@pytest.fixture(autouse=True)
def _restore_threads():
    n = core.get_num_threads()
    yield
    core.set_num_threads(n)


def kernel_step(name, w, state, g, t, weight_decay):
    """One in-place natverk step; returns what the kernel returned."""
    h = HYPER[name]
    if name == "sgd":
        return core.sgd_update(w, g, h["learning_rate"], weight_decay=weight_decay)
    if name == "momentum":
        return core.momentum_update(w, state["v"], g, h["learning_rate"], h["beta"],
                                    weight_decay=weight_decay)
    if name == "rmsprop":
        return core.rmsprop_update(w, state["s"], g, h["learning_rate"], h["beta2"], eps=h["eps"],
                                   weight_decay=weight_decay)
    return core.adam_update(w, state["v"], state["s"], g, h["learning_rate"], h["beta1"], h["beta2"],
                            t, eps=h["eps"], weight_decay=weight_decay)


def reference_step(name, w, state, g, t, weight_decay):
    """The same step in float64; returns new (w, state)."""
    h = HYPER[name]
    if name == "sgd":
        return ref.sgd(w, g, h["learning_rate"], weight_decay), {}
    if name == "momentum":
        w, v = ref.momentum(w, state["v"], g, h["learning_rate"], h["beta"], weight_decay)
        return w, {"v": v}
    if name == "rmsprop":
        w, s = ref.rmsprop(w, state["s"], g, h["learning_rate"], h["beta2"], h["eps"], weight_decay)
        return w, {"s": s}
    w, v, s = ref.adam(w, state["v"], state["s"], g, h["learning_rate"], h["beta1"], h["beta2"], t,
                       h["eps"], weight_decay)
    return w, {"v": v, "s": s}


def _initial_state(name, shape, rng, init):
    state = {}
    for key in STATE[name]:
        if init == "zeros":
            state[key] = np.zeros(shape)
        elif key == "v":
            state[key] = rng.normal(0.0, 0.1, size=shape)
        else:  # s is a running mean of squares: non-negative
            state[key] = rng.uniform(0.0, 0.01, size=shape)
    return state


SHAPES = [(7,), (13, 11), (3, 4, 5), (SPLIT + 5,)]


@pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "2threads"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("init", ["zeros", "random"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1], ids=["wd0", "wd0.1"])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_several_steps_match_reference(name, shape, weight_decay, init, dtype, threads):
    core.set_num_threads(threads)
    rng = np.random.default_rng(zlib.crc32(f"{name}-{shape}-{init}".encode()))
    w = rng.normal(size=shape).astype(dtype)
    state = {k: v.astype(dtype) for k, v in _initial_state(name, shape, rng, init).items()}
    # the reference runs in float64 from the same (rounded) starting values
    w_ref = w.astype(np.float64)
    state_ref = {k: v.astype(np.float64) for k, v in state.items()}
    buffers = {"w": w.ctypes.data, **{k: v.ctypes.data for k, v in state.items()}}
    rtol, atol = tol(dtype, "optimizer")

    for t in range(1, STEPS + 1):
        g = rng.normal(size=shape).astype(dtype)
        g_before = g.copy()
        w_before = w.copy()
        assert kernel_step(name, w, state, g, t, weight_decay) is None
        w_ref, state_ref = reference_step(name, w_ref, state_ref, g.astype(np.float64), t, weight_decay)

        assert not np.array_equal(w, w_before), f"step {t} did not update w in place"
        np.testing.assert_array_equal(g, g_before, err_msg="g was modified")
        assert_close(w, w_ref, dtype, f"{name} w after step {t}", rtol, atol)
        for key in STATE[name]:
            assert_close(state[key], state_ref[key], dtype, f"{name} {key} after step {t}", rtol, atol)
        assert w.dtype == dtype and all(v.dtype == dtype for v in state.values())

    # still the same arrays and the same memory
    assert buffers == {"w": w.ctypes.data, **{k: v.ctypes.data for k, v in state.items()}}


def _steps_on_lengths(name, dtype, seed_tag, lengths, steps):
    """`steps` updates with weight decay 0.1 on a fresh random vector of each length; the final
    w and state arrays, in order, to compare bit for bit between two settings."""
    rng = np.random.default_rng(zlib.crc32(seed_tag.encode()))
    out = []
    for n in lengths:
        w = rng.normal(size=n).astype(dtype)
        state = {k: v.astype(dtype) for k, v in _initial_state(name, (n,), rng, "random").items()}
        for t in range(1, steps + 1):
            kernel_step(name, w, state, rng.normal(size=n).astype(dtype), t, 0.1)
        out += [w, *state.values()]
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_simd_level_gives_the_scalar_levels_bits(name, dtype, simd):
    """Each SIMD level runs its own copy of the update loops (optimizers.cpp); division and
    square root round correctly at any width and no copy fuses a multiply-add, so every level
    must give the bits of the scalar one, on odd lengths (vector tails) and with weight decay."""
    def run(level):
        core.set_simd_level(level)
        return _steps_on_lengths(name, dtype, f"simd-{name}", (1, 5, 17, 1003, SPLIT + 37), steps=3)

    got, want = run(simd), run("scalar")
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} at SIMD level {simd}")
    w = np.ones(9, dtype)  # and each level still matches the reference
    core.set_simd_level(simd)
    state = {k: np.zeros(9, dtype) for k in STATE[name]}
    g = np.linspace(-1, 1, 9).astype(dtype)
    kernel_step(name, w, state, g, 1, 0.0)
    w_ref, _ = reference_step(name, np.ones(9), {k: np.zeros(9) for k in STATE[name]}, g.astype(np.float64), 1, 0.0)
    assert_close(w, w_ref, dtype, f"{name} at SIMD level {simd}", *tol(dtype, "optimizer"))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_two_threads_give_one_threads_bits_at_every_split(name, dtype):
    """An update is split between threads from a size that depends on the optimizer (RMSprop and
    Adam, whose divisions make an element dear, from 4,096 elements a thread; optimizers.cpp,
    kUpdateGrain). Each element is its own update, so lengths on either side of both grains, the
    spiral net's 25,000-float weight among them, give 1 thread's bits on 2."""
    def run(threads):
        core.set_num_threads(threads)
        return _steps_on_lengths(name, dtype, f"threads-{name}", (SPLIT // 8 - 1, SPLIT // 4 + 3, 25_000,
                                                                   2 * SPLIT + 11), steps=2)

    for a, b in zip(run(2), run(1)):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: 2 threads against 1")


def test_adam_first_step_is_learning_rate_times_sign():
    # With zero moments and bias correction, step 1 moves every weight by
    # lr * g / (|g| + eps): an uncorrected Adam would move it by lr * 0.1 / sqrt(0.001) = 3.16 lr.
    rng = np.random.default_rng(1)
    w = rng.normal(size=50)
    g = rng.normal(size=50)
    v, s = np.zeros(50), np.zeros(50)
    w0 = w.copy()
    core.adam_update(w, v, s, g, 0.01, 0.9, 0.999, 1, eps=1e-8)
    assert_close(w0 - w, 0.01 * g / (np.abs(g) + 1e-8), np.float64, "adam step 1")
    assert_close(v, 0.1 * g, np.float64, "v after step 1")
    assert_close(s, 0.001 * g * g, np.float64, "s after step 1")


@pytest.mark.parametrize("t", [1, 2, 10, 1000])
def test_adam_bias_correction_uses_t(t):
    rng = np.random.default_rng(2)
    w, v, s, g = rng.normal(size=8), rng.normal(size=8), rng.uniform(0, 1, size=8), rng.normal(size=8)
    expected = ref.adam(w, v, s, g, 0.01, 0.9, 0.999, t)
    core.adam_update(w, v, s, g, 0.01, 0.9, 0.999, t)
    for got, want, what in zip((w, v, s), expected, "wvs"):
        assert_close(got, want, np.float64, f"adam t={t} {what}")


def test_weight_decay_is_added_to_the_gradient():
    # sgd with weight decay wd on gradient g equals sgd without it on g + wd * w
    rng = np.random.default_rng(3)
    w = rng.normal(size=20)
    g = rng.normal(size=20)
    a, b = w.copy(), w.copy()
    core.sgd_update(a, g, 0.1, weight_decay=0.3)
    core.sgd_update(b, g + 0.3 * w, 0.1)
    assert_close(a, b, np.float64, "sgd weight decay")
    assert_close(a, w - 0.1 * (g + 0.3 * w), np.float64, "sgd formula")


def test_momentum_with_beta_zero_is_sgd_and_lr_zero_keeps_w():
    rng = np.random.default_rng(4)
    w, g = rng.normal(size=30), rng.normal(size=30)
    a, b, v = w.copy(), w.copy(), rng.normal(size=30)
    core.momentum_update(a, v, g, 0.05, 0.0)
    core.sgd_update(b, g, 0.05)
    assert_close(a, b, np.float64, "momentum(beta=0) vs sgd")
    assert_close(v, g, np.float64, "v = g when beta = 0")
    c, v2 = w.copy(), np.zeros(30)
    core.momentum_update(c, v2, g, 0.0, 0.5)
    np.testing.assert_array_equal(c, w)
    assert_close(v2, 0.5 * g, np.float64, "v updated even with lr = 0")


def test_nan_gradient_propagates_into_w():
    w, v = np.linspace(0.5, 1.5, 5), np.zeros(5)
    g = np.array([0.1, np.nan, -0.2, 0.3, 0.4])
    w_ref, v_ref = ref.momentum(w, v, g, 0.1, 0.9)
    core.momentum_update(w, v, g, 0.1, 0.9)
    assert np.isnan(w[1]) and np.isnan(v[1])
    assert_close(w, w_ref, np.float64, "w with a NaN gradient")  # NaN exactly where expected
    assert_close(v, v_ref, np.float64, "v with a NaN gradient")


# ---------------------------------------------------------------------------
# argument checking: every failure raises before anything is written


def _arrays(dtype=np.float64, shape=(4, 3)):
    rng = np.random.default_rng(5)
    return dict(w=rng.normal(size=shape).astype(dtype), v=rng.normal(size=shape).astype(dtype),
                s=rng.uniform(0, 1, size=shape).astype(dtype), g=rng.normal(size=shape).astype(dtype))


FUNCS = {
    "sgd": (core.sgd_update, ["w", "g"]),
    "momentum": (core.momentum_update, ["w", "v", "g"]),
    "rmsprop": (core.rmsprop_update, ["w", "s", "g"]),
    "adam": (core.adam_update, ["w", "v", "s", "g"]),
}


def _kwargs(name, arrays):
    fn, keys = FUNCS[name]
    kw = {k: arrays[k] for k in keys}
    kw.update(HYPER[name])
    if name == "adam":
        kw["t"] = 3
    return kw


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _strided(a):
    big = np.repeat(a, 2, axis=-1)
    return big[..., ::2]


# (optimizers it applies to, argument, replacement, exception, message)
BAD = [
    (["adam"], "t", 0, ValueError, "t"),
    (["adam"], "t", -3, ValueError, "t"),
    (["adam"], "beta1", 1.0, ValueError, "beta1"),
    (["adam"], "beta1", -0.1, ValueError, "beta1"),
    (["adam"], "beta1", np.nan, ValueError, "beta1"),
    (["adam", "rmsprop"], "beta2", 1.0, ValueError, "beta2"),
    (["adam", "rmsprop"], "beta2", 1.5, ValueError, "beta2"),
    (["adam", "rmsprop"], "beta2", -1e-3, ValueError, "beta2"),
    (["momentum"], "beta", 1.0, ValueError, "beta"),
    (["momentum"], "beta", -0.5, ValueError, "beta"),
    (["adam", "rmsprop"], "eps", 0.0, ValueError, "eps"),
    (["adam", "rmsprop"], "eps", -1e-8, ValueError, "eps"),
    (OPTIMIZERS, "learning_rate", -0.01, ValueError, "learning_rate"),
    (OPTIMIZERS, "learning_rate", np.inf, ValueError, "learning_rate"),
    (OPTIMIZERS, "learning_rate", np.nan, ValueError, "learning_rate"),
    (OPTIMIZERS, "weight_decay", -0.1, ValueError, "weight_decay"),
    (OPTIMIZERS, "g", lambda a: np.zeros((3, 4)), ValueError, "same shape"),
    (OPTIMIZERS, "g", lambda a: np.zeros(12), ValueError, "same shape"),
    (["momentum", "adam"], "v", lambda a: np.zeros((4, 4)), ValueError, "same shape"),
    (["rmsprop", "adam"], "s", lambda a: np.zeros((4, 2)), ValueError, "same shape"),
    (OPTIMIZERS, "w", _readonly, ValueError, "read-only"),
    (["momentum", "adam"], "v", _readonly, ValueError, "read-only"),
    (["rmsprop", "adam"], "s", _readonly, ValueError, "read-only"),
    (OPTIMIZERS, "w", _strided, ValueError, "C-contiguous"),
    (OPTIMIZERS, "g", _strided, ValueError, "C-contiguous"),
    (["momentum", "adam"], "v", _strided, ValueError, "C-contiguous"),
    (["rmsprop", "adam"], "s", _strided, ValueError, "C-contiguous"),
    (["rmsprop", "adam"], "s", lambda a: np.ascontiguousarray(a.T).T, ValueError, "C-contiguous"),
    (OPTIMIZERS, "g", lambda a: a.astype(np.float32), TypeError, "g"),
    (["momentum", "adam"], "v", lambda a: a.astype(np.float32), TypeError, "v"),
    (["rmsprop", "adam"], "s", lambda a: a.astype(np.float32), TypeError, "s"),
    (OPTIMIZERS, "w", lambda a: a.astype(np.int64), TypeError, "w"),
    (OPTIMIZERS, "w", lambda a: a.astype(np.float16), TypeError, "w"),
]
BAD_CASES = [(name, arg, new, exc, match) for names, arg, new, exc, match in BAD for name in names]


@pytest.mark.parametrize(
    "name,arg,new,exc,match",
    BAD_CASES,
    ids=[f"{n}-{a}-{getattr(x, '__name__', x)}" for n, a, x, _, _ in BAD_CASES],
)
def test_bad_arguments_raise_and_write_nothing(name, arg, new, exc, match):
    arrays = _arrays()
    kw = _kwargs(name, arrays)
    kw[arg] = new(kw[arg]) if callable(new) else new
    snapshot = {k: np.array(v, copy=True) for k, v in kw.items() if isinstance(v, np.ndarray)}
    fn = FUNCS[name][0]
    with pytest.raises(exc, match=match):
        fn(**kw)
    for k, before in snapshot.items():
        np.testing.assert_array_equal(kw[k], before, err_msg=f"{k} changed although the call failed")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_float32_w_with_float64_gradient_is_type_error(name):
    arrays = _arrays()
    arrays["w"] = arrays["w"].astype(np.float32)
    kw = _kwargs(name, arrays)
    w_before = kw["w"].copy()
    with pytest.raises(TypeError):
        FUNCS[name][0](**kw)
    np.testing.assert_array_equal(kw["w"], w_before)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_valid_edge_values_are_accepted(name):
    arrays = _arrays()
    kw = _kwargs(name, arrays)
    kw["learning_rate"] = 0.0  # lr = 0 is allowed (>= 0)
    for key in ("beta", "beta1", "beta2"):
        if key in kw:
            kw[key] = 0.0  # [0, 1) includes 0
    w_before = kw["w"].copy()
    assert FUNCS[name][0](**kw) is None
    np.testing.assert_array_equal(kw["w"], w_before)  # lr = 0: w stays
