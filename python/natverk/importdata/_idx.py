"""IDX files (MNIST, Fashion-MNIST), raw or gzip, read without trusting the header.

The IDX format (LeCun et al., "The MNIST database"): a big-endian header

    bytes 0-1  zero
    byte  2    element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
               0x0D float32, 0x0E float64
    byte  3    number of dimensions d
    4*d bytes  the size of each dimension, big-endian uint32

followed by prod(sizes) elements in row-major (C) order, big-endian. MNIST
images are ``(n, 28, 28)`` uint8 (magic 0x00000803 = 2051), labels ``(n,)``
uint8 (magic 0x00000801 = 2049).

Everything here is defensive because the files come from the network: the
header's claimed size is checked against what the file can actually hold
*before* anything that large is allocated, a gzip stream is decompressed in
bounded chunks (never ``read(claimed_size)``, which preallocates the claimed
size), and truncation, trailing bytes, an unknown type code and a broken gzip
stream all raise :class:`DatasetError` with the file's path.

This module is the leaf of the package's dataset code: :class:`DatasetError`
and the bounded readers live here so that every other loader can use them
without import cycles.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import BinaryIO

import numpy as np

__all__ = ["DatasetError", "read_idx", "read_file_bounded", "is_gzip"]


class DatasetError(ValueError):
    """A dataset file exists but is corrupt, truncated, hostile or malformed.

    A subclass of :class:`ValueError`, so ``except ValueError`` catches it.
    The message names the file and what was wrong with it.
    """


# IDX element type code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
# DEFLATE cannot expand data by more than about 1032:1 (a 258-byte match costs at
# least 2 bits), so a gzip file of c bytes decompresses to at most ~1032*c bytes.
# A header claiming more than that is a lie we can reject before reading a byte.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20  # decompress 1 MiB at a time: memory follows the real data only


def is_gzip(path: str | os.PathLike) -> bool:
    """True if the file starts with the gzip magic bytes (the name is not trusted)."""
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_exact(stream: BinaryIO, n: int, path: str, what: str) -> bytes:
    """Read exactly ``n`` (small) bytes or raise DatasetError naming ``what``."""
    data = stream.read(n)
    if len(data) != n:
        raise DatasetError(f"{path}: file is truncated: it ends inside the {what} ({len(data)} of {n} bytes)")
    return data


def _read_bounded(stream: BinaryIO, limit: int) -> bytearray:
    """Up to ``limit`` bytes from ``stream``, in chunks so that memory grows with
    the data actually present, not with what a header claims."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = stream.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def read_file_bounded(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The whole (uncompressed) file, refusing one larger than ``max_bytes``."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise DatasetError(f"{path}: file is {size} bytes, more than the {max_bytes} this format allows")
    with open(path, "rb") as f:
        return f.read()


def _gzip_errors_to_dataset_error(path: str, exc: BaseException) -> DatasetError:
    return DatasetError(f"{path}: corrupt or truncated gzip stream ({type(exc).__name__}: {exc})")


def read_idx(
    path: str | os.PathLike,
    *,
    ndim: int | None = None,
    dtype_code: int | None = None,
    tail_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected from its first bytes) into a NumPy array.

    Parameters
    ----------
    path : path-like
        The file. gzip is recognised by its magic bytes, whatever the name.
    ndim : int, optional
        Required number of dimensions (3 for MNIST images, 1 for labels).
    dtype_code : int, optional
        Required IDX element type code (0x08 for MNIST's unsigned bytes).
    tail_shape : tuple of int, optional
        Required sizes of every dimension after the first, e.g. ``(28, 28)``.

    Returns
    -------
    numpy.ndarray
        Shape from the header, native byte order. A uint8 array is a view on
        a private buffer (writable, no copy).

    Raises
    ------
    DatasetError
        Wrong magic, unknown or unexpected type code, wrong number of
        dimensions or sizes, a header claiming more data than the file holds,
        truncated data, trailing bytes, or a corrupt gzip stream. All checks
        on sizes happen before the data is read.
    """
    path = os.fspath(path)
    file_size = os.path.getsize(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            return _read_idx_stream(stream, path, file_size, compressed, ndim, dtype_code, tail_shape)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise _gzip_errors_to_dataset_error(path, exc) from None


def _read_idx_stream(
    stream: BinaryIO,
    path: str,
    file_size: int,
    compressed: bool,
    ndim: int | None,
    dtype_code: int | None,
    tail_shape: tuple[int, ...] | None,
) -> np.ndarray:
    magic = _read_exact(stream, 4, path, "IDX header")
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file: magic bytes {magic.hex()} do not start with 0000 "
            "(MNIST images have magic 00000803, labels 00000801)"
        )
    code, d = magic[2], magic[3]
    if code not in _IDX_DTYPES:
        raise DatasetError(f"{path}: unknown IDX element type code 0x{code:02X} (magic {magic.hex()})")
    if dtype_code is not None and code != dtype_code:
        raise DatasetError(
            f"{path}: IDX element type 0x{code:02X} ({_IDX_DTYPES[code].name}), "
            f"expected 0x{dtype_code:02X} ({_IDX_DTYPES[dtype_code].name})"
        )
    if d == 0 or (ndim is not None and d != ndim):
        want = f"{ndim}" if ndim is not None else "at least 1"
        raise DatasetError(f"{path}: IDX header has {d} dimensions, expected {want} (magic {magic.hex()})")
    shape = struct.unpack(f">{d}I", _read_exact(stream, 4 * d, path, "IDX dimension sizes"))
    if tail_shape is not None and tuple(shape[1:]) != tuple(tail_shape):
        raise DatasetError(f"{path}: IDX shape {shape}, expected (n, {', '.join(map(str, tail_shape))})")

    dtype = _IDX_DTYPES[code]
    header = 4 + 4 * d
    count = 1
    for s in shape:  # Python ints: no overflow however large the claim
        count *= s
    nbytes = count * dtype.itemsize

    if not compressed:
        # The file size is known: compare before reading (and allocating) anything.
        if file_size != header + nbytes:
            what = "truncated" if file_size < header + nbytes else "followed by trailing bytes"
            raise DatasetError(
                f"{path}: header says shape {shape} ({header + nbytes} bytes in all) but the file "
                f"has {file_size} bytes: the data is {what}"
            )
        data = _read_bounded(stream, nbytes)
        if len(data) != nbytes:  # the file changed under us
            raise DatasetError(f"{path}: file is truncated ({len(data)} of {nbytes} data bytes)")
    else:
        bound = _MAX_DEFLATE_RATIO * file_size + 1024
        if header + nbytes > bound:
            raise DatasetError(
                f"{path}: header says shape {shape} ({header + nbytes} bytes) but a {file_size}-byte "
                f"gzip file can hold at most about {bound} bytes: the header is corrupt"
            )
        # Exactly the expected bytes + 1: one extra byte reveals trailing data, and
        # reading to the end of the stream makes gzip check its CRC and length.
        data = _read_bounded(stream, nbytes + 1)
        if len(data) < nbytes:
            raise DatasetError(
                f"{path}: data is truncated: header says shape {shape} ({nbytes} data bytes) "
                f"but the stream holds {len(data)}"
            )
        if len(data) > nbytes:
            raise DatasetError(f"{path}: trailing bytes after the {nbytes} data bytes that shape {shape} needs")

    arr = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr
