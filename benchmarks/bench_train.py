"""Training throughput (samples/s) and inference throughput: natverk (functional
MATLAB-style API, ``natverk.train``, ``Sequential`` step loop, ``Sequential.fit``)
vs PyTorch (NCHW and channels_last) vs a textbook NumPy MLP (the MLPs (a),
(b), (c)), float32.

Usage: python benchmarks/bench_train.py [--quick] [--threads 1,2] [--only a,b,c,d,e]
(``benchmarks/run.py`` runs this as its ``train`` and ``infer`` sections.)

One training step = forward + loss + backward + optimizer update on one
minibatch held in memory (random synthetic data, random labels). Each
measurement runs a fixed number of steps; warm-up measurements are discarded;
samples/s is computed from the median (and, in the JSON, the min) time.
Before anything is timed, every implementation is started from the same
weights and must give the same loss before and after one step as PyTorch (or,
without PyTorch, as natverk's Sequential); ``fit`` (without shuffling) must
give bit-identical weights to the manual step loop, and ``natverk.train`` to
the functional loop over the same minibatches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402, F401  (first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)
import numpy as np  # noqa: E402

import natverk as nv  # noqa: E402
from _common import check_close, fmt, get_torch, md_table, set_threads, to_numpy  # noqa: E402
from _timing import measure_interleaved  # noqa: E402
from natverk.layers import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU  # noqa: E402
from _models import MODELS, build_torch, torch_optimizer, torch_stepper  # noqa: E402
from numpy_mlp import NumpyMLP  # noqa: E402


# Steps per measurement and repeats (warm-up: one measurement, discarded).
STEPS = {"quick": {"a": 10, "b": 3, "c": 10, "d": 4, "e": 1}, "full": {"a": 200, "b": 12, "c": 200, "d": 40, "e": 4}}
REPEATS = {"quick": {"a": 3, "b": 3, "c": 3, "d": 3, "e": 2}, "full": {k: 5 for k in "abcde"}}
# Quick runs time fit() and natverk.train() only where a step is cheap.
QUICK_EPOCH_APIS = {"a", "c", "d"}
# Inference: the smallest input Sequential.predict runs through the step plan
# (natverk.models._plan.EVAL_MIN_ROWS; below it, the layer loop)
INFER_BATCH = 1024
LOSS_TOL = 1e-4  # relative, on the loss before and after one step

TRAIN_IMPLS = ["nv_functional", "nv_train", "nv_sequential", "nv_fit", "numpy", "torch", "torch_cl"]
TRAIN_LABELS = ["nv functional", "nv train()", "nv Sequential", "nv fit()", "numpy", "torch NCHW", "torch CL"]


# ---------------------------------------------------------------- model builders


def build_natverk(cfg, seed: int = 0) -> nv.Sequential:
    layers = []
    for i, item in enumerate(cfg["spec"]):
        kind = item[0]
        if kind == "dense":
            layers.append(Dense(item[1], item[2], seed=seed + i))
        elif kind == "conv":
            layers.append(Conv2D(item[1], item[2], 3, padding=1, bias=item[3], seed=seed + i))
        elif kind == "bn":
            layers.append(BatchNorm2D(item[1]))
        elif kind == "relu":
            layers.append(ReLU())
        elif kind == "pool":
            layers.append(MaxPool2D(2))
        elif kind == "flatten":
            layers.append(Flatten())
    return nv.Sequential(*layers).astype(np.float32)


def functional_params(model: nv.Sequential, nodes) -> dict:
    """The MATLAB-style parameter dict holding ``model``'s Dense weights (copies)."""
    params = nv.initialize_weights(nodes, seed=0, dtype=np.float32)
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    for l, layer in enumerate(dense, start=1):
        params[f"W{l}"] = layer.W.copy()
        params[f"b{l}"] = layer.b.reshape(1, -1).copy()
    return params


