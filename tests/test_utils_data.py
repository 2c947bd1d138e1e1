"""Tests for the data helpers in natverk.utils: normalization, st_logspace,
exponential_decay and decision_boundary (MATLAB utils/)."""

from __future__ import annotations

import sys

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from natverk.utils.decision_boundary import decision_boundary
from natverk.utils.exponential_decay import exponential_decay
from natverk.utils.normalization import normalization
from natverk.utils.st_logspace import st_logspace

# ---------------------------------------------------------------------------
# normalization


def _reference_normalization(X_train, X_test):
    """The MATLAB formula in float64, straight from the thesis."""
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    mu = X_train.mean(axis=0)
    sigma = np.sqrt(((X_train - mu) ** 2).mean(axis=0))
    return (X_train - mu) / (sigma + 1e-6), (X_test - mu) / (sigma + 1e-6)


@pytest.fixture
def train_test():
    rng = np.random.default_rng(0)
    scale = np.array([0.5, 2.0, 10.0, 1e-2])
    offset = np.array([-3.0, 0.0, 100.0, 1.0])
    X_train = rng.normal(size=(200, 4)) * scale + offset
    # The test set is shifted, so normalising it with its own statistics
    # (instead of the training ones) would be caught.
    X_test = rng.normal(size=(50, 4)) * scale + offset + 2 * scale
    return X_train, X_test


def test_normalization_matches_formula(train_test):
    X_train, X_test = train_test
    Xn_train, Xn_test = normalization(X_train, X_test)
    ref_train, ref_test = _reference_normalization(X_train, X_test)
    np.testing.assert_allclose(Xn_train, ref_train, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Xn_test, ref_test, rtol=1e-12, atol=1e-12)
    # Training columns are standardised; the +1e-6 makes the std just below 1.
    np.testing.assert_allclose(Xn_train.mean(axis=0), 0.0, atol=1e-12)
    std = Xn_train.std(axis=0)
    assert np.all(std < 1.0) and np.all(std > 1.0 - 1e-3)
    np.testing.assert_allclose(std[:3], 1.0, atol=3e-6)
    # The test set used the training statistics: its mean is the shift, 2.
    np.testing.assert_allclose(Xn_test.mean(axis=0), 2.0, atol=0.5)


def test_normalization_nd_over_axis_0():
    rng = np.random.default_rng(1)
    X_train = rng.normal(size=(30, 3, 4, 5)) * 3 + 1
    X_test = rng.normal(size=(7, 3, 4, 5))
    Xn_train, Xn_test = normalization(X_train, X_test)
    ref_train, ref_test = _reference_normalization(X_train, X_test)
    assert Xn_train.shape == X_train.shape and Xn_test.shape == X_test.shape
    np.testing.assert_allclose(Xn_train, ref_train, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Xn_test, ref_test, rtol=1e-12, atol=1e-12)


def test_normalization_1d_and_empty_test():
    Xn_train, Xn_test = normalization(np.array([1.0, 2.0, 3.0]), np.zeros(0))
    np.testing.assert_allclose(Xn_train, [-1.2247436, 0.0, 1.2247436], atol=1e-6)
    assert Xn_test.shape == (0,)


