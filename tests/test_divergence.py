"""One divergence guard (issue 13): every training API raises the same
DivergenceError, naming the epoch, the step and the learning rate to lower;
``max_loss`` stops a run whose loss explodes while it is still finite."""

from __future__ import annotations

import numpy as np
import pytest

import natverk
from natverk import DivergenceError
from natverk.layers import Dense, ReLU
from natverk.optimizers import SGD, Adam
from natverk.search.balance import balance_principle

MESSAGE = r"training diverged in epoch \d+, step \d+: .*lower the learning rate \(now "


def _data(seed=0, m=96):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 4))
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)
    return X, y


def test_train_reports_nan_with_epoch_and_step():
    X, y = _data()
    params = natverk.initialize_weights([4, 16, 4], seed=0)
    with pytest.raises(DivergenceError, match=MESSAGE) as info:
        natverk.train(params, X, y, epochs=5, learning_rate=1e30, minibatch_size=16, optimizer="vanilla",
                      seed=0, verbose=0)
    err = info.value
    assert isinstance(err, FloatingPointError)  # what callers caught before
    assert err.epoch >= 1 and err.step >= 1 and not np.isfinite(err.loss)


def test_fit_reports_nan_outputs_as_a_divergence_not_a_loss_error():
    # Before: "CrossEntropy: outputs contain NaN or Inf", with no hint.
    X, y = _data()
    model = natverk.Sequential(Dense(4, 16, seed=0), ReLU(), Dense(16, 4, seed=1))
    with pytest.raises(DivergenceError, match=MESSAGE) as info:
        model.fit(X, y, epochs=5, batch_size=16, optimizer=SGD(1e30), verbose=0, seed=0)
    assert info.value.epoch >= 1 and info.value.step >= 1


@pytest.mark.parametrize("api", ["train", "fit"])
def test_max_loss_stops_a_finite_explosion(api):
    # Adam at an absurd learning rate explodes the loss to ~1e25 while it stays finite.
    X, y = _data()
    if api == "train":
        params = natverk.initialize_weights([4, 64, 4], seed=0)
        history = natverk.train(params, X, y, epochs=30, learning_rate=1e6, minibatch_size=16, seed=0, verbose=0)
        assert np.isfinite(history["loss"]).all() and max(history["loss"]) > 1e3  # no guard: it "trains"
        params = natverk.initialize_weights([4, 64, 4], seed=0)
        run = lambda: natverk.train(params, X, y, epochs=30, learning_rate=1e6, minibatch_size=16, seed=0,  # noqa: E731
                                    verbose=0, max_loss=1e3)
    else:
        model = natverk.Sequential(Dense(4, 64, seed=0), ReLU(), Dense(64, 4, seed=1))
        history = model.fit(X, y, epochs=30, batch_size=16, optimizer=Adam(1e6), verbose=0, seed=0)
        assert np.isfinite(history["loss"]).all() and max(history["loss"]) > 1e3
        model = natverk.Sequential(Dense(4, 64, seed=0), ReLU(), Dense(64, 4, seed=1))
        run = lambda: model.fit(X, y, epochs=30, batch_size=16, optimizer=Adam(1e6), verbose=0,  # noqa: E731
                                seed=0, max_loss=1e3)
    with pytest.raises(DivergenceError, match=r"exceeds max_loss=1000; lower the learning rate"):
        run()


def test_balance_principle_reports_the_same_error():
    X, y = _data()
    with pytest.raises(DivergenceError, match=MESSAGE):
        balance_principle(X, y, [4, 16, 4], epochs=5, learning_rate=1e30, minibatch_size=16, optimizer="vanilla",
                          seed=0, update="iteration")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "big", True])
def test_max_loss_is_validated(bad):
    X, y = _data()
    params = natverk.initialize_weights([4, 8, 4], seed=0)
    with pytest.raises((TypeError, ValueError), match="max_loss"):
        natverk.train(params, X, y, epochs=1, learning_rate=0.1, verbose=0, max_loss=bad)
    model = natverk.Sequential(Dense(4, 4, seed=0))
    with pytest.raises((TypeError, ValueError), match="max_loss"):
        model.fit(X, y, epochs=1, verbose=0, max_loss=bad)