def natverk_optimizer(cfg):
    if cfg["opt"] == "sgd":
        return nv.optimizers.SGD(cfg["lr"])
    if cfg["opt"] == "momentum":
        return nv.optimizers.Momentum(cfg["lr"], beta=0.9)
    return nv.optimizers.Adam(cfg["lr"], beta1=0.9, beta2=0.99, eps=1e-8)


# ---------------------------------------------------------------- one-step functions


def natverk_stepper(cfg, model, opt):
    loss_fn = nv.losses.CrossEntropy()

    def step(xb, yb):
        out = model.forward(xb, training=True)
        loss = loss_fn.forward(out, yb)
        model.backward(loss_fn.backward())
        opt.step(model.parameters())
        return loss

    return step


def functional_stepper(cfg, params):
    lr, t = cfg["lr"], [0]

    def step(xb, yb):
        _, loss, cache = nv.forward_propagation(xb, yb, params, 0.0, "relu")
        grads = nv.back_propagation(cache, yb, params, 0.0, "relu")
        if cfg["opt"] == "adam":
            t[0] += 1
            nv.gradient_descent_adam(grads, params, lr, 0.9, 0.99, t[0])
        else:
            nv.gradient_descent_vanilla(grads, params, lr)
        return loss

    return step


def make_impls(cfg, key: str, torch, with_epoch_apis: bool):
    """{impl: (step or epoch function, kind)}; kind "step" takes (xb, yb), "epoch" takes (X, y)."""
    impls = {}
    if cfg["mlp"]:
        params = functional_params(build_natverk(cfg), cfg["nodes"])
        impls["nv_functional"] = (functional_stepper(cfg, params), "step", "np")
        if with_epoch_apis:
            tparams = functional_params(build_natverk(cfg), cfg["nodes"])
            state = {"t": 0}

            def train_epoch(X, y, tparams=tparams, state=state):
                h = nv.train(tparams, X, y, epochs=1, learning_rate=cfg["lr"], minibatch_size=cfg["batch"],
                             optimizer="adam" if cfg["opt"] == "adam" else "vanilla", beta1=0.9, beta2=0.99,
                             seed=state["t"], verbose=0, adam_t=state["t"])
                state["t"] = h["adam_t"] if cfg["opt"] == "adam" else state["t"] + 1

            impls["nv_train"] = (train_epoch, "epoch", "np")
    model = build_natverk(cfg)
    impls["nv_sequential"] = (natverk_stepper(cfg, model, natverk_optimizer(cfg)), "step", "np")
    if with_epoch_apis:
        fmodel, fopt = build_natverk(cfg), natverk_optimizer(cfg)

        def fit_epoch(X, y, fmodel=fmodel, fopt=fopt):
            fmodel.fit(X, y, epochs=1, batch_size=cfg["batch"], optimizer=fopt, seed=0, verbose=0)

        impls["nv_fit"] = (fit_epoch, "epoch", "np")
    if cfg["mlp"]:  # the textbook NumPy MLP: every MLP, (b) included, so that "best other" covers NumPy
        impls["numpy"] = (NumpyMLP(functional_params(build_natverk(cfg), cfg["nodes"]), cfg["opt"], cfg["lr"]).train_step,
                          "step", "np")
    if torch is not None:
        for cl in ([False, True] if not cfg["mlp"] else [False]):
            net = build_torch(torch, cfg, build_natverk(cfg), channels_last=cl)
            impls["torch_cl" if cl else "torch"] = (torch_stepper(torch, net, torch_optimizer(torch, cfg, net)), "step",
                                                   "torch_cl" if cl else "torch")
    return impls


# ---------------------------------------------------------------- data


def synthetic(cfg, n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n,) + tuple(cfg["input"])).astype(np.float32)
    y = rng.integers(0, cfg["classes"], n).astype(np.int64)
    return X, y


def as_torch_data(torch, X, y, layout: str):
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)
    if layout == "torch_cl":
        tX = tX.contiguous(memory_format=torch.channels_last)
    return tX, ty


