"""Property-based fuzzing (Hypothesis) of natverk's C++ boundary -- every natverk._core
function and the step plan's running methods -- and of its public entry points.

The rule every case follows: the call either returns what the NumPy reference computes
(tests/reference.py, tests/reference_mlp.py; compared at tests/tolerances.py's tolerances),
or it raises TypeError, ValueError or MemoryError whose message names the argument at fault
(or plainly describes it: "the output", "kernel", "input", ...). pybind11's generic
"incompatible function arguments" and any other exception type fail the case; a crash kills
pytest (the ASan + UBSan build of .ci/sanitizers runs this file too).

The inputs: shapes with 0, 1, odd and large sides (and views of ~2^40 elements that must fail
cleanly), float32 / float64 and wrong dtypes (integers, float16, complex, bool, object,
big-endian), non-contiguous views (steps, negative strides, Fortran order, zero strides),
read-only arrays, NaN / Inf, and absurd geometry: stride, padding, dilation and kernel sizes
of 0, negative, 2**31, 2**62, 2**63 - 1, 2**63 and 2**70.

Budget: NATVERK_FUZZ_EXAMPLES examples per test (default 25: about 1,600 cases in ~11 s on
the 2-core dev machine, ~17 s under ASan + UBSan); NATVERK_FUZZ_EXAMPLES=200 is the long run
(about 12,900 cases, ~1 min). The seed is fixed (derandomize=True), there is no deadline and
no example database (CI is reproducible; Hypothesis' other cache goes to a temporary folder,
so nothing is written to .hypothesis/). tests/conftest.py prints how many cases ran.

Cases run at a drawn SIMD level and thread count where the kernels have several paths.
"""

from __future__ import annotations

import ast
import atexit
import collections
import functools
import math
import os
import pathlib
import re
import shutil
import tempfile
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import natverk
import natverk._core as core
import reference as ref
import reference_mlp
from conftest import SIMD_LEVELS
from core_calls import IN_PLACE, NO_ARRAYS, SCALAR_ARGS, core_function, held_arrays, valid_calls
from natverk import layers as L
from natverk.optimizers.table import resolve
from tolerances import assert_close, gemm_atol, tol

# ---------------------------------------------------------------------------
# budget and bookkeeping

EXAMPLES = int(os.environ.get("NATVERK_FUZZ_EXAMPLES", "25"))

settings.register_profile(
    "natverk-fuzz",
    derandomize=True,  # a fixed seed: every run draws the same cases
    database=None,  # no .hypothesis/ example database: CI is reproducible
    deadline=None,
    max_examples=EXAMPLES,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example, HealthCheck.function_scoped_fixture],
)
FUZZ = settings.get_profile("natverk-fuzz")

# Even without a database Hypothesis caches what it reads from the source tree in
# .hypothesis/constants under the working directory; keep the checkout clean.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="natverk-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)

CASES: collections.Counter = collections.Counter()  # test (and _core function) -> cases run
OUTCOMES: collections.Counter = collections.Counter()  # "ok", "TypeError", "ValueError", "MemoryError"


