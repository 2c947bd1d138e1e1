"""ISIC skin-lesion folders: a labels CSV plus JPEG/PNG images, decoded with Pillow.

The Python counterpart of the thesis' MATLAB ``import_ISIC`` /
``ISIC_read_single_image`` (appendix C, sections 5.4-5.5), which read every
image and its ``benign_malignant`` field and set ``target = 0`` for benign,
``1`` for malignant. The thesis resized every ISIC image to 224 x 224 RGB
(section 3.1.3).

The labels CSV (``labels.csv`` by default; UTF-8, an optional BOM is fine):

* a header row naming an **image column** -- the first of ``image``,
  ``image_id``, ``image_name``, ``isic_id``, ``filename``, ``file_name``,
  ``file``, ``name``, ``id`` present -- and a **label column** -- the first of
  ``label``, ``target``, ``benign_malignant``, ``malignant``, ``melanoma``,
  ``class`` present. Header names are matched case-insensitively, ignoring
  surrounding spaces, with spaces and hyphens read as underscores. Other
  columns are ignored, so the ISIC 2020 ``train.csv``
  (``image_name, ..., benign_malignant, target``) works as it is.
* or no header at all, two columns ``image,label``, as the ISIC 2016 task 3
  ground-truth files (``ISIC_0000000,benign`` / ``ISIC_0000003,0.0``).

Labels: ``benign`` / ``malignant`` (any case), ``0`` / ``1`` or ``0.0`` /
``1.0``; 0 is benign, 1 malignant. An image entry is a file name with or
without its extension (``ISIC_0000000`` finds ``ISIC_0000000.jpg``), looked
up in ``images/`` next to the CSV and then beside the CSV itself; a relative
path inside that folder is also accepted, anything escaping it is not.
"""

from __future__ import annotations

import concurrent.futures
import csv
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._idx import DatasetError

__all__ = ["read_labels_csv", "find_images", "decode_images", "stratified_split"]

_ID_COLUMNS = ("image", "image_id", "image_name", "isic_id", "filename", "file_name", "file", "name", "id")
_LABEL_COLUMNS = ("label", "target", "benign_malignant", "malignant", "melanoma", "class")
_LABEL_VALUES = {"benign": 0, "malignant": 1, "0": 0, "1": 1, "0.0": 0, "1.0": 1}
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_MAX_CSV_BYTES = 256 << 20  # ISIC 2020's train.csv is ~2 MB


def _norm(header: str) -> str:
    return header.strip().lower().replace(" ", "_").replace("-", "_")


def _parse_label(text: str) -> int | None:
    return _LABEL_VALUES.get(text.strip().lower())


