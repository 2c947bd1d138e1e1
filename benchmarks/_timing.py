"""Shared timing helpers: warm-up discarded, median and min over repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

# Seconds to sleep before timing a new implementation. OpenBLAS's idle workers
# keep spinning for up to 2^28 cycles (~0.1 s) after a call and libgomp's
# (PyTorch's) for a while too; on a 2-core machine such a spinning pool would
# take a core from whichever library is timed next.
SETTLE_S = 0.15


def measure(fn: Callable[[], object], repeats: int = 7, warmup: int = 2, min_time: float = 0.05,
            settle: float = SETTLE_S) -> dict:
    """Time ``fn``: ``settle`` s of sleep, ``warmup`` discarded calls, then ``repeats``
    samples, each looping ``fn`` until ``min_time`` so that short calls are resolvable
    (``min_time=0``: one call per sample)."""
    if settle > 0:
        time.sleep(settle)
    for _ in range(warmup):
        fn()
    loops = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or loops >= 1 << 20:
            break
        loops *= 2
    samples = [dt / loops]
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - t0) / loops)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "repeats": repeats, "loops": loops}
