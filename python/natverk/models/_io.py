"""Saving and loading :class:`~natverk.models.Sequential` models as one ``.npz`` file.

File layout (a plain NumPy ``.npz`` archive, no pickled objects):

* ``__natverk__`` -- a 0-d unicode array holding JSON:
  ``{"format": "natverk.Sequential", "version": 1, "layers": [{"class", "config"}, ...],
  "training", "epoch", "seed", "loss": {"class", "config"} | null,
  "optimizer": {"class", "config", "iterations"} | null,
  "lr_schedule": {"class", "config"} | null}``. The optimizer's config holds
  its current learning rate; ``lr_schedule`` (a :mod:`natverk.schedules`
  class, a pure function of the epoch) gives the rate of every later epoch.
  Files written before schedules existed lack ``lr_schedule`` and load with
  none.
* ``param/<name>`` -- every parameter (``param/0.W``, ``param/1.gamma``, ...)
* ``buffer/<name>`` -- every buffer (``buffer/1.running_mean``, ``buffer/5.counter``)
* ``optimizer/<name>/<slot>`` -- optimizer state (``optimizer/0.W/v``)

:func:`load` never unpickles anything and checks everything; any problem is a
``ValueError`` that says what is wrong. It checks before it allocates: the
description (JSON, at most :data:`MAX_META_BYTES` and :data:`MAX_DEPTH`
levels), the zip directory's declared sizes and every ``.npy`` header (shape
and dtype) are compared with each other and with the parameter shapes the
described layers will have, and only then are the layers built and the
arrays read -- each straight into its parameter, one at a time. So a hostile
file (an array that decompresses to gigabytes, a description declaring a huge
layer whose arrays are absent) fails with a ``ValueError`` having allocated
little more than the file itself; a consistent file costs its model's
parameters (and optimizer state) once.

:func:`save_model` writes a temporary file next to the target and
``os.replace``-s it into place. The temporary name holds the host and process
id (``.<name>.<host>.<pid>.<random>.tmp``), so a later save to the same target
removes the leftovers of saves that were killed: those of processes on this
host that no longer exist, and any older than :data:`STALE_TMP_AGE_S`.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import numbers
import os
import re
import socket
import tempfile
import time
import zipfile
from typing import Any, NamedTuple

import numpy as np

from ..layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Residual, Stack
from ..layers._base import Layer, layer_class, layer_from_spec
from ..losses import loss_from_spec, loss_to_spec
from ..optimizers.classes import OPTIMIZER_CLASSES
from ..schedules import schedule_from_spec, schedule_to_spec

FORMAT = "natverk.Sequential"
VERSION = 1
META_KEY = "__natverk__"

#: Largest uncompressed size of the ``__natverk__`` description entry (4 bytes a character).
MAX_META_BYTES = 4 << 20
#: Deepest nesting of the description's JSON (each nested container layer adds 3 levels).
MAX_DEPTH = 100
#: Most entries (arrays) a model file may hold.
MAX_ENTRIES = 100_000
#: Counters (``epoch``, the optimizer's ``iterations``, dropout call counters) stay below
#: this, so that they can keep counting in the kernels' 64-bit integers.
MAX_COUNTER = 2**62
_INT64 = (-(2**63), 2**63 - 1)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_CHUNK = 1 << 20

#: A temporary file of a save whose owner cannot be checked (another host, an older natverk)
#: is removed by a later save to the same target once it is this old.
STALE_TMP_AGE_S = 24 * 3600
#: A temporary file of a dead process on this host is removed once it is this old (a grace
#: period against process ids of another pid namespace sharing the folder).
_DEAD_TMP_AGE_S = 60


# ------------------------------------------------------------------------------ saving


def _host() -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "")[:32]
    return name or "host"


def _tmp_stem(base: str) -> str:
    """The start of every temporary file name of target ``base``: ``.<base>.``."""
    if len(base.encode("utf-8", "surrogateescape")) > 150:  # leave room below NAME_MAX (255)
        digest = hashlib.sha1(base.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        base = f"{base[:60]}~{digest}"
    return f".{base}."


# .<base>.<host>.<pid>.<random>.tmp (this version) and .<base>.<random>.tmp (older versions)
_TMP_NEW = re.compile(r"([A-Za-z0-9_-]+)\.([0-9]+)\.([A-Za-z0-9_]+)")
_TMP_OLD = re.compile(r"[a-z0-9_]{8}")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process id we wrote: leave it to the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists under another user
        return True
    return True


def _remove_stale_tmp_files(folder: str, base: str) -> None:
    """Delete temporary files of earlier saves to ``base`` whose writer is gone.

    A file named with this host and a process id is removed when that process
    no longer exists (and the file is over a minute old); one of another host or
    of an older natverk (no process id in the name) when it is older than
    :data:`STALE_TMP_AGE_S`. A save in progress is never touched: its process is
    alive, or it wrote to its file within the age limit. Errors are ignored."""
    stems = {_tmp_stem(base), f".{base}."}  # the second: older versions never shortened the name
    host, now = _host(), time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        stem = next((st for st in stems if name.startswith(st)), None)
        if stem is None or not name.endswith(".tmp"):
            continue
        middle = name[len(stem) : -len(".tmp")]
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        m = _TMP_NEW.fullmatch(middle)
        if m is not None and m.group(1) == host and os.name == "posix":
            pid = int(m.group(2))
            stale = pid != os.getpid() and not _pid_alive(pid) and age > _DEAD_TMP_AGE_S
        elif m is not None or _TMP_OLD.fullmatch(middle):
            stale = age > STALE_TMP_AGE_S
        else:
            continue  # some other file (e.g. another target whose name starts like ours)
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def save_model(model, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    for name, value, _ in model.parameters():
        arrays[f"param/{name}"] = value
    for name, value in model.buffers():
        arrays[f"buffer/{name}"] = value
    opt_meta = None
    if model.optimizer is not None:
        st = model.optimizer.state_dict()
        opt_meta = {"class": st["class"], "config": st["config"], "iterations": st["iterations"]}
        for pname, slots in st["state"].items():
            for slot, arr in slots.items():
                arrays[f"optimizer/{pname}/{slot}"] = arr
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "layers": model.config()["layers"],
        "training": bool(model.training),
        "epoch": int(model.epoch),
        "seed": model.seed,
        "loss": None if model.loss is None else loss_to_spec(model.loss),
        "optimizer": opt_meta,
        # The schedule, so that a loaded model resumes with the learning rate
        # the uninterrupted run would have used (thesis digest §2 "Checkpoints").
        "lr_schedule": None if model.lr_schedule is None else schedule_to_spec(model.lr_schedule),
    }
    arrays[META_KEY] = np.array(json.dumps(meta))

    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    _remove_stale_tmp_files(folder, base)  # leftovers of killed saves to this target
    prefix = f"{_tmp_stem(base)}{_host()}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


# ------------------------------------------------------------------------------ the archive


class _Corrupt(ValueError):
    """A ValueError whose message is complete (it names the file already)."""


class _Entry(NamedTuple):
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes of .npy header before the data


class _Counting:
    """A read-only file wrapper that counts the bytes read through it."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.n += len(data)
        return data


