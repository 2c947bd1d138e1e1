"""Real image datasets: MNIST, Fashion-MNIST, CIFAR-10 and ISIC skin lesions.

The image counterparts of :func:`~natverk.importdata.import_linear_data`: each
loader returns ``X_train, y_train, X_test, y_test`` (with ``validation=True``
``X_train, y_train, X_val, y_val, X_test, y_test``), images float32 NCHW in
[0, 1], labels int64. These are the datasets of the thesis' section 3.1.3
(Table 1): MNIST and Fashion-MNIST 60K train / 10K test, CIFAR-10 50K / 10K,
ISIC resized to 224 x 224 RGB, with the validation splits of its PyTorch
scripts (appendix D): 50000 / 10000 for MNIST and Fashion-MNIST and
40000 / 10000 for CIFAR-10, drawn at random from the training set.

Where the files are looked for, in order:

1. ``root``, the dataset's own folder (``root/<name>/`` is tried too, so
   ``root`` may also be the folder *holding* the datasets);
2. otherwise ``$NATVERK_DATA/<name>/``, with ``<name>`` one of ``mnist``,
   ``fashion-mnist``, ``cifar-10``, ``isic``.

A missing dataset raises :class:`FileNotFoundError` listing every path tried.
``download=True`` fetches MNIST, Fashion-MNIST or CIFAR-10 into the first of
those folders from their canonical mirrors, keeping a file only if its MD5
equals the published one. Corrupt or hostile files raise
:class:`DatasetError` (a :class:`ValueError`) before any large allocation.

Layouts (file names as distributed):

* MNIST / Fashion-MNIST: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or with
  ``.gz`` (the raw file is preferred when both exist: no decompression).
* CIFAR-10: ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (the
  binary version, preferred) or ``cifar-10-batches-py/{data_batch_1..5,test_batch}``
  (the Python version, read with a restricted unpickler, never ``pickle.load``);
  the batch files may also sit directly in the folder.
* ISIC: see :func:`load_isic`.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..simulatedata.generate_linear_2d import _rng
from ._cifar import read_cifar_bin, read_cifar_pickle
from ._download import _md5, download_file, extract_tar_safely, md5_file
from ._idx import DatasetError, is_gzip, read_idx
from ._isic import _held_count, decode_images, find_images, read_labels_csv, stratified_split
from .import_linear_data import _bool

__all__ = ["load_mnist", "load_fashion_mnist", "load_cifar10", "load_isic", "DatasetError"]

ENV_VAR = "NATVERK_DATA"
_N_CLASSES = 10


# --------------------------------------------------------------- sources ----
@dataclass(frozen=True)
class _Remote:
    """One downloadable file: its published MD5 (as downloaded), size and the
    MD5 of its decompressed content (what a recompressed copy still matches)."""

    md5: str
    size: int
    raw_md5: str | None = None


@dataclass(frozen=True)
class _IdxSource:
    title: str
    mirrors: tuple[str, ...]
    files: dict[str, _Remote]  # stem (no .gz) -> remote .gz


_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# MD5s of the .gz files as torchvision lists them, and of their contents
# (checked against the copies in the project's shared data folder).
_IDX_SOURCES: dict[str, _IdxSource] = {
    "mnist": _IdxSource(
        "MNIST",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte": _Remote("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422, "6bbc9ace898e44ae57da46a324031adb"),
            "train-labels-idx1-ubyte": _Remote("d53e105ee54ea40749a09fcbcd1e9432", 28881, "a25bea736e30d166cdddb491f175f624"),
            "t10k-images-idx3-ubyte": _Remote("9fb629c4189551a2d022fa330f9573f3", 1648877, "2646ac647ad5339dbf082846283269ea"),
            "t10k-labels-idx1-ubyte": _Remote("ec29112dd5afa0611ce80d1b7f02629c", 4542, "27ae3e4e09519cfbb04c329615203637"),
        },
    ),
    "fashion-mnist": _IdxSource(
        "Fashion-MNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte": _Remote("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            "train-labels-idx1-ubyte": _Remote("25c81989df183df01b3e8a0aad5dffbe", 29515, "9018921c3c673c538a1fc5bad174d6f9"),
            "t10k-images-idx3-ubyte": _Remote("bef4ecab320f06d8554ea6380940ec79", 4422102, "8181f5470baa50b63fa0f6fddb340f0a"),
            "t10k-labels-idx1-ubyte": _Remote("bb300cfdad3c16e7a12a480ee83cd310", 5148, "15d484375f8d13e6eb1aabb0c3f46965"),
        },
    ),
}  # fmt: skip

_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
_CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
_CIFAR10_REMOTE = _Remote("c32a1d4ab5d03f1284b67883e8d87530", 170052171)
_CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


# ------------------------------------------------------- root resolution ----
def _candidate_dirs(root: Any, name: str) -> list[str]:
    """Folders that may hold dataset ``name``, in the order they are tried."""
    if root is not None:
        base = os.path.abspath(os.path.expanduser(os.fspath(root)))
        return [base, os.path.join(base, name)]
    env = os.environ.get(ENV_VAR)
    if env:
        return [os.path.join(os.path.abspath(os.path.expanduser(env)), name)]
    return []


def _not_found(title: str, name: str, looked: list[str], how: str) -> FileNotFoundError:
    env = os.environ.get(ENV_VAR)
    where = (
        "\n  ".join(looked)
        if looked
        else f"(nowhere: no root was given and {ENV_VAR} is not set)"
    )
    return FileNotFoundError(
        f"{title} not found. Looked for:\n  {where}\n"
        f"To get it: {how}, or pass root= the folder holding it, or set {ENV_VAR} to a folder "
        f"holding {name}/ ({ENV_VAR} is currently {repr(env) if env else 'unset'})."
    )


def _download_target(candidates: list[str], title: str) -> str:
    if not candidates:
        raise FileNotFoundError(
            f"download=True needs a folder to put {title} in: pass root= or set {ENV_VAR}"
        )
    return candidates[0]


# ------------------------------------------------------------- helpers ----
def _to_float(images: np.ndarray, flatten: bool) -> np.ndarray:
    """uint8 images -> float32 in [0, 1] in one pass (x / 255, correctly rounded)."""
    out = np.empty(images.shape, dtype=np.float32)
    np.divide(images, np.float32(255), out=out)
    return out.reshape(len(out), int(np.prod(out.shape[1:]))) if flatten else out  # also for 0 images


def _random_split(n: int, validation_size: Any, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random (train, validation) indices of 0..n-1, each sorted.

    Like ``torch.utils.data.random_split(train, [n - k, k])`` in the thesis'
    scripts: a uniformly random subset, not stratified.
    """
    count = _held_count(validation_size, n, "validation_size")
    perm = _rng(seed).permutation(n)
    return np.sort(perm[count:]), np.sort(perm[:count])


