"""Thesis Table 4: test accuracy of a fully connected network and a CNN, each without
regularisation, with L2 and with dropout, on MNIST, Fashion-MNIST and CIFAR-10.

The thesis trained `N-500-100-50-25-10` (MNIST, Fashion) and `3072-5000-1000-500-75-10`
(CIFAR-10) fully connected networks and an ImageNet-pretrained VGG16 with PyTorch. No
pretrained weights exist here, so the CNN is ours, trained from scratch on natverk's kernels:
three blocks of conv3x3-BN-ReLU (once for MNIST, twice for Fashion-MNIST and CIFAR-10) and a
2x2 max-pool (32, 64, 128 channels), then a 128-unit dense head.

What the columns mean, for both networks:
- none: no L2 and no dropout;
- L2: the thesis' L2 (``lambda W`` added to every weight gradient, optimizer ``weight_decay``);
- dropout: inverted dropout after every hidden dense layer (FC) / before the dense head (CNN).
Everything else is the same recipe in all three columns: Adam, cosine learning-rate decay,
batch 64 (thesis), the thesis' validation split (50000/10000; CIFAR 40000/10000), the epoch
with the best validation accuracy kept (early stopping's restore-best), and for the CNN batch
norm and light data augmentation (random crop; horizontal flip for Fashion/CIFAR).
The recipes differ by dataset only in length and depth (see ``FULL_RECIPES``): the MNIST ones
meet the thesis in 20 (FC) and 8 (CNN) epochs; Fashion-MNIST needs 40 FC epochs and the
two-conv blocks for 15 epochs (chosen by ``benchmarks/thesis_recipe_search.py``; its record
is in ``benchmarks/results/thesis/recipe_search/``).

A run reuses the cells that ``out/table4.csv`` already holds for the same recipe, mode and seed
(``resume=False``, or ``--fresh`` on the command line, retrains them all), so the table can be
completed or extended one dataset at a time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..augmentation import Compose, RandomCrop, RandomHorizontalFlip
from ..callbacks import EarlyStopping
from ..layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from ..models import Sequential
from ..optimizers import Adam
from ..schedules import CosineDecay
from ..utils.normalization import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD, normalize_channels
from ._report import Report, fmt

# Thesis Table 4 (test accuracy): dataset -> network -> (none, L2, dropout)
THESIS_TABLE4 = {
    "mnist": {"FC": (0.978, 0.9826, 0.9827), "CNN": (0.994, 0.995, 0.995)},
    "fashion-mnist": {"FC": (0.8968, 0.9007, 0.9029), "CNN": (0.930, 0.935, 0.934)},
    "cifar-10": {"FC": (0.5315, 0.5462, 0.5747), "CNN": (0.9201, 0.921, 0.927)},
}
VARIANTS = ("none", "L2", "dropout")
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar-10": "CIFAR-10"}


@dataclass
class Recipe:
    """The training settings of one network kind (see the module docstring)."""

    epochs: int
    learning_rate: float
    weight_decay: float
    dropout: float
    batch_size: int = 64
    convs_per_block: int = 1  # CNN only: conv3x3-BN-ReLU units before each max-pool

    def fields(self) -> dict:
        """The settings as CSV columns (what a reused cell must match)."""
        return asdict(self)


_FC20 = Recipe(epochs=20, learning_rate=1e-3, weight_decay=1e-4, dropout=0.2)
_FC40 = Recipe(epochs=40, learning_rate=1e-3, weight_decay=1e-4, dropout=0.2)
_CNN8 = Recipe(epochs=8, learning_rate=2e-3, weight_decay=5e-4, dropout=0.4)
_CNN15_DEEP = Recipe(epochs=15, learning_rate=2e-3, weight_decay=5e-4, dropout=0.4, convs_per_block=2)
FULL_RECIPES = {  # dataset -> network -> recipe
    "mnist": {"FC": _FC20, "CNN": _CNN8},
    "fashion-mnist": {"FC": _FC40, "CNN": _CNN15_DEEP},
    "cifar-10": {"FC": _FC20, "CNN": _CNN15_DEEP},
}
QUICK_RECIPES = {
    "FC": Recipe(epochs=2, learning_rate=1e-3, weight_decay=1e-4, dropout=0.2),
    "CNN": Recipe(epochs=1, learning_rate=2e-3, weight_decay=5e-4, dropout=0.4),
}
QUICK_SIZES = (2000, 500, 1000)  # train, validation, test examples in --quick mode


def fc_network(n_inputs: int, hidden, n_classes: int, dropout: float, seed: int) -> Sequential:
    """``N-h1-...-C`` with ReLU, as the thesis' FC nets; dropout after every hidden layer."""
    layers: list = [Flatten()]
    widths = [n_inputs, *hidden]
    for i in range(len(hidden)):
        layers += [Dense(widths[i], widths[i + 1], seed=seed + i), ReLU()]
        if dropout > 0:
            layers.append(Dropout(dropout, seed=seed + 100 + i))
    layers.append(Dense(widths[-1], n_classes, seed=seed + len(hidden)))
    return Sequential(*layers)


