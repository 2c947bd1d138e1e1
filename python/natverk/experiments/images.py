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

Selection is on validation only. Within a cell the epoch is chosen on validation accuracy and
the test set is evaluated once, after training. The Fashion-MNIST recipes (``FULL_RECIPES``:
FC 40 epochs; CNN with two convs per block for 15 epochs) are the validation picks of the GPU
recipe search (``benchmarks/thesis_recipe_search.py --rank``; rule and record in
``benchmarks/results/thesis/recipe_search/``); CIFAR-10 borrows them. The MNIST recipes (FC 20
epochs, CNN one conv per block for 8 epochs) were set by hand before any Table 4 result was
committed (from 30 and 12 epochs, shortened for CPU time) and were not compared with others in a
recorded search: nothing records what that choice looked at.

Seeds: each cell is trained once per seed (weights, dropout masks, batch order and augmentation
draws; the data split is the thesis' fixed one). A cell shows the mean ± the sample standard
deviation (ddof=1) over its seeds beside the thesis' figure, and a verdict that says only what
the seeds support: "above" (mean at or above the thesis), "within 1 std" (below by at most one
std) or "below (k std)".

Reuse: a cell already in ``out/table4.csv`` is reused only when its recipe, mode, seed *and code*
match: the code is the last commit touching ``cpp/``, ``python/`` or ``pyproject.toml`` (plus a
hash of any uncommitted changes there), so that committing results does not invalidate them.
Cells from other code (or of unknown code, e.g. a pip-installed natverk) are reused only with
``reuse_any`` (``--reuse-any``) and the report names them. Earlier cells the table does not use
are set aside in ``table4.unused.csv``, where later runs still find them. ``datasets`` /
``networks`` (``--dataset`` / ``--network``) choose the cells to run; finished cells of the
others stay in the table under the same rule. ``resume=False`` (``--fresh``) retrains the chosen
cells.
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
from ._provenance import DATA_ROOT_TOKEN, UNKNOWN, data_root, same_code
from ._report import Report, fmt, mean_pm_std, seed_stats, verdict

# Thesis Table 4 (test accuracy): dataset -> network -> (none, L2, dropout)
THESIS_TABLE4 = {
    "mnist": {"FC": (0.978, 0.9826, 0.9827), "CNN": (0.994, 0.995, 0.995)},
    "fashion-mnist": {"FC": (0.8968, 0.9007, 0.9029), "CNN": (0.930, 0.935, 0.934)},
    "cifar-10": {"FC": (0.5315, 0.5462, 0.5747), "CNN": (0.9201, 0.921, 0.927)},
}
VARIANTS = ("none", "L2", "dropout")
DATASETS = tuple(THESIS_TABLE4)
NETWORKS = ("FC", "CNN")
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
        base = data_root(root)
        if base is None:
            return None, "no data root: pass --data-root (root=) or set $NATVERK_DATA"
        first = str(err).split(". ", 1)[0].strip()
        return None, (f"{first} under {DATA_ROOT_TOKEN}/{name}/; the data root is --data-root (root=), else "
                      f"$NATVERK_DATA; {loader.__name__} names the files it reads")
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


UNUSED_CSV = "table4.unused.csv"
_INT_COLUMNS = ("seed", "epochs", "best_epoch", "batch_size", "convs_per_block")
_FLOAT_COLUMNS = ("learning_rate", "weight_decay", "dropout", "train_accuracy", "val_accuracy", "test_accuracy",
                  "thesis_test_accuracy", "seconds")
# What a cell records about where it came from (the CSV provenance columns of _report); a row of
# an older table4.csv without them is of unknown code.
_PROVENANCE_COLUMNS = ("code", "git_commit", "git_dirty", "natverk_version", "simd", "threads", "numpy", "python",
                       "date", "command")


def _read_rows(path: Path) -> list[dict] | None:
    """The rows of a Table 4 CSV with their types restored: [] if there is none, None (with a
    message) if it cannot be read; provenance a row lacks is ``"unknown"``."""
    import csv

    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = []
            for raw in csv.DictReader(f):
                row: dict = {k: v for k, v in raw.items() if k is not None}
                for k in _INT_COLUMNS:
                    row[k] = int(raw[k])
                for k in _FLOAT_COLUMNS:
                    row[k] = float(raw[k])
                for k in ("dataset", "network", "variant"):
                    row[k] = str(raw[k])
                row["quick"] = raw.get("quick") == "True"
                for k in _PROVENANCE_COLUMNS:
                    if not row.get(k):
                        row[k] = UNKNOWN
                rows.append(row)
            return rows
    except (OSError, ValueError, TypeError, KeyError, csv.Error) as err:
        print(f"[table4] not reusing {path}: {err!r}", flush=True)
        return None


def _earlier_rows(path: Path) -> list[dict]:
    """The rows of an earlier ``table4.csv`` ([] if none or unreadable), see ``_read_rows``."""
    return _read_rows(path) or []


def _cell_key(row: dict) -> tuple:
    return (row["dataset"], row["network"], row["variant"], int(row["seed"]))


def _same_recipe(row: dict, recipe: Recipe, quick: bool) -> bool:
    return row.get("quick") == quick and all(row.get(k) == v for k, v in recipe.fields().items())


def _title(key: tuple) -> str:
    dataset, network, variant, seed = key
    return f"{DATASET_TITLES[dataset]} {network} {variant} (seed {seed})"


def _group(keys) -> str:
    """``MNIST FC none (seeds 0, 1), ...``: cell keys grouped by cell."""
    by_cell: dict[tuple, list[int]] = {}
    for dataset, network, variant, seed in keys:
        by_cell.setdefault((dataset, network, variant), []).append(seed)
    return ", ".join(f"{DATASET_TITLES[d]} {n} {v} (seed{'s' if len(ss) > 1 else ''} {', '.join(map(str, sorted(ss)))})"
                     for (d, n, v), ss in by_cell.items())


def _canonical(key: tuple) -> tuple:
    dataset, network, variant, seed = key
    return DATASETS.index(dataset), NETWORKS.index(network), VARIANTS.index(variant), seed


def summary_rows(results, datasets=DATASETS, networks=NETWORKS) -> list[list]:
    """Table 4's cells from per-seed rows: one row per dataset, network and variant, with the
    mean ± std (ddof=1) of the test accuracy over the seeds, n, the thesis' figure, the verdict,
    the per-seed accuracies (by seed) and the training time of all seeds."""
    out = []
    for dataset in datasets:
        for network in networks:
            for v in VARIANTS:
                cell = sorted((r for r in results
                               if (r["dataset"], r["network"], r["variant"]) == (dataset, network, v)),
                              key=lambda r: r["seed"])
                if not cell:
                    continue
                accs = [r["test_accuracy"] for r in cell]
                thesis = THESIS_TABLE4[dataset][network][VARIANTS.index(v)]
                out.append([DATASET_TITLES[dataset], network, v, mean_pm_std(accs), seed_stats(accs)["n"], fmt(thesis),
                            verdict(accs, thesis), ", ".join(f"{a:.4f}" for a in accs),
                            f"{sum(r['seconds'] for r in cell):.0f}"])
    return out


def table4(out, quick: bool = False, epochs: int | None = None, seeds=(0,), jobs: int = 1,
           datasets=DATASETS, networks=NETWORKS, verbose: int = 0,
           root=None, resume: bool = True, reuse_any: bool = False) -> dict:
    """Reproduce Table 4 for the chosen ``datasets``, ``networks`` and ``seeds``.

    ``epochs`` overrides every recipe's epoch count. With ``resume``, a chosen cell already in
    ``out/table4.csv`` with the same recipe, mode, seed and code is reused (any code with
    ``reuse_any``); finished cells that were not chosen stay in the table under the same rule.
    """
    datasets, networks = tuple(dict.fromkeys(datasets)), tuple(dict.fromkeys(networks))
    seeds = tuple(dict.fromkeys(int(s) for s in seeds))
    for name, given, known in (("dataset", datasets, DATASETS), ("network", networks, NETWORKS)):
        bad = [g for g in given if g not in known]
        if bad or not given:
            raise ValueError(f"{name} must be one or more of {', '.join(known)}, got {list(given)}")
    report = Report("table4", "Table 4: test accuracy on image data, FC | CNN, by regularisation",
                    out, quick, seeds, root=root)
    code = report.facts["code"]
    if quick:
        recipes = {d: dict(QUICK_RECIPES) for d in FULL_RECIPES}
    else:
        recipes = {d: dict(r) for d, r in FULL_RECIPES.items()}
    if epochs is not None:
        recipes = {d: {k: replace(r, epochs=epochs) for k, r in by_network.items()}
                   for d, by_network in recipes.items()}
    report.add(__doc__.split("\n\n", 1)[1].strip())
    report.add(_recipe_text(recipes))
    out = Path(out)
    # The folder's finished cells: table4.csv and the cells earlier runs could not use
    # (table4.unused.csv); a later row of a cell wins over an earlier one.
    unused_rows = _read_rows(out / UNUSED_CSV)
    earlier = (unused_rows or []) + _earlier_rows(out / "table4.csv")

    # Earlier cells that may enter the table: known dataset and network, today's recipe and mode,
    # and the same code (any code with reuse_any). The last row of a cell wins.
    usable: dict[tuple, dict] = {}
    for row in earlier:
        if row["dataset"] not in DATASETS or row["network"] not in NETWORKS or row["variant"] not in VARIANTS:
            continue
        if _same_recipe(row, recipes[row["dataset"]][row["network"]], quick) and (
                reuse_any or same_code(row.get("code"), code)):
            usable[_cell_key(row)] = row
    other_code = sorted((k for k, row in earlier_map(earlier).items()
                         if k not in usable and _same_recipe(row, recipes[k[0]][k[1]], quick)), key=_canonical)
    chosen = {(d, n, v, s) for d in datasets for n in networks for v in VARIANTS for s in seeds}
    results: dict[tuple, dict] = {k: row for k, row in usable.items() if k not in chosen}  # kept, not chosen
    kept = sorted(results, key=_canonical)
    reused: list[tuple] = []
    trained: list[tuple] = []
    missing: list[str] = []
    start = time.perf_counter()
    if other_code:
        print("[table4] not reusing cells of other code (pass --reuse-any to reuse them): " + _group(other_code),
              flush=True)

    def summarise(final: bool) -> None:
        """(Re)build the summary; called after every cell, so an interrupted run still leaves the
        cells it finished in ``table4.md`` and ``table4.csv``."""
        del report.sections[n_fixed:]
        rows = list(results.values())
        header = ["dataset", "network", "regularisation", "ours: mean ± std", "seeds", "thesis", "verdict",
                  "ours by seed", "time (s), all seeds"]
        report.add_table(header, summary_rows(rows),
                         caption="Test accuracy at the epoch with the best validation accuracy: mean ± sample std "
                                 "(ddof=1) over the seeds; time is the training time of the cell's seeds:")
        foreign = sorted((k for k, r in results.items() if not same_code(r.get("code"), code)), key=_canonical)
        notes = []
        if trained:
            notes.append("Trained in this run: " + _group(trained))
        if reused:
            notes.append("Cells reused from an earlier run into this folder (same recipe, mode, seed and code "
                         "unless listed below; their time is that run's): " + _group(reused))
        if kept:
            notes.append("Kept from an earlier run (not chosen in this run; same rule): " + _group(kept))
        if foreign:
            notes.append("**From other code** (reused with --reuse-any): " + "; ".join(
                f"{_title(k)}: code {results[k].get('code', UNKNOWN)}" for k in foreign))
        if other_code:
            notes.append("Earlier cells of the same recipe but other code, not reused (kept in `table4.unused.csv`; "
                         "--reuse-any reuses them): "
                         + _group(other_code))
        if notes:
            report.add("\n".join(f"- {n}" for n in notes))
        if missing:
            report.add("Datasets not available on this machine:\n" + "\n".join(missing))
        if not final:
            report.add("*(run in progress: cells still missing)*")
        report.csv_rows = [results[k] for k in sorted(results, key=_canonical)]
        report.write(time.perf_counter() - start, echo=False)  # reproduce() prints the final one

    n_fixed = len(report.sections)
    from_earlier = {id(row) for k, row in usable.items() if k not in chosen or resume}
    if unused_rows is not None:  # an unreadable table4.unused.csv is left as it is
        _write_unused(out, [row for row in earlier if id(row) not in from_earlier])
    for dataset in datasets:
        todo = []
        for network in networks:
            for variant in VARIANTS:
                for seed in seeds:
                    key = (dataset, network, variant, seed)
                    if resume and key in usable:
                        results[key] = usable[key]
                        reused.append(key)
                    else:
                        todo.append(key)
        if not todo:
            continue
        data, why = load_dataset(dataset, seed=0, quick=quick, root=root)
        if data is None:
            missing.append(f"- {DATASET_TITLES[dataset]}: not run ({why})")
            continue
        data = normalise(data, dataset)
        for key in todo:
            _, network, variant, seed = key
            row = {**train_cell(data, dataset, network, variant, recipes[dataset][network], seed, verbose),
                   "quick": quick, **report.provenance()}
            results[key] = row
            trained.append(key)
            print(f"[table4] {dataset} {network} {variant} seed {seed}: test "
                  f"{row['test_accuracy']:.4f} (thesis {row['thesis_test_accuracy']}), "
                  f"best epoch {row['best_epoch']}, {row['seconds']:.0f} s", flush=True)
            summarise(final=False)
    summarise(final=True)
    return {"report": report, "rows": [results[k] for k in sorted(results, key=_canonical)],
            "trained": trained, "reused": reused, "kept": kept}


def earlier_map(rows: list[dict]) -> dict[tuple, dict]:
    """Earlier rows by cell key (the last row of a cell wins), known cells only."""
    return {_cell_key(r): r for r in rows
            if r["dataset"] in DATASETS and r["network"] in NETWORKS and r["variant"] in VARIANTS}


def _write_unused(out: Path, unused: list[dict]) -> None:
    """Write the earlier cells that are not in the table (other recipe, mode or code, or retrained
    with ``resume=False``) to ``table4.unused.csv`` before ``table4.csv`` is rewritten, so no
    finished cell is lost; a later run with the same recipe and code (or ``reuse_any``) still
    finds them. Duplicate rows are written once; no unused cell, no file."""
    import csv
    import io

    from ._report import atomic_write_text

    path = out / UNUSED_CSV
    rows: list[dict] = []
    seen = set()
    for r in unused:
        text = {k: str(v) for k, v in r.items()}
        sig = tuple(sorted(text.items()))
        if sig not in seen:
            seen.add(sig)
            rows.append(text)
    if not rows:
        if path.is_file():
            path.unlink()
        return
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in keys})
    atomic_write_text(path, buf.getvalue())
