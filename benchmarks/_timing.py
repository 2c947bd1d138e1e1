"""Shared timing helpers: warm-up discarded, median and min over repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def measure(fn: Callable[[], object], repeats: int = 7, warmup: int = 2, min_time: float = 0.05) -> dict:
    """Time ``fn``; each sample loops until ``min_time`` so short calls are resolvable."""
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