def flops_per_sample(cfg) -> float:
    """Useful training flops per example: forward, dW and dX (no dX for the first layer)."""
    shape = tuple(cfg["input"])
    total, first = 0.0, True
    for item in cfg["spec"]:
        if item[0] == "dense":
            f = 2.0 * item[1] * item[2]
        elif item[0] == "conv":
            c, h, w = shape
            shape = (item[2], h, w)
            f = 2.0 * item[2] * h * w * item[1] * 9
        elif item[0] == "pool":
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
            continue
        else:
            continue
        total += f * (2 if first else 3)
        first = False
    return total


def forward_flops_per_sample(cfg) -> float:
    shape, total = tuple(cfg["input"]), 0.0
    for item in cfg["spec"]:
        if item[0] == "dense":
            total += 2.0 * item[1] * item[2]
        elif item[0] == "conv":
            c, h, w = shape
            shape = (item[2], h, w)
            total += 2.0 * item[2] * h * w * item[1] * 9
        elif item[0] == "pool":
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
    return total


# ---------------------------------------------------------------- checks


def verify(cfg, key: str, torch, log=print) -> dict:
    """Same computation everywhere: losses of two steps from identical weights; fit == step loop;
    natverk.train == functional loop."""
    b = cfg["batch"]
    X, y = synthetic(cfg, 2 * b, seed=123)
    batches = [(X[:b], y[:b]), (X[b:], y[b:])]
    impls = make_impls(cfg, key, torch, with_epoch_apis=False)
    losses = {}
    for name, (fn, kind, layout) in impls.items():
        if layout == "np":
            losses[name] = [float(fn(xb, yb)) for xb, yb in batches]
        else:
            tX, ty = as_torch_data(torch, X, y, layout)
            losses[name] = [float(fn(tX[:b], ty[:b])), float(fn(tX[b:], ty[b:]))]
    ref_name = "torch" if "torch" in losses else "nv_sequential"
    ref = np.array(losses[ref_name])
    errors = {}
    for name, ls in losses.items():
        errors[name] = check_close(f"{cfg['title']}: {name} losses {ls} vs {ref_name} {ref.tolist()}",
                                   np.array(ls), ref, LOSS_TOL)
    out = {"reference": ref_name, "losses": losses, "loss_rel_error": errors}

    # fit without shuffling == the manual step loop, bit for bit.
    m1, m2 = build_natverk(cfg), build_natverk(cfg)
    step = natverk_stepper(cfg, m1, natverk_optimizer(cfg))
    for xb, yb in batches:
        step(xb, yb)
    m2.fit(X, y, epochs=1, batch_size=b, optimizer=natverk_optimizer(cfg), shuffle=False, verbose=0)
    diff = max(float(np.max(np.abs(p1 - p2))) for (_, p1, _), (_, p2, _) in zip(m1.parameters(), m2.parameters()))
    assert diff == 0.0, f"{cfg['title']}: fit differs from the step loop by {diff}"
    out["fit_vs_step_max_abs_diff"] = diff

    if cfg["mlp"]:
        # natverk.train(seed=s) == the functional loop over nv.minibatches(m, b, default_rng(s)).
        p1 = functional_params(build_natverk(cfg), cfg["nodes"])
        p2 = functional_params(build_natverk(cfg), cfg["nodes"])
        fstep = functional_stepper(cfg, p1)
        for idx in nv.minibatches(len(X), b, np.random.default_rng(7)):
            fstep(X[idx], y[idx])
        nv.train(p2, X, y, epochs=1, learning_rate=cfg["lr"], minibatch_size=b,
                 optimizer="adam" if cfg["opt"] == "adam" else "vanilla", beta1=0.9, beta2=0.99, seed=7, verbose=0)
        diff = max(float(np.max(np.abs(p1[k] - p2[k]))) for k in p1 if k[0] in "Wb")
        assert diff == 0.0, f"{cfg['title']}: natverk.train differs from the functional loop by {diff}"
        out["train_vs_functional_max_abs_diff"] = diff
    log(f"  check {key}: losses before/after one step agree with {ref_name} "
        f"(max rel. error {max(errors.values()):.1e}); fit == step loop"
        + ("; train() == functional loop" if cfg["mlp"] else ""))
    return out


