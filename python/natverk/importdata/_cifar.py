"""CIFAR-10 batch files: the binary version and, safely, the Python-pickle version.

Binary version (``cifar-10-batches-bin/data_batch_{1..5}.bin``, ``test_batch.bin``;
Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009):
each record is 3073 bytes, one label byte 0..9 followed by 3072 pixel bytes,
1024 red then 1024 green then 1024 blue, each plane row-major 32 x 32 -- that
is already one NCHW image, so a batch is a ``(n, 3073)`` byte matrix and
``records[:, 1:].reshape(n, 3, 32, 32)`` is the whole decoding.

Python version (``cifar-10-batches-py/data_batch_{1..5}``, ``test_batch``):
a Python 2 pickle (protocol 2) of a dict ``{b'batch_label', b'labels',
b'data', b'filenames'}`` with ``data`` a uint8 ``(n, 3072)`` NumPy array in
the same per-row layout. ``pickle.load`` on a downloaded file executes any
callable the file names, so it is never used: :class:`_RestrictedUnpickler`
resolves exactly the three globals an ndarray pickle needs
(``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``,
``numpy.dtype``) and even those to inert stand-ins, so NumPy never sees the
file's bytes until we have checked them; every other global raises
:class:`DatasetError`. Before unpickling, the opcode stream is scanned with
:mod:`pickletools` so that a length field claiming gigabytes is rejected
instead of being allocated.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from typing import Any

import numpy as np

from ._idx import DatasetError, read_file_bounded

__all__ = ["read_cifar_bin", "read_cifar_pickle", "RECORD_BYTES"]

RECORD_BYTES = 1 + 3 * 32 * 32  # label byte + one 3 x 32 x 32 image
_N_CLASSES = 10
# A real pickle batch is ~31 MB; anything far larger is not a CIFAR batch.
_MAX_PICKLE_BYTES = 256 << 20


# ---------------------------------------------------------------- binary ----
def read_cifar_bin(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One binary CIFAR-10 batch: ``images`` uint8 (n, 3, 32, 32), ``labels`` uint8 (n,).

    Raises
    ------
    DatasetError
        If the file is empty, its size is not a multiple of 3073 bytes
        (truncated or trailing bytes), or a label is not in 0..9.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    # The size is checked before reading: it is all the header there is.
    if size == 0 or size % RECORD_BYTES:
        raise DatasetError(
            f"{path}: {size} bytes is not a positive multiple of the {RECORD_BYTES}-byte CIFAR-10 "
            "record (1 label byte + 3072 pixel bytes): the file is truncated or has trailing bytes"
        )
    records = np.fromfile(path, dtype=np.uint8)
    if records.size != size:  # the file changed under us
        raise DatasetError(f"{path}: read {records.size} bytes, expected {size}")
    records = records.reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    _check_labels(labels, path)
    return records[:, 1:].reshape(-1, 3, 32, 32), labels.copy()


def _check_labels(labels: np.ndarray, path: str) -> None:
    if labels.size and (int(labels.max()) >= _N_CLASSES or int(labels.min()) < 0):
        i = int(np.argmax((labels < 0) | (labels >= _N_CLASSES)))
        raise DatasetError(f"{path}: label {int(labels[i])} at record {i} is not a CIFAR-10 class 0..9")


# ---------------------------------------------------------------- pickle ----
class _NdarrayMarker:
    """Stands in for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""

    __slots__ = ()  # no __dict__: a pickle's BUILD cannot write attributes onto it


# The dtypes a numeric ndarray pickle may name (CIFAR's is b'u1').
_DTYPE_CODES = {f"{k}{n}" for k in "iu" for n in (1, 2, 4, 8)} | {"f4", "f8", "b1"}


