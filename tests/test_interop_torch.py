"""PyTorch weights in and out (issue 14, item 6): ``natverk.from_torch`` / ``to_torch_state_dict``.

- A ``.pth`` is read without PyTorch and without unpickling: hand-written files in torch's exact
  layout load here whether or not torch is installed, and hostile ones (``os.system``,
  ``eval``, INST, hooks, storage keys that are paths, tensors past their storage) are refused
  before anything runs.
- With PyTorch 2.13 importable: files written by ``torch.save`` load in a process where
  ``import torch`` fails; the MNIST CNN and a VGG-style net with batch norm give PyTorch's
  outputs on the same weights (float32, within 1e-5); exports load into torch modules.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from tolerances import assert_close

import natverk as nv
from natverk.interop import UnsafeCheckpointError, load_torch_state_dict, read_pth
from natverk.layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU

try:
    import torch
except ImportError:  # the no-torch half of this file still runs
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed: the comparisons against "
                                                       "torch 2.13 need it (pip install torch==2.13.0)")

# ---------------------------------------------------------------- a torch-format writer, by hand
# The opcodes torch.save emits for a state dict (pickle protocol 2), written out explicitly, so
# the reader is tested on the format itself, not only on what one torch version happens to write.


def _str(s: str) -> bytes:
    e = s.encode()
    return b"X" + struct.pack("<I", len(e)) + e


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def _glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


_EMPTY_ORDERED_DICT = _glob("collections", "OrderedDict") + b")R"


def _tensor(key: str, numel: int, size, stride, offset=0, storage="FloatStorage", hooks=_EMPTY_ORDERED_DICT,
            rebuild="_rebuild_tensor_v2", extra=b"") -> bytes:
    pid = _tup(_str("storage"), _glob("torch", storage), _str(key), _str("cpu"), _int(numel))
    return (_glob("torch._utils", rebuild)
            + _tup(pid + b"Q", _int(offset), _tup(*map(_int, size)), _tup(*map(_int, stride)), b"\x89", hooks, extra)
            + b"R")


def _state_pickle(items: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(_str(name) + value for name, value in items)
    return b"\x80\x02" + _EMPTY_ORDERED_DICT + b"(" + body + b"u."


def _write_pth(path: Path, pickle_bytes: bytes, storages: dict[str, bytes], byteorder: bytes | None = b"little",
               archive: str = "archive") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{archive}/data.pkl", pickle_bytes)
        if byteorder is not None:
            zf.writestr(f"{archive}/byteorder", byteorder)
        for key, raw in storages.items():
            zf.writestr(f"{archive}/data/{key}", raw)
        zf.writestr(f"{archive}/version", b"3\n")
    return path


def _simple_pth(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    items, storages = [], {}
    for i, (name, a) in enumerate(arrays.items()):
        a = np.ascontiguousarray(a, dtype="<f4")
        stride = [int(s // 4) for s in a.strides]
        items.append((name, _tensor(str(i), a.size, a.shape, stride)))
        storages[str(i)] = a.tobytes()
    return _write_pth(path, _state_pickle(items), storages)


# ---------------------------------------------------------------- reading, no torch needed


def test_a_hand_written_torch_file_loads(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"0.weight": rng.standard_normal((4, 3)).astype(np.float32), "0.bias": np.arange(4, dtype=np.float32)}
    sd = load_torch_state_dict(_simple_pth(tmp_path / "w.pth", arrays))
    assert list(sd) == ["0.weight", "0.bias"]
    for k, v in arrays.items():
        np.testing.assert_array_equal(sd[k], v)
        assert sd[k].dtype == np.float32 and not sd[k].flags.writeable


def test_views_strides_byteorder_and_dtypes(tmp_path):
    base = np.arange(12, dtype=np.float32)
    # a transposed view (torch keeps the storage, the stride says (1, 3)) with an offset, two
    # tensors sharing one storage, and a big-endian file
    items = [("t", _tensor("0", 12, (3, 2), (1, 3), offset=3)), ("u", _tensor("0", 12, (2,), (1,), offset=10))]
    path = _write_pth(tmp_path / "be.pth", _state_pickle(items), {"0": base.astype(">f4").tobytes()}, byteorder=b"big")
    sd = read_pth(path)
    np.testing.assert_array_equal(sd["t"], base[3:9].reshape(2, 3).T)
    np.testing.assert_array_equal(sd["u"], [10, 11])
    # float64, float16, int64, bfloat16 (widened exactly to float32), and a v3 tensor on an untyped storage
    bf16 = np.array([1.5, -2.0, 3.140625], dtype=np.float32)  # exactly representable in bfloat16
    raw_bf16 = (bf16.view(np.uint32) >> 16).astype("<u2").tobytes()
    items = [("d", _tensor("0", 2, (2,), (1,), storage="DoubleStorage")),
             ("h", _tensor("1", 2, (2,), (1,), storage="HalfStorage")),
             ("n", _tensor("2", 1, (), (), storage="LongStorage")),
             ("b", _tensor("3", 3, (3,), (1,), storage="BFloat16Storage")),
             ("v3", _tensor("4", 8, (2,), (1,), storage="UntypedStorage", rebuild="_rebuild_tensor_v3",
                            extra=_glob("torch", "float32")))]
    storages = {"0": np.array([1.0, 2.0], "<f8").tobytes(), "1": np.array([0.5, 4.0], "<f2").tobytes(),
                "2": np.array([7], "<i8").tobytes(), "3": raw_bf16, "4": np.array([6.0, 9.0], "<f4").tobytes()}
    sd = read_pth(_write_pth(tmp_path / "dt.pth", _state_pickle(items), storages))
    assert sd["d"].dtype == np.float64 and sd["h"].dtype == np.float16 and sd["n"].dtype == np.int64
    np.testing.assert_array_equal(sd["b"], bf16)
    np.testing.assert_array_equal(sd["v3"], [6.0, 9.0])
    assert int(sd["n"]) == 7 and sd["n"].shape == ()


class _System:
    """A pickle payload: unpickling it with pickle.load would run a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _hostile(tmp_path: Path, payload: bytes) -> Path:
    return _write_pth(tmp_path / "evil.pth", payload, {})