# ---------------------------------------------------------------- training


def run_train(threads_list, quick: bool = False, peak: dict | None = None, models: str = "abcde", log=print):
    torch = get_torch()
    mode = "quick" if quick else "full"
    rows, checks = [], {}
    for key in models:
        cfg = MODELS[key]
        set_threads(threads_list[0])
        checks[key] = verify(cfg, key, torch, log)
        steps, repeats, b = STEPS[mode][key], REPEATS[mode][key], cfg["batch"]
        n = steps * b
        X, y = synthetic(cfg, n, seed=1)
        np_batches = [(X[i : i + b], y[i : i + b]) for i in range(0, n, b)]
        for threads in threads_list:
            t0 = time.perf_counter()
            set_threads(threads)
            impls = make_impls(cfg, key, torch, with_epoch_apis=not quick or key in QUICK_EPOCH_APIS)
            row = {"model": key, "title": cfg["title"], "batch": b, "threads": threads, "steps": steps,
                   "samples": n, "dtype": "float32", "flops_per_sample": flops_per_sample(cfg)}
            runs = {}
            for name, (fn, kind, layout) in impls.items():
                if layout == "np":
                    data, bl = (X, y), np_batches
                else:
                    tX, ty = as_torch_data(torch, X, y, layout)
                    data, bl = (tX, ty), [(tX[i : i + b], ty[i : i + b]) for i in range(0, n, b)]
                if kind == "epoch":
                    runs[name] = lambda fn=fn, data=data: fn(*data)  # noqa: E731
                else:
                    def run(fn=fn, bl=bl):
                        for xb, yb in bl:
                            fn(xb, yb)
                    runs[name] = run
            for name, res in measure_interleaved(runs, repeats, warmup=1, min_time=0.0).items():
                res["samples_per_s"] = n / res["median_s"]
                res["samples_per_s_best"] = n / res["min_s"]
                row[name] = res
            if peak and ("float32", threads) in peak:
                row["peak_gflops"] = peak[("float32", threads)]
            row["elapsed_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            log("  " + " | ".join(train_row(row)))
    return rows, checks


def _sps(row, impl):
    return row[impl]["samples_per_s"] if impl in row else None


def _cell(row, impl, torch_cols_na: bool):
    v = _sps(row, impl)
    if v is not None:
        return fmt(v, 0)
    if impl == "torch_cl" and MODELS[row["model"]]["mlp"]:
        return "-"
    if impl.startswith("torch") and torch_cols_na:
        return "n/a"
    return "-"


def _nv_best_other(row, nv_impls, other_impls):
    nvv = [v for v in (_sps(row, i) for i in nv_impls) if v is not None]
    oth = [v for v in (_sps(row, i) for i in other_impls) if v is not None]
    best = max(nvv) if nvv else None
    return best, (best / max(oth) if best is not None and oth else None)


def _throughput_row(row: dict, impls: list[str], n_natverk: int) -> list[str]:
    """A table row of samples/s; the first n_natverk of impls are natverk's."""
    torch_missing = get_torch() is None
    best, r = _nv_best_other(row, impls[:n_natverk], impls[n_natverk:])
    peak = row.get("peak_gflops")
    pct = None if peak is None or best is None else 100.0 * best * row["flops_per_sample"] / 1e9 / peak
    return ([row["title"], str(row["batch"]), str(row["threads"])]
            + [_cell(row, i, torch_missing) for i in impls]
            + [fmt(r, 2), fmt(pct, 0)])


def train_row(row: dict) -> list[str]:
    return _throughput_row(row, TRAIN_IMPLS, 4)


TRAIN_HEADERS = (["model", "batch", "threads"] + TRAIN_LABELS + ["best natverk / best other", "best natverk %peak"])


def train_table(rows) -> str:
    return md_table(TRAIN_HEADERS, [train_row(r) for r in rows])


# ---------------------------------------------------------------- inference

INFER_IMPLS = ["nv_functional", "nv_sequential", "nv_predict", "numpy", "torch", "torch_cl"]
INFER_LABELS = ["nv functional", "nv Sequential", "nv predict", "numpy", "torch NCHW", "torch CL"]


def run_infer(threads_list, quick: bool = False, peak: dict | None = None, models: str = "ade", log=print):
    torch = get_torch()
    repeats, warmup, min_time = (3, 1, 0.0) if quick else (7, 2, 0.05)
    rows = []
    for key in models:
        cfg = MODELS[key]
        X, _ = synthetic(cfg, INFER_BATCH, seed=2)
        model = build_natverk(cfg).eval()
        model.forward(X[:2], training=False)  # fixes the layers' dtype, as any use does; predict's plan needs it
        model.weights_ready = True  # predict refuses untrained weights; these are random on purpose (speed only)
        # the layer loop, and predict: the step plan in evaluation mode, 256 rows a call, with its fused epilogues
        impls = {"nv_sequential": (lambda model=model: model.forward(X, training=False), "logits"),
                 "nv_predict": (lambda model=model: model.predict_logits(X, batch_size=INFER_BATCH), "logits")}
        if cfg["mlp"]:
            params = functional_params(model, cfg["nodes"])
            impls["nv_functional"] = (lambda: nv.forward_propagation(X, None, params, 0.0, "relu")[0], "probs")
            mlp = NumpyMLP(params)
            impls["numpy"] = (lambda: mlp.logits(X), "logits")
        if torch is not None:
            for cl in ([False] if cfg["mlp"] else [False, True]):
                net = build_torch(torch, cfg, model, channels_last=cl).eval()
                tX = as_torch_data(torch, X, np.zeros(1, np.int64), "torch_cl" if cl else "torch")[0]

                def fwd(net=net, tX=tX):
                    with torch.inference_mode():
                        return net(tX)

                impls["torch_cl" if cl else "torch"] = (fwd, "logits")
        set_threads(threads_list[0])
        ref_logits = to_numpy(impls["torch"][0]()) if "torch" in impls else model.forward(X, training=False)
        z = ref_logits.astype(np.float64)
        ref_probs = np.exp(z - z.max(1, keepdims=True))
        ref_probs /= ref_probs.sum(1, keepdims=True)
        errors = {}
        for name, (fn, what) in impls.items():
            errors[name] = check_close(f"inference {key} {name}", to_numpy(fn()),
                                       ref_probs if what == "probs" else ref_logits, 1e-4)
        for threads in threads_list:
            set_threads(threads)
            row = {"model": key, "title": cfg["title"].split(",")[0], "batch": INFER_BATCH, "threads": threads,
                   "dtype": "float32", "flops_per_sample": forward_flops_per_sample(cfg), "error": errors}
            timed = measure_interleaved({name: fn for name, (fn, _) in impls.items()}, repeats, warmup, min_time)
            for name, res in timed.items():
                res["samples_per_s"] = INFER_BATCH / res["median_s"]
                res["samples_per_s_best"] = INFER_BATCH / res["min_s"]
                row[name] = res
            if peak and ("float32", threads) in peak:
                row["peak_gflops"] = peak[("float32", threads)]
            rows.append(row)
            log("  " + " | ".join(infer_row(row)))
    return rows


def infer_row(row: dict) -> list[str]:
    return _throughput_row(row, INFER_IMPLS, 3)


INFER_HEADERS = ["model", "batch", "threads"] + INFER_LABELS + ["best natverk / best other", "best natverk %peak"]


def infer_table(rows) -> str:
    return md_table(INFER_HEADERS, [infer_row(r) for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--only", default="abcde", help="models, e.g. 'ad' (default abcde)")
    parser.add_argument("--no-infer", action="store_true")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    models = args.only.replace(",", "")
    print(_env.describe())
    rows, _ = run_train(threads, args.quick, models=models)
    print()
    print(train_table(rows))
    if not args.no_infer:
        irows = run_infer(threads, args.quick, models="".join(k for k in "ade" if k in models))
        print()
        print(infer_table(irows))


if __name__ == "__main__":
    main()
