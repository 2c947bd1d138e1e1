"""Dataset loaders: MNIST / Fashion-MNIST (IDX), CIFAR-10 (binary and pickle), ISIC folders.

Tiny datasets are written in the canonical formats into ``tmp_path`` and must
round-trip exactly; every kind of corrupt or hostile file must raise
DatasetError (a ValueError) -- never crash, hang, allocate what a header
claims, or run code from a pickle. Downloads run against a monkeypatched
``urllib.request.urlopen``. Tests marked ``data`` read the real files from
``$NATVERK_DATA`` (or ``../shared/data`` beside the repository) and are skipped
when they are absent.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import sys
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest

from natverk.importdata import DatasetError, load_cifar10, load_fashion_mnist, load_isic, load_mnist
from natverk.importdata import datasets as ds
from natverk.importdata._download import download_file, extract_tar_safely

MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """Tests choose their own data folder; CI's NATVERK_DATA must not leak in."""
    monkeypatch.delenv("NATVERK_DATA", raising=False)


def expected_float(u8: np.ndarray) -> np.ndarray:
    return u8.astype(np.float32) / np.float32(255)


# ----------------------------------------------------------------- IDX ----
def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """Canonical IDX: 00 00 <type> <ndim>, big-endian uint32 sizes, big-endian data."""
    dt = {0x08: ">u1", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=dt).tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def make_mnist(folder: Path, n_train: int = 30, n_test: int = 12, gz: bool = True, seed: int = 0) -> dict:
    """Write the four MNIST files; image i of the training set has pixel [0, 0] = i."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays["train-images-idx3-ubyte"][:, 0, 0] = np.arange(n_train)
    for stem, arr in arrays.items():
        write_file(folder / stem, idx_bytes(arr), gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
def test_idx_round_trip(tmp_path, gz, loader):
    arrays = make_mnist(tmp_path, gz=gz)
    X_train, y_train, X_test, y_test = loader(tmp_path)
    assert X_train.shape == (30, 1, 28, 28) and X_test.shape == (12, 1, 28, 28)
    assert X_train.dtype == X_test.dtype == np.float32 and y_train.dtype == y_test.dtype == np.int64
    assert X_train.flags.c_contiguous
    np.testing.assert_array_equal(X_train[:, 0], expected_float(arrays["train-images-idx3-ubyte"]))
    np.testing.assert_array_equal(X_test[:, 0], expected_float(arrays["t10k-images-idx3-ubyte"]))
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_idx_flatten_and_gzip_detected_by_content(tmp_path):
    arrays = make_mnist(tmp_path, gz=True)
    for stem in MNIST_STEMS:  # gzip data under the raw name: the magic bytes decide
        (tmp_path / f"{stem}.gz").rename(tmp_path / stem)
    X_train, _, X_test, _ = load_mnist(tmp_path, flatten=True)
    assert X_train.shape == (30, 784) and X_test.shape == (12, 784)
    np.testing.assert_array_equal(X_train, expected_float(arrays["train-images-idx3-ubyte"]).reshape(30, 784))


def test_validation_split_sizes_and_determinism(tmp_path):
    make_mnist(tmp_path, n_train=40)
    out = load_mnist(tmp_path, validation=True, validation_size=10, seed=3)
    assert len(out) == 6
    X_tr, y_tr, X_val, y_val, X_te, y_te = out
    assert X_tr.shape == (30, 1, 28, 28) and X_val.shape == (10, 1, 28, 28) and X_te.shape == (12, 1, 28, 28)
    # Pixel [0, 0] of training image i is i: the split is a partition, in file order.
    idx_tr = np.rint(X_tr[:, 0, 0, 0] * 255).astype(int)
    idx_val = np.rint(X_val[:, 0, 0, 0] * 255).astype(int)
    assert sorted(np.concatenate([idx_tr, idx_val]).tolist()) == list(range(40))
    assert np.all(np.diff(idx_tr) > 0) and np.all(np.diff(idx_val) > 0)
    np.testing.assert_array_equal(y_tr, idx_tr % 10)
    np.testing.assert_array_equal(y_val, idx_val % 10)

    again = load_mnist(tmp_path, validation=True, validation_size=10, seed=3)
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a, b)
    other = load_mnist(tmp_path, validation=True, validation_size=10, seed=4)
    assert not np.array_equal(other[3], y_val) or not np.array_equal(other[2], X_val)
    frac = load_mnist(tmp_path, validation=True, validation_size=0.25, seed=3)
    assert len(frac[3]) == 10
    np.testing.assert_array_equal(frac[2], X_val)  # same count and seed: same split


@pytest.mark.parametrize("size", [0, 40, 41, -1, 1.0, 0.0])
def test_validation_size_out_of_range(tmp_path, size):
    make_mnist(tmp_path, n_train=40)
    with pytest.raises(ValueError, match="validation_size"):
        load_mnist(tmp_path, validation=True, validation_size=size)


def test_bool_arguments_are_checked(tmp_path):
    make_mnist(tmp_path)
    with pytest.raises(TypeError, match="validation"):
        load_mnist(tmp_path, validation=1)


# ------------------------------------------------------- root resolution ----
def test_root_may_be_dataset_folder_or_its_parent(tmp_path):
    arrays = make_mnist(tmp_path / "mnist")
    make_mnist(tmp_path / "fashion-mnist", seed=1)
    for root in (tmp_path / "mnist", tmp_path, str(tmp_path)):
        y = load_mnist(root)[1]
        np.testing.assert_array_equal(y, arrays["train-labels-idx1-ubyte"])
    assert not np.array_equal(load_fashion_mnist(tmp_path)[0], load_mnist(tmp_path)[0])


def test_natverk_data_env(tmp_path, monkeypatch):
    arrays = make_mnist(tmp_path / "data" / "mnist")
    monkeypatch.setenv("NATVERK_DATA", str(tmp_path / "data"))
    X_train = load_mnist()[0]
    np.testing.assert_array_equal(X_train[:, 0], expected_float(arrays["train-images-idx3-ubyte"]))
    # An explicit root wins over the environment.
    make_mnist(tmp_path / "other", seed=5)
    assert not np.array_equal(load_mnist(tmp_path / "other")[0], X_train)


def test_missing_dataset_lists_every_path(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    msg = str(info.value)
    for d in (tmp_path, tmp_path / "mnist"):
        for stem in MNIST_STEMS:
            assert str(d / stem) in msg and str(d / f"{stem}.gz") in msg
    assert "download=True" in msg and "NATVERK_DATA" in msg

    with pytest.raises(FileNotFoundError, match="NATVERK_DATA is not set"):
        load_fashion_mnist()
    monkeypatch.setenv("NATVERK_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10()
    msg = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar-10" / "cifar-10-batches-bin" / "data_batch_1.bin") in msg
    assert str(tmp_path / "nowhere" / "cifar-10" / "cifar-10-batches-py" / "test_batch") in msg
    assert "download=True" in msg
    with pytest.raises(FileNotFoundError, match="isic"):
        load_isic()


def test_partial_dataset_is_missing(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


# ---------------------------------------------------------- IDX corruption ----
def _images(n: int = 5) -> np.ndarray:
    return np.arange(n * 784, dtype=np.uint32).astype(np.uint8).reshape(n, 28, 28)


def _corrupt(case: str) -> tuple[str, bytes]:
    """(file to replace, its bytes) for a broken MNIST training set of 5 images."""
    images, labels = idx_bytes(_images()), idx_bytes(np.arange(5, dtype=np.uint8))
    big = 2**32 - 1  # the largest count an IDX header can claim: 3.4 TB of images
    return {
        "bad_magic": ("images", b"\x12\x34" + images[2:]),
        "float_type": ("images", idx_bytes(_images().astype(np.float32), code=0x0D)),
        "unknown_type": ("images", b"\x00\x00\x07\x03" + images[4:]),
        "images_2d": ("images", bytes([0, 0, 8, 2]) + struct.pack(">II", 5, 784) + images[16:]),
        "labels_2d": ("labels", bytes([0, 0, 8, 2]) + struct.pack(">II", 5, 1) + labels[8:]),
        "zero_dims": ("labels", bytes([0, 0, 8, 0])),
        "wrong_size": ("images", bytes([0, 0, 8, 3]) + struct.pack(">III", 5, 27, 28) + images[16 : 16 + 5 * 27 * 28]),
        "huge_count": ("images", bytes([0, 0, 8, 3]) + struct.pack(">III", big, 28, 28) + images[16:]),
        "huge_labels": ("labels", bytes([0, 0, 8, 1]) + struct.pack(">I", big) + labels[8:]),
        "truncated_data": ("images", images[:-1]),
        "truncated_header": ("images", images[:10]),
        "empty": ("labels", b""),
        "trailing": ("images", images + b"\x00"),
        "label_10": ("labels", idx_bytes(np.array([0, 1, 2, 10, 4], dtype=np.uint8))),
        "count_mismatch": ("labels", idx_bytes(np.arange(4, dtype=np.uint8))),
    }[case]


CORRUPTIONS = [
    "bad_magic", "float_type", "unknown_type", "images_2d", "labels_2d", "zero_dims", "wrong_size",
    "huge_count", "huge_labels", "truncated_data", "truncated_header", "empty", "trailing", "label_10",
    "count_mismatch",
]  # fmt: skip


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("case", CORRUPTIONS)
def test_idx_corruption_raises(tmp_path, case, gz):
    make_mnist(tmp_path, n_train=5, gz=gz)
    which, data = _corrupt(case)
    stem = "train-images-idx3-ubyte" if which == "images" else "train-labels-idx1-ubyte"
    path = write_file(tmp_path / stem, data, gz)
    with pytest.raises(DatasetError) as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def _gz_path(tmp_path: Path) -> Path:
    make_mnist(tmp_path, n_train=5, gz=True)
    return tmp_path / "train-images-idx3-ubyte.gz"


def test_truncated_gzip_stream(tmp_path):
    path = _gz_path(tmp_path)
    data = path.read_bytes()
    for cut in (len(data) - 4, len(data) // 2, 12):
        path.write_bytes(data[:cut])
        with pytest.raises(DatasetError, match="gzip|truncated"):
            load_mnist(tmp_path)


def test_gzip_bad_crc_and_trailing_garbage(tmp_path):
    path = _gz_path(tmp_path)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # CRC32 of the member
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="gzip"):
        load_mnist(tmp_path)
    data[-8] ^= 0xFF
    path.write_bytes(bytes(data) + b"not gzip at all")
    with pytest.raises(DatasetError, match="gzip"):
        load_mnist(tmp_path)
    # Extra data inside the gzip stream, after the images.
    path.write_bytes(gzip.compress(idx_bytes(_images()) + b"\x00" * 100))
    with pytest.raises(DatasetError, match="trailing"):
        load_mnist(tmp_path)


def test_gzip_header_claiming_more_than_deflate_can_hold(tmp_path):
    """A header whose claim exceeds DEFLATE's 1032:1 ratio is refused before reading data."""
    path = _gz_path(tmp_path)
    header = bytes([0, 0, 8, 3]) + struct.pack(">III", 10**6, 28, 28)  # 784 MB claimed
    path.write_bytes(gzip.compress(header + bytes(1000)))
    with pytest.raises(DatasetError, match="can hold at most"):
        load_mnist(tmp_path)