def test_a_pickle_that_calls_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"0.weight": _System(f"touch {marker}")}, protocol=2)
    path = _hostile(tmp_path, payload)
    for load in (read_pth, load_torch_state_dict, lambda p: nv.from_torch(p, nv.Sequential(Dense(2, 2)))):
        with pytest.raises(UnsafeCheckpointError, match=r"refusing to load .*evil\.pth.*global (posix|os|nt)\.system"):
            load(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload, what", [
    (b"c__builtin__\neval\n(S'print(1)'\ntR.", "global __builtin__.eval"),
    (b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93.", "global builtins.exec"),  # STACK_GLOBAL
    (b"cnumpy\nload\n.", "global numpy.load"),
    (b"(S'id'\nios\nsystem\n.", "opcode INST"),  # INST names and calls a class inline
    (b"\x80\x02ctorch\nFloatStorage\n)R.", "not callable here"),  # an allowed name, but not a function
])
def test_globals_and_opcodes_outside_the_weights_rule_are_refused(tmp_path, payload, what):
    with pytest.raises(UnsafeCheckpointError, match=what):
        read_pth(_hostile(tmp_path, payload))


def test_hooks_and_build_on_a_tensor_are_refused(tmp_path):
    hooks = _glob("collections", "OrderedDict") + b")R" + b"(" + _str("h") + _int(1) + b"u"
    path = _write_pth(tmp_path / "h.pth", _state_pickle([("w", _tensor("0", 1, (1,), (1,), hooks=hooks))]),
                      {"0": b"\0\0\0\0"})
    with pytest.raises(UnsafeCheckpointError, match="backward hooks"):
        read_pth(path)
    build = _state_pickle([("w", _tensor("0", 1, (1,), (1,)) + b"}b")])  # BUILD: set state on the tensor
    with pytest.raises(UnsafeCheckpointError, match="BUILD"):
        read_pth(_write_pth(tmp_path / "b.pth", build, {"0": b"\0\0\0\0"}))


