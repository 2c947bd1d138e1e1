"""Choosing the Fashion-MNIST recipes of Table 4: a recipe search run with PyTorch on a GPU,
ranked on validation accuracy alone.

Table 4's Fashion-MNIST cells take hours per recipe on the 2-core CPU, so the recipes were
chosen on a GPU first: this script trains PyTorch twins of natverk's Table 4 networks with the
same training (Kaiming-normal init, Adam with beta2 0.99 and coupled L2 ``weight_decay``, cosine
decay per epoch, batch 64, zero-padded random crop and flip on standardised data, the thesis'
50000/10000 training/validation split), many runs at once in worker processes sharing one GPU.
Each run records ``val``, the validation accuracy of its best-validation epoch.

Selection is on validation only: ``--rank`` ranks the recipes of a record by validation
accuracy and names the pick per network with the rule of ``natverk.experiments.recipe_search``
(mean over the none / L2 / dropout columns of the seed-averaged validation accuracy, among the
recipes that ran all three). The search never loads the test set; the chosen recipe's test
accuracy is computed once, by natverk, in ``python -m natverk reproduce table4``. (The runs of
the committed record, made before this rule, also evaluated the test set at every epoch; their
``test`` fields are kept in the record and never read by the ranking.)

The three rounds it ran are ``stages()``; the record is ``results/thesis/recipe_search/``
(README.md summarises runs.jsonl).

Usage::

    python benchmarks/thesis_recipe_search.py --data ../shared/data/fashion-mnist --stage 1  # CUDA + PyTorch
    python benchmarks/thesis_recipe_search.py --rank  # the ranking of the committed record (no PyTorch)
"""
import argparse
import gzip
import json
import math
import os
import queue
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env  # noqa: E402, F401  (first, before NumPy: removes OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; see _env.py)
import numpy as np  # noqa: E402

try:
    import torch  # noqa: E402
    import torch.multiprocessing as mp  # noqa: E402
    import torch.nn as nn  # noqa: E402
except ImportError:  # --rank needs only the record
    torch = mp = nn = None

VARIANTS = ("none", "L2", "dropout")
RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "thesis", "recipe_search", "runs.jsonl")



def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(folder):
    """The training and validation sets (the thesis' 50000/10000 split); the test set is not read."""
    Xtr = idx(f"{folder}/train-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255
    ytr = idx(f"{folder}/train-labels-idx1-ubyte.gz").astype(np.int64)
    perm = np.random.default_rng(0).permutation(60000)
    tr, va = perm[:50000], perm[50000:]
    Xt, Xv = Xtr[tr], Xtr[va]
    m, s = Xt.mean(), Xt.std()
    f = lambda a: (a - m) / s
    return f(Xt), ytr[tr], f(Xv), ytr[va]


def init(model):
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)


def cnn(widths, convs, head, dropout, drop_where):
    layers, c, s = [], 1, 28
    for w in widths:
        for _ in range(convs):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        layers.append(nn.MaxPool2d(2))
        s //= 2
    layers += [nn.Flatten()]
    if dropout and drop_where == "both":
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(c * s * s, head), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(head, 10))
    return nn.Sequential(*layers)


def fc(dropout, in_drop=0.0):
    widths = [784, 500, 100, 50, 25]
    layers = [nn.Flatten()]
    if in_drop:
        layers.append(nn.Dropout(in_drop))
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(25, 10))
    return nn.Sequential(*layers)


def augment(x, g, flip, pad):
    n = x.shape[0]
    if flip:
        m = torch.rand(n, device=x.device, generator=g) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(3), x)
    if pad:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=g)
        ox = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=g)
        ar = torch.arange(28, device=x.device)
        iy = (oy[:, None] + ar)[:, :, None]
        ix = (ox[:, None] + ar)[:, None, :]
        b = torch.arange(n, device=x.device)[:, None, None]
        x = xp[b, 0, iy, ix][:, None]
    return x


