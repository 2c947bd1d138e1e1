"""Run-time configuration: threads, SIMD level, build facts."""

from __future__ import annotations

import os
import platform
import sys

from . import _core


def set_num_threads(n: int) -> None:
    """Set the number of threads natverk's kernels use.

    The default is ``NATVERK_NUM_THREADS`` when set, else the number of CPUs
    this process may run on (its affinity mask, e.g. under ``taskset`` or a
    container's cpuset), read when the thread pool is first used.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if not 1 <= n <= 1024:
        raise ValueError(f"n must be in 1..1024, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Number of threads natverk's kernels use (see ``set_num_threads`` for the default)."""
    return _core.get_num_threads()


def show_config(file=None) -> dict:
    """Print (and return) the version, SIMD level, threads and CUDA availability."""
    import numpy as np

    from . import __version__, cuda

    cfg = {
        "natverk": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "simd_level": _core.simd_level(),
        "best_simd_level": _core.best_simd_level(),
        "num_threads": _core.get_num_threads(),
        "hardware_threads": _core.hardware_threads(),
        # the CPUs this process may run on: the default thread count without NATVERK_NUM_THREADS
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else _core.hardware_threads(),
        "NATVERK_NUM_THREADS": os.environ.get("NATVERK_NUM_THREADS"),
        "NATVERK_SPIN_US": os.environ.get("NATVERK_SPIN_US"),
        "gemm_blocking_float32": _core.gemm_blocking("float32"),
        "gemm_blocking_float64": _core.gemm_blocking("float64"),
        # whether the AVX-512 GEMM reads B in place for short products (AMD only; cpp/gemm/gemm.h)
        "gemm_b_in_place": _core._gemm_b_in_place()[1],
        "cuda_built": bool(_core.cuda_built),
        "cuda_available": cuda.is_available(),
        # the GPU the CUDA kernels run on, or None (cuda_unavailable says why)
        "cuda_device": cuda.device_info().get("name") if cuda.is_available() else None,
    }
    if not cuda.is_available():
        cfg["cuda_unavailable"] = cuda.why_unavailable()
    width = max(len(k) for k in cfg)
    for key, value in cfg.items():
        print(f"{key:<{width}} : {value}", file=file or sys.stdout)
    return cfg