@pytest.mark.parametrize("tensor, storages, message", [
    (_tensor("../../etc/passwd", 1, (1,), (1,)), {}, "not a storage number"),
    (_tensor("0", 4, (1,), (1,)), {}, "storage 0 is missing"),
    (_tensor("0", 1000, (1,), (1,)), {"0": b"\0" * 16}, "holds 16 bytes, its header says 1000 x 4"),
    (_tensor("0", 4, (3, 3), (3, 1)), {"0": b"\0" * 16}, "reaches element 8 of storage 0, which holds 4"),
    (_tensor("0", 4, (2,), (1,), offset=-1), {"0": b"\0" * 16}, "negative offset"),
])
def test_malformed_tensors_raise_before_allocating(tmp_path, tensor, storages, message):
    path = _write_pth(tmp_path / "m.pth", _state_pickle([("w", tensor)]), storages)
    with pytest.raises(ValueError, match=message):
        read_pth(path)


def test_deep_nesting_is_an_error_not_a_crash(tmp_path):
    # a dict key that is a tuple nested far deeper than the C stack allows hash() to recurse
    deep_key = b"\x80\x02}" + b")" + b"\x85" * 200_000 + b"Ns."
    with pytest.raises(ValueError, match="a tuple cannot be a dict key"):
        read_pth(_hostile(tmp_path, deep_key))
    # a value nested as deep loads; only printing it recurses, and Python guards that
    deep_value = b"\x80\x02" + b")" + b"\x85" * 200_000 + b"."
    with pytest.raises(RecursionError):
        repr(read_pth(_hostile(tmp_path, deep_value)))


def test_not_a_zip_checkpoint_names_the_file(tmp_path):
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"w": [1.0]}))
    with pytest.raises(ValueError, match=r"legacy\.pth.*not a PyTorch zip checkpoint"):
        read_pth(legacy)
    truncated = tmp_path / "cut.pth"
    _simple_pth(tmp_path / "full.pth", {"w": np.ones(3, np.float32)})
    truncated.write_bytes((tmp_path / "full.pth").read_bytes()[:60])
    with pytest.raises(ValueError, match=r"cut\.pth"):
        read_pth(truncated)
    with pytest.raises(FileNotFoundError):
        read_pth(tmp_path / "absent.pth")


def test_a_training_checkpoint_is_not_taken_for_a_state_dict(tmp_path):
    inner = _state_pickle([("0.weight", _tensor("0", 4, (2, 2), (2, 1)))])[len(b"\x80\x02"):-1]
    outer = b"\x80\x02}(" + _str("model") + inner + _str("epoch") + _int(3) + b"u."
    path = _write_pth(tmp_path / "ckpt.pth", outer, {"0": np.ones(4, "<f4").tobytes()})
    assert read_pth(path)["epoch"] == 3
    with pytest.raises(ValueError,
                       match=r"not a state_dict: entry 'model' is itself a mapping.*read_pth\(path\)\['model'\]"):
        load_torch_state_dict(path)


# ---------------------------------------------------------------- mapping onto natverk models


def _mnist_cnn(seed=0):
    """The README's MNIST CNN."""
    return nv.Sequential(Conv2D(1, 16, 3, padding=1, seed=seed), BatchNorm2D(16), ReLU(), MaxPool2D(2),
                         Flatten(), Dropout(0.25, seed=1), Dense(16 * 14 * 14, 10, seed=seed + 2))


def _vgg_bn(seed=0):
    """A VGG-style net with batch norm (two conv-BN-ReLU blocks per stage, as VGG16-BN)."""
    def block(cin, cout, s):
        return [Conv2D(cin, cout, 3, padding=1, seed=s), BatchNorm2D(cout), ReLU()]
    return nv.Sequential(*block(3, 8, seed), *block(8, 8, seed + 1), MaxPool2D(2),
                         *block(8, 16, seed + 2), *block(16, 16, seed + 3), MaxPool2D(2),
                         Flatten(), Dense(16 * 8 * 8, 32, seed=seed + 4), ReLU(), Dropout(0.5, seed=9),
                         Dense(32, 10, seed=seed + 5))


