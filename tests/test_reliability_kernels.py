"""Reliability of the natverk._core boundary (the kernels' argument handling):

1. geometry whose sizes overflow int64 (stride, padding, dilation, pooling
   kernel_size are free integers) raises ValueError naming the argument,
   in the kernels (cpp/common/shape.h) and in the Python layers; geometry that
   fits but needs absurd memory raises MemoryError or ValueError;
2. a float argument that is not finite in the arrays' dtype (lambda_ = 1e300
   for float32) raises ValueError naming it, instead of inf gradients;
3. gemm with alpha == 0 propagates NaN/Inf from A and B, as documented and as
   tests/reference.py computes it;
4. an array argument given as a list or None raises TypeError naming the
   argument, not pybind11's "incompatible function arguments";
5. _core.pyi declares exactly the functions _core has;
6. a scalar argument (a float, an int, an (h, w) pair, a flag, a name) of the wrong kind or
   beyond int64 raises TypeError / ValueError naming it (test_fuzz.py found pybind11's generic
   message for every one of them, and flags that took None as False).
"""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import natverk
import natverk._core as core
import reference as ref
from core_calls import (NO_ARRAYS, PLAN_BUILDING, SCALAR_ARGS, core_function, held_arrays, plan_methods,
                        public_functions, valid_calls)

I64 = 2**63 - 1
ONES = np.ones((1, 1, 5, 5))


# ---------------------------------------------------------------------------
# 1. overflow-safe geometry


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_dilation_overflow_raises(dtype):
    x, w = ONES.astype(dtype), np.ones((1, 1, 3, 1), dtype)
    # dilation * (kH - 1) + 1 wrapped around: the old kernel returned a (1, 1, 7, 5) array
    with pytest.raises(ValueError, match=r"dilation \(9223372036854775807, 1\) makes the effective kernel "
                                         r"size overflow"):
        core.conv2d_forward(x, w, None, (1, 1), (0, 0), (I64, 1))


@pytest.mark.parametrize("padding", [(0, I64 - 1), (2**62, 0), (I64, I64)], ids=["w-2^63-2", "h-2^62", "both-max"])
def test_conv2d_padding_overflow_raises(padding):
    # H + 2 * padding wrapped around: (0, 2^63 - 2) "fitted" and returned a (1, 1, 3, 1) array
    with pytest.raises(ValueError, match=re.escape(f"padding {padding}") + " makes the padded input size overflow"):
        core.conv2d_forward(ONES, np.ones((1, 1, 3, 1)), None, (1, 1), padding)


def test_conv2d_backward_overflowing_geometry_raises():
    x, w = ONES, np.ones((1, 1, 3, 1))
    # the old kernel took dy of the wrapped-around shape and returned dW = [25, 0, 25]
    with pytest.raises(ValueError, match=r"dilation \(9223372036854775807, 1\)"):
        core.conv2d_backward(np.ones((1, 1, 7, 5)), x, w, (1, 1), (0, 0), (I64, 1))
    with pytest.raises(ValueError, match=r"padding \(0, 9223372036854775806\)"):
        core.conv2d_backward(np.ones((1, 1, 3, 1)), x, w, (1, 1), (0, I64 - 1))


def test_conv2d_output_element_count_overflow_raises():
    # the padded size fits, but N*K*Ho*Wo does not
    with pytest.raises(ValueError, match=r"output of shape \(1, 1, 3, 4611686018427387909\) has more elements"):
        core.conv2d_forward(ONES, np.ones((1, 1, 3, 1)), None, (1, 1), (0, 2**61))


@pytest.mark.parametrize("op", [core.maxpool2d_forward, core.avgpool2d_forward], ids=lambda f: f.__name__)
@pytest.mark.parametrize("padding", [(I64, 1), (1, 2**62)], ids=["h-max", "w-2^62"])
def test_pool2d_padding_overflow_raises(op, padding):
    # 2 * padding wrapped negative and passed "padding <= kernel / 2": maxpool returned
    # arg-max -1 for every window
    with pytest.raises(ValueError, match=r"padding must be between 0 and half the kernel size, got padding " +
                                         re.escape(str(padding))):
        op(ONES, (3, 3), (1, 1), padding)


def test_pool2d_backward_padding_overflow_raises():
    dy = np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        core.avgpool2d_backward(dy, ONES, (3, 3), (1, 1), (I64, 1))
    with pytest.raises(ValueError, match="padding"):
        core.maxpool2d_backward(dy, np.zeros((1, 1, 3, 3), np.int64), ONES, (3, 3), (1, 1), (I64, 1))


