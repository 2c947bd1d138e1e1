"""Keras habits on Sequential (issue 14, item 2): summary(), predict_proba, validation_split,
Dense(units, activation=...) / Conv2D(filters, kernel_size, activation=...), plot_history,
verbose=2 and its default off a terminal, get/set_weights and add()."""

from __future__ import annotations

import io
import re
import sys

import natverk
import numpy as np
import pytest
from natverk.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid
from natverk.models import Sequential, _plan
from natverk.models.sequential import _as_verbose
from natverk.optimizers import SGD, Adam
from synthetic import bars


def blobs(n: int = 120, seed: int = 0, features: int = 4, classes: int = 3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = rng.normal(0, 3, (classes, features))
    return centers[y] + rng.normal(0, 1, (n, features)), y


def mlp(seed: int = 0, features: int = 4, classes: int = 3) -> Sequential:
    return Sequential(Dense(features, 16, seed=seed), ReLU(), Dense(16, classes, seed=seed + 1))


def params(model) -> dict[str, np.ndarray]:
    return {n: v for n, v, _ in model.parameters()}


def assert_same_weights(a, b) -> None:
    pa, pb = params(a), params(b)
    assert list(pa) == list(pb)
    for n in pa:
        np.testing.assert_array_equal(pa[n], pb[n], err_msg=n)


# ------------------------------------------------------------------ summary()


def test_summary_lists_layers_output_shapes_and_parameter_counts():
    model = Sequential(Conv2D(1, 4, 3, padding=1, seed=0), ReLU(), MaxPool2D(2), Flatten(), Dense(4 * 4 * 4, 2, seed=1))
    lines = []
    model.summary(input_shape=(1, 8, 8), print_fn=lines.append)
    text = "\n".join(lines)
    assert "Sequential: 5 layers, input (N, 1, 8, 8)" in text
    for row in (["0", "Conv2D(1->4)", "(N, 4, 8, 8)", "40"], ["2", "MaxPool2D", "(N, 4, 4, 4)", "0"],
                ["3", "Flatten", "(N, 64)", "0"], ["4", "Dense(64->2)", "(N, 2)", "130"]):
        assert any(re.split(r"\s{2,}", line.strip()) == row for line in lines), (row, text)
    # 36 + 128 weights decay with weight_decay; 4 + 2 biases do not
    assert "Total params: 170 (164 weights that weight_decay (L2) decays, 6 biases and batch-norm parameters)" in text


def test_summary_without_a_shape_shows_unknown_shapes_then_the_fit_shape():
    X, y = blobs()
    model = Sequential(Dense(16, activation="relu", seed=0), Dense(3, seed=1))
    lines = []
    model.summary(print_fn=lines.append)
    assert "? (built by the first input)" in "\n".join(lines) and "(N," not in "\n".join(lines)
    model.fit(X.astype(np.float32), y, 1, 32, verbose=0, seed=0)
    lines.clear()
    model.summary(print_fn=lines.append)  # the shape fit trained on
    text = "\n".join(lines)
    assert "input (N, 4)" in text and "(N, 16)" in text and "Total params: 131" in text


def test_summary_builds_lazy_layers_but_leaves_the_dtype_to_the_first_fit():
    X, y = blobs()
    model = Sequential(Dense(8, activation="relu", seed=0), Dense(3, seed=1))
    model.summary(input_shape=(4,), print_fn=lambda line: None)
    assert model.layers[0].built and all(layer._dtype is None for layer in model.layers)  # not fixed yet
    model.fit(X.astype(np.float32), y, 1, 32, verbose=0, seed=0)
    assert {v.dtype for v in params(model).values()} == {np.dtype(np.float32)}
    with pytest.raises(ValueError, match=r"summary: input_shape \(5, 1\) does not fit layer 1: Dense\(4->2\): "
                                         r"input has 5 features"):
        Sequential(Flatten(), Dense(4, 2)).summary(input_shape=(5, 1), print_fn=lambda line: None)


# ------------------------------------------------------------------ predict_proba


def test_predict_proba_is_the_softmax_the_sigmoid_or_refused_for_mse():
    X, y = blobs()
    model = mlp()
    model.fit(X, y, 3, 32, verbose=0, seed=0)
    p = model.predict_proba(X)
    z = model.predict_logits(X)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(p.argmax(axis=1), model.predict(X))
    binary = Sequential(Dense(4, 1, seed=0))
    binary.fit(X, (y == 1).astype(float), 3, 32, loss="BCE", verbose=0, seed=0)
    np.testing.assert_allclose(binary.predict_proba(X), 1 / (1 + np.exp(-binary.predict_logits(X))), rtol=1e-12)
    reg = Sequential(Dense(4, 1, seed=0))
    reg.fit(X, y.astype(float), 1, 32, loss="mse", verbose=0, seed=0)
    with pytest.raises(ValueError, match="trained with the mse loss, whose outputs are not probabilities"):
        reg.predict_proba(X)


# ------------------------------------------------------------------ validation_split


def test_validation_split_holds_out_the_last_examples_as_keras_does():
    X, y = blobs(100)
    a, b = mlp(), mlp()
    ha = a.fit(X, y, 3, 16, SGD(0.05), validation_split=0.2, seed=1, verbose=0)
    hb = b.fit(X[:80], y[:80], 3, 16, SGD(0.05), validation_data=(X[80:], y[80:]), seed=1, verbose=0)
    assert ha == hb and "val_loss" in ha
    assert_same_weights(a, b)


def test_validation_split_shuffled_is_seeded_and_disjoint():
    X, y = blobs(100)
    # tag each example with its index (an extra feature) to see which ones were held out
    Xi = np.column_stack([X, np.arange(100)])
    h1 = mlp(features=5).fit(Xi, y, 1, 16, validation_split=0.25, validation_shuffle=True, seed=3, verbose=0)
    h2 = mlp(features=5).fit(Xi, y, 1, 16, validation_split=0.25, validation_shuffle=True, seed=3, verbose=0)
    h3 = mlp(features=5).fit(Xi, y, 1, 16, validation_split=0.25, validation_shuffle=True, seed=4, verbose=0)
    assert h1 == h2 and h1["val_loss"] != h3["val_loss"]
    from natverk.models.sequential import _split

    Xt, yt, Xv, yv = _split(Xi, y, 0.25, True, 3)
    held = Xv[:, -1].astype(int)
    assert len(held) == 25 and len(Xt) == 75 and not set(held) & set(Xt[:, -1].astype(int))
    assert held.tolist() != list(range(75, 100))  # not simply the tail
    np.testing.assert_array_equal(yv, y[held])
    # fit trained on exactly that split
    ref = mlp(features=5).fit(Xt, yt, 1, 16, validation_data=(Xv, yv), seed=3, verbose=0)
    assert ref == h1


def test_validation_split_errors_name_the_argument():
    X, y = blobs(10)
    with pytest.raises(ValueError, match="give validation_data or validation_split, not both"):
        mlp().fit(X, y, 1, validation_split=0.2, validation_data=(X, y), verbose=0)
    with pytest.raises(ValueError, match=r"validation_split=0.95 of 10 examples leaves no example to train on"):
        mlp().fit(X, y, 1, validation_split=0.95, verbose=0)
    with pytest.raises(ValueError, match=r"validation_split must be a fraction in \[0, 1\), got 1.5"):
        mlp().fit(X, y, 1, validation_split=1.5, verbose=0)


# ------------------------------------------------------------------ Dense / Conv2D shorthands


@pytest.mark.parametrize("through_plan", [True, False], ids=["plan", "layer-loop"])
def test_dense_units_activation_trains_bit_identically_to_dense_plus_relu(monkeypatch, through_plan):
    monkeypatch.setattr(_plan, "ENABLED", through_plan)
    X, y = blobs()
    short = Sequential(Dense(16, activation="ReLU", seed=0), Dense(3, activation=None, seed=1))
    long = mlp()
    hs = short.fit(X, y, 4, 16, Adam(1e-2), seed=5, verbose=0)
    hl = long.fit(X, y, 4, 16, Adam(1e-2), seed=5, verbose=0)
    assert hs == hl
    assert short.layers[0].in_features == 4 and [n for n in params(short)] == ["0.W", "0.b", "1.W", "1.b"]
    np.testing.assert_array_equal(short.layers[0].W, long.layers[0].W)
    np.testing.assert_array_equal(short.layers[1].W, long.layers[2].W)
    np.testing.assert_array_equal(short.predict_logits(X), long.predict_logits(X))


def test_the_plan_runs_the_fused_activation():
    X, _ = blobs()
    model = Sequential(Dense(16, activation="sigmoid", seed=0), Dense(3, seed=1))
    model.forward(X[:1], training=False)  # builds the lazy layer
    mp = _plan.build_plan(model, Adam(), natverk.losses.CrossEntropy(), (4,), np.dtype(np.float64))
    assert mp is not None
    ref = Sequential(Dense(4, 16, seed=0), Sigmoid(), Dense(16, 3, seed=1))
    np.testing.assert_array_equal(mp.forward(X), ref.forward(X, training=False))


def test_conv2d_filters_kernel_activation_shorthand_matches_the_full_form():
    X, y = bars(48, seed=1)
    short = Sequential(Conv2D(4, 3, padding=1, activation="relu", seed=0), MaxPool2D(2), Flatten(),
                       Dense(2, seed=1))
    full = Sequential(Conv2D(1, 4, 3, padding=1, seed=0), ReLU(), MaxPool2D(2), Flatten(), Dense(4 * 4 * 4, 2, seed=1))
    hs = short.fit(X, y, 2, 16, Adam(1e-2), seed=0, verbose=0)
    hf = full.fit(X, y, 2, 16, Adam(1e-2), seed=0, verbose=0)
    assert hs == hf
    assert short.layers[0].in_channels == 1 and short.layers[3].in_features == 64
    np.testing.assert_array_equal(short.layers[0].W, full.layers[0].W)
    assert Conv2D(filters=4, kernel_size=3).config()["filters"] == 4


def test_shorthand_layers_save_and_load_built_or_not(tmp_path):
    X, y = blobs()
    model = Sequential(Dense(8, activation="tanh", seed=0), Dense(3, seed=1))
    model.fit(X, y, 2, 32, verbose=0, seed=0)
    loaded = natverk.load(model.save(tmp_path / "m.npz"))
    assert loaded.layers[0].activation == "tanh" and loaded.layers[0].in_features == 4
    np.testing.assert_array_equal(loaded.predict_logits(X), model.predict_logits(X))
    unbuilt = Sequential(Dense(8, activation="relu", seed=2), Dense(3, seed=3))
    again = type(unbuilt).from_config(unbuilt.config())
    assert not again.layers[0].built and again.layers[0].config() == {"units": 8, "bias": True, "seed": 2,
                                                                       "activation": "relu"}
    again.fit(X, y, 1, 32, verbose=0, seed=0)
    unbuilt.fit(X, y, 1, 32, verbose=0, seed=0)
    assert_same_weights(again, unbuilt)


def test_shorthand_argument_mistakes_are_named():
    with pytest.raises(TypeError, match=r"out_features must be an integer, got 'relu'; for an activation write "
                                        r"Dense\(..., activation='relu'\)"):
        Dense(10, "relu")
    with pytest.raises(TypeError, match="give out_features or units, not both"):
        Dense(4, 3, units=3)
    with pytest.raises(TypeError, match=r"Dense needs its size: Dense\(units\) or Dense\(in_features, out_features\)"):
        Dense()
    with pytest.raises(TypeError, match="in_features must be an integer, got None"):
        Dense(None, 3)  # an explicit None is still a bad size, not the shorthand
    with pytest.raises(ValueError, match=r"activation must be one of .*got 'softplus'"):
        Conv2D(4, 3, activation="softplus")
    with pytest.raises(ValueError, match=r"Dense\(\?->3\): expected a 2-D input \(N, in_features\), got shape "
                                         r"\(2, 2, 2\); put a Flatten\(\) before Dense"):
        Dense(3).forward(np.zeros((2, 2, 2)))


# ------------------------------------------------------------------ plot_history


def test_plot_history_returns_a_figure_with_training_and_validation_curves():
    from matplotlib.figure import Figure

    X, y = blobs()
    model = mlp()
    h = model.fit(X, y, 4, 32, validation_split=0.25, seed=0, verbose=0,
                  lr_schedule=natverk.schedules.ExponentialDecay(1e-2), early_stopping=2)
    fig = natverk.plot_history(h, title="blobs")
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "learning rate"]
    loss_ax = fig.axes[0]
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels[:2] == ["training", "validation"] and labels[2].startswith("best epoch")
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_ydata(), h["loss"])
    np.testing.assert_array_equal(loss_ax.get_lines()[1].get_ydata(), h["val_loss"])
    fig.savefig(io.BytesIO(), format="png")  # it renders headless
    with pytest.raises(ValueError, match="history has no 'loss' list"):
        natverk.plot_history({"epoch": [1]})
    with pytest.raises(ValueError, match=r"history\['val_loss'\] has 1 values, but history\['epoch'\] has 2 epochs"):
        natverk.plot_history({"epoch": [1, 2], "loss": [1.0, 0.5], "val_loss": [1.0]})


