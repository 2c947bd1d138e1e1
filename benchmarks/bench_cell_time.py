"""Time of a Table 4 cell's training, this natverk against an older one, in one sitting.

Trains the Table 4 MNIST CNN cell (``natverk.experiments.images.train_cell`` with its full
recipe: the CNN, Adam, cosine decay, random crops, early stopping on validation) for
``--epochs`` epochs on the first ``--n`` training images of the real MNIST, validating on the
first ``--val`` validation images after every epoch and testing on as many test images at the
end, once per implementation, alternating the implementations ``--repeats`` times, each in a
fresh process. The ratio of the median times is the speed-up per cell. The defaults are one
epoch of a real cell: all 50,000 training images, all 10,000 validation and test images (a cell
is 8 such epochs and one test pass, so the ratio carries over). Evaluation sets under 1,024 rows
take the layer loop instead of the plan, so a smaller ``--val`` times another path than a cell.

Usage (the old natverk from a git worktree, built in place, with a plain virtual
environment that has NumPy, matplotlib and tqdm):

    python benchmarks/bench_cell_time.py --old-python /tmp/oldvenv/bin/python \\
        --old-path /tmp/old/python --out benchmarks/results/cell-time.md

Writes the Markdown report (with both commits, the machine, the command and the seed).
Needs MNIST under $NATVERK_DATA.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (first: OpenBLAS picks its own kernel, see _env.py)
from _common import loadavg, machine_meta  # noqa: E402

CHILD = r"""
import dataclasses, json, subprocess, sys, time
import natverk
from natverk.experiments import images as im
n, n_val, epochs, seed, threads = (int(a) for a in sys.argv[1:6])
natverk.set_num_threads(threads)
data, why = im.load_dataset("mnist", seed, quick=False)
if data is None:
    raise SystemExit(why)
data = im.normalise(data, "mnist")
data = (data[0][:n], data[1][:n], data[2][:n_val], data[3][:n_val], data[4][:n_val], data[5][:n_val])
recipe = dataclasses.replace(im.FULL_RECIPES["mnist"]["CNN"], epochs=epochs)
t0 = time.perf_counter()
row = im.train_cell(data, "mnist", "CNN", "none", recipe, seed)
seconds = time.perf_counter() - t0
root = natverk.__file__.rsplit("/python/", 1)[0]
commit = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
print(json.dumps({"seconds": seconds, "val": float(row.get("val_accuracy", float("nan"))), "commit": commit,
                  "natverk": natverk.__file__}))
"""


def run_one(python: str, path: str | None, args) -> dict:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path
    out = subprocess.run([python, "-c", CHILD, str(args.n), str(args.val), str(args.epochs), str(args.seed),
                          str(args.threads)],
                         env=env, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{python} ({path or 'installed natverk'}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-python", required=True, help="interpreter for the old natverk")
    parser.add_argument("--old-path", default=None, help="PYTHONPATH holding the old natverk package")
    parser.add_argument("--n", type=int, default=50000, help="training images per epoch")
    parser.add_argument("--val", type=int, default=10000, help="validation images (evaluated after every epoch) and test images")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.repeats):  # alternating, so a change in the machine's load hits both
        runs["old"].append(run_one(args.old_python, args.old_path, args))
        runs["new"].append(run_one(sys.executable, None, args))
        print(runs["old"][-1], runs["new"][-1], flush=True)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    m = machine_meta()
    lines = [
        "# Table 4 MNIST CNN cell: training time, old vs new natverk",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date {m['date']}; machine: {m['cpu']}, {m['cpus_usable']} usable CPUs, SIMD {m['natverk_simd']}; "
        f"load average at the end {loadavg()}",
        f"- old: commit {runs['old'][0]['commit']} ({runs['old'][0]['natverk']}); "
        f"new: commit {runs['new'][0]['commit']} ({runs['new'][0]['natverk']})",
        f"- workload: the full Table 4 MNIST CNN recipe, {args.epochs} epoch(s) on the first {args.n} training "
        f"images, validation and test on {args.val}, seed {args.seed}, {args.threads} thread(s); {args.repeats} alternating runs "
        "each, fresh processes",
        "",
        "| natverk | seconds (each run) | median | validation accuracy |",
        "| --- | --- | ---: | --- |",
    ]
    for k in ("old", "new"):
        secs = ", ".join(f"{r['seconds']:.1f}" for r in runs[k])
        vals = ", ".join(f"{r['val']:.4f}" for r in runs[k])
        lines.append(f"| {k} | {secs} | {med[k]:.1f} | {vals} |")
    lines += ["", f"Speed-up (old / new median): **{med['old'] / med['new']:.2f}x**", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
