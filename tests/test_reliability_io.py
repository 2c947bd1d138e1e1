"""Hostile and damaged files: natverk.load's memory bound, description depth and integer
checks, cleanup of killed saves' temporary files, and extract_tar_safely's limits."""

from __future__ import annotations

import inspect
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import natverk
from natverk.importdata import DatasetError
from natverk.importdata._download import MAX_EXTRACT_BYTES, extract_tar_safely
from natverk.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Residual,
    Sigmoid,
    Stack,
    Tanh,
)
from natverk.layers._base import _REGISTRY, Layer, layer_to_spec
from natverk.models import Sequential, _io
from natverk.optimizers import Adam

MiB = 1 << 20


# ------------------------------------------------------------------ crafting model files


def _npy(shape, descr: str = "<f8", data: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    if data is None:
        data = bytes(int(np.prod(shape, dtype=np.int64)) * np.dtype(descr).itemsize)
    return buf.getvalue() + data


def _meta_npy(meta) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(meta if isinstance(meta, str) else json.dumps(meta)))
    return buf.getvalue()


def _description(*layers: Layer, **changes) -> dict:
    meta = {
        "format": "natverk.Sequential",
        "version": 1,
        "layers": [layer_to_spec(layer) for layer in layers],
        "training": True,
        "epoch": 0,
        "seed": None,
        "loss": None,
        "optimizer": None,
    }
    meta.update(changes)
    return meta


def _write_zip(path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name + ".npy", data)