def _npy_header(fp) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of a .npy stream; reads the header only, unpickles nothing."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if reader is None:
        raise ValueError(f"unsupported .npy format version {version}")
    if "max_header_size" in inspect.signature(reader).parameters:  # NumPy >= 1.24
        return reader(fp, max_header_size=10000)
    return reader(fp)  # pragma: no cover - old NumPy


def _listed_entries(f) -> int | None:
    """The entry count in the zip's end-of-central-directory record, or None when it cannot
    be read here (zipfile itself then reports the damage)."""
    end_record = getattr(zipfile, "_EndRecData", None)  # private, but in every CPython since 2.x
    index = getattr(zipfile, "_ECD_ENTRIES_TOTAL", None)
    if end_record is None or index is None:
        return None  # pragma: no cover
    try:
        count = end_record(f)[index]
        return count if isinstance(count, int) else None
    except Exception:
        return None
    finally:
        f.seek(0)


class _Archive:
    """The entries of a model file, their headers read and checked; arrays are read on demand."""

    def __init__(self, path: str, f):
        self.path = path
        head = f.read(6)
        f.seek(0)
        if head == b"\x93NUMPY":
            raise _Corrupt(f"cannot load model {path!r}: it holds a single array, not an .npz archive")
        listed = _listed_entries(f)  # before ZipFile builds an object for every one of them
        if listed is not None and listed > MAX_ENTRIES:
            raise _Corrupt(
                f"cannot load model {path!r}: its zip directory lists {listed} entries, more than the "
                f"{MAX_ENTRIES} a natverk model file may hold"
            )
        try:
            f.seek(0)
            self.zip = zipfile.ZipFile(f)
            infos = self.zip.infolist()
        except Exception as err:  # BadZipFile, EOFError, OSError, ...
            raise self.corrupt(err) from None
        if len(infos) > MAX_ENTRIES:
            raise _Corrupt(f"cannot load model {path!r}: it holds {len(infos)} entries, more than {MAX_ENTRIES}")
        self.entries: dict[str, _Entry] = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or info.is_dir():
                raise ValueError(f"it holds an entry {name!r} that is not a NumPy array")
            key = name[: -len(".npy")]
            if key in self.entries:
                raise ValueError(f"it holds the entry {name!r} twice")
            try:
                with self.zip.open(info) as raw:
                    fp = _Counting(raw)
                    shape, fortran, dtype = _npy_header(fp)
            except Exception as err:  # a bad header, a corrupt or encrypted member, ...
                raise self.corrupt(err, name) from None
            if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
                raise ValueError(f"entry {name!r} has dtype {dtype}; a natverk model holds plain numeric arrays only")
            if any(n < 0 for n in shape):
                raise ValueError(f"entry {name!r} has a negative dimension in its shape {shape}")
            implied = fp.n + math.prod(shape) * dtype.itemsize
            if info.file_size != implied:
                raise ValueError(
                    f"entry {name!r} is {info.file_size} bytes uncompressed, but its header (shape {shape}, "
                    f"dtype {dtype}) implies {implied}"
                )
            self.entries[key] = _Entry(info, tuple(shape), dtype, bool(fortran), fp.n)

    def corrupt(self, err: Exception, entry: str | None = None) -> _Corrupt:
        where = f" (entry {entry!r})" if entry else ""
        return _Corrupt(
            f"cannot load model {self.path!r}: the file is truncated or corrupt, or not a natverk model{where} "
            f"({type(err).__name__}: {err})"
        )

    def need(self, key: str) -> _Entry:
        e = self.entries.get(key)
        if e is None:
            raise ValueError(f"it lacks the array {key!r}")
        return e

    def read(self, key: str, out: np.ndarray | None = None) -> np.ndarray:
        """The array ``key``, read in 1 MiB pieces straight into ``out`` (or a new array) when
        ``out`` has the entry's shape and dtype, which :func:`load` has checked."""
        e = self.entries[key]
        direct = out is not None and not e.fortran and out.dtype == e.dtype and out.flags.c_contiguous
        buf = out if direct else np.empty(e.shape[::-1] if e.fortran else e.shape, dtype=e.dtype)
        flat = buf.reshape(-1).view(np.uint8)
        try:
            with self.zip.open(e.info) as f:
                f.read(e.offset)
                pos, n = 0, flat.size
                while pos < n:
                    chunk = f.read(min(_CHUNK, n - pos))
                    if not chunk:
                        raise EOFError(f"the data ends after {pos} of {n} bytes")
                    flat[pos : pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                    pos += len(chunk)
                if f.read(1):  # also makes zipfile check the CRC
                    raise ValueError("it holds more data than its header says")
        except Exception as err:  # a CRC mismatch, a cut-short member, ...
            raise self.corrupt(err, e.info.filename) from None
        arr = buf.T if e.fortran else buf
        if out is not None and not direct:
            out[...] = arr
            return out
        return arr


# ------------------------------------------------------------------------------ the description


def _too_big(value: int) -> str:
    s = str(value)
    return s if len(s) <= 24 else f"{s[:8]}... ({len(s)} digits)"


def _check_json(meta: Any) -> None:
    """Bound the nesting depth and check that every integer fits a 64-bit integer (seeds, which
    only feed NumPy's arbitrary-size seed sequences, need only be integers)."""
    stack = [(meta, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"its architecture JSON is nested more than {MAX_DEPTH} levels deep (at {where:.80})")
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if not (_INT64[0] <= value <= _INT64[1]) and not (where == "seed" or where.endswith(".seed")):
                raise ValueError(f"its field {where} = {_too_big(value)} is out of range (not a 64-bit integer)")


def _parse_meta(archive: _Archive) -> dict:
    e = archive.entries.get(META_KEY)
    if e is None:
        raise ValueError(f"it has no {META_KEY} entry: not a natverk model file")
    if e.dtype.kind != "U" or e.shape != ():
        raise ValueError(f"its {META_KEY} entry is not a JSON string")
    if e.info.file_size > MAX_META_BYTES:
        raise ValueError(f"its {META_KEY} entry is {e.info.file_size} bytes, more than the {MAX_META_BYTES} allowed")
    text = str(archive.read(META_KEY)[()])
    try:
        meta = json.loads(text)
    except RecursionError:
        raise ValueError(
            f"its architecture JSON is nested too deeply to parse (natverk allows {MAX_DEPTH} levels)"
        ) from None
    except ValueError as err:  # JSONDecodeError, an integer of over 4300 digits
        raise ValueError(f"its architecture JSON is corrupt: {err}") from None
    _check_json(meta)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"its architecture JSON is not a {FORMAT} description")
    if meta.get("version") != VERSION:
        raise ValueError(f"file format version {meta.get('version')!r} is not supported (this natverk reads {VERSION})")
    missing = {"layers", "training", "epoch", "seed", "loss", "optimizer"} - set(meta)
    if missing:
        raise ValueError(f"its architecture JSON lacks {sorted(missing)}")
    return meta


def _counter(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= MAX_COUNTER:
        shown = _too_big(value) if isinstance(value, int) else repr(value)[:60]
        raise ValueError(f"its {what} {shown} is not an integer in [0, 2**62]")
    return int(value)


def _build_optimizer(spec: Any):
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"class", "config", "iterations"}:
        raise ValueError(f"its optimizer description is malformed: {spec!r:.200}")
    cls = OPTIMIZER_CLASSES.get(spec["class"]) if isinstance(spec["class"], str) else None
    if cls is None:
        raise ValueError(f"unknown optimizer class {spec['class']!r}; known: {sorted(OPTIMIZER_CLASSES)}")
    if not isinstance(spec["config"], dict):
        raise ValueError("its optimizer config is not a dict")
    iterations = _counter(spec["iterations"], "optimizer iteration count (optimizer.iterations)")
    try:
        opt = cls(**spec["config"])
        opt.load_state_dict({"iterations": iterations, "state": {}})
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build optimizer {spec['class']}: {err}") from None
    return opt


# -- the parameter shapes the described layers will have, worked out without building them


class _Unpredictable(Exception):
    pass


def _size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise _Unpredictable
    return int(v)


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise _Unpredictable
        return _size(v[0]), _size(v[1])
    return _size(v), _size(v)


def _dense_arrays(a: dict):
    i, o = _size(a["in_features"]), _size(a["out_features"])
    return [("W", (i, o))] + ([("b", (o,))] if a["bias"] is True else []), []


def _conv_arrays(a: dict):
    cin, cout, groups = _size(a["in_channels"]), _size(a["out_channels"]), _size(a["groups"])
    if groups < 1:
        raise _Unpredictable
    kh, kw = _pair(a["kernel_size"])
    return [("W", (cout, cin // groups, kh, kw))] + ([("b", (cout,))] if a["bias"] is True else []), []


def _batchnorm_arrays(a: dict):
    n = _size(a["num_features"])
    return [("gamma", (n,)), ("beta", (n,))], [("running_mean", (n,), None), ("running_var", (n,), None)]


# layer class -> bound constructor arguments -> (params [(name, shape)], buffers [(name, shape, dtype)]);
# a buffer dtype None follows the layer's float dtype. Classes not listed are built to find out
# (they are checked against the file afterwards); tests/test_reliability_io.py keeps this table
# equal to what the constructors make.
_DECLARED_ARRAYS = {
    Dense: _dense_arrays,
    Conv2D: _conv_arrays,
    BatchNorm1D: _batchnorm_arrays,
    BatchNorm2D: _batchnorm_arrays,
    Dropout: lambda a: ([], [("counter", (), np.dtype(np.int64))]),
}
_CONTAINERS = (Stack, Residual)


def _declared_leaves(specs: list, prefix: str, out: list) -> bool:
    """Append ``(prefix, params, buffers)`` for every leaf layer of ``specs`` whose arrays
    :data:`_DECLARED_ARRAYS` predicts; returns False if some leaf could not be predicted."""
    complete = True
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or set(spec) != {"class", "config"} or not isinstance(spec["config"], dict):
            layer_from_spec(spec)  # raises the ValueError describing the malformed spec, building nothing
        cls, config = layer_class(spec["class"]), spec["config"]
        if cls in _CONTAINERS:
            if set(config) != {"layers"} or not isinstance(config["layers"], list):
                layer_from_spec(spec)  # raises: the container's config is malformed
            complete &= _declared_leaves(config["layers"], f"{prefix}{i}.", out)
            continue
        if cls not in _DECLARED_ARRAYS:
            complete &= not cls.has_parameters and cls.buffers is Layer.buffers  # no arrays at all
            continue
        try:
            bound = inspect.signature(cls).bind(**config)
        except TypeError as err:
            raise ValueError(f"cannot build {spec['class']} from config {config!r:.300}: {err}") from None
        bound.apply_defaults()
        try:
            params, buffers = _DECLARED_ARRAYS[cls](bound.arguments)
        except _Unpredictable:  # a value the constructor will reject before allocating anything
            complete = False
            continue
        out.append((f"{prefix}{i}.", params, buffers))
    return complete


def _model_leaves(model) -> list:
    leaves = []
    for prefix, leaf in _leaves(model):
        params = [(n, v.shape) for n, v, _ in leaf.parameters()]
        buffers = [(n, v.shape, None if v.dtype.kind == "f" else v.dtype) for n, v in leaf.buffers()]
        leaves.append((prefix, params, buffers))
    return leaves


def _leaves(layer: Layer, prefix: str = ""):
    kids = layer.children()
    if not kids:
        yield prefix, layer
    for p, child in kids:
        yield from _leaves(child, prefix + p)


def _check_header(key: str, e: _Entry, shape: tuple, dtype: np.dtype) -> None:
    if e.shape != tuple(shape):
        raise ValueError(f"array {key!r} has shape {e.shape}, the architecture needs {tuple(shape)}")
    if e.dtype != dtype:
        raise ValueError(f"array {key!r} has dtype {e.dtype}, expected {dtype}")


def _check_entries(archive: _Archive, leaves: list, opt, complete: bool) -> dict[str, np.dtype]:
    """Check the headers of every array ``leaves`` need (and, when ``complete``, that the file
    holds nothing else); returns each leaf's parameter dtype. Reads no array data."""
    expected = {META_KEY}
    params: dict[str, tuple[tuple, np.dtype]] = {}
    dtypes: dict[str, np.dtype] = {}
    for prefix, leaf_params, leaf_buffers in leaves:
        dt = None
        for name, shape in leaf_params:
            key = f"param/{prefix}{name}"
            e = archive.need(key)
            if dt is None:
                if e.dtype not in _FLOATS:
                    raise ValueError(f"array {key!r} has dtype {e.dtype}; parameters must be float32 or float64")
                dt = e.dtype
            _check_header(key, e, shape, dt)
            expected.add(key)
            params[prefix + name] = (tuple(shape), dt)
        for name, shape, bdt in leaf_buffers:
            key = f"buffer/{prefix}{name}"
            _check_header(key, archive.need(key), shape, np.dtype(bdt) if bdt is not None else (dt or _FLOATS[1]))
            expected.add(key)
        if dt is not None:
            dtypes[prefix] = dt
    if not complete:
        return dtypes
    unexpected = []
    for key, e in archive.entries.items():
        if key in expected:
            continue
        if not key.startswith("optimizer/"):
            unexpected.append(key)
            continue
        if opt is None:
            raise ValueError("it holds optimizer arrays but no optimizer")
        parts = key.split("/")
        if len(parts) != 3 or parts[1] not in params or parts[2] not in type(opt).slots:
            raise ValueError(f"unexpected optimizer array {key!r} (the model has no such parameter or slot)")
        _check_header(key, e, *params[parts[1]])
    if unexpected:
        raise ValueError(f"it holds unexpected arrays {sorted(unexpected)[:10]}")
    return dtypes


# ------------------------------------------------------------------------------ loading


def _any(a: np.ndarray, test) -> bool:
    """``test(piece).any()`` over 1 Mi-element pieces of ``a``: no full-size boolean temporary."""
    flat = a.reshape(-1)
    return any(test(flat[i : i + _CHUNK]).any() for i in range(0, flat.size, _CHUNK))


def _not_finite(a: np.ndarray) -> bool:
    return a.dtype.kind == "f" and _any(a, lambda p: ~np.isfinite(p))


def _read_model_arrays(archive: _Archive, model) -> None:
    for kind, items in (("param", [(n, v) for n, v, _ in model.parameters()]), ("buffer", model.buffers())):
        for name, value in items:
            key = f"{kind}/{name}"
            archive.read(key, out=value)
            if _not_finite(value):
                raise ValueError(f"array {key!r} contains NaN or Inf")
            if name.endswith("running_var") and _any(value, lambda p: p < 0):
                raise ValueError(f"array {key!r} holds negative variances")
            if value.dtype.kind == "i" and _any(value, lambda p: (p < 0) | (p > MAX_COUNTER)):
                raise ValueError(f"array {key!r} holds a count outside [0, 2**62]")


def _read_optimizer_state(archive: _Archive, opt) -> None:
    state: dict[str, dict[str, np.ndarray]] = {}
    for key, e in archive.entries.items():
        if key.startswith("optimizer/"):
            _, pname, slot = key.split("/")
            arr = archive.read(key)
            if _not_finite(arr):
                raise ValueError(f"array {key!r} contains NaN or Inf")
            state.setdefault(pname, {})[slot] = arr
    for pname, slots in state.items():
        if set(slots) != set(opt.slots):
            raise ValueError(
                f"its optimizer state for {pname!r} holds {sorted(slots)}; "
                f"{type(opt).__name__} needs {sorted(opt.slots)}"
            )
    # The arrays were checked (shape and dtype of their parameter, finite, every slot): hand
    # them over as they are rather than through load_state_dict, which would copy them all.
    opt.state = state


def load(path: str | os.PathLike):
    """Rebuild a :class:`~natverk.models.Sequential` saved with :meth:`Sequential.save`.

    Never unpickles anything. Checks the format, every layer class name and
    config, the optimizer and learning-rate schedule, the integer fields
    (counters must fit 64-bit integers), that every parameter, buffer and
    optimizer state array is present with the right shape and dtype (and
    finite), and that nothing unexpected is left over -- the shapes, dtypes and
    sizes from the archive's headers, before any layer is built or any array
    read, so a hostile file cannot make it allocate much more than the file
    and the model it describes. Any problem, a truncated or corrupt file
    included, raises ``ValueError`` naming the file; a missing file raises
    ``FileNotFoundError``. Layers get the dtype of their saved parameters.
    """
    from .sequential import Sequential

    path = os.fspath(path)
    with open(path, "rb") as f:  # opened here so that no failure can leak the handle
        try:
            archive = _Archive(path, f)
            try:
                return _load(archive, Sequential)
            finally:
                archive.zip.close()
        except _Corrupt:
            raise
        except ValueError as err:
            raise ValueError(f"cannot load model {path!r}: {err}") from None


def _load(archive: _Archive, Sequential):
    # 1. the description, checked whole before anything is built
    meta = _parse_meta(archive)
    epoch = _counter(meta["epoch"], "epoch count (epoch)")
    seed = meta["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"its seed {seed!r:.60} is not a non-negative integer")
    if not isinstance(meta["training"], bool):
        raise ValueError(f"its training flag {meta['training']!r:.60} is not a boolean")
    loss = None if meta["loss"] is None else loss_from_spec(meta["loss"])
    schedule = meta.get("lr_schedule")  # optional: absent in older files
    schedule = None if schedule is None else schedule_from_spec(schedule)
    opt = _build_optimizer(meta["optimizer"])
    if not isinstance(meta["layers"], list):
        raise ValueError("its 'layers' entry is not a list")

    # 2. the parameter shapes it declares against the arrays' headers, still allocating nothing
    declared: list = []
    complete = _declared_leaves(meta["layers"], "", declared)
    _check_entries(archive, declared, opt, complete)

    # 3. build the model (its size now matches the file's arrays) and check it against them again
    try:
        model = Sequential(*(layer_from_spec(spec) for spec in meta["layers"]))
        dtypes = _check_entries(archive, _model_leaves(model), opt, True)
        for prefix, leaf in _leaves(model):
            if prefix in dtypes:
                leaf.astype(dtypes[prefix])

        # 4. the arrays, each read straight into its place
        _read_model_arrays(archive, model)
        if opt is not None:
            _read_optimizer_state(archive, opt)
    except MemoryError:
        need = sum(e.info.file_size for k, e in archive.entries.items() if k != META_KEY)
        raise ValueError(
            f"the model it describes needs {need / 2**30:.1f} GiB for its parameters, buffers and optimizer "
            "state, more than this machine could allocate"
        ) from None
    model.optimizer = opt
    model.loss = loss
    model.epoch, model.seed = epoch, seed
    model.weights_ready = True  # loaded weights are meant to be used: predict needs no fit first
    model.lr_schedule = schedule
    if meta["training"]:
        model.train()
    else:
        model.eval()
    return model
