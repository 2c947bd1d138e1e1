"""Downloading dataset files: checksummed, atomic, and safe tar extraction.

Used only when a loader is called with ``download=True``. A file is streamed
into a temporary file in its target folder while its MD5 is computed, and
``os.replace``-d onto its final name only when the MD5 matches the published
one, so a failed or tampered download never leaves a file that a later call
would trust. Archives are unpacked member by member after every member has
been checked: absolute paths, ``..`` components, links and device files are
refused (the "tar slip" attacks that ``tarfile.extractall`` is open to before
Python 3.12's filters), and so is an archive that would unpack to more than a
size limit (a decompression bomb). A member that cannot be written (a file
where another member needs a folder, an over-long name) is a ``DatasetError``
naming it, never a bare ``OSError``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath

from ._idx import DatasetError

__all__ = ["md5_file", "download_file", "extract_tar_safely", "MAX_EXTRACT_BYTES"]

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def _md5():
    # MD5 is what the datasets publish; it checks integrity, not a secret.
    try:
        return hashlib.md5(usedforsecurity=False)
    except TypeError:  # pragma: no cover - Python builds without the keyword
        return hashlib.md5()


def md5_file(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    h = _md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    urls: Sequence[str],
    dest: str | os.PathLike,
    md5: str,
    *,
    max_bytes: int | None = None,
    timeout: float = _TIMEOUT_S,
) -> str:
    """Fetch ``dest`` from the first of ``urls`` (mirrors) that serves the right bytes.

    Parameters
    ----------
    urls : sequence of str
        http(s) URLs of the same file, tried in order.
    dest : path-like
        Final path; its folder is created if needed.
    md5 : str
        The published MD5 of the file; only a matching download is kept.
    max_bytes : int, optional
        Give up on a mirror that sends more than this (the known file size),
        so a misbehaving server cannot fill the disk.

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    DatasetError
        If a mirror served bytes with the wrong checksum (and no mirror
        served the right ones). Nothing is left at ``dest``.
    OSError
        If every mirror failed to answer.
    """
    dest = os.fspath(dest)
    folder = os.path.dirname(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    failures: list[str] = []
    bad_checksum = False
    for url in urls:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"refusing to download from a non-http(s) URL: {url!r}")
        # The temporary file lives next to dest so that os.replace is atomic.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dest)}.", suffix=".part")
        try:
            h = _md5()
            n = 0
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    n += len(chunk)
                    if max_bytes is not None and n > max_bytes:
                        raise DatasetError(f"server sent more than the expected {max_bytes} bytes")
                    h.update(chunk)
                    out.write(chunk)
            got = h.hexdigest()
            if got != md5.lower():
                bad_checksum = True
                failures.append(f"{url}: MD5 {got} does not match the published {md5} ({n} bytes received)")
                continue
            os.replace(tmp, dest)
            return dest
        except DatasetError as exc:
            bad_checksum = True
            failures.append(f"{url}: {exc}")
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    detail = "\n  ".join(failures)
    message = f"could not download {os.path.basename(dest)}:\n  {detail}"
    if bad_checksum:
        raise DatasetError(message)
    raise OSError(message)


def _member_parts(name: str) -> tuple[str, ...]:
    """The path components of a tar member name, or DatasetError if it could
    land outside the extraction folder."""
    if not name or "\x00" in name:
        raise DatasetError(f"archive member {name!r} has an empty or invalid name")
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive or PurePosixPath(name).is_absolute():
        raise DatasetError(f"archive member {name!r} has an absolute path")
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if ".." in parts:
        raise DatasetError(f"archive member {name!r} has a '..' component")
    if not parts:
        raise DatasetError(f"archive member {name!r} names the extraction folder itself")
    return parts


#: Default cap on the bytes :func:`extract_tar_safely` writes: ten times the largest archive a
#: loader unpacks (CIFAR-10's binary tarball, 184 MB of batches), far below a decompression bomb.
MAX_EXTRACT_BYTES = 2 << 30
_NAME_MAX = 255  # bytes in one path component on the common file systems


def _plan_members(members: list, archive: str, max_bytes: int) -> list:
    """Check every member before anything is written: safe name, a file or folder, no file
    where another member needs a folder, and at most ``max_bytes`` of file data in all."""
    plan = []
    files: dict[tuple[str, ...], str] = {}
    folders: dict[tuple[str, ...], str] = {}  # folder -> a member that needs it
    total = 0
    for m in members:
        parts = _member_parts(m.name)
        if not (m.isfile() or m.isdir()):
            kind = "link" if (m.issym() or m.islnk()) else "special file"
            raise DatasetError(f"archive member {m.name!r} is a {kind}; only files and folders are allowed")
        for p in parts:
            if len(p.encode("utf-8", "surrogateescape")) > _NAME_MAX:
                raise DatasetError(
                    f"archive member {m.name!r} has a path component of {len(p.encode('utf-8', 'surrogateescape'))} "
                    f"bytes; file systems allow {_NAME_MAX}"
                )
        for i in range(1, len(parts)):
            folders.setdefault(parts[:i], m.name)
        if m.isdir():
            folders.setdefault(parts, m.name)
        else:
            files[parts] = m.name
            total += m.size
            if total > max_bytes:
                raise DatasetError(
                    f"{archive}: its files hold more than {max_bytes} bytes uncompressed (the limit, max_bytes); "
                    f"reached at member {m.name!r}"
                )
        plan.append((m, parts))
    for parts, name in files.items():
        if parts in folders:
            raise DatasetError(
                f"archive member {name!r} is a file, but member {folders[parts]!r} needs a folder of that name"
            )
    return plan


def extract_tar_safely(
    archive: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int = MAX_EXTRACT_BYTES
) -> list[str]:
    """Extract regular files and folders of a (compressed) tar into ``dest``.

    Every member is checked before anything is written; one absolute path,
    ``..`` component, symbolic or hard link, device or FIFO, over-long name,
    file where another member needs a folder, or a total of more than
    ``max_bytes`` of file data (as the members' headers declare it; the bytes
    written are counted as well) rejects the whole archive. Files are unpacked
    into a temporary folder inside ``dest`` and moved into place only when all
    succeeded.

    Parameters
    ----------
    archive, dest : path-like
        The tar file (any compression ``tarfile`` reads) and the folder to fill.
    max_bytes : int, default MAX_EXTRACT_BYTES (2 GiB)
        The most bytes of file data the archive may unpack to.

    Returns
    -------
    list of str
        The extracted files' paths.

    Raises
    ------
    DatasetError
        If a member is unsafe, the archive is corrupt or too large, or a
        member cannot be written (the message names it).
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise TypeError(f"max_bytes must be an integer, got {max_bytes!r}")
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    name = os.fspath(archive)
    dest = os.path.abspath(os.fspath(dest))
    os.makedirs(dest, exist_ok=True)
    try:
        with tarfile.open(name, "r:*") as tar:
            plan = _plan_members(tar.getmembers(), name, max_bytes)
            staging = tempfile.mkdtemp(dir=dest, prefix=".extract-")
            try:
                written = []
                total = 0
                for m, parts in plan:
                    try:
                        target = os.path.join(staging, *parts)
                        if m.isdir():
                            os.makedirs(target, exist_ok=True)
                            continue
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        src = tar.extractfile(m)
                        if src is None:  # pragma: no cover - isfile() members always have data
                            raise DatasetError(f"archive member {m.name!r} has no data")
                        n = 0
                        with src, open(target, "wb") as out:
                            for chunk in iter(lambda: src.read(_CHUNK), b""):
                                n += len(chunk)
                                total += len(chunk)
                                if n > m.size or total > max_bytes:
                                    raise DatasetError(
                                        f"{name}: archive member {m.name!r} unpacks to more bytes than its header "
                                        f"declares ({m.size}) or than the limit max_bytes={max_bytes}"
                                    )
                                out.write(chunk)
                        written.append((m.name, parts))
                    except OSError as exc:
                        raise DatasetError(
                            f"{name}: cannot extract archive member {m.name!r}: {type(exc).__name__}: {exc}"
                        ) from exc
                final = []
                for member, parts in written:
                    target = os.path.join(dest, *parts)
                    try:
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        os.replace(os.path.join(staging, *parts), target)
                    except OSError as exc:
                        raise DatasetError(
                            f"{name}: cannot move archive member {member!r} into {dest}: {type(exc).__name__}: {exc}"
                        ) from exc
                    final.append(target)
                return final
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{name}: corrupt archive ({type(exc).__name__}: {exc})") from None
