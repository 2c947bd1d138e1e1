"""Messages that name the user's mistake (issue 14, item 3): the user's arguments (X and y,
validation_data) and shapes instead of internal classes and probes, an NCHW hint for
channels-last images, an argmax hint for one-hot labels, names read case-insensitively
everywhere, predict before training and an empty model refused. Each test asserts the text."""

from __future__ import annotations

import re

import natverk
import numpy as np
import pytest
from natverk.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from natverk.losses import CrossEntropy, get_loss
from natverk.models import Sequential


def blobs(n: int = 100, features: int = 4, classes: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return rng.normal(0, 1, (n, features)) + 2 * y[:, None], y


def mlp(features: int = 4, classes: int = 2) -> Sequential:
    return Sequential(Dense(features, 8, seed=0), ReLU(), Dense(8, classes, seed=1))


def cnn() -> Sequential:
    return Sequential(Conv2D(1, 4, 3, padding=1, seed=0), ReLU(), MaxPool2D(2), Flatten(), Dense(4 * 14 * 14, 2, seed=1))


def images(n: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28)), rng.integers(0, 2, n)


def raises(exc, text: str):
    """pytest.raises matching ``text`` literally (the messages hold brackets and dots)."""
    return pytest.raises(exc, match=re.escape(text))


# ------------------------------------------------------------------ X and y, validation_data


def test_x_and_y_of_different_lengths_name_both_arguments():
    X, y = blobs(100)
    with raises(ValueError, "X and y have different lengths: X has 100 examples, y has 90"):
        mlp().fit(X, y[:90], 1, verbose=0)
    with raises(ValueError, "X and y have different lengths: X has 100 examples, y has 90"):
        mlp(classes=1).fit(X, y[:90].astype(float), 1, loss="mse", verbose=0)  # any loss: checked before it
    model = mlp()
    model.fit(X, y, 1, verbose=0)
    with raises(ValueError, "X and y have different lengths: X has 100 examples, y has 3"):
        model.evaluate(X, y[:3])


def test_bad_labels_name_y_not_the_loss_class():
    X, y = blobs(20)
    y = y.copy()
    y[3] = 2
    with raises(ValueError, "y[3] = 2 is not a class label in 0..1 (the model has 2 outputs)"):
        mlp().fit(X, y, 1, verbose=0)
    with raises(TypeError, "y must be given: the targets of X, one per example"):
        mlp().fit(X, None, 1, verbose=0)
    with raises(TypeError, "y must be integer class labels, got dtype <U3"):
        mlp().fit(X, np.array(["cat"] * 20), 1, verbose=0)


def test_validation_data_mistakes_name_validation_data():
    X, y = blobs(100)
    Xv, yv = blobs(30, seed=1)
    with raises(ValueError, "validation_data: X_val and y_val have different lengths: X_val has 30 examples, "
                            "y_val has 20"):
        mlp().fit(X, y, 1, validation_data=(Xv, yv[:20]), verbose=0)
    bad = yv.copy()
    bad[5] = 7
    with raises(ValueError, "validation_data: y_val[5] = 7 is not a class label in 0..1 (the model has 2 outputs)"):
        mlp().fit(X, y, 1, validation_data=(Xv, bad), verbose=0)
    with raises(ValueError, "validation_data: X_val has examples of shape (3,), but the model trains on examples of "
                            "shape (4,) (X has shape (100, 4))"):
        mlp().fit(X, y, 1, validation_data=(Xv[:, :3], yv), verbose=0)
    with raises(ValueError, "validation_data must be a pair (X_val, y_val), got tuple of length 3"):
        mlp().fit(X, y, 1, validation_data=(Xv, yv, yv), verbose=0)
    with raises(ValueError, "validation_data: X_val contains NaN or Inf (first at index (0, 0))"):
        mlp().fit(X, y, 1, validation_data=(np.where(Xv == Xv[0, 0], np.nan, Xv), yv), verbose=0)


def test_a_refused_fit_leaves_the_weights_alone():
    X, y = blobs(100)
    model = mlp()
    before = model.get_weights()
    with pytest.raises(ValueError):
        model.fit(X, y, 1, validation_data=(X, y[:5]), verbose=0)
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


# ------------------------------------------------------------------ shapes: the user's, not a probe's


