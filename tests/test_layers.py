"""The layer API (natverk.layers, natverk.losses, the optimizer classes):
finite-difference gradients in float64 for every layer, train/eval behaviour,
dropout reproducibility, the dtype policy, configs and input errors."""

from __future__ import annotations

import numpy as np
import pytest

import natverk
from natverk import _core
from natverk.layers import (
    AvgPool2D,
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
    Sigmoid,
    Stack,
    Tanh,
    layer_from_spec,
    layer_to_spec,
)
from natverk.losses import BCE, MSE, CrossEntropy, get_loss
from reference import central_difference_inplace
from natverk.optimizers import SGD, Adam, Momentum, RMSprop, gradient_descent_adam, gradient_descent_momentum

EPS = 1e-6
FD_TOL = dict(rtol=1e-6, atol=1e-8)




def check_layer_gradients(layer: Layer, x: np.ndarray, training: bool = True, seed: int = 0) -> None:
    """dL/dx and dL/dparam of L = sum(R * layer(x)) against finite differences."""
    rng = np.random.default_rng(seed)
    y = layer.forward(x, training)
    R = rng.standard_normal(y.shape)

    def loss() -> float:
        return float(np.sum(R * layer.forward(x, training)))

    layer.forward(x, training)
    dx = layer.backward(R)
    grads = {name: g.copy() for name, _, g in layer.parameters()}
    np.testing.assert_allclose(dx, central_difference_inplace(loss, x, EPS), **FD_TOL, err_msg="input gradient")
    for name, value, _ in layer.parameters():
        np.testing.assert_allclose(grads[name], central_difference_inplace(loss, value, EPS), **FD_TOL, err_msg=name)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ finite differences


@pytest.mark.parametrize("bias", [True, False])
def test_dense_gradients(bias):
    layer = Dense(5, 3, bias=bias, seed=1)
    if bias:
        layer.b[...] = randn(3, seed=2)
    check_layer_gradients(layer, randn(4, 5))
    assert [n for n, _, _ in layer.parameters()] == (["W", "b"] if bias else ["W"])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=2, out_channels=3, kernel_size=3),
        dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1),
        dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), groups=2),
        dict(in_channels=2, out_channels=2, kernel_size=2, dilation=2, groups=2, bias=False),
    ],
    ids=["plain", "stride2-pad1", "groups2-rect", "dilation-depthwise-nobias"],
)
def test_conv2d_gradients(kwargs):
    layer = Conv2D(**kwargs, seed=3)
    if layer.b is not None:
        layer.b[...] = randn(layer.out_channels, seed=4)
    check_layer_gradients(layer, randn(2, kwargs["in_channels"], 6, 5, seed=5))


@pytest.mark.parametrize(
    "layer",
    [MaxPool2D(2), MaxPool2D(3, stride=2, padding=1), AvgPool2D(2), AvgPool2D(3, stride=1, padding=1), GlobalAvgPool2D()],
    ids=["max2", "max3s2p1", "avg2", "avg3s1p1", "global"],
)
def test_pool_gradients(layer):
    check_layer_gradients(layer, randn(2, 3, 6, 6, seed=6))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls,shape", [(BatchNorm1D, (6, 4)), (BatchNorm2D, (3, 4, 3, 2))], ids=["1d", "2d"])
def test_batchnorm_gradients(cls, shape, training):
    layer = cls(4)
    layer.gamma[...] = randn(4, seed=7) + 1
    layer.beta[...] = randn(4, seed=8)
    layer.running_mean[...] = randn(4, seed=9)
    layer.running_var[...] = np.abs(randn(4, seed=10)) + 0.5
    check_layer_gradients(layer, randn(*shape, seed=11) * 2 + 1, training=training)


@pytest.mark.parametrize("cls", [ReLU, Sigmoid, Tanh])
def test_activation_gradients(cls):
    check_layer_gradients(cls(), randn(2, 3, 4, 2, seed=12))