# ------------------------------------------------------------------ verbose


def test_verbose_2_prints_one_line_per_epoch_and_no_progress_bar(capsys):
    X, y = blobs()
    mlp().fit(X, y, 3, 32, validation_split=0.25, seed=0, verbose=2)
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 3 and err == ""
    assert lines[0].startswith("Epoch 1/3 - ") and lines[2].startswith("Epoch 3/3 - ")
    for key in ("loss: ", "accuracy: ", "val_loss: ", "val_accuracy: "):
        assert key in lines[1]


def test_verbose_defaults_to_lines_when_output_is_not_a_terminal(capsys, monkeypatch):
    X, y = blobs()
    mlp().fit(X, y, 2, 32, seed=0)  # captured streams are not terminals: one line per epoch
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 2 and "Epoch 2/2" in out and err == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert _as_verbose("auto") == 1  # in a terminal: the progress bar
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # stderr (tqdm's stream) to a file: lines
    assert _as_verbose("auto") == 2
    with pytest.raises(ValueError, match=r"verbose must be 0 \(silent\), 1 \(a progress bar\), 2 \(one line per "
                                         r"epoch\) or 'auto', got 3"):
        _as_verbose(3)


# ------------------------------------------------------------------ get_weights / set_weights / add


def test_set_weights_copies_a_trained_model_and_marks_it_ready():
    X, y = blobs()
    trained = mlp()
    trained.fit(X, y, 2, 32, seed=0, verbose=0)
    fresh = mlp(seed=9)
    assert not fresh.weights_ready
    fresh.set_weights(trained.get_weights())
    assert fresh.weights_ready
    np.testing.assert_array_equal(fresh.predict_logits(X), trained.predict_logits(X))
    with pytest.raises(ValueError, match=r"missing \['2.b'\]"):
        fresh.set_weights({k: v for k, v in trained.get_weights().items() if k != "2.b"})
    with pytest.raises(ValueError, match=r"weights\['0.W'\] has shape \(3, 16\), the model's has \(4, 16\)"):
        fresh.set_weights({**trained.get_weights(), "0.W": np.zeros((3, 16))})


def test_add_appends_layers():
    X, y = blobs()
    model = Sequential().add(Dense(8, activation="relu", seed=0)).add(Dense(3, seed=1))
    assert len(model) == 2
    h = model.fit(X, y, 2, 32, seed=0, verbose=0)
    assert len(h["loss"]) == 2
    with pytest.raises(TypeError, match="add\\(\\) takes a natverk Layer, got str"):
        model.add("relu")