def test_pool2d_huge_kernel_is_fast_and_exact():
    """A pooling kernel of 2^62 rows (mostly padding) fits int64 and is legal (padding <= kernel/2
    keeps a pooling output at most (H + 1) x (W + 1)); the old loops visited every one of its
    2^62 offsets. Run in a subprocess, so the old code fails by
    timeout instead of hanging the suite."""
    code = textwrap.dedent("""
        import importlib.util, sys
        import numpy as np
        # the very extension module the parent process tests
        spec = importlib.util.spec_from_file_location("natverk._core", sys.argv[1])
        core = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(core)
        x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
        k, p = 2**62, 2**61   # every window covers whole columns
        y, am = core.maxpool2d_forward(x, (k, 1), (1, 1), (p, 0))
        assert y.shape == (2, 3, 6, 4), y.shape
        assert (y == x.max(axis=2, keepdims=True)).all()
        assert (am == x.argmax(axis=2)[:, :, None, :] * 4 + np.arange(4)).all()
        a = core.avgpool2d_forward(x, (k, 1), (1, 1), (p, 0))
        np.testing.assert_allclose(a, np.broadcast_to(x.sum(axis=2, keepdims=True) / k, a.shape), rtol=1e-15)
        dx = core.avgpool2d_backward(np.ones_like(a), x, (k, 1), (1, 1), (p, 0))
        np.testing.assert_allclose(dx, np.full(x.shape, 6 / k), rtol=1e-15)
        print("ok")
    """)
    try:
        proc = subprocess.run([sys.executable, "-c", code, core.__file__], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("pooling with a 2^62-row kernel did not finish in 60 s")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize(
    "call",
    [
        # 2^48 elements: fits int64 (also in bytes) but not in any address space
        lambda: core.conv2d_forward(ONES, np.ones((1, 1, 1, 1)), None, (1, 1), (2**23, 2**23)),
        # the byte count itself overflows int64
        lambda: core.conv2d_forward(ONES, np.ones((1, 1, 1, 1)), None, (1, 1), (2**30, 2**30)),
        lambda: core.gemm(np.broadcast_to(np.ones((1, 1)), (2**40, 1)), np.broadcast_to(np.ones((1, 1)), (1, 2**40))),
    ],
    ids=["conv-2^48", "conv-bytes-overflow", "gemm-C-overflow"],
)
def test_absurd_but_representable_sizes_fail_cleanly(call):
    with pytest.raises((MemoryError, ValueError)):
        call()


def test_conv2d_layer_padding_overflow_raises():
    x = np.ones((1, 1, 5, 5))
    # the old layer returned a (1, 1, 5, 1) array
    with pytest.raises(ValueError, match=r"Conv2D\(1->1\): padding \(0, 9223372036854775806\) makes the padded "
                                         r"input size overflow"):
        natverk.layers.Conv2D(1, 1, 1, padding=(0, I64 - 1)).forward(x)
    with pytest.raises(ValueError, match=r"Conv2D\(1->1\): dilation \(9223372036854775807, 1\) makes the "
                                         r"effective kernel size overflow"):
        natverk.layers.Conv2D(1, 1, (3, 1), dilation=(I64, 1)).forward(x)


@pytest.mark.parametrize(
    "make",
    [
        lambda: natverk.layers.Conv2D(1, 1, 1, padding=(0, 2**70)),
        lambda: natverk.layers.Conv2D(1, 1, 1, stride=2**64),
        lambda: natverk.layers.Conv2D(1, 1, 1, dilation=(1, 2**63)),
        lambda: natverk.layers.Conv2D(1, 1, 2**63),
        lambda: natverk.layers.MaxPool2D(2**64),
        lambda: natverk.layers.AvgPool2D(2, stride=(1, 2**65)),
    ],
    ids=["conv-padding", "conv-stride", "conv-dilation", "conv-kernel", "maxpool-kernel", "avgpool-stride"],
)
def test_layer_geometry_beyond_int64_is_rejected_at_construction(make):
    # used to reach _core and fail there with pybind11's "incompatible function arguments"
    with pytest.raises(ValueError, match=r"must be <= 9223372036854775807"):
        make()


# ---------------------------------------------------------------------------
# shared table (tests/core_calls.py): a valid call of every _core function that takes arrays

_valid_calls = valid_calls
_public_functions = public_functions


def test_the_table_covers_every_core_function():
    # a new binding must be added to _valid_calls (and so to the list/None tests below), a new
    # method of the step plan too unless it builds the op list (tests/test_plan.py checks those)
    functions = {n for n in _valid_calls() if not n.startswith("Plan.")}
    assert _public_functions() == functions | NO_ARRAYS
    assert plan_methods() == (set(_valid_calls()) - functions) | {f"Plan.{n}" for n in PLAN_BUILDING}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_valid_calls()))