def cnn_network(in_channels: int, size: int, n_classes: int, dropout: float, seed: int,
                widths=(32, 64, 128), head: int = 128, convs_per_block: int = 1) -> Sequential:
    """Our CNN: ``[[conv3x3-BN-ReLU] x convs_per_block, maxpool2] x 3`` then
    ``dense(head)-ReLU-[dropout]-dense``."""
    layers: list = []
    c, s = in_channels, size
    k = 0  # conv counter: the seeds of a one-conv network are those it always had
    for w in widths:
        for _ in range(convs_per_block):
            layers += [Conv2D(c, w, 3, padding=1, bias=False, seed=seed + k), BatchNorm2D(w), ReLU()]
            c, k = w, k + 1
        layers.append(MaxPool2D(2))
        s //= 2
    layers += [Flatten(), Dense(c * s * s, head, seed=seed + 10), ReLU()]
    if dropout > 0:
        layers.append(Dropout(dropout, seed=seed + 100))
    layers.append(Dense(head, n_classes, seed=seed + 11))
    return Sequential(*layers)


def load_dataset(name: str, seed: int, quick: bool, root=None):
    """The thesis' split of ``name`` as float32 NCHW, or None (with the reason) when absent."""
    from .. import importdata

    loader = {"mnist": importdata.load_mnist, "fashion-mnist": importdata.load_fashion_mnist,
              "cifar-10": importdata.load_cifar10}[name]
    try:  # root is a base folder like $NATVERK_DATA, holding <name>/
        data = loader(None if root is None else Path(root) / name, validation=True, seed=seed)
    except FileNotFoundError as err:
        return None, " ".join(str(err).split())
    if quick:
        n_train, n_val, n_test = QUICK_SIZES
        data = (data[0][:n_train], data[1][:n_train], data[2][:n_val], data[3][:n_val],
                data[4][:n_test], data[5][:n_test])
    return data, None


def normalise(data, name: str):
    """Per-channel standardisation with the thesis' constants (computed ones for Fashion)."""
    if name == "mnist":
        mean, std = MNIST_MEAN, MNIST_STD
    elif name == "cifar-10":
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    else:  # Fashion-MNIST: the thesis gives no constants; the training set's own
        mean, std = float(data[0].mean()), float(data[0].std())
    return tuple(normalize_channels(a, mean, std) if i % 2 == 0 else a for i, a in enumerate(data))


def train_cell(data, dataset: str, network: str, variant: str, recipe: Recipe, seed: int,
               verbose: int = 0) -> dict:
    """Train one Table 4 cell; returns its accuracies, best epoch and time."""
    X_tr, y_tr, X_val, y_val, X_te, y_te = data
    C, H = X_tr.shape[1], X_tr.shape[2]
    dropout = recipe.dropout if variant == "dropout" else 0.0
    weight_decay = recipe.weight_decay if variant == "L2" else 0.0
    if network == "FC":
        hidden = (5000, 1000, 500, 75) if dataset == "cifar-10" else (500, 100, 50, 25)
        model = fc_network(C * H * H, hidden, 10, dropout, seed)
        augment = None
    else:
        model = cnn_network(C, H, 10, dropout, seed, convs_per_block=recipe.convs_per_block)
        pad = 4 if H == 32 else 2
        steps = [RandomCrop(H, padding=pad)]
        if dataset != "mnist":  # a mirrored digit is another digit; mirrored clothes are clothes
            steps.insert(0, RandomHorizontalFlip())
        augment = Compose(steps)
    stopper = EarlyStopping(monitor="val_accuracy", patience=recipe.epochs, restore_best=True)
    start = time.perf_counter()
    history = model.fit(
        X_tr, y_tr, epochs=recipe.epochs, batch_size=recipe.batch_size,
        optimizer=Adam(recipe.learning_rate, weight_decay=weight_decay),
        validation_data=(X_val, y_val), seed=seed, verbose=verbose,
        lr_schedule=CosineDecay(recipe.learning_rate, recipe.epochs), augment=augment,
        callbacks=[stopper],
    )
    seconds = time.perf_counter() - start
    _, test_acc = model.evaluate(X_te, y_te)
    best = int(np.argmax(history["val_accuracy"]))
    return {
        "dataset": dataset, "network": network, "variant": variant, "seed": seed,
        **recipe.fields(), "best_epoch": best + 1,
        "train_accuracy": float(history["accuracy"][best]),
        "val_accuracy": float(history["val_accuracy"][best]),
        "test_accuracy": float(test_acc),
        "thesis_test_accuracy": THESIS_TABLE4[dataset][network][VARIANTS.index(variant)],
        "seconds": seconds,
    }


def _recipe_text(recipes: dict) -> str:
    lines = []
    for dataset, by_network in recipes.items():
        parts = []
        for k, r in by_network.items():
            deep = f", {r.convs_per_block} convs per block" if k == "CNN" else ""
            parts.append(f"{k}: {r.epochs} epochs{deep}, Adam lr {r.learning_rate:g} (cosine), batch "
                         f"{r.batch_size}, L2 lambda {r.weight_decay:g}, dropout p {r.dropout:g}")
        lines.append(f"- {DATASET_TITLES[dataset]}: " + "; ".join(parts))
    return "Recipes:\n" + "\n".join(lines)


