"""One optimizer contract and the thesis' L2 everywhere (issue 11).

The optimizer table (natverk.optimizers.table) is the one place names, slots,
defaults and aliases live; weight decay is the thesis' L2 (eq. 9), applied to
weights only unless decay="all"; fit and train report the data loss and the
penalty separately, and their sum as the loss.
"""

from __future__ import annotations

import numpy as np
import pytest

import natverk
from natverk.layers import BatchNorm1D, Conv2D, Dense, Flatten, Param, ReLU
from natverk.optimizers import SGD, Adam, Momentum, RMSprop, get_optimizer
from natverk.optimizers.table import OPTIMIZERS, resolve


def _model():
    return natverk.Sequential(Dense(5, 6, seed=0), BatchNorm1D(6), ReLU(), Dense(6, 3, seed=1))


def _zero_grad_step(model, opt):
    """One optimizer step with every gradient 0: only weight decay moves a parameter."""
    before = {n: v.copy() for n, v, _ in model.parameters()}
    params = [Param(n, v, np.zeros_like(v), p.decay) for p in model.parameters() for n, v, _ in [p]]
    opt.step(params)
    return {n: not np.array_equal(before[n], v) for n, v, _ in model.parameters()}


@pytest.mark.parametrize("cls", [SGD, Momentum, RMSprop, Adam])
def test_weight_decay_leaves_biases_and_batchnorm_alone_by_default(cls):
    model = _model()
    moved = _zero_grad_step(model, cls(learning_rate=0.1, weight_decay=0.5))
    assert moved == {"0.W": True, "0.b": False, "1.gamma": False, "1.beta": False, "3.W": True, "3.b": False}


@pytest.mark.parametrize("cls", [SGD, Momentum, RMSprop, Adam])
def test_decay_all_decays_every_parameter(cls):
    model = _model()
    for _, v, _ in model.parameters():  # nonzero everywhere, so a decay is visible
        v += 0.25
    moved = _zero_grad_step(model, cls(learning_rate=0.1, weight_decay=0.5, decay="all"))
    assert all(moved.values()), moved


def test_decay_flags_of_the_layers():
    conv = Conv2D(1, 2, 3)
    assert {n: p.decay for p in conv.parameters() for n in [p[0]]} == {"W": True, "b": False}
    seq = natverk.Sequential(Conv2D(1, 2, 3), Flatten(), Dense(2 * 3 * 3, 2))
    assert {p[0]: p.decay for p in seq.parameters()} == {"0.W": True, "0.b": False, "2.W": True, "2.b": False}
    # still plain triples for everyone who unpacks them
    for name, value, grad in seq.parameters():
        assert isinstance(name, str) and isinstance(value, np.ndarray)


def test_plain_triples_decay_matrices_not_vectors():
    w, b = np.ones((2, 2)), np.ones(2)
    SGD(0.1, weight_decay=1.0).step([("w", w, np.zeros_like(w)), ("b", b, np.zeros_like(b))])
    np.testing.assert_array_equal(w, np.full((2, 2), 0.9))
    np.testing.assert_array_equal(b, np.ones(2))


def test_sgd_weight_decay_is_the_thesis_l2_gradient():
    # w <- w - lr (g + lambda w): eq. 9's gradient, in one kernel call
    w = np.array([[1.0, -2.0]]); g = np.array([[0.5, 0.25]])
    SGD(0.1, weight_decay=0.2).step([("w", w, g)])
    np.testing.assert_allclose(w, [[1.0 - 0.1 * (0.5 + 0.2), -2.0 - 0.1 * (0.25 - 0.4)]], rtol=1e-15)