def test_flatten_is_a_view_and_its_gradient_a_reshape():
    x = randn(2, 3, 4, 5)
    layer = Flatten()
    y = layer.forward(x)
    assert y.shape == (2, 60) and np.shares_memory(y, x)
    check_layer_gradients(layer, x)


def test_residual_gradients_and_identity_path():
    block = Residual(Conv2D(3, 3, 3, padding=1, seed=13), BatchNorm2D(3), ReLU(), Conv2D(3, 3, 1, seed=14))
    x = randn(2, 3, 5, 5, seed=15)
    check_layer_gradients(block, x)
    assert [n for n, _, _ in block.parameters()] == ["0.W", "0.b", "1.gamma", "1.beta", "3.W", "3.b"]
    # with the branch's last conv at zero the block is the identity, in value and gradient
    block.f[3].W[...] = 0
    np.testing.assert_array_equal(block.forward(x), x)
    g = randn(*x.shape, seed=16)
    np.testing.assert_array_equal(block.backward(g), g)


def test_small_cnn_with_cross_entropy_end_to_end_gradients():
    model = natverk.Sequential(
        Conv2D(2, 3, 3, padding=1, seed=20),
        BatchNorm2D(3),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(3 * 3 * 3, 4, seed=21),
    )
    x = randn(5, 2, 6, 6, seed=22)
    y = np.array([0, 3, 1, 2, 1])
    loss = CrossEntropy()

    def value() -> float:
        return loss.forward(model.forward(x, training=True), y)

    value()
    dx = model.backward(loss.backward())
    grads = {name: g.copy() for name, _, g in model.parameters()}
    assert list(grads) == ["0.W", "0.b", "1.gamma", "1.beta", "5.W", "5.b"]
    np.testing.assert_allclose(dx, central_difference_inplace(value, x, EPS), **FD_TOL)
    for name, v, _ in model.parameters():
        np.testing.assert_allclose(grads[name], central_difference_inplace(value, v, EPS), **FD_TOL, err_msg=name)


@pytest.mark.parametrize(
    "loss,targets",
    [
        (CrossEntropy(), np.array([0, 2, 1, 2])),
        (CrossEntropy(class_weights=[1.0, 2.0, 0.5]), np.array([0, 2, 1, 2])),
        (MSE(), randn(4, 3, seed=30)),
        (BCE(), np.random.default_rng(31).random((4, 3))),
    ],
    ids=["ce", "ce-weighted", "mse", "bce"],
)
def test_loss_gradients(loss, targets):
    z = randn(4, 3, seed=32)
    loss.forward(z, targets)
    np.testing.assert_allclose(loss.backward(), central_difference_inplace(lambda: loss.forward(z, targets), z, EPS), **FD_TOL)


# ------------------------------------------------------------------ behaviour


