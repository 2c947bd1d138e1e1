"""Thesis Tables 5 and 6: skin-lesion images (ISIC), benign vs malignant, with the loss
weighted ``[1, 10]`` so that a missed malignant lesion costs ten times a false alarm; reported
as precision, recall (sensitivity), specificity and F1 of the malignant class.

Runs on any binary image dataset in the ISIC folder format that ``load_isic`` reads
(``$NATVERK_DATA/isic/`` or ``--data-root``). The thesis used an ImageNet-pretrained
ResNeXt-101 at 224x224; no pretrained weights exist here, so the CNN is ours (the Table 4 CNN,
trained from scratch) and images are resized to 64x64 to fit a CPU; the FC network is
``N-500-100-50-25-2`` with dropout, as the thesis' FC dropout row.

Protocol: the epoch with the lowest validation loss is kept (early stopping's restore-best), the
test set is evaluated once per network and seed, after training. Each metric is the mean ± the
sample standard deviation (ddof=1) over the seeds, beside the thesis' figure, with the verdict
of Table 4 ("above", "within 1 std", "below (k std)"; higher is better for all four).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..callbacks import EarlyStopping
from ..losses import CrossEntropy
from ..metrics import f1_score, precision, recall, specificity
from ..optimizers import Adam
from ..schedules import CosineDecay
from ..utils.normalization import normalize_channels
from ._report import Report, fmt, mean_pm_std, seed_stats, verdict
from .images import cnn_network, fc_network

# Thesis Tables 5-6 (malignant class): network -> (precision, recall, specificity, F1)
THESIS_ISIC = {"FC dropout": (0.394, 0.620, 0.898, 0.482), "CNN dropout": (0.744, 0.671, 0.972, 0.706)}
CLASS_WEIGHTS = (1.0, 10.0)
METRICS = (("precision", "precision"), ("recall", "recall (sensitivity)"), ("specificity", "specificity"),
           ("f1", "F1"))


def _metrics(y_true, y_pred) -> dict:
    return {
        "precision": precision(y_true, y_pred),
        "recall": recall(y_true, y_pred),
        "specificity": specificity(y_true, y_pred),
        "f1": f1_score(y_true, y_pred),
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
    }


def table5_6(out, quick: bool = False, epochs: int | None = None, seeds=(0,), image_size: int = 64,
             root=None, verbose: int = 0, **_ignored) -> dict:
    from ..importdata import load_isic

    start = time.perf_counter()
    report = Report("table5-6", "Tables 5-6: ISIC benign vs malignant, class-weighted loss [1, 10]", out, quick, seeds,
                    root=root)
    report.add(__doc__.split("\n\n", 1)[1].strip())
    size = 32 if quick else image_size
    try:
        X_tr, y_tr, X_val, y_val, X_te, y_te = load_isic(None if root is None else Path(root) / "isic", image_size=size, validation=True, seed=0)
    except FileNotFoundError as err:
        report.add(f"Not run: no ISIC-format dataset on this machine.\n\n```\n{err}\n```")
        return {"report": report, "rows": [], "wall_s": time.perf_counter() - start}
    mean, std = X_tr.mean(axis=(0, 2, 3)), X_tr.std(axis=(0, 2, 3)) + 1e-6
    X_tr, X_val, X_te = (normalize_channels(a, mean, std) for a in (X_tr, X_val, X_te))
    n_epochs = epochs if epochs is not None else (1 if quick else 20)
    report.add(f"Data: {len(y_tr)} training ({int(np.sum(y_tr))} malignant), {len(y_val)} validation, "
               f"{len(y_te)} test images at {size}x{size}; {n_epochs} epochs, Adam 1e-3 (cosine), batch 64.")
    results = []
    for network in ("FC dropout", "CNN dropout"):
        for seed in seeds:
            if network.startswith("FC"):
                model = fc_network(int(np.prod(X_tr.shape[1:])), (500, 100, 50, 25), 2, 0.2, seed)
            else:
                model = cnn_network(X_tr.shape[1], size, 2, 0.4, seed)
            t0 = time.perf_counter()
            model.fit(X_tr, y_tr, epochs=n_epochs, batch_size=64, optimizer=Adam(1e-3),
                      loss=CrossEntropy(class_weights=CLASS_WEIGHTS), validation_data=(X_val, y_val), seed=seed,
                      verbose=verbose, lr_schedule=CosineDecay(1e-3, n_epochs),
                      callbacks=[EarlyStopping(monitor="val_loss", patience=n_epochs, restore_best=True)])
            row = {"network": network, "seed": seed, **_metrics(y_te, model.predict(X_te)),
                   "seconds": time.perf_counter() - t0}
            results.append(row)
    report.add_rows(results)
    header = ["network", "metric", "ours: mean ± std", "seeds", "thesis", "verdict", "ours by seed",
              "time (s), all seeds"]
    rows = []
    for network in THESIS_ISIC:
        rs = sorted((r for r in results if r["network"] == network), key=lambda r: r["seed"])
        for i, (key, title) in enumerate(METRICS):
            values = [r[key] for r in rs]
            thesis = THESIS_ISIC[network][i]
            rows.append([network, title, mean_pm_std(values, 3), seed_stats(values)["n"], fmt(thesis, 3),
                         verdict(values, thesis), ", ".join(f"{v:.3f}" for v in values),
                         f"{sum(r['seconds'] for r in rs):.0f}"])
    report.add_table(header, rows, caption="Test set, malignant = positive class; mean ± sample std (ddof=1) over "
                                           "the seeds:")
    report.add("The thesis (precision / recall / specificity / F1): " + "; ".join(
        f"{network} {' / '.join(fmt(v, 3) for v in THESIS_ISIC[network])}" for network in THESIS_ISIC))
    return {"report": report, "rows": results, "wall_s": time.perf_counter() - start}
