"""Reading PyTorch ``.pt`` / ``.pth`` checkpoints without PyTorch and without running code.

The format (``torch.save`` since PyTorch 1.6, the "zipfile" serialization):

    <archive>/data.pkl          a pickle (protocol 2) of the saved object
    <archive>/data/<key>        one entry per storage: the raw element bytes
    <archive>/byteorder         "little" or "big" (absent in old files: little)
    <archive>/version, .format_version, .storage_alignment, .data/serialization_id

Inside ``data.pkl`` a tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, backward_hooks)`` and its storage a persistent id
``("storage", torch.FloatStorage, "<key>", "cpu", numel)``.

A pickle is a program: ``pickle.load`` calls any importable callable it names (``os.system``
included). So the pickle is never given to :mod:`pickle`. :func:`read_pth` interprets it here,
opcode by opcode (decoded by :func:`pickletools.genops`, which only parses), with torch's
``weights_only`` rule: it builds containers (dict, OrderedDict, list, tuple, set), scalars
(None, bool, int, float, str, bytes) and tensors; a global outside a short allow-list (the
tensor rebuild functions, storage types, dtypes, ``torch.Size``, ``OrderedDict``) or any
other opcode raises :class:`UnsafeCheckpointError` before anything is called. Tensors come
back as read-only NumPy views of their storage (no copy: a hostile file cannot make it
allocate more than its own storages), with their byte order as the file says.
"""

from __future__ import annotations

import os
import pickletools
import re
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["UnsafeCheckpointError", "read_pth"]

# data.pkl of a state dict is a few bytes per tensor (VGG16: ~5 KB); one larger than this is
# not a weights file (and genops would decode it into memory).
MAX_PICKLE_BYTES = 64 * 2**20
# Nesting of containers/calls the interpreter allows (a state dict needs 4 or 5).
MAX_STACK = 100_000
MAX_DIMS = 64


class UnsafeCheckpointError(ValueError):
    """A checkpoint asks for something a weights file never needs (a callable outside the
    allow-list, an unsupported pickle opcode): nothing it names was imported or called."""


# Storage classes (torch.<Name>Storage) -> the element dtype, little-endian.
_STORAGES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
# dtypes a checkpoint may name (torch.<name>; _rebuild_tensor_v3 passes one with an UntypedStorage).
_DTYPES = {
    "float64": "<f8", "double": "<f8", "float32": "<f4", "float": "<f4", "float16": "<f2", "half": "<f2",
    "bfloat16": "bfloat16", "int64": "<i8", "long": "<i8", "int32": "<i4", "int": "<i4", "int16": "<i2",
    "short": "<i2", "int8": "i1", "uint8": "u1", "bool": "?", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
}


class _Global:
    """A name from the allow-list, as the interpreter holds it: never a real callable."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


class _StorageType(_Global):
    def __init__(self, name: str, dtype: str | None):
        super().__init__("torch", name)
        self.dtype = dtype  # None: UntypedStorage (bytes; the dtype comes with _rebuild_tensor_v3)


class _DType(_Global):
    def __init__(self, name: str):
        super().__init__("torch", name)
        self.dtype = _DTYPES[name]


class _Storage:
    """One storage's bytes as a flat read-only array of its dtype."""

    def __init__(self, data: np.ndarray, key: str):
        self.data, self.key = data, key


_REBUILD_TENSOR = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3")
_REBUILD_PARAMETER = ("_rebuild_parameter", "_rebuild_parameter_with_state")


def _allowed_global(module: str, name: str) -> Any:
    if module == "collections" and name == "OrderedDict":
        return _Global(module, name)
    if module == "torch._utils" and name in _REBUILD_TENSOR + _REBUILD_PARAMETER:
        return _Global(module, name)
    if module == "torch" and name == "Size":
        return _Global(module, name)
    if module == "torch" and name in _STORAGES:
        return _StorageType(name, _STORAGES[name])
    if module in ("torch", "torch.storage") and name == "UntypedStorage":
        return _StorageType(name, None)
    if module == "torch" and name in _DTYPES:
        return _DType(name)
    raise UnsafeCheckpointError(
        f"it names the global {module}.{name}, which a weights file never needs: only tensors and "
        f"containers are loaded (PyTorch's weights_only rule); nothing was imported or called"
    )


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    # bfloat16 is the top half of a float32: shift its 16 bits up (NumPy has no bfloat16).
    return (raw.astype(np.uint32) << 16).view(np.float32)