def test_losses_match_the_kernels_and_get_loss():
    z, y = randn(6, 3, seed=40), np.array([0, 1, 2, 2, 1, 0])
    w = np.array([1.0, 3.0, 0.5])
    assert CrossEntropy(w).forward(z, y) == _core.softmax_cross_entropy(z, y, w)[0]
    t = randn(6, 3, seed=41)
    assert MSE().forward(z, t) == _core.mse(z, t)
    p = (t > 0).astype(float)
    assert BCE().forward(z, p) == _core.binary_cross_entropy_with_logits(z, p)
    assert isinstance(get_loss("cross_entropy"), CrossEntropy)
    assert isinstance(get_loss("mse"), MSE) and isinstance(get_loss("bce"), BCE)
    obj = MSE()
    assert get_loss(obj) is obj
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("hinge")
    with pytest.raises(RuntimeError, match="before forward"):
        CrossEntropy().backward()
    with pytest.raises(ValueError, match="not a class label"):
        CrossEntropy().forward(z, np.array([0, 1, 2, 3, 1, 0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BCE().forward(z, t)


def test_batchnorm_train_and_eval():
    bn = BatchNorm2D(3, momentum=0.5)
    x = randn(8, 3, 4, 4, seed=50) * 3 + 2
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(axis=(0, 2, 3)), atol=1e-12)
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    bn.eval()
    y_eval = bn.forward(x)  # the layer's mode: eval
    np.testing.assert_array_equal(bn.running_mean, rm)  # eval leaves the statistics alone
    expected = (x - rm.reshape(1, 3, 1, 1)) / np.sqrt(rv.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(y_eval, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(bn.forward(x, training=True), y)  # an explicit flag wins over the mode
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1D(3).forward(randn(1, 3))
    BatchNorm1D(3).forward(randn(1, 3), training=False)  # fine in eval mode


def test_dropout_train_eval_and_reproducibility():
    x = np.ones((50, 40))
    d = Dropout(0.3, seed=123)
    y1 = d.forward(x)
    kept = y1 != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(y1[kept], 1 / 0.7)
    g = randn(50, 40, seed=60)
    np.testing.assert_allclose(d.backward(g), np.where(kept, g / 0.7, 0))
    y2 = d.forward(x)
    assert not np.array_equal(y1, y2)  # a fresh mask every training call
    assert int(d.counter) == 2
    # the same seed gives the same sequence of masks; another seed does not
    e = Dropout(0.3, seed=123)
    np.testing.assert_array_equal(e.forward(x), y1)
    np.testing.assert_array_equal(e.forward(x), y2)
    assert not np.array_equal(Dropout(0.3, seed=124).forward(x), y1)
    # evaluation: the identity, and the counter does not move
    np.testing.assert_array_equal(d.forward(x, training=False), x)
    np.testing.assert_array_equal(d.backward(g), g)
    assert int(d.counter) == 2
    # seed=None draws a seed and keeps it in the config
    r = Dropout(0.5)
    again = layer_from_spec(layer_to_spec(r))
    np.testing.assert_array_equal(r.forward(x), again.forward(x))


def test_dtype_policy_float32_casts_parameters_once():
    layer = Dense(4, 3, seed=0)
    W64 = layer.W.copy()
    assert layer.W.dtype == np.float64 and layer.dtype == np.float64
    y = layer.forward(randn(2, 4).astype(np.float32))
    assert y.dtype == np.float32 and layer.W.dtype == np.float32 and layer.b.dtype == np.float32
    np.testing.assert_array_equal(layer.W, W64.astype(np.float32))
    layer.backward(np.ones((2, 3), np.float32))
    assert layer.dW.dtype == np.float32
    assert layer.forward(randn(2, 4)).dtype == np.float32  # later inputs follow the layer
    assert ReLU().forward(randn(3).astype(np.float32)).dtype == np.float32
    assert ReLU().forward(np.arange(3)).dtype == np.float64
    bn = BatchNorm1D(3).astype(np.float32)
    assert bn.running_var.dtype == np.float32
    model = natverk.Sequential(Dense(4, 3), ReLU(), Dense(3, 2)).astype("float32")
    assert {v.dtype for _, v, _ in model.parameters()} == {np.dtype(np.float32)}
    with pytest.raises(TypeError, match="float32 or float64"):
        Dense(2, 2).astype(np.int32)


def test_kaiming_init_is_seeded_and_scaled():
    a, b = Conv2D(16, 32, 3, seed=5), Conv2D(16, 32, 3, seed=5)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, Conv2D(16, 32, 3, seed=6).W)
    assert abs(a.W.std() / np.sqrt(2 / (16 * 9)) - 1) < 0.05
    d = Dense(400, 300, seed=1)
    assert abs(d.W.std() / np.sqrt(2 / 400) - 1) < 0.02
    np.testing.assert_array_equal(d.b, 0)


ALL_LAYERS = [
    Dense(3, 2, bias=False, seed=1),
    Conv2D(4, 2, (3, 1), stride=2, padding=(1, 0), dilation=1, groups=2, seed=2),
    MaxPool2D(3, stride=2, padding=1),
    AvgPool2D(2),
    GlobalAvgPool2D(),
    BatchNorm1D(5, eps=1e-3, momentum=0.2),
    BatchNorm2D(3),
    ReLU(),
    Sigmoid(),
    Tanh(),
    Dropout(0.25, seed=9),
    Flatten(),
    Residual(Dense(3, 3), ReLU()),
    Stack(Dense(2, 2), Tanh()),
]


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_is_json_and_rebuilds_the_layer(layer):
    import json

    spec = json.loads(json.dumps(layer_to_spec(layer)))
    rebuilt = layer_from_spec(spec)
    assert type(rebuilt) is type(layer) and rebuilt.config() == layer.config()
    assert [(n, v.shape) for n, v, _ in rebuilt.parameters()] == [(n, v.shape) for n, v, _ in layer.parameters()]


# ------------------------------------------------------------------ optimizers


def _params(seed):
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal((1, 4))}


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_optimizer_classes_match_the_update_kernels(weight_decay):
    g = _params(1)
    for cls, kw in [(SGD, {}), (Momentum, dict(beta=0.8)), (RMSprop, dict(beta2=0.9)), (Adam, dict(beta1=0.8, beta2=0.95))]:
        p = _params(0)
        expected = {k: v.copy() for k, v in p.items()}
        opt = cls(0.05, weight_decay=weight_decay, **kw)
        state = {k: [np.zeros_like(v) for _ in range(2)] for k, v in p.items()}
        for t in (1, 2, 3):
            opt.step([(k, p[k], g[k]) for k in p])
            for k in p:
                w, (a, b) = expected[k], state[k]
                if cls is SGD:
                    _core.sgd_update(w, g[k], 0.05, weight_decay)
                elif cls is Momentum:
                    _core.momentum_update(w, a, g[k], 0.05, 0.8, weight_decay)
                elif cls is RMSprop:
                    _core.rmsprop_update(w, a, g[k], 0.05, 0.9, 1e-8, weight_decay)
                else:
                    _core.adam_update(w, a, b, g[k], 0.05, 0.8, 0.95, t, 1e-8, weight_decay)
        for k in p:
            np.testing.assert_array_equal(p[k], expected[k], err_msg=f"{cls.__name__} {k}")
        assert opt.iterations == 3


def test_optimizer_classes_agree_with_the_functional_api():
    grads = {"dW1": _params(1)["W1"], "db1": _params(1)["b1"]}
    p_fun, p_obj = _params(0), _params(0)
    adam = Adam(0.01)
    for t in (1, 2):
        gradient_descent_adam(grads, p_fun, 0.01, 0.9, 0.99, t)
        adam.step([("W1", p_obj["W1"], grads["dW1"]), ("b1", p_obj["b1"], grads["db1"])])
    np.testing.assert_array_equal(p_fun["W1"], p_obj["W1"])
    p_fun, p_obj = _params(0), _params(0)
    gradient_descent_momentum(grads, p_fun, 0.1, 0.9)
    Momentum(0.1, 0.9).step([("W1", p_obj["W1"], grads["dW1"]), ("b1", p_obj["b1"], grads["db1"])])
    np.testing.assert_array_equal(p_fun["b1"], p_obj["b1"])


def test_optimizer_state_dict_round_trip_and_errors():
    g = _params(1)
    p1, p2 = _params(0), _params(0)
    a = Adam(0.01, beta1=0.8)
    a.step([(k, p1[k], g[k]) for k in p1])
    b = Adam(0.5)
    b.load_state_dict(a.state_dict())
    assert b.config() == a.config() and b.iterations == 1
    p2 = {k: v.copy() for k, v in p1.items()}
    a.step([(k, p1[k], g[k]) for k in p1])
    b.step([(k, p2[k], g[k]) for k in p2])
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    with pytest.raises(ValueError, match="no gradient"):
        a.step([("W1", p1["W1"], None)])
    with pytest.raises(ValueError, match="is for Adam"):
        SGD().load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="learning_rate"):
        SGD(-1.0)
    with pytest.raises(ValueError, match="beta"):
        Momentum(0.1, beta=1.0)


# ------------------------------------------------------------------ errors


def test_bad_inputs_raise_clear_errors():
    conv = Conv2D(3, 4, 3, seed=0)
    with pytest.raises(ValueError, match=r"Conv2D\(3->4\).*2 channels, expected in_channels=3"):
        conv.forward(randn(2, 2, 5, 5))
    with pytest.raises(ValueError, match=r"Conv2D.*kernel 3x3.*larger than the input 2x2"):
        conv.forward(randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"Conv2D.*4-D input"):
        conv.forward(randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"Conv2D.*NaN"):
        conv.forward(np.full((1, 3, 4, 4), np.nan))
    with pytest.raises(ValueError, match=r"MaxPool2D.*larger than the input"):
        MaxPool2D(4).forward(randn(1, 1, 3, 3))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        Conv2D(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        MaxPool2D(2, stride=(1, 0))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        Conv2D(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Dense\(4->2\).*2-D input.*Flatten"):
        Dense(4, 2).forward(randn(2, 1, 2, 2))
    with pytest.raises(ValueError, match=r"Dense\(4->2\).*3 features, expected in_features=4"):
        Dense(4, 2).forward(randn(2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1D\(4\).*2-D input"):
        BatchNorm1D(4).forward(randn(2, 4, 1, 1))
    with pytest.raises(ValueError, match=r"BatchNorm2D\(4\).*3 features/channels"):
        BatchNorm2D(4).forward(randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"ReLU.*NaN or Inf \(first at index \(0, 1\)\)"):
        ReLU().forward(np.array([[1.0, np.inf]]))
    with pytest.raises(TypeError, match="real numeric"):
        ReLU().forward(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"Dropout.*p must be in|p must be in"):
        Dropout(1.0)
    with pytest.raises(TypeError, match="kernel_size must be an integer"):
        MaxPool2D(2.5)
    with pytest.raises(RuntimeError, match="before forward"):
        Dense(2, 2).backward(np.ones((1, 2)))
    d = Dense(2, 2)
    d.forward(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"grad has shape \(2, 2\)"):
        d.backward(np.ones((2, 2)))
    with pytest.raises(ValueError, match="must keep the shape"):
        Residual(Dense(3, 2)).forward(randn(2, 3))
    model = natverk.Sequential(Conv2D(1, 2, 3, padding=1), ReLU(), Flatten(), Dense(2 * 4 * 4, 2))
    with pytest.raises(ValueError, match=r"layer 0: Conv2D\(1->2\).*3 channels"):
        model.forward(randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"layer 3: Dense.*50 features"):
        model.forward(randn(2, 1, 5, 5))
    with pytest.raises(TypeError, match="layer 1 must be a natverk Layer"):
        natverk.Sequential(ReLU(), "relu")


@pytest.mark.parametrize("first", ["dense", "conv"])
def test_training_backward_skips_only_the_first_layers_input_gradient(first):
    # fit() calls backward(need_input_grad=False): the first layer computes dW/db only.
    # Every parameter gradient must equal the full backward's, bit for bit.
    from natverk.layers import Conv2D, Dense, Flatten, ReLU
    from natverk.models import Sequential

    rng = np.random.default_rng(3)
    if first == "dense":
        model, x = Sequential(Dense(6, 5, seed=0), ReLU(), Dense(5, 3, seed=1)), rng.standard_normal((4, 6))
    else:
        model = Sequential(Conv2D(2, 3, 3, padding=1, seed=0), ReLU(), Flatten(), Dense(3 * 5 * 5, 3, seed=1))
        x = rng.standard_normal((4, 2, 5, 5))
    g = rng.standard_normal((4, 3))
    model.forward(x, training=True)
    dx = model.backward(g)
    full = {name: grad.copy() for name, _, grad in model.parameters()}
    model.forward(x, training=True)
    assert model.backward(g, need_input_grad=False) is None
    assert dx.shape == x.shape
    for name, _, grad in model.parameters():
        np.testing.assert_array_equal(grad, full[name], err_msg=name)
