"""GEMM GFLOP/s: natverk vs numpy.matmul vs torch.matmul, float32/float64, 1 and 2 threads.

Usage: python benchmarks/bench_gemm.py [--quick] [--json out.json] [--threads 1,2]
(``benchmarks/run.py`` runs this as its ``gemm`` section, with %peak.)

Shapes are m x k x n (A is m x k, B is k x n). Besides C = A B, the two
transposed products the training of a dense layer with forward shape
m x k x n needs are timed, with the same 2 m k n flops:
``A^T B`` (dW = X^T dZ: X is m x k, dZ m x n) and ``A B^T`` (dX = dZ W^T: W is
k x n). Every implementation's result is checked against a float64 NumPy
product before it is timed; warm-up calls are discarded; median and min of
the repeats are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)
import numpy as np  # noqa: E402

import natverk  # noqa: E402
from _common import check_close, fmt, get_torch, machine_meta, md_table, ratio, set_threads  # noqa: E402
from _timing import measure  # noqa: E402

SQUARE = [256, 512, 1024, 2048]
# The thesis' MLP layers (batch x in x out) and the im2col GEMM of a 3x3 64->64
# conv at 32x32, batch 64 (N*H*W x Cin*9 x Cout).
MLP_SHAPES = [(64, 784, 500), (128, 784, 500), (64, 500, 100), (64, 3072, 5000), (64, 5000, 1000)]
IM2COL = (65536, 576, 64)
OPS = {"AB": "A B", "AtB": "A^T B (dW)", "ABt": "A B^T (dX)"}
TOL = {"float32": 1e-4, "float64": 1e-10}


def cases(quick: bool) -> list[tuple[str, tuple[int, int, int]]]:
    """(op, (m, k, n)) pairs."""
    if quick:
        square = [512, 1024]
        mlp = [(64, 784, 500), (64, 3072, 5000)]
        transposed = [(64, 784, 500)]
        big = []
    else:
        square, mlp, transposed, big = SQUARE, MLP_SHAPES, MLP_SHAPES, [IM2COL]
    out = [("AB", (s, s, s)) for s in square] + [("AB", s) for s in mlp + big]
    out += [(op, s) for s in transposed for op in ("AtB", "ABt")]
    return out


def _operands(op: str, m: int, k: int, n: int, dtype, rng):
    """(A, B, C shape, natverk kwargs, numpy A, numpy B) for C = op(A, B)."""
    if op == "AB":
        A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        return A.astype(dtype), B.astype(dtype), (m, n), {}, lambda a, b: (a, b)
    if op == "AtB":  # X (m x k), dZ (m x n) -> X^T dZ (k x n)
        A, B = rng.standard_normal((m, k)), rng.standard_normal((m, n))
        return A.astype(dtype), B.astype(dtype), (k, n), {"trans_a": True}, lambda a, b: (a.T, b)
    if op == "ABt":  # dZ (m x n), W (k x n) -> dZ W^T (m x k)
        A, B = rng.standard_normal((m, n)), rng.standard_normal((k, n))
        return A.astype(dtype), B.astype(dtype), (m, k), {"trans_b": True}, lambda a, b: (a, b.T)
    raise ValueError(op)


def run(threads_list, quick: bool = False, repeats: int | None = None, peak: dict | None = None,
        dtypes=("float32", "float64"), log=print) -> list[dict]:
    """Time every case; one row per (threads, dtype, op, shape)."""
    torch = get_torch()
    repeats = repeats or (3 if quick else 7)
    warmup, min_time = (1, 0.02) if quick else (2, 0.05)
    rows = []
    rng = np.random.default_rng(0)
    for threads in threads_list:
        set_threads(threads)
        for dtype in dtypes:
            for op, (m, k, n) in cases(quick):
                A, B, cshape, kw, view = _operands(op, m, k, n, dtype, rng)
                a, b = view(A, B)
                ref = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
                out = np.empty(cshape, dtype=dtype)
                row = {"op": op, "m": m, "k": k, "n": n, "dtype": dtype, "threads": threads,
                       "flops": 2.0 * m * k * n, "error": {}}
                impls = {
                    "natverk": lambda: natverk._core.gemm(A, B, out, **kw),
                    "numpy": lambda: np.matmul(a, b, out=out),
                }
                if torch is not None:
                    ta, tb = view(torch.from_numpy(A), torch.from_numpy(B))
                    tout = torch.from_numpy(out)
                    impls["torch"] = lambda ta=ta, tb=tb, tout=tout: torch.matmul(ta, tb, out=tout)
                for name, fn in impls.items():
                    out.fill(np.nan)
                    fn()
                    row["error"][name] = check_close(f"{name} gemm {op} {m}x{k}x{n} {dtype}", out, ref, TOL[dtype])
                    res = measure(fn, repeats, warmup, min_time)
                    res["gflops"] = row["flops"] / res["median_s"] / 1e9
                    res["gflops_best"] = row["flops"] / res["min_s"] / 1e9
                    row[name] = res
                if peak and (dtype, threads) in peak:
                    row["peak_gflops"] = peak[(dtype, threads)]
                rows.append(row)
                log("  " + " | ".join(table_row(row)))
    return rows


def _g(row, impl):
    return row[impl]["gflops"] if impl in row else None


def table_row(row: dict) -> list[str]:
    nv, others = _g(row, "natverk"), [_g(row, "numpy"), _g(row, "torch")]
    peak = row.get("peak_gflops")
    return [
        f"{row['m']} x {row['k']} x {row['n']}",
        OPS[row["op"]],
        row["dtype"],
        str(row["threads"]),
        fmt(nv),
        fmt(_g(row, "numpy")),
        fmt(_g(row, "torch")),
        fmt(ratio(nv, others), 2),
        fmt(None if peak is None else 100.0 * nv / peak, 0),
    ]


HEADERS = ["m x k x n", "op", "dtype", "threads", "natverk", "numpy", "torch", "natverk / best other", "natverk %peak"]


def table(rows: list[dict]) -> str:
    return md_table(HEADERS, [table_row(r) for r in rows], right=set(range(3, len(HEADERS))) | {0})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    parser.add_argument("--json", default=None, help="write results to this JSON file")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    torch = get_torch()
    print(_env.describe())
    print(f"GEMM GFLOP/s (median); natverk SIMD {natverk._core.simd_level()}, "
          f"torch {'n/a (not installed)' if torch is None else torch.__version__}")
    print("  " + " | ".join(HEADERS))
    rows = run(threads, args.quick)
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": machine_meta(), "gemm": rows}, indent=1))


if __name__ == "__main__":
    main()
