"""natverk's benchmark suite: machine peak, GEMM, conv2d, training and inference
throughput, the per-call overhead of the MATLAB-style API, peak memory; natverk
vs NumPy vs PyTorch, on 1 and 2 threads; and threads on a busy machine (natverk's
default thread count vs 1 thread while other processes spin, torch beside it).

Usage:
    python benchmarks/run.py [--quick] [--json out.json] [--md out.md]
                             [--threads 1,2] [--only peak,gemm,conv,convalgo,train,infer,overhead,memory,busy]

Prints a table per section and writes every raw median/min to JSON (default
benchmarks/results/latest.json, git-ignored) and the tables to Markdown
(default benchmarks/results/latest.md, committed). Every timed result is
checked against NumPy or PyTorch first. natverk, NumPy's BLAS (threadpoolctl)
and PyTorch are pinned to the same thread count in each row. Without PyTorch
its columns say n/a. The FMA peak is measured whenever a section shows %peak.
Before NumPy is imported, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed
from this process's environment (``_env.py``), so that OpenBLAS picks its own
kernel; the header records what was removed and the kernel chosen.
See benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)

SECTIONS = ["peak", "gemm", "conv", "convalgo", "train", "infer", "overhead", "memory", "busy"]
NEEDS_PEAK = {"peak", "gemm", "conv", "train", "infer"}


def _log(msg: str = "") -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_memory-child"]:  # a peak-memory child: nothing else imported yet
        from bench_memory import child_main

        child_main(argv[1:])
        return

    import argparse
    import json
    import time
    import traceback

    from _common import RESULTS, get_torch, have_threadpoolctl, loadavg, machine_meta

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer shapes, steps and repeats (a few minutes)")
    parser.add_argument("--json", default=str(RESULTS / "latest.json"), help="raw results (default %(default)s)")
    parser.add_argument("--md", default=str(RESULTS / "latest.md"), help="Markdown tables (default %(default)s)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default %(default)s)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated (default: all)")
    args = parser.parse_args(argv)
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if not threads or min(threads) < 1:
        parser.error("--threads needs positive thread counts")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    sections = [s for s in SECTIONS if s in only]

    import bench_peak

    from natverk.experiments._provenance import git_state

    t_start = time.perf_counter()
    meta = machine_meta()
    meta.update(quick=args.quick, threads=threads, sections=sections,
                command="python benchmarks/run.py " + " ".join(argv))
    meta.update(git_state())  # git_commit, git_dirty, code_commit, code_dirty, code (as every report has)
    torch = get_torch()
    result: dict = {"meta": meta, "elapsed_s": {}}
    md: list[str] = []
    json_path, md_path = Path(args.json), Path(args.md)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)

    _log(f"natverk {meta['natverk']} (SIMD {meta['natverk_simd']}), numpy {meta['numpy']}, "
         f"torch {meta['torch'] or 'n/a (not installed: its columns say n/a)'}, "
         f"threadpoolctl {'yes' if meta['threadpoolctl'] else 'NO (numpy BLAS threads not pinned)'}; "
         f"{meta['cpu']}, {meta['cpus']} CPUs; threads {threads}; {'quick' if args.quick else 'full'} run")
    _log(_commit_line(meta))
    _log(_env.describe({"blas": meta["blas"], **meta["blas_env"]}))
    for t in threads:
        if t > (meta["cpus_usable"] or t):
            _log(f"warning: {t} threads but only {meta['cpus_usable']} CPUs usable")

    def save() -> None:
        result["meta"]["loadavg_end"] = loadavg()
        result["meta"]["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        json_path.write_text(json.dumps(result, indent=1))
        md_path.write_text(render_md(result, md))

    def section(name: str, title: str, note: str, fn, table_fn):
        """Run one section; a failure (a check's AssertionError included) is reported and the run goes on."""
        _log(f"\n== {title} ==")
        t0 = time.perf_counter()
        try:
            rows = fn()
        except Exception as err:  # noqa: BLE001
            result["elapsed_s"][name] = round(time.perf_counter() - t0, 1)
            result.setdefault("errors", {})[name] = traceback.format_exc()
            _log(traceback.format_exc())
            _log(f"section {name} FAILED: {type(err).__name__}: {err}")
            md.extend([f"## {title}", "", f"**FAILED**: `{type(err).__name__}: {str(err)[:500]}`", ""])
            save()
            return None
        result["elapsed_s"][name] = round(time.perf_counter() - t0, 1)
        table = table_fn(rows)
        _log("\n" + table)
        md.extend([f"## {title}", "", note, "", table, ""])
        save()
        return rows

    peak = {}
    if NEEDS_PEAK & set(sections):
        rows = section("peak", "Machine FMA peak (GFLOP/s)",
                       "Independent vector-FMA chains in C++ (`peak/fma_peak.cpp`, `g++ -O3 -march=native`), "
                       "std::thread per thread; the max over repeats is the peak the %peak columns use.",
                       lambda: bench_peak.measure_peak(threads, args.quick), bench_peak.table)
        result["peak"] = rows
        peak = bench_peak.peak_lookup(rows or [])

    if "gemm" in sections:
        import bench_gemm

        result["gemm"] = section(
            "gemm", "GEMM (GFLOP/s, median)",
            "C = A B with A m x k, B k x n, plus the transposed products of training a dense layer of forward "
            "shape m x k x n: A^T B (dW = X^T dZ) and A B^T (dX = dZ W^T). natverk `_core.gemm` vs "
            "`numpy.matmul` vs `torch.matmul`, all writing into a preallocated output. natverk / best other "
            "> 1: natverk faster. %peak: natverk's GFLOP/s over the FMA peak of the same dtype and threads.",
            lambda: bench_gemm.run(threads, args.quick, peak=peak, log=_log), bench_gemm.table)

    if "conv" in sections:
        import bench_conv

        result["conv"] = section(
            "conv", "Conv2d, float32 (ms, median)",
            "Batch 64, 3x3, stride 1, padding 1. natverk: `_core.conv2d_forward` / `conv2d_backward` (what the "
            "`Conv2D` layer calls; bwd_input = dx only, bwd_weight = dW + db). torch: `F.conv2d` + autograd "
            "(`autograd.grad` on a retained graph for the two backward rows), NCHW and channels_last (CL). "
            "fwd+bwd = forward + dx + dW + db. natverk / best torch > 1: natverk faster.",
            lambda: bench_conv.run(threads, args.quick, peak=peak, log=_log), bench_conv.table)

    if "convalgo" in sections:
        import bench_conv

        result["convalgo"] = section(
            "convalgo", "Conv2d algorithms, natverk only, float32 (ms, median)",
            "The same layers with every algorithm forced (`set_conv_algo`): fwd / bwd_input / bwd_weight "
            "and their sum; 'auto picks' is the rule in cpp/conv2d/conv2d.cpp. Each result is checked "
            "against the float64 reference first.",
            lambda: bench_conv.run_algos(threads, args.quick, log=_log), bench_conv.algos_table)

    if "train" in sections:
        import bench_train

        checks = {}

        def train():
            rows, ch = bench_train.run_train(threads, args.quick, peak=peak, log=_log)
            checks.update(ch)
            return rows

        mode = "quick" if args.quick else "full"
        steps = ", ".join(f"{k}: {v}" for k, v in bench_train.STEPS[mode].items())
        result["train"] = section(
            "train", "Training throughput, float32 (samples/s, median)",
            "One step = forward + loss + backward + optimizer update on an in-memory minibatch of random data. "
            f"Steps per measurement: {steps}; repeats: {bench_train.REPEATS[mode]['a']} "
            f"(e: {bench_train.REPEATS[mode]['e']}), after one discarded warm-up measurement. "
            "nv functional: forward_propagation / back_propagation / gradient_descent_* loop; nv train(): "
            "`natverk.train` for one epoch (it ends with an accuracy pass over the epoch's data); "
            "nv Sequential: forward / loss / backward / `opt.step` loop; nv fit(): `Sequential.fit` for one "
            "epoch; numpy: `benchmarks/numpy_mlp.py` (the MLPs a, b, c); torch: nn.Sequential + torch.optim (NCHW and "
            "channels_last). Before timing, all start from the same weights and agree with torch on the loss "
            "before and after one step (rel. 1e-4). '-': not applicable"
            + (" (or skipped in quick runs: fit/train() for b and e)" if args.quick else "")
            + ". %peak: best natverk samples/s x useful training flops per sample (forward, dW, dX except the "
            "first layer's) over the float32 peak.",
            train, bench_train.train_table)
        result["train_checks"] = checks

    if "infer" in sections:
        import bench_train

        result["infer"] = section(
            "infer", "Inference, float32, batch 1024, eval mode (samples/s, median)",
            "natverk `Sequential.forward(X, training=False)` (the layer loop), `Sequential.predict_logits(X)` (the "
            "step plan, from 1024 rows) and `forward_propagation(X, None, ...)`; torch under "
            "`torch.inference_mode()`; outputs checked against torch (rel. 1e-4).",
            lambda: bench_train.run_infer(threads, args.quick, peak=peak, log=_log), bench_train.infer_table)

    if "overhead" in sections:
        import bench_overhead

        mode = "quick" if args.quick else "full"
        result["overhead"] = section(
            "overhead", "Per-call overhead: MATLAB-style loop, spiral net, float64",
            "The thesis' Main loop line by line (`forward_propagation` / `back_propagation` / "
            "`gradient_descent_adam`) on 2-250-100-50-4, float64, batch 128, Adam (0.9, 0.99, lr 1e-3), spiral "
            f"data, {bench_overhead.STEPS[mode]} steps per measurement, vs the same loop in NumPy "
            "(`benchmarks/numpy_mlp.py`); before timing both take "
            f"{bench_overhead.CHECK_STEPS} steps from the same weights and agree on losses, weights and biases "
            f"(rel. {bench_overhead.TOL:g}). step µs: median per step; fixed µs/step: the same loops on a "
            "2-1-1-1-4 net with batch 1 (no arithmetic: Python, argument checks and calls); _core calls/step: "
            "the natverk._core calls one step makes; _core call µs: `_core.activation_forward(x, 'relu')` on a "
            "1x1 array, NumPy ufunc µs: `np.maximum(x, 0.0)` on the same (timeit, best of the repeats). "
            "nv / numpy > 1: natverk faster.",
            lambda: bench_overhead.run(threads, args.quick, log=_log), bench_overhead.table)

    if "memory" in sections:
        import bench_memory

        mem_threads = max(threads)
        result["memory"] = section(
            "memory", f"Peak memory of training (max RSS, MiB; {mem_threads} threads)",
            "Each row is a fresh process (`run.py --_memory-child`): `ru_maxrss` at start, after importing the "
            "framework and NumPy, and after building the model and 1024 in-memory float32 examples and training "
            "(batch 64). natverk children never import torch.",
            lambda: bench_memory.run(mem_threads, args.quick, torch is not None, log=_log), bench_memory.table)

    if "busy" in sections:
        import bench_busy

        mode = "quick" if args.quick else "full"
        result["busy"] = section(
            "busy", f"Threads on a busy machine (s, median of {bench_busy.REPEATS[mode]})",
            "natverk on its default thread count (the CPUs this process may run on: "
            f"{bench_busy.DEFAULT_THREADS} here) against natverk on 1 thread, while `python -c 'while True: "
            "pass'` children (one per usable CPU but one) keep the other cores busy; torch on the same two "
            "counts beside it. Workloads: the spiral main job (`natverk.main.spiral`, "
            f"{bench_busy.SPIRAL_EPOCHS[mode]} epochs), and one `Sequential.fit` epoch of (a) "
            f"({bench_busy.SAMPLES[mode]['a']} examples) and (d) ({bench_busy.SAMPLES[mode]['d']} examples) as in "
            "the training section. The configurations are measured in turn, in a rotating order, after a "
            "discarded warm-up; every natverk repeat of a configuration gave bit-identical weights. "
            f"default / 1 > 1: the default is slower; the goal is <= {bench_busy.GOAL:.2f}. --threads does not "
            "apply here. See benchmarks/bench_busy.py.",
            lambda: bench_busy.run(args.quick, log=_log), bench_busy.table)

    save()
    _log(f"\nwrote {json_path} and {md_path} ({result['meta']['elapsed_s']:.0f} s)")
    if result.get("errors"):
        _log(f"FAILED sections: {', '.join(result['errors'])}")
        sys.exit(1)


def _commit_line(m: dict) -> str:
    """The code the run measured: HEAD with a dirty flag (any uncommitted change, from
    natverk.experiments._provenance.git_state), and the code identity (the last commit touching
    cpp/, python/, pyproject.toml, + a hash of their uncommitted changes)."""
    commit = m.get("git_commit", "unknown")
    if commit == "unknown":
        return "git commit: unknown (natverk does not run from a git checkout)"
    dirty = "dirty: uncommitted changes" if m.get("git_dirty") else "clean"
    return f"git commit: {commit[:12]} ({dirty}); code: {m.get('code', 'unknown')}"


def render_md(result: dict, body: list[str]) -> str:
    m = result["meta"]
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')}, kernel {b.get('architecture')}" for b in m.get("blas", []))
    torch = "not installed (its columns say n/a)" if not m.get("torch") else (
        f"{m['torch']} (CPU capability {m.get('torch_cpu_capability', '?')}, mkldnn {m.get('torch_mkldnn')})")
    head = [
        f"# natverk benchmarks ({'quick' if m['quick'] else 'full'} run)",
        "",
        f"- date: {m['date']}; command: `{m['command'].strip()}`; took {m.get('elapsed_s', 0):.0f} s",
        f"- {_commit_line(m)}",
        f"- CPU: {m['cpu']}, {m['cpus']} logical CPUs ({m['cpus_usable']} usable); {m['platform']}",
        f"- natverk {m['natverk']} (SIMD {m['natverk_simd']}, best {m['natverk_best_simd']}; "
        f"`{Path(m['natverk_path']).name}`); NumPy {m['numpy']}"
        f" ({blas or 'BLAS unknown'}); PyTorch {torch}; Python {m['python']}; {m.get('compiler') or 'no g++'}",
        ("- " + _env.describe({"blas": m.get("blas", []), **m["blas_env"]}, markdown=True)) if "blas_env" in m else
        "- NumPy's BLAS: kernel not recorded",
        f"- threads pinned per row: natverk.set_num_threads, "
        f"{'threadpoolctl (NumPy BLAS)' if m['threadpoolctl'] else 'NOT NumPy BLAS (no threadpoolctl)'}, "
        f"torch.set_num_threads",
        f"- load average (1, 5, 15 min) at start {m.get('loadavg_start')}, at end {m.get('loadavg_end')}",
        "- ratios > 1 mean natverk is faster; every timed result was checked against NumPy or PyTorch first; "
        "the JSON has every median and min.",
        "",
    ]
    return "\n".join(head + body).rstrip() + "\n"


if __name__ == "__main__":
    main()
