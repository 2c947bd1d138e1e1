"""Tests for natverk.simulatedata and natverk.importdata (MATLAB simulatedata/, importdata/)."""

from __future__ import annotations

import numpy as np
import pytest
from natverk.importdata import import_linear_data, import_nonlinear_data
from natverk.simulatedata import generate_linear_2d, generate_nonlinear_2d

# ---------------------------------------------------------------------------
# generate_linear_2d


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_shapes_dtypes_and_range(dtype):
    X, y = generate_linear_2d(500, 1.0, 1.0, 0.0, 0.3, seed=0, dtype=dtype)
    assert X.shape == (500, 2) and X.dtype == dtype
    assert y.shape == (500,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}
    # Coordinates uniform in [-1, 1); the noisy one stays within (1 + noise).
    assert X[:, 0].min() >= -1 and X[:, 0].max() < 1
    assert np.abs(X[:, 1]).max() <= 1.3 + 1e-6
    # The draw really covers the square rather than a corner of it.
    assert X[:, 0].min() < -0.9 and X[:, 0].max() > 0.9


def test_linear_labels_follow_the_line_without_noise():
    a, b, c = 0.7, -1.3, 0.2
    X, y = generate_linear_2d(2000, a, b, c, 0.0, seed=1)
    expected = (a * X[:, 0] + b * X[:, 1] + c > 0).astype(np.int64)
    np.testing.assert_array_equal(y, expected)
    assert 0 < y.sum() < y.size


def test_linear_labels_are_assigned_before_the_noise():
    # Same seed, same stream: the noisy points are the clean ones with only
    # the second coordinate scaled by (1 + alpha * noise_rate), alpha in [-1, 1].
    X0, y0 = generate_linear_2d(1000, 1.0, 1.0, 0.0, 0.0, seed=2)
    X1, y1 = generate_linear_2d(1000, 1.0, 1.0, 0.0, 0.5, seed=2)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(X0[:, 0], X1[:, 0])
    ratio = X1[:, 1] / X0[:, 1]
    assert ratio.min() >= 0.5 - 1e-12 and ratio.max() <= 1.5 + 1e-12
    assert ratio.min() < 0.55 and ratio.max() > 1.45  # noise is really applied
    # Hence some labels disagree with the line evaluated on the noisy points.
    assert np.any(y1 != (X1[:, 0] + X1[:, 1] > 0))


def test_linear_reproducible_from_seed():
    X1, y1 = generate_linear_2d(100, 1.0, 1.0, 0.0, 0.1, seed=42)
    X2, y2 = generate_linear_2d(100, 1.0, 1.0, 0.0, 0.1, seed=42)
    X3, _ = generate_linear_2d(100, 1.0, 1.0, 0.0, 0.1, seed=43)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    # float32 output is the float64 output rounded (same stream).
    X4, _ = generate_linear_2d(100, 1.0, 1.0, 0.0, 0.1, seed=42, dtype=np.float32)
    np.testing.assert_array_equal(X4, X1.astype(np.float32))


def test_linear_accepts_a_generator_and_advances_it():
    rng = np.random.default_rng(5)
    Xa, _ = generate_linear_2d(50, 1.0, 1.0, 0.0, 0.1, seed=rng)
    Xb, _ = generate_linear_2d(50, 1.0, 1.0, 0.0, 0.1, seed=rng)
    assert not np.array_equal(Xa, Xb)
    Xc, _ = generate_linear_2d(50, 1.0, 1.0, 0.0, 0.1, seed=5)
    np.testing.assert_array_equal(Xa, Xc)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"points": 0}, ValueError, "points"),
        ({"points": -3}, ValueError, "points"),
        ({"points": 2.5}, TypeError, "points"),
        ({"points": True}, TypeError, "points"),
        ({"a": "1"}, TypeError, "a must"),
        ({"c": float("nan")}, ValueError, "c must"),
        ({"noise_rate": -0.1}, ValueError, "noise_rate"),
        ({"dtype": np.int32}, TypeError, "dtype"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": "abc"}, TypeError, "seed"),
    ],
)
def test_linear_bad_arguments(kwargs, exc, match):
    args = {"points": 10, "a": 1.0, "b": 1.0, "c": 0.0, "noise_rate": 0.1}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        generate_linear_2d(**args)