def run(cfg, data):
    torch.manual_seed(cfg["seed"])
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    Xt, yt, Xv, yv = data  # no test set: recipes are compared on validation only
    if cfg["net"] == "FC":
        model = fc(cfg["dropout"], cfg["in_drop"] if cfg["variant"] == "dropout" else 0.0)
    else:
        model = cnn(cfg["widths"], cfg["convs"], cfg["head"], cfg["dropout"], cfg.get("drop_where", "head"))
    init(model)
    model = model.to(dev)
    if cfg["net"] == "CNN":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.99), eps=1e-8, weight_decay=cfg["wd"])
    E = cfg["epochs"]
    g = torch.Generator(device=dev)
    g.manual_seed(cfg["seed"])
    best = (-1, 0)
    hist = []
    t0 = time.time()
    for e in range(E):
        for pg in opt.param_groups:
            pg["lr"] = cfg["lr"] * 0.5 * (1 + math.cos(math.pi * e / E))
        model.train()
        perm = torch.randperm(Xt.shape[0], device=dev, generator=g)
        B = cfg["batch"]
        for i in range(0, Xt.shape[0], B):
            j = perm[i:i + B]
            x = augment(Xt[j], g, cfg["flip"], cfg["pad"])
            loss = nn.functional.cross_entropy(model(x), yt[j])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            va = sum((model(Xv[i:i + 1000]).argmax(1) == yv[i:i + 1000]).sum().item() for i in range(0, 10000, 1000)) / 10000
        hist.append(va)
        if va > best[0]:
            best = (va, e + 1)
    return {**cfg, "val": best[0], "best_epoch": best[1], "last_val": hist[-1], "seconds": time.time() - t0}


def worker(folder, q_in, q_out):
    torch.backends.cudnn.benchmark = True
    d = load(folder)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    data = [torch.from_numpy(a).to(dev) for a in d]
    while True:
        cfg = q_in.get()
        if cfg is None:
            return
        try:
            q_out.put(run(cfg, data))
        except Exception as err:  # noqa
            q_out.put({**cfg, "error": repr(err)})


def _cnn(plan, tag, epochs, seeds=(0, 1), variants=VARIANTS, widths=(32, 64, 128), convs=1, head=128,
         lr=2e-3, wd=5e-4, p=0.4, drop_where="head"):
    for s in seeds:
        for v in variants:
            plan.append(dict(tag=tag, net="CNN", variant=v, seed=s, epochs=epochs, widths=list(widths), convs=convs,
                             head=head, lr=lr, wd=wd if v == "L2" else 0.0, dropout=p if v == "dropout" else 0.0,
                             drop_where=drop_where, batch=64, flip=True, pad=2))


def _fc(plan, tag, epochs, seeds=(0, 1), variants=VARIANTS, lr=1e-3, wd=1e-4, p=0.2, in_drop=0.0, flip=False, pad=0):
    for s in seeds:
        for v in variants:
            plan.append(dict(tag=tag, net="FC", variant=v, seed=s, epochs=epochs, lr=lr, wd=wd if v == "L2" else 0.0,
                             dropout=p if v == "dropout" else 0.0, in_drop=in_drop, batch=64, flip=flip, pad=pad))