class _DtypeStub:
    """What ``numpy.dtype(code, align, copy)`` + BUILD(state) would make, checked."""

    def __init__(self, code: Any, align: Any = 0, copy: Any = 1, *rest: Any) -> None:
        if isinstance(code, bytes):
            code = code.decode("ascii", "replace")
        if not isinstance(code, str) or code not in _DTYPE_CODES or rest:
            raise DatasetError(f"pickle names dtype {code!r}: only plain numeric dtypes are allowed")
        self.code = code
        self.byteorder = "|"

    def __setstate__(self, state: Any) -> None:
        # NumPy's dtype state: (version, byteorder, subarray, names, fields,
        # elsize, alignment, flags[, metadata]). Only plain, non-structured
        # dtypes are accepted; NumPy's own __setstate__ never runs on file data.
        if not isinstance(state, tuple) or len(state) < 2:
            raise DatasetError("malformed dtype state in pickle")
        order = state[1].decode("ascii", "replace") if isinstance(state[1], bytes) else state[1]
        if order not in ("|", "<", ">", "="):
            raise DatasetError(f"malformed dtype byte order {state[1]!r} in pickle")
        if any(s is not None for s in state[2:5]):
            raise DatasetError("pickle holds a structured or sub-array dtype; CIFAR data is plain uint8")
        self.byteorder = order

    def dtype(self) -> np.dtype:
        dt = np.dtype(self.code)
        return dt.newbyteorder(self.byteorder) if self.byteorder in "<>" and dt.itemsize > 1 else dt


class _ArrayStub:
    """What ``_reconstruct(ndarray, (0,), b'b')`` + BUILD(state) would make, checked."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        # ndarray state: (version, shape, dtype, is_fortran, rawdata); very old
        # NumPy wrote it without the leading version.
        if isinstance(state, tuple) and len(state) == 4:
            state = (0,) + state
        if not isinstance(state, tuple) or len(state) != 5:
            raise DatasetError("malformed ndarray state in pickle")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DtypeStub):
            raise DatasetError("ndarray in pickle has no plain dtype")
        if not isinstance(raw, bytes):
            raise DatasetError(f"ndarray in pickle stores its data as {type(raw).__name__}, not bytes")
        if not (isinstance(shape, tuple) and len(shape) <= 8 and all(type(s) is int and s >= 0 for s in shape)):
            raise DatasetError(f"malformed ndarray shape {shape!r} in pickle")
        dt = dtype.dtype()
        count = 1
        for s in shape:
            count *= s
        # The data is already in memory (it was part of the file): compare sizes
        # instead of trusting the shape.
        if count * dt.itemsize != len(raw):
            raise DatasetError(
                f"ndarray in pickle claims shape {shape} of {dt} ({count * dt.itemsize} bytes) "
                f"but holds {len(raw)} bytes"
            )
        arr = np.frombuffer(raw, dtype=dt, count=count)
        self.array = arr.reshape(shape, order="F" if fortran else "C")


_ALLOWED_NAMES = {
    ("numpy.core.multiarray", "_reconstruct"),  # files written by NumPy < 2
    ("numpy._core.multiarray", "_reconstruct"),  # files written by NumPy >= 2
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _fresh_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> the inert object a pickle gets instead of the real one.

    Made anew for every load, so a hostile pickle that BUILDs attributes onto
    one of them changes nothing outside that load.
    """
    marker = _NdarrayMarker()

    def reconstruct(subtype: Any, shape: Any = (0,), typecode: Any = b"b") -> _ArrayStub:
        if subtype is not marker:
            raise DatasetError("pickle reconstructs something other than a numpy.ndarray")
        return _ArrayStub()

    def dtype(*args: Any) -> _DtypeStub:
        return _DtypeStub(*args)

    objects = {"_reconstruct": reconstruct, "ndarray": marker, "dtype": dtype}
    return {(module, name): objects[name] for module, name in _ALLOWED_NAMES}


