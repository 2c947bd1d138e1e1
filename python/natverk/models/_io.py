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

:func:`load` reads it with ``np.load(..., allow_pickle=False)`` and checks
everything; any problem is a ``ValueError`` that says what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import tempfile
from typing import Any

import numpy as np

from ..layers._base import Layer, layer_from_spec
from ..losses import loss_from_spec, loss_to_spec
from ..optimizers.classes import OPTIMIZER_CLASSES
from ..schedules import schedule_from_spec, schedule_to_spec

FORMAT = "natverk.Sequential"
VERSION = 1
META_KEY = "__natverk__"


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
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
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


# ------------------------------------------------------------------------------ loading


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    def corrupt(err: Exception) -> ValueError:
        return ValueError(
            f"cannot load model {path!r}: the file is truncated or corrupt, or not a natverk model "
            f"({type(err).__name__}: {err})"
        )

    with open(path, "rb") as f:  # opened here so that no failure can leak the handle
        try:
            npz = np.load(f, allow_pickle=False)
        except Exception as err:  # BadZipFile, EOFError, ValueError (pickled data), ...
            raise corrupt(err) from None
        if not hasattr(npz, "files"):
            raise ValueError(f"cannot load model {path!r}: it holds a single array, not an .npz archive")
        try:
            with npz:
                return {k: npz[k] for k in npz.files}
        except Exception as err:  # a member fails its CRC, is cut short, has a bad header, ...
            raise corrupt(err) from None


def _meta(arrays: dict[str, np.ndarray]) -> dict:
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise ValueError(f"it has no {META_KEY} entry: not a natverk model file")
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise ValueError(f"its {META_KEY} entry is not a JSON string")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as err:
        raise ValueError(f"its architecture JSON is corrupt: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"its architecture JSON is not a {FORMAT} description")
    if meta.get("version") != VERSION:
        raise ValueError(f"file format version {meta.get('version')!r} is not supported (this natverk reads {VERSION})")
    missing = {"layers", "training", "epoch", "seed", "loss", "optimizer"} - set(meta)
    if missing:
        raise ValueError(f"its architecture JSON lacks {sorted(missing)}")
    return meta


def _leaves(layer: Layer, prefix: str = ""):
    kids = layer.children()
    if not kids:
        yield prefix, layer
    for p, child in kids:
        yield from _leaves(child, prefix + p)


def _check_array(key: str, arr: np.ndarray, like: np.ndarray) -> None:
    if arr.shape != like.shape:
        raise ValueError(f"array {key!r} has shape {arr.shape}, the architecture needs {like.shape}")
    if arr.dtype != like.dtype:
        raise ValueError(f"array {key!r} has dtype {arr.dtype}, expected {like.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"array {key!r} contains NaN or Inf")


def _fill_model(model, arrays: dict[str, np.ndarray]) -> None:
    # Fix each layer's dtype from its saved parameters, then copy everything in.
    for prefix, leaf in _leaves(model):
        params = leaf.parameters()
        if params:
            key = f"param/{prefix}{params[0][0]}"
            if key not in arrays:
                raise ValueError(f"it lacks the array {key!r}")
            dt = arrays[key].dtype
            if dt not in (np.float32, np.float64):
                raise ValueError(f"array {key!r} has dtype {dt}; parameters must be float32 or float64")
            leaf.astype(dt)
    for kind, items in (("param", [(n, v) for n, v, _ in model.parameters()]), ("buffer", model.buffers())):
        for name, value in items:
            key = f"{kind}/{name}"
            if key not in arrays:
                raise ValueError(f"it lacks the array {key!r}")
            arr = arrays.pop(key)
            _check_array(key, arr, value)
            value[...] = arr
    for name, value in model.buffers():
        if name.endswith("running_var") and (value < 0).any():
            raise ValueError(f"array 'buffer/{name}' holds negative variances")
        if value.dtype.kind == "i" and (value < 0).any():
            raise ValueError(f"array 'buffer/{name}' holds a negative count")


def _fill_optimizer(model, spec: Any, arrays: dict[str, np.ndarray]) -> None:
    opt_keys = [k for k in arrays if k.startswith("optimizer/")]
    if spec is None:
        if opt_keys:
            raise ValueError("it holds optimizer arrays but no optimizer")
        model.optimizer = None
        return
    if not isinstance(spec, dict) or set(spec) != {"class", "config", "iterations"}:
        raise ValueError(f"its optimizer description is malformed: {spec!r:.200}")
    cls = OPTIMIZER_CLASSES.get(spec["class"]) if isinstance(spec["class"], str) else None
    if cls is None:
        raise ValueError(f"unknown optimizer class {spec['class']!r}; known: {sorted(OPTIMIZER_CLASSES)}")
    if not isinstance(spec["config"], dict):
        raise ValueError("its optimizer config is not a dict")
    try:
        opt = cls(**spec["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build optimizer {spec['class']}: {err}") from None
    params = {n: v for n, v, _ in model.parameters()}
    state: dict[str, dict[str, np.ndarray]] = {}
    for key in opt_keys:
        parts = key.split("/")
        if len(parts) != 3 or parts[1] not in params or parts[2] not in cls.slots:
            raise ValueError(f"unexpected optimizer array {key!r} (the model has no such parameter or slot)")
        arr = arrays.pop(key)
        _check_array(key, arr, params[parts[1]])
        state.setdefault(parts[1], {})[parts[2]] = arr
    try:
        opt.load_state_dict({"iterations": spec["iterations"], "state": state})
    except (TypeError, ValueError) as err:
        raise ValueError(f"its optimizer state is invalid: {err}") from None
    model.optimizer = opt


def load(path: str | os.PathLike):
    """Rebuild a :class:`~natverk.models.Sequential` saved with :meth:`Sequential.save`.

    Reads with ``np.load(..., allow_pickle=False)`` only. Checks the format,
    every layer class name and config, the optimizer and learning-rate
    schedule, that every parameter, buffer and
    optimizer state array is present with the right shape and dtype (and
    finite), and that nothing unexpected is left over. Any problem, a
    truncated or corrupt file included, raises ``ValueError`` naming the file;
    a missing file raises ``FileNotFoundError``. Layers get the dtype of
    their saved parameters.
    """
    from .sequential import Sequential

    path = os.fspath(path)
    arrays = _read_arrays(path)
    try:
        meta = _meta(arrays)
        if not isinstance(meta["layers"], list):
            raise ValueError("its 'layers' entry is not a list")
        model = Sequential(*(layer_from_spec(spec) for spec in meta["layers"]))
        _fill_model(model, arrays)
        _fill_optimizer(model, meta["optimizer"], arrays)
        model.loss = None if meta["loss"] is None else loss_from_spec(meta["loss"])
        epoch, seed = meta["epoch"], meta["seed"]
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"its epoch count {epoch!r} is not a non-negative integer")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"its seed {seed!r} is not a non-negative integer")
        if not isinstance(meta["training"], bool):
            raise ValueError(f"its training flag {meta['training']!r} is not a boolean")
        model.epoch, model.seed = int(epoch), seed
        schedule = meta.get("lr_schedule")  # optional: absent in older files
        model.lr_schedule = None if schedule is None else schedule_from_spec(schedule)
        if meta["training"]:
            model.train()
        else:
            model.eval()
        if arrays:
            raise ValueError(f"it holds unexpected arrays {sorted(arrays)[:10]}")
    except ValueError as err:
        raise ValueError(f"cannot load model {path!r}: {err}") from None
    return model