def test_conv_input_of_three_axes_shows_the_users_shape_and_the_fix():
    X, y = images()
    with raises(ValueError, "layer 0: Conv2D(1->4): X has shape (20, 28, 28), but Conv2D takes 4-D images "
                            "(N, C, H, W): for one channel pass X[:, None] (shape (20, 1, 28, 28))"):
        cnn().fit(X[:, 0], y, 1, verbose=0)
    try:
        cnn().fit(X[:, 0], y, 1, verbose=0)
    except ValueError as err:
        assert "(1, 28, 28)" not in str(err)  # the one-example probe's shape, which the user never made


def test_channels_last_images_get_the_transpose_hint():
    X, y = images()
    nhwc = X.transpose(0, 2, 3, 1)
    with raises(ValueError, "layer 0: Conv2D(1->4): X has shape (20, 28, 28, 1): 28 channels on axis 1, expected "
                            "in_channels=1; X of shape (20, 28, 28, 1) looks channels-last (N, H, W, C), but "
                            "natverk's layers take NCHW (N, C, H, W): pass X.transpose(0, 3, 1, 2)"):
        cnn().fit(nhwc, y, 1, verbose=0)
    trained = cnn()
    trained.fit(X, y, 1, verbose=0)
    with raises(ValueError, "pass X.transpose(0, 3, 1, 2)"):
        trained.predict(nhwc)
    with raises(ValueError, "Conv2D(3->8): input has 32 channels, expected in_channels=3; x of shape (2, 32, 32, 3) "
                            "looks channels-last (N, H, W, C), but natverk's layers take NCHW (N, C, H, W): "
                            "pass x.transpose(0, 3, 1, 2)"):
        Conv2D(3, 8, 3).forward(np.zeros((2, 32, 32, 3)))


def test_dense_input_mistakes_name_x_and_the_fix():
    X, y = images()
    with raises(ValueError, "layer 0: Dense(4->8): X has shape (20, 1, 28, 28), but Dense takes (N, features): "
                            "flatten the examples with X.reshape(len(X), -1) or start the model with Flatten()"):
        mlp().fit(X, y, 1, verbose=0)
    Xb, yb = blobs(10, features=5)
    with raises(ValueError, "layer 0: Dense(4->8): X has 5 features per example (shape (10, 5)), expected "
                            "in_features=4"):
        mlp().fit(Xb, yb, 1, verbose=0)


def test_an_error_deeper_in_the_model_names_the_users_batch_not_the_probe():
    X, y = images()
    model = Sequential(Conv2D(1, 4, 3, seed=0), Flatten(), Dense(10, 2, seed=1))  # 4*26*26 features, not 10
    with raises(ValueError, "layer 2: Dense(10->2): input has 2704 features, expected in_features=10"):
        model.fit(X, y, 1, verbose=0)


# ------------------------------------------------------------------ one-hot labels


def test_one_hot_labels_get_the_argmax_hint():
    X, y = blobs(20)
    onehot = np.eye(2)[y]
    with raises(ValueError, "y looks one-hot encoded (shape (20, 2)); cross-entropy takes integer class labels 0..K-1: "
                            "pass y.argmax(axis=1)"):
        mlp().fit(X, onehot, 1, verbose=0)
    with raises(ValueError, "CrossEntropy: targets looks one-hot encoded (shape (20, 2)); cross-entropy takes integer "
                            "class labels 0..K-1: pass targets.argmax(axis=1)"):
        CrossEntropy().forward(np.zeros((20, 2)), onehot.astype(np.int64))
    # one-hot targets are right for mse: no hint there
    h = mlp().fit(X, onehot, 1, loss="mse", verbose=0)
    assert len(h["loss"]) == 1


# ------------------------------------------------------------------ names in any case


@pytest.mark.parametrize("name", ["ReLU", "RELU", "relu", "Tanh", "SIGMOID", "logistic"])
def test_activation_names_are_read_case_insensitively(name):
    X, y = blobs(20)
    layer = Dense(4, 3, activation=name, seed=0)
    assert layer.activation in ("relu", "tanh", "sigmoid")
    params = natverk.initialize_weights([4, 5, 2], seed=0)
    probs, _, _ = natverk.forward_propagation(X, y, params, 0.0, name)
    ref, _, _ = natverk.forward_propagation(X, y, params, 0.0, layer.activation)
    np.testing.assert_array_equal(probs, ref)


