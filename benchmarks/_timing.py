"""Shared timing helpers: warm-up discarded, median and min over repeats; implementations of the
same work timed in interleaved rounds (``measure_interleaved``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

# Seconds to sleep before timing a new implementation. OpenBLAS's idle workers
# keep spinning for up to 2^28 cycles (~0.1 s) after a call and libgomp's
# (PyTorch's) for a while too; on a 2-core machine such a spinning pool would
# take a core from whichever library is timed next.
SETTLE_S = 0.15


def _calibrate(fn: Callable[[], object], min_time: float) -> tuple[int, float]:
    """(loops, seconds per call): the fewest loops, doubling, whose sample lasts ``min_time``
    (1 for ``min_time=0``), and that sample."""
    loops = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or loops >= 1 << 20:
            return loops, dt / loops
        loops *= 2


def _sample(fn: Callable[[], object], loops: int) -> float:
    t0 = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - t0) / loops


def _result(samples: list[float], loops: int) -> dict:
    return {"median_s": statistics.median(samples), "min_s": min(samples), "repeats": len(samples), "loops": loops}


def measure(fn: Callable[[], object], repeats: int = 7, warmup: int = 2, min_time: float = 0.05,
            settle: float = SETTLE_S) -> dict:
    """Time ``fn``: ``settle`` s of sleep, ``warmup`` discarded calls, then ``repeats``
    samples, each looping ``fn`` until ``min_time`` so that short calls are resolvable
    (``min_time=0``: one call per sample)."""
    if settle > 0:
        time.sleep(settle)
    for _ in range(warmup):
        fn()
    loops, first = _calibrate(fn, min_time)
    return _result([first] + [_sample(fn, loops) for _ in range(repeats - 1)], loops)


def measure_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2,
                        min_time: float = 0.05, settle: float = SETTLE_S) -> dict[str, dict]:
    """Time implementations of the same work side by side: each is warmed up and calibrated
    as in ``measure``, then the samples are taken in rounds, one of every implementation a
    round in turn, each after ``settle`` s of sleep. On a shared machine a slow spell of a few
    seconds then falls on every implementation's samples instead of on whichever one was being
    timed, so the medians' ratios move less (a 2-core VM here swung single runs by 20-30 %).
    Returns ``measure``'s dict per name."""
    loops = {}
    for name, fn in fns.items():
        if settle > 0:
            time.sleep(settle)
        for _ in range(warmup):
            fn()
        loops[name] = _calibrate(fn, min_time)[0]
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if settle > 0:
                time.sleep(settle)
            samples[name].append(_sample(fn, loops[name]))
    return {name: _result(samples[name], loops[name]) for name in fns}
