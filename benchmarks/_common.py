"""Shared pieces of the benchmark suite: optional PyTorch, thread pinning,
result checks, machine facts and Markdown tables.

PyTorch is imported lazily (``get_torch()``) so that the peak-memory child
processes that measure natverk never load it.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import _env  # noqa: F401  (before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in benchmark processes)
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

_TORCH: object = None
_TORCH_TRIED = False
_LIMITER = None  # the threadpoolctl limiter in force (kept alive on purpose)


def get_torch():
    """The ``torch`` module, or None when PyTorch is not installed (columns then say n/a)."""
    global _TORCH, _TORCH_TRIED
    if not _TORCH_TRIED:
        _TORCH_TRIED = True
        try:
            import torch  # noqa: PLC0415  (optional: pip install torch==2.13.0)

            _TORCH = torch
        except ImportError:
            _TORCH = None
    return _TORCH


def have_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def set_threads(n: int, with_torch: bool = True) -> None:
    """Pin natverk, NumPy's BLAS (threadpoolctl) and PyTorch (when installed and
    ``with_torch``) to ``n`` threads."""
    global _LIMITER
    import natverk  # noqa: PLC0415

    natverk.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        _LIMITER = threadpool_limits(limits=n)  # stays in force until the next call
    except ImportError:
        pass
    torch = get_torch() if with_torch else None
    if torch is not None:
        torch.set_num_threads(n)


def rel_error(got, ref) -> float:
    """max |got - ref| / max |ref| (computed in float64)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        raise AssertionError(f"shape {got.shape} != reference shape {ref.shape}")
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return float(np.max(np.abs(got - ref))) / max(scale, 1e-30) if ref.size else 0.0


def check_close(what: str, got, ref, tol: float) -> float:
    """Raise AssertionError unless ``rel_error(got, ref) <= tol``; returns the error."""
    err = rel_error(got, ref)
    if not np.isfinite(err) or err > tol:
        raise AssertionError(f"{what}: relative error {err:.3g} exceeds {tol:.1g}")
    return err


def to_numpy(t) -> np.ndarray:
    """A torch tensor (or array) as a NumPy array."""
    if hasattr(t, "detach"):
        return t.detach().cpu().numpy()
    return np.asarray(t)


# ---------------------------------------------------------------- machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> str | None:
    gxx = shutil.which("g++")
    if gxx is None:
        return None
    try:
        return subprocess.run([gxx, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_meta() -> dict:
    """Versions, CPU, SIMD level, BLAS: what a result depends on."""
    import natverk  # noqa: PLC0415

    # A build made outside scikit-build (plain CMake) has no version compiled in; natverk_path says which ran.
    version = natverk.__version__ or "(no version compiled in)"
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "natverk": version,
        "natverk_path": str(Path(natverk._core.__file__).resolve()),
        "natverk_simd": natverk._core.simd_level(),
        "natverk_best_simd": natverk._core.best_simd_level(),
        "numpy": np.__version__,
        "compiler": _compiler(),
        "threadpoolctl": have_threadpoolctl(),
        "loadavg_start": loadavg(),
    }
    # NumPy's BLAS: the kernel OpenBLAS chose (architecture), and the variables _env removed to let it choose.
    env = _env.meta()
    meta["blas"] = env.pop("blas")
    meta["blas_env"] = env
    torch = get_torch()
    meta["torch"] = None if torch is None else torch.__version__
    if torch is not None:
        meta["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
        try:
            meta["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        except AttributeError:
            pass
    return meta


# ---------------------------------------------------------------- tables


def fmt(x, digits: int = 1) -> str:
    """A number for a table cell; None -> "n/a"."""
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if not np.isfinite(x):
        return "n/a"
    if abs(x) >= 1000 and digits <= 1:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def ratio(ours, others) -> float | None:
    """ours / max(others) ("natverk / best other": > 1 means natverk is faster)."""
    vals = [o for o in others if o is not None]
    if ours is None or not vals:
        return None
    return ours / max(vals)


def md_table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """A Markdown table; columns in ``right`` (default: all but the first) right-aligned."""
    if right is None:
        right = set(range(1, len(headers)))
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(vals):
        return "| " + " | ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths))) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if i in right else "-" * w for i, w in enumerate(widths)) + " |"
    return "\n".join([line(headers), sep] + [line(r) for r in cells])
