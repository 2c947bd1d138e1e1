"""Bad input to the MATLAB-style API: a clear exception naming the argument, never a crash."""

from __future__ import annotations

import re

import numpy as np
import pytest

import natverk


@pytest.fixture
def net():
    params = natverk.initialize_weights([3, 5, 2], seed=0)
    X = np.random.default_rng(0).standard_normal((6, 3))
    y = np.array([0, 1, 1, 0, 1, 0])
    return params, X, y


def test_wrong_feature_count(net):
    params, X, y = net
    with pytest.raises(ValueError, match=r"X has 4 features"):
        natverk.forward_propagation(np.zeros((6, 4)), y, params)


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 3, 1))])
def test_wrong_rank(net, bad):
    params, _, _ = net
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        natverk.forward_propagation(bad, None, params)


def test_empty_input(net):
    params, _, _ = net
    with pytest.raises(ValueError, match=r"X is empty"):
        natverk.forward_propagation(np.zeros((0, 3)), np.zeros(0, dtype=int), params)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_input(net, value):
    params, X, y = net
    X = X.copy()
    X[2, 1] = value
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at index \(2, 1\)\)"):
        natverk.forward_propagation(X, y, params)
    with pytest.raises(ValueError, match="NaN or Inf"):
        natverk.check_accuracy(X, y, params)


def test_wrong_dtypes(net):
    params, X, y = net
    with pytest.raises(TypeError, match="X must be a real numeric array"):
        natverk.forward_propagation(X.astype(complex), y, params)
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        natverk.forward_propagation(X, y + 0.5, params)
    mixed = dict(params, W2=params["W2"].astype(np.float32))
    with pytest.raises(TypeError, match="W2"):
        natverk.forward_propagation(X, y, mixed)


def test_labels_out_of_range_and_wrong_length(net):
    params, X, y = net
    with pytest.raises(ValueError, match=r"y\[3\] = 2 is not a class label in 0..1"):
        natverk.forward_propagation(X, np.array([0, 1, 1, 2, 1, 0]), params)
    with pytest.raises(ValueError, match=r"y\[0\] = -1"):
        natverk.check_accuracy(X, np.array([-1, 1, 1, 0, 1, 0]), params)
    with pytest.raises(ValueError, match="y has 5 labels but X has 6 examples"):
        natverk.forward_propagation(X, y[:5], params)


def test_finite_extremes_pass_and_every_non_finite_is_found():
    # as_inputs' check is one C++ pass (_core._first_non_finite), block by block: values at the
    # float limits pass, and the first NaN/Inf is found wherever it sits (in the first block,
    # on a block edge, in the last short block), at both dtypes
    from natverk import _core

    params = natverk.initialize_weights([2, 3, 2], seed=0, dtype=np.float32)
    X = np.full((4, 2), np.finfo(np.float32).max, dtype=np.float32)
    X[1, 1] = -X[1, 1]
    X[2, 0] = np.finfo(np.float32).tiny / 4  # subnormal
    assert natverk.forward_propagation(X, None, params)[0].shape == (4, 2)
    X[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at index \(3, 0\)\)"):
        natverk.forward_propagation(X, None, params)
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        big = rng.standard_normal(3 * 4096 + 17).astype(dtype)
        assert _core._first_non_finite(big) == -1
        for where in (0, 4095, 4096, 2 * 4096 + 5, big.size - 1):
            for value in (np.nan, np.inf, -np.inf):
                bad = big.copy()
                bad[where] = value
                if where < big.size - 1:
                    bad[-1] = np.nan  # a later one is not the answer
                assert _core._first_non_finite(bad) == where
                assert _core._first_non_finite(bad.reshape(1, -1)) == where
    with pytest.raises(ValueError, match="C-contiguous"):
        _core._first_non_finite(np.zeros((4, 4))[:, ::2])
    with pytest.raises(TypeError, match="float32 or float64"):
        _core._first_non_finite(np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("form", ["contiguous", "strided", "big-endian", "float16", "4-D"])
def test_first_non_finite_gives_the_index_in_every_array_form(form):
    # the one check the public entry points share (_validation.first_non_finite): C++ for
    # contiguous native float32/64, NumPy for the rest; the same index (C order) either way
    from natverk._validation import first_non_finite

    X = np.random.default_rng(1).standard_normal((5, 6, 7)).astype(np.float32)
    X[3, 2, 4] = np.nan
    X[4, 0, 0] = np.inf  # later in C order
    want = (3, 2, 4)
    if form == "strided":
        X = np.repeat(X, 2, axis=2)[:, :, ::2]
    elif form == "big-endian":
        X = X.astype(">f8")
    elif form == "float16":
        X = X.astype(np.float16)
    elif form == "4-D":
        X, want = X.reshape(5, 6, 1, 7), (3, 2, 0, 4)
    assert first_non_finite(X) == want
    X[3, 2] = 0
    X[4] = 1
    assert first_non_finite(X) is None
    assert first_non_finite(np.array([1, 2, 3])) is None  # integers are always finite
    # and fit names the place the same way, whatever the form
    model = natverk.Sequential(natverk.layers.Flatten(), natverk.layers.Dense(42, 2, seed=0))
    X[1, 1] = -np.inf
    where = (1, 1) + (0,) * (X.ndim - 2)
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at index " + re.escape(str(where))):
        model.fit(X, np.zeros(5, dtype=np.int64), epochs=1, verbose=0)


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, -3, 0, 1, 0], dtype=np.int64), r"y\[2\] = -3 is not a class label in 0..1"),  # int64: no copy
    (np.array([0, 1, 1, 0, 1, np.iinfo(np.int64).min], dtype=np.int64), r"y\[5\] = -9223372036854775808 "),
    (np.array([[0, 1, 1, 0, 7, 0]], dtype=np.int64), r"y\[4\] = 7 "),  # MATLAB 1 x m row
    (np.array([0, 1, 1, 2**63, 1, 0], dtype=np.uint64), r"y\[3\] = -9223372036854775808 "),  # wraps in int64
    (np.array([0, 1, 1, 0, 1, 2], dtype=np.int64)[::-1], r"y\[0\] = 2 "),  # not contiguous
])
def test_every_label_form_is_range_checked(net, labels, message):
    params, X, _ = net
    with pytest.raises(ValueError, match=message):
        natverk.forward_propagation(X, labels, params)
    with pytest.raises(ValueError, match=message):
        natverk.back_propagation(natverk.forward_propagation(X, None, params)[2], labels, params)


