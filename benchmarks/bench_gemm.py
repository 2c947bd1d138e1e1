"""GEMM GFLOP/s: natverk vs numpy.matmul (and PyTorch when installed), float32/float64, 1 and 2 threads.

Usage: python benchmarks/bench_gemm.py [--quick] [--json out.json]
Every timed result is checked against numpy before it is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import natverk  # noqa: E402
from _timing import measure  # noqa: E402

try:
    import torch
except ImportError:  # PyTorch is optional: pip install torch==2.13.0
    torch = None

SQUARE = [256, 512, 1024, 2048]
THESIS = [(64, 784, 500), (128, 784, 500), (64, 500, 100), (64, 3072, 5000), (64, 5000, 1000), (65536, 576, 64)]


def set_threads(n: int) -> None:
    natverk.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:  # numpy's BLAS, when threadpoolctl is available
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


def run(shapes, dtypes, threads_list, repeats):
    rows = []
    rng = np.random.default_rng(0)
    for threads in threads_list:
        set_threads(threads)
        for dtype in dtypes:
            for m, k, n in shapes:
                A = rng.standard_normal((m, k)).astype(dtype)
                B = rng.standard_normal((k, n)).astype(dtype)
                ref = A @ B
                ours = natverk._core.gemm(A, B)
                tol = 1e-3 if dtype == np.float32 else 1e-10
                err = float(np.max(np.abs(ours - ref)) / max(1.0, float(np.max(np.abs(ref)))))
                assert err < tol, f"natverk gemm wrong at {m}x{k}x{n} {dtype}: {err}"
                flops = 2.0 * m * n * k
                row = {"m": m, "k": k, "n": n, "dtype": np.dtype(dtype).name, "threads": threads}
                out = np.empty((m, n), dtype=dtype)
                row["natverk"] = measure(lambda: natverk._core.gemm(A, B, out), repeats)
                row["numpy"] = measure(lambda: np.matmul(A, B, out=out), repeats)
                if torch is not None:
                    tA, tB, tO = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(out)
                    row["torch"] = measure(lambda: torch.matmul(tA, tB, out=tO), repeats)
                for impl in ("natverk", "numpy", "torch"):
                    if impl in row:
                        row[impl]["gflops"] = flops / row[impl]["median_s"] / 1e9
                rows.append(row)
                line = f"{threads:>2} {row['dtype']:>7} {m:>6}x{k:>5}x{n:>5}"
                for impl in ("natverk", "numpy", "torch"):
                    if impl in row:
                        line += f"  {impl} {row[impl]['gflops']:7.1f}"
                line += f"  ratio vs numpy {row['natverk']['gflops'] / row['numpy']['gflops']:.2f}"
                print(line, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    parser.add_argument("--json", default=None, help="write results to this JSON file")
    args = parser.parse_args()
    if args.quick:
        shapes = [(s, s, s) for s in (512, 1024)] + [(64, 784, 500)]
        repeats = 5
    else:
        shapes = [(s, s, s) for s in SQUARE] + THESIS
        repeats = 7
    print(f"GEMM GFLOP/s (median of {repeats}); natverk SIMD {natverk._core.simd_level()}, "
          f"torch {'absent' if torch is None else torch.__version__}")
    rows = run(shapes, [np.float32, np.float64], [1, 2], repeats)
    if args.json:
        meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                "numpy": np.__version__, "natverk": natverk.__version__, "simd": natverk._core.simd_level()}
        Path(args.json).write_text(json.dumps({"meta": meta, "gemm": rows}, indent=1))


if __name__ == "__main__":
    main()
