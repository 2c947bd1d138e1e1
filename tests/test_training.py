"""Training end to end: minibatches, reproducibility, the thesis' spiral network."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import natverk
from natverk.main import spiral


@pytest.mark.parametrize("m,bs", [(10, 3), (12, 3), (1, 4), (128, 128), (257, 128)])
def test_minibatches_cover_every_example_once(m, bs):
    batches = natverk.minibatches(m, bs, np.random.default_rng(0))
    assert all(len(b) > 0 for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(m))
    assert len(batches) == -(-m // bs)


def test_minibatches_reject_bad_sizes():
    with pytest.raises(ValueError):
        natverk.minibatches(10, 0)
    with pytest.raises(ValueError):
        natverk.minibatches(0, 4)


@pytest.mark.parametrize("optimizer", ["vanilla", "momentum", "rmsprop", "adam"])
def test_every_optimizer_learns_and_same_seed_same_result(optimizer):
    X, y = natverk.generate_nonlinear_2d(40, 2, 3, 0.0, label_noise=0.0, seed=1)
    runs = []
    for _ in range(2):
        params = natverk.initialize_weights([2, 32, 3], seed=2)
        lr = {"vanilla": 0.5, "momentum": 0.5, "rmsprop": 3e-3, "adam": 1e-2}[optimizer]
        hist = natverk.train(params, X, y, 150, lr, 16, optimizer=optimizer, seed=3, verbose=0)
        runs.append((params, hist))
    assert runs[0][1]["loss"][-1] < 0.5 * runs[0][1]["loss"][0]
    for k in runs[0][0]:
        np.testing.assert_array_equal(runs[0][0][k], runs[1][0][k])


def test_spiral_network_reaches_the_measured_floor():
    """The thesis' main job at a reduced budget: 2-250-100-50-4, Adam, batch 128.

    Measured (seed 0, 600 epochs): train 0.905, test 0.78 on the noisy 200-point
    training set (50 per class, the size these floors were measured at; the
    main job's default is now Table 3's calibrated 200 per class); with 20 % of
    training labels scrambled, a network that fits > 0.9 of them has learnt the
    spirals and memorised some noise.
    """
    result = spiral(epochs=600, n_per_class=50, output=None, verbose=0, seed=0)
    assert result["train_accuracy"] >= 0.90
    assert result["test_accuracy"] >= 0.75


def test_spiral_float32_trains_like_float64():
    """Measured (seed 1, 300 epochs): float64 0.780 / 0.815, float32 0.795 / 0.825."""
    r64 = spiral(epochs=300, n_per_class=50, output=None, verbose=0, seed=1, dtype="float64")
    r32 = spiral(epochs=300, n_per_class=50, output=None, verbose=0, seed=1, dtype="float32")
    assert r32["parameters"]["W1"].dtype == np.float32
    assert r32["train_accuracy"] >= 0.75
    assert abs(r32["train_accuracy"] - r64["train_accuracy"]) <= 0.05


def test_cli_writes_the_decision_boundary(tmp_path):
    out = tmp_path / "boundary.png"
    proc = subprocess.run(
        [sys.executable, "-m", "natverk", "spiral", "--epochs", "30", "--quiet", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "train accuracy" in proc.stdout and "test accuracy" in proc.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_bad_arguments(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "natverk", "spiral", "--epochs", "0"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "must be >= 1" in proc.stderr
    with pytest.raises(ValueError, match="png"):
        spiral(epochs=1, output=tmp_path / "x.jpg", verbose=0)
