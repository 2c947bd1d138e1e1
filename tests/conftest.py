"""Fixtures every kernel test shares: the run-time settings each test may change
(thread count, SIMD level, forced convolution algorithm) are restored after it, and `threads` / `simd`
parametrise a test over 1 and 2 threads and over every SIMD level this CPU has."""

from __future__ import annotations

import pytest

import natverk._core as core

SIMD_ORDER = ["scalar", "avx2", "avx512"]
SIMD_LEVELS = SIMD_ORDER[: SIMD_ORDER.index(core.best_simd_level()) + 1]


@pytest.fixture(autouse=True)
def _restore_runtime():
    """Every test leaves the thread count, SIMD level and conv algorithm as it found them."""
    threads, level, algo = core.get_num_threads(), core.simd_level(), core.get_conv_algo()
    yield
    core.set_num_threads(threads)
    core.set_simd_level(level)
    core.set_conv_algo(algo)


@pytest.fixture(params=SIMD_LEVELS)
def simd(request):
    core.set_simd_level(request.param)
    assert core.simd_level() == request.param
    return request.param


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    core.set_num_threads(request.param)
    assert core.get_num_threads() == request.param
    return request.param


def pytest_terminal_summary(terminalreporter):
    """How many cases the property-based fuzzer (test_fuzz.py) ran, and how they ended."""
    import sys

    fuzz = sys.modules.get("test_fuzz")
    if fuzz is None or not fuzz.CASES:
        return
    total = sum(fuzz.CASES.values())
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(fuzz.OUTCOMES.items()))
    terminalreporter.write_line(
        f"fuzz: {total} cases in {len(fuzz.CASES)} tests (NATVERK_FUZZ_EXAMPLES={fuzz.EXAMPLES}); "
        f"calls: {outcomes}"
    )
