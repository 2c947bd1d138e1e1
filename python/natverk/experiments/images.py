"""Thesis Table 4: test accuracy of a fully connected network and a CNN, each without
regularisation, with L2 and with dropout, on MNIST, Fashion-MNIST and CIFAR-10.

The thesis trained `N-500-100-50-25-10` (MNIST, Fashion) and `3072-5000-1000-500-75-10`
(CIFAR-10) fully connected networks and an ImageNet-pretrained VGG16 with PyTorch. No
pretrained weights exist here, so the CNN is ours, trained from scratch on natverk's kernels:
three conv3x3-BN-ReLU-maxpool blocks (32, 64, 128 channels) and a 128-unit dense head.

What the columns mean, for both networks:
- none: no L2 and no dropout;
- L2: the thesis' L2 (``lambda W`` added to every weight gradient, optimizer ``weight_decay``);
- dropout: inverted dropout after every hidden dense layer (FC) / before the dense head (CNN).
Everything else is the same recipe in all three columns: Adam, cosine learning-rate decay,
batch 64 (thesis), the thesis' validation split (50000/10000; CIFAR 40000/10000), the epoch
with the best validation accuracy kept (early stopping's restore-best), and for the CNN batch
norm and light data augmentation (random crop; horizontal flip for Fashion/CIFAR).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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


FULL_RECIPES = {
    "FC": Recipe(epochs=20, learning_rate=1e-3, weight_decay=1e-4, dropout=0.2),
    "CNN": Recipe(epochs=8, learning_rate=2e-3, weight_decay=5e-4, dropout=0.4),
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
                widths=(32, 64, 128), head: int = 128) -> Sequential:
    """Our CNN: ``[conv3x3-BN-ReLU-maxpool2] x 3`` then ``dense(head)-ReLU-[dropout]-dense``."""
    layers: list = []
    c, s = in_channels, size
    for i, w in enumerate(widths):
        layers += [Conv2D(c, w, 3, padding=1, bias=False, seed=seed + i), BatchNorm2D(w), ReLU(), MaxPool2D(2)]
        c, s = w, s // 2
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
        model = cnn_network(C, H, 10, dropout, seed)
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
        "epochs": recipe.epochs, "best_epoch": best + 1,
        "train_accuracy": float(history["accuracy"][best]),
        "val_accuracy": float(history["val_accuracy"][best]),
        "test_accuracy": float(test_acc),
        "thesis_test_accuracy": THESIS_TABLE4[dataset][network][VARIANTS.index(variant)],
        "seconds": seconds,
    }


def table4(out, quick: bool = False, epochs: int | None = None, seeds=(0,), jobs: int = 1,
           datasets=("mnist", "fashion-mnist", "cifar-10"), networks=("FC", "CNN"), verbose: int = 0,
           root=None) -> dict:
    """Reproduce Table 4. ``epochs`` overrides both recipes' epoch counts."""
    report = Report("table4", "Table 4: test accuracy on image data, FC | CNN, by regularisation",
                    out, quick, seeds)
    recipes = dict(QUICK_RECIPES if quick else FULL_RECIPES)
    if epochs is not None:
        recipes = {k: Recipe(epochs, r.learning_rate, r.weight_decay, r.dropout, r.batch_size)
                   for k, r in recipes.items()}
    report.add(__doc__.split("\n\n", 1)[1].strip())
    report.add("Recipes: " + "; ".join(
        f"{k}: {r.epochs} epochs, Adam lr {r.learning_rate:g} (cosine), batch {r.batch_size}, "
        f"L2 lambda {r.weight_decay:g}, dropout p {r.dropout:g}" for k, r in recipes.items()))
    results: list[dict] = []
    missing: list[str] = []
    start = time.perf_counter()

    def summarise(final: bool) -> None:
        """(Re)build the summary table; called after every cell, so an interrupted run still
        leaves the cells it finished in ``table4.md``."""
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
        report.add_table(header, rows, caption="Test accuracy (the epoch with the best validation accuracy):")
        if missing:
            report.add("Datasets not available on this machine:\n" + "\n".join(missing))
        if not final:
            report.add("*(run in progress: cells still missing)*")
        report.csv_rows = list(results)
        report.write(time.perf_counter() - start, echo=final)

    n_fixed = len(report.sections)
    for dataset in datasets:
        data, why = load_dataset(dataset, seed=0, quick=quick, root=root)
        if data is None:
            missing.append(f"- {DATASET_TITLES[dataset]}: not run ({why})")
            continue
        data = normalise(data, dataset)
        for network in networks:
            for variant in VARIANTS:
                for seed in seeds:
                    row = train_cell(data, dataset, network, variant, recipes[network], seed, verbose)
                    results.append(row)
                    print(f"[table4] {dataset} {network} {variant} seed {seed}: test "
                          f"{row['test_accuracy']:.4f} (thesis {row['thesis_test_accuracy']}), "
                          f"best epoch {row['best_epoch']}, {row['seconds']:.0f} s", flush=True)
                    summarise(final=False)
    summarise(final=True)
    return {"report": report, "rows": results}