def test_the_lambda_search_reads_activation_names_in_any_case_too():
    X, y = blobs(20)
    trial = natverk.search.MLPTrial(X, y, X, y, X, y, [4, 3, 2], epochs=1, learning_rate=0.1, activation="ReLU")
    assert trial.activation == "relu"


def test_the_command_line_reads_activation_names_in_any_case_too():
    from natverk.__main__ import build_parser

    assert build_parser().parse_args(["spiral", "--activation", "ReLU"]).activation == "relu"


def test_unknown_activation_lists_what_is_accepted():
    with raises(ValueError, "activation must be one of ['logistic', 'relu', 'sigmoid', 'tanh'] (any case), got "
                            "'softplus'"):
        natverk.forward_propagation(np.zeros((2, 4)), None, natverk.initialize_weights([4, 2], seed=0), 0.0,
                                    "softplus")
    with raises(ValueError, "activation must be one of ['logistic', 'relu', 'sigmoid', 'tanh', 'identity', 'linear', "
                            "'none', 'None'] (any case), got 'swish'"):
        Dense(3, activation="swish")


@pytest.mark.parametrize("name, cls", [("CrossEntropy", "CrossEntropy"), ("CROSS_ENTROPY", "CrossEntropy"),
                                       ("categorical_crossentropy", "CrossEntropy"), ("cross-entropy", "CrossEntropy"),
                                       ("MSE", "MSE"), ("mean_squared_error", "MSE"), ("BCE", "BCE"),
                                       ("Binary_Crossentropy", "BCE")])
def test_loss_names_are_read_case_insensitively(name, cls):
    assert type(get_loss(name)).__name__ == cls


def test_losses_and_optimizers_alike_in_fit():
    X, y = blobs(20)
    h = mlp().fit(X, y, 1, optimizer="Adam", loss="CrossEntropy", verbose=0)
    assert len(h["loss"]) == 1
    with raises(ValueError, "unknown loss 'hinge'; choose one of ['bce', 'cross_entropy', 'mse'] (any case) or pass a "
                            "Loss object"):
        mlp().fit(X, y, 1, loss="hinge", verbose=0)


# ------------------------------------------------------------------ predict before training, empty models


PREDICT_FIRST = ("predict before any training: the weights are still the random initial ones. Train with "
                 "model.fit(X, y, epochs) first, load a trained model with natverk.load(path), or set weights with "
                 "model.set_weights(...); set model.weights_ready = True to use the initial weights on purpose")


def test_predict_before_training_is_refused_until_weights_are_trained_set_or_loaded(tmp_path):
    X, y = blobs(20)
    model = mlp()
    for call in (model.predict, model.predict_proba, model.predict_logits):
        with raises(RuntimeError, PREDICT_FIRST):
            call(X)
    with raises(RuntimeError, PREDICT_FIRST.replace("predict before", "evaluate before")):
        model.evaluate(X, y)
    # a saved untrained model is loaded on purpose: its weights are the ones wanted
    loaded = natverk.load(model.save(tmp_path / "untrained.npz"))
    assert loaded.predict(X).shape == (20,)
    model.weights_ready = True  # on purpose
    assert model.predict(X).shape == (20,)
    fitted = mlp()
    fitted.fit(X, y, 0, verbose=0)  # fit ran: the user chose these weights
    assert fitted.predict(X).shape == (20,)


def test_an_empty_sequential_is_refused():
    X, y = blobs(20)
    empty = Sequential()
    for what, call in (("fit", lambda: empty.fit(X, y, 1, verbose=0)), ("predict", lambda: empty.predict(X)),
                       ("summary", lambda: empty.summary())):
        with raises(ValueError, f"{what}: this Sequential has no layers; pass them to Sequential(...) or add them "
                                "with model.add(layer)"):
            call()


def test_verbose_names_its_choices():
    X, y = blobs(20)
    with raises(ValueError, "verbose must be 0 (silent), 1 (a progress bar), 2 (one line per epoch) or 'auto', "
                            "got 'yes'"):
        mlp().fit(X, y, 1, verbose="yes")