# ---------------------------------------------------------------------------
# generate_nonlinear_2d


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_spiral_shapes_dtypes_and_labels(dtype):
    X, y = generate_nonlinear_2d(100, 2, 3, seed=0, dtype=dtype)
    assert X.shape == (300, 2) and X.dtype == dtype
    assert y.shape == (300,) and y.dtype == np.int64
    assert y.min() >= 0 and y.max() <= 2
    assert set(np.unique(y)) == {0, 1, 2}


def test_spiral_geometry_without_noise():
    n, k = 50, 4
    X, y = generate_nonlinear_2d(n, 2, k, noise_rate=0.0, label_noise=0.0, seed=3)
    for j in range(k):
        r = np.linspace(0, 1, n)
        t = np.linspace(4 * j, 4 * (j + 1), n)
        rows = slice(j * n, (j + 1) * n)
        np.testing.assert_allclose(X[rows, 0], r * np.sin(t) + 1, rtol=0, atol=1e-12)
        np.testing.assert_allclose(X[rows, 1], r * np.cos(t) + 1, rtol=0, atol=1e-12)
        assert np.all(y[rows] == j)


def test_spiral_noise_scales_only_the_second_coordinate():
    X0, _ = generate_nonlinear_2d(200, noise_rate=0.0, label_noise=0.0, seed=4)
    X1, _ = generate_nonlinear_2d(200, noise_rate=0.3, label_noise=0.0, seed=4)
    np.testing.assert_array_equal(X0[:, 0], X1[:, 0])
    ratio = X1[:, 1] / X0[:, 1]  # X0[:, 1] = r cos t + 1 >= 0, > 0 almost surely
    assert ratio.min() >= 0.7 - 1e-9 and ratio.max() <= 1.3 + 1e-9
    assert ratio.min() < 0.75 and ratio.max() > 1.25


def test_spiral_label_noise_fraction():
    n, k, p = 20000, 4, 0.2
    _, y = generate_nonlinear_2d(n, 2, k, noise_rate=0.0, label_noise=p, seed=11)
    clean = np.repeat(np.arange(k), n)
    changed = np.mean(y != clean)
    # Expected p*(K-1)/K = 0.15 over 80000 labels: the standard error is
    # about 0.0013, so +-0.01 is over 7 sigma.
    assert abs(changed - p * (k - 1) / k) < 0.01
    # Changed labels land on every class about equally (12000 labels, ~3000
    # each: a 20 % shortfall is far outside the noise).
    counts = np.bincount(y[y != clean], minlength=k)
    assert counts.min() > 0.8 * counts.sum() / k


def test_spiral_label_noise_zero_and_one():
    _, y0 = generate_nonlinear_2d(500, 2, 4, label_noise=0.0, seed=1)
    np.testing.assert_array_equal(y0, np.repeat(np.arange(4), 500))
    _, y1 = generate_nonlinear_2d(5000, 2, 4, label_noise=1.0, seed=1)
    # Every label re-drawn: agreement with the clean labels drops to ~1/K.
    agree = np.mean(y1 == np.repeat(np.arange(4), 5000))
    assert abs(agree - 0.25) < 0.03


def test_spiral_reproducible_from_seed():
    X1, y1 = generate_nonlinear_2d(100, seed=7)
    X2, y2 = generate_nonlinear_2d(100, seed=7)
    X3, y3 = generate_nonlinear_2d(100, seed=8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    assert not np.array_equal(y1, y3)


def test_spiral_single_point_per_class():
    X, y = generate_nonlinear_2d(1, 2, 3, noise_rate=0.0, label_noise=0.0, seed=0)
    np.testing.assert_array_equal(X, np.ones((3, 2)))  # r = 0 at the start of each arm
    np.testing.assert_array_equal(y, [0, 1, 2])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"n_per_class": 0}, ValueError, "n_per_class"),
        ({"n_per_class": 1.0}, TypeError, "n_per_class"),
        ({"dims": 3}, ValueError, "only 2-D"),
        ({"n_classes": 0}, ValueError, "n_classes"),
        ({"noise_rate": -1.0}, ValueError, "noise_rate"),
        ({"label_noise": 1.5}, ValueError, "label_noise"),
        ({"label_noise": -0.1}, ValueError, "label_noise"),
        ({"dtype": "int64"}, TypeError, "dtype"),
    ],
)
def test_spiral_bad_arguments(kwargs, exc, match):
    args = {"n_per_class": 10}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        generate_nonlinear_2d(**args)