def test_normalization_float32_stays_float32(train_test):
    X_train, X_test = (x.astype(np.float32) for x in train_test)
    Xn_train, Xn_test = normalization(X_train, X_test)
    assert Xn_train.dtype == np.float32 and Xn_test.dtype == np.float32
    ref_train, ref_test = _reference_normalization(X_train, X_test)
    np.testing.assert_allclose(Xn_train, ref_train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(Xn_test, ref_test, rtol=1e-5, atol=1e-5)


def test_normalization_integer_input_becomes_float64():
    Xn_train, Xn_test = normalization(np.array([[1, 10], [3, 30]]), np.array([[2, 20]]))
    assert Xn_train.dtype == np.float64 and Xn_test.dtype == np.float64
    np.testing.assert_allclose(Xn_test, [[0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(Xn_train, [[-1.0, -1.0], [1.0, 1.0]], atol=1e-5)


def test_normalization_does_not_modify_inputs(train_test):
    X_train, X_test = train_test
    before = X_train.copy(), X_test.copy()
    Xn_train, Xn_test = normalization(X_train, X_test)
    np.testing.assert_array_equal(X_train, before[0])
    np.testing.assert_array_equal(X_test, before[1])
    assert not np.shares_memory(Xn_train, X_train)
    assert not np.shares_memory(Xn_test, X_test)


def test_normalization_constant_feature_maps_to_zero():
    X = np.array([[5.0, 1.0], [5.0, 2.0], [5.0, 3.0]])
    Xn_train, Xn_test = normalization(X, np.array([[6.0, 2.0]]))
    np.testing.assert_array_equal(Xn_train[:, 0], 0.0)
    # (6 - 5) / (0 + 1e-6): the epsilon, not a division by zero.
    np.testing.assert_allclose(Xn_test[0, 0], 1e6)


@pytest.mark.parametrize(
    "X_train, X_test, exc, match",
    [
        (np.zeros((0, 3)), np.zeros((2, 3)), ValueError, "X_train"),
        (np.float64(1.0), np.zeros(2), ValueError, "X_train"),
        (np.zeros((4, 3)), np.zeros((2, 4)), ValueError, "feature shape"),
        (
            np.array([[1.0, np.nan], [2.0, 3.0]]),
            np.zeros((1, 2)),
            ValueError,
            "X_train",
        ),
        (np.ones((2, 2)), np.array([[np.inf, 0.0]]), ValueError, "X_test"),
        (np.ones((2, 2), dtype=complex), np.ones((1, 2)), TypeError, "X_train"),
        (np.ones((2, 2)), np.array([[1, "a"]], dtype=object), TypeError, "X_test"),
        (np.ones((2, 2), dtype=bool), np.ones((1, 2)), TypeError, "X_train"),
    ],
)
def test_normalization_errors(X_train, X_test, exc, match):
    with pytest.raises(exc, match=match):
        normalization(X_train, X_test)


# ---------------------------------------------------------------------------
# st_logspace


def test_st_logspace_sorted_in_range_and_formula():
    lo, hi, n = 1e-4, 1.0, 1000
    pts = st_logspace(lo, hi, n, seed=3)
    assert pts.shape == (n,) and pts.dtype == np.float64
    assert np.all(np.diff(pts) >= 0)
    assert pts.min() >= lo and pts.max() <= hi
    u = np.random.default_rng(3).random(n)
    expected = np.sort(10 ** ((np.log10(hi) - np.log10(lo)) * u + np.log10(lo)))
    np.testing.assert_allclose(pts, expected, rtol=1e-14, atol=0)


def test_st_logspace_is_log_uniform():
    pts = st_logspace(1e-4, 1.0, 20000, seed=4)
    # Log-uniform: half below the geometric midpoint 1e-2, a quarter below
    # 1e-3. (Standard error 0.0035; a linear-uniform draw would give ~0.01.)
    assert abs(np.mean(pts < 1e-2) - 0.5) < 0.02
    assert abs(np.mean(pts < 1e-3) - 0.25) < 0.02


def test_st_logspace_reproducible_and_degenerate_range():
    np.testing.assert_array_equal(
        st_logspace(0.1, 10, 50, seed=1), st_logspace(0.1, 10, 50, seed=1)
    )
    assert not np.array_equal(
        st_logspace(0.1, 10, 50, seed=1), st_logspace(0.1, 10, 50, seed=2)
    )
    np.testing.assert_array_equal(st_logspace(3.0, 3.0, 5, seed=0), np.full(5, 3.0))


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((0.0, 1.0, 5), ValueError, "lo"),
        ((-1.0, 1.0, 5), ValueError, "lo"),
        ((2.0, 1.0, 5), ValueError, "lo must be <= hi"),
        ((1.0, math.inf, 5), ValueError, "hi"),
        ((1.0, 2.0, 0), ValueError, "n must"),
        ((1.0, 2.0, 2.5), TypeError, "n must"),
        (("1", 2.0, 3), TypeError, "lo"),
    ],
)
def test_st_logspace_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        st_logspace(*args)


# ---------------------------------------------------------------------------
# exponential_decay


def test_exponential_decay_values():
    assert exponential_decay(0.1, 0) == 0.1
    assert exponential_decay(0.1, 1) == pytest.approx(0.1 * 0.99999, rel=1e-15)
    # 0.99999^100000 = exp(100000 * ln 0.99999) ~ e^-1.
    assert exponential_decay(1e-4, 100_000) == pytest.approx(
        1e-4 * math.exp(100_000 * math.log(0.99999)), rel=1e-12
    )
    assert exponential_decay(1e-4, 100_000) == pytest.approx(1e-4 / math.e, rel=1e-4)
    assert exponential_decay(8.0, 3, decay=0.5) == 1.0
    assert isinstance(exponential_decay(0.1, np.int64(3)), float)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((0.1, -1), ValueError, "epoch"),
        ((0.1, 1.5), TypeError, "epoch"),
        ((math.nan, 1), ValueError, "learning_rate"),
        ((0.1, 1, 0.0), ValueError, "decay"),
    ],
)
def test_exponential_decay_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        exponential_decay(*args)


