"""Machine FMA peak (GFLOP/s) per dtype and thread count, from peak/fma_peak.cpp.

The C++ loop is compiled at run time with the system ``g++ -O3 -march=native``
and cached under ``build/benchmarks/`` (keyed by the source, the compiler and
the CPU). Without g++ the peak is "n/a" and the %peak columns with it.

Usage: python benchmarks/bench_peak.py [--quick] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)
from _common import HERE, ROOT, _cpu_model, md_table  # noqa: E402

SOURCE = HERE / "peak" / "fma_peak.cpp"
FLAGS = ["-O3", "-march=native", "-std=c++17", "-pthread"]


def _binary() -> Path | None:
    """The compiled fma_peak (built on first use), or None without a working g++."""
    gxx = shutil.which("g++")
    if gxx is None:
        return None
    try:
        version = subprocess.run([gxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    key = hashlib.sha256(SOURCE.read_bytes() + version.encode() + " ".join(FLAGS).encode() + _cpu_model().encode())
    name = f"fma_peak-{key.hexdigest()[:12]}"
    for folder in (ROOT / "build" / "benchmarks", Path(tempfile.gettempdir()) / "natverk-benchmarks"):
        exe = folder / name
        if exe.exists():
            return exe
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / (name + ".tmp")
            res = subprocess.run([gxx, *FLAGS, str(SOURCE), "-o", str(tmp)], capture_output=True, text=True, timeout=300)
            if res.returncode != 0:
                print(f"fma_peak: compilation failed:\n{res.stderr[-2000:]}", file=sys.stderr)
                return None
            tmp.replace(exe)
            return exe
        except OSError:
            continue  # read-only build/: try the temp dir
    return None


def measure_peak(threads_list, quick: bool) -> list[dict]:
    """One row per (dtype, threads): the GFLOP/s of each repeat, their median and max.

    The max is the peak used for %peak (noise only ever lowers a figure)."""
    exe = _binary()
    if exe is None:
        return []
    seconds, repeats = (0.15, 3) if quick else (0.5, 7)
    rows = []
    for threads in threads_list:
        for dtype in ("float32", "float64"):
            out = subprocess.run([str(exe), dtype, str(threads), str(seconds), str(repeats)],
                                 capture_output=True, text=True, timeout=600, check=True).stdout
            row = json.loads(out)
            row["gflops_median"] = statistics.median(row["gflops"])
            row["gflops_max"] = max(row["gflops"])
            rows.append(row)
    return rows


def peak_lookup(rows: list[dict]) -> dict[tuple[str, int], float]:
    """{(dtype, threads): peak GFLOP/s} from measure_peak's rows."""
    return {(r["dtype"], r["threads"]): r["gflops_max"] for r in rows}


def table(rows: list[dict]) -> str:
    if not rows:
        return "FMA peak: n/a (no working g++)"
    body = [[r["dtype"], r["threads"], r["isa"], f"{r['lanes']} x {r['chains']}", f"{r['gflops_median']:.1f}",
             f"{r['gflops_max']:.1f}"] for r in rows]
    return md_table(["dtype", "threads", "ISA", "lanes x chains", "median GFLOP/s", "peak GFLOP/s (max)"], body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    print(table(measure_peak([int(t) for t in args.threads.split(",")], args.quick)))


if __name__ == "__main__":
    main()