def _finish(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    validation: bool,
    validation_size: Any,
    seed: Any,
    flatten: bool,
) -> tuple[np.ndarray, ...]:
    """Split off the validation set (on the uint8 data), then convert to float."""
    if validation:
        tr, va = _random_split(len(y_train), validation_size, seed)
        return (
            _to_float(X_train[tr], flatten), y_train[tr].astype(np.int64),
            _to_float(X_train[va], flatten), y_train[va].astype(np.int64),
            _to_float(X_test, flatten), y_test.astype(np.int64),
        )  # fmt: skip
    return _to_float(X_train, flatten), y_train.astype(np.int64), _to_float(X_test, flatten), y_test.astype(np.int64)


def _check_labels(labels: np.ndarray, path: str) -> None:
    if labels.size and int(labels.max()) >= _N_CLASSES:
        i = int(np.argmax(labels >= _N_CLASSES))
        raise DatasetError(f"{path}: label {int(labels[i])} at index {i} is not a class 0..{_N_CLASSES - 1}")


# ---------------------------------------------------- MNIST-like (IDX) ----
def _find_idx_files(candidates: list[str]) -> tuple[dict[str, str] | None, list[str]]:
    """The first folder holding all four IDX files (raw preferred over .gz)."""
    looked: list[str] = []
    for d in candidates:
        found: dict[str, str] = {}
        for stem in _IDX_STEMS:
            for p in (os.path.join(d, stem), os.path.join(d, stem + ".gz")):
                looked.append(p)
                if stem not in found and os.path.isfile(p):
                    found[stem] = p
        if len(found) == len(_IDX_STEMS):
            return found, looked
    return None, looked


