"""natverk's CUDA kernels beside PyTorch CUDA, in one run, on the GPU (issue 15).

Usage: python benchmarks/bench_gpu.py [--quick] [--json PATH] [--md PATH]
(``benchmarks/gpu_check.sh`` builds natverk with CUDA, runs the CUDA tests and then this.)

Sections, each verified before it is timed (a benchmark checks what it timed):
- GEMM: ``natverk._core.cuda.gemm`` against ``torch.matmul`` (cuBLAS) at 4096^3 float32 and
  2048^3 float64, TF32 off, so both run on the CUDA cores; GFLOP/s and natverk / cuBLAS.
- conv: forward + full backward (dx, dW, db) of the CPU benchmark's layers (bench_conv.py)
  at batch 64 and 256, float32, against ``F.conv2d`` + autograd (cuDNN, TF32 off).
- MLP (a): one SGD training step of 784-500-100-50-25-10 (ReLU, softmax cross-entropy) at
  batch 64 and 256, written with natverk's functional CUDA kernels on device Tensors (there
  is no device-resident model yet), against the same model in PyTorch eager.

Timing: each case runs warm-up calls, then repeats; the median of the repeats is reported,
each repeat closed by a device synchronisation. Ratios > 1 mean natverk is faster.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import natverk
import numpy as np
from natverk import cuda as nvcuda

LAYERS = [  # (name, Cin, Cout, H=W): 3x3, stride 1, padding 1 (benchmarks/bench_conv.py)
    ("VGG 3->64 @32", 3, 64, 32),
    ("VGG 64->64 @32", 64, 64, 32),
    ("VGG 128->128 @16", 128, 128, 16),
    ("VGG 256->256 @8", 256, 256, 8),
    ("MNIST 1->32 @28", 1, 32, 28),
    ("MNIST 32->64 @14", 32, 64, 14),
]
MLP = [784, 500, 100, 50, 25, 10]


def median_time(fn, sync, warmup: int = 3, repeats: int = 10) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-30))


def check(what: str, got, ref, tol: float, failures: list) -> float:
    err = rel_error(got, ref)
    if not err <= tol:
        failures.append(f"{what}: max error {err:.3g} (relative to max |ref|) > {tol:g}")
    return err


def gemm_section(torch, quick: bool, failures: list) -> list[dict]:
    rows = []
    cases = [("float32", 4096), ("float64", 2048)] if not quick else [("float32", 1024), ("float64", 512)]
    for dtype, n in cases:
        rng = np.random.default_rng(0)
        A = rng.uniform(-1, 1, (n, n)).astype(dtype)
        B = rng.uniform(-1, 1, (n, n)).astype(dtype)
        dA, dB = nvcuda.to_device(A), nvcuda.to_device(B)
        C = nvcuda.ops.gemm(dA, dB)
        tA, tB = torch.from_numpy(A).cuda(), torch.from_numpy(B).cuda()
        tC = tA @ tB
        err = check(f"gemm {dtype} {n}", C.numpy(), tC.cpu().numpy(), 1e-4 if dtype == "float32" else 1e-12,
                    failures)
        t_nv = median_time(lambda: nvcuda.ops.gemm(dA, dB, C), nvcuda.synchronize)
        t_pt = median_time(lambda: torch.matmul(tA, tB, out=tC), torch.cuda.synchronize)
        flops = 2.0 * n**3
        rows.append({"case": f"GEMM {dtype} {n}^3", "natverk_gflops": flops / t_nv / 1e9,
                     "torch_gflops": flops / t_pt / 1e9, "ratio": t_pt / t_nv, "max_rel_error": err})
    return rows


def conv_section(torch, quick: bool, failures: list) -> list[dict]:
    F = torch.nn.functional
    rows = []
    for batch in ([64] if quick else [64, 256]):
        for name, cin, cout, hw in LAYERS:
            rng = np.random.default_rng(1)
            x = rng.standard_normal((batch, cin, hw, hw)).astype(np.float32)
            w = (rng.standard_normal((cout, cin, 3, 3)) / math.sqrt(cin * 9)).astype(np.float32)
            b = rng.standard_normal(cout).astype(np.float32)
            dy = rng.standard_normal((batch, cout, hw, hw)).astype(np.float32)
            dx_, dw_, db_, ddy = (nvcuda.to_device(a) for a in (x, w, b, dy))

            def nv_step():
                y = nvcuda.ops.conv2d_forward(dx_, dw_, db_, (1, 1), (1, 1))
                return y, nvcuda.ops.conv2d_backward(ddy, dx_, dw_, (1, 1), (1, 1))

            tx = torch.from_numpy(x).cuda().requires_grad_(True)
            tw = torch.from_numpy(w).cuda().requires_grad_(True)
            tb = torch.from_numpy(b).cuda().requires_grad_(True)
            tdy = torch.from_numpy(dy).cuda()

            def pt_step():
                y = F.conv2d(tx, tw, tb, padding=1)
                return y, torch.autograd.grad(y, (tx, tw, tb), tdy)

            y, (gx, gw, gb) = nv_step()
            ty, (rx, rw, rb) = pt_step()
            err = max(check(f"conv {name} y", y.numpy(), ty.detach().cpu().numpy(), 1e-4, failures),
                      check(f"conv {name} dx", gx.numpy(), rx.cpu().numpy(), 1e-4, failures),
                      check(f"conv {name} dW", gw.numpy(), rw.cpu().numpy(), 1e-4, failures),
                      check(f"conv {name} db", gb.numpy(), rb.cpu().numpy(), 1e-4, failures))
            t_nv = median_time(nv_step, nvcuda.synchronize)
            t_pt = median_time(pt_step, torch.cuda.synchronize)
            rows.append({"case": f"conv fwd+bwd {name} batch {batch}", "natverk_ms": t_nv * 1e3,
                         "torch_ms": t_pt * 1e3, "ratio": t_pt / t_nv, "max_rel_error": err})
    return rows


def mlp_section(torch, quick: bool, failures: list) -> list[dict]:
    ops = nvcuda.ops
    rows = []
    lr = 0.01
    for batch in ([64] if quick else [64, 256]):
        rng = np.random.default_rng(2)
        Ws = [(rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(np.float32) for a, b in zip(MLP, MLP[1:])]
        bs = [np.zeros(b, np.float32) for b in MLP[1:]]
        X = rng.standard_normal((batch, MLP[0])).astype(np.float32)
        y = rng.integers(0, MLP[-1], batch).astype(np.int64)
        dW = [nvcuda.to_device(w) for w in Ws]
        db = [nvcuda.to_device(v) for v in bs]
        dX, dy = nvcuda.to_device(X), nvcuda.to_device(y)

        def nv_step():
            hs = [dX]
            for i, (W, b) in enumerate(zip(dW, db)):
                hs.append(ops.dense_forward(hs[-1], W, b, "relu" if i < len(dW) - 1 else "linear"))
            loss, probs = ops.softmax_cross_entropy(hs[-1], dy)
            dz = ops.softmax_cross_entropy_backward(probs, dy)
            for i in reversed(range(len(dW))):
                gX, gW, gb = ops.dense_backward(dz, hs[i], dW[i], 0.0, i > 0)
                ops.sgd_update(dW[i], gW, lr)
                ops.sgd_update(db[i], gb, lr)
                if i > 0:
                    dz = ops.activation_backward(gX, hs[i], "relu")
            return loss

        model = torch.nn.Sequential(*[m for a, b in zip(MLP, MLP[1:])
                                      for m in (torch.nn.Linear(a, b), torch.nn.ReLU())][:-1]).cuda()
        with torch.no_grad():
            for lin, w, b in zip([m for m in model if isinstance(m, torch.nn.Linear)], Ws, bs):
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        tX, ty = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()

        def pt_step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(tX), ty)
            loss.backward()
            opt.step()
            return loss

        # Verify: the same first step gives the same loss and the same updated first layer.
        l_nv = nv_step()
        l_pt = float(pt_step())
        if not abs(l_nv - l_pt) <= 1e-4 * max(1.0, abs(l_pt)):
            failures.append(f"MLP batch {batch}: first-step loss {l_nv} vs torch {l_pt}")
        err = check(f"MLP batch {batch} W1 after one step", dW[0].numpy(),
                    model[0].weight.detach().cpu().numpy().T, 1e-4, failures)
        t_nv = median_time(nv_step, nvcuda.synchronize, repeats=50)
        t_pt = median_time(pt_step, torch.cuda.synchronize, repeats=50)
        rows.append({"case": f"MLP (a) SGD step, batch {batch}", "natverk_samples_per_s": batch / t_nv,
                     "torch_samples_per_s": batch / t_pt, "ratio": t_pt / t_nv, "max_rel_error": err})
    return rows


def to_markdown(report: dict) -> str:
    lines = [f"# natverk CUDA vs PyTorch CUDA ({report['date']})", "",
             f"- device: {report['device']}", f"- torch {report['torch']}, natverk {report['natverk']} "
             f"(commit {report['commit']})", f"- command: `{report['command']}`", ""]
    for section, rows in report["sections"].items():
        if not rows:
            continue
        keys = list(rows[0])
        lines += [f"## {section}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for r in rows:
            lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
        lines.append("")
    if report["errors"]:
        lines += ["## Errors", ""] + [f"- {e}" for e in report["errors"]] + [""]
    if report["failures"]:
        lines += ["## Verification failures", ""] + [f"- {f}" for f in report["failures"]] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    ap.add_argument("--md", type=Path, help="write the results here as Markdown")
    args = ap.parse_args(argv)
    nvcuda.require()
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    info = nvcuda.device_info()
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "device": info, "torch": torch.__version__,
              "natverk": natverk.__version__, "commit": commit, "command": " ".join(sys.argv),
              "sections": {}, "failures": [], "errors": []}
    for name, fn in (("GEMM", gemm_section), ("conv", conv_section), ("MLP", mlp_section)):
        try:
            report["sections"][name] = fn(torch, args.quick, report["failures"])
        except Exception as e:  # a broken section is reported, the others still run
            report["errors"].append(f"{name}: {type(e).__name__}: {e}")
            report["sections"][name] = []
        print(f"[bench_gpu] {name}: {json.dumps(report['sections'][name])}", flush=True)
    md = to_markdown(report)
    print(md)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if args.md:
        args.md.write_text(md)
    return 1 if report["failures"] or report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