def stages():
    """The three rounds run for the committed record, in their order (each ran until its deadline)."""
    one, two, three = [], [], []
    _cnn(one, "B20", 20); _fc(one, "F40flip", 40, flip=True); _cnn(one, "B30", 30); _fc(one, "F40", 40)
    _cnn(one, "A8", 8, seeds=(0,)); _fc(one, "F20", 20, seeds=(0,)); _cnn(one, "B15", 15)
    _cnn(one, "B20wd1e-4p.25", 20, wd=1e-4, p=0.25, variants=("L2", "dropout"))
    _cnn(one, "B20wd1e-3both", 20, wd=1e-3, p=0.3, drop_where="both", variants=("L2", "dropout"))
    _fc(one, "F60flip", 60, flip=True); _fc(one, "F40flip_wd3e-4_p.1", 40, wd=3e-4, p=0.1, flip=True, variants=("L2", "dropout"))
    _fc(one, "F40flippad1", 40, flip=True, pad=1); _cnn(one, "W20", 20, widths=(48, 96, 192), head=192)
    _cnn(one, "D15", 15, convs=2); _fc(one, "F40flip_lr5e-4", 40, lr=5e-4, flip=True)
    _cnn(two, "D15", 15, convs=2); _fc(two, "F40flippad1", 40, flip=True, pad=1, seeds=(1,))
    _cnn(two, "W20", 20, widths=(48, 96, 192), head=192); _fc(two, "F40p.1", 40, p=0.1, wd=3e-5, variants=("L2", "dropout"))
    _cnn(two, "D12", 12, convs=2, seeds=(0,)); _cnn(two, "D15wd1e-4p.25", 15, convs=2, wd=1e-4, p=0.25, variants=("L2", "dropout"))
    _fc(two, "F40lr2e-3", 40, lr=2e-3, seeds=(0,)); _cnn(two, "D15lr3e-3", 15, convs=2, lr=3e-3, seeds=(0,))
    _fc(two, "F40lr5e-4", 40, lr=5e-4, seeds=(0,)); _cnn(two, "W15", 15, widths=(48, 96, 192), head=192, seeds=(0,))
    for tag, p, i in (("F40in.2", 0.2, 0.2), ("F40in.1p.1", 0.1, 0.1), ("F40in.2p.1", 0.1, 0.2)):
        _fc(three, tag, 40, p=p, in_drop=i, variants=("dropout",))
    _cnn(three, "D15", 15, convs=2, seeds=(2,)); _fc(three, "F60", 60, variants=("none", "dropout"))
    _fc(three, "F40wd3e-4", 40, wd=3e-4, variants=("L2",)); _fc(three, "F40wd3e-5", 40, wd=3e-5, variants=("L2",))
    _fc(three, "F30", 30)
    return {1: one, 2: two, 3: three}


def rank_record(path):
    """The ranking of a record by validation accuracy (Markdown), the picks, and the picks' test
    accuracies as the record has them (reported after the choice, never used for it)."""
    from natverk.experiments import recipe_search

    runs = recipe_search.load_runs(path)
    chosen = recipe_search.choose(runs)
    lines = [recipe_search.ranking_markdown(runs), "",
             "Pick (highest validation score among the recipes that ran all three columns): "
             + "; ".join(f"{net} {e['tag']} (score {e['score']:.5f})" for net, e in sorted(chosen.items())), "",
             "Test accuracy of the picks in the record (reported, not used to choose):", "",
             recipe_search.reported_test_accuracy(runs, chosen)]
    return "\n".join(lines), chosen


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder with the Fashion-MNIST training .gz files (the test files are not read)")
    parser.add_argument("--stage", type=int, choices=(1, 2, 3))
    parser.add_argument("--procs", type=int, default=12, help="worker processes sharing the GPU")
    parser.add_argument("--deadline", type=float, default=540, help="seconds; later runs are dropped")
    parser.add_argument("--out", default=".", help="folder for results.jsonl")
    parser.add_argument("--rank", action="store_true",
                        help="print the ranking of --runs by validation accuracy and the pick; trains nothing")
    parser.add_argument("--runs", default=RECORD, help="record to rank (default: the committed runs.jsonl)")
    args = parser.parse_args()
    if args.rank:
        print(rank_record(args.runs)[0])
        return
    if args.data is None or args.stage is None:
        parser.error("a search needs --data and --stage (or pass --rank)")
    if torch is None:
        parser.error("the search needs PyTorch (only --rank runs without it)")
    plan = stages()[args.stage]
    deadline = time.time() + args.deadline
    ctx = mp.get_context("spawn")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    for cfg in plan:
        q_in.put(cfg)
    for _ in range(args.procs):
        q_in.put(None)
    procs = [ctx.Process(target=worker, args=(args.data, q_in, q_out)) for _ in range(args.procs)]
    for p in procs:
        p.start()
    done = 0
    with open(os.path.join(args.out, "results.jsonl"), "a") as f:
        while done < len(plan) and time.time() < deadline:
            try:
                r = q_out.get(timeout=5)
            except queue.Empty:
                continue
            done += 1
            f.write(json.dumps(r) + "\n")
            f.flush()
            print(json.dumps({k: r.get(k) for k in ("tag", "variant", "seed", "val", "best_epoch", "seconds", "error")}), flush=True)
    for p in procs:
        p.terminate()


if __name__ == "__main__":
    main()