def _content_md5(path: str) -> str:
    """MD5 of a file's content, decompressed if it is gzip."""
    if not is_gzip(path):
        return md5_file(path)
    h = _md5()
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: str, remote: _Remote) -> None:
    """Check a local file against the published MD5 of the download or of its content."""
    if md5_file(path) in (remote.md5, remote.raw_md5):
        return
    got = _content_md5(path)
    if got != remote.raw_md5:
        raise DatasetError(
            f"{path}: checksum mismatch: content MD5 {got}, published {remote.raw_md5} "
            f"(or {remote.md5} for the .gz file); the file is corrupt or not the canonical one"
        )


def _load_idx_dataset(
    name: str,
    func: str,
    root: Any,
    validation: Any,
    validation_size: Any,
    seed: Any,
    download: Any,
    flatten: Any,
    verify: Any,
) -> tuple[np.ndarray, ...]:
    validation, download = _bool(validation, "validation"), _bool(download, "download")
    flatten, verify = _bool(flatten, "flatten"), _bool(verify, "verify")
    source = _IDX_SOURCES[name]
    candidates = _candidate_dirs(root, name)
    files, looked = _find_idx_files(candidates)
    if files is None and download:
        target = _download_target(candidates, source.title)
        for stem, remote in source.files.items():
            if not (os.path.isfile(os.path.join(target, stem)) or os.path.isfile(os.path.join(target, stem + ".gz"))):
                urls = [mirror + stem + ".gz" for mirror in source.mirrors]
                download_file(urls, os.path.join(target, stem + ".gz"), remote.md5, max_bytes=remote.size)
        files, looked = _find_idx_files([target])
    if files is None:
        how = (
            f"call {func}(..., download=True) to fetch the four files from {source.mirrors[0]} "
            "(checked against their published MD5s)"
        )
        raise _not_found(source.title, name, looked, how)

    arrays = {}
    for stem, path in files.items():
        is_images = "images" in stem
        arrays[stem] = read_idx(
            path,
            ndim=3 if is_images else 1,
            dtype_code=0x08,
            tail_shape=(28, 28) if is_images else (),
        )
        if verify:
            _verify(path, source.files[stem])
    parts = []
    for split in ("train", "t10k"):
        X = arrays[f"{split}-images-idx3-ubyte"]
        y = arrays[f"{split}-labels-idx1-ubyte"]
        labels_path = files[f"{split}-labels-idx1-ubyte"]
        if len(X) != len(y):
            raise DatasetError(
                f"{files[f'{split}-images-idx3-ubyte']} holds {len(X)} images but {labels_path} "
                f"holds {len(y)} labels"
            )
        _check_labels(y, labels_path)
        parts += [X[:, None, :, :], y]  # (n, 28, 28) -> NCHW (n, 1, 28, 28), a view
    return _finish(*parts, validation, validation_size, seed, flatten)


_RETURNS = """
    Returns
    -------
    X_train, y_train, X_test, y_test
        ``X_*`` float32 of shape (N, 1, 28, 28) (or (N, 784) with
        ``flatten=True``), pixel / 255 in [0, 1]; ``y_*`` int64 class labels
        0..9 of shape (N,). 60000 training and 10000 test images.
    X_train, y_train, X_val, y_val, X_test, y_test
        With ``validation=True``: the training set split at random into
        ``60000 - validation_size`` and ``validation_size`` images
        (50000 / 10000 by default, the thesis' split).

    Raises
    ------
    FileNotFoundError
        If the files are in none of the folders tried (the message lists
        every path and how to get the data).
    DatasetError
        (a ValueError) If a file is corrupt, truncated, has trailing bytes,
        a wrong header (magic, type code, dimensions, a claimed size the file
        cannot hold), labels outside 0..9, image and label counts that
        disagree, or (``verify=True``) a checksum mismatch; or if a download
        did not match its published MD5.
    OSError
        If ``download=True`` and no mirror could be reached.
"""