# ---------------------------------------------------------------------------
# import_linear_data / import_nonlinear_data


def test_import_linear_draws_train_then_test_from_one_stream():
    out = import_linear_data(200, 1.0, 1.0, 0.0, 0.1, seed=9)
    assert len(out) == 4
    X_train, y_train, X_test, y_test = out
    rng = np.random.default_rng(9)
    Xa, ya = generate_linear_2d(200, 1.0, 1.0, 0.0, 0.1, seed=rng)
    Xb, yb = generate_linear_2d(200, 1.0, 1.0, 0.0, 0.1, seed=rng)
    np.testing.assert_array_equal(X_train, Xa)
    np.testing.assert_array_equal(y_train, ya)
    np.testing.assert_array_equal(X_test, Xb)
    np.testing.assert_array_equal(y_test, yb)
    assert not np.array_equal(X_train, X_test)


def test_import_nonlinear_draws_train_then_test_from_one_stream():
    X_train, y_train, X_test, y_test = import_nonlinear_data(
        100, 2, 3, 0.1, seed=9, dtype=np.float32, label_noise=0.3
    )
    assert X_train.dtype == np.float32 and X_train.shape == (300, 2)
    rng = np.random.default_rng(9)
    kw = {"noise_rate": 0.1, "label_noise": 0.3, "seed": rng, "dtype": np.float32}
    Xa, ya = generate_nonlinear_2d(100, 2, 3, **kw)
    Xb, yb = generate_nonlinear_2d(100, 2, 3, **kw)
    np.testing.assert_array_equal(X_train, Xa)
    np.testing.assert_array_equal(y_train, ya)
    np.testing.assert_array_equal(X_test, Xb)
    np.testing.assert_array_equal(y_test, yb)


def test_import_rejects_non_bool_plot_data():
    # Guards against the MATLAB argument order (plot_data before noise_rate).
    with pytest.raises(TypeError, match="plot_data"):
        import_linear_data(10, 1.0, 1.0, 0.0, 0.1, 0.2)
    with pytest.raises(TypeError, match="plot_data"):
        import_nonlinear_data(10, 2, 4, 0.1, "yes")


def test_import_plots():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    *data, figs = import_linear_data(100, 1.0, 1.0, 0.0, 0.1, plot_data=True, seed=0)
    assert len(data) == 4
    fig_train, fig_test = figs
    assert isinstance(fig_train, Figure) and isinstance(fig_test, Figure)
    assert fig_train.axes[0].get_title() == "Training data"
    assert fig_test.axes[0].get_title() == "Test data"
    lines = fig_train.axes[0].get_lines()
    assert [ln.get_marker() for ln in lines] == ["x", "o"]
    # Each class's points are drawn in its own line.
    X_train, y_train = data[0], data[1]
    np.testing.assert_array_equal(lines[0].get_xdata(), X_train[y_train == 0, 0])
    np.testing.assert_array_equal(lines[1].get_ydata(), X_train[y_train == 1, 1])

    *data, (fig_train, fig_test) = import_nonlinear_data(
        20, n_classes=6, plot_data=True, seed=0
    )
    lines = fig_test.axes[0].get_lines()
    assert len(lines) == 6
    assert [ln.get_marker() for ln in lines[:4]] == ["x", "o", ".", "+"]
    assert len({tuple(matplotlib.colors.to_rgb(ln.get_color())) for ln in lines}) == 6
    assert sum(len(ln.get_xdata()) for ln in lines) == 120