def counted(fn):
    """Count every execution of a fuzz test's body (one per Hypothesis example)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = fn.__name__ + (f"[{kwargs['name']}]" if "name" in kwargs else "")
        CASES[key] += 1
        return fn(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------
# the oracle

ALLOWED = (TypeError, ValueError, MemoryError)
GENERIC = "incompatible function arguments"
RAISED = object()  # what attempt() returns when the call raised a clean error

# words that describe an argument when a message does not spell its name
ALIASES = {
    "kind": ("activation",),
    "n": ("number of threads",),
    "kernel_size": ("kernel",),
    "weight": ("kernel",),
    "level": ("SIMD level",),
}
# what a message about a shape or size that several arguments produce may name instead
DESCRIPTIONS = ("output", "kernel", "input", "padded input", "workspace", "shapes", "columns", "rows")


def _mentions(message: str, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names)


def names_for(arg: str) -> set[str]:
    return {arg, *ALIASES.get(arg, ())}


def attempt(call, names, expect: str = "either", label: str = "", kinds=ALLOWED):
    """Run ``call()``. It must return (expect 'ok'), raise (expect 'error') or either; a raised
    exception must be one of ``kinds`` (TypeError / ValueError / MemoryError) with a message that
    names one of ``names`` (pybind11's generic message never passes). Returns the result, or
    RAISED after a clean error."""
    try:
        out = call()
    except ALLOWED as err:
        msg = str(err)
        assert GENERIC not in msg, f"{label}: pybind11's generic message instead of one naming the argument: {msg[:400]}"
        assert expect != "ok", f"{label}: a valid call raised {type(err).__name__}: {msg}"
        assert isinstance(err, kinds), f"{label}: expected {[k.__name__ for k in kinds]}, got {type(err).__name__}: {msg}"
        if not (isinstance(err, MemoryError) and re.search(r"allocate|memory", msg)):
            assert _mentions(msg, names), f"{label}: {type(err).__name__} names none of {sorted(names)}: {msg!r}"
        OUTCOMES[type(err).__name__] += 1
        return RAISED
    except Exception as err:  # any other type is a failure, reported with the case
        raise AssertionError(f"{label}: raised {type(err).__name__} (not TypeError/ValueError/MemoryError): "
                             f"{err}") from err
    assert expect != "error", f"{label}: expected TypeError/ValueError/MemoryError, the call returned {out!r:.300}"
    OUTCOMES["ok"] += 1
    return out


def close(actual, expected, dtype, name, t=None):
    """assert_close at ``t`` (default: the dtype's tolerance); arrays must come back in ``dtype``."""
    t = t or tol(dtype)
    if isinstance(expected, np.ndarray) and isinstance(actual, np.ndarray) and actual.dtype.kind == "f":
        assert actual.dtype == np.dtype(dtype), f"{name}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert_close(actual, expected, dtype, name, rtol=t.rtol, atol=t.atol)


def amax(*arrays) -> float:
    """Largest finite |value| of the arrays (1 for none): the size of the terms a result sums."""
    m = 0.0
    for a in arrays:
        if a is None:
            continue
        a = np.asarray(a, dtype=np.float64)
        fin = a[np.isfinite(a)]
        if fin.size:
            m = max(m, float(np.abs(fin).max()))
    return max(m, 1.0)


def quiet(fn, *args, **kwargs):
    """A reference evaluated with NumPy's floating-point warnings off (NaN/Inf inputs)."""
    with np.errstate(all="ignore"):
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------
# strategies

FLOATS = (np.float32, np.float64)
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0)
SIDES = (0, 1, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 65, 127, 129, 257, 1031, 4099)


@st.composite
def shapes(draw, min_ndim=0, max_ndim=4, min_side=0, budget=6000):
    """A shape of min_ndim..max_ndim sides from SIDES (0, 1, odd, powers of two +- 1, a few
    thousand), at most ``budget`` elements."""
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape, room = [], budget
    for _ in range(ndim):
        side = draw(st.sampled_from([s for s in SIDES if min_side <= s <= max(room, 1)] or [min_side]))
        shape.append(side)
        room //= max(side, 1)
    return tuple(shape)


@st.composite
def values(draw, shape, dtype, lo=-2.0, hi=2.0, specials=True):
    """Uniform [lo, hi) values of ``shape`` in ``dtype``, sometimes with NaN / Inf / 0 / -0 at a
    few random positions."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.uniform(lo, hi, size=shape)
    if specials and a.size and draw(st.integers(0, 3)) == 0:
        for _ in range(draw(st.integers(1, 3))):
            a.flat[int(rng.integers(a.size))] = draw(st.sampled_from(SPECIALS))
    return a.astype(dtype)


LAYOUTS = ("c", "c", "c", "c", "strided", "reversed", "fortran", "readonly")


def relayout(a: np.ndarray, how: str) -> np.ndarray:
    """The same values in another memory layout (a view where the layout is unusual)."""
    if how == "strided" and a.ndim:
        return np.repeat(a, 2, axis=-1)[..., ::2]
    if how == "reversed" and a.ndim:
        return np.flip(np.flip(a).copy())
    if how == "fortran" and a.ndim >= 2:
        return np.asfortranarray(a)
    if how == "readonly":
        a = a.copy()
        a.setflags(write=False)
        return a
    return a


def is_contiguous(a) -> bool:
    return not isinstance(a, np.ndarray) or a.flags.c_contiguous


def expectation(*arrays) -> str:
    """'ok' when every array is C-contiguous (the kernels' contract), else 'either': a
    non-contiguous input may be rejected (naming it) or handled, then correctly."""
    return "ok" if all(is_contiguous(a) for a in arrays) else "either"


def f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def runtime(data) -> None:
    """Run the case at a drawn SIMD level and thread count (tests/conftest.py restores both):
    every level's kernels and the chunked parallel paths see the same inputs."""
    core.set_simd_level(data.draw(st.sampled_from(SIMD_LEVELS), label="simd"))
    core.set_num_threads(data.draw(st.sampled_from([1, 2, 2, 3]), label="threads"))


# ===========================================================================
# 1. every _core function, one argument made wrong at a time
#
# The baseline is the valid call of tests/core_calls.py; one argument (array, list of arrays
# or scalar) is replaced by a mutation: a list / None / str where an array belongs, another
# dtype, rank or layout, an empty / read-only / zero-stride / ~2^40-element view, NaN / Inf; a
# float that is None, a str, complex, bool, NaN, 1e300, 10**400; an int that is a float, bool
# or beyond int64; a pair that is not a pair or holds huge values; a flag that is None or an
# int; a name that is None, bytes or unknown. Mutations that keep the values (a read-only or
# strided copy, a numpy scalar, a list instead of a tuple) must give the baseline's result
# when accepted; a call that fails leaves its in-place arguments untouched.


def _stub_parameters() -> dict[str, list[str]]:
    """name -> parameter names of every function natverk/_core.pyi declares, and of every
    method of its class Plan as "Plan.<name>" (without self)."""
    stub = pathlib.Path(natverk.__file__).with_name("_core.pyi")
    out = {}
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = [a.arg for a in node.args.args]
        elif isinstance(node, ast.ClassDef) and node.name == "Plan":
            out |= {f"Plan.{m.name}": [a.arg for a in m.args.args[1:]]
                    for m in node.body if isinstance(m, ast.FunctionDef)}
    return out


SIGNATURES = _stub_parameters()
CORE_WITH_ARRAYS = sorted(valid_calls())


def _params(name, dtype=np.float64):
    kwargs, req, opt, lists, opt_lists = valid_calls(dtype)[name]
    kinds = {a: "array" for a in req} | {a: "optional" for a in opt} | {a: "list" for a in lists}
    kinds |= {a: "optional_list" for a in opt_lists} | SCALAR_ARGS[name]
    return kwargs, kinds


def test_the_tables_describe_every_parameter():
    """core_calls.SCALAR_ARGS plus the array arguments are exactly the parameters _core.pyi
    declares, so every parameter of every binding in the table is fuzzed. (That the table and
    the stub cover every _core function is test_reliability_kernels.py's check.)"""
    for name in [*CORE_WITH_ARRAYS, *sorted(NO_ARRAYS)]:
        assert name in SCALAR_ARGS, f"add {name} to core_calls.SCALAR_ARGS"
        assert name in SIGNATURES, f"declare {name} in natverk/_core.pyi"
        params = set(_params(name)[1]) if name in CORE_WITH_ARRAYS else set(SCALAR_ARGS[name])
        assert params == set(SIGNATURES[name]), name


ARRAY_MUTATIONS = ("list", "none", "float", "str", "dict", "int32", "int64", "uint8", "float16", "complex128",
                   "bool", "object", "other_float", "byteswap", "ndim_up", "ndim_down", "empty_first",
                   "empty_last", "strided", "reversed", "fortran", "readonly", "subclass", "nan", "inf",
                   "zero_stride", "huge_view")
LIST_MUTATIONS = ("ndarray", "none", "str", "tuple", "empty", "short", "longer", "item_list", "item_none",
                  "item_dtype", "item_readonly", "item_strided", "item_nan")
FLOAT_VALUES = (None, "0.1", [0.1], 1j, np.complex64(1), True, np.bool_(True), np.array([0.5]), object(),
                math.nan, math.inf, -math.inf, 1e300, -1e300, 10**400, -(10**400), 2**70, 1e-320, 1e-50,
                -1.0, 0.0, -0.0, 0.5, 1.0, 2.0, Fraction(1, 3))
INT_VALUES = (None, "1", 1.0, 1.5, np.float64(2.0), True, [1], object(), 0, 1, 2, 3, -1, 2**31, 2**62,
              2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**70, -(2**70), np.int32(2), np.uint64(2**64 - 1))
HUGE_INTS = (0, 1, 2, 3, -1, -(2**63), 2**31, 2**40, 2**62, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 2**70)
PAIR_SHAPES = (None, 3, "ab", b"ab", (1,), (1, 1, 1), (1.5, 1), (1, None), (True, 1), {1: 1}, np.array([1.0, 1.0]))
BOOL_VALUES = (None, 0, 1, 2, "no", "", 1.0, [True], np.int64(1))
STR_VALUES = (None, 1, b"relu", ["relu"], "", "RELU", "x" * 500, "mean ", "adam\0")
SEED_VALUES = (None, -1, 1.5, "1", True, 0, 1, 2**63, 2**64 - 1, 2**64, 2**70, -(2**70), np.uint64(2**64 - 1), np.int8(-1))
FLAG_VALUES = lambda n: (None, True, "1" * n, np.ones(n, bool), [True] * n, (False,) * n,  # noqa: E731
                         [np.bool_(True)] * n, [1] * n, [None] * n, [True] * (n - 1), [True] * (n + 1), [])


class _Sub(np.ndarray):
    pass


def _mutate_array(v, how, rng):
    """(new value, expect, equivalent): expect 'error' / 'ok' / 'either'; equivalent when the
    values are the baseline's, so an accepted call must give the baseline's result."""
    if how == "list":
        return v.tolist(), "error", False
    if how == "none":
        return None, None, False  # decided by the caller (optional or not)
    if how == "float":
        return 1.5, "error", False
    if how == "str":
        return "array", "error", False
    if how == "dict":
        return {"a": v}, "error", False
    if how in ("int32", "int64", "uint8", "float16", "complex128", "bool", "object"):
        with np.errstate(all="ignore"):
            return v.astype(how), "either", False
    if how == "other_float":
        return v.astype(np.float32 if v.dtype == np.float64 else np.float64), "either", False
    if how == "byteswap":
        return v.astype(v.dtype.newbyteorder()), "either", True
    if how == "ndim_up":
        return v[None], "either", False
    if how == "ndim_down":
        if v.ndim > 1:
            return v.reshape(-1), "either", False
        return (v[0, ...] if v.size else v), "either", False  # a 0-d array
    if how == "empty_first":
        return np.empty((0,) + v.shape[1:], v.dtype), "either", False
    if how == "empty_last":
        return np.empty(v.shape[:-1] + (0,), v.dtype), "either", False
    if how in ("strided", "reversed", "fortran"):
        return relayout(v, how), "either", True
    if how == "readonly":
        return relayout(v, "readonly"), "either", True
    if how == "subclass":
        return v.view(_Sub), "ok", True
    if how in ("nan", "inf"):
        w = v.copy()
        if w.size:
            if w.dtype.kind == "f":
                w.flat[int(rng.integers(w.size))] = np.nan if how == "nan" else -np.inf
            else:  # labels, argmax, mask: a value outside their range instead
                info = np.iinfo(w.dtype)
                w.flat[int(rng.integers(w.size))] = (info.min if info.min < 0 else 2) if how == "nan" else info.max
        return w, "either", False
    if how == "zero_stride":
        return np.broadcast_to(v.flat[0] if v.size else v.dtype.type(0), v.shape), "either", False
    if how == "huge_view":  # ~2^40 elements of zero stride: nothing real, must fail cleanly
        return np.broadcast_to(v.flat[0] if v.size else v.dtype.type(0), (2**40,) + v.shape[1:]), "either", False
    raise AssertionError(how)


def _mutate_list(v, how, rng):
    """Mutations of a list of arrays (the plan's optimizer state v, s)."""
    if how == "ndarray":
        return v[0], "error", False
    if how == "none":
        return None, None, False
    if how == "str":
        return "weights", "error", False
    if how == "tuple":
        return tuple(v), "ok", True
    if how == "empty":
        return [], "error", False
    if how == "short":
        return v[:-1], "error", False
    if how == "longer":
        return v + [v[-1].copy()], "error", False
    i = int(rng.integers(len(v)))
    w = list(v)
    if how == "item_list":
        w[i] = w[i].tolist()
        return w, "error", False
    if how == "item_none":
        w[i] = None
        return w, "error", False
    if how == "item_dtype":
        w[i] = w[i].astype(np.float32 if w[i].dtype == np.float64 else np.float64)
        return w, "error", False
    if how == "item_readonly":
        w[i] = relayout(w[i], "readonly")
        return w, "error", False  # every list is updated in place
    if how == "item_strided":
        w[i] = relayout(w[i], "strided")
        return w, "either", True
    if how == "item_nan":
        w[i] = w[i].copy()
        w[i].flat[0] = np.nan
        return w, "either", False
    raise AssertionError(how)


def _scalar_case(kind, value):
    """(expect, exception types) for a scalar argument of ``kind`` set to ``value``: the wrong kind
    of object must raise TypeError, a number outside what the argument can hold ValueError; a
    number in range may be accepted or refused (the kernel's own range checks)."""
    is_bool = isinstance(value, (bool, np.bool_))
    if kind == "float":
        if is_bool or not isinstance(value, (int, float, Fraction, np.floating, np.integer)):
            return "error", (TypeError,)
        if (isinstance(value, int) and abs(value) > 2**1023) or not math.isfinite(float(value)):
            return "error", (ValueError,)
        return "either", ALLOWED
    if kind in ("int", "seed"):
        if is_bool or not isinstance(value, (int, np.integer)):
            return "error", (TypeError,)
        lo, hi = (-(2**63), 2**63 - 1) if kind == "int" else (0, 2**64 - 1)
        if not lo <= int(value) <= hi:
            return "error", (ValueError,)
        return "either", ALLOWED
    if kind == "pair":
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            return "error", (TypeError, ValueError)  # not a sequence / not two values
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "error", (TypeError,)
        if any(not -(2**63) <= v <= 2**63 - 1 for v in value):
            return "error", (ValueError,)
        return "either", ALLOWED
    if kind == "optional_float":  # None: not given
        return ("either", ALLOWED) if value is None else _scalar_case("float", value)
    if kind == "flags":  # a list (or tuple) of bools, one per plan parameter
        if not isinstance(value, (list, tuple)) or any(not isinstance(v, (bool, np.bool_)) for v in value):
            return "error", (TypeError,)
        return "either", ALLOWED  # the wrong number of flags: ValueError
    if kind == "bool":
        return ("either", ALLOWED) if is_bool else ("error", (TypeError,))
    if kind == "str":
        return ("either", ALLOWED) if isinstance(value, str) else ("error", (TypeError,))
    raise AssertionError(kind)


def _outputs(name, kwargs, result, func=None):
    """The result (flattened) and the in-place arguments (a plan's held arrays) after the call."""
    if isinstance(result, dict):  # Plan.epoch's; its per-batch losses are float64 in either dtype
        out = [v.tolist() if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
               for v in (result[k] for k in sorted(result))]
    else:
        out = list(result) if isinstance(result, tuple) else [result]
    out += held_arrays(func)
    for a in IN_PLACE.get(name, ()):
        v = kwargs.get(a)
        if isinstance(v, (list, tuple)):
            out += list(v)
        elif v is not None:
            out.append(v)
    return out


def _snapshot(name, kwargs, func=None):
    snap = {"held": [np.array(x, copy=True) for x in held_arrays(func)]}
    for a in IN_PLACE.get(name, ()):
        v = kwargs.get(a)
        items = v if isinstance(v, (list, tuple)) else [v]
        snap[a] = [np.array(x, copy=True) if isinstance(x, np.ndarray) and x.size < 10**6 else None for x in items]
    return snap


def _unchanged(name, kwargs, snap, label, func=None):
    for a, before in snap.items():
        v = held_arrays(func) if a == "held" else kwargs.get(a)
        items = v if isinstance(v, (list, tuple)) else [v]
        for i, (x, b) in enumerate(zip(items, before)):
            if b is not None and isinstance(x, np.ndarray) and x.shape == b.shape and x.dtype == b.dtype:
                same = np.array_equal(x, b, equal_nan=x.dtype.kind in "fc")
                assert same, f"{label}: {a}[{i}] changed although the call failed"


@pytest.mark.parametrize("name", CORE_WITH_ARRAYS)
@FUZZ
@given(data=st.data())
@counted
def test_core_one_bad_argument(name, data):
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    kwargs, kinds = _params(name, dtype)
    arg = data.draw(st.sampled_from(sorted(kinds)), label="arg")
    kind = kinds[arg]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    exact = names_for(arg)  # a wrong kind of object: the message must name the argument itself
    # a shape, size or value that clashes with the other arguments may name any of them
    loose = exact | set(kinds) | set(DESCRIPTIONS)
    func = core_function(name, dtype)
    equivalent, kinds_ = False, ALLOWED
    if kind in ("array", "optional"):
        how = data.draw(st.sampled_from(ARRAY_MUTATIONS), label="mutation")
        value, expect, equivalent = _mutate_array(kwargs[arg], how, rng)
        if how == "none":
            expect = "ok" if kind == "optional" and not (name == "gemm" and kwargs.get("beta")) else "error"
            if kind == "optional" and expect == "error":  # gemm: beta != 0 needs a C (a value problem)
                kinds_ = (ValueError,)
        if how == "readonly" and arg in IN_PLACE.get(name, ()):
            expect, equivalent = "error", False
        names = exact if expect == "error" and how in ("list", "none", "float", "str", "dict", "readonly") else loose
        if expect == "error" and kinds_ is ALLOWED:  # a wrong kind of object: TypeError; read-only: ValueError
            kinds_ = (ValueError,) if how == "readonly" else (TypeError,)
    elif kind in ("list", "optional_list"):
        how = data.draw(st.sampled_from(LIST_MUTATIONS), label="mutation")
        value, expect, equivalent = _mutate_list(kwargs[arg], how, rng)
        if how == "none":
            expect = "error"  # adam needs every state list
        names = exact if how in ("ndarray", "none", "str", "item_list", "item_none", "item_readonly") else loose
        if expect == "error":
            kinds_ = (ValueError,) if how in ("empty", "short", "longer", "item_readonly") else (TypeError,)
        if how == "none" and kind == "optional_list":  # optional, but the optimizer needs it
            kinds_ = (TypeError, ValueError)
    else:
        if kind == "float":
            value = data.draw(st.one_of(st.sampled_from(FLOAT_VALUES), st.floats(allow_nan=True, allow_infinity=True)),
                              label="value")
        elif kind == "int":
            value = data.draw(st.one_of(st.sampled_from(INT_VALUES), st.integers(-(2**70), 2**70)), label="value")
        elif kind == "seed":
            value = data.draw(st.one_of(st.sampled_from(SEED_VALUES), st.integers(-(2**66), 2**66)), label="value")
        elif kind == "bool":
            value = data.draw(st.sampled_from(BOOL_VALUES + (True, False, np.bool_(False))), label="value")
        elif kind == "str":
            value = data.draw(st.sampled_from(STR_VALUES), label="value")
        elif kind == "optional_float":
            value = data.draw(st.sampled_from(FLOAT_VALUES), label="value")
        elif kind == "flags":
            n = len(kwargs[arg])
            value = data.draw(st.sampled_from(FLAG_VALUES(n)), label="value")
        else:  # pair
            value = data.draw(st.one_of(st.sampled_from(PAIR_SHAPES),
                                        st.tuples(st.sampled_from(HUGE_INTS), st.sampled_from(HUGE_INTS)),
                                        st.lists(st.sampled_from(HUGE_INTS), min_size=2, max_size=2)),
                              label="value")
        expect, kinds_ = _scalar_case(kind, value)
        names = exact if expect == "error" else loose
    kwargs[arg] = value
    label = f"{name}({arg}={value!r:.80} [{kind}]) {np.dtype(dtype).name}"
    snap = _snapshot(name, kwargs, func)
    with np.errstate(all="ignore"):
        result = attempt(lambda: func(**kwargs), names, expect, label, kinds_)
    if result is RAISED:
        _unchanged(name, kwargs, snap, label, func)
        return
    if equivalent:
        base_kwargs = valid_calls(dtype)[name][0]
        base_func = core_function(name, dtype)  # a plan's method: a fresh plan, as func had
        with np.errstate(all="ignore"):
            base = _outputs(name, base_kwargs, base_func(**base_kwargs), base_func)
        got = _outputs(name, kwargs, result, func)
        assert len(base) == len(got), label
        for i, (g, b) in enumerate(zip(got, base)):
            if b is None:
                assert g is None, f"{label}: output {i} is {type(g).__name__}, the baseline's None"
            elif isinstance(b, str):  # a query's answer (conv2d_algorithm)
                assert g == b, f"{label}: output {i} is {g!r}, the baseline's {b!r}"
            elif isinstance(b, np.ndarray) and b.dtype.kind != "f":
                np.testing.assert_array_equal(g, b, err_msg=f"{label}: output {i}")
            else:
                close(g, b, dtype, f"{label}: output {i}")


@FUZZ
@given(data=st.data())
@counted
def test_core_runtime_settings(data):
    """set_num_threads / set_simd_level / gemm_blocking with good and bad values; what they set
    is what get_num_threads / simd_level report (conftest restores both after the test); the
    queries answer sensibly throughout."""
    assert core.hardware_threads() >= 1 and 1 <= core.get_num_threads() <= 1024
    assert core.best_simd_level() == SIMD_LEVELS[-1] and core.simd_level() in SIMD_LEVELS
    which = data.draw(st.sampled_from(["set_num_threads", "set_simd_level", "gemm_blocking", "set_conv_algo"]),
                      label="function")
    if which == "set_num_threads":
        value = data.draw(st.one_of(st.sampled_from(INT_VALUES + (1025, 2**40)), st.integers(1, 4)), label="n")
        good = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 1 <= int(value) <= 1024
        if good and int(value) > 8:
            value = 1 + int(value) % 4  # a valid count, but no thousand threads on a 2-core machine
        expect = "ok" if good else "error"
        out = attempt(lambda: core.set_num_threads(value), names_for("n"), expect, f"set_num_threads({value!r})")
        if out is not RAISED:
            assert core.get_num_threads() == int(value)
    elif which == "set_simd_level":
        value = data.draw(st.sampled_from(STR_VALUES + ("scalar", "avx2", "avx512", "sse")), label="level")
        expect = "ok" if value in SIMD_LEVELS else "error"
        out = attempt(lambda: core.set_simd_level(value), names_for("level"), expect, f"set_simd_level({value!r})")
        if out is not RAISED:
            assert core.simd_level() == value
    elif which == "set_conv_algo":
        algos = ("auto", "im2col", "winograd2", "winograd4")
        value = data.draw(st.sampled_from(STR_VALUES + algos + ("winograd", "Winograd2")), label="algorithm")
        expect = "ok" if value in algos else "error"
        out = attempt(lambda: core.set_conv_algo(value), names_for("algorithm"), expect, f"set_conv_algo({value!r})")
        if out is not RAISED:
            assert core.get_conv_algo() == value
    else:
        value = data.draw(st.sampled_from(STR_VALUES + ("float32", "float64", "float16", np.float32)), label="dtype")
        expect = "ok" if value in ("float32", "float64") else "error"
        out = attempt(lambda: core.gemm_blocking(value), {"dtype", "float32"}, expect, f"gemm_blocking({value!r})")
        if out is not RAISED:
            assert set(out) == {"mr", "nr", "mc", "kc", "nc"} and all(v > 0 for v in out.values())


SETTINGS = {"set_num_threads", "set_simd_level", "gemm_blocking", "set_conv_algo"}  # test_core_runtime_settings
SCALAR_ONLY = sorted(NO_ARRAYS - SETTINGS)
BASELINE_SCALAR = {"float": 0.5, "int": 1, "seed": 1, "bool": True, "pair": (1, 1)}


def _scalar_only_reference(name, kwargs):
    """What a scalar-only _core function must return, where there is more to say than its type."""
    if name == "dropout_call_seed":  # NumPy's SeedSequence([seed, call]), two words as one uint64
        state = np.random.SeedSequence([int(kwargs["seed"]), int(kwargs["call"])]).generate_state(2, np.uint32)
        return (int(state[0]) << 32) | int(state[1])
    return None


@pytest.mark.parametrize("name", SCALAR_ONLY)
@FUZZ
@given(data=st.data())
@counted
def test_core_scalar_only_functions(name, data):
    """Every other _core function without array arguments (the queries, dropout_call_seed, and
    any added later): one argument drawn bad or good as in test_core_one_bad_argument."""
    args = SCALAR_ARGS[name]
    func = getattr(core, name)
    if not args:
        first = func()
        assert func() == first and isinstance(first, (int, str)), name
        return
    kwargs = {a: BASELINE_SCALAR[k] for a, k in args.items()}
    arg = data.draw(st.sampled_from(sorted(args)), label="arg")
    kind = args[arg]
    pools = {"float": FLOAT_VALUES, "int": INT_VALUES, "seed": SEED_VALUES, "bool": BOOL_VALUES + (True, False),
             "pair": PAIR_SHAPES + ((1, 2), (2**63, 1))}
    ints = st.integers(-(2**70), 2**70)
    value = data.draw(st.one_of(st.sampled_from(pools[kind]), ints) if kind in ("int", "seed")
                      else st.sampled_from(pools[kind]), label="value")
    kwargs[arg] = value
    expect, kinds_ = _scalar_case(kind, value)
    label = f"{name}({arg}={value!r:.80})"
    out = attempt(lambda: func(**kwargs), names_for(arg) if expect == "error" else set(args), expect, label, kinds_)
    if out is not RAISED:
        want = _scalar_only_reference(name, kwargs)
        if want is not None:
            assert out == want, f"{label}: {out} != {want}"


# ===========================================================================
# 2. valid calls (and near-valid ones) of every kernel against the NumPy references


@FUZZ
@given(data=st.data())
@counted
def test_gemm_matches_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    m, n, k = (data.draw(st.sampled_from([0, 1, 2, 3, 5, 8, 17, 33, 65, 129])) for _ in range(3))
    trans_a, trans_b = data.draw(st.booleans()), data.draw(st.booleans())
    A = data.draw(values((k, m) if trans_a else (m, k), dtype))
    B = data.draw(values((n, k) if trans_b else (k, n), dtype))
    # any strides are read in place: transposed, stepped and reversed views
    A = relayout(A, data.draw(st.sampled_from(LAYOUTS)))
    B = relayout(B, data.draw(st.sampled_from(LAYOUTS)))
    alpha = data.draw(st.sampled_from([1.0, 0.0, -1.0, 0.5, 2.5]))
    beta = data.draw(st.sampled_from([0.0, 0.0, 1.0, -0.5]))
    c_how = data.draw(st.sampled_from(["none", "new", "new", "row_view"]))
    if beta != 0.0 and c_how == "none":
        c_how = "new"
    C = None
    if c_how == "new":
        C = data.draw(values((m, n), dtype))
    elif c_how == "row_view":  # unit column stride, rows further apart: allowed
        C = np.zeros((m, n + 3), dtype)[:, :n]
        C[...] = data.draw(values((m, n), dtype))
    C0 = None if C is None else C.astype(np.float64)
    expected = quiet(ref.gemm, A, B, C0, alpha, beta, trans_a, trans_b)
    out = attempt(lambda: core.gemm(A, B, C, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b),
                  {"A", "B", "C"}, "ok", f"gemm m={m} n={n} k={k}")
    if C is not None:
        assert out is C
    atol = gemm_atol(dtype, k, amax(A), amax(B), alpha, beta, amax(C0) if C0 is not None else 0.0)
    close(out, expected, dtype, "gemm", tol(dtype, "gemm")._replace(atol=atol))


KINDS = ("relu", "sigmoid", "tanh", "linear", "identity", "none")
REF_KIND = {"identity": "linear", "none": "linear"}


@FUZZ
@given(data=st.data())
@counted
def test_activations_match_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    kind = data.draw(st.sampled_from(KINDS))
    shape = data.draw(shapes())
    x = relayout(data.draw(values(shape, dtype, -30, 30)), data.draw(st.sampled_from(LAYOUTS)))
    h = attempt(lambda: core.activation_forward(x, kind), {"x"}, expectation(x), f"activation_forward {kind}")
    if h is not RAISED:
        close(h, quiet(ref.activation_forward, f64(x), REF_KIND.get(kind, kind)), dtype, f"{kind} forward")
    dh = relayout(data.draw(values(shape, dtype)), data.draw(st.sampled_from(LAYOUTS)))
    hh = data.draw(values(shape, dtype, -1.5, 1.5))
    dz = attempt(lambda: core.activation_backward(dh, hh, kind), {"dh", "h"}, expectation(dh),
                 f"activation_backward {kind}")
    if dz is not RAISED:
        close(dz, quiet(ref.activation_backward, f64(dh), f64(hh), REF_KIND.get(kind, kind)), dtype,
              f"{kind} backward")


@FUZZ
@given(data=st.data())
@counted
def test_softmax_matches_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    m, K = data.draw(st.sampled_from([0, 1, 2, 5, 33])), data.draw(st.sampled_from([0, 1, 2, 3, 10, 129]))
    z = relayout(data.draw(values((m, K), dtype, -50, 50)), data.draw(st.sampled_from(LAYOUTS)))
    p = attempt(lambda: core.softmax(z), {"z"}, "either" if K == 0 else expectation(z), f"softmax {m}x{K}")
    if p is not RAISED:
        close(p, quiet(ref.softmax, f64(z)), dtype, "softmax", tol(dtype, "softmax"))


@FUZZ
@given(data=st.data())
@counted
def test_dense_matches_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    m, n_in, n_out = (data.draw(st.sampled_from([0, 1, 2, 3, 7, 16, 33])) for _ in range(3))
    X = relayout(data.draw(values((m, n_in), dtype)), data.draw(st.sampled_from(LAYOUTS)))
    W = data.draw(values((n_in, n_out), dtype, specials=False))
    b = data.draw(values(data.draw(st.sampled_from([(n_out,), (1, n_out)])), dtype, specials=False))
    act = data.draw(st.sampled_from(KINDS))
    scale = math.sqrt(max(n_in, 1)) * amax(X) * amax(W) + amax(b)
    H = attempt(lambda: core.dense_forward(X, W, b, act), {"X", "W", "b"}, expectation(X), "dense_forward")
    if H is not RAISED:
        close(H, quiet(ref.dense_forward, f64(X), f64(W), f64(b), REF_KIND.get(act, act)), dtype, "dense_forward",
              tol(dtype, scale=scale))
    dZ = data.draw(values((m, n_out), dtype))
    lam = data.draw(st.sampled_from([0.0, 0.0, 0.5, 1e-3, 3.0]))
    need = data.draw(st.booleans())
    X = np.ascontiguousarray(X)
    out = attempt(lambda: core.dense_backward(dZ, X, W, lam, need), {"dZ", "X", "W"}, "ok", "dense_backward")
    e_dX, e_dW, e_db = quiet(ref.dense_backward, f64(dZ), f64(X), f64(W), lam, need)
    close(out[1], e_dW, dtype, "dW", tol(dtype, scale=math.sqrt(max(m, 1)) * amax(X) * amax(dZ) + lam * amax(W)))
    close(out[2], e_db, dtype, "db", tol(dtype, scale=math.sqrt(max(m, 1)) * amax(dZ)))
    if need:
        close(out[0], e_dX, dtype, "dX", tol(dtype, scale=math.sqrt(max(n_out, 1)) * amax(dZ) * amax(W)))
    else:
        assert out[0] is None
    Z = data.draw(values((m, n_out), dtype))
    Z0 = Z.astype(np.float64)
    got = attempt(lambda: core.bias_add(Z, b), {"Z", "b"}, "ok", "bias_add")
    assert got is Z
    close(Z, quiet(ref.bias_add, Z0, f64(b)), dtype, "bias_add")
    got = attempt(lambda: core.bias_grad(dZ), {"dZ"}, "ok", "bias_grad")
    close(got, quiet(ref.bias_grad, f64(dZ)), dtype, "bias_grad", tol(dtype, scale=math.sqrt(max(m, 1)) * amax(dZ)))


@FUZZ
@given(data=st.data())
@counted
def test_softmax_cross_entropy_matches_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    m, K = data.draw(st.sampled_from([0, 1, 2, 5, 17])), data.draw(st.sampled_from([1, 2, 3, 10]))
    z = data.draw(values((m, K), dtype, -20, 20))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, K, m)
    y_form = data.draw(st.sampled_from(["1d", "row", "col", "int32", "uint8", "bad_label", "short", "float"]))
    valid = True
    if y_form == "row":
        y = y.reshape(1, -1)
    elif y_form == "col":
        y = y.reshape(-1, 1)
    elif y_form in ("int32", "uint8"):
        y = y.astype(y_form)
    elif y_form == "bad_label" and m:
        y[rng.integers(m)] = data.draw(st.sampled_from([-1, K, 2**62]))
        valid = False
    elif y_form == "short" and m:
        y = y[:-1]
        valid = False
    elif y_form == "float":
        y = y.astype(np.float64)
        valid = False
    cw = None
    if data.draw(st.booleans()):
        cw = data.draw(values((K,), dtype, 0.0, 3.0, specials=False))
        if data.draw(st.integers(0, 4)) == 0:
            cw[0] = data.draw(st.sampled_from([-1.0, np.nan, np.inf]))
            valid = False
    finite = np.isfinite(z).all()
    expect = "ok" if valid and m > 0 and finite else "either"
    out = attempt(lambda: core.softmax_cross_entropy(z, y, cw), {"z", "y", "class_weights"}, expect, "sce")
    if out is RAISED:
        return
    yv = np.asarray(y).reshape(-1).astype(np.int64)
    if cw is not None and not np.sum(f64(cw)[yv]) > 0:
        return  # all weights zero: 0/0, the kernel's value is not a reference question
    e_loss, e_probs = quiet(ref.softmax_cross_entropy, f64(z), yv, f64(cw))
    close(out[0], e_loss, dtype, "sce loss", tol(dtype, scale=amax(z)))
    close(out[1], e_probs, dtype, "sce probs", tol(dtype, "softmax"))
    probs = np.ascontiguousarray(out[1])
    dz = attempt(lambda: core.softmax_cross_entropy_backward(probs, y, cw), {"probs", "y", "class_weights"}, "ok",
                 "sce backward")
    close(dz, quiet(ref.softmax_cross_entropy_backward, f64(probs), yv, f64(cw)), dtype, "sce backward")


PAIR_LOSSES = {
    "mse": (core.mse, core.mse_backward, ref.mse, ref.mse_backward, (-3, 3)),
    "bce": (core.binary_cross_entropy, core.binary_cross_entropy_backward, ref.bce, ref.bce_backward, (0, 1)),
    "bce_logits": (core.binary_cross_entropy_with_logits, core.binary_cross_entropy_with_logits_backward,
                   ref.bce_with_logits, ref.bce_with_logits_backward, (-40, 40)),
}


@FUZZ
@given(data=st.data())
@counted
def test_pair_losses_match_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    loss = data.draw(st.sampled_from(sorted(PAIR_LOSSES)))
    fwd, bwd, rfwd, rbwd, (lo, hi) = PAIR_LOSSES[loss]
    shape = data.draw(shapes(min_ndim=1, max_ndim=2))
    pred = data.draw(values(shape, dtype, lo, hi, specials=loss != "bce"))
    if loss == "bce" and pred.size and data.draw(st.booleans()):
        pred.flat[0] = data.draw(st.sampled_from([0.0, 1.0]))  # the clamped logs
    target = data.draw(values(shape, dtype, 0, 1, specials=False))
    reduction = data.draw(st.sampled_from(["mean", "sum"]))
    pname = "z" if loss == "bce_logits" else "pred"
    expect = "ok" if pred.size else "either"
    value = attempt(lambda: fwd(pred, target, reduction), {pname, "target"}, expect, f"{loss} {shape}")
    if value is RAISED:
        return
    assert isinstance(value, float)
    close(value, quiet(rfwd, f64(pred), f64(target), reduction), dtype, loss, tol(dtype, "double_accumulated"))
    grad = attempt(lambda: bwd(pred, target, reduction), {pname, "target"}, "ok", f"{loss} backward")
    close(grad, quiet(rbwd, f64(pred), f64(target), reduction), dtype, f"{loss} backward")
    w = data.draw(values(data.draw(shapes()), dtype))
    got = attempt(lambda: core.sum_of_squares(w), {"w"}, "ok", "sum_of_squares")
    close(got, quiet(ref.sum_of_squares, f64(w)), dtype, "sum_of_squares", tol(dtype, "double_accumulated"))


@FUZZ
@given(data=st.data())
@counted
def test_optimizers_match_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    which = data.draw(st.sampled_from(["sgd", "momentum", "rmsprop", "adam"]))
    shape = data.draw(shapes())
    w = data.draw(values(shape, dtype))
    g = data.draw(values(shape, dtype))
    v = data.draw(values(shape, dtype, specials=False))
    s = data.draw(values(shape, dtype, 0, 1, specials=False))
    lr = data.draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0]))
    wd = data.draw(st.sampled_from([0.0, 0.0, 1e-2]))
    beta = data.draw(st.sampled_from([0.0, 0.5, 0.9, 0.999]))
    beta2 = data.draw(st.sampled_from([0.0, 0.9, 0.99, 0.999]))
    eps = data.draw(st.sampled_from([1e-8, 1e-3, 1.0]))
    t = data.draw(st.sampled_from([1, 2, 10, 1000, 2**40, 2**63 - 1]))
    W, V, S, G = (a.astype(np.float64) for a in (w, v, s, g))
    label = f"{which} {shape}"
    opt_tol = tol(dtype, "optimizer")
    if which == "sgd":
        attempt(lambda: core.sgd_update(w, g, lr, wd), {"w", "g"}, "ok", label)
        close(w, quiet(ref.sgd, W, G, lr, wd), dtype, "w", opt_tol)
    elif which == "momentum":
        attempt(lambda: core.momentum_update(w, v, g, lr, beta, wd), {"w", "v", "g"}, "ok", label)
        e_w, e_v = quiet(ref.momentum, W, V, G, lr, beta, wd)
        close(w, e_w, dtype, "w", opt_tol)
        close(v, e_v, dtype, "v", opt_tol)
    elif which == "rmsprop":
        attempt(lambda: core.rmsprop_update(w, s, g, lr, beta2, eps, wd), {"w", "s", "g"}, "ok", label)
        e_w, e_s = quiet(ref.rmsprop, W, S, G, lr, beta2, eps, wd)
        close(w, e_w, dtype, "w", opt_tol._replace(atol=opt_tol.atol * lr / eps))
        close(s, e_s, dtype, "s", opt_tol)
    else:
        attempt(lambda: core.adam_update(w, v, s, g, lr, beta, beta2, t, eps, wd), {"w", "v", "s", "g"}, "ok", label)
        e_w, e_v, e_s = quiet(ref.adam, W, V, S, G, lr, beta, beta2, t, eps, wd)
        close(w, e_w, dtype, "w", opt_tol._replace(atol=opt_tol.atol * max(1.0, lr / eps)))
        close(v, e_v, dtype, "v", opt_tol)
        close(s, e_s, dtype, "s", opt_tol)


