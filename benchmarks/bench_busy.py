"""Threads on a shared machine (issue 14, item 4): natverk on its default thread
count against natverk on 1 thread while other processes keep the rest of the
CPUs busy, with PyTorch's figure beside it.

Usage: python benchmarks/bench_busy.py [--quick] [--busy N] [--pin] [--idle] [--no-torch]
                                      [--only spiral,a,d] [--repeats N] [--json PATH]
(``benchmarks/run.py --only busy`` runs this as its ``busy`` section.)

The load: ``--busy N`` child processes ``python -c 'while True: pass'``
(default: one per usable CPU but one, so on a 2-core machine the other core is
taken), started before the first measurement and killed after the last;
``--pin`` pins each to one CPU of this process's affinity set, from the last
one down (unpinned, the scheduler moves them around, which is what a laptop's
browser does). ``--idle`` adds the same rows with no load.

The workloads, each one measurement:
- spiral: ``natverk.main.spiral`` (the main job: ``train()`` on the thesis'
  2-250-100-50-4 network, Adam, float64, batch 128), for ``SPIRAL_EPOCHS``;
- (a) MLP 784-500-100-50-25-10, SGD, batch 64: ``Sequential.fit`` for one
  epoch over ``SAMPLES['a']`` random examples;
- (d) the MNIST CNN, momentum, batch 64: ``Sequential.fit``, one epoch over
  ``SAMPLES['d']`` random examples.
(a) and (d) are benchmarks/bench_train.py's models, built by its builders.
torch: the same networks (``_models.build_torch`` with the same initial
weights; the spiral one in float64 with Adam over the same 128 + 72 example
minibatches per epoch), stepped ``torch_stepper``-style. On a busy machine
torch on 2 threads runs the spiral 5-40x slower than on 1, so torch's spiral
is timed over 1/TORCH_SPIRAL_SHARE of the epochs and its seconds are scaled
up by that factor (its ratio is unaffected).

Every configuration (natverk default threads, natverk 1 thread, torch default
threads, torch 1 thread) of a workload is measured once per repeat, the order
rotated between repeats so that a drift in the machine's load falls on all of
them alike; a discarded warm-up measurement comes first; the table quotes
medians. "default / 1" > 1 means the default thread count is slower than 1
thread; the goal is <= 1.10 for natverk. Every natverk measurement of a
configuration trains from the same seed, and their final weights must be
bit-identical (the pool's determinism whatever else runs) -- checked.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)
import numpy as np  # noqa: E402

import natverk as nv  # noqa: E402
from _common import fmt, get_torch, loadavg, md_table, set_threads  # noqa: E402
from _models import MODELS, build_torch, torch_optimizer, torch_stepper  # noqa: E402
from _timing import SETTLE_S  # noqa: E402
from bench_train import build_natverk, natverk_optimizer, synthetic  # noqa: E402
from natverk import main as nv_main  # noqa: E402

# The thread count natverk picks by itself (NATVERK_NUM_THREADS, else the CPUs this process may run on),
# read before anything here sets it.
DEFAULT_THREADS = nv.get_num_threads()

SPIRAL_EPOCHS = {"quick": 150, "full": 300}
SAMPLES = {"quick": {"a": 64 * 100, "d": 64 * 6}, "full": {"a": 64 * 200, "d": 64 * 12}}
REPEATS = {"quick": 3, "full": 9}
TORCH_SPIRAL_SHARE = 5
GOAL = 1.10  # natverk default threads / 1 thread, at most
WORKLOADS = {"spiral": "spiral: main job, train() 2-250-100-50-4, Adam, f64",
             "a": MODELS["a"]["title"] + ", fit", "d": MODELS["d"]["title"] + ", fit"}


# ---------------------------------------------------------------- the load


class Busy:
    """``n`` spinning child processes (optionally pinned), killed on exit."""

    def __init__(self, n: int, pin: bool):
        self.n, self.pin, self.procs = n, pin, []

    def cpus(self) -> list[int | None]:
        if not self.pin:
            return [None] * self.n
        mine = sorted(os.sched_getaffinity(0))
        return [mine[-1 - i % len(mine)] for i in range(self.n)]

    def __enter__(self):
        for cpu in self.cpus():
            code = ("import os; os.sched_setaffinity(0, {%d})\n" % cpu if cpu is not None else "") + "while True: pass"
            self.procs.append(subprocess.Popen([sys.executable, "-c", code]))
        time.sleep(0.5)  # let them start spinning (and the scheduler place them)
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"busy child exited with {p.returncode}")
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


# ---------------------------------------------------------------- one measurement per workload


def natverk_job(key: str, mode: str):
    """A function running one measurement from scratch; returns (seconds, final weights)."""
    if key == "spiral":
        def run():
            t0 = time.perf_counter()
            out = nv_main.spiral(epochs=SPIRAL_EPOCHS[mode], output=None, verbose=0)
            dt = time.perf_counter() - t0
            return dt, [out["parameters"][k] for k in sorted(out["parameters"]) if k[0] in "Wb"]
        return run
    cfg = MODELS[key]
    X, y = synthetic(cfg, SAMPLES[mode][key], seed=1)

    def run():
        model, opt = build_natverk(cfg), natverk_optimizer(cfg)
        t0 = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=cfg["batch"], optimizer=opt, seed=0, verbose=0)
        dt = time.perf_counter() - t0
        return dt, [p.copy() for _, p, _ in model.parameters()]
    return run


def torch_job(torch, key: str, mode: str):
    if key == "spiral":
        cfg = MODELS["c"]
        X, y = synthetic(cfg, 200, seed=1)  # the spiral main job's 200 training examples
        X = X.astype(np.float64)
        steps = [(0, 128), (128, 200)] * (SPIRAL_EPOCHS[mode] // TORCH_SPIRAL_SHARE)
        dtype, scale = torch.float64, TORCH_SPIRAL_SHARE
    else:
        cfg = MODELS[key]
        X, y = synthetic(cfg, SAMPLES[mode][key], seed=1)
        b = cfg["batch"]
        steps = [(i, i + b) for i in range(0, len(X), b)]
        dtype, scale = torch.float32, 1
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)
    model = build_natverk(cfg)  # the same initial weights as natverk's

    def run():
        net = build_torch(torch, cfg, model).to(dtype)
        step = torch_stepper(torch, net, torch_optimizer(torch, cfg, net))
        t0 = time.perf_counter()
        for i, j in steps:
            step(tX[i:j], ty[i:j])
        return (time.perf_counter() - t0) * scale, None
    return run


# ---------------------------------------------------------------- the run


def _configs(torch, default: int):
    out = [("nv", default), ("nv", 1)]
    if torch is not None:
        out += [("torch", default), ("torch", 1)]
    return out


def measure_scenario(scenario: str, busy: int, pin: bool, quick: bool, repeats: int | None, log=print,
                     with_torch: bool = True, workloads=tuple(WORKLOADS)) -> list[dict]:
    mode = "quick" if quick else "full"
    repeats = repeats or REPEATS[mode]
    torch = get_torch() if with_torch else None
    default = DEFAULT_THREADS
    configs = _configs(torch, default)
    rows = []
    for key in workloads:
        jobs = {("nv", t): natverk_job(key, mode) for _, t in configs[:2]}
        if torch is not None:
            tj = torch_job(torch, key, mode)
            jobs.update({("torch", t): tj for _, t in configs[2:]})
        times = {c: [] for c in configs}
        weights = {}
        load = []
        with Busy(busy if scenario == "busy" else 0, pin):
            for r in range(repeats + 1):  # repeat 0: warm-up, discarded
                k = r % len(configs)
                for c in configs[k:] + configs[:k]:
                    set_threads(c[1])
                    time.sleep(SETTLE_S)  # let the previous library's spinning workers go to sleep
                    dt, w = jobs[c]()
                    if r == 0:
                        continue
                    times[c].append(dt)
                    if w is not None:  # every natverk run of one thread count: the same bits
                        ref = weights.setdefault(c, w)
                        same = all(np.array_equal(a, b) for a, b in zip(ref, w))
                        assert same, f"{key}: natverk at {c[1]} threads gave different weights between repeats"
                load.append(loadavg())
        set_threads(default)
        med = {c: statistics.median(v) for c, v in times.items()}
        row = {"scenario": scenario, "busy": busy if scenario == "busy" else 0, "pinned": pin,
               "workload": key, "title": WORKLOADS[key], "default_threads": default, "repeats": repeats,
               "loadavg": load[-1] if load else None,
               "times_s": {f"{lib}_{t}": v for (lib, t), v in times.items()},
               "median_s": {f"{lib}_{t}": v for (lib, t), v in med.items()}}
        row["nv_ratio"] = med[("nv", default)] / med[("nv", 1)]
        # paired per repeat: robust to a load that drifts between repeats
        row["nv_ratio_paired"] = statistics.median(
            a / b for a, b in zip(times[("nv", default)], times[("nv", 1)]))
        if torch is not None:
            row["torch_ratio"] = med[("torch", default)] / med[("torch", 1)]
        rows.append(row)
        log("  " + " | ".join(busy_row(row)))
    return rows


def run(quick: bool = False, busy: int | None = None, pin: bool = False, idle: bool = False,
        repeats: int | None = None, log=print, with_torch: bool = True, workloads=tuple(WORKLOADS)) -> list[dict]:
    if busy is None:
        busy = max(1, len(os.sched_getaffinity(0)) - 1)
    rows = []
    for scenario in (["busy", "idle"] if idle else ["busy"]):
        rows += measure_scenario(scenario, busy, pin, quick, repeats, log, with_torch, workloads)
    return rows


def busy_row(row: dict) -> list[str]:
    m, d = row["median_s"], row["default_threads"]
    load = "idle" if row["scenario"] == "idle" else (
        f"{row['busy']} spinner{'s' if row['busy'] > 1 else ''}{' (pinned)' if row['pinned'] else ''}")
    ok = "yes" if row["nv_ratio"] <= GOAL else "NO"
    return [row["title"], load, str(d), fmt(m[f"nv_{d}"], 3), fmt(m["nv_1"], 3), fmt(row["nv_ratio"], 2),
            fmt(row["nv_ratio_paired"], 2), ok if row["scenario"] == "busy" else "-",
            fmt(m.get(f"torch_{d}"), 3), fmt(m.get("torch_1"), 3), fmt(row.get("torch_ratio"), 2),
            str(row["loadavg"][0] if row["loadavg"] else "?")]


HEADERS = ["workload", "other load", "default threads", "nv default s", "nv 1 thread s", "nv default / 1",
           "(paired)", f"<= {GOAL:.2f}", "torch default s", "torch 1 thread s", "torch default / 1", "loadavg 1 min"]


def table(rows) -> str:
    return md_table(HEADERS, [busy_row(r) for r in rows], right=set(range(2, len(HEADERS))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller workloads, 3 repeats")
    parser.add_argument("--busy", type=int, default=None, help="spinning processes (default: usable CPUs - 1, >= 1)")
    parser.add_argument("--pin", action="store_true", help="pin each spinner to one CPU, from the last one down")
    parser.add_argument("--idle", action="store_true", help="also measure with no load")
    parser.add_argument("--repeats", type=int, default=None, help="measurements per configuration (median)")
    parser.add_argument("--no-torch", action="store_true", help="natverk only")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads (default %(default)s)")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    print(_env.describe())
    print(f"natverk {nv.__version__}: default {DEFAULT_THREADS} threads "
          f"(NATVERK_NUM_THREADS={os.environ.get('NATVERK_NUM_THREADS')}, {len(os.sched_getaffinity(0))} CPUs usable, "
          f"{os.cpu_count()} in the machine); torch {getattr(get_torch(), '__version__', 'n/a')}; loadavg {loadavg()}")
    workloads = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    rows = run(args.quick, args.busy, args.pin, args.idle, args.repeats, with_torch=not args.no_torch,
               workloads=workloads)
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"loadavg_end": loadavg(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
