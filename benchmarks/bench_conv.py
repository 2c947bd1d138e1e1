"""Conv2d forward, backward-input, backward-weight and fwd+bwd: natverk's C++
kernels vs torch ``F.conv2d`` + autograd (NCHW and channels_last), float32.

Usage: python benchmarks/bench_conv.py [--quick] [--threads 1,2] [--algos]
(``benchmarks/run.py`` runs this as its ``conv`` section, with %peak.)

The "algo" column is what natverk's rule picked for the layer (cpp/conv2d/conv2d.cpp).
``--algos`` adds a table of natverk's fwd / bwd_input / bwd_weight under every algorithm
forced (``set_conv_algo``), the data behind that rule; each is checked like the rest.

natverk: ``_core.conv2d_forward`` and ``_core.conv2d_backward`` with
``need_dx`` / ``need_dw`` + ``need_db`` selecting the backward-input and the
backward-weight (weight and bias) products; the Conv2D layer calls exactly
these. torch: ``F.conv2d`` with autograd recording, and
``torch.autograd.grad`` on a retained graph for the two backward products (so
they are timed without the forward); "fwd+bwd" is forward plus the full
backward (dx, dW, db) for both. Every result (y, dx, dW, db) is checked
against a float64 NumPy reference before it is timed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)
import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

import natverk  # noqa: E402
from _common import check_close, fmt, get_torch, md_table, set_threads  # noqa: E402
from _timing import measure, measure_interleaved  # noqa: E402

BATCH = 64
# (name, Cin, Cout, H=W); all 3x3, stride 1, padding 1.
LAYERS = [
    ("VGG 3->64 @32", 3, 64, 32),
    ("VGG 64->64 @32", 64, 64, 32),
    ("VGG 128->128 @16", 128, 128, 16),
    ("VGG 256->256 @8", 256, 256, 8),
    ("MNIST 1->32 @28", 1, 32, 28),
    ("MNIST 32->64 @14", 32, 64, 14),
]
QUICK_LAYERS = ["VGG 64->64 @32", "VGG 256->256 @8", "MNIST 32->64 @14"]
OPS = ["fwd", "bwd_input", "bwd_weight", "fwd+bwd"]
TOL = 1e-4


def reference(x, W, b, dy, pad):
    """float64 NumPy conv: (y, dx, dW, db)."""
    x, W, b, dy = (np.asarray(a, np.float64) for a in (x, W, b, dy))
    kh, kw = W.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))  # N, C, Ho, Wo, kh, kw
    y = np.tensordot(win, W, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2) + b[None, :, None, None]
    dW = np.tensordot(dy, win, axes=([0, 2, 3], [0, 2, 3]))
    db = dy.sum(axis=(0, 2, 3))
    Ho, Wo = dy.shape[2:]
    dxp = np.zeros_like(xp)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + Ho, j : j + Wo] += np.tensordot(dy, W[:, :, i, j], axes=([1], [0])).transpose(0, 3, 1, 2)
    dx = dxp[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return y, dx, dW, db


def _natverk_fns(x, W, b, dy, pad):
    core = natverk._core
    p = (pad, pad)
    return {
        "fwd": lambda: (core.conv2d_forward(x, W, b, padding=p),),
        "bwd_input": lambda: core.conv2d_backward(dy, x, W, padding=p, need_dx=True, need_dw=False, need_db=False)[:1],
        "bwd_weight": lambda: core.conv2d_backward(dy, x, W, padding=p, need_dx=False, need_dw=True, need_db=True)[1:],
        "fwd+bwd": lambda: (core.conv2d_forward(x, W, b, padding=p),)
        + tuple(core.conv2d_backward(dy, x, W, padding=p)),
    }


def _torch_fns(torch, x, W, b, dy, pad, channels_last: bool):
    F = torch.nn.functional
    fmt_ = torch.channels_last if channels_last else torch.contiguous_format
    tx = torch.from_numpy(x).to(memory_format=fmt_).requires_grad_()
    tW = torch.from_numpy(W).to(memory_format=fmt_).requires_grad_()
    tb = torch.from_numpy(b).requires_grad_()
    tdy = torch.from_numpy(dy).to(memory_format=fmt_)
    y = F.conv2d(tx, tW, tb, padding=pad)  # a graph kept for the backward-only timings

    def total():
        out = F.conv2d(tx, tW, tb, padding=pad)
        return (out,) + torch.autograd.grad(out, (tx, tW, tb), tdy)

    return {
        "fwd": lambda: (F.conv2d(tx, tW, tb, padding=pad),),
        "bwd_input": lambda: torch.autograd.grad(y, tx, tdy, retain_graph=True),
        "bwd_weight": lambda: torch.autograd.grad(y, (tW, tb), tdy, retain_graph=True),
        "fwd+bwd": total,
    }


def _check(what, got, refs):
    return max(check_close(what, np.asarray(g.detach() if hasattr(g, "detach") else g), r, TOL)
               for g, r in zip(got, refs))


ALGOS = ["im2col", "winograd2", "winograd4"]


def layer_data(rng, cin, cout, hw):
    """x, W, b, dy of one layer (He-scaled W) and the float64 reference results per op."""
    x = rng.standard_normal((BATCH, cin, hw, hw)).astype(np.float32)
    W = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) * 0.1
    dy = rng.standard_normal((BATCH, cout, hw, hw)).astype(np.float32)
    y, dx, dW, db = reference(x, W, b, dy, 1)
    refs = {"fwd": (y,), "bwd_input": (dx,), "bwd_weight": (dW, db), "fwd+bwd": (y, dx, dW, db)}
    return x, W, b, dy, refs


def run(threads_list, quick: bool = False, repeats: int | None = None, peak: dict | None = None, log=print) -> list[dict]:
    torch = get_torch()
    repeats = repeats or (3 if quick else 7)
    warmup, min_time = (1, 0.0) if quick else (2, 0.05)
    layers = [layer for layer in LAYERS if not quick or layer[0] in QUICK_LAYERS]
    rng = np.random.default_rng(0)
    data = {}
    for name, cin, cout, hw in layers:
        data[name] = layer_data(rng, cin, cout, hw)
    rows = []
    for threads in threads_list:
        set_threads(threads)
        for name, cin, cout, hw in layers:
            x, W, b, dy, refs = data[name]
            flops1 = 2.0 * BATCH * cout * hw * hw * cin * 9
            impls = {"natverk": _natverk_fns(x, W, b, dy, 1)}
            if torch is not None:
                impls["torch_nchw"] = _torch_fns(torch, x, W, b, dy, 1, channels_last=False)
                impls["torch_cl"] = _torch_fns(torch, x, W, b, dy, 1, channels_last=True)
            for op in OPS:
                row = {"layer": name, "batch": BATCH, "cin": cin, "cout": cout, "hw": hw, "op": op, "threads": threads,
                       "dtype": "float32", "flops": flops1 * (3 if op == "fwd+bwd" else 1), "error": {},
                       "algo": natverk._core.conv2d_algorithm(x, W, padding=(1, 1))}
                for impl, fns in impls.items():
                    row["error"][impl] = _check(f"{impl} conv {name} {op}", fns[op](), refs[op])
                timed = measure_interleaved({impl: fns[op] for impl, fns in impls.items()}, repeats, warmup, min_time)
                for impl, res in timed.items():
                    res["gflops"] = row["flops"] / res["median_s"] / 1e9
                    row[impl] = res
                if peak and ("float32", threads) in peak:
                    row["peak_gflops"] = peak[("float32", threads)]
                rows.append(row)
                log("  " + " | ".join(table_row(row)))
    return rows


def _ms(row, impl):
    return 1e3 * row[impl]["median_s"] if impl in row else None


def table_row(row: dict) -> list[str]:
    nv = _ms(row, "natverk")
    torch_ms = [t for t in (_ms(row, "torch_nchw"), _ms(row, "torch_cl")) if t is not None]
    best = min(torch_ms) if torch_ms else None
    gf = row["natverk"]["gflops"]
    peak = row.get("peak_gflops")
    return [
        row["layer"],
        row["op"],
        row.get("algo", "-"),
        str(row["threads"]),
        fmt(nv, 2),
        fmt(_ms(row, "torch_nchw"), 2),
        fmt(_ms(row, "torch_cl"), 2),
        fmt(None if best is None else best / nv, 2),
        fmt(gf),
        fmt(None if peak is None else 100.0 * gf / peak, 0),
    ]


HEADERS = ["layer (batch 64, 3x3, pad 1)", "op", "algo", "threads", "natverk ms", "torch NCHW ms", "torch CL ms",
           "natverk / best torch", "natverk GFLOP/s", "natverk %peak"]


def table(rows: list[dict]) -> str:
    return md_table(HEADERS, [table_row(r) for r in rows], right=set(range(3, len(HEADERS))))


def run_algos(threads_list, quick: bool = False, repeats: int | None = None, log=print) -> list[dict]:
    """natverk alone, every algorithm forced, every layer: fwd, bwd_input, bwd_weight (ms, median).
    Each algorithm's results are checked against the float64 reference first (float32
    tolerance TOL, as the main table)."""
    repeats = repeats or (3 if quick else 7)
    warmup, min_time = (1, 0.0) if quick else (2, 0.05)
    layers = [layer for layer in LAYERS if not quick or layer[0] in QUICK_LAYERS]
    rng = np.random.default_rng(0)
    rows = []
    try:
        for threads in threads_list:
            set_threads(threads)
            for name, cin, cout, hw in layers:
                x, W, b, dy, refs = layer_data(rng, cin, cout, hw)
                natverk._core.set_conv_algo("auto")
                row = {"layer": name, "threads": threads, "auto": natverk._core.conv2d_algorithm(x, W, padding=(1, 1))}
                for algo in ALGOS:
                    natverk._core.set_conv_algo(algo)
                    fns = _natverk_fns(x, W, b, dy, 1)
                    for op in ("fwd", "bwd_input", "bwd_weight"):
                        _check(f"natverk {algo} conv {name} {op}", fns[op](), refs[op])
                        row[f"{algo}:{op}"] = measure(fns[op], repeats, warmup, min_time)["median_s"]
                rows.append(row)
                log("  " + " | ".join(algos_row(row)))
    finally:
        natverk._core.set_conv_algo("auto")
    return rows


def algos_row(row: dict) -> list[str]:
    cells = [row["layer"], str(row["threads"]), row["auto"]]
    totals = {}
    for algo in ALGOS:
        parts = [1e3 * row[f"{algo}:{op}"] for op in ("fwd", "bwd_input", "bwd_weight")]
        totals[algo] = sum(parts)
        cells.append(" / ".join(fmt(p, 1) for p in parts) + f" = {fmt(totals[algo], 1)}")
    cells.append(min(totals, key=totals.get))
    return cells


ALGO_HEADERS = ["layer (batch 64, 3x3, pad 1)", "threads", "auto picks",
                *[f"{a} fwd / bwd_in / bwd_w = sum (ms)" for a in ALGOS], "fastest"]


def algos_table(rows: list[dict]) -> str:
    return md_table(ALGO_HEADERS, [algos_row(r) for r in rows], right={1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--algos", action="store_true", help="also time every algorithm forced (natverk only)")
    args = parser.parse_args()
    print(_env.describe())
    threads = [int(t) for t in args.threads.split(",")]
    rows = run(threads, args.quick)
    print()
    print(table(rows))
    if args.algos:
        arows = run_algos(threads, args.quick)
        print()
        print(algos_table(arows))


if __name__ == "__main__":
    main()
