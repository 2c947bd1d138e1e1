"""The benchmark processes' environment: imported FIRST by every benchmark
script, before NumPy (or anything that imports it) is loaded.

Why: OpenBLAS picks its compute kernel once, when the library is loaded (at
``import numpy``), from the CPU, unless ``OPENBLAS_CORETYPE`` names one; and
``OPENBLAS_L2_SIZE`` overrides the cache size its blocking is tuned for. An
environment that sets ``OPENBLAS_CORETYPE=Haswell`` (some machines we run on
do) makes OpenBLAS run its AVX2 kernel on an AVX-512 CPU, which halves
NumPy's GEMM speed there and makes every natverk / NumPy ratio look better
than it is. So the benchmark processes remove both variables from their own
environment before NumPy is imported (their child processes inherit the
cleaned environment), and the results record what was removed (``removed()``)
and which kernel OpenBLAS actually chose (``blas_info()``: threadpoolctl's
``architecture``, e.g. "SkylakeX", "Haswell", "Zen").

Only benchmark processes do this: the variables are removed only when the
running script (``__main__``) is one of the files in ``benchmarks/``, so a
test or CI process that imports a benchmark module keeps its environment.
Nothing here is imported beyond ``os`` and ``sys`` (the peak-memory children
read their interpreter's RSS right after this).
"""

from __future__ import annotations

import os
import sys

# Variables that override OpenBLAS's own choice of kernel and blocking.
UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Recorded as found (after the removal): the other knobs of the BLAS libraries' threading.
RECORDED_PREFIXES = ("OPENBLAS_", "GOTO", "OMP_", "MKL_")

_HERE = os.path.dirname(os.path.abspath(__file__))
_REMOVED: dict[str, str] = {}
_NUMPY_LOADED_FIRST = "numpy" in sys.modules


def _is_benchmark_process() -> bool:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return bool(main_file) and os.path.dirname(os.path.abspath(main_file)) == _HERE


def _clean() -> None:
    if not _is_benchmark_process():
        return
    for name in UNSET:
        if name in os.environ:
            _REMOVED[name] = os.environ.pop(name)  # os.environ.pop calls unsetenv: OpenBLAS's getenv sees it
    if _REMOVED and _NUMPY_LOADED_FIRST:
        print(f"warning: removed {_REMOVED} from the environment, but NumPy (and its OpenBLAS) was already "
              "loaded in this process, so they still apply to it; see blas_info() for the kernel in use",
              file=sys.stderr)


_clean()


def removed() -> dict[str, str]:
    """{variable: value} removed from this process's environment before NumPy was loaded."""
    return dict(_REMOVED)


def blas_info() -> list[dict]:
    """NumPy's BLAS libraries as threadpoolctl sees them (kernel = ``architecture``); [] without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
    except ImportError:
        return []
    import numpy  # noqa: F401, PLC0415  (loads NumPy's BLAS, so that threadpoolctl finds it)

    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return [{k: d.get(k) for k in keys} for d in threadpool_info() if d.get("user_api") == "blas"]


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# OpenBLAS's names of its AVX-512 kernels (x86-64).
AVX512_KERNELS = {"SkylakeX", "Cooperlake", "SapphireRapids"}


def kernel_warning(blas: list[dict]) -> str | None:
    """A note when OpenBLAS runs a non-AVX-512 kernel on an AVX-512 CPU (the case the removal is for)."""
    if "avx512f" not in cpu_flags():
        return None
    slow = [b.get("architecture") for b in blas
            if b.get("internal_api") == "openblas" and b.get("architecture") not in AVX512_KERNELS]
    if not slow:
        return None
    return (f"OpenBLAS runs its {'/'.join(map(str, slow))} kernel on this AVX-512 CPU: "
            "NumPy's figures are below what this machine can do")


def meta() -> dict:
    """What the results record about the BLAS environment."""
    blas = blas_info()
    return {
        "unset": list(UNSET),
        "removed": removed(),
        "numpy_loaded_before_removal": _NUMPY_LOADED_FIRST,
        "blas": blas,
        "blas_kernel": ", ".join(str(b.get("architecture")) for b in blas) or None,
        "blas_kernel_warning": kernel_warning(blas),
        "env_after": {k: v for k, v in sorted(os.environ.items()) if k.startswith(RECORDED_PREFIXES)},
    }


def describe(m: dict | None = None, markdown: bool = False) -> str:
    """One line: the kernel OpenBLAS chose and what was removed (for logs and the Markdown header)."""
    m = meta() if m is None else m
    em = "**" if markdown else ""
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')}, kernel {em}{b.get('architecture')}{em}, "
                     f"{b.get('num_threads')} threads by default" for b in m["blas"]) or "unknown (no threadpoolctl)"
    q = "`" if markdown else ""
    left = {k: m["env_after"][k] for k in m["unset"] if k in m.get("env_after", {})}
    removed_ = (", ".join(f"{q}{k}={v}{q}" for k, v in m["removed"].items()) if m["removed"]
                else "nothing" if left else "nothing (" + " and ".join(f"{q}{k}{q}" for k in m["unset"]) + " were not set)")
    line = f"NumPy's BLAS: {blas}; removed from the environment before NumPy loaded: {removed_}"
    if left:
        line += ("; still set (not a benchmark script's process): "
                 + ", ".join(f"{q}{k}={v}{q}" for k, v in left.items()))
    if m.get("numpy_loaded_before_removal") and m["removed"]:
        line += " (but NumPy was already loaded, so they applied)"
    if m.get("blas_kernel_warning"):
        line += f". WARNING: {m['blas_kernel_warning']}"
    return line
