"""Classification metrics: accuracy, confusion matrix, precision, recall, specificity, F1.

The thesis (§3.1, eq. 48-49; digest §2 "Metrics") judges the skewed ISIC
skin-cancer data by more than accuracy. With ``tp`` true positives, ``fp``
false positives, ``fn`` false negatives and ``tn`` true negatives::

    precision   = tp / (tp + fp)
    recall      = tp / (tp + fn)          (sensitivity, Swedish "känslighet")
    specificity = tn / (tn + fp)
    F1          = 2 / (1/P + 1/R)          (harmonic mean of precision and recall)

Conventions
-----------
* Labels are integer class indices ``0..K-1`` (the output of
  ``model.predict``), 1-D, equally long, non-empty and non-negative; anything
  else raises ``TypeError`` / ``ValueError`` saying what is wrong.
* **0/0 is 0.0.** A ratio whose denominator is zero (e.g. precision when the
  model never predicts the class) is defined as 0.0, silently: no warning, no
  NaN. F1 is then 0 too, the limit of the harmonic mean when P or R is 0. F1
  is computed as ``2 tp / (2 tp + fp + fn)``, which is algebraically the
  thesis' ``2 / (1/P + 1/R)`` but exact in the counts and defined when P or
  R is 0.
* ``average="binary"`` (the default) reports the class ``pos_label`` (1:
  "malignant" in the thesis) against the other; the labels must then be 0/1.
  ``average=None`` returns one value per class 0..K-1 as a float64 array
  (one-vs-rest: class k is "positive", every other class "negative").
  ``average="macro"`` is the unweighted mean of the per-class values over the
  classes that occur in ``y_true`` or ``y_pred`` (a class that is absent from
  both would only contribute a meaningless 0/0 = 0).
* ``num_classes`` fixes K (default: the largest label + 1); labels must be
  below it.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "confusion_matrix",
    "precision",
    "recall",
    "sensitivity",
    "specificity",
    "f1_score",
    "classification_report",
]

_AVERAGES = ("binary", None, "macro")


# ------------------------------------------------------------------ input checks


def _labels(y: Any, name: str) -> np.ndarray:
    """``y`` as a 1-D int64 array of non-negative class indices, or a clear error."""
    try:
        arr = np.asarray(y)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{name} must be a 1-D array of integer class labels: {err}") from None
    if arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind == "f":
        raise ValueError(
            f"{name} has shape {arr.shape}: pass class labels, not scores or probabilities "
            f"(e.g. {name}.argmax(axis=1) or model.predict(X))"
        )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class labels, got shape {arr.shape}")
    if arr.size == 0:  # checked before the dtype: an empty list has dtype float64
        raise ValueError(f"{name} is empty: metrics need at least one example")
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must hold integer class labels, got dtype {arr.dtype} (convert with {name}.astype(int))"
        )
    if arr.dtype.kind == "i" and arr.min() < 0:
        i = int(np.argmax(arr < 0))
        raise ValueError(f"{name}[{i}] = {arr[i]} is negative: labels must be class indices 0..K-1")
    return arr.astype(np.int64, copy=False)


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be equally long, got {t.shape[0]} and {p.shape[0]} labels")
    return t, p


def _num_classes(t: np.ndarray, p: np.ndarray, num_classes: Any) -> int:
    largest = int(max(t.max(), p.max()))
    if num_classes is None:
        return largest + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if largest >= num_classes:
        raise ValueError(f"label {largest} is out of range for num_classes={num_classes} (labels are 0..{num_classes - 1})")
    return int(num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise with 0/0 (any x/0) defined as 0.0, without a warning."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


# ------------------------------------------------------------------ counts


def accuracy(y_true: Any, y_pred: Any) -> float:
    """The fraction of examples with ``y_pred == y_true`` (thesis §4), a float in [0, 1]."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """The K x K int64 matrix ``M[i, j]`` = number of examples of true class i predicted as j.

    Rows are true classes, columns predicted classes; ``M.sum() == len(y_true)``
    and the trace counts the correct predictions. K is ``num_classes`` or the
    largest label + 1.
    """
    t, p = _pair(y_true, y_pred)
    K = _num_classes(t, p, num_classes)
    # One bincount over the flattened (true, predicted) pair index: no Python loop.
    return np.bincount(t * K + p, minlength=K * K).reshape(K, K).astype(np.int64, copy=False)


def _counts(t: np.ndarray, p: np.ndarray, K: int) -> dict[str, np.ndarray]:
    """Per-class (one-vs-rest) tp, fp, fn, tn as int64 arrays of length K."""
    cm = np.bincount(t * K + p, minlength=K * K).reshape(K, K)
    tp = np.diag(cm).astype(np.int64)
    fp = cm.sum(axis=0) - tp  # predicted k, but it was another class
    fn = cm.sum(axis=1) - tp  # truly k, but predicted as another class
    tn = t.size - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _metric(which: str, y_true: Any, y_pred: Any, average: Any, pos_label: Any, num_classes: Any):
    if average not in _AVERAGES:
        raise ValueError(f"average must be 'binary', None or 'macro', got {average!r}")
    t, p = _pair(y_true, y_pred)
    if average == "binary":
        if isinstance(pos_label, bool) or not isinstance(pos_label, numbers.Integral) or pos_label not in (0, 1):
            raise ValueError(f"pos_label must be 0 or 1 with average='binary', got {pos_label!r}")
        if max(t.max(), p.max()) > 1:
            raise ValueError(
                "average='binary' needs labels 0/1, but the labels go up to "
                f"{int(max(t.max(), p.max()))}: use average=None (per class) or average='macro'"
            )
        K = 2
    else:
        K = _num_classes(t, p, num_classes)
    c = _counts(t, p, K)
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    if which == "precision":
        values = _ratio(tp, tp + fp)
    elif which == "recall":
        values = _ratio(tp, tp + fn)
    elif which == "specificity":
        values = _ratio(tn, tn + fp)
    else:  # f1: 2 / (1/P + 1/R) == 2 tp / (2 tp + fp + fn), see the module docstring
        values = _ratio(2 * tp, 2 * tp + fp + fn)
    if average == "binary":
        return float(values[int(pos_label)])
    if average is None:
        return values
    present = np.zeros(K, dtype=bool)
    present[t] = True
    present[p] = True
    return float(values[present].mean())


def precision(y_true: Any, y_pred: Any, average: str | None = "binary", pos_label: int = 1,
              num_classes: int | None = None):
    """Precision ``tp / (tp + fp)`` (thesis eq. 48): the share of predicted positives that are positive.

    Returns a float (``average="binary"`` or ``"macro"``) or a float64 array
    with one value per class (``average=None``). 0/0 gives 0.0.
    """
    return _metric("precision", y_true, y_pred, average, pos_label, num_classes)


def recall(y_true: Any, y_pred: Any, average: str | None = "binary", pos_label: int = 1,
           num_classes: int | None = None):
    """Recall / sensitivity ``tp / (tp + fn)`` (thesis eq. 48): the share of positives found.

    Returns a float or, with ``average=None``, a per-class float64 array. 0/0 gives 0.0.
    """
    return _metric("recall", y_true, y_pred, average, pos_label, num_classes)


#: The thesis' "känslighet": another name for :func:`recall`.
sensitivity = recall


def specificity(y_true: Any, y_pred: Any, average: str | None = "binary", pos_label: int = 1,
                num_classes: int | None = None):
    """Specificity ``tn / (tn + fp)`` (thesis eq. 48): the share of negatives classified as negative.

    Returns a float or, with ``average=None``, a per-class float64 array. 0/0 gives 0.0.
    """
    return _metric("specificity", y_true, y_pred, average, pos_label, num_classes)


def f1_score(y_true: Any, y_pred: Any, average: str | None = "binary", pos_label: int = 1,
             num_classes: int | None = None):
    """F1 ``2 / (1/P + 1/R)`` (thesis eq. 49), the harmonic mean of precision and recall.

    Computed as ``2 tp / (2 tp + fp + fn)`` (the same number, exact in the
    counts); 0.0 when P or R is 0 or there are no positives at all. Returns a
    float or, with ``average=None``, a per-class float64 array.
    """
    return _metric("f1", y_true, y_pred, average, pos_label, num_classes)


# ------------------------------------------------------------------ report


def classification_report(y_true: Any, y_pred: Any, num_classes: int | None = None,
                          class_names=None, output: str = "dict"):
    """All the metrics at once, per class and macro-averaged (thesis tables 5-6).

    Parameters
    ----------
    y_true, y_pred : 1-D integer labels
    num_classes : int or None
        K; default the largest label + 1.
    class_names : sequence of K strings or None
        Row names for the Markdown table (default the class indices).
    output : "dict" or "markdown"

    Returns
    -------
    dict or str
        ``{"accuracy": float, "num_examples": int,
        "classes": {k: {"precision", "recall", "specificity", "f1", "support"}},
        "macro": {"precision", "recall", "specificity", "f1"}}`` where
        ``support`` is the number of true examples of class k and "macro"
        averages over the classes present in y_true or y_pred; or the same
        as a Markdown table (one row per class, then "macro avg", then
        accuracy).
    """
    if output not in ("dict", "markdown"):
        raise ValueError(f"output must be 'dict' or 'markdown', got {output!r}")
    t, p = _pair(y_true, y_pred)
    K = _num_classes(t, p, num_classes)
    names = [str(k) for k in range(K)] if class_names is None else [str(n) for n in class_names]
    if len(names) != K:
        raise ValueError(f"class_names must hold {K} names, got {len(names)}")
    kinds = ("precision", "recall", "specificity", "f1")
    per_class = {k: _metric(k, t, p, None, 1, K) for k in kinds}
    support = np.bincount(t, minlength=K)
    report = {
        "accuracy": accuracy(t, p),
        "num_examples": int(t.size),
        "classes": {
            k: {**{m: float(per_class[m][k]) for m in kinds}, "support": int(support[k])} for k in range(K)
        },
        "macro": {m: _metric(m, t, p, "macro", 1, K) for m in kinds},
    }
    if output == "dict":
        return report
    lines = [
        "| class | precision | recall | specificity | F1 | support |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in range(K):
        r = report["classes"][k]
        lines.append(
            f"| {names[k]} | {r['precision']:.4f} | {r['recall']:.4f} | {r['specificity']:.4f} | "
            f"{r['f1']:.4f} | {r['support']} |"
        )
    m = report["macro"]
    lines.append(
        f"| macro avg | {m['precision']:.4f} | {m['recall']:.4f} | {m['specificity']:.4f} | {m['f1']:.4f} | "
        f"{t.size} |"
    )
    lines.append("")
    lines.append(f"accuracy: {report['accuracy']:.4f} ({int(np.sum(t == p))} / {t.size})")
    return "\n".join(lines) + "\n"