def test_fit_reports_data_loss_and_penalty_separately():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)); y = rng.integers(0, 3, 40)
    model = _model()
    wd = 0.3
    # learning rate 0: the weights never move, so every batch's penalty is the same number
    h = model.fit(X, y, epochs=1, batch_size=8, optimizer=SGD(0.0, weight_decay=wd), verbose=0, seed=0)
    psi = sum(float(np.sum(v.astype(np.float64) ** 2)) for n, v, _ in model.parameters() if n.endswith("W"))
    np.testing.assert_allclose(h["penalty"][0], wd / 2 * psi, rtol=1e-12)
    assert h["loss"][0] == pytest.approx(h["data_loss"][0] + h["penalty"][0], rel=1e-12)
    h0 = _model().fit(X, y, epochs=1, batch_size=8, optimizer=SGD(0.0), verbose=0, seed=0)
    assert h0["penalty"] == [0.0] and h0["data_loss"][0] == pytest.approx(h["data_loss"][0], rel=1e-12)


def test_train_reports_data_loss_and_penalty_separately():
    X, y = natverk.generate_nonlinear_2d(30, 2, 3, 0.0, seed=0)[:2]
    params = natverk.initialize_weights([2, 8, 3], seed=0)
    h = natverk.train(params, X, y, epochs=2, learning_rate=0.01, lambda_=0.1, verbose=0, seed=0, eval_every=1)
    for loss, data, pen in zip(h["loss"], h["data_loss"], h["penalty"]):
        assert pen > 0 and loss == pytest.approx(data + pen, rel=1e-12)


@pytest.mark.parametrize("spelling,name", [("vanilla", "sgd"), ("SGD", "sgd"), ("sgd", "sgd"), ("Adam", "adam"),
                                           ("RMSPROP", "rmsprop"), ("momentum", "momentum")])
def test_every_spelling_resolves_through_the_one_table(spelling, name):
    assert resolve(spelling).name == name
    assert get_optimizer(spelling).spec is OPTIMIZERS[name]


def test_the_classes_take_slots_and_defaults_from_the_table():
    for cls in (SGD, Momentum, RMSprop, Adam):
        assert cls.slots == cls.spec.slots
        opt = cls()
        for key, value in cls.spec.defaults.items():
            assert getattr(opt, key) == value


def test_unknown_optimizer_names_the_argument():
    with pytest.raises(ValueError, match=r"optimizer must be one of .*'vanilla'.*got 'adagrad'"):
        resolve("adagrad")
    X = np.zeros((4, 2)); y = np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        natverk.train(natverk.initialize_weights([2, 2], seed=0), X, y, 1, 0.1, optimizer="adagrad", verbose=0)


@pytest.mark.parametrize("a,b", [("vanilla", "sgd"), ("adam", "Adam")])
def test_train_aliases_give_bit_identical_runs(a, b):
    X, y = natverk.generate_nonlinear_2d(20, 2, 3, 0.0, seed=1)[:2]
    runs = []
    for name in (a, b):
        params = natverk.initialize_weights([2, 6, 3], seed=0)
        natverk.train(params, X, y, epochs=3, learning_rate=0.05, lambda_=0.01, optimizer=name, verbose=0, seed=0)
        runs.append(params)
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])


def test_decay_mode_is_validated_and_saved(tmp_path):
    with pytest.raises(ValueError, match="decay must be one of"):
        SGD(0.1, decay="biases")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 5)); y = rng.integers(0, 3, 16)
    model = _model()
    model.fit(X, y, epochs=1, batch_size=8, optimizer=Adam(0.01, weight_decay=0.1, decay="all"), verbose=0, seed=0)
    loaded = natverk.load(model.save(tmp_path / "m.npz"))
    assert loaded.optimizer.decay == "all" and loaded.optimizer.weight_decay == 0.1


def test_fit_checks_the_targets_once_not_per_batch():
    # Validation once, at the boundary: fit checks y up front; the per-batch loss trusts it.
    from natverk.losses import CrossEntropy

    calls = []

    class Counting(CrossEntropy):
        def check_targets(self, targets, shape):
            calls.append(tuple(shape))
            return super().check_targets(targets, shape)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)); y = rng.integers(0, 3, 40)
    _model().fit(X, y, epochs=2, batch_size=4, loss=Counting(), optimizer=SGD(0.01), verbose=0, seed=0)
    assert calls == [(40, 3)]
