"""Peak memory (max RSS) of training (a) the 784-500-100-50-25-10 MLP and (d)
the MNIST CNN, each framework in its own fresh process.

Usage: python benchmarks/bench_memory.py [--quick] [--threads 2]
(``benchmarks/run.py`` runs this as its ``memory`` section.)

Each child (``python benchmarks/run.py --_memory-child FRAMEWORK MODEL THREADS
STEPS``) reads ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` three times: at
start (the interpreter), after importing the framework and NumPy (the
"import" baseline), and after building the model and the in-memory data
(1024 float32 examples) and training STEPS minibatch steps (the peak). The
natverk children never import torch. On Linux the kernel's
``/proc/self/status`` VmHWM (the same high-water mark, per address space) is
recorded too, as a cross-check. Frameworks: ``natverk`` (Sequential step
loop), ``natverk-functional`` (MLP only: forward_propagation /
back_propagation / gradient_descent_*) and ``torch`` (nn.Sequential,
torch.optim, NCHW).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Only the standard library at module level: a child's first RSS reading is the bare interpreter.
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _env  # noqa: E402, F401  (stdlib only; first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)

N_DATA = 1024
CASES = [("a", "natverk"), ("a", "natverk-functional"), ("a", "torch"), ("d", "natverk"), ("d", "torch")]


def _maxrss_mib() -> float:
    import resource  # noqa: PLC0415

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB on Linux


def _vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def child_main(argv: list[str]) -> None:
    """Train one framework/model and print the three RSS readings as JSON."""
    framework, key, threads, steps = argv[0], argv[1], int(argv[2]), int(argv[3])
    start = _maxrss_mib()
    if framework.startswith("natverk"):
        import natverk  # noqa: PLC0415

        natverk.set_num_threads(threads)
    elif framework == "torch":
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
    else:
        raise SystemExit(f"unknown framework {framework!r}")
    import numpy as np  # noqa: PLC0415

    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        limiter = threadpool_limits(limits=threads)  # noqa: F841
    except ImportError:
        pass
    after_import = _maxrss_mib()

    from _models import MODELS  # noqa: PLC0415

    cfg = MODELS[key]
    b = cfg["batch"]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_DATA,) + tuple(cfg["input"])).astype(np.float32)
    y = rng.integers(0, cfg["classes"], N_DATA).astype(np.int64)
    if framework == "torch":
        from _models import build_torch, torch_optimizer, torch_stepper  # noqa: PLC0415

        net = build_torch(torch, cfg)
        step = torch_stepper(torch, net, torch_optimizer(torch, cfg, net))
        X, y = torch.from_numpy(X), torch.from_numpy(y)
    else:
        import bench_train as bt  # noqa: PLC0415  (imports natverk, never torch)

        model = bt.build_natverk(cfg)
        if framework == "natverk-functional":
            step = bt.functional_stepper(cfg, bt.functional_params(model, cfg["nodes"]))
            del model
        else:
            step = bt.natverk_stepper(cfg, model, bt.natverk_optimizer(cfg))
    nb = N_DATA // b
    loss = None
    for i in range(steps):
        j = (i % nb) * b
        loss = float(step(X[j : j + b], y[j : j + b]))
    peak = _maxrss_mib()
    assert "torch" not in sys.modules or framework == "torch", "a natverk child imported torch"
    print(json.dumps({"model": key, "framework": framework, "threads": threads, "steps": steps,
                      "rss_start_mib": start, "rss_import_mib": after_import, "rss_peak_mib": peak,
                      "vm_hwm_mib": _vm_hwm_mib(),
                      "final_loss": loss}))


def run(threads: int, quick: bool = False, torch_available: bool = True, log=print) -> list[dict]:
    steps = 10 if quick else 50
    rows = []
    for key, framework in CASES:
        if framework == "torch" and not torch_available:
            rows.append({"model": key, "framework": framework, "threads": threads, "steps": steps, "skipped": "torch not installed"})
            continue
        # Through /bin/sh, which forks the child: a process exec'ed straight from this (large) one would
        # start with this one's RSS as its ru_maxrss (Linux carries the exec'ing address space's high-water
        # mark over), so every child would read at least the parent's peak.
        cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh",
               sys.executable, str(HERE / "run.py"), "--_memory-child", framework, key, str(threads), str(steps)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if res.returncode != 0:
            raise RuntimeError(f"memory child {framework} {key} failed:\n{res.stderr[-3000:]}")
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        log("  " + " | ".join(table_row(row)))
    return rows


TITLES = {"a": "(a) MLP 784-500-100-50-25-10", "d": "(d) CNN 1x28x28 (MNIST)"}


def table_row(row: dict) -> list[str]:
    from _common import fmt  # noqa: PLC0415

    head = [TITLES[row["model"]], row["framework"], str(row["threads"]), str(row["steps"])]
    if "skipped" in row:
        return head + ["n/a"] * 4
    return head + [fmt(row["rss_start_mib"]), fmt(row["rss_import_mib"]), fmt(row["rss_peak_mib"]),
                   fmt(row["rss_peak_mib"] - row["rss_import_mib"])]


HEADERS = ["model (batch 64, 1024 examples in memory)", "framework", "threads", "steps", "interpreter MiB",
           "after import MiB", "peak MiB", "peak - import MiB"]


def table(rows) -> str:
    from _common import md_table  # noqa: PLC0415

    return md_table(HEADERS, [table_row(r) for r in rows], right=set(range(2, len(HEADERS))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import importlib.util  # noqa: PLC0415

    rows = run(args.threads, args.quick, importlib.util.find_spec("torch") is not None)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