class _Reader:
    def __init__(self, zf: zipfile.ZipFile, prefix: str, byteorder: str, where: str):
        self.zf, self.prefix, self.byteorder, self.where = zf, prefix, byteorder, where
        self.storages: dict[str, _Storage] = {}

    # -- persistent ids: the storages ------------------------------------------------
    def storage(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ValueError(f"unexpected persistent id {pid!r:.200} (a storage is ('storage', type, key, "
                             f"location, numel))")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise ValueError(f"storage {key!r:.50}: {stype!r:.100} is not a storage type")
        # keys are decimal in every torch version; anything else could be a path outside data/
        if not isinstance(key, str) or not re.fullmatch(r"[0-9]{1,20}", key):
            raise ValueError(f"storage key {key!r:.50} is not a storage number")
        if isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
            raise ValueError(f"storage {key}: element count {numel!r:.50} is not a count")
        if key in self.storages:
            return self.storages[key]
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise ValueError(f"storage {key} is missing (no entry {name!r})") from None
        dtype = "u1" if stype.dtype is None else stype.dtype
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        if info.file_size != numel * itemsize:
            # checked against the zip directory before reading: no allocation from a lying header
            raise ValueError(f"storage {key} holds {info.file_size} bytes, its header says {numel} x {itemsize}")
        raw = self.zf.read(name)
        if len(raw) != info.file_size:
            raise ValueError(f"storage {key} is truncated")
        if dtype == "bfloat16":
            data = _bfloat16_to_float32(np.frombuffer(raw, dtype=self.byteorder + "u2"))
        else:
            dt = np.dtype(dtype)
            data = np.frombuffer(raw, dtype=dt.newbyteorder(self.byteorder) if dt.itemsize > 1 else dt)
        data.flags.writeable = False
        self.storages[key] = _Storage(data, key)
        return self.storages[key]

    # -- calls: only the allow-listed ones, each checking its arguments ----------------
    def call(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Global):
            raise UnsafeCheckpointError(f"it calls {type(func).__name__} {func!r:.100}, which is not an "
                                        f"allowed global")
        if not isinstance(args, tuple):
            raise ValueError(f"{func!r}: arguments must be a tuple, got {type(args).__name__}")
        if func.name == "OrderedDict":
            if args not in ((), ([],)):
                raise ValueError(f"OrderedDict{args!r:.100}: only an empty one is built, then filled")
            return OrderedDict()
        if func.name == "Size":
            if len(args) != 1 or not _ints(args[0]):
                raise ValueError(f"torch.Size{args!r:.100}: expected a tuple of ints")
            return tuple(args[0])
        if func.name in _REBUILD_PARAMETER:
            if len(args) not in (3, 4) or not isinstance(args[0], np.ndarray):
                raise ValueError(f"{func!r}: expected (tensor, requires_grad, hooks[, state])")
            _no_hooks(args[2], func)
            return args[0]
        if func.name in _REBUILD_TENSOR:
            return self.tensor(func, args)
        raise UnsafeCheckpointError(f"{func!r} is not callable here")  # a dtype or storage type called

    def tensor(self, func: _Global, args: tuple) -> np.ndarray:
        n = {"_rebuild_tensor": (4, 4), "_rebuild_tensor_v2": (6, 7), "_rebuild_tensor_v3": (7, 8)}[func.name]
        if not n[0] <= len(args) <= n[1]:
            raise ValueError(f"{func!r}: expected {n[0]} to {n[1]} arguments, got {len(args)}")
        storage, offset, size, stride = args[:4]
        if func.name != "_rebuild_tensor":
            _no_hooks(args[5], func)
        if not isinstance(storage, _Storage):
            raise ValueError(f"{func!r}: the first argument must be a storage, got {type(storage).__name__}")
        data = storage.data
        if func.name == "_rebuild_tensor_v3":
            dtype = args[6]
            if not isinstance(dtype, _DType):
                raise ValueError(f"{func!r}: the dtype argument must be a torch dtype, got {dtype!r:.100}")
            if data.dtype != np.uint8:
                raise ValueError(f"{func!r}: expects an untyped (byte) storage")
            if dtype.dtype == "bfloat16":
                data = _bfloat16_to_float32(data.view(self.byteorder + "u2"))
            else:
                dt = np.dtype(dtype.dtype)
                data = data.view(dt.newbyteorder(self.byteorder) if dt.itemsize > 1 else dt)
        if isinstance(offset, bool) or not isinstance(offset, int) or not _ints(size) or not _ints(stride):
            raise ValueError(f"{func!r}: offset, size and stride must be integers, got {offset!r:.50}, "
                             f"{size!r:.100}, {stride!r:.100}")
        if len(size) != len(stride) or len(size) > MAX_DIMS:
            raise ValueError(f"{func!r}: size {size} and stride {stride} differ in length")
        if offset < 0 or min(size, default=0) < 0 or min(stride, default=0) < 0:
            raise ValueError(f"{func!r}: negative offset, size or stride ({offset}, {size}, {stride})")
        if 0 not in size:
            last = offset + sum((s - 1) * st for s, st in zip(size, stride))
            if last >= data.size:
                raise ValueError(f"tensor of size {tuple(size)}, stride {tuple(stride)}, offset {offset} reaches "
                                 f"element {last} of storage {storage.key}, which holds {data.size}")
            view = np.lib.stride_tricks.as_strided(
                data[offset:], shape=tuple(size), strides=tuple(st * data.itemsize for st in stride), writeable=False
            )
        else:
            view = np.empty(tuple(size), dtype=data.dtype)
            view.flags.writeable = False
        return view


def _ints(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _no_hooks(hooks: Any, func: _Global) -> None:
    # torch writes an empty OrderedDict; hooks are code, which a weights file does not carry
    if not (isinstance(hooks, dict) and not hooks):
        raise UnsafeCheckpointError(f"{func!r}: backward hooks {hooks!r:.100} are not loaded (only empty ones)")


_MARK = object()


def _interpret(data: bytes, reader: _Reader) -> Any:
    """Run the pickle ``data`` on a stack machine that knows only the opcodes a state dict uses."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        if not marks:
            raise ValueError("pickle pops a mark it never set")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    def pop() -> Any:
        if not stack:
            raise ValueError("pickle pops an empty stack")
        return stack.pop()

    def top(kind, what: str):
        if not stack or not isinstance(stack[-1], kind):
            raise ValueError(f"pickle {what} on a {type(stack[-1]).__name__ if stack else 'empty stack'}")
        return stack[-1]

    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if len(stack) > MAX_STACK:
            raise ValueError("pickle nests too deeply for a weights file")
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            if len(stack) != 1 or marks:
                raise ValueError("pickle ends with a malformed stack")
            return stack[0]
        if name == "MARK":
            marks.append(len(stack))
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = arg.partition(" ")
            else:
                attr, module = pop(), pop()
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise ValueError("STACK_GLOBAL needs two strings")
            stack.append(_allowed_global(module, attr))
        elif name == "REDUCE":
            args = pop()
            stack.append(reader.call(pop(), args))
        elif name == "BINPERSID":
            stack.append(reader.storage(pop()))
        elif name == "BUILD":
            state = pop()
            obj = top(object, "BUILD")
            # torch's state dicts carry their module versions as ``_metadata`` (a dict of
            # dicts): accepted as data on a dict, never applied to anything else.
            if not (isinstance(obj, dict) and isinstance(state, dict)):
                raise UnsafeCheckpointError(f"BUILD (setting state) on a {type(obj).__name__} is not loaded")
        elif name in ("EMPTY_DICT",):
            stack.append({})
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "EMPTY_SET":
            stack.append(set())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            k = int(name[-1])
            if len(stack) < k:
                raise ValueError(f"{name} on a stack of {len(stack)}")
            items = stack[-k:]
            del stack[-k:]
            stack.append(tuple(items))
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name == "LIST":
            stack.append(pop_mark())
        elif name == "DICT":
            items = pop_mark()
            stack.append(_pairs({}, items))
        elif name == "APPEND":
            value = pop()
            top(list, "APPEND").append(value)
        elif name == "APPENDS":
            items = pop_mark()
            top(list, "APPENDS").extend(items)
        elif name == "SETITEM":
            value, key = pop(), pop()
            _pairs(top(dict, "SETITEM"), [key, value])
        elif name == "SETITEMS":
            items = pop_mark()
            _pairs(top(dict, "SETITEMS"), items)
        elif name == "ADDITEMS":
            items = pop_mark()
            target = top(set, "ADDITEMS")
            for item in items:
                target.add(_hashable(item))
        elif name == "FROZENSET":
            stack.append(frozenset(_hashable(i) for i in pop_mark()))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = top(object, name)
        elif name == "MEMOIZE":
            memo[len(memo)] = top(object, name)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            if int(arg) not in memo:
                raise ValueError(f"pickle reads memo slot {arg}, never written")
            stack.append(memo[int(arg)])
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name in ("BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT",
                      "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                      "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            stack.append(arg)
        elif name == "POP":
            pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(top(object, "DUP"))
        else:
            # INST, OBJ, NEWOBJ(_EX), EXT*, PERSID (text), BYTEARRAY8, ...: nothing a weights file uses
            raise UnsafeCheckpointError(f"pickle opcode {name} is not loaded (only tensors and containers)")
    raise ValueError("pickle has no STOP")


def _hashable(key: Any) -> Any:
    # Scalars only: hashing a tuple recurses in C without a depth check, so a key nested a
    # million tuples deep would overflow the C stack (a crash, not an exception). State dicts
    # are keyed by strings.
    if isinstance(key, (str, int, float, bool, bytes)) or key is None:
        return key
    raise ValueError(f"a {type(key).__name__} cannot be a dict key or set item here (only strings and numbers)")


def _pairs(target: dict, items: list) -> dict:
    if len(items) % 2:
        raise ValueError("pickle sets a dict item without a value")
    for i in range(0, len(items), 2):
        target[_hashable(items[i])] = items[i + 1]
    return target


def read_pth(path: str | os.PathLike) -> Any:
    """The object a ``torch.save`` file holds, tensors as read-only NumPy arrays; no PyTorch needed.

    Only tensors (any dtype NumPy has, bfloat16 widened to float32) and containers (dict,
    OrderedDict, list, tuple, set) of scalars and strings are built; anything else, any callable
    included, raises :class:`UnsafeCheckpointError` (a :class:`ValueError`) before it is called.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is not a PyTorch zip checkpoint (``torch.save`` before PyTorch 1.6, or with
        ``_use_new_zipfile_serialization=False``, or not PyTorch at all), or it is truncated,
        corrupt or hostile; the message names the file.
    """
    where = os.fspath(path)
    with open(where, "rb") as f:
        head = f.read(4)
        if head != b"PK\x03\x04":
            raise ValueError(
                f"cannot load {where!r}: not a PyTorch zip checkpoint (torch.save writes one since PyTorch 1.6; "
                f"re-save a legacy file with torch.save(torch.load(path, weights_only=True), path))"
            )
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
                if len(pickles) != 1:
                    raise ValueError(f"expected one <archive>/data.pkl entry, found {len(pickles)}")
                prefix = pickles[0][: -len("data.pkl")]
                info = zf.getinfo(pickles[0])
                if info.file_size > MAX_PICKLE_BYTES:
                    raise ValueError(f"data.pkl is {info.file_size} bytes: not a weights file")
                byteorder = "<"
                if f"{prefix}byteorder" in zf.namelist():
                    order = zf.read(f"{prefix}byteorder")
                    if order not in (b"little", b"big"):
                        raise ValueError(f"byteorder entry says {order[:20]!r}, not little or big")
                    byteorder = "<" if order == b"little" else ">"
                return _interpret(zf.read(pickles[0]), _Reader(zf, prefix, byteorder, where))
        except UnsafeCheckpointError as err:
            raise UnsafeCheckpointError(f"refusing to load {where!r}: {err}") from None
        except RecursionError:  # e.g. a dict key that is a tuple nested a million deep (hashing recurses)
            raise ValueError(f"cannot load {where!r}: it nests containers too deeply for a weights file") from None
        except (ValueError, zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError, NotImplementedError) as err:
            raise ValueError(f"cannot load {where!r}: {err}") from None