# ------------------------------------------------------------- CIFAR-10 ----
def cifar_records(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write_cifar_bin(folder: Path, n: int = 7, seed: int = 0) -> tuple[np.ndarray, ...]:
    """cifar-10-batches-bin/ with five training batches of n and a test batch of n."""
    d = folder / "cifar-10-batches-bin"
    d.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, name in enumerate(ds._CIFAR10_BATCHES):
        X, y = cifar_records(n, seed * 100 + i)
        rec = np.concatenate([y[:, None], X.reshape(n, 3072)], axis=1)
        (d / f"{name}.bin").write_bytes(rec.tobytes())
        parts.append((X, y))
    return (np.concatenate([p[0] for p in parts[:5]]), np.concatenate([p[1] for p in parts[:5]])) + parts[5]


class _G:
    """A GLOBAL reference in a hand-written pickle."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _R:
    """A REDUCE (func, args), then BUILD(state) if state is given."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state


def py2_pickle(obj) -> bytes:
    """Protocol-2 pickle as Python 2's cPickle wrote the CIFAR batches: str as
    SHORT_BINSTRING/BINSTRING (bytes on load), numpy.core.multiarray globals."""
    out = bytearray(b"\x80\x02")

    def put(x) -> None:
        if isinstance(x, dict):
            out.extend(b"}(")
            for k, v in x.items():
                put(k)
                put(v)
            out.extend(b"u")
        elif isinstance(x, list):
            out.extend(b"](")
            for v in x:
                put(v)
            out.extend(b"e")
        elif isinstance(x, tuple):
            out.extend(b"(")
            for v in x:
                put(v)
            out.extend(b"t")
        elif x is None:
            out.extend(b"N")
        elif isinstance(x, bool):
            out.extend(b"\x88" if x else b"\x89")
        elif isinstance(x, int):
            out.extend(b"K" + bytes([x]) if 0 <= x < 256 else b"J" + struct.pack("<i", x))
        elif isinstance(x, bytes):
            out.extend(b"U" + bytes([len(x)]) + x if len(x) < 256 else b"T" + struct.pack("<I", len(x)) + x)
        elif isinstance(x, _G):
            out.extend(f"c{x.module}\n{x.name}\n".encode())
        elif isinstance(x, _R):
            put(x.func)
            put(x.args)
            out.extend(b"R")
            if x.state is not None:
                put(x.state)
                out.extend(b"b")
        else:  # pragma: no cover - test helper misuse
            raise TypeError(type(x))

    put(obj)
    out.extend(b".")
    return bytes(out)


def py2_ndarray(a: np.ndarray, dtype: bytes = b"u1", subtype: _G | None = None, shape=None, raw=None) -> _R:
    """An ndarray the way NumPy of 2009 reduced it (the keywords forge one)."""
    dt = _R(_G("numpy", "dtype"), (dtype, 0, 1), (3, b"|", None, None, None, -1, -1, 0))
    state = (1, a.shape if shape is None else shape, dt, False, a.tobytes() if raw is None else raw)
    reconstruct = _G("numpy.core.multiarray", "_reconstruct")
    return _R(reconstruct, (subtype or _G("numpy", "ndarray"), (0,), b"b"), state)


def py2_batch(X: np.ndarray, y: np.ndarray, name: bytes = b"training batch 1 of 5") -> bytes:
    n = len(y)
    return py2_pickle({
        b"batch_label": name,
        b"labels": [int(v) for v in y],
        b"data": py2_ndarray(X.reshape(n, 3072)),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    })  # fmt: skip


def write_cifar_py(folder: Path, n: int = 6, seed: int = 1) -> tuple[np.ndarray, ...]:
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, name in enumerate(ds._CIFAR10_BATCHES):
        X, y = cifar_records(n, seed * 100 + i)
        (d / name).write_bytes(py2_batch(X, y))
        parts.append((X, y))
    return (np.concatenate([p[0] for p in parts[:5]]), np.concatenate([p[1] for p in parts[:5]])) + parts[5]


def assert_cifar(out, X_train, y_train, X_test, y_test) -> None:
    Xtr, ytr, Xte, yte = out
    assert Xtr.shape == X_train.shape and Xtr.dtype == np.float32 and ytr.dtype == np.int64
    np.testing.assert_array_equal(Xtr, expected_float(X_train))
    np.testing.assert_array_equal(Xte, expected_float(X_test))
    np.testing.assert_array_equal(ytr, y_train)
    np.testing.assert_array_equal(yte, y_test)


def test_py2_pickle_helper_is_a_real_cifar_style_pickle():
    """The fixture is what trusted pickle.load(encoding='bytes') + NumPy reads as the batch."""
    X, y = cifar_records(3, 0)
    obj = pickle.loads(py2_batch(X, y), encoding="bytes")
    assert obj[b"labels"] == [0, 1, 2] and obj[b"batch_label"] == b"training batch 1 of 5"
    np.testing.assert_array_equal(obj[b"data"], X.reshape(3, 3072))


def test_cifar_binary_round_trip(tmp_path):
    ref = write_cifar_bin(tmp_path)
    assert_cifar(load_cifar10(tmp_path), *ref)
    assert load_cifar10(tmp_path, flatten=True)[0].shape == (35, 3072)


def test_cifar_pickle_round_trip(tmp_path):
    ref = write_cifar_py(tmp_path)
    assert_cifar(load_cifar10(tmp_path), *ref)
    assert_cifar(load_cifar10(tmp_path / "cifar-10-batches-py"), *ref)  # batch files directly in root


def test_cifar_python3_pickles_also_load(tmp_path):
    """Batches re-saved by Python 3 (str keys, numpy._core globals, protocols 2-4 minus _codecs)."""
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    parts = []
    for i, name in enumerate(ds._CIFAR10_BATCHES):
        X, y = cifar_records(4, i)
        obj = {"data": X.reshape(4, 3072), "labels": [int(v) for v in y]}
        (d / name).write_bytes(pickle.dumps(obj, protocol=3 + i % 2))
        parts.append((X, y))
    out = load_cifar10(tmp_path)
    np.testing.assert_array_equal(out[0], expected_float(np.concatenate([p[0] for p in parts[:5]])))
    np.testing.assert_array_equal(out[3], parts[5][1])


def test_cifar_binary_preferred_over_pickle(tmp_path):
    ref = write_cifar_bin(tmp_path, n=5, seed=0)
    write_cifar_py(tmp_path, n=6, seed=9)
    assert_cifar(load_cifar10(tmp_path), *ref)


def test_cifar_validation_split_is_thesis_style(tmp_path):
    write_cifar_bin(tmp_path, n=10)
    X_tr, y_tr, X_val, y_val, X_te, y_te = load_cifar10(tmp_path, validation=True, validation_size=10, seed=1)
    assert len(y_tr) == 40 and len(y_val) == 10 and len(y_te) == 10
    again = load_cifar10(tmp_path, validation=True, validation_size=10, seed=1)
    np.testing.assert_array_equal(again[1], y_tr)
    np.testing.assert_array_equal(again[2], X_val)


def _bin_path(tmp_path: Path) -> Path:
    write_cifar_bin(tmp_path, n=3)
    return tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"


@pytest.mark.parametrize("delta", [-1, 1, -3073 * 3])
def test_cifar_binary_size_not_multiple_of_3073(tmp_path, delta):
    path = _bin_path(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:delta] if delta < 0 else data + b"\x00" * delta)
    with pytest.raises(DatasetError, match="3073") as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value)


def test_cifar_binary_label_out_of_range(tmp_path):
    path = _bin_path(tmp_path)
    data = bytearray(path.read_bytes())
    data[3073] = 10  # label of record 1
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="label 10 at record 1"):
        load_cifar10(tmp_path)


def _py_path(tmp_path: Path) -> Path:
    write_cifar_py(tmp_path, n=3)
    return tmp_path / "cifar-10-batches-py" / "data_batch_2"


class _Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_hostile_pickle_is_refused_not_executed(tmp_path, protocol):
    path = _py_path(tmp_path)
    marker = tmp_path / "pwned"
    X, y = cifar_records(3, 0)
    # The evil object first: with protocols < 3 the bytes after it need _codecs,
    # which is refused too, but the point is to meet os.system.
    path.write_bytes(pickle.dumps({"labels": _Evil(marker), "data": X.reshape(3, 3072)}, protocol=protocol))
    with pytest.raises(DatasetError, match="system") as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [("numpy", "load"), ("builtins", "eval"), ("numpy.core.multiarray", "scalar"), ("_codecs", "encode")],
)
def test_pickle_globals_outside_allow_list(tmp_path, module, name):
    path = _py_path(tmp_path)
    path.write_bytes(py2_pickle({b"data": _R(_G(module, name), (b"x",)), b"labels": [0]}))
    with pytest.raises(DatasetError, match=name):
        load_cifar10(tmp_path)