def test_the_valid_baseline_calls_work(name, dtype):
    kwargs = _valid_calls(dtype)[name][0]
    core_function(name, dtype)(**kwargs)
    if name in ("conv2d_forward", "softmax_cross_entropy", "softmax_cross_entropy_backward", "gemm"):
        optional = {"conv2d_forward": "bias", "gemm": "C"}.get(name, "class_weights")
        kwargs[optional] = None  # optional arrays keep accepting None
        if name == "gemm":
            kwargs["beta"] = 0.0
        getattr(core, name)(**kwargs)
    if name.startswith("Plan."):  # the plan's optional arrays (accuracy_targets, rows) accept None
        core_function(name, dtype)(**{**kwargs, **{a: None for a in _valid_calls(dtype)[name][2]}})


# ---------------------------------------------------------------------------
# 2. float arguments must be finite in the arrays' dtype

# (function, float argument)
FLOAT_ARGS = [
    ("gemm", "alpha"), ("gemm", "beta"),
    ("dense_backward", "lambda_"),
    ("batchnorm_forward", "eps"),
    ("sgd_update", "learning_rate"), ("sgd_update", "weight_decay"),
    ("momentum_update", "learning_rate"), ("momentum_update", "weight_decay"),
    ("rmsprop_update", "learning_rate"), ("rmsprop_update", "eps"), ("rmsprop_update", "weight_decay"),
    ("adam_update", "learning_rate"), ("adam_update", "eps"), ("adam_update", "weight_decay"),
    ("Plan.step", "learning_rate"), ("Plan.step", "eps"), ("Plan.step", "weight_decay"),
    ("Plan.backward_update", "learning_rate"), ("Plan.epoch", "weight_decay"), ("Plan.gradients", "weight_decay"),
]


def _snapshot(kwargs, func=None):
    """The array arguments, and the arrays a plan updates in place ("held[i]")."""
    snap = {k: v.copy() for k, v in kwargs.items() if isinstance(v, np.ndarray)}
    return snap | {f"held[{i}]": (a, a.copy()) for i, a in enumerate(held_arrays(func))}


@pytest.mark.parametrize("name,arg", FLOAT_ARGS, ids=[f"{n}-{a}" for n, a in FLOAT_ARGS])
def test_float32_kernels_reject_floats_that_overflow_float32(name, arg):
    kwargs = _valid_calls(np.float32)[name][0]
    kwargs[arg] = 1e300  # a finite double, inf as a float32: the old kernels returned inf gradients
    func = core_function(name, np.float32)
    before = _snapshot(kwargs, func)
    with pytest.raises(ValueError, match=rf"^{arg} = 1e\+300 overflows the arrays' dtype float32"):
        func(**kwargs)
    for k, v in before.items():
        now, v = v if k.startswith("held") else (kwargs[k], v)
        np.testing.assert_array_equal(now, v, err_msg=f"{k} changed although the call failed")


@pytest.mark.parametrize("name,arg", FLOAT_ARGS, ids=[f"{n}-{a}" for n, a in FLOAT_ARGS])
def test_float64_kernels_still_accept_large_finite_floats(name, arg):
    kwargs = _valid_calls(np.float64)[name][0]
    kwargs[arg] = 1e300  # finite in float64: whatever it does to the numbers, it is not an argument error
    with np.errstate(all="ignore"):
        core_function(name, np.float64)(**kwargs)


def test_dense_backward_float32_lambda_reproducer():
    one = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"lambda_ = 1e\+300 overflows the arrays' dtype float32"):
        core.dense_backward(one, one, one, 1e300)
    # the largest float32 is still fine
    _, dW, _ = core.dense_backward(one, one, one, float(np.finfo(np.float32).max) / 4)
    assert np.isfinite(dW).all()


@pytest.mark.parametrize("name", ["rmsprop_update", "adam_update", "Plan.step", "Plan.backward_update", "Plan.epoch"])
def test_float32_optimizers_reject_an_eps_that_is_zero_in_float32(name):
    kwargs = _valid_calls(np.float32)[name][0]
    kwargs["eps"] = 1e-50  # > 0 as a double, 0 as a float32: 0 / (sqrt(0) + 0) = NaN weights
    with pytest.raises(ValueError, match=r"^eps = 1e-50 is 0 in the arrays' dtype float32"):
        core_function(name, np.float32)(**kwargs)
    kwargs = _valid_calls(np.float64)[name][0]
    kwargs["eps"] = 1e-50
    core_function(name, np.float64)(**kwargs)