_PARAMETERS = """
    Parameters
    ----------
    root : path-like, optional
        Folder holding the four IDX files (raw or ``.gz``), or a folder
        holding ``{name}/``. Default: ``$NATVERK_DATA/{name}/``.
    validation : bool, default False
        Also return a validation set split off the training set.
    validation_size : int or float, default 10000
        Validation images (a count, or a fraction of the training set).
    seed : int, numpy.random.Generator or None, default 0
        Seeds the validation split: the same seed gives the same split.
    download : bool, default False
        Fetch missing files into ``root`` (or ``$NATVERK_DATA/{name}/``);
        a file is kept only if its MD5 matches the published one.
    flatten : bool, default False
        Return images as rows of 784 features (for fully connected networks)
        instead of (N, 1, 28, 28).
    verify : bool, default False
        Check every local file against its published MD5 (of the ``.gz`` or
        of the decompressed content); adds a fraction of a second for the full set.
"""


def load_mnist(
    root: str | os.PathLike | None = None,
    *,
    validation: bool = False,
    validation_size: int | float = 10000,
    seed: Any = 0,
    download: bool = False,
    flatten: bool = False,
    verify: bool = False,
) -> tuple[np.ndarray, ...]:
    return _load_idx_dataset("mnist", "load_mnist", root, validation, validation_size, seed, download, flatten, verify)


def load_fashion_mnist(
    root: str | os.PathLike | None = None,
    *,
    validation: bool = False,
    validation_size: int | float = 10000,
    seed: Any = 0,
    download: bool = False,
    flatten: bool = False,
    verify: bool = False,
) -> tuple[np.ndarray, ...]:
    return _load_idx_dataset(
        "fashion-mnist", "load_fashion_mnist", root, validation, validation_size, seed, download, flatten, verify
    )


load_mnist.__doc__ = (
    """MNIST handwritten digits (LeCun et al. 1998) as float32 NCHW images and int64 labels.

    The thesis' MNIST experiments (section 3.1.3, Table 4) train on 50000 of
    the 60000 training images and validate on the other 10000.
"""
    + _PARAMETERS.format(name="mnist")
    + _RETURNS
)
load_fashion_mnist.__doc__ = (
    """Fashion-MNIST (Xiao et al. 2017) as float32 NCHW images and int64 labels.

    Same format, sizes and splits as :func:`load_mnist` (ten clothing classes
    instead of digits); the thesis used the same 50000 / 10000 split.
"""
    + _PARAMETERS.format(name="fashion-mnist")
    + _RETURNS
)


# -------------------------------------------------------------- CIFAR-10 ----
def _find_cifar_batches(candidates: list[str]) -> tuple[tuple[str, list[str]] | None, list[str]]:
    """('bin' or 'py', the six batch paths) of the first complete set, binary first."""
    looked: list[str] = []
    for kind, sub, suffix in (("bin", "cifar-10-batches-bin", ".bin"), ("py", "cifar-10-batches-py", "")):
        for base in candidates:
            for d in (os.path.join(base, sub), base):
                paths = [os.path.join(d, b + suffix) for b in _CIFAR10_BATCHES]
                looked.extend(paths)
                if all(os.path.isfile(p) for p in paths):
                    return (kind, paths), looked
    return None, looked


def _download_cifar10(target: str) -> None:
    archive = os.path.join(target, _CIFAR10_ARCHIVE)
    # Reuse an archive left by an interrupted run only if it is the right one.
    if not (os.path.isfile(archive) and md5_file(archive) == _CIFAR10_REMOTE.md5):
        download_file([_CIFAR10_URL], archive, _CIFAR10_REMOTE.md5, max_bytes=_CIFAR10_REMOTE.size)
    extract_tar_safely(archive, target)
    os.remove(archive)  # 170 MB; the extracted batches are what is read