def _write_zero_bomb(path, meta: dict, key: str, shape, small: dict[str, bytes] | None = None) -> None:
    """A model file whose entry ``key`` is a header plus all-zero float64 data of ``shape``,
    deflated: hundreds of MB in about a megabyte."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("__natverk__.npy", _meta_npy(meta))
        with z.open(key + ".npy", "w", force_zip64=True) as f:
            f.write(_npy(shape, data=b""))
            left, chunk = int(np.prod(shape)) * 8, bytes(4 * MiB)
            while left:
                f.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
        for name, data in (small or {}).items():
            z.writestr(name + ".npy", data)


def _traced_peak(fn) -> int:
    """Peak bytes allocated (Python and NumPy) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _load_fails(path, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        natverk.load(path)


# ------------------------------------------------------------------ 1. memory on hostile files


@pytest.fixture(scope="module")
def zero_bomb(tmp_path_factory):
    """256 MiB of zeros as 'param/0.W' of a file that describes Dense(2, 2)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    _write_zero_bomb(path, _description(Dense(2, 2)), "param/0.W", (32 * MiB,), {"param/0.b": _npy((2,))})
    return path


def test_load_compressed_bomb_fails_before_decompressing(zero_bomb):
    size = os.path.getsize(zero_bomb)
    assert size < 3 * MiB  # 256 MiB uncompressed
    start = time.perf_counter()
    peak = _traced_peak(lambda: _load_fails(zero_bomb, r"'param/0.W' has shape \(33554432,\), the architecture needs \(2, 2\)"))
    assert time.perf_counter() - start < 2.0
    # before the fix every array was read first: a peak of 257 MiB here
    assert peak <= 2 * size + 4 * MiB, f"peak {peak / MiB:.1f} MiB for a {size / MiB:.1f} MiB file"


@pytest.mark.parametrize(
    "layers",
    [
        [Dense(2, 2)],  # the description says Dense(6000, 6000): 275 MiB
        [Flatten(), Residual(Dense(2, 2), ReLU())],  # ... inside a Residual: '1.0.W'
        [BatchNorm1D(2)],  # the description says BatchNorm1D(4_000_000): 4 x 31 MiB
        [Conv2D(2, 2, 1)],  # the description says Conv2D(1000, 1000, 5): 191 MiB
    ],
    ids=["dense", "nested-dense", "batchnorm", "conv"],
)
def test_load_huge_declared_layer_with_tiny_arrays_allocates_nothing(tmp_path, layers):
    small = Sequential(*layers)
    path = tmp_path / "m.npz"
    small.save(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["__natverk__"]))
    spec = meta["layers"][-1]
    if spec["class"] == "Residual":
        spec = spec["config"]["layers"][0]
    spec["config"].update(
        {"Dense": {"in_features": 6000, "out_features": 6000},
         "BatchNorm1D": {"num_features": 4_000_000},
         "Conv2D": {"in_channels": 1000, "out_channels": 1000, "kernel_size": [5, 5]}}[spec["class"]]
    )
    arrays["__natverk__"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    peak = _traced_peak(lambda: _load_fails(path, r"has shape \(.*\), the architecture needs"))
    assert peak <= 2 * os.path.getsize(path) + 2 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_load_huge_declared_layer_with_absent_arrays_allocates_nothing(tmp_path):
    path = tmp_path / "m.npz"
    meta = _description(Dense(2, 2))
    meta["layers"][0]["config"].update(in_features=20000, out_features=20000)  # 3.2 GB
    _write_zip(path, {"__natverk__": _meta_npy(meta)})
    peak = _traced_peak(lambda: _load_fails(path, r"lacks the array 'param/0.W'"))
    assert peak <= 2 * MiB


def test_load_consistent_compressed_file_costs_its_parameters_once(tmp_path):
    """A file whose huge array matches its description loads; the peak is the model's
    parameters plus little more (the arrays are read straight into them)."""
    path = tmp_path / "big.npz"
    meta = _description(Dense(2048, 8192, bias=False, seed=0))
    _write_zero_bomb(path, meta, "param/0.W", (2048, 8192))
    size, params = os.path.getsize(path), 2048 * 8192 * 8  # 128 MiB
    loaded = []
    peak = _traced_peak(lambda: loaded.append(natverk.load(path)))
    assert not loaded[0][0].W.any() and loaded[0][0].W.shape == (2048, 8192)
    # before the fix: the arrays, then the model (2 x 128 MiB)
    assert peak <= 2 * size + params + 4 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_load_out_of_memory_is_a_value_error(tmp_path, monkeypatch):
    """A consistent file describing a model larger than memory: a ValueError saying so."""
    import natverk.layers.dense as dense

    path = Sequential(Dense(3, 2, seed=0)).save(tmp_path / "m.npz")

    def no_memory(*args):
        raise MemoryError("Unable to allocate 8.00 TiB")

    monkeypatch.setattr(dense, "kaiming_normal", no_memory)
    _load_fails(path, r"the model it describes needs 0\.0 GiB .* more than this machine could allocate")


def test_load_checks_declared_sizes_against_npy_headers(tmp_path):
    """An entry whose zip directory size disagrees with its .npy header is refused unread."""
    path = tmp_path / "m.npz"
    model = Sequential(Dense(2, 2, seed=0))
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    entries = {k: _npy(v.shape, v.dtype.str, v.tobytes()) if k != "__natverk__" else _meta_npy(str(v)) for k, v in arrays.items()}
    entries["param/0.W"] += bytes(8 * MiB)  # more data than the header's (2, 2) float64
    _write_zip(path, entries)
    peak = _traced_peak(lambda: _load_fails(path, r"'param/0\.W\.npy' is \d+ bytes uncompressed, but its header"))
    assert peak <= 2 * MiB
    entries["param/0.W"] = _npy((2, 2), "|O", b"")  # an object array: never unpickled
    _write_zip(path, entries)
    _load_fails(path, r"'param/0\.W\.npy' has dtype object")
    entries["param/0.W"] = _npy((2, 2))
    entries["notes"] = b"hello"  # not even a .npy header
    _write_zip(path, entries)
    _load_fails(path, r"truncated or corrupt, or not a natverk model \(entry 'notes.npy'\)")
    del entries["notes"]
    _write_zip(path, entries)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("readme.txt", "not an array")
    _load_fails(path, r"entry 'readme.txt' that is not a NumPy array")


def test_load_refuses_an_oversized_description(tmp_path):
    path = tmp_path / "m.npz"
    meta = _description(Dense(2, 2))
    meta["padding"] = " " * (_io.MAX_META_BYTES // 4)
    _write_zip(path, {"__natverk__": _meta_npy(meta), "param/0.W": _npy((2, 2)), "param/0.b": _npy((2,))})
    _load_fails(path, r"__natverk__ entry is \d+ bytes, more than the")


def test_declared_arrays_table_matches_the_layers():
    """load predicts each built-in layer's arrays from its config without building it; the
    prediction must be exactly what the constructor makes."""
    layers = [
        Dense(3, 4), Dense(3, 4, bias=False), Dense(5, 2, seed=1),
        Conv2D(4, 6, 3, groups=2), Conv2D(2, 3, (3, 5), bias=False, stride=2), Conv2D(1, 1, [1, 2]),
        BatchNorm1D(7), BatchNorm2D(3, eps=1e-3), Dropout(0.1, seed=0),
        ReLU(), Sigmoid(), Tanh(), Flatten(), MaxPool2D(2), AvgPool2D(3, 1, 1), GlobalAvgPool2D(),
        Residual(Dense(2, 2), ReLU(), Stack(BatchNorm1D(2), Stack())), Stack(Stack(Dense(1, 1))),
    ]  # fmt: skip
    model = Sequential(*layers)
    declared: list = []
    assert _io._declared_leaves(model.config()["layers"], "", declared) is True
    actual = [leaf for leaf in _io._model_leaves(model) if leaf[1] or leaf[2]]
    assert declared == actual
    # every built-in layer class is predicted, a container, or holds no arrays
    for cls in _REGISTRY.values():
        if cls.__module__.startswith("natverk.layers"):
            assert (
                cls in _io._DECLARED_ARRAYS
                or cls in _io._CONTAINERS
                or (not cls.has_parameters and cls.buffers is Layer.buffers)
            ), cls


# ------------------------------------------------------------------ 2. nesting depth


def _with_meta(tmp_path, meta, arrays: dict[str, bytes] | None = None):
    path = tmp_path / "m.npz"
    _write_zip(path, {"__natverk__": _meta_npy(meta), **(arrays or {})})
    return path


@pytest.mark.parametrize("depth", [100_000, 2_000, 150])
def test_load_deeply_nested_description_is_a_value_error(tmp_path, depth):
    text = json.dumps(_description()).replace('"layers": []', '"layers": ' + "[" * depth + "]" * depth)
    path = _with_meta(tmp_path, text)
    _load_fails(path, r"nested (too deeply|more than 100 levels)")


def test_load_nested_containers_within_the_limit(tmp_path):
    inner: Layer = Dense(2, 2, seed=0)
    for _ in range(20):
        inner = Stack(inner)
    model = Sequential(Residual(inner))
    loaded = natverk.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.parameters()[0][1], model.parameters()[0][1])
    assert loaded.parameters()[0][0] == "0." * 21 + "0.W"


# ------------------------------------------------------------------ 3. integer fields


@pytest.fixture()
def adam_model(tmp_path):
    X = np.random.default_rng(0).standard_normal((16, 1, 4, 4))
    y = np.arange(16) % 2
    model = Sequential(Conv2D(1, 2, 3, seed=0), MaxPool2D(2, stride=1), Dropout(0.2, seed=1), Flatten(), Dense(2, 2, seed=2))
    model.fit(X, y, 1, 8, Adam(0.01), seed=3, verbose=0)
    path = model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return model, path, arrays, X, y


def _rewrite(path, arrays, change=None, **replace):
    arrays = dict(arrays)
    meta = json.loads(str(arrays["__natverk__"]))
    if change is not None:
        change(meta)
    arrays["__natverk__"] = np.array(json.dumps(meta))
    arrays.update(replace)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m["optimizer"].update(iterations=10**30), r"optimizer\.iterations = 10000000\.\.\. \(31 digits\) is out of range"),
        (lambda m: m["optimizer"].update(iterations=2**63 - 1), r"\(optimizer\.iterations\) 9223372036854775807 is not an integer in \[0, 2\*\*62\]"),
        (lambda m: m["optimizer"].update(iterations=2.5), r"optimizer\.iterations"),
        (lambda m: m.update(epoch=2**64), r"field epoch = .* is out of range"),
        (lambda m: m.update(epoch=2**62 + 1), r"epoch count"),
        (lambda m: m["layers"][0]["config"].update(stride=[10**30, 1]), r"layers\[0\]\.config\.stride\[0\] = .* out of range"),
        (lambda m: m["layers"][1]["config"].update(stride=[2**63, 1]), r"layers\[1\]\.config\.stride\[0\]"),
        (lambda m: m["layers"][4]["config"].update(in_features=10**30), r"layers\[4\]\.config\.in_features"),
        (lambda m: m["layers"][4]["config"].update(in_features=-(2**70)), r"layers\[4\]\.config\.in_features"),
    ],
    ids=["iterations-1e30", "iterations-int64max", "iterations-float", "epoch-2**64", "epoch-2**62+1",
         "conv-stride", "pool-stride", "dense-in", "dense-in-negative"],
)  # fmt: skip
def test_load_validates_integer_fields(adam_model, change, match):
    _, path, arrays, _, _ = adam_model
    _rewrite(path, arrays, change)
    _load_fails(path, match)


def test_load_integer_field_checks(adam_model):
    model, path, arrays, X, y = adam_model
    # a 5000-digit integer: Python's int parser refuses it; still a ValueError
    text = str(arrays["__natverk__"]).replace('"epoch": 1', '"epoch": ' + "9" * 5000)
    _rewrite(path, arrays, __natverk__=np.array(text))
    _load_fails(path, "architecture JSON is corrupt")
    # a dropout counter that cannot count on
    _rewrite(path, arrays, **{"buffer/2.counter": np.array(2**63 - 1, dtype=np.int64)})
    _load_fails(path, r"'buffer/2\.counter' holds a count outside")
    # in range: loads and trains on (10**12 Adam steps are fine)
    _rewrite(path, arrays, lambda m: m["optimizer"].update(iterations=10**12))
    loaded = natverk.load(path)
    assert loaded.optimizer.iterations == 10**12
    loaded.fit(X, y, 1, 8, verbose=0)
    assert loaded.optimizer.iterations == 10**12 + 2


def test_seeds_beyond_64_bits_still_round_trip(tmp_path):
    """Seeds only feed NumPy's seed sequences, which take any non-negative integer."""
    X, y = np.random.default_rng(0).standard_normal((8, 3)), np.arange(8) % 2
    model = Sequential(Dense(3, 2, seed=2**70), Dropout(0.1, seed=2**80))
    model.fit(X, y, 1, 4, seed=2**90, verbose=0)
    loaded = natverk.load(model.save(tmp_path / "m.npz"))
    assert loaded.seed == 2**90 and loaded[0].seed == 2**70 and loaded[1].seed == 2**80


# ------------------------------------------------------------------ 4. killed saves


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


@pytest.mark.skipif(os.name != "posix", reason="process ids are checked on POSIX only")
def test_save_removes_stale_temp_files_of_dead_saves(tmp_path):
    host, dead = _io._host(), _dead_pid()
    model = Sequential(Dense(2, 2, seed=0))
    files = {
        # removed: a dead process of this host (over a minute old), an old natverk's or another
        # host's file older than a day
        f".m.npz.{host}.{dead}.abc_1234.tmp": (120, False),
        ".m.npz.k3j_9x0q.tmp": (2 * 86400, False),
        f".m.npz.otherhost.{dead}.zzzzzzzz.tmp": (2 * 86400, False),
        # kept: live processes (this one, its parent), a dead one's file written just now, recent
        # files whose owner cannot be checked, and other targets' files
        f".m.npz.{host}.{os.getpid()}.abcdefgh.tmp": (2 * 86400, True),
        f".m.npz.{host}.{os.getppid()}.abcdefgh.tmp": (2 * 86400, True),
        f".m.npz.{host}.{dead}.fresh___.tmp": (0, True),
        ".m.npz.k3j_9x0r.tmp": (3600, True),
        f".m.npz.otherhost.{dead}.zzzzzzzz1.tmp": (3600, True),
        f".m.npz.x.npz.{host}.{dead}.abcdefgh.tmp": (2 * 86400, True),
        f".other.npz.{host}.{dead}.abcdefgh.tmp": (2 * 86400, True),
        "m.npz.notes.tmp": (2 * 86400, True),
    }
    for name, (age, _) in files.items():
        (tmp_path / name).write_bytes(b"partial save")
        _age(tmp_path / name, age)
    (tmp_path / f".m.npz.{host}.{dead}.somedir_.tmp").mkdir()  # not a file: kept
    model.save(tmp_path / "m.npz")
    left = set(os.listdir(tmp_path))
    assert left == {"m.npz", f".m.npz.{host}.{dead}.somedir_.tmp"} | {n for n, (_, keep) in files.items() if keep}


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process ids are POSIX")
def test_save_after_a_killed_save_leaves_no_temp_file(tmp_path):
    path = tmp_path / "m.npz"
    code = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from natverk.layers import Dense
        from natverk.models import Sequential

        def dying_savez(f, **arrays):  # killed half-way through writing
            f.write(b"partial" * 1000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        np.savez = dying_savez
        Sequential(Dense(3, 2, seed=0)).save({str(path)!r})
        """
    )
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    left = sorted(os.listdir(tmp_path))
    assert len(left) == 3 and all(n.startswith(".m.npz.") and n.endswith(".tmp") for n in left)
    for name in left:
        _age(tmp_path / name, 120)
    model = Sequential(Dense(3, 2, seed=1))
    model.save(path)
    assert os.listdir(tmp_path) == ["m.npz"]
    np.testing.assert_array_equal(natverk.load(path)[0].W, model[0].W)


def test_save_with_a_long_file_name(tmp_path):
    """The temporary name (host, pid, random part) still fits NAME_MAX for a 250-byte name."""
    name = "m" * 246 + ".npz"
    model = Sequential(Dense(2, 2, seed=0))
    model.save(tmp_path / name)
    assert os.listdir(tmp_path) == [name]
    np.testing.assert_array_equal(natverk.load(tmp_path / name)[0].W, model[0].W)


# ------------------------------------------------------------------ 5. tar extraction


def _tar(members, mode: str = "w:gz") -> bytes:
    """``members``: (name, bytes) for a file, (name, None) for a folder."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _extract_fails(tmp_path, members, match: str, **kwargs):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar(members))
    dest = tmp_path / "out"
    with pytest.raises(DatasetError, match=match):
        extract_tar_safely(archive, dest, **kwargs)
    assert os.listdir(dest) == []  # nothing extracted, no staging folder left
    return dest


@pytest.mark.parametrize(
    "members, match",
    [
        ([("a", b"file"), ("a/b", b"x")], r"member 'a' is a file, but member 'a/b' needs a folder"),
        ([("a/b", b"x"), ("a", b"file")], r"member 'a' is a file, but member 'a/b' needs a folder"),
        ([("d", None), ("d", b"file")], r"member 'd' is a file, but member 'd' needs a folder"),
        ([("ok", b"x"), ("n" * 300, b"x")], r"member 'nnnn.*' has a path component of 300 bytes"),
    ],
    ids=["file-then-child", "child-then-file", "dir-and-file", "long-name"],
)
def test_tar_extraction_conflicts_are_dataset_errors(tmp_path, members, match):
    _extract_fails(tmp_path, members, match)


def test_tar_extraction_wraps_os_errors_naming_the_member(tmp_path):
    deep = "/".join(["d" * 200] * 25) + "/f"  # a 5000-byte path: ENAMETOOLONG while writing
    _extract_fails(tmp_path, [("ok", b"x"), (deep, b"x")], r"cannot extract archive member 'dddd.*/f': OSError")
    # a folder already in dest where the archive has a file
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(_tar([("x", b"data")]))
    (tmp_path / "out2" / "x").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"cannot move archive member 'x' into .*IsADirectoryError"):
        extract_tar_safely(archive, tmp_path / "out2")


def test_tar_extraction_size_limit_from_the_headers(tmp_path):
    members = [("a.bin", bytes(3 * MiB)), ("b.bin", bytes(3 * MiB))]
    _extract_fails(tmp_path, members, r"more than 5242880 bytes uncompressed .*at member 'b.bin'", max_bytes=5 * MiB)
    assert extract_tar_safely(tmp_path / "a.tar.gz", tmp_path / "ok", max_bytes=6 * MiB)
    with pytest.raises(ValueError, match="max_bytes must be >= 0"):
        extract_tar_safely(tmp_path / "a.tar.gz", tmp_path / "ok", max_bytes=-1)


def test_tar_extraction_default_limit_stops_a_bomb(tmp_path):
    """A plain tar whose one member declares 3 GiB (a sparse file: no disk used) is refused
    from its header, before anything is written, under the default limit."""
    assert inspect.signature(extract_tar_safely).parameters["max_bytes"].default == MAX_EXTRACT_BYTES
    assert 1 << 30 <= MAX_EXTRACT_BYTES <= 4 << 30  # far above CIFAR-10's 184 MB
    archive = tmp_path / "bomb.tar"
    info = tarfile.TarInfo("zeros.bin")
    info.size = 3 << 30
    with open(archive, "wb") as f:
        f.write(info.tobuf(format=tarfile.GNU_FORMAT))
        f.truncate(512 + (3 << 30) + 1024)  # data and the end-of-archive blocks, all zero
    if os.stat(archive).st_blocks * 512 > 64 * MiB:
        pytest.skip("this file system does not make sparse files")
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"more than 2147483648 bytes uncompressed"):
        extract_tar_safely(archive, tmp_path / "out")
    assert time.perf_counter() - start < 2.0
    assert os.listdir(tmp_path / "out") == []


def test_tar_extraction_counts_the_bytes_it_writes(tmp_path, monkeypatch):
    """Should a member's stream yield more than its header declares, writing stops there."""
    real = tarfile.TarFile.extractfile

    def lying(self, member):
        real(self, member)
        return io.BytesIO(bytes(4 * MiB))

    monkeypatch.setattr(tarfile.TarFile, "extractfile", lying)
    _extract_fails(tmp_path, [("a.bin", b"tiny")], r"member 'a.bin' unpacks to more bytes than its header declares \(4\)")
