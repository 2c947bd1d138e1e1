"""natverk._validation.network_layout, the network check every MATLAB-style call runs, and its
C++ fast path _core._network_layout (bind_dense.cpp), which answers for a valid dict and returns
None for anything else. On every map below, valid or not, the two must agree: where the fast
path answers, the Python check accepts with the same (dtype, L); where the Python check raises,
the fast path declines."""

from __future__ import annotations

import collections
import types

import numpy as np
import pytest

import natverk
import natverk._core as core
from natverk import _validation


def base(dtype=np.float64, nodes=(3, 5, 4, 2)):
    return natverk.initialize_weights(list(nodes), seed=1, dtype=dtype)


def variants():
    """name -> (parameter map, whether the fast path must answer)."""
    out = {}
    for dt in (np.float32, np.float64):
        p = base(dt)
        out[f"plain {dt.__name__}"] = (p, True)
        q = dict(p)
        for k in list(q):
            q["v_d" + k], q["s_d" + k] = np.zeros_like(q[k]), np.zeros_like(q[k])
        out[f"adam state {dt.__name__}"] = (q, True)
    p = base()
    out["flat biases"] = ({k: (v.reshape(-1) if k[0] == "b" else v) for k, v in p.items()}, True)
    out["one layer"] = (base(nodes=(4, 3)), True)
    out["extra keys"] = ({**base(), "notes": "x", "w1": 3, "": 1}, True)
    out["gap"] = ({k: v for k, v in base(nodes=(3, 5, 4, 2, 2)).items() if k not in ("W3", "b3")}, False)
    out["W01"] = ({**base(), "W01": base()["W1"]}, False)
    out["Wx"] = ({**base(), "Wx": 1}, False)
    out["int key"] = ({**base(), 3: 1}, False)
    out["no weights"] = ({"b1": np.zeros(2)}, False)
    out["empty"] = ({}, False)
    p = base(); del p["b2"]
    out["missing b2"] = (p, False)
    p = base(); p["b2"] = np.zeros((2, 4))
    out["b2 shape"] = (p, False)
    p = base(); p["b1"] = np.zeros((5, 1))
    out["b1 column"] = (p, False)
    p = base(); p["W2"] = p["W2"].astype(np.float32)
    out["mixed dtype W"] = (p, False)
    p = base(); p["b3"] = p["b3"].astype(np.float32)
    out["mixed dtype b"] = (p, False)
    p = base(); p["W1"] = p["W1"].astype(np.float16); p["b1"] = p["b1"].astype(np.float16)
    out["float16"] = (p, False)
    p = base(); p["W1"] = p["W1"].astype(np.int64)
    out["int weights"] = (p, False)
    p = base(); p["W1"] = p["W1"].astype(">f8"); p["b1"] = p["b1"].astype(">f8")
    out["big-endian"] = (p, False)
    p = base(); p["W2"] = p["W2"][None]
    out["3-D W"] = (p, False)
    p = base(); p["W2"] = np.zeros((6, 4))
    out["no chain"] = (p, False)
    p = base(); p["W1"] = p["W1"].tolist()
    out["list W"] = (p, False)
    p = base(); p["b2"] = 0.0
    out["float b"] = (p, False)
    out["OrderedDict"] = (collections.OrderedDict(base()), False)
    out["MappingProxy"] = (types.MappingProxyType(base()), False)
    out["list"] = ([1, 2], False)
    out["None"] = (None, False)
    return out


VARIANTS = variants()


def python_check(params, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(core, "_network_layout", lambda parameters: None)
        try:
            return _validation.network_layout(params)
        except (TypeError, ValueError) as err:
            return err


@pytest.mark.parametrize("name", sorted(VARIANTS, key=str))
def test_fast_path_agrees_with_the_python_check(name, monkeypatch):
    params, must_answer = VARIANTS[name]
    fast = core._network_layout(params)
    slow = python_check(params, monkeypatch)
    if isinstance(slow, Exception):
        assert fast is None, f"{name}: the fast path accepted a map the check rejects ({slow})"
        with pytest.raises(type(slow)):  # and the public function still raises, with its message
            _validation.network_layout(params)
        return
    if must_answer:
        assert fast is not None, f"{name}: a valid dict took the slow path"
    if fast is not None:
        assert fast[1] == slow[1] and fast[0] == slow[0] and isinstance(fast[0], np.dtype)
    assert _validation.network_layout(params) == slow


def test_ndarray_subclass_parameters_are_accepted_alike(monkeypatch):
    p = {k: v.view(np.ma.MaskedArray) if k == "W2" else v for k, v in base().items()}
    assert core._network_layout(p) == python_check(p, monkeypatch)