def load_cifar10(
    root: str | os.PathLike | None = None,
    *,
    validation: bool = False,
    validation_size: int | float = 10000,
    seed: Any = 0,
    download: bool = False,
    flatten: bool = False,
) -> tuple[np.ndarray, ...]:
    """CIFAR-10 (Krizhevsky 2009) as float32 NCHW images and int64 labels.

    The thesis' CIFAR-10 experiments (section 3.1.3, Table 4) train on 40000
    of the 50000 training images and validate on the other 10000
    (``random_split(..., [40000, 10000])`` in its appendix D scripts).

    Parameters
    ----------
    root : path-like, optional
        Folder holding ``cifar-10-batches-bin/`` or ``cifar-10-batches-py/``
        (or the batch files themselves), or a folder holding ``cifar-10/``.
        Default: ``$NATVERK_DATA/cifar-10/``. The binary version is used when
        both are present.
    validation : bool, default False
        Also return a validation set split off the training set.
    validation_size : int or float, default 10000
        Validation images (a count, or a fraction of the training set).
    seed : int, numpy.random.Generator or None, default 0
        Seeds the validation split: the same seed gives the same split.
    download : bool, default False
        Fetch ``cifar-10-binary.tar.gz`` (170 MB, MD5-checked) from
        https://www.cs.toronto.edu/~kriz/ and unpack it into ``root`` (or
        ``$NATVERK_DATA/cifar-10/``), refusing unsafe archive members.
    flatten : bool, default False
        Return images as rows of 3072 features instead of (N, 3, 32, 32).

    Returns
    -------
    X_train, y_train, X_test, y_test
        ``X_*`` float32 (N, 3, 32, 32) (RGB planes, as stored) or (N, 3072),
        in [0, 1]; ``y_*`` int64 labels 0..9. 50000 training, 10000 test.
    X_train, y_train, X_val, y_val, X_test, y_test
        With ``validation=True`` (40000 / 10000 by default).

    Raises
    ------
    FileNotFoundError
        If no complete set of batches is found (the message lists every path).
    DatasetError
        (a ValueError) If a binary batch's size is not a multiple of 3073
        bytes or a label is outside 0..9; if a pickle batch refers to
        anything but NumPy array reconstruction (e.g. ``os.system``) or is
        malformed; or if a download does not match its published MD5.
    OSError
        If ``download=True`` and the server could not be reached.
    """
    validation, download = _bool(validation, "validation"), _bool(download, "download")
    flatten = _bool(flatten, "flatten")
    candidates = _candidate_dirs(root, "cifar-10")
    found, looked = _find_cifar_batches(candidates)
    if found is None and download:
        target = _download_target(candidates, "CIFAR-10")
        _download_cifar10(target)
        found, _ = _find_cifar_batches([target])
        if found is None:
            raise DatasetError(f"{_CIFAR10_ARCHIVE} did not contain cifar-10-batches-bin/ with the six batches")
    if found is None:
        how = f"call load_cifar10(..., download=True) to fetch {_CIFAR10_URL} (checked against its published MD5)"
        raise _not_found("CIFAR-10", "cifar-10", looked, how)

    kind, paths = found
    read = read_cifar_bin if kind == "bin" else read_cifar_pickle
    batches = [read(p) for p in paths]
    X_train = np.concatenate([b[0] for b in batches[:5]])
    y_train = np.concatenate([b[1] for b in batches[:5]])
    X_test, y_test = batches[5]
    return _finish(X_train, y_train, X_test, y_test, validation, validation_size, seed, flatten)


# ------------------------------------------------------------------- ISIC ----
def _image_size(image_size: Any) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in image_size)
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise TypeError(f"image_size must be an int or a (height, width) pair of ints, got {image_size!r}")
    if min(size) < 1 or max(size) > 4096:
        raise ValueError(f"image_size must be between 1 and 4096 pixels per side, got {image_size!r}")
    return size