@st.composite
def conv_geometry(draw):
    G = draw(st.sampled_from([1, 1, 1, 2, 3]))
    Cg, Kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kH, kW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.sampled_from([1, 1, 2, 3])), draw(st.sampled_from([1, 1, 2])))
    pad = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    stride = (draw(st.sampled_from([1, 1, 2, 3, 5])), draw(st.sampled_from([1, 1, 2, 4])))
    # an input at least as large as the (dilated) kernel minus the padding
    H = max(dil[0] * (kH - 1) + 1 - 2 * pad[0], 1) + draw(st.integers(0, 7))
    W = max(dil[1] * (kW - 1) + 1 - 2 * pad[1], 1) + draw(st.integers(0, 7))
    N = draw(st.sampled_from([1, 1, 2, 3]))
    return dict(N=N, C=G * Cg, H=H, W=W, K=G * Kg, kH=kH, kW=kW, stride=stride, padding=pad, dilation=dil, groups=G)


@FUZZ
@given(data=st.data(), geo=conv_geometry())
@counted
def test_conv2d_matches_reference(data, geo):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    x = relayout(data.draw(values((geo["N"], geo["C"], geo["H"], geo["W"]), dtype)), data.draw(st.sampled_from(LAYOUTS)))
    w = data.draw(values((geo["K"], geo["C"] // geo["groups"], geo["kH"], geo["kW"]), dtype, specials=False))
    b = data.draw(st.one_of(st.none(), values((geo["K"],), dtype, specials=False)))
    kw = {k: geo[k] for k in ("stride", "padding", "dilation", "groups")}
    label = f"conv2d {geo}"
    taps = geo["C"] // geo["groups"] * geo["kH"] * geo["kW"]
    y = attempt(lambda: core.conv2d_forward(x, w, b, **kw), {"x"}, expectation(x), label)
    if y is not RAISED:
        close(y, quiet(ref.conv2d_forward, f64(x), f64(w), f64(b), **kw), dtype, label + " y",
              tol(dtype, scale=math.sqrt(taps) * amax(x) * amax(w) + amax(b)))
    x = np.ascontiguousarray(x)
    Ho = ref.conv_out_size(geo["H"], geo["kH"], geo["stride"][0], geo["padding"][0], geo["dilation"][0])
    Wo = ref.conv_out_size(geo["W"], geo["kW"], geo["stride"][1], geo["padding"][1], geo["dilation"][1])
    dy = data.draw(values((geo["N"], geo["K"], Ho, Wo), dtype))
    need = [data.draw(st.booleans()) for _ in range(3)]
    out = attempt(lambda: core.conv2d_backward(dy, x, w, **kw, need_dx=need[0], need_dw=need[1], need_db=need[2]),
                  {"dy"}, "ok", label + " backward")
    expected = quiet(ref.conv2d_backward, f64(dy), f64(x), f64(w), **kw)
    Kg = geo["K"] // geo["groups"]
    scales = (math.sqrt(Kg * geo["kH"] * geo["kW"]) * amax(w) * amax(dy),
              math.sqrt(geo["N"] * Ho * Wo) * amax(x) * amax(dy), math.sqrt(geo["N"] * Ho * Wo) * amax(dy))
    for got, e, want, sc, what in zip(out, expected, need, scales, ("dx", "dw", "db")):
        if want:
            close(got, e, dtype, f"{label} {what}", tol(dtype, scale=sc))
        else:
            assert got is None, f"{label}: {what} was not asked for"


@st.composite
def pool_geometry(draw, huge=False):
    vals = [1, 1, 2, 2, 3, 4, 5]
    if huge:
        vals += [2**31, 2**40, 2**62, 2**63 - 1]
    kH, kW = draw(st.sampled_from(vals)), draw(st.sampled_from(vals))
    sh, sw = draw(st.sampled_from(vals + [7])), draw(st.sampled_from(vals + [7]))
    ph = draw(st.integers(0, kH // 2)) if kH < 100 else draw(st.sampled_from([0, kH // 2, kH // 4]))
    pw = draw(st.integers(0, kW // 2)) if kW < 100 else draw(st.sampled_from([0, kW // 2, kW // 4]))
    H = max(kH - 2 * ph, 1) + draw(st.integers(0, 6)) if kH < 100 else draw(st.integers(1, 6))
    W = max(kW - 2 * pw, 1) + draw(st.integers(0, 6)) if kW < 100 else draw(st.integers(1, 6))
    return dict(N=draw(st.integers(1, 3)), C=draw(st.integers(1, 3)), H=H, W=W, kernel_size=(kH, kW),
                stride=(sh, sw), padding=(ph, pw))


def _pool_out(geo):
    (kH, kW), (sh, sw), (ph, pw) = geo["kernel_size"], geo["stride"], geo["padding"]
    return ref.conv_out_size(geo["H"], kH, sh, ph), ref.conv_out_size(geo["W"], kW, sw, pw)


@FUZZ
@given(data=st.data(), geo=pool_geometry(huge=True))
@counted
def test_pools_match_reference(data, geo):
    """Max, average and global average pooling, also with kernels, strides and padding of
    2**31 .. 2**63 - 1 (legal when the padding is at most half the kernel: the output stays
    small and the kernels must not walk the windows' padding)."""
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    shape = (geo["N"], geo["C"], geo["H"], geo["W"])
    x = relayout(data.draw(values(shape, dtype)), data.draw(st.sampled_from(LAYOUTS)))
    g = {k: geo[k] for k in ("kernel_size", "stride", "padding")}
    Ho, Wo = _pool_out(geo)
    label = f"pool {geo}"
    # every size must fit int64: H + 2 * padding too (it is the padded input's size)
    fits = Ho >= 1 and Wo >= 1 and geo["H"] + 2 * g["padding"][0] < 2**63 and geo["W"] + 2 * g["padding"][1] < 2**63
    expect = expectation(x) if fits else "error"
    out = attempt(lambda: core.maxpool2d_forward(x, **g), {"x", "kernel", "padding"}, expect, "maxpool " + label)
    if out is not RAISED:
        y, am = out
        e_y, e_am = quiet(ref.maxpool2d_forward, f64(x), **g)
        close(y, e_y, dtype, "maxpool y")
        np.testing.assert_array_equal(am, e_am, err_msg=f"{label}: argmax")
    a = attempt(lambda: core.avgpool2d_forward(x, **g), {"x", "kernel", "padding"}, expect, "avgpool " + label)
    if a is not RAISED:
        close(a, quiet(ref.avgpool2d_forward, f64(x), **g), dtype, "avgpool y")
    if not fits:
        return
    x = np.ascontiguousarray(x)
    dy = data.draw(values((geo["N"], geo["C"], Ho, Wo), dtype))
    y, am = core.maxpool2d_forward(x, **g)
    dx = attempt(lambda: core.maxpool2d_backward(dy, am, x, **g), {"dy"}, "ok", "maxpool backward " + label)
    close(dx, quiet(ref.maxpool2d_backward, f64(dy), am, shape), dtype, "maxpool dx", tol(dtype, scale=amax(dy) * 4))
    dx = attempt(lambda: core.avgpool2d_backward(dy, x, **g), {"dy"}, "ok", "avgpool backward " + label)
    close(dx, quiet(ref.avgpool2d_backward, f64(dy), shape, **g), dtype, "avgpool dx", tol(dtype, scale=amax(dy)))
    gy = attempt(lambda: core.global_avgpool_forward(x), {"x"}, "ok", "global_avgpool")
    close(gy, quiet(ref.global_avgpool_forward, f64(x)), dtype, "global_avgpool", tol(dtype, scale=amax(x)))
    gdy = data.draw(values((geo["N"], geo["C"]), dtype))
    gdx = attempt(lambda: core.global_avgpool_backward(gdy, x), {"dy"}, "ok", "global_avgpool backward")
    close(gdx, quiet(ref.global_avgpool_backward, f64(gdy), shape), dtype, "global_avgpool dx")


@FUZZ
@given(data=st.data())
@counted
def test_batchnorm_matches_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    four = data.draw(st.booleans())
    N, C = data.draw(st.sampled_from([1, 2, 3, 8, 33])), data.draw(st.sampled_from([1, 2, 5]))
    shape = (N, C, data.draw(st.sampled_from([1, 2, 3])), data.draw(st.sampled_from([1, 4, 7]))) if four else (N, C)
    training = data.draw(st.booleans())
    if training and np.prod(shape) // C < 2:
        training = False  # one value per channel has no variance: the layer refuses it
    x = relayout(data.draw(values(shape, dtype, -3, 3)), data.draw(st.sampled_from(LAYOUTS)))
    gamma = data.draw(values((C,), dtype, specials=False))
    beta = data.draw(values((C,), dtype, specials=False))
    rm = data.draw(values((C,), dtype, specials=False))
    rv = data.draw(values((C,), dtype, 0.1, 2, specials=False))
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    momentum = data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    rm0, rv0 = rm.astype(np.float64), rv.astype(np.float64)
    label = f"batchnorm {shape} training={training}"
    out = attempt(lambda: core.batchnorm_forward(x, gamma, beta, rm, rv, training, eps, momentum), {"x"},
                  expectation(x), label)
    if out is RAISED:
        return
    y, mean, invstd = out
    e_y, e_mean, e_invstd, e_rm, e_rv = quiet(ref.batchnorm_forward, f64(x), f64(gamma), f64(beta), rm0, rv0,
                                              training, eps, momentum)
    inv = amax(e_invstd)
    close(y, e_y, dtype, label + " y", tol(dtype, scale=amax(gamma) * amax(x) * inv + amax(beta)))
    close(mean, e_mean, dtype, label + " mean", tol(dtype, scale=amax(x)))
    close(invstd, e_invstd, dtype, label + " invstd", tol(dtype, scale=inv))
    close(rm, e_rm, dtype, label + " running_mean", tol(dtype, scale=amax(x)))
    close(rv, e_rv, dtype, label + " running_var", tol(dtype, scale=amax(x) ** 2))
    x = np.ascontiguousarray(x)
    dy = data.draw(values(shape, dtype))
    out = attempt(lambda: core.batchnorm_backward(dy, x, mean, invstd, gamma, training), {"dy"}, "ok", label + " bwd")
    e = quiet(ref.batchnorm_backward, f64(dy), f64(x), f64(mean), f64(invstd), f64(gamma), training)
    M = x.size // C
    sc = math.sqrt(M) * amax(dy) * amax(x) * inv
    for got, want, what, s in zip(out, e, ("dx", "dgamma", "dbeta"), (sc * amax(gamma) * inv, sc, math.sqrt(M) * amax(dy))):
        close(got, want, dtype, f"{label} {what}", tol(dtype, scale=s))


@FUZZ
@given(data=st.data())
@counted
def test_dropout_and_add_match_reference(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    shape = data.draw(shapes())
    x = relayout(data.draw(values(shape, dtype)), data.draw(st.sampled_from(LAYOUTS)))
    p = data.draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1 - 2**-20]))
    seed = data.draw(st.sampled_from([0, 1, 2**32, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1))
    out = attempt(lambda: core.dropout_forward(x, p, seed), {"x"}, expectation(x), f"dropout {shape} p={p}")
    if out is not RAISED:
        y, mask = out
        e_y, e_mask = quiet(ref.dropout_forward, f64(x), p, seed)
        np.testing.assert_array_equal(mask, e_mask, err_msg="dropout mask")
        close(y, e_y, dtype, "dropout y")
        dy = data.draw(values(shape, dtype))
        dx = attempt(lambda: core.dropout_backward(dy, mask, p), {"dy"}, "ok", "dropout backward")
        close(dx, quiet(ref.dropout_backward, f64(dy), mask, p), dtype, "dropout dx")
    a = data.draw(values(shape, dtype))
    b = relayout(data.draw(values(shape, dtype)), data.draw(st.sampled_from(LAYOUTS)))
    s = attempt(lambda: core.add(a, b), {"b"}, expectation(b), "add")
    if s is not RAISED:
        close(s, quiet(ref.add, f64(a), f64(b)), dtype, "add")


def _ref_optimizer_step(optimizer, W, g, state_v, state_s, lr, beta, beta1, beta2, t, eps):
    if optimizer in ("sgd", "vanilla"):
        return ref.sgd(W, g, lr), None, None
    if optimizer == "momentum":
        w, v = ref.momentum(W, state_v, g, lr, beta)
        return w, v, None
    if optimizer == "rmsprop":
        w, s = ref.rmsprop(W, state_s, g, lr, beta2, eps)
        return w, None, s
    return ref.adam(W, state_v, state_s, g, lr, beta1, beta2, t, eps)


@FUZZ
@given(data=st.data())
@counted
def test_matlab_plan_step_matches_reference(data):
    """One step of the thesis' MATLAB network through the step plan natverk.train, the balance
    principle and the lambda searches run (models._plan.matlab_plan, the optimizer named as the
    table accepts it), whole (step) or in two halves (forward_loss, backward_update), against the
    NumPy reference of forward, backward and the optimizer update."""
    from natverk.models._plan import matlab_plan

    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    nodes = [data.draw(st.integers(1, 6)) for _ in range(data.draw(st.integers(2, 4)))]
    nodes[-1] = max(nodes[-1], 2)
    m = data.draw(st.sampled_from([1, 2, 5, 17]))
    act = data.draw(st.sampled_from(["relu", "sigmoid", "tanh"]))
    optimizer = data.draw(st.sampled_from(["sgd", "vanilla", "momentum", "rmsprop", "adam"]))
    halves = data.draw(st.booleans(), label="forward_loss + backward_update")
    lam = data.draw(st.sampled_from([0.0, 1e-3, 0.5]))
    lr = data.draw(st.sampled_from([0.0, 1e-2, 0.5]))
    beta, beta1, beta2 = 0.9, data.draw(st.sampled_from([0.0, 0.9])), data.draw(st.sampled_from([0.5, 0.99]))
    t = data.draw(st.sampled_from([1, 3, 2**62]))
    eps = 1e-8 if dtype == np.float64 else 1e-6
    X = data.draw(values((m, nodes[0]), dtype, specials=False))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, nodes[-1], m)
    params = natverk.initialize_weights(nodes, seed=int(rng.integers(2**31)), dtype=dtype)
    Ls = len(nodes) - 1
    for l in range(1, Ls + 1):  # non-zero optimizer state and biases
        params[f"b{l}"][...] = rng.uniform(-0.5, 0.5, params[f"b{l}"].shape)
        params[f"v_dW{l}"][...] = rng.uniform(-0.1, 0.1, params[f"v_dW{l}"].shape)
        params[f"s_dW{l}"][...] = rng.uniform(0, 0.1, params[f"s_dW{l}"].shape)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    label = f"matlab_plan {nodes} {optimizer} {act} {'halves' if halves else 'step'}"
    plan = matlab_plan(params, act, optimizer)
    hyper = dict(learning_rate=lr, beta=beta, beta1=beta1, beta2=beta2, t=t, eps=eps, weight_decay=lam)
    if halves:
        data_loss, psi, correct = attempt(lambda: plan.forward_loss(X, y), {"X"}, "ok", label)
        penalty = 0.5 * lam * psi
        attempt(lambda: plan.backward_update(**hyper), {"X"}, "ok", label)
    else:
        data_loss, penalty, correct, updated = attempt(lambda: plan.step(X, y, **hyper), {"X"}, "ok", label)
        assert updated, f"{label}: a finite loss did not update"
    assert 0 <= correct <= m, label
    probs, e_loss, _ = quiet(reference_mlp.forward, f64(X), y, p64, lam, act)
    grads = quiet(reference_mlp.backward, f64(X), y, p64, lam, act)
    scale = amax(X) * max(nodes) * Ls
    t_loss = tol(dtype, scale=scale)
    e_psi = sum(float(np.sum(p64[f"W{l}"] ** 2)) for l in range(1, Ls + 1))
    close(data_loss + penalty, e_loss, dtype, label + " loss", t_loss)
    close(penalty, 0.5 * lam * e_psi, dtype, label + " penalty", t_loss)
    if halves:
        close(psi, e_psi, dtype, label + " psi", t_loss)
    close(data_loss, e_loss - 0.5 * lam * e_psi, dtype, label + " data_loss", t_loss)
    name = resolve(optimizer).name
    for l in range(1, Ls + 1):
        for key in (f"W{l}", f"b{l}"):
            e_w, e_v, e_s = quiet(_ref_optimizer_step, name, p64[key], grads[f"d{key}"], p64[f"v_d{key}"],
                                  p64[f"s_d{key}"], lr, beta, beta1, beta2, t, eps)
            step_scale = scale * max(1.0, lr * (1 if name in ("sgd", "momentum") else 1 / eps) * 1e-3)
            close(params[key], e_w, dtype, f"{label} {key}", tol(dtype, scale=step_scale))
            if e_v is not None:
                close(params[f"v_d{key}"], e_v, dtype, f"{label} v_{key}", tol(dtype, scale=scale))
            if e_s is not None:
                close(params[f"s_d{key}"], e_s, dtype, f"{label} s_{key}", tol(dtype, scale=scale))


# ===========================================================================
# 3. absurd geometry: conv / pool kernels and layers
#
# Values from 0 and -1 to 2**31, 2**40, 2**62, 2**63 - 1 (int64's edge), 2**63 and 2**70
# (beyond it). A case whose output would need between 64 MB and 64 GB is skipped: it is legal,
# and allocating (and filling) it would only measure this machine's memory.

GEOMETRY = (0, 1, 1, 2, 3, -1, -(2**63), 2**31, 2**40, 2**62, 2**63 - 1, 2**63, 2**70)


def _fits_int64(*pairs) -> bool:
    return all(-(2**63) <= v <= 2**63 - 1 for p in pairs for v in p)


def _between_64mb_and_64gb(nbytes: int) -> bool:
    return 2**26 < nbytes < 2**36


@FUZZ
@given(data=st.data())
@counted
def test_conv2d_absurd_geometry(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    stride, padding, dilation = ((data.draw(st.sampled_from(GEOMETRY)), data.draw(st.sampled_from(GEOMETRY)))
                                 for _ in range(3))
    groups = data.draw(st.sampled_from((1, 1, 2, 0, -1, 3, 2**62, 2**63 - 1, 2**63)))
    N, C, H, W, K, kH, kW = 2, 2, 5, 6, 2, 3, 2
    x = data.draw(values((N, C, H, W), dtype))
    w = data.draw(values((K, C // max(groups, 1) if groups in (1, 2) else C, kH, kW), dtype, specials=False))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    label = f"conv2d_forward {kw}"
    names = {"stride", "padding", "dilation", "groups", "weight", "x", "output", "kernel", "input", "workspace"}
    legal = (_fits_int64(stride, padding, dilation) and min(stride) >= 1 and min(padding) >= 0 and min(dilation) >= 1
             and groups in (1, 2))
    Ho = Wo = 0
    if legal:
        Ho = ref.conv_out_size(H, kH, stride[0], padding[0], dilation[0])
        Wo = ref.conv_out_size(W, kW, stride[1], padding[1], dilation[1])
        nbytes = N * K * max(Ho, 0) * max(Wo, 0) * np.dtype(dtype).itemsize
        work = (C // groups) * kH * kW * max(Ho, 0) * max(Wo, 0) * np.dtype(dtype).itemsize
        assume(not _between_64mb_and_64gb(nbytes) and not _between_64mb_and_64gb(work))
        legal = Ho >= 1 and Wo >= 1 and max(nbytes, work) < 2**26 and dilation[0] * (kH - 1) + 1 < 2**63 \
            and dilation[1] * (kW - 1) + 1 < 2**63 and H + 2 * padding[0] < 2**63 and W + 2 * padding[1] < 2**63
    expect = "either" if legal else "error"
    y = attempt(lambda: core.conv2d_forward(x, w, None, **kw), names, expect, label)
    if y is not RAISED:
        assert legal, f"{label}: accepted geometry whose output cannot exist"
        close(y, quiet(ref.conv2d_forward, f64(x), f64(w), None, **kw), dtype, label,
              tol(dtype, scale=math.sqrt(C * kH * kW) * amax(x) * amax(w)))
        dy = data.draw(values(y.shape, dtype))
        out = attempt(lambda: core.conv2d_backward(dy, x, w, **kw), names, "ok", label + " backward")
        e = quiet(ref.conv2d_backward, f64(dy), f64(x), f64(w), **kw)
        for got, want, what in zip(out, e, ("dx", "dw", "db")):
            close(got, want, dtype, f"{label} {what}", tol(dtype, scale=math.sqrt(N * K * kH * kW * Ho * Wo) * amax(x)
                                                                      * amax(w) * amax(dy)))
    else:
        # the backward pass checks the same geometry before it looks at dy
        dy = np.zeros((N, K, 1, 1), dtype)
        attempt(lambda: core.conv2d_backward(dy, x, w, **kw), names | {"dy"}, "error", label + " backward")


@FUZZ
@given(data=st.data())
@counted
def test_pool2d_absurd_geometry(data):
    runtime(data)
    dtype = data.draw(st.sampled_from(FLOATS))
    kernel, stride, padding = ((data.draw(st.sampled_from(GEOMETRY)), data.draw(st.sampled_from(GEOMETRY)))
                               for _ in range(3))
    if data.draw(st.booleans()):  # often a legal padding for the kernel, so that huge kernels run
        padding = tuple(min(max(p, 0), max(k, 0) // 2) if -(2**63) <= k < 2**63 else p
                        for p, k in zip(padding, kernel))
    x = data.draw(values((2, 2, 4, 5), dtype))
    g = dict(kernel_size=kernel, stride=stride, padding=padding)
    label = f"pool {g}"
    names = {"kernel_size", "kernel", "stride", "padding", "x", "output", "input"}
    legal = (_fits_int64(kernel, stride, padding) and min(kernel) >= 1 and min(stride) >= 1 and min(padding) >= 0
             and all(2 * p <= k for p, k in zip(padding, kernel)))
    if legal:
        Ho = ref.conv_out_size(4, kernel[0], stride[0], padding[0])
        Wo = ref.conv_out_size(5, kernel[1], stride[1], padding[1])
        legal = Ho >= 1 and Wo >= 1 and 4 + 2 * padding[0] < 2**63 and 5 + 2 * padding[1] < 2**63
    expect = "ok" if legal else "error"
    out = attempt(lambda: core.maxpool2d_forward(x, **g), names, expect, "maxpool " + label)
    if out is not RAISED:
        e_y, e_am = quiet(ref.maxpool2d_forward, f64(x), **g)
        close(out[0], e_y, dtype, "maxpool " + label)
        np.testing.assert_array_equal(out[1], e_am)
        dx = attempt(lambda: core.maxpool2d_backward(out[0], out[1], x, **g), names, "ok", "maxpool bwd " + label)
        close(dx, quiet(ref.maxpool2d_backward, f64(out[0]), e_am, x.shape), dtype, "maxpool dx",
              tol(dtype, scale=4 * amax(x)))
    else:
        dummy = np.zeros((2, 2, 1, 1), dtype)
        attempt(lambda: core.maxpool2d_backward(dummy, np.zeros((2, 2, 1, 1), np.int64), x, **g), names | {"dy"},
                "error", "maxpool bwd " + label)
    a = attempt(lambda: core.avgpool2d_forward(x, **g), names, expect, "avgpool " + label)
    if a is not RAISED:
        close(a, quiet(ref.avgpool2d_forward, f64(x), **g), dtype, "avgpool " + label)
        dx = attempt(lambda: core.avgpool2d_backward(a, x, **g), names, "ok", "avgpool bwd " + label)
        close(dx, quiet(ref.avgpool2d_backward, f64(a), x.shape, **g), dtype, "avgpool dx", tol(dtype, scale=amax(a)))


@FUZZ
@given(data=st.data())
@counted
def test_gemm_huge_virtual_operands(data):
    """Zero-stride views of up to 2**40 rows or columns: gemm reads any strides, so they reach the
    size checks; a product that cannot be allocated (or counted) must fail cleanly."""
    dtype = data.draw(st.sampled_from(FLOATS))
    m, n = data.draw(st.sampled_from([1, 3, 2**20, 2**40, 2**50])), data.draw(st.sampled_from([1, 2, 2**33, 2**40]))
    k = data.draw(st.sampled_from([0, 1, 3]))
    assume(not _between_64mb_and_64gb(m * n * 8))
    A = np.broadcast_to(np.asarray(0.5, dtype), (m, k))
    B = np.broadcast_to(np.asarray(2.0, dtype), (k, n))
    expect = "ok" if m * n * 8 < 2**26 else "error"
    C = attempt(lambda: core.gemm(A, B), {"C", "A", "B"}, expect, f"gemm {m}x{k} @ {k}x{n}")
    if C is not RAISED:
        np.testing.assert_array_equal(C, np.full((m, n), float(k), dtype))


# ===========================================================================
# 4. public entry points: the MATLAB-style functions, activations, layers, losses, Sequential


@st.composite
def network(draw, dtype):
    nodes = [draw(st.integers(1, 5)) for _ in range(draw(st.integers(2, 4)))]
    nodes[-1] = max(nodes[-1], 2)
    return nodes, natverk.initialize_weights(nodes, seed=draw(st.integers(0, 2**31)), dtype=dtype)


@FUZZ
@given(data=st.data())
@counted
def test_initialize_weights(data):
    nodes = data.draw(st.one_of(
        st.lists(st.integers(1, 6), min_size=2, max_size=4),
        st.lists(st.sampled_from([0, -1, 1, 3, 2.5, 3.0, True, None, "4", 2**31, 2**40, 2**63, 2**70]), min_size=0,
                 max_size=3),
        st.sampled_from(["ab", None, 5, np.array([2, 3]), (2, np.int64(3))])))
    dtype = data.draw(st.sampled_from([np.float32, np.float64, "float32", np.int32, "float16", "x", None, complex]))
    seed = data.draw(st.sampled_from([0, 7, None, -1, 2**70, 1.5, "x", np.random.default_rng(1)]))
    sizes_ok = True
    try:
        widths = [int(n) for n in nodes]
        sizes_ok = all(a * b < 2**22 for a, b in zip(widths[:-1], widths[1:]))
        assume(not any(2**22 <= a * b * 8 < 2**36 for a, b in zip(widths[:-1], widths[1:])))
    except (TypeError, ValueError):
        pass
    label = f"initialize_weights({nodes!r}, seed={seed!r}, dtype={dtype!r})"
    out = attempt(lambda: natverk.initialize_weights(nodes, seed=seed, dtype=dtype), {"nodes", "seed", "dtype"},
                  "either", label)
    if out is RAISED:
        return
    assert sizes_ok, label
    widths = [int(n) for n in nodes]
    want = np.dtype(np.float64 if dtype is None else dtype)
    for l, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        assert out[f"W{l}"].shape == (a, b) and out[f"W{l}"].dtype == want, label
        assert out[f"b{l}"].shape == (1, b) and not out[f"b{l}"].any(), label
        assert np.isfinite(out[f"W{l}"]).all(), label


BAD_LAMBDAS = (None, "0.1", -1.0, math.nan, math.inf, [0.1], 1j, 10**400)
BAD_ACTIVATIONS = (None, "RELU", "softmax", 3, "linear", b"relu")


@FUZZ
@given(data=st.data())
@counted
def test_forward_and_back_propagation_match_reference(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    nodes, params = data.draw(network(dtype))
    m = data.draw(st.sampled_from([1, 2, 7]))
    X = data.draw(values((m, nodes[0]), dtype, specials=False))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, nodes[-1], m)
    lam, act = 0.01, data.draw(st.sampled_from(["relu", "sigmoid", "tanh"]))
    bad = data.draw(st.sampled_from(["none", "none", "none", "X", "y", "lambda_", "activation", "parameters",
                                     "class_weights"]))
    names, expect = {bad}, "error"
    cw = None
    if bad == "none":
        expect = "ok"
    elif bad == "X":
        X = data.draw(st.sampled_from([
            X.tolist(), X.astype(np.int64), X[:, :-1] if nodes[0] > 1 else X[:, :0], X[None], X[:0],
            np.where(X > 0, np.nan, X), X.astype(complex), X.astype(object), "X", None]))
        expect = "either"  # lists and integers are converted; the rest must be refused naming X
    elif bad == "y":
        y = data.draw(st.sampled_from([y[:-1], y + nodes[-1], y - 1, y.astype(float) + 0.5, y.reshape(1, -1),
                                       y.tolist(), y.astype(np.uint8), np.array(["a"] * m)]))
        expect = "either"
    elif bad == "lambda_":
        lam = data.draw(st.sampled_from(BAD_LAMBDAS))
    elif bad == "activation":
        act = data.draw(st.sampled_from(BAD_ACTIVATIONS))
    elif bad == "class_weights":
        K = nodes[-1]
        cw = data.draw(st.sampled_from([np.ones(K), np.arange(1.0, K + 1).tolist(), np.ones(K + 1), -np.ones(K),
                                        np.full(K, np.nan), np.ones(K) * 1j, [1j] * K, ["a"] * K, "w", [[1.0] * K],
                                        np.ones(K, np.int32), object()]))
        expect = "either"
    else:
        key = data.draw(st.sampled_from(sorted(k for k in params if k[0] in "Wb")))
        params = dict(params)
        params[key] = data.draw(st.sampled_from([params[key].tolist(), params[key].astype(np.int32),
                                                 params[key][:, :0], None, params[key].T.copy()]))
        names = {key, f"W{key[1:]}", f"b{key[1:]}", "parameters"}
        expect = "either"
    label = f"forward_propagation nodes={nodes} bad={bad}"
    out = attempt(lambda: natverk.forward_propagation(X, y, params, lam, act, class_weights=cw),
                  names | {"X", "parameters"}, expect, label)
    if out is RAISED:
        return
    if cw is not None:  # weighted: check the loss against the reference, then the gradient runs
        e_loss, _ = quiet(ref.softmax_cross_entropy, cache_z := f64(out[2][f"z{len(nodes) - 1}"]),
                          np.asarray(y).reshape(-1), np.asarray(cw, dtype=np.float64))
        close(out[2]["no_reg_loss"], e_loss, dtype, label + " weighted loss", tol(dtype, scale=amax(cache_z)))
        attempt(lambda: natverk.back_propagation(out[2], y, params, lam, act, class_weights=cw), {"class_weights"},
                "ok", label + " back")
        return
    probs, loss, cache = out
    Xr = np.asarray(X, dtype=np.float64)
    yr = np.asarray(y).reshape(-1).astype(np.int64)
    p64 = {k: v.astype(np.float64) for k, v in params.items() if isinstance(v, np.ndarray)}
    e_probs, e_loss, _ = quiet(reference_mlp.forward, Xr, yr, p64, lam, act)
    scale = amax(Xr) * max(nodes) * len(nodes)
    close(probs, e_probs, dtype, label + " probs", tol(dtype, scale=scale))
    close(loss, e_loss, dtype, label + " loss", tol(dtype, scale=scale))
    grads = attempt(lambda: natverk.back_propagation(cache, y, params, lam, act), {"cache"}, "ok", label + " back")
    e_grads = quiet(reference_mlp.backward, Xr, yr, p64, lam, act)
    for key, g in grads.items():
        close(g, e_grads[key], dtype, f"{label} {key}", tol(dtype, scale=scale))


@FUZZ
@given(data=st.data())
@counted
def test_gradient_descent_matches_reference(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    nodes, params = data.draw(network(dtype))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    grads = {f"d{k}": rng.uniform(-1, 1, v.shape).astype(dtype) for k, v in params.items() if k[0] in "Wb"}
    which = data.draw(st.sampled_from(["vanilla", "momentum", "rmsprop", "adam"]))
    hyper = {"learning_rate": 0.1, "beta": 0.9, "beta1": 0.9, "beta2": 0.99, "t": 3, "eps": 1e-6}
    bad = data.draw(st.sampled_from(["none", "none", "learning_rate", "beta", "beta1", "beta2", "t", "eps",
                                     "gradients"]))
    used = {"vanilla": ["learning_rate"], "momentum": ["learning_rate", "beta"],
            "rmsprop": ["learning_rate", "beta2", "eps"], "adam": ["learning_rate", "beta1", "beta2", "t", "eps"]}[which]
    expect = "ok"
    if bad in used:
        values_ = INT_VALUES if bad == "t" else FLOAT_VALUES
        hyper[bad] = data.draw(st.sampled_from(values_))
        if bad == "t":  # a whole number, also as a float (MATLAB's t is a double)
            v = hyper["t"]
            real = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            expect = "either" if real and math.isfinite(float(v) if abs(v) < 2**1000 else 0.0) else "error"
        else:
            expect = _scalar_case("float", hyper[bad])[0]
    if bad == "gradients":  # one gradient of the wrong shape, dtype or kind (a missing one is a KeyError)
        key = data.draw(st.sampled_from(sorted(grads)))
        g = grads[key]
        grads[key] = data.draw(st.sampled_from([g.T.copy() if g.shape[0] != g.shape[1] else g[:, :0], g.tolist(),
                                                g.astype(np.float32 if dtype == np.float64 else np.float64),
                                                g.astype(complex), "g", g[None], relayout(g, "strided")]))
        expect = "either"
    before = {k: v.astype(np.float64) for k, v in params.items()}
    fn = getattr(natverk, f"gradient_descent_{which}")
    kwargs = {k: hyper[k] for k in used}
    label = f"gradient_descent_{which} {kwargs!r:.120}"
    out = attempt(lambda: fn(grads, params, **kwargs), {bad, "t", "g", "w"}, expect, label)
    if out is RAISED or bad == "gradients":
        return
    assert out is params
    for l in range(1, len(nodes)):
        for key in (f"W{l}", f"b{l}"):
            g = grads[f"d{key}"].astype(np.float64)
            if which == "vanilla":
                e = ref.sgd(before[key], g, hyper["learning_rate"])
            elif which == "momentum":
                e = ref.momentum(before[key], before[f"v_d{key}"], g, hyper["learning_rate"], hyper["beta"])[0]
            elif which == "rmsprop":
                e = quiet(ref.rmsprop, before[key], before[f"s_d{key}"], g, hyper["learning_rate"], hyper["beta2"],
                          hyper["eps"])[0]
            else:
                e = quiet(ref.adam, before[key], before[f"v_d{key}"], before[f"s_d{key}"], g, hyper["learning_rate"],
                          hyper["beta1"], hyper["beta2"], int(hyper["t"]), hyper["eps"])[0]
            t_opt = tol(dtype, "optimizer")
            close(params[key], e, dtype, f"{label} {key}", t_opt._replace(atol=t_opt.atol / hyper["eps"]))


PUBLIC_ACTIVATIONS = {
    "relu": (natverk.relu, natverk.relu_backward, "relu"),
    "sigmoid": (natverk.sigmoid, natverk.sigmoid_backward, "sigmoid"),
    "tanh": (natverk.tanh, natverk.tanh_backward, "tanh"),
}


@FUZZ
@given(data=st.data())
@counted
def test_public_activations(data):
    """natverk.relu / sigmoid / tanh (and _backward) / softmax take anything array-like: float32
    stays float32, any other real dtype (ints, bool, float16, lists) is computed in float64;
    complex, strings and objects must be refused naming the argument."""
    which = data.draw(st.sampled_from(sorted(PUBLIC_ACTIVATIONS) + ["softmax"]))
    shape = data.draw(shapes(min_ndim=2, max_ndim=2) if which == "softmax" else shapes())
    base = data.draw(values(shape, np.float64, -5, 5))
    form = data.draw(st.sampled_from(["float32", "float64", "float16", "int64", "uint8", "bool", "list", "strided",
                                      "complex", "str", "object", "none"]))
    real = form not in ("complex", "str", "object", "none")
    with np.errstate(all="ignore"):
        if form == "list":
            z = base.tolist()
        elif form == "strided":
            z = relayout(base, "strided")
        elif form == "complex":
            z = base + 1j
        elif form == "str":
            z = base.astype(str) if base.size else np.array(["a"])
        elif form == "object":
            z = np.array([None, 1.0], dtype=object)
        elif form == "none":
            z = None
        else:
            z = base.astype(form)
    dtype = np.float32 if form == "float32" else np.float64
    zr = np.asarray(z, dtype=np.float64) if real else None
    if which == "softmax":
        expect = "either" if not real or base.shape[1] == 0 or (form == "list" and base.size == 0) else "ok"
        out = attempt(lambda: natverk.softmax(z), {"z"}, expect, f"softmax {form} {shape}")
        if out is not RAISED:
            close(out, quiet(ref.softmax, zr), dtype, "softmax", tol(dtype, "softmax"))
        return
    fwd, bwd, kind = PUBLIC_ACTIVATIONS[which]
    out = attempt(lambda: fwd(z), {"z"}, "ok" if real else "error", f"{which} {form} {shape}")
    if out is RAISED:
        return
    close(out, quiet(ref.activation_forward, zr, kind), dtype, which)
    dh = data.draw(values(np.shape(out), np.float64))
    got = attempt(lambda: bwd(dh, out), {"dh", "h"}, "ok" if dtype == np.float64 else "either", which + " backward")
    if got is not RAISED:
        close(got, quiet(ref.activation_backward, dh, f64(out), kind), np.float64, which + " backward",
              tol(dtype))


LAYER_INTS = (1, 2, 3, 0, -1, 2**40, 2**63, 2**70, 1.5, True, None, "2")


@FUZZ
@given(data=st.data())
@counted
def test_dense_layer(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    n_in, n_out = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    bias = data.draw(st.sampled_from([True, True, False, None, 1]))
    args = [n_in, n_out]
    bad = data.draw(st.sampled_from([None, None, None, 0, 1]))
    if bad is not None:
        args[bad] = data.draw(st.sampled_from(LAYER_INTS))
    good = all(isinstance(a, int) and not isinstance(a, bool) and 1 <= a <= 6 for a in args) and isinstance(bias, bool)
    assume(not (isinstance(args[0], int) and isinstance(args[1], int) and not good and 2**30 < abs(args[0] * args[1]) < 2**33))
    layer = attempt(lambda: L.Dense(*args, bias=bias, seed=0), {"in_features", "out_features", "bias", "W"},
                    "ok" if good else "either", f"Dense{args} bias={bias!r}")
    if layer is RAISED:
        return
    m = data.draw(st.sampled_from([1, 2, 9]))
    x = relayout(data.draw(values((m, layer.in_features), dtype)), data.draw(st.sampled_from(LAYOUTS)))
    label = f"Dense({layer.in_features}->{layer.out_features})"
    y = attempt(lambda: layer.forward(x), {"input"}, "ok" if np.isfinite(x).all() else "error", label)
    if y is RAISED:
        return
    W, b = layer.W.astype(np.float64), (layer.b.astype(np.float64) if layer.b is not None else 0.0)
    close(y, ref.gemm(f64(x), W) + b, dtype, label + " y", tol(dtype, scale=math.sqrt(n_in) * amax(x) * amax(W)))
    g = data.draw(values(y.shape, dtype))
    dx = attempt(lambda: layer.backward(g), {"grad"}, "ok", label + " backward")
    close(dx, quiet(ref.gemm, f64(g), W, trans_b=True), dtype, label + " dx",
          tol(dtype, scale=math.sqrt(n_out) * amax(g) * amax(W)))
    close(layer.dW, quiet(ref.gemm, f64(x), f64(g), trans_a=True), dtype, label + " dW",
          tol(dtype, scale=math.sqrt(m) * amax(g) * amax(x)))
    if layer.b is not None:
        close(layer.db, quiet(ref.bias_grad, f64(g)), dtype, label + " db", tol(dtype, scale=math.sqrt(m) * amax(g)))
    bad_grad = data.draw(st.sampled_from([g[:, :0], g[None], g.astype(complex), None, "g"]))
    attempt(lambda: layer.backward(bad_grad), {"grad"}, "error", label + " bad grad")


@FUZZ
@given(data=st.data())
@counted
def test_conv2d_layer(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    cin, cout = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kernel = data.draw(st.sampled_from([1, 2, 3, (1, 3), (2, 1)]))
    geo = {"stride": data.draw(st.sampled_from([1, 2, (1, 3)])), "padding": data.draw(st.sampled_from([0, 1, (2, 0)])),
           "dilation": data.draw(st.sampled_from([1, 2, (1, 2)]))}
    bad = data.draw(st.sampled_from([None, None, "kernel_size", "stride", "padding", "dilation", "groups"]))
    groups = 1
    if bad == "kernel_size":
        kernel = data.draw(st.sampled_from(GEOMETRY + ((1, 2**63 - 1), (2**62, 1), (1, 2, 3), "3", None, 1.5)))
    elif bad == "groups":
        groups = data.draw(st.sampled_from(LAYER_INTS))
    elif bad is not None:
        geo[bad] = data.draw(st.sampled_from(GEOMETRY + ((0, 2**63 - 2), (2**62, 1), (1, 2, 3), "3", None, 1.5,
                                                         (True, 1))))
    label = f"Conv2D({cin}, {cout}, {kernel!r}, groups={groups!r}, {geo})"
    kpair = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    if all(isinstance(k, int) for k in kpair) and len(kpair) == 2:
        assume(not _between_64mb_and_64gb(cin * cout * abs(kpair[0] * kpair[1]) * 8))
    layer = attempt(lambda: L.Conv2D(cin, cout, kernel, groups=groups, seed=1, **geo),
                    {"kernel_size", "stride", "padding", "dilation", "groups", "in_channels"},
                    "ok" if bad is None else "either", label)
    if layer is RAISED:
        return
    kH, kW = layer.kernel_size
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    N = data.draw(st.integers(1, 2))
    H, W = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    x = data.draw(values((N, cin, H, W), dtype, specials=False))
    Ho, Wo = ref.conv_out_size(H, kH, sh, ph, dh), ref.conv_out_size(W, kW, sw, pw, dw)
    assume(not _between_64mb_and_64gb(N * cout * max(Ho, 0) * max(Wo, 0) * 8 + max(Ho, 0) * max(Wo, 0) * kH * kW * cin * 8))
    fits = Ho >= 1 and Wo >= 1 and N * cout * Ho * Wo < 2**23
    y = attempt(lambda: layer.forward(x), {"kernel", "padding", "dilation", "input", "output"},
                "ok" if fits else "either", label + f" forward {x.shape}")
    if y is RAISED:
        return
    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    w64 = layer.W.astype(np.float64)
    b64 = None if layer.b is None else layer.b.astype(np.float64)
    close(y, quiet(ref.conv2d_forward, f64(x), w64, b64, **kw), dtype, label + " y",
          tol(dtype, scale=math.sqrt(cin * kH * kW) * amax(x) * amax(w64)))
    g = data.draw(values(y.shape, dtype, specials=False))
    dx = attempt(lambda: layer.backward(g), {"grad"}, "ok", label + " backward")
    e_dx, e_dw, e_db = quiet(ref.conv2d_backward, f64(g), f64(x), w64, **kw)
    sc = math.sqrt(N * Ho * Wo * cout * kH * kW) * amax(g) * max(amax(x), amax(w64))
    close(dx, e_dx, dtype, label + " dx", tol(dtype, scale=sc))
    close(layer.dW, e_dw, dtype, label + " dW", tol(dtype, scale=sc))
    close(layer.db, e_db, dtype, label + " db", tol(dtype, scale=sc))


@FUZZ
@given(data=st.data())
@counted
def test_pool_layers(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    cls = data.draw(st.sampled_from([L.MaxPool2D, L.AvgPool2D, L.GlobalAvgPool2D]))
    kwargs = {}
    if cls is not L.GlobalAvgPool2D:
        kwargs["kernel_size"] = data.draw(st.sampled_from([1, 2, 3, (2, 3), (2**62, 1)] + list(GEOMETRY) + [None, "2"]))
        kwargs["stride"] = data.draw(st.sampled_from([None, None, 1, 2, (1, 3), 2**63 - 1, 2**63, 0, -1, 1.5]))
        kwargs["padding"] = data.draw(st.sampled_from([0, 0, 1, (1, 0), (2**61, 0), 2**63, -1, "0"]))
    label = f"{cls.__name__}({kwargs})"
    layer = attempt(lambda: cls(**kwargs), {"kernel_size", "stride", "padding"}, "either", label)
    if layer is RAISED:
        return
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 7)),
             data.draw(st.integers(1, 7)))
    x = relayout(data.draw(values(shape, dtype, specials=False)), data.draw(st.sampled_from(LAYOUTS)))
    y = attempt(lambda: layer.forward(x), {"kernel", "input", "padding"}, "either", label + f" forward {shape}")
    if y is RAISED:
        return
    g = data.draw(values(y.shape, dtype, specials=False))
    dx = attempt(lambda: layer.backward(g), {"grad"}, "ok", label + " backward")
    if cls is L.GlobalAvgPool2D:
        close(y, ref.global_avgpool_forward(f64(x)), dtype, label)
        close(dx, ref.global_avgpool_backward(f64(g), shape), dtype, label + " dx")
        return
    geo = dict(kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding)
    if cls is L.MaxPool2D:
        e_y, e_am = ref.maxpool2d_forward(f64(x), **geo)
        close(y, e_y, dtype, label)
        close(dx, ref.maxpool2d_backward(f64(g), e_am, shape), dtype, label + " dx", tol(dtype, scale=4 * amax(g)))
    else:
        close(y, ref.avgpool2d_forward(f64(x), **geo), dtype, label)
        close(dx, ref.avgpool2d_backward(f64(g), shape, **geo), dtype, label + " dx", tol(dtype, scale=amax(g)))


@FUZZ
@given(data=st.data())
@counted
def test_batchnorm_and_dropout_layers(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    which = data.draw(st.sampled_from(["BatchNorm1D", "BatchNorm2D", "Dropout"]))
    if which == "Dropout":
        p = data.draw(st.sampled_from([0.0, 0.3, 0.9, 1.0, -0.1, math.nan, None, "0.5", True, 2**70]))
        seed = data.draw(st.sampled_from([0, 7, 2**63, -1, 2**64, 1.5, None]))
        good = isinstance(p, float) and 0 <= p < 1 and (seed is None or (isinstance(seed, int) and seed >= 0))
        layer = attempt(lambda: L.Dropout(p, seed=seed), {"p", "seed"}, "ok" if good else "either",
                        f"Dropout({p!r}, seed={seed!r})")
        if layer is RAISED:
            return
        shape = data.draw(shapes(min_ndim=1, budget=2000))
        assume(np.prod(shape) > 0)
        x = data.draw(values(shape, dtype, specials=False))
        training = data.draw(st.booleans())
        seed0 = layer.call_seed(0)
        y = attempt(lambda: layer.forward(x, training=training), {"input"}, "ok", "Dropout forward")
        g = data.draw(values(shape, dtype))
        dx = attempt(lambda: layer.backward(g), {"grad"}, "ok", "Dropout backward")
        if training and layer.p > 0:
            e_y, mask = ref.dropout_forward(f64(x), layer.p, seed0)
            close(y, e_y, dtype, "Dropout y")
            close(dx, quiet(ref.dropout_backward, f64(g), mask, layer.p), dtype, "Dropout dx")
        else:
            close(y, f64(x), dtype, "Dropout y (identity)")
            close(dx, f64(g), dtype, "Dropout dx (identity)")
        return
    C = data.draw(st.integers(1, 4))
    eps = data.draw(st.sampled_from([1e-5, 1e-5, 0.1, 0.0, -1.0, math.nan, None, 1e300]))
    momentum = data.draw(st.sampled_from([0.1, 0.1, 0.0, 1.0, 1.5, math.inf, "0.1"]))
    good = isinstance(eps, float) and 0 < eps < math.inf and isinstance(momentum, float) and 0 <= momentum <= 1
    cls = getattr(L, which)
    layer = attempt(lambda: cls(C, eps=eps, momentum=momentum), {"eps", "momentum"}, "ok" if good else "either",
                    f"{which}({C}, eps={eps!r}, momentum={momentum!r})")
    if layer is RAISED:
        return
    N = data.draw(st.sampled_from([1, 2, 5]))
    shape = (N, C) if which == "BatchNorm1D" else (N, C, data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    x = data.draw(values(shape, dtype, -3, 3, specials=False))
    training = data.draw(st.booleans())
    label = f"{which} {shape} training={training}"
    rm, rv = layer.running_mean.astype(np.float64), layer.running_var.astype(np.float64)
    lone = np.prod(shape) // C < 2
    y = attempt(lambda: layer.forward(x, training=training), {"input", "training", "eps"},
                "either" if (training and lone) or (eps == 1e300 and dtype == np.float32) else "ok", label)
    if y is RAISED:
        return
    gamma, beta = layer.gamma.astype(np.float64), layer.beta.astype(np.float64)
    e_y, e_mean, e_inv, e_rm, e_rv = quiet(ref.batchnorm_forward, f64(x), gamma, beta, rm, rv, training, layer.eps,
                                           layer.momentum)
    inv = amax(e_inv)
    close(y, e_y, dtype, label + " y", tol(dtype, scale=amax(x) * inv))
    close(layer.running_mean, e_rm, dtype, label + " running_mean", tol(dtype, scale=amax(x)))
    close(layer.running_var, e_rv, dtype, label + " running_var", tol(dtype, scale=amax(x) ** 2))
    g = data.draw(values(shape, dtype, specials=False))
    dx = attempt(lambda: layer.backward(g), {"grad"}, "ok", label + " backward")
    e_dx, e_dg, e_db = quiet(ref.batchnorm_backward, f64(g), f64(x), e_mean, e_inv, gamma, training)
    sc = math.sqrt(np.prod(shape) // C) * amax(g) * amax(x) * inv
    close(dx, e_dx, dtype, label + " dx", tol(dtype, scale=sc * inv))
    close(layer.dgamma, e_dg, dtype, label + " dgamma", tol(dtype, scale=sc))
    close(layer.dbeta, e_db, dtype, label + " dbeta", tol(dtype, scale=sc))


@FUZZ
@given(data=st.data())
@counted
def test_losses_api(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    which = data.draw(st.sampled_from(["cross_entropy", "mse", "bce"]))
    N, K = data.draw(st.sampled_from([1, 2, 7])), data.draw(st.sampled_from([1, 2, 4]))
    z = data.draw(values((N, K), dtype, -5, 5, specials=False))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    cw = None
    if which == "cross_entropy":
        t = rng.integers(0, K, N)
        if data.draw(st.booleans()):
            cw = rng.uniform(0.5, 2, K)
        if data.draw(st.integers(0, 5)) == 0:
            cw = data.draw(st.sampled_from([np.ones(K) * 1j, ["a"] * K, [1j] * K, [[1.0] * K], -np.ones(K), "w",
                                            np.ones(K, np.int8)]))
        loss = attempt(lambda: natverk.losses.CrossEntropy(class_weights=cw), {"class_weights"}, "either",
                       f"CrossEntropy(class_weights={cw!r:.60})")
        if loss is RAISED:
            return
        cw = loss.class_weights
    else:
        t = rng.uniform(0, 1, (N, K))
        loss = natverk.losses.get_loss(which)
    bad = data.draw(st.sampled_from(["none", "none", "outputs", "targets"]))
    expect = "ok"
    if bad == "outputs":
        z = data.draw(st.sampled_from([np.where(z > 0, np.nan, z), z[:, :0], z[0], z.astype(complex), "z", None,
                                       z.tolist(), z.astype(np.int32)]))
        expect = "either"
    elif bad == "targets":
        t = data.draw(st.sampled_from([t[:-1] if N > 1 else t[:0], np.asarray(t, dtype=float) + 0.5, -np.ones_like(t),
                                       np.full_like(np.asarray(t, dtype=float), np.nan), None, "t", np.asarray(t).tolist()]))
        expect = "either"
    label = f"{which} loss bad={bad}"
    value = attempt(lambda: loss.forward(z, t), {"outputs", "targets", "class_weights", "z", "t"}, expect, label)
    if value is RAISED:
        return
    zr = np.asarray(z, dtype=np.float64)
    cdt = np.float32 if np.asarray(z).dtype == np.float32 else np.float64
    grad = attempt(loss.backward, {"outputs"}, "ok", label + " backward")
    if which == "cross_entropy":
        y = np.asarray(t).reshape(-1).astype(np.int64)
        e_loss, probs = quiet(ref.softmax_cross_entropy, zr, y, cw)
        e_grad = quiet(ref.softmax_cross_entropy_backward, probs, y, cw)
    elif which == "mse":
        tr = np.asarray(t, dtype=np.float64).reshape(zr.shape)
        e_loss, e_grad = ref.mse(zr, tr), ref.mse_backward(zr, tr)
    else:
        tr = np.asarray(t, dtype=np.float64).reshape(zr.shape)
        e_loss, e_grad = quiet(ref.bce_with_logits, zr, tr), quiet(ref.bce_with_logits_backward, zr, tr)
    close(value, e_loss, cdt, label, tol(cdt, scale=amax(zr)))
    close(grad, e_grad, cdt, label + " grad")


@FUZZ
@given(data=st.data())
@counted
def test_sequential_fit_and_predict(data):
    """Sequential.fit / predict / evaluate on tiny data: fuzzed inputs, labels and arguments
    either train (one history entry per epoch, predictions are class indices that match a
    NumPy forward pass of the trained weights) or fail cleanly."""
    dtype = data.draw(st.sampled_from(FLOATS))
    F, Hd, K = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5)), data.draw(st.integers(2, 4))
    conv = data.draw(st.integers(0, 3)) == 0
    if conv:
        model = natverk.Sequential(L.Conv2D(1, 2, 2, padding=1, seed=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                                   L.Dense(2 * 2 * 2, K, seed=2))
        xshape = (1, 3, 3)
    else:
        model = natverk.Sequential(L.Dense(F, Hd, seed=1), L.ReLU(), L.Dense(Hd, K, seed=2))
        xshape = (F,)
    N = data.draw(st.sampled_from([1, 2, 5, 9]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    X = rng.uniform(-1, 1, (N,) + xshape).astype(dtype)
    y = rng.integers(0, K, N)
    fit = dict(epochs=data.draw(st.sampled_from([0, 1, 2])), batch_size=data.draw(st.sampled_from([1, 2, 4, 1000])),
               optimizer=data.draw(st.sampled_from(["adam", "sgd", "momentum", "rmsprop", None])), verbose=0,
               seed=data.draw(st.sampled_from([0, 5, None])))
    bad = data.draw(st.sampled_from(["none", "none", "none", "X", "y", "epochs", "batch_size", "optimizer", "loss"]))
    expect = "ok"
    if bad == "X":
        late_nan = X.copy()
        late_nan.flat[-1] = np.nan  # in the last batch: found only after the others trained
        X = data.draw(st.sampled_from([X[:0], X[..., :-1] if not conv else X[:, :, :2], np.where(X > 0, np.nan, X), late_nan,
                                       X.astype(complex), X.tolist(), X.astype(np.int64), "X", None, X[0]]))
        expect = "either"
    elif bad == "y":
        y = data.draw(st.sampled_from([y[:-1], y + K, y - 1, y + 0.5, y.astype(np.float32), y.tolist(), None, "y"]))
        expect = "either"
    elif bad in ("epochs", "batch_size"):
        fit[bad] = data.draw(st.sampled_from([-1, 0, 1.5, None, True, "2", [1], 2**70 if bad == "batch_size" else -5]))
        expect = "either"
    elif bad == "optimizer":
        fit["optimizer"] = data.draw(st.sampled_from(["bogus", 5, "ADAM", "Adam", object()]))
        expect = "either"
    elif bad == "loss":
        fit["loss"] = data.draw(st.sampled_from(["mse", "bce", "hinge", None, 3]))
        expect = "either"
    label = f"Sequential.fit bad={bad} {fit!r:.150}"
    names = {"X", "y", "targets", "epochs", "batch_size", "optimizer", "loss", "input", "outputs", "Dense", "Conv2D",
             "CrossEntropy", "MSE", "BCE"}
    before = [np.array(v, copy=True) for _, v, _ in model.parameters()]
    hist = attempt(lambda: model.fit(X, y, **fit), names, expect, label)
    if hist is RAISED:  # a refused fit has not trained on part of the data first (a float32 input
        # may have fixed the layers' dtype: the documented effect of a first forward)
        for (key, v, _), b in zip(model.parameters(), before):
            np.testing.assert_array_equal(v, b.astype(v.dtype), err_msg=f"{label}: {key} changed although fit failed")
        return
    assert len(hist["loss"]) == fit["epochs"], label
    assert all(np.isfinite(hist["loss"])), label
    Xp = np.asarray(X)
    pred = attempt(lambda: model.predict(Xp), {"X", "input"}, "ok", label + " predict")
    assert pred.shape == (Xp.shape[0],) and pred.dtype == np.int64
    logits = model.predict_logits(Xp)
    if not conv:
        W1, b1, W2, b2 = (model.layers[0].W, model.layers[0].b, model.layers[2].W, model.layers[2].b)
        e_logits = np.maximum(f64(Xp) @ f64(W1) + f64(b1), 0) @ f64(W2) + f64(b2)
        close(logits, e_logits, logits.dtype, label + " logits", tol(logits.dtype, scale=10 * amax(Xp)))
    np.testing.assert_array_equal(pred, np.argmax(logits, axis=1))
    assert ((pred >= 0) & (pred < K)).all()


# ===========================================================================
# 5. regressions: the bugs this fuzzer found in the public entry points (the _core scalar
# arguments' are in test_reliability_kernels.py, section 6)


@pytest.mark.parametrize("fn", [natverk.relu, natverk.sigmoid, natverk.tanh, natverk.softmax],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [np.array([[1 + 2j, 0.5]]), np.array([["1.5", "2"]]), np.array([[None, 1.0]]),
                                 [[1.0, "a"]], None], ids=["complex", "numeric-str", "object", "str-list", "None"])
def test_public_activations_refuse_non_real_input(fn, bad):
    # complex lost its imaginary part (a ComplexWarning at most), "1.5" was parsed as 1.5, and
    # other strings failed with "could not convert string to float", naming nothing
    with pytest.raises(TypeError, match=r"^z must be a real numeric array"):
        fn(bad)
    with pytest.raises(TypeError, match=r"^h must be a real numeric array"):
        natverk.relu_backward(np.ones((1, 2)), bad)


@pytest.mark.parametrize("fn", [natverk.relu, natverk.sigmoid, natverk.tanh], ids=lambda f: f.__name__)
@pytest.mark.parametrize("z", [2.5, np.float32(-1.0), np.array(3, np.int64), True], ids=repr)
def test_public_activations_keep_a_scalar_a_scalar(fn, z):
    # "any shape": np.ascontiguousarray made every 0-d input a (1,) array
    out = fn(z)
    assert out.shape == ()
    assert out.dtype == (np.float32 if isinstance(z, np.float32) else np.float64)
    close(out, ref.activation_forward(np.float64(z), fn.__name__), out.dtype, fn.__name__)
    assert natverk.relu_backward(np.ones((), out.dtype), out).shape == ()


@pytest.mark.parametrize("make", [
    lambda: L.Conv2D(1, 1, 2**31),
    lambda: L.Conv2D(2, 4, (2**40, 2**40)),
    lambda: L.Dense(2**40, 2**40),
    lambda: L.Dense(2**63, 1),
], ids=["conv-2^31", "conv-2^40", "dense-2^40", "dense-2^63"])
def test_layers_whose_weight_cannot_exist_name_it(make):
    # NumPy's "array is too big" / "Maximum allowed dimension exceeded" named nothing
    with pytest.raises(ValueError, match=r"the weight W.* would need \d+ bytes, more than an array can hold"):
        make()


def test_initialize_weights_checks_its_arguments():
    with pytest.raises(ValueError, match=r"^nodes \[1099511627776, 1099511627776\]: a 1099511627776 x "):
        natverk.initialize_weights([2**40, 2**40])
    with pytest.raises(ValueError, match=r"^seed must be an int >= 0, a numpy Generator or None, got -1"):
        natverk.initialize_weights([2, 2], seed=-1)
    with pytest.raises(TypeError, match=r"^seed must be an int >= 0, a numpy Generator or None, got 1.5"):
        natverk.initialize_weights([2, 2], seed=1.5)
    with pytest.raises(TypeError, match=r"^dtype must be float32 or float64, got 'x'$"):
        natverk.initialize_weights([2, 2], dtype="x")
    natverk.initialize_weights([2, 2], seed=np.uint8(3))  # NumPy integers are seeds too


@pytest.mark.parametrize("cw", [np.array([1j, 1.0]), ["a", "b"], [1j, 1], np.array([None, 1.0])],
                         ids=["complex", "str", "complex-list", "object"])
def test_class_weights_must_be_real(cw):
    params = natverk.initialize_weights([3, 2], seed=0)
    X, y = np.ones((4, 3)), np.array([0, 1, 1, 0])
    with pytest.raises(TypeError, match=r"^class_weights must be a 1-D array of real numbers"):
        natverk.forward_propagation(X, y, params, class_weights=cw)
    _, _, cache = natverk.forward_propagation(X, y, params)
    with pytest.raises(TypeError, match=r"^class_weights must be a 1-D array of real numbers"):
        natverk.back_propagation(cache, y, params, class_weights=cw)
    with pytest.raises(TypeError, match=r"^class_weights must be a 1-D array of real numbers"):
        natverk.losses.CrossEntropy(class_weights=cw)


@pytest.mark.parametrize("lam,exc,message", [
    ("0.1", TypeError, "lambda_ must be a number, got str"),  # was parsed as 0.1
    (True, TypeError, "lambda_ must be a number, got bool"),  # was 1.0
    (10**400, ValueError, "lambda_ = 1000.* is too large for a float"),  # was OverflowError
])
def test_lambda_must_be_a_number(lam, exc, message):
    params = natverk.initialize_weights([3, 2], seed=0)
    with pytest.raises(exc, match=f"^{message}"):
        natverk.forward_propagation(np.ones((2, 3)), np.array([0, 1]), params, lam)


@pytest.mark.parametrize("t", [None, math.nan, math.inf, "1"], ids=repr)
def test_adam_step_count_is_checked_before_use(t):
    # int(t) raised "int() argument must be ... not 'NoneType'", "cannot convert float NaN to
    # integer" or OverflowError, naming nothing
    params = natverk.initialize_weights([3, 2], seed=0)
    grads = {"dW1": np.ones((3, 2)), "db1": np.ones((1, 2))}
    with pytest.raises(TypeError, match=rf"^t must be an integer step count, got {re.escape(repr(t))}$"):
        natverk.gradient_descent_adam(grads, params, 0.1, t=t)
    natverk.gradient_descent_adam(grads, params, 0.1, t=2.0)  # a whole float is a step count


@pytest.mark.parametrize("where", ["X", "validation_data: X_val"])
def test_fit_refuses_non_finite_inputs_before_training(where):
    # the first layer found a NaN only in its batch: fit trained on the batches before it, then failed
    model = natverk.Sequential(L.Dense(2, 3, seed=1), L.ReLU(), L.Dense(3, 2, seed=2))
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    Xv = X.copy()
    (X if where == "X" else Xv)[3, 0] = np.nan
    before = [v.copy() for _, v, _ in model.parameters()]
    with pytest.raises(ValueError, match=rf"^{where} contains NaN or Inf \(first at index \(3, 0\)\)$"):
        model.fit(X, y, epochs=1, batch_size=1, shuffle=False, verbose=0, seed=0, validation_data=(Xv, y))
    for (key, v, _), b in zip(model.parameters(), before):
        np.testing.assert_array_equal(v, b, err_msg=f"{key} changed although fit failed")
    assert model.epoch == 0


# ===========================================================================
# 6. the budget was spent


def test_zz_fuzz_cases_were_run():
    """Runs last (file order): every fuzz test that ran executed cases; the totals are printed
    by conftest.py's terminal summary. (Hypothesis may stop a test early when its search space
    is exhausted; none of these is that small.)"""
    if not CASES:
        pytest.skip("no fuzz test ran in this session")
    assert all(n > 0 for n in CASES.values())
    if len(CASES) >= len(CORE_WITH_ARRAYS) + 15:  # the whole file ran
        assert sum(CASES.values()) >= min(500, 40 * EXAMPLES), dict(CASES)
