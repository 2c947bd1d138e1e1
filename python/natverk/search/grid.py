"""Search over a list of lambdas: the thesis' randomised logspace and linear search.

Thesis §2.5 ("Metoder för sökning av hyperparametrar"): to choose the L2
strength one trains the network for each lambda in {lambda_1, ..., lambda_n}
and keeps the best. Two ways to make the list:

- *randomised logspace*: lambdas drawn log-uniformly (``st_logspace``), which
  the thesis (after Bergstra & Bengio) prefers to a linear grid;
- *linear search*: ``lambda_n = a + n m`` over an interval (a, b) with a fixed
  step m.

Both are :func:`grid_search` over their list. Trials are independent, so they
run on any :class:`concurrent.futures.Executor` — a local process pool
(``jobs=``) or a Dask cluster (``distributed.Client(...).get_executor()``) —
and give the same rows as a serial run, because every trial's seed is a fixed
function of (``seed``, lambda index, repeat) and never of where it ran.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import numbers
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from ..utils.st_logspace import st_logspace
from ._result import ACCURACY_KEYS, SearchResult

__all__ = ["grid_search", "linear_search", "logspace_search", "trial_seed"]

TrialFn = Callable[[float, int], dict]

# A step so small that the grid would hold more candidates than this is a
# typo (e.g. step=1e-9), not a search anyone can afford.
_MAX_LINEAR_POINTS = 1_000_000


def trial_seed(seed: int, index: int, repeat: int, paired: bool = False) -> int:
    """The seed trial (``index``, ``repeat``) of a search with ``seed`` runs with.

    Derived with :class:`numpy.random.SeedSequence` from ``(seed, index,
    repeat)`` — or ``(seed, repeat)`` when ``paired`` — so it is the same in
    any process, and ``trial_fn(row["lambda"], row["seed"])`` re-runs a row.

    ``paired=True`` gives every lambda of one repeat the same seed (the same
    initial weights and minibatch order: common random numbers), so the
    differences between lambdas are not blurred by the initialisation.
    """
    key = [seed, repeat] if paired else [seed, index, repeat]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint32)[0])


def grid_search(
    trial_fn: TrialFn,
    lambdas: Sequence[float] | np.ndarray,
    *,
    seed: int = 0,
    executor: Executor | None = None,
    jobs: int | None = 1,
    repeats: int = 1,
    paired: bool = False,
    on_error: str = "raise",
    timeout: float | None = None,
    method: str = "grid",
    info: dict | None = None,
) -> SearchResult:
    """Run ``trial_fn(lambda_, seed)`` for every lambda (x ``repeats``); the shared core.

    Parameters
    ----------
    trial_fn : callable ``(lambda_, seed) -> dict``
        Trains one network and returns at least ``train_accuracy``,
        ``val_accuracy`` and ``test_accuracy``; e.g. :class:`MLPTrial`. Must
        be picklable for a process pool or Dask (a module-level function or
        an instance of a module-level class, not a lambda or closure).
    lambdas : sequence of float
        Candidates, each finite and >= 0; run in the given order.
    seed : int
        Root seed; trial (i, r) gets :func:`trial_seed` (seed, i, r).
    executor : concurrent.futures.Executor or None
        Where trials run, e.g. ``distributed.Client(...).get_executor()``.
        The search submits every trial and waits; it does not shut it down.
    jobs : int or None
        Only when ``executor`` is None: 1 (default) runs serially in this
        process; more makes a local :class:`ProcessPoolExecutor` with
        ``min(jobs, os.cpu_count(), trials)`` workers ("forkserver" where
        available, else "spawn": forking a process whose C++ thread pool is
        running is unsafe). ``None`` means ``os.cpu_count()``. A pool needs
        the calling script to guard its top level with
        ``if __name__ == "__main__":``.
    repeats : int
        Trainings per lambda with different seeds; :meth:`SearchResult.summary`
        averages them.
    paired : bool
        Same seed for every lambda of a repeat (see :func:`trial_seed`).
    on_error : {"raise", "record"}
        A trial that raises (e.g. a diverging loss) stops the search, or is
        recorded with NaN accuracies and the error text in an ``error`` column.
    timeout : float or None
        Seconds to wait for all trials of a pool or executor; past it the
        pending trials are cancelled and :class:`TimeoutError` is raised (a
        lost Dask worker then cannot hang the caller). None waits forever;
        serial runs (``jobs=1``, no executor) ignore it.
    method, info
        Stored on the result.

    Returns
    -------
    SearchResult
        Rows in (lambda, repeat) order, each with ``lambda``, ``seed``,
        ``repeat``, the accuracies, ``time_s`` (wall time of the trial where
        it ran) and the trial's other keys.
    """
    lams = _check_lambdas(lambdas)
    seed = _check_seed(seed)
    repeats = _positive_int(repeats, "repeats")
    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    if not callable(trial_fn):
        raise TypeError(f"trial_fn must be callable, got {type(trial_fn).__name__}")
    tasks = [(float(lam), trial_seed(seed, i, r, paired), r) for i, lam in enumerate(lams) for r in range(repeats)]
    if timeout is not None and not (float(timeout) > 0):
        raise ValueError(f"timeout must be None or > 0 seconds, got {timeout}")
    rows = _run(trial_fn, tasks, executor, jobs, on_error, timeout)
    meta = {"seed": seed, "repeats": repeats, "paired": bool(paired), **(info or {})}
    return SearchResult(rows, method=method, info=meta)


def logspace_search(
    trial_fn: TrialFn,
    lo: float,
    hi: float,
    n: int,
    *,
    seed: int = 0,
    executor: Executor | None = None,
    jobs: int | None = 1,
    repeats: int = 1,
    paired: bool = False,
    on_error: str = "raise",
    timeout: float | None = None,
) -> SearchResult:
    """Randomised logspace search (thesis §2.5, "Randomiserad logspace").

    Tries ``n`` lambdas drawn log-uniformly on [lo, hi] and sorted:
    ``natverk.st_logspace(lo, hi, n, seed=seed)``, the MATLAB ``st_logspace``
    the thesis used (Table 2 found lambda = 0.032 this way, Table 3 0.0009).
    A random draw puts more distinct values where they matter than an evenly
    spaced grid of the same size. Requires ``0 < lo <= hi`` and ``n >= 1``;
    the other arguments are :func:`grid_search`'s.
    """
    lo = _real(lo, "lo")
    hi = _real(hi, "hi")
    if lo <= 0:
        raise ValueError(f"lo must be > 0 for a log-uniform search, got {lo}")
    if hi < lo:
        raise ValueError(f"hi must be >= lo, got lo={lo} and hi={hi}")
    n = _positive_int(n, "n")
    seed = _check_seed(seed)
    lambdas = st_logspace(lo, hi, n, seed=seed)
    return grid_search(
        trial_fn, lambdas, seed=seed, executor=executor, jobs=jobs, repeats=repeats,
        paired=paired, on_error=on_error, timeout=timeout, method="logspace", info={"lo": lo, "hi": hi, "n": n},
    )  # fmt: skip


def linear_lambdas(lo: float, hi: float, step: float) -> np.ndarray:
    """``lo, lo + step, ...`` up to ``hi``: the linear search's candidates.

    Computed as ``lo + step * arange(k)`` (not by repeated addition, whose
    rounding drifts) with ``k`` the number of steps that fit, allowing for
    rounding in ``(hi - lo) / step`` so that ``hi`` itself is included when
    the step divides the interval (the thesis' ``(b - a) = 0 mod m``); values
    are clipped to ``hi`` so float rounding never overshoots it.
    """
    lo = _real(lo, "lo")
    hi = _real(hi, "hi")
    step = _real(step, "step")
    if lo < 0:
        raise ValueError(f"lo must be >= 0 (lambda is a penalty strength), got {lo}")
    if hi < lo:
        raise ValueError(f"hi must be >= lo, got lo={lo} and hi={hi}")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    steps = (hi - lo) / step
    if steps >= _MAX_LINEAR_POINTS:
        raise ValueError(f"step={step} gives {steps:.3g} candidates on [{lo}, {hi}]: more than {_MAX_LINEAR_POINTS}")
    # 1e-9 of a step of slack: (0.3 - 0) / 0.1 = 2.9999999999999996 must count 3 steps.
    k = math.floor(steps + 1e-9) + 1
    return np.minimum(lo + step * np.arange(k, dtype=np.float64), hi)


def linear_search(
    trial_fn: TrialFn,
    lo: float,
    hi: float,
    step: float,
    *,
    seed: int = 0,
    executor: Executor | None = None,
    jobs: int | None = 1,
    repeats: int = 1,
    paired: bool = False,
    on_error: str = "raise",
    timeout: float | None = None,
) -> SearchResult:
    """Linear search over an interval (thesis §2.5, "Linjär sökning över intervall").

    Tries ``lambda_j = lo + j * step`` for j = 0, 1, ... while <= ``hi`` (see
    :func:`linear_lambdas`); the thesis found lambda = 0.1 on the linear data
    (Table 2) and 0.02 on the spiral (Table 3) this way. ``lo`` may be 0 (the
    unregularised network); requires ``hi >= lo`` and ``step > 0``. The other
    arguments are :func:`grid_search`'s.
    """
    lambdas = linear_lambdas(lo, hi, step)
    return grid_search(
        trial_fn, lambdas, seed=seed, executor=executor, jobs=jobs, repeats=repeats,
        paired=paired, on_error=on_error, timeout=timeout, method="linear",
        info={"lo": float(lo), "hi": float(hi), "step": float(step)},
    )  # fmt: skip


# ---------------------------------------------------------------------- running


def _execute(trial_fn: TrialFn, lambda_: float, seed: int, repeat: int, on_error: str) -> dict[str, Any]:
    """Run one trial and build its row (runs in the worker, so ``time_s`` is
    the trial's own time, not queueing)."""
    start = time.perf_counter()
    try:
        out = trial_fn(lambda_, seed)
        if not isinstance(out, dict):
            raise TypeError(f"trial_fn must return a dict, got {type(out).__name__}")
        missing = [k for k in ACCURACY_KEYS if k not in out]
        if missing:
            raise KeyError(f"trial_fn's result lacks {missing}")
        error = None
    except Exception as exc:
        if on_error == "raise":
            raise
        out = {k: math.nan for k in ACCURACY_KEYS}
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    row: dict[str, Any] = {"lambda": lambda_, "seed": seed, "repeat": repeat}
    for key in ACCURACY_KEYS:
        row[key] = float(out[key])
    row["time_s"] = time.perf_counter() - start
    row.update((k, v) for k, v in out.items() if k not in row and k not in ("lambda", "seed", "repeat"))
    if error is not None:
        row["error"] = error
    return row


def _run(
    trial_fn: TrialFn, tasks: list, executor: Executor | None, jobs: int | None, on_error: str, timeout: float | None
) -> list[dict]:
    if executor is not None:
        return _submit_all(executor, trial_fn, tasks, on_error, timeout)
    if jobs is None:
        jobs = os.cpu_count() or 1
    jobs = _positive_int(jobs, "jobs")
    workers = min(jobs, os.cpu_count() or 1, len(tasks))
    if workers <= 1:
        return [_execute(trial_fn, lam, s, r, on_error) for lam, s, r in tasks]
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context())
    try:
        rows = _submit_all(pool, trial_fn, tasks, on_error, timeout)
    except BaseException:
        # Not `with`: its exit waits for running trials, which would defeat
        # `timeout` (and Ctrl-C) when a trial hangs.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return rows


def _submit_all(executor: Executor, trial_fn: TrialFn, tasks: list, on_error: str, timeout: float | None) -> list[dict]:
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    futures: list[Future] = [executor.submit(_execute, trial_fn, lam, s, r, on_error) for lam, s, r in tasks]
    rows: list[dict] = []
    try:
        # Collected in submission order, so the rows' order never depends on
        # which worker finished first.
        for f in futures:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                rows.append(f.result(remaining))
            except (concurrent.futures.TimeoutError, TimeoutError):
                if f.done():  # the trial itself raised a TimeoutError
                    raise
                raise TimeoutError(
                    f"only {len(rows)} of {len(futures)} trials finished within timeout={timeout} s"
                ) from None
        return rows
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def _mp_context() -> multiprocessing.context.BaseContext:
    # Never "fork": the parent's C++ thread pool (and any other threads) would
    # be copied mid-state. "forkserver" forks from a clean server process and
    # starts faster than "spawn", which is the portable fallback.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


# ---------------------------------------------------------------------- validation


def _real(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return int(seed)


def _check_lambdas(lambdas: Any) -> np.ndarray:
    try:
        lams = np.asarray(lambdas, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("lambdas must be a sequence of numbers") from None
    if lams.ndim != 1 or lams.size == 0:
        raise ValueError(f"lambdas must be a non-empty 1-D sequence, got shape {lams.shape}")
    if not np.isfinite(lams).all() or (lams < 0).any():
        raise ValueError(f"every lambda must be finite and >= 0, got {lams.tolist()}")
    return lams