def test_export_import_round_trip_without_torch():
    a, b = _vgg_bn(0), _vgg_bn(100)
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    for layer in a:
        if isinstance(layer, BatchNorm2D):  # non-trivial statistics, so they must travel too
            layer.running_mean[:] = np.linspace(-1, 1, layer.num_features)
            layer.running_var[:] = np.linspace(0.5, 2, layer.num_features)
    a.weights_ready = True  # its initial weights, on purpose: they are what travels
    sd = nv.to_torch_state_dict(a)
    assert list(sd)[:7] == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                            "1.num_batches_tracked"]
    assert sd["15.weight"].shape == (32, 16 * 8 * 8)  # Dense W (in, out) -> Linear (out, in)
    nv.from_torch(sd, b, dtype="float32")
    np.testing.assert_array_equal(a.predict_logits(x), b.predict_logits(x))


def test_a_mismatched_model_is_named_and_left_unchanged(tmp_path):
    path = _simple_pth(tmp_path / "w.pth",
                       {"fc.weight": np.ones((3, 5), np.float32), "fc.bias": np.ones(3, np.float32)})
    model = nv.Sequential(Dense(5, 4, seed=0))
    before = model[0].W.copy()
    with pytest.raises(ValueError, match=r"state_dict\['fc.weight'\] has shape \(3, 5\), but model layer 0 "
                                         r"\(Dense\(5->4\)\) needs \(4, 5\)"):
        nv.from_torch(path, model)
    np.testing.assert_array_equal(model[0].W, before)
    with pytest.raises(ValueError, match="has bias, but model layer 0 .* build it with bias=True"):
        nv.from_torch(path, nv.Sequential(Dense(5, 3, bias=False)))
    with pytest.raises(ValueError, match=r"1 modules with weights \('fc'\) but the model has 2 layers"):
        nv.from_torch(path, nv.Sequential(Dense(5, 3), Dense(3, 3)))
    with pytest.raises(ValueError, match="'fc' .* is a linear module, but the matching model layer 0 .* conv2d"):
        nv.from_torch(path, nv.Sequential(Conv2D(5, 3, 1)))
    with pytest.raises(TypeError, match="state_dict_or_path must be a path"):
        nv.from_torch(42, model)
    with pytest.raises(TypeError, match="model must be a natverk model"):
        nv.from_torch(path, "model")
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got 'half-ish'"):
        nv.from_torch(path, nv.Sequential(Dense(5, 3)), dtype="half-ish")


# ---------------------------------------------------------------- against PyTorch 2.13


def _torch_mnist_cnn():
    n = torch.nn
    return n.Sequential(n.Conv2d(1, 16, 3, padding=1), n.BatchNorm2d(16), n.ReLU(), n.MaxPool2d(2), n.Flatten(),
                        n.Dropout(0.25), n.Linear(16 * 14 * 14, 10))


def _torch_vgg_bn():
    n = torch.nn

    class VGG(n.Module):  # torchvision's naming: features.<i>, classifier.<i>
        def __init__(self):
            super().__init__()
            def block(cin, cout):
                return [n.Conv2d(cin, cout, 3, padding=1), n.BatchNorm2d(cout), n.ReLU()]
            self.features = n.Sequential(*block(3, 8), *block(8, 8), n.MaxPool2d(2),
                                         *block(8, 16), *block(16, 16), n.MaxPool2d(2))
            self.classifier = n.Sequential(n.Linear(16 * 8 * 8, 32), n.ReLU(), n.Dropout(0.5), n.Linear(32, 10))

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    return VGG()