def read_labels_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Image entries and int64 labels (0 benign, 1 malignant) of an ISIC labels CSV.

    See the module docstring for the accepted formats.

    Raises
    ------
    DatasetError
        If the CSV is not UTF-8 or not CSV, has no recognisable image and
        label columns, a row lacks a cell, a label is not benign/malignant or
        0/1, an image appears twice, or it lists no images.
    """
    path = os.fspath(path)
    if os.path.getsize(path) > _MAX_CSV_BYTES:
        raise DatasetError(f"{path}: a labels CSV larger than {_MAX_CSV_BYTES} bytes is not an ISIC labels file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a UTF-8 CSV file ({exc})") from None
    if not rows:
        raise DatasetError(f"{path}: the labels CSV is empty")

    names = [_norm(c) for c in rows[0]]
    id_col = next((names.index(c) for c in _ID_COLUMNS if c in names), None)
    label_col = next((names.index(c) for c in _LABEL_COLUMNS if c in names), None)
    first_line = 2
    # No image column but a label value in the second cell: a headerless ISIC
    # 2016 file (its "malignant" would otherwise pass for a column name).
    if id_col is None and len(rows[0]) >= 2 and _parse_label(rows[0][1]) is not None:
        id_col, label_col, first_line = 0, 1, 1
    elif id_col is None or label_col is None:
        raise DatasetError(
            f"{path}: header {rows[0]} has no {'image' if id_col is None else 'label'} column; "
            f"expected one of {list(_ID_COLUMNS)} and one of {list(_LABEL_COLUMNS)}, "
            "or no header and two columns image,label"
        )
    else:
        rows = rows[1:]

    ids: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=first_line):
        if len(row) <= max(id_col, label_col):
            raise DatasetError(f"{path}, line {line}: row {row} has no cell for column {max(id_col, label_col) + 1}")
        image, text = row[id_col].strip(), row[label_col]
        label = _parse_label(text)
        if label is None:
            raise DatasetError(
                f"{path}, line {line}: label {text!r} of {image!r} is not benign/malignant or 0/1"
            )
        if not image:
            raise DatasetError(f"{path}, line {line}: empty image name")
        if image in seen:
            raise DatasetError(f"{path}, line {line}: image {image!r} is listed twice")
        seen.add(image)
        ids.append(image)
        labels.append(label)
    if not ids:
        raise DatasetError(f"{path}: the labels CSV lists no images")
    return ids, np.array(labels, dtype=np.int64)


def find_images(folder: str | os.PathLike, ids: Sequence[str]) -> list[str]:
    """The file of each image entry, searched in ``folder/images`` then ``folder``.

    Raises
    ------
    DatasetError
        If an entry is an absolute path or leaves the folder, or any image is
        missing (the message names the first few).
    """
    folder = os.path.abspath(os.fspath(folder))
    search = [d for d in (os.path.join(folder, "images"), folder) if os.path.isdir(d)]
    # One listing per folder instead of a stat per image and extension.
    by_name: dict[str, str] = {}
    by_stem: dict[str, str] = {}
    for d in search:
        with os.scandir(d) as it:
            entries = sorted((e.name, e.path) for e in it if e.is_file())
        for name, p in entries:
            stem, ext = os.path.splitext(name)
            if ext.lower() in _IMAGE_EXTENSIONS:
                by_name.setdefault(name, p)
                by_stem.setdefault(stem, p)

    paths: list[str] = []
    missing: list[str] = []
    for image in ids:
        if "/" in image or "\\" in image:
            parts = image.replace("\\", "/").split("/")
            if image.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                raise DatasetError(f"image entry {image!r} points outside {folder}")
            candidate = os.path.join(folder, *parts)
            p = candidate if os.path.isfile(candidate) else None
        else:
            p = by_name.get(image) or by_stem.get(image)
        if p is None:
            missing.append(image)
        else:
            paths.append(p)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(
            f"{len(missing)} image(s) listed in the labels CSV are not in {' or '.join(search) or folder} "
            f"(as .jpg/.jpeg/.png): {shown}"
        )
    return paths


def _import_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "load_isic needs Pillow to decode JPEG/PNG images, an optional dependency of natverk: "
            "pip install pillow"
        ) from None
    return Image


def decode_images(
    paths: Sequence[str],
    image_size: tuple[int, int],
    num_workers: int | None = None,
) -> np.ndarray:
    """Decode, convert to RGB and resize images into one float32 (N, 3, H, W) array in [0, 1].

    Parameters
    ----------
    paths : sequence of str
        JPEG or PNG files (other formats are refused, whatever the name).
    image_size : (int, int)
        ``(height, width)`` of the output.
    num_workers : int, optional
        Decoding threads (Pillow releases the GIL while decoding); default
        ``min(8, os.cpu_count())``. The result does not depend on it.

    Notes
    -----
    Images are resized to exactly ``image_size`` with Pillow's bilinear
    filter (antialiased when shrinking), without keeping the aspect ratio,
    as the thesis' 224 x 224 resize did. JPEGs are first decoded at the
    smallest power-of-two reduction still at least ``image_size``
    (``Image.draft``), which is several times faster on full-size ISIC
    photographs. An image of the target size is not resampled at all.
    """
    Image = _import_pillow()
    height, width = image_size
    resample = getattr(Image, "Resampling", Image).BILINEAR
    out = np.empty((len(paths), height, width, 3), dtype=np.uint8)

    def decode(i: int) -> None:
        path = paths[i]
        try:
            with Image.open(path, formats=("JPEG", "PNG")) as im:
                im.draft("RGB", (width, height))
                rgb = im.convert("RGB")
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), resample=resample)
            out[i] = np.asarray(rgb, dtype=np.uint8)
        except MemoryError:
            raise
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBomb*...
            raise DatasetError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None

    workers = num_workers if num_workers is not None else min(8, os.cpu_count() or 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
    with warnings.catch_warnings():
        # A header claiming a gigapixel image is a decompression bomb: refuse it
        # (Pillow only warns below twice its limit).
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if workers == 1 or len(paths) < 2:
            for i in range(len(paths)):
                decode(i)
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(decode, range(len(paths))):
                    pass
    X = np.empty((len(paths), 3, height, width), dtype=np.float32)
    np.divide(out.transpose(0, 3, 1, 2), np.float32(255), out=X)  # one pass, NHWC -> NCHW
    return X


def stratified_split(
    labels: np.ndarray, held_out: int | float, rng: np.random.Generator, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices 0..n-1 into (kept, held_out), each class in proportion.

    ``held_out`` is a count (int, 1..n-1) or a fraction (float in (0, 1),
    rounded to a count). The count is shared among classes by their sizes
    (largest remainders get the rounding), and each class's held-out members
    are drawn by ``rng``. Both index arrays are sorted, so the subsets keep
    the CSV order.
    """
    n = len(labels)
    n_held = _held_count(held_out, n, name)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = n_held * sizes / n
    take = np.floor(exact).astype(np.int64)
    short = n_held - int(take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take)]
    held_idx = np.sort(np.concatenate(held))
    kept_idx = np.setdiff1d(np.arange(n), held_idx)
    return kept_idx, held_idx


def _held_count(size: Any, n: int, name: str) -> int:
    if isinstance(size, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a float fraction, got {size!r}")
    if isinstance(size, (int, np.integer)):
        count = int(size)
    elif isinstance(size, (float, np.floating)) and 0.0 < float(size) < 1.0:
        count = int(round(float(size) * n))
    else:
        raise ValueError(f"{name} must be an int count or a fraction in (0, 1), got {size!r}")
    if not 1 <= count <= n - 1:
        raise ValueError(f"{name}={size!r} leaves {count} of {n} examples held out; it must leave 1..{n - 1}")
    return count