# ---------------------------------------------------------------------------
# decision_boundary


def _sign_net(dtype=np.float64):
    """2-4-2 ReLU net whose output is class 0 for x1 > 0 and class 1 for x1 < 0.

    Hidden units: relu(x1), relu(-x1), 0, 0; logits: [relu(x1), relu(-x1)].
    """
    W1 = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=dtype)
    W2 = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], dtype=dtype)
    return {
        "W1": W1,
        "b1": np.zeros((1, 4), dtype=dtype),
        "W2": W2,
        "b2": np.zeros((1, 2), dtype=dtype),
    }


def _two_class_data():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(-0.7, 0.8, 60), rng.uniform(-0.6, 0.5, 60)])
    X[0] = [-0.7, -0.6]  # pin the extent: grid x1 in [-1, 1], x2 in [-1, 0.7]
    X[1] = [0.8, 0.5]
    y = (X[:, 0] < 0).astype(np.int64)
    return X, y


def test_decision_boundary_with_real_network(tmp_path):
    X, y = _two_class_data()
    fig = decision_boundary(_sign_net(), 0.0, "relu", y, X, step=0.01)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.collections) > 0  # the filled contours
    assert len(ax.get_lines()) == 2  # one line of markers per class
    contour_sets = [c for c in ax.collections if isinstance(c, ContourSet)]
    if contour_sets:  # matplotlib >= 3.8 keeps the ContourSet itself in collections
        paths = contour_sets[0].get_paths()
        # Region of class 0 lies at x1 >= 0, region of class 1 at x1 <= 0.
        assert paths[0].vertices[:, 0].min() >= -0.011
        assert paths[1].vertices[:, 0].max() <= 0.011
        assert (
            paths[0].vertices[:, 0].max() > 0.9 and paths[1].vertices[:, 0].min() < -0.9
        )
    out = tmp_path / "db.png"
    fig.savefig(out)
    data = out.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_decision_boundary_grid_chunks_and_drawing(monkeypatch):
    calls = []

    def fake_check_accuracy(points, y, parameters, lambda_, activation):
        calls.append(
            (
                points.shape,
                points.dtype,
                y.dtype,
                bool(np.all(y == 0)),
                lambda_,
                activation,
            )
        )
        return 0.0, (points[:, 0] < 0).astype(np.int64)

    monkeypatch.setattr(
        sys.modules["natverk.utils.check_accuracy"], "check_accuracy", fake_check_accuracy
    )
    X, y = _two_class_data()
    fig = Figure()
    ax = fig.add_subplot()
    drawn = {}
    contourf = ax.contourf

    def spy_contourf(*args, **kwargs):
        drawn["args"], drawn["kwargs"] = args, kwargs
        return contourf(*args, **kwargs)

    ax.contourf = spy_contourf
    out = decision_boundary(
        _sign_net(np.float32), 0.5, "relu", y, X, ax=ax, title="spiral"
    )
    assert out is fig
    assert ax.get_title() == "spiral"

    # Grid: x1 = -1:0.005:1 (401 values), x2 = -1:0.005:0.7 (341 values),
    # predicted in chunks of 65536 as float32 (the dtype of W1).
    n_points = 401 * 341
    assert [c[0] for c in calls] == [(65536, 2), (65536, 2), (n_points - 2 * 65536, 2)]
    assert all(c[1] == np.float32 and c[2] == np.int64 and c[3] for c in calls)
    assert all(c[4] == 0.5 and c[5] == "relu" for c in calls)

    xx, yy, Z = drawn["args"]
    assert xx.shape == yy.shape == Z.shape == (341, 401)
    np.testing.assert_allclose(
        [xx.min(), xx.max(), yy.min(), yy.max()], [-1, 1, -1, 0.7], atol=1e-9
    )
    # Predictions were put back on the grid in the right order.
    np.testing.assert_array_equal(Z, (xx.astype(np.float32) < 0).astype(np.int64))
    np.testing.assert_array_equal(drawn["kwargs"]["levels"], [-0.5, 0.5, 1.5])
    np.testing.assert_allclose(drawn["kwargs"]["colors"], [(1, 0.7, 1), (0.7, 0.7, 1)])

    lines = ax.get_lines()
    assert [ln.get_marker() for ln in lines] == ["x", "o"]
    np.testing.assert_allclose(
        matplotlib.colors.to_rgb(lines[0].get_color()), (0.9, 0.27, 0.9)
    )
    np.testing.assert_allclose(
        matplotlib.colors.to_rgb(lines[1].get_color()), (0.27, 0.27, 0.9)
    )
    np.testing.assert_array_equal(lines[0].get_xdata(), X[y == 0, 0])
    np.testing.assert_array_equal(lines[1].get_ydata(), X[y == 1, 1])