def _earlier_rows(path: Path) -> list[dict]:
    """The rows of an earlier ``table4.csv`` with their types restored ([] if none or unreadable)."""
    import csv

    if not path.is_file():
        return []
    ints = ("seed", "epochs", "best_epoch", "batch_size", "convs_per_block")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = []
            for raw in csv.DictReader(f):
                row: dict = dict(raw)
                for k, v in raw.items():
                    if k in ints:
                        row[k] = int(v)
                    elif k not in ("dataset", "network", "variant", "quick"):
                        row[k] = float(v)
                row["quick"] = raw.get("quick") == "True"
                rows.append(row)
            return rows
    except (OSError, ValueError, TypeError, KeyError) as err:
        print(f"[table4] not reusing {path}: {err}", flush=True)
        return []


def table4(out, quick: bool = False, epochs: int | None = None, seeds=(0,), jobs: int = 1,
           datasets=("mnist", "fashion-mnist", "cifar-10"), networks=("FC", "CNN"), verbose: int = 0,
           root=None, resume: bool = True) -> dict:
    """Reproduce Table 4. ``epochs`` overrides every recipe's epoch count. With ``resume``,
    cells already in ``out/table4.csv`` with the same recipe, mode and seed are reused."""
    report = Report("table4", "Table 4: test accuracy on image data, FC | CNN, by regularisation",
                    out, quick, seeds)
    if quick:
        recipes = {d: dict(QUICK_RECIPES) for d in FULL_RECIPES}
    else:
        recipes = {d: dict(r) for d, r in FULL_RECIPES.items()}
    if epochs is not None:
        recipes = {d: {k: replace(r, epochs=epochs) for k, r in by_network.items()}
                   for d, by_network in recipes.items()}
    report.add(__doc__.split("\n\n", 1)[1].strip())
    report.add(_recipe_text({d: recipes[d] for d in datasets}))
    earlier = _earlier_rows(Path(out) / "table4.csv") if resume else []
    results: list[dict] = []
    reused: list[str] = []
    missing: list[str] = []
    start = time.perf_counter()

    def summarise(final: bool) -> None:
        """(Re)build the summary table; called after every cell, so an interrupted run still
        leaves the cells it finished in ``table4.md`` and ``table4.csv``."""
        del report.sections[n_fixed:]
        header = (["dataset", "network"] + [f"{v}: ours" for v in VARIANTS]
                  + [f"{v}: thesis" for v in VARIANTS] + ["time (s)"])
        rows = []
        for dataset in datasets:
            for network in networks:
                cell = [r for r in results if r["dataset"] == dataset and r["network"] == network]
                if not cell:
                    continue
                ours = []
                for v in VARIANTS:
                    accs = [r["test_accuracy"] for r in cell if r["variant"] == v]
                    ours.append("-" if not accs else f"{np.mean(accs):.4f}"
                                + (f" ± {np.std(accs, ddof=1):.4f}" if len(accs) > 1 else ""))
                rows.append([DATASET_TITLES[dataset], network, *ours,
                             *(fmt(t) for t in THESIS_TABLE4[dataset][network]),
                             f"{sum(r['seconds'] for r in cell):.0f}"])
        report.add_table(header, rows, caption="Test accuracy (the epoch with the best validation accuracy); "
                                               "time is the training time of the row's cells:")
        if reused:
            report.add("Cells reused from an earlier run into this folder (same recipe, mode and seed; "
                       "their time is that run's): " + ", ".join(reused))
        if missing:
            report.add("Datasets not available on this machine:\n" + "\n".join(missing))
        if not final:
            report.add("*(run in progress: cells still missing)*")
        report.csv_rows = list(results)
        report.write(time.perf_counter() - start, echo=False)  # reproduce() prints the final one

    n_fixed = len(report.sections)
    for dataset in datasets:
        data, why = load_dataset(dataset, seed=0, quick=quick, root=root)
        if data is None:
            missing.append(f"- {DATASET_TITLES[dataset]}: not run ({why})")
            continue
        data = normalise(data, dataset)
        for network in networks:
            recipe = recipes[dataset][network]
            for variant in VARIANTS:
                for seed in seeds:
                    key = {"dataset": dataset, "network": network, "variant": variant, "seed": seed,
                           "quick": quick, **recipe.fields()}
                    done = [r for r in earlier if all(r.get(k) == v for k, v in key.items())]
                    if done:
                        results.append(done[-1])
                        reused.append(f"{DATASET_TITLES[dataset]} {network} {variant} (seed {seed})")
                        continue
                    row = {**train_cell(data, dataset, network, variant, recipe, seed, verbose), "quick": quick}
                    results.append(row)
                    print(f"[table4] {dataset} {network} {variant} seed {seed}: test "
                          f"{row['test_accuracy']:.4f} (thesis {row['thesis_test_accuracy']}), "
                          f"best epoch {row['best_epoch']}, {row['seconds']:.0f} s", flush=True)
                    summarise(final=False)
    summarise(final=True)
    return {"report": report, "rows": results}
