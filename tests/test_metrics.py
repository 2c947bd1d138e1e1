"""natverk.metrics: hand-computed cases, a loop-based NumPy reference on random
labels, the 0/0 convention and input validation (thesis eq. 48-49)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from natverk import metrics
from natverk.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    f1_score,
    precision,
    recall,
    sensitivity,
    specificity,
)

# ------------------------------------------------------------------ loop references


def ref_confusion(t, p, K):
    cm = np.zeros((K, K), dtype=np.int64)
    for a, b in zip(t, p):
        cm[a, b] += 1
    return cm


def ref_per_class(t, p, K):
    """Per-class precision, recall, specificity, F1 by counting example by example."""
    out = {"precision": [], "recall": [], "specificity": [], "f1": []}
    for k in range(K):
        tp = fp = fn = tn = 0
        for a, b in zip(t, p):
            if a == k and b == k:
                tp += 1
            elif a != k and b == k:
                fp += 1
            elif a == k and b != k:
                fn += 1
            else:
                tn += 1
        P = tp / (tp + fp) if tp + fp else 0.0
        R = tp / (tp + fn) if tp + fn else 0.0
        out["precision"].append(P)
        out["recall"].append(R)
        out["specificity"].append(tn / (tn + fp) if tn + fp else 0.0)
        out["f1"].append(2 / (1 / P + 1 / R) if P > 0 and R > 0 else 0.0)  # thesis eq. 49
    return {k: np.array(v) for k, v in out.items()}


FUNCS = {"precision": precision, "recall": recall, "specificity": specificity, "f1": f1_score}


# ------------------------------------------------------------------ hand-computed


def test_binary_hand_computed():
    y_true = [1, 1, 1, 0, 0, 0, 0, 1]
    y_pred = [1, 0, 1, 0, 1, 0, 0, 0]
    # tp = 2 (examples 0, 2), fn = 2 (1, 7), fp = 1 (4), tn = 3 (3, 5, 6)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), [[3, 1], [2, 2]])
    assert accuracy(y_true, y_pred) == 5 / 8
    assert precision(y_true, y_pred) == 2 / 3
    assert recall(y_true, y_pred) == 2 / 4
    assert sensitivity(y_true, y_pred) == 2 / 4
    assert specificity(y_true, y_pred) == 3 / 4
    assert f1_score(y_true, y_pred) == pytest.approx(2 / (1 / (2 / 3) + 1 / (2 / 4)), rel=1e-15)
    assert f1_score(y_true, y_pred) == 4 / 7
    # pos_label=0 swaps the roles of the classes
    assert precision(y_true, y_pred, pos_label=0) == 3 / 5
    assert recall(y_true, y_pred, pos_label=0) == 3 / 4
    assert specificity(y_true, y_pred, pos_label=0) == 2 / 4


def test_multiclass_hand_computed():
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2])
    cm = confusion_matrix(y_true, y_pred)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 1], [1, 0, 3]])
    np.testing.assert_allclose(precision(y_true, y_pred, average=None), [1 / 2, 2 / 3, 3 / 4])
    np.testing.assert_allclose(recall(y_true, y_pred, average=None), [1 / 2, 2 / 3, 3 / 4])
    np.testing.assert_allclose(specificity(y_true, y_pred, average=None), [6 / 7, 5 / 6, 4 / 5])
    assert precision(y_true, y_pred, average="macro") == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    assert accuracy(y_true, y_pred) == 6 / 9
    # num_classes pads the matrix; rows are true classes, columns predicted
    cm5 = confusion_matrix(y_true, y_pred, num_classes=5)
    assert cm5.shape == (5, 5) and cm5.sum() == 9
    np.testing.assert_array_equal(cm5[:3, :3], cm)


def test_zero_over_zero_is_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            # never predicts the positive class: precision = 0/0
            assert precision([1, 0, 1], [0, 0, 0]) == 0.0
            assert f1_score([1, 0, 1], [0, 0, 0]) == 0.0
            # no positives at all: recall = 0/0, precision = 0/1
            assert recall([0, 0], [0, 0]) == 0.0
            assert f1_score([0, 0], [0, 0]) == 0.0
            # no negatives at all: specificity = 0/0
            assert specificity([1, 1], [1, 1]) == 0.0
            # a class absent from both labels gives zeros in the per-class arrays
            per = precision([0, 2], [0, 2], average=None)
            np.testing.assert_array_equal(per, [1.0, 0.0, 1.0])
            # ... but is left out of the macro average
            assert precision([0, 2], [0, 2], average="macro") == 1.0
            assert f1_score([0, 2], [0, 2], average="macro") == 1.0


def test_perfect_and_all_wrong_predictions():
    y = np.array([0, 1, 1, 0, 1])
    for f in FUNCS.values():
        assert f(y, y) == 1.0
        assert f(y, y, average="macro") == 1.0
    assert accuracy(y, 1 - y) == 0.0
    assert precision(y, 1 - y) == 0.0 and recall(y, 1 - y) == 0.0 and specificity(y, 1 - y) == 0.0
    assert f1_score(y, 1 - y) == 0.0


# ------------------------------------------------------------------ random labels vs the loop reference


@pytest.mark.parametrize("seed", range(6))
def test_random_labels_match_the_loop_reference(seed):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 7))
    n = int(rng.integers(1, 80))
    t = rng.integers(0, K, n)
    # predictions: right about half the time, so every count type occurs
    p = np.where(rng.random(n) < 0.5, t, rng.integers(0, K, n))
    Kc = int(max(t.max(), p.max())) + 1
    np.testing.assert_array_equal(confusion_matrix(t, p), ref_confusion(t, p, Kc))
    np.testing.assert_array_equal(confusion_matrix(t, p, num_classes=K), ref_confusion(t, p, K))
    assert accuracy(t, p) == pytest.approx(sum(int(a == b) for a, b in zip(t, p)) / n)
    ref = ref_per_class(t, p, K)
    present = np.isin(np.arange(K), np.concatenate([t, p]))
    for name, f in FUNCS.items():
        per = f(t, p, average=None, num_classes=K)
        assert per.dtype == np.float64 and per.shape == (K,)
        np.testing.assert_allclose(per, ref[name], rtol=1e-13, atol=0, err_msg=name)
        assert f(t, p, average="macro") == pytest.approx(ref[name][present].mean(), rel=1e-13)
    # binary metrics on a 0/1 relabelling (class 1 vs the rest)
    tb, pb = (t == 1).astype(int), (p == 1).astype(int)
    refb = ref_per_class(tb, pb, 2)
    for name, f in FUNCS.items():
        assert f(tb, pb) == pytest.approx(refb[name][1], rel=1e-13), name
        assert f(tb, pb, pos_label=0) == pytest.approx(refb[name][0], rel=1e-13), name


def test_label_dtypes_are_accepted():
    t = np.array([0, 1, 1, 0], dtype=np.uint8)
    p = [0, 1, 0, 0]
    assert accuracy(t, p) == 0.75
    assert recall(t.astype(np.int32), np.array(p, dtype=np.int16)) == 0.5
    assert confusion_matrix(t, p).dtype == np.int64


# ------------------------------------------------------------------ report


def test_classification_report_dict_and_markdown():
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 2, 0, 2]
    rep = classification_report(y_true, y_pred)
    assert rep["accuracy"] == accuracy(y_true, y_pred) and rep["num_examples"] == 9
    assert set(rep["classes"]) == {0, 1, 2}
    assert [rep["classes"][k]["support"] for k in range(3)] == [2, 3, 4]
    for name, f in FUNCS.items():
        per = f(y_true, y_pred, average=None)
        assert [rep["classes"][k][name] for k in range(3)] == list(per)
        assert rep["macro"][name] == f(y_true, y_pred, average="macro")
    md = classification_report(y_true, y_pred, class_names=["cat", "dog", "bird"], output="markdown")
    lines = md.splitlines()
    assert lines[0] == "| class | precision | recall | specificity | F1 | support |"
    assert lines[2].startswith("| cat | 0.5000 | 0.5000 | 0.8571 | 0.5000 | 2 |")
    assert lines[5].startswith("| macro avg |")
    assert "accuracy: 0.6667 (6 / 9)" in md
    with pytest.raises(ValueError, match="class_names must hold 3 names"):
        classification_report(y_true, y_pred, class_names=["a", "b"])
    with pytest.raises(ValueError, match="output must be"):
        classification_report(y_true, y_pred, output="html")


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "y_true, y_pred, error, match",
    [
        ([0, 1, 1], [0, 1], ValueError, "equally long, got 3 and 2"),
        ([], [], ValueError, "y_true is empty"),
        ([0, -1], [0, 1], ValueError, r"y_true\[1\] = -1 is negative"),
        ([0, 1], [0, -2], ValueError, r"y_pred\[1\] = -2 is negative"),
        ([0.0, 1.0], [0, 1], TypeError, "integer class labels, got dtype float64"),
        ([True, False], [1, 0], TypeError, "integer class labels, got dtype bool"),
        (["a", "b"], [1, 0], TypeError, "integer class labels"),
        ([[0, 1], [1, 0]], [1, 0], ValueError, "1-D array of class labels, got shape"),
        (3, 3, ValueError, r"1-D array of class labels, got shape \(\)"),
        ([0, 1], np.array([[0.2, 0.8], [0.9, 0.1]]), ValueError, "not scores or probabilities"),
    ],
)
def test_bad_labels_raise_clear_errors(y_true, y_pred, error, match):
    for f in (accuracy, confusion_matrix, precision, f1_score, classification_report):
        with pytest.raises(error, match=match):
            f(y_true, y_pred)


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="average='binary' needs labels 0/1.*up to 2"):
        precision([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="average must be"):
        recall([0, 1], [0, 1], average="micro")
    with pytest.raises(ValueError, match="pos_label must be 0 or 1"):
        f1_score([0, 1], [0, 1], pos_label=2)
    with pytest.raises(ValueError, match="label 3 is out of range for num_classes=3"):
        confusion_matrix([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        specificity([0, 1], [0, 1], average=None, num_classes=0)


def test_public_names():
    assert set(metrics.__all__) == {
        "accuracy", "confusion_matrix", "precision", "recall", "sensitivity", "specificity", "f1_score",
        "classification_report",
    }
    assert metrics.sensitivity is metrics.recall