def _randomise_batch_norms(module, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return module


@needs_torch
def test_torch_is_the_version_the_issue_names():
    assert torch.__version__.split("+")[0] == "2.13.0"


@needs_torch
@pytest.mark.parametrize("build, build_torch, shape", [
    (_mnist_cnn, _torch_mnist_cnn, (16, 1, 28, 28)),
    (_vgg_bn, _torch_vgg_bn, (8, 3, 32, 32)),
], ids=["mnist_cnn", "vgg_bn"])
def test_outputs_match_torch_on_the_same_weights(tmp_path, build, build_torch, shape):
    torch.manual_seed(0)
    reference = _randomise_batch_norms(build_torch(), 1).eval()
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()

    from_file = nv.from_torch(path, build(seed=50))  # other initial weights: all must be replaced
    assert from_file.dtype == np.float32
    assert_close(from_file.predict_logits(x), expected, np.float32, f"{build.__name__} from the .pth")
    from_memory = nv.from_torch(reference.state_dict(), build(seed=60))  # torch.Tensor values
    assert_close(from_memory.predict_logits(x), expected, np.float32, f"{build.__name__} from a state_dict")

    # and back: natverk's export loads into a fresh torch module and gives the same outputs
    fresh = build_torch()
    exported = nv.to_torch_state_dict(from_file, tensors=True)
    if build is _mnist_cnn:
        assert list(exported) == list(reference.state_dict())  # nn.Sequential: the same keys
        fresh.load_state_dict(exported)
    else:  # torchvision-style names: same order, the module's own keys
        fresh.load_state_dict(OrderedDict(zip(reference.state_dict(), exported.values())))
    with torch.no_grad():
        assert_close(fresh.eval()(torch.from_numpy(x)).numpy(), expected, np.float32, "torch after the export")


@needs_torch
def test_training_mode_batch_norm_matches_torch_and_its_running_statistics():
    """Fine-tuning from pretrained weights: batch statistics and the running-statistics update
    (momentum 0.1, unbiased variance) agree with PyTorch's training mode."""
    torch.manual_seed(2)
    reference = _randomise_batch_norms(_torch_mnist_cnn(), 3)
    model = nv.from_torch(reference.state_dict(), _mnist_cnn())
    x = np.random.default_rng(5).standard_normal((16, 1, 28, 28)).astype(np.float32)
    features = nv.Sequential(*model.layers[:5])  # up to Flatten: no dropout, whose masks differ by design
    out = features.forward(x, training=True)
    with torch.no_grad():
        expected = reference[:5].train()(torch.from_numpy(x)).numpy()
    assert_close(out, expected, np.float32, "training-mode forward")
    bn = reference[1]
    assert_close(model[1].running_mean, bn.running_mean.numpy(), np.float32, "running_mean")
    assert_close(model[1].running_var, bn.running_var.numpy(), np.float32, "running_var")


_NO_TORCH_LOADER = """
import sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
import numpy as np
from natverk.interop import load_torch_state_dict
sd = load_torch_state_dict(sys.argv[1])
np.savez(sys.argv[2], **sd)
assert sys.modules["torch"] is None
print("loaded", len(sd))
"""


@needs_torch
def test_a_file_written_by_torch_save_loads_without_torch(tmp_path):
    torch.manual_seed(3)
    module = _randomise_batch_norms(_torch_vgg_bn(), 4)
    module.classifier[0].weight.data = module.classifier[0].weight.data.t().contiguous().t()  # a strided tensor
    state = module.state_dict()
    state["half"] = torch.randn(3, 2).half()
    state["bf16"] = torch.randn(5).bfloat16()
    state["view"] = torch.arange(20.0)[5:15].view(2, 5)  # a view at an offset of a larger storage
    path, out = tmp_path / "torch_saved.pth", tmp_path / "arrays.npz"
    torch.save(state, path)
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH_LOADER, str(path), str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as loaded:
        assert list(loaded.keys()) == list(state)
        for key, tensor in state.items():
            expected = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
            assert loaded[key].dtype == expected.dtype, key
            np.testing.assert_array_equal(loaded[key], expected, err_msg=key)