def load_isic(
    root: str | os.PathLike | None = None,
    *,
    image_size: int | tuple[int, int] = (224, 224),
    labels_csv: str = "labels.csv",
    test_fraction: int | float = 0.25,
    validation: bool = False,
    validation_size: int | float = 0.2,
    seed: Any = 0,
    flatten: bool = False,
    num_workers: int | None = None,
) -> tuple[np.ndarray, ...]:
    """ISIC skin-lesion images, benign (0) or malignant (1), as float32 NCHW.

    The thesis' ISIC experiments (section 3.1.3, Tables 5-6) resized every
    image to 224 x 224 RGB; its MATLAB ``import_ISIC`` read each image with
    its ``benign_malignant`` field (appendix C, 5.4-5.5), 18K training and
    6K test images. The MATLAB code read one folder; here two layouts work:

    * ``root/labels.csv`` listing every image, the images in ``root/images/``
      (or in ``root``); the test set is then a seeded *stratified* split of
      ``test_fraction`` of the images (default 0.25, the thesis' 18K / 6K);
    * ``root/train/`` and ``root/test/``, each with its own ``labels.csv``
      and images, used as they are (and with ``validation=True``, a
      ``root/val/`` or ``root/validation/`` folder the same way, if present).

    The CSV format (a header with an image and a label column, e.g.
    ``image,label``, ISIC 2016/2020 headers such as ``image_name,...,target``
    or ``image,benign_malignant``, or no header) is documented in
    :mod:`natverk.importdata._isic`.

    Parameters
    ----------
    root : path-like, optional
        The ISIC folder, or a folder holding ``isic/``. Default
        ``$NATVERK_DATA/isic/``. There is no download: get the images and
        ground truth from https://challenge.isic-archive.com/data/.
    image_size : int or (int, int), default (224, 224)
        Output ``(height, width)``; an int means a square.
    labels_csv : str, default "labels.csv"
        Name of the labels file in each folder.
    test_fraction : float, default 0.25
        Fraction (or, as an int, the number) of the images held out as the
        test set when there are no train/ and test/ folders.
    validation : bool, default False
        Also return a validation set, stratified from the training set.
    validation_size : int or float, default 0.2
        Validation images: a count or a fraction of the training set.
    seed : int, numpy.random.Generator or None, default 0
        Seeds the splits (test, then validation): the same seed gives the
        same split.
    flatten : bool, default False
        Return images as rows of 3*H*W features.
    num_workers : int, optional
        Decoding threads; the result does not depend on it.

    Returns
    -------
    X_train, y_train, X_test, y_test
        ``X_*`` float32 (N, 3, H, W) in [0, 1] (or (N, 3*H*W)); ``y_*`` int64
        0 benign / 1 malignant. Each subset keeps the CSV order.
    X_train, y_train, X_val, y_val, X_test, y_test
        With ``validation=True``.

    Raises
    ------
    ImportError
        If Pillow is not installed (``pip install pillow``).
    FileNotFoundError
        If no labels CSV is found (the message lists every path tried).
    DatasetError
        (a ValueError) If the CSV is malformed, an image it lists is missing,
        or an image cannot be decoded (or is a decompression bomb).
    """
    validation, flatten = _bool(validation, "validation"), _bool(flatten, "flatten")
    size = _image_size(image_size)
    if not isinstance(labels_csv, str) or not labels_csv:
        raise TypeError(f"labels_csv must be a file name, got {labels_csv!r}")
    rng = _rng(seed)

    looked: list[str] = []
    folders: dict[str, str] | None = None
    for d in _candidate_dirs(root, "isic"):
        train_csv, test_csv = (os.path.join(d, s, labels_csv) for s in ("train", "test"))
        single_csv = os.path.join(d, labels_csv)
        looked += [train_csv, test_csv, single_csv]
        if os.path.isfile(train_csv) and os.path.isfile(test_csv):
            folders = {"train": os.path.dirname(train_csv), "test": os.path.dirname(test_csv)}
            if validation:
                for s in ("val", "validation"):
                    if os.path.isfile(os.path.join(d, s, labels_csv)):
                        folders["val"] = os.path.join(d, s)
                        break
            break
        if os.path.isfile(single_csv):
            folders = {"all": d}
            break
    if folders is None:
        how = (
            "there is no automatic download for ISIC; get the images and ground truth from "
            f"https://challenge.isic-archive.com/data/ and write {labels_csv} (image,label) beside them"
        )
        raise _not_found("ISIC", "isic", looked, how)

    # Resolve every image before decoding any, so a missing file fails fast.
    subsets: dict[str, tuple[list[str], np.ndarray]] = {}
    for key, folder in folders.items():
        ids, labels = read_labels_csv(os.path.join(folder, labels_csv))
        subsets[key] = (find_images(folder, ids), labels)

    if "all" in subsets:
        paths, labels = subsets.pop("all")
        tr, te = stratified_split(labels, test_fraction, rng, "test_fraction")
        subsets["train"] = ([paths[i] for i in tr], labels[tr])
        subsets["test"] = ([paths[i] for i in te], labels[te])
    if validation and "val" not in subsets:
        paths, labels = subsets["train"]
        tr, va = stratified_split(labels, validation_size, rng, "validation_size")
        subsets["train"] = ([paths[i] for i in tr], labels[tr])
        subsets["val"] = ([paths[i] for i in va], labels[va])

    order = ("train", "val", "test") if validation else ("train", "test")
    out: list[np.ndarray] = []
    for key in order:
        paths, labels = subsets[key]
        X = decode_images(paths, size, num_workers)
        out += [X.reshape(len(X), -1) if flatten else X, labels.astype(np.int64)]
    return tuple(out)