@pytest.mark.parametrize("lam", [np.nan, np.inf, -1e-300, -np.inf])
def test_bad_lambda_floats(net, lam):
    params, X, y = net
    with pytest.raises(ValueError, match="lambda_ must be finite and >= 0"):
        natverk.forward_propagation(X, y, params, lam)


def test_lambda_accepts_numbers_of_every_kind(net):
    params, X, y = net
    losses = [natverk.forward_propagation(X, y, params, lam)[1] for lam in (0.25, np.float32(0.25), 1 / 4, np.float64(0.25))]
    assert len(set(losses)) == 1
    assert natverk.forward_propagation(X, y, params, -0.0)[1] == natverk.forward_propagation(X, y, params, 0)[1]


@pytest.mark.parametrize("name, kernel", [("relu", "relu"), ("ReLU", "relu"), ("logistic", "sigmoid"), ("TANH", "tanh")])
def test_activation_spellings_give_the_kernel_names(name, kernel):
    from natverk._validation import as_activation

    assert as_activation(name) == kernel
    with pytest.raises(ValueError, match="activation must be one of"):
        as_activation(name + "x")


def test_non_contiguous_inputs_are_accepted_and_agree(net):
    params, X, y = net
    wide = np.zeros((6, 6))
    wide[:, ::2] = X
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    p1, l1, _ = natverk.forward_propagation(view, y, params)
    p2, l2, _ = natverk.forward_propagation(X, y, params)
    np.testing.assert_array_equal(p1, p2)
    assert l1 == l2


def test_broken_parameter_maps(net):
    params, X, y = net
    with pytest.raises(ValueError, match="no b2"):
        natverk.forward_propagation(X, y, {k: v for k, v in params.items() if k != "b2"})
    with pytest.raises(ValueError, match="without gaps"):
        natverk.forward_propagation(X, y, {"W1": params["W1"], "b1": params["b1"], "W3": params["W2"], "b3": params["b2"]})
    with pytest.raises(ValueError, match="W2'] has 4 rows"):
        natverk.forward_propagation(X, y, dict(params, W2=np.zeros((4, 2))))
    with pytest.raises(TypeError, match="dict"):
        natverk.forward_propagation(X, y, [params["W1"]])
    with pytest.raises(ValueError, match="activation"):
        natverk.forward_propagation(X, y, params, activation="gelu")
    with pytest.raises(ValueError, match="lambda_"):
        natverk.forward_propagation(X, y, params, lambda_=-1.0)


def test_back_propagation_needs_its_cache(net):
    params, X, y = net
    with pytest.raises(ValueError, match="cache lacks"):
        natverk.back_propagation({"probs": np.zeros((6, 2))}, y, params)


def test_initialize_weights_rejects_bad_nodes():
    with pytest.raises(ValueError):
        natverk.initialize_weights([3])
    with pytest.raises(ValueError):
        natverk.initialize_weights([3, 0, 2])
    with pytest.raises(ValueError):
        natverk.initialize_weights([3, 2.5, 2])
    with pytest.raises(TypeError):
        natverk.initialize_weights([3, 4], dtype=np.int32)


def test_kernels_reject_non_contiguous_and_wrong_dtype():
    x = np.zeros((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        natverk._core.activation_forward(x, "relu")
    with pytest.raises(TypeError, match="x must be a float32 or float64 array"):
        natverk._core.activation_forward(np.zeros(3, dtype=np.int64), "relu")
    with pytest.raises(ValueError, match="w is read-only"):
        w = np.zeros(3)
        w.flags.writeable = False
        natverk._core.sgd_update(w, np.zeros(3), 0.1)


def test_kernels_accept_arrays_that_went_through_pickle():
    # A pickled array (a process pool, a Dask worker) comes back with an equal but distinct
    # dtype object; the kernels must compare dtypes by value, not identity.
    import pickle

    from natverk import _core

    for dtype in (np.float32, np.float64):
        a = pickle.loads(pickle.dumps(np.linspace(-1, 1, 7, dtype=dtype)))
        np.testing.assert_array_equal(_core.activation_forward(a, "relu"), np.maximum(a, 0))
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.activation_forward(np.ones(3, dtype=">f8"), "relu")  # non-native byte order
