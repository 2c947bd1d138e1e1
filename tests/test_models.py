"""natverk.models.Sequential: fit / predict / evaluate, learning a small image
task, exact save -> load -> resume, and robust loading of bad files."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import natverk
from natverk.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Residual,
)
from natverk.losses import CrossEntropy
from natverk.models import Sequential, load
from natverk.optimizers import SGD, Adam, Momentum
from synthetic import bars


def small_cnn(seed: int = 0, dropout: bool = False) -> Sequential:
    layers = [
        Conv2D(1, 4, 3, padding=1, seed=seed),
        BatchNorm2D(4),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(64, 16, seed=seed + 1),
        BatchNorm1D(16),
        ReLU(),
    ]
    if dropout:
        layers.append(Dropout(0.3, seed=seed + 2))
    layers.append(Dense(16, 2, seed=seed + 3))
    return Sequential(*layers)


def all_arrays(model: Sequential) -> dict[str, np.ndarray]:
    out = {f"param/{n}": v for n, v, _ in model.parameters()}
    out.update({f"buffer/{n}": v for n, v in model.buffers()})
    if model.optimizer is not None:
        for n, st in model.optimizer.state_dict()["state"].items():
            out.update({f"opt/{n}/{k}": a for k, a in st.items()})
    return out


def assert_models_identical(a: Sequential, b: Sequential) -> None:
    arrays_a, arrays_b = all_arrays(a), all_arrays(b)
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        assert arrays_a[k].dtype == arrays_b[k].dtype, k
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k], err_msg=k)


# ------------------------------------------------------------------ the model API


def test_parameters_are_named_by_layer_index():
    model = Sequential(Conv2D(1, 2, 3, seed=0), BatchNorm2D(2), ReLU(), Residual(Conv2D(2, 2, 1)), GlobalAvgPool2D(), Dense(2, 3))
    assert [n for n, _, _ in model.parameters()] == ["0.W", "0.b", "1.gamma", "1.beta", "3.0.W", "3.0.b", "5.W", "5.b"]
    assert [n for n, _ in model.buffers()] == ["1.running_mean", "1.running_var"]
    assert all(g is None for _, _, g in model.parameters())
    model.backward(np.ones_like(model.forward(np.ones((2, 1, 5, 5)))))
    assert all(g.shape == v.shape for _, v, g in model.parameters())


def test_train_eval_modes_reach_every_layer():
    model = Sequential(Dense(3, 3), BatchNorm1D(3), Residual(Dropout(0.5, seed=1)))
    x = np.random.default_rng(0).standard_normal((6, 3))
    model.eval()
    assert not model.training and not model[2].f[0].training
    a = model.forward(x)
    np.testing.assert_array_equal(model.forward(x), a)  # eval: deterministic, stats frozen
    assert int(model[2].f[0].counter) == 0
    model.train()
    assert model[1].training and model[2].f[0].training
    assert not np.array_equal(model.forward(x), a)


def test_predict_and_evaluate_run_in_eval_mode_in_batches():
    X, y = bars(50, seed=1)
    model = small_cnn(dropout=True)
    model.train()
    model.weights_ready = True  # predict with the initial weights on purpose (no fit here)
    p = model.predict(X, batch_size=7)
    assert p.dtype == np.int64 and p.shape == (50,) and set(np.unique(p)) <= {0, 1}
    logits = model.predict_logits(X, batch_size=7)
    np.testing.assert_array_equal(logits, model.predict_logits(X, batch_size=1000))  # batch-size independent
    np.testing.assert_array_equal(p, np.argmax(logits, axis=1))
    assert model.training  # predict does not switch the model's mode
    loss, acc = model.evaluate(X, y)
    assert loss == pytest.approx(CrossEntropy().forward(logits, y))
    assert acc == np.mean(p == y)


class Recorder(Layer):
    """Passes its input through and remembers which examples (feature 0 is the id) it saw."""

    def __init__(self):
        super().__init__()
        self.seen: list[np.ndarray] = []

    def forward(self, x, training=None):
        if self._mode(training):
            self.seen.append(np.asarray(x)[:, 0].astype(int))
        return self._remember_output(np.asarray(x, dtype=float))

    def backward(self, grad):
        return self._grad(grad)


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_minibatches_cover_every_example_once_per_epoch(shuffle):
    N, bs = 23, 5
    X = np.column_stack([np.arange(N), np.zeros(N)]).astype(float)
    y = np.arange(N) % 2
    rec = Recorder()
    model = Sequential(rec, Dense(2, 2, seed=0))
    history = model.fit(X, y, epochs=3, batch_size=bs, optimizer=SGD(0.0), shuffle=shuffle, seed=4, verbose=0)
    assert [len(b) for b in rec.seen] == [5, 5, 5, 5, 3] * 3
    epochs = [np.concatenate(rec.seen[i * 5 : (i + 1) * 5]) for i in range(3)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(N))
    if shuffle:
        assert not np.array_equal(epochs[0], epochs[1])
        # epoch e's order is the permutation of default_rng([seed, e])
        np.testing.assert_array_equal(epochs[2], np.random.default_rng([4, 2]).permutation(N))
    else:
        np.testing.assert_array_equal(epochs[1], np.arange(N))
    assert history["epoch"] == [1, 2, 3] and len(history["loss"]) == 3 and "val_loss" not in history
    assert model.epoch == 3 and model.seed == 4 and isinstance(model.optimizer, SGD)


def test_fit_history_progress_bar_and_validation(capsys):
    X, y = bars(64, seed=2)
    model = small_cnn()
    h = model.fit(X, y, 2, 16, Momentum(0.05), validation_data=bars(32, seed=3), seed=0, verbose=1)
    assert set(h) == {"epoch", "loss", "data_loss", "penalty", "accuracy", "val_loss", "val_accuracy"}
    assert h["penalty"] == [0.0, 0.0] and h["loss"] == h["data_loss"]  # no weight decay: no penalty
    assert all(len(v) == 2 for v in h.values())
    assert all(0 <= a <= 1 for a in h["accuracy"] + h["val_accuracy"])
    err = capsys.readouterr().err
    assert "8/8" in err and "val_acc" in err
    model.fit(X, y, 1, 16, verbose=0)
    assert capsys.readouterr().err == ""


def test_fit_mse_and_bce():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 3))
    t = X @ np.array([[1.0], [-2.0], [0.5]])
    reg = Sequential(Dense(3, 1, seed=0))
    h = reg.fit(X, t, 30, 16, SGD(0.1), loss="mse", seed=0, verbose=0)
    assert h["loss"][-1] < 1e-3 * h["loss"][0]
    labels = (t[:, 0] > 0).astype(float)
    clf = Sequential(Dense(3, 1, seed=0))
    h = clf.fit(X, labels, 30, 16, Adam(0.05), loss="bce", seed=0, verbose=0)
    assert h["accuracy"][-1] > 0.95
    np.testing.assert_array_equal(clf.predict(X), (clf.predict_logits(X)[:, 0] > 0).astype(int))
    assert clf.evaluate(X, labels, loss="bce")[1] > 0.95


def test_a_small_cnn_learns_horizontal_vs_vertical_bars():
    X, y = bars(512, seed=10)
    X_val, y_val = bars(256, seed=11)
    model = small_cnn(seed=3, dropout=True)
    start = time.perf_counter()
    h = model.fit(X, y, 6, 32, Adam(0.01), validation_data=(X_val, y_val), seed=0, verbose=0)
    elapsed = time.perf_counter() - start
    loss, acc = model.evaluate(X_val, y_val)
    assert acc >= 0.95, h
    assert h["loss"][-1] < h["loss"][0]
    assert elapsed < 10


def test_float32_training():
    X, y = bars(128, seed=12)
    model = small_cnn(seed=4)
    model.fit(X.astype(np.float32), y, 6, 16, Adam(0.01), seed=0, verbose=0)
    assert {v.dtype for _, v, _ in model.parameters()} == {np.dtype(np.float32)}
    assert model.predict_logits(X).dtype == np.float32
    assert model.evaluate(X, y)[1] > 0.8


def test_fit_rejects_bad_data_before_touching_the_weights():
    X, y = bars(20, seed=13)
    model = small_cnn()
    before = {n: v.copy() for n, v, _ in model.parameters()}
    with pytest.raises(ValueError, match=r"y\[3\] = 2 is not a class label in 0..1"):
        model.fit(X, np.where(np.arange(20) == 3, 2, y), 1, 4, verbose=0)
    with pytest.raises(ValueError, match="X and y have different lengths: X has 20 examples, y has 10"):
        model.fit(X, y[:10], 1, 4, verbose=0)
    with pytest.raises(ValueError, match="layer 0: Conv2D.*2 channels"):
        model.fit(np.repeat(X, 2, axis=1), y, 1, 4, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.fit(X, y, 1, 0, verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        model.fit(X, y, 1, 4, loss="hinge", verbose=0)
    for n, v, _ in model.parameters():
        np.testing.assert_array_equal(v, before[n])
    X_nan = X.copy()
    X_nan[5, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(X_nan, y, 1, 20, verbose=0, shuffle=False)


# ------------------------------------------------------------------ save / load


def test_save_load_round_trip(tmp_path):
    X, y = bars(64, seed=14)
    model = Sequential(
        Conv2D(1, 4, 3, padding=1, groups=1, seed=1),
        BatchNorm2D(4),
        ReLU(),
        Residual(Conv2D(4, 4, 3, padding=1, seed=2), ReLU()),
        MaxPool2D(2),
        Dropout(0.2, seed=3),
        GlobalAvgPool2D(),
        Dense(4, 2, bias=False, seed=4),
    )
    model.fit(X.astype(np.float32), y, 2, 16, Adam(0.01, weight_decay=1e-4), seed=5, verbose=0)
    model.eval()
    path = tmp_path / "model.npz"
    assert model.save(path) == str(path)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left behind
    with np.load(path, allow_pickle=False) as npz:  # one plain .npz, no pickles
        meta = json.loads(str(npz["__natverk__"]))
    assert [spec["class"] for spec in meta["layers"]] == [
        "Conv2D", "BatchNorm2D", "ReLU", "Residual", "MaxPool2D", "Dropout", "GlobalAvgPool2D", "Dense"
    ]
    loaded = natverk.load(path)
    assert isinstance(loaded, Sequential) and not loaded.training
    assert_models_identical(model, loaded)
    assert loaded.optimizer.config() == model.optimizer.config() and loaded.optimizer.iterations == 8
    assert loaded.epoch == 2 and loaded.seed == 5 and isinstance(loaded.loss, CrossEntropy)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded.predict_logits(X), model.predict_logits(X))
    # saving again replaces the file atomically
    model.fit(X, y, 1, 16, verbose=0)
    model.save(path)
    assert natverk.load(path).epoch == 3 and sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_save_load_resume_is_bit_identical_to_uninterrupted_training(tmp_path):
    X, y = bars(96, seed=20)
    uninterrupted = small_cnn(seed=7, dropout=True)
    uninterrupted.fit(X, y, 4, 16, Adam(0.01), seed=11, verbose=0)

    first = small_cnn(seed=7, dropout=True)
    first.fit(X, y, 2, 16, Adam(0.01), seed=11, verbose=0)
    first.save(tmp_path / "half.npz")
    resumed = natverk.load(tmp_path / "half.npz")
    resumed.fit(X, y, 2, 16, verbose=0)  # continues with the saved optimizer, seed and epoch count
    assert resumed.epoch == 4
    assert_models_identical(uninterrupted, resumed)

    # fitting in two calls without saving is the same as well
    first.fit(X, y, 2, 16, verbose=0)
    assert_models_identical(uninterrupted, first)


def _write_npz(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _saved(tmp_path):
    X, y = bars(16, seed=30)
    model = Sequential(Conv2D(1, 2, 3, seed=0), BatchNorm2D(2), ReLU(), Flatten(), Dense(72, 2, seed=1))
    model.fit(X, y, 1, 8, SGD(0.01), seed=0, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return model, path, arrays, X


def test_load_rejects_inconsistent_files(tmp_path):
    model, path, arrays, _ = _saved(tmp_path)
    bad = tmp_path / "bad.npz"
    meta = json.loads(str(arrays["__natverk__"]))

    def expect(match, **changes):
        a = {k: v for k, v in arrays.items() if changes.get(k, 0) is not None}
        a.update({k: v for k, v in changes.items() if v is not None})
        _write_npz(bad, a)
        with pytest.raises(ValueError, match=match):
            natverk.load(bad)

    expect(r"lacks the array 'param/4.W'", **{"param/4.W": None})
    expect(r"lacks the array 'buffer/1.running_var'", **{"buffer/1.running_var": None})
    expect(r"'param/0.W' has shape \(2, 1, 2, 2\)", **{"param/0.W": np.zeros((2, 1, 2, 2))})
    expect(r"'param/0.b' has dtype float32", **{"param/0.b": np.zeros(2, np.float32)})
    expect(r"'param/4.b' contains NaN", **{"param/4.b": np.array([0.0, np.nan])})
    expect(r"unexpected arrays \['param/9.W'\]", **{"param/9.W": np.zeros(2)})
    expect(r"unexpected optimizer array", **{"optimizer/0.W/v": np.zeros((2, 1, 3, 3))})
    expect(r"no __natverk__ entry", __natverk__=None)
    expect(r"architecture JSON is corrupt", __natverk__=np.array("{not json"))
    for change, match in [
        (lambda m: m["layers"][2].update({"class": "Softplus"}), "unknown layer class 'Softplus'"),
        (lambda m: m["layers"][0]["config"].update({"stride": 0}), "cannot build Conv2D.*stride must be >= 1"),
        (lambda m: m["layers"][0]["config"].update({"bogus": 1}), "cannot build Conv2D.*bogus"),
        (lambda m: m.update({"version": 99}), "version 99 is not supported"),
        (lambda m: m.update({"optimizer": {"class": "Lion", "config": {}, "iterations": 1}}), "unknown optimizer"),
        (lambda m: m.update({"epoch": -1}), "epoch count"),
    ]:
        m = json.loads(json.dumps(meta))
        change(m)
        expect(match, __natverk__=np.array(json.dumps(m)))
    natverk.load(path)  # the original is still fine


def test_load_handles_corrupt_and_foreign_files(tmp_path):
    model, path, arrays, X = _saved(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    with pytest.raises(FileNotFoundError):
        natverk.load(tmp_path / "missing.npz")
    for cut in (0, 10, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cannot load model"):
            natverk.load(bad)
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        natverk.load(bad)
    np.save(bad, np.zeros(3))  # a .npy, not an .npz
    os.replace(str(bad) + ".npy", bad)
    with pytest.raises(ValueError, match="single array"):
        natverk.load(bad)
    with open(bad, "wb") as f:  # a pickled object array: refused (allow_pickle=False)
        np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot load model"):
        natverk.load(bad)
    # flip single bytes all over the file: either a clean ValueError or (where the
    # byte does not matter, e.g. a zip timestamp) exactly the saved model
    expected = model.predict_logits(X)
    step = max(1, len(data) // 97)
    for pos in range(0, len(data), step):
        corrupted = bytearray(data)
        corrupted[pos] ^= 0x5A
        bad.write_bytes(bytes(corrupted))
        try:
            loaded = natverk.load(bad)
        except ValueError as err:
            assert "cannot load model" in str(err)
        else:
            np.testing.assert_array_equal(loaded.predict_logits(X), expected)