def test_decision_boundary_more_than_four_classes(monkeypatch):
    monkeypatch.setattr(
        sys.modules["natverk.utils.check_accuracy"],
        "check_accuracy",
        lambda points, y, *args: (
            0.0,
            (np.floor(points[:, 0] * 3) % 6).astype(np.int64),
        ),
    )
    params = {
        "W1": np.zeros((2, 3)),
        "b1": np.zeros((1, 3)),
        "W2": np.zeros((3, 6)),
        "b2": np.zeros((1, 6)),
        "v_dW2": np.zeros((3, 2)),
    }  # optimizer state is ignored
    X = np.array([[0.1, 0.1], [0.9, 0.9]])
    fig = decision_boundary(params, 0.0, "relu", np.array([0, 5]), X, step=0.05)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 6
    assert len({matplotlib.colors.to_rgb(ln.get_color()) for ln in lines}) == 6


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"X": np.zeros((5, 3))}, ValueError, "X must"),
        ({"y": np.array([0, 1, 2, 0, 1])}, ValueError, "labels in 0..1"),
        ({"y": np.zeros(4, dtype=np.int64)}, ValueError, "one label per row"),
        ({"parameters": {"b1": np.zeros(2)}}, ValueError, "W1"),
        ({"step": 0.0}, ValueError, "step"),
        (
            {"step": 1e-3, "X": np.linspace(-100, 100, 10).reshape(5, 2)},
            ValueError,
            "larger step",
        ),
    ],
)
def test_decision_boundary_bad_arguments(kwargs, exc, match):
    args = {
        "parameters": _sign_net(),
        "lambda_": 0.0,
        "activation": "relu",
        "y": np.array([0, 1, 0, 1, 0]),
        "X": np.zeros((5, 2)),
    }
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        decision_boundary(**args)