def _bad_pickles() -> dict[str, bytes]:
    X, y = cifar_records(3, 0)
    good = py2_batch(X, y)
    flat = X.reshape(3, 3072)

    def batch(data, labels=(0, 1, 2)) -> bytes:
        return py2_pickle({b"data": data, b"labels": list(labels)})

    return {
        "truncated": good[: len(good) // 2],
        "not_a_pickle": b"hello world",
        "not_a_dict": py2_pickle([1, 2, 3]),
        "no_data": py2_pickle({b"labels": [0, 1, 2]}),
        "wrong_shape": batch(py2_ndarray(X.reshape(3, 3, 1024))),
        "wrong_dtype": batch(py2_ndarray(flat.astype(np.int16), dtype=b"i2")),
        "count_mismatch": batch(py2_ndarray(flat), [0, 1]),
        "label_10": batch(py2_ndarray(flat), [0, 10, 1]),
        "label_str": batch(py2_ndarray(flat), [0, b"1", 1]),
        "labels_missing": py2_pickle({b"data": py2_ndarray(flat)}),
        "shape_lies": batch(py2_ndarray(flat, shape=(3000, 3072))),
        "data_not_bytes": batch(py2_ndarray(flat, raw=[1, 2, 3])),
        "object_dtype": batch(py2_ndarray(flat, dtype=b"O8")),
        "reconstruct_other": batch(py2_ndarray(flat, subtype=_G("numpy", "dtype"))),
        # BINBYTES8 claiming 2**62 bytes: rejected by the pre-scan, never allocated.
        "huge_length": b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc.",
        "persistent_id": b"\x80\x02U\x01xQ.",
    }  # fmt: skip


@pytest.mark.parametrize("case", sorted(_bad_pickles()))
def test_corrupt_pickle_raises(tmp_path, case):
    path = _py_path(tmp_path)
    path.write_bytes(_bad_pickles()[case])
    with pytest.raises(DatasetError) as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------ downloads ----
class FakeWeb:
    """Stands in for urllib.request.urlopen: serves bytes by URL, records requests."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages, self.requests = pages, []

    def __call__(self, url, timeout=None):
        self.requests.append(url)
        if url not in self.pages:
            raise urllib.error.URLError(f"no route to {url}")
        return io.BytesIO(self.pages[url])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_file_checksum(tmp_path, monkeypatch):
    web = FakeWeb({"https://a.example/f.gz": b"good bytes", "https://b.example/f.gz": b"evil bytes"})
    monkeypatch.setattr(urllib.request, "urlopen", web)
    dest = tmp_path / "sub" / "f.gz"
    assert download_file(["https://a.example/f.gz"], dest, md5(b"good bytes")) == str(dest)
    assert dest.read_bytes() == b"good bytes"

    bad = tmp_path / "bad" / "f.gz"
    with pytest.raises(DatasetError, match="does not match"):
        download_file(["https://b.example/f.gz"], bad, md5(b"good bytes"))
    assert list(bad.parent.iterdir()) == []  # no file and no temporary left behind

    # A dead or lying mirror falls through to the next one.
    dest2 = tmp_path / "mirror" / "f.gz"
    download_file(["https://dead.example/f.gz", "https://b.example/f.gz", "https://a.example/f.gz"], dest2, md5(b"good bytes"))
    assert dest2.read_bytes() == b"good bytes"
    assert sorted(os.listdir(dest2.parent)) == ["f.gz"]

    with pytest.raises(OSError, match="dead.example"):
        download_file(["https://dead.example/f.gz"], tmp_path / "x" / "f.gz", md5(b"good bytes"))
    with pytest.raises(DatasetError, match="more than"):
        download_file(["https://a.example/f.gz"], tmp_path / "y" / "f.gz", md5(b"good bytes"), max_bytes=4)
    assert list((tmp_path / "y").iterdir()) == []


def _fake_mnist_source(tmp_path: Path) -> tuple[ds._IdxSource, dict[str, bytes], dict]:
    src = tmp_path / "src"
    arrays = make_mnist(src, gz=True)
    pages, files = {}, {}
    for stem in MNIST_STEMS:
        data = (src / f"{stem}.gz").read_bytes()
        pages[f"https://mirror.example/mnist/{stem}.gz"] = data
        files[stem] = ds._Remote(md5(data), len(data), md5(gzip.decompress(data)))
    return ds._IdxSource("MNIST", ("https://mirror.example/mnist/",), files), pages, arrays


def test_load_mnist_download(tmp_path, monkeypatch):
    source, pages, arrays = _fake_mnist_source(tmp_path)
    monkeypatch.setitem(ds._IDX_SOURCES, "mnist", source)
    web = FakeWeb(pages)
    monkeypatch.setattr(urllib.request, "urlopen", web)
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError):
        load_mnist(root)  # download defaults to False: no network
    assert web.requests == []
    X_train, y_train, X_test, y_test = load_mnist(root, download=True, verify=True)
    assert sorted(os.listdir(root)) == sorted(f"{s}.gz" for s in MNIST_STEMS)
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    assert len(web.requests) == 4
    load_mnist(root, download=True)  # all present: no second download
    assert len(web.requests) == 4


def test_load_mnist_download_bad_checksum_leaves_nothing(tmp_path, monkeypatch):
    source, pages, _ = _fake_mnist_source(tmp_path)
    monkeypatch.setitem(ds._IDX_SOURCES, "mnist", source)
    url = "https://mirror.example/mnist/train-images-idx3-ubyte.gz"
    pages[url] = pages[url][:100] + bytes([pages[url][100] ^ 1]) + pages[url][101:]
    monkeypatch.setattr(urllib.request, "urlopen", FakeWeb(pages))
    monkeypatch.setenv("NATVERK_DATA", str(tmp_path / "data"))
    with pytest.raises(DatasetError, match="does not match"):
        load_mnist(download=True)
    assert "train-images-idx3-ubyte.gz" not in os.listdir(tmp_path / "data" / "mnist")
    assert not [f for f in os.listdir(tmp_path / "data" / "mnist") if f.endswith(".part")]


def test_download_needs_a_folder(monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", FakeWeb({}))
    with pytest.raises(FileNotFoundError, match="root= or set NATVERK_DATA"):
        load_mnist(download=True)


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def test_load_cifar10_download(tmp_path, monkeypatch):
    ref = write_cifar_bin(tmp_path / "src", n=4)
    members = [(tarfile.TarInfo("cifar-10-batches-bin"), None)]
    members[0][0].type = tarfile.DIRTYPE
    for name in ds._CIFAR10_BATCHES:
        data = (tmp_path / "src" / "cifar-10-batches-bin" / f"{name}.bin").read_bytes()
        members.append((tarfile.TarInfo(f"cifar-10-batches-bin/{name}.bin"), data))
    archive = _tar_gz(members)
    monkeypatch.setattr(ds, "_CIFAR10_REMOTE", ds._Remote(md5(archive), len(archive)))
    monkeypatch.setattr(urllib.request, "urlopen", FakeWeb({ds._CIFAR10_URL: archive}))
    root = tmp_path / "cifar"
    assert_cifar(load_cifar10(root, download=True), *ref)
    assert sorted(os.listdir(root)) == ["cifar-10-batches-bin"]  # archive and staging removed


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, (b"payload" if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize(
    "bad",
    [
        _member("../evil.txt"),
        _member("cifar-10-batches-bin/../../evil.txt"),
        _member("/tmp/natverk-evil.txt"),
        _member("cifar-10-batches-bin/link", tarfile.SYMTYPE, "/etc/passwd"),
        _member("cifar-10-batches-bin/hard", tarfile.LNKTYPE, "cifar-10-batches-bin/ok.bin"),
        _member("cifar-10-batches-bin/fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "fifo"],
)
def test_tar_extraction_rejects_unsafe_members(tmp_path, bad):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz([_member("cifar-10-batches-bin/ok.bin"), bad]))
    dest = tmp_path / "out" / "inner"
    with pytest.raises(DatasetError, match="archive member"):
        extract_tar_safely(archive, dest)
    assert list(dest.iterdir()) == []  # nothing extracted, not even the safe member
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_tar_extraction_corrupt_archive(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz([_member("x/ok.bin")])[:40])
    with pytest.raises(DatasetError, match="corrupt archive"):
        extract_tar_safely(archive, tmp_path / "out")


# ----------------------------------------------------------------- ISIC ----
PIL = pytest.importorskip("PIL.Image", reason="load_isic needs Pillow")


def write_isic(folder: Path, n: int = 20, size=(6, 5), seed: int = 0, header="image,label", words=False, fmt="png"):
    """n images (image i has pixel [0, 0, 0] = i), 30 % malignant, and labels.csv."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    pixels, labels, lines = {}, {}, [header] if header else []
    patient = header.count(",") == 2  # ISIC 2020 style: image_name,patient_id,target
    for i in range(n):
        img = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
        img[0, 0, 0] = i
        name = f"ISIC_{seed:02d}{i:05d}"
        options = {"quality": 95, "subsampling": 0} if fmt == "jpg" else {}
        PIL.fromarray(img).save(folder / "images" / f"{name}.{fmt}", **options)
        label = int(i % 10 < 3)
        pixels[name], labels[name] = img, label
        text = ("malignant" if label else "benign") if words else str(label)
        lines.append(f"{name},IP_{i:07d},{text}" if patient else f"{name},{text}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return pixels, labels


def _ids(X: np.ndarray) -> list[int]:
    return np.rint(X[:, 0, 0, 0] * 255).astype(int).tolist()


def test_isic_round_trip_and_stratified_split(tmp_path):
    pixels, labels = write_isic(tmp_path, n=20)
    X_tr, y_tr, X_te, y_te = load_isic(tmp_path, image_size=(6, 5))
    assert X_tr.shape == (15, 3, 6, 5) and X_te.shape == (5, 3, 6, 5)
    assert X_tr.dtype == np.float32 and y_tr.dtype == np.int64 and X_tr.flags.c_contiguous
    # Stratified: 6 of 20 malignant -> round(0.25 * 20) = 5 test images keep the ratio.
    assert int(y_te.sum()) in (1, 2) and int(y_tr.sum()) + int(y_te.sum()) == 6
    ids_tr, ids_te = _ids(X_tr), _ids(X_te)
    assert sorted(ids_tr + ids_te) == list(range(20)) and ids_tr == sorted(ids_tr)
    names = list(pixels)
    for X, y, ids in ((X_tr, y_tr, ids_tr), (X_te, y_te, ids_te)):
        for x, label, i in zip(X, y, ids):
            np.testing.assert_array_equal(x, expected_float(pixels[names[i]].transpose(2, 0, 1)))
            assert label == labels[names[i]]
    again = load_isic(tmp_path, image_size=(6, 5), num_workers=1)
    np.testing.assert_array_equal(again[0], X_tr)


def test_isic_validation_and_flatten(tmp_path):
    write_isic(tmp_path, n=40, words=True, header="image,benign_malignant")
    out = load_isic(tmp_path, image_size=(6, 5), validation=True, validation_size=10, test_fraction=0.25, flatten=True)
    X_tr, y_tr, X_val, y_val, X_te, y_te = out
    assert (len(y_tr), len(y_val), len(y_te)) == (20, 10, 10)
    assert X_tr.shape == (20, 90)
    assert int(y_val.sum()) == 3 and int(y_te.sum()) == 3  # 30 % malignant in each
    again = load_isic(tmp_path, image_size=(6, 5), validation=True, validation_size=10, flatten=True)
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a, b)


def test_isic_presplit_folders_resize_and_jpeg(tmp_path):
    root = tmp_path / "isic"
    tr_pix, tr_lab = write_isic(root / "train", n=6, size=(40, 30), header="image_name,patient_id,target")
    te_pix, _ = write_isic(root / "test", n=4, size=(40, 30), seed=1, header="", words=True, fmt="jpg")
    (root / "labels.csv").write_text("this,is,ignored\n")  # train/ + test/ take precedence
    X_tr, y_tr, X_te, y_te = load_isic(tmp_path, image_size=8)
    assert X_tr.shape == (6, 3, 8, 8) and X_te.shape == (4, 3, 8, 8)
    np.testing.assert_array_equal(y_tr, list(tr_lab.values()))
    assert 0.0 <= X_te.min() and X_te.max() <= 1.0
    # Full size: exact for PNG, close for JPEG.
    X_tr, _, X_te, _ = load_isic(root, image_size=(40, 30))
    np.testing.assert_array_equal(X_tr[0], expected_float(list(tr_pix.values())[0].transpose(2, 0, 1)))
    assert np.abs(X_te[0] - expected_float(list(te_pix.values())[0].transpose(2, 0, 1))).mean() < 0.05


def test_isic_headerless_2016_style_and_ids_with_extension(tmp_path):
    write_isic(tmp_path, n=8, header="")
    text = (tmp_path / "labels.csv").read_text().replace(",1\n", ",1.0\n").replace(",0\n", ",0.0\n")
    lines = text.splitlines()
    lines[0] = lines[0].replace(",", ".png,", 1)  # an entry with its extension
    (tmp_path / "labels.csv").write_text("\ufeff" + "\n".join(lines) + "\n")  # and a BOM
    X_tr, y_tr, X_te, y_te = load_isic(tmp_path, image_size=(6, 5), test_fraction=0.5)
    assert len(y_tr) == len(y_te) == 4


@pytest.mark.parametrize(
    "csv_text, match",
    [
        ("image,label\nISIC_0000000,maybe\n", "not benign/malignant"),
        ("picture,verdict\nISIC_0000000,1\n", "no image column"),
        ("image,notes\nISIC_0000000,1\n", "no label column"),
        ("image,label\nISIC_0000000\n", "no cell"),
        ("image,label\nISIC_0000000,1\nISIC_0000000,0\n", "listed twice"),
        ("image,label\n", "lists no images"),
        ("", "empty"),
        ("image,label\nISIC_9999999,1\nISIC_0000001,0\n", "not in"),
        ("image,label\n../../etc/passwd,1\nISIC_0000001,0\n", "outside"),
    ],
)
def test_isic_bad_csv(tmp_path, csv_text, match):
    write_isic(tmp_path, n=4)
    (tmp_path / "labels.csv").write_text(csv_text)
    with pytest.raises(DatasetError, match=match):
        load_isic(tmp_path, image_size=(6, 5))


def test_isic_bad_images_and_arguments(tmp_path):
    write_isic(tmp_path, n=4)
    (tmp_path / "images" / "ISIC_0000002.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetError, match="ISIC_0000002.png"):
        load_isic(tmp_path, image_size=(6, 5), test_fraction=0.5)
    with pytest.raises(TypeError, match="image_size"):
        load_isic(tmp_path, image_size=(6.0, 5))
    with pytest.raises(ValueError, match="test_fraction"):
        load_isic(tmp_path, image_size=(6, 5), test_fraction=1.5)


@pytest.mark.parametrize("side", [10_000, 20_000], ids=["warn-size", "error-size"])
def test_isic_decompression_bomb_refused(tmp_path, side):
    """A PNG header claiming 10^8 or 4*10^8 pixels is refused before decoding."""
    write_isic(tmp_path, n=4)
    path = tmp_path / "images" / "ISIC_0000001.png"
    png = bytearray(path.read_bytes())
    # IHDR is the first chunk: length(4) 'IHDR'(4) width(4) height(4) ... crc(4).
    png[16:24] = struct.pack(">II", side, side)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    path.write_bytes(bytes(png))
    with pytest.raises(DatasetError, match="ISIC_0000001.png.*(DecompressionBomb|exceeds limit)"):
        load_isic(tmp_path, image_size=(6, 5), test_fraction=0.5)


def test_isic_without_pillow(tmp_path, monkeypatch):
    write_isic(tmp_path, n=4)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        load_isic(tmp_path, image_size=(6, 5), test_fraction=0.5)


def test_isic_missing_folder_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_isic(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "labels.csv") in msg and str(tmp_path / "isic" / "train" / "labels.csv") in msg
    assert "challenge.isic-archive.com" in msg


# ------------------------------------------------------------ real data ----
def _data_root() -> Path:
    env = os.environ.get("NATVERK_DATA")  # read before the autouse fixture clears it
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


DATA_ROOT = _data_root()


def _require(name: str) -> Path:
    folder = DATA_ROOT / name
    missing = [s for s in MNIST_STEMS if not any((folder / (s + ext)).is_file() for ext in ("", ".gz"))]
    if missing:
        pytest.skip(f"real {name} not found in {folder} (set NATVERK_DATA to a folder holding {name}/)")
    return folder


@pytest.fixture(scope="module", params=["mnist", "fashion-mnist"])
def real_idx(request):
    folder = _require(request.param)
    loader = load_mnist if request.param == "mnist" else load_fashion_mnist
    return request.param, folder, loader(folder, verify=True)


@pytest.mark.data
def test_real_idx_datasets(real_idx):
    name, _, (X_train, y_train, X_test, y_test) = real_idx
    assert X_train.shape == (60000, 1, 28, 28) and X_test.shape == (10000, 1, 28, 28)
    assert X_train.dtype == X_test.dtype == np.float32 and y_train.dtype == y_test.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0 and 0.0 <= X_test.min() and X_test.max() <= 1.0
    counts = np.bincount(y_train, minlength=10)
    assert len(counts) == 10 and counts.min() >= 5000 and counts.max() <= 7000, counts
    assert sorted(set(y_test.tolist())) == list(range(10))
    if name == "mnist":  # the well-known class counts
        assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# Published MD5s, independent of the loader's table: torchvision's for the
# .gz files, and the raw (decompressed) MNIST files'.
PUBLISHED_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}


@pytest.mark.data
def test_real_idx_checksums(real_idx):
    """The raw content's MD5 is the published one (MNIST's shared copy is recompressed,
    so its .gz may differ; Fashion-MNIST's .gz files are the originals)."""
    name, folder, _ = real_idx
    for stem, (gz_md5, raw_md5) in PUBLISHED_MD5[name].items():
        path = folder / stem if (folder / stem).is_file() else folder / f"{stem}.gz"
        data = path.read_bytes()
        content = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        assert md5(content) == raw_md5, path
        if name == "fashion-mnist" and path.suffix == ".gz":
            assert md5(data) == gz_md5, path
        remote = ds._IDX_SOURCES[name].files[stem]  # the loader's table agrees
        assert (remote.md5, remote.raw_md5) == (gz_md5, raw_md5)


@pytest.mark.data
def test_real_cifar10():
    folder = DATA_ROOT / "cifar-10"
    marks = [folder / "cifar-10-batches-bin" / "test_batch.bin", folder / "cifar-10-batches-py" / "test_batch"]
    if not any(p.is_file() for p in marks):
        pytest.skip(f"real CIFAR-10 not found in {folder} (set NATVERK_DATA to a folder holding cifar-10/)")
    X_tr, y_tr, X_val, y_val, X_te, y_te = load_cifar10(folder, validation=True)
    assert X_tr.shape == (40000, 3, 32, 32) and X_val.shape == (10000, 3, 32, 32) and X_te.shape == (10000, 3, 32, 32)
    assert X_tr.dtype == np.float32 and 0.0 <= X_tr.min() and X_tr.max() <= 1.0
    assert np.bincount(y_te, minlength=10).tolist() == [1000] * 10