# ---------------------------------------------------------------------------
# 3. gemm with alpha == 0 propagates NaN/Inf of A and B


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta,with_c", [(0.0, False), (0.0, True), (1.0, True), (-0.5, True)],
                         ids=["no-C", "beta0", "beta1", "beta-0.5"])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (9, 13, 7), (20, 30, 300)])
def test_gemm_alpha_zero_propagates_nan_and_inf(m, n, k, beta, with_c, dtype, simd, threads):
    rng = np.random.default_rng(m * 1000 + k)
    A = rng.uniform(-1, 1, (m, k)).astype(dtype)
    B = rng.uniform(-1, 1, (k, n)).astype(dtype)
    A[m // 2, k - 1] = np.nan
    B[0, n - 1] = np.inf  # 0 * inf is NaN too
    C = rng.uniform(-1, 1, (m, n)).astype(dtype) if with_c else None
    with np.errstate(invalid="ignore"):  # 0 * inf in the reference
        expected = ref.gemm(A, B, C, 0.0, beta)
    out = core.gemm(A, B, None if C is None else C.copy(), alpha=0.0, beta=beta)
    assert np.isnan(expected[m // 2]).all() and np.isnan(expected[:, n - 1]).all()
    # beta * C + 0 * (finite) is exact in either dtype, so equality, NaN where the reference has NaN
    np.testing.assert_array_equal(out, expected.astype(dtype))


def test_gemm_alpha_zero_reproducer():
    out = core.gemm(np.array([[np.nan]]), np.ones((1, 1)), alpha=0.0)
    assert np.isnan(out).all()  # was 0.0
    assert "alpha == 0" in core.gemm.__doc__  # the docstring states the contract


# ---------------------------------------------------------------------------
# 4. list / None for an array argument: TypeError naming it


def _array_cases():
    cases = []
    for name, (_, required, optional, lists, optional_lists) in sorted(_valid_calls().items()):
        cases += [(name, arg, bad) for arg in required for bad in ("list", "None")]
        cases += [(name, arg, "list") for arg in optional]
        cases += [(name, arg, bad) for arg in lists for bad in ("ndarray", "None", "item-list")]
        cases += [(name, arg, bad) for arg in optional_lists for bad in ("ndarray", "item-list")]
    return cases


ARRAY_CASES = _array_cases()


@pytest.mark.parametrize("name,arg,bad", ARRAY_CASES, ids=[f"{n}-{a}-{b}" for n, a, b in ARRAY_CASES])
def test_non_array_arguments_raise_type_error_naming_them(name, arg, bad):
    kwargs, required, optional, lists, optional_lists = _valid_calls()[name]
    if bad == "list":
        kwargs[arg] = np.asarray(kwargs[arg]).tolist()
        got = "list"
    elif bad == "None":
        kwargs[arg] = None
        got = "None"
    elif bad == "ndarray":
        kwargs[arg] = np.stack([np.zeros(3), np.zeros(3)])
        got = "numpy.ndarray"
    else:  # "item-list": a list of arrays whose first item is a list
        kwargs[arg] = [kwargs[arg][0].tolist(), *kwargs[arg][1:]]
    if bad == "item-list":
        pattern = rf"^{arg}\[0\] must be a NumPy array, got list$"
    elif arg in lists or arg in optional_lists:
        pattern = rf"^{arg} must be a list of NumPy arrays, got {got}$"
    elif arg in optional:
        pattern = rf"^{arg} must be a NumPy array or None, got {got}$"
    else:
        pattern = rf"^{arg} must be a NumPy array, got {got}$"
    with pytest.raises(TypeError, match=pattern) as info:
        core_function(name)(**kwargs)
    assert "incompatible function arguments" not in str(info.value)


def test_tuples_of_arrays_are_accepted_where_lists_are():
    kwargs = _valid_calls()["Plan.set_optimizer"][0]
    for k in ("v", "s", "decay"):
        kwargs[k] = tuple(kwargs[k])
    core_function("Plan.set_optimizer")(**kwargs)


# ---------------------------------------------------------------------------
# 5. _core.pyi in sync with _core


def test_core_stub_declares_every_core_function():
    stub = pathlib.Path(natverk.__file__).with_name("_core.pyi")
    declared = {node.name for node in ast.parse(stub.read_text()).body if isinstance(node, ast.FunctionDef)}
    assert {n for n in declared if not n.startswith("_")} == _public_functions()
    assert all(callable(getattr(natverk._core, n, None)) for n in declared)  # the internal ones exist too


# ---------------------------------------------------------------------------
# 6. scalar arguments: TypeError / ValueError naming them (found by tests/test_fuzz.py)

SCALAR_CASES = [(name, arg, kind) for name, args in sorted(SCALAR_ARGS.items()) for arg, kind in sorted(args.items())
                if name not in NO_ARRAYS]
WRONG_KIND = {  # a value of the wrong kind -> the start of the TypeError
    "float": (None, "must be a real number, got None"),
    "int": (1.0, "must be an integer, got float"),
    "seed": (None, "must be an integer, got None"),
    "pair": (3, r"must be a pair \(h, w\) of integers, got int"),
    "bool": (None, "must be True or False, got None"),
    "str": (None, "must be a str, got None"),
    "flags": (None, "must be a list of bools, one per parameter, got None"),
    "optional_float": ("0.1", "must be a real number, got str"),
}


def _call_with(name, arg, value, dtype=np.float64):
    kwargs = _valid_calls(dtype)[name][0]
    kwargs[arg] = value
    return core_function(name, dtype)(**kwargs)


@pytest.mark.parametrize("name,arg,kind", SCALAR_CASES, ids=[f"{n}-{a}" for n, a, _ in SCALAR_CASES])
def test_scalar_arguments_of_the_wrong_kind_raise_type_error_naming_them(name, arg, kind):
    value, message = WRONG_KIND[kind]
    with pytest.raises(TypeError, match=rf"^{arg} {message}") as info:
        _call_with(name, arg, value)
    assert "incompatible function arguments" not in str(info.value)


BEYOND_INT64 = [(n, a, k) for n, a, k in SCALAR_CASES if k in ("int", "pair", "seed")]


@pytest.mark.parametrize("name,arg,kind", BEYOND_INT64, ids=[f"{n}-{a}" for n, a, _ in BEYOND_INT64])
@pytest.mark.parametrize("value", [2**70, -(2**63) - 1], ids=["2^70", "-2^63-1"])
def test_integers_beyond_their_range_raise_value_error_naming_them(name, arg, kind, value):
    # stride = 2**70 reached pybind11's int64_t caster and failed with its generic message
    with pytest.raises(ValueError, match=rf"^{arg}\b.*(does not fit|must be >= 0)") as info:
        _call_with(name, arg, (value, 1) if kind == "pair" else value)
    assert "incompatible function arguments" not in str(info.value)


@pytest.mark.parametrize("name,arg", [(n, a) for n, a, k in SCALAR_CASES if k == "bool"])
@pytest.mark.parametrize("value", [None, 2, "no", 0])
def test_flags_take_only_true_or_false(name, arg, value):
    # None meant False and 2 or "no" meant True, without a word
    with pytest.raises(TypeError, match=rf"^{arg} must be True or False, got {re.escape(repr(value))}$"):
        _call_with(name, arg, value)
    _call_with(name, arg, np.bool_(False))  # numpy's bool is a flag too


def test_scalar_reproducers():
    one = np.ones((2, 2))
    with pytest.raises(TypeError, match=r"^lambda_ must be a real number, got None$"):
        core.dense_backward(one, one, one, None)
    with pytest.raises(ValueError, match=r"^stride \(1180591620717411303424, 1\) does not fit int64"):
        core.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), None, (2**70, 1))
    with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1$"):
        core.dropout_forward(one, 0.5, -1)
    with pytest.raises(ValueError, match=r"^t = 9223372036854775808 does not fit int64"):
        core.adam_update(one, one.copy(), one.copy(), one, 0.1, 0.9, 0.99, 2**63)
    with pytest.raises(TypeError, match=r"^learning_rate must be a real number, got str$"):
        core.sgd_update(one.copy(), one, "0.1")
    with pytest.raises(ValueError, match=r"^n = 1180591620717411303424 does not fit int64"):
        core.set_num_threads(2**70)
    with pytest.raises(TypeError, match=r"^level must be a str, got None$"):
        core.set_simd_level(None)
    # what pybind11 accepted stays accepted: NumPy scalars, 0-d arrays, lists and arrays as pairs
    core.dense_backward(one, one, one, np.float32(0.5))
    core.dense_backward(one, one, one, np.array(0.5))
    core.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), None, [1, np.int64(2)], np.array([1, 0]))
    core.dropout_forward(one, 0.5, np.uint64(2**64 - 1))