# Opcodes a CIFAR batch never contains; each is a way to reach code or state
# that the allow-list above does not govern.
_FORBIDDEN_OPCODES = {
    "PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX",
    "NEXT_BUFFER", "READONLY_BUFFER",
}  # fmt: skip


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that can build only dicts, lists, tuples, numbers, strings and
    plain numeric ndarrays (through the stand-ins above)."""

    def __init__(self, file: io.BytesIO) -> None:
        # encoding="bytes": the Python 2 str objects of the real files (dict keys,
        # the array's raw data) must stay bytes, as the CIFAR page says.
        super().__init__(file, encoding="bytes")
        self._globals = _fresh_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except (KeyError, TypeError):
            raise DatasetError(
                f"pickle refers to {module}.{name}, which a CIFAR-10 batch never needs; refusing to load "
                "it (a pickle can run arbitrary code through such references)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DatasetError("pickle uses persistent ids, which a CIFAR-10 batch never needs")


def _prescan(data: bytes, path: str) -> None:
    """Walk the opcode stream without executing it: every length field must fit
    in the file, and only the opcodes a NumPy-array pickle uses may appear."""
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if op.name in _FORBIDDEN_OPCODES:
                raise DatasetError(f"{path}: pickle uses opcode {op.name}, which a CIFAR-10 batch never needs")
            if op.name == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                if (module, name) not in _ALLOWED_NAMES:
                    raise DatasetError(
                        f"{path}: pickle refers to {module}.{name}, which a CIFAR-10 batch never needs; "
                        "refusing to load it (a pickle can run arbitrary code through such references)"
                    )
    except DatasetError:
        raise
    except Exception as exc:  # genops raises ValueError and friends on any malformation
        raise DatasetError(f"{path}: not a valid pickle ({type(exc).__name__}: {exc})") from None


def _get(d: dict, key: str) -> Any:
    """``d[b'key']`` (Python 2 files) or ``d['key']`` (re-saved with Python 3)."""
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def read_cifar_pickle(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One Python-version CIFAR-10 batch: ``images`` uint8 (n, 3, 32, 32), ``labels`` uint8 (n,).

    Unpickled by :class:`_RestrictedUnpickler`, never :func:`pickle.load`.

    Raises
    ------
    DatasetError
        If the pickle refers to anything but NumPy's array reconstruction
        (e.g. ``os.system``), is malformed or truncated, or its ``data`` /
        ``labels`` are not a uint8 (n, 3072) array and n labels in 0..9.
    """
    path = os.fspath(path)
    data = read_file_bounded(path, _MAX_PICKLE_BYTES)
    _prescan(data, path)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    except Exception as exc:  # anything the pickle machinery raises on a corrupt file
        raise DatasetError(f"{path}: corrupt pickle ({type(exc).__name__}: {exc})") from None

    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: pickle holds a {type(obj).__name__}, expected a CIFAR-10 batch dict")
    raw_data, raw_labels = _get(obj, "data"), _get(obj, "labels")
    if not isinstance(raw_data, _ArrayStub) or raw_data.array is None:
        raise DatasetError(f"{path}: batch dict has no 'data' array")
    images = raw_data.array
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != RECORD_BYTES - 1:
        raise DatasetError(f"{path}: 'data' is {images.dtype} {images.shape}, expected uint8 (n, 3072)")
    if isinstance(raw_labels, _ArrayStub) and raw_labels.array is not None:
        raw_labels = raw_labels.array
    if isinstance(raw_labels, np.ndarray):
        if raw_labels.dtype.kind not in "iu" or raw_labels.ndim != 1:
            raise DatasetError(f"{path}: 'labels' is {raw_labels.dtype} {raw_labels.shape}, expected n integers")
        labels64 = raw_labels.astype(np.int64)
    elif isinstance(raw_labels, list):
        if not all(type(v) is int for v in raw_labels):
            raise DatasetError(f"{path}: 'labels' must be a list of integers")
        if any(v < 0 or v >= _N_CLASSES for v in raw_labels):
            i = next(i for i, v in enumerate(raw_labels) if v < 0 or v >= _N_CLASSES)
            raise DatasetError(f"{path}: label {raw_labels[i]} at index {i} is not a CIFAR-10 class 0..9")
        labels64 = np.array(raw_labels, dtype=np.int64)
    else:
        raise DatasetError(f"{path}: batch dict has no 'labels' list")
    if labels64.shape[0] != images.shape[0]:
        raise DatasetError(f"{path}: {images.shape[0]} images but {labels64.shape[0]} labels")
    _check_labels(labels64, path)
    return images.reshape(-1, 3, 32, 32), labels64.astype(np.uint8)
