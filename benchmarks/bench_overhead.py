"""Per-call overhead of the MATLAB-style API: the thesis' Main loop written line
by line (``forward_propagation`` / ``back_propagation`` /
``gradient_descent_adam``) on the spiral net 2-250-100-50-4, float64 (as in
MATLAB), batch 128, Adam (beta1 0.9, beta2 0.99, lr 1e-3), against the same
loop in NumPy (``numpy_mlp.NumpyMLP``, the training benchmark's baseline).

Usage: python benchmarks/bench_overhead.py [--quick] [--threads 1,2]
(``benchmarks/run.py`` runs this as its ``overhead`` section.)

Per thread count it reports
- samples/s of both loops on the spiral data (``generate_nonlinear_2d``) and
  their ratio, and the time of one step;
- the fixed cost of a step: the same two loops on a 2-1-1-1-4 net with
  batch 1, where the arithmetic is nil and what is left is Python, argument
  checks and calls;
- the ``_core`` calls one natverk step makes (counted with ``sys.setprofile``)
  and the time of one call on a 1x1 array, ``_core.activation_forward(x,
  "relu")``, against the NumPy ufunc call that does the same,
  ``np.maximum(x, 0.0)`` (``timeit``, best of the repeats: both allocate their
  output).

Before timing, both loops start from the same float64 weights, take the same
CHECK_STEPS Adam steps on the same minibatches and must agree on every loss
and every weight and bias to a relative 1e-10.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)
import numpy as np  # noqa: E402

import natverk as nv  # noqa: E402
from natverk import _core  # noqa: E402
from _common import check_close, fmt, md_table, set_threads  # noqa: E402
from _models import MODELS  # noqa: E402
from _timing import measure_interleaved  # noqa: E402
from bench_train import functional_stepper  # noqa: E402
from numpy_mlp import NumpyMLP  # noqa: E402

CFG = MODELS["c"]  # the spiral net 2-250-100-50-4, Adam (beta2 0.99), lr 1e-3, batch 128
NODES, BATCH = CFG["nodes"], CFG["batch"]
TINY_NODES = [2, 1, 1, 1, 4]  # same layers and calls, (almost) no arithmetic: the fixed cost of a step
DTYPE = np.float64
CHECK_STEPS = 5
TOL = 1e-10
STEPS = {"quick": 50, "full": 400}
TINY_STEPS = {"quick": 500, "full": 2000}
REPEATS = {"quick": 3, "full": 11}
CALL_NUMBER = {"quick": 20_000, "full": 100_000}  # calls per timeit repeat


def spiral_batches(n_batches: int, batch: int, seed: int):
    """Shuffled spiral minibatches (float64 X, int64 labels), as the thesis' Main draws them."""
    X, y = nv.simulatedata.generate_nonlinear_2d(-(-n_batches * batch // 4), seed=seed)
    perm = np.random.default_rng(seed).permutation(len(X))[: n_batches * batch]
    X, y = np.ascontiguousarray(X[perm], dtype=DTYPE), np.ascontiguousarray(y[perm], dtype=np.int64)
    return [(X[i : i + batch], y[i : i + batch]) for i in range(0, n_batches * batch, batch)]


def loops(nodes, seed: int = 0):
    """(natverk step, NumPy step, natverk params, NumPy MLP), both from the same float64 weights."""
    params = nv.initialize_weights(nodes, seed=seed, dtype=DTYPE)
    mlp = NumpyMLP(params, "adam", CFG["lr"], beta1=0.9, beta2=0.99, eps=1e-8)  # copies the weights
    return functional_stepper(CFG, params), mlp.train_step, params, mlp


def verify(log=print) -> dict:
    """CHECK_STEPS Adam steps of both loops from the same weights: losses and weights agree to TOL."""
    nv_step, np_step, params, mlp = loops(NODES)
    losses, errors = [], {}
    for i, (xb, yb) in enumerate(spiral_batches(CHECK_STEPS, BATCH, seed=11)):
        a, b = float(nv_step(xb, yb)), float(np_step(xb, yb))
        errors[f"loss{i + 1}"] = check_close(f"overhead: loss of step {i + 1}, natverk {a!r} vs NumPy {b!r}",
                                             np.array([a]), np.array([b]), TOL)
        losses.append([a, b])
    for l in range(1, len(NODES)):
        for name, ref in ((f"W{l}", mlp.W[l - 1]), (f"b{l}", mlp.b[l - 1])):
            errors[name] = check_close(f"overhead: {name} after {CHECK_STEPS} Adam steps, natverk vs NumPy",
                                       params[name], ref, TOL)
    worst = max(errors.values())
    log(f"  check: {CHECK_STEPS} Adam steps, float64: losses and weights of natverk's functional loop and "
        f"NumPy agree (max rel. error {worst:.1e} <= {TOL:g})")
    return {"steps": CHECK_STEPS, "tol": TOL, "losses_nv_numpy": losses, "rel_error": errors, "max_rel_error": worst}


def core_calls_per_step() -> dict[str, int]:
    """The natverk._core functions one functional step calls, and how often (sys.setprofile)."""
    nv_step, _, _, _ = loops(NODES)
    (xb, yb), = spiral_batches(1, BATCH, seed=12)
    nv_step(xb, yb)  # first step outside the count (lazy imports, first-call paths)
    counts: Counter = Counter()

    def prof(frame, event, arg):
        if event == "c_call" and getattr(arg, "__module__", None) == "natverk._core":
            counts[arg.__name__] += 1

    sys.setprofile(prof)
    try:
        nv_step(xb, yb)
    finally:
        sys.setprofile(None)
    return dict(counts)


def call_time(stmt: str, env: dict, number: int, repeats: int) -> dict:
    """Seconds per call of ``stmt`` (timeit: no lambda between the loop and the call); best and median."""
    timer = timeit.Timer(stmt, globals=env)
    timer.timeit(number // 10)  # warm-up
    per = [t / number for t in timer.repeat(repeats, number)]
    return {"best_s": min(per), "median_s": statistics.median(per), "number": number, "repeats": repeats}


def time_loops(steps: dict, batches, repeats: int) -> dict:
    """{name: timing} of each step function run over ``batches``, sampled in interleaved rounds
    (``measure_interleaved``): timed one after the other, a slow spell of the shared machine fell
    on one loop and the ratio of three runs in a row read 1.22, 1.54 and 1.93 (Zen 3, 1 thread)."""
    def looped(step):
        def run():
            for xb, yb in batches:
                step(xb, yb)
        return run

    timed = measure_interleaved({name: looped(step) for name, step in steps.items()}, repeats, warmup=1, min_time=0.0)
    n = len(batches) * len(batches[0][1])
    for res in timed.values():
        res.update(steps=len(batches), samples=n, samples_per_s=n / res["median_s"],
                   samples_per_s_best=n / res["min_s"], step_us=1e6 * res["median_s"] / len(batches))
    return timed


def run(threads_list, quick: bool = False, log=print) -> dict:
    mode = "quick" if quick else "full"
    set_threads(threads_list[0], with_torch=False)
    check = verify(log)
    calls = core_calls_per_step()
    log(f"  natverk._core calls per functional step: {sum(calls.values())} "
        + "(" + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) + ")")
    batches = spiral_batches(STEPS[mode], BATCH, seed=1)
    tiny_batches = spiral_batches(TINY_STEPS[mode], 1, seed=2)
    x11 = np.full((1, 1), 0.5, dtype=DTYPE)
    rows = []
    for threads in threads_list:
        set_threads(threads, with_torch=False)
        row = {"threads": threads, "batch": BATCH, "nodes": NODES, "dtype": "float64",
               "core_calls_per_step": sum(calls.values()), "core_calls": calls}
        nv_step, np_step, _, _ = loops(NODES)
        timed = time_loops({"nv_functional": nv_step, "numpy": np_step}, batches, REPEATS[mode])
        nv_tiny, np_tiny, _, _ = loops(TINY_NODES)
        timed_tiny = time_loops({"nv_functional": nv_tiny, "numpy": np_tiny}, tiny_batches, REPEATS[mode])
        row.update(timed)
        row.update({f"{name}_tiny": res for name, res in timed_tiny.items()})
        row["core_call"] = call_time("f(x, 'relu')", {"f": _core.activation_forward, "x": x11}, CALL_NUMBER[mode],
                                     REPEATS[mode])
        row["numpy_ufunc_call"] = call_time("f(x, 0.0)", {"f": np.maximum, "x": x11}, CALL_NUMBER[mode],
                                            REPEATS[mode])
        rows.append(row)
        log("  " + " | ".join(table_row(row)))
    return {"check": check, "rows": rows}


def table_row(row: dict) -> list[str]:
    nv_sps, np_sps = row["nv_functional"]["samples_per_s"], row["numpy"]["samples_per_s"]
    return [
        str(row["threads"]),
        fmt(nv_sps, 0),
        fmt(np_sps, 0),
        fmt(nv_sps / np_sps, 2),
        fmt(row["nv_functional"]["step_us"], 0),
        fmt(row["numpy"]["step_us"], 0),
        fmt(row["nv_functional_tiny"]["step_us"], 0),
        fmt(row["numpy_tiny"]["step_us"], 0),
        str(row["core_calls_per_step"]),
        fmt(1e6 * row["core_call"]["best_s"], 2),
        fmt(1e6 * row["numpy_ufunc_call"]["best_s"], 2),
    ]


HEADERS = ["threads", "nv functional samples/s", "numpy samples/s", "nv / numpy", "nv step µs", "numpy step µs",
           "nv fixed µs/step", "numpy fixed µs/step", "_core calls/step", "_core call µs (1x1)",
           "NumPy ufunc µs (1x1)"]


def table(result: dict) -> str:
    return md_table(HEADERS, [table_row(r) for r in result["rows"]], right=set(range(len(HEADERS))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    print(_env.describe())
    result = run([int(t) for t in args.threads.split(",")], args.quick)
    print()
    print(table(result))


if __name__ == "__main__":
    main()
