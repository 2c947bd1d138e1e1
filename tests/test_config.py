"""Threads, SIMD level and build facts."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import natverk


def test_set_num_threads_round_trip():
    before = natverk.get_num_threads()
    try:
        natverk.set_num_threads(1)
        assert natverk.get_num_threads() == 1
        natverk.set_num_threads(3)
        assert natverk.get_num_threads() == 3
    finally:
        natverk.set_num_threads(before)
    with pytest.raises(ValueError):
        natverk.set_num_threads(0)
    with pytest.raises(TypeError):
        natverk.set_num_threads(1.5)


def test_env_variables_set_threads_and_simd():
    env = dict(os.environ, NATVERK_NUM_THREADS="1", NATVERK_SIMD="scalar")
    out = subprocess.run(
        [sys.executable, "-c", "import natverk; print(natverk.get_num_threads(), natverk._core.simd_level())"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout.split()
    assert out == ["1", "scalar"]


def test_show_config_reports_everything():
    buf = io.StringIO()
    cfg = natverk.show_config(file=buf)
    text = buf.getvalue()
    for key in ("natverk", "simd_level", "num_threads", "cuda_built"):
        assert key in cfg and key in text
    assert cfg["natverk"] == natverk.__version__
    assert cfg["simd_level"] in ("scalar", "avx2", "avx512")
    # True only in a NATVERK_CUDA=ON build (CI builds both; tests/test_cuda_backend.py)
    assert cfg["cuda_built"] is bool(natverk._core.cuda_built)


def test_simd_level_cannot_exceed_the_cpu():
    order = ["scalar", "avx2", "avx512"]
    best = natverk._core.best_simd_level()
    if best != "avx512":
        with pytest.raises(ValueError):
            natverk._core.set_simd_level("avx512")
    with pytest.raises(ValueError):
        natverk._core.set_simd_level("sse9")
    try:
        for level in order[: order.index(best) + 1]:
            natverk._core.set_simd_level(level)
            assert natverk._core.simd_level() == level
    finally:
        natverk._core.set_simd_level(best)


def test_training_is_thread_count_independent_up_to_rounding():
    X, y = natverk.generate_nonlinear_2d(100, 2, 4, 0.1, seed=0)
    results = []
    before = natverk.get_num_threads()
    try:
        for threads in (1, 2):
            natverk.set_num_threads(threads)
            p = natverk.initialize_weights([2, 250, 100, 4], seed=0)
            natverk.train(p, X, y, 3, 1e-3, 128, seed=0, verbose=0)
            results.append(p)
    finally:
        natverk.set_num_threads(before)
    for k in results[0]:
        np.testing.assert_allclose(results[0][k], results[1][k], rtol=1e-10, atol=1e-12)


_POOL_STRESS = r"""
import threading, numpy as np, natverk
from natverk import _core
rng = np.random.default_rng(0)
A = rng.standard_normal((96, 70)); B = rng.standard_normal((70, 300))
expected = A @ B
errors = []

def hammer(n):
    for i in range(n):
        out = _core.gemm(A, B)  # one parallel region per call, back to back
        if not np.allclose(out, expected, rtol=1e-12, atol=1e-12):
            errors.append(i)

# thread counts that leave workers without a chunk, and switches between them
for threads in (1, 2, 3, 5, 2):
    natverk.set_num_threads(threads)
    hammer(300)
# two Python threads sharing the pool (the loser of the race runs serially)
workers = [threading.Thread(target=hammer, args=(300,)) for _ in range(2)]
for w in workers: w.start()
for w in workers: w.join()
# a call rejected by its checks leaves the pool working
try:
    _core.gemm(A, B.T)
except ValueError:
    pass
hammer(50)
print("ok" if not errors else f"wrong results at {errors[:5]}")
"""


@pytest.mark.parametrize("spin_us", ["0", "200"])
def test_thread_pool_survives_back_to_back_regions(spin_us):
    # In a subprocess: a lost wake-up would hang, and the timeout turns that into a failure.
    env = dict(os.environ, NATVERK_SPIN_US=spin_us)
    out = subprocess.run([sys.executable, "-c", _POOL_STRESS], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
